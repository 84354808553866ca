"""Streaming: real Kafka broker, real Redis, real Feast. Bounded in time, loopback only.

The event schema, the state and its online row come from the spec's ``realtime`` section: the tests without
a broker check that derivation (a variant spec needs no code change, derived events key like the log, the
history export follows the log's own day types, the doc is generated)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kafka import KafkaConsumer

from larr import feature_store as fsx
from larr.descriptions import derived_column, value_of
from larr.realtime.events import DOC, EventError, events_markdown, make_event, parse_event
from larr.realtime.state import KeyMapper, RegionState, state_columns, state_frame, state_schema
from larr.spec import Spec, SpecError, load_spec, parse_spec, spec_path
from larr.text import registry, value_key
from streaming.consumer import VIEW, ConsumerConfig, SceneStateConsumer, committed_offsets
from streaming.simulate import MALFORMED, ensure_topics, simulate
from tests.conftest import kafka_dir

ROOT = Path(__file__).resolve().parents[1]
LARR = [sys.executable, "-m", "cli"]
SPEC = load_spec("food_delivery")
STATE_FIELDS = state_columns(SPEC)
# The online row the consumer pushes, as before the spec drove it: nothing downstream may notice.
TODAYS_ROW = ["region_id", "event_timestamp", "weather", "temperature_c", "weather_key", "temp_key", "weather_ts",
              "time_slot", "slot_key", "slot_ts", "day_type", "day_key", "context_ts"]


@pytest.fixture(scope="module", params=["redis"])
def repo(request: pytest.FixtureRequest, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    features = tmp_path_factory.mktemp("stream_features")
    fsx.export_region_scene(tiny_world, features, SPEC)
    redis = request.getfixturevalue("redis_url")
    r = fsx.prepare_repo(tmp_path_factory.mktemp("stream_repo"), features, "redis", redis, project="streaming")
    fsx.apply(r)
    return r


@pytest.fixture(scope="module")
def sqlite_repo(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    features = tmp_path_factory.mktemp("stream_features_sqlite")
    fsx.export_region_scene(tiny_world, features, SPEC)
    r = fsx.prepare_repo(tmp_path_factory.mktemp("stream_repo_sqlite"), features, "sqlite")
    fsx.apply(r)
    return r


def consume(repo: Path, bootstrap: str, topic: str, *extra: str, idle: float = 4.0, wait: bool = True,
            group: str | None = None) -> subprocess.Popen | dict:
    cmd = [*LARR, "stream", "consume", "--repo", str(repo), "--bootstrap", bootstrap, "--topic", topic,
           "--group", group or f"g-{topic}", "--max-idle-seconds", str(idle), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def online_state(repo: Path, regions: list[int]) -> dict[int, dict]:
    resp = fsx.store(repo).get_online_features(features=[f"{VIEW}:{f}" for f in STATE_FIELDS],
                                               entity_rows=[{"region_id": r} for r in regions]).to_dict()
    return {r: {f: resp[f][i] for f in STATE_FIELDS} for i, r in enumerate(regions)}


def assert_state_is_newest(repo: Path, newest: dict) -> None:
    regions = sorted({r for r, _ in newest})
    state = online_state(repo, regions)
    for (region, group), (ms, payload) in newest.items():
        s = state[region]
        if group == "weather":
            assert s["weather_ts"] == ms and s["weather"] == payload["condition"], (region, s, payload)
            assert s["temperature_c"] == pytest.approx(payload["temperature_c"])
            assert s["weather_key"] == value_key("SCENE_weather", payload["condition"])
        elif group == "slot":
            assert s["slot_ts"] == ms, (region, s, payload)
        else:
            assert s["context_ts"] == ms and s["day_type"] == payload["day_type"]


def fully_committed(bootstrap: str, topic: str, group: str) -> bool:
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        from kafka import TopicPartition

        parts = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic)]
        ends = c.end_offsets(parts)
    finally:
        c.close()
    committed = committed_offsets(bootstrap, topic, group)
    return all(committed[tp.partition] == ends[tp] for tp in parts)


@pytest.mark.parametrize("raw,reason", [
    (MALFORMED[0], "not JSON"), (MALFORMED[1], "missing field 'event_time'"),
    (MALFORMED[2], "unsupported schema_version 99"), (MALFORMED[3], "field 'region_id' must be int"),
    (MALFORMED[4], "unknown type 'tornado'"), (MALFORMED[5], "not ISO-8601"),
])
def test_event_errors_name_the_problem(raw: bytes, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        parse_event(raw, SPEC)


def test_ten_thousand_events_final_state_is_the_newest(repo: Path, kafka_bootstrap: str, tiny_world: Path) -> None:
    topic = "t-10k"
    sent = simulate(kafka_bootstrap, topic, tiny_world, rate=0, count=10_000, out_of_order_frac=0.05, seed=1)
    summary = consume(repo, kafka_bootstrap, topic)
    assert summary["consumed"] == 10_000 and summary["lag"] == 0 and summary["dead_lettered"] == 0
    assert_state_is_newest(repo, sent["newest"])
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


def produce_scrambled(bootstrap: str, topic: str, n: int, regions: range, seed: int) -> None:
    """``n`` valid events over ``regions`` whose event times are a random permutation (100 ms apart, the
    newest an hour ago): each (region, group)'s newest event lies anywhere in the stream and is followed by
    older ones.  With wall-clock times the newest event per key is the last one, so a write lost after its
    offset was committed would be repaired by a later event; here nothing repairs it."""
    from kafka import KafkaProducer

    ensure_topics(bootstrap, [topic, f"{topic}.dlq"])
    rng = random.Random(seed)
    base = datetime.now(UTC) - timedelta(hours=1) - timedelta(milliseconds=100 * n)
    order = rng.sample(range(n), n)
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i in range(n):
        region, kind = rng.choice(regions), rng.choice(["weather", "time_slot", "region_context"])
        payload = {"weather": lambda: {"condition": rng.choice(["sunny", "heavy rain", "snow"]),
                                       "temperature_c": round(rng.uniform(-10, 40), 1)},
                   "time_slot": lambda: {"hour": rng.randrange(24)},
                   "region_context": lambda: {"day_type": rng.choice(["weekday", "weekend", "holiday"])}}[kind]()
        when = base + timedelta(milliseconds=100 * order[i])
        p.send(topic, key=str(region).encode(), value=make_event(kind, region, when, **payload))
    p.flush()
    p.close()


def newest_events(bootstrap: str, topic: str, upto: dict[int, int] | None = None) -> dict:
    """The newest event per (region, group) among the topic's messages below ``upto`` (offset per partition;
    None: all of them), as ``assert_state_is_newest`` takes it."""
    from kafka import TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic)]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    ends = c.end_offsets(parts)
    groups = {name: ev.group for name, ev in SPEC.realtime.events.items()}
    newest: dict = {}
    while any(c.position(tp) < ends[tp] for tp in parts):
        for tp, msgs in c.poll(timeout_ms=1000).items():
            for m in msgs:
                if upto is not None and m.offset >= upto.get(tp.partition, 0):
                    continue
                ev = parse_event(m.value, SPEC)
                k = (ev.key, groups[ev.type])
                if k not in newest or ev.event_ms > newest[k][0]:
                    newest[k] = (ev.event_ms, ev.payload)
    c.close()
    return newest


def assert_committed_events_are_written(repo: Path, bootstrap: str, topic: str, group: str) -> None:
    """Every event below the group's committed offsets is in the online store: its (region, group) holds it or
    a newer one.  A consumer that commits before it writes fails this when stopped between the two."""
    newest = newest_events(bootstrap, topic, committed_offsets(bootstrap, topic, group))
    state = online_state(repo, sorted({r for r, _ in newest}))
    behind = [(k, ms, state[k[0]][f"{k[1]}_ts"]) for k, (ms, _) in newest.items()
              if (state[k[0]][f"{k[1]}_ts"] or -1) < ms]
    assert not behind, f"{len(behind)} committed events are not in the online store, e.g. {behind[:3]}"
    assert_state_is_newest(repo, {k: v for k, v in newest.items() if state[k[0]][f"{k[1]}_ts"] == v[0]})


@contextmanager
def writes_paused(redis_url: str, seconds: float):
    """Redis answers reads but holds every write (CLIENT PAUSE WRITE) for up to ``seconds``: a consumer that
    reaches its write waits there, so a signal sent meanwhile lands between its merge and its write."""
    import redis

    host, port = redis_url.split(":")
    r = redis.Redis(host=host, port=int(port))
    r.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "WRITE")
    try:
        yield
    finally:
        r.execute_command("CLIENT", "UNPAUSE")
        r.close()


def wait_committed(bootstrap: str, topic: str, group: str, at_least: int, timeout: float = 120) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = sum(committed_offsets(bootstrap, topic, group).values())
        if done >= at_least:
            return done
        time.sleep(0.2)
    raise AssertionError(f"the consumer committed fewer than {at_least} messages in {timeout} s")


def test_sigkill_never_leaves_a_committed_event_unwritten(repo: Path, kafka_bootstrap: str, redis_url: str) -> None:
    topic, group, n = "t-kill", "g-t-kill", 6_000
    produce_scrambled(kafka_bootstrap, topic, n, range(1000, 1400), seed=2)
    proc = consume(repo, kafka_bootstrap, topic, "--max-records", "20", wait=False, idle=30)
    wait_committed(kafka_bootstrap, topic, group, 300)
    with writes_paused(redis_url, 30):  # checked before any write can resume
        time.sleep(1.5)  # the consumer has merged a batch and waits in its write
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert 0 < sum(committed_offsets(kafka_bootstrap, topic, group).values()) < n, "killed mid-stream"
        assert_committed_events_are_written(repo, kafka_bootstrap, topic, group)
    summary = consume(repo, kafka_bootstrap, topic)  # the restart replays the uncommitted rest
    assert summary["lag"] == 0 and summary["dead_lettered"] == 0
    assert_state_is_newest(repo, newest_events(kafka_bootstrap, topic))
    assert fully_committed(kafka_bootstrap, topic, group)


def test_malformed_events_go_to_the_dead_letter_topic(repo: Path, kafka_bootstrap: str, tiny_world: Path) -> None:
    topic = "t-dlq"
    sent = simulate(kafka_bootstrap, topic, tiny_world, rate=0, count=600, malformed_frac=0.2, seed=3)
    summary = consume(repo, kafka_bootstrap, topic)
    assert summary["dead_lettered"] == sent["malformed"] > 50
    assert_state_is_newest(repo, sent["newest"])
    dlq = KafkaConsumer(f"{topic}.dlq", bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                        consumer_timeout_ms=5000, group_id="dlq-reader")
    messages = list(dlq)
    dlq.close()
    assert len(messages) == sent["malformed"]
    headers = dict(messages[0].headers)
    assert {"error", "origin_topic", "origin_partition", "origin_offset"} <= set(headers)
    assert headers["origin_topic"] == topic.encode() and headers["error"]
    assert messages[0].value in MALFORMED


@pytest.mark.parametrize("store_kind", ["sqlite", "redis"])
def test_out_of_order_events_do_not_regress(store_kind: str, repo: Path, sqlite_repo: Path,
                                            kafka_bootstrap: str) -> None:
    target = repo if store_kind == "redis" else sqlite_repo
    topic = f"t-ooo-{store_kind}"
    ensure_topics(kafka_bootstrap, [topic])
    from kafka import KafkaProducer

    now = datetime.now(UTC)
    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    p.send(topic, key=b"2", value=make_event("weather", 2, now, condition="heavy rain", temperature_c=12.0))
    p.flush()
    consume(target, kafka_bootstrap, topic, idle=2)
    p.send(topic, key=b"2", value=make_event("weather", 2, now - timedelta(hours=1), condition="sunny",
                                             temperature_c=35.0))
    p.flush()
    p.close()
    summary = consume(target, kafka_bootstrap, topic, idle=2)
    assert summary["stale"] == 1 and summary["written"] == 0
    s = online_state(target, [2])[2]
    assert s["weather"] == "heavy rain" and s["weather_ts"] == int(now.timestamp() * 1000)


@pytest.mark.parametrize("store_kind", ["sqlite", "redis"])
def test_one_batch_keeps_newer_wins_whatever_the_order(store_kind: str, repo: Path, sqlite_repo: Path,
                                                       kafka_bootstrap: str) -> None:
    """Several events of one region in one batch become one row: per group the newest event wins whether it
    comes first or last in the batch, and a group the batch does not touch keeps what the store held."""
    target = repo if store_kind == "redis" else sqlite_repo
    topic = f"t-batch-{store_kind}"
    ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=1)
    from kafka import KafkaProducer

    t0 = datetime.now(UTC) - timedelta(minutes=5)
    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    p.send(topic, key=b"61", value=make_event("region_context", 61, t0, day_type="holiday"))
    p.flush()
    consume(target, kafka_bootstrap, topic, idle=2)  # region 61's context is in the store, not in the next batch
    ms = {dt: int((t0 + timedelta(seconds=dt)).timestamp() * 1000) for dt in (1, 2, 3)}
    batch = [  # region 61: newest weather first; region 62: newest weather last; a slot for each
        (61, "weather", 3, {"condition": "snow", "temperature_c": -4.0}),
        (61, "weather", 1, {"condition": "sunny", "temperature_c": 30.0}),
        (61, "time_slot", 2, {"hour": 8}),
        (61, "weather", 2, {"condition": "heavy rain", "temperature_c": 10.0}),
        (62, "weather", 1, {"condition": "sunny", "temperature_c": 30.0}),
        (62, "time_slot", 2, {"hour": 20}),
        (62, "weather", 2, {"condition": "heavy rain", "temperature_c": 10.0}),
        (62, "weather", 3, {"condition": "snow", "temperature_c": -4.0}),
    ]
    for region, kind, dt, payload in batch:
        p.send(topic, key=str(region).encode(), value=make_event(kind, region, t0 + timedelta(seconds=dt), **payload))
    p.flush()
    p.close()
    summary = consume(target, kafka_bootstrap, topic, idle=2)
    assert summary["consumed"] == 8 and summary["dead_lettered"] == 0
    assert summary["written"] == 2, "one row per region per batch"
    assert summary["stale"] == 2, "the two weather events of region 61 older than its first one"
    s = online_state(target, [61, 62])
    for region in (61, 62):
        assert (s[region]["weather"], s[region]["temperature_c"], s[region]["weather_ts"]) == ("snow", -4.0, ms[3])
        assert s[region]["weather_key"] == value_key("SCENE_weather", "snow") > 2**53
        assert s[region]["slot_ts"] == ms[2]
    assert (s[61]["time_slot"], s[62]["time_slot"]) == ("breakfast", "dinner")
    assert s[61]["day_type"] == "holiday" and s[61]["context_ts"] == int(t0.timestamp() * 1000)
    assert s[62]["day_type"] is None and s[62]["day_key"] is None and s[62]["context_ts"] is None
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


def test_one_key_one_partition_one_writer(repo: Path, kafka_bootstrap: str, tiny_world: Path) -> None:
    """The single writer per region that the consumer relies on (and that makes Feast's Redis ``skip_dedup``
    safe, see streaming.consumer.OnlineWriter): the simulator keys messages by region, so each region lies in
    one partition, and two consumer processes of one group on 4 partitions (however the group's joins and
    rebalances fall) never meet a region on a second partition; together they commit every event once and
    the store ends up with the newest event of every (region, group)."""
    topic, group = "t-one-writer", "g-t-one-writer"
    ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=4)
    sent = simulate(kafka_bootstrap, topic, tiny_world, rate=0, count=4_000, seed=8)
    procs = [consume(repo, kafka_bootstrap, topic, group=group, idle=8, wait=False) for _ in range(2)]
    summaries = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
            summaries.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert sum(s["consumed"] for s in summaries) == 4_000 and all(s["split_keys"] == 0 for s in summaries)
    c = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    from kafka import TopicPartition

    parts = [TopicPartition(topic, p) for p in range(4)]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    ends = c.end_offsets(parts)
    partitions_of: dict[int, set[int]] = {}
    while any(c.position(tp) < ends[tp] for tp in parts):
        for tp, msgs in c.poll(timeout_ms=1000).items():
            for m in msgs:
                partitions_of.setdefault(json.loads(m.value)["region_id"], set()).add(tp.partition)
    c.close()
    assert partitions_of and all(len(ps) == 1 for ps in partitions_of.values()), partitions_of
    assert_state_is_newest(repo, sent["newest"])
    assert fully_committed(kafka_bootstrap, topic, group)


def test_the_writer_skips_feasts_dedup_on_redis_only(repo: Path, sqlite_repo: Path) -> None:
    from streaming.consumer import OnlineWriter

    redis_writer = OnlineWriter(fsx.store(repo), repo)
    assert redis_writer.config.online_store.skip_dedup is True
    assert "skip_dedup" not in (repo / "feature_store.yaml").read_text(), "the repo's own config is unchanged"
    assert fsx.store(repo).config.online_store.skip_dedup is False
    assert not hasattr(OnlineWriter(fsx.store(sqlite_repo), sqlite_repo).config.online_store, "skip_dedup")


def test_broker_restart_is_survived(repo: Path, kafka_bootstrap: str, tiny_world: Path,
                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    topic = "t-restart"
    first = simulate(kafka_bootstrap, topic, tiny_world, rate=0, count=2_000, seed=4)
    proc = consume(repo, kafka_bootstrap, topic, wait=False, idle=40)
    time.sleep(3)
    env = dict(os.environ, KAFKA_PORT="19092", KAFKA_DIR=str(kafka_dir(tmp_path_factory)))
    subprocess.run(["bash", str(ROOT / "scripts" / "kafka.sh"), "restart"], check=True, env=env, timeout=300)
    second = simulate(kafka_bootstrap, topic, tiny_world, rate=0, count=2_000, seed=5)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    newest = dict(first["newest"])
    for k, v in second["newest"].items():
        if k not in newest or v[0] > newest[k][0]:
            newest[k] = v
    assert_state_is_newest(repo, newest)
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


def test_sigterm_finishes_the_batch_in_flight(repo: Path, kafka_bootstrap: str, redis_url: str) -> None:
    topic, group, n = "t-term", "g-t-term", 6_000
    produce_scrambled(kafka_bootstrap, topic, n, range(2000, 2400), seed=6)
    proc = consume(repo, kafka_bootstrap, topic, "--max-records", "20", wait=False, idle=600)
    wait_committed(kafka_bootstrap, topic, group, 300)
    with writes_paused(redis_url, 10):
        time.sleep(1.5)  # a batch is merged but not written, so not committed
        before = sum(committed_offsets(kafka_bootstrap, topic, group).values())
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    after = sum(committed_offsets(kafka_bootstrap, topic, group).values())
    assert before < after < n, "the batch in flight at SIGTERM is written and committed, then the consumer stops"
    assert json.loads(out.strip().splitlines()[-1])["consumed"] == after
    assert_committed_events_are_written(repo, kafka_bootstrap, topic, group)


def test_value_without_a_vector_falls_back_to_a_band_and_is_backlogged(sqlite_repo: Path, kafka_bootstrap: str,
                                                                        tmp_path: Path) -> None:
    bands = SPEC.tables["impressions"].derived["temp_band"].bands
    known = [value_key("SCENE_temp", b) for _, b in bands if b != "freezing"]
    known += [value_key("SCENE_weather", "snow")]
    keys = tmp_path / "keys.parquet"
    pd.DataFrame({"scene_key": known}).to_parquet(keys)
    topic = "t-backlog"
    ensure_topics(kafka_bootstrap, [topic])
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    p.send(topic, key=b"1", value=make_event("weather", 1, datetime.now(UTC), condition="snow", temperature_c=-12.5))
    p.flush()
    p.close()
    backlog = tmp_path / "backlog.jsonl"
    consume(sqlite_repo, kafka_bootstrap, topic, "--known-keys", str(keys), "--backlog", str(backlog), idle=2)
    s = online_state(sqlite_repo, [1])[1]
    assert s["temp_key"] == value_key("SCENE_temp", "cold"), "nearest band that has a vector"
    entries = [json.loads(line) for line in backlog.read_text().splitlines()]
    assert [(e["field"], e["text"]) for e in entries] == [("SCENE_temp", "<SCENE_temp>freezing</SCENE_temp>")]


# ----------------------------------------------------------------------------- the spec drives the schema
def _food(edit) -> Spec:
    """The shipped food_delivery spec with ``edit(data)`` applied to its YAML mapping."""
    data = yaml.safe_load(spec_path("food_delivery").read_text())
    edit(data)
    return parse_spec(yaml.safe_dump(data, sort_keys=False), source="edited.yaml")


def _app_like(data: dict) -> None:
    """Per district instead of per region; a network event (string + int payload) sets two new log columns
    and updates two new fields, one a derived band (with the nearest-band fallback); no context events."""
    imp = data["tables"]["impressions"]
    imp["columns"]["connectivity"] = {"type": "string", "allowed": ["wifi", "4g", "offline"], "doc": "network"}
    imp["columns"]["bars"] = {"type": "int", "min": 0, "max": 5, "doc": "signal bars"}
    imp["derived"]["signal"] = {"band": "bars", "bands": [[2, "weak signal"], [4, "fair signal"],
                                                          [None, "strong signal"]]}
    data["fields"]["SCENE_net"] = {"entity": "scene", "column": "connectivity", "realtime": True, "doc": "network"}
    data["fields"]["SCENE_signal"] = {"entity": "scene", "column": "signal", "realtime": True, "doc": "signal"}
    data["vocab"] += ["SCENE_net", "SCENE_signal"]
    rt = data["realtime"]
    rt.update(entity="district", key="district_id")
    del rt["events"]["region_context"]
    rt["events"]["network"] = {"group": "net", "payload": {"connectivity": "string", "bars": "int"},
                               "allowed": {"connectivity": ["wifi", "4g", "offline"]}, "ranges": {"bars": [0, 5]},
                               "columns": {"connectivity": "connectivity", "bars": "bars"},
                               "fields": {"SCENE_net": "net_key", "SCENE_signal": "signal_key"}}


def _no_realtime(data: dict) -> None:
    data.pop("realtime")


NOW = datetime(2024, 7, 1, 12, tzinfo=UTC)


def test_the_online_row_is_todays() -> None:
    assert ["region_id", "event_timestamp", *state_columns(SPEC)] == TODAYS_ROW
    assert list(RegionState(1, SPEC).to_row()) == TODAYS_ROW
    types = dict(state_schema(SPEC))
    assert types["weather"] == types["time_slot"] == types["day_type"] == "String"
    assert types["temperature_c"] == "Float64"
    assert {t for c, t in types.items() if c.endswith(("_key", "_ts"))} == {"Int64"}
    # rows with and without a key make an exact Int64 column (never through float64, which rounds keys)
    mapper, full, bare = KeyMapper(SPEC), RegionState(1, SPEC), RegionState(2, SPEC)
    mapper.apply(full, parse_event(make_event("region_context", 1, NOW, day_type="holiday"), SPEC))
    frame = state_frame(SPEC, [full.to_row(), bare.to_row()])
    assert list(frame.columns) == TODAYS_ROW and str(frame["day_key"].dtype) == "Int64"
    assert frame["day_key"][0] == value_key("SCENE_day", "holiday") > 2**53 and frame["day_key"].isna()[1]


def test_the_doc_is_generated_from_the_spec() -> None:
    assert DOC.read_text() == events_markdown(SPEC), (
        "docs/streaming-events.md is generated: run `python -m larr.realtime.events` after changing the spec's "
        "realtime section or larr/realtime/events.py")


@pytest.mark.parametrize("payload,reason", [
    ({"hour": True}, "field 'hour' must be int, got bool"),
    ({"hour": 7.0}, "field 'hour' must be int, got float"),
    ({"hour": 24}, r"field 'hour' out of range: 24 \(expected 0..23\)"),
    ({}, "missing field 'hour'"),
])
def test_payload_types_and_ranges_come_from_the_spec(payload: dict, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        parse_event(make_event("time_slot", 1, NOW, **payload), SPEC)


@pytest.mark.parametrize("raw,reason", [
    (b'{"schema_version": 1, "type": "weather", "region_id": 1, "event_time": "2024-07-01T00:00:00", '
     b'"condition": "snow", "temperature_c": NaN}', "field 'temperature_c' must be a finite number, got nan"),
    (b'{"schema_version": 1, "type": "weather", "region_id": 1, "event_time": "2024-07-01T00:00:00", '
     b'"condition": "snow", "temperature_c": -Infinity}', "must be a finite number, got -inf"),
    (b'{"schema_version": 1, "type": "weather", "region_id": 1, "event_time": "2024-07-01T00:00:00", '
     b'"condition": "snow", "temperature_c": 71}', "field 'temperature_c' out of range: 71.0"),
    (b'{"schema_version": 1, "type": "weather", "region_id": 1, "event_time": "2024-07-01T00:00:00", '
     b'"condition": "  ", "temperature_c": 1}', "field 'condition' is empty"),
    (b'{"schema_version": 1, "type": "weather", "region_id": true, "event_time": "2024-07-01T00:00:00", '
     b'"condition": "snow", "temperature_c": 1}', "field 'region_id' must be int, got bool"),
    (b'{"schema_version": 1, "type": "region_context", "region_id": 1, "event_time": "2024-07-01T00:00:00", '
     b'"day_type": "festival"}', "field 'day_type' must be one of \\['weekday', 'weekend', 'holiday'\\]"),
])
def test_bad_values_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        parse_event(raw, SPEC)


def test_good_events_parse_typed() -> None:
    ev = parse_event(make_event("weather", 4, NOW, condition=" heavy rain ", temperature_c=12), SPEC)
    assert (ev.type, ev.key, ev.event_time, ev.payload) == ("weather", 4, NOW, {"condition": "heavy rain",
                                                                                "temperature_c": 12.0})
    assert type(ev.payload["temperature_c"]) is float


def test_an_app_like_spec_needs_no_code_change() -> None:
    spec = _food(_app_like)
    reg = registry(spec)
    raw = make_event("network", 7, NOW, spec=spec, connectivity="wifi", bars=1)
    assert json.loads(raw)["district_id"] == 7
    ev = parse_event(raw, spec)
    assert (ev.type, ev.key, ev.payload) == ("network", 7, {"connectivity": "wifi", "bars": 1})
    for bad, reason in [({"connectivity": "5g", "bars": 1}, "field 'connectivity' must be one of"),
                        ({"connectivity": "wifi", "bars": 6}, "field 'bars' out of range: 6"),
                        ({"connectivity": "wifi"}, "missing field 'bars'")]:
        with pytest.raises(EventError, match=reason):
            parse_event(make_event("network", 7, NOW, spec=spec, **bad), spec)
    with pytest.raises(EventError, match="unknown type 'region_context'; expected one of "
                                         r"\['weather', 'time_slot', 'network'\]"):
        parse_event(make_event("region_context", 7, NOW, spec=spec, day_type="weekday"), spec)
    with pytest.raises(EventError, match="missing field 'district_id'"):
        parse_event(make_event("network", 7, NOW, connectivity="wifi", bars=1), spec)  # a food event: region_id

    assert state_columns(spec) == ["weather", "temperature_c", "weather_key", "temp_key", "weather_ts", "time_slot",
                                   "slot_key", "slot_ts", "connectivity", "bars", "net_key", "signal_key", "net_ts"]
    assert dict(state_schema(spec))["bars"] == "Int64" and dict(state_schema(spec))["connectivity"] == "String"
    mapper, state = KeyMapper(spec), RegionState(7, spec)
    assert mapper.apply(state, ev) and not mapper.apply(state, ev), "newer-wins per group"
    assert mapper.apply(state, parse_event(make_event("time_slot", 7, NOW, spec=spec, hour=8), spec))
    row = state.to_row()
    assert list(row)[:2] == ["district_id", "event_timestamp"] and row["district_id"] == 7
    assert (row["connectivity"], row["bars"], row["net_ts"]) == ("wifi", 1, ev.event_ms)
    assert row["net_key"] == reg.value_key("SCENE_net", "wifi")
    assert row["signal_key"] == reg.value_key("SCENE_signal", "weak signal")
    assert row["time_slot"] == "breakfast" and row["weather_ts"] is None
    assert RegionState.from_row(7, row, spec) == state
    # the band fallback works for any band field: "weak signal" has no vector -> the nearest band that has one
    known = {reg.value_key("SCENE_net", "wifi"), reg.value_key("SCENE_signal", "fair signal")}
    mapper = KeyMapper(spec, known)
    state = RegionState(7, spec)
    mapper.apply(state, ev)
    assert state.values["signal_key"] == reg.value_key("SCENE_signal", "fair signal")
    assert list(mapper.backlog.values()) == [("SCENE_signal", "<SCENE_signal>weak signal</SCENE_signal>")]
    # the Feast view and the doc follow
    from larr.feast_repo import definitions_source

    src = definitions_source(spec)
    for col, dtype in state_schema(spec):
        assert f'Field(name="{col}", dtype={dtype}),' in src
    assert "entities=[district]," in src and '"(weather, slot, net) carries its own event time' in src
    doc = events_markdown(spec)
    assert "| `bars` | int | network | 0..5; sets `bars` |" in doc and "SCENE_signal (`signal_key`)" in doc


def test_a_spec_whose_event_cannot_give_its_field_is_refused() -> None:
    def broken(data: dict) -> None:
        data["realtime"]["events"]["time_slot"]["fields"]["SCENE_weather"] = "weather_key2"

    with pytest.raises(SpecError, match=r"time_slot.fields.SCENE_weather: SCENE_weather reads \['weather'\]"):
        state_columns(_food(broken))


def test_derived_events_key_like_the_log() -> None:
    """hour -> slot and temperature -> band through the event give the keys the log's rendering gives."""
    from larr.world.scene import temperature_band, time_slot

    reg = registry(SPEC)
    derived = SPEC.tables["impressions"].derived
    temps = [-60.0, -0.1, 0.0, 9.9, 10.0, 17.9, 18.0, 24.9, 25.0, 30.0, 34.9, 35.0, 60.0]
    log = pd.DataFrame({"ts": pd.date_range("2024-07-01", periods=24, freq="h"),
                        "temperature_c": np.resize(temps, 24)})
    for name in ("hour", "meal_slot", "temp_band"):
        log[name] = derived_column(derived[name], log)
    log["time_slot"] = log["meal_slot"]  # equals_derived: the log's time_slot is its meal_slot
    mapper = KeyMapper(SPEC)
    for r in log.to_dict("records"):
        state = RegionState(1, SPEC)
        mapper.apply(state, parse_event(make_event("time_slot", 1, NOW, hour=int(r["hour"])), SPEC))
        mapper.apply(state, parse_event(make_event("weather", 1, NOW, condition="sunny",
                                                   temperature_c=float(r["temperature_c"])), SPEC))
        row = state.to_row()
        assert row["time_slot"] == r["time_slot"] == time_slot(r["hour"]), "the simulator's slots are the spec's"
        assert row["slot_key"] == reg.value_key("SCENE_slot", value_of(SPEC.fields["SCENE_slot"], r))
        assert r["temp_band"] == temperature_band(r["temperature_c"])
        assert row["temp_key"] == reg.value_key("SCENE_temp", value_of(SPEC.fields["SCENE_temp"], r))


