"""``larr stream consume``: keep each region's real-time scene state fresh in Feast's online store.

Loop: poll a batch (consumer group, ``enable_auto_commit=False``) -> parse each message -> read the states of
the batch's regions not cached (one online read) -> merge the events in offset order into per-region state
(newer-wins by event time per group, :mod:`larr.realtime.state`) -> write each changed region's row once, all in
one ``online_write_batch`` (:class:`OnlineWriter`) -> wait for every dead letter's acknowledgement -> commit the
batch's offsets.
Offsets are committed only after the write and the dead letters are durable, so a crash replays the
uncommitted batch, and replays are harmless because merging is newer-wins.  SIGTERM finishes the batch,
commits and closes.  Metrics go to the log and to a Prometheus text endpoint.

Two kinds of failure, kept apart because they call for opposite answers:

* A failure of one message -- invalid (:class:`~larr.realtime.events.EventError`, including an event time
  outside the :class:`~larr.realtime.events.TimeWindow`), or anything else its parse, merge or row write
  raises -- sends that message, unchanged, to the dead-letter topic with the reason in its headers, and the
  consumer moves on.  Stopping instead would meet the same message again after every restart, forever.
  When a batch's write fails this way, the rows are written one by one and only the messages of the row
  that still fails are dead-lettered.
* An outage of the online store or the broker (:data:`OUTAGES`: connection errors, a locked or missing
  SQLite file, a dead letter the broker did not acknowledge) is no message's fault: nothing is
  dead-lettered and nothing committed; the batch is rewound, the state cache dropped, and the consumer
  waits (backing off up to 15 s) and replays it.  A replay may send a dead letter twice.

The per-region state cache is dropped whenever the group rebalances (:class:`_DropStateOnRebalance`): a
partition that comes back may have been written meanwhile by another member, so states are read again from
the online store before the next merge.  The cache, like the write of whole rows, assumes one writer per
region: the producers key every message by region, so a region's events lie in one partition, which one
member of the group owns at a time.  A region met on a second partition is logged and counted
(``split_keys``).

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
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import redis.exceptions
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from larr.feast_repo import REALTIME_PUSH, REALTIME_VIEW
from larr.realtime.events import EventError, SceneEvent, TimeWindow, key_type, parse_event
from larr.realtime.state import KeyMapper, RegionState, scene_schema, state_columns
from larr.spec import Spec, load_spec

log = logging.getLogger("larr.stream")
VIEW = REALTIME_VIEW
PUSH_SOURCE = REALTIME_PUSH
# Failures of the online store or the broker, not of a message: they pause the consumer, never dead-letter.
OUTAGES: tuple[type[BaseException], ...] = (OSError, sqlite3.OperationalError, redis.exceptions.ConnectionError,
                                            redis.exceptions.TimeoutError, KafkaError)
MAX_BACKOFF_S = 15.0


@dataclass
class ConsumerConfig:
    bootstrap: str = "127.0.0.1:9092"
    topic: str = "scene-events"
    group: str = "larr-scene-state"
    dead_letter_topic: str | None = None  # default: <topic>.dlq
    max_records: int = 2000
    poll_ms: int = 500
    metrics_port: int = 0  # 0: no HTTP endpoint
    max_idle_seconds: float | None = None  # stop after this long with no messages (tests, batch backfills)
    max_seconds: float | None = None
    known_keys: Path | None = None  # scene_value_embeddings.parquet: keys that have vectors
    backlog: Path | None = None  # where values without a vector are recorded (JSON lines)
    spec: str = "food_delivery"  # feature spec (built-in name or YAML path) whose ``realtime`` section is served
    max_clock_skew_s: float = TimeWindow.max_skew_s  # event_time later than now + this: dead-lettered
    max_event_age_s: float = TimeWindow.max_age_s  # earlier than now - this: dead-lettered (config stream.*)
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
        self.outages = Counter("larr_stream_outages", "batches rewound because the store or broker failed",
                               registry=r)
        self.split_keys = Counter("larr_stream_split_keys", "keys met on a second partition (their single writer "
                                  "is not guaranteed: the producer does not key messages by the real-time key)",
                                  registry=r)
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
    """The keys that have vectors; None (every key counts as known) only when no file is given: a missing
    file is an error, since silently treating every key as known would disable the fallback and the backlog."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"known keys {path}: no such file (the scene_value_embeddings.parquet of "
                                "`larr embed`)")
    return set(pd.read_parquet(path, columns=["scene_key"])["scene_key"].astype("int64"))


