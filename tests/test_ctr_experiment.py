"""`larr experiment paper` end to end on the tiny world (every model, 2 seeds, both sweeps, the report),
and the P5-style LLM-in-the-loop classifier on its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cli.main import main as larr_main
from larr.config import load_config
from larr.ctr.models import ctr_ctcvr_loss
from larr.ctr.p5 import P5Classifier, SceneTexts
from larr.llm.encoder import encoder_version
from training import contrastive
from training.experiment import MAIN, ensure_tables, run_paper, select_temperature

OVERRIDES = ["ctr.epochs=2", "ctr.batch_size=256", "ctr.shuffle_buffer=5000", "ctr.p5.train_samples=256",
             "ctr.p5.max_length=160", "ctr.sweep_temperatures=[0.1,1.0]", "ctr.sweep_negatives=[0,4]"]


# every row of the paper's table, and the LARR module on one other backbone (all three: the default; CI's time)
ROWS = [v.name for v in MAIN] + ["dcnv2+noal", "dcnv2+larr"]


@pytest.fixture(scope="module")
def experiment(spark, tiny_world: Path, tiny_jobs: Path, tiny_llm: dict, tmp_path_factory: pytest.TempPathFactory
               ) -> dict:
    root = tmp_path_factory.mktemp("experiment")
    data = root / "data"
    data.mkdir()
    for entry in tiny_world.iterdir():
        (data / entry.name).symlink_to(entry)
    shutil.copytree(tiny_jobs, data / "jobs")  # the embedding job writes its cache here
    llm = root / "llm"
    shutil.copytree(tiny_llm["out"], llm)
    cfg = load_config("tiny", overrides=OVERRIDES)
    contrastive.run(cfg, data / "jobs", llm, "base")  # encoder_nocpt for the noCPT row
    out = root / "report"
    report = run_paper(cfg, data, llm, out, seeds=2, models=ROWS, progress=False, spark=spark)
    return {"cfg": cfg, "data": data, "llm": llm, "out": out, "report": report}


def test_experiment_writes_a_complete_report(experiment: dict) -> None:
    out, report = experiment["out"], experiment["report"]
    for f in ("report.md", "report.json", "config.yaml", "training_curves.png", "temperature_sweep.png",
              "negatives_sweep.png"):
        assert (out / f).stat().st_size > 0, f
    on_disk = json.loads((out / "report.json").read_text())
    # every row, plus LARR at the validation-selected temperature when that is not the paper's 0.1
    assert set(ROWS) <= set(on_disk["main"]) <= set(ROWS) | {"larr_t1"}
    assert on_disk["seeds"] == [7, 8]
    for name in on_disk["main"]:
        m = on_disk["models"][name]
        assert m["seeds"] == [7, 8]
        for s in ("all", "new_pois", "travellers", "rest"):
            for metric in ("ctr_auc", "ctcvr_auc", "ctr_gauc", "ctcvr_gauc", "ctr_logloss", "ctcvr_logloss"):
                st = m["slices"][s][metric]
                assert st["n"] == 2 and st["std"] >= 0 and np.isfinite(st["mean"]), (name, s, metric)
            assert 0.5 < m["oracle"][s]["ctr_auc"] <= 1
        # a tiny world trained for seconds: valid scores, not good ones (learning: test_ctr_train, test_ctr_models)
        assert 0 < m["slices"]["all"]["ctr_auc"]["mean"] < 1
    # the ablations read different tables: their predictions differ
    aucs = {n: on_disk["models"][n]["slices"]["all"]["ctr_auc"]["values"] for n in ("larr", "nocpt", "noft")}
    assert aucs["larr"] != aucs["nocpt"] and aucs["larr"] != aucs["noft"]
    assert [p["value"] for p in on_disk["sweeps"]["temperature"]] == [0.1, 1.0]
    assert [p["value"] for p in on_disk["sweeps"]["negatives"]] == [0, 4]
    assert set(on_disk["gains_vs_ple"]) == set(on_disk["main"]) - {"ple"}
    assert {"larr_beats_ple_ctr_auc_by_2std", "larr_beats_noal", "larr_beats_noft"} <= set(on_disk["targets"])
    md = (out / "report.md").read_text()
    for label in ("LARR Complete", "LARR-noCPT", "LARR-noFT", "LARR-noAL", "LARR-PLE (no LLM)", "Wide&Deep",
                  "DeepFM", "P5-style", "oracle", "Fig. 4a", "Fig. 4b", "![training_curves.png]"):
        assert label in md, label
    assert report["targets"] == on_disk["targets"]
    # the module on each backbone: PLE (the paper's rows) and DCN-V2, each against its own plain backbone
    assert set(on_disk["module_gains"]) == {"ple", "dcnv2", "wdl", "deepfm"}
    assert set(on_disk["module_gains"]["dcnv2"]) == {"noal", "larr"} and on_disk["module_gains"]["wdl"] == {}
    g = on_disk["module_gains"]["dcnv2"]["larr"]["all"]
    mean = {n: on_disk["models"][n]["slices"]["all"]["ctr_auc"]["mean"] for n in ("dcnv2", "dcnv2+larr")}
    assert g["gain"] == pytest.approx(mean["dcnv2+larr"] - mean["dcnv2"])
    section = md.split("## The LARR module on each backbone")[1].split("##")[0]
    assert "| ple |" in section and "| dcnv2 |" in section and "| wdl |" not in section
    # the noFT table holds the CPT model's raw hidden states (tiny: 64-d), Complete the 128-d projection
    noft = pd.read_parquet(experiment["data"] / "features_noft" / "scene_value_embeddings.parquet")
    full = pd.read_parquet(experiment["data"] / "features" / "scene_value_embeddings.parquet")
    assert len(noft["embedding"].iloc[0]) == 64 and len(full["embedding"].iloc[0]) == 128
    assert json.loads((experiment["llm"] / "encoder_noft" / "encoder.json").read_text())["proj_dim"] is None


def test_experiment_resumes_without_retraining(experiment: dict) -> None:
    runs = sorted((experiment["out"] / "runs").glob("*.json"))
    tuned = "larr_t1" in experiment["report"]["main"]
    # the rows x 2 seeds + one temperature and one negatives point (+ the selected temperature's second seed)
    assert len(runs) == 2 * len(ROWS) + 2 + tuned
    before = {p: p.stat().st_mtime_ns for p in runs}
    again = run_paper(experiment["cfg"], experiment["data"], experiment["llm"], experiment["out"], seeds=2,
                      models=ROWS, progress=False)
    assert {p: p.stat().st_mtime_ns for p in runs} == before
    assert again["models"]["larr"]["slices"] == experiment["report"]["models"]["larr"]["slices"]


def test_experiment_cli_names_a_bad_model(experiment: dict, capsys: pytest.CaptureFixture) -> None:
    code = larr_main(["experiment", "paper", "--profile", "tiny", "--data", str(experiment["data"]),
                      "--llm", str(experiment["llm"]), "--out", str(experiment["out"] / "x"), "--models", "p6"])
    assert code == 1
    assert "unknown model(s) ['p6']" in capsys.readouterr().err


def test_p5_classifier_scores_and_learns(tiny_jobs: Path, tiny_llm: dict) -> None:
    texts = SceneTexts(tiny_jobs / "scene_vocab")
    samples = pd.concat(pd.read_parquet(f) for f in sorted((tiny_jobs / "ctr_samples").glob("*/*.parquet")))
    batch_rows = samples.head(16)
    imp = texts.impressions(np.stack(batch_rows["scene_keys"].to_numpy()))
    assert len(imp) == 16 and all(t.count("</") == 10 for t in imp)  # the N field texts, in one sequence
    torch.manual_seed(0)
    model = P5Classifier(tiny_llm["out"] / "base", max_length=160)
    p_ctr, p_ctcvr = model.score(imp, batch_size=5)
    assert p_ctr.shape == (16,) and (p_ctcvr <= p_ctr + 1e-7).all()
    enc = model.tokenize(imp)
    labels = {"click": torch.tensor(batch_rows["click"].to_numpy(np.float32)),
              "order": torch.tensor(batch_rows["order"].to_numpy(np.float32))}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    first = ctr_ctcvr_loss(model(enc["input_ids"], enc["attention_mask"]), labels).item()
    for _ in range(30):
        loss = ctr_ctcvr_loss(model(enc["input_ids"], enc["attention_mask"]), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    with pytest.raises(KeyError, match="have no text in scene_vocab"):
        texts.impressions(np.array([[123456789]]))


def test_temperature_is_selected_on_the_validation_day_only() -> None:
    cfg = load_config("tiny", overrides=["ctr.sweep_seeds=2"])

    def run(name: str, seed: int, valid: float, test: float, temperature: float | None = None,
            negatives: int | None = None, kind: str = "larr") -> dict:
        return {"name": name, "kind": kind, "seed": seed, "temperature": temperature, "negatives": negatives,
                "history": {"valid": [{"epoch": 1, "ctr_auc": 0.5}, {"epoch": 2, "ctr_auc": valid}]},
                "metrics": {"all": {"ctr_auc": test}}}

    results = [run("larr", 7, 0.70, 0.90), run("larr", 8, 0.72, 0.90),  # best on test, not on validation
               run("larr_t0.5", 7, 0.74, 0.60, 0.5), run("larr_t0.5", 8, 0.74, 0.60, 0.5),
               run("larr_t1", 7, 0.80, 0.60, 1.0), run("larr_t1", 8, 0.60, 0.60, 1.0),  # mean 0.70
               run("larr_neg4", 7, 0.99, 0.99, negatives=4), run("noal", 7, 0.99, 0.99, kind="noal"),
               run("larr_t1", 9, 0.99, 0.99, 1.0)]  # seed 9 is not a sweep seed
    assert select_temperature(results, cfg) == 0.5


def test_a_changed_config_retrains_and_the_report_matches_its_config(tiny_world: Path, tiny_jobs: Path,
                                                                     tiny_llm: dict, tmp_path: Path) -> None:
    """A finished run is reused only under the same config and inputs: with another epoch count the run is
    retrained, and report.json, report.md and config.yaml all describe the run that made the numbers."""
    out = tmp_path / "report"
    base = [o for o in OVERRIDES if not o.startswith("ctr.epochs")]

    def run(epochs: int) -> dict:
        cfg = load_config("tiny", overrides=[*base, f"ctr.epochs={epochs}"])
        return run_paper(cfg, tiny_world, tiny_llm["out"], out, seeds=1, models=["ple"], sweeps=False,
                         progress=False, jobs=tiny_jobs)

    first = run(2)
    path = out / "runs" / "ple_seed7.json"
    assert len(json.loads(path.read_text())["history"]["valid"]) == 2
    stamp = path.stat().st_mtime_ns
    assert run(2)["models"]["ple"]["slices"] == first["models"]["ple"]["slices"]
    assert path.stat().st_mtime_ns == stamp, "same config and inputs: reused"
    second = run(1)
    r = json.loads(path.read_text())
    assert len(r["history"]["valid"]) == 1, "another config: retrained, not reused"
    assert r["run_key"] == json.loads((out / "report.json").read_text())["run_keys"]["ple_seed7"]
    assert second["models"]["ple"]["slices"]["all"]["ctr_auc"]["values"] == [r["metrics"]["all"]["ctr_auc"]]
    assert yaml.safe_load((out / "config.yaml").read_text())["ctr"]["epochs"] == 1
    assert json.loads((out / "report.json").read_text())["config"]["ctr"]["epochs"] == 1
    assert "1 epochs" in (out / "report.md").read_text()


def test_a_scene_table_made_by_another_encoder_is_re_embedded(spark, tiny_world: Path, tiny_jobs: Path,
                                                              tiny_llm: dict, tmp_path: Path) -> None:
    """An existing table is reused only when the current encoder artefact made it."""
    jobs = tmp_path / "jobs"
    shutil.copytree(tiny_jobs, jobs)  # the embedding job writes its cache here
    cfg = load_config("tiny", overrides=OVERRIDES)
    ensure_tables(cfg, tiny_world, tiny_llm["out"], {"features"}, spark, jobs, tmp_path)
    table = tmp_path / "features" / "scene_value_embeddings.parquet"
    current = encoder_version(tiny_llm["out"] / "encoder")
    fresh = pd.read_parquet(table)
    assert set(fresh["encoder_version"]) == {current}
    stale = fresh.assign(encoder_version="an-older-encoder",
                         embedding=[[0.0] * len(v) for v in fresh["embedding"]])
    stale.to_parquet(table, index=False)
    ensure_tables(cfg, tiny_world, tiny_llm["out"], {"features"}, spark, jobs, tmp_path)
    again = pd.read_parquet(table)
    assert set(again["encoder_version"]) == {current}
    np.testing.assert_allclose(np.stack(again.sort_values("scene_key")["embedding"].to_numpy()),
                               np.stack(fresh.sort_values("scene_key")["embedding"].to_numpy()))
