"""CTR input pipeline on the tiny world's ctr_samples: OOV, normalisation, scene rows, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from larr.ctr.columns import ctr_columns
from larr.ctr.data import (
    OOV,
    PAD,
    CtrStream,
    Preprocessor,
    SceneTable,
    id_dropout,
    split_files,
)
from larr.spec import load_spec

COLS = ctr_columns(load_spec())


def test_pipeline_end_to_end(tiny_world: Path, tiny_jobs: Path, tmp_path: Path) -> None:
    window = json.loads((tiny_world / "manifest.json").read_text())["split"]
    samples = tiny_jobs / "ctr_samples"
    train = split_files(samples, ("train",), window)
    test = split_files(samples, ("test",), window)
    prep = Preprocessor.fit(train, COLS)
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
    poi_col = COLS.item_col
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
    assert b["cat"].shape[1] == len(COLS.categorical) and b["num"].shape[1] == len(COLS.numeric)
    assert b["scene_rows"].shape == (len(b["click"]), 10) and b["scene_rows"].dtype == torch.int64
    assert len(b["click"]) <= 500 and ((b["order"] <= b["click"]).all())


def test_shuffle_buffer_keeps_every_row_once_and_mixes_users(tiny_world: Path, tiny_jobs: Path) -> None:
    window = json.loads((tiny_world / "manifest.json").read_text())["split"]
    train = split_files(tiny_jobs / "ctr_samples", ("train",), window)
    prep = Preprocessor.fit(train, COLS)
    plain = list(CtrStream(train, prep, None, batch_size=256))
    mixed = list(CtrStream(train, prep, None, batch_size=256, shuffle=True, seed=3, shuffle_buffer=2000))
    key = lambda bs: sorted(zip(torch.cat([b["user_id"] for b in bs]).tolist(),  # noqa: E731
                                torch.cat([b["cat"][:, 1] for b in bs]).tolist(),
                                torch.cat([b["num"][:, 0] for b in bs]).tolist(), strict=True))
    assert key(plain) == key(mixed)  # same rows, each once
    assert all(len(b["click"]) == 256 for b in mixed[:-1])  # full batches until the last

    def distinct_users(bs: list) -> float:
        return float(np.mean([len(set(b["user_id"].tolist())) for b in bs[:-1]]))

    # Spark writes rows clustered by user; the buffer must break that up
    assert distinct_users(mixed) > 2 * distinct_users(plain)
    again = list(CtrStream(train, prep, None, batch_size=256, shuffle=True, seed=3, shuffle_buffer=2000))
    assert torch.equal(again[0]["user_id"], mixed[0]["user_id"])  # seeded


def test_id_dropout_only_touches_the_named_columns_and_never_padding() -> None:
    torch.manual_seed(0)
    cat = torch.randint(2, 50, (10_000, 4))
    cat[:100, 1] = PAD
    out = id_dropout(cat, [0, 1], 0.2)
    assert torch.equal(out[:, 2:], cat[:, 2:]) and (out[:100, 1] == PAD).all()
    share = (out[:, 0] == OOV).float().mean().item()
    assert 0.18 < share < 0.22
    assert torch.equal(id_dropout(cat, [0, 1], 0.0), cat)
    assert not (cat == OOV).any()  # the input is not modified in place
