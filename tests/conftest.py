"""Shared fixtures: one `tiny` world per test session, copied where a test corrupts it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from larr.config import load_config
from larr.world.generate import generate_world


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean `tiny` world, seed 7. Read-only: copy it (``world_copy``) before changing anything."""
    out = tmp_path_factory.mktemp("tiny_world")
    generate_world(load_config("tiny", seed=7), out, progress=False)
    return out


@pytest.fixture
def world_copy(tiny_world: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny world that a test may corrupt."""
    dst = tmp_path / "world"
    shutil.copytree(tiny_world, dst)
    return dst


@pytest.fixture(scope="session")
def spark():
    """One real local Spark session for the whole test run (Java 17, local[2])."""
    from spark_jobs.common import spark_session

    session = spark_session(load_config("tiny"), "larr-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_jobs(spark, tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four Spark jobs run once on the tiny world (read-only for tests)."""
    from spark_jobs import contrastive_pairs, cpt_corpus, ctr_samples, scene_vocab

    out = tmp_path_factory.mktemp("tiny_jobs")
    cfg = load_config("tiny")
    for job in (cpt_corpus, contrastive_pairs, scene_vocab, ctr_samples):
        job.run(spark, cfg, tiny_world, out, validate=False)
    return out


@pytest.fixture(scope="session")
def tiny_llm(tiny_world: Path, tiny_jobs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The LLM stages on the tiny world: base backbone, CPT, contrastive from CPT, report."""
    from training import base_lm, contrastive, cpt, llm_report

    cfg = load_config("tiny")
    out = tmp_path_factory.mktemp("tiny_llm")
    return {"out": out, "jobs": tiny_jobs, "base": base_lm.run(cfg, tiny_world, tiny_jobs, out),
            "cpt": cpt.run(cfg, tiny_jobs, out), "contrastive": contrastive.run(cfg, tiny_jobs, out, "cpt"),
            "report": llm_report.run(cfg, tiny_world, tiny_jobs, out)}


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real redis-server on 127.0.0.1 (scripts/redis.sh), on its own port, for the whole session."""
    import os
    import subprocess

    from tests.ports import free_port

    port = free_port()
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, REDIS_PORT=str(port))
    subprocess.run(["bash", str(root / "scripts" / "redis.sh"), "start"], check=True, env=env)
    yield f"127.0.0.1:{port}"
    subprocess.run(["bash", str(root / "scripts" / "redis.sh"), "stop"], check=False, env=env)


def kafka_dir(factory: pytest.TempPathFactory) -> Path:
    """State folder of the test broker (tests that restart it need the same one)."""
    return factory.getbasetemp() / "kafka_state"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real single-node KRaft Kafka broker on 127.0.0.1 (scripts/kafka.sh), own port and state folder."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, KAFKA_PORT="19092", KAFKA_DIR=str(kafka_dir(tmp_path_factory)))
    subprocess.run(["bash", str(root / "scripts" / "kafka.sh"), "start"], check=True, env=env, timeout=300)
    yield "127.0.0.1:19092"
    subprocess.run(["bash", str(root / "scripts" / "kafka.sh"), "stop"], check=False, env=env, timeout=120)
