"""How the streaming consumer fails: real Kafka broker, real Feast SQLite store, loopback only.

A message that cannot be processed -- invalid, outside the event-time window, or failing anywhere after it
parsed -- is dead-lettered with its reason and committed past; an outage of the store or of the dead-letter
topic commits nothing and waits; a rebalance drops the cached states; a missing ``--known-keys`` file is a
user error.  Each test here failed on the consumer before these rules (see the commit that added them)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from larr import feature_store as fsx
from larr.realtime.events import EventError, TimeWindow, make_event, parse_event
from larr.spec import spec_path
from larr.text import value_key
from streaming.consumer import ConsumerConfig, SceneStateConsumer, committed_offsets
from streaming.simulate import ensure_topics
from tests.test_streaming import LARR, SPEC, assert_state_is_newest, consume, fully_committed, online_state

NOW = datetime(2024, 7, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def sqlite_repo(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    features = tmp_path_factory.mktemp("failure_features")
    fsx.export_region_scene(tiny_world, features, SPEC)
    r = fsx.prepare_repo(tmp_path_factory.mktemp("failure_repo"), features, "sqlite")
    fsx.apply(r)
    return r


def send(bootstrap: str, topic: str, values: list[bytes], partition: int | None = None) -> None:
    ensure_topics(bootstrap, [topic])
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for v in values:
        p.send(topic, value=v, key=str(json.loads(v).get("region_id", "x")).encode(), partition=partition)
    p.flush()
    p.close()


def dead_letters(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    """Every message on ``<topic>.dlq`` with its headers."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(f"{topic}.dlq", p) for p in c.partitions_for_topic(f"{topic}.dlq") or []]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    ends = c.end_offsets(parts)
    out = []
    while any(c.position(tp) < ends[tp] for tp in parts):
        out += [(m.value, dict(m.headers)) for msgs in c.poll(timeout_ms=1000).values() for m in msgs]
    c.close()
    return out


class Running:
    """``larr stream consume`` in a child process whose log is collected as it comes."""

    def __init__(self, repo: Path, bootstrap: str, topic: str, *extra: str, idle: float = 3.0):
        self.proc = consume(repo, bootstrap, topic, *extra, idle=idle, wait=False)
        self.log: list[str] = []
        self.reader = threading.Thread(target=lambda: self.log.extend(iter(self.proc.stderr.readline, "")))
        self.reader.start()

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while not any(text in line for line in list(self.log)):
            assert time.time() < deadline and self.proc.poll() is None, "".join(self.log)[-3000:]
            time.sleep(0.2)

    def finish(self) -> tuple[dict, str]:
        out = self.proc.stdout.read()
        self.proc.wait(timeout=300)
        self.reader.join()
        err = "".join(self.log)
        assert self.proc.returncode == 0, err[-3000:]
        return json.loads(out.strip().splitlines()[-1]), err


# ------------------------------------------------------------------------------ validation, no broker
@pytest.mark.parametrize("raw,reason", [
    (make_event("weather", 2**70, NOW, condition="snow", temperature_c=1.0), "'region_id' out of range: .* int64"),
    (make_event("time_slot", 1, NOW, hour=-(2**63) - 1), "'hour' out of range: .* int64"),
    (b'{"schema_version": 1, "type": "weather", "region_id": 1, "event_time": "2024-07-01T00:00:00", '
     b'"condition": "snow", "temperature_c": ' + b"9" * 400 + b"}", "'temperature_c' out of range"),
    (b'{"schema_version": 1, "type": "weather", "region_id": 1, "event_time": "2024-07-01T00:00:00", '
     b'"condition": "\\ud800", "temperature_c": 1}', "'condition' is not valid UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    (b'{"region_id": ' + b"1" * 5000 + b"}", "not JSON"),
    (make_event("weather", 1, datetime(9999, 12, 31, 23, tzinfo=UTC), condition="snow", temperature_c=1.0).replace(
        b"+00:00", b"-05:00"), "lies outside years 1..9999"),
])
def test_values_the_store_cannot_hold_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        parse_event(raw, SPEC)


