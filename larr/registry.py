"""The model registry: a folder of immutable model versions and a pointer to the champion.

The training DAG offers each new CTR model (a *challenger*) here; it becomes the champion only if it scores
better than the current champion on the same validation day (the comparison lives in
``training/champion.py``, which can rebuild models; this module only stores and reads).  The scoring service
loads the champion.  Layout::

    REGISTRY/versions/<version>/   model.pt, preprocessor.json, model.json, metrics.json, config.json,
                                   encoder/ (the text encoder whose vectors the model was trained on),
                                   features/scene_value_embeddings.parquet (its scene-value table),
                                   features/scene_lookups.parquet (lookup value -> scene key, for serving)
    REGISTRY/champion.json         {"version", "score", "metric", "valid_days", "published_at"}
    REGISTRY/decisions.jsonl       one line per offer: both scores, the decision and why

A version is written to a temporary folder and renamed into place, and ``champion.json`` is replaced
atomically, so a reader never sees half a version or half a pointer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Files of a CTR candidate folder (`larr ctr train --out`) a scorer needs.
CANDIDATE_FILES = ("model.pt", "preprocessor.json", "model.json", "metrics.json")


class RegistryError(ValueError):
    """A registry or candidate folder is missing something; the message says what and how to fix it."""


@dataclass(frozen=True)
class Decision:
    """The outcome of one offer: published or not, both scores on the same validation day, and why."""

    candidate: str
    version: str
    metric: str
    valid_days: list[str]
    candidate_score: float
    champion_version: str | None
    champion_score: float | None
    published: bool
    reason: str
    decided_at: str


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def check_candidate(candidate: Path) -> dict[str, Any]:
    """The candidate's metrics; a clear error when the folder is not a complete `larr ctr train` output."""
    if not candidate.is_dir():
        raise RegistryError(f"{candidate}: candidate folder not found; write one with `larr ctr train --out DIR`")
    missing = [f for f in CANDIDATE_FILES if not (candidate / f).exists()]
    if missing:
        raise RegistryError(f"{candidate}: not a complete candidate, missing {', '.join(missing)}; "
                            f"re-run `larr ctr train --out {candidate}`")
    return json.loads((candidate / "metrics.json").read_text())


def version_of(candidate: Path) -> str:
    """Content hash of the model weights and preprocessor: the same candidate offered twice is one version."""
    h = hashlib.sha256()
    for name in ("model.pt", "preprocessor.json", "model.json"):
        h.update((candidate / name).read_bytes())
    return h.hexdigest()[:16]


def champion(registry: Path) -> dict[str, Any] | None:
    """The champion pointer, or None before the first publication."""
    path = registry / "champion.json"
    return json.loads(path.read_text()) if path.exists() else None


def champion_dir(registry: Path) -> Path | None:
    """Folder of the champion version, or None before the first publication."""
    c = champion(registry)
    return registry / "versions" / c["version"] if c else None


def publish(registry: Path, candidate: Path, version: str, encoder: Path | None = None,
            features: Path | None = None) -> Path:
    """Copy the candidate (with its encoder and scene-value table) into ``versions/<version>`` atomically."""
    dest = registry / "versions" / version
    if dest.exists():
        return dest
    tmp = registry / "versions" / f".{version}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(candidate, tmp)
    if encoder is not None:
        shutil.copytree(encoder, tmp / "encoder")
    if features is not None:
        (tmp / "features").mkdir(exist_ok=True)
        shutil.copy2(features / "scene_value_embeddings.parquet", tmp / "features" / "scene_value_embeddings.parquet")
        if (features / "scene_lookups.parquet").exists():  # lookup value -> scene key, read by the scorer
            shutil.copy2(features / "scene_lookups.parquet", tmp / "features" / "scene_lookups.parquet")
    os.replace(tmp, dest)
    return dest


def record(registry: Path, decision: Decision) -> None:
    """Append the decision to ``decisions.jsonl`` and, when published, move the champion pointer."""
    registry.mkdir(parents=True, exist_ok=True)
    with (registry / "decisions.jsonl").open("a") as f:
        f.write(json.dumps(asdict(decision)) + "\n")
    if decision.published:
        _atomic_write(registry / "champion.json", json.dumps(
            {"version": decision.version, "score": decision.candidate_score, "metric": decision.metric,
             "valid_days": decision.valid_days, "published_at": decision.decided_at}, indent=2) + "\n")


def decisions(registry: Path) -> list[dict[str, Any]]:
    path = registry / "decisions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
