"""``larr validate DIR``: check a raw data folder against the contract of a feature spec (:mod:`larr.contract`).

Tables are read in dependency order (a referenced table before the tables that point at it) so that
foreign keys and cross-table rules can be checked; partitioned tables are read one file at a time so a large
log never has to fit in memory (key uniqueness is still checked across all the files of a partition).
Every violation is collected -- the run does not stop at the first -- and reported with the table, column,
rule, number of offending rows, a few examples and the fix.  A file that cannot be read is reported once;
checks that need every row of its table are skipped, and the report says which.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from larr.contract import Column, Context, Lookup, Table, history_label, tables_from_spec
from larr.spec import Spec, load_spec

log = logging.getLogger("larr.validate")
MAX_EXAMPLES = 3
# violations that leave a table incomplete (some of its rows could not be read)
_CAUSES = ("table_present", "readable", "column_present", "column_type")
_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass
class Violation:
    """One broken rule in one table column."""

    table: str
    column: str
    rule: str
    rows: int
    total_rows: int
    description: str
    fix: str
    examples: list[dict[str, Any]] = field(default_factory=list)

    def message(self) -> str:
        ex = "; ".join(", ".join(f"{k}={v}" for k, v in e.items()) for e in self.examples)
        return (f"{self.table}.{self.column} [{self.rule}]: {self.rows:,} of {self.total_rows:,} rows violate "
                f"'{self.description}'" + (f". Examples: {ex}" if ex else "") + f". Fix: {self.fix}.")


@dataclass
class Report:
    """Outcome of validating one folder."""

    path: str
    rows: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "rows": self.rows,
                "violations": [asdict(v) | {"message": v.message()} for v in self.violations]}


class ContractError(ValueError):
    """Raised by :func:`require_valid` when a folder breaks the contract."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__("raw data breaks the contract:\n" + "\n".join("  " + v.message() for v in report.violations))


def _type_ok(col: Column, t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    kind = col.dtype
    if kind == "int":
        return pa.types.is_integer(t)
    if kind == "float":
        return pa.types.is_floating(t) or pa.types.is_integer(t)
    if kind == "string":
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    if kind == "bool":
        return pa.types.is_boolean(t)
    if kind == "timestamp":
        return pa.types.is_timestamp(t)
    if kind == "date":
        return pa.types.is_date(t)
    if kind.startswith("list<"):
        return pa.types.is_list(t) or pa.types.is_large_list(t)
    raise ValueError(f"contract column {col.name} has unknown type {kind}")


@dataclass
class _Partition:
    """The files of one table (unpartitioned: one file) or of one ``date=`` folder of a partitioned table."""

    label: str  # folder name, "" for an unpartitioned table
    day: date | None
    files: list[Path]


def _partition_day(name: str) -> date | None:
    m = _PARTITION.match(name)
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:  # date=2024-13-45
        return None


def _partitions(root: Path, table: Table) -> list[_Partition]:
    if not table.partitioned:
        p = root / f"{table.name}.parquet"
        return [_Partition("", None, [p])] if p.exists() else []
    folder = root / table.name
    if not folder.is_dir():
        return []
    out = []
    for part in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        files = sorted(f for f in part.glob("*.parquet") if f.is_file() and not f.name.startswith(("_", ".")))
        out.append(_Partition(part.name, _partition_day(part.name), files))
    return out


class _Collector:
    """Accumulates offending counts and examples per (table, column, rule) across chunks."""

    def __init__(self, table: Table):
        self.table = table
        self.found: dict[tuple[str, str], Violation] = {}

    def add(self, column: str, rule: str, description: str, fix: str, df: pd.DataFrame | None,
            mask: np.ndarray | None, example_cols: tuple[str, ...] = (), count: int | None = None,
            examples: list[dict[str, Any]] | None = None) -> None:
        n = int(mask.sum()) if mask is not None else int(count or 0)
        if n == 0:
            return
        v = self.found.setdefault((column, rule), Violation(self.table.name, column, rule, 0, 0, description, fix))
        v.rows += n
        if examples:
            v.examples += examples[:MAX_EXAMPLES - len(v.examples)]
        if df is not None and mask is not None and len(v.examples) < MAX_EXAMPLES:
            cols = [c for c in (*self.table.key, *example_cols, column) if c in df.columns]
            cols = list(dict.fromkeys(cols))
            for row in df.loc[mask, cols].head(MAX_EXAMPLES - len(v.examples)).to_dict("records"):
                v.examples.append({c: _plain(row[c]) for c in cols})


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v if isinstance(v, int | float | str | bool) or v is None else str(v)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:200].rstrip(". ") or "unreadable"
    return f"{type(exc).__name__}: {text}"


