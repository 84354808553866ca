"""The raw-data contract, derived from the feature spec: tables, columns, types, keys and rules.

What a raw data folder must hold is said once, in the feature spec (:mod:`larr.spec`, e.g.
``larr/specs/food_delivery.yaml``).  This module turns a spec into :class:`Table` objects -- columns with
their type, nullability, range, closed value set and foreign key, plus the row-level rules the spec implies
-- which ``larr validate`` checks (:mod:`larr.validate`), every Spark job enforces on its input, and
``docs/data-contract.md`` renders (``larr contract --markdown``), so the document cannot drift from what
is enforced.  Nothing here names a table or column of any one domain.

Rules derived from the spec:

* a table with a ``time`` column: ``inside_data_window``; the log table also ``on_partition_date``;
* each ``belongs_to`` entry: ``belongs_to`` (the referenced row's parent equals this row's parent);
* a list column with ``non_empty``: ``not_empty`` (structs: each element has a name);
* ``labels.conversion``: ``conversion_implies_click`` on the log;
* ``item.created``: ``item_exists_at_time`` on the log;
* each ``equals_derived`` entry: ``matches_derived`` (the column equals the derived value of the row);
* a history table: ``history_has_impression`` (each history row comes from a positive log row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from larr.spec import BUILTIN_SPECS, Spec, TableSpec, load_spec, spec_path

# (table, index column, value column): a Series index -> value read from a whole table
Lookup = tuple[str, str, str]


@dataclass
class Context:
    """What a rule may look at besides the rows of its own chunk (filled by the validator)."""

    window_start: date | None = None
    window_end: date | None = None
    partition_date: date | None = None
    keys: dict[str, np.ndarray] = field(default_factory=dict)  # "table.column" -> sorted unique values
    lookups: dict[Lookup, pd.Series] = field(default_factory=dict)  # e.g. districts: district_id -> region_id
    # (request, item key) of the log rows whose history label (conversion, else click) is 1
    positive_impressions: set[tuple[Any, Any]] = field(default_factory=set)
    incomplete: set[str] = field(default_factory=set)  # tables with a missing, unreadable or malformed file


RuleCheck = Callable[[pd.DataFrame, Context], np.ndarray]


@dataclass(frozen=True)
class Rule:
    """A row-level rule: ``check`` returns a boolean mask of the offending rows.

    ``lookups`` are the whole-table Series the check reads from :attr:`Context.lookups`; ``needs`` the
    tables whose every row it reads (the validator skips the rule, and says so, when one of them could
    not be read completely)."""

    name: str
    column: str  # the column the message names (the first one, for multi-column rules)
    description: str
    fix: str
    check: RuleCheck
    example_columns: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    lookups: tuple[Lookup, ...] = ()


@dataclass(frozen=True)
class Column:
    """One column: its logical type, whether it may be null, allowed range or values, and a foreign key."""

    name: str
    dtype: str  # int, float, string, bool, timestamp, date, list<string>, list<struct<name,description>>
    doc: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    references: str | None = None  # "table.column"
    non_empty: bool = False  # lists: at least one element (structs: each with a name)


@dataclass(frozen=True)
class Table:
    """A raw table: a single parquet file, or hive-partitioned by date when ``partitioned``."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partitioned: bool = False
    rules: tuple[Rule, ...] = ()
    time: str | None = None

    @property
    def path(self) -> str:
        return f"{self.name}/date=YYYY-MM-DD/*.parquet" if self.partitioned else f"{self.name}.parquet"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _none(df: pd.DataFrame) -> np.ndarray:
    return np.zeros(len(df), dtype=bool)


# ----------------------------------------------------------------------------------------- rules
def _in_window(col: str) -> Rule:
    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        d = pd.to_datetime(df[col]).dt.date
        bad = _none(df)
        if ctx.window_start is not None:
            bad |= (d < ctx.window_start).to_numpy()
        if ctx.window_end is not None:
            bad |= (d > ctx.window_end).to_numpy()
        return bad & df[col].notna().to_numpy()
    return Rule("inside_data_window", col, f"{col} falls inside the data window (start..end day)",
                "drop rows outside the window or widen it with --start/--end", check)


