"""A second simulated world: a context-aware app-recommendation log.

Why a second world: the food-delivery world (:mod:`larr.world.generate`) is the one the paper describes,
so a method tuned on it might only have learnt that world's quirks.  This one shares no vocabulary with
it (apps instead of shops; place, connectivity and city instead of districts and distances) and has no
general text, so it checks that the pipeline is domain-agnostic.

What makes it useful is the same as in the food world: a large part of the click model reads *hidden*
app attributes (works offline, focus tool, relaxing entertainment, morning routine, outdoor, cosy indoor,
data-hungry, local to a city) that never appear as a column.  They reach the output only through varied
wording in titles, descriptions and tags (:mod:`larr.world.app_catalog`), so ids and the coarse store
category cannot explain the context effects (at work, offline, at night at home, in the rain, away from
home), and apps created on the test day can only be scored well from their text.

Layout, determinism and chunking follow :mod:`larr.world.generate`: seeded numpy streams derived from
(seed, purpose[, day, chunk]), events written one (day, user chunk) at a time as hive-partitioned zstd
parquet, the true test-day probabilities in ``_oracle/`` and their AUC in ``manifest.json``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from larr.config import LarrConfig, WorldConfig, config_to_dict, save_config
from larr.metrics import auc
from larr.world import app_catalog as cat
from larr.world.generate import prepare_out

log = logging.getLogger("larr.app_usage")

DOMAIN = "app_usage"
FIRST_APP_ID = 5_000_000
TRAVEL_PROB = 0.05  # chance a user spends a given day in another city
SAME_COUNTRY_TRAVEL = 0.5  # share of trips that stay in the home country
NEW_APP_EXPOSURE = 2.0  # the store surfaces fresh releases, so test-day apps get real traffic
LOCAL_SLOT_SHARE = 0.2  # candidate slots filled from apps local to the city the user is in
FOREIGN_LOCAL_EXPOSURE = 0.25  # local apps are rarely shown through the global pool
# The default click_bias is tuned for the food world; app logits spread wider (taste, popularity and
# context all vary), so this shift brings the default CTR down to about 10%.
LOGIT_OFFSET = -0.6

# Share of app sessions in each local hour: a morning bump, lunch, and a long evening.
HOUR_WEIGHTS = np.array([0.6, 0.3, 0.15, 0.1, 0.1, 0.2, 0.9, 2.2, 2.6, 1.8, 1.4, 1.5,
                         2.2, 1.8, 1.3, 1.3, 1.5, 2.0, 2.3, 2.8, 3.2, 3.2, 2.6, 1.5])
HOUR_WEIGHTS = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
CHRONOTYPE_HOURS = (np.arange(6, 10), np.arange(10, 18), np.array([20, 21, 22, 23, 0, 1]))
CHRONOTYPE_SHARE = 0.4  # share of a user's sessions in their own preferred hours

# P(place = home, work, other | hour) for a working weekday and for any other day.
_WORKDAY_PLACE = np.array(
    [[0.95, 0.0, 0.05]] * 6 + [[0.85, 0.0, 0.15]] + [[0.45, 0.10, 0.45]] * 2 + [[0.08, 0.82, 0.10]] * 3
    + [[0.08, 0.55, 0.37]] + [[0.08, 0.82, 0.10]] * 4 + [[0.15, 0.45, 0.40]] + [[0.35, 0.15, 0.50]]
    + [[0.75, 0.03, 0.22]] * 3 + [[0.92, 0.0, 0.08]] * 2)
_FREE_DAY_PLACE = np.array(
    [[0.95, 0.0, 0.05]] * 7 + [[0.75, 0.02, 0.23]] * 3 + [[0.45, 0.03, 0.52]] * 8 + [[0.65, 0.01, 0.34]] * 3
    + [[0.88, 0.0, 0.12]] * 3)
_TRAVEL_PLACE = np.array([0.0, 0.15, 0.85])
# P(connectivity = wifi, cellular, offline | place); a traveller out and about roams less and drops more.
_CONNECTIVITY = np.array([[0.88, 0.10, 0.02], [0.72, 0.25, 0.03], [0.12, 0.68, 0.20]])
_TRAVEL_OUT_CONNECTIVITY = np.array([0.15, 0.50, 0.35])
_WORK_PROB_BY_AGE = np.array([0.55, 0.85, 0.85, 0.80, 0.35])
_CHRONOTYPE_BY_AGE = np.array([[0.15, 0.30, 0.55], [0.25, 0.40, 0.35], [0.35, 0.40, 0.25],
                               [0.45, 0.35, 0.20], [0.55, 0.35, 0.10]])

_MANAGED = ("apps.parquet", "users.parquet", "events", "_oracle", "manifest.json", "config.yaml",
            # a food world written here before: its files would otherwise sit beside ours
            "general_text.txt", "regions.parquet", "districts.parquet", "pois.parquet", "weather.parquet",
            "impressions", "orders")

APPS_SCHEMA = pa.schema([("app_id", pa.int64()), ("title", pa.string()), ("category", pa.string()),
                         ("developer", pa.string()), ("description", pa.string()),
                         ("tags", pa.list_(pa.string())), ("created_date", pa.date32()),
                         ("rating", pa.float64()), ("size_mb", pa.float64())])
USERS_SCHEMA = pa.schema([("user_id", pa.int64()), ("country", pa.string()), ("city", pa.string()),
                          ("device", pa.string()), ("age_group", pa.string())])
EVENTS_SCHEMA = pa.schema([("request_id", pa.int64()), ("ts", pa.timestamp("us")), ("user_id", pa.int64()),
                           ("app_id", pa.int64()), ("place", pa.string()), ("weather", pa.string()),
                           ("connectivity", pa.string()), ("city", pa.string()), ("click", pa.int64())])
TRUTH_SCHEMA = pa.schema([("request_id", pa.int64()), ("app_id", pa.int64()), ("p_click", pa.float64()),
                          ("p_click_without_semantics", pa.float64())])


@dataclass
class AppLatents:
    """Hidden per-app arrays, indexed by app row; never written."""

    category: np.ndarray  # index into CATEGORIES
    attr: np.ndarray  # [n, len(ATTRIBUTES)] strengths in [0, 1]
    local_city: np.ndarray  # index into CITIES, -1 for an app useful everywhere
    latent: np.ndarray  # [n, collab_dim]
    popularity: np.ndarray
    created_day: np.ndarray  # day index of creation (negative: before the window)
    exposure: np.ndarray  # weight of the app in the candidate generator


@dataclass
class UserLatents:
    """Hidden per-user arrays, indexed by user row; never written."""

    home_city: np.ndarray
    latent: np.ndarray
    category_affinity: np.ndarray  # [n, len(CATEGORIES)]
    activity: np.ndarray
    works: np.ndarray  # has a weekday job (place "work" in office hours)
    chronotype: np.ndarray  # 0 morning, 1 daytime, 2 night


@dataclass
class Context:
    """The context of each event row (arrays of equal length)."""

    hour: np.ndarray
    weekend: np.ndarray
    place: np.ndarray  # index into PLACES
    connectivity: np.ndarray  # index into CONNECTIVITY
    weather: np.ndarray  # index into WEATHER
    city: np.ndarray  # index into CITIES: where the user is now
    home_city: np.ndarray


@dataclass
class _World:
    cfg: LarrConfig
    days: list[date]
    apps: pa.Table
    users: pa.Table
    app_lat: AppLatents
    user_lat: UserLatents
    weather: np.ndarray  # [n_cities, n_days] index into WEATHER


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of ``probs`` ([n, k], rows sum to 1), vectorised."""
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = 1.0
    return (rng.random((len(probs), 1)) > cdf).sum(axis=1)