def test_the_event_time_window() -> None:
    window = TimeWindow(max_skew_s=300, max_age_s=7 * 86400)

    def event(when: datetime) -> bytes:
        return make_event("time_slot", 1, when, hour=3)

    for ok in (NOW, NOW + timedelta(seconds=299), NOW - timedelta(days=6.9)):
        assert parse_event(event(ok), SPEC, window, NOW).event_time == ok
    for bad, reason in [(datetime(9999, 12, 31, tzinfo=UTC), r"ahead of the consumer's clock \(max clock skew 300 s\)"),
                        (NOW + timedelta(seconds=301), "301 s ahead"),
                        (NOW - timedelta(days=8), r"8.0 days old \(max event age 7.0 days\)")]:
        with pytest.raises(EventError, match=reason):
            parse_event(event(bad), SPEC, window, NOW)
    assert parse_event(event(datetime(9999, 12, 31, tzinfo=UTC)), SPEC).event_time.year == 9999, "no window: schema only"


# ------------------------------------------------------------------------------ per-message failures
def test_a_message_the_store_cannot_hold_is_dead_lettered(sqlite_repo: Path, kafka_bootstrap: str) -> None:
    """region_id 2**70 parsed before, then the online-store read raised 'Value out of range' and killed the
    consumer before its commit, and every restart met the same message again."""
    topic, now = "f-int64", datetime.now(UTC)
    send(kafka_bootstrap, topic, [make_event("weather", 2**70, now, condition="snow", temperature_c=-3.0),
                                  make_event("weather", 31, now, condition="snow", temperature_c=-3.0)])
    summary = consume(sqlite_repo, kafka_bootstrap, topic, idle=2)
    assert summary["dead_lettered"] == 1 and summary["consumed"] == 2
    [(_, headers)] = dead_letters(kafka_bootstrap, topic)
    assert b"'region_id' out of range" in headers["error"] and b"int64" in headers["error"]
    assert online_state(sqlite_repo, [31])[31]["weather"] == "snow"
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


def test_a_failure_after_parsing_is_dead_lettered_with_its_reason(sqlite_repo: Path, kafka_bootstrap: str,
                                                                   tmp_path: Path) -> None:
    """Whatever a valid message makes fail later (here a spec whose weather text formats a non-integral
    temperature with ``d``) dead-letters that message, with the error, and the stream goes on."""
    data = yaml.safe_load(spec_path("food_delivery").read_text())
    data["fields"]["SCENE_weather"] = {"entity": "scene", "template": "{weather}", "realtime": True, "doc": "w",
                                       "cases": [{"when": "temperature_c > 35",
                                                  "template": "{weather}, {temperature_c:d} degrees"}]}
    spec = tmp_path / "hot.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    topic, now = "f-late", datetime.now(UTC)
    send(kafka_bootstrap, topic, [make_event("weather", 32, now - timedelta(seconds=1), condition="sunny",
                                             temperature_c=20.0),
                                  make_event("weather", 32, now, condition="sunny", temperature_c=38.5),
                                  make_event("time_slot", 32, now, hour=8)])
    summary = consume(sqlite_repo, kafka_bootstrap, topic, "--spec", str(spec), idle=2)
    assert summary["dead_lettered"] == 1 and summary["consumed"] == 3
    [(value, headers)] = dead_letters(kafka_bootstrap, topic)
    assert json.loads(value)["temperature_c"] == 38.5
    assert headers["error"] == b"ValueError: Unknown format code 'd' for object of type 'float'"
    s = online_state(sqlite_repo, [32])[32]
    assert s["temperature_c"] == 20.0 and s["time_slot"] == "breakfast", "the failed event changed nothing"
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


def test_events_outside_the_time_window_are_dead_lettered(sqlite_repo: Path, kafka_bootstrap: str) -> None:
    """One event dated 9999-12-31 froze its region's weather forever under newer-wins; the window comes from
    the config (``--set stream.max_clock_skew_seconds=30``)."""
    topic, now = "f-window", datetime.now(UTC)
    send(kafka_bootstrap, topic, [
        make_event("weather", 33, datetime(9999, 12, 31, tzinfo=UTC), condition="heavy rain", temperature_c=5.0),
        make_event("weather", 33, now + timedelta(seconds=120), condition="heavy rain", temperature_c=6.0),
        make_event("weather", 33, now - timedelta(days=30), condition="heavy rain", temperature_c=7.0),
        make_event("weather", 33, now, condition="sunny", temperature_c=25.0)])
    summary = consume(sqlite_repo, kafka_bootstrap, topic, "--set", "stream.max_clock_skew_seconds=30", idle=2)
    assert summary["dead_lettered"] == 3
    errors = [h["error"].decode() for _, h in dead_letters(kafka_bootstrap, topic)]
    assert sum("ahead of the consumer's clock (max clock skew 30 s)" in e for e in errors) == 2, errors
    assert sum("days old (max event age 7.0 days)" in e for e in errors) == 1, errors
    s = online_state(sqlite_repo, [33])[33]
    assert s["weather"] == "sunny" and s["weather_ts"] == int(now.timestamp() * 1000)


