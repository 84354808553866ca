"""How the scoring service runs a loaded CTR model: eager PyTorch, or the same network exported to ONNX and
run by ONNX Runtime (the default).

Why: on a 100-candidate request the model is some 160 small operators (PLE's experts and gates, the scene
encoder, eleven embedding lookups: 161 ONNX nodes on the tiny world's model); eager PyTorch dispatches each
from Python, ONNX Runtime runs the graph in C++ -- 4.1-4.9 ms against 1.5-1.7 ms p50 in-process, one thread
(``benchmarks/serving.py`` times both; README § Scoring service).  Training and offline evaluation stay on PyTorch: the ONNX graph is
derived from the very weights the service loaded, never trained or shipped separately.

The export (``torch.onnx.export``, the ``torch.export``-based exporter, batch size dynamic) takes seconds,
so it is cached as ``model.onnx`` in the model's folder, stamped with the SHA-256 of ``model.pt``; a cache
whose stamp does not match, or a folder that cannot be written, means exporting again in memory.  Every
load then checks ONNX Runtime against PyTorch on a probe batch: pCTR and pCTCVR must agree to
:data:`PARITY_TOL` (the service's online/offline parity bound).  A cached graph that fails the check (made by
older model code for the same weights) is exported again once; a fresh export that fails it makes the
service log why and serve with PyTorch, so a graph the exporter gets wrong can cost speed, never
correctness.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from larr.ctr.artifact import LoadedModel, predict

log = logging.getLogger("larr.serve")

RUNTIMES = ("onnx", "torch")
PARITY_TOL = 1e-5
ONNX_FILE = "model.onnx"
STAMP_KEY = "larr_model_pt_sha256"
Runtime = Callable[[dict[str, torch.Tensor]], tuple[np.ndarray, np.ndarray]]


class _Inputs(nn.Module):
    """The CTR model with tensors in, (pCTR, pCTCVR) out: an exported graph takes positional tensors, not the
    batch dict the model's forward takes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, cat: torch.Tensor, num: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.model({"cat": cat, "num": num})
        return o["p_ctr"], o["p_ctcvr"]


