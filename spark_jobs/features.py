"""Spark transforms shared by the jobs, derived from the feature spec: raw tables, entity texts, value keys.

Text is produced only by :mod:`larr.text` / :mod:`larr.descriptions`, called inside ``mapInPandas`` and
pandas UDFs -- never re-implemented in Spark SQL.  Distinct values are rendered once and joined back, which
is what keeps LLM cost linear in the vocabulary rather than in the number of impressions.  Which tables,
columns and fields exist is read from the spec (``cfg.spec``); nothing here names a domain's field.

What the jobs share is computed once per job and kept in Spark's cache (:meth:`Raw.persist`, released by
:meth:`Raw.release` at the end of the job): the history rows, each entity's rendered texts, the distinct scene
values.  Nothing here brings data to the driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
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
    cached: list[DataFrame] = dc_field(default_factory=list)
    shared: dict[str, DataFrame] = dc_field(default_factory=dict)

    def persist(self, df: DataFrame) -> DataFrame:
        """``df`` cached for the rest of the job (a frame that several outputs or actions read)."""
        df = df.cache()
        self.cached.append(df)
        return df

    def release(self) -> None:
        """Drop what :meth:`persist` cached (the end of a job)."""
        for df in self.cached:
            df.unpersist()
        self.cached.clear()
        self.shared.clear()

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
    columns the history fields read, and their ``date``: every day, cached for the job (item counts, user
    histories and pairs all read it).

    A history table is joined to the log on the impression key, left: only the log rows some history row points
    at can match, so the log is first cut to those (a semi-join against the broadcast history keys, no shuffle
    of the log) and the left join then moves only history-sized data."""
    if "history" not in raw.shared:
        s = raw.spec
        h = s.history
        items = raw.items.select(s.item_key, *[F.col(c).alias(a) for a, c in h.item_columns.items()])
        if h.table is not None:
            keys = [s.log.request, s.item_key]
            log = (raw.log.select(*keys, *h.log_columns)
                   .join(F.broadcast(raw.history_table.select(*keys)), keys, "left_semi"))
            rows = raw.history_table.join(log, keys, "left")
        else:
            label = s.labels.click if h.from_label == "click" else s.labels.conversion
            rows = raw.log.where(F.col(label) == 1)
        raw.shared["history"] = raw.persist(rows.join(items, s.item_key, "left"))
    return raw.shared["history"]


def _history_struct(spec: Spec) -> F.Column:
    cols = [desc.history_time(spec)]
    for f in spec.history_fields():
        cols += spec.fields[f].history.inputs()  # type: ignore[union-attr]
    return F.struct(*dict.fromkeys(cols))


def _schema(key: str, fields: list[str]) -> StructType:
    return StructType([StructField(key, LongType())] + [StructField(f, StringType()) for f in fields])


def _reads(spec: Spec, role: str, fields: list[str], name: str) -> bool:
    """Whether the (non-history) ``fields`` of an entity read ``name``, directly or through the entity's values."""
    values = spec.entities[role].values  # type: ignore[index]
    todo = [i for f in fields if spec.fields[f].history is None for i in spec.fields[f].inputs()]
    seen: set[str] = set()
    while todo:
        n = todo.pop()
        if n == name:
            return True
        if n not in seen:
            seen.add(n)
            todo += values[n].inputs() if n in values else []
    return False


