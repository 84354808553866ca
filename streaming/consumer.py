"""``larr stream consume``: keep each region's real-time scene state fresh in Feast's online store.

Loop: poll a batch (consumer group, ``enable_auto_commit=False``) -> parse each message (bad ones go to the
dead-letter topic with the error and their origin in headers) -> merge events into per-region state
(newer-wins by event time, :mod:`larr.realtime.state`) -> push the changed regions' rows through Feast's push
source -> flush the dead letters -> commit.  Offsets are committed only after the write, so a crash
replays the uncommitted batch, and replays are harmless because merging is newer-wins.  SIGTERM finishes
the batch, commits and closes.  Metrics go to the log and to a Prometheus text endpoint.

Feast's Redis store drops a write whose row timestamp is not newer than the stored one.  A row merges
several groups with their own event times, and an update to one group can be newer for that group yet older
than another group's time, so the per-group times (``*_ts`` fields, milliseconds) carry newer-wins and the
row's Feast ``event_timestamp`` is the wall-clock time of the write (always newer than the previous write).

Events, groups and the row's columns come from the feature spec's ``realtime`` section (``cfg.spec``, or the
:class:`~larr.spec.Spec` given to :class:`SceneStateConsumer`); a spec without one is refused.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from larr.feast_repo import REALTIME_PUSH, REALTIME_VIEW
from larr.realtime.events import EventError, parse_event
from larr.realtime.state import KeyMapper, RegionState, scene_schema, state_columns, state_frame
from larr.spec import Spec, load_spec

log = logging.getLogger("larr.stream")
VIEW = REALTIME_VIEW
PUSH_SOURCE = REALTIME_PUSH


@dataclass
class ConsumerConfig:
    bootstrap: str = "127.0.0.1:9092"
    topic: str = "scene-events"
    group: str = "larr-scene-state"
    dead_letter_topic: str | None = None  # default: <topic>.dlq
    max_records: int = 500
    poll_ms: int = 500
    metrics_port: int = 0  # 0: no HTTP endpoint
    max_idle_seconds: float | None = None  # stop after this long with no messages (tests, batch backfills)
    max_seconds: float | None = None
    known_keys: Path | None = None  # scene_value_embeddings.parquet: keys that have vectors
    backlog: Path | None = None  # where values without a vector are recorded (JSON lines)
    spec: str = "food_delivery"  # feature spec (built-in name or YAML path) whose ``realtime`` section is served
    max_clock_skew_s: float = 300.0  # event_time later than now + this: dead-lettered (config stream.*)
    max_event_age_s: float = 7 * 86400.0  # event_time earlier than now - this: dead-lettered
    dead_letter_timeout_s: float = 30.0  # how long a dead-letter send may take to be acknowledged

    @property
    def dlq(self) -> str:
        return self.dead_letter_topic or f"{self.topic}.dlq"


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.consumed = Counter("larr_stream_consumed", "messages consumed", registry=r)
        self.written = Counter("larr_stream_rows_written", "region rows written to the online store", registry=r)
        self.dead = Counter("larr_stream_dead_lettered", "messages sent to the dead-letter topic", registry=r)
        self.stale = Counter("larr_stream_stale_events", "events older than the state (ignored)", registry=r)
        self.lag = Gauge("larr_stream_lag", "messages behind the end of the topic", registry=r)
        self.freshness = Histogram("larr_stream_freshness_seconds", "event time to online write",
                                   buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300), registry=r)
        self.freshness_values: list[float] = []

    def value(self, name: str) -> int:
        """Current value of a counter or gauge, read through the registry's public API."""
        v = self.registry.get_sample_value(f"larr_stream_{name}_total") if name != "lag" else \
            self.registry.get_sample_value("larr_stream_lag")
        return int(v or 0)


def _known_keys(path: Path | None) -> set[int] | None:
    if path is None or not Path(path).exists():
        return None
    return set(pd.read_parquet(path, columns=["scene_key"])["scene_key"].astype("int64"))


