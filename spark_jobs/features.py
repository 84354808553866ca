"""Spark transforms shared by the jobs, derived from the feature spec: raw tables, entity texts, value keys.

Text is produced only by :mod:`larr.text` / :mod:`larr.descriptions`, called inside ``mapInPandas`` and
pandas UDFs -- never re-implemented in Spark SQL.  Distinct values are rendered once and joined back, which
is what keeps LLM cost linear in the vocabulary rather than in the number of impressions.  Which tables,
columns and fields exist is read from the spec (``cfg.spec``); nothing here names a domain's field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import LongType, StringType, StructField, StructType

from larr import descriptions as desc
from larr.spec import Spec, ValueSpec
from larr.text import registry


@dataclass
class Raw:
    """The raw tables as Spark DataFrames, lookups joined and derived columns added (partitioned tables
    carry their ``date`` partition column)."""

    spec: Spec
    tables: dict[str, DataFrame]

    @property
    def log(self) -> DataFrame:
        return self.tables[self.spec.log.table]

    @property
    def users(self) -> DataFrame:
        return self.tables[self.spec.user.table]

    @property
    def items(self) -> DataFrame:
        return self.tables[self.spec.item.table]

    @property
    def history_table(self) -> DataFrame | None:
        return self.tables[self.spec.history.table] if self.spec.history.table else None


def _value_udf(spec: ValueSpec, inputs: list[str]):
    """Pandas UDF computing a derived value from its input columns (strings, as the renderer sees them)."""
    @pandas_udf(StringType())
    def _derive(*cols: pd.Series) -> pd.Series:
        df = pd.concat(cols, axis=1)
        df.columns = inputs
        return desc.derived_column(spec, df).astype(object).map(lambda v: None if v is None else str(v))
    return _derive


def _derived(df: DataFrame, name: str, spec: ValueSpec) -> DataFrame:
    if spec.hour_of is not None:
        return df.withColumn(name, F.hour(spec.hour_of))
    if spec.weekday_of is not None:
        return df.withColumn(name, F.date_format(spec.hour_of or spec.weekday_of, "EEEE"))
    if spec.column is not None:
        return df.withColumn(name, F.col(spec.column))
    inputs = spec.inputs()
    return df.withColumn(name, _value_udf(spec, inputs)(*[F.col(c) for c in inputs]))


def load_raw(spark: SparkSession, raw: Path, spec: Spec) -> Raw:
    """Every table of the spec, with its lookups and derived columns."""
    r = str(raw)
    base: dict[str, DataFrame] = {}
    for name, t in spec.tables.items():
        path = f"{r}/{name}" if t.partitioned else f"{r}/{name}.parquet"
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} missing: the spec {spec.name} declares table {name} "
                                    f"({'partitioned by date' if t.partitioned else 'one parquet file'})")
        base[name] = spark.read.parquet(path)
    out: dict[str, DataFrame] = {}
    for name, t in spec.tables.items():
        df = base[name]
        for alias, lk in t.lookups.items():
            key = spec.tables[lk.table].key[0]
            df = df.join(base[lk.table].select(F.col(key).alias(lk.via), F.col(lk.column).alias(alias)), lk.via,
                         "left")
        for dname, d in t.derived.items():
            df = _derived(df, dname, d)
        out[name] = df
    return Raw(spec, out)


def render_udf(reg, field: str):
    """Pandas UDF rendering one field's values with the one renderer."""
    @pandas_udf(StringType())
    def _render(values: pd.Series) -> pd.Series:
        return values.map(lambda v: reg.render(field, v))
    return _render


def key_udf(reg, field: str):
    """Pandas UDF: stable key = hash(field, rendered text)."""
    @pandas_udf(LongType())
    def _key(texts: pd.Series) -> pd.Series:
        return texts.map(lambda t: reg.feature_key(field, t)).astype("int64")
    return _key


