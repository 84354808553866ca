"""Per-key real-time scene state with newer-wins merging by event time, derived from the spec's ``realtime``.

Each event type belongs to a group; a group keeps the event time of the event that set it (``<group>_ts``,
ms) and an event older than (or as old as) its group's time changes nothing.  That makes replays after a
crash harmless and keeps out-of-order events from regressing state -- on SQLite (which overwrites) as well
as Redis.  An event becomes a row as in the log: its payload, the log's derived columns computed from it,
then its ``columns`` (log column <- payload key or derived column).  Each field it updates is the spec's
value of that row, mapped through the one renderer to its scene-value key.  A band value whose key has no
precomputed vector is mapped to the nearest band that has one and recorded on the backlog so the next
embedding run covers it.

The online row (:meth:`RegionState.to_row`) is ``<key>, event_timestamp``, then per group in order of first
appearance: each event's ``columns``, its fields' key columns, ``<group>_ts``
(:func:`state_columns` / :func:`state_schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from larr.descriptions import value_of
from larr.realtime.events import SceneEvent, check_payload, key_type, realtime_of
from larr.spec import Spec, SpecError, ValueSpec
from larr.text import registry

FEAST_TYPES = {"string": "String", "float": "Float64", "int": "Int64", "bool": "Bool"}
_COERCE = {"string": str, "float": float, "int": int, "bool": bool}


@dataclass(frozen=True)
class EventPlan:
    """How one event type updates the state (compiled from its :class:`larr.spec.EventSpec`)."""

    name: str
    group: str
    derive: tuple[str, ...]  # derived log columns computed from the payload, in spec order
    columns: tuple[tuple[str, str], ...]  # (log column, payload key or derived column)
    fields: tuple[tuple[str, str], ...]  # (scene field, key column)


@dataclass(frozen=True)
class SceneSchema:
    """The real-time state of one spec: groups, event plans, the online row's columns and types."""

    spec: Spec
    key: str
    groups: tuple[str, ...]
    events: dict[str, EventPlan]
    feast_schema: tuple[tuple[str, str], ...]  # value columns (not the key) with their Feast types
    column_types: dict[str, str]  # value column -> spec type (string/float/int/bool)
    column_source: dict[str, str]  # value column -> what sets it (for the doc)
    ts_column: dict[str, str]  # group -> its ``<group>_ts`` column
    bands: dict[str, tuple[str, ...]]  # band field -> its band names in order (fallback to a neighbour)

    @property
    def columns(self) -> list[str]:
        return [c for c, _ in self.feast_schema]

    def event_row(self, ev: SceneEvent) -> dict[str, Any]:
        """The event as a log row: payload, derived columns, then the columns it sets."""
        plan = self.events[ev.type]
        derived = self.spec.tables[self.spec.log.table].derived
        row = dict(ev.payload)
        for d in plan.derive:
            row[d] = value_of(derived[d], row)
        row.update({col: row[src] for col, src in plan.columns})
        return row


_SCHEMAS: dict[int, tuple[Spec, SceneSchema]] = {}


def scene_schema(spec: Spec) -> SceneSchema:
    """The compiled real-time state of ``spec`` (cached); :class:`SpecError` when the spec has no ``realtime``
    or an event cannot produce what it declares."""
    hit = _SCHEMAS.get(id(spec))
    if hit is None or hit[0] is not spec:
        hit = _SCHEMAS[id(spec)] = (spec, _compile(spec))
    return hit[1]


def state_columns(spec: Spec) -> list[str]:
    """The value columns of the online row (everything but the key and ``event_timestamp``), in order."""
    return scene_schema(spec).columns


def state_schema(spec: Spec) -> list[tuple[str, str]]:
    """:func:`state_columns` with their Feast types: a value column typed as its log column (string ->
    String, float -> Float64, int -> Int64, bool -> Bool), ``*_key`` and ``*_ts`` Int64."""
    return list(scene_schema(spec).feast_schema)


def _type_of(spec: Spec, column: str, seen: frozenset[str] = frozenset()) -> str:
    """Spec type of a log column: raw, lookup or derived."""
    t = spec.tables[spec.log.table]
    if column in t.columns:
        return t.columns[column].type
    if column in t.lookups:
        lk = t.lookups[column]
        return spec.tables[lk.table].columns[lk.column].type
    d = t.derived.get(column)
    if d is None or column in seen:
        raise SpecError(f"{spec.source or spec.name}: unknown log column {column!r}")
    if d.column is not None:
        return _type_of(spec, d.column, seen | {column})
    if d.hour_of is not None:
        return "int"
    if d.list_column is not None:
        return "list<string>"
    return "string"  # template, band, map, weekday_of