class _SceneInputs(_Inputs):
    """:class:`_Inputs` of a model with the scene module (its scene rows are a third input)."""

    def forward(self, cat: torch.Tensor, num: torch.Tensor,  # type: ignore[override]
                scene_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.model({"cat": cat, "num": num, "scene_rows": scene_rows})
        return o["p_ctr"], o["p_ctcvr"]


def input_names(model: nn.Module) -> list[str]:
    """The batch keys the model reads, in the exported graph's input order."""
    return ["cat", "num", "scene_rows"] if hasattr(model, "scene_encoder") else ["cat", "num"]


def probe_batch(model: nn.Module, scene_fields: int, n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of ``n`` random but valid inputs (every index inside its table, padding and OOV rows
    included; ``scene_fields`` scene keys per row, some without a vector), to export with and to check a
    runtime against PyTorch."""
    g = torch.Generator().manual_seed(seed)
    tables = model.emb.tables
    cat = torch.stack([torch.randint(0, t.num_embeddings, (n,), generator=g) for t in tables], dim=1)
    n_num = model.emb.out_dim - model.emb.dim * len(tables)
    batch = {"cat": cat, "num": torch.randn(n, n_num, generator=g) * 2}
    if hasattr(model, "scene_encoder"):
        rows = torch.randint(1, model.scene.num_embeddings, (n, scene_fields), generator=g)
        rows[::7, ::2] = 0  # keys without a vector: masked out
        batch["scene_rows"] = rows
    return batch


def torch_runtime(loaded: LoadedModel) -> Runtime:
    """Eager PyTorch, as offline evaluation scores (the reference the ONNX graph is checked against)."""
    model = loaded.model.eval()
    return lambda batch: predict(model, [batch])


def _weights_sha(folder: Path) -> str:
    return hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()


def export_onnx(model: nn.Module, example: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """The model as a serialised ONNX graph (opset of the installed exporter, batch dimension dynamic), with
    ``metadata`` in its metadata properties."""
    names = input_names(model)
    wrapped = (_SceneInputs if "scene_rows" in names else _Inputs)(model).eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    args = tuple(example[k] for k in names)
    chatty = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in chatty]
    for lg in chatty:  # the exporter's progress lines are not the service's business
        lg.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapped, args, input_names=names, output_names=["p_ctr", "p_ctcvr"],
                                        dynamic_shapes=tuple({0: batch} for _ in names), dynamo=True,
                                        optimize=True, verbose=False, report=False)
    finally:
        for lg, level in zip(chatty, levels, strict=True):
            lg.setLevel(level)
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def _session(blob: bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1  # one thread per worker, as the torch path: workers scale across cores
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])


def _cached_graph(folder: Path, sha: str):
    """``(graph bytes, session)`` of the cached graph when it is stamped with ``sha``, else None."""
    path = folder / ONNX_FILE
    if not path.exists():
        return None
    blob = path.read_bytes()
    try:
        session = _session(blob)
    except Exception as e:  # noqa: BLE001 - an unreadable cache is exported again
        log.warning("%s unreadable (%s); exporting again", path, e)
        return None
    return (blob, session) if session.get_modelmeta().custom_metadata_map.get(STAMP_KEY) == sha else None


def _write_cache(folder: Path, blob: bytes) -> None:
    tmp = folder / f".{ONNX_FILE}.tmp{os.getpid()}"
    try:
        tmp.write_bytes(blob)
        os.replace(tmp, folder / ONNX_FILE)
    except OSError as e:  # a read-only registry: export in memory at every load
        log.info("cannot cache %s in %s (%s); the graph is kept in memory", ONNX_FILE, folder, e)
        tmp.unlink(missing_ok=True)


def onnx_runtime(loaded: LoadedModel) -> Runtime:
    """ONNX Runtime on the model's exported graph, checked against PyTorch (raises when they disagree)."""
    model = loaded.model.eval()
    width = len(loaded.spec.scene)
    sha = _weights_sha(loaded.folder)
    names = input_names(model)
    probe = probe_batch(model, width)
    cached = _cached_graph(loaded.folder, sha)
    if cached is not None:
        session = cached[1]
        gap = _gap(model, session, names, probe)
        if gap <= PARITY_TOL:
            return _runner(session, names)
        log.info("cached %s fails the check (%.2e); exporting again", ONNX_FILE, gap)
    blob = export_onnx(model, probe_batch(model, width, 8), {STAMP_KEY: sha})
    session = _session(blob)
    gap = _gap(model, session, names, probe)
    if not gap <= PARITY_TOL:
        raise RuntimeError(f"ONNX Runtime differs from PyTorch by {gap:.2e} > {PARITY_TOL:g} on a probe batch")
    _write_cache(loaded.folder, blob)
    return _runner(session, names)


def _runner(session, names: list[str]) -> Runtime:
    def run(batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        p_ctr, p_ctcvr = session.run(None, {k: batch[k].numpy() for k in names})
        return p_ctr, p_ctcvr

    return run


def _gap(model: nn.Module, session, names: list[str], probe: dict[str, torch.Tensor]) -> float:
    """Largest |ONNX Runtime - PyTorch| of pCTR and pCTCVR on the probe batch and on its first row alone;
    NaN (which fails every ``<=`` check) when an output is not finite."""
    run = _runner(session, names)
    gaps = [np.abs(w - g) for rows in (probe, {k: v[:1] for k, v in probe.items()})
            for w, g in zip(predict(model, [rows]), run(rows), strict=True)]
    return float(np.max(np.concatenate(gaps)))  # NaN anywhere propagates


def build_runtime(loaded: LoadedModel, kind: str) -> tuple[Runtime, str]:
    """``(runtime, what it is)``: ``kind`` ``onnx`` falls back to ``torch`` (and says why) when the export,
    ONNX Runtime or the parity check fails."""
    if kind not in RUNTIMES:
        raise ValueError(f"runtime {kind!r}: choose one of {', '.join(RUNTIMES)}")
    if kind == "onnx":
        try:
            return onnx_runtime(loaded), "onnx"
        except Exception as e:  # noqa: BLE001 - any failure here costs speed, never the service
            log.warning("ONNX Runtime unavailable for %s (%s: %s); serving with PyTorch", loaded.folder,
                        type(e).__name__, e)
            return torch_runtime(loaded), f"torch (onnx failed: {type(e).__name__}: {e})"
    return torch_runtime(loaded), "torch"
