"""Request -> model input: the serving side of the one feature path.

The CTR samples a model trained on are impressions joined with (a) statistics of the days before, (b) the
user's and the item's rows of the day and (c) the scene fields' keys.  Here the same row is rebuilt for every
candidate of a request from the same sources: the request context stands in for the log row, the online
store returns (a) and (b) as ``larr features publish`` exported them from those very samples, derived log
columns and scene keys are computed by the code the Spark jobs call (:func:`larr.descriptions.derived_column`,
the one renderer :mod:`larr.text`), and the model's own preprocessor turns the row into tensors.
``tests/test_serving.py`` checks the result against offline scoring of the training rows to 1e-5.

What is missing falls back and is reported, never a 500: an id the model never saw is OOV (its learned
"unknown" row); a user, item or pair without an online row gets cold-start statistics (zero counts, the
training mean for rates and other numbers); a missing scene key has no vector (masked out of the scene
encoder); a missing or stale real-time scene group is replaced by the request's own context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from larr.ctr.artifact import LoadedModel
from larr.ctr.columns import ctr_columns
from larr.ctr.data import OOV
from larr.descriptions import derived_column, value_of
from larr.feast_repo import REALTIME_VIEW, scene_key_column
from larr.spec import Spec
from larr.text import registry
from serving.online import OnlineViews
from serving.request import needed_log_columns

EPOCH = pd.Timestamp("1970-01-01")
RENDER_CACHE_MAX = 1 << 16  # remembered (scene field, input values) -> key pairs per model version


@dataclass
class Assembled:
    """Model batch for the candidates plus what fell back (request level and per candidate)."""

    batch: dict[str, torch.Tensor]
    fallbacks: list[str] = field(default_factory=list)
    per_candidate: list[list[str]] = field(default_factory=list)


class Assembler:
    """Builds model batches for one loaded model (its preprocessor, scene table and spec)."""

    def __init__(self, m: LoadedModel, scene_lookups: Path | None, max_state_age_s: float):
        self.m, self.spec = m, m.spec
        self.cols = ctr_columns(m.spec)
        self.views = OnlineViews.of(m.spec)
        self.reg = registry(m.spec)
        self.max_state_age_ms = int(max_state_age_s * 1000)
        self.log_t = m.spec.tables[m.spec.log.table]
        self.needed = needed_log_columns(m.spec)
        self.lookups: dict[tuple[str, str], int] = {}
        if scene_lookups is not None and scene_lookups.exists():
            t = pd.read_parquet(scene_lookups)
            self.lookups = {(f, v): int(k) for f, v, k in zip(t["field"], t["value"], t["scene_key"], strict=True)}
        self.groups = _realtime_groups(m.spec)
        self._render_cache: dict[tuple, int] = {}

    # ----- the columns of the candidates' rows: a value shared by all, or one value per candidate
    def columns(self, request: Any, online: dict[str, list[Any]], fallbacks: list[str]) -> _Columns:
        """The log row (request context, real-time state, per-candidate columns, derived columns) and the
        online rows, without building a frame: most values are the same for every candidate, so they are
        held once (``const``) and only the per-candidate ones are vectors."""
        s = self.spec
        ctx = {k: v for k, v in request.context.model_dump().items() if v is not None}
        ts = pd.Timestamp(ctx[s.log.time])
        if ts.tzinfo is not None:
            ts = ts.tz_convert(None)
        ctx[s.log.time] = ts
        self._apply_state(ctx, online, ts, fallbacks)
        n = len(request.candidates)
        cols = _Columns(n)
        cols.const[s.user_key] = request.user_id
        cols.per[s.item_key] = [c.id for c in request.candidates]
        for c in self.needed:
            if c in s.serving.per_candidate:
                cols.per[c] = [getattr(cand, c) for cand in request.candidates]
            else:
                cols.const[c] = ctx.get(c)
        for name, d in self.log_t.derived.items():  # derived log columns, as the Spark jobs compute them
            inputs = d.inputs()
            if not all(cols.has(c) and cols.complete(c) for c in inputs):
                continue
            if cols.shared(inputs):  # one value for every candidate: the scalar form of the same rule
                cols.put(name, value_of(d, {c: cols.const[c] for c in inputs}), shared=True)
            else:
                cols.put(name, derived_column(d, cols.frame(inputs)).tolist(), shared=False)
        for check in self.log_t.equals_derived:  # a log column that equals a derived one (food: time_slot)
            col, der = check["column"], check["derived"]
            if not (cols.has(col) and cols.has(der)):
                continue
            if cols.shared([col, der]):
                mine = cols.const[col]
                cols.put(col, cols.const[der] if _absent(mine) else mine, shared=True)
            else:
                cols.put(col, [o if _absent(m) else m for m, o in zip(cols.vector(col), cols.vector(der),
                                                                       strict=True)], shared=False)
        for groups, shared in ((self.views.user, True), (self.views.item, False), (self.views.pair, False)):
            for view, names in groups.items():
                for c in names:
                    vals = online.get(f"{view}__{c}", [None] * n)
                    cols.put(c, vals[0] if shared else vals, shared=shared)
        return cols

    def _apply_state(self, ctx: dict[str, Any], online: dict[str, list[Any]], ts: pd.Timestamp,
                     fallbacks: list[str]) -> None:
        """Real-time scene values: fresh groups of the online state win; a missing or stale group leaves the
        request's own context (and says so)."""
        if not self.groups:
            return
        now_ms = int(ts.to_pydatetime().replace(tzinfo=UTC).timestamp() * 1000)
        for group, (ts_col, columns) in self.groups.items():
            group_ts = _first(online.get(f"{REALTIME_VIEW}__{ts_col}"))
            if group_ts is None:
                why = "no real-time scene state"
            elif now_ms - int(group_ts) > self.max_state_age_ms:
                why = f"real-time scene state stale ({(now_ms - int(group_ts)) / 3.6e6:.1f} h old)"
            else:
                values = {c: _first(online.get(f"{REALTIME_VIEW}__{c}")) for c in columns}
                ctx.update({c: v for c, v in values.items() if v is not None})
                continue
            given = [c for c in columns if c in ctx]
            fallbacks.append(f"scene_state.{group}: {why}; "
                             + (f"request context used ({', '.join(given)})" if given
                                else "no value in the request context either"))

    # ----- the full sample: log row + online rows + scene keys
    def assemble(self, request: Any, online: dict[str, list[Any]]) -> Assembled:
        s, prep = self.spec, self.m.prep
        fallbacks: list[str] = []
        cols = self.columns(request, online, fallbacks)
        n = cols.n
        per: list[list[str]] = [[] for _ in range(n)]
        nums = list(prep.numeric_columns)
        num_index = {c: i for i, c in enumerate(nums)}
        cold = np.zeros((n, len(nums)), bool)  # no online row: cold-start default, flagged per candidate
        for groups in (self.views.item, self.views.pair):
            for view, names in groups.items():
                if not names:
                    continue
                absent = np.logical_and.reduce([_none_mask(cols.vector(c)) for c in names])
                for i in np.flatnonzero(absent):
                    per[i].append(f"{view}: no online row, cold-start defaults")
                for c in names:
                    if c in num_index:
                        cold[absent, num_index[c]] = True
        for view, names in self.views.user.items():
            if names and all(_absent(cols.const.get(c)) for c in names):
                for i in range(n):
                    per[i].append(f"{view}: no online row, cold-start defaults")
                cold[:, [num_index[c] for c in names if c in num_index]] = True
        if self.cols.item_age and cols.has("created_day"):
            day = ts_day(cols.const[s.log.time])
            created = _floats(cols.vector("created_day"))
            cols.put(self.cols.item_age, day - created, shared=False)
        x = np.empty((n, len(nums)))
        counts = set(prep.counts)
        for c, i in num_index.items():
            x[:, i] = _floats(cols.vector(c)) if cols.has(c) else np.nan
            gap = np.isnan(x[:, i])
            new = gap & ~cold[:, i]
            if new.any() and (c in self.needed or c in s.serving.per_candidate):
                fallbacks.append(f"{c}: not given for {int(new.sum())} of {n} candidates; training mean used")
            x[gap, i] = 0.0 if c in counts else prep.mean[c]  # cold start: zero counts, the training mean
        num = prep.numeric_matrix(x)
        cat = np.empty((n, len(prep.vocab)), np.int64)
        for j, (c, vocab) in enumerate(prep.vocab.items()):
            if not cols.has(c):
                cat[:, j] = vocab.get("None", OOV)
            elif c in cols.const:
                cat[:, j] = vocab.get(_as_str(cols.const[c]), OOV)
            else:
                cat[:, j] = [vocab.get(k, OOV) for k in map(_as_str, cols.per[c])]
            oov = cat[:, j] == OOV
            if not oov.any():
                continue
            if c == s.user_key:
                fallbacks.append(f"{c}: unknown to the model (OOV)")
            elif c == s.item_key:
                for i in np.flatnonzero(oov):
                    per[i].append(f"{c}: unknown to the model (OOV)")
            else:
                first = cols.vector(c)[int(np.flatnonzero(oov)[0])] if cols.has(c) else None
                fallbacks.append(f"{c}: value {first!r} unknown to the model (OOV)")
        batch = {"cat": torch.from_numpy(cat), "num": torch.from_numpy(num)}
        keys = self.scene_keys(cols, fallbacks if self.m.scene is not None else [])
        batch["scene_keys"] = torch.from_numpy(keys)  # the LLM-in-the-loop path reads their texts
        if self.m.scene is not None:
            batch["scene_rows"] = torch.from_numpy(self.m.scene.rows(keys))
        return Assembled(batch, list(dict.fromkeys(fallbacks)), per)

    def scene_keys(self, cols: _Columns, fallbacks: list[str]) -> np.ndarray:
        """[n, N] keys of the spec's scene fields, as ``ctr_samples`` attaches them (0: no key)."""
        s, n = self.spec, cols.n
        out = np.zeros((n, len(s.scene)), np.int64)
        for j, f in enumerate(s.scene):
            fs = s.fields[f]
            col = scene_key_column(f)
            if fs.entity in ("user", "item"):
                if cols.has(col):  # int64 keys: never through float (they exceed 2^53)
                    out[:, j] = _int_keys([cols.const[col]] if col in cols.const else cols.per[col])
                continue
            if fs.column is not None and fs.column in self.log_t.lookups:
                via = self.log_t.lookups[fs.column].via
                if not cols.has(via):
                    pass  # no key: 0, reported below
                elif via in cols.const:  # one value for every candidate: one lookup
                    out[:, j] = self.lookups.get((f, str(cols.const[via])), 0)
                else:
                    out[:, j] = [self.lookups.get((f, str(v)), 0) for v in cols.per[via]]
            else:  # rendered once per distinct input (usually one: the request's context)
                inputs = [c for c in ([fs.column] if fs.column is not None else fs.inputs()) if cols.has(c)]
                if cols.shared(inputs):
                    out[:, j] = self._rendered_key(f, fs, inputs, tuple(cols.const[c] for c in inputs))
                else:
                    for i, vals in enumerate(zip(*(cols.vector(c) for c in inputs), strict=True)):
                        out[i, j] = self._rendered_key(f, fs, inputs, vals)
            if (out[:, j] == 0).any():
                fallbacks.append(f"{f}: no scene value for {int((out[:, j] == 0).sum())} of {n} "
                                 "candidates (no vector, masked out)")
        return out

    def _rendered_key(self, f: str, fs: Any, inputs: list[str], vals: tuple) -> int:
        """:meth:`_render_key`, remembered per (field, input values): context fields take few distinct
        values (a weather, an hour, a district), so most requests render nothing.  Bounded: cleared past
        :data:`RENDER_CACHE_MAX` entries."""
        key = (f, tuple(inputs), vals)  # the inputs present differ between requests: part of the key
        got = self._render_cache.get(key)
        if got is None:
            if len(self._render_cache) >= RENDER_CACHE_MAX:
                self._render_cache.clear()
            got = self._render_cache[key] = self._render_key(f, fs, dict(zip(inputs, vals, strict=True)))
        return got

    def _render_key(self, f: str, fs: Any, row: dict[str, Any]) -> int:
        try:
            v = row[fs.column] if fs.column is not None else value_of(fs, row)
        except (KeyError, TypeError, ValueError):
            return 0
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return 0
        return self.reg.feature_key(f, self.reg.render(f, v))


