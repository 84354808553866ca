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

from pyspark.sql import DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F

from larr.config import LarrConfig
from larr.ctr.columns import ctr_columns
from larr.spec import Spec
from spark_jobs.common import JobRun, as_date, job_main, read_window, write_partitioned
from spark_jobs.features import attach_keys, field_tables, join_columns, load_raw

NAME = "ctr_samples"


def daily_counts(imp: DataFrame, keys: list[str], labels: dict[str, str]) -> DataFrame:
    """Per (keys, date): impressions (``imps``) and each label's positives (``labels``: count name -> label
    column)."""
    return imp.groupBy(*keys, "date").agg(F.count("*").alias("imps"),
                                          *[F.sum(col).alias(name) for name, col in labels.items()])


def prior_of_daily(daily: DataFrame, keys: list[str], prefix: str, labels: dict[str, str]) -> DataFrame:
    """Per (keys, date) of :func:`daily_counts`: its counts summed over all days strictly before ``date``."""
    w = Window.partitionBy(*keys).orderBy("date").rowsBetween(Window.unboundedPreceding, -1)
    out = daily
    for c in ("imps", *labels):
        out = out.withColumn(f"{prefix}_{c}", F.coalesce(F.sum(c).over(w), F.lit(0)).cast("long"))
    return out.drop("imps", *labels)


def prior_stats(imp: DataFrame, keys: list[str], prefix: str, labels: dict[str, str]) -> DataFrame:
    """Per (keys, date): impressions and each label's positives summed over all days strictly before
    ``date`` (``labels``: count name -> label column)."""
    return prior_of_daily(daily_counts(imp, keys, labels), keys, prefix, labels)


def prior_stats_of_rows(imp: DataFrame, keys: list[str], prefix: str, labels: dict[str, str],
                        day: str = "_day") -> DataFrame:
    """:func:`prior_stats` as columns of every row of ``imp``, without a join: a window over the rows of the
    same ``keys`` whose day is strictly before the row's day (a range frame over ``day``, the row's day number:
    one column, so that every statistic of ``keys`` is one window operator over one sort)."""
    w = Window.partitionBy(*keys).orderBy(day).rangeBetween(Window.unboundedPreceding, -1)
    out = imp.withColumn(f"{prefix}_imps", F.coalesce(F.count(F.lit(1)).over(w), F.lit(0)).cast("long"))
    for name, col in labels.items():
        out = out.withColumn(f"{prefix}_{name}", F.coalesce(F.sum(col).over(w), F.lit(0)).cast("long"))
    return out


def _using(left: list[str], right: list[str], keys: list[str]) -> list[str]:
    """Columns of ``left.join(right, keys)``: the keys, then the rest of left, then the rest of right."""
    return keys + [c for c in left if c not in keys] + [c for c in right if c not in keys]


def output_columns(spec: Spec, log_columns: list[str], item_cols: list[str], have: list[str]) -> list[str]:
    """The column order of the samples files: the order of the joins that first built them (statistics of the
    user, the item, the pair, the day, then the item columns and one join per scene field), so that the files
    keep their schema whatever plan computes them.  ``have``: the columns to order."""
    ukey, ikey = spec.user_key, spec.item_key
    labels = ["clicks"] + (["orders"] if spec.labels.conversion else [])
    stats = {p: [f"{p}_{c}" for c in ("imps", *labels)] for p in ("u", "p", "up")}
    cols = _using(log_columns, [ukey, "date", *stats["u"]], [ukey, "date"])
    cols = _using(cols, [ikey, "date", *stats["p"]], [ikey, "date"])
    cols = _using(cols, [ukey, ikey, "date", *stats["up"]], [ukey, ikey, "date"])
    cols = _using(cols, ["date"], ["date"])
    cols = _using(cols, [ikey, *item_cols], [ikey])
    cols += ["u_ctr", "p_ctr"] + (["p_cvr"] if spec.labels.conversion else []) + ["up_ctr"]
    cols += [ctr_columns(spec).item_age] if spec.item.created else []
    for f in spec.scene:
        on = join_columns(spec, f)
        cols = _using(cols, [*on, f"key_{f}"], on)
    cols += ["scene_keys", "split"]
    return [c for c in cols if c in have] + [c for c in have if c not in cols]


