"""The Feast repo is rendered from the feature spec: the shipped definitions.py is the food_delivery rendering,
names follow the spec's entities, optional parts (conversion statistics, the real-time view) follow the spec,
and ``feast apply`` works in the shipped folder of a fresh clone.  No Spark, no LLM."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from larr import feature_store as fsx
from larr.ctr.columns import ctr_columns
from larr.feast_repo import REPO, definitions_source, embedding_views, stat_views, write_definitions
from larr.spec import BUILTIN_SPECS, Spec, load_spec, parse_spec, spec_path
from serving.recall import PoiIndex, display_info

ROOT = Path(__file__).resolve().parents[1]
FEAST = Path(sys.executable).parent / "feast"


def _food(edit) -> Spec:
    """The shipped food_delivery spec with ``edit(data)`` applied to its YAML mapping."""
    data: dict[str, Any] = yaml.safe_load(spec_path("food_delivery").read_text())
    edit(data)
    return parse_spec(yaml.safe_dump(data, sort_keys=False), source="edited.yaml")


def _shop(data: dict) -> None:
    """No conversion label, no real-time stream, the item called "shop", typed columns beside its vector."""
    data["labels"].pop("conversion")
    data.pop("realtime")
    data["entities"]["item"]["name"] = "shop"
    data["tables"]["pois"]["columns"]["is_chain"] = {"type": "bool", "doc": "part of a chain"}
    data["embed"]["item_columns"] = ["region_id", "cuisine", "rating", "is_chain"]


def _objects(source: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Execute a rendered definitions.py and collect its Feast objects by kind and name."""
    from feast import Entity, FeatureService, FeatureView, FileSource, PushSource

    path = tmp_path / "definitions.py"
    path.write_text(source)
    ns: dict[str, Any] = {"__file__": str(path), "__name__": "definitions"}
    exec(compile(source, str(path), "exec"), ns)
    kinds = {"entities": Entity, "views": FeatureView, "services": FeatureService, "push": PushSource,
             "files": FileSource}
    out: dict[str, dict[str, Any]] = {k: {} for k in kinds}
    for obj in ns.values():
        for k, t in kinds.items():
            if isinstance(obj, t) and (k != "files" or not isinstance(obj, PushSource)):
                out[k][obj.name] = obj
    return out


def _schema(view) -> dict[str, str]:
    return {f.name: str(f.dtype) for f in view.features}


def _services(objs: dict) -> dict[str, list[str]]:
    return {n: [p.name for p in s.feature_view_projections] for n, s in objs["services"].items()}


def _feast_env(features: Path) -> dict[str, str]:
    return {**os.environ, "LARR_FEATURE_DATA": str(features), "FEAST_USAGE": "False"}


# ----------------------------------------------------------------------------------- the shipped repo
def test_shipped_definitions_are_the_food_rendering() -> None:
    shipped = (REPO / "definitions.py").read_text()
    assert shipped == definitions_source(load_spec("food_delivery")), (
        "feature_repo/definitions.py is generated: run `larr features render-repo` "
        "(or `python -m larr.feast_repo`) after changing the spec or larr/feast_repo.py")
    assert shipped.startswith("# Generated from the feature spec 'food_delivery' by `larr features render-repo`")
    assert "Do not edit by hand" in shipped.splitlines()[1]


