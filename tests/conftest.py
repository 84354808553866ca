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
