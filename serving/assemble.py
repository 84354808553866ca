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

    # ----- the log row of every candidate
    def log_rows(self, request: Any, online: dict[str, list[Any]], fallbacks: list[str]) -> pd.DataFrame:
        s = self.spec
        ctx = {k: v for k, v in request.context.model_dump().items() if v is not None}
        ts = pd.Timestamp(ctx[s.log.time])
        if ts.tzinfo is not None:
            ts = ts.tz_convert(None)
        ctx[s.log.time] = ts
        self._apply_state(ctx, online, ts, fallbacks)
        n = len(request.candidates)
        df = pd.DataFrame({s.user_key: [request.user_id] * n, s.item_key: [c.id for c in request.candidates]})
        for c in self.needed:
            if c in s.serving.per_candidate:
                df[c] = [getattr(cand, c) for cand in request.candidates]
            else:
                df[c] = [ctx.get(c)] * n
        for name, d in self.log_t.derived.items():  # derived log columns, as the Spark jobs compute them
            if all(c in df.columns and df[c].notna().all() for c in d.inputs()):
                df[name] = derived_column(d, df)
        for check in self.log_t.equals_derived:  # a log column that equals a derived one (food: time_slot)
            col, der = check["column"], check["derived"]
            if col in df.columns and der in df.columns:
                df[col] = df[col].where(df[col].notna(), df[der])
        return df

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
        df = self.log_rows(request, online, fallbacks)
        n = len(df)
        per: list[list[str]] = [[] for _ in range(n)]
        missing_num = np.zeros((n, len(prep.numeric_columns)), bool)
        num_index = {c: i for i, c in enumerate(prep.numeric_columns)}
        for groups in (self.views.user, self.views.item, self.views.pair):
            for view, cols in groups.items():
                vals = {c: online.get(f"{view}__{c}", [None] * n) for c in cols}
                absent = np.array([all(vals[c][i] is None for c in cols) for i in range(n)]) if cols else \
                    np.zeros(n, bool)
                for c in cols:
                    df[c] = pd.array(vals[c], dtype=object)
                if absent.any():
                    for i in np.flatnonzero(absent):
                        per[i].append(f"{view}: no online row, cold-start defaults")
                    for c in cols:
                        if c in num_index:
                            missing_num[absent, num_index[c]] = True
        if self.cols.item_age and "created_day" in df:
            day = (ts_day(df[s.log.time].iloc[0]))
            created = pd.to_numeric(df["created_day"], errors="coerce")
            df[self.cols.item_age] = day - created
            if self.cols.item_age in num_index:
                missing_num[created.isna().to_numpy(), num_index[self.cols.item_age]] = True
        for c in prep.numeric_columns:  # per-candidate or context numbers the request did not give
            if c not in df:
                df[c] = np.nan
            gap = pd.to_numeric(df[c], errors="coerce").isna().to_numpy()
            if gap.any() and not missing_num[gap, num_index[c]].all():
                new = gap & ~missing_num[:, num_index[c]]
                missing_num[new, num_index[c]] = True
                if c in self.needed or c in s.serving.per_candidate:
                    fallbacks.append(f"{c}: not given for {int(new.sum())} of {n} candidates; training mean used")
        for c in prep.categorical_columns:
            if c not in df:
                df[c] = None
        cat = prep.categorical(df)
        for j, c in enumerate(prep.categorical_columns):
            oov = cat[:, j] == OOV
            if not oov.any():
                continue
            if c == s.user_key:
                fallbacks.append(f"{c}: unknown to the model (OOV)")
            elif c == s.item_key:
                for i in np.flatnonzero(oov):
                    per[i].append(f"{c}: unknown to the model (OOV)")
            else:
                fallbacks.append(f"{c}: value {df[c].iloc[int(np.flatnonzero(oov)[0])]!r} unknown to the model (OOV)")
        counts = set(prep.counts)
        filled = df[list(prep.numeric_columns)].apply(pd.to_numeric, errors="coerce").astype(float)
        for c, i in num_index.items():  # cold start: zero counts, the training mean for everything else
            fill = 0.0 if c in counts else prep.mean[c]
            filled.loc[missing_num[:, i], c] = fill
        num = prep.numeric(filled)
        batch = {"cat": torch.from_numpy(cat), "num": torch.from_numpy(num)}
        keys = self.scene_keys(df, fallbacks if self.m.scene is not None else [])
        batch["scene_keys"] = torch.from_numpy(keys)  # the LLM-in-the-loop path reads their texts
        if self.m.scene is not None:
            batch["scene_rows"] = torch.from_numpy(self.m.scene.rows(keys))
        return Assembled(batch, list(dict.fromkeys(fallbacks)), per)

    def scene_keys(self, df: pd.DataFrame, fallbacks: list[str]) -> np.ndarray:
        """[n, N] keys of the spec's scene fields, as ``ctr_samples`` attaches them (0: no key)."""
        s = self.spec
        out = np.zeros((len(df), len(s.scene)), np.int64)
        for j, f in enumerate(s.scene):
            fs = s.fields[f]
            col = scene_key_column(f)
            if fs.entity in ("user", "item"):
                out[:, j] = pd.to_numeric(df.get(col), errors="coerce").fillna(0).to_numpy(np.int64) \
                    if col in df else 0
                continue
            if fs.column is not None and fs.column in self.log_t.lookups:
                via = self.log_t.lookups[fs.column].via
                out[:, j] = [self.lookups.get((f, str(v)), 0) for v in df[via]]
            else:  # rendered once per distinct input (usually one: the request's context)
                inputs = [fs.column] if fs.column is not None else [c for c in fs.inputs() if c in df]
                groups = df.groupby(inputs, sort=False, dropna=False).indices if inputs else {}
                for vals, idx in groups.items():
                    row = dict(zip(inputs, vals if isinstance(vals, tuple) else (vals,), strict=True))
                    try:
                        v = row[fs.column] if fs.column is not None else value_of(fs, row)
                    except (KeyError, TypeError, ValueError):
                        v = None
                    if v is None or (isinstance(v, float) and np.isnan(v)):
                        continue
                    out[idx, j] = self.reg.feature_key(f, self.reg.render(f, v))
            if (out[:, j] == 0).any():
                fallbacks.append(f"{f}: no scene value for {int((out[:, j] == 0).sum())} of {len(df)} "
                                 "candidates (no vector, masked out)")
        return out


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