def _raw_with_day_types(tmp_path: Path) -> Path:
    """Two regions, Monday 1 and Tuesday 2 July 2024; the log says region 1's Monday is a holiday (mostly),
    region 2 has no impression on the Monday and calls its Tuesday a weekend."""
    raw = tmp_path / "raw"
    raw.mkdir()
    ts = pd.date_range("2024-07-01", periods=48, freq="h")
    pd.DataFrame({"region_id": np.repeat([1, 2], 48), "ts": np.tile(ts, 2), "condition": "sunny",
                  "temperature_c": 21.0}).to_parquet(raw / "weather.parquet")
    logs = {"2024-07-01": [(1, "holiday"), (1, "holiday"), (1, "weekday")],
            "2024-07-02": [(1, "weekday"), (2, "weekend"), (2, "weekend"), (2, "weekday")]}
    for day, rows in logs.items():
        (raw / "impressions" / f"date={day}").mkdir(parents=True)
        pd.DataFrame({"region_id": [r for r, _ in rows], "ts": pd.Timestamp(day) + pd.Timedelta(hours=12),
                      "day_type": [d for _, d in rows]}).to_parquet(raw / "impressions" / f"date={day}" / "p.parquet")
    return raw


def test_region_scene_export_follows_the_logs_day_types(tmp_path: Path) -> None:
    raw = _raw_with_day_types(tmp_path)
    assert fsx.export_region_scene(raw, tmp_path / "features", SPEC) == 96
    rows = pd.read_parquet(tmp_path / "features" / "region_scene_state.parquet")
    assert list(rows.columns) == TODAYS_ROW
    day = rows["event_timestamp"].dt.strftime("%Y-%m-%d")

    def days(region: int, d: str) -> pd.DataFrame:
        return rows[(rows["region_id"] == region) & (day == d)]

    assert set(days(1, "2024-07-01")["day_type"]) == {"holiday"}, "the log's own day type, not the weekday rule"
    assert set(days(1, "2024-07-01")["day_key"]) == {value_key("SCENE_day", "holiday")}
    assert set(days(1, "2024-07-02")["day_type"]) == {"weekday"}
    assert days(2, "2024-07-01")["day_type"].isna().all() and days(2, "2024-07-01")["context_ts"].isna().all()
    assert set(days(2, "2024-07-02")["day_type"]) == {"weekend"}
    r = days(2, "2024-07-02").iloc[0]
    assert r["context_ts"] == r["weather_ts"] == r["slot_ts"] == int(pd.Timestamp("2024-07-02").timestamp() * 1000)
    assert set(rows["slot_key"].dropna()) == {value_key("SCENE_slot", s) for s in
                                              ("late night", "breakfast", "lunch", "afternoon tea", "dinner")}
    # without the log's day types no context event is sent at all
    bare = fsx.region_scene_rows(pd.read_parquet(raw / "weather.parquet"), SPEC)
    assert bare["day_type"].isna().all() and bare["weather_key"].notna().all()


