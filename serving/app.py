"""The scoring service (FastAPI): ``POST /score``, ``GET /healthz``, ``/readyz``, ``/metrics``, OpenAPI at
``/docs`` and ``/openapi.json``.  ``larr serve`` runs it under uvicorn.

Errors a caller can act on are answered, never a crash: a malformed payload is a 422 naming the field
(FastAPI's validation of the spec-derived request model); an online store that cannot be read is a 503 with
the reason for that request, ``/readyz`` turns 503 until a read succeeds again, and the service keeps
running, so it recovers by itself when the store returns.  Prometheus metrics count requests by path and
outcome, fallbacks by input, and time every request.
"""


import collections
import gc
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from larr.spec import Spec, load_spec
from serving.online import BadRequest, StoreUnavailable
from serving.request import ScoreResponse, request_models
from serving.scorer import NoModel, Scorer

log = logging.getLogger("larr.serve")
LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class ServeSettings:
    """What ``larr serve`` starts with (config section ``serving`` plus the command line)."""

    source: Path  # a model registry (champion.json) or one model folder
    repo: Path  # the Feast repo (feature_store.yaml) whose online store is read
    spec: str | None = None  # default: the model's own spec
    max_state_age_s: float = 7200.0
    reload_seconds: float = 5.0
    item_refresh_s: float = 300.0  # how often the in-memory copy of the item rows is re-read from the store
    llm_backbone: Path | None = None
    scene_vocab: Path | None = None
    runtime: str = "onnx"  # how the model runs: "onnx" (ONNX Runtime, checked against PyTorch) or "torch"


class Metrics:
    """Prometheus series of one app (own registry, so several apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("larr_score_requests_total", "score requests by path and outcome",
                                ["path", "outcome"], registry=self.registry)
        self.latency = Histogram("larr_score_latency_seconds", "score request latency (assembly + model)",
                                 ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.fallbacks = Counter("larr_score_fallbacks_total", "inputs that fell back, by input",
                                 ["input"], registry=self.registry)
        self.candidates = Counter("larr_scored_candidates_total", "candidates scored", registry=self.registry)
        self.errors = Counter("larr_score_errors_total", "failed requests by reason", ["reason"],
                              registry=self.registry)


def create_app(settings: ServeSettings, spec: Spec | None = None) -> FastAPI:
    """The app for ``settings``; the request schema comes from ``spec`` (default: the served model's)."""
    scorer = Scorer(settings.source, settings.repo, spec or (load_spec(settings.spec) if settings.spec else None),
                    settings.max_state_age_s, settings.reload_seconds, settings.llm_backbone, settings.scene_vocab,
                    settings.item_refresh_s, settings.runtime)
    spec = scorer.spec or spec or load_spec(settings.spec or "food_delivery")
    ScoreRequest, _ = request_models(spec)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import torch

        torch.set_num_threads(1)  # one torch thread per worker: workers scale across cores
        scorer.start_watching()
        # Everything loaded so far (torch, Feast, the first model, the item cache) lives as long as the
        # process: moved out of the collector's generations once, at start-up, a full collection no longer
        # walks it inside a request.  Not after a hot reload: frozen objects are never collected, and an old
        # version's cycles would leak.
        gc.collect()
        gc.freeze()
        yield
        scorer.stop()

    app = FastAPI(title="larr scoring service", version="1", lifespan=lifespan,
                  description="Scores candidates with the LARR CTR model: online features from Feast, "
                              "scene vectors in memory, no LLM on the request path.")
    app.state.scorer, app.state.metrics = scorer, metrics

    @app.post("/score", response_model=ScoreResponse, responses={503: {"description": "online store down"}})
    def score(req: ScoreRequest, path: str = Query("larr", pattern="^(larr|llm)$",  # type: ignore[valid-type]
                                                   description="llm: the P5-style baseline (benchmarks)")) -> Any:
        t0 = time.perf_counter()
        try:
            resp, _ = scorer.score(req, path)
        except StoreUnavailable as e:
            metrics.requests.labels(path, "store_unavailable").inc()
            metrics.errors.labels("store_unavailable").inc()
            return JSONResponse({"detail": f"cannot score: {e}; retry when /readyz is 200"}, status_code=503)
        except NoModel as e:
            metrics.requests.labels(path, "no_model").inc()
            metrics.errors.labels("no_model").inc()
            return JSONResponse({"detail": str(e)}, status_code=503)
        except BadRequest as e:  # a value the store cannot hold, the LLM path switched off
            metrics.requests.labels(path, "bad_request").inc()
            metrics.errors.labels("bad_request").inc()
            return JSONResponse({"detail": str(e)}, status_code=422)
        metrics.latency.labels(path).observe(time.perf_counter() - t0)
        metrics.requests.labels(path, "ok").inc()
        metrics.candidates.inc(len(resp.scores))
        inputs = collections.Counter(f.split(":", 1)[0] for f in resp.fallbacks)
        inputs.update(f.split(":", 1)[0] for s in resp.scores for f in s.fallbacks)
        for name, k in inputs.items():  # one locked update per input, not one per candidate
            metrics.fallbacks.labels(name).inc(k)
        # serialised by pydantic's own JSON encoder: the response was built from typed values, so FastAPI's
        # second validation of it against ``response_model`` (kept for the OpenAPI schema) is skipped
        return Response(resp.model_dump_json(), media_type="application/json")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up (liveness)."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "no model or online store unreachable"}})
    def readyz() -> Any:
        """A model is loaded and the online store answers a read (readiness)."""
        slot = scorer.slot
        body: dict[str, Any] = {"model_version": slot.version if slot else None}
        if slot is None:
            return JSONResponse({**body, "ready": False, "reason": scorer.last_error}, status_code=503)
        try:
            assert scorer.reader is not None
            scorer.reader.ping()
        except StoreUnavailable as e:
            return JSONResponse({**body, "ready": False, "reason": str(e)}, status_code=503)
        return {**body, "ready": True, "runtime": slot.runtime_name}

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        metrics.errors.labels("internal").inc()
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    return app


def app_from_env() -> FastAPI:
    """The app ``larr serve`` starts in each uvicorn worker (settings passed as JSON in the environment)."""
    import json
    import os

    raw = json.loads(os.environ["LARR_SERVE_SETTINGS"])
    for k in ("source", "repo", "llm_backbone", "scene_vocab"):
        raw[k] = Path(raw[k]) if raw.get(k) else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("feast").setLevel(logging.WARNING)
    return create_app(ServeSettings(**raw))
