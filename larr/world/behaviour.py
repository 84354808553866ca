"""The hidden click and order model of the simulated world.

Click and order probabilities combine

* a collaborative part: latent user x POI affinity plus POI quality, learnable
  from ids on the training days but useless for a POI created on the test day;
* a semantic part that is only visible through text (DESIGN section 4): hot
  weather favours cold food, rain and cold favour hot soup, breakfast slots
  favour breakfast shops, late nights favour late-night food, travellers favour
  the local specialties of where they are, users like their home cuisine and
  act on spicy/sweet tastes and price sensitivity that show in their order
  history and profile;
* distance and opening hours;
* in the realistic variant (:class:`Interactions`), pairwise interactions of observable fields -- user
  segment x cuisine, request district x POI, hour x cuisine, day type x cuisine, budget x price level,
  per-user distance sensitivity, rain x distance -- as real logs have.

Everything is vectorised over impressions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from larr.config import WorldConfig
from larr.world.scene import TIME_SLOTS

SLOT_BREAKFAST = TIME_SLOTS.index("breakfast")
SLOT_LATE = TIME_SLOTS.index("late night")


@dataclass
class PoiLatents:
    """Hidden per-POI arrays, indexed by POI row."""

    cold: np.ndarray  # share of cold dishes
    hot: np.ndarray  # share of hot dishes
    soup: np.ndarray
    spicy: np.ndarray
    breakfast: np.ndarray
    late_night: np.ndarray
    sweet: np.ndarray
    cuisine_region: np.ndarray  # region row of a regional cuisine, -1 for cuisines found everywhere
    price_level: np.ndarray
    open_hour: np.ndarray
    close_hour: np.ndarray
    latent: np.ndarray  # [n, collab_dim]
    quality: np.ndarray
    cuisine: np.ndarray | None = None  # catalog cuisine index


@dataclass
class Interactions:
    """Hidden pairwise effects of observable CTR fields (realistic variant), each already scaled by its
    ``world.realism`` weight."""

    user_cuisine: np.ndarray  # [n_users, n_cuisines]: the user's segment's affinity to each cuisine
    district_vec: np.ndarray  # [max district id + 1, r]: request district factor
    poi_vec: np.ndarray  # [n_pois, r]
    hour_cuisine: np.ndarray  # [24, n_cuisines]: low-rank hour x cuisine profile
    daytype_cuisine: np.ndarray  # [len(DAY_TYPES), n_cuisines]
    budget: np.ndarray  # [n_users]: weight x affluence, multiplies (price level - 2.5)
    mobility: np.ndarray  # [n_users]: multiplier of the distance penalty (mean 1)
    wet_distance: float  # extra penalty per km in rain or snow
    id_affinity: float = 1.0  # multiplier of the latent user x POI affinity (the keyword world's 0.9 dot)

    def logit(self, poi: PoiLatents, p: np.ndarray, u: np.ndarray, district: np.ndarray, hour: np.ndarray,
              day_type: np.ndarray) -> np.ndarray:
        """The categorical crosses' part of the click logit (distance terms: :func:`click_order_probabilities`)."""
        c = poi.cuisine[p]
        return (self.user_cuisine[u, c] + (self.district_vec[district] * self.poi_vec[p]).sum(axis=1)
                + self.hour_cuisine[hour, c] + self.daytype_cuisine[day_type, c]
                + self.budget[u] * (poi.price_level[p] - 2.5))


@dataclass
class UserLatents:
    """Hidden per-user arrays, indexed by user row."""

    home_region: np.ndarray
    latent: np.ndarray
    spicy_pref: np.ndarray
    sweet_pref: np.ndarray
    price_sens: np.ndarray
    activity: np.ndarray


