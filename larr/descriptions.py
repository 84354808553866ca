"""How raw rows become field values, as the feature spec says (:mod:`larr.spec`).

The renderer (:mod:`larr.text`) turns *one* field value into text; this module computes the value: a
column, a list, a template over columns, a band of a numeric column, a map to words, the hour or weekday
of a timestamp, or a summary of a user's history rows (the newest N, the K most common, aggregates).
Spark jobs, the embedding job and serving all build values through these functions, so a description is
the same bytes wherever it is made.  Nothing here knows a domain: the food-delivery world is one spec.
"""

from __future__ import annotations

import math
import operator
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from larr.spec import HistoryValue, Spec, ValueSpec
from larr.text import TextRegistry

UNKNOWN = "unknown"
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
        "!=": operator.ne}
_COND = re.compile(r"^\s*(\w+)\s*(<|<=|>|>=|==|!=)\s*([\w.\-]+)\s*$")


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN
    except (TypeError, ValueError):  # arrays
        return False


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


class _Formatter(string.Formatter):
    """``str.format`` where a missing value prints as "unknown" and an integral float takes ``d``."""

    def format_field(self, value: Any, format_spec: str) -> str:
        value = _plain(value)
        if _missing(value):
            return UNKNOWN
        if format_spec.endswith("d") and isinstance(value, float) and value.is_integer():
            value = int(value)
        return super().format_field(value, format_spec)


_FMT = _Formatter()


def fill(template: str, row: Mapping[str, Any]) -> str:
    return _FMT.vformat(template, (), row)


def _condition(cond: str, row: Mapping[str, Any]) -> bool:
    m = _COND.match(cond)
    if m is None:
        raise ValueError(f"condition {cond!r}: expected 'column < other' (or <=, >, >=, ==, !=)")
    left, op, right = m.groups()
    a = _plain(row.get(left))
    b: Any = _plain(row[right]) if right in row else right
    if _missing(a) or _missing(b):
        return False
    if isinstance(b, str):
        try:
            b = float(b) if isinstance(a, int | float) else b
        except ValueError:
            return False
    return bool(_OPS[op](a, b))


def band_of(v: Any, spec: ValueSpec) -> str:
    """Name of the band ``v`` falls in: the first band whose upper edge is above ``v``."""
    v = _plain(v)
    if _missing(v):
        return spec.missing if spec.missing is not None else UNKNOWN
    for edge, name in spec.bands or []:
        if edge is None or float(v) < float(edge):
            return name
    return (spec.bands or [(None, UNKNOWN)])[-1][1]


def map_of(v: Any, spec: ValueSpec) -> str:
    v = _plain(v)
    if _missing(v):
        return spec.default if spec.default is not None else UNKNOWN
    key = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    return (spec.values or {}).get(key, spec.default if spec.default is not None else str(v))


def value_of(spec: ValueSpec, row: Mapping[str, Any]) -> Any:
    """The value ``spec`` computes from one row (a mapping of column -> value); not for history values."""
    if spec.column is not None:
        return row[spec.column]
    if spec.list_column is not None:
        v = row[spec.list_column]
        return [] if v is None else list(v)
    if spec.template is not None:
        for case in spec.cases:
            if _condition(case.when, row):
                return fill(case.template, row)
        return fill(spec.template, row)
    if spec.band is not None:
        return band_of(row[spec.band], spec)
    if spec.map is not None:
        return map_of(row[spec.map], spec)
    if spec.hour_of is not None:
        return int(pd.Timestamp(row[spec.hour_of]).hour)
    if spec.weekday_of is not None:
        return pd.Timestamp(row[spec.weekday_of]).day_name()
    raise ValueError("history values need the user's history rows: use history_value")


def derived_column(spec: ValueSpec, df: pd.DataFrame) -> pd.Series:
    """Vectorised :func:`value_of` over a frame (derived log columns, contract checks)."""
    if spec.column is not None:
        return df[spec.column]
    if spec.hour_of is not None:
        return pd.to_datetime(df[spec.hour_of]).dt.hour.astype("int64")
    if spec.weekday_of is not None:
        return pd.to_datetime(df[spec.weekday_of]).dt.day_name()
    if spec.band is not None:
        v = pd.to_numeric(df[spec.band], errors="coerce").to_numpy(float)
        edges = np.array([math.inf if e is None else float(e) for e, _ in spec.bands or []])
        names = np.array([n for _, n in spec.bands or []] + [spec.missing if spec.missing is not None else UNKNOWN],
                         dtype=object)
        idx = np.searchsorted(edges, v, side="right")
        idx = np.where(np.isnan(v), len(edges), np.minimum(idx, len(edges) - 1))
        return pd.Series(names[idx], index=df.index, dtype=object)
    return pd.Series([value_of(spec, r) for r in df.to_dict("records")], index=df.index, dtype=object)


def history_value(spec: HistoryValue, empty: str, rows: Sequence[Mapping[str, Any]], time_col: str) -> Any:
    """A user's history summarised: newest N rows (newest first), the K most common renderings, or
    aggregates (``count``, ``mean_<col>``, ``sum_<col>``); ``empty`` when there is no row."""
    if not rows:
        return empty
    if spec.newest is not None or spec.top is not None:
        # Newest first, rows of the same time by their text: the result never depends on the order in which
        # Spark happened to collect the rows.  Equally common values (top) rank by recency.
        texts = sorted(((o[time_col], fill(spec.template or "", o)) for o in rows), reverse=True)
        if spec.newest is not None:
            return [t for _, t in texts[:spec.newest]]
        return [s for s, _ in Counter(t for _, t in texts).most_common(spec.top)]
    agg: dict[str, Any] = {"count": len(rows)}
    for name in (f for _, f, _, _ in string.Formatter().parse(spec.summary or "") if f):
        m = re.match(r"^(mean|sum)_(\w+)$", name)
        if m:
            vals = [float(o[m.group(2)]) for o in rows if not _missing(o[m.group(2)])]
            total = sum(vals)
            agg[name] = total / len(vals) if m.group(1) == "mean" and vals else total if vals else None
    return fill(spec.summary or "", agg)


def entity_values(spec: Spec, role: str, row: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None = None,
                  history_count: int = 0, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """Values of the fields of one user or item row (its table's columns plus lookups).

    Entity-level ``values`` are computed first (they may use ``history_count``: the item's history rows
    before the cutoff); history fields read ``history`` (the user's rows before the cutoff)."""
    ent = spec.entities[role]  # type: ignore[index]
    data = dict(row)
    data["history_count"] = history_count
    for name, v in ent.values.items():
        data[name] = value_of(v, data)
    time_col = history_time(spec)
    out: dict[str, Any] = {}
    for name in fields if fields is not None else spec.fields_of(role):
        f = spec.fields[name]
        if f.history is not None:
            out[name] = history_value(f.history, f.empty or UNKNOWN, list(history or []), time_col)
        else:
            out[name] = value_of(f, data)
    return out


def history_time(spec: Spec) -> str:
    """The time column of history rows."""
    return spec.history.time or spec.log.time


def render_fields(reg: TextRegistry, values: Mapping[str, Any], fields: Iterable[str]) -> str:
    """Render the named fields of ``values`` in order into one description."""
    return reg.render_many((f, values[f]) for f in fields)
