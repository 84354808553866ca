"""Feature-store speed: embedding texts/s, online-store write rows/s, and get_online_features latency for one
request of 1 user + 100 POIs + 10 scene values, on SQLite and Redis, side by side in one run.

Needs the outputs of the main job (bash scripts/demo.sh) and a Redis on 127.0.0.1 (scripts/redis.sh start):

    .venv/bin/python -m benchmarks.feature_store [--data data/small] [--run runs/small] [--requests 300]

Prints a table and writes JSON (runs/bench/feature_store.json). Feast's published figure for its Python
feature server is about 125 ms p99 at 100 rows; ours is an in-process SDK call, no HTTP hop.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from larr import feature_store as fsx
from larr.llm.encoder import TextEncoder


def _percentiles(samples: list[float]) -> tuple[float, float]:
    a = np.array(samples) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/small")
    ap.add_argument("--run", default="runs/small")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--redis", default="127.0.0.1:6379")
    ap.add_argument("--out", default="runs/bench/feature_store.json")
    args = ap.parse_args()
    data, run = Path(args.data), Path(args.run)
    features = data / "features"
    if not (features / "poi_embeddings.parquet").exists():
        raise SystemExit(f"{features} has no embeddings: run `bash scripts/demo.sh` first")
    results: dict = {"machine": platform.platform()}

    enc = TextEncoder.load(run / "llm" / "encoder", device="cpu")
    vocab = pd.read_parquet(data / "jobs" / "scene_vocab")["text"].tolist()[:2000]
    enc.encode(vocab[:64])
    t0 = time.perf_counter()
    enc.encode(vocab, 64)
    results["embedding_texts_per_second"] = len(vocab) / (time.perf_counter() - t0)

    pois = pd.read_parquet(features / "poi_embeddings.parquet")
    users = pd.read_parquet(features / "user_embeddings.parquet")
    scene = pd.read_parquet(features / "scene_value_embeddings.parquet")
    window = json.loads((data / "manifest.json").read_text())["window"]
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for online in ("sqlite", "redis"):
            repo = fsx.prepare_repo(Path(tmp) / online, features, online, args.redis)
            fsx.apply(repo)
            fsx.materialize(repo, datetime.fromisoformat(window["start"]) - timedelta(days=1),
                            datetime.fromisoformat(window["end"]) + timedelta(days=1))
            store = fsx.store(repo)
            batch = pois.copy()
            batch["event_timestamp"] = pd.Timestamp.now(tz="UTC")
            t0 = time.perf_counter()
            reps = 3
            for i in range(reps):
                batch["event_timestamp"] = pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=i)
                store.write_to_online_store("poi_embedding", batch)
            write_rps = reps * len(batch) / (time.perf_counter() - t0)
            lat = []
            for i in range(args.requests + 10):
                u = int(users["user_id"].iloc[rng.integers(len(users))])
                p = pois["poi_id"].iloc[rng.choice(len(pois), 100, replace=False)].tolist()
                s = scene["scene_key"].iloc[rng.choice(len(scene), 10, replace=False)].tolist()
                t0 = time.perf_counter()
                store.get_online_features(features=["user_stats:u_ctr", "user_embedding:embedding"],
                                          entity_rows=[{"user_id": u}]).to_dict()
                store.get_online_features(features=["poi_stats:p_ctr", "poi_embedding:embedding"],
                                          entity_rows=[{"poi_id": x} for x in p]).to_dict()
                store.get_online_features(features=["scene_value_embedding:embedding"],
                                          entity_rows=[{"scene_key": x} for x in s]).to_dict()
                if i >= 10:  # warm-up excluded
                    lat.append(time.perf_counter() - t0)
            p50, p99 = _percentiles(lat)
            rows.append({"online_store": online, "write_rows_per_second": round(write_rps, 1),
                         "request_p50_ms": round(p50, 2), "request_p99_ms": round(p99, 2),
                         "requests": args.requests})
    results["stores"] = rows
    print(f"embedding: {results['embedding_texts_per_second']:,.0f} texts/s (CPU, in-process, batch 64)")
    print(f"{'store':<8} {'write rows/s':>13} {'p50 ms':>8} {'p99 ms':>8}   (1 user + 100 POIs + 10 scene values)")
    for r in rows:
        print(f"{r['online_store']:<8} {r['write_rows_per_second']:>13,.0f} {r['request_p50_ms']:>8.1f} "
              f"{r['request_p99_ms']:>8.1f}")
    print("Feast's published Python feature server figure: ~125 ms p99 at 100 rows (HTTP server; ours is in-process).")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
