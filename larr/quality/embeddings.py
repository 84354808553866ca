"""Suite ``embeddings``: the vectors ``larr embed`` wrote for Feast, before anything serves them.

The CTR model, recall and the streaming consumer look vectors up by key and assume what DESIGN section 5
promises: ``features.embedding_dim``-d, finite, L2-normalised, one per key, and one for every value of the
scene vocabulary.  Per table of the Feast offline folder (scene values, items, users; file names as the
embedding job writes them, derived from the spec's entity names):

* at least one row; the key never null and unique;
* ``embedding.dim`` (the vector's length; 0 for a null vector) equals ``features.embedding_dim``;
* ``embedding.finite`` (no NaN or infinity) is True;
* ``embedding.norm`` (L2) lies in ``1 +- quality.norm_tolerance``;

and, on the newest ``scene_vocab`` partition (``--vocab``, default ``PATH/../jobs/scene_vocab``), the share of
its keys with a scene-value vector (``key.has_vector``) is at least ``quality.min_vocab_coverage`` -- a value
without one reaches the CTR model as the zero vector.

GE gets per-vector aggregates (dimension, finiteness, norm), computed from the parquet list column in
record batches with pyarrow, never the vectors: a few numbers per key keep large user tables cheap.
"""

from __future__ import annotations

from pathlib import Path

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from great_expectations.expectations.expectation import Expectation

from larr.config import LarrConfig
from larr.feast_repo import SCENE_ENTITY, SCENE_KEY
from larr.quality import Inputs
from larr.quality.gx import Batch, newest_partition
from larr.spec import Spec

VECTOR = "embedding"
VOCAB = "scene_vocab"  # the Spark job's output folder


def tables(spec: Spec) -> dict[str, str]:
    """``{file stem: key column}`` of the embedding tables (as ``spark_jobs/embed_features.py`` names them)."""
    return {f"{SCENE_ENTITY}_embeddings": SCENE_KEY, f"{spec.item_name}_embeddings": spec.item_key,
            f"{spec.user_name}_embeddings": spec.user_key}


def batches(path: Path, cfg: LarrConfig, spec: Spec, inputs: Inputs) -> list[Batch]:
    """Vector aggregates of every embedding table under ``path`` and the scene vocabulary's coverage."""
    features = Path(path)
    stems = tables(spec)
    if not features.is_dir() or not any((features / f"{s}.parquet").exists() for s in stems):
        names = ", ".join(f"{s}.parquet" for s in stems)
        raise FileNotFoundError(f"embeddings suite: {features} holds none of {names} "
                                "(PATH is the Feast offline data folder `larr embed --features` wrote)")
    vocab_dir = _vocab_dir(features, inputs.vocab)
    out: list[Batch] = []
    scene_keys = np.array([], dtype=np.int64)
    for stem, key in stems.items():
        file = features / f"{stem}.parquet"
        frame = _vector_stats(file, key) if file.exists() else _empty(key)
        if stem == f"{SCENE_ENTITY}_embeddings":
            scene_keys = frame.index.to_numpy()
        out.append(Batch(stem, frame, _vector_expectations(key, cfg),
                         "" if file.exists() else f"{file} does not exist"))
    part = newest_partition(vocab_dir)
    vocab = pd.read_parquet(part, columns=["field", "key"])
    vocab["key.has_vector"] = np.isin(vocab["key"].to_numpy(), scene_keys)
    vocab = vocab.set_index(pd.Index(vocab["key"], name="key"))
    out.append(Batch(VOCAB, vocab, [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, notes="the scene vocabulary is not empty"),
        gxe.ExpectColumnValuesToBeInSet(
            column="key.has_vector", value_set=[True], mostly=cfg.quality.min_vocab_coverage,
            meta={"bound": f"True for >= {cfg.quality.min_vocab_coverage:.4g} of keys "
                           "(quality.min_vocab_coverage)"},
            notes="share of the scene vocabulary's keys that have a scene-value vector; a key without one is the "
                  "zero vector to the CTR model"),
    ], f"{VOCAB}/{part.name} ({vocab_dir}): {int(vocab['key.has_vector'].sum()):,} of {len(vocab):,} keys have a "
       f"vector (coverage {vocab['key.has_vector'].mean() if len(vocab) else 0:.2%})"))
    return out


