"""Per-event Python cost of the streaming consumer, without Kafka or a store: where the microseconds go that the
consumer adds to the raw kafka-python consume (issue 16.2).

The simulator's event mix (weather, time slot, region context from ``data/small/weather.parquet``, made with
:func:`larr.realtime.events.make_event`) is encoded once; then, in one process, each phase is timed over all
events, ``--rounds`` times (medians):

* ``parse_event``: the consumer's whole parse and validation of one message;
* its parts: ``json.loads`` of the bytes, ``datetime.fromisoformat`` + UTC, the time-window check, the payload
  checks, building the :class:`~larr.realtime.events.SceneEvent`;
* ``merge``: :meth:`larr.realtime.state.KeyMapper.apply` of every parsed event into its region's state.

Each phase runs batch by batch (``--batch``, the consumer's ``max_poll_records``), dropping a batch's objects
before the next, as the consumer does: timing all events at once would charge the garbage collector for tens of
thousands of live objects the consumer never holds.

    .venv/bin/python -m benchmarks.stream_parse [--raw data/small] [--events 30000] [--batch 2000] [--rounds 5]

Prints a table and writes JSON (``runs/bench/stream_parse.json``) with the arguments.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd


def _messages(raw: Path, n: int) -> list[bytes]:
    """``n`` events as the simulator sends them (:func:`streaming.simulate.scene_event`), stamped now."""
    from larr.realtime.events import make_event
    from larr.spec import load_spec
    from streaming.simulate import SPEC, scene_event

    spec = load_spec(SPEC)
    weather = pd.read_parquet(raw / "weather.parquet").sort_values(["ts", "region_id"]).to_dict("records")
    out = []
    for i in range(n):  # as simulate(): row i, then the (i + 1)-th event's type
        row = weather[i % len(weather)]
        kind, payload = scene_event(i + 1, row)
        out.append(make_event(kind, int(row["region_id"]), datetime.now(UTC), spec=spec, **payload))
    return out


def _time(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n * 1e6


def _round(spec: Any, msgs: list[bytes], batch: int, window: Any, plan: Any) -> dict[str, float]:
    """One round: µs per event of each phase, run batch by batch as the consumer does (a poll's messages at a time,
    each batch's objects dropped before the next, so the garbage collector sees what it sees in the consumer)."""
    from larr.realtime.events import SceneEvent, check_payload, parse_event
    from larr.realtime.state import KeyMapper, RegionState

    n, now = len(msgs), datetime.now(UTC)
    chunks = [msgs[i:i + batch] for i in range(0, n, batch)]
    objs = [[json.loads(m) for m in c] for c in chunks]
    whens = [[datetime.fromisoformat(o["event_time"]).astimezone(UTC) for o in c] for c in objs]
    events = [[parse_event(m, spec, window, now) for m in c] for c in chunks]

    def each(fn: Callable[[int], object]) -> Callable[[], None]:
        def run() -> None:
            for i in range(len(chunks)):
                fn(i)
        return run

    mapper, states = KeyMapper(spec), {}

    def merge(i: int) -> None:
        for ev in events[i]:
            st = states.get(ev.key)
            if st is None:
                st = states[ev.key] = RegionState(ev.key, spec)
            mapper.apply(st, ev)

    return {
        "parse_event (all of it)": _time(each(lambda i: [parse_event(m, spec, window, now) for m in chunks[i]]), n),
        "  json.loads of the bytes": _time(each(lambda i: [json.loads(m) for m in chunks[i]]), n),
        "  fromisoformat + UTC": _time(
            each(lambda i: [datetime.fromisoformat(o["event_time"]).astimezone(UTC) for o in objs[i]]), n),
        "  time-window check": _time(each(lambda i: [window.check(w, now) for w in whens[i]]), n),
        "  payload checks": _time(each(lambda i: [check_payload(plan.events[o["type"]], o) for o in objs[i]]), n),
        "  building the SceneEvent": _time(
            each(lambda i: [SceneEvent(e.type, e.key, e.event_time, e.payload) for e in events[i]]), n),
        "merge into the region states": _time(each(merge), n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", default="data/small")
    ap.add_argument("--events", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2000, help="events per batch (the consumer's max_poll_records)")
    ap.add_argument("--out", default="runs/bench/stream_parse.json")
    args = ap.parse_args()

    from larr.realtime.events import TimeWindow, _plan
    from larr.spec import load_spec
    from streaming.simulate import SPEC

    spec = load_spec(SPEC)
    msgs = _messages(Path(args.raw), args.events)
    window, plan = TimeWindow(), _plan(spec)
    phases: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for k, v in _round(spec, msgs, args.batch, window, plan).items():
            phases.setdefault(k, []).append(v)
    rows = {k: round(statistics.median(v), 2) for k, v in phases.items()}
    print(f"{'phase':<34} {'µs per event':>12}")
    for k, v in rows.items():
        print(f"{k:<34} {v:>12.2f}")
    print(f"{len(msgs):,} events of the simulator's mix in batches of {args.batch:,}; medians of {args.rounds} rounds; "
          "one process")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "args": vars(args), "us_per_event": rows,
                               "rounds": phases}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
