"""The app-recommendation world: determinism, the output contract, cold-start apps, a text-only signal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from larr.config import load_config
from larr.world.app_catalog import CITIES
from larr.world.app_usage import generate_app_world

OVERRIDES = ["world.n_users=600", "world.n_pois=150", "world.chunk_rows=4000"]

EVENT_TYPES = {"request_id": pa.int64(), "ts": pa.timestamp("us"), "user_id": pa.int64(),
               "app_id": pa.int64(), "place": pa.string(), "weather": pa.string(),
               "connectivity": pa.string(), "city": pa.string(), "click": pa.int64()}
APP_TYPES = {"app_id": pa.int64(), "title": pa.string(), "category": pa.string(), "developer": pa.string(),
             "description": pa.string(), "tags": pa.list_(pa.string()), "created_date": pa.date32(),
             "rating": pa.float64(), "size_mb": pa.float64()}
USER_TYPES = {"user_id": pa.int64(), "country": pa.string(), "city": pa.string(), "device": pa.string(),
              "age_group": pa.string()}


@pytest.fixture(scope="module")
def app_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small app world for the module (read-only)."""
    out = tmp_path_factory.mktemp("app_world")
    generate_app_world(load_config("tiny", overrides=OVERRIDES), out, progress=False)
    return out


def _events(root: Path) -> pa.Table:
    parts = []
    for f in sorted((root / "events").glob("date=*/*.parquet")):
        t = pq.read_table(f)
        day = f.parent.name.split("=")[1]
        parts.append(t.append_column("date", pa.array([day] * t.num_rows, pa.string())))
    return pa.concat_tables(parts)


def _types(schema: pa.Schema) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in schema}