def heldout_flag(id_col: str, frac: float) -> F.Column:
    """Stable hashed hold-out: the same ids are held out in every job and every run."""
    return (F.abs(F.xxhash64(F.col(id_col).cast("string"), F.lit("heldout"))) % 10_000) < int(frac * 10_000)


def history_rows(raw: Raw) -> DataFrame:
    """A user's history rows (conversions, or log rows with the history label = 1) with the log and item
    columns the history fields read, and their ``date``."""
    s = raw.spec
    h = s.history
    items = raw.items.select(s.item_key, *[F.col(c).alias(a) for a, c in h.item_columns.items()])
    if h.table is not None:
        log = raw.log.select(s.log.request, s.item_key, *h.log_columns)
        rows = raw.history_table.join(log, [s.log.request, s.item_key], "left")
    else:
        label = s.labels.click if h.from_label == "click" else s.labels.conversion
        rows = raw.log.where(F.col(label) == 1)
    return rows.join(items, s.item_key, "left")


def _history_struct(spec: Spec) -> F.Column:
    cols = [desc.history_time(spec)]
    for f in spec.history_fields():
        cols += spec.fields[f].history.inputs()  # type: ignore[union-attr]
    return F.struct(*dict.fromkeys(cols))


def _schema(key: str, fields: list[str]) -> StructType:
    return StructType([StructField(key, LongType())] + [StructField(f, StringType()) for f in fields])


