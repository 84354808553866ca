"""``larr validate DIR``: check a raw data folder against the contract of a feature spec (:mod:`larr.contract`).

Tables are read in dependency order (a referenced table before the tables that point at it) so that
foreign keys and cross-table rules can be checked.  Every file is streamed in record batches of
``CHUNK_ROWS`` rows, so neither a large log nor one large part file has to fit in memory; key uniqueness is
checked across all the files of a partition (Spark writes several per partition) through 64-bit hashes of
the key, 8 bytes a row.

The validator judges the files the Spark jobs read: ``spark.read.parquet`` reads every visible file under a
table (any name, any depth; ``_`` and ``.`` names are hidden) and takes a folder named ``<table>.parquet``
as a table of part files.  So a stray non-parquet file is an unreadable file, a file outside a
``date=YYYY-MM-DD`` folder a misplaced one, and an empty ``date=`` folder a violation (the jobs count it
as a day of the window).

Every violation is collected -- the run does not stop at the first -- and reported with the table, column,
rule, number of offending rows (files, folders for file-level rules), a few examples and the fix.  A file
that cannot be read is reported once; checks that need every row of its table are skipped, and the report
says which.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
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
CHUNK_ROWS = 262_144  # rows per record batch read from a file: bounds the memory of one check
# violations that leave a table incomplete (some of its rows could not be read)
_CAUSES = ("table_present", "readable", "column_present", "column_type")
# rules counted in files or folders rather than rows (the message says which)
_UNITS = {"table_present": "tables", "readable": "files", "column_present": "files", "column_type": "files",
          "partition_date": "folders", "partition_not_empty": "folders"}
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
    unit: str = "rows"  # what rows / total_rows count: rows, or files / folders / tables for file-level rules

    def message(self) -> str:
        ex = "; ".join(", ".join(f"{k}={v}" for k, v in e.items()) for e in self.examples)
        return (f"{self.table}.{self.column} [{self.rule}]: {self.rows:,} of {self.total_rows:,} {self.unit} "
                f"violate '{self.description}'" + (f". Examples: {ex}" if ex else "") + f". Fix: {self.fix}.")


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
    """The files of one table (unpartitioned: one file, or the part files of a ``<table>.parquet`` folder) or
    of one folder of a partitioned table: ``date=YYYY-MM-DD``, or any other folder holding files (``day`` is
    then None and the files are misplaced)."""

    label: str  # folder relative to the table folder ("" for an unpartitioned table or the table folder itself)
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


def _hidden(path: Path, base: Path) -> bool:
    """Spark's rule: a name starting with ``_`` or ``.`` (``_SUCCESS``, ``.crc``, ``_temporary/``) is not data."""
    return any(part.startswith(("_", ".")) for part in path.relative_to(base).parts)