def test_same_seed_gives_byte_identical_files(app_world: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_app_world(load_config("tiny", overrides=OVERRIDES), again, progress=False)
    files = sorted(p.relative_to(app_world) for p in app_world.rglob("*.parquet"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.parquet"))
    for rel in files:
        assert (app_world / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    generate_app_world(load_config("tiny", overrides=OVERRIDES, seed=8), other, progress=False)
    assert (other / "apps.parquet").read_bytes() != (app_world / "apps.parquet").read_bytes()


def test_files_columns_and_types(app_world: Path) -> None:
    top = {p.name for p in app_world.iterdir()}
    assert top == {"apps.parquet", "users.parquet", "events", "_oracle", "manifest.json", "config.yaml"}
    assert not (app_world / "general_text.txt").exists()
    assert {p.name for p in (app_world / "_oracle").iterdir()} == {"test_truth.parquet", "README.txt"}
    assert _types(pq.read_schema(app_world / "apps.parquet")) == APP_TYPES
    assert list(pq.read_schema(app_world / "apps.parquet").names) == list(APP_TYPES)
    assert _types(pq.read_schema(app_world / "users.parquet")) == USER_TYPES
    for f in (app_world / "events").glob("date=*/*.parquet"):
        schema = pq.read_schema(f)
        assert list(schema.names) == list(EVENT_TYPES) and _types(schema) == EVENT_TYPES, f

    ev = _events(app_world).to_pandas()
    assert set(ev["place"]) <= {"home", "work", "other"}
    assert set(ev["weather"]) <= {"sunny", "cloudy", "rainy", "snowy"}
    assert set(ev["connectivity"]) <= {"wifi", "cellular", "offline"}
    assert set(ev["click"]) <= {0, 1}
    assert (ev["ts"].dt.date.astype(str) == ev["date"]).all()
    assert not ev.duplicated(["request_id", "app_id"]).any()
    k = load_config("tiny").world.candidates_per_request
    assert (ev.groupby("request_id")["app_id"].nunique() == k).all()
    apps = pq.read_table(app_world / "apps.parquet").to_pandas()
    users = pq.read_table(app_world / "users.parquet").to_pandas()
    assert apps["app_id"].min() == 5_000_000 and users["user_id"].min() == 1
    assert set(ev["app_id"]) <= set(apps["app_id"]) and set(ev["user_id"]) <= set(users["user_id"])
    cities = {c.name for c in CITIES}
    assert set(ev["city"]) <= cities and set(users["city"]) <= cities
    assert (ev.merge(users, on="user_id", suffixes=("", "_home")).eval("city != city_home")).mean() < 0.2
    assert (apps["size_mb"] > 0).all() and apps["tags"].apply(len).le(4).all()
    assert apps["description"].str.len().gt(0).all()


def test_new_apps_only_on_the_test_day(app_world: Path) -> None:
    m = json.loads((app_world / "manifest.json").read_text())
    apps = pq.read_table(app_world / "apps.parquet").to_pandas()
    ev = _events(app_world).to_pandas()
    test_day = m["split"]["test"]
    new = apps["created_date"].astype(str) == test_day
    assert new.sum() == m["new_items_on_test_day"] > 0
    assert apps.loc[new, "rating"].isna().all() and apps.loc[~new, "rating"].notna().all()
    assert (apps.loc[~new, "created_date"].astype(str) < m["window"]["start"]).all()
    new_ids = set(apps.loc[new, "app_id"])
    assert not new_ids & set(ev.loc[ev["date"] < test_day, "app_id"])
    assert new_ids & set(ev.loc[ev["date"] == test_day, "app_id"])


def test_manifest_and_oracle(app_world: Path) -> None:
    m = json.loads((app_world / "manifest.json").read_text())
    assert m["domain"] == "app_usage"
    assert load_config("tiny", app_world / "config.yaml") == load_config("tiny", overrides=OVERRIDES)
    ev = _events(app_world).to_pandas()
    assert m["rows"]["events"] == len(ev) and m["clicks"] == int(ev["click"].sum())
    assert 0.03 < m["ctr"] < 0.2
    assert m["split"]["valid"] < m["split"]["test"] == m["window"]["end"] == ev["date"].max()
    truth = pq.read_table(app_world / "_oracle" / "test_truth.parquet").to_pandas()
    test = ev[ev["date"] == m["split"]["test"]]
    assert len(truth) == len(test) == m["rows"]["test_events"]
    merged = test.merge(truth, on=["request_id", "app_id"], validate="one_to_one")
    assert merged["p_click"].between(0, 1).all()
    # the text-only part is a real share of what can be known
    assert m["oracle_auc"]["ctr"] > m["oracle_auc_without_semantics"]["ctr"] + 0.02, m["oracle_auc"]


def test_offline_capable_apps_win_offline(app_world: Path) -> None:
    """A context effect that shows through text: apps whose text says offline gain CTR offline."""
    apps = pq.read_table(app_world / "apps.parquet").to_pandas()
    words = ("offline", "without a connection", "no signal", "zero bars", "airplane", "without internet",
             "no data plan", "off the grid", "enjoy them later", "underground", "stored right on your phone",
             "on the plane", "reception")
    text = (apps["title"] + " " + apps["description"] + " " + apps["tags"].apply(" ".join)).str.lower()
    offline_ids = set(apps.loc[text.apply(lambda t: any(w in t for w in words)), "app_id"])
    ev = _events(app_world).to_pandas()
    ev["offline_app"] = ev["app_id"].isin(offline_ids)
    ctr = ev.groupby(["connectivity", "offline_app"])["click"].mean()
    assert ctr[("offline", True)] / ctr[("offline", False)] > 2 * ctr[("wifi", True)] / ctr[("wifi", False)]


def test_semantic_scale_zero_removes_the_gap(tmp_path: Path) -> None:
    m = generate_app_world(load_config("tiny", overrides=["world.semantic.scale=0"]), tmp_path / "flat",
                           progress=False)
    assert m["oracle_auc"]["ctr"] == pytest.approx(m["oracle_auc_without_semantics"]["ctr"])
    assert np.isfinite(m["ctr"])


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--force"):
        generate_app_world(load_config("tiny"), tmp_path, progress=False)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