def data_days(cfg: LarrConfig) -> list[date]:
    """All days of the log; the last is the test day, the one before it the validation day."""
    return [cfg.world.start_date + timedelta(days=d) for d in range(cfg.world.n_days)]


def split_of_days(days: list[date]) -> dict[str, Any]:
    """Train / valid / test days as ISO strings (the same split rule as the food world)."""
    return {"train": [d.isoformat() for d in days[:-2]], "valid": days[-2].isoformat(),
            "test": days[-1].isoformat()}


# --- entities -------------------------------------------------------------------------------------------


def _app_text(rng: np.random.Generator, category: cat.Category, attrs: list[str], city: cat.City | None
              ) -> tuple[str, str, list[str]]:
    """Title, description (1-3 sentences) and tags that carry the hidden attributes in varied words.

    Each attribute goes to the description most of the time, else only to a tag or a title word, and a
    few stay invisible (noise a text model cannot beat).  Neutral base sentences and filler make sure
    that sentence count and position say nothing.
    """
    noun = str(rng.choice(category.nouns))
    fill: dict[str, str] = {"noun": noun}
    if city is not None:
        areas = rng.permutation(len(city.areas))
        fill.update(city=city.name, transit=city.transit, landmark=str(rng.choice(city.landmarks)),
                    area=city.areas[areas[0]], area2=city.areas[areas[1]])
    sentences: list[str] = []
    sentence_tags: list[str] = []  # a tag saying the same as each sentence, kept if the sentence is cut
    tags: list[str] = []
    title_words: list[str] = []
    for name in attrs:
        r = rng.random()
        if r < 0.78:
            sentences.append(str(rng.choice(cat.ATTRIBUTE_PHRASES[name])).format(**fill))
            sentence_tags.append(str(rng.choice(cat.ATTRIBUTE_TAGS[name])))
            if rng.random() < 0.3:
                tags.append(str(rng.choice(cat.ATTRIBUTE_TAGS[name])))
        elif r < 0.90:
            tags.append(str(rng.choice(cat.ATTRIBUTE_TAGS[name])))
        elif r < 0.96:
            title_words.append(str(rng.choice(cat.ATTRIBUTE_TITLE_WORDS[name])))
    if city is not None:
        if rng.random() < 0.85:
            sentences.append(str(rng.choice(cat.LOCAL_PHRASES)).format(**fill))
            sentence_tags.append(str(rng.choice(cat.LOCAL_TAGS)).format(**fill))
        else:
            tags.append(str(rng.choice(cat.LOCAL_TAGS)).format(**fill))
    order = rng.permutation(len(sentences))
    for i in order[3:]:  # too many to say: the rest survives as a tag at most
        if rng.random() < 0.5:
            tags.insert(0, sentence_tags[i])
    sentences = [sentences[i] for i in order[:3]]
    if not sentences or (len(sentences) < 3 and rng.random() < 0.8):
        sentences.insert(0, str(rng.choice(category.base)))
    if len(sentences) < 3 and rng.random() < 0.45:
        sentences.insert(int(rng.integers(0, len(sentences) + 1)), str(rng.choice(cat.FILLER_SENTENCES)))
    n_generic = int(rng.choice([0, 0, 1, 1, 2]))
    tags += [str(t) for t in rng.choice(cat.GENERIC_TAGS, size=n_generic, replace=False)]
    tags = list(dict.fromkeys(tags))[:4]
    tags = [tags[i] for i in rng.permutation(len(tags))]

    title_noun = str(rng.choice(category.title_nouns))
    if title_words:
        title = f"{title_words[0]} {title_noun}"
    elif city is not None and rng.random() < 0.35:
        title = f"{str(rng.choice([city.name, fill['area']]))} {title_noun}"
    else:
        title = f"{str(rng.choice(cat.TITLE_ADJECTIVES))} {title_noun}"
    return title, " ".join(sentences), tags


