"""Streaming speed, before and after: events/s of the consumer into the online store (SQLite and Redis), the raw
kafka-python consume rate of the same topic measured next to each (the ceiling) and the ratio, event-to-online
freshness p50/p99 at a live rate, and the scaling of the current consumer with 1, 2 and 4 processes of one
group on a 4-partition topic (``--scale-only``: that part alone).

BEFORE is the consumer at git revision ``--before`` (default 51355d5, the last one before issue 16.2), run
from a ``git worktree add --detach`` of it; AFTER is this checkout.  Every consumer, and every raw consume,
runs in its own child process (``python -c`` in the tree whose code it measures); before and after read the
same topic data into separate Feast projects, so neither sees the other's state.

Needs a broker and Redis on 127.0.0.1 (bash scripts/kafka.sh start; bash scripts/redis.sh start) and a world
(bash scripts/demo.sh, or larr generate):

    .venv/bin/python -m benchmarks.streaming [--raw data/small] [--events 50000] [--rate 2000] [--seconds 15]

Rates are measured from the end of the first non-empty poll to the end of the poll (raw) or the commit
(consumer) that brought the count to ``--events``, so neither side pays for joining the group.  Prints a table
and writes JSON (runs/bench/streaming.json) with the arguments.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.provenance import ROOT, revision

# The child processes.  Each runs with cwd = the tree whose code it measures, so `import streaming` is that
# tree's; it prints JSON lines on stdout.
_COMMON = """
import json, sys, time
from pathlib import Path
a = json.loads(sys.argv[1])
def out(**kw):
    print(json.dumps(kw), flush=True)
# step() until `events` arrived or 60 s pass idle; the rate counts from the first non-empty step on, so
# joining the group and the first fetch are not in it
def drain(step, events):
    got, t0, counted, last = 0, None, 0, time.time()
    while got < events and time.time() - last < 60:
        n = step()
        if n:
            last = time.time()
            if t0 is None:
                t0 = time.perf_counter()
            else:
                counted += n
        got += n
    return got, counted / (time.perf_counter() - t0)
"""

RAW_CHILD = _COMMON + """
from kafka import KafkaConsumer
c = KafkaConsumer(a["topic"], bootstrap_servers=a["bootstrap"], group_id=a["group"], enable_auto_commit=False,
                  auto_offset_reset="earliest", max_poll_records=a["max_records"])
got, rate = drain(lambda: sum(len(v) for v in c.poll(timeout_ms=1000).values()), a["events"])
out(events=got, rate=rate)
c.close()
"""

CONSUMER_CHILD = _COMMON + """
import streaming.consumer as sc
cons = sc.SceneStateConsumer(sc.ConsumerConfig(bootstrap=a["bootstrap"], topic=a["topic"], group=a["group"],
                                               max_records=a["max_records"], max_idle_seconds=a.get("idle", 3.0)),
                             Path(a["repo"]))
if a["mode"] == "throughput":
    got, rate = drain(cons.step, a["events"])
    cons.close()
    out(events=got, rate=rate, consumer=sc.__file__)
elif a["mode"] == "live":  # join the group first, then the parent starts sending
    while not cons.consumer.assignment():
        cons.step()
    out(ready=True)
    out(summary=cons.run(), consumer=sc.__file__)
else:  # "scale": take the partitions the parent gives (static assignment), wait for GO on stdin, consume until idle
    from kafka import TopicPartition
    cons.consumer.unsubscribe()
    cons.consumer.assign([TopicPartition(a["topic"], p) for p in a["partitions"]])
    out(assigned=a["partitions"])
    sys.stdin.readline()
    cons.rebalanced = True  # start from the store
    got, t_last, last = 0, None, time.time()
    while time.time() - last < a.get("idle", 3.0):
        n = cons.step()
        if n:
            got += n
            t_last = time.time()
            last = t_last
    cons.close()
    out(events=got, t_last=t_last, summary=cons.summary(0.0))
