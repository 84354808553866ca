"""Suite ``raw``: the raw-data contract of the feature spec, as Great Expectations expectations.

The contract is the one :mod:`larr.contract` derives from the spec and ``larr validate`` enforces; this module
reads the folder with the validator's own readers (partitions, dependency order, the context of keys and
lookups that cross-table rules need, :mod:`larr.validate`) and hands GE one batch per table plus a ``schema``
batch, so both gates judge the same rows by the same rules (``tests/test_quality.py`` checks they agree):

* ``schema`` (one row per table file and contract column, one per missing table or empty date folder):
  table present, file readable (every visible file under a table, as Spark reads them), column present,
  column of the contract's type (the validator's arrow type check), file inside a folder named
  ``date=YYYY-MM-DD``, date folder not empty;
* one batch per table: not null; ranges; allowed values; foreign keys; unique key (within its date partition
  for partitioned tables); every row rule of the contract (``conversion_implies_click``, ``belongs_to``,
  ``inside_data_window``, ``matches_derived``, ...).  Like the contract, no minimum row count: an empty
  table fails through what points at it (foreign keys, ``history_has_impression``);
* the log table with ``--run-date``: the newest date partition is not older than the run date minus
  ``quality.partition_lag_days``.

GE has no expectation for a cross-table or cross-column rule, so each rule is evaluated in pandas by the
validator's own check (:func:`larr.validate._check_chunk`) and lands in a derived boolean column named
``<column>.<rule>`` (``order.conversion_implies_click``, ``user_id.foreign_key``) that an
``expect_column_values_to_be_in_set([True])`` asserts; the frame's index is the table key, so a failure names
the offending keys.  A table bigger than ``quality.max_rows`` reaches GE as every row that breaks a contract
check (by the validator's checks, run on every row) plus a uniform sample of the rest, so no violation is
sampled away; shares are then of those rows, and the summary says so.  ``larr validate`` remains the
exhaustive fast path.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from great_expectations.expectations.expectation import Expectation

from larr.config import LarrConfig
from larr.contract import Context, Table
from larr.quality import Inputs
from larr.quality.gx import Batch
from larr.spec import Spec
from larr.validate import KeySeen, _check_chunk, _partitions, _plan, _read_order, _short, _type_ok

PARTITION = "_partition_date"  # the day of a row's date=YYYY-MM-DD folder (partitioned tables)
OK = [True]


def rule_column(column: str, rule: str) -> str:
    """Name of the derived boolean column that holds rule ``rule`` of ``column`` (True = the row is fine)."""
    return f"{column}.{rule}"


def batches(path: Path, cfg: LarrConfig, spec: Spec, inputs: Inputs) -> list[Batch]:
    """Read the raw folder ``path`` as the validator does and build the contract's batches."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"raw suite: {root} is not a folder (PATH is the raw data folder)")
    plan = _plan(root, spec)
    contract, ctx = plan.contract, plan.ctx
    schema_rows: list[dict[str, Any]] = []
    skipped: dict[str, set[str]] = {}
    out: list[Batch] = []
    tables: dict[str, Batch] = {}
    for table in _read_order(contract, set(plan.by_name)):
        gather = plan.gather(table)
        parts = _partitions(root, table)
        if not any(p.files for p in parts):  # the contract's table_present
            ctx.incomplete.add(table.name)
            schema_rows.append(_schema_row(table, "*", table.path, None, readable=None, present=False))
        rate = _sample_rate(parts, cfg.quality.max_rows)
        chunks: list[pd.DataFrame] = []
        total = 0
        for part in parts:
            if table.partitioned and not part.files:  # the contract's partition_not_empty
                schema_rows.append(_schema_row(table, "*", f"{table.name}/{part.label}", part.day is not None,
                                               readable=None, present=False,
                                               error="a date folder without parquet files"))
            seen = KeySeen(table)  # keys of the earlier files of this partition
            for f in part.files:
                df = _read(root, f, table, part.day if table.partitioned else None, schema_rows,
                           table.partitioned)
                if df is None:
                    ctx.incomplete.add(table.name)
                    continue
                total += len(df)
                ctx.partition_date = part.day
                offending = _derive(table, df, ctx, seen.repeated(df, keep=False), skipped)
                gather.add(df)
                if table.partitioned:
                    df[PARTITION] = pd.Timestamp(part.day) if part.day is not None else pd.NaT
                if rate < 1:  # every offending row, and a uniform share of the rest
                    rest = df[~offending].sample(frac=rate, random_state=cfg.seed)
                    df = pd.concat([df[offending], rest]).sort_index()
                chunks.append(df)
        ctx.partition_date = None
        if table.name not in ctx.incomplete:
            gather.into(table.name, ctx)
        frame = _frame(table, chunks)
        note = (f"{table.name}: {len(frame):,} of {total:,} rows (quality.max_rows): every row that breaks a "
                "contract check and a uniform sample of the rest; shares are of these rows, key uniqueness "
                "across files is judged on them") if rate < 1 else ""
        tables[table.name] = Batch(table.name, frame, _expectations(table, frame, spec, cfg, inputs), note)
    out.append(Batch("schema", _schema_frame(schema_rows), _schema_expectations()))
    out += [tables[t.name] for t in contract]  # spec order
    if skipped:
        out[0].note = "checks skipped because a table could not be read completely: " + "; ".join(
            f"{name}: {', '.join(sorted(checks))}" for name, checks in sorted(skipped.items()))
    return out