def test_keys_stay_exact_when_a_batch_mixes_rows_with_and_without_a_group(sqlite_repo: Path,
                                                                           kafka_bootstrap: str) -> None:
    """Feast serialises a pushed int64 column holding a missing value through float64: a region without a
    time slot in the same push rounded the other regions' slot keys (they exceed 2**53)."""
    topic, now = "f-exact", datetime.now(UTC)
    send(kafka_bootstrap, topic, [make_event("weather", 34, now, condition="snow", temperature_c=-1.0),
                                  make_event("time_slot", 35, now, hour=8)], partition=0)
    consume(sqlite_repo, kafka_bootstrap, topic, idle=2)
    s = online_state(sqlite_repo, [34, 35])
    assert s[35]["slot_key"] == value_key("SCENE_slot", "breakfast") > 2**53
    assert s[34]["weather_key"] == value_key("SCENE_weather", "snow") and s[34]["slot_key"] is None


def test_one_bad_message_in_a_batch_is_the_only_one_dead_lettered(sqlite_repo: Path, kafka_bootstrap: str) -> None:
    """Batching parses every message of a poll before it merges any: a bad one in the middle of a batch is
    dead-lettered alone and every other event of the batch, before and after it, is written."""
    topic, now = "f-batch-bad", datetime.now(UTC)
    good = [(70 + i % 4, now - timedelta(seconds=100 - i), ("sunny", "snow", "heavy rain")[i % 3], float(i))
            for i in range(40)]
    values = [make_event("weather", r, t, condition=c, temperature_c=x) for r, t, c, x in good]
    values.insert(20, b'{"schema_version": 1, "type": "weather", "region_id": 71, "event_time": "soon"}')
    send(kafka_bootstrap, topic, values, partition=0)
    summary = consume(sqlite_repo, kafka_bootstrap, topic, idle=2)
    assert summary["consumed"] == 41 and summary["dead_lettered"] == 1 and summary["written"] == 4
    [(value, headers)] = dead_letters(kafka_bootstrap, topic)
    assert value == values[20] and b"not ISO-8601" in headers["error"]
    newest = {(r, "weather"): (int(t.timestamp() * 1000), {"condition": c, "temperature_c": x})
              for r, t, c, x in good}
    assert_state_is_newest(sqlite_repo, newest)
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


class _RefusesRegion:
    """An online writer that refuses (ValueError, not an outage) every write holding region ``bad``."""

    calls: list[list[int]] = []

    def __init__(self, writer, bad: int):
        self.writer, self.bad = writer, bad

    def write(self, rows: list[dict]) -> None:
        self.calls.append(sorted(r["region_id"] for r in rows))
        if any(r["region_id"] == self.bad for r in rows):
            raise ValueError(f"row of region {self.bad} refused")
        self.writer.write(rows)