def _check_columns(table: Table, schema: pa.Schema, where: str, coll: _Collector) -> bool:
    ok = True
    for col in table.columns:
        if col.name not in schema.names:
            coll.add(col.name, "column_present", f"column {col.name} ({col.dtype}) is present",
                     f"add column {col.name} of type {col.dtype} to {where} ({col.doc})", None, None, count=1)
            ok = False
        elif not _type_ok(col, schema.field(col.name).type):
            coll.add(col.name, "column_type", f"column {col.name} has type {col.dtype}",
                     f"cast {col.name} from {schema.field(col.name).type} to {col.dtype}", None, None, count=1)
            ok = False
    return ok


def _read(f: Path, where: str, table: Table, coll: _Collector) -> pd.DataFrame | None:
    """The contract columns of one file, or None (reported) when it is unreadable or malformed."""
    try:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
    except Exception as exc:  # not parquet at all, truncated footer, ...
        _unreadable(table, where, exc, coll)
        return None
    if not _check_columns(table, schema, where, coll):
        return None
    try:
        keep = {c.name for c in table.columns}
        return pf.read(columns=[c for c in schema.names if c in keep]).to_pandas()
    except Exception as exc:  # corrupted pages behind an intact footer
        _unreadable(table, where, exc, coll)
        return None


def _unreadable(table: Table, where: str, exc: Exception, coll: _Collector) -> None:
    coll.add("*", "readable", f"every file of {table.name} is a readable parquet file",
             "rewrite or remove the unreadable file(s)", None, None, count=1,
             examples=[{"file": where, "error": _short(exc)}])


def _check_chunk(table: Table, df: pd.DataFrame, ctx: Context, coll: _Collector, dup: np.ndarray,
                 skipped: dict[str, set[str]]) -> None:
    for col in table.columns:
        s = df[col.name]
        nulls = s.isna().to_numpy()
        if not col.nullable:
            coll.add(col.name, "not_null", f"{col.name} is never null", f"fill or drop rows with null {col.name}",
                     df, nulls)
        present = ~nulls
        if col.min is not None or col.max is not None:
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            bad = present & ~np.isfinite(v)
            if col.min is not None:
                bad |= present & (v < col.min)
            if col.max is not None:
                bad |= present & (v > col.max)
            coll.add(col.name, "in_range", f"{col.name} in [{col.min}, {col.max}]",
                     f"repair or drop rows with {col.name} outside [{col.min}, {col.max}]", df, bad)
        if col.allowed is not None:
            bad = present & ~s.isin(list(col.allowed)).to_numpy()
            coll.add(col.name, "allowed_values", f"{col.name} is one of {list(col.allowed)}",
                     f"map {col.name} onto the allowed values", df, bad)
        if col.references:
            ref_table = col.references.split(".")[0]
            keys = ctx.keys.get(col.references)
            if ref_table in ctx.incomplete:
                skipped.setdefault(ref_table, set()).add(f"{table.name}.{col.name} [foreign_key]")
            elif keys is not None:
                bad = present & ~np.isin(s.to_numpy(), keys)
                coll.add(col.name, "foreign_key", f"{col.name} exists in {col.references}",
                         f"add the missing rows to {ref_table} or drop these rows", df, bad)
    key = list(table.key)
    scope = " within its date partition" if table.partitioned else ""
    coll.add(key[0], "unique_key", f"({', '.join(key)}) is unique{scope}",
             "deduplicate on the key (keep the newest row)", df, dup)
    for rule in table.rules:
        if not all(c in df.columns for c in (rule.column, *rule.example_columns)):
            continue
        blocked = [n for n in rule.needs if n in ctx.incomplete]
        for n in blocked:
            skipped.setdefault(n, set()).add(f"{table.name}.{rule.column} [{rule.name}]")
        if not blocked:
            coll.add(rule.column, rule.name, rule.description, rule.fix, df, rule.check(df, ctx), rule.example_columns)