@dataclass
class Batch:
    """One poll's messages and what they did.  The metrics take its counts only once it is committed, so a
    batch rewound after an outage and replayed is counted once."""

    records: list[Any]
    first: dict[TopicPartition, int]  # first offset per partition: where a rewound batch is replayed from
    last: dict[TopicPartition, int]  # last offset per partition: the commit is last + 1
    changed: dict[Any, list[Any]] = field(default_factory=dict)  # key -> the messages that changed its state
    dead: list[tuple[Any, Any]] = field(default_factory=list)  # (message, the dead-letter send's future)
    stale: int = 0

    @classmethod
    def of(cls, polled: dict[TopicPartition, list[Any]]) -> Batch:
        parts = {tp: msgs for tp, msgs in polled.items() if msgs}
        return cls([m for msgs in parts.values() for m in msgs], {tp: msgs[0].offset for tp, msgs in parts.items()},
                   {tp: msgs[-1].offset for tp, msgs in parts.items()})


class _DropStateOnRebalance(ConsumerRebalanceListener):
    """Marks the state cache stale on every revocation and assignment.

    A partition this member gets (back) may have been consumed by another member meanwhile, which wrote newer
    states for its regions; merging into a cached state would overwrite them with old groups.  Nothing needs
    committing on revocation: every batch is committed before the next ``poll()``, the only place kafka-python
    rebalances.  The listener only sets a flag (callbacks run on kafka-python's IO thread); the consumer drops
    the cache right after the poll, before it merges anything."""

    def __init__(self, owner: SceneStateConsumer):
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner.rebalanced = True

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.owner.rebalanced = True


class OnlineWriter:
    """Writes whole region rows to the online store of ``repo``: one ``online_write_batch`` per batch.

    Feast's ``push`` spends its time outside the write: for the 8 rows of a batch of the small world, on 2
    busy cores, ``push`` took 63 ms (it lists and deserialises every feature view and feature service of the
    registry on each call), ``write_to_online_store`` 22 ms, ``ingest_df`` with the view resolved once 15 ms
    (10 ms of it pandas -> Arrow -> protos), and the Redis ``online_write_batch`` itself 0.7 ms.  That per-call
    cost, paid for every poll, capped the old consumer at about a third of the raw consume rate.  The writer
    resolves the feature view once, turns the rows into Feast value protos with Feast's
    own ``python_values_to_proto_values`` (column by column from Python values, so an Int64 key never passes
    through float64 and rows with and without a group share one write), and hands them to the provider's
    ``online_write_batch`` -- the call ``push`` ends in.

    Redis is written with ``skip_dedup`` (one pipelined round trip instead of a timestamp read and a write).
    Feast's check compares the row's ``event_timestamp``, which this consumer sets to the wall-clock time of
    the write (module docstring), so it can only ever drop a write of a second, concurrent writer of the same
    key -- and two writers of one key lose updates anyway, because each writes its own cached row.  The
    consumer therefore relies on a single writer per key, which Kafka gives when every message is keyed by
    its real-time key (one key -> one partition -> one member of the group at a time); a key met on a second
    partition is logged and counted (``larr_stream_split_keys``).  Newer-wins per group never depended on
    Feast's check: it is the ``*_ts`` columns.  The repo's own feature_store.yaml is left as it is."""

    def __init__(self, store: Any, repo: Path):
        from feast.infra.provider import get_provider
        from feast.repo_config import load_repo_config

        self.view = store.get_feature_view(VIEW)
        self.config = load_repo_config(Path(repo), Path(repo) / "feature_store.yaml")
        if getattr(self.config.online_store, "type", None) == "redis":
            self.config.online_store.skip_dedup = True
        self.provider = get_provider(self.config)
        self.keys = [(f.name, f.dtype.to_value_type()) for f in self.view.entity_columns]
        self.features = [(f.name, f.dtype.to_value_type()) for f in self.view.features]

    def write(self, rows: list[dict[str, Any]]) -> None:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import python_values_to_proto_values

        now = datetime.now(UTC)  # the row's event_timestamp: the write time (module docstring)
        cols = {name: python_values_to_proto_values([r[name] for r in rows], vt) for name, vt in self.features}
        keys = [python_values_to_proto_values([r[name] for r in rows], vt) for name, vt in self.keys]
        names = [name for name, _ in self.keys]
        data = [(EntityKey(join_keys=names, entity_values=[k[i] for k in keys]),
                 {name: col[i] for name, col in cols.items()}, now, None) for i in range(len(rows))]
        self.provider.online_write_batch(self.config, self.view, data, None)