class _Columns:
    """Named columns of ``n`` candidate rows: ``const`` (one value for all) or ``per`` (a list of ``n``)."""

    def __init__(self, n: int):
        self.n = n
        self.const: dict[str, Any] = {}
        self.per: dict[str, Any] = {}

    def has(self, c: str) -> bool:
        return c in self.const or c in self.per

    def put(self, c: str, value: Any, shared: bool) -> None:
        """``shared``: ``value`` is the one value of every candidate (itself possibly a list); else a
        sequence of ``n`` values."""
        self.const.pop(c, None)
        self.per.pop(c, None)
        if shared:
            self.const[c] = value
        else:
            self.per[c] = value

    def shared(self, names: list[str]) -> bool:
        return all(c in self.const for c in names)

    def vector(self, c: str) -> list[Any]:
        return [self.const[c]] * self.n if c in self.const else list(self.per[c])

    def complete(self, c: str) -> bool:
        return not _none_mask(self.vector(c) if c in self.per else [self.const[c]]).any()

    def frame(self, names: list[str]) -> pd.DataFrame:
        """The columns as an ``n``-row frame (for :func:`derived_column`)."""
        return pd.DataFrame({c: self.vector(c) for c in names})


def _absent(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _none_mask(values: list[Any]) -> np.ndarray:
    """True where a value is absent, in C loops rather than one Python call per value (it runs for every
    column of every request): a column of plain numbers is checked with ``isnan``, anything else with
    pandas' ``isna`` of a 1-D object array.  Absent: None, float NaN (also numpy's float32 NaN, ``pd.NA``
    and ``NaT``); a string (even "nan") or a list is a value."""
    arr = np.asarray(values) if len(values) else np.zeros(0)
    if arr.ndim == 1 and arr.dtype.kind in "fc":
        return np.isnan(arr)
    if arr.ndim == 1 and arr.dtype.kind in "iub":
        return np.zeros(len(arr), bool)
    return pd.isna(np.fromiter(values, object, len(values)))


def _int_keys(values: list[Any]) -> np.ndarray:
    """int64 scene keys, 0 where absent; built straight from the Python ints (never through float)."""
    try:
        return np.array(values, dtype=np.int64)  # the usual case: every candidate has a key
    except (TypeError, ValueError, OverflowError):
        return np.array([0 if _absent(v) else int(v) for v in values], dtype=np.int64)


def _floats(values: Any) -> np.ndarray:
    """Numbers as float64, NaN for what is not a finite number (as ``pd.to_numeric(errors='coerce')``)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(float)
    try:
        return np.array(values, dtype=float)  # None -> NaN; fast for the usual all-number column
    except (TypeError, ValueError):
        pass
    return pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(float, na_value=np.nan)


# The vocabulary key of a value: what ``Series.astype(str)`` gave for it when the vocabulary was fitted on the
# parquet column (an int64 column: "12"; a string column: the string).  The builtin itself, not a wrapper:
# it runs once per candidate and column.
_as_str = str


def ts_day(ts: Any) -> int:
    """Days since 1970-01-01 of a timestamp's calendar day."""
    return int((pd.Timestamp(ts).normalize() - EPOCH).days)


def _first(values: list[Any] | None) -> Any:
    return None if not values else values[0]


def _realtime_groups(spec: Spec) -> dict[str, tuple[str, list[str]]]:
    """``{group: (its *_ts column, log columns it sets)}`` of the spec's real-time state."""
    if spec.realtime is None:
        return {}
    from larr.realtime.state import scene_schema

    sch = scene_schema(spec)
    out: dict[str, tuple[str, list[str]]] = {}
    for plan in sch.events.values():
        ts_col, cols = out.get(plan.group, (sch.ts_column[plan.group], []))
        out[plan.group] = (ts_col, list(dict.fromkeys([*cols, *(c for c, _ in plan.columns)])))
    return out


def now_utc() -> datetime:
    return datetime.now(UTC)
