"""CTR input pipeline: vocabularies with padding and out-of-vocabulary slots, normalised numeric features,
the N scene-value vectors of each sample, streamed from parquet so data larger than memory trains.

* Vocabularies are fitted on the training split only; index 0 is padding, 1 is OOV, so an id first seen on
  the test day (a new POI, a new user) maps to OOV instead of crashing.
* Counts are ``log1p``-ed, then every numeric column is standardised with training-split mean and std.
  A missing value (NaN, or infinite) gets the training mean, i.e. the standardised value 0 -- "nothing
  known", not a made-up raw 0 (which for a count would mean "never seen") -- and is never silent: ``fit``
  logs the count per column over the training rows, ``numeric`` counts per column in
  :attr:`Preprocessor.missing` and warns the first time a column has one.  A column with no value on any
  training row has no mean and is refused.
* ``scene_keys`` (from ``ctr_samples``) index rows of the scene-value embedding table; a key without a
  vector maps to row 0, the zero vector.  :func:`scene_coverage` measures how many keys have a vector, and
  training refuses a table that covers fewer than ``ctr.min_scene_coverage`` of the training keys.
* :class:`CtrStream` is an ``IterableDataset`` over the parquet files of the requested splits, reading
  record batches (never a whole file set) and yielding ready-made tensor batches (paper: 2,400).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from larr.ctr.columns import CtrColumns

PAD, OOV = 0, 1
Z_LIMIT = 1e4  # standardised numerics are clipped here: far beyond any training value, far below float32 overflow
log = logging.getLogger("larr.ctr")


def split_files(samples: Path, splits: tuple[str, ...], window: dict) -> list[Path]:
    """Parquet files of ``ctr_samples`` whose date partition belongs to ``splits`` (train/valid/test)."""
    days = {"train": set(window["train"]), "valid": set(window.get("valid_days", [window["valid"]])),
            "test": set(window.get("test_days", [window["test"]]))}
    wanted = set().union(*(days[s] for s in splits))
    files = [f for part in sorted(samples.glob("date=*")) if part.name.split("=", 1)[1] in wanted
             for f in sorted(part.glob("*.parquet"))]
    if not files:
        raise FileNotFoundError(f"{samples} has no parquet files for splits {splits}: run `larr spark ctr_samples`")
    return files


@dataclass
class Preprocessor:
    """Fitted vocabularies and numeric statistics; JSON-serialisable so serving applies the same transform.

    ``missing`` counts, per numeric column, the rows :meth:`numeric` has filled (NaN or infinite input) in
    this process; it is not saved."""

    vocab: dict[str, dict[str, int]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    counts: tuple[str, ...] = ()
    missing: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def categorical_columns(self) -> list[str]:
        return list(self.vocab)

    @property
    def numeric_columns(self) -> list[str]:
        return list(self.mean)

    @classmethod
    def fit(cls, files: list[Path], cols: CtrColumns) -> Preprocessor:
        """One streaming pass over the training files; the columns come from the spec (:mod:`larr.ctr.columns`)."""
        categorical, numeric = cols.categorical, cols.numeric
        seen: dict[str, set[str]] = {c: set() for c in categorical}
        s1 = dict.fromkeys(numeric, 0.0)
        s2 = dict.fromkeys(numeric, 0.0)
        absent = dict.fromkeys(numeric, 0)  # training rows without a value, per column
        n = 0
        for f in files:
            names = pq.ParquetFile(f).schema_arrow.names
            missing = [c for c in (*categorical, *numeric) if c not in names]
            if missing:
                raise ValueError(f"{f}: CTR samples lack column(s) {missing} that the spec's ctr section names; "
                                 "re-run `larr spark ctr_samples` with the same spec")
            for batch in pq.ParquetFile(f).iter_batches(columns=list(categorical + numeric), batch_size=65_536):
                df = batch.to_pandas()
                for c in categorical:
                    seen[c].update(df[c].astype(str).unique())
                x, miss = _numeric(df, numeric, cols.counts)
                x = np.where(miss, 0.0, x)
                for i, c in enumerate(numeric):
                    s1[c] += float(x[:, i].sum())
                    s2[c] += float((x[:, i] ** 2).sum())
                    absent[c] += int(miss[:, i].sum())
                n += len(df)
        if n == 0:
            raise ValueError("no training rows to fit the CTR preprocessor on")
        empty = [c for c in numeric if absent[c] == n]
        if empty:
            raise ValueError(f"CTR numeric column(s) {empty} have no value (NaN or infinite) on any of the {n:,} "
                             f"training rows of {len(files)} file(s), so they have no mean to standardise by: "
                             "fix them in ctr_samples (`larr spark ctr_samples`) or drop them from the spec's ctr "
                             "section")
        for c in numeric:
            if absent[c]:
                log.warning("CTR numeric column %s: %s of %s training rows have no value (NaN or infinite); they "
                            "get the training mean (standardised 0). Fix: give every row a value in ctr_samples",
                            c, f"{absent[c]:,}", f"{n:,}")
        p = cls(counts=tuple(cols.counts))
        p.vocab = {c: {v: i + 2 for i, v in enumerate(sorted(seen[c]))} for c in categorical}
        for c in numeric:
            k = n - absent[c]  # the mean and std of the rows that have a value
            m = s1[c] / k
            p.mean[c] = m
            p.std[c] = max(float(np.sqrt(max(s2[c] / k - m * m, 0.0))), 1e-6)
        return p

    def sizes(self) -> dict[str, int]:
        """Embedding table size per categorical column (vocabulary + padding + OOV)."""
        return {c: len(v) + 2 for c, v in self.vocab.items()}

    def categorical(self, df: pd.DataFrame) -> np.ndarray:
        return np.stack([df[c].astype(str).map(v).fillna(OOV).to_numpy(np.int64) for c, v in self.vocab.items()],
                        axis=1)

    def numeric(self, df: pd.DataFrame) -> np.ndarray:
        """[n, numeric columns] float32: standardised with the training mean and std (clipped to +-Z_LIMIT); a
        missing value (NaN or infinite) is the training mean, 0, counted in :attr:`missing` (warned the first
        time per column)."""
        if not self.numeric_columns:
            return np.zeros((len(df), 0), np.float32)
        raw = np.stack([df[c].to_numpy(dtype=float, na_value=np.nan) for c in self.numeric_columns], axis=1)
        return self.numeric_matrix(raw)

    def numeric_matrix(self, raw: np.ndarray) -> np.ndarray:
        """:meth:`numeric` of the raw float matrix [n, numeric columns] (columns in ``numeric_columns`` order,
        NaN where missing): what the scoring service calls, which holds its rows as arrays, not a frame."""
        cols = self.numeric_columns
        x, miss = _numeric_raw(np.asarray(raw, dtype=float), cols, self.counts)
        mean = np.array([self.mean[c] for c in cols])
        std = np.array([self.std[c] for c in cols])
        # clipped far outside anything seen in training: a huge value (e.g. 1e300 from a request) would
        # otherwise overflow float32 to inf and turn the network's output into NaN
        z = np.clip((x - mean) / std, -Z_LIMIT, Z_LIMIT).astype(np.float32)
        if miss.any():
            z[miss] = 0.0
            for i in np.flatnonzero(miss.any(axis=0)):
                c, k = cols[i], int(miss[:, i].sum())
                if c not in self.missing:
                    log.warning("CTR numeric feature %s: %s of %s rows have no value (NaN or infinite); they get "
                                "the training mean (standardised 0); later ones are counted in "
                                "Preprocessor.missing", c, f"{k:,}", f"{len(z):,}")
                self.missing[c] = self.missing.get(c, 0) + k
        return z

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"vocab": self.vocab, "mean": self.mean, "std": self.std,
                                    "counts": list(self.counts)}))

    @classmethod
    def load(cls, path: Path) -> Preprocessor:
        d = json.loads(path.read_text())
        return cls(d["vocab"], d["mean"], d["std"], tuple(d.get("counts", ())))


def _numeric(df: pd.DataFrame, numeric: tuple[str, ...] | list[str],
             counts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The numeric columns as float64 (counts clipped at 0 and ``log1p``-ed) and the mask of missing values
    (NaN, null or infinite in the input; NaN in the first array)."""
    if not numeric:
        return np.zeros((len(df), 0)), np.zeros((len(df), 0), bool)
    raw = np.stack([df[c].to_numpy(dtype=float, na_value=np.nan) for c in numeric], axis=1)
    return _numeric_raw(raw, numeric, counts)


