"""Feast glue: export the offline tables, prepare a repo copy, apply, materialize, read online features.

The definitions are Feast's own objects, rendered from the feature spec by :mod:`larr.feast_repo` (the
shipped ``feature_repo/definitions.py`` is the food_delivery rendering); this module only moves data into
the offline store and drives Feast's APIs (``feast apply`` through its CLI, materialization and online reads
through :class:`feast.FeatureStore`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from larr.feast_repo import (
    REPO,
    STATS_TTL_DAYS,
    context_views,
    definitions_source,
    pair_history,
    pair_stats,
    scene_key_column,
    stat_views,
)
from larr.spec import Spec, load_spec

log = logging.getLogger("larr.features")


def _spec(spec: Spec | str | Path | None) -> Spec:
    """A :class:`Spec`, a spec name or path, or None (the shipped food_delivery)."""
    return spec if isinstance(spec, Spec) else load_spec(spec or "food_delivery")


SCENE_LOOKUPS = "scene_lookups.parquet"  # static per model version: lookup value -> scene key (see export_stats)
PROJECT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # what Feast accepts as a project name


def export_stats(jobs: Path, features: Path, spec: Spec | str | Path) -> dict[str, int]:
    """What the scorer reads per request, from the CTR samples, so serving reads what training read:

    * the statistics views (user, item, user x item: :func:`larr.feast_repo.stat_views`, ``pair_stats``);
    * the context views (:func:`larr.feast_repo.context_views`): the user's scene-field keys of the day, the
      item's CTR columns, creation day and scene-field keys;

    one row per (entity, day) stamped at the start of the day -- the time its inputs were complete, since
    every statistic and history text of day D comes from days strictly before D -- so a point-in-time join
    (or an online store materialised up to a time on day D) sees exactly the row the sample of day D used.
    Also ``scene_lookups.parquet``: for each scene field whose value is looked up through a log column
    (food: ``SCENE_region`` via ``region_id``), the lookup value -> key pairs the samples hold."""
    spec = _spec(spec)
    samples = pd.read_parquet(jobs / "ctr_samples")
    samples["event_timestamp"] = pd.to_datetime(samples["date"].astype(str))
    keys = np.stack(samples["scene_keys"].to_numpy()).astype(np.int64) if len(samples) else None
    for i, f in enumerate(spec.scene):
        samples[scene_key_column(f)] = keys[:, i] if keys is not None else pd.Series(dtype="int64")
    if spec.item.created:
        age = samples[f"{spec.item_name}_age_days"].astype("int64")
        epoch = (pd.to_datetime(samples["date"].astype(str)) - pd.Timestamp("1970-01-01")).dt.days
        samples["created_day"] = (epoch - age).astype("int64")
    features.mkdir(parents=True, exist_ok=True)
    pair, counts, rates = pair_stats(spec)
    views = {**stat_views(spec), pair: ([spec.user_key, spec.item_key], counts + rates)}
    for name, (role, schema) in context_views(spec).items():
        views[name] = (spec.user_key if role == "user" else spec.item_key, [c for c, _ in schema])
    out = {}
    for name, (key, cols) in views.items():
        ids = key if isinstance(key, list) else [key]
        df = samples[[*ids, "event_timestamp", *cols]].drop_duplicates([*ids, "event_timestamp"])
        df.to_parquet(features / f"{name}.parquet", index=False)
        out[name] = len(df)
        if name == pair:  # the same rows keyed by user alone, as arrays (what the scorer reads)
            hist, _, _, _ = pair_history(spec)
            h = pair_history_rows(df, spec)
            h.to_parquet(features / f"{hist}.parquet", index=False)
            out[hist] = len(h)
    log_t = spec.tables[spec.log.table]
    lookups = []
    for f in spec.scene:
        fs = spec.fields[f]
        if fs.entity == "scene" and fs.column is not None and fs.column in log_t.lookups:
            via = log_t.lookups[fs.column].via
            pairs = samples[[via, scene_key_column(f)]].drop_duplicates()
            lookups.append(pd.DataFrame({"field": f, "value": pairs[via].astype(str).to_numpy(),
                                         "scene_key": pairs[scene_key_column(f)].to_numpy(np.int64)}))
    table = pd.concat(lookups, ignore_index=True) if lookups else pd.DataFrame(
        {"field": pd.Series(dtype=str), "value": pd.Series(dtype=str), "scene_key": pd.Series(dtype="int64")})
    table.to_parquet(features / SCENE_LOOKUPS, index=False)
    out[SCENE_LOOKUPS] = len(table)
    return out


def pair_history_rows(pairs: pd.DataFrame, spec: Spec, ttl_days: int = STATS_TTL_DAYS) -> pd.DataFrame:
    """The user x item statistics rows (``pairs``: user, item, event_timestamp, ``up_*``) as the user-keyed
    arrays of :func:`larr.feast_repo.pair_history`: for each user and day, every pair of that user with a
    row on that day or on an earlier day within ``ttl_days`` (the per-pair view's TTL), each with its newest
    row -- what reading the per-pair view for each of those items would return on that day."""
    _, items, arrays, _ = pair_history(spec)
    u, i = spec.user_key, spec.item_key
    cols = list(arrays)
    ttl = pd.Timedelta(days=ttl_days)
    out: list[dict[str, Any]] = []
    ordered = pairs.sort_values([u, "event_timestamp"], kind="stable")
    for user, g in ordered.groupby(u, sort=False):
        newest: dict[Any, tuple[pd.Timestamp, tuple]] = {}
        for ts, day in g.groupby("event_timestamp", sort=True):
            for rec in day[[i, *cols]].itertuples(index=False, name=None):
                newest[rec[0]] = (ts, rec[1:])
            kept = [(item, v) for item, (t, v) in newest.items() if ts - t < ttl]
            row: dict[str, Any] = {u: user, "event_timestamp": ts, items: [item for item, _ in kept]}
            for k, c in enumerate(cols):
                row[arrays[c]] = [v[k] for _, v in kept]
            out.append(row)
    if not out:
        return pd.DataFrame({u: pd.Series(dtype=pairs[u].dtype), "event_timestamp": pd.Series(dtype="datetime64[ns]"),
                             items: pd.Series(dtype=object), **{arrays[c]: pd.Series(dtype=object) for c in cols}})
    return pd.DataFrame(out)


def region_scene_rows(weather: pd.DataFrame, spec: Spec | str | Path | None,
                      day_types: pd.DataFrame | None = None) -> pd.DataFrame:
    """History rows of the real-time view (``spec.realtime``) from observations, by the code the streaming
    consumer runs (:mod:`larr.realtime.state`).

    ``weather``: rows of the observation table (food: the hourly weather: region_id, ts, condition,
    temperature_c).  ``day_types``: what the log says per (key, day): columns ``<key>``, ``date`` (ISO day)
    and log columns (food: ``day_type``, see :func:`log_day_values`).  Each observation, at its time, becomes
    every event type whose payload it gives: from its own columns, the log's derived columns computed from
    them (``hour`` of ``ts``), or its day's log values; an event a row cannot give (no log values for that
    key and day) is not sent."""
    from datetime import UTC

    from larr.descriptions import derived_column
    from larr.realtime.events import EventError, realtime_of
    from larr.realtime.state import KeyMapper, RegionState, event_from_values, state_frame

    spec = _spec(spec)
    rt, log_t = realtime_of(spec), spec.tables[spec.log.table]
    time_col = spec.log.time if spec.log.time in weather.columns else _observation_time(spec, weather)
    obs = weather.rename(columns={time_col: spec.log.time}).sort_values([spec.log.time, rt.key], kind="stable")
    obs = obs.reset_index(drop=True)
    for d, v in log_t.derived.items():  # derived log columns the observations give (food: hour of ts)
        if d not in obs.columns and all(c in obs.columns for c in v.inputs()):
            obs[d] = derived_column(v, obs)
    if day_types is not None and len(day_types):
        days = day_types.assign(date=pd.to_datetime(day_types["date"]).dt.strftime("%Y-%m-%d"))
        days = days[[rt.key, "date", *(c for c in days.columns if c not in obs.columns and c not in (rt.key, "date"))]]
        obs["date"] = pd.to_datetime(obs[spec.log.time]).dt.strftime("%Y-%m-%d")
        obs = obs.merge(days, on=[rt.key, "date"], how="left", validate="many_to_one").drop(columns="date")
    mapper = KeyMapper(spec)
    states: dict = {}
    rows, bad = [], 0
    kinds = [(name, list(ev.payload)) for name, ev in rt.events.items() if set(ev.payload) <= set(obs.columns)]
    for r in obs.to_dict("records"):
        key = r[rt.key]
        key = int(key) if isinstance(key, int | np.integer) else key
        when = pd.Timestamp(r[spec.log.time]).to_pydatetime().replace(tzinfo=UTC)
        st = states.get(key)
        if st is None:
            st = states[key] = RegionState(key, spec)
        for kind, payload in kinds:
            values = {k: _plain(r[k]) for k in payload}
            if any(v is None for v in values.values()):
                continue
            try:
                mapper.apply(st, event_from_values(spec, kind, key, when, values))
            except EventError:
                bad += 1
        rows.append(st.to_row())
    if bad:
        log.warning("region scene history: %d observation events failed the event checks and were skipped", bad)
    out = state_frame(spec, rows)
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True).dt.tz_localize(None)
    return out


def _plain(v: Any) -> Any:
    """A python scalar; None for a missing value."""
    if v is None or (np.isscalar(v) or v is pd.NA or v is pd.NaT) and pd.isna(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _observation_table(spec: Spec) -> str | None:
    """The table replayed as history: the first non-log table with a time column and the realtime key."""
    rt = spec.realtime
    assert rt is not None
    return next((n for n, t in spec.tables.items()
                 if n != spec.log.table and t.time is not None and rt.key in t.columns), None)


def _observation_time(spec: Spec, frame: pd.DataFrame) -> str:
    name = _observation_table(spec)
    if name is None or spec.tables[name].time not in frame.columns:
        raise ValueError(f"region scene history: the observations have no time column ({spec.log.time})")
    return spec.tables[name].time


def log_day_values(raw: Path, spec: Spec | str | Path | None, columns: list[str]) -> pd.DataFrame:
    """Per (realtime key, day) of the log: the most common value of each of ``columns`` (ties: the smallest
    value), from the log's ``date=`` partitions; a key and day without a log row has no row."""
    spec = _spec(spec)
    rt = spec.realtime
    assert rt is not None
    parts = []
    for part in sorted((raw / spec.log.table).glob("date=*")):
        df = pd.read_parquet(part, columns=[rt.key, *columns])
        parts.append(df.assign(date=part.name.split("=", 1)[1]))
    if not parts:
        return pd.DataFrame(columns=[rt.key, "date", *columns])
    log_rows = pd.concat(parts, ignore_index=True)
    out = None
    for c in columns:
        counts = log_rows.groupby([rt.key, "date", c], dropna=True).size().rename("n").reset_index()
        top = (counts.sort_values([rt.key, "date", "n", c], ascending=[True, True, False, True])
               .drop_duplicates([rt.key, "date"])[[rt.key, "date", c]])
        out = top if out is None else out.merge(top, on=[rt.key, "date"], how="outer")
    return out.reset_index(drop=True)


