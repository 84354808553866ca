"""Contrastive pairs (paper 3.2): the pair kinds of the spec's ``pairs`` section.

A kind with ``same: user|item`` pairs two texts of one entity (food world:
user_user = profile vs behaviour, for users with history only when
``require_history``; poi_poi = business vs basic text); a kind with
``from_history`` pairs a user's text with the text of an item in their
history (user_poi: a POI the user ordered from).

Only history rows strictly before ``ds`` (default: the training cutoff, i.e. the
training days) feed any text or pair, and only users and items created strictly before ``ds`` (when the spec
declares a creation date) appear in one: an item that goes online on the validation or test day does not exist
when the encoder is trained.  Pairs are deduplicated on
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
from spark_jobs.common import JobRun, as_date, existing_before, job_main, read_window, write_partitioned
from spark_jobs.features import heldout_flag, history_rows, item_texts, joined_text, load_raw, user_texts

NAME = "contrastive_pairs"


def run(spark: SparkSession, cfg: LarrConfig, raw: Path, out: Path, ds: str | None = None,
        validate: bool = True) -> dict[str, Any]:
    """Build the spec's positive pairs (user-user, item-item, user-item) from the training days."""
    job = JobRun(NAME, raw, out, cfg, ds or "")
    spec = job.spec
    window = read_window(raw, spec)
    ds = job.ds = ds or window["cutoff"]
    before = as_date(ds)
    job.gate(validate, (spec.user.table, spec.item.table, spec.history.table or spec.log.table))
    data = load_raw(spark, raw, spec)
    try:
        t0 = time.perf_counter()
        frac = cfg.features.heldout_frac
        ukey, ikey = spec.user_key, spec.item_key
        used = set(spec.expand([n for p in spec.pairs.values() for n in (*p.anchor, *p.positive)]))
        users = existing_before(user_texts(data, before, [f for f in spec.fields_of("user") if f in used]),
                                data.users, ukey, spec.user.created, before)
        items = existing_before(item_texts(data, before, [f for f in spec.fields_of("item") if f in used]),
                                data.items, ikey, spec.item.created, before)
        users, items = data.persist(users), data.persist(items)
        history = history_rows(data).where(F.col("date") < F.lit(before))
        texts = {"user": (users, ukey), "item": (items, ikey)}
        parts = []
        for kind, p in spec.pairs.items():
            if p.same is not None:
                table, key = texts[p.same]
                if p.require_history:  # "no orders yet" says nothing about a user
                    table = table.join(history.select(key).distinct(), key)
                parts.append(table.select(F.lit(kind).alias("kind"), F.col(key).alias("anchor_id"),
                                          F.col(key).alias("positive_id"),
                                          joined_text(spec, p.anchor).alias("anchor_text"),
                                          joined_text(spec, p.positive).alias("positive_text"),
                                          heldout_flag(key, frac).alias("heldout")))
            else:
                pairs = history.select(ukey, ikey).distinct()
                parts.append(pairs.join(users.select(ukey, joined_text(spec, p.anchor).alias("anchor_text")), ukey)
                             .join(items.select(ikey, joined_text(spec, p.positive).alias("positive_text")), ikey)
                             .select(F.lit(kind).alias("kind"), F.col(ukey).alias("anchor_id"),
                                     F.col(ikey).alias("positive_id"), "anchor_text", "positive_text",
                                     heldout_flag(ukey, frac).alias("heldout")))
        union = parts[0]
        for part in parts[1:]:
            union = union.unionByName(part)
        pairs = (union.dropDuplicates(["kind", "anchor_id", "positive_id"])
                 .withColumn("split", F.when(F.col("heldout"), "heldout").otherwise("train")).drop("heldout")
                 .withColumn("ds", F.lit(ds)))
        write_partitioned(pairs, out / NAME, "ds")
        job.lap("build_and_write", t0)
        written = spark.read.parquet(str(out / NAME)).where(F.col("ds") == ds)
        counts = {f"{r['kind']}/{r['split']}": r["count"]
                  for r in written.groupBy("kind", "split").count().collect()}
        job.rows_out = {"pairs": sum(counts.values())}
        total = history_rows(data).count()
        job.extra["pairs_by_kind"] = dict(sorted(counts.items()))
        job.extra["history_rows_used"] = history.count()
        job.extra["history_rows_excluded_on_or_after_ds"] = total - job.extra["history_rows_used"]
        job.extra["items_used"] = items.count()
        job.extra["items_created_on_or_after_ds_excluded"] = data.items.count() - job.extra["items_used"]
    finally:
        data.release()
    return job.finish()


def main(argv: list[str] | None = None) -> int:
    return job_main(NAME, run, argv)


if __name__ == "__main__":
    sys.exit(main())
