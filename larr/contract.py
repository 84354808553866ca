"""The raw-data contract, as code: tables, columns, types, keys and rules.

This is the single definition of what a raw data folder must hold.  The
simulator writes it, ``larr validate`` checks it (:mod:`larr.validate`), every
Spark job validates its input against it, and ``docs/data-contract.md`` is
generated from it (``larr contract --markdown``), so the document cannot drift
from what is enforced.  Real logs that follow it replace the simulator
unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from larr.scene import DAY_TYPES, TIME_SLOTS, time_slot_index
from larr.world.catalog import AGE_BANDS, GENDERS, WEATHER_CONDITIONS


@dataclass
class Context:
    """What a rule may look at besides the rows of its own chunk."""

    window_start: date | None = None
    window_end: date | None = None
    partition_date: date | None = None
    keys: dict[str, np.ndarray] = field(default_factory=dict)  # "table.column" -> sorted unique values
    district_region: pd.Series | None = None  # district_id -> region_id
    poi_created: pd.Series | None = None  # poi_id -> created_date
    ordered_impressions: set[tuple[int, int]] = field(default_factory=set)


RuleCheck = Callable[[pd.DataFrame, Context], np.ndarray]


@dataclass(frozen=True)
class Rule:
    """A row-level rule: ``check`` returns a boolean mask of the offending rows."""

    name: str
    column: str  # the column the message names (the first one, for multi-column rules)
    description: str
    fix: str
    check: RuleCheck
    example_columns: tuple[str, ...] = ()


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


@dataclass(frozen=True)
class Table:
    """A raw table: a single parquet file, or hive-partitioned by date when ``partitioned``."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partitioned: bool = False
    rules: tuple[Rule, ...] = ()

    @property
    def path(self) -> str:
        return f"{self.name}/date=YYYY-MM-DD/*.parquet" if self.partitioned else f"{self.name}.parquet"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


def _lat(name: str, doc: str) -> Column:
    return Column(name, "float", doc, min=-90, max=90)


def _lon(name: str, doc: str) -> Column:
    return Column(name, "float", doc, min=-180, max=180)


def _in_window(col: str) -> Rule:
    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        d = pd.to_datetime(df[col]).dt.date
        bad = np.zeros(len(df), dtype=bool)
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
            return np.zeros(len(df), dtype=bool)
        return (pd.to_datetime(df[col]).dt.date != ctx.partition_date).to_numpy() & df[col].notna().to_numpy()
    return Rule("on_partition_date", col, f"{col} falls on the day of its date=YYYY-MM-DD partition",
                "write each row under the partition of its own day", check)


def _district_in_region(district: str, region: str) -> Rule:
    def check(df: pd.DataFrame, ctx: Context) -> np.ndarray:
        if ctx.district_region is None:
            return np.zeros(len(df), dtype=bool)
        expected = df[district].map(ctx.district_region)
        return (expected.notna() & (expected != df[region])).to_numpy()
    return Rule("district_in_region", district, f"{district} belongs to {region} (per the districts table)",
                f"set {region} to the region of the district, or fix {district}", check)


def _order_implies_click(df: pd.DataFrame, ctx: Context) -> np.ndarray:
    return ((df["order"] == 1) & (df["click"] != 1)).to_numpy()


def _poi_exists(df: pd.DataFrame, ctx: Context) -> np.ndarray:
    if ctx.poi_created is None or ctx.partition_date is None:
        return np.zeros(len(df), dtype=bool)
    created = df["poi_id"].map(ctx.poi_created)
    return (created.notna() & (created > ctx.partition_date)).to_numpy()


def _slot_matches_hour(df: pd.DataFrame, ctx: Context) -> np.ndarray:
    expected = np.array(TIME_SLOTS)[time_slot_index(pd.to_datetime(df["ts"]).dt.hour.to_numpy())]
    return df["ts"].notna().to_numpy() & (df["time_slot"].to_numpy() != expected)


def _non_empty_dishes(df: pd.DataFrame, ctx: Context) -> np.ndarray:
    def bad(v: Any) -> bool:
        if v is None or len(v) == 0:
            return True
        return any(not isinstance(d, dict) or not d.get("name") for d in v)
    return np.array([bad(v) for v in df["dishes"]], dtype=bool)