def _on_partition_date(col: str) -> Rule:
    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        if ctx.partition_date is None:
            return _none(df)
        return (pd.to_datetime(df[col]).dt.date != ctx.partition_date).to_numpy() & df[col].notna().to_numpy()
    return Rule("on_partition_date", col, f"{col} falls on the day of its date=YYYY-MM-DD partition",
                "write each row under the partition of its own day", check)


def _belongs_to(t: TableSpec, column: str, parent: str, parent_column: str | None) -> Rule:
    ref_table, ref_col = (t.columns[column].references or "").split(".")
    pcol = parent_column or parent
    lookup: Lookup = (ref_table, ref_col, pcol)

    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        parents = ctx.lookups.get(lookup)
        if parents is None:
            return _none(df)
        expected = df[column].map(parents)
        return (expected.notna() & df[parent].notna() & (expected != df[parent])).to_numpy()
    return Rule("belongs_to", column, f"{column} belongs to {parent} (per the {ref_table} table)",
                f"set {parent} to the {pcol} of the {ref_table} row that {column} names, or fix {column}", check,
                (parent,), needs=(ref_table,), lookups=(lookup,))


def _not_empty(col: str, dtype: str) -> Rule:
    structs = dtype.startswith("list<struct<")

    def bad(v: Any) -> bool:
        if v is None or (isinstance(v, float) and v != v) or len(v) == 0:
            return True
        return structs and any(not isinstance(e, dict) or not e.get("name") for e in v)

    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        return np.fromiter((bad(v) for v in df[col]), dtype=bool, count=len(df))
    what = "at least one element, each with a name" if structs else "at least one element"
    return Rule("not_empty", col, f"{col} has {what}", f"fill {col} or drop the row", check)


def _conversion_implies_click(conversion: str, click: str, example: tuple[str, ...]) -> Rule:
    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        return ((df[conversion] == 1) & (df[click] != 1)).to_numpy()
    return Rule("conversion_implies_click", conversion, f"{conversion} = 1 only where {click} = 1",
                f"a conversion must come from a click: set {click} = 1 or {conversion} = 0", check,
                (*example, click, conversion))


def _item_exists_at_time(spec: Spec) -> Rule:
    item, key, created, time = spec.item, spec.item_key, spec.item.created or "", spec.log.time
    lookup: Lookup = (item.table, key, created)

    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        created_at = ctx.lookups.get(lookup)
        if created_at is None:
            return _none(df)
        made = pd.to_datetime(df[key].map(created_at), errors="coerce").dt.normalize()
        if time in df.columns:
            day = pd.to_datetime(df[time], errors="coerce").dt.normalize()
        elif ctx.partition_date is not None:
            day = pd.Series(pd.Timestamp(ctx.partition_date), index=df.index)
        else:
            return _none(df)
        return (made.notna() & day.notna() & (made > day)).to_numpy()
    name = spec.item_name
    return Rule("item_exists_at_time", key, f"a {name} appears only on or after its {created}",
                f"fix the {name}'s {created} or drop the {spec.log.table} rows before it", check,
                (spec.log.request,) if spec.log.request in spec.tables[spec.log.table].columns else (),
                needs=(item.table,), lookups=(lookup,))