def export_region_scene(raw: Path, features: Path, spec: Spec | str | Path | None = None) -> int:
    """Batch history of the push source (view ``region_scene_state``; only for a spec with ``realtime``):
    the observation table of the raw data (food: the hourly weather) replayed through the streaming state,
    with each (key, day)'s log values (food: the ``day_type`` the impressions record) as that day's context
    events.  ``spec``: a Spec, name or path (default: the shipped food_delivery)."""
    spec = _spec(spec)
    from larr.realtime.events import realtime_of

    rt = realtime_of(spec)
    log_t = spec.tables[spec.log.table]
    name = _observation_table(spec)
    obs_cols = list(spec.tables[name].columns) if name else []
    obs_time = spec.tables[name].time if name else None
    given = {*obs_cols, *([spec.log.time] if obs_time else [])}
    for d, v in log_t.derived.items():
        if all(c in given for c in v.inputs()):
            given.add(d)
    day_cols = list(dict.fromkeys(k for ev in rt.events.values() for k in ev.payload
                                  if k not in given and k in log_t.columns and k != rt.key))
    days = log_day_values(raw, spec, day_cols) if day_cols else None
    if name is not None:
        weather = pd.read_parquet(raw / f"{name}.parquet")
    else:  # no observation table: the log's day values, at the start of their day
        weather = (days if days is not None else pd.DataFrame(columns=[rt.key, "date"])).copy()
        weather[spec.log.time] = pd.to_datetime(weather["date"])
        weather = weather.drop(columns="date")
    rows = region_scene_rows(weather, spec, days)
    features.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(features / "region_scene_state.parquet", index=False)
    return len(rows)


