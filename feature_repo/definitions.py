"""Feast definitions of the larr feature platform.

Entities: user, POI, scene value (the stable key of a rendered feature text, larr.text.feature_key) and
region (real-time scene state).  The offline parquet lives under ``LARR_FEATURE_DATA`` (default
``data/features`` at the repository root); ``larr spark embed`` and ``larr features export`` write it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Float32, Float64, Int64, String

EMBEDDING_DIM = int(os.environ.get("LARR_EMBEDDING_DIM", "128"))
DATA = Path(os.environ.get("LARR_FEATURE_DATA", Path(__file__).resolve().parents[1] / "data" / "features"))


def _source(name: str) -> FileSource:
    return FileSource(name=f"{name}_source", path=str(DATA / f"{name}.parquet"), timestamp_field="event_timestamp")


user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="a user")
poi = Entity(name="poi", join_keys=["poi_id"], value_type=ValueType.INT64, description="a shop")
scene_value = Entity(name="scene_value", join_keys=["scene_key"], value_type=ValueType.INT64,
                     description="hash(field, rendered text) of one feature value (larr.text.feature_key)")
region = Entity(name="region", join_keys=["region_id"], value_type=ValueType.INT64, description="a region")

user_stats = FeatureView(
    name="user_stats", entities=[user], ttl=timedelta(days=30), source=_source("user_stats"),
    schema=[Field(name="u_imps", dtype=Int64), Field(name="u_clicks", dtype=Int64),
            Field(name="u_orders", dtype=Int64), Field(name="u_ctr", dtype=Float64)],
    description="user statistics from days strictly before the row's event day")
poi_stats = FeatureView(
    name="poi_stats", entities=[poi], ttl=timedelta(days=30), source=_source("poi_stats"),
    schema=[Field(name="p_imps", dtype=Int64), Field(name="p_clicks", dtype=Int64),
            Field(name="p_orders", dtype=Int64), Field(name="p_ctr", dtype=Float64),
            Field(name="p_cvr", dtype=Float64)],
    description="POI statistics from days strictly before the row's event day")
user_embedding = FeatureView(
    name="user_embedding", entities=[user], ttl=timedelta(days=365), source=_source("user_embeddings"),
    schema=[Field(name="embedding", dtype=Array(Float32)), Field(name="encoder_version", dtype=String)],
    description=f"LLM embedding ({EMBEDDING_DIM}-d) of the user's full text")
poi_embedding = FeatureView(
    name="poi_embedding", entities=[poi], ttl=timedelta(days=365), source=_source("poi_embeddings"),
    schema=[Field(name="embedding", dtype=Array(Float32)), Field(name="encoder_version", dtype=String),
            Field(name="region_id", dtype=Int64), Field(name="main_dish", dtype=String)],
    description=f"LLM embedding ({EMBEDDING_DIM}-d) of the POI's full text, with what recall displays")
scene_value_embedding = FeatureView(
    name="scene_value_embedding", entities=[scene_value], ttl=timedelta(days=3650),
    source=_source("scene_value_embeddings"),
    schema=[Field(name="embedding", dtype=Array(Float32)), Field(name="field", dtype=String),
            Field(name="encoder_version", dtype=String)],
    description=f"LLM embedding ({EMBEDDING_DIM}-d) of every distinct feature text (the scene vocabulary)")

region_scene_push = PushSource(name="region_scene_push", batch_source=_source("region_scene_state"))
region_scene_state = FeatureView(
    name="region_scene_state", entities=[region], ttl=timedelta(hours=6), source=region_scene_push,
    schema=[Field(name="weather", dtype=String), Field(name="temperature_c", dtype=Float64),
            Field(name="weather_key", dtype=Int64), Field(name="temp_key", dtype=Int64),
            Field(name="weather_ts", dtype=Int64),
            Field(name="time_slot", dtype=String), Field(name="slot_key", dtype=Int64), Field(name="slot_ts", dtype=Int64),
            Field(name="day_type", dtype=String), Field(name="day_key", dtype=Int64), Field(name="context_ts", dtype=Int64)],
    description="real-time scene state per region, pushed by the Kafka consumer (streaming/); each group "
                "(weather, slot, context) carries its own event time in ms (*_ts) so older events never win")

ctr_model = FeatureService(name="ctr_model",
                           features=[user_stats, poi_stats, scene_value_embedding, region_scene_state])
recall = FeatureService(name="recall", features=[poi_embedding, user_embedding])
