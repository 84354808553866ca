"""Run one quality suite with Great Expectations' own objects and turn the result into a readable summary.

A boundary module (:mod:`larr.quality.raw`, ...) hands this module :class:`Batch` objects: a pandas frame (the
data itself, or a sample or an aggregate of it, so GE without extras can validate what a Spark job wrote) and
the GE expectations built from the feature spec and the config.  :func:`run_suite` then does what a GE
deployment does, so the suites are artefacts a reader (and a scheduler) already knows:

* a **File data context** under ``OUT/gx`` (``gx.get_context(mode="file", project_root_dir=OUT)``), which
  keeps the suites, validation definitions, checkpoints and every validation result on disk;
* a **pandas data source** ``larr`` with one **dataframe asset** per batch and a **whole-dataframe batch
  definition** on it;
* an **ExpectationSuite** ``<suite>.<batch>`` and a **ValidationDefinition** binding it to the batch definition;
* a **Checkpoint** with an **UpdateDataDocsAction**, run with the frame as its ``dataframe`` batch parameter.

One Checkpoint per batch: a Checkpoint hands the same batch parameters to every validation definition it
holds, so frames of different shapes cannot share one.  The outcome becomes :class:`Row` objects (suite,
batch, expectation, column, observed value, bound, success), a printable table, ``OUT/result.json`` (the rows
plus every checkpoint's full result) and the Data Docs site whose ``index.html`` :attr:`SuiteResult.docs_index`
names.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage statistics leave the machine
logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its import and metrics log at INFO

import great_expectations as gx  # noqa: E402  (after the analytics switch)
import great_expectations.data_context.data_context_variables as _gx_variables  # noqa: E402
from great_expectations.checkpoint import UpdateDataDocsAction  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402
from great_expectations.expectations.expectation import Expectation  # noqa: E402

log = logging.getLogger("larr.quality")
logging.getLogger(_gx_variables.__file__).setLevel(logging.WARNING)  # this GE module logs under its file path

DATASOURCE = "larr"
BATCH_DEFINITION = "whole"
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
_EXAMPLES = 3  # unexpected values shown per row of the summary


@dataclass
class Batch:
    """One frame GE validates and the expectations it must meet.

    ``note`` says what the frame is when it is not the data as written (a sample, an aggregate) and any check
    left out, so the summary never claims more than was checked.  A named index (a key column) makes GE report
    the keys of unexpected rows instead of row numbers."""

    name: str
    frame: pd.DataFrame
    expectations: list[Expectation]
    note: str = ""


@dataclass(frozen=True)
class Row:
    """One expectation's outcome, as the summary prints it."""

    suite: str
    batch: str
    expectation: str
    column: str
    observed: str
    bound: str
    success: bool


@dataclass
class SuiteResult:
    """The outcome of one suite run: rows, notes, and where the full result and the Data Docs are."""

    suite: str
    success: bool
    rows: list[Row]
    notes: list[str]
    out: Path
    result_json: Path
    docs_index: Path
    seconds: float
    batches: dict[str, int] = field(default_factory=dict)  # batch -> rows handed to GE

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if not r.success]

    def summary(self, every_row: bool = False, source: str = "") -> str:
        """The readable summary: a status line, a table of the failed expectations (every expectation with
        ``every_row``), what passed per batch, the notes, and where the result and the Data Docs are."""
        failed = self.failures
        status = "PASSED" if self.success else f"FAILED -- {len(failed)} of {len(self.rows)} expectations failed"
        where = f" on {source}" if source else ""
        lines = [f"quality suite {self.suite}{where}: {status} ({len(self.batches)} batches, {self.seconds:.1f}s)"]
        shown = self.rows if every_row else failed
        if shown:
            lines += ["", *table(shown), ""]
        per_batch = []
        for b in self.batches:
            rows = [r for r in self.rows if r.batch == b]
            per_batch.append(f"{b} {sum(r.success for r in rows)}/{len(rows)}")
        lines.append("passed per batch: " + ", ".join(per_batch))
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"full result: {self.result_json}")
        lines.append(f"data docs: {self.docs_index}")
        return "\n".join(lines)


