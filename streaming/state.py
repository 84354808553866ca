"""Per-region real-time scene state with newer-wins merging by event time.

Each group of fields (weather, time slot, context) keeps the event time of the event that set it; an event
older than (or as old as) its group's time changes nothing.  That makes replays after a crash harmless and
keeps out-of-order events from regressing state -- on SQLite (which overwrites) as well as Redis.
Values are mapped through the one renderer to their scene-value keys; a value whose key has no
precomputed vector is mapped to a fallback (temperature: the nearest band that has one) and recorded on
the backlog so the next embedding run covers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from larr.scene import TEMPERATURE_BANDS, temperature_band, time_slot
from larr.text import render, value_key
from streaming.events import SceneEvent

GROUP_OF = {"weather": "weather", "time_slot": "slot", "region_context": "context"}
_BANDS = [name for _, name in TEMPERATURE_BANDS]


@dataclass
class RegionState:
    region_id: int
    values: dict[str, Any] = field(default_factory=dict)
    times: dict[str, int] = field(default_factory=lambda: {"weather": -1, "slot": -1, "context": -1})

    @property
    def event_ms(self) -> int:
        return max(self.times.values())

    def to_row(self) -> dict[str, Any]:
        """One row of the ``region_scene_state`` feature view."""
        v = self.values
        return {"region_id": self.region_id,
                "event_timestamp": datetime.fromtimestamp(max(self.event_ms, 0) / 1000, tz=UTC),
                "weather": v.get("weather"), "temperature_c": v.get("temperature_c"),
                "weather_key": v.get("weather_key"), "temp_key": v.get("temp_key"),
                "weather_ts": self.times["weather"] if self.times["weather"] >= 0 else None,
                "time_slot": v.get("time_slot"), "slot_key": v.get("slot_key"),
                "slot_ts": self.times["slot"] if self.times["slot"] >= 0 else None,
                "day_type": v.get("day_type"), "day_key": v.get("day_key"),
                "context_ts": self.times["context"] if self.times["context"] >= 0 else None}

    @classmethod
    def from_row(cls, region_id: int, row: dict[str, Any]) -> RegionState:
        """Rebuild the state from what the online store holds (after a restart or a rebalance)."""
        s = cls(region_id)
        for group, ts in (("weather", "weather_ts"), ("slot", "slot_ts"), ("context", "context_ts")):
            if row.get(ts) is not None:
                s.times[group] = int(row[ts])
        for k in ("weather", "temperature_c", "weather_key", "temp_key", "time_slot", "slot_key", "day_type",
                  "day_key"):
            if row.get(k) is not None:
                s.values[k] = row[k]
        return s


@dataclass
class KeyMapper:
    """Scene value -> key, knowing which keys have precomputed vectors."""

    known: set[int] | None = None  # None: every key counts as known (no vocabulary given)
    backlog: dict[int, tuple[str, str]] = field(default_factory=dict)  # key -> (field, text)

    def _key(self, field_name: str, value: Any) -> int:
        key = value_key(field_name, value)
        if self.known is not None and key not in self.known:
            self.backlog.setdefault(key, (field_name, render(field_name, value)))
        return key

    def has(self, field_name: str, value: Any) -> bool:
        return self.known is None or value_key(field_name, value) in self.known

    def temperature(self, temp_c: float) -> tuple[str, int]:
        """Band of a temperature; if that band has no vector, the nearest band that has one (the band itself
        goes on the backlog)."""
        band = str(temperature_band(temp_c))
        if self.has("SCENE_temp", band):
            return band, value_key("SCENE_temp", band)
        self._key("SCENE_temp", band)
        i = _BANDS.index(band)
        for d in range(1, len(_BANDS)):
            for j in (i - d, i + d):
                if 0 <= j < len(_BANDS) and self.has("SCENE_temp", _BANDS[j]):
                    return _BANDS[j], value_key("SCENE_temp", _BANDS[j])
        return band, value_key("SCENE_temp", band)

    def apply(self, state: RegionState, ev: SceneEvent) -> bool:
        """Merge one event into a region's state; True when something changed."""
        group = GROUP_OF[ev.type]
        if ev.event_ms <= state.times[group]:
            return False
        p = ev.payload
        if ev.type == "weather":
            _, temp_key = self.temperature(p["temperature_c"])
            state.values.update(weather=p["condition"], temperature_c=p["temperature_c"],
                                weather_key=self._key("SCENE_weather", p["condition"]), temp_key=temp_key)
        elif ev.type == "time_slot":
            slot = time_slot(p["hour"])
            state.values.update(time_slot=slot, slot_key=self._key("SCENE_slot", slot))
        else:
            state.values.update(day_type=p["day_type"], day_key=self._key("SCENE_day", p["day_type"]))
        state.times[group] = ev.event_ms
        return True
