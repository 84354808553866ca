"""The LLM stages on the GPU(s) at a realistic size, through the project's own launch command: a Llama-architecture
model of >= 300M parameters built from config, bf16, DeepSpeed ZeRO-2 and ZeRO-3, CPT and contrastive
fine-tuning for a few hundred steps each.  The same code path as tests/test_distributed.py (the only GPU
differences are the nccl backend, device placement and bf16); skipped cleanly without CUDA.

Speed figures (tokens/s, MFU, peak GPU memory, CPU-vs-GPU encoding of the scene vocabulary) come from
``python -m benchmarks.llm_stages --gpu-scale``, which runs these same commands."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from larr.config import LarrConfig, load_config
from tests.distributed_inputs import write_llm_inputs
from tests.test_distributed import ROOT, _sets, larr

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bf16, DeepSpeed ZeRO-2/3, "
                                                                        "a >= 300M-parameter model)"),
              pytest.mark.timeout(3600)]

# ~310M parameters: 24 layers x (4 x 1024^2 attention + 3 x 1024 x 2816 MLP) + embeddings
BIG = ["llm.backbone.hidden_size=1024", "llm.backbone.num_layers=24", "llm.backbone.num_heads=16",
       "llm.backbone.intermediate_size=2816", "llm.backbone.vocab_size=8000", "llm.backbone.max_length=256",
       "llm.cpt.batch_size=8", "llm.cpt.block_size=128", "llm.cpt.epochs=2", "llm.cpt.lr=2e-4",
       "llm.cpt.logging_steps=10", "llm.cpt.save_steps=1000", "llm.contrastive.batch_size=32",
       "llm.contrastive.epochs=2", "llm.contrastive.lr=5e-5", "llm.contrastive.max_length=128",
       "llm.contrastive.save_steps=0"]


def llama_parameters(cfg: LarrConfig) -> int:
    """Parameters of the Llama the backbone config builds (attention, MLP, norms, embeddings)."""
    b = cfg.llm.backbone
    per_layer = 4 * b.hidden_size ** 2 + 3 * b.hidden_size * b.intermediate_size + 2 * b.hidden_size
    return b.num_layers * per_layer + b.vocab_size * b.hidden_size


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("gpu_llm")
    cfg = load_config("tiny", overrides=BIG)
    assert llama_parameters(cfg) >= 300_000_000
    write_llm_inputs(root, cfg, n_pois=5000, n_pairs=6000)  # ~530 CPT, ~360 contrastive steps
    return {"root": root, "cfg": cfg, "gpus": torch.cuda.device_count()}


@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_cpt_and_contrastive_on_gpus(big: dict, zero: str) -> None:
    out = big["root"] / zero
    shutil.copytree(big["root"] / "run", out)
    launcher = f"deepspeed --num_gpus {big['gpus']}"
    common = ["--profile", "tiny", "--raw", str(big["root"]), "--jobs", str(big["root"] / "jobs"), "--out", str(out),
              "--deepspeed", str(ROOT / "training" / "configs" / f"{zero}.json")]
    larr("train", "cpt", *_sets([*BIG, f"launch.cpt={launcher}"]), *common, timeout=3000)
    larr("train", "contrastive", *_sets([*BIG, f"launch.contrastive={launcher}"]), *common, "--init", "cpt",
         timeout=3000)
    cpt = json.loads((out / "cpt" / "metrics.json").read_text())
    enc = json.loads((out / "encoder" / "metrics.json").read_text())
    assert cpt["processes"] == enc["processes"] == big["gpus"] and cpt["deepspeed"] == f"{zero}.json"
    assert cpt["parameters"] >= 300_000_000 and enc["parameters"] >= 300_000_000
    assert len(cpt["history"]) * 10 >= 200 and enc["steps"] >= 200, "a few hundred steps each"
    assert cpt["heldout_target_loss_after"] < cpt["heldout_target_loss_before"]
    assert all(math.isfinite(h["loss"]) for h in cpt["history"] + enc["history"])
    first = sum(h["loss"] for h in enc["history"][:20]) / 20
    last = sum(h["loss"] for h in enc["history"][-20:]) / 20
    assert last < first
    assert cpt["peak_gpu_mb"] > 0 and enc["peak_gpu_mb"] > 0 and cpt["tokens_per_second"] > 0
    # the artefact is whole (ZeRO-3 gathered) float32 and encodes on the GPU and the CPU alike
    from larr.llm.encoder import TextEncoder

    texts = ["<SCENE_weather>heavy rain</SCENE_weather>", "<SCENE_slot>breakfast</SCENE_slot>"]
    gpu = TextEncoder.load(out / "encoder", device="cuda").encode(texts)
    cpu = TextEncoder.load(out / "encoder", device="cpu").encode(texts)
    assert gpu.shape == cpu.shape and float(abs(gpu - cpu).max()) < 0.05  # bf16 autocast on the GPU