def _developers(n: int) -> list[str]:
    """``n`` distinct studio names; two-word names first, three-word names once those run out."""
    names = [f"{a} {k}" for a in cat.DEVELOPER_FIRST for k in cat.DEVELOPER_KIND]
    names += [f"{a} {b} {k}" for a in cat.DEVELOPER_FIRST for b in cat.DEVELOPER_SECOND
              for k in cat.DEVELOPER_KIND]
    return names[: min(n, len(names))]


def build_apps(w: WorldConfig, rng: np.random.Generator, days: list[date]) -> tuple[pa.Table, AppLatents]:
    """The app catalogue and its hidden attributes; ``new_poi_frac`` of it is created on the test day."""
    n = w.n_pois
    n_cat = len(cat.CATEGORIES)
    category = rng.integers(0, n_cat, n)
    attr_prob = np.array([c.attr_prob for c in cat.CATEGORIES])[category]
    present = rng.random(attr_prob.shape) < attr_prob
    for i in np.flatnonzero(present.sum(axis=1) > 3):  # at most three hidden traits per app
        keep = rng.permutation(np.flatnonzero(present[i]))[:3]
        present[i] = False
        present[i, keep] = True
    attr = present * rng.uniform(0.6, 1.0, present.shape)
    local_prob = np.array([c.local_prob for c in cat.CATEGORIES])[category]
    city_w = np.array([c.weight for c in cat.CITIES])
    some_city = rng.choice(len(cat.CITIES), size=n, p=city_w / city_w.sum())
    local_city = np.where(rng.random(n) < local_prob, some_city, -1)
    latent = rng.normal(0, 1, (n, w.collab_dim))
    popularity = rng.normal(0, 0.6, n)
    n_new = int(round(w.new_poi_frac * n))
    is_new = np.zeros(n, dtype=bool)
    is_new[rng.permutation(n)[:n_new]] = True
    created_day = np.where(is_new, len(days) - 1, -rng.integers(1, 1500, n))
    rating = np.clip(np.round(3.9 + 0.45 * popularity + rng.normal(0, 0.3, n), 1), 1.0, 5.0)
    size_med = np.array([c.size_mb for c in cat.CATEGORIES])[category]
    log_size = np.log(size_med[:, 0]) + size_med[:, 1] * rng.normal(0, 1, n)
    size_mb = np.maximum(1.0, np.round(np.exp(log_size), 1))
    devs = _developers(max(5, n // 4))
    developer = rng.integers(0, len(devs), n)

    titles: list[str] = []
    descriptions: list[str] = []
    tags: list[list[str]] = []
    seen: set[str] = set()
    for i in range(n):
        names = [cat.ATTRIBUTES[j] for j in np.flatnonzero(present[i])]
        city = cat.CITIES[local_city[i]] if local_city[i] >= 0 else None
        title, text, tag = _app_text(rng, cat.CATEGORIES[category[i]], names, city)
        base, k = title, 0
        while title in seen:  # titles are unique, like store listings
            k += 1
            title = f"{base} {cat.TITLE_SUFFIXES[(k - 1) % len(cat.TITLE_SUFFIXES)]}"
            if k > len(cat.TITLE_SUFFIXES):
                title += f" {k // len(cat.TITLE_SUFFIXES) + 1}"
        seen.add(title)
        titles.append(title)
        descriptions.append(text)
        tags.append(tag)

    start = days[0]
    created = [start + timedelta(days=int(d)) for d in created_day]
    exposure = np.exp(0.5 * popularity) * np.where(local_city >= 0, FOREIGN_LOCAL_EXPOSURE, 1.0)
    exposure = exposure * np.where(is_new, NEW_APP_EXPOSURE, 1.0)
    table = pa.table({
        "app_id": pa.array(FIRST_APP_ID + np.arange(n), pa.int64()),
        "title": pa.array(titles, pa.string()),
        "category": pa.array([cat.CATEGORIES[c].name for c in category], pa.string()),
        "developer": pa.array([devs[d] for d in developer], pa.string()),
        "description": pa.array(descriptions, pa.string()),
        "tags": pa.array(tags, pa.list_(pa.string())),
        "created_date": pa.array(created, pa.date32()),
        "rating": pa.array(rating, pa.float64(), mask=is_new),
        "size_mb": pa.array(size_mb, pa.float64()),
    }, schema=APPS_SCHEMA)
    return table, AppLatents(category, attr, local_city.astype(np.int64), latent, popularity, created_day,
                             exposure)


def build_users(w: WorldConfig, rng: np.random.Generator) -> tuple[pa.Table, UserLatents]:
    """Users with a home city, device and age group (public) and tastes and habits (hidden)."""
    n = w.n_users
    city_w = np.array([c.weight for c in cat.CITIES])
    home = rng.choice(len(cat.CITIES), size=n, p=city_w / city_w.sum())
    country = np.array([c.country for c in cat.CITIES])[home]
    ios_p = np.array([cat.IOS_SHARE[c] for c in country])
    device = np.where(rng.random(n) < ios_p, "ios", "android")
    age = rng.choice(len(cat.AGE_GROUPS), size=n, p=np.array(cat.AGE_WEIGHTS) / sum(cat.AGE_WEIGHTS))
    age_aff = np.array([c.age_affinity for c in cat.CATEGORIES]).T  # [age, category]
    affinity = rng.normal(0, 0.5, (n, len(cat.CATEGORIES))) + age_aff[age]
    latent = rng.normal(0, 1, (n, w.collab_dim))
    activity = rng.lognormal(-0.125, 0.5, n)  # mean 1
    works = rng.random(n) < _WORK_PROB_BY_AGE[age]
    chronotype = _categorical(rng, _CHRONOTYPE_BY_AGE[age])
    table = pa.table({
        "user_id": pa.array(np.arange(1, n + 1), pa.int64()),
        "country": pa.array(country.tolist(), pa.string()),
        "city": pa.array([cat.CITIES[c].name for c in home], pa.string()),
        "device": pa.array(device.tolist(), pa.string()),
        "age_group": pa.array([cat.AGE_GROUPS[a] for a in age], pa.string()),
    }, schema=USERS_SCHEMA)
    return table, UserLatents(home.astype(np.int64), latent, affinity, activity, works, chronotype)


def build_weather(rng: np.random.Generator, days: list[date]) -> np.ndarray:
    """One condition per city and day from the city's climate; snow only plausible in winter months."""
    out = np.zeros((len(cat.CITIES), len(days)), dtype=np.int64)
    for di, day in enumerate(days):
        winter = day.month in (12, 1, 2, 3)
        probs = np.array([c.climate for c in cat.CITIES])
        if winter:
            probs[:, 3] = [c.winter_snow for c in cat.CITIES]
        out[:, di] = _categorical(rng, probs / probs.sum(axis=1, keepdims=True))
    return out


# --- the click model ------------------------------------------------------------------------------------


def semantic_logit(app: AppLatents, a: np.ndarray, ctx: Context) -> np.ndarray:
    """The part of the click logit that depends on what an app *is for* in the current context.

    Every term multiplies a hidden attribute (visible only through text) by a context condition, so it
    is learnable neither from ids (the same app flips between contexts) nor from the store category.
    """
    A = app.attr[a]
    off, focus, relax, morning, outdoor, indoor, hungry = (A[:, j] for j in range(A.shape[1]))
    home = ctx.place == 0
    work = ctx.place == 1
    evening_home = ((ctx.hour >= 19) | (ctx.hour < 1)) & home
    night = (ctx.hour >= 22) | (ctx.hour < 3)
    morning_h = (ctx.hour >= 6) & (ctx.hour < 10)
    offline = ctx.connectivity == 2
    cellular = ctx.connectivity == 1
    wifi = ctx.connectivity == 0
    wet = ctx.weather >= 2
    sunny = ctx.weather == 0
    weekend = ctx.weekend
    s = (
        work * (1.6 * focus - 1.2 * relax)
        + weekend * (0.4 * relax - 0.6 * focus)
        + offline * (2.6 * off - 1.2 * (1.0 - off) - 2.0 * hungry)
        - 1.3 * cellular * hungry + 0.3 * wifi * hungry
        + evening_home * (relax * (1.3 + 0.8 * weekend) - 0.5 * focus)
        + 0.4 * night * relax
        + morning * np.where(morning_h, 1.8, -0.5)
        + wet * (1.3 * indoor - 1.5 * outdoor) + sunny * (0.8 * outdoor - 0.4 * indoor)
    )
    lc = app.local_city[a]
    away = ctx.city != ctx.home_city
    here = lc == ctx.city
    s = s + (lc >= 0) * np.where(here, np.where(away, 2.6, 0.5), -1.2)
    return s


def click_probability(w: WorldConfig, app: AppLatents, user: UserLatents, a: np.ndarray, u: np.ndarray,
                      ctx: Context) -> np.ndarray:
    """True P(click): bias + collaborative + category taste + popularity + scaled semantic part."""
    dot = (app.latent[a] * user.latent[u]).sum(axis=1) / np.sqrt(w.collab_dim)
    logit = (w.click_bias + LOGIT_OFFSET + w.collab_scale * dot + user.category_affinity[u, app.category[a]]
             + app.popularity[a] + w.semantic.scale * semantic_logit(app, a, ctx))
    return 1.0 / (1.0 + np.exp(-logit))


# --- the log --------------------------------------------------------------------------------------------


def _build_world(cfg: LarrConfig) -> _World:
    days = data_days(cfg)
    apps, app_lat = build_apps(cfg.world, _rng(cfg.seed, 2), days)
    users, user_lat = build_users(cfg.world, _rng(cfg.seed, 3))
    weather = build_weather(_rng(cfg.seed, 4), days)
    return _World(cfg, days, apps, users, app_lat, user_lat, weather)


def _destinations() -> np.ndarray:
    """P(destination city | home city) for a trip: half stay in the country, never the home city."""
    n = len(cat.CITIES)
    weight = np.array([c.weight for c in cat.CITIES])
    probs = np.zeros((n, n))
    for i, ci in enumerate(cat.CITIES):
        same = np.array([c.country == ci.country for c in cat.CITIES]) & (np.arange(n) != i)
        other = np.array([c.country != ci.country for c in cat.CITIES])
        share_same = SAME_COUNTRY_TRAVEL if same.any() else 0.0
        if same.any():
            probs[i, same] = share_same * weight[same] / weight[same].sum()
        probs[i, other] = (1.0 - share_same) * weight[other] / weight[other].sum()
    return probs


def _candidates(world: _World, rng: np.random.Generator, city: np.ndarray, di: int) -> np.ndarray:
    """Distinct app rows per request, only apps that exist that day: mostly popularity-weighted from
    the whole store, some slots from apps local to the city the user is in."""
    app = world.app_lat
    exists = app.created_day <= di
    pool = np.flatnonzero(exists)
    n_req = len(city)
    k = min(world.cfg.world.candidates_per_request, len(pool))
    if len(pool) < 3 * k:  # tiny store: an exact uniform draw without replacement
        keys = rng.random((n_req, len(pool)))
        return pool[np.argsort(keys, axis=1)[:, :k]]
    weight = app.exposure[pool]
    cand = pool[np.searchsorted(np.cumsum(weight / weight.sum()), rng.random((n_req, k)), side="right")
                .clip(0, len(pool) - 1)]
    slot_local = rng.random((n_req, k)) < LOCAL_SLOT_SHARE
    for c in range(len(cat.CITIES)):
        local_pool = pool[app.local_city[pool] == c]
        rows = np.flatnonzero(city == c)
        if len(local_pool) == 0 or len(rows) == 0:
            continue
        picks = local_pool[rng.integers(0, len(local_pool), (len(rows), k))]
        cand[rows] = np.where(slot_local[rows], picks, cand[rows])
    while True:  # redraw repeated apps of a request uniformly until every request's apps are distinct
        order = np.argsort(cand, axis=1, kind="stable")
        ranked = np.take_along_axis(cand, order, axis=1)
        dup = ranked[:, 1:] == ranked[:, :-1]
        if not dup.any():
            return cand
        rows, j = np.nonzero(dup)
        cand[rows, order[rows, j + 1]] = pool[rng.integers(0, len(pool), len(rows))]


def _chunk(world: _World, di: int, lo: int, hi: int, ci: int, first_request: int
           ) -> tuple[pa.Table, np.ndarray, pa.Table | None]:
    """Events (and, on the test day, oracle rows) of users ``lo:hi`` on day ``di``."""
    cfg, w = world.cfg, world.cfg.world
    rng = _rng(cfg.seed, 10, di, ci)
    day = world.days[di]
    is_test = di == len(world.days) - 1
    ul = world.user_lat
    n_users = hi - lo
    n_req = rng.poisson(w.requests_per_user_day * ul.activity[lo:hi])
    u = np.repeat(np.arange(lo, hi), n_req)
    r_count = len(u)

    travel_user = rng.random(n_users) < TRAVEL_PROB
    dest_user = _categorical(rng, _destinations()[ul.home_city[lo:hi]])
    travelling = travel_user[u - lo]
    city = np.where(travelling, dest_user[u - lo], ul.home_city[u])

    chrono = ul.chronotype[u]
    own = np.array([hrs[rng.integers(0, len(hrs), r_count)] for hrs in CHRONOTYPE_HOURS])  # [3, r]
    own_hour = own[chrono, np.arange(r_count)]
    any_hour = rng.choice(24, size=r_count, p=HOUR_WEIGHTS)
    hour = np.where(rng.random(r_count) < CHRONOTYPE_SHARE, own_hour, any_hour)
    weekend = day.weekday() >= 5
    workday = ul.works[u] & (not weekend)
    place_p = np.where(workday[:, None], _WORKDAY_PLACE[hour], _FREE_DAY_PLACE[hour])
    place_p = np.where(travelling[:, None], _TRAVEL_PLACE[None, :], place_p)
    place = _categorical(rng, place_p)
    conn_p = _CONNECTIVITY[place]
    conn_p = np.where((travelling & (place == 2))[:, None], _TRAVEL_OUT_CONNECTIVITY[None, :], conn_p)
    conn = _categorical(rng, conn_p)
    weather = world.weather[city, di]
    seconds = hour * 3600 + rng.integers(0, 3600, r_count)
    day_start = np.datetime64(datetime(day.year, day.month, day.day), "us")
    ts = day_start + (seconds * 1_000_000).astype("timedelta64[us]")

    cand = _candidates(world, rng, city, di)
    k = cand.shape[1]
    req = np.repeat(np.arange(r_count), k)
    a = cand.reshape(-1)
    uu = u[req]
    ctx = Context(hour=hour[req], weekend=np.full(len(req), weekend), place=place[req],
                  connectivity=conn[req], weather=weather[req], city=city[req], home_city=ul.home_city[uu])
    p_click = click_probability(w, world.app_lat, ul, a, uu, ctx)
    click = (rng.random(len(req)) < p_click).astype(np.int64)

    request_id = int(day.strftime("%Y%m%d")) * 1_000_000_000 + first_request + req
    city_names = np.array([c.name for c in cat.CITIES], dtype=object)
    events = pa.table({
        "request_id": pa.array(request_id.astype(np.int64), pa.int64()),
        "ts": pa.array(ts[req], pa.timestamp("us")),
        "user_id": pa.array((uu + 1).astype(np.int64), pa.int64()),
        "app_id": pa.array((FIRST_APP_ID + a).astype(np.int64), pa.int64()),
        "place": pa.array(np.array(cat.PLACES, dtype=object)[ctx.place], pa.string()),
        "weather": pa.array(np.array(cat.WEATHER, dtype=object)[ctx.weather], pa.string()),
        "connectivity": pa.array(np.array(cat.CONNECTIVITY, dtype=object)[ctx.connectivity], pa.string()),
        "city": pa.array(city_names[ctx.city], pa.string()),
        "click": pa.array(click, pa.int64()),
    }, schema=EVENTS_SCHEMA)
    truth = None
    if is_test:  # the same events with the semantic part switched off: how much text can add
        no_sem = w.model_copy(update={"semantic": w.semantic.model_copy(update={"scale": 0.0})})
        p_ids = click_probability(no_sem, world.app_lat, ul, a, uu, ctx)
        truth = pa.table({"request_id": events["request_id"], "app_id": events["app_id"],
                          "p_click": pa.array(p_click, pa.float64()),
                          "p_click_without_semantics": pa.array(p_ids, pa.float64())}, schema=TRUTH_SCHEMA)
    return events, click, truth


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def generate_app_world(cfg: LarrConfig, out_dir: str | Path, *, force: bool = False, progress: bool = True
                       ) -> dict[str, Any]:
    """Generate the app world into ``out_dir`` and return the manifest (also written as ``manifest.json``).

    Same config and seed give byte-identical parquet files.  ``force`` allows writing into a non-empty
    folder that holds no larr world; a folder that holds one is always overwritten in place.
    """
    out = Path(out_dir)
    prepare_out(out, force, _MANAGED)
    t0 = time.perf_counter()
    world = _build_world(cfg)
    w = cfg.world
    _write(world.apps, out / "apps.parquet")
    _write(world.users, out / "users.parquet")

    users_per_chunk = max(1, int(w.chunk_rows / (w.requests_per_user_day * w.candidates_per_request)))
    chunks = [(lo, min(lo + users_per_chunk, w.n_users)) for lo in range(0, w.n_users, users_per_chunk)]
    n_days = len(world.days)
    counts = {"events": 0, "clicks": 0, "requests": 0}
    truths: list[pa.Table] = []
    labels: list[np.ndarray] = []
    bar = tqdm(total=n_days * len(chunks), desc="generate apps", unit="chunk", disable=not progress)
    for di, day in enumerate(world.days):
        next_request = 0
        part = f"date={day.isoformat()}"
        for ci, (lo, hi) in enumerate(chunks):
            events, click, truth = _chunk(world, di, lo, hi, ci, next_request)
            if len(events):
                last = int(events["request_id"][-1].as_py()) % 1_000_000_000 + 1
                counts["requests"] += last - next_request
                next_request = last
            _write(events, out / "events" / part / f"part-{ci:05d}.parquet")
            counts["events"] += len(events)
            counts["clicks"] += int(click.sum())
            if truth is not None:
                truths.append(truth)
                labels.append(click)
            bar.update(1)
    bar.close()
    truth = pa.concat_tables(truths)
    y = np.concatenate(labels)
    _write(truth, out / "_oracle" / "test_truth.parquet")
    (out / "_oracle" / "README.txt").write_text(
        "True click probabilities of the test day, with and without the semantic (text-only) part.\n"
        "Evaluation only: no training code may read this.\n")

    elapsed = time.perf_counter() - t0
    manifest: dict[str, Any] = {
        "domain": DOMAIN,
        "profile": cfg.profile,
        "seed": cfg.seed,
        "window": {"start": world.days[0].isoformat(), "end": world.days[-1].isoformat()},
        "split": split_of_days(world.days),
        "rows": {"apps": world.apps.num_rows, "users": world.users.num_rows, "events": counts["events"],
                 "requests": counts["requests"], "test_events": truth.num_rows},
        "clicks": counts["clicks"],
        "ctr": counts["clicks"] / max(1, counts["events"]),
        "new_items_on_test_day": int((world.app_lat.created_day == n_days - 1).sum()),
        "oracle_auc": {"ctr": auc(y, truth["p_click"].to_numpy())},
        "oracle_auc_without_semantics": {"ctr": auc(y, truth["p_click_without_semantics"].to_numpy())},
        "seconds": round(elapsed, 2),
        "config": config_to_dict(cfg),
    }
    save_config(cfg, out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote %s app events in %.1fs to %s", f"{counts['events']:,}", elapsed, out)
    return manifest
