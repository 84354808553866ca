"""A saved CTR model, rebuilt for scoring: one loader for the champion/challenger check and the service.

A model folder (``larr ctr train --out`` or a registry version, ``larr/registry.py``) holds ``model.pt`` (state
dict), ``preprocessor.json`` (vocabularies and numeric statistics fitted on the training days),
``model.json`` (kind, CTR config, spec, columns, where its scene-value table came from) and, in a registry
version, ``features/scene_value_embeddings.parquet``.  Training writes it (``training/ctr.py``); everything
that scores reads it through :func:`load_model`, so the service and the offline evaluation build the same
network with the same transform.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from larr.config import CtrConfig
from larr.ctr.columns import CtrColumns, ctr_columns
from larr.ctr.data import Preprocessor, SceneTable
from larr.ctr.kinds import uses_scene
from larr.ctr.models import CtrModel
from larr.spec import Spec, load_spec


class ArtifactError(ValueError):
    """A model folder is incomplete or does not fit the data; the message says what and how to fix it."""


def build_model(kind: str, cfg: CtrConfig, prep: Preprocessor, scene: SceneTable | None,
                cols: CtrColumns | None = None, conversion: bool = True) -> CtrModel:
    """The network of ``kind`` sized by the preprocessor's vocabularies (and the scene table's vectors)."""
    cat = prep.categorical_columns
    sizes = [prep.sizes()[c] for c in cat]
    user_col, item_col = (cols.user_col, cols.item_col) if cols else (cat.index("user_id"), cat.index("poi_id"))
    return CtrModel(kind, sizes, len(prep.numeric_columns), cfg,
                    torch.from_numpy(scene.matrix) if scene is not None else None,
                    user_col=user_col, poi_col=item_col, conversion=conversion)


def predict(model: CtrModel, batches: Iterable[dict[str, torch.Tensor]]) -> tuple[np.ndarray, np.ndarray]:
    """pCTR and pCTCVR over ``batches`` in evaluation mode, without autograd."""
    if model.training:  # eval() walks every module: a cost per call the scorer's small batches would feel
        model.eval()
    device = next(model.parameters()).device
    p_ctr, p_ctcvr = [], []
    with torch.inference_mode():
        for batch in batches:
            o = model({k: v.to(device) for k, v in batch.items()})
            p_ctr.append(o["p_ctr"].cpu().numpy())
            p_ctcvr.append(o["p_ctcvr"].cpu().numpy())
    if not p_ctr:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(p_ctr), np.concatenate(p_ctcvr)


@dataclass
class LoadedModel:
    """A rebuilt model with everything needed to score: the network (eval mode), its preprocessor, its
    scene-value table (scene kinds only), the spec it was trained on and its ``model.json``."""

    folder: Path
    model: CtrModel
    prep: Preprocessor
    scene: SceneTable | None
    spec: Spec
    meta: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.meta["kind"]


def scene_table_path(folder: Path, meta: dict[str, Any]) -> Path:
    """The scene-value table of a model folder: the version's own copy, else the one it was trained with."""
    own = folder / "features" / "scene_value_embeddings.parquet"
    if own.exists() or not meta.get("scene_table"):
        return own
    return Path(meta["scene_table"]) / "scene_value_embeddings.parquet"


def load_model(folder: Path, spec: Spec | None = None, scene_table: Path | None = None) -> LoadedModel:
    """Rebuild the model saved in ``folder``.  ``spec``: the data's spec (refused when it is not the model's;
    default: the model's own).  ``scene_table``: override the scene-value table (a parquet file)."""
    folder = Path(folder)
    missing = [f for f in ("model.pt", "preprocessor.json", "model.json") if not (folder / f).exists()]
    if missing:
        raise ArtifactError(f"{folder}: not a CTR model folder, missing {', '.join(missing)}; write one with "
                            "`larr ctr train --out DIR` or publish one with `larr models publish`")
    meta = json.loads((folder / "model.json").read_text())
    if spec is None:
        spec = load_spec(meta.get("spec") or "food_delivery")
    elif meta.get("spec") and meta["spec"] != spec.source:
        raise ArtifactError(f"{folder}: trained on spec {meta['spec']!r}, the data uses {spec.source!r}; "
                            f"a model is only scored on data of its own spec")
    prep = Preprocessor.load(folder / "preprocessor.json")
    scene = None
    if uses_scene(meta["kind"]):
        path = scene_table or scene_table_path(folder, meta)
        if not path.exists():
            raise ArtifactError(f"{folder}: its scene-value table {path} is missing")
        scene = SceneTable(path)
    model = build_model(meta["kind"], CtrConfig(**meta["ctr"]), prep, scene, ctr_columns(spec), spec.has_conversion)
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    model.eval()
    return LoadedModel(folder, model, prep, scene, spec, meta)
