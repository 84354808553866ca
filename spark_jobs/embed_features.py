"""Embedding materialization: Spark batch inference with the frozen encoder over every text the
recommender looks up -- the scene vocabulary (one vector per distinct feature value), POI full texts and
user full texts -- then the Feast offline tables.

Only distinct texts are embedded, and only those not yet in the cache for this encoder version (cache key:
text hash + encoder version, under ``OUT/embed_cache/encoder_version=V/``); a re-run with nothing new
embeds zero texts and says so.  The model is loaded once per Python worker (``mapInPandas``).  New vectors
are checked (dimension, finite values) before anything is written, so a bad batch never reaches the cache
or the feature tables.

Values the streaming consumer met without a vector (``OUT/backlog/*.jsonl``) are embedded too.

Outputs (Feast offline store, ``--features DIR``, default ``OUT/features``):
``scene_value_embeddings.parquet``, ``poi_embeddings.parquet``, ``user_embeddings.parquet``.

On a cluster: ``spark-submit spark_jobs/embed_features.py --raw DIR --out DIR --encoder DIR [--features DIR]
[--encoder-version V] [--profile P]``; locally ``larr embed`` runs the same :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, LongType, StructField, StructType

from larr.config import LarrConfig
from larr.llm.encoder import encoder_version
from larr.spec import Spec
from larr.text import text_hash
from spark_jobs.common import JobRun, as_date, job_main, job_parser, read_window
from spark_jobs.features import Raw, item_texts, joined_text, load_raw, user_texts

NAME = "embed_features"
log = logging.getLogger("larr.spark")
EMB_SCHEMA = StructType([StructField("text_hash", LongType()), StructField("embedding", ArrayType(FloatType()))])
_LOADED: dict[str, Any] = {}


class EmbeddingError(ValueError):
    """Embeddings that must not be materialized (wrong version or dimension, non-finite values)."""


def _worker_setup(threads: int) -> None:
    """Thread settings of a Python worker before its first encode, so that W workers on W cores do not
    oversubscribe them: ``threads`` torch intra-op threads (0: torch's default, all cores -- one worker), one
    inter-op thread, and HF tokenizers' own Rayon pool off (by default every worker starts one thread per core)."""
    import torch

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # already set, or inter-op work already ran in this process
            torch.set_num_interop_threads(1)


def _encoder(path: str, threads: int):
    """The encoder, loaded once per Python worker process (Python workers are reused across tasks)."""
    if path not in _LOADED:
        _worker_setup(threads)
        from larr.llm.encoder import TextEncoder

        _LOADED[path] = TextEncoder.load(path)
    return _LOADED[path]


def _threads() -> str:
    import torch

    return f"{torch.get_num_threads()}/{torch.get_num_interop_threads()}"


def _embed_fn(path: str, batch_size: int, threads: int):
    def embed(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        enc = _encoder(path, threads)
        for df in batches:
            t0, c0 = time.perf_counter(), time.process_time()
            vectors = enc.encode(df["text"].tolist(), batch_size)
            wall, cpu = max(time.perf_counter() - t0, 1e-9), max(time.process_time() - c0, 1e-9)
            print(f"[embed] worker embedded {len(df)} texts at {len(df) / wall:,.0f} texts/s "
                  f"({len(df) / cpu:,.0f} per CPU-second, torch threads {_threads()})", file=sys.stderr, flush=True)
            yield pd.DataFrame({"text_hash": df["text_hash"].to_numpy(), "embedding": list(vectors)})
    return embed


def worker_threads(spark: SparkSession, workers: int) -> int:
    """Torch threads per Python worker: the cores Spark gives each task (``spark.task.cpus``, default 1) when
    several workers share the machine; 0 (torch's default) for a single worker."""
    return int(spark.conf.get("spark.task.cpus", "1") or 1) if workers > 1 else 0


def embed_texts(texts: DataFrame, encoder: Path | str, batch_size: int, workers: int | None = None,
                n: int | None = None) -> DataFrame:
    """``texts`` (``text_hash``, ``text``) embedded with the encoder artefact at ``encoder``: a lazy
    DataFrame[text_hash, embedding].  The one Spark embedding path: :func:`run` writes it to the staging folder,
    ``benchmarks/embedding.py`` times it.

    ``workers`` (default: the session's parallelism) Python workers, one task each (at least 64 texts a task),
    each loading the model once and running :func:`worker_threads` torch threads with :func:`_worker_setup`.
    One task per worker on purpose: 8 tasks range-partitioned by length on 2 workers cost more (one run of
    ``benchmarks/embedding.py``'s Spark side on small: 10.1 worker + 2.9 JVM CPU-seconds against 7.5 + 1.3), and
    a worker's encode sorts its whole partition by length (one Arrow batch while a partition holds at most
    ``spark.sql.execution.arrow.maxRecordsPerBatch`` texts)."""
    spark = texts.sparkSession
    workers = workers or spark.sparkContext.defaultParallelism
    n = texts.count() if n is None else n
    return texts.repartition(max(1, min(workers, n // 64 + 1))).mapInPandas(
        _embed_fn(str(Path(encoder).resolve()), batch_size, worker_threads(spark, workers)), EMB_SCHEMA)


def _hash_col(col: str) -> F.Column:
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(LongType())
    def h(texts: pd.Series) -> pd.Series:
        return texts.map(text_hash).astype("int64")

    return h(F.col(col))


def _texts(spark: SparkSession, spec: Spec, data: Raw, vocab_dir: Path, end: str) -> dict[str, DataFrame]:
    parts = sorted(vocab_dir.glob("ds=*"))
    if not parts:
        raise FileNotFoundError(f"{vocab_dir} has no ds= partition: run `larr spark scene_vocab` first")
    vocab = spark.read.parquet(str(parts[-1])).select(F.col("key").alias("scene_key"), "field", "text")
    backlog = sorted((vocab_dir.parent / "backlog").glob("*.jsonl"))
    if backlog:  # values the streaming consumer met without a vector (larr/realtime/state.py)
        seen = spark.read.json([str(b) for b in backlog]).select(F.col("key").cast("long").alias("scene_key"),
                                                                  "field", "text")
        vocab = vocab.unionByName(seen).dropDuplicates(["scene_key"])
    after_end = as_date(end) + timedelta(days=1)
    ikey, ukey = spec.item_key, spec.user_key
    items = (item_texts(data, after_end, spec.expand(spec.embed.item))
             .select(ikey, joined_text(spec, spec.embed.item).alias("text"))
             .join(data.items.select(ikey, *spec.embed.item_columns), ikey))
    users = (user_texts(data, after_end, spec.expand(spec.embed.user))
             .select(ukey, joined_text(spec, spec.embed.user).alias("text")))
    return {"scene_value_embeddings": vocab, f"{spec.item_name}_embeddings": items,
            f"{spec.user_name}_embeddings": users}


def embedding_stamps(spec: Spec, window: dict[str, Any]) -> dict[str, datetime]:
    """The event time of each embedding table's rows: when the row's inputs were complete.

    * user and item rows embed texts built from history rows through the window's last day (``_texts``: rows
      strictly before ``end + 1 day``), so they are stamped at the end of that day: a point-in-time join at any
      earlier time (a training, validation or test impression) finds no row rather than one made from its own
      future; the online store, materialised up to the present, serves them.
    * scene-value rows are a function of their text alone (and the encoder version, a column of the row); a key
      is looked up only by a request that already holds the text, whose own inputs were complete at that
      request's time, so they are valid from the start of the window."""
    complete = datetime.fromisoformat(window["end"]) + timedelta(days=1)
    return {"scene_value_embeddings": datetime.fromisoformat(window["start"]),
            f"{spec.item_name}_embeddings": complete, f"{spec.user_name}_embeddings": complete}


def _embed_and_write(spark: SparkSession, cfg: LarrConfig, job: JobRun, data: Raw, tables: dict[str, DataFrame],
                     out: Path, features: Path, encoder: Path, version: str, dim: int,
                     stamps: dict[str, datetime]) -> tuple[int, int, float, dict[str, int]]:
    """Embed the distinct texts of ``tables`` not yet in the cache, then write each table with its vectors.
    Returns (distinct texts, texts embedded now, embedding seconds, rows written per table)."""
    t0 = time.perf_counter()
    all_texts = None
    for t in tables.values():
        part = t.select("text_hash", "text")
        all_texts = part if all_texts is None else all_texts.unionByName(part)
    distinct = data.persist(all_texts.dropDuplicates(["text_hash"]))
    n_distinct = distinct.count()
    cache_root = out / "embed_cache"
    cache_dir = cache_root / f"encoder_version={version}"
    cached = spark.read.parquet(str(cache_dir)) if list(cache_dir.glob("*.parquet")) else None
    todo = distinct.join(cached.select("text_hash"), "text_hash", "left_anti") if cached is not None else distinct
    todo = data.persist(todo)
    n_todo = todo.count()
    job.lap("plan", t0)
    log.info("embed: %d distinct texts, %d already embedded for encoder %s, %d to embed", n_distinct,
             n_distinct - n_todo, version, n_todo)
    t0 = time.perf_counter()
    if n_todo == 0:
        log.info("embed: nothing new to embed (0 texts)")
    else:
        staging = cache_root / f"_staging_{version}"
        shutil.rmtree(staging, ignore_errors=True)
        new = embed_texts(todo, encoder, cfg.llm.encode_batch_size, n=n_todo)
        new.write.mode("overwrite").parquet(str(staging))
        staged = spark.read.parquet(str(staging))
        bad = staged.where(F.size("embedding") != dim).limit(3).collect()
        if bad:
            raise EmbeddingError(f"dimension mismatch: {len(bad)}+ new vectors are not {dim}-d "
                                 f"(text_hash {[r['text_hash'] for r in bad]}); nothing materialized")
        nonfinite = staged.where(F.exists("embedding", lambda x: F.isnan(x) | x.isNull() | (F.abs(x) == float("inf"))))
        n_bad = nonfinite.count()
        if n_bad:
            examples = [r["text_hash"] for r in nonfinite.limit(3).collect()]
            shutil.rmtree(staging, ignore_errors=True)
            raise EmbeddingError(f"{n_bad} new vectors hold NaN or infinite values (text_hash {examples}); "
                                 "nothing materialized: check the encoder artefact")
        cache_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d%H%M%S%f")
        for i, f in enumerate(sorted(staging.glob("*.parquet"))):
            f.rename(cache_dir / f"part-{stamp}-{i:05d}.parquet")
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.perf_counter() - t0
    job.lap("embed", t0)

    t0 = time.perf_counter()
    # read by each of the tables' joins: deduplicated once
    vectors = data.persist(spark.read.parquet(str(cache_dir)).dropDuplicates(["text_hash"]))
    written = {}
    for name, table in tables.items():
        df = (table.join(vectors, "text_hash", "left")
              .withColumn("encoder_version", F.lit(version))
              .withColumn("event_timestamp", F.lit(stamps[name]).cast("timestamp"))
              .drop("text"))
        written[name] = write_feature_table(df, features / f"{name}.parquet",
                                            features / f".{name}.staging", version)
    job.lap("write_features", t0)
    return n_distinct, n_todo, seconds, written


def write_feature_table(df: DataFrame, dest: Path, staging: Path, version: str) -> int:
    """Write ``df`` (a table and its ``embedding`` column) as the one parquet file ``dest``, replaced atomically
    (readers never see half a table), without collecting it: Spark writes the rows to ``staging`` and the driver
    streams those files, batch by batch, into ``dest``; the driver holds one batch, whatever the table's size.

    The file is the one ``df.toPandas().to_parquet()`` wrote before (same columns, types -- ``embedding`` as a
    list of doubles -- and pandas metadata): its schema is what pandas makes of one collected row, adjusted as
    the whole frame's nulls would have adjusted it (an integer column with a null is float64).  Rows without a
    vector raise :class:`EmbeddingError` and leave ``dest`` as it was.  Returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = dest.name.removesuffix(".parquet")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp"
    head = df.limit(1).toPandas()
    if head.empty:  # nothing to stream: the frame as it always was
        head.to_parquet(tmp, index=False)
        tmp.replace(dest)
        return 0
    # the columns that hold one value in every row are added here, not written and read back by Spark
    const = {c: head[c].iloc[0] for c in ("encoder_version", "event_timestamp")}
    rest = df.drop(*const)
    fields = rest.schema.fields
    seen = Observation(f"{name}_nulls")
    rest = rest.observe(seen, F.count(F.lit(1)).alias("_rows"),
                        *[F.count(F.when(F.col(f.name).isNull(), 1)).alias(f"_null{i}") for i, f in enumerate(fields)])
    shutil.rmtree(staging, ignore_errors=True)
    try:
        rest.write.mode("overwrite").parquet(str(staging))
        counts = seen.get
        nulls = {f.name: counts[f"_null{i}"] for i, f in enumerate(fields)}
        if nulls["embedding"]:
            raise EmbeddingError(f"{name}: {nulls['embedding']} rows have no vector in the cache of encoder {version}")
        for f in fields:
            if not nulls[f.name]:
                continue
            if head[f.name].isna().iloc[0] and nulls[f.name] < counts["_rows"]:  # a value to infer the type from
                head[f.name] = df.where(F.col(f.name).isNotNull()).select(f.name).limit(1).toPandas()[f.name]
            if f.dataType.typeName() in ("long", "integer", "short", "byte"):
                head[f.name] = head[f.name].astype("float64")
            elif f.dataType.typeName() == "boolean":
                head[f.name] = head[f.name].astype(object)
        head["embedding"] = head["embedding"].map(lambda v: [float(x) for x in v])
        schema = pa.Schema.from_pandas(head, preserve_index=False)
        rows = 0
        with pq.ParquetWriter(tmp, schema, compression="snappy") as writer:
            for part in sorted(staging.glob("part-*.parquet")):  # Spark's partition order: the rows' order
                for batch in pq.ParquetFile(part).iter_batches(batch_size=65536):
                    n = batch.num_rows
                    cols = [pa.array([const[f.name]] * n, f.type) if f.name in const
                            else pa.nulls(n) if f.type == pa.null() else batch.column(f.name).cast(f.type)
                            for f in schema]
                    writer.write_table(pa.Table.from_arrays(cols, schema=schema))
                    rows += n
        tmp.replace(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        tmp.unlink(missing_ok=True)
    return rows


def run(spark: SparkSession, cfg: LarrConfig, raw: Path, out: Path, ds: str | None = None, validate: bool = True,
        encoder: Path | None = None, features: Path | None = None, expect_version: str | None = None
        ) -> dict[str, Any]:
    """Embed every new distinct text with the frozen encoder and write the Feast offline embedding tables."""
    job = JobRun(NAME, raw, out, cfg, ds or "")
    spec = job.spec
    window = read_window(raw, spec)
    ds = job.ds = ds or window["end"]
    encoder = Path(encoder or out / "llm" / "encoder")
    features = Path(features or out / "features")
    if not (encoder / "encoder.json").exists():
        raise FileNotFoundError(f"no encoder artefact at {encoder}: run `larr train contrastive` first")
    version = encoder_version(encoder)
    if expect_version and expect_version != version:
        raise EmbeddingError(f"unknown encoder version {expect_version!r}: the artefact at {encoder} is version "
                             f"{version!r}; pass --encoder-version {version} or point --encoder at the right one")
    dim = json.loads((encoder / "encoder.json").read_text())["dim"]
    if dim != cfg.features.embedding_dim:
        raise EmbeddingError(f"dimension mismatch: encoder {version} gives {dim}-d vectors but the feature views "
                             f"expect features.embedding_dim = {cfg.features.embedding_dim}")
    job.gate(validate, (spec.user.table, spec.item.table, spec.history.table or spec.log.table))

    stamps = embedding_stamps(spec, window)
    data = load_raw(spark, raw, spec)
    try:
        tables = {k: data.persist(v.withColumn("text_hash", _hash_col("text"))) for k, v in
                  _texts(spark, spec, data, out / "scene_vocab", window["end"]).items()}
        n_distinct, n_todo, seconds, written = _embed_and_write(spark, cfg, job, data, tables, out, features,
                                                                encoder, version, dim, stamps)
    finally:
        data.release()
    job.rows_out = written
    job.extra.update({"encoder": str(encoder), "encoder_version": version, "distinct_texts": n_distinct,
                      "embedded_now": n_todo, "from_cache": n_distinct - n_todo,
                      "texts_per_second": round(n_todo / seconds, 1) if n_todo else None,
                      "features_dir": str(features),
                      "event_timestamps": {k: v.isoformat() for k, v in stamps.items()}})
    return job.finish()


def build_parser() -> argparse.ArgumentParser:
    """The common job arguments (:func:`add_job_args`, config ones included) plus the encoder this job needs."""
    p = job_parser(NAME, run)
    p.add_argument("--encoder", required=True, help="encoder artefact folder (`larr train contrastive` writes it)")
    p.add_argument("--features", help="Feast offline data folder to write (default OUT/features)")
    p.add_argument("--encoder-version", help="refuse to run unless the encoder artefact has this version")
    return p


def main(argv: list[str] | None = None) -> int:
    """``spark-submit spark_jobs/embed_features.py``, so the embedding step runs on a cluster like every other
    job: an argument or config mistake is one line and exit 2 (the shared boundary), a failure on the input
    (missing encoder or vocabulary, version or dimension mismatch, bad input) one line and exit 1."""

    def call(spark: SparkSession, cfg: LarrConfig, args: argparse.Namespace) -> dict[str, Any]:
        return run(spark, cfg, Path(args.raw), Path(args.out), ds=args.ds.isoformat() if args.ds else None,
                   validate=not args.no_validate, encoder=Path(args.encoder),
                   features=Path(args.features) if args.features else None, expect_version=args.encoder_version)

    return job_main(NAME, run, argv, parser=build_parser(), call=call,
                    keys=("job", "ds", "rows_in", "rows_out", "embedded_now", "from_cache", "encoder_version",
                          "seconds"))


if __name__ == "__main__":
    sys.exit(main())