def test_a_row_the_store_refuses_dead_letters_only_its_messages(sqlite_repo: Path, kafka_bootstrap: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """When the one write of a batch fails for a reason other than an outage, the rows are written one by one:
    the regions that can be written are, and only the messages of the refused row are dead-lettered."""
    import streaming.consumer as sc

    real = sc.OnlineWriter
    monkeypatch.setattr(sc, "OnlineWriter", lambda store, repo: _RefusesRegion(real(store, repo), bad=81))
    refusing = _RefusesRegion
    refusing.calls = []
    topic, now = "f-row-refused", datetime.now(UTC)
    regions = [80, 81, 82, 81, 80]
    send(kafka_bootstrap, topic, [make_event("weather", r, now - timedelta(seconds=10 - i), condition="snow",
                                             temperature_c=float(i)) for i, r in enumerate(regions)], partition=0)
    cons = SceneStateConsumer(ConsumerConfig(bootstrap=kafka_bootstrap, topic=topic, group=f"g-{topic}",
                                             poll_ms=200), sqlite_repo)
    try:
        _step_until(cons, lambda: cons.metrics.value("consumed") == 5)
    finally:
        cons.close()
    assert refusing.calls[0] == [80, 81, 82], "one write for the batch first"
    assert sorted(map(tuple, refusing.calls[1:])) == [(80,), (81,), (82,)], "then row by row"
    assert cons.metrics.value("dead_lettered") == 2 and cons.metrics.value("rows_written") == 2
    dead = dead_letters(kafka_bootstrap, topic)
    assert sorted(json.loads(v)["temperature_c"] for v, _ in dead) == [1.0, 3.0]
    assert all(h["error"] == b"online write of region_id=81 failed: ValueError: row of region 81 refused"
               for _, h in dead)
    s = online_state(sqlite_repo, [80, 81, 82])
    assert (s[80]["temperature_c"], s[82]["temperature_c"], s[81]["weather"]) == (4.0, 2.0, None)
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


def test_a_key_on_two_partitions_is_reported(sqlite_repo: Path, kafka_bootstrap: str) -> None:
    """A producer that does not key messages by region breaks the single writer per region (two members could
    write one region and lose each other's updates): the consumer counts and logs it, and still merges."""
    topic, now = "f-split", datetime.now(UTC)
    ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2)
    send(kafka_bootstrap, topic, [make_event("weather", 90, now - timedelta(seconds=2), condition="snow",
                                             temperature_c=1.0)], partition=0)
    send(kafka_bootstrap, topic, [make_event("time_slot", 90, now, hour=8),
                                  make_event("time_slot", 91, now, hour=8)], partition=1)
    run = Running(sqlite_repo, kafka_bootstrap, topic, idle=3)
    summary, log = run.finish()
    assert summary["split_keys"] == 1 and summary["consumed"] == 3 and summary["dead_lettered"] == 0
    assert "region_id=90 came on partition" in log and "does not key messages by region_id" in log
    s = online_state(sqlite_repo, [90])[90]
    assert s["weather"] == "snow" and s["time_slot"] == "breakfast"


# ------------------------------------------------------------------------------ outages commit nothing
def test_an_unacknowledged_dead_letter_is_not_committed(sqlite_repo: Path, kafka_bootstrap: str) -> None:
    """The dead-letter topic refuses the message (max.message.bytes too small): the offset stays uncommitted
    until the dead letter is acknowledged, then it is committed."""
    topic = "f-dlq-refused"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1), NewTopic(f"{topic}.dlq", 1, 1,
                                                         topic_configs={"max.message.bytes": "64"})])
    send(kafka_bootstrap, topic, [b'{"schema_version": 1, "type": "weather", "region_id": 36}'])
    run = Running(sqlite_repo, kafka_bootstrap, topic, "--max-seconds", "8", idle=60)
    summary, log = run.finish()
    assert committed_offsets(kafka_bootstrap, topic, f"g-{topic}") == {0: 0}, "committed past a lost dead letter"
    assert "not acknowledged by f-dlq-refused.dlq" in log and "outage" in log
    assert summary["dead_lettered"] == 0 and summary["outages"] >= 1
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, f"{topic}.dlq",
                                        configs={"max.message.bytes": "1048588"})])
    admin.close()
    summary = consume(sqlite_repo, kafka_bootstrap, topic, idle=2)
    assert summary["dead_lettered"] == 1 and committed_offsets(kafka_bootstrap, topic, f"g-{topic}") == {0: 1}
    assert [h["error"] for _, h in dead_letters(kafka_bootstrap, topic)] == [b"missing field 'event_time'"]