def test_only_the_simulator_knows_the_world() -> None:
    import inspect
    import re

    pattern = re.compile(r"larr\.scene\b|from larr import scene")
    offenders = []
    for folder in ("larr", "streaming", "serving", "spark_jobs", "training", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("larr/world/") or rel == "streaming/simulate.py":
                continue
            if pattern.search(path.read_text()):
                offenders.append(rel)
    assert not offenders, f"import larr.world.scene (simulator knowledge) only in larr/world and the simulator: {offenders}"
    assert not (ROOT / "larr" / "scene.py").exists()
    for fn in (fsx.region_scene_rows, fsx.export_region_scene):
        assert "larr.world" not in inspect.getsource(fn) and "larr.scene" not in inspect.getsource(fn)


def test_the_consumer_refuses_a_spec_without_realtime(tmp_path: Path) -> None:
    path = tmp_path / "no_realtime.yaml"
    data = yaml.safe_load(spec_path("food_delivery").read_text())
    _no_realtime(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError, match="has no realtime section"):
        SceneStateConsumer(ConsumerConfig(spec=str(path)), tmp_path / "no_repo")
    with pytest.raises(SpecError, match="has no realtime section"):
        parse_event(make_event("weather", 1, NOW, condition="snow", temperature_c=1.0), _food(_no_realtime))
    assert ConsumerConfig().spec == "food_delivery"
