"""Training past one process, proven on a CPU: real torch.distributed (gloo) with 2 processes, started by the
very commands the README gives (``larr train STAGE --set launch.STAGE="torchrun --nproc_per_node 2"``,
``deepspeed --num_gpus 2`` with ZeRO-3, ``larr ctr train --set launch.ctr=...``), against one process on the
same data at the same global batch.

For each stage the 2-process run gives the same loss at every step and the same final weights (1e-4), and a
checkpoint written by one number of processes resumes on another to the same weights.  Each of the three
defects of the first multi-process attempt fails a test here:

* the world size read before the process group existed (DeepSpeed rejects the batch config):
  ``test_contrastive_deepspeed_zero3_two_processes`` starts DeepSpeed on 2 processes;
* every rank walking the same batches, each positive's copy a negative (aligned pairs: log 2 instead of ~0):
  ``test_aligned_pairs_near_zero_loss_on_two_processes`` and every per-step loss comparison;
* ZeRO-3 weights saved ungathered and evaluated on every rank: ``test_cpt_deepspeed_zero3_saves_gathered``.

The figures of each comparison are printed (``pytest -s``) for the record in training/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from larr.config import load_config
from tests.distributed_inputs import write_ctr_inputs, write_llm_inputs
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4
LLM_SET = ["llm.cpt.batch_size=8", "llm.cpt.block_size=64", "llm.cpt.logging_steps=1", "llm.cpt.save_steps=2",
           "llm.contrastive.batch_size=8", "llm.contrastive.epochs=1", "llm.contrastive.max_length=64",
           "llm.contrastive.save_steps=4"]
# lr 4e-4: the gradients of 1 and 2 processes agree to ~1e-8, but Adam divides by sqrt(v), so in coordinates whose
# gradient is near zero that float-order noise becomes an lr-sized step; at the default 8e-4 one scene-encoder
# FFN weight of this synthetic set ends 9.7e-5 apart after 24 steps (3e-6 at 4e-4; training/README.md).
# align_block 96: alignment blocks of 96 rows, one of them spanning both processes' slices of each batch of 256
CTR_SET = ["ctr.epochs=2", "ctr.batch_size=256", "ctr.align_block=96", "ctr.shuffle_buffer=1000",
           "ctr.eval_batch_size=2048", "ctr.lr=4e-4"]
# --standalone: torchrun picks a free rendezvous port, so a launcher that is still releasing the default 29500
# (the DeepSpeed run before it) cannot fail the next start; a user sharing a machine does the same (training/README)
TORCHRUN = "torchrun --standalone --nproc_per_node 2"
pytestmark = pytest.mark.timeout(600)



def DEEPSPEED() -> str:  # noqa: N802 - read as the constant beside TORCHRUN
    return f"deepspeed --num_gpus 2 --master_port {free_port()}"


def _sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def larr(*args: str, timeout: int = 400) -> str:
    """The console script as a user runs it (a child process); fails the test with its output otherwise."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TOKENIZERS_PARALLELISM="false")
    res = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, f"larr {' '.join(args)} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}"
    return res.stdout


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def loss_diff(a: list[dict], b: list[dict]) -> float:
    assert [h["step"] for h in a] == [h["step"] for h in b]
    return max(abs(x["loss"] - y["loss"]) for x, y in zip(a, b, strict=True))