# ----------------------------------------------------------------------------------------- reading
def _sample_rate(parts: list[Any], max_rows: int) -> float:
    """Share of every file's rows handed to GE so a table stays within ``max_rows`` (footers only)."""
    n = 0
    for part in parts:
        for f in part.files:
            try:
                n += pq.ParquetFile(f).metadata.num_rows
            except Exception:  # unreadable: reported by _read
                continue
    return 1.0 if n <= max_rows else max_rows / n


def _read(root: Path, f: Path, table: Table, day: date | None, schema_rows: list[dict[str, Any]],
          partitioned: bool) -> pd.DataFrame | None:
    """The contract columns of one file, recording a ``schema`` row per column; None when the file is
    unreadable or a column is missing or of the wrong type (as the validator, which then skips the file)."""
    where = str(f.relative_to(root))
    named = (day is not None) if partitioned else None
    try:
        schema = pq.ParquetFile(f).schema_arrow
    except Exception as exc:  # not parquet, truncated footer
        schema_rows.append(_schema_row(table, "*", where, named, readable=False, error=_short(exc)))
        return None
    ok = True
    for col in table.columns:
        present = col.name in schema.names
        typ = schema.field(col.name).type if present else None
        type_ok = _type_ok(col, typ) if typ is not None else None
        schema_rows.append(_schema_row(table, col.name, where, named, readable=True, present=present,
                                       type_ok=type_ok, found=str(typ) if typ is not None else "",
                                       expected=col.dtype))
        ok = ok and present and bool(type_ok)
    if not ok:
        return None
    try:
        return pq.ParquetFile(f).read(columns=[c.name for c in table.columns]).to_pandas()
    except Exception as exc:  # corrupted pages behind an intact footer
        schema_rows.append(_schema_row(table, "*", where, named, readable=False, error=_short(exc)))
        return None


def _schema_row(table: Table, column: str, where: str, named: bool | None, readable: bool | None,
                present: bool | None = None, type_ok: bool | None = None, found: str = "", expected: str = "",
                error: str = "") -> dict[str, Any]:
    return {"where": f"{table.name}.{column} in {where}", "table": table.name, "column": column, "file": where,
            "readable": readable, "present": present, "type_ok": type_ok, "partition_named": named,
            "type": found, "expected_type": expected, "error": error}


def _derive(table: Table, df: pd.DataFrame, ctx: Context, dup: np.ndarray,
            skipped: dict[str, set[str]]) -> np.ndarray:
    """Run the validator's own checks on the chunk (:func:`larr.validate._check_chunk`), add the derived
    boolean columns of foreign keys and row rules (True = fine), and return the mask of rows that break any
    check (kept whole when the table is sampled).  A check whose table could not be read completely is
    skipped, as the validator skips it."""
    masks = _Masks()
    _check_chunk(table, df, ctx, masks, dup, skipped)
    offending = np.zeros(len(df), dtype=bool)
    derived = {"foreign_key"} | {r.name for r in table.rules}
    for (column, rule), mask in masks.found.items():
        offending |= mask
        if rule in derived:
            df[rule_column(column, rule)] = ~mask
    return offending