def run(spark: SparkSession, cfg: LarrConfig, raw: Path, out: Path, ds: str | None = None,
        validate: bool = True) -> dict[str, Any]:
    """Build CTR samples with leakage-free statistics and scene keys, split by day.

    Plan: the log is shuffled once, by user.  The user and user x item statistics are windows over that
    clustering and the user's scene keys join on the user key alone, so none of them moves the log again; the
    global, per-item and per-item-day inputs (statistics of days, item columns, item and scene keys) are small
    and broadcast -- a hot item never makes a skewed partition.  The samples are written in one pass (the rows
    rejected for a missing key are counted on the way, by an observation), not cached."""
    job = JobRun(NAME, raw, out, cfg, ds or "all")
    spec = job.spec
    cols = ctr_columns(spec)
    window = read_window(raw, spec)
    job.gate(validate, (spec.log.table,))
    data = load_raw(spark, raw, spec)
    try:
        t0 = time.perf_counter()
        imp = data.log
        if ds:
            imp = imp.where(F.col("date") <= F.lit(as_date(ds)))  # history of the day, never the future
        labels = {"clicks": spec.labels.click}
        if spec.labels.conversion:
            labels["orders"] = spec.labels.conversion
        ukey, ikey = spec.user_key, spec.item_key
        k = cfg.features.stats_prior
        # the day totals are the item-day counts summed: one aggregation of the log serves both (checkpointed:
        # items x days rows, read twice by the one query below)
        item_daily = daily_counts(imp, [ikey], labels).localCheckpoint()
        day_totals = item_daily.groupBy("date").agg(*[F.sum(c).alias(c) for c in ("imps", *labels)])
        g = prior_of_daily(day_totals.withColumn("_all", F.lit(1)), ["_all"], "g", labels).drop("_all")
        g = g.withColumn("g_ctr", (F.col("g_clicks") + 1.0) / (F.col("g_imps") + 20.0))
        if "orders" in labels:
            g = g.withColumn("g_cvr", (F.col("g_orders") + 1.0) / (F.col("g_clicks") + 5.0))
        g = g.select("date", *[c for c in ("g_ctr", "g_cvr") if c in g.columns])
        item_cols = list(dict.fromkeys(([spec.item.created] if spec.item.created else []) + spec.ctr.item_columns))
        item_days = prior_of_daily(item_daily, [ikey], "p", labels).join(data.items.select(ikey, *item_cols), ikey)
        # u then u x item: the second window's clustering (user, item) is met by the first one's (user)
        rows = imp.withColumn("_day", F.unix_date("date"))
        rows = prior_stats_of_rows(prior_stats_of_rows(rows, [ukey], "u", labels), [ukey, ikey], "up", labels)
        rows = rows.drop("_day")
        # the rows an inner join with the per-key statistics kept (a null key or day matches nothing)
        rows = rows.where(F.col(ukey).isNotNull() & F.col(ikey).isNotNull() & F.col("date").isNotNull())
        samples = rows.join(F.broadcast(item_days), [ikey, "date"]).join(F.broadcast(g), "date")
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
        tables = field_tables(data, fields, as_date(window["cutoff"]), persist=False)  # one query reads them
        keyed = attach_keys(samples, tables, spec, fields)
        missing = F.exists("scene_keys", lambda x: x.isNull())
        test_days = [as_date(d) for d in window["test_days"]]
        valid_days = [as_date(d) for d in window["valid_days"]]
        split = (F.when(F.col("date").isin(test_days), "test")
                 .when(F.col("date").isin(valid_days), "valid").otherwise("train"))
        seen = Observation("ctr_samples")
        keyed = (keyed.withColumn("_missing", missing).withColumn("split", split)
                 .observe(seen, F.count(F.when(F.col("_missing"), 1)).alias("missing")))
        # lookups and derived columns that only served the keys are not CTR features: not written
        final = keyed.where(~F.col("_missing")).drop("_missing", *unused, *[f"key_{f}" for f in fields])
        write_partitioned(final.select(*output_columns(spec, data.log.columns, item_cols, final.columns)),
                          out / NAME, "date")
        n_missing = int(seen.get["missing"])
        job.lap("build_and_write", t0)
        written = spark.read.parquet(str(out / NAME))
        if ds:
            written = written.where(F.col("date") == F.lit(as_date(ds)))
        by_split = {r["split"]: r["count"] for r in written.groupBy("split").count().collect()}
    finally:
        data.release()
    job.rows_out = {"samples": sum(by_split.values())}
    job.rejected = {"missing_feature_key": n_missing}
    job.extra.update({"by_split": by_split, "scene_fields": fields, "window": window})
    return job.finish()


def main(argv: list[str] | None = None) -> int:
    return job_main(NAME, run, argv)


if __name__ == "__main__":
    sys.exit(main())
