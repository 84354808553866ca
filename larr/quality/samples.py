"""Suite ``samples``: the CTR samples the model trains and is judged on (``ctr_samples/date=*/``).

Two aggregates, so the suite reads a handful of columns however many samples there are:

* ``days`` -- one row per (day, split): rows, the click rate and (with a conversion label) conversions per
  click.  Checked: the split of every row is the one the spec's split gives its day (``split`` =
  ``split.expected``: no row of a test or validation day in training, the leak that would inflate every
  metric), all three splits present, each rate inside ``quality.click_rate`` / ``quality.conversion_rate``
  (an all-zero label column is a broken join, not a quiet day);
* ``oov`` -- one row per test day: per categorical feature of the spec (``ctr.categorical``), the share of the
  day's rows whose value never occurs on a training day (``<column>.oov_share``; what the input pipeline
  maps to the OOV row, :mod:`larr.ctr.data`) is at most ``quality.max_oov_share`` (per column:
  ``quality.max_oov_share_by_column``).  New items and travellers make some OOV normal; ids from another
  system or a shifted id space make all of it OOV.

Values are compared as text, as the input pipeline's vocabularies compare them.
"""

from __future__ import annotations

from pathlib import Path

import great_expectations.expectations as gxe
import pandas as pd
import pyarrow.parquet as pq
from great_expectations.expectations.expectation import Expectation

from larr.config import LarrConfig
from larr.ctr.columns import ctr_columns
from larr.quality import Inputs
from larr.quality.gx import Batch
from larr.spec import Spec, window_of

SAMPLES = "ctr_samples"  # the Spark job's output folder
SPLIT = "split"


def samples_dir(path: Path) -> Path:
    """``PATH/ctr_samples`` when PATH is the jobs folder, else PATH itself when it holds date= partitions."""
    for c in (path / SAMPLES, path):
        if c.is_dir() and any(p.is_dir() for p in c.glob("date=*")):
            return c
    raise FileNotFoundError(f"samples suite: no {SAMPLES} date= partitions under {path} (PATH is the Spark job "
                            f"outputs folder or its {SAMPLES}/; run `larr spark {SAMPLES}`)")


def batches(path: Path, cfg: LarrConfig, spec: Spec, inputs: Inputs) -> list[Batch]:
    """Per-(day, split) label rates and split agreement, and per-test-day OOV shares."""
    folder = samples_dir(Path(path))
    parts = {p.name.split("=", 1)[1]: p for p in sorted(folder.glob("date=*")) if p.is_dir()}
    window = window_of(spec, list(parts))
    click, conversion = spec.labels.click, spec.labels.conversion
    expected = {d: "test" if d in window["test_days"] else "valid" if d in window["valid_days"] else "train"
                for d in parts}
    rows = []
    for day, part in parts.items():
        cols = [SPLIT, click] + ([conversion] if conversion else [])
        df = pq.read_table(part, columns=cols).to_pandas()
        for split, g in df.groupby(SPLIT, sort=True, dropna=False):
            row = {"date": day, SPLIT: split, "split.expected": expected[day], "rows": len(g),
                   f"{click}.rate": float(g[click].mean())}
            if conversion:
                clicks = float(g[click].sum())
                row[f"{conversion}.per_click"] = float(g[conversion].sum()) / clicks if clicks else float("nan")
            rows.append(row)
    days = pd.DataFrame(rows)
    days = days.set_index(pd.MultiIndex.from_frame(days[["date", SPLIT]].astype(str)))
    oov = _oov(parts, window, ctr_columns(spec).categorical)
    return [Batch("days", days, _day_expectations(cfg, spec),
                  f"days: splits from the spec's split of {len(parts)} date partitions (test {window['test_days']}, "
                  f"valid {window['valid_days']})"),
            Batch("oov", oov, _oov_expectations(cfg, ctr_columns(spec).categorical),
                  f"oov: vocabularies of the {len(window['train'])} training days, shares per test day")]


def _oov(parts: dict[str, Path], window: dict, columns: tuple[str, ...]) -> pd.DataFrame:
    """Per test day, per categorical column: share of rows whose value (as text) no training day has."""
    seen: dict[str, set[str]] = {c: set() for c in columns}
    for day in window["train"]:
        if day not in parts:
            continue
        for f in sorted(parts[day].glob("*.parquet")):
            for rb in pq.ParquetFile(f).iter_batches(columns=list(columns), batch_size=262_144):
                batch = rb.to_pandas()
                for c in columns:
                    seen[c].update(batch[c].astype(str).unique())
    rows = []
    for day in window["test_days"]:
        if day not in parts:
            continue
        df = pq.read_table(parts[day], columns=list(columns)).to_pandas()
        row: dict[str, object] = {"date": day, "rows": len(df)}
        for c in columns:
            row[f"{c}.oov_share"] = float((~df[c].astype(str).isin(seen[c])).mean()) if len(df) else 0.0
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["date", "rows", *(f"{c}.oov_share" for c in columns)])
    return frame.set_index(pd.Index(frame["date"], name="date"))


def _day_expectations(cfg: LarrConfig, spec: Spec) -> list[Expectation]:
    q = cfg.quality
    click, conversion = spec.labels.click, spec.labels.conversion
    ex: list[Expectation] = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, notes="some samples"),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A=SPLIT, column_B="split.expected",
            meta={"bound": "= split.expected, the split the spec gives the day"},
            notes="every row carries the split the spec gives its day: no row of a test or validation day in "
                  "training"),
        gxe.ExpectColumnDistinctValuesToContainSet(column=SPLIT, value_set=["train", "valid", "test"]),
        gxe.ExpectColumnValuesToBeBetween(column=f"{click}.rate", min_value=q.click_rate[0],
                                          max_value=q.click_rate[1],
                                          notes="click rate of every (day, split) (quality.click_rate)"),
    ]
    if conversion:
        ex.append(gxe.ExpectColumnValuesToBeBetween(
            column=f"{conversion}.per_click", min_value=q.conversion_rate[0], max_value=q.conversion_rate[1],
            notes="conversions per click of every (day, split) (quality.conversion_rate)"))
    return ex


def _oov_expectations(cfg: LarrConfig, columns: tuple[str, ...]) -> list[Expectation]:
    q = cfg.quality
    ex: list[Expectation] = [gxe.ExpectTableRowCountToBeBetween(min_value=1, notes="the test days have samples")]
    for c in columns:
        bound = q.max_oov_share_by_column.get(c, q.max_oov_share)
        ex.append(gxe.ExpectColumnMaxToBeBetween(
            column=f"{c}.oov_share", min_value=0.0, max_value=bound,
            notes=f"share of test-day rows whose {c} never occurs on a training day (quality.max_oov_share)"))
    return ex