def is_open(open_hour: np.ndarray, close_hour: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """Opening hours with overnight wrap (close < open means the shop closes after midnight)."""
    same_day = open_hour < close_hour
    return np.where(same_day, (hour >= open_hour) & (hour < close_hour), (hour >= open_hour) | (hour < close_hour))


def semantic_logit(
    cfg: WorldConfig,
    poi: PoiLatents,
    user: UserLatents,
    p: np.ndarray,
    u: np.ndarray,
    *,
    temperature_c: np.ndarray,
    wet: np.ndarray,
    slot: np.ndarray,
    region: np.ndarray,
    travelling: np.ndarray,
) -> np.ndarray:
    """The part of the click logit that depends on what things *mean*."""
    w = cfg.semantic
    hot_weather = np.clip((temperature_c - 26.0) / 6.0, 0.0, 1.5)
    cold_weather = np.clip((14.0 - temperature_c) / 10.0, 0.0, 1.5) + 0.8 * wet
    breakfast_slot = slot == SLOT_BREAKFAST
    late_slot = slot == SLOT_LATE
    local = (poi.cuisine_region[p] == region) & (poi.cuisine_region[p] >= 0)
    home_cuisine = poi.cuisine_region[p] == user.home_region[u]
    s = (
        w.hot_weather_cold_food * hot_weather * (poi.cold[p] - 0.8 * poi.hot[p])
        + w.cold_weather_hot_soup * cold_weather * (poi.soup[p] + 0.5 * poi.hot[p] - poi.cold[p])
        + w.breakfast_slot * np.where(breakfast_slot, 2.0 * poi.breakfast[p] - 0.6, -0.5 * poi.breakfast[p])
        + w.late_night_food * late_slot * (poi.late_night[p] - 0.3)
        + w.traveller_local_specialty * travelling * local
        + w.home_cuisine * home_cuisine
        + w.spicy_taste * user.spicy_pref[u] * (poi.spicy[p] - 0.25)
        + w.sweet_taste * user.sweet_pref[u] * (poi.sweet[p] - 0.3)
        - w.price_match * user.price_sens[u] * (poi.price_level[p] - 2.5)
    )
    return w.scale * s


def click_order_probabilities(
    cfg: WorldConfig,
    poi: PoiLatents,
    user: UserLatents,
    p: np.ndarray,
    u: np.ndarray,
    *,
    hour: np.ndarray,
    temperature_c: np.ndarray,
    wet: np.ndarray,
    slot: np.ndarray,
    region: np.ndarray,
    travelling: np.ndarray,
    distance_km: np.ndarray,
    inter: Interactions | None = None,
    district: np.ndarray | None = None,
    day_type: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """True P(click) and P(order | click) of each impression.  ``inter`` (realistic variant) adds the
    observable-field interactions; it needs the request ``district`` ids and ``day_type`` indices."""
    sem = semantic_logit(cfg, poi, user, p, u, temperature_c=temperature_c, wet=wet, slot=slot,
                         region=region, travelling=travelling)
    dot = (poi.latent[p] * user.latent[u]).sum(axis=1) / np.sqrt(cfg.collab_dim)
    if inter is not None and inter.id_affinity != 1.0:
        dot = inter.id_affinity * dot
    collab = cfg.collab_scale * (0.9 * dot + poi.quality[p]) + np.log(user.activity[u])
    open_now = is_open(poi.open_hour[p], poi.close_hour[p], hour)
    dist = cfg.distance_per_km * distance_km * (1.0 + 0.5 * travelling)
    if inter is not None:
        if district is None or day_type is None:
            raise ValueError("click_order_probabilities: interactions need district and day_type")
        cross = inter.logit(poi, p, u, district, hour, day_type)
        dist = dist * inter.mobility[u] + inter.wet_distance * wet * distance_km
        collab = collab + cross
    click_logit = cfg.click_bias + collab + sem - dist - 3.5 * ~open_now
    order_logit = (cfg.order_bias + 0.5 * sem + 0.4 * cfg.collab_scale * dot
                   - 0.08 * distance_km - 4.0 * ~open_now)
    if inter is not None:
        order_logit = order_logit + 0.4 * cross
    return _sigmoid(click_logit), _sigmoid(order_logit)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