def encoder_weights(folder: Path) -> dict[str, torch.Tensor]:
    w = load_file(folder / "backbone" / "model.safetensors")
    w.update({f"projection.{k}": v for k, v in torch.load(folder / "projection.pt").items()})
    return w


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Synthetic LLM inputs and the one-process reference runs of both stages (in-process, the default)."""
    from training import contrastive, cpt

    root = tmp_path_factory.mktemp("dist_llm")
    cfg = load_config("tiny", overrides=LLM_SET)
    write_llm_inputs(root, cfg)
    one = root / "one"
    shutil.copytree(root / "run", one)
    return {"root": root, "cfg": cfg, "one": one, "cpt": cpt.run(cfg, root / "jobs", one),
            "contrastive": contrastive.run(cfg, root / "jobs", one, "base")}


def _train(llm: dict, stage: str, out: Path, launcher: str, *extra: str) -> dict:
    shutil.copytree(llm["root"] / "run", out)
    larr("train", stage, "--profile", "tiny", *_sets([*LLM_SET, f"launch.{stage}={launcher}"]), "--raw",
         str(llm["root"]), "--jobs", str(llm["root"] / "jobs"), "--out", str(out), *extra)
    name = "cpt" if stage == "cpt" else "encoder_nocpt"
    return json.loads((out / name / "metrics.json").read_text())


def test_contrastive_two_processes_match_one_and_resume_on_one(llm: dict) -> None:
    from training import contrastive
    from training.contrastive import batch_plan

    one = llm["contrastive"]
    two = _train(llm, "contrastive", llm["root"] / "two_contrastive", TORCHRUN, "--init", "base")
    assert two["processes"] == 2 and one["processes"] == 1 and two["steps"] == one["steps"]
    pairs = __import__("pandas").read_parquet(llm["root"] / "jobs" / "contrastive_pairs")
    kinds = pairs[pairs["split"] == "train"]["kind"].tolist()
    sizes = {len(idx) for _, idx in batch_plan(kinds, 8, llm["cfg"].seed, 0, 2)}
    assert len({k for k, _ in batch_plan(kinds, 8, llm["cfg"].seed, 0, 2)}) == 3 and any(s % 2 for s in sizes), \
        "the plan must hold every pair kind and a short batch that splits unevenly over the 2 ranks"
    dl = loss_diff(one["history"], two["history"])
    dw = max_diff(encoder_weights(llm["one"] / "encoder_nocpt"), encoder_weights(llm["root"] / "two_contrastive"
                                                                                 / "encoder_nocpt"))
    print(f"\ncontrastive 1 vs 2 processes ({one['steps']} steps, batch 8): max loss diff per step {dl:.2e}, "
          f"max weight diff {dw:.2e}")
    assert dl < TOL and dw < TOL

    # the 2-process checkpoints resume on one process: drop the last checkpoint and the artefact, finish
    resumed = llm["root"] / "resumed_contrastive"
    shutil.copytree(llm["root"] / "two_contrastive", resumed)
    ckpts = sorted((resumed / "checkpoints" / "encoder_nocpt").glob("step-*"), key=lambda p: int(p.name[5:]))
    assert len(ckpts) == 2
    shutil.rmtree(ckpts[-1])
    shutil.rmtree(resumed / "encoder_nocpt")
    r = contrastive.run(llm["cfg"], llm["root"] / "jobs", resumed, "base")
    dr = max_diff(encoder_weights(llm["one"] / "encoder_nocpt"), encoder_weights(resumed / "encoder_nocpt"))
    print(f"contrastive resumed on 1 process from the 2-process {ckpts[0].name}: max weight diff {dr:.2e}")
    assert r["steps"] == one["steps"] and len(r["history"]) == one["steps"] and dr < TOL


def test_contrastive_deepspeed_zero3_two_processes(llm: dict) -> None:
    """DeepSpeed on 2 processes (CPU accelerator, gloo): the config check passes (world size read after the
    group exists), ZeRO-3 partitions are gathered for the artefact, and the steps equal one plain process."""
    two = _train(llm, "contrastive", llm["root"] / "zero3_contrastive", DEEPSPEED(), "--init", "base",
                 "--deepspeed", str(ROOT / "training" / "configs" / "zero3.json"))
    assert two["deepspeed"] == "zero3.json" and two["processes"] == 2
    dl = loss_diff(llm["contrastive"]["history"], two["history"])
    dw = max_diff(encoder_weights(llm["one"] / "encoder_nocpt"),
                  encoder_weights(llm["root"] / "zero3_contrastive" / "encoder_nocpt"))
    print(f"\ncontrastive DeepSpeed ZeRO-3 2 processes vs 1 plain: max loss diff {dl:.2e}, max weight diff {dw:.2e}")
    assert dl < TOL and dw < TOL


def run_script(script: Path, out: Path, processes: int) -> None:
    """Run a test script with ``out`` as its argument: under torchrun (``--standalone``, gloo on the CPU) for
    several processes, plain Python for one; fails the test with its output otherwise."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = ([str(torchrun), "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else [sys.executable])
    res = subprocess.run([*cmd, str(script), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{cmd[0]} exited {res.returncode}:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"

def test_aligned_pairs_near_zero_loss_on_two_processes(tmp_path: Path) -> None:
    """Perfectly aligned pairs (b = a, distinct rows) give ~0 InfoNCE on one process and, with the global batch
    sharded, on two; feeding both ranks the same rows (the old defect) makes each row's copy a negative: log 2."""
    script = tmp_path / "aligned.py"
    script.write_text(
        "import json, sys, torch, torch.distributed as dist\n"
        "from larr.llm.contrastive import info_nce\n"
        "from training.distributed import init_distributed, shard\n"
        "d = init_distributed()\n"
        "x = torch.nn.functional.normalize(torch.eye(8) * 10 + 0.01, dim=1)\n"
        "mine = x[shard(list(range(8)), d.rank, d.world)]\n"
        "sharded = info_nce(mine, mine.clone(), 0.05).item()\n"
        "same = info_nce(x, x.clone(), 0.05).item()  # every rank the whole batch: the old defect\n"
        "if d.main: json.dump({'sharded': sharded, 'same': same}, open(sys.argv[1], 'w'))\n")
    run_script(script, tmp_path / "two.json", processes=2)
    run_script(script, tmp_path / "one.json", processes=1)
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    print(f"\naligned pairs: 1 process {one['sharded']:.2e}, 2 processes sharded {two['sharded']:.2e}, "
          f"2 processes same rows {two['same']:.4f}")
    assert one["sharded"] < 1e-3 and two["sharded"] < 1e-3
    assert abs(two["same"] - 0.6931) < 0.01  # log 2: the exact copy on the other rank is a negative



def test_alignment_blocks_across_processes_match_one_process(tmp_path: Path) -> None:
    """The CTR alignment's blocks under 2 processes holding 3 + 5 and 0 + 8 rows of a batch of 8 (blocks of 4,
    the first spanning both processes): the share-weighted losses summed over the processes and the gradients
    of every row equal one process's on the whole batch."""
    from larr.ctr.models import _block_info_nce

    script = tmp_path / "blocks.py"
    script.write_text(
        "import json, sys, torch, torch.distributed as dist\n"
        "from larr.ctr.models import _block_info_nce\n"
        "from training.distributed import init_distributed\n"
        "d = init_distributed()\n"
        "g = torch.Generator().manual_seed(0)\n"
        "a = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1)\n"
        "b = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1)\n"
        "out = {}\n"
        "for cut in (3, 0):\n"
        "    x, y = a.clone().requires_grad_(), b.clone().requires_grad_()\n"
        "    lo, hi = (0, cut) if d.rank == 0 else (cut, 8)\n"
        "    loss = _block_info_nce(x[lo:hi], y[lo:hi], 0.1, 4) * ((hi - lo) / 8)\n"
        "    loss.backward()\n"
        "    parts = [loss.detach().clone()]\n"
        "    parts += [t.grad if t.grad is not None else torch.zeros_like(t) for t in (x, y)]\n"
        "    for t in parts:\n"
        "        dist.all_reduce(t)\n"
        "    out[cut] = [p.tolist() for p in parts]\n"
        "if d.main: json.dump(out, open(sys.argv[1], 'w'))\n")
    run_script(script, tmp_path / "two.json", processes=2)
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1).requires_grad_()
    b = torch.nn.functional.normalize(torch.randn(8, 4, generator=g), dim=1).requires_grad_()
    one = _block_info_nce(a, b, 0.1, 4)
    one.backward()
    two = json.loads((tmp_path / "two.json").read_text())
    for cut in ("3", "0"):
        loss, ga, gb = two[cut]
        assert loss == pytest.approx(one.item(), abs=1e-6), cut
        torch.testing.assert_close(torch.tensor(ga), a.grad, msg=cut)
        torch.testing.assert_close(torch.tensor(gb), b.grad, msg=cut)

def test_cpt_two_processes_match_one_and_resume_on_one(llm: dict) -> None:
    from training import cpt

    one = llm["cpt"]
    two = _train(llm, "cpt", llm["root"] / "two_cpt", TORCHRUN)
    assert two["processes"] == 2 and len(two["history"]) == len(one["history"]) >= 4
    dl = loss_diff(one["history"], two["history"])
    w1 = load_file(llm["one"] / "cpt" / "model" / "model.safetensors")
    dw = max_diff(w1, load_file(llm["root"] / "two_cpt" / "cpt" / "model" / "model.safetensors"))
    dh = abs(one["heldout_target_loss_after"] - two["heldout_target_loss_after"])
    print(f"\nCPT 1 vs 2 processes ({len(one['history'])} steps, batch 8): max loss diff per step {dl:.2e}, max "
          f"weight diff {dw:.2e}, held-out loss diff {dh:.2e}")
    assert dl < TOL and dw < TOL and dh < TOL

    resumed = llm["root"] / "resumed_cpt"
    shutil.copytree(llm["root"] / "two_cpt", resumed)
    ckpts = sorted((resumed / "cpt" / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name[11:]))
    shutil.rmtree(ckpts[-1])
    shutil.rmtree(resumed / "cpt" / "model")
    cpt.run(llm["cfg"], llm["root"] / "jobs", resumed)
    dr = max_diff(w1, load_file(resumed / "cpt" / "model" / "model.safetensors"))
    print(f"CPT resumed on 1 process from the 2-process {ckpts[-2].name}: max weight diff {dr:.2e}")
    assert dr < TOL


def test_cpt_deepspeed_zero3_saves_gathered(llm: dict) -> None:
    """CPT under DeepSpeed ZeRO-3 on 2 processes saves the whole model (not each rank's empty partition
    placeholders) and rank 0 evaluates it: the weights and held-out loss equal one plain process."""
    two = _train(llm, "cpt", llm["root"] / "zero3_cpt", DEEPSPEED(), "--deepspeed",
                 str(ROOT / "training" / "configs" / "zero3.json"))
    w1 = load_file(llm["one"] / "cpt" / "model" / "model.safetensors")
    w3 = load_file(llm["root"] / "zero3_cpt" / "cpt" / "model" / "model.safetensors")
    assert {k: v.shape for k, v in w3.items()} == {k: v.shape for k, v in w1.items()}
    dw, dl = max_diff(w1, w3), loss_diff(llm["cpt"]["history"], two["history"])
    print(f"\nCPT DeepSpeed ZeRO-3 2 processes vs 1 plain: max loss diff {dl:.2e}, max weight diff {dw:.2e}")
    assert dw < TOL and dl < TOL
    assert abs(two["heldout_target_loss_after"] - llm["cpt"]["heldout_target_loss_after"]) < TOL


@pytest.fixture(scope="module")
def ctr(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Synthetic CTR samples and the one-process reference (``larr ctr train`` in-process), epoch checkpoints
    kept in a side folder for the resume test."""
    from training.ctr import CtrData, run_ctr

    root = write_ctr_inputs(tmp_path_factory.mktemp("dist_ctr"))
    cfg = load_config("tiny", overrides=CTR_SET)
    one = run_ctr(cfg.ctr, "larr", CtrData.load(root), cfg.seed, root / "features", progress=False,
                  save=root / "one", checkpoint=root / "one_ckpt")
    return {"root": root, "cfg": cfg, "one": one}


def test_ctr_two_processes_match_one(ctr: dict) -> None:
    out = ctr["root"] / "two"
    larr("ctr", "train", "--profile", "tiny", *_sets([*CTR_SET, f"launch.ctr={TORCHRUN}"]), "--kind", "larr",
         "--data", str(ctr["root"]), "--out", str(out), "--quiet")
    m = json.loads((out / "metrics.json").read_text())
    one = ctr["one"]
    assert m["processes"] == 2 and "valid_ctr_auc" in m and (out / "config.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "model.json", "model.pt",
                                                     "preprocessor.json"], "the candidate holds no checkpoints"
    assert len(m["history"]["loss"]) == len(one["history"]["loss"]) > 10
    dl = max(abs(a - b) for key in ("loss", "align") for a, b in zip(one["history"][key], m["history"][key],
                                                                      strict=True))
    dw = max_diff(torch.load(ctr["root"] / "one" / "model.pt"), torch.load(out / "model.pt"))
    print(f"\nCTR (LARR) 1 vs 2 processes ({len(one['history']['loss'])} steps, batch 256): max loss diff per step "
          f"{dl:.2e}, max weight diff {dw:.2e}; valid AUC {one['history']['valid'][-1]['ctr_auc']:.6f} vs "
          f"{m['valid_ctr_auc']:.6f}")
    assert dl < TOL and dw < TOL
    assert m["valid_ctr_auc"] == pytest.approx(one["history"]["valid"][-1]["ctr_auc"], abs=TOL)


def test_ctr_one_process_checkpoint_resumes_on_two(ctr: dict) -> None:
    """The epoch-1 checkpoint of the one-process run, resumed by ``larr ctr train`` on 2 processes, ends with
    the one-process weights (the checkpoint is the whole model, optimizer and random state)."""
    out = ctr["root"] / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    ckpts = sorted((ctr["root"] / "one_ckpt").glob("epoch-*.pt"))
    assert [p.name for p in ckpts] == ["epoch-1.pt", "epoch-2.pt"]
    shutil.copy(ckpts[0], out / "checkpoints" / ckpts[0].name)
    larr("ctr", "train", "--profile", "tiny", *_sets([*CTR_SET, f"launch.ctr={TORCHRUN}"]), "--kind", "larr",
         "--data", str(ctr["root"]), "--out", str(out), "--quiet")
    m = json.loads((out / "metrics.json").read_text())
    dw = max_diff(torch.load(ctr["root"] / "one" / "model.pt"), torch.load(out / "model.pt"))
    print(f"\nCTR resumed on 2 processes from the 1-process epoch-1 checkpoint: max weight diff {dw:.2e}")
    assert m["history"]["loss"][:5] == ctr["one"]["history"]["loss"][:5] and dw < TOL


def test_launch_command_names_the_module() -> None:
    from training.launch import command

    cmd = command("torchrun --nproc_per_node 2", "training.cpt", ["--jobs", "J"])
    assert cmd[1:] == ["--nproc_per_node", "2", "--module", "training.cpt", "--jobs", "J"]
    assert command("deepspeed --num_gpus 8", "training.contrastive", [])[-2:] == ["--module", "training.contrastive"]
    assert command("python", "training.ctr", ["--candidate", "C"]) == [sys.executable, "-m", "training.ctr",
                                                                       "--candidate", "C"]
    multi = command("srun --nodes 4 torchrun --nnodes 4 --nproc_per_node 8 --rdzv_backend c10d "
                    "--rdzv_endpoint head:29500", "training.cpt", [])
    assert multi[0] == "srun" and multi[-2:] == ["--module", "training.cpt"]
    with pytest.raises(ValueError, match="names no launcher"):
        command("mpirun -n 2", "training.cpt", [])
    # pyspark's DeepspeedTorchDistributor appends `--deepspeed --deepspeed_config FILE` to the script's arguments
    from training.common import deepspeed_arg, launcher_parser

    a = launcher_parser(None).parse_args(["--jobs", "J", "--out", "O", "--deepspeed", "--deepspeed_config", "z.json"])
    assert deepspeed_arg(a) == "z.json"
    assert deepspeed_arg(launcher_parser(None).parse_args(["--jobs", "J", "--out", "O", "--deepspeed", "z3.json"])) \
        == "z3.json"



def test_global_batch_sampler_slices_the_one_process_order() -> None:
    """Under W processes CPT's sampler cuts the permutation the one-process Trainer draws (accelerate's
    SeedableRandomSampler, seed + epoch) into the same global batches; a rank a short batch leaves empty gets a
    label-masked filler (index MASKED - i)."""
    from accelerate.data_loader import SeedableRandomSampler

    from training.lm_trainer import MASKED, GlobalBatchSampler

    for epoch in (0, 1):
        ref = SeedableRandomSampler(data_source=range(33), data_seed=7)
        ref.set_epoch(epoch)
        order = list(ref)
        shards = []
        for rank in range(2):
            s = GlobalBatchSampler(33, 8, rank, 2, seed=7)
            s.set_epoch(epoch)
            shards.append(list(s))
        assert len(shards[0]) == len(shards[1]) == 5
        for k, (a, b) in enumerate(zip(*shards, strict=True)):
            real = [i for i in a + b if i >= 0]
            assert real == order[8 * k:8 * k + 8]
        assert shards[1][-1] == [MASKED - order[32]]  # 33 = 4 x 8 + 1: rank 1 runs the masked copy
