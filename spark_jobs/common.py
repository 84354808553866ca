"""What every Spark job shares: the session, the input gate, idempotent writes, the manifest, the CLI.

Each job module exposes ``run(spark, cfg, raw, out, ds=None) -> manifest`` and a
``main()`` for ``spark-submit spark_jobs/<job>.py --raw DIR --out DIR``; ``larr
spark <job>`` calls the same ``run`` in ``local[*]`` mode.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from larr.config import ConfigError, LarrConfig, config_to_dict, save_config
from larr.entry import add_config_args, config_from_args, iso_date, run_main
from larr.spec import Spec, SpecError, load_spec, window_of
from larr.validate import ContractError, require_valid

log = logging.getLogger("larr.spark")


def spark_session(cfg: LarrConfig, app: str = "larr") -> SparkSession:
    """A session for local runs; under spark-submit ``getOrCreate`` returns the submitted one."""
    builder = (SparkSession.builder.appName(app)
               .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
               .config("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.showConsoleProgress", "false"))
    if not _submitted():
        # Python workers must run the interpreter that has larr installed (the project venv).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = (builder.master(cfg.spark.master)
                   .config("spark.pyspark.python", sys.executable)
                   .config("spark.driver.memory", cfg.spark.driver_memory)
                   .config("spark.ui.enabled", "false")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.host", "127.0.0.1"))
    for k, v in cfg.spark.extra_conf.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _submitted() -> bool:
    return "SPARK_SUBMIT_OPTS" in os.environ or os.environ.get("SPARK_ENV_LOADED") == "1"


def read_window(raw: Path, spec: Spec) -> dict[str, Any]:
    """Train / valid / test days of the raw data: the log's date partitions split as the spec declares."""
    log = raw / spec.log.table
    days = sorted(p.name.split("=", 1)[1] for p in log.glob("date=*"))
    if not days:
        raise FileNotFoundError(f"{log} has no date=YYYY-MM-DD partitions (the log table of spec {spec.name})")
    return window_of(spec, days)


def gate(raw: Path, spec: Spec, enabled: bool = True) -> dict[str, int]:
    """Refuse input that breaks the data contract; returns the row count of every table."""
    if not enabled:
        log.warning("contract validation skipped (--no-validate): the upstream gate is trusted")
        return {}
    return require_valid(raw, spec=spec).rows


def write_partitioned(df: DataFrame, path: Path, partition: str) -> None:
    """Overwrite only the partitions present in ``df`` (dynamic partition overwrite): a re-run of a day
    replaces that day and never duplicates it."""
    df.write.mode("overwrite").partitionBy(partition).parquet(str(path))


@dataclass
class JobRun:
    """Timing and counters of one job run, written as its manifest."""

    job: str
    raw: Path
    out: Path
    cfg: LarrConfig
    ds: str
    started: float = field(default_factory=time.perf_counter)
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_out: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def spec(self) -> Spec:
        return load_spec(self.cfg.spec)

    def gate(self, enabled: bool, tables: tuple[str, ...]) -> None:
        """Validate the raw input against the contract (timed) and record the input row counts of ``tables``
        (table names of the spec)."""
        t0 = time.perf_counter()
        self.rows_in = {k: v for k, v in gate(self.raw, self.spec, enabled).items() if k in tables}
        self.lap("validate", t0)

    def lap(self, name: str, t0: float) -> None:
        self.timings[name] = round(time.perf_counter() - t0, 3)

    def finish(self) -> dict[str, Any]:
        seconds = time.perf_counter() - self.started
        rows_in = sum(self.rows_in.values())
        manifest = {
            "job": self.job, "ds": self.ds, "raw": str(self.raw), "output": str(self.out / self.job),
            "rows_in": self.rows_in, "rows_out": self.rows_out, "rejected": self.rejected,
            "seconds": round(seconds, 3), "rows_in_per_second": round(rows_in / seconds, 1) if seconds else None,
            "timings": self.timings, **self.extra, "config": config_to_dict(self.cfg),
        }
        folder = self.out / self.job
        (folder / "_manifests").mkdir(parents=True, exist_ok=True)
        text = json.dumps(manifest, indent=2, default=str) + "\n"
        (folder / "_manifests" / f"{self.ds}.json").write_text(text)
        (folder / "_manifest.json").write_text(text)
        save_config(self.cfg, folder, "_config.yaml")
        log.info("%s ds=%s: in %s, out %s, rejected %s, %.1fs", self.job, self.ds, self.rows_in, self.rows_out,
                 self.rejected or 0, seconds)
        return manifest


