"""The simulated world: determinism, the test-day contents, and a learnable semantic signal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from larr.config import load_config
from larr.metrics import auc
from larr.world.generate import generate_world

TABLES = ["regions", "districts", "pois", "users", "weather"]


def _read(root: Path, name: str) -> pd.DataFrame:
    if name in ("impressions", "orders"):
        parts = []
        for f in sorted((root / name).glob("date=*/*.parquet")):
            df = pd.read_parquet(f)
            df["date"] = f.parent.name.split("=")[1]
            parts.append(df)
        return pd.concat(parts, ignore_index=True)
    return pd.read_parquet(root / f"{name}.parquet")


def test_same_seed_gives_identical_tables(tiny_world: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_world(load_config("tiny", seed=7), again, progress=False)
    for name in [*TABLES, "impressions", "orders"]:
        pd.testing.assert_frame_equal(_read(tiny_world, name), _read(again, name), obj=name)
    pd.testing.assert_frame_equal(pd.read_parquet(tiny_world / "_oracle" / "test_truth.parquet"),
                                  pd.read_parquet(again / "_oracle" / "test_truth.parquet"))


def test_different_seed_differs(tiny_world: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_world(load_config("tiny", seed=8), other, progress=False)
    assert not _read(tiny_world, "pois").equals(_read(other, "pois"))
    assert not _read(tiny_world, "impressions")["click"].equals(_read(other, "impressions")["click"])


def test_resolved_config_and_manifest_are_written(tiny_world: Path) -> None:
    assert load_config("tiny", tiny_world / "config.yaml") == load_config("tiny", seed=7)
    m = json.loads((tiny_world / "manifest.json").read_text())
    imp = _read(tiny_world, "impressions")
    assert m["rows"]["impressions"] == len(imp)
    assert m["rows"]["orders"] == len(_read(tiny_world, "orders"))
    assert m["split"]["test"] == m["window"]["end"] == sorted(imp["date"].unique())[-1]
    assert m["impressions_per_second"] > 0


def test_labels_and_hidden_truth(tiny_world: Path) -> None:
    imp = _read(tiny_world, "impressions")
    assert ((imp["order"] == 1) <= (imp["click"] == 1)).all()
    assert 0.01 < imp["click"].mean() < 0.3
    truth = pd.read_parquet(tiny_world / "_oracle" / "test_truth.parquet")
    test = imp[imp["date"] == imp["date"].max()]
    assert len(truth) == len(test)
    assert truth["p_click"].between(0, 1).all()
    assert np.allclose(truth["p_ctcvr"], truth["p_click"] * truth["p_order_given_click"])
    # latents never leave the simulator
    users = _read(tiny_world, "users")
    assert not {"spicy_pref", "sweet_pref", "price_sens", "latent"} & set(users.columns)


def test_test_day_has_new_pois_and_travellers(tiny_world: Path) -> None:
    imp = _read(tiny_world, "impressions")
    pois = _read(tiny_world, "pois")
    test_day = imp["date"].max()
    new = set(pois.loc[pois["created_date"].astype(str) == test_day, "poi_id"])
    assert new, "the test day must hold POIs created that day"
    shown_before = set(imp.loc[imp["date"] < test_day, "poi_id"])
    assert not new & shown_before
    assert new & set(imp.loc[imp["date"] == test_day, "poi_id"])
    travel_share = imp.groupby(imp["date"] == test_day)["out_of_area"].mean()
    assert travel_share[True] > 2 * travel_share[False] > 0


def test_semantic_signal_beats_id_only_popularity(tiny_world: Path) -> None:
    """The oracle (which knows what things mean) must clearly beat an id-only popularity score."""
    imp = _read(tiny_world, "impressions")
    days = sorted(imp["date"].unique())
    train = imp[imp["date"].isin(days[:-2])]
    test = imp[imp["date"] == days[-1]].reset_index(drop=True)
    prior = train["click"].mean()
    stats = train.groupby("poi_id")["click"].agg(["sum", "count"])
    pop = (stats["sum"] + 20 * prior) / (stats["count"] + 20)
    score = test["poi_id"].map(pop).fillna(prior).to_numpy()
    truth = pd.read_parquet(tiny_world / "_oracle" / "test_truth.parquet")
    merged = test.merge(truth, on=["request_id", "poi_id"], validate="one_to_one")
    oracle = auc(merged["click"].to_numpy(), merged["p_click"].to_numpy())
    popularity = auc(test["click"].to_numpy(), score)
    assert oracle > popularity + 0.1, (oracle, popularity)
    m = json.loads((tiny_world / "manifest.json").read_text())
    assert m["oracle_auc"]["ctr"] == pytest.approx(oracle)
    assert m["popularity_auc"]["ctr"] == pytest.approx(popularity)
    # and the semantic part is a real share of it: the oracle without it is clearly worse
    assert m["oracle_auc_without_semantics"]["ctr"] < oracle - 0.01


def test_hot_weather_favours_cold_food(tmp_path: Path) -> None:
    """A semantic effect visible only through text: POIs tagged "cold food" gain CTR in hot weather."""
    out = tmp_path / "w"
    generate_world(load_config("tiny", seed=1, overrides=["world.n_users=1500", "world.n_pois=300"]), out,
                   progress=False)
    imp = _read(out, "impressions")
    pois = _read(out, "pois")
    cold = set(pois.loc[pois["tags"].apply(lambda t: "cold food" in list(t)), "poi_id"])
    imp["cold_food"] = imp["poi_id"].isin(cold)
    imp["hot_day"] = imp["temperature_c"] >= 30
    ctr = imp.groupby(["hot_day", "cold_food"])["click"].mean()
    lift_hot = ctr[(True, True)] / ctr[(True, False)]
    lift_mild = ctr[(False, True)] / ctr[(False, False)]
    assert lift_hot > lift_mild, ctr


def test_semantic_scale_zero_removes_the_gap(tmp_path: Path) -> None:
    out = tmp_path / "flat"
    m = generate_world(load_config("tiny", overrides=["world.semantic.scale=0"]), out, progress=False)
    assert m["oracle_auc"]["ctr"] == pytest.approx(m["oracle_auc_without_semantics"]["ctr"])


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--force"):
        generate_world(load_config("tiny"), tmp_path, progress=False)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