def item_texts(raw: Raw, before: date) -> DataFrame:
    """One row per item: every item field rendered; ``history_count`` counts history rows strictly before
    ``before``."""
    s, reg = raw.spec, registry(raw.spec)
    key, fields = s.item_key, s.fields_of("item")
    counts = (history_rows(raw).where(F.col("date") < F.lit(before)).groupBy(key)
              .agg(F.count("*").alias("history_count")))
    items = raw.items.join(counts, key, "left").fillna({"history_count": 0})
    schema = _schema(key, fields)

    def render_items(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in batches:
            rows = []
            for rec in df.to_dict("records"):
                values = desc.entity_values(s, "item", rec, history_count=int(rec["history_count"]))
                rows.append({key: rec[key], **{f: reg.render(f, values[f]) for f in fields}})
            yield pd.DataFrame(rows, columns=schema.fieldNames())

    return items.mapInPandas(render_items, schema)


def user_texts(raw: Raw, before: date) -> DataFrame:
    """One row per user: every user field rendered, history fields from rows strictly before ``before``."""
    s, reg = raw.spec, registry(raw.spec)
    key, fields = s.user_key, s.fields_of("user")
    hist = (history_rows(raw).where(F.col("date") < F.lit(before)).groupBy(key)
            .agg(F.collect_list(_history_struct(s)).alias("_history")))
    users = raw.users.join(hist, key, "left")
    schema = _schema(key, fields)

    def render_users(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in batches:
            rows = []
            for rec in df.to_dict("records"):
                history = list(rec.pop("_history")) if rec["_history"] is not None else []
                values = desc.entity_values(s, "user", rec, history=history)
                rows.append({key: rec[key], **{f: reg.render(f, values[f]) for f in fields}})
            yield pd.DataFrame(rows, columns=schema.fieldNames())

    return users.mapInPandas(render_users, schema)


def user_history_by_day(raw: Raw, fields: list[str]) -> DataFrame:
    """History fields of every (user, day) with impressions, from history rows strictly before that day."""
    s, reg = raw.spec, registry(raw.spec)
    key = s.user_key
    user_days = raw.log.select(key, "date").distinct()
    # renamed so the join never compares a column with itself (history rows may be rows of the log)
    rows = history_rows(raw).select(F.col(key).alias("_row_user"), F.col("date").alias("_row_date"),
                                    _history_struct(s).alias("o"))
    joined = (user_days.join(rows, (F.col(key) == F.col("_row_user")) & (F.col("_row_date") < F.col("date")), "left")
              .groupBy(key, "date").agg(F.collect_list("o").alias("rows")))
    schema = StructType([StructField(key, LongType()), StructField("date", StringType())]
                        + [StructField(f, StringType()) for f in fields])
    time_col = desc.history_time(s)

    def render_seq(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in batches:
            out = {key: df[key], "date": df["date"].astype(str)}
            for f in fields:
                fs = s.fields[f]
                out[f] = [reg.render(f, desc.history_value(fs.history, fs.empty or desc.UNKNOWN,  # type: ignore[arg-type]
                                                           list(o) if o is not None else [], time_col))
                          for o in df["rows"]]
            yield pd.DataFrame(out)

    return joined.mapInPandas(render_seq, schema).withColumn("date", F.to_date("date"))


def join_columns(spec: Spec, field: str) -> list[str]:
    """The columns a field's key joins onto an impression by."""
    f = spec.fields[field]
    if f.entity == "item":
        return [spec.item_key]
    if f.entity == "user":
        return [spec.user_key, "date"] if f.history is not None else [spec.user_key]
    log = spec.tables[spec.log.table]
    if f.column is not None and f.column in log.lookups:
        return [log.lookups[f.column].via]
    return f.inputs()


def field_tables(raw: Raw, fields: list[str], texts_before: date) -> dict[str, DataFrame]:
    """For each field: a DataFrame of (join columns..., text, key) over its distinct values.

    Item and user description texts use data strictly before ``texts_before``; user history fields are
    computed per (user, day) from history rows strictly before that day.  A scene field that is a lookup
    (a region's name) takes every row of the looked-up table, seen in the log or not."""
    s, reg = raw.spec, registry(raw.spec)
    tables: dict[str, DataFrame] = {}
    entity_fields = {f for f in fields if s.fields[f].entity != "scene"}
    it = item_texts(raw, texts_before) if any(s.fields[f].entity == "item" for f in entity_fields) else None
    plain_user = [f for f in entity_fields if s.fields[f].entity == "user" and s.fields[f].history is None]
    ut = user_texts(raw, texts_before) if plain_user else None
    by_day = [f for f in fields if s.fields[f].entity == "user" and s.fields[f].history is not None]
    seq = user_history_by_day(raw, by_day) if by_day else None
    log = s.tables[s.log.table]
    for f in fields:
        fs = s.fields[f]
        cols = join_columns(s, f)
        if fs.entity == "item":
            src = it.select(*cols, F.col(f).alias("text"))
        elif fs.entity == "user":
            src = (seq if fs.history is not None else ut).select(*cols, F.col(f).alias("text"))
        else:
            if fs.column is not None and fs.column in log.lookups:
                lk = log.lookups[fs.column]
                base = raw.tables[lk.table].select(F.col(s.tables[lk.table].key[0]).alias(lk.via),
                                                   F.col(lk.column).alias("v"))
            elif fs.column is not None:
                base = raw.log.select(*cols).distinct().withColumn("v", F.col(cols[0]))
            else:
                base = _derived(raw.log.select(*cols).distinct(), "v", fs)
            src = base.withColumn("text", render_udf(reg, f)(F.col("v"))).drop("v")
        tables[f] = src.withColumn("key", key_udf(reg, f)(F.col("text")))
    return tables


def attach_keys(impressions: DataFrame, tables: dict[str, DataFrame], spec: Spec, fields: list[str]) -> DataFrame:
    """Add ``key_<field>`` for each field and ``scene_keys`` = array of them, in ``fields`` order."""
    out = impressions
    for f in fields:
        cols = join_columns(spec, f)
        t = tables[f].select(*cols, F.col("key").alias(f"key_{f}"))
        if not any(c in (spec.user_key, spec.item_key) for c in cols):
            t = F.broadcast(t)
        out = out.join(t, cols, "left")
    return out.withColumn("scene_keys", F.array(*[F.col(f"key_{f}") for f in fields]))


def joined_text(spec: Spec, names: list[str]) -> F.Column:
    """One description: the rendered columns of the (group-expanded) fields, space-separated."""
    return F.concat_ws(" ", *[F.col(f) for f in spec.expand(names)])