def prepare_repo(dest: Path, features: Path, online: str = "sqlite", redis: str = "127.0.0.1:6379",
                 spec: Spec | str | Path | None = None, project: str = "larr") -> Path:
    """A runnable Feast repo in ``dest``: ``definitions.py`` rendered from ``spec`` (default: food_delivery),
    and a feature_store.yaml that points at ``dest`` for registry and SQLite, and at ``redis`` for the Redis
    online store.

    ``project`` is Feast's namespace: rows in a shared Redis are keyed by it, and Redis keeps the row with the
    newer event time, so two deployments (or test runs) on one Redis need different projects or they read
    each other's features."""
    if not PROJECT_NAME.fullmatch(project):
        raise ValueError(f"Feast project {project!r}: use letters, digits and underscores, starting with a letter")
    spec = _spec(spec)
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "definitions.py").write_text(definitions_source(spec))
    shutil.copy(REPO / ".feastignore", dest / ".feastignore")
    if online == "sqlite":
        store = f"online_store:\n  type: sqlite\n  path: {dest / 'online_store.db'}\n"
    elif online == "redis":
        store = f"online_store:\n  type: redis\n  connection_string: \"{redis}\"\n"
    else:
        raise ValueError(f"online store {online!r}: choose sqlite or redis")
    (dest / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry: {dest / 'registry.db'}\n{store}"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n")
    (dest / ".larr-features").write_text(str(features.resolve()))
    return dest