def test_an_outage_of_the_store_pauses_without_dead_letters(sqlite_repo: Path, kafka_bootstrap: str) -> None:
    """A locked SQLite file is the store's fault, not the messages': nothing is dead-lettered or committed
    while it lasts, and the consumer carries on once it is over."""
    topic, now = "f-outage", datetime.now(UTC)
    events = [(37 + i % 3, now - timedelta(seconds=60 - i), ("sunny", "snow")[i % 2], float(i)) for i in range(30)]
    send(kafka_bootstrap, topic, [make_event("weather", r, t, condition=c, temperature_c=x) for r, t, c, x in events])
    lock = sqlite3.connect(sqlite_repo / "online_store.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        run = Running(sqlite_repo, kafka_bootstrap, topic, idle=4)
        run.wait_for("online store or broker outage (OperationalError: database is locked)")
        assert sum(committed_offsets(kafka_bootstrap, topic, f"g-{topic}").values()) == 0
    finally:
        lock.execute("COMMIT")
        lock.close()
    summary, _ = run.finish()
    assert summary["outages"] >= 1 and summary["dead_lettered"] == 0 and summary["consumed"] == 30
    newest = {(r, "weather"): (int(t.timestamp() * 1000), {"condition": c, "temperature_c": x})
              for r, t, c, x in events}
    assert_state_is_newest(sqlite_repo, newest)
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


# ------------------------------------------------------------------------------ rebalance
def _step_until(consumer: SceneStateConsumer, done, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not done():
        assert time.time() < deadline, "timed out"
        consumer.step()


def test_a_rebalance_drops_the_cached_states(sqlite_repo: Path, kafka_bootstrap: str) -> None:
    """Member A caches region 40; member B joins, takes a partition and writes newer weather for region 40;
    B leaves and A merges a slot event for region 40.  A cached state would write A's old weather back."""
    topic, group, t0 = "f-rebalance", "g-f-rebalance", datetime.now(UTC) - timedelta(minutes=10)
    ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=2)
    send(kafka_bootstrap, topic, [make_event("weather", 40, t0, condition="sunny", temperature_c=20.0)], partition=0)
    a = SceneStateConsumer(ConsumerConfig(bootstrap=kafka_bootstrap, topic=topic, group=group, poll_ms=200),
                           sqlite_repo)
    try:
        _step_until(a, lambda: a.metrics.value("consumed") == 1)
        assert 40 in a.states
        b = consume(sqlite_repo, kafka_bootstrap, topic, group=group, idle=6, wait=False)
        _step_until(a, lambda: len(a.consumer.assignment()) == 1)
        [theirs] = {0, 1} - {tp.partition for tp in a.consumer.assignment()}
        send(kafka_bootstrap, topic, [make_event("weather", 40, t0 + timedelta(minutes=1), condition="heavy rain",
                                                 temperature_c=10.0)], partition=theirs)
        _step_until(a, lambda: b.poll() is not None)
        assert b.returncode == 0, b.stderr.read()[-3000:]
        assert json.loads(b.stdout.read().strip().splitlines()[-1])["consumed"] == 1
        _step_until(a, lambda: len(a.consumer.assignment()) == 2)
        send(kafka_bootstrap, topic, [make_event("time_slot", 40, t0 + timedelta(minutes=2), hour=8)], partition=0)
        _step_until(a, lambda: a.metrics.value("consumed") == 2)
    finally:
        a.close()
    s = online_state(sqlite_repo, [40])[40]
    assert s["weather"] == "heavy rain" and s["weather_ts"] == int((t0 + timedelta(minutes=1)).timestamp() * 1000)
    assert s["slot_ts"] == int((t0 + timedelta(minutes=2)).timestamp() * 1000)


# ------------------------------------------------------------------------------ user errors
def test_a_missing_known_keys_file_is_a_user_error(sqlite_repo: Path, kafka_bootstrap: str, tmp_path: Path) -> None:
    """A typo in --known-keys silently treated every key as known: no band fallback, no backlog."""
    typo = tmp_path / "scene_value_embedings.parquet"
    p = subprocess.run([*LARR, "stream", "consume", "--repo", str(sqlite_repo), "--bootstrap", kafka_bootstrap,
                        "--topic", "f-typo", "--known-keys", str(typo), "--max-seconds", "5"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.strip() == (f"larr stream: --known-keys {typo}: no such file (give the "
                                "scene_value_embeddings.parquet that `larr embed` wrote, or leave the option out)")
    with pytest.raises(FileNotFoundError, match="known keys .*scene_value_embedings.parquet: no such file"):
        SceneStateConsumer(ConsumerConfig(known_keys=typo), sqlite_repo)
