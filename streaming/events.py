"""Real-time scene events (schema version 1), documented in ``docs/streaming-events.md``.

Every event is a JSON object keyed (Kafka message key) by its region id, so a region's events stay ordered
in one partition.  Common fields: ``schema_version`` (1), ``type``, ``region_id`` (int), ``event_time``
(ISO-8601; naive means UTC).  Per type:

* ``weather``: ``condition`` (string), ``temperature_c`` (number)
* ``time_slot``: ``hour`` (0-23, local) -- the slot is derived with :func:`larr.scene.time_slot`
* ``region_context``: ``day_type`` (weekday / weekend / holiday)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from larr.scene import DAY_TYPES

SCHEMA_VERSION = 1
EVENT_TYPES = ("weather", "time_slot", "region_context")


class EventError(ValueError):
    """A message that cannot be processed; its text is the dead-letter reason."""


@dataclass(frozen=True)
class SceneEvent:
    type: str
    region_id: int
    event_time: datetime  # timezone-aware UTC
    payload: dict[str, Any]

    @property
    def event_ms(self) -> int:
        return int(self.event_time.timestamp() * 1000)


def _require(obj: dict[str, Any], name: str, kinds: tuple[type, ...]) -> Any:
    if name not in obj:
        raise EventError(f"missing field '{name}'")
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise EventError(f"field '{name}' must be {'/'.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
    return value


def parse_event(raw: bytes | str) -> SceneEvent:
    """Decode and validate one message; raises :class:`EventError` naming the problem."""
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EventError(f"not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise EventError("event must be a JSON object")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        raise EventError(f"unsupported schema_version {version!r} (this consumer reads {SCHEMA_VERSION})")
    kind = _require(obj, "type", (str,))
    if kind not in EVENT_TYPES:
        raise EventError(f"unknown type {kind!r}; expected one of {list(EVENT_TYPES)}")
    region = _require(obj, "region_id", (int,))
    stamp = _require(obj, "event_time", (str,))
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        raise EventError(f"event_time {stamp!r} is not ISO-8601") from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if kind == "weather":
        cond = _require(obj, "condition", (str,)).strip()
        temp = float(_require(obj, "temperature_c", (int, float)))
        if not cond:
            raise EventError("field 'condition' is empty")
        if not math.isfinite(temp) or not -90 <= temp <= 70:
            raise EventError(f"field 'temperature_c' out of range: {temp}")
        payload = {"condition": cond, "temperature_c": temp}
    elif kind == "time_slot":
        hour = _require(obj, "hour", (int,))
        if not 0 <= hour <= 23:
            raise EventError(f"field 'hour' out of range: {hour}")
        payload = {"hour": hour}
    else:
        day = _require(obj, "day_type", (str,))
        if day not in DAY_TYPES:
            raise EventError(f"field 'day_type' must be one of {list(DAY_TYPES)}, got {day!r}")
        payload = {"day_type": day}
    return SceneEvent(kind, region, when, payload)


def make_event(kind: str, region_id: int, event_time: datetime, **payload: Any) -> bytes:
    """Encode an event (used by the simulator and the tests)."""
    return json.dumps({"schema_version": SCHEMA_VERSION, "type": kind, "region_id": int(region_id),
                       "event_time": event_time.isoformat(), **payload}).encode()