def _matches_derived(spec: Spec, tname: str, column: str, target: str) -> Rule:
    t = spec.tables[tname]
    # the derived values (in spec order) and lookups the target depends on, and the raw columns under them
    chain: list[str] = []
    lookups: dict[str, Lookup] = {}
    roots: list[str] = []

    def need(name: str) -> None:
        if name in chain or name in lookups or name in roots:
            return
        if name in t.derived:
            for c in t.derived[name].inputs():
                need(c)
            chain.append(name)
        elif name in t.lookups:
            lk = t.lookups[name]
            ref = t.columns[lk.via].references if lk.via in t.columns else None
            index = ref.split(".")[1] if ref and ref.startswith(f"{lk.table}.") else spec.tables[lk.table].key[0]
            need(lk.via)
            lookups[name] = (lk.table, index, lk.column)
        else:
            roots.append(name)

    need(target)
    order = [d for d in t.derived if d in chain]

    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        from larr.descriptions import derived_column  # lazy: the evaluator of spec values

        ok = df[column].notna() & df[roots].notna().all(axis=1)
        if not ok.any():
            return _none(df)
        frame = df.loc[ok].copy()
        for lname, lk in lookups.items():
            series = ctx.lookups.get(lk)
            if series is None:
                return _none(df)
            frame[lname] = frame[t.lookups[lname].via].map(series)
        for d in order:
            frame[d] = derived_column(t.derived[d], frame)
        actual, expected = frame[column], frame[target]
        if pd.api.types.is_numeric_dtype(actual) and pd.api.types.is_numeric_dtype(expected):
            diff = actual.to_numpy(float) != expected.to_numpy(float)
        else:
            diff = actual.astype(str).to_numpy() != expected.astype(str).to_numpy()
        bad = _none(df)
        bad[np.flatnonzero(ok.to_numpy())] = diff
        return bad
    steps = "; ".join(f"{d} = {t.derived[d].describe()}" for d in order)
    return Rule("matches_derived", column, f"{column} equals the derived value {target} of the row ({steps})",
                f"recompute {column} from {', '.join(roots)} as the spec's derived value {target} does", check,
                tuple(roots), needs=tuple(dict.fromkeys(lk[0] for lk in lookups.values())),
                lookups=tuple(lookups.values()))


def history_label(spec: Spec) -> str:
    """The log label a history row must come from: the conversion label, else the click label."""
    return spec.labels.conversion or spec.labels.click


def _history_has_impression(spec: Spec) -> Rule:
    req, key, log_table = spec.log.request, spec.item_key, spec.log.table
    label = history_label(spec)

    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        pairs = ctx.positive_impressions
        present = (df[req].notna() & df[key].notna()).to_numpy()
        found = np.fromiter(((r, k) in pairs for r, k in zip(df[req].tolist(), df[key].tolist(), strict=True)),
                            dtype=bool, count=len(df))
        return present & ~found
    return Rule("history_has_impression", req, f"({req}, {key}) is a row of {log_table} with {label} = 1",
                f"drop the {spec.history.table} rows without such a row, or restore the {log_table} row", check,
                (req, key),
                needs=(log_table,))


# ----------------------------------------------------------------------------------------- tables
def _column(name: str, c: Any) -> Column:
    return Column(name, c.type, c.doc, nullable=c.nullable, min=_number(c.min), max=_number(c.max),
                  allowed=tuple(c.allowed) if c.allowed is not None else None, references=c.references,
                  non_empty=c.non_empty)


def _rules(spec: Spec, name: str, t: TableSpec) -> list[Rule]:
    rules: list[Rule] = []
    is_log = name == spec.log.table
    if t.time is not None:
        rules.append(_in_window(t.time))
        if t.partitioned and is_log:
            rules.append(_on_partition_date(t.time))
    for b in t.belongs_to:
        rules.append(_belongs_to(t, b.column, b.parent, b.parent_column))
    for cname, c in t.columns.items():
        if c.non_empty and c.type.startswith("list<"):
            rules.append(_not_empty(cname, c.type))
    if is_log:
        example = tuple(c for c in (spec.log.request, spec.item_key) if c in t.columns)
        if spec.labels.conversion:
            rules.append(_conversion_implies_click(spec.labels.conversion, spec.labels.click, example))
        if spec.item.created:
            rules.append(_item_exists_at_time(spec))
    for e in t.equals_derived:
        rules.append(_matches_derived(spec, name, e["column"], e["derived"]))
    if name == spec.history.table and spec.log.request in t.columns and spec.item_key in t.columns:
        rules.append(_history_has_impression(spec))
    return rules