def _order_has_impression(df: pd.DataFrame, ctx: Context) -> np.ndarray:
    pairs = ctx.ordered_impressions
    return np.array([(int(r), int(p)) not in pairs for r, p in zip(df["request_id"], df["poi_id"], strict=True)],
                    dtype=bool)


TABLES: tuple[Table, ...] = (
    Table("regions", "Cities/provinces the service covers.", (
        Column("region_id", "int", "region key"),
        Column("name", "string", "region name, rendered into SCENE_region / POI_loc text"),
        _lat("lat", "centre latitude"),
        _lon("lon", "centre longitude"),
    ), key=("region_id",)),
    Table("districts", "Districts inside regions.", (
        Column("district_id", "int", "district key"),
        Column("region_id", "int", "region of the district", references="regions.region_id"),
        Column("name", "string", "district name"),
        _lat("lat", "centre latitude"),
        _lon("lon", "centre longitude"),
    ), key=("district_id",)),
    Table("pois", "Shops (points of interest). Name + location identify a POI in text (paper 3.1).", (
        Column("poi_id", "int", "POI key"),
        Column("name", "string", "shop name"),
        Column("region_id", "int", "region", references="regions.region_id"),
        Column("district_id", "int", "district", references="districts.district_id"),
        _lat("lat", "latitude"),
        _lon("lon", "longitude"),
        Column("cuisine", "string", "cuisine label"),
        Column("dishes", "list<struct<name,description>>", "main dishes with a short description each"),
        Column("price_level", "int", "1 budget .. 4 premium", min=1, max=4),
        Column("open_hour", "int", "opening hour, local time", min=0, max=23),
        Column("close_hour", "int", "closing hour; smaller than open_hour means after midnight", min=0, max=23),
        Column("tags", "list<string>", "tags (may be empty)"),
        Column("introduction", "string", "free-text introduction"),
        Column("rating", "float", "average rating", nullable=True, min=1, max=5),
        Column("created_date", "date", "day the POI went online; it may not appear in logs before it"),
    ), key=("poi_id",), rules=(
        _district_in_region("district_id", "region_id"),
        Rule("dishes_not_empty", "dishes", "every POI lists at least one dish, each with a name",
             "fill dishes from the menu table or drop the POI", _non_empty_dishes, ("poi_id",)),
    )),
    Table("users", "Users; hidden tastes are never part of the data.", (
        Column("user_id", "int", "user key"),
        Column("gender", "string", "profile field", allowed=GENDERS),
        Column("age_band", "string", "profile field", allowed=AGE_BANDS),
        Column("occupation", "string", "profile field"),
        Column("home_region_id", "int", "home region", references="regions.region_id"),
        Column("home_district_id", "int", "home district", references="districts.district_id"),
        _lat("home_lat", "home latitude"),
        _lon("home_lon", "home longitude"),
    ), key=("user_id",), rules=(_district_in_region("home_district_id", "home_region_id"),)),
    Table("weather", "Hourly weather per region (what the streaming simulator replays).", (
        Column("region_id", "int", "region", references="regions.region_id"),
        Column("ts", "timestamp", "start of the hour, local time"),
        Column("condition", "string", "weather condition", allowed=WEATHER_CONDITIONS),
        Column("temperature_c", "float", "temperature in degrees C", min=-60, max=60),
    ), key=("region_id", "ts"), rules=(_in_window("ts"),)),
    Table("impressions", "One row per POI shown in a request, with the scene and the labels.", (
        Column("request_id", "int", "request key; unique per day together with poi_id"),
        Column("ts", "timestamp", "request time, local time"),
        Column("user_id", "int", "user", references="users.user_id"),
        Column("poi_id", "int", "POI shown", references="pois.poi_id"),
        Column("region_id", "int", "region the user is in", references="regions.region_id"),
        Column("district_id", "int", "district the user is in", references="districts.district_id"),
        Column("time_slot", "string", "meal slot of ts", allowed=TIME_SLOTS),
        Column("day_type", "string", "weekday / weekend / holiday", allowed=DAY_TYPES),
        Column("weather", "string", "weather condition at request time", allowed=WEATHER_CONDITIONS),
        Column("temperature_c", "float", "temperature at request time", min=-60, max=60),
        Column("out_of_area", "bool", "user is outside their home region"),
        Column("distance_km", "float", "user to POI distance", min=0, max=500),
        _lat("user_lat", "request latitude"),
        _lon("user_lon", "request longitude"),
        Column("click", "int", "1 if clicked", allowed=(0, 1)),
        Column("order", "int", "1 if ordered (implies click)", allowed=(0, 1)),
    ), key=("request_id", "poi_id"), partitioned=True, rules=(
        _in_window("ts"),
        _on_partition_date("ts"),
        _district_in_region("district_id", "region_id"),
        Rule("order_implies_click", "order", "order = 1 only where click = 1",
             "an order must come from a clicked impression: set click = 1 or order = 0", _order_implies_click,
             ("request_id", "poi_id", "click", "order")),
        Rule("poi_exists_at_time", "poi_id", "a POI appears only on or after its created_date",
             "fix the POI's created_date or drop impressions before it", _poi_exists, ("request_id", "poi_id")),
        Rule("time_slot_matches_ts", "time_slot", "time_slot is the meal slot of the hour of ts (larr.scene)",
             "recompute time_slot from ts with larr.scene.time_slot", _slot_matches_hour,
             ("request_id", "ts", "time_slot")),
    )),
    Table("orders", "Orders; each comes from an impression with order = 1.", (
        Column("order_id", "int", "order key"),
        Column("request_id", "int", "request the order came from"),
        Column("ts", "timestamp", "order time, local time"),
        Column("user_id", "int", "user", references="users.user_id"),
        Column("poi_id", "int", "POI", references="pois.poi_id"),
        Column("dish", "string", "main dish ordered"),
        Column("amount", "float", "amount paid", min=0.01, max=100_000),
    ), key=("order_id",), partitioned=True, rules=(
        _in_window("ts"),
        Rule("order_has_impression", "request_id", "(request_id, poi_id) is an impression with order = 1",
             "drop orphan orders or restore the impression", _order_has_impression, ("order_id", "request_id", "poi_id")),
    )),
)