def test_food_names_are_todays(tmp_path: Path) -> None:
    objs = _objects(definitions_source(load_spec("food_delivery")), tmp_path)
    ents = {n: (e.join_key, e.value_type.name) for n, e in objs["entities"].items()}
    assert ents == {"user": ("user_id", "INT64"), "poi": ("poi_id", "INT64"),
                    "scene_value": ("scene_key", "INT64"), "region": ("region_id", "INT64")}
    views = objs["views"]
    assert set(views) == {"user_stats", "poi_stats", "user_embedding", "poi_embedding", "scene_value_embedding",
                          "region_scene_state", "user_poi_stats", "user_poi_history", "user_context", "poi_profile"}
    assert views["user_poi_stats"].entities == ["user", "poi"]
    assert views["user_poi_history"].entities == ["user"]  # every pair of a user in one single-entity read
    assert _schema(views["user_poi_history"]) == {"poi_ids": "Array(Int64)", "up_imps_by_poi": "Array(Int64)",
                                                  "up_clicks_by_poi": "Array(Int64)",
                                                  "up_orders_by_poi": "Array(Int64)",
                                                  "up_ctr_by_poi": "Array(Float64)"}
    assert _schema(views["user_poi_stats"]) == {"up_imps": "Int64", "up_clicks": "Int64", "up_orders": "Int64",
                                                "up_ctr": "Float64"}
    assert _schema(views["user_context"]) == {"key_USER_profile": "Int64", "key_USER_home": "Int64",
                                              "key_USER_orders": "Int64"}
    assert _schema(views["poi_profile"]) == {"price_level": "Int64", "created_day": "Int64",
                                             "key_POI_dishes": "Int64"}
    assert _schema(views["user_stats"]) == {"u_imps": "Int64", "u_clicks": "Int64", "u_orders": "Int64",
                                            "u_ctr": "Float64"}
    assert _schema(views["poi_stats"]) == {"p_imps": "Int64", "p_clicks": "Int64", "p_orders": "Int64",
                                           "p_ctr": "Float64", "p_cvr": "Float64"}
    assert _schema(views["poi_embedding"]) == {"embedding": "Array(Float32)", "encoder_version": "String",
                                               "region_id": "Int64"}, "main_dish is gone"
    assert _schema(views["user_embedding"]) == {"embedding": "Array(Float32)", "encoder_version": "String"}
    assert _schema(views["scene_value_embedding"]) == {"embedding": "Array(Float32)", "field": "String",
                                                       "encoder_version": "String"}
    # the streaming consumer writes exactly this row (larr/realtime/state.py, derived from the spec's realtime
    # section): today's columns and types
    from larr.realtime.state import state_schema

    assert list(_schema(views["region_scene_state"]).items()) == state_schema(load_spec("food_delivery")) == [
        ("weather", "String"), ("temperature_c", "Float64"), ("weather_key", "Int64"), ("temp_key", "Int64"),
        ("weather_ts", "Int64"), ("time_slot", "String"), ("slot_key", "Int64"), ("slot_ts", "Int64"),
        ("day_type", "String"), ("day_key", "Int64"), ("context_ts", "Int64")]
    assert views["region_scene_state"].entities == ["region"]
    assert set(objs["push"]) == {"region_scene_push"}
    assert {v.entities[0] for n, v in views.items() if n.startswith("poi_")} == {"poi"}
    assert _services(objs) == {"ctr_model": ["user_stats", "poi_stats", "user_poi_stats", "user_poi_history",
                                             "user_context", "poi_profile", "scene_value_embedding", "region_scene_state"],
                               "recall": ["poi_embedding", "user_embedding"]}
    paths = {n: Path(s.path).name for n, s in objs["files"].items()}
    assert paths == {"user_stats_source": "user_stats.parquet", "poi_stats_source": "poi_stats.parquet",
                     "user_poi_stats_source": "user_poi_stats.parquet",
                     "user_poi_history_source": "user_poi_history.parquet",
                     "user_context_source": "user_context.parquet", "poi_profile_source": "poi_profile.parquet",
                     "user_embeddings_source": "user_embeddings.parquet",
                     "poi_embeddings_source": "poi_embeddings.parquet",
                     "scene_value_embeddings_source": "scene_value_embeddings.parquet",
                     "region_scene_state_source": "region_scene_state.parquet"}


