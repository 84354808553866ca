"""`larr stream health` against a real broker: lag per partition, dead letters, thresholds from config."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

LARR = [sys.executable, "-m", "cli"]


def _health(bootstrap: str, topic: str, group: str, *overrides: str) -> tuple[int, dict, str]:
    args = [*LARR, "stream", "health", "--bootstrap", bootstrap, "--topic", topic, "--group", group]
    for o in overrides:
        args += ["--set", o]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return p.returncode, json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def test_lag_and_dead_letters_against_thresholds(kafka_bootstrap: str) -> None:
    topic, group = f"health-{uuid.uuid4().hex[:8]}", "larr-health-test"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for _ in range(10):
        producer.send(topic, b"{}", partition=0)
    for _ in range(2):
        producer.send(f"{topic}.dlq", b"not json", partition=0)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(3, None, -1)})  # the group read 3 of 10
    consumer.close()

    rc, h, _ = _health(kafka_bootstrap, topic, group, "health.max_lag=7", "health.max_dead_letters=2")
    assert rc == 0 and h["healthy"]
    assert h["lag"]["0"] == 7 and sum(h["lag"].values()) == 7 and h["dead_letters"] == 2

    rc, h, err = _health(kafka_bootstrap, topic, group, "health.max_lag=6", "health.max_dead_letters=1")
    assert rc == 1 and not h["healthy"]
    assert f"consumer lag 7 on {topic}[0] > health.max_lag 6" in err
    assert f"2 messages on the dead-letter topic {topic}.dlq > health.max_dead_letters 1" in err


def test_unknown_topic_is_a_clear_error(kafka_bootstrap: str) -> None:
    p = subprocess.run([*LARR, "stream", "health", "--bootstrap", kafka_bootstrap, "--topic", "no-such-topic-x",
                        "--group", "g"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "topic 'no-such-topic-x' does not exist" in p.stderr
    assert "Traceback" not in p.stderr