TABLE_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def contract_markdown() -> str:
    """``docs/data-contract.md``, generated from :data:`TABLES`."""
    lines = [
        "# Raw-data contract",
        "",
        "Generated by `larr contract --markdown` from `larr/contract.py`; do not edit by hand.",
        "A raw data folder holds one parquet file per small table and hive-partitioned parquet",
        "(`<table>/date=YYYY-MM-DD/*.parquet`) for the logs. Times are local wall-clock time without",
        "a zone. `larr validate DIR` checks a folder against every rule below and names the table,",
        "column, rule, offending row count and examples of any violation. The data window is read",
        "from `manifest.json` when present, else from `--start/--end`, else from the partitions.",
        "",
        "Rules that apply to every table: every column below is present with its type; a column not",
        "marked nullable has no nulls; ranges and allowed values hold; the key is unique (within each",
        "date partition for partitioned tables); references point at existing rows.",
        "",
    ]
    for t in TABLES:
        lines += [f"## `{t.name}`", "", t.doc, "", f"- path: `{t.path}`", f"- key: `{', '.join(t.key)}`", "",
                  "| column | type | null | constraint | meaning |", "|---|---|---|---|---|"]
        for c in t.columns:
            cons = []
            if c.min is not None or c.max is not None:
                cons.append(f"{c.min if c.min is not None else ''}..{c.max if c.max is not None else ''}")
            if c.allowed is not None:
                cons.append("one of " + ", ".join(f"`{v}`" for v in c.allowed))
            if c.references:
                cons.append(f"references `{c.references}`")
            lines.append(f"| `{c.name}` | {c.dtype} | {'yes' if c.nullable else 'no'} | {'; '.join(cons)} | {c.doc} |")
        if t.rules:
            lines += ["", "Rules:", ""]
            lines += [f"- `{r.name}` ({r.column}): {r.description}. Fix: {r.fix}." for r in t.rules]
        lines.append("")
    return "\n".join(lines)
