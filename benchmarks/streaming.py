"""Streaming speed: sustained events/s into the online store, event-to-online freshness p50/p99, and the raw
kafka-python consume rate of the same topic in the same run (the ceiling), reported as a ratio.

Needs a broker and Redis on 127.0.0.1 (scripts/kafka.sh start; scripts/redis.sh start) and a world
(bash scripts/demo.sh, or larr generate):

    .venv/bin/python -m benchmarks.streaming [--raw data/small] [--events 50000] [--rate 2000]

Prints a table and writes JSON (runs/bench/streaming.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from pathlib import Path

from kafka import KafkaConsumer

from larr import feature_store as fsx
from streaming.consumer import ConsumerConfig, SceneStateConsumer
from streaming.simulate import SPEC, simulate


def raw_consume_rate(bootstrap: str, topic: str, n: int) -> float:
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{time.time()}", enable_auto_commit=False,
                      auto_offset_reset="earliest", max_poll_records=500)
    got, t0 = 0, None
    while got < n:
        batch = c.poll(timeout_ms=1000)
        if batch and t0 is None:
            t0 = time.perf_counter()
        got += sum(len(v) for v in batch.values())
    rate = got / (time.perf_counter() - t0)
    c.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", default="data/small")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--redis", default="127.0.0.1:6379")
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rate", type=float, default=2000.0, help="live rate for the freshness run")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the freshness run")
    ap.add_argument("--out", default="runs/bench/streaming.json")
    args = ap.parse_args()
    raw = Path(args.raw)
    stamp = int(time.time())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        features = Path(tmp) / "features"
        fsx.export_region_scene(raw, features, SPEC)  # the simulator replays the food_delivery world
        for online in ("sqlite", "redis"):
            repo = fsx.prepare_repo(Path(tmp) / online, features, online, args.redis)
            fsx.apply(repo)
            topic = f"bench-{online}-{stamp}"
            simulate(args.bootstrap, topic, raw, rate=0, count=args.events, seed=1)
            ceiling = raw_consume_rate(args.bootstrap, topic, args.events)
            cons = SceneStateConsumer(ConsumerConfig(bootstrap=args.bootstrap, topic=topic, group=f"b-{topic}",
                                                     max_idle_seconds=2.0), repo)
            s = cons.run()
            busy = s["seconds"] - 2.0
            sustained = s["consumed"] / busy
            live = f"{topic}-live"
            sender = threading.Thread(target=simulate, args=(args.bootstrap, live, raw),
                                      kwargs={"rate": args.rate, "duration": args.seconds, "seed": 2})
            sender.start()
            time.sleep(1.0)
            live_cons = SceneStateConsumer(ConsumerConfig(bootstrap=args.bootstrap, topic=live, group=f"b-{live}",
                                                          max_idle_seconds=3.0), repo)
            f = live_cons.run()
            sender.join()
            rows.append({"online_store": online, "events": args.events, "raw_consume_per_second": round(ceiling, 1),
                         "sustained_events_per_second": round(sustained, 1),
                         "ratio_to_raw": round(sustained / ceiling, 3), "rows_written": s["written"],
                         "live_rate": args.rate, "freshness_p50_ms": round(f["freshness_p50_s"] * 1000, 1),
                         "freshness_p99_ms": round(f["freshness_p99_s"] * 1000, 1)})
    print(f"{'store':<7} {'raw kafka ev/s':>15} {'into online ev/s':>17} {'ratio':>6} {'fresh p50 ms':>13} "
          f"{'fresh p99 ms':>13}")
    for r in rows:
        print(f"{r['online_store']:<7} {r['raw_consume_per_second']:>15,.0f} {r['sustained_events_per_second']:>17,.0f} "
              f"{r['ratio_to_raw']:>6.2f} {r['freshness_p50_ms']:>13.1f} {r['freshness_p99_ms']:>13.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
