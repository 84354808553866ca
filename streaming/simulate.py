"""``larr stream simulate``: replay the simulated world's weather and time slots as live Kafka events.

Events carry the current wall-clock time as ``event_time`` (so freshness is measurable); optional
injection of malformed messages and of out-of-order (older) events exercises the dead-letter topic and the
newer-wins merge.  Returns what it sent, including the newest valid event per (region, group), which is
exactly the state the online store must end up holding.  The simulator replays the simulated food-delivery
world, so it speaks the shipped food_delivery spec's events; its day types come from the world's calendar
(:mod:`larr.world.scene`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from larr.realtime.events import make_event
from larr.spec import load_spec
from larr.world.scene import day_type

SPEC = "food_delivery"

log = logging.getLogger("larr.stream")
MALFORMED = [
    b"{not json",
    b'{"schema_version": 1, "type": "weather", "region_id": 0}',
    b'{"schema_version": 99, "type": "weather", "region_id": 0, "event_time": "2024-07-01T00:00:00"}',
    b'{"schema_version": 1, "type": "weather", "region_id": "north", "event_time": "2024-07-01T00:00:00", '
    b'"condition": "sunny", "temperature_c": 20}',
    b'{"schema_version": 1, "type": "tornado", "region_id": 1, "event_time": "2024-07-01T00:00:00"}',
    b'{"schema_version": 1, "type": "time_slot", "region_id": 1, "event_time": "yesterday", "hour": 3}',
]


def ensure_topics(bootstrap: str, topics: list[str], partitions: int = 4) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="larr-admin")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another client created it first
                admin.create_topics(new)
    finally:
        admin.close()


def scene_event(i: int, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The ``i``-th event's type and payload from a weather row: the simulator's mix, every fifth a weather
    event and the rest cycling weather / time slot / region context (also what ``benchmarks/stream_parse.py``
    times)."""
    kind = ("weather", "time_slot", "region_context")[i % 3] if i % 5 else "weather"
    if kind == "weather":
        return kind, {"condition": row["condition"], "temperature_c": float(row["temperature_c"])}
    if kind == "time_slot":
        return kind, {"hour": int(pd.Timestamp(row["ts"]).hour)}
    return kind, {"day_type": day_type(pd.Timestamp(row["ts"]).date())}


def simulate(bootstrap: str, topic: str, raw: Path, *, rate: float = 1000.0, duration: float | None = None,
             count: int | None = None, malformed_frac: float = 0.0, out_of_order_frac: float = 0.0,
             seed: int = 0) -> dict[str, Any]:
    """Send events at ``rate``/s for ``duration`` seconds or until ``count`` events; returns a summary."""
    if duration is None and count is None:
        raise ValueError("give --duration or --count")
    ensure_topics(bootstrap, [topic, f"{topic}.dlq"])
    rng = random.Random(seed)
    weather = pd.read_parquet(raw / "weather.parquet").sort_values(["ts", "region_id"]).to_dict("records")
    spec = load_spec(SPEC)
    assert spec.realtime is not None
    group_of = {name: ev.group for name, ev in spec.realtime.events.items()}
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, retries=10)
    newest: dict[tuple[int, str], tuple[int, dict[str, Any]]] = {}
    sent = malformed = older = 0
    start = time.time()
    i = 0
    while True:
        if count is not None and sent >= count:
            break
        if duration is not None and time.time() - start >= duration:
            break
        row = weather[i % len(weather)]
        i += 1
        region = int(row["region_id"])
        if rng.random() < malformed_frac:
            producer.send(topic, key=str(region).encode(), value=rng.choice(MALFORMED))
            sent += 1
            malformed += 1
            continue
        now = datetime.now(UTC)
        when = now - timedelta(seconds=rng.uniform(60, 3600)) if rng.random() < out_of_order_frac else now
        older += when < now
        kind, payload = scene_event(i, row)
        producer.send(topic, key=str(region).encode(), value=make_event(kind, region, when, spec=spec, **payload))
        ms = int(when.timestamp() * 1000)
        k = (region, group_of[kind])
        if k not in newest or ms > newest[k][0]:
            newest[k] = (ms, payload)
        sent += 1
        if rate and sent % 50 == 0:
            ahead = sent / rate - (time.time() - start)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush()
    producer.close()
    seconds = time.time() - start
    log.info("sent %d events (%d malformed, %d out of order) in %.1fs", sent, malformed, older, seconds)
    return {"sent": sent, "malformed": malformed, "out_of_order": older, "seconds": round(seconds, 2),
            "rate": round(sent / max(seconds, 1e-9), 1), "newest": newest}
