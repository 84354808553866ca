"""A tiny end-to-end CTR run: train PLE on the tiny world's samples, evaluate every slice against the oracle."""

from __future__ import annotations

from pathlib import Path

from training import ctr


def test_tiny_ctr_run_writes_metrics_for_every_slice(tiny_world: Path, tiny_jobs: Path, tmp_path: Path) -> None:
    r = ctr.run("ple", tiny_world, tmp_path, seed=1, epochs=1, batch_size=512, samples=tiny_jobs / "ctr_samples")
    assert (tmp_path / "ple_seed1.json").exists()
    m = r["metrics"]
    assert set(m) == {"all", "new_pois", "travellers", "rest"}
    assert m["new_pois"]["rows"] > 0 and m["travellers"]["rows"] > 0
    assert m["rest"]["rows"] + max(m["new_pois"]["rows"], m["travellers"]["rows"]) <= m["all"]["rows"]
    for s in m.values():
        assert s["oracle_ctr_auc"] > 0.5 and s["gauc_users_skipped"] >= 0
    assert 0.5 < m["all"]["ctr_auc"] < m["all"]["oracle_ctr_auc"]
    assert r["train_samples_per_second"] > 0 and len(r["loss_curve"]) > 0
