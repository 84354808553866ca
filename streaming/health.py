"""Health of the real-time path, as the ``larr_streaming_health`` DAG checks it every few minutes.

Two Kafka figures: the consumer group's lag per partition (end offset minus committed offset: how far the
online scene state is behind the events) and the number of messages on the dead-letter topic (events the
consumer could not process).  Online freshness of the state itself is a Great Expectations suite
(``larr quality check online``).  Thresholds come from the config (``health`` section), so an on-call
engineer tunes them without touching the DAG.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition


@dataclass
class StreamHealth:
    """Lag per partition, dead letters, and which thresholds were crossed (empty: healthy)."""

    topic: str
    group: str
    dead_letter_topic: str
    lag: dict[int, int] = field(default_factory=dict)
    uncommitted_partitions: list[int] = field(default_factory=list)
    dead_letters: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_lag": sum(self.lag.values()), "healthy": self.healthy}


def _offsets(consumer: KafkaConsumer, topic: str) -> tuple[list[TopicPartition], dict, dict]:
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise ValueError(f"topic {topic!r} does not exist on the broker; check --topic (the consumer's topic)")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    return tps, consumer.beginning_offsets(tps), consumer.end_offsets(tps)


def check(bootstrap: str, topic: str, group: str, dead_letter_topic: str | None = None, max_lag: int = 10_000,
          max_dead_letters: int = 0, timeout_ms: int = 10_000) -> StreamHealth:
    """Read the group's committed offsets and the topics' end offsets (no message is consumed, nothing is
    committed: the probe uses the group id only to read its offsets)."""
    dlq = dead_letter_topic or f"{topic}.dlq"
    h = StreamHealth(topic=topic, group=group, dead_letter_topic=dlq)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             request_timeout_ms=max(timeout_ms, 11_000))
    try:
        tps, begin, end = _offsets(consumer, topic)
        for tp in tps:
            committed = consumer.committed(tp)
            if committed is None:
                h.uncommitted_partitions.append(tp.partition)
                committed = begin[tp]
            h.lag[tp.partition] = max(0, end[tp] - committed)
        if consumer.partitions_for_topic(dlq):
            _, dbegin, dend = _offsets(consumer, dlq)
            h.dead_letters = sum(dend[tp] - dbegin[tp] for tp in dend)
    finally:
        consumer.close()
    worst = max(h.lag.values(), default=0)
    if worst > max_lag:
        part = max(h.lag, key=h.lag.get)
        h.problems.append(f"consumer lag {worst:,} on {topic}[{part}] > health.max_lag {max_lag:,}: the consumer "
                          f"group {group!r} is behind or down")
    if h.dead_letters > max_dead_letters:
        h.problems.append(f"{h.dead_letters:,} messages on the dead-letter topic {dlq} > health.max_dead_letters "
                          f"{max_dead_letters:,}: read their 'error' header to see why they were rejected")
    return h
