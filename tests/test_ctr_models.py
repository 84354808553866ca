"""CTR models: shapes, scene-encoder masking, CTCVR <= CTR, alignment only where it belongs, learning."""

from __future__ import annotations

import pytest
import torch

from larr.ctr.models import CtrModel, SceneEncoder

SIZES = [50, 40, 6, 8]
B, N, D = 32, 10, 16


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.randint(1, s, (B,), generator=g) for s in SIZES], dim=1)
    click = (torch.rand(B, generator=g) < 0.4).float()
    return {"cat": cat, "num": torch.randn(B, 5, generator=g), "click": click,
            "order": click * (torch.rand(B, generator=g) < 0.5).float(),
            "scene_rows": torch.randint(0, 20, (B, N), generator=g)}


def _matrix() -> torch.Tensor:
    m = torch.randn(20, D)
    m[0] = 0
    return m


def test_scene_encoder_shapes_and_masking() -> None:
    torch.manual_seed(0)
    enc = SceneEncoder(D, 8).eval()
    v = torch.randn(4, N, D)
    missing = torch.zeros(4, N, dtype=torch.bool)
    missing[:, -3:] = True
    out = enc(v, missing)
    assert out.shape == (4, 8)
    v2 = v.clone()
    v2[:, -3:] = torch.randn(4, 3, D) * 100  # masked positions must not matter
    torch.testing.assert_close(enc(v2, missing), out)
    assert not torch.allclose(enc(v2, torch.zeros_like(missing)), out)


@pytest.mark.parametrize("kind", ["ple", "larr", "noal", "wdl", "deepfm"])
def test_every_kind_runs_and_ctcvr_never_exceeds_ctr(kind: str) -> None:
    torch.manual_seed(0)
    model = CtrModel(kind, SIZES, 5, emb_dim=8, scene_matrix=_matrix())
    b = _batch()
    out = model(b)
    assert out["p_ctr"].shape == (B,) and (out["p_ctcvr"] <= out["p_ctr"] + 1e-7).all()
    assert ("align" in out) == (kind == "larr")
    model.loss(b, out).backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "wide" not in n
               and ("deep" in n or "body" in n or "emb" in n))


def test_larr_learns_a_batch() -> None:
    torch.manual_seed(0)
    model = CtrModel("larr", SIZES, 5, emb_dim=8, scene_matrix=_matrix())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    b = _batch()
    first = model.loss(b, model(b)).item()
    for _ in range(100):
        opt.zero_grad()
        loss = model.loss(b, model(b))
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_models_that_need_vectors_say_so() -> None:
    with pytest.raises(ValueError, match="needs the scene-value embedding matrix"):
        CtrModel("larr", SIZES, 5)
    with pytest.raises(ValueError, match="unknown CTR model kind"):
        CtrModel("p6", SIZES, 5)