def _reason(err: BaseException) -> str:
    """Dead-letter reason: a validation error's own text, else the exception type and text."""
    return str(err) if isinstance(err, EventError) else f"{type(err).__name__}: {err}"


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
        self.window = TimeWindow(cfg.max_clock_skew_s, cfg.max_event_age_s)
        self.mapper = KeyMapper(self.spec, _known_keys(cfg.known_keys))
        self.repo = Path(repo)
        self.store = store(repo)
        self.writer: OnlineWriter | None = None  # resolved before the first write and again after a rebalance
        self.metrics = Metrics()
        self.states: dict[Any, RegionState] = {}
        self.partition_of: dict[Any, int] = {}  # key -> the partition it came from (single writer per key)
        self.rebalanced = False  # set by the rebalance listener: drop ``states`` before the next merge
        self.outages = 0  # consecutive rewound batches (backoff)
        self.stopping = False
        self.consumer = KafkaConsumer(
            bootstrap_servers=cfg.bootstrap, group_id=cfg.group, enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=cfg.max_records, client_id="larr-stream",
            reconnect_backoff_max_ms=2000, request_timeout_ms=30000)
        self.consumer.subscribe([cfg.topic], listener=_DropStateOnRebalance(self))
        self.producer = KafkaProducer(bootstrap_servers=cfg.bootstrap, acks="all", retries=10, linger_ms=5)

    # -- state ---------------------------------------------------------------------------------------
    def _read_states(self, keys: list[Any]) -> None:
        """Read the stored states of ``keys`` (not cached) in one online read."""
        resp = self.store.get_online_features(features=[f"{VIEW}:{f}" for f in self.columns],
                                             entity_rows=[{self.schema.key: k} for k in keys]).to_dict()
        for i, key in enumerate(keys):
            self.states[key] = RegionState.from_row(key, {f: resp[f][i] for f in self.columns}, self.spec)

    def _state(self, key: Any) -> RegionState:
        if key not in self.states:
            self._read_states([key])
        return self.states[key]

    def _prefetch(self, keys: list[Any]) -> None:
        """One read for every key of the batch whose state is not cached; if it fails other than by an outage,
        the keys are read one by one as they are merged, and a key whose read fails dead-letters its messages."""
        missing = [k for k in dict.fromkeys(keys) if k not in self.states]
        if not missing:
            return
        try:
            self._read_states(missing)
        except OUTAGES:
            raise
        except Exception as err:  # noqa: BLE001
            log.warning("reading %d states failed (%s): reading them one by one", len(missing), _reason(err))

    def _write(self, regions: set[Any]) -> None:
        assert self.writer is not None
        self.writer.write([self.states[r].to_row() for r in sorted(regions)])
        now = time.time()
        for r in regions:
            age = now - self.states[r].event_ms / 1000
            self.metrics.freshness.observe(age)
            self.metrics.freshness_values.append(age)
        self.metrics.written.inc(len(regions))

    def _dead_letter(self, batch: Batch, msg: Any, reason: str) -> None:
        """Send ``msg`` unchanged to the dead-letter topic; its future is kept so the commit can wait for it."""
        headers = [("error", reason.encode(errors="replace")[:1000]), ("origin_topic", msg.topic.encode()),
                   ("origin_partition", str(msg.partition).encode()), ("origin_offset", str(msg.offset).encode())]
        batch.dead.append((msg, self.producer.send(self.cfg.dlq, key=msg.key, value=msg.value, headers=headers)))
        log.warning("dead-lettering %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, reason)

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

    # -- one batch -----------------------------------------------------------------------------------
    def _parse(self, batch: Batch, now: datetime) -> list[tuple[Any, SceneEvent]]:
        """The batch's valid events with their messages, in order; an invalid message is dead-lettered."""
        events = []
        for msg in batch.records:
            try:
                events.append((msg, parse_event(msg.value, self.spec, self.window, now)))
            except OUTAGES:
                raise
            except Exception as err:  # noqa: BLE001 -- whatever this one message caused, it must not stop the stream
                self._dead_letter(batch, msg, _reason(err))
        return events

    def _check_partition(self, key: Any, partition: int) -> None:
        first = self.partition_of.setdefault(key, partition)
        if first != partition:
            self.partition_of[key] = partition
            self.metrics.split_keys.inc()
            log.error("%s=%r came on partition %d after partition %d: the producer does not key messages by %s, "
                      "so two members of the group may write this key at once and lose each other's updates",
                      self.schema.key, key, partition, first, self.schema.key)

    def _merge(self, batch: Batch, msg: Any, ev: SceneEvent) -> None:
        """Merge one parsed event into its key's state; any failure of its own dead-letters its message."""
        try:
            self._check_partition(ev.key, msg.partition)
            if self.mapper.apply(self._state(ev.key), ev):
                batch.changed.setdefault(ev.key, []).append(msg)
            else:
                batch.stale += 1
        except OUTAGES:
            raise
        except Exception as err:  # noqa: BLE001 -- whatever this one message caused, it must not stop the stream
            self._dead_letter(batch, msg, _reason(err))

    def _write_changed(self, batch: Batch) -> None:
        """Write the changed rows in one write; if that fails for a reason other than an outage, row by row, and
        dead-letter the messages of a row that still fails (its cached state is dropped: the store's stands).
        The writer is resolved first, outside: a repo without the view is no message's fault."""
        if not batch.changed:
            return
        if self.writer is None:
            self.writer = OnlineWriter(self.store, self.repo)
        try:
            self._write(set(batch.changed))
            return
        except OUTAGES:
            raise
        except Exception as err:  # noqa: BLE001
            log.warning("writing %d rows failed (%s): writing them one by one", len(batch.changed), _reason(err))
        for key, msgs in batch.changed.items():
            try:
                self._write({key})
            except OUTAGES:
                raise
            except Exception as err:  # noqa: BLE001
                self.states.pop(key, None)
                for msg in msgs:
                    self._dead_letter(batch, msg, f"online write of {self.schema.key}={key!r} failed: {_reason(err)}")

    def _await_dead_letters(self, batch: Batch) -> None:
        """Block until the broker acknowledged every dead letter of the batch (``flush()`` alone does not raise
        when a send failed); a failure raises a :class:`KafkaError`, an outage, so nothing is committed."""
        for msg, future in batch.dead:
            try:
                future.get(timeout=self.cfg.dead_letter_timeout_s)
            except KafkaError as err:
                log.error("dead letter of %s[%d]@%d not acknowledged by %s (%s): not committing", msg.topic,
                          msg.partition, msg.offset, self.cfg.dlq, _reason(err))
                raise

    def _process(self, batch: Batch) -> None:
        """Parse every message (one clock reading for the batch's time window), read the states the batch
        needs in one go, merge in offset order (newer-wins per group decides, not the order), write each
        changed key's row once."""
        events = self._parse(batch, datetime.now(UTC))
        self._prefetch([ev.key for _, ev in events])
        for msg, ev in events:
            self._merge(batch, msg, ev)
        self._write_changed(batch)
        self._await_dead_letters(batch)
        self._flush_backlog()

    def _commit(self, batch: Batch) -> None:
        """Commit the batch's offsets, then count it.  A commit refused because the group rebalanced leaves the
        batch to the partitions' new owner (a harmless replay)."""
        offsets = {tp: OffsetAndMetadata(last + 1, None, -1) for tp, last in batch.last.items()}
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as err:
            log.warning("commit refused (the group rebalanced; the new owner replays the batch): %s", err)
            self.states.clear()
            return
        self.outages = 0
        m = self.metrics
        m.consumed.inc(len(batch.records))
        m.dead.inc(len(batch.dead))
        m.stale.inc(batch.stale)

    def _rewind(self, batch: Batch, err: BaseException) -> None:
        """An outage: commit nothing, forget the cached states (the store holds what was written), seek back to
        the batch's first offsets and wait before the replay."""
        self.outages += 1
        self.metrics.outages.inc()
        delay = min(MAX_BACKOFF_S, 0.5 * 2 ** (self.outages - 1))
        log.error("online store or broker outage (%s): batch of %d not committed; replaying it in %.1f s",
                  _reason(err), len(batch.records), delay)
        self.states.clear()
        self.writer = None
        assigned = self.consumer.assignment()
        for tp, first in batch.first.items():
            if tp in assigned:
                self.consumer.seek(tp, first)
        until = time.time() + delay
        while not self.stopping and time.time() < until:
            time.sleep(0.1)

    def step(self) -> int:
        """Poll and process one batch; the number of messages it held (0: nothing arrived)."""
        polled = self.consumer.poll(timeout_ms=self.cfg.poll_ms, max_records=self.cfg.max_records)
        if self.rebalanced:
            self.rebalanced = False
            self.states.clear()
            self.writer = None  # the feature view is resolved again (a redeploy may have changed it)
        batch = Batch.of(polled)
        if not batch.records:
            return 0
        try:
            self._process(batch)
            self._commit(batch)
        except OUTAGES as err:
            self._rewind(batch, err)
        return len(batch.records)

    # -- loop ----------------------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        log.info("stop requested: finishing the current batch")
        self.stopping = True

    def _check_store(self) -> None:
        """Read one key before consuming: a repo without the view (or a store that cannot be read at all) must
        stop the consumer here, not dead-letter every message as if each were at fault."""
        probe = 0 if key_type(self.spec) == "int" else ""
        try:
            self.store.get_online_features(features=[f"{VIEW}:{f}" for f in self.columns],
                                           entity_rows=[{self.schema.key: probe}]).to_dict()
        except OUTAGES as err:  # down for now: the loop waits for it like for any outage
            log.error("online store unavailable at start (%s): consuming anyway, batches wait for it", _reason(err))

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self._check_store()
        if cfg.metrics_port:
            start_http_server(cfg.metrics_port, addr="127.0.0.1", registry=self.metrics.registry)
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        started = last_msg = last_log = time.time()
        while not self.stopping:
            n = self.step()
            now = time.time()
            if n or not self.consumer.assignment():  # still joining the group (e.g. a dead member's session
                last_msg = now                       # must time out first): not idle yet
            if cfg.max_idle_seconds is not None and now - last_msg > cfg.max_idle_seconds:
                break
            if cfg.max_seconds is not None and now - started > cfg.max_seconds:
                break
            if now - last_log > 5:
                self._log_progress()
                last_log = now
        self.close()
        return self.summary(time.time() - started)

    def _log_progress(self) -> None:
        self.metrics.lag.set(self._lag())
        m = self.metrics
        log.info("consumed %d, written %d, dead-lettered %d, lag %d", m.value("consumed"),
                 m.value("rows_written"), m.value("dead_lettered"), m.value("lag"))

    def close(self) -> None:
        """Leave the group and close the clients.  Nothing is committed here: every processed batch already
        is, and a batch rewound after an outage must not be."""
        self.producer.flush()
        self.metrics.lag.set(self._lag())
        self.consumer.close(autocommit=False)
        self.producer.close()

    def summary(self, seconds: float) -> dict[str, Any]:
        import numpy as np

        f = np.array(self.metrics.freshness_values) if self.metrics.freshness_values else np.array([np.nan])
        m = self.metrics
        return {"consumed": m.value("consumed"), "written": m.value("rows_written"),
                "dead_lettered": m.value("dead_lettered"), "stale": m.value("stale_events"),
                "outages": m.value("outages"), "lag": m.value("lag"), "split_keys": m.value("split_keys"),
                "seconds": round(seconds, 2),
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