def test_feast_apply_works_in_the_shipped_folder_of_a_fresh_clone(tmp_path: Path) -> None:
    """What `git clone` gives (tracked + not-ignored files: no registry, no database), then `feast apply`."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "feature_repo"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for f in ("feature_repo/data/registry.db", "feature_repo/data/online_store.db"):
            assert subprocess.run(["git", "check-ignore", "-q", f], cwd=ROOT).returncode == 0, f"{f} not ignored"
    else:
        files = [str(p.relative_to(ROOT)) for p in (ROOT / "feature_repo").rglob("*")
                 if p.is_file() and p.suffix != ".db" and "__pycache__" not in p.parts]
    assert "feature_repo/data/.gitkeep" in files, "the registry folder ships with the repo"
    assert not [f for f in files if f.endswith(".db")]
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, tmp_path / f)
    repo = tmp_path / "feature_repo"
    res = subprocess.run([str(FEAST), "apply"], cwd=repo, env=_feast_env(tmp_path / "no_data_yet"),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"feast apply failed:\n{res.stdout}\n{res.stderr}"
    assert (repo / "data" / "registry.db").exists()
    assert "poi_embedding" in res.stdout + res.stderr


# ----------------------------------------------------------------------------------- other specs
def test_optional_parts_follow_the_spec(tmp_path: Path) -> None:
    spec = _food(_shop)
    objs = _objects(definitions_source(spec), tmp_path)
    assert set(objs["entities"]) == {"user", "shop", "scene_value"}, "no real-time entity without realtime"
    assert objs["entities"]["shop"].join_key == "poi_id"
    assert set(objs["views"]) == {"user_stats", "shop_stats", "user_embedding", "shop_embedding",
                                  "scene_value_embedding", "user_shop_stats", "user_shop_history", "user_context",
                                  "shop_profile"}
    assert not objs["push"]
    assert _schema(objs["views"]["user_stats"]) == {"u_imps": "Int64", "u_clicks": "Int64", "u_ctr": "Float64"}
    assert _schema(objs["views"]["shop_stats"]) == {"p_imps": "Int64", "p_clicks": "Int64", "p_ctr": "Float64"}
    assert _schema(objs["views"]["shop_embedding"]) == {
        "embedding": "Array(Float32)", "encoder_version": "String", "region_id": "Int64", "cuisine": "String",
        "rating": "Float64", "is_chain": "Bool"}
    assert _services(objs) == {"ctr_model": ["user_stats", "shop_stats", "user_shop_stats", "user_shop_history",
                                             "user_context", "shop_profile", "scene_value_embedding"],
                               "recall": ["shop_embedding", "user_embedding"]}
    assert {Path(s.path).name for s in objs["files"].values()} >= {"shop_embeddings.parquet",
                                                                   "shop_stats.parquet"}
    assert embedding_views(spec) == {"user": "user_embedding", "item": "shop_embedding"}


@pytest.mark.parametrize("name", BUILTIN_SPECS)
def test_every_builtin_spec_renders(name: str, tmp_path: Path) -> None:
    spec = load_spec(name)
    objs = _objects(definitions_source(spec), tmp_path)
    assert set(objs["views"]) >= set(stat_views(spec)) | set(embedding_views(spec).values())
    assert ("region_scene_state" in objs["views"]) == (spec.realtime is not None)


@pytest.mark.parametrize("edit", [None, _shop])
def test_stat_views_are_ctr_sample_columns(edit) -> None:
    spec = _food(edit) if edit else load_spec("food_delivery")
    numeric = set(ctr_columns(spec).numeric)
    views = stat_views(spec)
    assert list(views) == [f"{spec.user_name}_stats", f"{spec.item_name}_stats"]
    assert [k for k, _ in views.values()] == [spec.user_key, spec.item_key]
    for _, cols in views.values():
        assert set(cols) <= numeric
    assert ("p_cvr" in views[f"{spec.item_name}_stats"][1]) == spec.has_conversion


def test_bad_specs_are_refused_at_render_time() -> None:
    def listy(data: dict) -> None:
        data["embed"]["item_columns"] = ["tags"]

    with pytest.raises(ValueError, match="tags is list<string>"):
        definitions_source(_food(listy))

    def clash(data: dict) -> None:
        data["entities"]["item"]["name"] = "scene_value"

    with pytest.raises(ValueError, match="entity names must differ"):
        definitions_source(_food(clash))

    def shadow(data: dict) -> None:
        data["entities"]["item"]["name"] = "Field"

    with pytest.raises(ValueError, match="cannot name a Feast object"):
        definitions_source(_food(shadow))


# ----------------------------------------------------------------------------------- larr glue
def test_prepare_repo_writes_the_rendering_of_the_spec(tmp_path: Path) -> None:
    spec = _food(_shop)
    repo = fsx.prepare_repo(tmp_path / "repo", tmp_path / "features", spec=spec)
    assert (repo / "definitions.py").read_text() == definitions_source(spec)
    cfg = yaml.safe_load((repo / "feature_store.yaml").read_text())
    assert Path(cfg["registry"]).parent == repo and Path(cfg["online_store"]["path"]).parent == repo
    assert (repo / ".larr-features").read_text() == str((tmp_path / "features").resolve())
    default = fsx.prepare_repo(tmp_path / "default", tmp_path / "features")
    assert (default / "definitions.py").read_text() == (REPO / "definitions.py").read_text()
    fsx.apply(repo)  # the variant is a valid Feast repo too
    assert (repo / "registry.db").exists()


def test_export_stats_writes_the_spec_columns(tmp_path: Path) -> None:
    spec = _food(_shop)
    jobs = tmp_path / "jobs"
    (jobs / "ctr_samples").mkdir(parents=True)
    pd.DataFrame({"date": ["2024-01-01", "2024-01-01", "2024-01-02"], "user_id": [1, 1, 2], "poi_id": [5, 6, 5],
                  "u_imps": [3, 3, 1], "u_clicks": [1, 1, 0], "u_ctr": [0.3, 0.3, 0.1], "p_imps": [7, 2, 8],
                  "p_clicks": [2, 0, 2], "p_ctr": [0.2, 0.1, 0.2], "click": [1, 0, 0],
                  "up_imps": [1, 0, 0], "up_clicks": [0, 0, 0], "up_ctr": [0.1, 0.1, 0.1], "price_level": [2, 3, 2],
                  "shop_age_days": [10, 0, 11], "region_id": [1, 1, 2],
                  "scene_keys": [list(range(10)), list(range(10)), list(range(10, 20))]}
                 ).to_parquet(jobs / "ctr_samples" / "part-0.parquet")
    out = fsx.export_stats(jobs, tmp_path / "features", spec)
    assert out == {"user_stats": 2, "shop_stats": 3, "user_shop_stats": 3, "user_shop_history": 2,
                   "user_context": 2, "shop_profile": 3, "scene_lookups.parquet": 2}
    # the pair rows again, keyed by user: one row per (user, day), arrays aligned by position
    hist = pd.read_parquet(tmp_path / "features" / "user_shop_history.parquet")
    first = hist[hist["user_id"] == 1].iloc[0]
    assert list(first["shop_ids"]) == [5, 6] and list(first["up_imps_by_shop"]) == [1, 0]
    assert list(first["up_ctr_by_shop"]) == [0.1, 0.1]
    profile = pd.read_parquet(tmp_path / "features" / "shop_profile.parquet")
    assert list(profile.columns) == ["poi_id", "event_timestamp", "price_level", "created_day", "key_POI_dishes"]
    assert profile["created_day"].tolist() == [19723 - 10, 19723, 19724 - 11]  # 2024-01-01 is day 19723
    lookups = pd.read_parquet(tmp_path / "features" / "scene_lookups.parquet")
    assert set(zip(lookups["value"], lookups["scene_key"], strict=True)) == {("1", 0), ("2", 10)}
    shop = pd.read_parquet(tmp_path / "features" / "shop_stats.parquet")
    assert list(shop.columns) == ["poi_id", "event_timestamp", "p_imps", "p_clicks", "p_ctr"]


def test_pair_history_keeps_every_pair_of_the_ttl_with_its_newest_row() -> None:
    """The user-keyed arrays answer what the per-pair view would: a pair impressed on an earlier day (within
    the view's TTL) is still there the next day, with its newest row; one older than the TTL is gone."""
    day = pd.Timestamp("2024-01-01")
    pairs = pd.DataFrame({"user_id": [1, 1, 1, 1], "poi_id": [5, 6, 5, 7],
                          "event_timestamp": [day, day, day + pd.Timedelta(days=1), day + pd.Timedelta(days=40)],
                          "up_imps": [1, 2, 3, 4], "up_clicks": [0, 1, 1, 0], "up_orders": [0, 0, 1, 0],
                          "up_ctr": [0.1, 0.2, 0.3, 0.4]})
    h = fsx.pair_history_rows(pairs, load_spec("food_delivery")).set_index("event_timestamp")
    second = h.loc[day + pd.Timedelta(days=1)]
    assert sorted(zip(second["poi_ids"], second["up_imps_by_poi"], strict=True)) == [(5, 3), (6, 2)]
    late = h.loc[day + pd.Timedelta(days=40)]
    assert list(late["poi_ids"]) == [7], "rows older than the 30-day TTL are not served"


def test_recall_display_info_comes_from_the_raw_items(tmp_path: Path) -> None:
    dishes = [[{"name": "noodles", "description": "hot"}, {"name": "tea", "description": "cold"}],
              [{"name": "dumplings", "description": "steamed"}], []]
    pd.DataFrame({"poi_id": [10, 11, 12], "region_id": [1, 2, 9], "dishes": dishes, "name": ["a", "b", "c"]}
                 ).to_parquet(tmp_path / "pois.parquet")
    pd.DataFrame({"region_id": [1, 2], "name": ["Guangdong", "Sichuan"]}).to_parquet(tmp_path / "regions.parquet")
    info = display_info(tmp_path, load_spec("food_delivery"))
    assert info.to_dict("list") == {"poi_id": [10, 11, 12], "region": ["Guangdong", "Sichuan", "?"],
                                    "main_dish": ["noodles", "dumplings", "?"]}
    vectors = np.array([[1, 0], [0, 1], [np.nan, 0]], dtype=np.float32)
    hits = PoiIndex(info["poi_id"].to_numpy(), vectors, info).search(np.array([0.1, 1.0]), k=2)
    assert [(h.poi_id, h.region, h.main_dish) for h in hits] == [(11, "Sichuan", "dumplings"),
                                                                 (10, "Guangdong", "noodles")]
    assert type(hits[0].poi_id) is int


def test_write_definitions_renders_into_a_path(tmp_path: Path) -> None:
    spec = _food(_shop)
    path = write_definitions(spec, tmp_path / "definitions.py")
    assert path.read_text() == definitions_source(spec)
