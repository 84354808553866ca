"""Spark transforms shared by the jobs: raw tables, entity texts, feature-value keys.

Text is produced only by :mod:`larr.text` / :mod:`larr.descriptions`, called
inside ``mapInPandas`` and pandas UDFs -- never re-implemented in Spark SQL.
Distinct values are rendered once and joined back, which is what keeps LLM
cost linear in the vocabulary rather than in the number of impressions.
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
from larr.config import LarrConfig
from larr.scene import temperature_band
from larr.text import feature_key, render

POI_FIELDS = ("POI_name", "POI_loc", "POI_intro", "POI_cuisine", "POI_dishes", "POI_tags", "POI_price",
              "POI_hours", "POI_stats")
USER_FIELDS = ("USER_profile", "USER_home", "USER_orders", "USER_slots", "USER_price", "USER_env")
# How each embeddable field joins onto an impression.
FIELD_JOIN: dict[str, tuple[str, ...]] = {
    "SCENE_region": ("region_id",), "SCENE_district": ("district_id",), "SCENE_slot": ("time_slot",),
    "SCENE_day": ("day_type",), "SCENE_weather": ("weather",), "SCENE_temp": ("temp_band",),
    "SCENE_area": ("out_of_area",), "USER_profile": ("user_id",), "USER_home": ("user_id",),
    "USER_orders": ("user_id", "date"), "POI_dishes": ("poi_id",), "POI_intro": ("poi_id",),
    "POI_cuisine": ("poi_id",), "POI_tags": ("poi_id",),
}


@dataclass
class Raw:
    """The raw tables as Spark DataFrames (impressions/orders carry their ``date`` partition column)."""

    regions: DataFrame
    districts: DataFrame
    pois: DataFrame
    users: DataFrame
    impressions: DataFrame
    orders: DataFrame


def load_raw(spark: SparkSession, raw: Path) -> Raw:
    r = str(raw)
    return Raw(
        regions=spark.read.parquet(f"{r}/regions.parquet"),
        districts=spark.read.parquet(f"{r}/districts.parquet"),
        pois=spark.read.parquet(f"{r}/pois.parquet"),
        users=spark.read.parquet(f"{r}/users.parquet"),
        impressions=spark.read.parquet(f"{r}/impressions"),
        orders=spark.read.parquet(f"{r}/orders"),
    )


@pandas_udf(StringType())
def temp_band_udf(temp: pd.Series) -> pd.Series:
    """Temperature band through :func:`larr.scene.temperature_band` (the one definition)."""
    return pd.Series(temperature_band(temp.to_numpy()), index=temp.index)


def render_udf(field: str):
    """Pandas UDF rendering one field's values with the one renderer."""
    @pandas_udf(StringType())
    def _render(values: pd.Series) -> pd.Series:
        return values.map(lambda v: render(field, v))
    return _render


def key_udf(field: str):
    """Pandas UDF: stable key = hash(field, rendered text)."""
    @pandas_udf(LongType())
    def _key(texts: pd.Series) -> pd.Series:
        return texts.map(lambda t: feature_key(field, t)).astype("int64")
    return _key


def heldout_flag(id_col: str, frac: float) -> F.Column:
    """Stable hashed hold-out: the same ids are held out in every job and every run."""
    return (F.abs(F.xxhash64(F.col(id_col).cast("string"), F.lit("heldout"))) % 10_000) < int(frac * 10_000)


def with_scene_columns(impressions: DataFrame) -> DataFrame:
    """Impressions plus the derived scene values (temperature band, hour)."""
    return (impressions.withColumn("temp_band", temp_band_udf(F.col("temperature_c")))
            .withColumn("hour", F.hour("ts")))


def enriched_orders(raw: Raw) -> DataFrame:
    """Orders with the scene they were placed in and the POI's name and cuisine."""
    imp = with_scene_columns(raw.impressions).select("request_id", "poi_id", "time_slot", "weather", "temp_band")
    pois = raw.pois.select("poi_id", F.col("name").alias("poi_name"), "cuisine")
    return raw.orders.join(imp, ["request_id", "poi_id"], "left").join(pois, "poi_id", "left")


def _names(raw: Raw) -> tuple[DataFrame, DataFrame]:
    regions = raw.regions.select("region_id", F.col("name").alias("region_name"))
    districts = raw.districts.select("district_id", F.col("name").alias("district_name"))
    return regions, districts


POI_TEXT_SCHEMA = StructType([StructField("poi_id", LongType())] + [StructField(f, StringType()) for f in POI_FIELDS])
USER_TEXT_SCHEMA = StructType([StructField("user_id", LongType())] + [StructField(f, StringType()) for f in USER_FIELDS])


