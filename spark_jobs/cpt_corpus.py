"""CPT corpus (paper 3.1): one document per item, prompt and target fields as the spec's ``cpt`` says
(food world: prompt = name + location, target = the rest).

Each document is the rendered prompt, a space, and the rendered target;
``prompt_chars`` is the boundary so that training masks the prompt and takes
the causal-LM loss on the target only.  Statistics in the target (history
counts) use only rows strictly before ``ds`` (default: the training cutoff, so
only training days), and only items created strictly before ``ds`` get a document: an item that goes online on
the validation or test day does not exist when the encoder is trained (it is embedded afterwards, as in
production).  A hashed share of items is marked ``heldout`` for the
held-out loss; training must skip them.

Output: ``OUT/cpt_corpus/ds=YYYY-MM-DD/*.parquet`` with
<item key>, prompt, target, text, prompt_chars, split.
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
from spark_jobs.features import heldout_flag, item_texts, joined_text, load_raw

NAME = "cpt_corpus"


def run(spark: SparkSession, cfg: LarrConfig, raw: Path, out: Path, ds: str | None = None,
        validate: bool = True) -> dict[str, Any]:
    """Build the CPT corpus: one document per POI with a prompt/target boundary."""
    job = JobRun(NAME, raw, out, cfg, ds or "")
    spec = job.spec
    window = read_window(raw, spec)
    ds = job.ds = ds or window["cutoff"]
    job.gate(validate, (spec.item.table, spec.history.table or spec.log.table))
    data = load_raw(spark, raw, spec)
    try:
        t0 = time.perf_counter()
        key = spec.item_key
        texts = existing_before(item_texts(data, as_date(ds), spec.expand([*spec.cpt.prompt, *spec.cpt.target])), data.items, key, spec.item.created, as_date(ds))
        docs = (texts.select(key, joined_text(spec, spec.cpt.prompt).alias("prompt"),
                             joined_text(spec, spec.cpt.target).alias("target"))
                .withColumn("text", F.concat_ws(" ", "prompt", "target"))
                .withColumn("prompt_chars", F.length("prompt") + 1)
                .withColumn("split", F.when(heldout_flag(key, cfg.features.heldout_frac), "heldout")
                            .otherwise("train"))
                .withColumn("ds", F.lit(ds)))
        write_partitioned(docs, out / NAME, "ds")
        job.lap("build_and_write", t0)
        written = spark.read.parquet(str(out / NAME)).where(F.col("ds") == ds)
        counts = {r["split"]: r["count"] for r in written.groupBy("split").count().collect()}
        job.rows_out = {"documents": sum(counts.values())}
        job.extra["split"] = counts
        job.extra["items_created_on_or_after_ds_excluded"] = data.items.count() - job.rows_out["documents"]
    finally:
        data.release()
    return job.finish()


def main(argv: list[str] | None = None) -> int:
    return job_main(NAME, run, argv)


if __name__ == "__main__":
    sys.exit(main())