def _numeric_raw(raw: np.ndarray, numeric: tuple[str, ...] | list[str],
                 counts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_numeric` of the stacked float64 columns."""
    miss = ~np.isfinite(raw)
    x = np.where(miss, np.nan, raw)
    for i, c in enumerate(numeric):
        if c in counts:
            x[:, i] = np.log1p(x[:, i].clip(min=0))
    return x, miss


@dataclass(frozen=True)
class SceneCoverage:
    """How many of the scene keys of some samples (every row, every field position) have a vector."""

    keys: int
    covered: int
    per_position: tuple[float, ...]  # share covered at each of the N field positions

    @property
    def share(self) -> float:
        return self.covered / self.keys if self.keys else 1.0

    def describe(self, fields: list[str] | None = None) -> str:
        names = fields if fields and len(fields) == len(self.per_position) else \
            [f"#{i}" for i in range(len(self.per_position))]
        per = ", ".join(f"{n} {v:.1%}" for n, v in zip(names, self.per_position, strict=True))
        return f"{self.share:.1%} of {self.keys:,} scene keys have a vector (per field: {per})"


class SceneTable:
    """Scene-value key -> row of a float32 matrix; row 0 is the zero vector for keys without a vector."""

    def __init__(self, embeddings: Path):
        df = pd.read_parquet(embeddings, columns=["scene_key", "embedding"])
        vectors = np.stack(df["embedding"].to_numpy()).astype(np.float32)
        self.path = Path(embeddings)
        self.matrix = np.vstack([np.zeros((1, vectors.shape[1]), np.float32), vectors])
        # a sorted key array, not a pandas index: its lazily built hash table is not safe to build from
        # several threads at once (the scorer's thread pool), and searchsorted is as fast here
        keys = df["scene_key"].to_numpy(np.int64)
        order = np.argsort(keys, kind="stable")
        self._keys, self._rows = keys[order], (order + 1).astype(np.int64)
        self._coverage: dict[tuple[Path, ...], SceneCoverage] = {}
        self._logged: set[tuple[Path, ...]] = set()

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """[n, N] keys -> [n, N] row indices (0 where a key has no vector)."""
        flat = keys.reshape(-1).astype(np.int64)
        if not len(self._keys):
            return np.zeros(keys.shape, np.int64)
        at = np.minimum(np.searchsorted(self._keys, flat), len(self._keys) - 1)
        return np.where(self._keys[at] == flat, self._rows[at], 0).reshape(keys.shape)

    def coverage(self, files: list[Path]) -> SceneCoverage:
        """The share of the scene keys of the ``ctr_samples`` files ``files`` that have a vector (streamed:
        only the ``scene_keys`` column, a record batch at a time; computed once per file list)."""
        cached = self._coverage.get(tuple(files))
        if cached is not None:
            return cached
        hits: np.ndarray | None = None
        rows = 0
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(columns=["scene_keys"], batch_size=65_536):
                keys = np.stack(batch.column(0).to_numpy(zero_copy_only=False)).astype(np.int64)
                if not len(keys):
                    continue
                found = (self.rows(keys) > 0).sum(axis=0)
                hits = found if hits is None else hits + found
                rows += len(keys)
        per = tuple(float(h) / rows for h in hits) if hits is not None and rows else ()
        cov = SceneCoverage(rows * len(per), int(hits.sum()) if hits is not None else 0, per)
        self._coverage[tuple(files)] = cov
        return cov

    def require_coverage(self, files: list[Path], floor: float, fields: list[str] | None = None) -> SceneCoverage:
        """Log the coverage of the training keys ``files`` hold (once per file list) and refuse a table below
        ``floor`` (``ctr.min_scene_coverage``): a key without a vector silently trains on the zero row, so a
        table embedded from another vocabulary, or half of one, would train a scene model on nothing."""
        cov = self.coverage(files)
        text = f"scene vectors {self.path}: {cov.describe(fields)} in {len(files)} training file(s)"
        if cov.share < floor:
            raise ValueError(f"{text}, below ctr.min_scene_coverage = {floor}: those keys would train on the zero "
                             "vector. Fix: embed the scene vocabulary the samples were built from (`larr spark "
                             "scene_vocab`, then `larr embed`), or lower ctr.min_scene_coverage")
        if tuple(files) not in self._logged:
            self._logged.add(tuple(files))
            (log.warning if cov.share < 1 else log.info)(text)
        return cov