def _band_names(spec: Spec, f: ValueSpec) -> tuple[str, ...] | None:
    """Band names of a field whose value is a band: a band field, or one reading a derived band column."""
    derived = spec.tables[spec.log.table].derived
    src = f if f.band is not None else derived.get(f.column or "") if f.column is not None else None
    if src is None or src.band is None:
        return None
    return tuple(dict.fromkeys(name for _, name in src.bands or []))


def _compile(spec: Spec) -> SceneSchema:
    rt = realtime_of(spec)
    key_type(spec)
    where = spec.source or spec.name
    derived = spec.tables[spec.log.table].derived
    plans: dict[str, EventPlan] = {}
    by_group: dict[str, list[str]] = {}
    for name, ev in rt.events.items():
        loc = f"{where}: realtime.events.{name}"
        present = set(ev.payload)
        derive = []
        for d, v in derived.items():
            if d not in ev.payload and all(c in present for c in v.inputs()):
                derive.append(d)
                present.add(d)
        src_types = {**ev.payload, **{d: _type_of(spec, d) for d in derive}}
        for col, src in ev.columns.items():
            if src not in src_types:
                raise SpecError(f"{loc}.columns.{col}: {src!r} is neither a payload key nor a derived column "
                                f"computable from the payload ({', '.join(ev.payload)})")
            want, got = _type_of(spec, col), src_types[src]
            if want not in _COERCE:
                raise SpecError(f"{loc}.columns.{col}: the log column is {want}; the online row holds "
                                f"{', '.join(_COERCE)}")
            if got != want and not (want == "float" and got == "int"):
                raise SpecError(f"{loc}.columns.{col}: the log column is {want} but {src!r} is {got}")
        present |= set(ev.columns)
        for f in ev.fields:
            missing = [c for c in spec.fields[f].inputs() if c not in present]
            if missing:
                raise SpecError(f"{loc}.fields.{f}: {f} reads {missing}, which the event neither carries, "
                                f"derives nor sets (it has {sorted(present)})")
        plans[name] = EventPlan(name, ev.group, tuple(derive), tuple(ev.columns.items()), tuple(ev.fields.items()))
        by_group.setdefault(ev.group, []).append(name)
    schema: list[tuple[str, str]] = []
    types: dict[str, str] = {}
    source: dict[str, str] = {}
    ts_column: dict[str, str] = {}

    def add(col: str, spec_type: str, what: str) -> None:
        if col in types or col in (rt.key, "event_timestamp"):
            raise SpecError(f"{where}: realtime: the online row would have column {col!r} twice")
        types[col] = spec_type
        source[col] = what
        schema.append((col, FEAST_TYPES[spec_type]))

    for group, names in by_group.items():
        cols: dict[str, list[str]] = {}
        for n in names:
            for col, _ in plans[n].columns:
                cols.setdefault(col, []).append(n)
        for col, evs in cols.items():  # several event types of one group may set one column
            add(col, _type_of(spec, col), f"`{'`, `'.join(evs)}` event (log column)")
        for n in names:
            for f, key_col in plans[n].fields:
                add(key_col, "int", f"`{n}` event (key of {f})")
        ts_column[group] = f"{group}_ts"
        add(ts_column[group], "int", f"group {group} (event time, ms)")
    bands = {f: b for p in plans.values() for f, _ in p.fields
             if (b := _band_names(spec, spec.fields[f])) is not None}
    return SceneSchema(spec, rt.key, tuple(by_group), plans, tuple(schema), types, source, ts_column, bands)


@dataclass
class RegionState:
    """The state of one real-time key (a region in the food spec)."""

    key: Any
    spec: Spec
    values: dict[str, Any] = field(default_factory=dict)
    times: dict[str, int] = field(default_factory=dict)  # group -> event time (ms) of its newest event

    def __post_init__(self) -> None:
        for g in scene_schema(self.spec).groups:
            self.times.setdefault(g, -1)

    @property
    def event_ms(self) -> int:
        return max(self.times.values())

    def to_row(self) -> dict[str, Any]:
        """One row of the real-time feature view: the key, ``event_timestamp``, :func:`state_columns`."""
        s = scene_schema(self.spec)
        row: dict[str, Any] = {s.key: self.key,
                               "event_timestamp": datetime.fromtimestamp(max(self.event_ms, 0) / 1000, tz=UTC)}
        ts_group = {c: g for g, c in s.ts_column.items()}
        for col in s.columns:
            if col in ts_group:
                t = self.times[ts_group[col]]
                row[col] = t if t >= 0 else None
            else:
                row[col] = self.values.get(col)
        return row

    @classmethod
    def from_row(cls, key: Any, row: dict[str, Any], spec: Spec) -> RegionState:
        """Rebuild the state from what the online store holds (after a restart or a rebalance)."""
        s = scene_schema(spec)
        state = cls(key, spec)
        for group, col in s.ts_column.items():
            if row.get(col) is not None:
                state.times[group] = int(row[col])
        ts_cols = set(s.ts_column.values())
        for col in s.columns:
            if col not in ts_cols and row.get(col) is not None:
                state.values[col] = row[col]
        return state


