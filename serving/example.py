"""Scoring requests made from real log requests: what a caller would have sent for an impression list.

Used by ``larr score`` (a smoke check against a running service), the online/offline parity test and the
serving benchmark, so all three send exactly what the request schema (:mod:`serving.request`) declares:
the user, the shown items as candidates (with the spec's per-candidate columns) and the context columns.
Real-time values (food: weather, temperature, day type, time slot) are left out unless ``full_context``:
the service is meant to read them from the online scene state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from larr.spec import Spec
from serving.request import context_columns


def _plain(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    return v


def realtime_columns(spec: Spec) -> set[str]:
    """Log columns the real-time scene state sets."""
    if spec.realtime is None:
        return set()
    return {col for ev in spec.realtime.events.values() for col in ev.columns}


def requests_from_log(log: pd.DataFrame, spec: Spec, full_context: bool = False) -> list[dict[str, Any]]:
    """One request per log request id, candidates in log order."""
    ctx_cols = [c for c in context_columns(spec) if full_context or c not in realtime_columns(spec)]
    out = []
    for _, g in log.groupby(spec.log.request, sort=False):
        first = g.iloc[0]
        cands = [{"id": _plain(r[spec.item_key]), **{c: _plain(r[c]) for c in spec.serving.per_candidate}}
                 for _, r in g.iterrows()]
        out.append({"user_id": _plain(first[spec.user_key]), "candidates": cands,
                    "context": {c: _plain(first[c]) for c in ctx_cols if c in g.columns}})
    return out


def read_log_day(raw: Path, spec: Spec, day: str | None = None) -> pd.DataFrame:
    parts = sorted((raw / spec.log.table).glob("date=*"))
    if not parts:
        raise FileNotFoundError(f"{raw / spec.log.table} has no date= partitions")
    part = parts[-1] if day is None else raw / spec.log.table / f"date={day}"
    if not part.exists():
        raise FileNotFoundError(f"{part}: no such log day")
    return pd.read_parquet(part)


def request_from_log(raw: Path, spec: Spec, day: str | None = None, full_context: bool = True) -> dict[str, Any]:
    """The first request of a log day (default: the last day), with the logged real-time values as the
    request's own context (used only where the online scene state is missing or stale)."""
    log = read_log_day(raw, spec, day)
    first = log[log[spec.log.request] == log[spec.log.request].iloc[0]]
    return requests_from_log(first, spec, full_context)[0]