def tables_from_spec(spec: Spec) -> tuple[Table, ...]:
    """The contract of ``spec``: one :class:`Table` per spec table, in spec order (dependency order)."""
    return tuple(
        Table(name, t.doc, tuple(_column(c, cs) for c, cs in t.columns.items()), tuple(t.key),
              partitioned=t.partitioned, rules=tuple(_rules(spec, name, t)), time=t.time)
        for name, t in spec.tables.items())


def spec_display_path(spec: Spec) -> str:
    """Where the spec lives, as a reader finds it: ``larr/specs/<name>.yaml`` for a built-in spec."""
    if not spec.source:
        return f"{spec.name}.yaml"
    src = Path(spec.source)
    if src.stem in BUILTIN_SPECS and src.exists() and src.resolve() == spec_path(src.stem).resolve():
        return f"larr/specs/{src.name}"
    return spec.source


def contract_markdown(spec: Spec | None = None) -> str:
    """``docs/data-contract.md``: the contract of ``spec`` (default: the shipped ``food_delivery``)."""
    spec = spec or load_spec()
    lines = [
        "# Raw-data contract",
        "",
        f"Generated by `larr contract --markdown` from the feature spec `{spec.name}` "
        f"(`{spec_display_path(spec)}`); do not edit by hand.",
        "A raw data folder holds one parquet file per small table and hive-partitioned parquet",
        "(`<table>/date=YYYY-MM-DD/*.parquet`, any number of part files per partition) for the logs.",
        "Times are local wall-clock time without a zone. `larr validate DIR` checks a folder against every",
        "rule below and names the table, column, rule, offending row count and examples of any violation.",
        "The data window is read from `manifest.json` when present, else from `--start/--end`, else from",
        f"the partitions of the log `{spec.log.table}`.",
        "",
        "Rules that apply to every table: every file is readable parquet -- every file the Spark jobs read,",
        "i.e. every file under the table whose name does not start with `_` or `.`, whatever its extension",
        "(a `<table>.parquet` may also be a folder of part files); every file of a partitioned table lies in",
        "a folder named `date=YYYY-MM-DD`, and no such folder is empty (the jobs count each as a day); every",
        "column below is present with its type in every file; a column not marked nullable has no nulls;",
        "ranges and allowed values hold (a column without allowed values accepts any value); the key is",
        "unique (within each date partition, across all its files, for partitioned tables); references",
        "point at existing rows. Checks that need every row of another table are skipped, and the report",
        "says so, while a file of that table is missing or unreadable.",
        "",
    ]
    for t in tables_from_spec(spec):
        lines += [f"## `{t.name}`", "", t.doc, "", f"- path: `{t.path}`", f"- key: `{', '.join(t.key)}`"]
        if t.time:
            lines.append(f"- time: `{t.time}`")
        lines += ["", "| column | type | null | constraint | meaning |", "|---|---|---|---|---|"]
        for c in t.columns:
            cons = []
            if c.min is not None or c.max is not None:
                cons.append(f"{'' if c.min is None else c.min}..{'' if c.max is None else c.max}")
            if c.allowed is not None:
                cons.append("one of " + ", ".join(f"`{v}`" for v in c.allowed))
            if c.references:
                cons.append(f"references `{c.references}`")
            if c.non_empty:
                cons.append("non-empty")
            lines.append(f"| `{c.name}` | {c.dtype} | {'yes' if c.nullable else 'no'} | {'; '.join(cons)} | {c.doc} |")
        if t.rules:
            lines += ["", "Rules:", ""]
            lines += [f"- `{r.name}` ({r.column}): {r.description}. Fix: {r.fix}." for r in t.rules]
        lines.append("")
    return "\n".join(lines)


def _number(v: float | None) -> float | None:
    """Integral bounds as ints, so messages say ``[-90, 90]`` rather than ``[-90.0, 90.0]``."""
    return int(v) if v is not None and float(v).is_integer() else v
