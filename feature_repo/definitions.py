# Generated from the feature spec 'food_delivery' by `larr features render-repo` (larr/feast_repo.py).
# Do not edit by hand: change the spec and render again (a test keeps the shipped file in sync).
"""Feast definitions of the larr feature platform for the feature spec ``food_delivery``.

Entities: user (user_id), poi (poi_id), scene_value (scene_key), region (region_id, real-time scene state).
The offline parquet lives under ``LARR_FEATURE_DATA`` (default ``data/features`` at the repository root):
``larr embed`` writes the embedding tables, ``larr features publish`` the statistics and the real-time scene
history.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Float32, Float64, Int64, String

EMBEDDING_DIM = int(os.environ.get("LARR_EMBEDDING_DIM", "128"))
DATA = Path(os.environ.get("LARR_FEATURE_DATA", Path(__file__).resolve().parents[1] / "data" / "features"))

# ----- entities
user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="Users; hidden tastes are never part of the data.",
)
poi = Entity(
    name="poi",
    join_keys=["poi_id"],
    value_type=ValueType.INT64,
    description="Shops (points of interest). Name + location identify a POI in text (paper 3.1).",
)
scene_value = Entity(
    name="scene_value",
    join_keys=["scene_key"],
    value_type=ValueType.INT64,
    description="hash(field, rendered text) of one feature value (larr.text.feature_key)",
)
region = Entity(
    name="region",
    join_keys=["region_id"],
    value_type=ValueType.INT64,
    description="a region: the key of the real-time scene state",
)

# ----- offline sources (parquet under DATA)
user_stats_source = FileSource(
    name="user_stats_source",
    path=str(DATA / "user_stats.parquet"),
    timestamp_field="event_timestamp",
)
poi_stats_source = FileSource(
    name="poi_stats_source",
    path=str(DATA / "poi_stats.parquet"),
    timestamp_field="event_timestamp",
)
user_poi_stats_source = FileSource(
    name="user_poi_stats_source",
    path=str(DATA / "user_poi_stats.parquet"),
    timestamp_field="event_timestamp",
)
user_poi_history_source = FileSource(
    name="user_poi_history_source",
    path=str(DATA / "user_poi_history.parquet"),
    timestamp_field="event_timestamp",
)
user_context_source = FileSource(
    name="user_context_source",
    path=str(DATA / "user_context.parquet"),
    timestamp_field="event_timestamp",
)
poi_profile_source = FileSource(
    name="poi_profile_source",
    path=str(DATA / "poi_profile.parquet"),
    timestamp_field="event_timestamp",
)
user_embeddings_source = FileSource(
    name="user_embeddings_source",
    path=str(DATA / "user_embeddings.parquet"),
    timestamp_field="event_timestamp",
)
poi_embeddings_source = FileSource(
    name="poi_embeddings_source",
    path=str(DATA / "poi_embeddings.parquet"),
    timestamp_field="event_timestamp",
)
scene_value_embeddings_source = FileSource(
    name="scene_value_embeddings_source",
    path=str(DATA / "scene_value_embeddings.parquet"),
    timestamp_field="event_timestamp",
)
region_scene_state_source = FileSource(
    name="region_scene_state_source",
    path=str(DATA / "region_scene_state.parquet"),
    timestamp_field="event_timestamp",
)

# ----- statistics: one row per entity and day, from days strictly before that day
user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    ttl=timedelta(days=30),
    source=user_stats_source,
    schema=[
        Field(name="u_imps", dtype=Int64),
        Field(name="u_clicks", dtype=Int64),
        Field(name="u_orders", dtype=Int64),
        Field(name="u_ctr", dtype=Float64),
    ],
    description="user statistics from days strictly before the row's event day (ctr_samples)",
)

poi_stats = FeatureView(
    name="poi_stats",
    entities=[poi],
    ttl=timedelta(days=30),
    source=poi_stats_source,
    schema=[
        Field(name="p_imps", dtype=Int64),
        Field(name="p_clicks", dtype=Int64),
        Field(name="p_orders", dtype=Int64),
        Field(name="p_ctr", dtype=Float64),
        Field(name="p_cvr", dtype=Float64),
    ],
    description="poi statistics from days strictly before the row's event day (ctr_samples)",
)

user_poi_stats = FeatureView(
    name="user_poi_stats",
    entities=[user, poi],
    ttl=timedelta(days=30),
    source=user_poi_stats_source,
    schema=[
        Field(name="up_imps", dtype=Int64),
        Field(name="up_clicks", dtype=Int64),
        Field(name="up_orders", dtype=Int64),
        Field(name="up_ctr", dtype=Float64),
    ],
    description="user x poi statistics from days strictly before the row's event day (ctr_samples)",
)

user_poi_history = FeatureView(
    name="user_poi_history",
    entities=[user],
    ttl=timedelta(days=30),
    source=user_poi_history_source,
    schema=[
        Field(name="poi_ids", dtype=Array(Int64)),
        Field(name="up_imps_by_poi", dtype=Array(Int64)),
        Field(name="up_clicks_by_poi", dtype=Array(Int64)),
        Field(name="up_orders_by_poi", dtype=Array(Int64)),
        Field(name="up_ctr_by_poi", dtype=Array(Float64)),
    ],
    description="the same user x poi statistics keyed by user alone: arrays aligned by position with the "
    "poi ids, so a scorer reads every pair of a user in one lookup",
)

# ----- per-request inputs of the scorer: the row of the day, as ctr_samples joined it
user_context = FeatureView(
    name="user_context",
    entities=[user],
    ttl=timedelta(days=30),
    source=user_context_source,
    schema=[
        Field(name="key_USER_profile", dtype=Int64),
        Field(name="key_USER_home", dtype=Int64),
        Field(name="key_USER_orders", dtype=Int64),
    ],
    description="keys of the user's scene fields for the day (history from days strictly before it)",
)

poi_profile = FeatureView(
    name="poi_profile",
    entities=[poi],
    ttl=timedelta(days=30),
    source=poi_profile_source,
    schema=[
        Field(name="price_level", dtype=Int64),
        Field(name="created_day", dtype=Int64),
        Field(name="key_POI_dishes", dtype=Int64),
    ],
    description="the poi's CTR columns, creation day (days since 1970-01-01) and scene-field keys",
)

# ----- LLM embeddings (larr embed)
user_embedding = FeatureView(
    name="user_embedding",
    entities=[user],
    ttl=timedelta(days=365),
    source=user_embeddings_source,
    schema=[
        Field(name="embedding", dtype=Array(Float32)),
        Field(name="encoder_version", dtype=String),
    ],
    description=f"LLM embedding ({EMBEDDING_DIM}-d) of the user's text (user_full)",
)

poi_embedding = FeatureView(
    name="poi_embedding",
    entities=[poi],
    ttl=timedelta(days=365),
    source=poi_embeddings_source,
    schema=[
        Field(name="embedding", dtype=Array(Float32)),
        Field(name="encoder_version", dtype=String),
        Field(name="region_id", dtype=Int64),
    ],
    description=f"LLM embedding ({EMBEDDING_DIM}-d) of the poi's text (poi_full), with what recall displays "
    "(region_id)",
)

scene_value_embedding = FeatureView(
    name="scene_value_embedding",
    entities=[scene_value],
    ttl=timedelta(days=3650),
    source=scene_value_embeddings_source,
    schema=[
        Field(name="embedding", dtype=Array(Float32)),
        Field(name="field", dtype=String),
        Field(name="encoder_version", dtype=String),
    ],
    description=f"LLM embedding ({EMBEDDING_DIM}-d) of every distinct feature text (the scene vocabulary)",
)

# ----- real-time scene state (schema fixed: what larr/realtime/state.py pushes)
region_scene_push = PushSource(name="region_scene_push", batch_source=region_scene_state_source)
region_scene_state = FeatureView(
    name="region_scene_state",
    entities=[region],
    ttl=timedelta(hours=6),
    source=region_scene_push,
    schema=[
        Field(name="weather", dtype=String),
        Field(name="temperature_c", dtype=Float64),
        Field(name="weather_key", dtype=Int64),
        Field(name="temp_key", dtype=Int64),
        Field(name="weather_ts", dtype=Int64),
        Field(name="time_slot", dtype=String),
        Field(name="slot_key", dtype=Int64),
        Field(name="slot_ts", dtype=Int64),
        Field(name="day_type", dtype=String),
        Field(name="day_key", dtype=Int64),
        Field(name="context_ts", dtype=Int64),
    ],
    description="real-time scene state per region, pushed by the Kafka consumer (streaming/); each group "
    "(weather, slot, context) carries its own event time in ms (*_ts) so older events never win",
)

# ----- services
ctr_model = FeatureService(
    name="ctr_model",
    features=[user_stats, poi_stats, user_poi_stats, user_poi_history, user_context, poi_profile, scene_value_embedding, region_scene_state],
)
recall = FeatureService(
    name="recall",
    features=[poi_embedding, user_embedding],
)