def _visible_files(folder: Path) -> list[Path]:
    """Every file Spark reads under ``folder``: any name, any depth, hidden names excluded."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and not _hidden(f, folder))


def _partitions(root: Path, table: Table) -> list[_Partition]:
    """The folders of ``table`` holding data files, plus every empty ``date=`` folder (``files == []``).

    Every visible file counts, whatever its name, because ``spark.read.parquet`` reads them all: a
    ``data.csv`` beside the parts is an unreadable file, a part outside a ``date=`` folder a misplaced one."""
    if not table.partitioned:
        p = root / f"{table.name}.parquet"
        if p.is_dir():  # Spark's output: a folder of part files
            return [_Partition("", None, _visible_files(p))]
        return [_Partition("", None, [p])] if p.exists() else []
    folder = root / table.name
    if not folder.is_dir():
        return []
    by_dir: dict[Path, list[Path]] = {}
    for f in _visible_files(folder):
        by_dir.setdefault(f.parent, []).append(f)
    holding = {d.relative_to(folder).parts[0] for d in by_dir if d != folder}
    for d in folder.iterdir():  # empty date folders: the jobs count them as days of the window
        if d.is_dir() and not _hidden(d, folder) and d.name not in holding:
            by_dir[d] = []
    out = []
    for d in sorted(by_dir):
        label = d.relative_to(folder).as_posix() if d != folder else ""
        out.append(_Partition(label, _partition_day(label), by_dir[d]))
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
        v = self.found.setdefault((column, rule), Violation(self.table.name, column, rule, 0, 0, description, fix,
                                                            unit=_UNITS.get(rule, "rows")))
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
    """Every contract column present with its type in the file ``where``; False (reported) when not."""
    ok = True
    for col in table.columns:
        if col.name not in schema.names:
            coll.add(col.name, "column_present", f"column {col.name} ({col.dtype}) is present in every file",
                     f"add column {col.name} of type {col.dtype} ({col.doc}) to the file(s) named", None, None,
                     count=1, examples=[{"file": where}])
            ok = False
        elif not _type_ok(col, schema.field(col.name).type):
            found = schema.field(col.name).type
            coll.add(col.name, "column_type", f"column {col.name} has type {col.dtype} in every file",
                     f"cast {col.name} to {col.dtype} in the file(s) named", None, None, count=1,
                     examples=[{"file": where, "type": str(found)}])
            ok = False
    return ok


def _chunks(f: Path, where: str, table: Table, coll: _Collector) -> Iterator[pd.DataFrame | None]:
    """The contract columns of one file in record batches of ``CHUNK_ROWS`` rows.  Yields None, last, when
    the file is unreadable (not parquet, truncated, corrupted pages: reported once) or lacks a contract
    column or type (reported); the caller then marks the table incomplete.  Rows of the batches before a
    corrupted page have been yielded and checked."""
    try:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
    except Exception as exc:  # not parquet at all, truncated footer, a folder, ...
        _unreadable(table, where, exc, coll)
        yield None
        return
    if not _check_columns(table, schema, where, coll):
        yield None
        return
    keep = {c.name for c in table.columns}
    columns = [c for c in schema.names if c in keep]
    batches = pf.iter_batches(batch_size=CHUNK_ROWS, columns=columns)
    n = 0
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                break
            df = batch.to_pandas()
        except Exception as exc:  # corrupted pages behind an intact footer
            _unreadable(table, where, exc, coll)
            yield None
            return
        n += 1
        yield df
    if n == 0:  # a file without rows still has columns: what it contributes (no keys) is known
        yield schema.empty_table().select(columns).to_pandas()


def _unreadable(table: Table, where: str, exc: Exception, coll: _Collector) -> None:
    coll.add("*", "readable", f"every file of {table.name} is a readable parquet file",
             "rewrite or remove the unreadable file(s) (the Spark jobs read every visible file under the table)",
             None, None, count=1, examples=[{"file": where, "error": f"unreadable parquet: {_short(exc)}"}])


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


def key_hashes(df: pd.DataFrame, table: Table) -> np.ndarray:
    """One uint64 hash per row of ``table``'s key columns, equal for equal keys whatever a file's physical
    types.

    Integer and boolean key columns (by the contract) are hashed as int64, so an int32 part and an int64
    part, or a part whose nulls made pandas read the column as float, give the same hash for the same id.
    The null pattern is hashed with the values: a null id differs from id 0, and two null keys are equal, as
    pandas' ``duplicated`` has them."""
    canonical: dict[str, np.ndarray] = {}
    nulls = np.zeros(len(df), np.int64)
    for i, c in enumerate(table.key):
        s = df[c]
        nulls |= s.isna().to_numpy().astype(np.int64) << i
        if table.column(c).dtype in ("int", "bool"):
            canonical[c] = s.fillna(0).to_numpy(np.int64)
        else:
            canonical[c] = s.to_numpy()
    canonical["\0nulls"] = nulls
    return pd.util.hash_pandas_object(pd.DataFrame(canonical), index=False).to_numpy(np.uint64)


class KeySeen:
    """The keys of the files of one partition read so far, as a sorted array of 64-bit hashes (8 bytes a
    row, whatever the key's width), so uniqueness holds across every file Spark wrote for the partition
    without holding their rows.  Two different keys share a hash with probability about n^2 / 2^65 for n
    keys (3e-6 for ten million): a false duplicate is that rare, a missed one impossible."""

    def __init__(self, table: Table):
        self.table = table
        self.hashes = np.empty(0, np.uint64)

    def repeated(self, df: pd.DataFrame, keep: str | bool = "first") -> np.ndarray:
        """Mask of the rows of ``df`` whose key an earlier row had (in ``df`` or an earlier chunk or file);
        with ``keep=False`` also the first row of a key repeated within ``df``.  Remembers ``df``'s keys."""
        h = key_hashes(df, self.table)
        dup = pd.Series(h).duplicated(keep=keep).to_numpy()
        if len(self.hashes):
            at = np.searchsorted(self.hashes, h).clip(max=len(self.hashes) - 1)
            dup |= self.hashes[at] == h
        new = np.unique(h)
        if len(self.hashes):
            new = new[self.hashes[np.searchsorted(self.hashes, new).clip(max=len(self.hashes) - 1)] != new]
        merged = np.concatenate([self.hashes, new])
        merged.sort(kind="stable")  # two sorted runs: timsort merges them in linear time
        self.hashes = merged
        return dup


def _window_from(root: Path, log_table: Table, start: date | None,
                 end: date | None) -> tuple[date | None, date | None]:
    """The data window: the arguments, else ``manifest.json``'s, else the span of the log's date folders."""
    manifest = root / "manifest.json"
    if (start is None or end is None) and manifest.exists():
        try:
            w = json.loads(manifest.read_text()).get("window", {})
            start = start or (date.fromisoformat(w["start"]) if "start" in w else None)
            end = end or (date.fromisoformat(w["end"]) if "end" in w else None)
        except (ValueError, TypeError, AttributeError) as exc:  # not JSON, not an object, not a date
            raise ValueError(f"{manifest}: unreadable data window ({_short(exc)}); it must hold "
                             '{"window": {"start": "YYYY-MM-DD", "end": "YYYY-MM-DD"}}: fix it, or remove it and '
                             "pass --start/--end") from exc
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


