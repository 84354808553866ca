"""The feature spec: one declarative YAML file from which every layer is derived.

A spec names the raw tables (columns, types, keys, optional closed value sets and ranges), the two
entities (user, item), the impression log and its labels, the history a user text summarises, every text
field and how a value becomes text, which fields form the CPT prompt/target and each contrastive pair
kind, the N scene fields of an impression, the CTR features, the evaluation slices and the split.  The
renderer's special tokens, the data contract, the Spark jobs, the Feast repo and the CTR input pipeline all
read it (DESIGN section 5): no field list lives anywhere else in code, and the simulator's world is just
the shipped spec ``food_delivery``.

Errors name the YAML line: ``spec.yaml:42: fields.POI_loc.template: unknown column 'distrct_name' of
table pois (columns: ...)``.
"""

from __future__ import annotations

import math
import re
import string
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

BUILTIN_SPECS = ("food_delivery", "app_usage")
DEFAULT_SPEC = "food_delivery"
DTYPES = ("int", "float", "string", "bool", "timestamp", "date", "list<string>", "list<struct<name,description>>")
# Columns every spec gets for free on the item entity / the log: counts of the item's history rows before the
# cutoff, and what the CTR job computes.
BUILTIN_ITEM_VALUES = ("history_count",)
FIELD_NAME = re.compile(r"^[A-Za-z]+(_[A-Za-z]+)?$")
QUERY_FIELD = "QUERY"  # free-text queries (recall) have their own token pair in every spec


class SpecError(ValueError):
    """A spec that cannot be used; every message names the file, line and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ColumnSpec(_Strict):
    """One raw column: logical type, nullability, optional range / closed value set / foreign key."""

    type: Literal[DTYPES]  # type: ignore[valid-type]
    doc: str = ""
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = Field(None, description="closed value set, enforced only where declared")
    references: str | None = Field(None, pattern=r"^\w+\.\w+$", description="table.column")
    non_empty: bool = Field(False, description="lists: at least one element (structs: each with a name)")


class LookupSpec(_Strict):
    """A column brought from a referenced table: ``region_name: {table: regions, via: region_id, column: name}``."""

    table: str
    via: str
    column: str


class BelongsToSpec(_Strict):
    """``column`` (a foreign key) must point at a row whose ``parent_column`` equals this row's ``parent``."""

    column: str
    parent: str
    parent_column: str | None = None


