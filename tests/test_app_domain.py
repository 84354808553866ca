"""The second shipped domain end to end with zero code changes: the app-usage spec on its tiny world runs
validate, the Spark jobs, the LLM stages (no general text: the base model pretrains on the corpus), the
embedding job, Feast publish and the CTR experiment (PLE vs LARR) -- with the simulator's oracle removed, as on
real logs -- and the report omits what a world without conversions or an oracle does not have."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from cli.main import main as larr_main
from larr.config import load_config
from larr.spec import load_spec
from larr.text import registry

OVERRIDES = ["spec=app_usage", "ctr.epochs=2", "ctr.batch_size=256", "ctr.shuffle_buffer=5000"]


@pytest.fixture(scope="module")
def app(spark, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from spark_jobs import contrastive_pairs, cpt_corpus, ctr_samples, embed_features, scene_vocab
    from training import base_lm, contrastive, cpt, llm_report
    from training.experiment import run_paper

    root = tmp_path_factory.mktemp("app")
    raw, jobs, llm = root / "raw", root / "jobs", root / "llm"
    assert larr_main(["generate", "--profile", "tiny", "--out", str(raw), "--quiet", "--set", "spec=app_usage"]) == 0
    assert larr_main(["validate", str(raw), "--profile", "tiny", "--set", "spec=app_usage"]) == 0
    cfg = load_config("tiny", overrides=OVERRIDES)
    manifests = {m.NAME: m.run(spark, cfg, raw, jobs) for m in (cpt_corpus, contrastive_pairs, scene_vocab,
                                                                 ctr_samples)}
    base = base_lm.run(cfg, raw, jobs, llm)
    cpt_m = cpt.run(cfg, jobs, llm)
    contrastive.run(cfg, jobs, llm, "cpt")
    report = llm_report.run(cfg, raw, jobs, llm)
    features = root / "features"
    embed = embed_features.run(spark, cfg, raw, jobs, validate=False, encoder=llm / "encoder", features=features)
    repo = root / "feast"
    published = larr_main(["features", "publish", "--repo", str(repo), "--raw", str(raw), "--jobs", str(jobs),
                           "--features", str(features), "--profile", "tiny", "--set", "spec=app_usage"])
    out = root / "paper"
    shutil.rmtree(raw / "_oracle")  # as on real logs: no simulator's truth to compare with
    paper = run_paper(cfg, raw, llm, out, seeds=1, models=["ple", "larr"], sweeps=False, progress=False,
                      spark=spark, jobs=jobs, features_root=root)
    return {"root": root, "raw": raw, "jobs": jobs, "llm": llm, "manifests": manifests, "base": base, "cpt": cpt_m,
            "report": report, "embed": embed, "published": published, "repo": repo, "paper": paper, "out": out}


def test_jobs_follow_the_app_spec(app: dict) -> None:
    spec = load_spec("app_usage")
    reg = registry(spec)
    vocab = pd.read_parquet(app["jobs"] / "scene_vocab")
    assert set(vocab["field"]) == set(spec.vocab)
    assert all(reg.is_balanced(t) for t in vocab["text"])
    assert {"SCENE_net", "SCENE_place"} <= set(vocab["field"])  # fields the food world does not have
    pairs = pd.read_parquet(app["jobs"] / "contrastive_pairs")
    assert set(pairs["kind"]) == set(spec.pairs)
    samples = pd.read_parquet(app["jobs"] / "ctr_samples")
    assert "order" not in samples and "p_cvr" not in samples and "app_age_days" in samples
    assert samples["scene_keys"].map(len).eq(len(spec.scene)).all()
    assert app["manifests"]["ctr_samples"]["rejected"] == {"missing_feature_key": 0}


def test_base_model_pretrains_on_the_corpus_without_general_text(app: dict) -> None:
    assert not (app["raw"] / "general_text.txt").exists()
    docs = pd.read_parquet(app["jobs"] / "cpt_corpus")
    assert app["base"]["general_documents"] == len(docs)
    assert app["cpt"]["heldout_target_loss_after"] < app["cpt"]["heldout_target_loss_before"]


def test_embedding_and_feast_publish(app: dict) -> None:
    assert app["published"] == 0
    emb = pd.read_parquet(app["root"] / "features" / "app_embeddings.parquet")
    assert {"app_id", "embedding", "category"} <= set(emb.columns)
    definitions = (app["repo"] / "definitions.py").read_text()
    assert "app_embedding" in definitions and "region_scene_state" not in definitions


def test_experiment_report_has_no_oracle_and_no_ctcvr(app: dict) -> None:
    report = json.loads((app["out"] / "report.json").read_text())
    for name in ("ple", "larr"):
        m = report["models"][name]
        assert list(m["rows"]) == ["all", "new_apps", "rest"]
        assert 0.5 < m["slices"]["all"]["ctr_auc"]["mean"] <= 1
        assert np.isnan(m["slices"]["all"]["ctcvr_auc"]["mean"])
    md = (app["out"] / "report.md").read_text()
    assert "oracle" not in md.lower() and "0.5000" not in md
    assert "new apps" in md