@dataclass
class _Plan:
    """What reading a raw folder against a spec's contract needs before the first table (shared with the
    ``raw`` quality suite, :mod:`larr.quality.raw`): the tables, the data window in the :class:`Context`,
    and which columns, lookups and positive log pairs each table must contribute to the tables after it."""

    spec: Spec
    contract: tuple[Table, ...]
    by_name: dict[str, Table]
    ctx: Context
    referenced: set[str]  # "table.column" some foreign key points at
    lookups: set[Lookup]
    positives: tuple[str, str, str] | None  # (request, item key, label) when a rule needs the log's positives

    def gather(self, table: Table) -> _Gather:
        """The collector of what ``table`` contributes to the context of the tables read after it."""
        return _Gather([r.split(".", 1)[1] for r in self.referenced if r.split(".", 1)[0] == table.name],
                       [lk for lk in self.lookups if lk[0] == table.name],
                       self.positives if table.name == self.spec.log.table else None)


def _plan(root: Path, spec: Spec, start: date | None = None, end: date | None = None) -> _Plan:
    """The :class:`_Plan` of validating ``root`` against ``spec`` (window: see :func:`_window_from`)."""
    contract = tables_from_spec(spec)
    by_name = {t.name: t for t in contract}
    ctx = Context()
    ctx.window_start, ctx.window_end = _window_from(root, by_name[spec.log.table], start, end)
    needs_log = any(n == spec.log.table for t in contract for r in t.rules for n in r.needs)
    return _Plan(spec, contract, by_name, ctx,
                 referenced={c.references for t in contract for c in t.columns if c.references},
                 lookups={lk for t in contract for r in t.rules for lk in r.lookups},
                 positives=(spec.log.request, spec.item_key, history_label(spec)) if needs_log else None)


def validate_folder(path: str | Path, *, spec: Spec | None = None, start: date | None = None,
                    end: date | None = None, tables: list[str] | None = None) -> Report:
    """Validate every table of ``spec`` (default: the shipped ``food_delivery``), or the named ones, under
    ``path`` and return the report.  The data window is ``start``/``end``, else ``manifest.json``'s, else
    the span of the log's date partitions."""
    spec = spec or load_spec()
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"raw data folder {root} does not exist")
    names = [t.name for t in tables_from_spec(spec)]
    unknown = [n for n in tables or [] if n not in names]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; spec {spec.name} has {', '.join(names)}")
    plan = _plan(root, spec, start, end)
    ctx = plan.ctx
    wanted = set(tables or names)
    report = Report(str(root))
    skipped: dict[str, set[str]] = {}  # incomplete table -> checks skipped because of it
    causes: dict[str, list[Violation]] = {}
    for table in _read_order(plan.contract, wanted):
        check = table.name in wanted
        coll = _Collector(table)
        gather = plan.gather(table)
        parts = _partitions(root, table)
        if not any(p.files for p in parts):
            coll.add("*", "table_present", f"table {table.name} exists at {table.path}",
                     f"write {table.name} as {table.path}", None, None, count=1)
            ctx.incomplete.add(table.name)
        totals = {"rows": 0, "files": sum(len(p.files) for p in parts), "folders": len(parts), "tables": 1}
        for part in parts:
            seen = KeySeen(table)  # keys of the earlier files of this partition
            part_rows = 0
            for f in part.files:
                for df in _chunks(f, str(f.relative_to(root)), table, coll):
                    if df is None:
                        ctx.incomplete.add(table.name)
                        continue
                    totals["rows"] += len(df)
                    part_rows += len(df)
                    ctx.partition_date = part.day
                    if check:
                        _check_chunk(table, df, ctx, coll, seen.repeated(df), skipped)
                    gather.add(df)
            where = f"{table.name}/{part.label}"
            if table.partitioned and part.day is None:
                coll.add("*", "partition_date", f"every file of {table.name} lies in a folder named date=YYYY-MM-DD",
                         f"move the files of {where} into the date=YYYY-MM-DD folder of their day"
                         + (f" ({table.time})" if table.time else "") + " and remove the folder", None, None,
                         count=1, examples=[{"partition": part.label or "(table folder)", "files": len(part.files),
                                             "rows": part_rows}])
            elif table.partitioned and not part.files:
                coll.add("*", "partition_not_empty", f"every date=YYYY-MM-DD folder of {table.name} holds a "
                         "parquet file (the jobs count each such folder as a day of the data)",
                         f"write the rows of that day into {where}, or remove the empty folder", None, None,
                         count=1, examples=[{"partition": part.label}])
        ctx.partition_date = None
        if table.name not in ctx.incomplete:
            gather.into(table.name, ctx)
        for v in coll.found.values():
            v.total_rows = totals[v.unit]
        report.rows[table.name] = totals["rows"]
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
