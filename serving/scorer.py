"""The scorer: the champion model of a registry (or one model folder), hot-reloaded, plus the online reader.

Worker model: one process holds one model in memory and runs it on the CPU with one torch thread;
FastAPI runs the (synchronous) scoring handler in its thread pool, so requests overlap on the online-store
read while the model call itself is short.  More throughput = more worker processes (``larr serve
--workers N``), each with its own model copy (a model is a few MB: vocabularies, id tables, scene vectors).

Hot reload: a background thread polls the registry's ``champion.json``; a new version is loaded completely
beside the current one and then swapped in by one reference assignment.  A request takes the reference once
at its start, so in-flight requests finish on the model they started with and none fails or waits.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from larr import registry as reg
from larr.ctr.artifact import LoadedModel, load_model
from larr.feature_store import SCENE_LOOKUPS
from larr.spec import Spec
from serving.assemble import Assembled, Assembler
from serving.online import BadRequest, OnlineReader
from serving.request import ScoreResponse
from serving.runtime import Runtime, build_runtime

log = logging.getLogger("larr.serve")


class NoModel(RuntimeError):
    """No model to serve yet (empty registry); the service stays up and not ready."""


@dataclass
class Slot:
    """One loaded model version, its assembler and the runtime that runs it (immutable once built; swapped
    whole)."""

    version: str
    model: LoadedModel
    assembler: Assembler
    runtime: Runtime
    runtime_name: str  # "onnx", "torch", or "torch (onnx failed: ...)"


def _version_dir(source: Path) -> tuple[str, Path]:
    """``(version, folder)``: the champion of a registry, or a model folder itself."""
    if (source / "champion.json").exists() or (source / "versions").exists():
        c = reg.champion(source)
        if c is None:
            raise NoModel(f"registry {source} has no champion yet: publish one with `larr registry offer` "
                          "or `larr models publish`")
        return c["version"], source / "versions" / c["version"]
    if (source / "model.json").exists():
        return reg.version_of(source), source
    raise NoModel(f"{source} is neither a model registry (champion.json) nor a model folder (model.json)")


class Scorer:
    """Scores requests with the current model; ``source`` is a registry folder or one model folder."""

    def __init__(self, source: Path, repo: Path, spec: Spec | None = None, max_state_age_s: float = 7200.0,
                 reload_seconds: float = 5.0, llm_backbone: Path | None = None, scene_vocab: Path | None = None,
                 item_refresh_s: float = 300.0, runtime: str = "onnx"):
        self.source, self.repo = Path(source), Path(repo)
        self.runtime = runtime
        self.item_refresh_s = item_refresh_s
        self.max_state_age_s = max_state_age_s
        self.reload_seconds = reload_seconds
        self.slot: Slot | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watching = False
        self.spec = spec
        self.reader: OnlineReader | None = None
        self.llm = _LlmPath(llm_backbone, scene_vocab) if llm_backbone is not None else None
        self.reload()

    # ----- lifecycle
    def reload(self) -> bool:
        """Load the champion if it changed; True when a new version was swapped in."""
        with self._lock:
            try:
                version, folder = _version_dir(self.source)
            except NoModel as e:
                self.last_error = str(e)
                return False
            if self.slot is not None and self.slot.version == version:
                return False
            m = load_model(folder, self.spec)
            lookups = folder / "features" / SCENE_LOOKUPS
            if not lookups.exists() and m.meta.get("scene_table"):
                lookups = Path(m.meta["scene_table"]) / SCENE_LOOKUPS
            run, run_name = build_runtime(m, self.runtime)
            slot = Slot(version, m, Assembler(m, lookups, self.max_state_age_s), run, run_name)
            if self.reader is None:
                self.spec = m.spec
                self.reader = OnlineReader(self.repo, m.spec, self.item_refresh_s)
                self.reader.items.try_refresh()
                if self._watching:  # the first model came after start-up: its cache refreshes too
                    self.reader.items.start(self._stop)
            self.slot = slot  # one assignment: requests in flight keep the slot they took
            self.last_error = None
            log.info("serving model version %s (%s, runtime %s) from %s", version, m.kind, run_name, folder)
            return True

    def start_watching(self) -> None:
        self._watching = True
        if self.reader is not None:
            self.reader.items.start(self._stop)
        if self._thread is None and self.reload_seconds > 0:
            self._thread = threading.Thread(target=self._watch, name="larr-model-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            try:
                self.reload()
            except Exception as e:  # noqa: BLE001 - a broken new version must not take the service down
                self.last_error = f"reload failed, still serving {self.slot.version if self.slot else None}: {e}"
                log.error(self.last_error)

    # ----- scoring
    def score(self, request: Any, path: str = "larr") -> tuple[ScoreResponse, Assembled]:
        slot = self.slot
        if slot is None or self.reader is None:
            raise NoModel(self.last_error or "no model loaded")
        s = slot.model.spec
        rt_key = getattr(request.context, s.realtime.key, None) if s.realtime else None
        online = self.reader.read(request.user_id, [c.id for c in request.candidates], rt_key)
        a = slot.assembler.assemble(request, online)
        if path == "llm":
            if self.llm is None:
                raise BadRequest("the LLM-in-the-loop path is off: start `larr serve` with --llm-backbone DIR")
            p_ctr, p_ctcvr = self.llm.score(a.batch["scene_keys"].numpy())
        else:
            a.batch.pop("scene_keys", None)
            p_ctr, p_ctcvr = slot.runtime(a.batch)
        if not (np.isfinite(p_ctr).all() and np.isfinite(p_ctcvr).all()):  # never a null score in a 200
            raise RuntimeError(f"model version {slot.version} returned a non-finite score for this request")
        conv = s.has_conversion
        key = p_ctcvr if request.sort_by == "p_ctcvr" and conv else p_ctr
        ctr, ctcvr = p_ctr.tolist(), p_ctcvr.tolist() if conv else None
        cands = request.candidates
        # plain dicts validated in one call by pydantic-core, not one pydantic object built per candidate
        scored = [{"id": cands[i].id, "p_ctr": ctr[i], "p_ctcvr": ctcvr[i] if conv else None,
                   "fallbacks": a.per_candidate[i]}
                  for i in np.argsort(-np.asarray(key, dtype=np.float64), kind="stable").tolist()]
        resp = ScoreResponse.model_validate({"model_version": slot.version, "path": path, "scores": scored,
                                             "fallbacks": a.fallbacks})
        return resp, a


class _LlmPath:
    """The P5-style baseline on the request path: the impression's N field texts concatenated and one LLM
    forward pass per candidate (:class:`larr.ctr.p5.P5Classifier`).  It reads the same scene keys LARR
    looks vectors up with, turned back into their texts (the ``scene_vocab`` job's output).  Its head is
    the classifier's fresh head unless trained weights are given: this path exists to measure cost."""

    def __init__(self, backbone: Path, scene_vocab: Path | None):
        import pandas as pd

        from larr.ctr.p5 import P5Classifier

        if scene_vocab is None:
            raise ValueError("--llm-backbone needs --scene-vocab (the scene_vocab job's output folder)")
        self.model = P5Classifier(backbone).eval()
        df = pd.read_parquet(scene_vocab, columns=["key", "text"]).drop_duplicates("key")
        self.text = dict(zip(df["key"].to_numpy().tolist(), df["text"].tolist(), strict=True))

    def score(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        texts = ["".join(self.text.get(int(k), "") for k in row) for row in keys]
        return self.model.score(texts, batch_size=len(texts))


def wait_ready(scorer: Scorer, seconds: float) -> bool:
    """Poll until a model is loaded (tests, start-up scripts)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if scorer.slot is not None:
            return True
        scorer.reload()
        time.sleep(0.2)
    return scorer.slot is not None