def table(rows: Sequence[Row]) -> list[str]:
    """Rows as fixed-width text lines (status, batch, expectation, column, observed, bound)."""
    head = ("", "batch", "expectation", "column", "observed", "bound")
    body = [("ok" if r.success else "FAIL", r.batch, r.expectation, r.column, _cut(r.observed, 160),
             _cut(r.bound, 50)) for r in rows]
    widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in (head, *body)]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


# ----------------------------------------------------------------------------------------- running
def run_suite(suite: str, batches: Sequence[Batch], out: str | Path, inputs: dict[str, Any] | None = None,
              notes: Sequence[str] = ()) -> SuiteResult:
    """Validate every batch with GE (one Checkpoint each, Data Docs updated) and write ``OUT/result.json``."""
    t0 = time.perf_counter()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(out))
    bars = context.variables.progress_bars  # a dict once read back from great_expectations.yml
    if bars is None or (bars.get("globally", True) if isinstance(bars, dict) else bars.globally):
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(name=DATASOURCE)
    rows: list[Row] = []
    full: dict[str, Any] = {}
    for batch in batches:
        name = f"{suite}.{batch.name}"
        try:
            asset = source.get_asset(name)
        except LookupError:
            asset = source.add_dataframe_asset(name=name)
        try:
            definition = asset.get_batch_definition(BATCH_DEFINITION)
        except KeyError:
            definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
        expectations = [copy.copy(e) for e in batch.expectations]  # a GE expectation belongs to one suite
        gx_suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations,
                                                                    notes=batch.note or None))
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=definition, suite=gx_suite))
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(name=name, validation_definitions=[validation],
                          actions=[UpdateDataDocsAction(name="update_data_docs")], result_format=RESULT_FORMAT))
        result = checkpoint.run(batch_parameters={"dataframe": batch.frame})
        order = {e.id: i for i, e in enumerate(gx_suite.expectations)}
        for vr in result.run_results.values():
            for r in sorted(vr.results, key=lambda r: order.get(r.expectation_config.id, len(order))):
                rows.append(_row(suite, batch.name, r))
        full[batch.name] = result.describe_dict()
    docs = _docs_index(context, out)
    success = all(r.success for r in rows)
    res = SuiteResult(suite, success, rows, [b.note for b in batches if b.note] + list(notes), out,
                      out / "result.json", docs, time.perf_counter() - t0, {b.name: len(b.frame) for b in batches})
    payload = {"suite": suite, "success": success, "seconds": round(res.seconds, 3), "inputs": inputs or {},
               "batches": res.batches, "notes": res.notes, "rows": [asdict(r) for r in rows],
               "data_docs": str(docs), "checkpoints": full}
    res.result_json.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return res


def _docs_index(context: Any, out: Path) -> Path:
    for site in context.get_docs_sites_urls():
        url = site.get("site_url") or ""
        if url.startswith("file://"):
            return Path(unquote(urlparse(url).path))
    return out / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, datetime | date | pd.Timestamp):
        return v.isoformat()
    return str(v)


# ----------------------------------------------------------------------------------------- summary rows
def _row(suite: str, batch: str, r: Any) -> Row:
    cfg = r.expectation_config
    kw = dict(cfg.kwargs)
    bound = (cfg.meta or {}).get("bound") or _bound(cfg.type, kw)
    return Row(suite, batch, cfg.type, _column(kw), _observed(r), bound, bool(r.success))


def _column(kw: dict[str, Any]) -> str:
    if kw.get("column") is not None:
        return str(kw["column"])
    if kw.get("column_list"):
        return ", ".join(map(str, kw["column_list"]))
    if kw.get("column_A") is not None:
        return f"{kw['column_A']} = {kw['column_B']}"
    return "(table)"


