"""The realistic world variant (``world.variant: realistic``, profiles tiny_realistic / small_realistic): the
default world stays bit-for-bit what it was, the realistic one is deterministic, follows the raw-data
contract, words its cues without the keyword world's literal cue phrases, and still has a semantic part."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from larr.config import PROFILES, config_to_dict, load_config
from larr.validate import validate_folder
from larr.world.generate import _build_world, generate_world
from larr.world.wording import CUE_KEYWORDS
from tests.golden.digest import world_digest

GOLDEN_WORLD = Path(__file__).parent / "golden" / "world_tiny_seed7.json"
TEXT_COLUMNS = ("name", "cuisine", "introduction")


@pytest.fixture(scope="module")
def realistic_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_realistic")
    generate_world(load_config("tiny_realistic", seed=7), out, progress=False)
    return out


def _poi_texts(pois: pd.DataFrame) -> list[str]:
    """Every text of every POI (name, cuisine, introduction, tags, dish names and descriptions), lower case."""
    out = []
    for _, row in pois.iterrows():
        parts = [str(row[c]) for c in TEXT_COLUMNS] + [str(t) for t in row["tags"]]
        parts += [f"{d['name']} {d['description']}" for d in row["dishes"]]
        out.append(" | ".join(parts).lower())
    return out


def test_default_world_is_bit_identical_to_the_pinned_one(tiny_world: Path) -> None:
    """The digest of the default tiny world (seed 7), recorded with the code before the realistic variant
    existed (main at bbfdfa1): tables, oracle and general text unchanged.  The oracle's probabilities are
    compared at 8 significant digits (``tests/golden/digest.py``: numpy's exp differs in the last bit between
    CPUs); its entry was re-recorded with bbfdfa1's generator when an AVX-512 machine gave another exact hash."""
    assert world_digest(tiny_world) == json.loads(GOLDEN_WORLD.read_text())


def test_realistic_profiles_are_their_base_with_the_variant_on() -> None:
    assert {"tiny_realistic", "small_realistic"} <= set(PROFILES)
    for base in ("tiny", "small"):
        plain, real = config_to_dict(load_config(base)), config_to_dict(load_config(f"{base}_realistic"))
        assert plain["world"]["variant"] == "keyword" and real["world"]["variant"] == "realistic"
        real["world"]["variant"], real["profile"] = "keyword", base
        assert real == plain


def test_realistic_world_is_deterministic_per_seed(realistic_world: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_world(load_config("tiny_realistic", seed=7), again, progress=False)
    assert world_digest(again) == world_digest(realistic_world)
    other = tmp_path / "other"
    generate_world(load_config("tiny_realistic", seed=8), other, progress=False)
    assert world_digest(other)["pois"] != world_digest(realistic_world)["pois"]


def test_realistic_world_differs_only_in_wording_and_clicks(tiny_world: Path, realistic_world: Path) -> None:
    """Same latent world (POIs, users, weather, request stream), other texts, other labels."""
    plain, real = world_digest(tiny_world), world_digest(realistic_world)
    for name in ("regions", "districts", "users", "weather"):
        assert real[name] == plain[name], name
    assert real["pois"] != plain["pois"] and real["general_text"] != plain["general_text"]
    assert real["impressions"] != plain["impressions"]
    p_pois, r_pois = pd.read_parquet(tiny_world / "pois.parquet"), pd.read_parquet(realistic_world / "pois.parquet")
    same = ["poi_id", "region_id", "district_id", "lat", "lon", "price_level", "open_hour", "close_hour", "rating",
            "created_date"]
    pd.testing.assert_frame_equal(p_pois[same], r_pois[same])
    assert (p_pois["introduction"] != r_pois["introduction"]).mean() > 0.9
    cols = ["request_id", "user_id", "poi_id", "district_id", "weather", "distance_km"]
    p_imp, r_imp = pd.read_parquet(tiny_world / "impressions"), pd.read_parquet(realistic_world / "impressions")
    pd.testing.assert_frame_equal(p_imp[cols], r_imp[cols])
    assert not p_imp["click"].equals(r_imp["click"])


def test_realistic_world_follows_the_data_contract(realistic_world: Path) -> None:
    report = validate_folder(realistic_world)
    assert report.ok, report


def test_realistic_texts_carry_no_literal_cue_keyword(tiny_world: Path, realistic_world: Path) -> None:
    plain = _poi_texts(pd.read_parquet(tiny_world / "pois.parquet"))
    real = _poi_texts(pd.read_parquet(realistic_world / "pois.parquet"))
    hits = {k: sum(k in t for t in real) for k in CUE_KEYWORDS}
    assert not any(hits.values()), hits
    # the keyword world names them (so the check has teeth)
    assert sum(any(k in t for k in CUE_KEYWORDS) for t in plain) > 0.5 * len(plain)
    # and the realistic texts are noisy: some POIs without dish descriptions or with an empty introduction
    pois = pd.read_parquet(realistic_world / "pois.parquet")
    assert pois["dishes"].apply(lambda ds: all(d["description"] == "" for d in ds)).any()
    assert (pois["introduction"].str.len() < 25).any()


@pytest.mark.parametrize("attribute", ["soup", "cold", "breakfast", "late_night"])
def test_no_single_word_reveals_a_hidden_attribute(attribute: str) -> None:
    """The best single word of the POI texts predicts whether a POI has the attribute (any dish with it)
    clearly worse than in the keyword world, where one tag word gives it away."""
    def best_f1(profile: str) -> float:
        world = _build_world(load_config(profile, seed=7, overrides=["world.n_pois=400"]))
        truth = getattr(world.poi_lat, attribute) > 0
        words = [set(re.findall(r"[a-z']+", t)) for t in _poi_texts(world.pois)]
        best = 0.0
        for w in set().union(*words):
            has = np.array([w in ws for ws in words])
            tp = (has & truth).sum()
            best = max(best, 2 * tp / max(1, has.sum() + truth.sum()))
        return best

    keyword, realistic = best_f1("tiny"), best_f1("tiny_realistic")
    assert keyword > 0.95
    assert realistic < 0.85 and realistic < keyword - 0.1, (keyword, realistic)


def test_realistic_world_keeps_a_semantic_part_and_observable_interactions(realistic_world: Path) -> None:
    m = json.loads((realistic_world / "manifest.json").read_text())
    assert m["oracle_auc_without_semantics"]["ctr"] < m["oracle_auc"]["ctr"] - 0.01
    assert m["oracle_auc"]["ctr"] > m["popularity_auc"]["ctr"] + 0.1
    world = _build_world(load_config("tiny_realistic", seed=7))
    assert world.inter is not None and _build_world(load_config("tiny", seed=7)).inter is None
    # the crosses vary over the observable fields they are keyed by
    assert world.inter.user_cuisine.std() > 0.3 and world.inter.hour_cuisine.std() > 0.1
    assert world.inter.budget.std() > 0.2 and world.inter.mobility.min() > 0


def test_realistic_general_text_states_the_relations_in_varied_wording(realistic_world: Path) -> None:
    text = (realistic_world / "general_text.txt").read_text()
    assert "is also called" in text and "means" in text
    # one relation, several wordings: broth dishes in rain/cold
    wordings = ["comforting when it rains or snows", "nothing beats", "on a wet, chilly evening",
                "people order", "in heavy rain a bowl of"]
    assert sum(w in text for w in wordings) >= 4
