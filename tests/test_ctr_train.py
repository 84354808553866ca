"""A tiny end-to-end CTR run: train PLE on the tiny world's samples, evaluate every slice against the oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from larr.config import CtrConfig
from larr.ctr.artifact import build_model
from larr.ctr.data import Preprocessor
from training.ctr import CtrData, run_ctr, slice_masks


def test_tiny_ctr_run_writes_metrics_for_every_slice(tiny_world: Path, tiny_jobs: Path, tmp_path: Path) -> None:
    d = CtrData.load(tiny_world, tiny_jobs / "ctr_samples")
    r = run_ctr(CtrConfig(epochs=2, batch_size=512), "ple", d, seed=1, progress=False)
    m = r["metrics"]
    assert set(m) == {"all", "new_pois", "travellers", "rest"}
    assert m["new_pois"]["rows"] > 0 and m["travellers"]["rows"] > 0
    assert m["rest"]["rows"] + max(m["new_pois"]["rows"], m["travellers"]["rows"]) <= m["all"]["rows"]
    masks = slice_masks(d.spec, d.cols, d.test)
    for name, s in m.items():
        # GAUC skips exactly the users whose test clicks in the slice are all one class
        clicks = d.test.loc[masks[name]].groupby("user_id")["click"].nunique()
        assert s["oracle_ctr_auc"] > 0.5 and s["gauc_users_skipped"] == int((clicks == 1).sum()) > 0, name
    assert 0.5 < m["all"]["ctr_auc"] < m["all"]["oracle_ctr_auc"]
    assert r["train_samples_per_second"] > 0 and len(r["history"]["loss"]) > 0
    assert [v["epoch"] for v in r["history"]["valid"]] == [1, 2]
    # seeded: the same run gives the same result; the saved artefact rebuilds the same model
    again = run_ctr(CtrConfig(epochs=2, batch_size=512), "ple", d, seed=1, progress=False, save=tmp_path / "m")
    assert again["metrics"]["all"]["ctr_auc"] == m["all"]["ctr_auc"]
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    rebuilt = build_model(meta["kind"], CtrConfig(**meta["ctr"]), Preprocessor.load(tmp_path / "m" / "preprocessor.json"),
                          None)
    rebuilt.load_state_dict(torch.load(tmp_path / "m" / "model.pt"))
    assert sum(p.numel() for p in rebuilt.parameters()) == again["parameters"]


def test_missing_inputs_name_the_fix(tiny_world: Path, tiny_jobs: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run `larr spark ctr_samples`"):
        CtrData.load(tmp_path, tmp_path / "ctr_samples")
    # a folder without the simulator's manifest and oracle (real logs) loads; the oracle is simply absent
    real = CtrData.load(tmp_path, tiny_jobs / "ctr_samples")
    assert "p_click" not in real.test and len(real.test) > 0
    d = CtrData.load(tiny_world, tiny_jobs / "ctr_samples")
    with pytest.raises(FileNotFoundError, match="run `larr embed --features"):
        run_ctr(CtrConfig(epochs=1), "larr", d, seed=1, features=tmp_path / "nothing", progress=False)
