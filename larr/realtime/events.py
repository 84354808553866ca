"""Real-time scene events (schema version 1), derived from the feature spec's ``realtime`` section.

Every event is a JSON object keyed (Kafka message key) by its real-time key (the food spec: ``region_id``),
so one key's events stay ordered in one partition.  Common fields: ``schema_version`` (1), ``type`` (an
event type of ``realtime.events``), the key column (its log type, int or string) and ``event_time``
(ISO-8601; naive means UTC); then each payload key of the type, typed (``int``, ``float``, ``string``; a
bool is not a number), within its declared ``allowed`` set and ``ranges`` (NaN and infinities never pass).
An ``int`` (key or payload) must fit int64 and a string must be valid UTF-8, because the online store holds
them as such: a value that parses but cannot be stored would otherwise fail only at the write.  With a
:class:`TimeWindow` (the consumer always gives one) an ``event_time`` too far ahead of the clock or too old
is refused too: under newer-wins one event dated 9999-12-31 would freeze its key's state forever.
``docs/streaming-events.md`` is :func:`events_markdown` of the shipped spec (a test keeps them equal):

    python -m larr.realtime.events   # rewrites docs/streaming-events.md
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from larr.spec import DEFAULT_SPEC, EventSpec, RealtimeSpec, Spec, SpecError, load_spec

SCHEMA_VERSION = 1
COMMON_FIELDS = ("schema_version", "type", "event_time")
PYTHON_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "string": (str,)}
INT64 = (-(2**63), 2**63 - 1)  # the online store's Int64: a bigger int parses but cannot be stored
DOC = Path(__file__).resolve().parents[2] / "docs" / "streaming-events.md"


class EventError(ValueError):
    """A message that cannot be processed; its text is the dead-letter reason."""


@dataclass(frozen=True)
class SceneEvent:
    type: str
    key: Any  # the value of the realtime key column (e.g. a region id)
    event_time: datetime  # timezone-aware UTC
    payload: dict[str, Any]

    @cached_property
    def event_ms(self) -> int:
        return int(self.event_time.timestamp() * 1000)


@dataclass(frozen=True)
class TimeWindow:
    """The event times a consumer accepts, relative to its own clock: at most ``max_skew_s`` ahead (producers'
    clocks drift, but an event from the future would win every newer-wins merge until that time comes) and at
    most ``max_age_s`` behind (an event that old is a replay or a stuck producer, not the current scene)."""

    max_skew_s: float = 300.0
    max_age_s: float = 7 * 86400.0

    @cached_property
    def _skew(self) -> timedelta:
        return timedelta(seconds=self.max_skew_s)

    @cached_property
    def _age(self) -> timedelta:
        return timedelta(seconds=self.max_age_s)

    def check(self, when: datetime, now: datetime | None = None) -> None:
        """Raise :class:`EventError` naming the bound when ``when`` lies outside the window around ``now``."""
        now = now or datetime.now(UTC)
        if when > now + self._skew:
            raise EventError(f"event_time {when.isoformat()} is {_span(when - now)} ahead of the consumer's clock "
                             f"(max clock skew {_span(timedelta(seconds=self.max_skew_s))})")
        if when < now - self._age:
            raise EventError(f"event_time {when.isoformat()} is {_span(now - when)} old (max event age "
                             f"{_span(timedelta(seconds=self.max_age_s))})")


def _span(d: timedelta) -> str:
    s = d.total_seconds()
    return f"{s / 86400:.1f} days" if s >= 86400 else f"{s:.0f} s"


def realtime_of(spec: Spec) -> RealtimeSpec:
    """The spec's ``realtime`` section; a clear :class:`SpecError` when it has none (or no event type)."""
    rt = spec.realtime
    where = spec.source or spec.name
    if rt is None:
        raise SpecError(f"{where}: spec {spec.name!r} has no realtime section, so it has no real-time scene "
                        "state: add realtime: {entity, key, events} to stream events (docs/streaming-events.md)")
    if not rt.events:
        raise SpecError(f"{where}: realtime.events: spec {spec.name!r} declares no event type")
    reserved = {*COMMON_FIELDS, rt.key}
    for name, ev in rt.events.items():
        clash = sorted(reserved & set(ev.payload))
        if clash:
            raise SpecError(f"{where}: realtime.events.{name}.payload: {clash} name(s) a common event field "
                            f"({', '.join(sorted(reserved))})")
    return rt


