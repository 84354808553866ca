"""Every Spark job on the `tiny` world in real Spark local mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from larr.config import load_config
from larr.spec import load_spec
from larr.text import is_balanced, parse
from larr.validate import ContractError
from spark_jobs import contrastive_pairs, cpt_corpus, ctr_samples, scene_vocab

CFG = load_config("tiny")
SPEC = load_spec(CFG.spec)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def outputs(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("jobs")
    manifests = {m.NAME: m.run(spark, CFG, tiny_world, out) for m in
                 (cpt_corpus, contrastive_pairs, scene_vocab, ctr_samples)}
    return {"out": out, "manifests": manifests}


def _read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(out / name)


def _split(world: Path) -> dict:
    return json.loads((world / "manifest.json").read_text())["split"]


def _pois_before_cutoff(world: Path) -> pd.DataFrame:
    """The POIs that existed before the training cutoff (the first validation day): all the LLM may see."""
    pois = pd.read_parquet(world / "pois.parquet")
    cutoff = pd.Timestamp(_split(world)["valid"]).date()
    new = pois["created_date"].map(lambda d: pd.Timestamp(d).date() >= cutoff)
    assert new.any(), "the tiny world has POIs created on the validation/test days (else this test proves nothing)"
    return pois[~new]


def test_cpt_corpus_one_balanced_document_per_poi_created_before_the_cutoff(outputs: dict,
                                                                            tiny_world: Path) -> None:
    docs = _read(outputs["out"], "cpt_corpus")
    pois = _pois_before_cutoff(tiny_world)
    assert sorted(docs["poi_id"]) == sorted(pois["poi_id"]), "no POI created on a validation/test day"
    assert all(is_balanced(t) for t in docs["text"])
    for row in docs.itertuples():
        prompt, target = row.text[: row.prompt_chars], row.text[row.prompt_chars:]
        assert [f for f, _ in parse(prompt)] == ["POI_name", "POI_loc"]
        assert [f for f, _ in parse(target)] == SPEC.expand(SPEC.cpt.target)
        assert prompt.strip() == row.prompt and target == row.target
    assert set(docs["split"]) == {"train", "heldout"}
    m = outputs["manifests"]["cpt_corpus"]
    assert m["rows_out"]["documents"] == len(pois)
    assert m["items_created_on_or_after_ds_excluded"] == len(pd.read_parquet(tiny_world / "pois.parquet")) - len(pois)
    assert (outputs["out"] / "cpt_corpus" / "_manifest.json").exists()
    assert (outputs["out"] / "cpt_corpus" / "_config.yaml").exists()


def test_pairs_are_balanced_deduplicated_and_use_training_days_only(outputs: dict, tiny_world: Path) -> None:
    pairs = _read(outputs["out"], "contrastive_pairs")
    assert set(pairs["kind"]) == {"user_user", "poi_poi", "user_poi"}
    assert all(is_balanced(t) for t in pd.concat([pairs["anchor_text"], pairs["positive_text"]]))
    assert not pairs.duplicated(["kind", "anchor_id", "positive_id"]).any()
    split = _split(tiny_world)
    orders = pd.concat(pd.read_parquet(f).assign(date=f.parent.name[5:])
                       for f in (tiny_world / "orders").glob("date=*/*.parquet"))
    train_orders = orders[orders["date"] < split["valid"]]
    allowed = set(zip(train_orders["user_id"], train_orders["poi_id"], strict=True))
    up = pairs[pairs["kind"] == "user_poi"]
    assert len(up) > 0
    assert set(zip(up["anchor_id"], up["positive_id"], strict=True)) <= allowed
    # behaviour texts count only training-day orders
    n_train = train_orders.groupby("user_id").size()
    uu = pairs[pairs["kind"] == "user_user"]
    for row in uu.itertuples():
        assert f"{n_train[row.anchor_id]} orders</USER_price>" in row.positive_text
    # held-out users never appear in training pairs
    held = set(pairs.loc[(pairs["split"] == "heldout") & (pairs["kind"] != "poi_poi"), "anchor_id"])
    train = set(pairs.loc[(pairs["split"] == "train") & (pairs["kind"] != "poi_poi"), "anchor_id"])
    assert held and not held & train
    # no POI created on a validation/test day appears in any pair: the encoder never sees it in training
    existing = set(_pois_before_cutoff(tiny_world)["poi_id"])
    pp = pairs[pairs["kind"] == "poi_poi"]
    assert len(pp) == len(existing) and set(pp["anchor_id"]) == existing
    assert set(up["positive_id"]) <= existing


def test_vocabulary_is_stable_across_runs_and_reports_linear_cost(spark, outputs: dict, tiny_world: Path,
                                                                  tmp_path: Path) -> None:
    first = _read(outputs["out"], "scene_vocab")
    scene_vocab.run(spark, CFG, tiny_world, tmp_path, validate=False)
    second = _read(tmp_path, "scene_vocab")
    key = ["field", "key", "text"]
    pd.testing.assert_frame_equal(first[key].sort_values(key).reset_index(drop=True),
                                  second[key].sort_values(key).reset_index(drop=True))
    assert all(is_balanced(t) and parse(t)[0][0] == f for f, t in zip(first["field"], first["text"], strict=True))
    assert set(first["field"]) == set(SPEC.vocab)
    m = outputs["manifests"]["scene_vocab"]
    assert m["key_collisions"] == 0
    assert m["distinct_texts_of_scene_fields"] < m["distinct_full_scene_combinations_observed"]
    assert m["possible_full_scene_combinations"] > 1000 * m["distinct_texts_of_scene_fields"]


def test_ctr_samples_keys_labels_and_split(outputs: dict, tiny_world: Path) -> None:
    s = _read(outputs["out"], "ctr_samples")
    vocab = _read(outputs["out"], "scene_vocab")
    imp = pd.concat(pd.read_parquet(f) for f in (tiny_world / "impressions").glob("date=*/*.parquet"))
    assert len(s) == len(imp)
    keys = {k for ks in s["scene_keys"] for k in ks}
    assert keys <= set(vocab["key"]), "every sample key has a vocabulary text"
    assert all(len(ks) == len(SPEC.scene) for ks in s["scene_keys"])
    split = _split(tiny_world)
    s["date"] = s["date"].astype(str)
    assert set(s.loc[s["split"] == "test", "date"]) == {split["test"]}
    assert set(s.loc[s["split"] == "valid", "date"]) == {split["valid"]}
    assert ((s["order"] == 1) <= (s["click"] == 1)).all()


def test_statistics_use_only_days_strictly_before(outputs: dict) -> None:
    s = _read(outputs["out"], "ctr_samples")
    s["date"] = s["date"].astype(str)
    days = sorted(s["date"].unique())
    for prefix, keys in (("u", ["user_id"]), ("p", ["poi_id"]), ("up", ["user_id", "poi_id"])):
        daily = s.groupby([*keys, "date"]).agg(imps=("click", "size"), clicks=("click", "sum"),
                                               orders=("order", "sum")).reset_index()
        for day in days:
            before = daily[daily["date"] < day].groupby(keys)[["imps", "clicks", "orders"]].sum()
            today = s[s["date"] == day].drop_duplicates(keys).set_index(keys)
            exp = before.reindex(today.index).fillna(0).astype(int)
            for c in ("imps", "clicks", "orders"):
                assert (today[f"{prefix}_{c}"].to_numpy() == exp[c].to_numpy()).all(), (prefix, c, day)
    first = s[s["date"] == days[0]]
    assert (first[["u_imps", "p_imps", "up_imps"]] == 0).all().all()
    test = s[s["split"] == "test"]
    new = test[test["poi_age_days"] == 0]
    assert len(new) and (new["p_imps"] == 0).all(), "a POI created on the test day has no history"


def test_rerun_of_a_day_replaces_its_partition(spark, outputs: dict, tiny_world: Path) -> None:
    out = outputs["out"]
    before = _read(out, "ctr_samples")
    test_day = _split(tiny_world)["test"]
    m = ctr_samples.run(spark, CFG, tiny_world, out, ds=test_day, validate=False)
    after = _read(out, "ctr_samples")
    assert len(after) == len(before)
    assert m["rows_out"]["samples"] == int((before["date"].astype(str) == test_day).sum())
    cols = ["request_id", "poi_id", "u_imps", "p_ctr", "click"]
    key = ["request_id", "poi_id"]
    pd.testing.assert_frame_equal(before[cols].sort_values(key).reset_index(drop=True),
                                  after[cols].sort_values(key).reset_index(drop=True))
    docs_before = len(_read(out, "cpt_corpus"))
    cpt_corpus.run(spark, CFG, tiny_world, out, validate=False)
    assert len(_read(out, "cpt_corpus")) == docs_before


def test_corrupted_input_fails_naming_the_column(spark, world_copy: Path, tmp_path: Path) -> None:
    f = sorted((world_copy / "impressions").glob("date=*/*.parquet"))[0]
    df = pd.read_parquet(f)
    df["poi_id"] = df["poi_id"].astype("Int64")
    df.loc[df.index[:3], "poi_id"] = None
    df.to_parquet(f, index=False)
    with pytest.raises(ContractError, match=r"impressions\.poi_id \[not_null\]: 3 of"):
        cpt_corpus.run(spark, CFG, world_copy, tmp_path)
    assert not (tmp_path / "cpt_corpus").exists(), "nothing is written from bad input"


def test_spark_submit_runs_the_same_job(tiny_world: Path, tmp_path: Path) -> None:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    submit = Path(sys.executable).parent / "spark-submit"
    res = subprocess.run([str(submit), "--master", "local[1]", "--conf", "spark.driver.host=127.0.0.1",
                          "--conf", "spark.ui.enabled=false", str(ROOT / "spark_jobs" / "cpt_corpus.py"),
                          "--raw", str(tiny_world), "--out", str(tmp_path), "--profile", "tiny", "--no-validate"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = next(line for line in res.stdout.splitlines() if line.startswith('{"job"'))
    assert json.loads(summary)["rows_out"]["documents"] == len(_pois_before_cutoff(tiny_world))


def test_a_spec_that_adds_a_scene_field_changes_vocab_and_ctr_input_only(spark, tiny_world: Path,
                                                                         tmp_path: Path) -> None:
    """One new scene field in the spec (a distance band) appears in the vocabulary, the samples' scene keys
    and the CTR input, with no code change."""
    import yaml

    from larr.ctr.data import SceneTable
    from larr.spec import spec_path
    from training.ctr import CtrData

    data = yaml.safe_load(spec_path("food_delivery").read_text())
    data["fields"]["SCENE_dist"] = {"entity": "scene", "band": "distance_km", "doc": "distance to the shop",
                                    "bands": [[1, "under 1 km"], [3, "1 to 3 km"], [None, "over 3 km"]]}
    data["scene"].append("SCENE_dist")
    data["vocab"].append("SCENE_dist")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = load_config("tiny", overrides=[f"spec={path}"])
    out = tmp_path / "jobs"
    scene_vocab.run(spark, cfg, tiny_world, out, validate=False)
    ctr_samples.run(spark, cfg, tiny_world, out, validate=False)
    vocab = pd.read_parquet(out / "scene_vocab")
    dist = vocab[vocab["field"] == "SCENE_dist"]
    assert set(dist["text"]) <= {"<SCENE_dist>under 1 km</SCENE_dist>", "<SCENE_dist>1 to 3 km</SCENE_dist>",
                                 "<SCENE_dist>over 3 km</SCENE_dist>"} and len(dist) >= 2
    samples = pd.read_parquet(out / "ctr_samples")
    assert samples["scene_keys"].map(len).eq(11).all()
    assert set(samples["scene_keys"].map(lambda k: k[-1])) <= set(dist["key"])
    emb = tmp_path / "emb.parquet"
    pd.DataFrame({"scene_key": vocab["key"], "embedding": [[0.1] * 8] * len(vocab)}).to_parquet(emb)
    d = CtrData.load(tiny_world, out / "ctr_samples", spec=load_spec(path))
    batch = next(iter(d.stream(d.test_files, SceneTable(emb), 64)))
    assert batch["scene_rows"].shape == (64, 11) and (batch["scene_rows"] > 0).all()
