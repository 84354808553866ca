"""Suite ``online``: freshness of the real-time scene state, per key of the spec's ``realtime`` entity.

The CTR model reads the current scene of a region (weather, time slot, day type in the food spec) from the
online store, where the Kafka consumer keeps it fresh.  A region whose feed stopped keeps serving its last
values, silently; this suite makes that visible.  One row per real-time key (the frame's index, so a failure
names the keys), with each event group's newest event time (``<group>_ts``, :mod:`larr.realtime.state`):

* at least one key with state;
* every key has had an event of every group (``<group>_ts`` not null); with ``--raw``, "every key" is every
  row of the entity's table (a region the stream never mentioned fails), else every key the state knows;
* ``<group>_ts.lag_minutes`` (``--as-of`` minus the group's newest event) is at most
  ``quality.max_staleness_minutes``.

``--as-of`` defaults to the newest event in the state, which measures how far each key lags the stream's
head (right for replays and simulated dates); a production gate passes ``--as-of now``.

PATH is read through Feast when it is a feature repo (``feature_store.yaml``): the state as the model sees
it, ``FeatureStore.get_online_features`` on the real-time view.  Otherwise PATH is the view's offline rows
(``features/<view>.parquet``, or a folder holding it, what ``larr features publish`` materializes), reduced to
the newest row per key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.expectations.expectation import Expectation

from larr.config import ConfigError, LarrConfig
from larr.quality import Inputs
from larr.quality.gx import Batch, fmt
from larr.realtime.events import realtime_of
from larr.realtime.state import scene_schema
from larr.spec import Spec, SpecError

STATE = "state"


def batches(path: Path, cfg: LarrConfig, spec: Spec, inputs: Inputs) -> list[Batch]:
    """The newest event time per (key, group), from the online store or the offline rows, and its lag."""
    try:
        rt = realtime_of(spec)
        schema = scene_schema(spec)
    except SpecError as err:
        raise ConfigError(f"online suite: {err}") from None
    ts_cols = dict(schema.ts_column)  # group -> <group>_ts
    path = Path(path)
    keys = _entity_keys(inputs.raw, spec, rt.key) if inputs.raw is not None else None
    if (path / "feature_store.yaml").exists():
        if keys is None:
            keys = _offline_keys(path, rt.view, rt.key)
        state = _online(path, rt.view, rt.key, list(ts_cols.values()), keys)
        source = f"the online store of the Feast repo {path} (view {rt.view})"
    else:
        file = path if path.is_file() else path / f"{rt.view}.parquet"
        if not file.exists():
            raise FileNotFoundError(f"online suite: {path} is neither a Feast repo (feature_store.yaml) nor holds "
                                    f"{rt.view}.parquet")
        state = _newest(pd.read_parquet(file, columns=[rt.key, *ts_cols.values()]), rt.key,
                        list(ts_cols.values()))
        if keys is not None:
            state = pd.DataFrame({rt.key: keys}).merge(state, on=rt.key, how="left")
        source = f"the newest offline row per key of {file}"
    for c in ts_cols.values():
        state[c] = pd.to_numeric(state[c], errors="coerce").astype("Float64")
    newest = state[list(ts_cols.values())].max().max() if len(state) else None
    if inputs.as_of is not None:
        as_of = inputs.as_of if inputs.as_of.tzinfo else inputs.as_of.replace(tzinfo=UTC)
        how = "--as-of"
    else:
        as_of = (datetime.fromtimestamp(float(newest) / 1000, tz=UTC) if newest is not None and not pd.isna(newest)
                 else datetime.now(UTC))
        how = "the newest event in the state"
    as_of_ms = as_of.timestamp() * 1000
    for c in ts_cols.values():
        state[f"{c}.lag_minutes"] = ((as_of_ms - state[c]) / 60_000).astype(float)
    state = state.set_index(pd.Index(state[rt.key], name=rt.key))
    note = (f"{len(state):,} {rt.entity} keys from {source}; lag as of {fmt(as_of.replace(tzinfo=None))} UTC "
            f"({how})")
    return [Batch(STATE, state, _expectations(cfg, ts_cols), note)]


def _expectations(cfg: LarrConfig, ts_cols: dict[str, str]) -> list[Expectation]:
    limit = cfg.quality.max_staleness_minutes
    ex: list[Expectation] = [gxe.ExpectTableRowCountToBeBetween(min_value=1, notes="some keys have state")]
    for group, col in ts_cols.items():
        ex.append(gxe.ExpectColumnValuesToNotBeNull(
            column=col, notes=f"every key has had an event of group {group}"))
        ex.append(gxe.ExpectColumnValuesToBeBetween(
            column=f"{col}.lag_minutes", max_value=limit,
            meta={"bound": f"<= {limit:g} min (quality.max_staleness_minutes)"},
            notes=f"group {group}'s newest event is at most quality.max_staleness_minutes old"))
    return ex


def _newest(rows: pd.DataFrame, key: str, ts_cols: list[str]) -> pd.DataFrame:
    """The state of each key after its last offline row: the newest value of every group's time."""
    return rows.groupby(key, as_index=False)[ts_cols].max()


def _entity_keys(raw: Path, spec: Spec, key: str) -> np.ndarray:
    """Every key of the real-time entity: the key column of the raw table keyed by it (e.g. regions)."""
    table = next((n for n, t in spec.tables.items() if list(t.key) == [key] and not t.partitioned), None)
    if table is None:
        raise ConfigError(f"online suite: spec {spec.name} has no table keyed by {key}; leave out --raw")
    file = Path(raw) / f"{table}.parquet"
    if not file.exists():
        raise FileNotFoundError(f"online suite: --raw {raw} has no {table}.parquet")
    return pd.read_parquet(file, columns=[key])[key].dropna().unique()


def _offline_keys(repo: Path, view: str, key: str) -> np.ndarray:
    """The keys of the view's offline rows, found through the repo's feature data folder (``larr features
    publish`` records it in ``.larr-features``)."""
    marker = repo / ".larr-features"
    file = Path(marker.read_text().strip()) / f"{view}.parquet" if marker.exists() else None
    if file is None or not file.exists():
        raise FileNotFoundError(f"online suite: cannot tell which keys to read from {repo}: pass --raw (the raw "
                                "folder whose entity table lists them)")
    return pd.read_parquet(file, columns=[key])[key].dropna().unique()


def _online(repo: Path, view: str, key: str, ts_cols: list[str], keys: np.ndarray) -> pd.DataFrame:
    """``<group>_ts`` of every key as Feast's online store serves it (missing key: nulls)."""
    from larr.feature_store import store

    rows = [{key: k.item() if isinstance(k, np.generic) else k} for k in keys]
    resp = store(repo).get_online_features(features=[f"{view}:{c}" for c in ts_cols], entity_rows=rows).to_dict()
    return pd.DataFrame({key: [r[key] for r in rows], **{c: resp[c] for c in ts_cols}})
