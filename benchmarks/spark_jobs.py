"""Spark job throughput and cost growth: rows/s per job on the `small` world at 1x, 2x and 4x data.

Scaling multiplies users (and so impressions, orders and pairs) on the same
machine and the same Spark settings; the time ratios show how cost grows with
data (close to linear is the goal).  All scales run in one process, one Spark
session, side by side.

    .venv/bin/python -m benchmarks.spark_jobs [--scales 1 2 4] [--out runs/bench/spark_jobs.json]

Prints a table and writes JSON (with the config of every scale beside it).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from larr.config import config_to_dict, load_config
from larr.world.generate import generate_world
from spark_jobs import JOBS, contrastive_pairs, cpt_corpus, ctr_samples, scene_vocab
from spark_jobs.common import spark_session

MODULES = {m.NAME: m for m in (cpt_corpus, contrastive_pairs, scene_vocab, ctr_samples)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="small")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--out", default="runs/bench/spark_jobs.json")
    args = ap.parse_args()
    base = load_config(args.profile)
    spark = spark_session(base, "larr-bench")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: JVM, Python workers and code paths, not timed
        warm = load_config("tiny")
        generate_world(warm, Path(tmp) / "warm", progress=False)
        for name in JOBS:
            MODULES[name].run(spark, warm, Path(tmp) / "warm", Path(tmp) / "warm_out", validate=False)
        for scale in args.scales:
            cfg = load_config(args.profile, overrides=[f"world.n_users={base.world.n_users * scale}"])
            raw = Path(tmp) / f"raw_{scale}"
            m = generate_world(cfg, raw, progress=False)
            for name in JOBS:
                t0 = time.perf_counter()
                man = MODULES[name].run(spark, cfg, raw, Path(tmp) / f"out_{scale}", validate=False)
                sec = time.perf_counter() - t0
                rows.append({"scale": scale, "job": name, "impressions": m["rows"]["impressions"],
                             "rows_out": sum(man["rows_out"].values()), "seconds": round(sec, 2),
                             "impressions_per_second": round(m["rows"]["impressions"] / sec, 1),
                             "config": config_to_dict(cfg)})
    spark.stop()
    by = {(r["scale"], r["job"]): r for r in rows}
    print(f"{'job':<18} {'scale':>5} {'impressions':>12} {'rows out':>10} {'seconds':>8} {'imp/s':>10} {'time vs 1x':>10}")
    for r in rows:
        ratio = r["seconds"] / by[(args.scales[0], r["job"])]["seconds"]
        r["time_vs_first_scale"] = round(ratio, 2)
        print(f"{r['job']:<18} {r['scale']:>5} {r['impressions']:>12,} {r['rows_out']:>10,} {r['seconds']:>8.1f} "
              f"{r['impressions_per_second']:>10,.0f} {ratio:>10.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": __import__("os").cpu_count(),
                               "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
