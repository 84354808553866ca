"""What the larr DAGs share: where the ``larr`` CLI is, the run parameters, the folder layout, task defaults.

The DAGs run in Airflow's own virtual environment (``.venv-airflow``) and never import the project: every
task is a bash command calling the ``larr`` CLI of the project's ``.venv`` (``LARR_BIN``), the production
split that keeps Airflow's pins away from the ML stack.  Tasks pass paths, never data.  Every output folder
is derived from the run parameters and the run date, so a retried or re-run task overwrites its own output
(idempotent per run date).

Deployment settings are environment variables of the Airflow workers (defaults in brackets):
``LARR_BIN`` [REPO/.venv/bin/larr], ``LARR_RAW`` [REPO/data/small], ``LARR_ROOT`` [REPO/runs/airflow],
``LARR_PROFILE`` [small], ``LARR_CONFIG`` [none], ``LARR_GPU_POOL`` [default_pool; production: a pool
with one slot per GPU, ``airflow pools set larr_gpu 1 "GPU slots"``].  Each can be overridden per run
through the DAG params (``airflow dags trigger larr_features --conf '{"raw": "/data/logs"}'``).
"""

from __future__ import annotations

import os
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Asset

REPO = Path(__file__).resolve().parents[1]
LARR = os.environ.get("LARR_BIN", str(REPO / ".venv" / "bin" / "larr"))
GPU_POOL = os.environ.get("LARR_GPU_POOL", "default_pool")

# Exit codes the CLI documents for "nothing to do" outcomes; the tasks turn them into the skipped state.
NO_CHAMPION = 3  # `larr registry champion`: nothing published yet
KEPT = 4  # `larr registry offer`: the challenger lost, the champion stays

# Assets: each Spark output, the published vectors and online features, the registry's champion.
CPT_CORPUS = Asset(name="larr.cpt_corpus", uri="larr://jobs/cpt_corpus")
CONTRASTIVE_PAIRS = Asset(name="larr.contrastive_pairs", uri="larr://jobs/contrastive_pairs")
SCENE_VOCAB = Asset(name="larr.scene_vocab", uri="larr://jobs/scene_vocab")
CTR_SAMPLES = Asset(name="larr.ctr_samples", uri="larr://jobs/ctr_samples")
FEATURE_ASSETS = [CPT_CORPUS, CONTRASTIVE_PAIRS, SCENE_VOCAB, CTR_SAMPLES]
EMBEDDINGS = Asset(name="larr.embeddings", uri="larr://features/embeddings")
ONLINE_FEATURES = Asset(name="larr.online_features", uri="larr://feast/online")
CHAMPION = Asset(name="larr.champion", uri="larr://registry/champion")

PARAMS: dict[str, Any] = {
    "raw": os.environ.get("LARR_RAW", str(REPO / "data" / "small")),
    "root": os.environ.get("LARR_ROOT", str(REPO / "runs" / "airflow")),
    "profile": os.environ.get("LARR_PROFILE", "small"),
    "config": os.environ.get("LARR_CONFIG", ""),
    "overrides": [],  # extra `--set KEY=VALUE` config overrides, e.g. ["ctr.epochs=1"]
}

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "larr",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}
# What the pipeline DAGs share: runs may be for any date since 2020 (a logical date before start_date
# would create no task), one run at a time, no catch-up of missed days.
PIPELINE_DAG: dict[str, Any] = {
    "start_date": pendulum.datetime(2020, 1, 1, tz="UTC"),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "params": PARAMS,
    "tags": ["larr"],
}
# A gate fails on the data, which a retry does not change: fail at once and stop everything downstream.
GATE_ARGS: dict[str, Any] = {"retries": 0}


def paths(params: dict[str, Any], ds: str) -> dict[str, str]:
    """The folder layout under ``root`` (shared outputs, and per-run-date folders of the training DAG)."""
    root = Path(params["root"])
    run = root / "training" / ds
    return {"raw": str(params["raw"]), "jobs": str(root / "jobs"), "features": str(root / "features"),
            "repo": str(root / "feature_repo"), "registry": str(root / "registry"),
            "quality": str(root / "quality" / ds), "llm": str(run / "llm"), "run_features": str(run / "features"),
            "candidate": str(run / "candidate")}


def larr(params: dict[str, Any], *args: str, config: bool = True) -> str:
    """The bash command for ``larr ARGS`` with the run's profile, config file and overrides."""
    cmd = [LARR, *args]
    if config:
        cmd += ["--profile", params["profile"]]
        if params.get("config"):
            cmd += ["--config", params["config"]]
        for o in params.get("overrides") or []:
            cmd += ["--set", o]
    return shlex.join(cmd)


def gate(params: dict[str, Any], ds: str, suite: str, path: str, *extra: str) -> str:
    """A Great Expectations gate: ``larr quality check`` prints its summary into the task log and exits
    non-zero on a failed expectation, which fails the task and everything downstream."""
    out = str(Path(paths(params, ds)["quality"]) / suite)
    return larr(params, "quality", "check", suite, path, "--run-date", ds, "--out", out, *extra)
