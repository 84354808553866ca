"""Scene vocabulary (paper 3.2 end, 3.3): the distinct value texts of every embedded feature.

For each field in the spec's ``vocab`` -- scene fields (food world: region,
district, time slot, day type, weather, temperature band, out-of-area), user and
item description fields, and user history fields per (user, day) --
the job renders each distinct value once and keys it by
hash(field name, rendered text).  Embedding these texts separately is what
makes LLM cost linear in the vocabulary instead of exponential in the
combinations; the manifest reports both numbers.

Output: ``OUT/scene_vocab/ds=YYYY-MM-DD/*.parquet`` with field, entity, key, text
(ds defaults to the last day of the window).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from larr.config import LarrConfig
from larr.text import registry
from spark_jobs.common import JobRun, as_date, job_main, read_window, write_partitioned
from spark_jobs.features import attach_keys, field_tables, load_raw

NAME = "scene_vocab"


def run(spark: SparkSession, cfg: LarrConfig, raw: Path, out: Path, ds: str | None = None,
        validate: bool = True) -> dict[str, Any]:
    """Build the vocabulary of distinct feature texts with their stable keys."""
    job = JobRun(NAME, raw, out, cfg, ds or "")
    spec = job.spec
    reg = registry(spec)
    window = read_window(raw, spec)
    ds = job.ds = ds or window["end"]
    job.gate(validate, tuple(spec.tables))
    data = load_raw(spark, raw, spec)
    try:
        t0 = time.perf_counter()
        fields = spec.vocab
        tables = field_tables(data, fields, as_date(window["cutoff"]))
        parts = [tables[f].select(F.lit(f).alias("field"), F.lit(reg.field(f).entity).alias("entity"), "key",
                                  "text") for f in fields]
        vocab = parts[0]
        for p in parts[1:]:
            vocab = vocab.unionByName(p)
        vocab = vocab.dropDuplicates(["field", "key"]).withColumn("ds", F.lit(ds))
        write_partitioned(vocab, out / NAME, "ds")
        job.lap("build_and_write", t0)

        t0 = time.perf_counter()
        written = spark.read.parquet(str(out / NAME)).where(F.col("ds") == ds).cache()
        per_field = {r["field"]: r["count"] for r in written.groupBy("field").count().collect()}
        collisions = written.groupBy("key").agg(F.countDistinct("field", "text").alias("n")).where("n > 1").count()
        scene = spec.scene
        # the field tables are cached: the keys are rendered once, for the vocabulary and this report
        keyed = attach_keys(data.log, tables, spec, scene)
        scene_only = [f for f in scene if spec.fields[f].entity == "scene"]
        # both counts of distinct combinations in one pass over the log (structs: a null key is a value too)
        counts = keyed.agg(F.countDistinct("scene_keys").alias("full"),
                           F.countDistinct(F.struct(*[f"key_{f}" for f in scene_only])).alias("scene")).first()
        combos, scene_combos = counts["full"], counts["scene"]
        job.lap("report", t0)
        written.unpersist()
    finally:
        data.release()
    job.rows_out = {"texts": sum(per_field.values())}
    job.extra.update({
        "distinct_texts_per_field": dict(sorted(per_field.items())),
        "key_collisions": collisions,
        "scene_fields": scene,
        "distinct_texts_of_scene_fields": sum(per_field[f] for f in scene),
        "distinct_full_scene_combinations_observed": combos,
        "possible_full_scene_combinations": math.prod(per_field[f] for f in scene),
        "distinct_scene_only_combinations_observed": scene_combos,
    })
    if collisions:
        raise ValueError(f"scene_vocab: {collisions} keys map to more than one (field, text); the key hash is broken")
    return job.finish()


def main(argv: list[str] | None = None) -> int:
    return job_main(NAME, run, argv)


if __name__ == "__main__":
    sys.exit(main())
