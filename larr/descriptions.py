"""Which fields make up each description, and how a raw row becomes field values.

The renderer (:mod:`larr.text`) turns *one* field value into text; this module
says *which* values: what a POI's CPT prompt and target are (paper 3.1), what
a user's profile and behaviour texts are, what a POI's business and basic texts
are (paper 3.2), and how a raw column becomes the value of a field (a POI's
location is "district, region"; opening hours are "06:00-14:00").  Spark jobs,
the embedding job and serving all build texts through these functions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from larr.text import render_many
from larr.world.catalog import PRICE_WORDS

CPT_PROMPT_FIELDS = ("POI_name", "POI_loc")
CPT_TARGET_FIELDS = ("POI_intro", "POI_cuisine", "POI_dishes", "POI_tags", "POI_price", "POI_hours", "POI_stats")
POI_BUSINESS_FIELDS = ("POI_name", "POI_loc", "POI_dishes")
POI_BASIC_FIELDS = ("POI_intro", "POI_tags")
POI_FULL_FIELDS = (*POI_BUSINESS_FIELDS, "POI_cuisine", "POI_price", "POI_hours", *POI_BASIC_FIELDS)
USER_PROFILE_FIELDS = ("USER_profile", "USER_home")
USER_BEHAVIOUR_FIELDS = ("USER_orders", "USER_slots", "USER_price", "USER_env")
USER_FULL_FIELDS = (*USER_PROFILE_FIELDS, *USER_BEHAVIOUR_FIELDS)


def location(region: str, district: str) -> str:
    return f"{district}, {region}"


def opening_hours(open_hour: int, close_hour: int) -> str:
    text = f"{int(open_hour):02d}:00-{int(close_hour):02d}:00"
    return text + " (past midnight)" if int(close_hour) < int(open_hour) else text


def order_volume_band(n_orders: int) -> str:
    if n_orders <= 0:
        return "no orders yet"
    if n_orders < 5:
        return "a few orders"
    if n_orders < 20:
        return "steady orders"
    return "very popular"


def rating_band(rating: float | None) -> str:
    if rating is None or rating != rating:  # NaN
        return "not rated yet"
    if rating >= 4.5:
        return "rated 4.5 and above"
    if rating >= 4.0:
        return "rated 4.0 to 4.5"
    if rating >= 3.0:
        return "rated 3.0 to 4.0"
    return "rated below 3.0"


def poi_values(poi: Mapping[str, Any], region: str, district: str, n_orders: int = 0) -> dict[str, Any]:
    """Field values of one POI row (``pois`` table) with its region/district names and order count."""
    return {
        "POI_name": poi["name"],
        "POI_loc": location(region, district),
        "POI_intro": poi["introduction"],
        "POI_cuisine": poi["cuisine"],
        "POI_dishes": list(poi["dishes"]),
        "POI_tags": list(poi["tags"]) if poi["tags"] is not None else [],
        "POI_price": PRICE_WORDS.get(int(poi["price_level"]), "unknown price"),
        "POI_hours": opening_hours(poi["open_hour"], poi["close_hour"]),
        "POI_stats": f"{order_volume_band(n_orders)}; {rating_band(poi.get('rating'))}",
    }


def recent_orders_text(orders: Sequence[Mapping[str, Any]], limit: int) -> list[str] | str:
    """Newest-first "dish from shop (cuisine)" list of the last ``limit`` orders (each with ts, dish, poi_name,
    cuisine)."""
    if not orders:
        return "no orders yet"
    newest = sorted(orders, key=lambda o: o["ts"], reverse=True)[:limit]
    return [f"{o['dish']} from {o['poi_name']} ({o['cuisine']})" for o in newest]


def behaviour_values(orders: Sequence[Mapping[str, Any]], limit: int) -> dict[str, Any]:
    """USER_orders / slots / price / env from a user's past orders (each with ts, dish, poi_name, cuisine,
    time_slot, amount, weather, temp_band)."""
    if not orders:
        return {"USER_orders": "no orders yet", "USER_slots": "unknown", "USER_price": "unknown",
                "USER_env": "unknown"}
    slots = Counter(o["time_slot"] for o in orders).most_common(2)
    envs = Counter(f"{o['weather']}, {o['temp_band']}" for o in orders).most_common(2)
    amounts = [float(o["amount"]) for o in orders]
    mean = sum(amounts) / len(amounts)
    return {
        "USER_orders": recent_orders_text(orders, limit),
        "USER_slots": [s for s, _ in slots],
        "USER_price": f"average order {mean:.0f} yuan, {len(amounts)} orders",
        "USER_env": [e for e, _ in envs],
    }


def user_profile_values(user: Mapping[str, Any], home_region: str, home_district: str) -> dict[str, Any]:
    """USER_profile and USER_home of one ``users`` row."""
    return {
        "USER_profile": f"{user['gender']}, age {user['age_band']}, {user['occupation']}",
        "USER_home": location(home_region, home_district),
    }


def render_fields(values: Mapping[str, Any], fields: Iterable[str]) -> str:
    """Render the named fields of ``values`` in order into one description."""
    return render_many((f, values[f]) for f in fields)
