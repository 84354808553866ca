"""Spark jobs at scale: seconds per million impressions of every job on the `small` world at 1x, 4x and 16x data.

Scaling multiplies users (and so impressions, orders and pairs; 16x `small` = 64,000 users, about 6M impressions)
on the same machine and the same Spark settings.  All scales run in one process, one Spark session, side by
side, after an untimed warm-up on `tiny`.  The target (issue 16): the seconds per million impressions of a job
must not grow from the second-largest scale to the largest -- fixed overhead may make small scales dearer, a
plan that grows faster than its input (a skewed join, a repeated scan, a collect to the driver) makes large ones
dearer.  The check allows ``--tolerance`` (default 10%) of timing noise: PASS when s/M(largest) <= (1 + tol) x
s/M(second largest).

With the event log on (default; ``--event-log none`` turns it off) every job runs under the description
``<job>@<scale>x`` and the log, written into a folder of its own under ``--event-log``, is read back by
:mod:`benchmarks.spark_eventlog`: per job and scale the shuffle exchanges and file scans of its plans, the bytes
it read and shuffled, and the bytes its tasks returned to the driver.  The last one is the driver-collection
check: PASS when it grows less than half as fast as the data.

The world of each scale is generated first (timed too: `larr.world.generate` writes the log one (day, user
chunk) at a time and never holds it whole; what it holds is the entity tables, the latents, and the test day's
oracle rows -- one day of the log, so its memory grows with users / n_days).

    .venv/bin/python -m benchmarks.spark_jobs [--profile small] [--scales 1 4 16] [--out runs/bench/spark_jobs.json]

Prints a table and writes JSON (with the config of every scale beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from benchmarks.spark_eventlog import event_log_conf, read_events, summarize
from larr.config import config_to_dict, load_config
from larr.world.generate import generate_world
from spark_jobs import JOBS, contrastive_pairs, cpt_corpus, ctr_samples, scene_vocab
from spark_jobs.common import spark_session

MODULES = {m.NAME: m for m in (cpt_corpus, contrastive_pairs, scene_vocab, ctr_samples)}
PLAN_KEYS = ("sql_executions", "shuffle_exchanges", "broadcast_exchanges", "file_scans", "cached_reads",
             "python_nodes", "input_bytes", "shuffle_write_bytes", "driver_result_bytes", "max_task_result_bytes",
             "spill_bytes", "scans_per_table")


def per_million(seconds: float, impressions: int) -> float:
    return seconds / (impressions / 1e6)


def growth(rows: list[dict], scales: list[int], tolerance: float) -> dict[str, dict]:
    """Per job: s/M and driver bytes of the two largest scales, their ratios and the verdicts."""
    if len(scales) < 2:
        return {}
    a, b = sorted(scales)[-2:]
    by = {(r["scale"], r["job"]): r for r in rows}
    out = {}
    for job in dict.fromkeys(r["job"] for r in rows):
        ra, rb = by[(a, job)], by[(b, job)]
        ratio = rb["seconds_per_million"] / ra["seconds_per_million"]
        g = {"from_scale": a, "to_scale": b, "data_growth": round(rb["impressions"] / ra["impressions"], 2),
             "seconds_per_million": [ra["seconds_per_million"], rb["seconds_per_million"]],
             "seconds_per_million_growth": round(ratio, 3), "tolerance": tolerance,
             "seconds_per_million_verdict": "PASS" if ratio <= 1 + tolerance else "FAIL"}
        if "driver_result_bytes" in ra.get("plan", {}):
            da, db = ra["plan"]["driver_result_bytes"], rb["plan"]["driver_result_bytes"]
            dg = db / max(da, 1)
            g.update({"driver_result_bytes": [da, db], "driver_result_bytes_growth": round(dg, 3),
                      "driver_verdict": "PASS" if dg - 1 <= (g["data_growth"] - 1) / 2 else "FAIL"})
        out[job] = g
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="small")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--tolerance", type=float, default=0.10,
                    help="timing noise allowed on the s/M growth of the two largest scales (default 0.10)")
    ap.add_argument("--out", default="runs/bench/spark_jobs.json")
    ap.add_argument("--event-log", default="runs/bench/spark_events",
                    help="folder for the Spark event log of this run (a new subfolder each run); 'none': off")
    args = ap.parse_args()
    scales = sorted(dict.fromkeys(args.scales))
    base = load_config(args.profile)
    events = None
    if args.event_log != "none":
        events = Path(args.event_log) / time.strftime("%Y%m%d-%H%M%S")
        base.spark.extra_conf.update(event_log_conf(events))
    spark = spark_session(base, "larr-bench")
    sc = spark.sparkContext
    rows, worlds = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: JVM, Python workers and code paths, not timed
        warm = load_config("tiny")
        generate_world(warm, Path(tmp) / "warm", progress=False)
        sc.setJobDescription("warm-up")
        for name in JOBS:
            MODULES[name].run(spark, warm, Path(tmp) / "warm", Path(tmp) / "warm_out", validate=False)
        for scale in scales:
            cfg = load_config(args.profile, overrides=[f"world.n_users={base.world.n_users * scale}"])
            raw = Path(tmp) / f"raw_{scale}"
            t0 = time.perf_counter()
            m = generate_world(cfg, raw, progress=False)
            worlds[scale] = {"users": cfg.world.n_users, "impressions": m["rows"]["impressions"],
                             "orders": m["rows"]["orders"], "generate_seconds": round(time.perf_counter() - t0, 2)}
            for name in JOBS:
                sc.setJobDescription(f"{name}@{scale}x")
                t0 = time.perf_counter()
                man = MODULES[name].run(spark, cfg, raw, Path(tmp) / f"out_{scale}", validate=False)
                sec = time.perf_counter() - t0
                imps = m["rows"]["impressions"]
                rows.append({"scale": scale, "job": name, "impressions": imps,
                             "rows_out": sum(man["rows_out"].values()), "seconds": round(sec, 2),
                             "seconds_per_million": round(per_million(sec, imps), 3),
                             "impressions_per_second": round(imps / sec, 1), "timings": man["timings"],
                             "config": config_to_dict(cfg)})
            sc.setJobDescription(None)
    spark.stop()
    if events is not None:
        plans = summarize(read_events(events))
        for r in rows:
            s = plans.get(f"{r['job']}@{r['scale']}x", {})
            r["plan"] = {k: s[k] for k in PLAN_KEYS if k in s}
    verdicts = growth(rows, scales, args.tolerance)

    print(f"{'job':<18} {'scale':>5} {'impressions':>12} {'rows out':>10} {'seconds':>8} {'s/M imp':>8} "
          f"{'xchg':>5} {'scans':>5} {'shuffle MB':>10} {'driver KB':>9}")
    for r in rows:
        p = r.get("plan", {})
        print(f"{r['job']:<18} {r['scale']:>5} {r['impressions']:>12,} {r['rows_out']:>10,} {r['seconds']:>8.1f} "
              f"{r['seconds_per_million']:>8.2f} {p.get('shuffle_exchanges', '-'):>5} {p.get('file_scans', '-'):>5} "
              f"{p.get('shuffle_write_bytes', 0) / 1e6:>10.1f} {p.get('driver_result_bytes', 0) / 1e3:>9.1f}")
    for scale, w in worlds.items():
        print(f"world {scale:>3}x: {w['users']:,} users, {w['impressions']:,} impressions, "
              f"generated in {w['generate_seconds']:.1f}s")
    ok = True
    for job, g in verdicts.items():
        line = (f"{job:<18} s/M {g['seconds_per_million'][0]:.2f} -> {g['seconds_per_million'][1]:.2f} "
                f"({g['from_scale']}x -> {g['to_scale']}x, data x{g['data_growth']}): "
                f"x{g['seconds_per_million_growth']:.2f}, {g['seconds_per_million_verdict']} "
                f"(does not grow, {args.tolerance:.0%} noise allowed)")
        ok &= g["seconds_per_million_verdict"] == "PASS"
        if "driver_verdict" in g:
            line += f"; driver bytes x{g['driver_result_bytes_growth']:.2f}, {g['driver_verdict']}"
            ok &= g["driver_verdict"] == "PASS"
        print(line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "profile": args.profile,
                               "scales": scales, "tolerance": args.tolerance, "worlds": worlds,
                               "event_log": str(events) if events else None, "growth": verdicts,
                               "verdict": "PASS" if ok else "FAIL", "results": rows}, indent=2) + "\n")
    print(f"{'PASS' if ok else 'FAIL'}; wrote {out}")


if __name__ == "__main__":
    main()
