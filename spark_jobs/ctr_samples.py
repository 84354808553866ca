"""CTR samples: impressions + leakage-free statistics + the N feature-value keys + labels.

Statistics of the user, the POI and the user x POI pair (impressions, clicks,
orders, smoothed CTR/CVR) are computed **only from days strictly before the
impression's day**: daily aggregates summed over a window that ends the day
before.  Each sample carries ``scene_keys`` = the keys of the N fields in
``features.scene_fields`` (paper: N = 10), which look up LLM vectors, and the
split (train / valid / test) by day.

``--ds D`` rebuilds only the partition of day D (history is still read from
the days before it); by default every day is (re)built.  Output:
``OUT/ctr_samples/date=YYYY-MM-DD/*.parquet``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from larr.config import LarrConfig
from spark_jobs.common import JobRun, as_date, job_main, read_window, write_partitioned
from spark_jobs.features import attach_keys, field_tables, load_raw, with_scene_columns

NAME = "ctr_samples"
STAT_COUNTS = ("imps", "clicks", "orders")


def prior_stats(imp: DataFrame, keys: list[str], prefix: str) -> DataFrame:
    """Per (keys, date): impressions, clicks and orders summed over all days strictly before ``date``."""
    daily = imp.groupBy(*keys, "date").agg(F.count("*").alias("imps"), F.sum("click").alias("clicks"),
                                           F.sum("order").alias("orders"))
    w = Window.partitionBy(*keys).orderBy("date").rowsBetween(Window.unboundedPreceding, -1)
    out = daily
    for c in STAT_COUNTS:
        out = out.withColumn(f"{prefix}_{c}", F.coalesce(F.sum(c).over(w), F.lit(0)).cast("long"))
    return out.drop(*STAT_COUNTS)


def run(spark: SparkSession, cfg: LarrConfig, raw: Path, out: Path, ds: str | None = None,
        validate: bool = True) -> dict[str, Any]:
    """Build CTR samples with leakage-free statistics and scene keys, split by day."""
    window = read_window(raw)
    job = JobRun(NAME, raw, out, cfg, ds or "all")
    job.gate(validate, ("impressions",))
    data = load_raw(spark, raw)
    t0 = time.perf_counter()
    imp = data.impressions
    if ds:
        imp = imp.where(F.col("date") <= F.lit(as_date(ds)))  # history of the day, never the future
    k = cfg.features.stats_prior
    g = prior_stats(imp.withColumn("_all", F.lit(1)), ["_all"], "g").drop("_all")
    g = (g.withColumn("g_ctr", (F.col("g_clicks") + 1.0) / (F.col("g_imps") + 20.0))
         .withColumn("g_cvr", (F.col("g_orders") + 1.0) / (F.col("g_clicks") + 5.0)).select("date", "g_ctr", "g_cvr"))
    samples = (with_scene_columns(imp)
               .join(prior_stats(imp, ["user_id"], "u"), ["user_id", "date"])
               .join(prior_stats(imp, ["poi_id"], "p"), ["poi_id", "date"])
               .join(prior_stats(imp, ["user_id", "poi_id"], "up"), ["user_id", "poi_id", "date"])
               .join(F.broadcast(g), "date")
               .join(data.pois.select("poi_id", "created_date", "price_level"), "poi_id"))
    samples = (samples
               .withColumn("u_ctr", (F.col("u_clicks") + k * F.col("g_ctr")) / (F.col("u_imps") + k))
               .withColumn("p_ctr", (F.col("p_clicks") + k * F.col("g_ctr")) / (F.col("p_imps") + k))
               .withColumn("p_cvr", (F.col("p_orders") + k * F.col("g_cvr")) / (F.col("p_clicks") + k))
               .withColumn("up_ctr", (F.col("up_clicks") + k * F.col("g_ctr")) / (F.col("up_imps") + k))
               .withColumn("poi_age_days", F.datediff("date", "created_date"))
               .drop("g_ctr", "g_cvr", "created_date"))
    if ds:
        samples = samples.where(F.col("date") == F.lit(as_date(ds)))
    fields = cfg.features.scene_fields
    tables = field_tables(data, cfg, fields, as_date(window["valid"]))
    keyed = attach_keys(samples, tables, fields)
    missing = F.exists("scene_keys", lambda x: x.isNull())
    split = (F.when(F.col("date") == F.lit(as_date(window["test"])), "test")
             .when(F.col("date") == F.lit(as_date(window["valid"])), "valid").otherwise("train"))
    keyed = keyed.withColumn("_missing", missing).withColumn("split", split).cache()
    n_missing = keyed.where("_missing").count()
    final = keyed.where(~F.col("_missing")).drop("_missing", *[f"key_{f}" for f in fields])
    write_partitioned(final, out / NAME, "date")
    job.lap("build_and_write", t0)
    written = spark.read.parquet(str(out / NAME))
    if ds:
        written = written.where(F.col("date") == F.lit(as_date(ds)))
    by_split = {r["split"]: r["count"] for r in written.groupBy("split").count().collect()}
    job.rows_out = {"samples": sum(by_split.values())}
    job.rejected = {"missing_feature_key": n_missing}
    job.extra.update({"by_split": by_split, "scene_fields": fields, "window": window})
    keyed.unpersist()
    return job.finish()


def main(argv: list[str] | None = None) -> int:
    return job_main(NAME, run, argv)


if __name__ == "__main__":
    sys.exit(main())
