"""Stage 3 groundwork: train one CTR model kind on ``ctr_samples`` and evaluate it on the test day.

Evaluation: CTR/CTCVR AUC, GAUC (per-user, impression-weighted; one-class users skipped and counted) and
logloss on the whole test day and on the slices new POIs (created on the test day), travelling users
(out of area) and the rest, with the oracle AUC of the simulator beside each row.

    .venv/bin/python -m training.ctr --kind larr --data data/small --seed 7 --out runs/small/ctr
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from larr.ctr.data import CATEGORICAL, NUMERIC, CtrStream, Preprocessor, SceneTable, split_files
from larr.ctr.gauc import gauc
from larr.ctr.models import CtrModel
from larr.metrics import auc

log = logging.getLogger("larr.ctr")


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def evaluate(test: pd.DataFrame, p_ctr: np.ndarray, p_ctcvr: np.ndarray) -> dict[str, dict[str, float]]:
    """Metrics per slice; ``test`` holds click, order, user_id, poi_age_days, out_of_area and the oracle."""
    slices = {"all": np.ones(len(test), bool), "new_pois": (test["poi_age_days"] == 0).to_numpy(),
              "travellers": test["out_of_area"].to_numpy(bool)}
    slices["rest"] = ~(slices["new_pois"] | slices["travellers"])
    out = {}
    for name, m in slices.items():
        t = test[m]
        y_c, y_o = t["click"].to_numpy(), t["order"].to_numpy()
        g_ctr, skipped = gauc(t["user_id"].to_numpy(), y_c, p_ctr[m])
        g_ctcvr, _ = gauc(t["user_id"].to_numpy(), y_o, p_ctcvr[m])
        out[name] = {"rows": int(m.sum()), "ctr_auc": auc(y_c, p_ctr[m]), "ctcvr_auc": auc(y_o, p_ctcvr[m]),
                     "ctr_gauc": g_ctr, "ctcvr_gauc": g_ctcvr, "gauc_users_skipped": skipped,
                     "ctr_logloss": _logloss(y_c, p_ctr[m]), "ctcvr_logloss": _logloss(y_o, p_ctcvr[m]),
                     "oracle_ctr_auc": auc(y_c, t["p_click"].to_numpy()),
                     "oracle_ctcvr_auc": auc(y_o, t["p_ctcvr"].to_numpy())}
    return out


def run(kind: str, data: Path, out: Path, seed: int = 7, epochs: int = 2, batch_size: int = 2400,
        lr: float = 1e-3, features: Path | None = None, samples: Path | None = None) -> dict[str, Any]:
    """Train ``kind`` on the training days, evaluate on the test day, write ``out/<kind>_seed<seed>.json``."""
    torch.manual_seed(seed)
    window = json.loads((data / "manifest.json").read_text())["split"]
    samples = samples or data / "jobs" / "ctr_samples"
    train_files = split_files(samples, ("train",), window)
    prep = Preprocessor.fit(train_files)
    scene = SceneTable((features or data / "features") / "scene_value_embeddings.parquet") \
        if kind in ("larr", "noal") else None
    sizes = [prep.sizes()[c] for c in CATEGORICAL]
    model = CtrModel(kind, sizes, len(NUMERIC), scene_matrix=torch.from_numpy(scene.matrix) if scene else None,
                     user_col=CATEGORICAL.index("user_id"), poi_col=CATEGORICAL.index("poi_id"))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    stream = CtrStream(train_files, prep, scene, batch_size, shuffle=True, seed=seed)
    t0 = time.perf_counter()
    seen = 0
    curve = []
    for epoch in range(epochs):
        model.train()
        for batch in tqdm(torch.utils.data.DataLoader(stream, batch_size=None), desc=f"{kind} epoch {epoch}",
                          disable=None):
            out_ = model(batch)
            loss = model.loss(batch, out_)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(batch["click"])
            curve.append(float(loss.detach()))
    seconds = time.perf_counter() - t0
    model.eval()
    test_files = split_files(samples, ("test",), window)
    test = pd.concat(pd.read_parquet(f) for f in test_files).reset_index(drop=True)
    p_ctr, p_ctcvr = [], []
    with torch.inference_mode():
        for batch in torch.utils.data.DataLoader(CtrStream(test_files, prep, scene, 8192), batch_size=None):
            o = model(batch)
            p_ctr.append(o["p_ctr"].numpy())
            p_ctcvr.append(o["p_ctcvr"].numpy())
    oracle = pd.read_parquet(data / "_oracle" / "test_truth.parquet")
    test = test.merge(oracle, on=["request_id", "poi_id"], how="left", validate="one_to_one")
    metrics = evaluate(test, np.concatenate(p_ctr), np.concatenate(p_ctcvr))
    result = {"kind": kind, "seed": seed, "epochs": epochs, "train_samples_per_second": seen / seconds,
              "loss_curve": curve, "metrics": metrics}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{kind}_seed{seed}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", default="larr", choices=["ple", "larr", "noal", "wdl", "deepfm"])
    ap.add_argument("--data", default="data/small")
    ap.add_argument("--features", help="Feast offline folder with scene_value_embeddings.parquet")
    ap.add_argument("--out", default="runs/small/ctr")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    r = run(a.kind, Path(a.data), Path(a.out), a.seed, a.epochs,
            features=Path(a.features) if a.features else None)
    for name, m in r["metrics"].items():
        print(f"{a.kind:<7} {name:<11} n={m['rows']:>6} CTR AUC {m['ctr_auc']:.4f} (oracle {m['oracle_ctr_auc']:.4f}) "
              f"CTCVR AUC {m['ctcvr_auc']:.4f} (oracle {m['oracle_ctcvr_auc']:.4f}) CTR GAUC {m['ctr_gauc']:.4f}")


if __name__ == "__main__":
    main()