def fmt(v: Any) -> str:
    """A value as the summary prints it: numbers to 4 significant digits, short lists, ISO dates."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) < 10**12 else str(v)
    if isinstance(v, pd.Timestamp | datetime):
        if v == pd.Timestamp(v).normalize():
            return pd.Timestamp(v).date().isoformat()
        return v.isoformat(sep=" ", timespec="seconds")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    if isinstance(v, list | tuple | set | np.ndarray):
        items = list(v)
        text = ", ".join(fmt(x) for x in items[:6]) + (f", ... ({len(items)})" if len(items) > 6 else "")
        return "[" + text + "]"
    return str(v)


def _observed(r: Any) -> str:
    kw = r.expectation_config.kwargs
    info = r.exception_info or {}
    # one {raised_exception, exception_message} dict, or one per failed metric
    errors = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for e in errors:
        if e.get("raised_exception"):
            msg = str(e.get("exception_message") or "error").strip().splitlines()[0]
            return f"error: {msg}"
    res = r.result or {}
    if res.get("observed_value") is None and "partial_missing_list" in res:  # distinct values contain a set
        missing = res.get("partial_missing_list") or []
        return f"missing {fmt(missing)}" if missing else "none missing"
    if "observed_value" in res:
        return fmt(res["observed_value"])
    if "unexpected_count" in res:
        n, total = int(res.get("unexpected_count") or 0), int(res.get("element_count") or 0)
        text = f"{n:,} of {total:,} unexpected"
        if n:
            text += f" ({float(res.get('unexpected_percent') or 0):.3g}%)"
            examples = _examples(res, kw.get("column"))
            if examples:
                text += f", e.g. {examples}"
        return text
    return ""


def _examples(res: dict[str, Any], column: str | None) -> str:
    """Unexpected values, after the keys of their rows when the batch has a named index (a derived boolean's
    value says nothing the expectation does not, so only its keys are shown)."""
    idx = res.get("partial_unexpected_index_list") or []
    vals = res.get("partial_unexpected_list") or []
    if idx and isinstance(idx[0], dict):
        out = []
        for d in idx[:_EXAMPLES]:
            keys = " ".join(f"{k}={_key(v)}" for k, v in d.items() if k != column)
            value = d.get(column)
            out.append(keys if isinstance(value, bool | np.bool_) or column not in d else f"{keys}: {fmt(value)}")
        return "; ".join(out)
    return fmt(vals[:_EXAMPLES]) if vals else ""


def _key(v: Any) -> str:
    """A key as written (ids without thousands separators)."""
    v = v.item() if isinstance(v, np.generic) else v
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else fmt(v)


def _bound(kind: str, kw: dict[str, Any]) -> str:
    text = ""
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if "value_set" in kw and kw["value_set"] is not None:
        vs = list(kw["value_set"])
        text = ("contains " if "contain" in kind or "equal" in kind else "in ") + "{" + fmt(vs)[1:-1] + "}"
    elif lo is not None or hi is not None:
        if lo is not None and hi is not None:
            text = f"[{fmt(lo)}, {fmt(hi)}]" if lo != hi else f"= {fmt(lo)}"
        else:
            text = f">= {fmt(lo)}" if lo is not None else f"<= {fmt(hi)}"
    elif "unique" in kind:
        text = "unique"
    elif "not_be_null" in kind:
        text = "not null"
    elif kind.endswith("to_be_null"):
        text = "null"
    elif "to_exist" in kind:
        text = "exists"
    elif "pair_values_to_be_equal" in kind:
        text = f"{kw.get('column_A')} == {kw.get('column_B')}"
    elif "type_list" in kind:
        text = "type in " + fmt(kw.get("type_list") or [])
    mostly = kw.get("mostly")
    if mostly is not None and float(mostly) < 1:
        text += f" for >= {float(mostly):.4g} of rows"
    return text


# ----------------------------------------------------------------------------------------- helpers
def newest_partition(folder: Path, key: str = "ds") -> Path:
    """The newest ``<key>=`` partition of a Spark job output (what training reads)."""
    parts = sorted(p for p in folder.glob(f"{key}=*") if p.is_dir())
    if not parts:
        raise FileNotFoundError(f"{folder} has no {key}= partitions: run `larr spark {folder.name}` first")
    return parts[-1]