class ValueSpec(_Strict):
    """How a value is computed from columns: exactly one of the sources below.

    * ``column``: the column as it is;  ``list``: a list column (null = empty);
    * ``template``: ``str.format`` over columns (format specs allowed), with ``cases`` chosen by a
      comparison ``a < b`` / ``a == 3`` ...;
    * ``band``: a numeric column cut by ``bands`` = [[upper edge (exclusive; null = no bound), name], ...];
    * ``map``: a column's values mapped to words, ``default`` for the rest;
    * ``hour_of`` / ``weekday_of``: the hour (0-23) / weekday name of a timestamp column;
    * ``history``: a summary of the user's history rows (fields only; see :class:`HistoryValue`).
    """

    column: str | None = None
    list_column: str | None = Field(None, alias="list")
    template: str | None = None
    cases: list[CaseSpec] = Field(default_factory=list)
    band: str | None = None
    bands: list[tuple[float | None, str]] | None = None
    map: str | None = None
    values: dict[str, str] | None = None
    default: str | None = None
    missing: str | None = None
    hour_of: str | None = None
    weekday_of: str | None = None
    history: HistoryValue | None = None
    empty: str | None = Field(None, description="history: the text when the user has no history yet")

    @field_validator("values", mode="before")
    @classmethod
    def _str_keys(cls, v: Any) -> Any:
        # raw values are compared as text, so ``1: budget`` matches an int column
        return {str(k): w for k, w in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _one_source(self) -> ValueSpec:
        sources = [k for k in ("column", "list_column", "template", "band", "map", "hour_of", "weekday_of", "history")
                   if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError(f"give exactly one of column, list, template, band, map, hour_of, weekday_of, history "
                             f"(got {sources or 'none'})")
        if self.band is not None:
            if not self.bands:
                raise ValueError("band needs bands: [[upper edge, name], ...]")
            edges = [math.inf if e is None else float(e) for e, _ in self.bands]
            if edges != sorted(edges) or edges[-1] != math.inf:
                raise ValueError("bands: upper edges must increase and the last one must be null (no bound)")
        if self.map is not None and not self.values:
            raise ValueError("map needs values: {raw value: text}")
        if self.cases and self.template is None:
            raise ValueError("cases need a template")
        if self.history is not None and self.empty is None:
            raise ValueError("history needs empty: the text of a user with no history")
        return self

    def describe(self) -> str:
        """The derivation in words (generated docs: the data contract, the streaming events)."""
        if self.band is not None:
            return f"band of {self.band}: " + ", ".join(
                f"{name} below {edge:g}" if edge is not None else f"{name} above" for edge, name in self.bands or [])
        if self.hour_of is not None:
            return f"hour of {self.hour_of}"
        if self.weekday_of is not None:
            return f"weekday of {self.weekday_of}"
        if self.map is not None:
            return f"{self.map} mapped to words"
        if self.column is not None:
            return self.column
        if self.template is not None:
            return f"template over {', '.join(self.inputs())}"
        if self.list_column is not None:
            return f"list {self.list_column}"
        return "history summary"

    def inputs(self) -> list[str]:
        """Columns (or values) this value reads; history inputs are history columns."""
        if self.template is not None:
            names = _template_names(self.template)
            for c in self.cases:
                names += _condition_names(c.when) + _template_names(c.template)
            return list(dict.fromkeys(names))
        for k in ("column", "list_column", "band", "map", "hour_of", "weekday_of"):
            if getattr(self, k) is not None:
                return [getattr(self, k)]
        return []


class CaseSpec(_Strict):
    when: str = Field(pattern=r"^\s*\w+\s*(<|<=|>|>=|==|!=)\s*[\w.\-]+\s*$")
    template: str


class HistoryValue(_Strict):
    """``newest: N`` + template: the N newest rows, newest first; ``top: K`` + template: the K most common
    renderings; ``summary``: one template over aggregates ``count``, ``mean_<col>``, ``sum_<col>``."""

    newest: int | None = Field(None, ge=1, le=100)
    top: int | None = Field(None, ge=1, le=20)
    template: str | None = None
    summary: str | None = None

    @model_validator(mode="after")
    def _kind(self) -> HistoryValue:
        kinds = [k for k in ("newest", "top", "summary") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"history: give exactly one of newest, top, summary (got {kinds or 'none'})")
        if self.summary is None and self.template is None:
            raise ValueError("history: newest/top need a template for one row")
        return self

    def inputs(self) -> list[str]:
        if self.summary is not None:
            out = []
            for n in _template_names(self.summary):
                m = re.match(r"^(mean|sum)_(\w+)$", n)
                if m:
                    out.append(m.group(2))
            return out
        return _template_names(self.template or "")


class TableSpec(_Strict):
    doc: str = ""
    key: list[str]
    partitioned: bool = Field(False, description="hive-partitioned by date=YYYY-MM-DD (logs)")
    time: str | None = Field(None, description="timestamp column: inside the data window (and its partition day)")
    columns: dict[str, ColumnSpec]
    belongs_to: list[BelongsToSpec] = Field(default_factory=list)
    lookups: dict[str, LookupSpec] = Field(default_factory=dict)
    derived: dict[str, ValueSpec] = Field(default_factory=dict)
    equals_derived: list[dict[str, str]] = Field(default_factory=list)

    @field_validator("columns", mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        # ``name: int`` is short for ``name: {type: int}``
        if isinstance(v, dict):
            return {k: ({"type": c} if isinstance(c, str) else c) for k, c in v.items()}
        return v

    @property
    def path(self) -> str:
        return "{name}/date=YYYY-MM-DD/*.parquet" if self.partitioned else "{name}.parquet"


class EntitySpec(_Strict):
    table: str
    key: str
    name: str | None = Field(None, description="entity name in Feast (default: user / item)")
    created: str | None = Field(None, description="date column: day the entity went online (new-item slice)")
    values: dict[str, ValueSpec] = Field(default_factory=dict)


class LogSpec(_Strict):
    table: str
    request: str = Field(description="request id column (with the item key: the impression key)")
    time: str


class LabelsSpec(_Strict):
    click: str
    conversion: str | None = Field(None, description="optional; without it the CTR model has one task")


class HistorySpec(_Strict):
    """The rows a user's history fields summarise: a conversions table, or log rows whose label is 1."""

    table: str | None = None
    from_label: Literal["click", "conversion"] | None = None
    time: str | None = None
    log_columns: list[str] = Field(default_factory=list)
    item_columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _source(self) -> HistorySpec:
        if (self.table is None) == (self.from_label is None):
            raise ValueError("history: give exactly one of table (a conversions table) or from_label (click)")
        if self.table is not None and self.time is None:
            raise ValueError("history: a history table needs its time column")
        return self


class FieldSpec(ValueSpec):
    entity: Literal["user", "item", "scene"]
    doc: str = ""
    realtime: bool = Field(False, description="scene: its current value also arrives on the real-time stream")
    true_text: str = "yes"
    false_text: str = "no"


class PairSpec(_Strict):
    anchor: list[str]
    positive: list[str]
    same: Literal["user", "item"] | None = None
    from_history: bool = False
    require_history: bool = False

    @model_validator(mode="after")
    def _kind(self) -> PairSpec:
        if (self.same is None) == (not self.from_history):
            raise ValueError("a pair kind is either same: user|item (two texts of one entity) or "
                             "from_history: true (a user and an item of their history)")
        return self


class CptSpec(_Strict):
    prompt: list[str]
    target: list[str]


class EmbedSpec(_Strict):
    user: list[str]
    item: list[str]
    item_columns: list[str] = Field(default_factory=list, description="item table columns stored beside the "
                                                                      "item vector (what recall displays)")


class CtrSpec(_Strict):
    categorical: list[str]
    numeric: list[str] = Field(default_factory=list)
    item_columns: list[str] = Field(default_factory=list)


class SplitSpec(_Strict):
    """Trailing days of the log: the last ``test_days`` are the test set, the ``valid_days`` before them
    validation (the training cutoff), or explicit ISO dates."""

    valid_days: int = Field(1, ge=1)
    test_days: int = Field(1, ge=1)
    valid: list[str] | None = None
    test: list[str] | None = None


class ServingSpec(_Strict):
    """What a scoring request carries besides the user, the candidates and the request context: the log
    columns that differ between the candidates of one request (food: the user-to-shop distance), sent per
    candidate by the caller (a recall service knows them)."""

    per_candidate: list[str] = Field(default_factory=list)


class EventSpec(_Strict):
    """One real-time event type: its payload, the log columns it sets, and the fields whose keys it updates.

    ``columns`` maps a log column to the payload key or the derived log column that gives its value (a
    derived column is computed from the payload as in the log: ``time_slot: meal_slot`` takes the slot of the
    payload's hour).  ``fields`` maps each updated scene field to its key column in the online view.  Every
    event type is a newer-wins ``group``; its event time is stored as ``<group>_ts`` (milliseconds)."""

    group: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    payload: dict[str, Literal["int", "float", "string"]]
    columns: dict[str, str]
    fields: dict[str, str]
    allowed: dict[str, list[Any]] = Field(default_factory=dict, description="closed sets of payload values")
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict, description="[min, max] of numbers")


class RealtimeSpec(_Strict):
    """The real-time scene state: one online row per ``entity`` (key column ``key``), updated by events."""

    entity: str
    key: str
    view: str = "region_scene_state"
    events: dict[str, EventSpec] = Field(default_factory=dict)


class Spec(_Strict):
    name: str
    doc: str = ""
    tables: dict[str, TableSpec]
    entities: dict[Literal["user", "item"], EntitySpec]
    log: LogSpec
    labels: LabelsSpec
    history: HistorySpec
    fields: dict[str, FieldSpec]
    groups: dict[str, list[str]] = Field(default_factory=dict)
    cpt: CptSpec
    pairs: dict[str, PairSpec]
    embed: EmbedSpec
    scene: list[str]
    vocab: list[str]
    ctr: CtrSpec
    slices: dict[str, str] = Field(default_factory=dict)
    split: SplitSpec = Field(default_factory=SplitSpec)
    realtime: RealtimeSpec | None = None
    serving: ServingSpec = Field(default_factory=ServingSpec)
    source: str = Field("", exclude=True)

    # ----- derived views used by every layer -----
    def expand(self, names: list[str]) -> list[str]:
        """Field list with group names expanded (in order)."""
        out: list[str] = []
        for n in names:
            out += self.expand(self.groups[n]) if n in self.groups else [n]
        return out

    @property
    def user(self) -> EntitySpec:
        return self.entities["user"]

    @property
    def item(self) -> EntitySpec:
        return self.entities["item"]

    @property
    def user_key(self) -> str:
        return self.user.key

    @property
    def item_key(self) -> str:
        return self.item.key

    @property
    def item_name(self) -> str:
        return self.item.name or "item"

    @property
    def user_name(self) -> str:
        return self.user.name or "user"

    def fields_of(self, entity: str) -> list[str]:
        return [n for n, f in self.fields.items() if f.entity == entity]

    def history_fields(self) -> list[str]:
        return [n for n, f in self.fields.items() if f.history is not None]

    @property
    def has_conversion(self) -> bool:
        return self.labels.conversion is not None

    @property
    def labels_out(self) -> tuple[str, ...]:
        """Label columns of the CTR samples (click first)."""
        return (self.labels.click,) + ((self.labels.conversion,) if self.labels.conversion else ())

    def new_item_slice(self) -> str | None:
        return f"new_{self.item_name}s" if self.item.created else None

    def slice_names(self) -> list[str]:
        """Evaluation slices in report order: all, new items, each declared slice, rest."""
        out = ["all"]
        if self.new_item_slice():
            out.append(self.new_item_slice())
        out += list(self.slices)
        if len(out) > 1:
            out.append("rest")
        return out

    def log_columns(self) -> list[str]:
        """Every column of the (enriched) log: raw, lookups, derived."""
        t = self.tables[self.log.table]
        return [*t.columns, *t.lookups, *t.derived]


def _template_names(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _condition_names(cond: str) -> list[str]:
    m = re.match(r"^\s*(\w+)\s*(?:<|<=|>|>=|==|!=)\s*([\w.\-]+)\s*$", cond)
    if not m:
        return []
    rhs = m.group(2)
    return [m.group(1)] + ([rhs] if re.match(r"^[A-Za-z_]\w*$", rhs) else [])


ValueSpec.model_rebuild()
FieldSpec.model_rebuild()


# ----------------------------------------------------------------------------------------- loading
class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key, for error messages."""


def _lines(text: str) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = (*path, str(k.value))
                out[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                p = (*path, str(i))
                out[p] = v.start_mark.line + 1
                walk(v, p)

    root = yaml.compose(text, Loader=_LineLoader)
    if root is not None:
        walk(root, ())
    return out


def _where(source: str, lines: dict[tuple[str, ...], int], loc: tuple[Any, ...]) -> str:
    path = tuple(str(p) for p in loc)
    while path and path not in lines:
        path = path[:-1]
    line = lines.get(path)
    return f"{source}:{line}" if line else source


def spec_path(name_or_path: str | Path) -> Path:
    """A built-in spec name (``food_delivery``, ``app_usage``) or a YAML path."""
    s = str(name_or_path)
    if s in BUILTIN_SPECS:
        return Path(str(resources.files("larr.specs").joinpath(f"{s}.yaml")))
    p = Path(s)
    if not p.exists():
        raise SpecError(f"spec {s!r}: no such file, and not a built-in spec ({', '.join(BUILTIN_SPECS)})")
    return p


@cache
def _load_cached(path: str, mtime: float) -> Spec:
    return parse_spec(Path(path).read_text(), source=path)


def load_spec(name_or_path: str | Path = "food_delivery") -> Spec:
    """Load and validate a spec (cached per file and modification time)."""
    p = spec_path(name_or_path)
    return _load_cached(str(p.resolve()), p.stat().st_mtime)


def parse_spec(text: str, source: str = "<spec>") -> Spec:
    """Validate YAML text into a :class:`Spec`; raises :class:`SpecError` with line-numbered messages."""
    try:
        data = yaml.safe_load(text)
        lines = _lines(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise SpecError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a YAML mapping (name, tables, entities, fields, ...)")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as err:
        msgs = []
        for e in err.errors():
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-"))))
            key = ".".join(str(p) for p in loc)
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            msgs.append(f"{_where(source, lines, loc)}: {key}: {msg}")
        raise SpecError("invalid feature spec:\n  " + "\n  ".join(msgs)) from None
    problems = _semantic_problems(spec)
    if problems:
        raise SpecError("invalid feature spec:\n  " + "\n  ".join(
            f"{_where(source, lines, loc)}: {'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))
    return spec.model_copy(update={"source": source})


def _semantic_problems(s: Spec) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-references a schema cannot express: columns exist, every field is used, pair sides non-empty."""
    out: list[tuple[tuple[Any, ...], str]] = []

    def table_cols(name: str) -> list[str]:
        t = s.tables[name]
        return [*t.columns, *t.lookups, *t.derived]

    for tname, t in s.tables.items():
        for i, k in enumerate(t.key):
            if k not in t.columns:
                out.append((("tables", tname, "key", i), f"key column {k!r} is not a column of {tname}"))
        if t.time is not None and t.time not in t.columns:
            out.append((("tables", tname, "time"), f"unknown column {t.time!r} of table {tname}"))
        for cname, c in t.columns.items():
            if c.references:
                rt, rc = c.references.split(".")
                if rt not in s.tables or rc not in s.tables[rt].columns:
                    out.append((("tables", tname, "columns", cname, "references"),
                                f"{c.references} is not a column of a declared table"))
        for lname, lk in t.lookups.items():
            if lk.table not in s.tables or lk.column not in s.tables.get(lk.table, t).columns:
                out.append((("tables", tname, "lookups", lname), f"{lk.table}.{lk.column} is not a declared column"))
            elif lk.via not in t.columns:
                out.append((("tables", tname, "lookups", lname, "via"), f"unknown column {lk.via!r} of table {tname}"))
        for i, b in enumerate(t.belongs_to):
            for k in (b.column, b.parent):
                if k not in t.columns:
                    out.append((("tables", tname, "belongs_to", i), f"unknown column {k!r} of table {tname}"))
            ref = t.columns.get(b.column)
            if ref is not None and not ref.references:
                out.append((("tables", tname, "belongs_to", i), f"{b.column} needs references: table.column"))
        known = [*t.columns, *t.lookups]
        for dname, d in t.derived.items():
            for c in d.inputs():
                if c not in known:
                    out.append((("tables", tname, "derived", dname), f"unknown column {c!r} of table {tname} "
                                f"(columns: {', '.join(known)})"))
            known.append(dname)
        for i, e in enumerate(t.equals_derived):
            if e.get("column") not in t.columns or e.get("derived") not in t.derived:
                out.append((("tables", tname, "equals_derived", i), "needs column: <a column>, derived: <a derived>"))
    for role, e in s.entities.items():
        if e.table not in s.tables:
            out.append((("entities", role, "table"), f"unknown table {e.table!r}"))
            continue
        cols = table_cols(e.table)
        for k in (e.key, e.created):
            if k is not None and k not in cols:
                out.append((("entities", role), f"unknown column {k!r} of table {e.table}"))
        extra = list(BUILTIN_ITEM_VALUES) if role == "item" else []
        for vname, v in e.values.items():
            for c in v.inputs():
                if c not in cols + extra + list(e.values):
                    out.append((("entities", role, "values", vname), f"unknown column {c!r} of table {e.table}"))
    if s.log.table not in s.tables:
        return out + [(("log", "table"), f"unknown table {s.log.table!r}")]
    log_cols = s.log_columns()
    for k in ("request", "time"):
        if getattr(s.log, k) not in log_cols:
            out.append((("log", k), f"unknown column {getattr(s.log, k)!r} of table {s.log.table}"))
    for k in ("click", "conversion"):
        v = getattr(s.labels, k)
        if v is not None and v not in s.tables[s.log.table].columns:
            out.append((("labels", k), f"label column {v!r} is not a column of the log table {s.log.table}"))
    for k in (s.user_key, s.item_key):
        if k not in s.tables[s.log.table].columns:
            out.append((("log", "table"), f"the log table {s.log.table} has no {k} column (entity key)"))
    h = s.history
    hist_cols: list[str] = []
    if h.table is not None:
        if h.table not in s.tables:
            out.append((("history", "table"), f"unknown table {h.table!r}"))
        else:
            hist_cols = list(s.tables[h.table].columns)
    else:
        hist_cols = list(log_cols)
        if h.from_label == "conversion" and not s.labels.conversion:
            out.append((("history", "from_label"), "from_label: conversion needs labels.conversion"))
    for i, c in enumerate(h.log_columns):
        if c not in log_cols:
            out.append((("history", "log_columns", i), f"unknown column {c!r} of the log {s.log.table}"))
    for alias, c in h.item_columns.items():
        if c not in table_cols(s.item.table):
            out.append((("history", "item_columns", alias), f"unknown column {c!r} of table {s.item.table}"))
    hist_cols += list(h.log_columns) + list(h.item_columns)
    for name, f in s.fields.items():
        if not FIELD_NAME.match(name) or name == QUERY_FIELD:
            out.append((("fields", name), "field names are letters with at most one underscore (e.g. SCENE_city), "
                                          f"not {QUERY_FIELD}"))
        if f.entity == "scene":
            cols = log_cols
            where = f"the log {s.log.table}"
        else:
            e = s.entities[f.entity]
            cols = table_cols(e.table) + list(e.values) + (list(BUILTIN_ITEM_VALUES) if f.entity == "item" else [])
            where = f"table {e.table}"
        if f.history is not None:
            if f.entity != "user":
                out.append((("fields", name, "history"), "history fields describe users"))
            for c in f.history.inputs():
                if c not in hist_cols:
                    out.append((("fields", name, "history"), f"unknown history column {c!r} (history columns: "
                                f"{', '.join(hist_cols)})"))
            continue
        for c in f.inputs():
            if c not in cols:
                out.append((("fields", name), f"unknown column {c!r} of {where} (columns: {', '.join(cols)})"))
    for g, members in s.groups.items():
        for i, m in enumerate(members):
            if m not in s.fields and m not in s.groups:
                out.append((("groups", g, i), f"unknown field or group {m!r}"))

    def check_list(loc: tuple[Any, ...], names: list[str], entity: str | None = None) -> list[str]:
        try:
            fields = s.expand(names)
        except (KeyError, RecursionError):
            out.append((loc, "a group refers to itself"))
            return []
        for i, n in enumerate(fields):
            if n not in s.fields:
                out.append(((*loc, i), f"unknown field {n!r} (fields: {', '.join(s.fields)})"))
            elif entity and s.fields[n].entity != entity:
                out.append(((*loc, i), f"{n} describes a {s.fields[n].entity}, not a {entity}"))
        return fields

    used: set[str] = set()
    used |= set(check_list(("cpt", "prompt"), s.cpt.prompt, "item"))
    used |= set(check_list(("cpt", "target"), s.cpt.target, "item"))
    for k, p in s.pairs.items():
        for side in ("anchor", "positive"):
            names = getattr(p, side)
            ent = p.same or ("user" if side == "anchor" else "item")
            fields = check_list(("pairs", k, side), names, ent)
            if not fields:
                out.append((("pairs", k, side), f"pair kind {k}: the {side} side has no fields"))
            used |= set(fields)
    for i, c in enumerate(s.embed.item_columns):
        if c not in s.tables[s.item.table].columns:
            out.append((("embed", "item_columns", i), f"unknown column {c!r} of table {s.item.table}"))
    used |= set(check_list(("embed", "user"), s.embed.user, "user"))
    used |= set(check_list(("embed", "item"), s.embed.item, "item"))
    scene = check_list(("scene",), s.scene)
    vocab = check_list(("vocab",), s.vocab)
    used |= set(scene) | set(vocab)
    for i, f in enumerate(scene):
        if f not in vocab:
            out.append((("scene", i), f"scene field {f} must also be in vocab, or it has no vector"))
    if len(set(scene)) != len(scene):
        out.append((("scene",), "a field is listed twice"))
    for name in s.fields:
        if name not in used:
            out.append((("fields", name), f"field {name} is used by nothing: add it to cpt, pairs, embed, scene or "
                                          "vocab, or delete it"))
    known_ctr = log_cols + [s.user_key, s.item_key] + list(s.ctr.item_columns)
    for i, c in enumerate(s.ctr.item_columns):
        if c not in s.tables[s.item.table].columns:
            out.append((("ctr", "item_columns", i), f"unknown column {c!r} of table {s.item.table}"))
    for sec in ("categorical", "numeric"):
        for i, c in enumerate(getattr(s.ctr, sec)):
            if c not in known_ctr:
                out.append((("ctr", sec, i), f"unknown column {c!r} (log columns: {', '.join(log_cols)}; add item "
                                             "columns under ctr.item_columns)"))
    for k in (s.user_key, s.item_key):
        if k not in s.ctr.categorical:
            out.append((("ctr", "categorical"), f"the id {k} must be a categorical feature (alignment uses it)"))
    if s.realtime is not None:
        t = s.tables[s.log.table]
        for ename, ev in s.realtime.events.items():
            loc = ("realtime", "events", ename)
            for col, src in ev.columns.items():
                if col not in t.columns and col not in t.derived:
                    out.append(((*loc, "columns", col), f"unknown log column {col!r}"))
                if src not in ev.payload and src not in t.derived:
                    out.append(((*loc, "columns", col), f"{src!r} is neither a payload key nor a derived column"))
            for f in ev.fields:
                if f not in s.fields or s.fields[f].entity != "scene":
                    out.append(((*loc, "fields", f), f"{f} is not a scene field"))
                elif f not in s.vocab:
                    out.append(((*loc, "fields", f), f"{f} must be in vocab, or its values have no vector"))
    for name, col in s.slices.items():
        t = s.tables[s.log.table].columns.get(col)
        if t is None or t.type != "bool":
            out.append((("slices", name), f"a slice is a bool column of the log; {col!r} is not"))
    log_t = s.tables.get(s.log.table)
    for i, col in enumerate(s.serving.per_candidate):
        if log_t is not None and col not in log_t.columns and col not in log_t.derived:
            out.append((("serving", "per_candidate", i), f"{col!r} is not a column of the log {s.log.table}"))
    if s.split.valid is not None or s.split.test is not None:
        for k in ("valid", "test"):
            for i, d in enumerate(getattr(s.split, k) or []):
                if not re.match(r"^\d{4}-\d{2}-\d{2}$", d):
                    out.append((("split", k, i), f"{d!r} is not an ISO date YYYY-MM-DD"))
    return out


def window_of(spec: Spec, days: list[str]) -> dict[str, Any]:
    """Train / valid / test days of a log with date partitions ``days`` (ISO strings), per ``spec.split``.

    ``valid`` and ``test`` are the first day of each set (what single-day code reads), ``valid_days`` and
    ``test_days`` the full lists; ``cutoff`` is the first day not in training: nothing on or after it may
    reach a model trained before it."""
    days = sorted(days)
    sp = spec.split
    if sp.valid is not None or sp.test is not None:
        valid, test = sorted(sp.valid or []), sorted(sp.test or [])
        missing = [d for d in valid + test if d not in days]
        if missing:
            raise ValueError(f"split: date(s) {missing} have no partition in the log (days {days[0]}..{days[-1]})")
        train = [d for d in days if d < min(valid + test)]
    else:
        need = sp.valid_days + sp.test_days + 1
        if len(days) < need:
            raise ValueError(f"the log has {len(days)} date partitions; split needs at least {need} "
                             f"({sp.valid_days} validation, {sp.test_days} test, 1 training)")
        test = days[-sp.test_days:]
        valid = days[-sp.test_days - sp.valid_days:-sp.test_days]
        train = days[:-sp.test_days - sp.valid_days]
    if not train or not valid or not test:
        raise ValueError("split: training, validation and test days must all be non-empty")
    return {"start": days[0], "end": days[-1], "train": train, "valid": valid[0], "test": test[0],
            "valid_days": valid, "test_days": test, "cutoff": min(valid + test)}
