"""The Airflow DAGs, run by real Airflow 3 (its own venv, a real metadata database, ``dag.test()``).

Each run goes through ``tests/airflow_harness.py`` in ``.venv-airflow`` (installed by scripts/setup.sh); the
tasks call the project's ``larr`` CLI in ``.venv``, as in production.  Runs use the ``tiny`` world.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from larr import feature_store as fsx
from larr import registry as reg
from larr.feast_repo import embedding_views
from larr.spec import load_spec
from spark_jobs.common import read_window

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_BIN = REPO / ".venv-airflow" / "bin"
HARNESS = REPO / "tests" / "airflow_harness.py"
LARR = Path(sys.executable).parent / "larr"

FEATURES_GRAPH = {
    "raw_gate": ["contrastive_pairs", "cpt_corpus", "ctr_samples", "scene_vocab"],
    "cpt_corpus": ["corpus_gate"], "contrastive_pairs": ["corpus_gate"], "scene_vocab": ["embed"],
    "ctr_samples": ["samples_gate"], "corpus_gate": ["embed"], "samples_gate": ["embed"],
    "embed": ["embeddings_gate"], "embeddings_gate": ["publish"], "publish": [],
}
TRAINING_CHAIN = ["base", "cpt", "contrastive", "embed", "embeddings_gate", "ctr_train", "report",
                  "champion_challenger", "publish_features"]
TRAINING_GRAPH = {t: [TRAINING_CHAIN[i + 1]] if i + 1 < len(TRAINING_CHAIN) else []
                  for i, t in enumerate(TRAINING_CHAIN)}
SPARK_AND_GATES = "^(raw_gate|cpt_corpus|contrastive_pairs|scene_vocab|ctr_samples|corpus_gate|samples_gate)$"


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh AIRFLOW_HOME with a migrated metadata database; the DAG folder is the project's dags/."""
    assert (AIRFLOW_BIN / "python").exists(), ".venv-airflow missing: run `bash scripts/setup.sh`"
    home = tmp_path_factory.mktemp("airflow_home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"), "LARR_BIN": str(LARR),
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
    env.pop("PYTHONPATH", None)
    subprocess.run([str(AIRFLOW_BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=300)
    return env


def _harness(env: dict[str, str], *args: str, timeout: int = 1200) -> tuple[dict, str]:
    p = subprocess.run([str(AIRFLOW_BIN / "python"), str(HARNESS), *args], env=env, capture_output=True,
                       text=True, timeout=timeout, cwd=REPO)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-5000:]
    return json.loads(p.stdout.strip().splitlines()[-1]), log


def run_dag(env: dict[str, str], dag_id: str, ds: str, conf: dict, mark_success: str = "") -> tuple[dict, str]:
    return _harness(env, "test", dag_id, ds, json.dumps(conf), mark_success)


def _conf(world: Path, root: Path) -> dict:
    return {"raw": str(world), "root": str(root), "profile": "tiny", "config": "",
            "overrides": ["ctr.epochs=1"]}


def _run_date(world: Path) -> str:
    return read_window(world, load_spec())["end"]


def test_dagbag_imports_with_the_expected_graphs(airflow_env: dict[str, str]) -> None:
    bag, _ = _harness(airflow_env, "bag")
    assert bag["errors"] == {}
    assert set(bag["graphs"]) == {"larr_features", "larr_training", "larr_streaming_health"}
    assert bag["graphs"]["larr_features"] == FEATURES_GRAPH
    assert bag["graphs"]["larr_training"] == TRAINING_GRAPH
    assert bag["graphs"]["larr_streaming_health"] == {"kafka_health": [], "online_freshness": []}
    assert bag["schedules"] == {"larr_features": "CronTriggerTimetable",
                                "larr_training": "AssetTriggeredTimetable",
                                "larr_streaming_health": "DeltaTriggerTimetable"}


def test_corrupted_raw_partition_fails_the_first_gate_and_nothing_runs(
        airflow_env: dict[str, str], world_copy: Path, tmp_path: Path) -> None:
    spec = load_spec()
    ds = _run_date(world_copy)
    part = next((world_copy / spec.log.table / f"date={ds}").glob("*.parquet"))
    df = pd.read_parquet(part)
    click, conversion = spec.labels.click, spec.labels.conversion
    bad = df[conversion] == 1
    assert bad.any()
    df.loc[bad, click] = 0  # orders without a click: the contract's conversion-implies-click rule
    df.to_parquet(part, index=False)

    root = tmp_path / "root"
    result, log = run_dag(airflow_env, "larr_features", ds, _conf(world_copy, root))
    assert result["state"] == "failed"
    tasks = result["tasks"]
    assert tasks["raw_gate"] == "failed"
    assert {t: s for t, s in tasks.items() if t != "raw_gate"} == {t: "upstream_failed" for t in FEATURES_GRAPH
                                                                    if t != "raw_gate"}
    assert "FAILED" in log and click in log  # the gate's summary names the expectation's column in the task log
    assert not (root / "jobs").exists() and not (root / "feature_repo").exists()


def test_before_the_first_champion_embedding_and_publication_are_skipped(
        airflow_env: dict[str, str], tiny_world: Path, tmp_path: Path) -> None:
    """A fresh deployment: no champion encoder yet, so `embed` ends skipped (not failed), and with it the
    embedding gate and the Feast publication.  (The day's Spark tasks and gates are marked done here; the
    end-to-end test below runs them.)"""
    root = tmp_path / "root"
    result, log = run_dag(airflow_env, "larr_features", _run_date(tiny_world), _conf(tiny_world, root),
                          mark_success=SPARK_AND_GATES)
    assert result["state"] == "success", result
    assert result["tasks"] == {**{t: "success" for t in FEATURES_GRAPH},
                               "embed": "skipped", "embeddings_gate": "skipped", "publish": "skipped"}
    assert "has no champion yet" in log
    assert not (root / "feature_repo").exists() and not (root / "features").exists()


@pytest.mark.timeout(3600)
def test_training_then_features_dags_end_to_end(airflow_env: dict[str, str], tiny_world: Path, tiny_jobs: Path,
                                                tmp_path: Path) -> None:
    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)
    root = tmp_path / "root"
    shutil.copytree(tiny_jobs, root / "jobs")  # the Spark outputs a first larr_features run leaves behind
    ds, conf = _run_date(world), _conf(world, root)

    # 1. training: LLM stages, vectors, CTR candidate, report, champion/challenger (first: published), Feast
    trained, _ = run_dag(airflow_env, "larr_training", ds, conf)
    print("larr_training task seconds:", trained["seconds"])
    assert trained["state"] == "success", trained
    assert trained["tasks"] == {t: "success" for t in TRAINING_CHAIN}
    champion = reg.champion(root / "registry")
    assert champion is not None and champion["valid_days"]
    version = root / "registry" / "versions" / champion["version"]
    assert (version / "encoder" / "encoder.json").exists()
    assert (version / "features" / "scene_value_embeddings.parquet").exists()
    assert (root / "training" / ds / "llm" / "report.md").exists()
    spec = load_spec()
    items = pd.read_parquet(root / "training" / ds / "features" / "poi_embeddings.parquet")[spec.item_key]
    online = fsx.online_vectors(root / "feature_repo", embedding_views(spec)["item"], spec.item_key,
                                [int(x) for x in items.head(3)])
    assert online.shape[0] == 3 and np.isfinite(online).all()  # the champion's vectors are served by Feast

    # 2. the daily feature run, every task for real: raw gate, the four Spark jobs (idempotent: they
    #    overwrite the day's partitions), corpus and samples gates, embed with the champion's encoder (its
    #    vectors come from the cache the training run filled), embeddings gate, Feast publication
    features, _ = run_dag(airflow_env, "larr_features", ds, conf)
    print("larr_features task seconds:", features["seconds"])
    assert features["state"] == "success", features
    assert features["tasks"] == {t: "success" for t in FEATURES_GRAPH}
    for job in ("cpt_corpus", "contrastive_pairs", "scene_vocab", "ctr_samples"):
        assert any((root / "jobs" / job).rglob("*.parquet")), job
    vectors = pd.read_parquet(root / "features" / "scene_value_embeddings.parquet")
    champ_vectors = pd.read_parquet(version / "features" / "scene_value_embeddings.parquet")
    assert set(vectors["encoder_version"]) == set(champ_vectors["encoder_version"])
    assert any((root / "quality" / ds / "raw").rglob("index.html"))  # Data Docs of the gate