class _Masks:
    """Stands in for the validator's collector: keeps the mask of offending rows of every check it runs."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], np.ndarray] = {}

    def add(self, column: str, rule: str, description: str, fix: str, df: pd.DataFrame | None,
            mask: np.ndarray | None, example_cols: tuple[str, ...] = (), count: int | None = None,
            examples: list[dict[str, Any]] | None = None) -> None:
        if mask is not None:
            prev = self.found.get((column, rule))
            m = np.asarray(mask, dtype=bool)
            self.found[(column, rule)] = m if prev is None else prev | m


def _frame(table: Table, chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """The table's rows (or its sample) indexed by its key, so GE names the keys of unexpected rows."""
    if chunks:
        frame = pd.concat(chunks, ignore_index=True)
    else:
        frame = pd.DataFrame({c.name: pd.Series(dtype=object) for c in table.columns})
        if table.partitioned:
            frame[PARTITION] = pd.Series(dtype="datetime64[ns]")
    key = list(table.key)
    if frame.empty:  # nothing to name; GE reindexes boolean masks noisily on an empty keyed index
        return frame.reset_index(drop=True)
    index = pd.MultiIndex.from_frame(frame[key]) if len(key) > 1 else pd.Index(frame[key[0]], name=key[0])
    return frame.set_axis(index, axis=0)


def _schema_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["where", "table", "column", "file", "readable", "present", "type_ok", "partition_named", "type",
            "expected_type", "error"]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("readable", "present", "type_ok", "partition_named"):
        frame[c] = frame[c].astype(object)
    return frame.set_index("where", drop=False)


# ----------------------------------------------------------------------------------------- expectations
def _schema_expectations() -> list[Expectation]:
    return [
        gxe.ExpectColumnValuesToBeInSet(column="readable", value_set=OK,
                                        notes="every file of every table is a readable parquet file"),
        gxe.ExpectColumnValuesToBeInSet(column="present", value_set=OK,
                                        notes="every table exists (column *) and every contract column is "
                                              "present in every file of its table"),
        gxe.ExpectColumnValuesToBeInSet(column="type_ok", value_set=OK,
                                        notes="every column has the contract's type (see expected_type)"),
        gxe.ExpectColumnValuesToBeInSet(column="partition_named", value_set=OK,
                                        notes="every partition folder of a partitioned table is named "
                                              "date=YYYY-MM-DD"),
    ]


def _expectations(table: Table, frame: pd.DataFrame, spec: Spec, cfg: LarrConfig,
                  inputs: Inputs) -> list[Expectation]:
    """The contract of one table as expectations (derived rule columns only where they were computed)."""
    ex: list[Expectation] = []  # presence is the schema batch's; the contract allows an empty table
    for col in table.columns:
        if not col.nullable:
            ex.append(gxe.ExpectColumnValuesToNotBeNull(column=col.name, notes=f"{col.name} is never null"))
        if col.min is not None or col.max is not None:
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=col.min, max_value=col.max,
                                                        notes=f"{col.name}: {col.doc}"))
        if col.allowed is not None:
            ex.append(gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed),
                                                      notes=f"{col.name}: the contract's closed value set"))
        fk = rule_column(col.name, "foreign_key")
        if col.references and fk in frame.columns:
            ex.append(gxe.ExpectColumnValuesToBeInSet(
                column=fk, value_set=OK, meta={"bound": f"True: {col.name} exists in {col.references}"},
                notes=f"{col.name} exists in {col.references} (derived column, computed on every row)"))
    key = list(table.key)
    if table.partitioned:
        ex.append(gxe.ExpectCompoundColumnsToBeUnique(
            column_list=[PARTITION, *key], notes=f"({', '.join(key)}) is unique within its date partition"))
    elif len(key) > 1:
        ex.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=key, notes=f"({', '.join(key)}) is unique"))
    else:
        ex.append(gxe.ExpectColumnValuesToBeUnique(column=key[0], notes=f"{key[0]} is unique"))
    for rule in table.rules:
        name = rule_column(rule.column, rule.name)
        if name in frame.columns:
            ex.append(gxe.ExpectColumnValuesToBeInSet(
                column=name, value_set=OK, meta={"bound": f"True: {rule.description}"},
                notes=f"contract rule {rule.name}: {rule.description}. Fix: {rule.fix}."))
    if table.name == spec.log.table and table.partitioned and inputs.run_date is not None:
        oldest = inputs.run_date - timedelta(days=cfg.quality.partition_lag_days)
        ex.append(gxe.ExpectColumnMaxToBeBetween(
            column=PARTITION, min_value=pd.Timestamp(oldest).to_pydatetime(),
            meta={"bound": f">= {oldest.isoformat()} (run date {inputs.run_date.isoformat()} - "
                           f"{cfg.quality.partition_lag_days} day(s))"},
            notes="the newest date partition of the log is not older than the run date "
                  "(quality.partition_lag_days)"))
    return ex
