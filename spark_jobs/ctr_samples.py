"""CTR samples: impressions + leakage-free statistics + the N feature-value keys + labels.

Statistics of the user, the item and the user x item pair (impressions, clicks,
conversions when the spec has them, smoothed CTR/CVR) are computed **only from days strictly before the
impression's day**: daily aggregates summed over a window that ends the day
before.  Each sample carries ``scene_keys`` = the keys of the N fields in
the spec's ``scene`` fields (paper: N = 10), which look up LLM vectors, and the
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
from larr.ctr.columns import ctr_columns
from spark_jobs.common import JobRun, as_date, job_main, read_window, write_partitioned
from spark_jobs.features import attach_keys, field_tables, load_raw

NAME = "ctr_samples"


def prior_stats(imp: DataFrame, keys: list[str], prefix: str, labels: dict[str, str]) -> DataFrame:
    """Per (keys, date): impressions and each label's positives summed over all days strictly before
    ``date`` (``labels``: count name -> label column)."""
    daily = imp.groupBy(*keys, "date").agg(F.count("*").alias("imps"),
                                           *[F.sum(col).alias(name) for name, col in labels.items()])
    w = Window.partitionBy(*keys).orderBy("date").rowsBetween(Window.unboundedPreceding, -1)
    out = daily
    for c in ("imps", *labels):
        out = out.withColumn(f"{prefix}_{c}", F.coalesce(F.sum(c).over(w), F.lit(0)).cast("long"))
    return out.drop("imps", *labels)


def run(spark: SparkSession, cfg: LarrConfig, raw: Path, out: Path, ds: str | None = None,
        validate: bool = True) -> dict[str, Any]:
    """Build CTR samples with leakage-free statistics and scene keys, split by day."""
    job = JobRun(NAME, raw, out, cfg, ds or "all")
    spec = job.spec
    cols = ctr_columns(spec)
    window = read_window(raw, spec)
    job.gate(validate, (spec.log.table,))
    data = load_raw(spark, raw, spec)
    t0 = time.perf_counter()
    imp = data.log
    if ds:
        imp = imp.where(F.col("date") <= F.lit(as_date(ds)))  # history of the day, never the future
    labels = {"clicks": spec.labels.click}
    if spec.labels.conversion:
        labels["orders"] = spec.labels.conversion
    ukey, ikey = spec.user_key, spec.item_key
    k = cfg.features.stats_prior
    g = prior_stats(imp.withColumn("_all", F.lit(1)), ["_all"], "g", labels).drop("_all")
    g = g.withColumn("g_ctr", (F.col("g_clicks") + 1.0) / (F.col("g_imps") + 20.0))
    if "orders" in labels:
        g = g.withColumn("g_cvr", (F.col("g_orders") + 1.0) / (F.col("g_clicks") + 5.0))
    g = g.select("date", *[c for c in ("g_ctr", "g_cvr") if c in g.columns])
    item_cols = list(dict.fromkeys(([spec.item.created] if spec.item.created else []) + spec.ctr.item_columns))
    samples = (imp
               .join(prior_stats(imp, [ukey], "u", labels), [ukey, "date"])
               .join(prior_stats(imp, [ikey], "p", labels), [ikey, "date"])
               .join(prior_stats(imp, [ukey, ikey], "up", labels), [ukey, ikey, "date"])
               .join(F.broadcast(g), "date")
               .join(data.items.select(ikey, *item_cols), ikey))
    samples = (samples
               .withColumn("u_ctr", (F.col("u_clicks") + k * F.col("g_ctr")) / (F.col("u_imps") + k))
               .withColumn("p_ctr", (F.col("p_clicks") + k * F.col("g_ctr")) / (F.col("p_imps") + k)))
    if "orders" in labels:
        samples = samples.withColumn("p_cvr", (F.col("p_orders") + k * F.col("g_cvr")) / (F.col("p_clicks") + k))
    samples = samples.withColumn("up_ctr", (F.col("up_clicks") + k * F.col("g_ctr")) / (F.col("up_imps") + k))
    if spec.item.created:
        samples = samples.withColumn(cols.item_age, F.datediff("date", spec.item.created)).drop(spec.item.created)
    unused = [c for c in (*spec.tables[spec.log.table].lookups, *spec.tables[spec.log.table].derived)
              if c not in cols.categorical + cols.numeric]
    samples = samples.drop("g_ctr", "g_cvr")
    if ds:
        samples = samples.where(F.col("date") == F.lit(as_date(ds)))
    fields = spec.scene
    tables = field_tables(data, fields, as_date(window["cutoff"]))
    keyed = attach_keys(samples, tables, spec, fields)
    missing = F.exists("scene_keys", lambda x: x.isNull())
    test_days = [as_date(d) for d in window["test_days"]]
    valid_days = [as_date(d) for d in window["valid_days"]]
    split = (F.when(F.col("date").isin(test_days), "test")
             .when(F.col("date").isin(valid_days), "valid").otherwise("train"))
    keyed = keyed.withColumn("_missing", missing).withColumn("split", split).cache()
    n_missing = keyed.where("_missing").count()
    # lookups and derived columns that only served the keys are not CTR features: not written
    final = keyed.where(~F.col("_missing")).drop("_missing", *unused, *[f"key_{f}" for f in fields])
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