class SceneStateConsumer:
    """The consumer of ``spec`` (default: ``load_spec(cfg.spec)``); ``run()`` returns a summary dict when it
    stops.  A spec without a ``realtime`` section is refused (:class:`larr.spec.SpecError`) before any
    connection is made."""

    def __init__(self, cfg: ConsumerConfig, repo: Path, spec: Spec | None = None):
        from larr.feature_store import store

        self.cfg = cfg
        self.spec = spec if spec is not None else load_spec(cfg.spec)
        self.schema = scene_schema(self.spec)  # refuses a spec without realtime
        self.columns = state_columns(self.spec)
        self.store = store(repo)
        self.metrics = Metrics()
        self.mapper = KeyMapper(self.spec, _known_keys(cfg.known_keys))
        self.states: dict[Any, RegionState] = {}
        self.stopping = False
        self.consumer = KafkaConsumer(
            cfg.topic, bootstrap_servers=cfg.bootstrap, group_id=cfg.group, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=cfg.max_records, client_id="larr-stream",
            reconnect_backoff_max_ms=2000, request_timeout_ms=30000)
        self.producer = KafkaProducer(bootstrap_servers=cfg.bootstrap, acks="all", retries=10, linger_ms=5)

    # -- state ---------------------------------------------------------------------------------------
    def _state(self, key: Any) -> RegionState:
        if key not in self.states:
            resp = self.store.get_online_features(features=[f"{VIEW}:{f}" for f in self.columns],
                                                 entity_rows=[{self.schema.key: key}]).to_dict()
            row = {f: resp[f][0] for f in self.columns}
            self.states[key] = RegionState.from_row(key, row, self.spec)
        return self.states[key]

    def _write(self, regions: set[Any]) -> None:
        rows = state_frame(self.spec, [self.states[r].to_row() for r in sorted(regions)])
        rows["event_timestamp"] = pd.Timestamp.now(tz="UTC")  # the write time; see the module docstring
        from feast.data_source import PushMode

        self.store.push(PUSH_SOURCE, rows, to=PushMode.ONLINE)
        now = time.time()
        for r in regions:
            age = now - self.states[r].event_ms / 1000
            self.metrics.freshness.observe(age)
            self.metrics.freshness_values.append(age)
        self.metrics.written.inc(len(regions))

    def _dead_letter(self, msg: Any, reason: str) -> None:
        headers = [("error", reason.encode()[:1000]), ("origin_topic", msg.topic.encode()),
                   ("origin_partition", str(msg.partition).encode()), ("origin_offset", str(msg.offset).encode())]
        self.producer.send(self.cfg.dlq, key=msg.key, value=msg.value, headers=headers)
        self.metrics.dead.inc()
        log.warning("dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)

    def _lag(self) -> int:
        """Messages of the topic not yet committed by the group (all partitions, assigned or not)."""
        parts = [TopicPartition(self.cfg.topic, p) for p in (self.consumer.partitions_for_topic(self.cfg.topic) or [])]
        if not parts:
            return 0
        ends = self.consumer.end_offsets(parts)
        return int(sum(max(0, ends[tp] - (self.consumer.committed(tp) or 0)) for tp in parts))

    def _flush_backlog(self) -> None:
        if not self.cfg.backlog or not self.mapper.backlog:
            return
        path = Path(self.cfg.backlog)
        path.parent.mkdir(parents=True, exist_ok=True)
        seen = set()
        if path.exists():
            seen = {json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()}
        with path.open("a") as f:
            for key, (fld, text) in self.mapper.backlog.items():
                if key not in seen:
                    f.write(json.dumps({"key": key, "field": fld, "text": text, "first_seen": time.time()}) + "\n")

    # -- loop ----------------------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        log.info("stop requested: finishing the current batch")
        self.stopping = True

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        if cfg.metrics_port:
            start_http_server(cfg.metrics_port, addr="127.0.0.1", registry=self.metrics.registry)
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        started = last_msg = time.time()
        last_log = started
        while not self.stopping:
            batch = self.consumer.poll(timeout_ms=cfg.poll_ms, max_records=cfg.max_records)
            now = time.time()
            if not batch:
                if not self.consumer.assignment():  # still joining the group (e.g. a dead member's session
                    last_msg = now                 # must time out first): not idle yet
                if cfg.max_idle_seconds is not None and now - last_msg > cfg.max_idle_seconds:
                    break
                if cfg.max_seconds is not None and now - started > cfg.max_seconds:
                    break
                continue
            last_msg = now
            changed: set[Any] = set()
            for records in batch.values():
                for msg in records:
                    self.metrics.consumed.inc()
                    try:
                        ev = parse_event(msg.value, self.spec)
                    except EventError as err:
                        self._dead_letter(msg, str(err))
                        continue
                    if self.mapper.apply(self._state(ev.key), ev):
                        changed.add(ev.key)
                    else:
                        self.metrics.stale.inc()
            if changed:
                self._write(changed)
            self.producer.flush()
            self._flush_backlog()
            self.consumer.commit()  # only after the write and the dead letters are durable
            if now - last_log > 5:
                self.metrics.lag.set(self._lag())
                m = self.metrics
                log.info("consumed %d, written %d, dead-lettered %d, lag %d", m.value("consumed"),
                         m.value("rows_written"), m.value("dead_lettered"), m.value("lag"))
                last_log = now
            if cfg.max_seconds is not None and now - started > cfg.max_seconds:
                break
        self.producer.flush()
        self._flush_backlog()
        self.consumer.commit()
        self.metrics.lag.set(self._lag())
        self.consumer.close(autocommit=False)
        self.producer.close()
        return self.summary(time.time() - started)

    def summary(self, seconds: float) -> dict[str, Any]:
        import numpy as np

        f = np.array(self.metrics.freshness_values) if self.metrics.freshness_values else np.array([np.nan])
        m = self.metrics
        return {"consumed": m.value("consumed"), "written": m.value("rows_written"),
                "dead_lettered": m.value("dead_lettered"), "stale": m.value("stale_events"),
                "lag": m.value("lag"), "seconds": round(seconds, 2),
                "freshness_p50_s": float(np.nanpercentile(f, 50)), "freshness_p99_s": float(np.nanpercentile(f, 99)),
                "backlog": len(self.mapper.backlog)}


def committed_offsets(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    """The group's committed offset per partition (for tests and operators)."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in (c.partitions_for_topic(topic) or [])]
        return {tp.partition: (c.committed(tp) or 0) for tp in parts}
    finally:
        c.close()