def poi_texts(raw: Raw, before: date) -> DataFrame:
    """One row per POI: every POI field rendered; order volume counts orders strictly before ``before``."""
    regions, districts = _names(raw)
    n_orders = (raw.orders.where(F.col("date") < F.lit(before)).groupBy("poi_id")
                .agg(F.count("*").alias("n_orders")))
    pois = (raw.pois.join(regions, "region_id").join(districts, "district_id")
            .join(n_orders, "poi_id", "left").fillna({"n_orders": 0}))

    def render_pois(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in batches:
            rows = []
            for rec in df.to_dict("records"):
                values = desc.poi_values(rec, rec["region_name"], rec["district_name"], int(rec["n_orders"]))
                rows.append({"poi_id": rec["poi_id"], **{f: render(f, values[f]) for f in POI_FIELDS}})
            yield pd.DataFrame(rows, columns=POI_TEXT_SCHEMA.fieldNames())

    return pois.mapInPandas(render_pois, POI_TEXT_SCHEMA)


def _order_struct() -> F.Column:
    return F.struct("ts", "dish", "poi_name", "cuisine", "time_slot", "amount", "weather", "temp_band")


def user_texts(raw: Raw, before: date, limit: int) -> DataFrame:
    """One row per user: profile, home and behaviour texts from orders strictly before ``before``."""
    regions, districts = _names(raw)
    orders = (enriched_orders(raw).where(F.col("date") < F.lit(before)).groupBy("user_id")
              .agg(F.collect_list(_order_struct()).alias("orders")))
    users = (raw.users.join(regions.withColumnRenamed("region_id", "home_region_id"), "home_region_id")
             .join(districts.withColumnRenamed("district_id", "home_district_id"), "home_district_id")
             .join(orders, "user_id", "left"))

    def render_users(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in batches:
            rows = []
            for rec in df.to_dict("records"):
                orders_ = list(rec["orders"]) if rec["orders"] is not None else []
                values = {**desc.user_profile_values(rec, rec["region_name"], rec["district_name"]),
                          **desc.behaviour_values(orders_, limit)}
                rows.append({"user_id": rec["user_id"], **{f: render(f, values[f]) for f in USER_FIELDS}})
            yield pd.DataFrame(rows, columns=USER_TEXT_SCHEMA.fieldNames())

    return users.mapInPandas(render_users, USER_TEXT_SCHEMA)


SEQ_SCHEMA = StructType([StructField("user_id", LongType()), StructField("date", StringType()),
                         StructField("USER_orders", StringType())])


def user_order_sequences(raw: Raw, limit: int) -> DataFrame:
    """USER_orders text of every (user, day) with impressions, from orders strictly before that day."""
    user_days = raw.impressions.select("user_id", "date").distinct()
    orders = enriched_orders(raw).select("user_id", F.col("date").alias("order_date"), _order_struct().alias("o"))
    joined = (user_days.join(orders, (user_days.user_id == orders.user_id) & (orders.order_date < user_days.date),
                             "left")
              .drop(orders.user_id)
              .groupBy("user_id", "date").agg(F.collect_list("o").alias("orders")))

    def render_seq(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for df in batches:
            texts = [render("USER_orders", desc.recent_orders_text(list(o) if o is not None else [], limit))
                     for o in df["orders"]]
            yield pd.DataFrame({"user_id": df["user_id"], "date": df["date"].astype(str), "USER_orders": texts})

    return joined.mapInPandas(render_seq, SEQ_SCHEMA).withColumn("date", F.to_date("date"))


def field_tables(raw: Raw, cfg: LarrConfig, fields: list[str], texts_before: date) -> dict[str, DataFrame]:
    """For each field: a DataFrame of (join columns..., text, key) over its distinct values.

    POI and user description texts use data strictly before ``texts_before``;
    USER_orders is computed per (user, day) from orders strictly before that day.
    """
    imp = with_scene_columns(raw.impressions)
    tables: dict[str, DataFrame] = {}
    pt = poi_texts(raw, texts_before) if any(f.startswith("POI_") for f in fields) else None
    ut = user_texts(raw, texts_before, cfg.features.recent_orders) \
        if {"USER_profile", "USER_home"} & set(fields) else None
    for f in fields:
        cols = list(FIELD_JOIN[f])
        if f == "SCENE_region":
            base = raw.regions.select("region_id", F.col("name").alias("v"))
        elif f == "SCENE_district":
            base = raw.districts.select("district_id", F.col("name").alias("v"))
        elif f.startswith("SCENE_"):
            base = imp.select(*cols).distinct().withColumn("v", F.col(cols[0]))
        elif f == "USER_orders":
            tables[f] = (user_order_sequences(raw, cfg.features.recent_orders)
                         .select("user_id", "date", F.col("USER_orders").alias("text"))
                         .withColumn("key", key_udf(f)(F.col("text"))))
            continue
        elif f.startswith("USER_"):
            tables[f] = ut.select("user_id", F.col(f).alias("text")).withColumn("key", key_udf(f)(F.col("text")))
            continue
        else:
            tables[f] = pt.select("poi_id", F.col(f).alias("text")).withColumn("key", key_udf(f)(F.col("text")))
            continue
        tables[f] = (base.withColumn("text", render_udf(f)(F.col("v"))).drop("v")
                     .withColumn("key", key_udf(f)(F.col("text"))))
    return tables


def attach_keys(impressions: DataFrame, tables: dict[str, DataFrame], fields: list[str]) -> DataFrame:
    """Add ``key_<field>`` for each field and ``scene_keys`` = array of them, in ``fields`` order."""
    out = impressions
    for f in fields:
        cols = list(FIELD_JOIN[f])
        t = tables[f].select(*cols, F.col("key").alias(f"key_{f}"))
        if not any(c in ("user_id", "poi_id") for c in cols):
            t = F.broadcast(t)
        out = out.join(t, cols, "left")
    return out.withColumn("scene_keys", F.array(*[F.col(f"key_{f}") for f in fields]))
