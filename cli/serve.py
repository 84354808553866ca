"""``larr serve`` (the scoring service), ``larr score`` (one request from a real log row, printed) and
``larr models publish`` (put a trained model folder into a registry by hand)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from larr.config import ConfigError

SETTINGS_ENV = "LARR_SERVE_SETTINGS"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the scoring service (FastAPI + uvicorn) on the champion model and Feast",
        description="POST /score scores 1..500 candidates for a user in a request context: online features "
                    "from the Feast repo's online store, scene vectors in memory, the CTR model on the CPU, no "
                    "LLM on the request path. GET /healthz, /readyz (model loaded and online store reachable), "
                    "/metrics (Prometheus), /docs (OpenAPI). A newer champion in the registry is loaded and "
                    "swapped in without failing requests in flight.",
        epilog="Worker model: one process, one torch thread, requests overlap in the thread pool; --workers N "
               "starts N processes, each with its own model copy.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--registry", help="model registry folder (serves its champion, hot-reloads a new one)")
    src.add_argument("--model", help="one model folder (`larr ctr train --out`)")
    p.add_argument("--repo", required=True, help="Feast repo folder (feature_store.yaml) of the online store")
    p.add_argument("--spec", help="feature spec (default: the model's own)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--max-state-age-s", type=float, default=7200.0,
                   help="real-time scene state older than this falls back to the request context (default 2 h)")
    p.add_argument("--reload-seconds", type=float, default=5.0,
                   help="how often the registry's champion pointer is checked (0: never)")
    p.add_argument("--item-refresh-s", type=float, default=300.0,
                   help="how often the in-memory copy of the items' online rows (statistics, profile) is "
                        "re-read from the store (default 5 min; 0: only at start-up)")
    p.add_argument("--llm-backbone", help="enable the LLM-in-the-loop path (?path=llm): a backbone folder, "
                                          "e.g. RUN/llm/cpt (benchmarks only)")
    p.add_argument("--scene-vocab", help="scene_vocab job output (texts of the scene keys) for the LLM path")
    p.add_argument("--runtime", default="onnx", choices=["onnx", "torch"],
                   help="how the CTR model runs: onnx (default: the loaded weights exported to ONNX and run by "
                        "ONNX Runtime, checked against PyTorch at every load; the graph is cached as model.onnx "
                        "beside model.pt) or torch (eager PyTorch). A failed export or check falls back to "
                        "torch and /readyz says why")
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("score", help="send one scoring request made from a real log request and print the reply",
                       description="Takes a request of the log (the last day by default: its user, its shown "
                                   "items as candidates, its context), posts it to a running `larr serve` and "
                                   "prints the request and the response.")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="service base URL")
    p.add_argument("--raw", required=True, help="raw data folder (the log)")
    p.add_argument("--date", help="log day to take the request from (default: the last)")
    p.add_argument("--spec", default="food_delivery", help="feature spec of the log")
    p.add_argument("--path", default="larr", choices=["larr", "llm"])
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for /readyz first (default 0)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("models", help="publish a trained model folder into a registry (no comparison)",
                       description="publish: copy a `larr ctr train --out` / `python -m training.ctr --save` "
                                   "folder, with its scene-value table and serving lookups, into REGISTRY as a new "
                                   "version and make it the champion. The training DAG uses `larr registry "
                                   "offer`, which publishes only a challenger that wins.")
    p.add_argument("action", choices=["publish"])
    p.add_argument("--registry", required=True)
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--features", help="folder with scene_value_embeddings.parquet and scene_lookups.parquet "
                                      "(default: the one the model was trained with)")
    p.add_argument("--encoder", help="encoder folder to keep beside the version")
    p.set_defaults(func=cmd_models)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = {"source": args.registry or args.model, "repo": args.repo, "spec": args.spec,
                "max_state_age_s": args.max_state_age_s, "reload_seconds": args.reload_seconds,
                "item_refresh_s": args.item_refresh_s, "runtime": args.runtime,
                "llm_backbone": args.llm_backbone, "scene_vocab": args.scene_vocab}
    for name in ("source", "repo"):
        if not Path(settings[name]).exists():
            raise FileNotFoundError(f"--{'registry/--model' if name == 'source' else name} {settings[name]}: "
                                    "no such folder")
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    print(f"larr serve: http://{args.host}:{args.port} (docs at /docs), {args.workers} worker(s)", file=sys.stderr)
    uvicorn.run("serving.app:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    import httpx

    from larr.spec import load_spec
    from serving.example import request_from_log

    body = request_from_log(Path(args.raw), load_spec(args.spec), args.date)
    end = time.monotonic() + args.wait
    while True:
        try:
            if httpx.get(f"{args.url}/readyz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() >= end:
            raise ConfigError(f"{args.url} is not ready (GET /readyz); start it with `larr serve` or pass --wait")
        time.sleep(1)
    r = httpx.post(f"{args.url}/score", params={"path": args.path}, json=body, timeout=60)
    print(json.dumps({"request": body, "status": r.status_code, "response": r.json()}, indent=2))
    return 0 if r.status_code == 200 else 1


def cmd_models(args: argparse.Namespace) -> int:
    from larr import registry as reg
    from larr.ctr.artifact import load_model

    model = Path(args.model)
    reg.check_candidate(model) if (model / "metrics.json").exists() else None
    m = load_model(model)  # refuses an incomplete folder with the reason
    features = Path(args.features) if args.features else (Path(m.meta["scene_table"]) if m.meta.get("scene_table")
                                                          else None)
    if features is not None and not (features / "scene_value_embeddings.parquet").exists():
        raise ConfigError(f"--features {features}: no scene_value_embeddings.parquet there")
    version = reg.version_of(model)
    registry = Path(args.registry)
    reg.publish(registry, model, version, Path(args.encoder) if args.encoder else None, features)
    reg.record(registry, reg.Decision(candidate=str(model), version=version, metric="none", valid_days=[],
                                      candidate_score=float("nan"), champion_version=None, champion_score=None,
                                      published=True, reason="published by hand (`larr models publish`)",
                                      decided_at=reg.now()))
    print(f"published {model} as version {version}; champion of {registry}")
    return 0