def _env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    marker = repo / ".larr-features"
    if marker.exists():
        env["LARR_FEATURE_DATA"] = marker.read_text().strip()
    return env


def apply(repo: Path) -> str:
    """``feast apply`` (Feast's own CLI) in ``repo``; returns its output."""
    feast = Path(sys.executable).parent / "feast"
    res = subprocess.run([str(feast), "apply"], cwd=repo, env=_env(repo), capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"feast apply failed in {repo}:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def store(repo: Path):
    """A :class:`feast.FeatureStore` for ``repo`` (LARR_FEATURE_DATA set so definitions resolve the same paths)."""
    os.environ.update({k: v for k, v in _env(repo).items() if k == "LARR_FEATURE_DATA"})
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def materialize(repo: Path, start: datetime, end: datetime, views: list[str] | None = None) -> None:
    """Load the offline rows with event time in [start, end] into the online store."""
    store(repo).materialize(start_date=start, end_date=end, feature_views=views)


def online_vectors(repo: Path, view: str, key: str, ids: list[int]) -> np.ndarray:
    """Embeddings of ``ids`` from the online store as float32 [n, d] (NaN rows for missing entities)."""
    resp = store(repo).get_online_features(features=[f"{view}:embedding"], entity_rows=[{key: i} for i in ids])
    vals = resp.to_dict()["embedding"]
    dim = max((len(v) for v in vals if v is not None), default=0)
    return np.array([v if v is not None else [np.nan] * dim for v in vals], dtype=np.float32)


def summary(repo: Path) -> dict[str, Any]:
    fs = store(repo)
    return {"feature_views": sorted(v.name for v in fs.list_feature_views()),
            "feature_services": sorted(s.name for s in fs.list_feature_services()),
            "entities": sorted(e.name for e in fs.list_entities())}
