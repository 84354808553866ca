"""Contrastive pairs (paper 3.2): user-user, POI-POI and user-POI positives.

* user_user: a user's profile text vs the same user's behaviour text (recent
  orders, usual slots, price statistics, environments); users with at least one
  order only, since "no orders yet" says nothing about a user.
* poi_poi: a POI's business text (name, location, menu) vs its basic text
  (introduction, tags).
* user_poi: a user's full text vs the full text of a POI the user ordered from.

Only orders strictly before ``ds`` (default: the validation day, i.e. the
training days) feed any text or pair.  Pairs are deduplicated on
(kind, anchor_id, positive_id).  Hashed hold-out users and POIs (the same ones
as in the CPT corpus) go to split ``heldout``; a user-POI pair is held out when
its user is, so evaluation users never appear in training.  Negatives are
in-batch at training time, so only positives are written.

Output: ``OUT/contrastive_pairs/ds=YYYY-MM-DD/*.parquet`` with
kind, anchor_id, positive_id, anchor_text, positive_text, split.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from larr.config import LarrConfig
from larr.descriptions import (
    POI_BASIC_FIELDS,
    POI_BUSINESS_FIELDS,
    POI_FULL_FIELDS,
    USER_BEHAVIOUR_FIELDS,
    USER_FULL_FIELDS,
    USER_PROFILE_FIELDS,
)
from spark_jobs.common import JobRun, as_date, job_main, read_window, write_partitioned
from spark_jobs.features import heldout_flag, load_raw, poi_texts, user_texts

NAME = "contrastive_pairs"


def _joined(fields: tuple[str, ...]) -> F.Column:
    return F.concat_ws(" ", *[F.col(f) for f in fields])


def run(spark: SparkSession, cfg: LarrConfig, raw: Path, out: Path, ds: str | None = None,
        validate: bool = True) -> dict[str, Any]:
    """Build user-user, POI-POI and user-POI positive pairs from the training days."""
    window = read_window(raw)
    ds = ds or window["valid"]
    before = as_date(ds)
    job = JobRun(NAME, raw, out, cfg, ds)
    job.gate(validate, ("users", "pois", "orders"))
    data = load_raw(spark, raw)
    t0 = time.perf_counter()
    frac = cfg.features.heldout_frac
    users = user_texts(data, before, cfg.features.recent_orders).cache()
    pois = poi_texts(data, before).cache()
    orders = data.orders.where(F.col("date") < F.lit(before))
    buyers = orders.select("user_id").distinct()

    uu = (users.join(buyers, "user_id")
          .select(F.lit("user_user").alias("kind"), F.col("user_id").alias("anchor_id"),
                  F.col("user_id").alias("positive_id"), _joined(USER_PROFILE_FIELDS).alias("anchor_text"),
                  _joined(USER_BEHAVIOUR_FIELDS).alias("positive_text"),
                  heldout_flag("user_id", frac).alias("heldout")))
    pp = pois.select(F.lit("poi_poi").alias("kind"), F.col("poi_id").alias("anchor_id"),
                     F.col("poi_id").alias("positive_id"), _joined(POI_BUSINESS_FIELDS).alias("anchor_text"),
                     _joined(POI_BASIC_FIELDS).alias("positive_text"), heldout_flag("poi_id", frac).alias("heldout"))
    bought = orders.select("user_id", "poi_id").distinct()
    up = (bought.join(users.select("user_id", _joined(USER_FULL_FIELDS).alias("anchor_text")), "user_id")
          .join(pois.select("poi_id", _joined(POI_FULL_FIELDS).alias("positive_text")), "poi_id")
          .select(F.lit("user_poi").alias("kind"), F.col("user_id").alias("anchor_id"),
                  F.col("poi_id").alias("positive_id"), "anchor_text", "positive_text",
                  heldout_flag("user_id", frac).alias("heldout")))
    pairs = (uu.unionByName(pp).unionByName(up)
             .dropDuplicates(["kind", "anchor_id", "positive_id"])
             .withColumn("split", F.when(F.col("heldout"), "heldout").otherwise("train")).drop("heldout")
             .withColumn("ds", F.lit(ds)))
    write_partitioned(pairs, out / NAME, "ds")
    job.lap("build_and_write", t0)
    written = spark.read.parquet(str(out / NAME)).where(F.col("ds") == ds)
    counts = {f"{r['kind']}/{r['split']}": r["count"] for r in written.groupBy("kind", "split").count().collect()}
    job.rows_out = {"pairs": sum(counts.values())}
    total_orders = data.orders.count()
    job.extra["pairs_by_kind"] = dict(sorted(counts.items()))
    job.extra["orders_used"] = orders.count()
    job.extra["orders_excluded_on_or_after_ds"] = total_orders - job.extra["orders_used"]
    users.unpersist()
    pois.unpersist()
    return job.finish()


def main(argv: list[str] | None = None) -> int:
    return job_main(NAME, run, argv)


if __name__ == "__main__":
    sys.exit(main())
