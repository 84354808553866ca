"""Champion/challenger: publish a new CTR model only if it beats the current one on the same validation day.

The champion's recorded score was measured on an older validation day, so comparing against it would reward
whichever model met the easier day.  Both models are therefore re-scored here on the *current* validation
day (the spec's split of the current ctr_samples), each with its own preprocessor and scene-value table, and
the challenger is published when ``challenger > champion + min_gain``.  The decision, both scores and the
reason are appended to the registry's ``decisions.jsonl`` either way (``larr/registry.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from larr import registry as reg
from larr.ctr.artifact import ArtifactError, load_model, predict
from larr.ctr.data import CtrStream
from larr.ctr.kinds import uses_scene
from larr.metrics import auc
from training.ctr import CtrData

log = logging.getLogger(__name__)
METRIC = "valid_ctr_auc"


def valid_score(folder: Path, d: CtrData, scene_table: Path | None = None, batch_size: int = 8192) -> float:
    """CTR AUC of a saved model on the validation day of ``d``, through the model's own preprocessor."""
    try:
        m = load_model(folder, d.spec, scene_table)
    except ArtifactError as e:
        raise reg.RegistryError(str(e)) from e
    stream = CtrStream(d.valid_files, m.prep, m.scene, batch_size, labels=d.cols.labels, user_key=d.spec.user_key)
    p_ctr, _ = predict(m.model, stream)
    return auc(d.valid["click"].to_numpy(), p_ctr)


def offer(registry: Path, candidate: Path, d: CtrData, encoder: Path | None = None, features: Path | None = None,
          min_gain: float = 0.0) -> reg.Decision:
    """Score the candidate and the champion on ``d``'s validation day; publish the candidate if it wins.

    ``encoder`` and ``features`` (the encoder and scene-value table the candidate was trained with) are
    copied into the published version so the scoring service loads one self-contained folder."""
    reg.check_candidate(candidate)
    version = reg.version_of(candidate)
    if not uses_scene(json.loads((candidate / "model.json").read_text())["kind"]):
        features = None  # a model without scene vectors carries no scene-value table
    scene_path = features / "scene_value_embeddings.parquet" if features else None
    challenger = valid_score(candidate, d, scene_path)
    current = reg.champion(registry)
    champ_score = None
    if current is None:
        published, reason = True, "no champion yet: the first candidate is published"
    elif current["version"] == version:
        published, reason = False, "the candidate is the champion already"
    else:
        champ_dir = registry / "versions" / current["version"]
        champ_score = valid_score(champ_dir, d, champ_dir / "features" / "scene_value_embeddings.parquet")
        published = challenger > champ_score + min_gain
        verb = "beats" if published else "does not beat"
        reason = (f"challenger {challenger:.4f} {verb} champion {champ_score:.4f} + min_gain {min_gain} "
                  f"on the validation day")
    if published:
        reg.publish(registry, candidate, version, encoder, features)
    decision = reg.Decision(candidate=str(candidate), version=version, metric=METRIC,
                            valid_days=list(d.window["valid_days"]), candidate_score=challenger,
                            champion_version=current["version"] if current else None, champion_score=champ_score,
                            published=published, reason=reason, decided_at=reg.now())
    reg.record(registry, decision)
    log.info("registry %s: %s", registry, reason)
    return decision
