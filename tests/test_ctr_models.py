"""CTR models: shapes, scene-encoder masking, CTCVR <= CTR, alignment only where it belongs, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from larr.config import CtrConfig
from larr.ctr.kinds import KINDS, canonical_kind, parse_kind, uses_scene
from larr.ctr.models import CrossV2, CtrModel, SceneEncoder, alignment_loss, ctr_ctcvr_loss
from larr.llm.contrastive import info_nce

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


@pytest.mark.parametrize("kind, pooling", [*((k, "agg") for k in KINDS), ("larr", "mean"), ("noal", "mean"),
                                           ("dcnv2+larr", "mean")])
def test_every_kind_runs_and_ctcvr_never_exceeds_ctr(kind: str, pooling: str) -> None:
    torch.manual_seed(0)
    model = CtrModel(kind, SIZES, 5, CtrConfig(emb_dim=8, scene_pooling=pooling), scene_matrix=_matrix())
    b = _batch()
    out = model(b)
    assert out["p_ctr"].shape == (B,) and (out["p_ctcvr"] <= out["p_ctr"] + 1e-7).all()
    assert ("align" in out) == (parse_kind(kind)[1] == "larr")  # training mode: alignment only with the module
    assert "align" not in model.eval()(b)  # never computed at serving time
    model.train()
    model.loss(b, out).backward()
    # Every trainable parameter learns from one batch -- the scene encoder's included: with agg pooling the
    # layer is evaluated at the aggregation token only, but its attention reads every position (keys and
    # values come from the same in_proj as the query) and the feed-forward block runs on that token, so no
    # weight is left out.  Only the scene-vector table itself is frozen (the LLM's vectors).
    trainable = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert [n for n, g in trainable.items() if g is None or not bool(g.abs().sum() > 0)] == []
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    scene_kind = uses_scene(kind)
    assert frozen == ({"scene.weight"} if scene_kind else set())
    encoder = [n for n in trainable if n.startswith("scene_encoder.")]
    assert bool(encoder) == scene_kind
    if scene_kind:  # the attention, both norms, the feed-forward block, the head and the aggregation token
        for part in ("agg", "self_attn.in_proj_weight", "self_attn.out_proj.weight", "norm1", "norm2", "linear1",
                     "linear2", "head"):
            assert any(part in n for n in encoder), part


def test_larr_learns_a_batch() -> None:
    torch.manual_seed(0)
    model = CtrModel("larr", SIZES, 5, CtrConfig(emb_dim=8), scene_matrix=_matrix())
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


def test_scene_encoder_reads_scores_from_a_small_table_with_the_same_values_and_gradients() -> None:
    """When the table has fewer rows than the batch has vectors, the attention scores come from table @ u^T
    gathered by row in a training step; output and every gradient match the path over the gathered vectors."""
    torch.manual_seed(0)
    table = torch.randn(7, D)
    table[0] = 0.0
    rows = torch.randint(0, 7, (5, N))  # 5 x N = 50 vectors > 7 table rows: the table path
    rows[0, :3] = 0
    out, grads = [], []
    for use_table in (False, True):
        torch.manual_seed(1)
        enc = SceneEncoder(D, 8, heads=2, ffn=32)
        vectors = table[rows]
        y = enc(vectors, rows == 0, table, rows) if use_table else enc(vectors, rows == 0)
        y.square().sum().backward()
        out.append(y.detach())
        grads.append({n: p.grad for n, p in enc.named_parameters()})
    torch.testing.assert_close(out[1], out[0])
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, msg=name)


def test_scene_encoder_mean_pooling_ignores_missing_and_heads_must_divide() -> None:
    torch.manual_seed(0)
    enc = SceneEncoder(D, 8, heads=2, ffn=32, pooling="mean").eval()
    v = torch.randn(3, N, D)
    missing = torch.zeros(3, N, dtype=torch.bool)
    missing[:, :4] = True
    v2 = v.clone()
    v2[:, :4] = 1e3
    torch.testing.assert_close(enc(v2, missing), enc(v, missing))
    with pytest.raises(ValueError, match="scene_heads=3 must divide"):
        SceneEncoder(D, 8, heads=3)


def test_alignment_loss_full_batch_is_the_symmetric_info_nce() -> None:
    g = torch.Generator().manual_seed(1)
    e, t = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    n = torch.nn.functional.normalize
    full = alignment_loss(e, t, 0.1)
    torch.testing.assert_close(full, info_nce(n(e, dim=-1), n(t, dim=-1), 0.1))
    torch.testing.assert_close(full, alignment_loss(t, e, 0.1))  # symmetric
    torch.testing.assert_close(alignment_loss(e, t, 0.1, negatives=5), full)  # k = B - 1: every other sample
    # scale-invariant (cosine similarity) and lower when the pairs match
    torch.testing.assert_close(alignment_loss(3 * e, t, 0.1), full)
    assert alignment_loss(t, t, 0.1) < full


def test_alignment_loss_with_one_sampled_negative_hand_checked() -> None:
    # orthonormal rows: cos(a_i, b_i) = 1, cos(a_i, b_j) = 0, so with one negative each direction is
    # -log(e^{1/t} / (e^{1/t} + e^0)) = log(1 + e^{-1/t})
    a = torch.eye(4)
    for t in (0.1, 0.5, 1.0):
        want = torch.log1p(torch.exp(torch.tensor(-1.0 / t)))
        torch.testing.assert_close(alignment_loss(a, a.clone(), t, negatives=1), want)
    # against a reference built from the sampled columns: same seed, same negatives
    g = torch.Generator().manual_seed(3)
    e, tt = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    torch.manual_seed(0)
    got = alignment_loss(e, tt, 0.2, negatives=2)
    torch.manual_seed(0)
    noise = torch.rand(8, 8)
    noise.fill_diagonal_(-1.0)
    neg = noise.topk(2, dim=1).indices
    n = torch.nn.functional.normalize
    a, b = n(e, dim=-1), n(tt, dim=-1)
    ref = 0.0
    for x, y in ((a, b), (b, a)):
        for i in range(8):
            cols = [i, *neg[i].tolist()]
            logits = torch.stack([x[i] @ y[j] for j in cols]) / 0.2
            ref += -torch.log_softmax(logits, 0)[0] / 16
    torch.testing.assert_close(got, ref)
    assert i not in neg[i].tolist()


def test_alignment_loss_in_blocks_is_the_row_weighted_mean_of_each_blocks_info_nce() -> None:
    """Blocks of m rows, the last one shorter: each row's negatives are only the other rows of its block, so
    the loss is sum_blocks rows x InfoNCE(block) / n -- checked against cross entropy written out per row."""
    g = torch.Generator().manual_seed(5)
    e, t = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    n = torch.nn.functional.normalize
    a, b = n(e, dim=-1), n(t, dim=-1)
    ref = 0.0
    for lo, hi in ((0, 4), (4, 8), (8, 10)):
        for x, y in ((a, b), (b, a)):
            logits = x[lo:hi] @ y[lo:hi].T / 0.1
            ref += torch.nn.functional.cross_entropy(logits, torch.arange(hi - lo), reduction="sum") / 20
    torch.testing.assert_close(alignment_loss(e, t, 0.1, block=4), ref)
    # a block as large as the batch is the whole batch; a row far from its block's rows cannot lower the loss
    torch.testing.assert_close(alignment_loss(e, t, 0.1, block=10), alignment_loss(e, t, 0.1))
    torch.testing.assert_close(alignment_loss(e, t, 0.1, block=64), alignment_loss(e, t, 0.1))
    assert alignment_loss(e, t, 0.1, block=2) < alignment_loss(e, t, 0.1)  # fewer negatives: an easier task
    # gradients flow to every row and match the reference's
    e1, t1 = e.clone().requires_grad_(), t.clone().requires_grad_()
    alignment_loss(e1, t1, 0.1, block=4).backward()
    e2, t2 = e.clone().requires_grad_(), t.clone().requires_grad_()
    a2, b2 = n(e2, dim=-1), n(t2, dim=-1)
    sum(torch.nn.functional.cross_entropy(x[lo:hi] @ y[lo:hi].T / 0.1, torch.arange(hi - lo), reduction="sum") / 20
        for lo, hi in ((0, 4), (4, 8), (8, 10)) for x, y in ((a2, b2), (b2, a2))).backward()
    torch.testing.assert_close(e1.grad, e2.grad)
    torch.testing.assert_close(t1.grad, t2.grad)



def test_alignment_blocks_at_a_low_temperature_take_the_general_path() -> None:
    """At temperature 0.01 the cosine logits span 200, past the shared shift's float32 range: the blocks go one
    by one through cross entropy, with the same value as the reference."""
    g = torch.Generator().manual_seed(7)
    e, t = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    n = torch.nn.functional.normalize
    a, b = n(e, dim=-1), n(t, dim=-1)
    ref = sum(torch.nn.functional.cross_entropy(x[lo:hi] @ y[lo:hi].T / 0.01, torch.arange(hi - lo), reduction="sum")
              / 20 for lo, hi in ((0, 4), (4, 8), (8, 10)) for x, y in ((a, b), (b, a)))
    got = alignment_loss(e, t, 0.01, block=4)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, ref)

def test_sampled_negatives_ignore_the_blocks() -> None:
    g = torch.Generator().manual_seed(6)
    e, t = torch.randn(12, 4, generator=g), torch.randn(12, 4, generator=g)
    torch.manual_seed(0)
    sampled = alignment_loss(e, t, 0.1, negatives=3)
    torch.manual_seed(0)
    torch.testing.assert_close(alignment_loss(e, t, 0.1, negatives=3, block=4), sampled)
    assert not torch.allclose(alignment_loss(e, t, 0.1, block=4), sampled)


def test_ctr_ctcvr_loss_equals_bce_of_the_probabilities() -> None:
    g = torch.Generator().manual_seed(0)
    out = {"ctr_logit": torch.randn(50, generator=g), "cvr_logit": torch.randn(50, generator=g)}
    click = (torch.rand(50, generator=g) < 0.5).float()
    batch = {"click": click, "order": click * (torch.rand(50, generator=g) < 0.5).float()}
    p_ctr = torch.sigmoid(out["ctr_logit"])
    p_ctcvr = p_ctr * torch.sigmoid(out["cvr_logit"])
    bce = torch.nn.functional.binary_cross_entropy
    torch.testing.assert_close(ctr_ctcvr_loss(out, batch), bce(p_ctr, batch["click"]) + bce(p_ctcvr, batch["order"]))


def test_agg_pooling_fast_path_equals_the_full_transformer_layer() -> None:
    torch.manual_seed(0)
    enc = SceneEncoder(D, 8, heads=4, ffn=32)
    v = torch.randn(5, N, D)
    missing = torch.zeros(5, N, dtype=torch.bool)
    missing[1:, -2:] = True
    x = torch.cat([enc.agg.expand(5, -1, -1), v], dim=1)
    mask = torch.cat([torch.zeros(5, 1, dtype=torch.bool), missing], dim=1)
    for mode in (enc.train, enc.eval):
        mode()
        full = enc.encoder(x, src_key_padding_mask=mask)[:, 0]
        torch.testing.assert_close(enc._agg_output(v, missing), full, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc(v, missing), enc.head(full), atol=1e-5, rtol=1e-5)


def test_deepfm_starts_unsaturated() -> None:
    torch.manual_seed(0)
    model = CtrModel("deepfm", [500] * 11, 5, CtrConfig())
    b = {"cat": torch.randint(1, 500, (256, 11)), "num": torch.randn(256, 5)}
    p = model(b)["p_ctr"]
    assert p.min() > 0.05 and p.max() < 0.95  # an FM term of std ~30 would pin these at 0 or 1


def test_kind_names() -> None:
    assert parse_kind("larr") == ("ple", "larr") and parse_kind("deepfm+noal") == ("deepfm", "noal")
    assert parse_kind("dcnv2") == ("dcnv2", None)
    assert canonical_kind("ple+larr") == "larr" and canonical_kind("wdl+larr") == "wdl+larr"
    assert {k for k in KINDS if uses_scene(k)} == {"larr", "noal", "wdl+larr", "wdl+noal", "deepfm+larr",
                                                   "deepfm+noal", "dcnv2+larr", "dcnv2+noal"}
    for bad in ("gbdt", "ple+bert", "larr+larr", "deepfm+"):
        with pytest.raises(ValueError, match="BACKBONE"):
            parse_kind(bad)


def test_dcnv2_cross_layer_is_the_papers_formula() -> None:
    """x_{l+1} = x_0 * (W x_l + b) + x_l (DCN-V2, eq. 1), checked in numpy against the layer's own weights."""
    torch.manual_seed(0)
    layer = CrossV2(6)
    x0, xl = torch.randn(4, 6), torch.randn(4, 6)
    w, bias = layer.linear.weight.detach().numpy(), layer.linear.bias.detach().numpy()
    want = x0.numpy() * (xl.numpy() @ w.T + bias) + xl.numpy()
    np.testing.assert_allclose(layer(x0, xl).detach().numpy(), want, rtol=1e-5, atol=1e-6)