@dataclass
class KeyMapper:
    """Scene value -> key through the renderer of ``spec``, knowing which keys have precomputed vectors."""

    spec: Spec
    known: set[int] | None = None  # None: every key counts as known (no vocabulary given)
    backlog: dict[int, tuple[str, str]] = field(default_factory=dict)  # key -> (field, text)

    def __post_init__(self) -> None:
        self.schema = scene_schema(self.spec)
        self.registry = registry(self.spec)
        self._keys: dict[tuple[str, Any], int] = {}
        self._updates: dict[tuple[Any, ...], dict[str, Any]] = {}  # (type, *payload) -> the values it sets

    def value_key(self, field_name: str, value: Any) -> int:
        k = (field_name, value)
        try:
            return self._keys[k]
        except TypeError:  # an unhashable value (a list field)
            return self.registry.value_key(field_name, value)
        except KeyError:
            key = self._keys[k] = self.registry.value_key(field_name, value)
            return key

    def has(self, field_name: str, value: Any) -> bool:
        return self.known is None or self.value_key(field_name, value) in self.known

    def _key(self, field_name: str, value: Any) -> int:
        key = self.value_key(field_name, value)
        if self.known is not None and key not in self.known:
            self.backlog.setdefault(key, (field_name, self.registry.render(field_name, value)))
        return key

    def key(self, field_name: str, value: Any) -> int:
        """Key of a field value.  A band value without a vector: the nearest band (by position in the band
        list) that has one; the band itself goes on the backlog."""
        bands = self.schema.bands.get(field_name)
        if bands is None or value not in bands or self.has(field_name, value):
            return self._key(field_name, value)
        self._key(field_name, value)
        i = bands.index(value)
        for d in range(1, len(bands)):
            for j in (i - d, i + d):
                if 0 <= j < len(bands) and self.has(field_name, bands[j]):
                    return self.value_key(field_name, bands[j])
        return self.value_key(field_name, value)

    def apply(self, state: RegionState, ev: SceneEvent) -> bool:
        """Merge one event into a key's state; True when something changed.  All or nothing: every new value
        is computed before one is stored, so an event that fails half-way (the consumer dead-letters it)
        leaves the state as it was for the events of the same batch that follow."""
        plan = self.schema.events[ev.type]
        if ev.event_ms <= state.times[plan.group]:
            return False
        new = self._values_of(ev, plan)
        state.values.update(new)
        state.times[plan.group] = ev.event_ms
        return True

    def _values_of(self, ev: SceneEvent, plan: EventPlan) -> dict[str, Any]:
        """The values ``ev`` sets: a pure function of its type and payload, so computed once per distinct
        payload (streams repeat a few thousand of them); a payload that fails is not remembered and fails again."""
        memo = (ev.type, *ev.payload.values())
        try:
            return self._updates[memo]
        except KeyError:
            pass
        except TypeError:  # an unhashable payload value
            memo = None
        row = self.schema.event_row(ev)
        new = {col: None if row[col] is None else _COERCE[self.schema.column_types[col]](row[col])
               for col, _ in plan.columns}
        new.update({key_col: self.key(f, value_of(self.spec.fields[f], row)) for f, key_col in plan.fields})
        if memo is not None:
            if len(self._updates) >= 100_000:
                self._updates.clear()
            self._updates[memo] = new
        return new


def state_frame(spec: Spec, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Online rows (:meth:`RegionState.to_row`) as a frame whose Int64 columns are exact: a column of int64
    keys with a missing value must not pass through float64 (which rounds keys above 2**53)."""
    s = scene_schema(spec)
    ints = {c for c, t in s.feast_schema if t == "Int64"}
    cols = [s.key, "event_timestamp", *s.columns]
    data = {c: pd.array([r.get(c) for r in rows], dtype="Int64") if c in ints else [r.get(c) for r in rows]
            for c in cols}
    return pd.DataFrame(data, columns=cols)


def event_from_values(spec: Spec, kind: str, key: Any, when: datetime, values: dict[str, Any]) -> SceneEvent:
    """An event of type ``kind`` from already-typed values (history rows); checked as a message would be."""
    return SceneEvent(kind, key, when, check_payload(realtime_of(spec).events[kind], values))
