"""LLM stages 1-2: masking, packing, pooling position, InfoNCE, GradCache, DeepSpeed configs, a tiny end-to-end run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from larr.config import load_config
from larr.llm.backbone import add_field_tokens, build_default_model, closing_token_ids, train_tokenizer
from larr.llm.contrastive import grad_cache_step, info_nce, kind_batches
from larr.llm.encoder import TextEncoder, pool_positions
from larr.llm.lm_data import IGNORE, pack, tokenize_documents
from larr.text import render, render_many, special_tokens

ROOT = Path(__file__).resolve().parents[1]
CFG = load_config("tiny")
TEXTS = ["hot soup on a cold rainy day", "iced lemon tea is cold and sweet", "spicy beef hot pot in Sichuan",
         "breakfast congee and buns", "late night lamb skewers", "Little Pizza in Jinjiang"] * 5


@pytest.fixture(scope="module")
def small_lm():
    tok = train_tokenizer(TEXTS, 400)
    model = build_default_model(CFG.llm.backbone, tok, seed=0)
    add_field_tokens(model, tok)
    return model, tok


def test_field_tokens_are_single_special_tokens(small_lm) -> None:
    model, tok = small_lm
    for t in special_tokens():
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == t
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    assert add_field_tokens(model, tok) == 0  # idempotent


def test_prompt_is_masked_and_target_is_learned(small_lm) -> None:
    _, tok = small_lm
    prompt = render_many([("POI_name", "Little Pizza"), ("POI_loc", "Jinjiang, Sichuan")])
    target = render_many([("POI_cuisine", "pizza"), ("POI_tags", ["cold food"])])
    text = prompt + " " + target
    [(ids, labels)] = tokenize_documents(tok, [text], [len(prompt) + 1])
    assert ids[0] == tok.bos_token_id and labels[0] == IGNORE
    assert ids[-1] == labels[-1] == tok.eos_token_id
    learned = [t for t in labels if t != IGNORE]
    assert tok.decode(learned[:-1]).strip() == target
    masked = [i for i, lab in zip(ids, labels, strict=True) if lab == IGNORE]
    assert tok.decode(masked[1:]).strip() == prompt


def test_packing_keeps_every_label(small_lm) -> None:
    _, tok = small_lm
    docs = tokenize_documents(tok, TEXTS, None)
    blocks = pack(docs, 16, tok.pad_token_id)
    assert blocks["input_ids"].shape[1] == 16
    n_labels = sum(sum(1 for t in lab if t != IGNORE) for _, lab in docs)
    assert int((blocks["labels"] != IGNORE).sum()) == n_labels
    assert int(blocks["attention_mask"].sum()) == sum(len(i) for i, _ in docs)


def test_pool_position_is_the_last_closing_token(small_lm) -> None:
    model, tok = small_lm
    enc = TextEncoder(model, tok, 8, max_length=64)
    texts = [render("SCENE_weather", "heavy rain"), render_many([("POI_name", "A"), ("POI_tags", ["soup", "hot"])])]
    batch = enc.tokenize(texts)
    pos = pool_positions(batch["input_ids"], batch["attention_mask"], enc.closing_ids)
    for row, p in enumerate(pos.tolist()):
        real = int(batch["attention_mask"][row].sum())
        assert p == real - 1, "text ends with its closing token, which is pooled"
        assert tok.convert_ids_to_tokens(int(batch["input_ids"][row, p])) in ("</SCENE_weather>", "</POI_tags>")
    # no closing token: falls back to the last real token
    ids = torch.tensor([[5, 6, 7, 0]])
    assert pool_positions(ids, torch.tensor([[1, 1, 1, 0]]), closing_token_ids(tok)).item() == 2


def test_truncated_text_still_pools_on_a_closing_token(small_lm) -> None:
    model, tok = small_lm
    enc = TextEncoder(model, tok, 8, max_length=12)
    long = render("POI_intro", " ".join(["hot soup"] * 40))
    batch = enc.tokenize([long])
    assert batch["input_ids"].shape[1] == 12
    assert tok.convert_ids_to_tokens(int(batch["input_ids"][0, -1])) == "</POI_intro>"


def test_info_nce_symmetry_and_hand_checked_value() -> None:
    a = torch.eye(2)
    assert info_nce(a, a, 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=1)
    y = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=1)
    assert info_nce(x, y, 0.1).item() == pytest.approx(info_nce(y, x, 0.1).item(), abs=1e-6)
    assert info_nce(x, x, 0.05) < info_nce(x, y, 0.05)


@pytest.mark.parametrize(("scaled", "temperature", "fast"), [(False, 0.1, True), (False, 0.05, True),
                                                              (False, 0.01, False), (True, 1.0, True),
                                                              (True, 0.05, False)])
def test_info_nce_one_matrix_path_equals_two_cross_entropies(scaled: bool, temperature: float, fast: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-process path (one logits matrix, one shared exp shift, hand-written backward; issue 16) gives the
    value and gradients of the textbook two-cross-entropy form, computed in float64.  Where one shift could
    underflow (cosine logits at t = 0.01 span 200; rows of norm up to 2 at t = 0.05 span 160) the general
    path runs instead, and must agree too."""
    from larr.llm import contrastive

    calls = []
    fast_path = contrastive._SymmetricInfoNCE.apply
    monkeypatch.setattr(contrastive._SymmetricInfoNCE, "apply", lambda *a: calls.append(1) or fast_path(*a))
    g = torch.Generator().manual_seed(1)
    a0 = torch.nn.functional.normalize(torch.randn(300, 32, generator=g), dim=1)
    b0 = torch.nn.functional.normalize(torch.randn(300, 32, generator=g), dim=1)
    if scaled:  # rows of unequal norms, 0.5 to 2
        a0, b0 = a0 * (0.5 + 1.5 * torch.rand(300, 1, generator=g)), b0 * (0.5 + 1.5 * torch.rand(300, 1, generator=g))

    def reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        labels = torch.arange(a.shape[0])
        ce = torch.nn.functional.cross_entropy
        return (ce(a @ b.T / temperature, labels) + ce(b @ a.T / temperature, labels)) / 2

    grads = []
    for fn, dtype in ((reference, torch.float64), (lambda x, y: info_nce(x, y, temperature), torch.float32)):
        a, b = a0.to(dtype).requires_grad_(), b0.to(dtype).requires_grad_()
        loss = fn(a, b)
        loss.backward()
        grads.append((loss.item(), a.grad.double(), b.grad.double()))
    (want, want_a, want_b), (got, got_a, got_b) = grads
    assert bool(calls) == fast
    assert got == pytest.approx(want, rel=1e-6)
    torch.testing.assert_close(got_a, want_a, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(got_b, want_b, atol=1e-6, rtol=1e-4)


def test_grad_cache_gives_the_same_gradients(small_lm) -> None:
    model, tok = small_lm
    torch.manual_seed(0)
    enc = TextEncoder(model, tok, 8, max_length=32)
    left = [render("POI_name", t) for t in TEXTS[:6]]
    right = [render("POI_tags", t.split()) for t in TEXTS[:6]]

    def embed(texts):
        b = enc.tokenize(texts)
        return enc(b["input_ids"], b["attention_mask"])

    def loss_fn(a, b):
        return info_nce(a, b, 0.1)

    enc.zero_grad()
    full = loss_fn(embed(left), embed(right))
    full.backward()
    ref = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    enc.zero_grad()
    cached = grad_cache_step(embed, left, right, loss_fn, chunk=2)
    assert cached == pytest.approx(float(full.detach()), rel=1e-5)
    for n, p in enc.named_parameters():
        if n in ref:
            torch.testing.assert_close(p.grad, ref[n], rtol=1e-3, atol=1e-5)  # chunks pad differently


def test_batches_hold_one_kind_and_cover_every_pair() -> None:
    kinds = ["user_user"] * 10 + ["poi_poi"] * 7 + ["user_poi"] * 5
    batches = kind_batches(kinds, 4, seed=1, epoch=0)
    assert all(len({kinds[i] for i in idx}) == 1 and k == kinds[idx[0]] for k, idx in batches)
    covered = sorted(i for _, idx in batches for i in idx)
    assert len(covered) == len(set(covered))
    # only a lone leftover (no negative to contrast with) is dropped: user_poi has 5 = 4 + 1
    assert len(covered) == len(kinds) - 1
    assert batches == kind_batches(kinds, 4, seed=1, epoch=0)
    assert batches != kind_batches(kinds, 4, seed=1, epoch=1)


@pytest.mark.parametrize("name", ["zero2.json", "zero3.json"])
def test_deepspeed_configs_parse_with_deepspeeds_own_parser(name: str) -> None:
    from deepspeed.runtime.config import DeepSpeedConfig

    from training.ds_config import resolve

    cfg = resolve(ROOT / "training" / "configs" / name, micro_batch=8, grad_accum=2, world_size=1, bf16=True)
    parsed = DeepSpeedConfig(cfg)
    assert parsed.zero_optimization_stage == int(name[4])
    assert parsed.train_batch_size == 16
    cfg["zero_optimization"]["stage"] = 7
    with pytest.raises(Exception, match="stage"):
        DeepSpeedConfig(cfg)


@pytest.fixture(scope="module")
def llm_run(tiny_llm: dict) -> dict:
    return tiny_llm


def test_tiny_end_to_end(llm_run: dict) -> None:
    out = llm_run["out"]
    c = llm_run["cpt"]
    assert c["heldout_target_loss_after"] < c["heldout_target_loss_before"]
    assert c["field_tokens_added"] == len(special_tokens())
    assert list((out / "cpt" / "checkpoints").glob("checkpoint-*")), "CPT writes checkpoints"
    e = llm_run["contrastive"]
    first, last = e["first_loss_by_kind"], e["last_loss_by_kind"]
    assert sum(last.values()) < sum(first.values()), (first, last)
    models = {r["model"]: r for r in llm_run["report"]["models"]}
    assert {"base (no training)", "CPT only", "CPT + contrastive", "all-MiniLM-L6-v2 (outside reference)"} <= set(models)
    assert models["CPT + contrastive"]["poi_poi_cosine_gap"] > models["base (no training)"]["poi_poi_cosine_gap"]
    assert (out / "report.md").exists() and (out / "config.yaml").exists()


def test_encoder_artefact_round_trip(llm_run: dict) -> None:
    out = llm_run["out"]
    enc = TextEncoder.load(out / "encoder")
    assert enc.version == llm_run["contrastive"]["version"] == json.loads((out / "encoder" / "encoder.json").read_text())["version"]
    texts = [render("SCENE_weather", w) for w in ("sunny", "heavy rain", "snow")] + [render("SCENE_slot", "breakfast")]
    v = enc.encode(texts, batch_size=3)
    assert v.dtype == np.float32 and v.shape == (4, CFG.llm.contrastive.proj_dim)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    again = TextEncoder.load(out / "encoder").encode(texts[::-1], batch_size=2)[::-1]
    np.testing.assert_allclose(v, again, atol=1e-5)  # order- and batch-independent


def test_cpt_resumes_from_its_checkpoint(llm_run: dict, caplog: pytest.LogCaptureFixture) -> None:
    from training import cpt

    with caplog.at_level("INFO", logger="larr.train"):
        cpt.run(CFG, llm_run["jobs"], llm_run["out"])
    assert "resuming from" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU only: bf16 encode on CUDA")
def test_bf16_encode_on_gpu(llm_run: dict) -> None:
    enc = TextEncoder.load(llm_run["out"] / "encoder", device="cuda")
    v = enc.encode([render("SCENE_weather", "sunny")])
    assert v.dtype == np.float32 and np.isfinite(v).all()