def _key_index(df: pd.DataFrame, key: list[str]) -> pd.Index:
    return pd.MultiIndex.from_frame(df[key]) if len(key) > 1 else pd.Index(df[key[0]])


def _window_from(root: Path, log_table: Table, start: date | None,
                 end: date | None) -> tuple[date | None, date | None]:
    manifest = root / "manifest.json"
    if (start is None or end is None) and manifest.exists():
        w = json.loads(manifest.read_text()).get("window", {})
        start = start or (date.fromisoformat(w["start"]) if "start" in w else None)
        end = end or (date.fromisoformat(w["end"]) if "end" in w else None)
    if start is None or end is None:
        days = [p.day for p in _partitions(root, log_table) if p.day is not None and p.files]
        if days:
            start, end = start or min(days), end or max(days)
    return start, end


def _dependencies(tables: tuple[Table, ...]) -> dict[str, list[str]]:
    """Tables each table's checks read: referenced tables and the tables its rules need."""
    out: dict[str, list[str]] = {}
    for t in tables:
        deps = [c.references.split(".")[0] for c in t.columns if c.references]
        deps += [n for r in t.rules for n in r.needs]
        out[t.name] = [d for d in dict.fromkeys(deps) if d != t.name]
    return out


def _read_order(tables: tuple[Table, ...], wanted: set[str]) -> list[Table]:
    """The wanted tables and everything they depend on, dependencies first (otherwise in spec order)."""
    by_name = {t.name: t for t in tables}
    deps = _dependencies(tables)
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting or name not in by_name:
            return
        visiting.add(name)
        for d in deps[name]:
            visit(d)
        visiting.discard(name)
        order.append(name)

    for t in tables:
        if t.name in wanted:
            visit(t.name)
    return [by_name[n] for n in order]


@dataclass
class _Gather:
    """What one table contributes to the :class:`Context` of the tables read after it."""

    key_cols: list[str]
    lookups: list[Lookup]
    positives: tuple[str, str, str] | None  # (request, item key, label) on the log table
    keys: dict[str, list[np.ndarray]] = field(default_factory=dict)
    frames: dict[Lookup, list[pd.DataFrame]] = field(default_factory=dict)
    pairs: set[tuple[Any, Any]] = field(default_factory=set)

    def add(self, df: pd.DataFrame) -> None:
        for c in self.key_cols:
            if c in df.columns:
                self.keys.setdefault(c, []).append(pd.unique(df[c].dropna().to_numpy()))
        for lk in self.lookups:
            if lk[1] in df.columns and lk[2] in df.columns:
                self.frames.setdefault(lk, []).append(df[[lk[1], lk[2]]])
        if self.positives and all(c in df.columns for c in self.positives):
            req, item, label = self.positives
            pos = df[label] == 1
            self.pairs.update(zip(df.loc[pos, req].tolist(), df.loc[pos, item].tolist(), strict=True))

    def into(self, table: str, ctx: Context) -> None:
        for c, parts in self.keys.items():
            ctx.keys[f"{table}.{c}"] = np.unique(np.concatenate(parts)) if parts else np.array([])
        for lk, frames in self.frames.items():
            df = pd.concat(frames, ignore_index=True).dropna(subset=[lk[1]]).drop_duplicates(lk[1])
            ctx.lookups[lk] = df.set_index(lk[1])[lk[2]]
        if self.positives:
            ctx.positive_impressions = self.pairs


