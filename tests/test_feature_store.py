"""Feast repo, embedding materialization (SQLite and real Redis), the embedding cache, point-in-time joins,
recall, and the errors that must stop a materialization."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from larr import feature_store as fsx
from larr.config import load_config
from larr.feast_repo import embedding_views
from larr.llm.encoder import TextEncoder
from larr.spec import load_spec
from serving.recall import PoiIndex, query_text
from spark_jobs import embed_features
from spark_jobs.embed_features import EmbeddingError

CFG = load_config("tiny")
SPEC = load_spec(CFG.spec)
ITEM_VIEW = embedding_views(SPEC)["item"]


@pytest.fixture(scope="module")
def embedded(spark, tiny_world: Path, tiny_jobs: Path, tiny_llm: dict, tmp_path_factory: pytest.TempPathFactory
             ) -> dict:
    root = tmp_path_factory.mktemp("embed")
    jobs = root / "jobs"
    shutil.copytree(tiny_jobs, jobs)
    features = root / "features"
    encoder = tiny_llm["out"] / "encoder"
    first = embed_features.run(spark, CFG, tiny_world, jobs, validate=False, encoder=encoder, features=features)
    second = embed_features.run(spark, CFG, tiny_world, jobs, validate=False, encoder=encoder, features=features)
    fsx.export_stats(jobs, features, SPEC)
    if SPEC.realtime:
        fsx.export_region_scene(tiny_world, features)
    return {"root": root, "jobs": jobs, "features": features, "encoder": encoder, "first": first, "second": second}


def _window(world: Path) -> tuple[datetime, datetime]:
    w = json.loads((world / "manifest.json").read_text())["window"]
    return datetime.fromisoformat(w["start"]) - timedelta(days=1), datetime.fromisoformat(w["end"]) + timedelta(days=1)


def test_cache_makes_the_second_run_embed_nothing(embedded: dict) -> None:
    first, second = embedded["first"], embedded["second"]
    assert first["embedded_now"] == first["distinct_texts"] > 0
    assert second["embedded_now"] == 0 and second["from_cache"] == first["distinct_texts"]
    assert second["rows_out"] == first["rows_out"]
    vocab = pd.read_parquet(embedded["jobs"] / "scene_vocab")
    emb = pd.read_parquet(embedded["features"] / "scene_value_embeddings.parquet")
    assert set(emb["scene_key"]) == set(vocab["key"])
    v = np.stack(emb["embedding"].to_numpy())
    assert v.shape[1] == CFG.features.embedding_dim and np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-4)


def test_feast_apply_in_a_temp_dir(embedded: dict, tmp_path: Path) -> None:
    repo = fsx.prepare_repo(tmp_path / "repo", embedded["features"], spec=SPEC)
    fsx.apply(repo)
    s = fsx.summary(repo)
    assert s["entities"] == ["poi", "region", "scene_value", "user"]
    assert {"user_stats", "poi_stats", "user_embedding", "poi_embedding", "scene_value_embedding",
            "region_scene_state"} <= set(s["feature_views"])
    assert s["feature_services"] == ["ctr_model", "recall"]


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_materialize_and_read_back(embedded: dict, tiny_world: Path, tmp_path: Path, online: str,
                                   request: pytest.FixtureRequest) -> None:
    redis = request.getfixturevalue("redis_url") if online == "redis" else "127.0.0.1:6379"
    repo = fsx.prepare_repo(tmp_path / online, embedded["features"], online, redis, spec=SPEC)
    fsx.apply(repo)
    fsx.materialize(repo, *_window(tiny_world))
    offline = pd.read_parquet(embedded["features"] / f"{SPEC.item_name}_embeddings.parquet").head(5)
    assert "main_dish" not in offline.columns
    got = fsx.online_vectors(repo, ITEM_VIEW, SPEC.item_key, offline[SPEC.item_key].tolist())
    np.testing.assert_allclose(got, np.stack(offline["embedding"].to_numpy()), rtol=1e-6)
    scene = pd.read_parquet(embedded["features"] / "scene_value_embeddings.parquet").head(3)
    got = fsx.online_vectors(repo, "scene_value_embedding", "scene_key", scene["scene_key"].tolist())
    np.testing.assert_allclose(got, np.stack(scene["embedding"].to_numpy()), rtol=1e-6)
    assert np.isnan(fsx.online_vectors(repo, ITEM_VIEW, SPEC.item_key, [42])).all(), "unknown POI reads as missing"
    index = PoiIndex.from_feast(repo, tiny_world, SPEC)
    enc = TextEncoder.load(embedded["encoder"])
    hits = index.search(enc.encode([query_text("a rainy evening in Guangdong")])[0], k=5)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.region != "?" and h.main_dish != "?" for h in hits), "display info comes from the raw POI table"


def test_point_in_time_join_never_sees_a_later_row(embedded: dict, tiny_world: Path, tmp_path: Path) -> None:
    repo = fsx.prepare_repo(tmp_path / "pit", embedded["features"], spec=SPEC)
    fsx.apply(repo)
    stats = pd.read_parquet(embedded["features"] / "user_stats.parquet")
    user = stats.groupby("user_id")["event_timestamp"].nunique().idxmax()
    rows = stats[stats["user_id"] == user].sort_values("event_timestamp")
    earlier, later = rows.iloc[0], rows.iloc[1]
    entity = pd.DataFrame({"user_id": [user, user],
                           "event_timestamp": [later["event_timestamp"] - pd.Timedelta(hours=1),
                                               later["event_timestamp"] + pd.Timedelta(hours=1)]})
    got = fsx.store(repo).get_historical_features(entity_df=entity, features=["user_stats:u_imps"]).to_df()
    got = got.sort_values("event_timestamp")
    assert got["u_imps"].tolist() == [earlier["u_imps"], later["u_imps"]]


def test_point_in_time_join_never_sees_an_embedding_built_from_later_orders(embedded: dict, tiny_world: Path,
                                                                             tmp_path: Path) -> None:
    """User and item vectors embed texts built from orders through the last day, so they are stamped at the end
    of that day: a join at a training- or test-day impression gets no vector, one after the stamp gets it."""
    repo = fsx.prepare_repo(tmp_path / "pit_emb", embedded["features"], spec=SPEC)
    fsx.apply(repo)
    w = json.loads((tiny_world / "manifest.json").read_text())["window"]
    complete = pd.Timestamp(w["end"]) + pd.Timedelta(days=1)
    views = embedding_views(SPEC)
    for entity, key in (("item", SPEC.item_key), ("user", SPEC.user_key)):
        table = pd.read_parquet(embedded["features"] / f"{getattr(SPEC, entity + '_name')}_embeddings.parquet")
        assert (table["event_timestamp"] == complete).all(), entity
        ids = table[key].head(2).tolist()
        times = [pd.Timestamp(w["start"]) + pd.Timedelta(hours=12), pd.Timestamp(w["end"]) + pd.Timedelta(hours=12),
                 complete + pd.Timedelta(hours=1)]
        entity_df = pd.DataFrame({key: [i for i in ids for _ in times], "event_timestamp": times * len(ids)})
        got = fsx.store(repo).get_historical_features(entity_df=entity_df,
                                                      features=[f"{views[entity]}:embedding"]).to_df()
        # Feast's file store leaves out an entity row that finds no feature row; a found one must hold a vector
        when = pd.to_datetime(got["event_timestamp"], utc=True).dt.tz_localize(None)
        found = {(k, t) for k, t, v in zip(got[key], when, got["embedding"], strict=True)
                 if v is not None and not (np.isscalar(v) and pd.isna(v))}
        seen = [(k, t) in found for k, t in zip(entity_df[key], entity_df["event_timestamp"], strict=True)]
        assert seen == [False, False, True] * len(ids), (entity, got[[key, "event_timestamp", "embedding"]])
    scene = pd.read_parquet(embedded["features"] / "scene_value_embeddings.parquet")
    assert (scene["event_timestamp"] == pd.Timestamp(w["start"])).all(), "a value's vector depends on its text only"
    assert embedded["first"]["event_timestamps"][f"{SPEC.item_name}_embeddings"] == complete.isoformat()


def test_unknown_encoder_version_is_refused(spark, embedded: dict, tiny_world: Path) -> None:
    before = (embedded["features"] / "poi_embeddings.parquet").stat().st_mtime_ns
    with pytest.raises(EmbeddingError, match="unknown encoder version 'deadbeef'"):
        embed_features.run(spark, CFG, tiny_world, embedded["jobs"], validate=False, encoder=embedded["encoder"],
                           features=embedded["features"], expect_version="deadbeef")
    assert (embedded["features"] / "poi_embeddings.parquet").stat().st_mtime_ns == before


def test_dimension_mismatch_is_refused(spark, embedded: dict, tiny_world: Path) -> None:
    cfg = load_config("tiny", overrides=["features.embedding_dim=64"])
    with pytest.raises(EmbeddingError, match=r"dimension mismatch: encoder .* 128-d .*embedding_dim = 64"):
        embed_features.run(spark, cfg, tiny_world, embedded["jobs"], validate=False, encoder=embedded["encoder"],
                           features=embedded["features"])


def test_non_finite_vectors_are_never_materialized(spark, embedded: dict, tiny_world: Path, tmp_path: Path) -> None:
    broken = TextEncoder.load(embedded["encoder"], device="cpu")
    with torch.no_grad():
        broken.projection.weight.fill_(float("nan"))
    broken.save(tmp_path / "broken")
    features = tmp_path / "features"
    with pytest.raises(EmbeddingError, match="NaN or infinite"):
        embed_features.run(spark, CFG, tiny_world, embedded["jobs"], validate=False, encoder=tmp_path / "broken",
                           features=features)
    assert not features.exists(), "nothing partially materialized"
    version = json.loads((tmp_path / "broken" / "encoder.json").read_text())["version"]
    assert not list((embedded["jobs"] / "embed_cache" / f"encoder_version={version}").glob("*.parquet"))
