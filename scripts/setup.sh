#!/usr/bin/env bash
# Idempotent setup: project venv (.venv) with every Python dependency, installed once.
# A stamp keyed by the hash of pyproject.toml skips pip when nothing changed; pip's own
# cache (~/.cache/pip) makes a reinstall on a fresh clone fast, torch included.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.larr-deps-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[setup] installing the project and its dependencies into .venv (torch is large; pip's cache serves later runs)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  rm -f .venv/.larr-deps-*
  touch "$stamp"
else
  echo "[setup] .venv is up to date"
fi
# Airflow gets its own venv (its pins stay away from the ML stack); DAG tasks call .venv/bin/larr.
af_stamp=.venv-airflow/.larr-airflow-$(sha256sum scripts/airflow-requirements.txt | cut -c1-16)
if [ ! -f "$af_stamp" ]; then
  echo "[setup] installing Airflow into .venv-airflow (scripts/airflow-requirements.txt)"
  [ -x .venv-airflow/bin/python ] || "$PY" -m venv .venv-airflow
  .venv-airflow/bin/python -m pip install --quiet --upgrade pip
  .venv-airflow/bin/python -m pip install --quiet -r scripts/airflow-requirements.txt
  rm -f .venv-airflow/.larr-airflow-*
  touch "$af_stamp"
else
  echo "[setup] .venv-airflow is up to date"
fi
# Spark needs a Java 17+ runtime; the machine ships OpenJDK 17.
if ! command -v java >/dev/null 2>&1; then
  echo "[setup] java not found: install OpenJDK 17 (apt-get install -y openjdk-17-jre-headless)" >&2
  exit 1
fi
