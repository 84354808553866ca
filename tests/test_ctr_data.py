"""CTR input pipeline on the tiny world's ctr_samples: OOV, normalisation, scene rows, streaming."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from larr.ctr.columns import CtrColumns, ctr_columns
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


# ----------------------------------------------------------------------------------------- missing values
SMALL = CtrColumns(categorical=("user_id", "poi_id"), counts=("u_imps",), numeric=("u_imps", "u_ctr"),
                   labels=("click",), item_age="", user_col=0, item_col=1)


def _samples(path: Path, u_imps: list[float], u_ctr: list[float]) -> Path:
    n = len(u_imps)
    pd.DataFrame({"user_id": np.arange(n), "poi_id": np.arange(n) % 3, "u_imps": u_imps, "u_ctr": u_ctr,
                  "click": np.zeros(n, np.int64)}).to_parquet(path, index=False)
    return path


def test_missing_numeric_values_get_the_training_mean_and_are_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """NaN or infinite numeric inputs are neither a silent raw 0 nor a NaN reaching the model: they are the
    training mean (standardised 0), counted per column at fit and at transform, and logged."""
    nan, inf = float("nan"), float("inf")
    train = _samples(tmp_path / "train.parquet", [0, 3, 7, nan, 15], [0.1, 0.2, inf, 0.4, nan])
    with caplog.at_level(logging.WARNING, logger="larr.ctr"):
        prep = Preprocessor.fit([train], SMALL)
    imps, ctr = np.log1p([0, 3, 7, 15]), np.array([0.1, 0.2, 0.4])
    assert prep.mean == pytest.approx({"u_imps": imps.mean(), "u_ctr": ctr.mean()})  # of the present values
    assert prep.std == pytest.approx({"u_imps": imps.std(), "u_ctr": ctr.std()})
    logged = caplog.text
    assert "u_imps: 1 of 5 training rows have no value" in logged
    assert "u_ctr: 2 of 5 training rows have no value" in logged and "training mean" in logged

    caplog.clear()
    df = pd.DataFrame({"u_imps": [nan, 3.0, 3.0, -inf], "u_ctr": [0.2, None, inf, 0.2]})
    with caplog.at_level(logging.WARNING, logger="larr.ctr"):
        x = prep.numeric(df)
        prep.numeric(df)
    assert np.isfinite(x).all()
    want_imps = (np.log1p(3.0) - prep.mean["u_imps"]) / prep.std["u_imps"]
    want_ctr = (0.2 - prep.mean["u_ctr"]) / prep.std["u_ctr"]
    np.testing.assert_allclose(x, [[0, want_ctr], [want_imps, 0], [want_imps, 0], [0, want_ctr]], rtol=1e-6)
    assert prep.missing == {"u_imps": 4, "u_ctr": 4}  # two calls, two rows each
    assert caplog.text.count("has no value") == 0 and caplog.text.count("rows have no value") == 2  # once a column
    assert "u_imps: 2 of 4 rows" in caplog.text
    # nullable integer input (what a serving request may carry) is read the same way
    y = prep.numeric(pd.DataFrame({"u_imps": pd.array([None, 3], dtype="Int64"), "u_ctr": [0.2, 0.2]}))
    np.testing.assert_allclose(y, [[0, want_ctr], [want_imps, want_ctr]], rtol=1e-6)


def test_a_numeric_column_without_any_value_is_refused(tmp_path: Path) -> None:
    train = _samples(tmp_path / "train.parquet", [1, 2, 3], [float("nan")] * 3)
    with pytest.raises(ValueError, match=r"\['u_ctr'\] have no value .* any of the 3 training rows .*ctr_samples"):
        Preprocessor.fit([train], SMALL)


# ----------------------------------------------------------------------------------------- scene coverage
def _scene_samples(path: Path, keys: np.ndarray) -> Path:
    pd.DataFrame({"scene_keys": list(keys)}).to_parquet(path, index=False)
    return path


def _scene_table(path: Path, keys: np.ndarray) -> SceneTable:
    pd.DataFrame({"scene_key": keys, "embedding": list(np.ones((len(keys), 4), np.float32))}).to_parquet(path)
    return SceneTable(path)


def test_scene_coverage_per_field_and_the_floor(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys = np.array([[1, 10, 100], [2, 11, 101], [1, 12, 102], [3, 13, 103]], np.int64)
    files = [_scene_samples(tmp_path / "a.parquet", keys[:3]), _scene_samples(tmp_path / "b.parquet", keys[3:])]
    table = _scene_table(tmp_path / "emb.parquet", np.array([1, 2, 3, 10, 11, 100]))
    cov = table.coverage(files)
    assert (cov.keys, cov.covered) == (12, 7) and cov.per_position == (1.0, 0.5, 0.25)
    with caplog.at_level(logging.INFO, logger="larr.ctr"):
        assert table.require_coverage(files, 0.5, ["slot", "weather", "district"]) == cov
        table.require_coverage(files, 0.5)
    assert caplog.text.count("scene keys have a vector") == 1  # logged once per run
    assert "58.3% of 12 scene keys have a vector (per field: slot 100.0%, weather 50.0%, district 25.0%)" in caplog.text
    with pytest.raises(ValueError, match=r"58\.3% of 12 scene keys .* below ctr\.min_scene_coverage = 0\.9.*larr embed"):
        table.require_coverage(files, 0.9)


def test_ctr_training_refuses_a_scene_table_of_another_vocabulary(tiny_world: Path, tiny_jobs: Path,
                                                                 tmp_path: Path) -> None:
    from larr.config import CtrConfig
    from training.ctr import CtrData, run_ctr

    vocab = pd.read_parquet(tiny_jobs / "scene_vocab")["key"].to_numpy()
    (tmp_path / "half").mkdir()
    _scene_table(tmp_path / "half" / "scene_value_embeddings.parquet", vocab[: len(vocab) // 3])
    d = CtrData.load(tiny_world, tiny_jobs / "ctr_samples")
    with pytest.raises(ValueError, match=r"scene keys have a vector .* below ctr\.min_scene_coverage = 0\.9"):
        run_ctr(CtrConfig(epochs=1), "larr", d, seed=1, features=tmp_path / "half", progress=False)
    # a table of the whole vocabulary passes the same floor
    (tmp_path / "full").mkdir()
    _scene_table(tmp_path / "full" / "scene_value_embeddings.parquet", vocab)
    assert d.scene(tmp_path / "full", 0.9).coverage(d.train_files).share == 1.0