def id_dropout(cat: torch.Tensor, cols: list[int], p: float, global_rows: int | None = None,
               offset: int = 0) -> torch.Tensor:
    """Training-time id dropout: each id in ``cols`` becomes OOV with probability ``p``.

    Without it the OOV row of an id table is never trained (no training id is unseen), so every model meets
    a random vector for a POI or user first seen on the test day.  With it the OOV row learns "an unknown
    id" and the rest of the model learns to rely on what else it knows about the impression -- for LARR the
    semantic scene vector.  Padding is left alone.

    Under several processes ``cat`` is this process's rows ``[offset, offset + n)`` of a global batch of
    ``global_rows``: every process draws the whole global batch's coins from the same seeded generator and
    keeps its own, so a row is dropped exactly when one process training on the whole batch drops it."""
    if p <= 0:
        return cat
    cat = cat.clone()
    n = cat.shape[0]
    for c in cols:
        coins = torch.rand(global_rows if global_rows is not None else n)[offset:offset + n]
        drop = (coins < p) & (cat[:, c] != PAD)
        cat[drop, c] = OOV
    return cat


class CtrStream(torch.utils.data.IterableDataset):
    """Batches of {"cat", "num", "scene_rows", "click", "order", "user_id"} streamed from parquet files.

    Spark writes rows clustered by a join key (on ``small``: by user, ~70 rows each); with ``shuffle`` the
    stream fills a buffer of ``shuffle_buffer`` rows from files in random order, permutes it and emits full
    batches (the classic streaming shuffle), so a batch is close to a uniform sample -- which matters doubly
    for the alignment loss, whose negatives are the other samples of the batch.  Memory is bounded by the
    buffer, not the data.

    Sharded (``world > 1``, one stream per training process): every process reads the same files in the same
    seeded order and builds the same global batches of ``batch_size`` rows, then keeps only its contiguous
    slice of each (sizes differ by at most one row) -- so W processes see, between them, exactly the rows and
    batches one process sees.  Rows are held raw in the buffer and only this process's rows are preprocessed,
    so the per-row cost (vocabulary lookups, scaling, scene keys) is split W ways; each batch also carries
    ``global_rows`` and ``offset`` (its place in the global batch) for the loss normalisation and id dropout.
    """

    def __init__(self, files: list[Path], prep: Preprocessor, scene: SceneTable | None, batch_size: int = 2400,
                 shuffle: bool = False, seed: int = 0, shuffle_buffer: int = 200_000,
                 labels: tuple[str, ...] = ("click", "order"), user_key: str = "user_id", rank: int = 0,
                 world: int = 1):
        super().__init__()
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not one of {world} processes")
        self.files, self.prep, self.scene = list(files), prep, scene
        self.labels, self.user_key = labels, user_key
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.shuffle_buffer = max(shuffle_buffer, batch_size) if shuffle else 0
        self.rank, self.world = rank, world
        self.epoch = 0

    def _arrays(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        click = df[self.labels[0]].to_numpy(np.float32)
        # One-task specs (no conversion label) carry an all-zero "order" that the loss ignores.
        order = df[self.labels[1]].to_numpy(np.float32) if len(self.labels) > 1 else np.zeros_like(click)
        out = {"cat": self.prep.categorical(df), "num": self.prep.numeric(df), "click": click, "order": order,
               "user_id": df[self.user_key].to_numpy(np.int64)}
        if self.scene is not None:
            out["scene_rows"] = self.scene.rows(np.stack(df["scene_keys"].to_numpy()).astype(np.int64))
        return out

    def _columns(self) -> list[str]:
        return list(dict.fromkeys([*self.prep.categorical_columns, *self.prep.numeric_columns, *self.labels,
                                   self.user_key])) + (["scene_keys"] if self.scene is not None else [])

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        self.epoch += 1
        files = list(self.files)
        if self.shuffle:
            rng.shuffle(files)
        cols = self._columns()
        record_rows = max(self.batch_size, 8192)
        if not self.shuffle:
            for f in files:
                for batch in pq.ParquetFile(f).iter_batches(columns=cols, batch_size=record_rows):
                    yield from self._emit(pa.Table.from_batches([batch]), final=True)
            return
        buffer: list[pa.Table] = []
        held = 0
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(columns=cols, batch_size=record_rows):
                buffer.append(pa.Table.from_batches([batch]))
                held += batch.num_rows
                if held >= self.shuffle_buffer:
                    merged = _permuted(buffer, rng)
                    n_full = merged.num_rows // self.batch_size * self.batch_size
                    yield from self._emit(merged.slice(0, n_full), final=False)
                    buffer = [merged.slice(n_full)]
                    held = buffer[0].num_rows
        if held:
            yield from self._emit(_permuted(buffer, rng), final=True)

    def _emit(self, rows: pa.Table, final: bool) -> Iterator[dict[str, torch.Tensor]]:
        """Cut ``rows`` into global batches (the last may be short only when ``final``), keep this process's
        slice of each, preprocess those rows in one call and yield them batch by batch."""
        n = rows.num_rows
        starts = list(range(0, n, self.batch_size))
        if self.world == 1:
            yield from _slices(self._arrays(rows.to_pandas()), self.batch_size)
            return
        mine: list[np.ndarray] = []
        meta: list[tuple[int, int, int]] = []  # (global rows, offset, local rows)
        for s in starts:
            g = min(self.batch_size, n - s)
            base, extra = divmod(g, self.world)
            offset = self.rank * base + min(self.rank, extra)
            local = base + (1 if self.rank < extra else 0)
            mine.append(np.arange(s + offset, s + offset + local))
            meta.append((g, offset, local))
        arrays = self._arrays(rows.take(pa.array(np.concatenate(mine) if mine else np.zeros(0, np.int64)))
                              .to_pandas())
        at = 0
        for g, offset, local in meta:
            out = {k: torch.from_numpy(np.ascontiguousarray(v[at:at + local])) for k, v in arrays.items()}
            out["global_rows"] = torch.tensor(g)
            out["offset"] = torch.tensor(offset)
            at += local
            yield out


def _permuted(parts: list[pa.Table], rng: np.random.Generator) -> pa.Table:
    merged = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    order = rng.permutation(merged.num_rows)
    return merged.take(pa.array(order))


def _slices(arrays: dict[str, np.ndarray], batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    n = len(arrays["click"])
    for i in range(0, n, batch_size):
        yield {k: torch.from_numpy(np.ascontiguousarray(v[i:i + batch_size])) for k, v in arrays.items()}