def _vocab_dir(features: Path, given: Path | None) -> Path:
    """The scene_vocab folder: ``--vocab`` (the folder or the jobs folder holding it), else the demo layout's
    ``<data>/jobs/scene_vocab`` beside ``<data>/features``."""
    candidates = [given / VOCAB, given] if given is not None else [features.parent / "jobs" / VOCAB]
    for c in candidates:
        if c.is_dir() and any(c.glob("ds=*")):
            return c
    where = given if given is not None else candidates[0]
    raise FileNotFoundError(f"embeddings suite: no {VOCAB} partitions at {where}; pass --vocab (the {VOCAB} "
                            "folder or the Spark job outputs holding it)")


def _vector_stats(file: Path, key: str) -> pd.DataFrame:
    """Per row: the key, the vector's dimension (0 when null), whether every element is finite, its L2 norm
    (NaN when not finite), read in record batches."""
    parts = []
    pf = pq.ParquetFile(file)
    for rb in pf.iter_batches(columns=[key, VECTOR], batch_size=65_536):
        keys = rb.column(0).to_numpy(zero_copy_only=False)
        emb = rb.column(1)
        if isinstance(emb, pa.ChunkedArray):
            emb = emb.combine_chunks()
        offsets = np.asarray(emb.offsets, dtype=np.int64)
        offsets = offsets - offsets[0]
        dims = np.diff(offsets)
        values = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float64)  # nulls inside -> NaN
        finite = np.isfinite(values)
        sq = np.cumsum(np.concatenate([[0.0], np.where(finite, values, 0.0) ** 2]))
        bad = np.cumsum(np.concatenate([[0], (~finite).astype(np.int64)]))
        starts, ends = offsets[:-1], offsets[1:]
        n_bad = bad[ends] - bad[starts]
        norm = np.sqrt(sq[ends] - sq[starts])
        null = np.asarray(emb.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        dims = np.where(null, 0, dims)
        ok = (n_bad == 0) & ~null
        parts.append(pd.DataFrame({key: keys, f"{VECTOR}.dim": dims, f"{VECTOR}.finite": ok,
                                   f"{VECTOR}.norm": np.where(ok, norm, np.nan)}))
    frame = pd.concat(parts, ignore_index=True) if parts else _empty(key).reset_index(drop=True)
    return frame.set_index(pd.Index(frame[key], name=key))


def _empty(key: str) -> pd.DataFrame:
    frame = pd.DataFrame({key: pd.Series(dtype="int64"), f"{VECTOR}.dim": pd.Series(dtype="int64"),
                          f"{VECTOR}.finite": pd.Series(dtype=bool), f"{VECTOR}.norm": pd.Series(dtype=float)})
    return frame.set_index(pd.Index(frame[key], name=key))


def _vector_expectations(key: str, cfg: LarrConfig) -> list[Expectation]:
    dim, tol = cfg.features.embedding_dim, cfg.quality.norm_tolerance
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, notes="the table has vectors"),
        gxe.ExpectColumnValuesToNotBeNull(column=key),
        gxe.ExpectColumnValuesToBeUnique(column=key, notes="one vector per key (Feast keeps one row per entity)"),
        gxe.ExpectColumnValuesToBeBetween(column=f"{VECTOR}.dim", min_value=dim, max_value=dim,
                                          notes="the dimension the Feast views expect (features.embedding_dim)"),
        gxe.ExpectColumnValuesToBeInSet(column=f"{VECTOR}.finite", value_set=[True],
                                        notes="no NaN or infinite element (and no null vector)"),
        gxe.ExpectColumnValuesToBeBetween(column=f"{VECTOR}.norm", min_value=1 - tol, max_value=1 + tol,
                                          notes="L2-normalised (quality.norm_tolerance)"),
    ]
