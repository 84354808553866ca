"""Scoring service latency: LARR (no LLM on the request path) vs the LLM-in-the-loop path, SQLite vs Redis.

Starts ``larr serve`` as a separate process per online store (one worker, one torch thread), then loads it
from this process over loopback at low concurrency: ``--requests`` requests per path, each with
``--candidates`` candidates made from real test-day log requests, bounded by ``--seconds`` per path.
Prints p50/p99 latency and requests/s per (store, path), their ratios, and writes JSON.

    bash benchmarks/serving_world.sh runs/bench/serving_world   # the tiny world, ~10 min
    .venv/bin/python -m benchmarks.serving --data runs/bench/serving_world/data --run runs/bench/serving_world/run \
        --redis 127.0.0.1:6379

``--run`` holds ``registry/`` (a champion) and ``llm/cpt/model`` (the CPT backbone of the LLM path); ``--data`` the raw
world with ``jobs/`` and ``features/`` (serving views exported, see ``larr features publish``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from larr import feature_store as fsx
from larr.spec import load_spec
from serving.example import requests_from_log

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(args: argparse.Namespace, repo: Path, port: int, runtime: str = "onnx") -> subprocess.Popen:
    cmd = [str(Path(sys.executable).parent / "larr"), "serve", "--registry", str(args.run / "registry"),
           "--repo", str(repo), "--port", str(port), "--llm-backbone", str(args.run / "llm" / "cpt" / "model"),
           "--scene-vocab", str(args.data / "jobs" / "scene_vocab"), "--reload-seconds", "0",
           "--max-state-age-s", str(10 ** 9), "--runtime", runtime]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    end = time.monotonic() + 180
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"larr serve exited: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("larr serve did not become ready in 180 s")


def _load(url: str, bodies: list[dict], path: str, n: int, seconds: float) -> dict[str, float]:
    lat = []
    with httpx.Client(base_url=url, timeout=120) as c:
        for i in range(3):  # warm-up
            c.post("/score", params={"path": path}, json=bodies[i % len(bodies)])
        t_end = time.monotonic() + seconds
        t0 = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            r = c.post("/score", params={"path": path}, json=bodies[i % len(bodies)])
            lat.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise SystemExit(f"{path}: HTTP {r.status_code}: {r.text[:500]}")
            if time.monotonic() > t_end:
                break
        wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {"requests": len(lat), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "requests_per_s": len(lat) / wall}


def _stages(args: argparse.Namespace, repo: Path, bodies: list[dict], n: int = 50,
            runtime: str = "onnx") -> dict[str, float]:
    """p50 ms of each stage of one LARR request, in this process (one torch thread): request validation,
    the Feast read, assembly, the model (on ``runtime``); what the HTTP figures are made of."""
    import torch

    from serving.request import request_models
    from serving.scorer import Scorer

    torch.set_num_threads(1)
    scorer = Scorer(args.run / "registry", repo, reload_seconds=0, runtime=runtime)
    request_model, _ = request_models(scorer.spec)
    times: dict[str, list[float]] = {"validate": [], "feast_read": [], "assemble": [], "model": []}
    for i in range(n + 5):
        t0 = time.perf_counter()
        q = request_model(**bodies[i % len(bodies)])
        t1 = time.perf_counter()
        online = scorer.reader.read(q.user_id, [c.id for c in q.candidates], q.context.region_id)
        t2 = time.perf_counter()
        a = scorer.slot.assembler.assemble(q, online)
        t3 = time.perf_counter()
        a.batch.pop("scene_keys", None)
        scorer.slot.runtime(a.batch)
        t4 = time.perf_counter()
        if i >= 5:  # warm-up
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                times[k].append(v * 1000)
    return {f"{k}_p50_ms": float(np.median(v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--redis", help="host:port of a Redis server (also measure the Redis online store)")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--llm-requests", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--runtimes", nargs="+", choices=["onnx", "torch"], default=["onnx", "torch"],
                    help="how the service runs the CTR model (`larr serve --runtime`); each gets its own server "
                         "process, one after the other (default both: onnx, the default, then torch)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "serving.json")
    args = ap.parse_args(argv)
    spec = load_spec()
    day = sorted(p.name.split("=", 1)[1] for p in (args.data / spec.log.table).glob("date=*"))[-1]
    log = pd.read_parquet(args.data / spec.log.table / f"date={day}")
    bodies = requests_from_log(log, spec)
    pool = [c for b in bodies for c in b["candidates"]]
    for i, b in enumerate(bodies):  # pad every request to --candidates real candidates of the day
        b["candidates"] = (b["candidates"] + pool[i * 7:])[:args.candidates]
    stores = [("sqlite", "")] + ([("redis", args.redis)] if args.redis else [])
    rows = []
    stages: dict[str, dict[str, float]] = {}
    for store, addr in stores:
        repo = fsx.prepare_repo(args.run / f"bench_repo_{store}", args.data / "features", online=store,
                                project="bench_serving", **({"redis": addr} if addr else {}))
        fsx.apply(repo)
        fsx.materialize(repo, datetime.fromisoformat(day) - timedelta(days=40), datetime.fromisoformat(day)
                        + timedelta(days=1))
        for runtime in args.runtimes:
            port = _port()
            proc = _serve(args, repo, port, runtime)
            try:
                paths = [("larr", args.requests)] + ([("llm", args.llm_requests)] if runtime == args.runtimes[0] else [])
                for path, n in paths:
                    r = _load(f"http://127.0.0.1:{port}", bodies, path, n, args.seconds)
                    rows.append({"store": store, "path": path, "runtime": runtime if path == "larr" else "torch",
                                 "candidates": args.candidates, **r})
            finally:
                proc.terminate()
                proc.wait(30)
            stages[f"{store}/{runtime}"] = _stages(args, repo, bodies, runtime=runtime)
    print(f"{'store':8} {'path':5} {'model on':8} {'requests':>8} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>8}")
    for r in rows:
        print(f"{r['store']:8} {r['path']:5} {r['runtime']:8} {r['requests']:8d} {r['p50_ms']:9.1f} "
              f"{r['p99_ms']:9.1f} {r['requests_per_s']:8.2f}")
    ratios = {}
    for store, _ in stores:
        b = next(r for r in rows if r["store"] == store and r["path"] == "llm")
        for runtime in args.runtimes:
            a = next(r for r in rows if r["store"] == store and r["path"] == "larr" and r["runtime"] == runtime)
            key = f"{store}/{runtime}"
            ratios[key] = {"p50_llm_over_larr": b["p50_ms"] / a["p50_ms"],
                           "p99_llm_over_larr": b["p99_ms"] / a["p99_ms"]}
            print(f"{key}: LLM-in-the-loop / LARR latency: p50 {ratios[key]['p50_llm_over_larr']:.1f}x, "
                  f"p99 {ratios[key]['p99_llm_over_larr']:.1f}x")
    for key, st in stages.items():
        print(f"{key}: LARR in-process p50: " + ", ".join(f"{k[:-7]} {v:.1f} ms" for k, v in st.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "ratios": ratios, "stages": stages, "day": day,
                                    "config": {k: str(v) for k, v in vars(args).items()}}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