def test_the_module_is_the_same_on_every_backbone() -> None:
    """With the same seed, the scene encoder of ``deepfm+larr`` and of ``larr`` (PLE) start from the same
    weights and e_s enters every backbone; DeepFM's FM term also crosses e_s's two halves with the id fields."""
    shapes = {}
    for kind in ("larr", "deepfm+larr", "dcnv2+larr", "wdl+larr"):
        torch.manual_seed(0)
        model = CtrModel(kind, SIZES, 5, CtrConfig(emb_dim=8), scene_matrix=_matrix())
        shapes[kind] = {n: tuple(p.shape) for n, p in model.named_parameters() if n.startswith("scene_encoder.")}
    assert len({tuple(sorted(v.items())) for v in shapes.values()}) == 1
    torch.manual_seed(0)
    model = CtrModel("deepfm+larr", SIZES, 5, CtrConfig(emb_dim=8), scene_matrix=_matrix()).eval()
    b = _batch()
    with torch.no_grad():
        base = model(b)["ctr_logit"]
        model.body.deep[0][-1].weight.zero_()  # deep part blind to its input; wide part too
        model.body.wide[0].weight.zero_()
        fm_only = model(b)["ctr_logit"]
        b2 = dict(b, scene_rows=torch.flip(b["scene_rows"], dims=[0]))  # other scene vectors, same ids
        assert not torch.allclose(model(b2)["ctr_logit"], fm_only), "e_s must reach the FM term"
    assert not torch.allclose(base, fm_only)


def test_wide_and_deep_models_saved_before_backbones_were_modules_still_load() -> None:
    torch.manual_seed(0)
    model = CtrModel("deepfm", SIZES, 5, CtrConfig(emb_dim=8))
    old = {k.removeprefix("body."): v for k, v in model.state_dict().items()}  # deep.*, wide.*: the old layout
    assert any(k.startswith("deep.") for k in old)
    fresh = CtrModel("deepfm", SIZES, 5, CtrConfig(emb_dim=8))
    fresh.load_state_dict(old)
    b = _batch()
    torch.testing.assert_close(fresh.eval()(b)["p_ctr"], model.eval()(b)["p_ctr"])