"""


def _child(code: str, root: Path, args: dict[str, Any], stdin: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)


def _lines(proc: subprocess.Popen) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{err[-4000:]}")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def raw_rate(bootstrap: str, topic: str, events: int, max_records: int) -> float:
    [r] = _lines(_child(RAW_CHILD, ROOT, {"bootstrap": bootstrap, "topic": topic, "events": events,
                                          "group": f"raw-{topic}-{time.time()}", "max_records": max_records}))
    assert r["events"] >= events, r
    return r["rate"]


def consumer_rate(root: Path, bootstrap: str, topic: str, repo: Path, events: int, max_records: int) -> dict:
    [r] = _lines(_child(CONSUMER_CHILD, root, {"mode": "throughput", "bootstrap": bootstrap, "topic": topic,
                                               "group": f"b-{topic}-{root.name}-{repo.name}", "repo": str(repo),
                                               "events": events, "max_records": max_records}))
    assert r["events"] >= events and Path(r["consumer"]).is_relative_to(root), r
    return r


def freshness(root: Path, bootstrap: str, topic: str, repo: Path, raw: Path, rate: float, seconds: float,
              max_records: int) -> dict:
    from streaming.simulate import ensure_topics, simulate

    ensure_topics(bootstrap, [topic, f"{topic}.dlq"])
    proc = _child(CONSUMER_CHILD, root, {"mode": "live", "bootstrap": bootstrap, "topic": topic,
                                         "group": f"b-{topic}", "repo": str(repo), "max_records": max_records})
    line = proc.stdout.readline()
    if not line.startswith('{"ready"'):
        proc.kill()
        raise RuntimeError(f"live consumer did not join: {line}{proc.stderr.read()[-3000:]}")
    sent = simulate(bootstrap, topic, raw, rate=rate, duration=seconds, seed=2)
    [r] = _lines(proc)
    s = r["summary"]
    assert s["consumed"] == sent["sent"] and s["dead_lettered"] == 0, (s, sent["sent"])
    return {"live_rate": rate, "sent": sent["sent"], "send_rate": sent["rate"],
            "freshness_p50_ms": round(s["freshness_p50_s"] * 1000, 1),
            "freshness_p99_ms": round(s["freshness_p99_s"] * 1000, 1)}


def state_is_newest(repo: Path, newest: dict) -> bool:
    """The online row of every (region, group) holds the newest event sent for it."""
    from larr import feature_store as fsx
    from streaming.consumer import VIEW

    regions = sorted({r for r, _ in newest})
    cols = sorted({f"{g}_ts" for _, g in newest})
    resp = fsx.store(repo).get_online_features(features=[f"{VIEW}:{c}" for c in cols],
                                               entity_rows=[{"region_id": r} for r in regions]).to_dict()
    return all(resp[f"{g}_ts"][regions.index(r)] == ms for (r, g), (ms, _) in newest.items())


def scaling(bootstrap: str, topic: str, repo: Path, raw: Path, events: int, procs: int, max_records: int) -> dict:
    """``procs`` (1, 2 or 4) consumer processes committing as one group on a 4-partition topic, partition p to
    process p mod procs (``assign()``, not ``subscribe()``: members that joined the group while the topic was
    empty and held their partitions paused did not settle in 300 s under Kafka 4.3 and kafka-python 3.0), all up
    before the events are sent, then started at once; events/s = events / (last commit - start).  Round-robin,
    not the range assignor's contiguous blocks: with the regions' uneven spread over partitions it balances 2
    processes (30,000 / 30,000 events) where range would give 22,500 / 37,500."""
    from streaming.simulate import ensure_topics, simulate

    ensure_topics(bootstrap, [topic, f"{topic}.dlq"], partitions=4)
    from kafka import KafkaConsumer

    probe, deadline = KafkaConsumer(bootstrap_servers=bootstrap), time.time() + 60
    while probe.partitions_for_topic(topic) != {0, 1, 2, 3}:  # a member that joins before the broker lists the
        assert time.time() < deadline, topic                   # new topic gets nothing until its next metadata
        time.sleep(0.2)                                         # refresh (5 min)
    probe.close()
    args = {"mode": "scale", "bootstrap": bootstrap, "topic": topic, "group": f"b-{topic}", "repo": str(repo),
            "max_records": max_records, "idle": 4.0}
    shares = [[p for p in range(4) if p % procs == i] for i in range(procs)]  # round-robin
    children = [_child(CONSUMER_CHILD, ROOT, {**args, "partitions": shares[i]}, stdin=True) for i in range(procs)]
    assigned: list[list[int]] = [[] for _ in children]
    lock = threading.Lock()
    first: list[list[str]] = [[] for _ in children]

    def follow(i: int) -> None:
        for line in children[i].stdout:
            if line.startswith('{"assigned"'):
                with lock:
                    assigned[i] = json.loads(line)["assigned"]
            else:
                first[i].append(line)

    readers = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(procs)]
    for t in readers:
        t.start()
    deadline = time.time() + 300
    while True:  # every member is up (imports done, store opened) and holds its partitions
        with lock:
            if all(assigned):
                break
        if time.time() > deadline:
            for c in children:
                c.kill()
            errs = [c.stderr.read()[-1500:] for c in children]
            return {"processes": procs, "partitions": 4, "error": f"members not up in 300 s: {assigned}",
                    "stderr_tails": errs}
        time.sleep(0.2)
    sent = simulate(bootstrap, topic, raw, rate=0, count=events, seed=3)
    start = time.time()
    for c in children:
        c.stdin.write("GO\n")
        c.stdin.flush()
    results = []
    for i, c in enumerate(children):
        c.wait(timeout=900)
        readers[i].join(timeout=10)
        if c.returncode != 0:
            raise RuntimeError(f"scale child failed:\n{c.stderr.read()[-3000:]}")
        results.append(json.loads(first[i][-1]))
    total = sum(r["events"] for r in results)
    end = max(r["t_last"] for r in results if r["t_last"])
    assert total == events, (total, events)
    return {"processes": procs, "partitions": 4, "events": total, "events_per_second": round(total / (end - start), 1),
            "per_process_events": [r["events"] for r in results],
            "split_keys": sum(r["summary"].get("split_keys", 0) for r in results),
            "state_is_newest": state_is_newest(repo, sent["newest"])}


def worktree(rev: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"larr-before-{rev}-")) / "tree"  # own folder: runs may overlap
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", default="data/small")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--redis", default="127.0.0.1:6379")
    ap.add_argument("--events", type=int, default=50_000, help="events of the throughput topic")
    ap.add_argument("--max-records", type=int, default=2000, help="max_poll_records of every consumer, raw too")
    ap.add_argument("--rate", type=float, default=2000.0, help="live rate of the freshness runs")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of each freshness run")
    ap.add_argument("--before", default="51355d5", help="git revision measured as BEFORE")
    ap.add_argument("--scale", default="1,2,4", help="consumer process counts for the scaling run")
    ap.add_argument("--scale-events", type=int, default=60_000)
    ap.add_argument("--scale-only", action="store_true", help="only the scaling runs (no before/after rows)")
    ap.add_argument("--out", default="runs/bench/streaming.json")
    args = ap.parse_args()
    if any(p not in (1, 2, 4) for p in (int(x) for x in args.scale.split(",") if x)):
        ap.error(f"--scale {args.scale}: 1, 2 or 4 processes on the 4 partitions (each process needs a partition)")

    from larr import feature_store as fsx
    from streaming.simulate import SPEC, simulate

    raw = Path(args.raw).resolve()
    stamp = int(time.time())
    before = None if args.scale_only else worktree(args.before)
    trees = {"after": ROOT} if before is None else {"before": before, "after": ROOT}
    rows, scale = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            features = Path(tmp) / "features"
            fsx.export_region_scene(raw, features, SPEC)  # the simulator replays the food_delivery world
            repos = {}
            for version in trees:
                for online in ("sqlite", "redis"):
                    repos[version, online] = fsx.prepare_repo(Path(tmp) / f"{version}-{online}", features, online,
                                                              args.redis, project=f"bench_{version}_{stamp}")
                    fsx.apply(repos[version, online])
            topic = f"bench-{stamp}"
            sent = simulate(args.bootstrap, topic, raw, rate=0, count=args.events, seed=1)
            for online in () if args.scale_only else ("sqlite", "redis"):
                for version, root in trees.items():
                    ceiling = raw_rate(args.bootstrap, topic, args.events, args.max_records)
                    r = consumer_rate(root, args.bootstrap, topic, repos[version, online], args.events,
                                      args.max_records)
                    row = {"version": version, "online_store": online, "events": args.events,
                           "raw_consume_per_second": round(ceiling, 1),
                           "events_per_second": round(r["rate"], 1), "ratio_to_raw": round(r["rate"] / ceiling, 3),
                           "state_is_newest": state_is_newest(repos[version, online], sent["newest"])}
                    row.update(freshness(root, args.bootstrap, f"{topic}-live-{version}-{online}",
                                         repos[version, online], raw, args.rate, args.seconds, args.max_records))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            for procs in [int(p) for p in args.scale.split(",") if p]:
                ceiling = raw_rate(args.bootstrap, topic, args.events, args.max_records)
                s = scaling(args.bootstrap, f"{topic}-scale{procs}", repos["after", "redis"], raw,
                            args.scale_events, procs, args.max_records)
                s["raw_consume_per_second"] = round(ceiling, 1)
                if "events_per_second" in s:
                    s["ratio_to_raw"] = round(s["events_per_second"] / ceiling, 3)
                scale.append(s)
                print(json.dumps(s), flush=True)
    finally:
        if before is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False,
                           capture_output=True)

    print(f"\n{'version':<7} {'store':<7} {'raw kafka ev/s':>15} {'into store ev/s':>16} {'ratio':>6} "
          f"{'fresh p50 ms':>13} {'fresh p99 ms':>13}")
    for r in rows:
        print(f"{r['version']:<7} {r['online_store']:<7} {r['raw_consume_per_second']:>15,.0f} "
              f"{r['events_per_second']:>16,.0f} {r['ratio_to_raw']:>6.2f} {r['freshness_p50_ms']:>13.1f} "
              f"{r['freshness_p99_ms']:>13.1f}")
    print(f"\n{'processes':>9} {'partitions':>10} {'into Redis ev/s':>16} {'raw kafka ev/s':>15} {'ratio':>6}")
    for s in [s for s in scale if "events_per_second" in s]:
        print(f"{s['processes']:>9} {s['partitions']:>10} {s['events_per_second']:>16,.0f} "
              f"{s['raw_consume_per_second']:>15,.0f} {s['ratio_to_raw']:>6.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rev = revision()
    out.write_text(json.dumps({"machine": platform.platform(), "cpus": __import__("os").cpu_count(),
                               "after_rev": rev, "args": vars(args), "results": rows, "scaling": scale},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