def validate_folder(path: str | Path, *, spec: Spec | None = None, start: date | None = None,
                    end: date | None = None, tables: list[str] | None = None) -> Report:
    """Validate every table of ``spec`` (default: the shipped ``food_delivery``), or the named ones, under
    ``path`` and return the report.  The data window is ``start``/``end``, else ``manifest.json``'s, else
    the span of the log's date partitions."""
    spec = spec or load_spec()
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"raw data folder {root} does not exist")
    contract = tables_from_spec(spec)
    by_name = {t.name: t for t in contract}
    unknown = [n for n in tables or [] if n not in by_name]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; spec {spec.name} has {', '.join(by_name)}")
    wanted = set(tables or by_name)
    ctx = Context()
    ctx.window_start, ctx.window_end = _window_from(root, by_name[spec.log.table], start, end)
    referenced = {c.references for t in contract for c in t.columns if c.references}
    lookups = {lk for t in contract for r in t.rules for lk in r.lookups}
    positives = ((spec.log.request, spec.item_key, history_label(spec))
                 if any(n == spec.log.table for t in contract for r in t.rules for n in r.needs) else None)
    report = Report(str(root))
    skipped: dict[str, set[str]] = {}  # incomplete table -> checks skipped because of it
    causes: dict[str, list[Violation]] = {}
    for table in _read_order(contract, wanted):
        check = table.name in wanted
        coll = _Collector(table)
        gather = _Gather([r.split(".", 1)[1] for r in referenced if r.split(".", 1)[0] == table.name],
                         [lk for lk in lookups if lk[0] == table.name],
                         positives if table.name == spec.log.table else None)
        parts = _partitions(root, table)
        if not any(p.files for p in parts):
            coll.add("*", "table_present", f"table {table.name} exists at {table.path}",
                     f"write {table.name} as {table.path}", None, None, count=1)
            ctx.incomplete.add(table.name)
        total = 0
        key = list(table.key)
        for part in parts:
            seen: pd.Index | None = None  # keys of the earlier files of this partition
            part_rows = 0
            for f in part.files:
                df = _read(f, str(f.relative_to(root)), table, coll)
                if df is None:
                    ctx.incomplete.add(table.name)
                    continue
                total += len(df)
                part_rows += len(df)
                ctx.partition_date = part.day
                if check:
                    idx = _key_index(df, key)
                    dup = idx.duplicated(keep="first")
                    if seen is not None:
                        dup |= idx.isin(seen)
                    seen = idx if seen is None else seen.append(idx)
                    _check_chunk(table, df, ctx, coll, np.asarray(dup), skipped)
                gather.add(df)
            if table.partitioned and part.day is None:
                coll.add("*", "partition_date", f"every partition folder of {table.name} is named date=YYYY-MM-DD",
                         f"move the files of {part.label} into the date=YYYY-MM-DD folder of their day"
                         + (f" ({table.time})" if table.time else ""), None, None, count=max(part_rows, 1),
                         examples=[{"partition": part.label, "files": len(part.files), "rows": part_rows}])
        ctx.partition_date = None
        if table.name not in ctx.incomplete:
            gather.into(table.name, ctx)
        for v in coll.found.values():
            v.total_rows = total
        report.rows[table.name] = total
        causes[table.name] = [v for v in coll.found.values() if v.rule in _CAUSES]
        if check:
            report.violations += list(coll.found.values())
    for name, checks in skipped.items():
        if not causes.get(name):
            continue
        first = causes[name][0]
        first.fix += (f"; until then these checks that need every row of {name} were skipped: "
                      + ", ".join(sorted(checks)))
        if name not in wanted:  # the cause is reported, or wanted checks would be skipped silently
            report.violations += causes[name]
    return report


def require_valid(path: str | Path, spec: Spec | None = None, **kwargs: Any) -> Report:
    """Validate and raise :class:`ContractError` (naming every violation) if the folder is not clean."""
    report = validate_folder(path, spec=spec, **kwargs)
    if not report.ok:
        raise ContractError(report)
    log.info("contract ok: %s", ", ".join(f"{k}={v:,}" for k, v in report.rows.items()))
    return report
