"""Data-quality gates: Great Expectations 1.x suites, one module per data boundary, all derived from the spec.

Every boundary between two stages gets a suite that says what the next stage may assume:

========== =========================== ================================================================
suite      PATH                        checks
========== =========================== ================================================================
raw        raw data folder             the data contract (:mod:`larr.contract`): keys, types, allowed
                                       values, ranges, row rules (conversion implies click, ...), the
                                       newest log partition against the run date
corpus     Spark job outputs           CPT corpus and contrastive pairs: non-empty, special tokens
                                       balanced, token lengths inside the context window, every pair kind
embeddings Feast offline data folder   dimension, finite, norms near 1, unique keys, coverage of the scene
                                       vocabulary
samples    Spark job outputs           CTR samples: label rates in bounds, no row of a test or validation
                                       day in training, out-of-vocabulary share of the test day
online     Feast repo (or state file)  freshness of the real-time scene state of every key, per event group
========== =========================== ================================================================

:func:`check` runs one suite (``larr quality check SUITE PATH`` is the same call); :func:`require` raises
:class:`QualityError` with the summary when it fails, which is how a scheduler task turns a failed suite into
a failed task whose log shows why.  ``larr validate`` stays the contract's exhaustive fast path; the raw suite
expresses the same contract as GE expectations (and agrees with it, ``tests/test_quality.py``).

This package's import is light (no GE): the CLI's ``--help`` reads :data:`SUITES` without paying for GE.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from larr.config import LarrConfig
    from larr.quality.gx import SuiteResult

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # before anything imports great_expectations
# GE logs its own import and every metric at INFO; a gate's log should hold the summary, not that
logging.getLogger("great_expectations").setLevel(logging.WARNING)

DEFAULT_OUT = Path("runs/quality")


@dataclass(frozen=True)
class SuiteInfo:
    """A suite's module, what its PATH is, and what it checks (the CLI help)."""

    module: str
    path: str
    checks: str


SUITES: dict[str, SuiteInfo] = {
    "raw": SuiteInfo(
        "larr.quality.raw", "the raw data folder (the tables of the feature spec)",
        "the data contract derived from the spec, as `larr validate` checks it: tables present and readable, "
        "columns present with their types, not null, ranges, allowed values, foreign keys, unique keys, the "
        "row rules (conversion implies click, belongs_to, inside the window, ...), and with --run-date the "
        "newest log partition not older than the run date"),
    "corpus": SuiteInfo(
        "larr.quality.corpus", "the Spark job outputs (holding cpt_corpus/ and contrastive_pairs/)",
        "newest CPT corpus and contrastive pairs: non-empty, unique keys, field tokens balanced, token lengths "
        "inside the context window (llm.backbone.max_length, llm.contrastive.max_length), every pair kind "
        "of the spec present"),
    "embeddings": SuiteInfo(
        "larr.quality.embeddings", "the Feast offline data folder (features/, `larr embed --features`)",
        "scene-value, item and user vectors: dimension features.embedding_dim, finite, L2 norms in 1 +- "
        "quality.norm_tolerance, unique non-null keys, and the share of the scene vocabulary's keys with a "
        "vector >= quality.min_vocab_coverage (--vocab, default PATH/../jobs/scene_vocab)"),
    "samples": SuiteInfo(
        "larr.quality.samples", "the Spark job outputs (holding ctr_samples/), or ctr_samples/ itself",
        "per (day, split): label rates inside quality.click_rate / quality.conversion_rate and the split the "
        "spec gives that day (no row of a test or validation day in training); per test day: the share of "
        "rows whose categorical value never occurs in training <= quality.max_oov_share"),
    "online": SuiteInfo(
        "larr.quality.online", "a Feast repo (`larr features publish --repo`), or the real-time state's "
        "parquet rows (features/region_scene_state.parquet)",
        "every real-time key (--raw: every row of its table) has had an event of every group, and none lags "
        "--as-of (default: the newest event; `now` in production) by more than "
        "quality.max_staleness_minutes"),
}


@dataclass(frozen=True)
class Inputs:
    """What a suite may need besides PATH (each suite reads only its own)."""

    run_date: date | None = None  # raw: the newest log partition must not be older
    as_of: datetime | None = None  # online: the reference time of freshness (None: the newest event)
    vocab: Path | None = None  # embeddings: scene_vocab/ (or the jobs folder holding it)
    raw: Path | None = None  # online: the raw folder whose entity table lists every key
    tokenizer: Path | None = None  # corpus: a tokenizer.json (or its folder) to count tokens with

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date | datetime) else str(v)) for k, v in self.__dict__.items()
                if v is not None}


class QualityError(RuntimeError):
    """A suite failed; the message is its summary (what a scheduler task log shows)."""

    def __init__(self, result: SuiteResult, source: str = ""):
        self.result = result
        super().__init__(result.summary(source=source))


def check(suite: str, path: str | Path, cfg: LarrConfig, *, inputs: Inputs | None = None,
          out: str | Path | None = None) -> SuiteResult:
    """Run suite ``suite`` on ``path``; results and Data Docs go to ``out`` (default ``runs/quality/<suite>``).

    Raises ``FileNotFoundError`` for a missing input and ``KeyError`` for an unknown suite (user errors); a
    failed expectation is not an error: see :attr:`SuiteResult.success` or use :func:`require`."""
    if suite not in SUITES:
        raise KeyError(f"unknown quality suite {suite!r}; suites: {', '.join(SUITES)}")
    from larr.spec import load_spec

    src = Path(path)
    if not src.exists():
        raise FileNotFoundError(f"{suite} suite: {src} does not exist; PATH is {SUITES[suite].path}")
    inputs = inputs or Inputs()
    module = importlib.import_module(SUITES[suite].module)
    spec = load_spec(cfg.spec)
    batches = module.batches(src, cfg, spec, inputs)
    from larr.quality.gx import run_suite

    target = Path(out) if out is not None else DEFAULT_OUT / suite
    return run_suite(suite, batches, target, inputs={"path": str(src), "spec": spec.name, "profile": cfg.profile,
                                                     **inputs.as_dict()})


def require(suite: str, path: str | Path, cfg: LarrConfig, *, inputs: Inputs | None = None,
            out: str | Path | None = None) -> SuiteResult:
    """:func:`check`, raising :class:`QualityError` (its message: the summary) when an expectation fails."""
    result = check(suite, path, cfg, inputs=inputs, out=out)
    if not result.success:
        raise QualityError(result, str(path))
    return result
