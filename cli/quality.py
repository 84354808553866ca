"""``larr quality check SUITE PATH``: run one data-quality suite (:mod:`larr.quality`) and gate on it.

Exit 0 when every expectation holds, 1 when one fails (the summary names it: expectation, column, observed
value, bound), 2 on a user error (missing PATH, bad option) with one line and no traceback.  The full result
and the Data Docs land in ``--out`` (default ``runs/quality/<suite>``); the last lines print where.
"""

from __future__ import annotations

import argparse
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from larr.entry import add_config_args, iso_date
from larr.quality import DEFAULT_OUT, SUITES, Inputs


def _as_of(text: str) -> datetime:
    if text == "now":
        return datetime.now(UTC)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither `now` nor an ISO time (2024-07-08T23:00)") from None


def _suites_help() -> str:
    intro = ("Run one Great Expectations suite and print a summary of its expectations (expectation, column, "
             "observed value, bound). Exit 0 when all hold, 1 when one fails, 2 on a user error. The full "
             f"result (result.json) and the Data Docs HTML go to --out (default {DEFAULT_OUT}/<suite>/); the "
             "last line prints the Data Docs index.html. Bounds: the quality section of the config "
             "(`larr config`).")
    lines = [*textwrap.wrap(intro, 100), "", "suites:"]
    for name, info in SUITES.items():
        lines.append(f"  {name}")
        lines += textwrap.wrap(f"PATH: {info.path}.", 100, initial_indent="    ", subsequent_indent="      ")
        lines += textwrap.wrap(f"checks: {info.checks}.", 100, initial_indent="    ", subsequent_indent="      ")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``larr quality check`` (config arguments and date type: the shared ones of larr/entry.py)."""
    p = sub.add_parser("quality", help="data-quality gates: Great Expectations suites at each data boundary",
                       description="Data-quality gates derived from the feature spec: one Great Expectations "
                                   "suite per data boundary (raw, corpus, embeddings, samples, online). "
                                   "`larr quality check --help` lists them.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("check", help="run one suite on PATH and exit non-zero when it fails",
                           description=_suites_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("suite", choices=list(SUITES), help="the suite to run (see above)")
    c.add_argument("path", help="what the suite checks (see above)")
    add_config_args(c)
    c.add_argument("--run-date", type=iso_date, metavar="YYYY-MM-DD",
                   help="raw: the newest log partition must not be older (quality.partition_lag_days)")
    c.add_argument("--as-of", type=_as_of, metavar="TIME",
                   help="online: reference time of freshness, ISO (UTC) or `now` (default: the newest event)")
    c.add_argument("--vocab", type=Path, metavar="DIR",
                   help="embeddings: the scene_vocab folder or the Spark job outputs holding it "
                        "(default PATH/../jobs/scene_vocab)")
    c.add_argument("--raw", type=Path, metavar="DIR",
                   help="online: raw data folder whose entity table lists every real-time key")
    c.add_argument("--tokenizer", type=Path, metavar="PATH",
                   help="corpus: tokenizer.json (or its folder) to count tokens with (default: llm.backbone.path's, "
                        "else the default backbone's recipe trained on the corpus)")
    c.add_argument("--out", metavar="DIR", help=f"results and Data Docs (default {DEFAULT_OUT}/<suite>)")
    c.add_argument("--all", action="store_true", help="print every expectation, not only the failed ones")
    c.set_defaults(func=cmd_quality)


def cmd_quality(args: argparse.Namespace) -> int:
    from cli.main import _config
    from larr.quality import check

    cfg = _config(args)
    inputs = Inputs(run_date=args.run_date, as_of=args.as_of, vocab=args.vocab, raw=args.raw,
                    tokenizer=args.tokenizer)
    result = check(args.suite, args.path, cfg, inputs=inputs, out=args.out)
    print(result.summary(every_row=args.all, source=args.path))
    return 0 if result.success else 1
