"""The scoring service's model runtimes (serving/runtime.py): ONNX Runtime must give PyTorch's scores on every
backbone with and without the LARR module, cache its graph only for the weights it was exported from, and
fall back to PyTorch (saying why) when a graph disagrees.  Real exports, real ONNX Runtime sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from larr.config import CtrConfig
from larr.ctr.artifact import LoadedModel, predict
from larr.ctr.models import CtrModel
from larr.spec import load_spec
from serving.runtime import ONNX_FILE, PARITY_TOL, build_runtime, probe_batch

SPEC = load_spec()
SIZES = [40, 30, 9, 12, 6, 4, 5, 5, 4, 26, 6]  # one table per categorical column, as a food model has
N_NUMERIC = 16


def _loaded(tmp: Path, kind: str, seed: int) -> LoadedModel:
    """A freshly initialised model of ``kind`` saved in ``tmp`` (the runtime stamps its graph with model.pt)."""
    torch.manual_seed(seed)
    scene = torch.randn(50, 32)
    scene[0] = 0.0
    model = CtrModel(kind, SIZES, N_NUMERIC, CtrConfig(emb_dim=8, expert_dim=16, tower_dim=8, deep_dims=[32, 16],
                                                        scene_ffn=32), scene_matrix=scene).eval()
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), tmp / "model.pt")
    return LoadedModel(tmp, model, None, None, SPEC, {"kind": kind})  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["larr", "deepfm+larr", "dcnv2+noal", "wdl"])
def test_onnx_scores_match_pytorch_on_every_backbone(tmp_path: Path, kind: str) -> None:
    m = _loaded(tmp_path, kind, seed=3)
    run, name = build_runtime(m, "onnx")
    assert name == "onnx"
    width = len(SPEC.scene)
    for n in (1, 3, 500):  # the batch dimension is dynamic: one graph for any number of candidates
        batch = probe_batch(m.model, width, n=n, seed=11)
        want, got = predict(m.model, [batch]), run(batch)
        for w, g in zip(want, got, strict=True):
            assert g.shape == (n,)
            assert np.abs(w - g).max() <= PARITY_TOL


def test_the_graph_is_cached_for_its_own_weights_only(tmp_path: Path) -> None:
    m = _loaded(tmp_path, "larr", seed=1)
    build_runtime(m, "onnx")
    graph = tmp_path / ONNX_FILE
    first = graph.stat().st_mtime_ns
    run, name = build_runtime(m, "onnx")  # the same weights: the cached graph is used as it is
    assert name == "onnx" and graph.stat().st_mtime_ns == first
    retrained = _loaded(tmp_path, "larr", seed=2)  # new weights in the same folder: exported again
    run, name = build_runtime(retrained, "onnx")
    assert name == "onnx" and graph.stat().st_mtime_ns != first
    batch = probe_batch(retrained.model, len(SPEC.scene), n=20, seed=5)
    assert np.abs(predict(retrained.model, [batch])[0] - run(batch)[0]).max() <= PARITY_TOL


def test_a_cached_graph_that_disagrees_is_exported_again(tmp_path: Path) -> None:
    """A cached graph stamped for these weights but computing something else (made by older model code, or a
    corrupted copy) is caught by the check at load and replaced by a fresh export."""
    other = _loaded(tmp_path / "other", "larr", seed=8)
    build_runtime(other, "onnx")
    m = _loaded(tmp_path / "model", "larr", seed=9)
    build_runtime(m, "onnx")
    import onnx

    cache = tmp_path / "model" / ONNX_FILE
    wrong = onnx.load_from_string((tmp_path / "other" / ONNX_FILE).read_bytes())
    wrong.ClearField("metadata_props")
    wrong.metadata_props.extend(onnx.load_from_string(cache.read_bytes()).metadata_props)
    cache.write_bytes(wrong.SerializeToString())
    batch = probe_batch(m.model, len(SPEC.scene), n=10, seed=4)
    stale = onnx_runtime_of(cache.read_bytes())
    assert np.abs(stale(batch)[0] - predict(m.model, [batch])[0]).max() > PARITY_TOL  # the cache is wrong
    run, name = build_runtime(m, "onnx")
    assert name == "onnx"
    assert np.abs(run(batch)[0] - predict(m.model, [batch])[0]).max() <= PARITY_TOL
    assert np.abs(onnx_runtime_of(cache.read_bytes())(batch)[0] - predict(m.model, [batch])[0]).max() <= PARITY_TOL


def onnx_runtime_of(blob: bytes):
    """A bare ONNX Runtime session on ``blob`` (no stamp, no check)."""
    import onnxruntime as ort

    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return lambda b: session.run(None, {k: v.numpy() for k, v in b.items()})


def test_a_model_that_cannot_be_exported_is_served_with_pytorch_and_says_why(tmp_path: Path) -> None:
    m = _loaded(tmp_path, "larr", seed=5)
    (tmp_path / "model.pt").unlink()  # nothing to stamp a graph with: the ONNX path fails
    run, name = build_runtime(m, "onnx")
    assert name.startswith("torch (onnx failed: FileNotFoundError")
    batch = probe_batch(m.model, len(SPEC.scene), n=10, seed=4)
    assert np.array_equal(run(batch)[0], predict(m.model, [batch])[0])


def test_an_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of onnx, torch"):
        build_runtime(None, "tensorrt")  # type: ignore[arg-type]
