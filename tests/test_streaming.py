"""Streaming: real Kafka broker, real Redis, real Feast. Bounded in time, loopback only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from kafka import KafkaConsumer

from larr import feature_store as fsx
from larr.text import value_key
from streaming.consumer import STATE_FIELDS, VIEW, committed_offsets
from streaming.events import EventError, make_event, parse_event
from streaming.simulate import MALFORMED, ensure_topics, simulate
from tests.conftest import kafka_dir

ROOT = Path(__file__).resolve().parents[1]
LARR = [sys.executable, "-m", "larr.cli"]


@pytest.fixture(scope="module", params=["redis"])
def repo(request: pytest.FixtureRequest, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    features = tmp_path_factory.mktemp("stream_features")
    fsx.export_region_scene(tiny_world, features)
    redis = request.getfixturevalue("redis_url")
    r = fsx.prepare_repo(tmp_path_factory.mktemp("stream_repo"), features, "redis", redis)
    fsx.apply(r)
    return r


@pytest.fixture(scope="module")
def sqlite_repo(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    features = tmp_path_factory.mktemp("stream_features_sqlite")
    fsx.export_region_scene(tiny_world, features)
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
        parse_event(raw)


def test_ten_thousand_events_final_state_is_the_newest(repo: Path, kafka_bootstrap: str, tiny_world: Path) -> None:
    topic = "t-10k"
    sent = simulate(kafka_bootstrap, topic, tiny_world, rate=0, count=10_000, out_of_order_frac=0.05, seed=1)
    summary = consume(repo, kafka_bootstrap, topic)
    assert summary["consumed"] == 10_000 and summary["lag"] == 0 and summary["dead_lettered"] == 0
    assert_state_is_newest(repo, sent["newest"])
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


def test_sigkill_mid_batch_loses_nothing(repo: Path, kafka_bootstrap: str, tiny_world: Path) -> None:
    topic = "t-kill"
    sent = simulate(kafka_bootstrap, topic, tiny_world, rate=0, count=8_000, seed=2)
    proc = consume(repo, kafka_bootstrap, topic, "--max-records", "20", wait=False, idle=30)
    deadline = time.time() + 120
    while time.time() < deadline:
        done = sum(committed_offsets(kafka_bootstrap, topic, f"g-{topic}").values())
        if done > 200:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert 0 < sum(committed_offsets(kafka_bootstrap, topic, f"g-{topic}").values()) < 8_000, "killed mid-stream"
    summary = consume(repo, kafka_bootstrap, topic)
    assert summary["lag"] == 0
    assert_state_is_newest(repo, sent["newest"])
    assert fully_committed(kafka_bootstrap, topic, f"g-{topic}")


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


def test_sigterm_finishes_the_batch_and_commits(repo: Path, kafka_bootstrap: str, tiny_world: Path) -> None:
    topic = "t-term"
    simulate(kafka_bootstrap, topic, tiny_world, rate=0, count=3_000, seed=6)
    proc = consume(repo, kafka_bootstrap, topic, wait=False, idle=600)
    deadline = time.time() + 120
    while not fully_committed(kafka_bootstrap, topic, f"g-{topic}") and time.time() < deadline:
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["lag"] == 0


def test_value_without_a_vector_falls_back_to_a_band_and_is_backlogged(sqlite_repo: Path, kafka_bootstrap: str,
                                                                        tmp_path: Path) -> None:
    from larr.scene import TEMPERATURE_BANDS

    known = [value_key("SCENE_temp", b) for _, b in TEMPERATURE_BANDS if b != "freezing"]
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