def key_type(spec: Spec) -> str:
    """Type of the realtime key (``int`` or ``string``): its column in the log, else in any table, else int."""
    rt = realtime_of(spec)
    for t in [spec.log.table, *(t for t in spec.tables if t != spec.log.table)]:
        col = spec.tables[t].columns.get(rt.key)
        if col is not None:
            if col.type not in ("int", "string"):
                raise SpecError(f"{spec.source or spec.name}: realtime.key: {t}.{rt.key} is {col.type}; the "
                                "real-time key must be int or string")
            return col.type
    return "int"


def _require(obj: dict[str, Any], name: str, kinds: tuple[type, ...]) -> Any:
    if name not in obj:
        raise EventError(f"missing field '{name}'")
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise EventError(f"field '{name}' must be {'/'.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
    if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        raise EventError(f"field '{name}' out of range: {value} does not fit int64")
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise EventError(f"field '{name}' is not valid UTF-8 (a lone surrogate escape)") from None
    return value


def check_payload(ev: EventSpec, obj: dict[str, Any]) -> dict[str, Any]:
    """The payload of one event of type ``ev`` read from ``obj``: typed, stripped, allowed, in range."""
    payload: dict[str, Any] = {}
    for name, kind in ev.payload.items():
        value = _require(obj, name, PYTHON_TYPES[kind])
        if kind == "float":
            value = float(value)  # exact enough: an int here fits int64 (_require)
            if not math.isfinite(value):
                raise EventError(f"field '{name}' must be a finite number, got {value}")
        elif kind == "string":
            value = value.strip()
            if not value:
                raise EventError(f"field '{name}' is empty")
        if name in ev.allowed and value not in ev.allowed[name]:
            raise EventError(f"field '{name}' must be one of {list(ev.allowed[name])}, got {value!r}")
        if name in ev.ranges:
            lo, hi = ev.ranges[name]
            if not lo <= value <= hi:
                raise EventError(f"field '{name}' out of range: {value} (expected {_num(lo)}..{_num(hi)})")
        payload[name] = value
    return payload


@dataclass(frozen=True)
class _Plan:
    """What :func:`parse_event` needs of a spec, checked once per spec instead of once per message."""

    key: str
    key_types: tuple[type, ...]
    events: dict[str, EventSpec]


_PLANS: dict[int, tuple[Spec, _Plan]] = {}


def _plan(spec: Spec) -> _Plan:
    hit = _PLANS.get(id(spec))
    if hit is None or hit[0] is not spec:
        rt = realtime_of(spec)  # raises for a spec without realtime: nothing is cached then
        hit = _PLANS[id(spec)] = (spec, _Plan(rt.key, PYTHON_TYPES[key_type(spec)], dict(rt.events)))
    return hit[1]


def parse_event(raw: bytes | str, spec: Spec, window: TimeWindow | None = None,
                now: datetime | None = None) -> SceneEvent:
    """Decode and validate one message against ``spec.realtime`` (and its event time against ``window`` at
    ``now``, default the clock); raises :class:`EventError` naming the problem."""
    rt = _plan(spec)
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, bad UTF-8, an int past Python's digit limit
        raise EventError(f"not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise EventError("event must be a JSON object")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION:
        raise EventError(f"unsupported schema_version {version!r} (this consumer reads {SCHEMA_VERSION})")
    kind = _require(obj, "type", (str,))
    if kind not in rt.events:
        raise EventError(f"unknown type {kind!r}; expected one of {list(rt.events)}")
    key = _require(obj, rt.key, rt.key_types)
    stamp = _require(obj, "event_time", (str,))
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        raise EventError(f"event_time {stamp[:64]!r} is not ISO-8601") from None
    try:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except OverflowError:  # an offset that moves the time past year 9999 (or before year 1) in UTC
        raise EventError(f"event_time {stamp!r} lies outside years 1..9999 in UTC") from None
    if window is not None:
        window.check(when, now)
    return SceneEvent(kind, key, when, check_payload(rt.events[kind], obj))


def make_event(kind: str, key_value: Any, event_time: datetime, *, spec: Spec | None = None,
               **payload: Any) -> bytes:
    """Encode an event of ``spec`` (default: the shipped food_delivery) keyed by ``key_value``; not validated
    (the simulator and the tests also send bad ones)."""
    spec = spec if spec is not None else load_spec(DEFAULT_SPEC)
    rt = realtime_of(spec)
    key = int(key_value) if key_type(spec) == "int" else str(key_value)
    return json.dumps({"schema_version": SCHEMA_VERSION, "type": kind, rt.key: key,
                       "event_time": event_time.isoformat(), **payload}).encode()


# ------------------------------------------------------------------------------------------- the doc
def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _words(values: list[Any]) -> str:
    quoted = [f"`{v}`" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"


def _example_value(ev: EventSpec, name: str, spec: Spec) -> Any:
    kind = ev.payload[name]
    if name in ev.allowed:
        return ev.allowed[name][0]
    if name in ev.ranges:
        lo, hi = ev.ranges[name]
        mid = lo + (hi - lo) / 2
        return int(mid) if kind == "int" else round(float(mid), 1)
    log_col = spec.tables[spec.log.table].columns.get(next((c for c, s in ev.columns.items() if s == name), ""))
    if kind == "string":
        return log_col.allowed[0] if log_col is not None and log_col.allowed else "text"
    return 1 if kind == "int" else 1.5


def events_markdown(spec: Spec) -> str:
    """``docs/streaming-events.md``: the event schema, the online row and the consumer's contract of ``spec``."""
    from larr.realtime.state import scene_schema

    rt = realtime_of(spec)
    schema = scene_schema(spec)
    log_table = spec.tables[spec.log.table]
    key_col = log_table.columns.get(rt.key)
    types = {"int": "int", "float": "number", "string": "string"}
    lines = [
        "# Real-time scene events (schema version 1)",
        "",
        f"<!-- Generated from the feature spec '{spec.name}' (its `realtime` section) by "
        "`python -m larr.realtime.events`; a test keeps this file equal to `events_markdown(spec)`. -->",
        "",
        f"Topic `scene-events` (configurable), message key = the {rt.entity} id (`{rt.key}`) as text, so all "
        f"events of a {rt.entity} land in one partition and stay ordered, and one member of the consumer group "
        f"at a time writes a {rt.entity}'s row (the consumer relies on that single writer and counts a "
        f"{rt.entity} met on a second partition in `larr_stream_split_keys`). Value = one JSON object:",
        "",
        "| field | type | events | meaning |",
        "|---|---|---|---|",
        f"| `schema_version` | int | all | must be `{SCHEMA_VERSION}` |",
        f"| `type` | string | all | {_words(list(rt.events))} |",
        f"| `{rt.key}` | {types[key_type(spec)]} | all | the {rt.entity}: key of the real-time state"
        + (f" ({key_col.doc})" if key_col is not None and key_col.doc else "") + " |",
        "| `event_time` | ISO-8601 string | all | when it was observed; no zone means UTC |",
    ]
    for name, ev in rt.events.items():
        for p, kind in ev.payload.items():
            rules = []
            if p in ev.allowed:
                rules.append(f"one of {_words(ev.allowed[p])}")
            if p in ev.ranges:
                lo, hi = ev.ranges[p]
                rules.append(f"{_num(lo)}..{_num(hi)}")
            sets = [f"`{c}`" + (f" (via `{s}`)" if s != p else "") for c, s in ev.columns.items()
                    if s == p or p in _inputs(spec, s)]
            targets = [spec.tables[spec.log.table].columns.get(c) for c, s in ev.columns.items() if s == p]
            seen = next((c.allowed for c in targets if c is not None and c.allowed), None)
            if p not in ev.allowed and seen and kind == "string":
                rules.append(f"e.g. {', '.join(f'`{v}`' for v in seen[:2])}")
            if sets:
                rules.append("sets " + ", ".join(sets))
            lines.append(f"| `{p}` | {types[kind]} | {name} | {'; '.join(rules) or '-'} |")
    lines += ["", "Per event type: its newer-wins group, the log columns it sets (from a payload key, or a derived "
              "log column computed from the payload as in the log) and the scene fields whose keys it updates:",
              "", "| event | group | sets | fields (key column) |", "|---|---|---|---|"]
    for name, ev in rt.events.items():
        cols = ", ".join(f"`{c}` <- `{s}`" + (f" ({log_table.derived[s].describe()})" if s in log_table.derived else "")
                         for c, s in ev.columns.items())
        fields = ", ".join(f"{f} (`{k}`)" for f, k in ev.fields.items())
        lines.append(f"| `{name}` | {ev.group} | {cols} | {fields} |")
    example_name, example_ev = next(iter(rt.events.items()))
    example = {"schema_version": SCHEMA_VERSION, "type": example_name,
               rt.key: 3 if key_type(spec) == "int" else "north", "event_time": "2026-11-23T01:00:00+00:00",
               **{p: _example_value(example_ev, p, spec) for p in example_ev.payload}}
    lines += ["", f"Example: `{json.dumps(example)}`", "",
              f"The online row of the `{rt.view}` view (one per {rt.entity}; `*_key` = `hash(field, rendered "
              "text)` of the field's value, `*_ts` = the group's event time in ms):", "",
              "| column | Feast type | set by |", "|---|---|---|"]
    for col, dtype in schema.feast_schema:
        lines.append(f"| `{col}` | {dtype} | {schema.column_source[col]} |")
    band_fields = sorted(f for f in schema.bands)
    fallback = (f" A value of a band field ({', '.join(band_fields)}) whose key has no precomputed vector is "
                "replaced by the nearest band (in the band list) that has one, and the band goes on the backlog "
                "(`--backlog`), which the next `larr embed` run embeds." if band_fields else "")
    groups = ", ".join(schema.groups)
    lines += [
        "",
        "The consumer (`larr stream consume`) computes each updated field's value from the event as the log "
        "would (the spec's field definition over the payload, its derived columns and the columns it sets), "
        "maps it through the one renderer to its scene-value key, merges it into the "
        f"{rt.entity}'s state with newer-wins per group ({groups}: an event not newer than its group's current "
        f"event time changes nothing) and writes each changed {rt.entity}'s row once per polled batch to the "
        f"online store of Feast's `{rt.view}` view (the rows the push source `region_scene_push` would "
        f"carry, written with the provider's `online_write_batch`).{fallback}",
        "",
        "A message that cannot be processed goes, unchanged, to `<topic>.dlq` with headers `error` (the "
        "reason), `origin_topic`, `origin_partition`, `origin_offset`, and is committed past: one that fails "
        "validation (an int must also fit int64, a string be valid UTF-8), one whose `event_time` is more than "
        "`stream.max_clock_skew_seconds` (config, default 300) ahead of the consumer's clock or more than "
        "`stream.max_event_age_seconds` (default 7 days) old -- under newer-wins an event from the future would "
        "freeze its state until then -- and one whose merge or write fails for any other reason. An outage of "
        "the online store or the broker (a connection error, a locked SQLite file, a dead letter the broker "
        "does not acknowledge) is no message's fault: nothing is dead-lettered or committed, and the batch is "
        "replayed after a backoff (a dead letter may then be sent twice). Offsets are committed only after the "
        f"write and the dead letters' acknowledgements. A rebalance drops the cached {rt.entity} states, so "
        "they are read again from the online store before the next merge. Metrics (`--metrics-port`, "
        "Prometheus text on 127.0.0.1): `larr_stream_consumed`, `larr_stream_rows_written`, "
        "`larr_stream_dead_lettered`, `larr_stream_stale_events`, `larr_stream_outages`, `larr_stream_lag`, "
        "`larr_stream_split_keys`, "
        "`larr_stream_freshness_seconds` (event time to online write).",
        "",
    ]
    return "\n".join(_wrap(line) for line in lines)


def _inputs(spec: Spec, derived: str) -> set[str]:
    """Columns a derived log column reads, transitively."""
    t = spec.tables[spec.log.table]
    out: set[str] = set()
    todo = [derived]
    while todo:
        d = t.derived.get(todo.pop())
        for c in d.inputs() if d is not None else []:
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _wrap(line: str, width: int = 110) -> str:
    """Prose paragraphs wrapped at ``width``; tables, headings and comments as they are."""
    if line.startswith(("|", "#", "<!--", "Example:")) or len(line) <= width:
        return line
    import textwrap

    return textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)


def write_doc(spec: Spec | None = None, path: Path = DOC) -> Path:
    path.write_text(events_markdown(spec or load_spec(DEFAULT_SPEC)))
    return path


if __name__ == "__main__":
    print(write_doc())
