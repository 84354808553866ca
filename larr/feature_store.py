"""Feast glue: export the offline tables, prepare a repo copy, apply, materialize, read online features.

The definitions are Feast's own objects, rendered from the feature spec by :mod:`larr.feast_repo` (the
shipped ``feature_repo/definitions.py`` is the food_delivery rendering); this module only moves data into
the offline store and drives Feast's APIs (``feast apply`` through its CLI, materialization and online reads
through :class:`feast.FeatureStore`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from larr.feast_repo import REPO, definitions_source, stat_views
from larr.spec import Spec, load_spec

log = logging.getLogger("larr.features")


def _spec(spec: Spec | str | Path | None) -> Spec:
    """A :class:`Spec`, a spec name or path, or None (the shipped food_delivery)."""
    return spec if isinstance(spec, Spec) else load_spec(spec or "food_delivery")


def export_stats(jobs: Path, features: Path, spec: Spec | str | Path) -> dict[str, int]:
    """User and item statistics from the CTR samples (views :func:`larr.feast_repo.stat_views` of ``spec``),
    one row per (entity, day) stamped at the start of the day: a point-in-time join then sees, for an
    impression, exactly the statistics of the days before it."""
    spec = _spec(spec)
    samples = pd.read_parquet(jobs / "ctr_samples")
    samples["event_timestamp"] = pd.to_datetime(samples["date"].astype(str))
    features.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (key, cols) in stat_views(spec).items():
        df = samples[[key, "event_timestamp", *cols]].drop_duplicates([key, "event_timestamp"])
        df.to_parquet(features / f"{name}.parquet", index=False)
        out[name] = len(df)
    return out


def region_scene_rows(weather: pd.DataFrame) -> pd.DataFrame:
    """History rows of the region_scene_state view from weather observations (region_id, ts, condition,
    temperature_c): each observation is merged as a weather and a time-slot event by the same code the
    streaming consumer runs (:mod:`streaming.state`)."""
    from datetime import UTC

    from larr.scene import day_type
    from streaming.events import SceneEvent
    from streaming.state import KeyMapper, RegionState

    mapper = KeyMapper()
    states: dict[int, RegionState] = {}
    rows = []
    for r in weather.sort_values("ts").itertuples():
        when = pd.Timestamp(r.ts).to_pydatetime().replace(tzinfo=UTC)
        st = states.setdefault(int(r.region_id), RegionState(int(r.region_id)))
        mapper.apply(st, SceneEvent("weather", int(r.region_id), when,
                                    {"condition": r.condition, "temperature_c": float(r.temperature_c)}))
        mapper.apply(st, SceneEvent("time_slot", int(r.region_id), when, {"hour": when.hour}))
        mapper.apply(st, SceneEvent("region_context", int(r.region_id), when, {"day_type": day_type(when.date())}))
        rows.append(st.to_row())
    out = pd.DataFrame(rows)
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"]).dt.tz_localize(None)
    return out.astype({c: "Int64" for c in ("weather_key", "temp_key", "weather_ts", "slot_key", "slot_ts",
                                            "day_key", "context_ts")})


def export_region_scene(raw: Path, features: Path) -> int:
    """Batch history of the push source: the hourly weather of the raw data.  Only for a spec with
    ``realtime`` (the region_scene_state view exists only then)."""
    rows = region_scene_rows(pd.read_parquet(raw / "weather.parquet"))
    features.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(features / "region_scene_state.parquet", index=False)
    return len(rows)


def prepare_repo(dest: Path, features: Path, online: str = "sqlite", redis: str = "127.0.0.1:6379",
                 spec: Spec | str | Path | None = None) -> Path:
    """A runnable Feast repo in ``dest``: ``definitions.py`` rendered from ``spec`` (default: food_delivery),
    and a feature_store.yaml that points at ``dest`` for registry and SQLite, and at ``redis`` for the Redis
    online store."""
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
        f"project: larr\nprovider: local\nregistry: {dest / 'registry.db'}\n{store}"
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
