"""``larr validate DIR``: check a raw data folder against the contract in :mod:`larr.contract`.

Tables are read in dependency order (regions before districts before POIs ...)
so that foreign keys can be checked; partitioned tables are read one file at a
time so a large log never has to fit in memory.  Every violation is collected
-- the run does not stop at the first -- and reported with the table, column,
rule, number of offending rows, a few examples and the fix.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from larr.contract import TABLE_BY_NAME, TABLES, Column, Context, Table

log = logging.getLogger("larr.validate")
MAX_EXAMPLES = 3


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


def _files(root: Path, table: Table) -> list[tuple[Path, date | None]]:
    if not table.partitioned:
        p = root / f"{table.name}.parquet"
        return [(p, None)] if p.exists() else []
    out = []
    for part in sorted((root / table.name).glob("date=*")):
        try:
            day = date.fromisoformat(part.name.split("=", 1)[1])
        except ValueError:
            day = None
        out += [(f, day) for f in sorted(part.glob("*.parquet"))]
    return out


class _Collector:
    """Accumulates offending counts and examples per (table, column, rule) across chunks."""

    def __init__(self, table: Table):
        self.table = table
        self.found: dict[tuple[str, str], Violation] = {}

    def add(self, column: str, rule: str, description: str, fix: str, df: pd.DataFrame | None,
            mask: np.ndarray | None, example_cols: tuple[str, ...] = (), count: int | None = None) -> None:
        n = int(mask.sum()) if mask is not None else int(count or 0)
        if n == 0:
            return
        v = self.found.setdefault((column, rule), Violation(self.table.name, column, rule, 0, 0, description, fix))
        v.rows += n
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


def _check_columns(table: Table, schema: pa.Schema, path: Path, coll: _Collector) -> bool:
    ok = True
    for col in table.columns:
        if col.name not in schema.names:
            coll.add(col.name, "column_present", f"column {col.name} ({col.dtype}) is present",
                     f"add column {col.name} of type {col.dtype} to {path.name} ({col.doc})", None, None, count=1)
            ok = False
        elif not _type_ok(col, schema.field(col.name).type):
            coll.add(col.name, "column_type", f"column {col.name} has type {col.dtype}",
                     f"cast {col.name} from {schema.field(col.name).type} to {col.dtype}", None, None, count=1)
            ok = False
    return ok


def _check_chunk(table: Table, df: pd.DataFrame, ctx: Context, coll: _Collector) -> None:
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
            keys = ctx.keys.get(col.references)
            if keys is not None:
                vals = s.to_numpy()
                bad = present & ~np.isin(vals, keys)
                coll.add(col.name, "foreign_key", f"{col.name} exists in {col.references}",
                         f"add the missing rows to {col.references.split('.')[0]} or drop these rows", df, bad)
    key = list(table.key)
    dup = df.duplicated(subset=key, keep="first").to_numpy()
    scope = " within its date partition" if table.partitioned else ""
    coll.add(key[0], "unique_key", f"({', '.join(key)}) is unique{scope}",
             "deduplicate on the key (keep the newest row)", df, dup)
    for rule in table.rules:
        if all(c in df.columns for c in (rule.column, *rule.example_columns)):
            coll.add(rule.column, rule.name, rule.description, rule.fix, df, rule.check(df, ctx), rule.example_columns)


def _window_from(root: Path, start: date | None, end: date | None) -> tuple[date | None, date | None]:
    manifest = root / "manifest.json"
    if (start is None or end is None) and manifest.exists():
        w = json.loads(manifest.read_text()).get("window", {})
        start = start or (date.fromisoformat(w["start"]) if "start" in w else None)
        end = end or (date.fromisoformat(w["end"]) if "end" in w else None)
    if start is None or end is None:
        days = [d for _, d in _files(root, TABLE_BY_NAME["impressions"]) if d is not None]
        if days:
            start, end = start or min(days), end or max(days)
    return start, end


def validate_folder(path: str | Path, *, start: date | None = None, end: date | None = None,
                    tables: list[str] | None = None) -> Report:
    """Validate every table (or the named ones) under ``path`` and return the report."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"raw data folder {root} does not exist")
    ctx = Context()
    ctx.window_start, ctx.window_end = _window_from(root, start, end)
    report = Report(str(root))
    wanted = set(tables or [t.name for t in TABLES])
    for table in TABLES:
        coll = _Collector(table)
        files = _files(root, table)
        total = 0
        if not files:
            coll.add("*", "table_present", f"table {table.name} exists at {table.path}",
                     f"write {table.name} as {table.path}", None, None, count=1)
        keep_cols = {c.name for c in table.columns}
        key_values: dict[str, list[np.ndarray]] = {}
        for f, day in files:
            try:
                schema = pq.read_schema(f)
            except Exception as exc:  # unreadable file: report and move on
                coll.add("*", "readable", f"{f} is a readable parquet file", f"rewrite {f} ({exc})", None, None,
                         count=1)
                continue
            if not _check_columns(table, schema, f, coll):
                continue
            df = pq.read_table(f, columns=[c for c in schema.names if c in keep_cols]).to_pandas()
            total += len(df)
            ctx.partition_date = day
            if table.name in wanted:
                _check_chunk(table, df, ctx, coll)
            if table.name == "impressions":
                o = df["order"] == 1
                ctx.ordered_impressions.update(zip(df.loc[o, "request_id"].tolist(), df.loc[o, "poi_id"].tolist(),
                                                   strict=True))
            if not table.partitioned:
                for k in table.key:
                    key_values.setdefault(k, []).append(df[k].dropna().to_numpy())
                if table.name == "districts":
                    ctx.district_region = df.set_index("district_id")["region_id"]
                if table.name == "pois":
                    ctx.poi_created = df.drop_duplicates("poi_id").set_index("poi_id")["created_date"]
        ctx.partition_date = None
        for k, parts in key_values.items():
            if len(table.key) == 1:
                ctx.keys[f"{table.name}.{k}"] = np.unique(np.concatenate(parts))
        for v in coll.found.values():
            v.total_rows = total
        report.rows[table.name] = total
        if table.name in wanted:
            report.violations += list(coll.found.values())
    return report


def require_valid(path: str | Path, **kwargs: Any) -> Report:
    """Validate and raise :class:`ContractError` (naming every violation) if the folder is not clean."""
    report = validate_folder(path, **kwargs)
    if not report.ok:
        raise ContractError(report)
    log.info("contract ok: %s", ", ".join(f"{k}={v:,}" for k, v in report.rows.items()))
    return report