def item_texts(raw: Raw, before: date, fields: list[str] | None = None) -> DataFrame:
    """One row per item: the item ``fields`` (default: all) rendered; ``history_count`` counts history rows
    strictly before ``before`` (computed only when a field reads it)."""
    s, reg = raw.spec, registry(raw.spec)
    key = s.item_key
    fields = [f for f in s.fields_of("item") if fields is None or f in fields]
    items = raw.items
    if _reads(s, "item", fields, "history_count"):
        counts = (history_rows(raw).where(F.col("date") < F.lit(before)).groupBy(key)
                  .agg(F.count("*").alias("history_count")))
        items = items.join(F.broadcast(counts), key, "left").fillna({"history_count": 0})
    else:
        items = items.withColumn("history_count", F.lit(0).cast("long"))
    schema = _schema(key, fields)

    def render_items(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in batches:
            rows = []
            for rec in df.to_dict("records"):
                values = desc.entity_values(s, "item", rec, history_count=int(rec["history_count"]), fields=fields)
                rows.append({key: rec[key], **{f: reg.render(f, values[f]) for f in fields}})
            yield pd.DataFrame(rows, columns=schema.fieldNames())

    return items.mapInPandas(render_items, schema)


def user_texts(raw: Raw, before: date, fields: list[str] | None = None) -> DataFrame:
    """One row per user: the user ``fields`` (default: all) rendered, history fields from rows strictly before
    ``before`` (the history is read only when one of the fields is a history field)."""
    s, reg = raw.spec, registry(raw.spec)
    key = s.user_key
    fields = [f for f in s.fields_of("user") if fields is None or f in fields]
    users = raw.users
    with_history = any(s.fields[f].history is not None for f in fields)
    if with_history:
        hist = (history_rows(raw).where(F.col("date") < F.lit(before)).groupBy(key)
                .agg(F.collect_list(_history_struct(s)).alias("_history")))
        users = users.join(hist, key, "left")
    schema = _schema(key, fields)

    def render_users(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in batches:
            rows = []
            for rec in df.to_dict("records"):
                h = rec.pop("_history", None)
                history = list(h) if h is not None else []
                values = desc.entity_values(s, "user", rec, history=history, fields=fields)
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


@dataclass
class FieldTables:
    """The texts and keys of some fields, built by :func:`field_tables`.

    ``tables``: field -> (join columns..., text, key) over the field's distinct values;
    ``groups``: (join columns, frame, fields) -- the frame holds the join columns and ``key_<field>`` of each of
    the fields: the fields of one entity source share one frame (one rendering pass, one join)."""

    tables: dict[str, DataFrame]
    groups: list[tuple[list[str], DataFrame, list[str]]]

    def __getitem__(self, f: str) -> DataFrame:
        return self.tables[f]


def _log_distinct(raw: Raw, column_sets: list[list[str]]) -> dict[tuple[str, ...], DataFrame]:
    """The distinct values of each set of log columns, all from one scan of the log (grouping sets).

    The result (a few rows per value) is checkpointed on the executors, not cached: a query that reads several
    of the sets (the vocabulary's union, the keys' joins) would not find a cached grouping-sets aggregate for
    any but the first of them, and would scan the log again for each."""
    sets = list(dict.fromkeys(tuple(c) for c in column_sets))
    if not sets:
        return {}
    cols = list(dict.fromkeys(c for cs in sets for c in cs))
    if len(sets) == 1:
        return {sets[0]: raw.log.select(*cols).distinct().localCheckpoint()}
    grouped = (raw.log.groupingSets([list(cs) for cs in sets], *cols).agg(F.grouping_id().alias("_gid"))
               .localCheckpoint())
    n = len(cols)
    return {cs: grouped.where(F.col("_gid") == sum(1 << (n - 1 - i) for i, c in enumerate(cols) if c not in cs))
            .select(*cs) for cs in sets}


def _entity_group(src: DataFrame, cols: list[str], fields: list[str], reg) -> DataFrame:
    """``src`` (join columns + one rendered column per field) as join columns, text_<f> and key_<f>."""
    out = src.select(*cols, *[F.col(f).alias(f"text_{f}") for f in fields])
    for f in fields:
        out = out.withColumn(f"key_{f}", key_udf(reg, f)(F.col(f"text_{f}")))
    return out


def field_tables(raw: Raw, fields: list[str], texts_before: date, persist: bool = True) -> FieldTables:
    """For each field: a DataFrame of (join columns..., text, key) over its distinct values.

    Item and user description texts use data strictly before ``texts_before``; user history fields are
    computed per (user, day) from history rows strictly before that day.  A scene field that is a lookup
    (a region's name) takes every row of the looked-up table, seen in the log or not.

    Each entity source (item texts, user texts, user history per day) is rendered once for all its fields
    (``persist``: and cached for the rest of the job, when more than one query reads the tables); the distinct
    values of the scene fields read from the log come from one scan of the log."""
    s, reg = raw.spec, registry(raw.spec)
    tables: dict[str, DataFrame] = {}
    groups: list[tuple[list[str], DataFrame, list[str]]] = []
    item_f = [f for f in fields if s.fields[f].entity == "item"]
    plain_user = [f for f in fields if s.fields[f].entity == "user" and s.fields[f].history is None]
    by_day = [f for f in fields if s.fields[f].entity == "user" and s.fields[f].history is not None]
    sources = []
    if item_f:
        sources.append((item_texts(raw, texts_before, item_f), item_f))
    if plain_user:
        sources.append((user_texts(raw, texts_before, plain_user), plain_user))
    if by_day:
        sources.append((user_history_by_day(raw, by_day), by_day))
    for src, fs in sources:
        cols = join_columns(s, fs[0])
        wide = _entity_group(src, cols, fs, reg)
        wide = raw.persist(wide) if persist else wide
        groups.append((cols, wide.select(*cols, *[f"key_{f}" for f in fs]), fs))
        for f in fs:
            tables[f] = wide.select(*cols, F.col(f"text_{f}").alias("text"), F.col(f"key_{f}").alias("key"))
    log = s.tables[s.log.table]
    scene = [f for f in fields if s.fields[f].entity == "scene"]
    from_log = [f for f in scene if not (s.fields[f].column is not None and s.fields[f].column in log.lookups)]
    distinct = _log_distinct(raw, [join_columns(s, f) for f in from_log])
    for f in scene:
        fs = s.fields[f]
        cols = join_columns(s, f)
        if f not in from_log:
            lk = log.lookups[fs.column]  # type: ignore[index]
            base = raw.tables[lk.table].select(F.col(s.tables[lk.table].key[0]).alias(lk.via),
                                               F.col(lk.column).alias("v"))
        elif fs.column is not None:
            base = distinct[tuple(cols)].withColumn("v", F.col(cols[0]))
        else:
            base = _derived(distinct[tuple(cols)], "v", fs)
        src = base.withColumn("text", render_udf(reg, f)(F.col("v"))).drop("v")
        tables[f] = src.withColumn("key", key_udf(reg, f)(F.col("text")))
        groups.append((cols, tables[f].select(*cols, F.col("key").alias(f"key_{f}")), [f]))
    return FieldTables(tables, groups)


def attach_keys(impressions: DataFrame, tables: FieldTables, spec: Spec, fields: list[str]) -> DataFrame:
    """Add ``key_<field>`` for each field and ``scene_keys`` = array of them, in ``fields`` order.

    Every key is a left join onto the impressions.  The user's keys -- per user and per (user, day) -- arrive in
    one join on the user key alone (the per-day ones as a map day -> keys), so impressions already clustered by
    user are not shuffled again; item keys and scene keys are small tables, broadcast."""
    out = impressions
    ukey, ikey = spec.user_key, spec.item_key
    wanted = set(fields)
    user_t, by_day = None, None
    day_fields: list[str] = []
    for cols, frame, fs in tables.groups:
        fs = [f for f in fs if f in wanted]
        if not fs:
            continue
        frame = frame.select(*cols, *[f"key_{f}" for f in fs])
        if cols == [ukey]:
            user_t = frame if user_t is None else user_t.join(frame, ukey, "full")
        elif cols == [ukey, "date"]:
            day_fields += fs
            m = (frame.where(F.col("date").isNotNull()).groupBy(ukey)
                 .agg(F.map_from_entries(F.collect_list(F.struct("date", F.struct(*[f"key_{f}" for f in fs]))))
                      .alias(f"_by_day{len(day_fields)}")))
            by_day = m if by_day is None else by_day.join(m, ukey, "full")
        else:
            if cols == [ikey] or not any(c in (ukey, ikey) for c in cols):
                frame = F.broadcast(frame)
            out = out.join(frame, cols, "left")
    if by_day is not None:
        user_t = by_day if user_t is None else user_t.join(by_day, ukey, "full")
    if user_t is not None:
        out = out.join(user_t, ukey, "left")
        maps = [c for c in user_t.columns if c.startswith("_by_day")]
        for m in maps:
            inner = user_t.schema[m].dataType.valueType.fieldNames()  # type: ignore[attr-defined]
            for k in inner:
                out = out.withColumn(k, F.try_element_at(F.col(m), F.col("date"))[k])
        out = out.drop(*maps)
    return out.withColumn("scene_keys", F.array(*[F.col(f"key_{f}") for f in fields]))


def joined_text(spec: Spec, names: list[str]) -> F.Column:
    """One description: the rendered columns of the (group-expanded) fields, space-separated."""
    return F.concat_ws(" ", *[F.col(f) for f in spec.expand(names)])
