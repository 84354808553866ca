"""CTR input pipeline on the tiny world's ctr_samples: OOV, normalisation, scene rows, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from larr.ctr.data import CATEGORICAL, NUMERIC, OOV, CtrStream, Preprocessor, SceneTable, split_files


def test_pipeline_end_to_end(tiny_world: Path, tiny_jobs: Path, tmp_path: Path) -> None:
    window = json.loads((tiny_world / "manifest.json").read_text())["split"]
    samples = tiny_jobs / "ctr_samples"
    train = split_files(samples, ("train",), window)
    test = split_files(samples, ("test",), window)
    prep = Preprocessor.fit(train)
    prep.save(tmp_path / "prep.json")
    prep = Preprocessor.load(tmp_path / "prep.json")

    # numeric features are standardised on the training split
    tr = pd.concat(pd.read_parquet(f) for f in train)
    x = prep.numeric(tr)
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-4)
    assert np.all((x.std(axis=0) > 0.99) | (x.std(axis=0) < 1e-3))

    # ids first seen on the test day map to OOV, never crash
    te = pd.concat(pd.read_parquet(f) for f in test)
    cat = prep.categorical(te)
    poi_col = CATEGORICAL.index("poi_id")
    new = ~te["poi_id"].astype(str).isin(prep.vocab["poi_id"]).to_numpy()
    assert new.any() and (cat[new, poi_col] == OOV).all() and (cat[~new, poi_col] > OOV).all()

    # scene table: a synthetic matrix over the vocabulary keys, one key left out to exercise the zero row
    vocab = pd.read_parquet(tiny_jobs / "scene_vocab")
    keys = vocab["key"].to_numpy()[1:]
    rng = np.random.default_rng(0)
    pd.DataFrame({"scene_key": keys, "embedding": list(rng.normal(size=(len(keys), 8)).astype(np.float32))}
                 ).to_parquet(tmp_path / "emb.parquet")
    scene = SceneTable(tmp_path / "emb.parquet")
    assert scene.rows(np.array([[vocab["key"].iloc[0], keys[0]]])).tolist() == [[0, 1]]

    stream = CtrStream(test, prep, scene, batch_size=500, shuffle=True, seed=1)
    batches = list(torch.utils.data.DataLoader(stream, batch_size=None))
    assert sum(len(b["click"]) for b in batches) == len(te)
    b = batches[0]
    assert b["cat"].shape[1] == len(CATEGORICAL) and b["num"].shape[1] == len(NUMERIC)
    assert b["scene_rows"].shape == (len(b["click"]), 10) and b["scene_rows"].dtype == torch.int64
    assert len(b["click"]) <= 500 and ((b["order"] <= b["click"]).all())