JobFn = Callable[..., dict[str, Any]]


def job_parser(name: str, run: JobFn) -> argparse.ArgumentParser:
    """The arguments of ``spark-submit spark_jobs/<name>.py``: :func:`add_job_args`."""
    p = argparse.ArgumentParser(prog=f"{name}.py", description=(run.__doc__ or "").strip().split("\n")[0])
    add_job_args(p)
    return p


def job_main(name: str, run: JobFn, argv: list[str] | None = None,
             parser: argparse.ArgumentParser | None = None,
             call: Callable[[SparkSession, LarrConfig, argparse.Namespace], dict[str, Any]] | None = None,
             keys: tuple[str, ...] = ("job", "ds", "rows_in", "rows_out", "rejected", "seconds")) -> int:
    """``spark-submit spark_jobs/<name>.py --raw DIR --out DIR [config args] [--ds YYYY-MM-DD]``.

    Argument and config mistakes (a missing option, a bad ``--ds``, malformed YAML, an unknown key) go
    through the shared boundary of :mod:`larr.entry`: one line, exit 2.  A failure of the job itself on its
    input (contract, missing partition or artefact) prints ``<name>: <message>`` and exits 1, as before."""
    args = (parser or job_parser(name, run)).parse_args(argv)

    def body() -> int:
        cfg = config_from_args(args)  # before logging and Spark: a config error is one line, exit 2
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            spark = spark_session(cfg, f"larr-{name}")
            manifest = call(spark, cfg, args) if call else run(
                spark, cfg, Path(args.raw), Path(args.out), ds=args.ds.isoformat() if args.ds else None,
                validate=not args.no_validate)
        except (ConfigError, SpecError, ContractError, ValueError, FileNotFoundError) as err:
            print(f"{name}: {err}", file=sys.stderr)
            return 1
        print(json.dumps({k: manifest[k] for k in keys}))
        return 0

    return run_main(body)


def add_job_args(p: argparse.ArgumentParser) -> None:
    """The common job arguments: input, output, partition date, contract gate, and the shared config ones."""
    p.add_argument("--raw", required=True, help="raw data folder (follows docs/data-contract.md)")
    p.add_argument("--out", required=True, help="root folder of job outputs; the job writes OUT/<job>/")
    add_config_args(p)
    p.add_argument("--ds", type=iso_date, metavar="YYYY-MM-DD",
                   help="snapshot/partition date (default: per job, see its --help)")
    p.add_argument("--no-validate", action="store_true",
                   help="skip the data-contract gate (only when an upstream gate already validated this input)")


def as_date(text: str) -> date:
    return date.fromisoformat(text)


def existing_before(texts: DataFrame, table: DataFrame, key: str, created: str | None, before: date) -> DataFrame:
    """The rows of ``texts`` whose entity (``key``) went online strictly before ``before``, by the entity
    table's ``created`` date column; all rows when the spec declares no creation date.

    Why: the LLM stages train on what existed before the training cutoff.  An item created on the validation or
    test day must not reach the CPT corpus, the pairs or the tokenizer -- in production it does not exist yet
    when the encoder is trained; it is embedded afterwards by the frozen encoder (``larr embed``), which is
    exactly what the new-item slice measures."""
    if created is None:
        return texts
    born = table.where(F.col(created) < F.lit(before)).select(key)
    return texts.join(born, key, "left_semi")
