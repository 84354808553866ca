"""Where one streaming consumer's time goes (issue 16.2): the raw kafka-python consume and the consumer into
Redis, each over the same topic in its own child process under ``cProfile``, self time per event grouped by
where the code lives (the Kafka client, JSON, parsing, merging, the consumer loop, Feast and Redis), and the
consumer's costliest functions.

``benchmarks/streaming.py`` measures the rates; this shows what the consumer adds to the raw consume.  cProfile
slows Python calls (more for code with many small calls), so the shares are what to read, not the absolute
times.  Needs a broker and Redis on 127.0.0.1 and a world (see ``benchmarks/streaming.py``):

    .venv/bin/python -m benchmarks.stream_profile [--raw data/small] [--events 30000]

Prints tables and writes JSON (runs/bench/stream_profile.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.provenance import ROOT, revision
from benchmarks.streaming import _COMMON, _child, _lines

# the profiled part of each child: only the drain (joining the group and the first fetch are outside it)
_PROFILE = """
import cProfile, pstats
def profiled(step, events):
    prof = cProfile.Profile()
    prof.enable()
    got, rate = drain(step, events)
    prof.disable()
    rows = [{"file": f, "line": ln, "function": fn, "calls": nc, "self_s": tt, "cum_s": ct}
            for (f, ln, fn), (cc, nc, tt, ct, _) in pstats.Stats(prof).stats.items()]
    return got, rate, rows
"""

RAW = _COMMON + _PROFILE + """
from kafka import KafkaConsumer
c = KafkaConsumer(a["topic"], bootstrap_servers=a["bootstrap"], group_id=a["group"], enable_auto_commit=False,
                  auto_offset_reset="earliest", max_poll_records=a["max_records"])
got, rate, rows = profiled(lambda: sum(len(v) for v in c.poll(timeout_ms=1000).values()), a["events"])
c.close()
out(events=got, rate=rate, rows=rows)
"""

CONSUMER = _COMMON + _PROFILE + """
import streaming.consumer as sc
cons = sc.SceneStateConsumer(sc.ConsumerConfig(bootstrap=a["bootstrap"], topic=a["topic"], group=a["group"],
                                               max_records=a["max_records"]), Path(a["repo"]))
got, rate, rows = profiled(cons.step, a["events"])
cons.close()
out(events=got, rate=rate, rows=rows)
"""

# where a function's file lives -> the part it is counted in (first match wins)
PARTS = (("kafka client", ("/kafka/",)), ("json", ("/json/", "_json")),
         ("parse + validate (larr/realtime/events.py)", ("larr/realtime/events.py",)),
         ("merge (larr/realtime/state.py)", ("larr/realtime/state.py",)),
         ("consumer loop (streaming/consumer.py)", ("streaming/consumer.py",)),
         ("feast + redis + protobuf", ("/feast/", "/redis/", "/google/protobuf/")),
         ("datetime, dataclasses, typing", ("datetime", "dataclasses", "typing")))


def part_of(row: dict[str, Any]) -> str:
    where = row["file"]
    for name, marks in PARTS:
        if any(m in where for m in marks):
            return name
    if where == "~":  # C builtins: named by the function (e.g. <method 'decode' of 'bytes' objects>)
        fn = row["function"]
        if "json" in fn or "decode" in fn or "raw_decode" in fn:
            return "json"
        return "builtins (C)"
    return "other Python"


def by_part(rows: list[dict[str, Any]], events: int) -> dict[str, float]:
    """Self time per event (µs) of each part."""
    parts: dict[str, float] = {}
    for r in rows:
        parts[part_of(r)] = parts.get(part_of(r), 0.0) + r["self_s"] * 1e6 / events
    return dict(sorted(parts.items(), key=lambda kv: -kv[1]))


def top(rows: list[dict[str, Any]], events: int, n: int = 15) -> list[dict[str, Any]]:
    best = sorted(rows, key=lambda r: -r["self_s"])[:n]
    return [{"function": f"{Path(r['file']).name}:{r['line']}({r['function']})" if r["file"] != "~" else r["function"],
             "self_us_per_event": round(r["self_s"] * 1e6 / events, 2),
             "cum_us_per_event": round(r["cum_s"] * 1e6 / events, 2),
             "calls_per_event": round(r["calls"] / events, 3)} for r in best]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", default="data/small")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--redis", default="127.0.0.1:6379")
    ap.add_argument("--events", type=int, default=30_000)
    ap.add_argument("--max-records", type=int, default=2000, help="max_poll_records of both consumers")
    ap.add_argument("--out", default="runs/bench/stream_profile.json")
    args = ap.parse_args()

    from larr import feature_store as fsx
    from streaming.simulate import SPEC, simulate

    raw, stamp = Path(args.raw).resolve(), int(time.time())
    with tempfile.TemporaryDirectory() as tmp:
        features = Path(tmp) / "features"
        fsx.export_region_scene(raw, features, SPEC)
        repo = fsx.prepare_repo(Path(tmp) / "redis", features, "redis", args.redis, project=f"prof_{stamp}")
        fsx.apply(repo)
        topic = f"profile-{stamp}"
        simulate(args.bootstrap, topic, raw, rate=0, count=args.events, seed=1)
        common = {"bootstrap": args.bootstrap, "topic": topic, "events": args.events,
                  "max_records": args.max_records}
        [r_raw] = _lines(_child(RAW, ROOT, {**common, "group": f"praw-{stamp}"}))
        [r_con] = _lines(_child(CONSUMER, ROOT, {**common, "group": f"pcon-{stamp}", "repo": str(repo)}))
    result: dict[str, Any] = {}
    for name, r in (("raw", r_raw), ("consumer", r_con)):
        result[name] = {"events": r["events"], "events_per_second_profiled": round(r["rate"], 1),
                        "self_us_per_event": {k: round(v, 2) for k, v in by_part(r["rows"], r["events"]).items()},
                        "top_functions": top(r["rows"], r["events"])}
    names = list(dict.fromkeys([*result["consumer"]["self_us_per_event"], *result["raw"]["self_us_per_event"]]))
    print(f"\nself time per event under cProfile (µs); {args.events:,} events, batches of {args.max_records:,}")
    print(f"{'part':<46} {'raw consume':>12} {'consumer':>10}")
    for n in names:
        print(f"{n:<46} {result['raw']['self_us_per_event'].get(n, 0.0):>12.2f} "
              f"{result['consumer']['self_us_per_event'].get(n, 0.0):>10.2f}")
    print(f"{'total':<46} {sum(result['raw']['self_us_per_event'].values()):>12.2f} "
          f"{sum(result['consumer']['self_us_per_event'].values()):>10.2f}")
    print("\nthe consumer's costliest functions (self time)")
    for f in result["consumer"]["top_functions"]:
        print(f"  {f['self_us_per_event']:>6.2f} µs/event  {f['calls_per_event']:>7.3f} calls/event  {f['function']}")
    rev = revision()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "revision": rev, "args": vars(args), **result},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
