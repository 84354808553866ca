"""Spark embedding rate against in-process encoding, per core, on the scene vocabulary of `small`.

Sides, run in alternating turns (every round runs each side once, each in a fresh child process, so that
whatever else loads the machine hits all of them alike; medians over ``--rounds``):

* ``inproc1`` / ``inproc2``: ``TextEncoder.encode`` in one process with torch threads 1 (the per-core rate) and
  2, batch ``llm.encode_batch_size``;
* ``spark``: the job's own embedding step (:func:`spark_jobs.embed_features.embed_texts`) in a session made by
  :func:`spark_jobs.common.spark_session` on ``local[W]`` with W Python workers; only the embedding stage is
  timed (session up, input cached), into Spark's ``noop`` sink; the cold first pass over 128W texts
  (Python workers start, import torch and load the model) is reported separately;
* ``before`` (with ``--before REV``): the same Spark measurement with the code of git revision REV (a
  detached worktree on PYTHONPATH); a revision without ``embed_texts`` gets its exact settings replicated:
  ``repartition(max(1, min(W, n // 64 + 1)))``, ``mapInPandas`` with its ``_embed_fn``, 1 torch thread per
  worker.

Per worker = total rate / W; the ratio is per worker / in-process at 1 thread.

    .venv/bin/python -m benchmarks.embedding [--rounds 3] [--workers 2] [--before 1e42c55]
        [--data data/small] [--encoder runs/small/llm/encoder] [--out runs/bench/embedding.json]

Prints a table and writes JSON (with the arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _vocab(data: Path) -> list[str]:
    import pandas as pd

    parts = sorted((data / "jobs" / "scene_vocab").glob("ds=*"))
    if not parts:
        raise SystemExit(f"{data}/jobs/scene_vocab has no ds= partition: run `larr spark scene_vocab` first")
    return pd.read_parquet(parts[-1], columns=["text"])["text"].tolist()


def _child_inproc(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from larr.config import load_config
    from larr.llm.encoder import TextEncoder

    batch = load_config(args.profile).llm.encode_batch_size
    texts = _vocab(Path(args.data))
    t0 = time.perf_counter()
    enc = TextEncoder.load(args.encoder, device="cpu")
    enc.encode(texts[:batch], batch)
    load = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    enc.encode(texts, batch)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"texts": len(texts), "seconds": sec, "cpu_seconds": cpu, "load_seconds": load, "threads": args.threads,
            "batch": batch}


def _worker_cpu(name: str = "pyspark.daemon") -> dict[int, float]:
    """CPU seconds so far of every descendant process of this driver whose command line holds ``name``: the
    Python workers (pyspark.daemon and its forks) or the JVM (java)."""
    import psutil

    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            if name in " ".join(p.cmdline()):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _child_spark(args: argparse.Namespace) -> dict:

    from larr.config import load_config
    from spark_jobs import embed_features as ef
    from spark_jobs.common import spark_session

    cfg = load_config(args.profile, overrides=[f"spark.master=local[{args.workers}]"])
    batch = cfg.llm.encode_batch_size
    spark = spark_session(cfg, "larr-bench-embedding")
    parts = sorted((Path(args.data) / "jobs" / "scene_vocab").glob("ds=*"))
    texts = spark.read.parquet(str(parts[-1])).select("text").withColumn("text_hash", ef._hash_col("text"))
    texts = texts.select("text_hash", "text").cache()
    n = texts.count()
    warm_in = texts.limit(128 * args.workers).cache()  # a task per worker: every worker loads the model
    warm_in.count()
    if hasattr(ef, "embed_texts"):
        def embed(df, k):
            return ef.embed_texts(df, args.encoder, batch, args.workers, n=k)
        path = "embed_texts"
    else:  # the revision's exact settings, inlined from its run()
        def embed(df, k):
            return df.repartition(max(1, min(args.workers, k // 64 + 1))).mapInPandas(
                ef._embed_fn(str(Path(args.encoder).resolve()), batch, 1 if args.workers > 1 else 0),
                ef.EMB_SCHEMA)
        path = "inlined run() settings"
    t0 = time.perf_counter()
    embed(warm_in, 128 * args.workers).write.format("noop").mode("overwrite").save()
    cold = time.perf_counter() - t0
    cpu0, jvm0 = _worker_cpu(), _worker_cpu("java")
    t0 = time.perf_counter()
    out = embed(texts, n)
    out.write.format("noop").mode("overwrite").save()
    sec = time.perf_counter() - t0
    cpu = sum(c - cpu0.get(pid, 0.0) for pid, c in _worker_cpu().items())
    jvm = sum(c - jvm0.get(pid, 0.0) for pid, c in _worker_cpu("java").items())
    conf = {k: spark.conf.get(k, None) for k in ("spark.sql.execution.arrow.maxRecordsPerBatch",
                                                 "spark.master", "spark.python.worker.reuse")}
    spark.stop()
    return {"texts": n, "seconds": sec, "cpu_seconds": cpu, "jvm_cpu_seconds": jvm, "load_seconds": cold, "workers": args.workers, "batch": batch,
            "path": path, "conf": conf}


def _run_child(side: str, args: argparse.Namespace, worktree: Path | None) -> dict:
    env = dict(os.environ)
    if worktree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(worktree), *filter(None, [env.get("PYTHONPATH")])])
    kind, threads = ("inproc", side[-1]) if side.startswith("inproc") else ("spark", "1")
    cmd = [sys.executable, "-P", str(Path(__file__).resolve()), "--child", kind, "--threads", threads,
           "--workers", str(args.workers), "--data", str(Path(args.data).resolve()),
           "--encoder", str(Path(args.encoder).resolve()), "--profile", args.profile]
    # -P: not this folder first on sys.path (benchmarks/spark_jobs.py would shadow the package)
    r = subprocess.run(cmd, env=env, cwd=str(worktree or ROOT), capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{side} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/small")
    ap.add_argument("--encoder", default="runs/small/llm/encoder")
    ap.add_argument("--profile", default="small")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--before", default="1e42c55", help="git revision of the 'before' Spark side ('' to skip)")
    ap.add_argument("--out", default="runs/bench/embedding.json")
    ap.add_argument("--child", choices=("inproc", "spark"), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps((_child_inproc if args.child == "inproc" else _child_spark)(args)))
        return

    sides = ["inproc1", "inproc2", "spark"] + (["before"] if args.before else [])
    tmp = Path(tempfile.mkdtemp(prefix="larr-embed-bench-"))
    worktree = tmp / "before"
    if args.before:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.before],
                       check=True, capture_output=True)
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    load_before = os.getloadavg()  # what else ran on the machine: the ratio is only as clean as the machine
    try:
        for rnd in range(args.rounds):
            order = sides if rnd % 2 == 0 else sides[::-1]  # alternate who goes first
            for side in order:
                r = _run_child(side, args, worktree if side == "before" else None)
                r["rate"] = r["texts"] / r["seconds"]
                runs[side].append(r)
                print(f"round {rnd + 1} {side:<8} {r['rate']:>8,.0f} texts/s", file=sys.stderr, flush=True)
    finally:
        if args.before:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    per_core = statistics.median(r["rate"] for r in runs["inproc1"])
    rows = {}
    for side in sides:
        rate = statistics.median(r["rate"] for r in runs[side])
        units = args.workers if side in ("spark", "before") else 1
        rows[side] = {"texts": runs[side][0]["texts"], "texts_per_second": round(rate, 1),
                      "per_worker_or_core": round(rate / units, 1),
                      "ratio_to_inproc_1_thread": round(rate / units / per_core, 2),
                      "texts_per_cpu_second": round(statistics.median(r["texts"] / r["cpu_seconds"]
                                                                      for r in runs[side]), 1),
                      "load_seconds": round(statistics.median(r["load_seconds"] for r in runs[side]), 2),
                      "rates": [round(r["rate"], 1) for r in runs[side]]}
    # the same ratio within each round (the sides of a round ran minutes apart, not hours): its spread is the noise
    round_ratios = {side: [round(r["rate"] / args.workers / i["rate"], 2)
                           for r, i in zip(runs[side], runs["inproc1"], strict=True)]
                    for side in sides if side in ("spark", "before")}
    labels = {"inproc1": "in-process, 1 torch thread", "inproc2": "in-process, 2 torch threads",
              "spark": f"Spark local[{args.workers}], {args.workers} workers (this tree)",
              "before": f"Spark local[{args.workers}], {args.workers} workers ({args.before})"}
    print(f"{'side':<48} {'texts/s':>8} {'per worker':>10} {'vs 1-thread':>11} {'per CPU-s':>9} {'load s':>7}")
    for side, r in rows.items():
        per = f"{r['per_worker_or_core']:,.0f}" if side in ("spark", "before") else "-"
        print(f"{labels[side]:<48} {r['texts_per_second']:>8,.0f} {per:>10} {r['ratio_to_inproc_1_thread']:>11.2f} "
              f"{r['texts_per_cpu_second']:>9,.0f} {r['load_seconds']:>7.1f}")
    print(f"{rows['inproc1']['texts']} texts; medians of {args.rounds} alternating rounds; per CPU-s: texts per CPU "
          f"second of the encoding process(es), Python workers only for Spark; load s: in-process model load + first "
          f"batch, Spark cold pass over {128 * args.workers} texts (workers start, import, load)")
    load_after = os.getloadavg()
    for side, ratios in round_ratios.items():
        print(f"{labels[side]}: per-worker ratio round by round {ratios}")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "args": {
        k: v for k, v in vars(args).items() if k not in ("child", "threads")}, "labels": labels, "results": rows,
        "round_ratios": round_ratios, "loadavg_before": load_before, "loadavg_after": load_after,
        "runs": runs}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
