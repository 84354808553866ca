"""Regions, districts, POIs and users of the simulated world.

Public columns go to parquet; the latents the click model needs stay in
:class:`~larr.world.behaviour.PoiLatents` / :class:`UserLatents` and are never
written.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from larr.config import WorldConfig
from larr.world import catalog as cat
from larr.world import wording as wd
from larr.world.behaviour import Interactions, PoiLatents, UserLatents
from larr.world.scene import DAY_TYPES, TIME_SLOTS

LOCAL_CUISINE: dict[str, int] = {c.region: i for i, c in enumerate(cat.CUISINES) if c.region}
GENERIC_CUISINES: list[int] = [i for i, c in enumerate(cat.CUISINES) if c.region is None]


def build_regions(cfg: WorldConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first ``n_regions`` catalog regions and ``districts_per_region`` districts each."""
    regions = cat.REGIONS[: cfg.n_regions]
    region_df = pd.DataFrame({
        "region_id": np.arange(len(regions), dtype=np.int64),
        "name": [r.name for r in regions],
        "lat": [r.lat for r in regions],
        "lon": [r.lon for r in regions],
    })
    rows = []
    for ri, r in enumerate(regions):
        angles = rng.uniform(0, 2 * np.pi, cfg.districts_per_region)
        radii = rng.uniform(0.02, 0.09, cfg.districts_per_region)  # degrees, a few to ten km
        for k in range(cfg.districts_per_region):
            rows.append((ri * 100 + k, ri, r.districts[k], r.lat + radii[k] * np.sin(angles[k]),
                         r.lon + radii[k] * np.cos(angles[k])))
    district_df = pd.DataFrame(rows, columns=["district_id", "region_id", "name", "lat", "lon"])
    district_df["district_id"] = district_df["district_id"].astype(np.int64)
    district_df["region_id"] = district_df["region_id"].astype(np.int64)
    return region_df, district_df


def _poi_text(name: str, cuisine: cat.Cuisine, dishes: list[cat.Dish], price: int, district: str,
              region: str, local: bool) -> str:
    word = cat.PRICE_WORDS[price]
    article = "an" if word[0] in "aeiou" else "a"
    lead = f"{name} is {article} {word} {cuisine.label} shop in {district}, {region}"
    intro = f"{lead}, known for its {dishes[0].name}"
    if len(dishes) > 1:
        intro += f" and {dishes[1].name}"
    intro += "."
    if local:
        intro += f" A taste of authentic {region} home cooking."
    return intro


def _poi_tags(dishes: list[cat.Dish], local: bool, rng: np.random.Generator) -> list[str]:
    tags = []
    if any(d.temp == "cold" for d in dishes):
        tags.append("cold food")
    if any(d.soup for d in dishes):
        tags.append("soup")
    if max(d.spicy for d in dishes) >= 0.7:
        tags.append("spicy")
    if any(d.breakfast for d in dishes):
        tags.append("breakfast")
    if any(d.late_night for d in dishes):
        tags.append("late night")
    if any(d.sweet for d in dishes):
        tags.append("sweet")
    if local:
        tags.append("local specialty")
    k = int(rng.integers(1, 3))
    tags += list(rng.choice(cat.MARKETING_TAGS, size=k, replace=False))
    return tags


def _realistic_dish(dish: cat.Dish, describe: bool, cfg: WorldConfig, rng: np.random.Generator) -> dict[str, str]:
    """One dish as a realistic listing words it: a synonym of its name, a plain description (or none) that
    carries, with a probability, one paraphrase implying one of its hidden attributes; typos."""
    r = cfg.realism
    names, plain = wd.DISH_WORDING[dish.name]
    name = wd.pick(rng, names)
    desc = wd.pick(rng, plain) if describe else ""
    cues = [a for a, on in (("soup", dish.soup), ("hot", dish.temp == "hot" and not dish.soup),
                            ("cold", dish.temp == "cold"), ("breakfast", dish.breakfast),
                            ("late_night", dish.late_night), ("spicy", dish.spicy >= 0.7),
                            ("mild_spicy", 0.4 <= dish.spicy < 0.7), ("sweet", dish.sweet)) if on]
    if describe and cues and rng.random() < r.cue_phrase_prob:
        desc += ", " + wd.pick(rng, wd.CUE_PHRASES[wd.pick(rng, tuple(cues))])
    return {"name": wd.typo(name, r.typo_rate / 2, rng), "description": wd.typo(desc, r.typo_rate, rng)}


def _realistic_texts(cfg: WorldConfig, rng: np.random.Generator, pois: pd.DataFrame, cuisine_idx: list[int],
                     picks: list[list[cat.Dish]], local: np.ndarray, region_names: list[str],
                     district_names: list[str]) -> pd.DataFrame:
    """The realistic variant's name, cuisine label, dishes, tags and introduction of every POI (the same
    POIs, dishes and hidden attributes; only the wording differs). Its own random stream, so the latent
    world is the keyword world's."""
    r = cfg.realism
    n = len(pois)
    names, labels, dishes_col, tags, intros = [], [], [], [], []
    seen: dict[tuple[str, int], int] = {}
    district_id = pois["district_id"].to_numpy()
    describe = rng.random(n) >= r.missing_description_frac
    short = rng.random(n) < r.short_intro_frac
    generic = rng.random(n) < r.generic_name_frac
    for i in range(n):
        cuisine = cat.CUISINES[cuisine_idx[i]]
        region = region_names[int(pois["region_id"].iat[i])]
        noun = wd.pick(rng, wd.GENERIC_NOUNS if generic[i] else wd.SHOP_NOUNS[cuisine.name])
        base = f"{wd.pick(rng, cat.SHOP_PREFIXES)} {noun}"
        count = seen.get((base, int(district_id[i])), 0)
        seen[(base, int(district_id[i]))] = count + 1
        name = base if count == 0 else f"{base} No.{count + 1}"
        label = wd.pick(rng, wd.CUISINE_LABELS[cuisine.name])
        dishes = [_realistic_dish(d, bool(describe[i]), cfg, rng) for d in picks[i]]
        attrs = {"cold": any(d.temp == "cold" for d in picks[i]), "soup": any(d.soup for d in picks[i]),
                 "spicy": max(d.spicy for d in picks[i]) >= 0.7, "breakfast": any(d.breakfast for d in picks[i]),
                 "late_night": any(d.late_night for d in picks[i]), "sweet": any(d.sweet for d in picks[i]),
                 "local": bool(local[i])}
        tag = [wd.pick(rng, wd.ATTRIBUTE_TAGS[a]) for a, on in attrs.items()
               if on and rng.random() < r.attribute_tag_prob]
        lo, hi = r.marketing_tags
        k = int(rng.integers(lo, hi + 1))
        tag += [str(t) for t in rng.choice(wd.MARKETING_TAGS, size=k, replace=False)]
        rng.shuffle(tag)
        fill = {"name": name, "label": label, "district": district_names[i], "region": region,
                "price": cat.PRICE_WORDS[int(pois["price_level"].iat[i])], "year": int(rng.integers(1985, 2024)),
                "d1": dishes[0]["name"], "d2": dishes[1]["name"] if len(dishes) > 1 else dishes[0]["name"],
                "mkt": wd.pick(rng, wd.MARKETING_LINES), "mkt2": wd.pick(rng, wd.MARKETING_LINES),
                "nick": wd.pick(rng, wd.REGION_NICKNAMES.get(region, (region,)))}
        if short[i]:
            intro = wd.pick(rng, wd.SHORT_INTROS).format(**fill)
        else:
            intro = wd.pick(rng, wd.INTRO_TEMPLATES).format(**fill)
            if local[i] and rng.random() < 0.5:
                intro += " " + wd.pick(rng, wd.LOCAL_LINES).format(**fill)
        names.append(name)
        labels.append(label)
        dishes_col.append(dishes)
        tags.append(tag)
        intros.append(wd.typo(intro, r.typo_rate, rng))
    out = pois.copy()
    out["name"], out["cuisine"], out["dishes"], out["tags"], out["introduction"] = (
        names, labels, dishes_col, tags, intros)
    return out


def build_pois(cfg: WorldConfig, rng: np.random.Generator, districts: pd.DataFrame,
               region_names: list[str], test_day: date, text_rng: np.random.Generator | None = None
               ) -> tuple[pd.DataFrame, PoiLatents]:
    """POIs with names, dishes, hours, tags and introductions, plus their hidden latents.

    With ``world.variant: realistic`` the texts are reworded afterwards from ``text_rng``
    (:func:`_realistic_texts`): the POIs and their latents are the keyword world's."""
    n = cfg.n_pois
    n_regions = len(region_names)
    region = rng.integers(0, n_regions, n)
    dist_idx = rng.integers(0, cfg.districts_per_region, n)
    district_rows = districts.set_index("district_id")
    district_id = region * 100 + dist_idx
    d_lat = district_rows.loc[district_id, "lat"].to_numpy()
    d_lon = district_rows.loc[district_id, "lon"].to_numpy()
    lat = d_lat + rng.normal(0, 0.015, n)
    lon = d_lon + rng.normal(0, 0.015, n)
    price = rng.choice([1, 2, 3, 4], size=n, p=[0.3, 0.4, 0.2, 0.1])
    quality = rng.normal(0, 0.5, n)
    latent = rng.normal(0, 1, (n, cfg.collab_dim))
    start = cfg.start_date
    created = []
    is_new = rng.random(n) < cfg.new_poi_frac
    during = rng.random(n) < 0.05
    for i in range(n):
        if is_new[i]:
            created.append(test_day)
        elif during[i]:
            created.append(start + timedelta(days=int(rng.integers(0, max(1, (test_day - start).days)))))
        else:
            created.append(start - timedelta(days=int(rng.integers(30, 1500))))

    names, cuisines, intros, tags, dishes_col, open_h, close_h = [], [], [], [], [], [], []
    cuisine_idx, picked, dnames = [], [], []
    local_flags = np.zeros(n, dtype=bool)
    attrs = np.zeros((n, 7))
    cuisine_region = np.full(n, -1, dtype=np.int64)
    seen: dict[tuple[str, int], int] = {}
    other_regional = {r: [i for i, c in enumerate(cat.CUISINES) if c.region and c.region != r]
                      for r in region_names}
    for i in range(n):
        rname = region_names[region[i]]
        if rname in LOCAL_CUISINE and rng.random() < cfg.local_cuisine_frac:
            ci = LOCAL_CUISINE[rname]
        elif rng.random() < 0.75:
            ci = int(rng.choice(GENERIC_CUISINES))
        else:
            ci = int(rng.choice(other_regional[rname]))
        cuisine = cat.CUISINES[ci]
        if cuisine.region in region_names:
            cuisine_region[i] = region_names.index(cuisine.region)
        local = cuisine.region == rname
        k = int(rng.integers(3, min(5, len(cuisine.dishes)) + 1))
        picks = [cuisine.dishes[j] for j in rng.choice(len(cuisine.dishes), size=k, replace=False)]
        base = f"{rng.choice(cat.SHOP_PREFIXES)} {rng.choice(cuisine.shop_nouns)}"
        count = seen.get((base, int(district_id[i])), 0)
        seen[(base, int(district_id[i]))] = count + 1
        name = base if count == 0 else f"{base} No.{count + 1}"
        dname = district_rows.loc[district_id[i], "name"]
        cuisine_idx.append(ci)
        picked.append(picks)
        dnames.append(dname)
        local_flags[i] = local
        names.append(name)
        cuisines.append(cuisine.label)
        intros.append(_poi_text(name, cuisine, picks, int(price[i]), dname, rname, local))
        tags.append(_poi_tags(picks, local, rng))
        dishes_col.append([{"name": d.name, "description": d.description} for d in picks])
        jitter = int(rng.integers(-1, 2))
        open_h.append((cuisine.open_hours[0] + jitter) % 24)
        close_h.append((cuisine.open_hours[1] + int(rng.integers(0, 2))) % 24)
        attrs[i] = [np.mean([d.temp == "cold" for d in picks]), np.mean([d.temp == "hot" for d in picks]),
                    np.mean([d.soup for d in picks]), np.mean([d.spicy for d in picks]),
                    np.mean([d.breakfast for d in picks]), np.mean([d.late_night for d in picks]),
                    np.mean([d.sweet for d in picks])]

    rating = np.clip(np.round(4.0 + 0.6 * quality + rng.normal(0, 0.25, n), 1), 1.0, 5.0)
    pois = pd.DataFrame({
        "poi_id": np.arange(n, dtype=np.int64) + 1_000_000,
        "name": names,
        "region_id": region.astype(np.int64),
        "district_id": district_id.astype(np.int64),
        "lat": lat,
        "lon": lon,
        "cuisine": cuisines,
        "dishes": dishes_col,
        "price_level": price.astype(np.int8),
        "open_hour": np.array(open_h, dtype=np.int8),
        "close_hour": np.array(close_h, dtype=np.int8),
        "tags": tags,
        "introduction": intros,
        "rating": rating,
        "created_date": created,
    })
    if cfg.variant == "realistic":
        if text_rng is None:
            raise ValueError("build_pois: the realistic variant needs text_rng")
        pois = _realistic_texts(cfg, text_rng, pois, cuisine_idx, picked, local_flags, region_names, dnames)
    latents = PoiLatents(cold=attrs[:, 0], hot=attrs[:, 1], soup=attrs[:, 2], spicy=attrs[:, 3],
                         breakfast=attrs[:, 4], late_night=attrs[:, 5], sweet=attrs[:, 6],
                         cuisine_region=cuisine_region, price_level=price.astype(float),
                         open_hour=np.array(open_h), close_hour=np.array(close_h),
                         latent=latent, quality=quality, cuisine=np.array(cuisine_idx, dtype=np.int64))
    return pois, latents


SPICY_HOMES = {"Sichuan": 0.9, "Xinjiang": 0.4, "Yunnan": 0.4, "Shaanxi": 0.5}


def build_users(cfg: WorldConfig, rng: np.random.Generator, districts: pd.DataFrame,
                region_names: list[str]) -> tuple[pd.DataFrame, UserLatents, np.ndarray]:
    """Users with public profile fields and hidden tastes; also returns each user's preferred slot."""
    n = cfg.n_users
    home = rng.integers(0, len(region_names), n)
    dist_idx = rng.integers(0, cfg.districts_per_region, n)
    district_id = home * 100 + dist_idx
    drows = districts.set_index("district_id")
    lat = drows.loc[district_id, "lat"].to_numpy() + rng.normal(0, 0.015, n)
    lon = drows.loc[district_id, "lon"].to_numpy() + rng.normal(0, 0.015, n)
    gender = rng.choice(len(cat.GENDERS), size=n, p=[0.48, 0.47, 0.05])
    age = rng.choice(len(cat.AGE_BANDS), size=n, p=[0.25, 0.35, 0.2, 0.15, 0.05])
    occupation = rng.choice(len(cat.OCCUPATIONS), size=n)
    occ_names = np.array(cat.OCCUPATIONS)[occupation]
    spicy = rng.normal(0, 1, n) + np.array([SPICY_HOMES.get(region_names[h], 0.0) for h in home]) * 1.5
    sweet = rng.normal(0, 1, n) + 0.6 * (gender == 0) + 0.5 * (age == 0) - 0.4 * (age >= 3)
    price_sens = (rng.normal(0, 0.7, n) + 1.0 * np.isin(occ_names, ["student", "retiree"])
                  - 0.6 * np.isin(occ_names, ["engineer", "shop owner"]))
    pref_slot = rng.choice(len(TIME_SLOTS), size=n, p=[0.2, 0.3, 0.1, 0.25, 0.15])
    activity = rng.lognormal(0.0, 0.4, n)
    users = pd.DataFrame({
        "user_id": np.arange(n, dtype=np.int64) + 1,
        "gender": np.array(cat.GENDERS)[gender],
        "age_band": np.array(cat.AGE_BANDS)[age],
        "occupation": occ_names,
        "home_region_id": home.astype(np.int64),
        "home_district_id": district_id.astype(np.int64),
        "home_lat": lat,
        "home_lon": lon,
    })
    latents = UserLatents(home_region=home, latent=rng.normal(0, 1, (n, cfg.collab_dim)), spicy_pref=spicy,
                          sweet_pref=sweet, price_sens=price_sens, activity=activity)
    return users, latents, pref_slot


def build_interactions(cfg: WorldConfig, rng: np.random.Generator, users: pd.DataFrame, districts: pd.DataFrame,
                       n_pois: int) -> Interactions:
    """The realistic variant's hidden interactions of observable fields (:class:`Interactions`).

    Districts carry a mix of user segments, an affluence and a share of car-less users; each user's segment,
    budget and distance sensitivity are drawn around their home district's, so the district a request
    comes from also says something about who asks."""
    r = cfg.realism
    n_users, n_cuisines, n_groups = len(users), len(cat.CUISINES), r.user_groups
    n_dist = int(districts["district_id"].max()) + 1
    d_ids = districts["district_id"].to_numpy()
    mix = np.zeros((n_dist, n_groups))
    mix[d_ids] = rng.dirichlet(np.full(n_groups, r.segment_concentration), len(d_ids))
    affluence = np.zeros(n_dist)
    affluence[d_ids] = rng.normal(0, 1, len(d_ids))
    remote = np.zeros(n_dist)
    remote[d_ids] = rng.normal(0, 1, len(d_ids))
    home = users["home_district_id"].to_numpy()
    cum = mix[home].cumsum(axis=1)
    group = np.minimum((rng.random((n_users, 1)) > cum).sum(axis=1), n_groups - 1)
    affinity = rng.normal(0, r.group_cuisine, (n_groups, n_cuisines))
    rank = 4
    district_vec = rng.normal(0, 1, (n_dist, rank)) * np.sqrt(r.district_poi / np.sqrt(rank))
    poi_vec = rng.normal(0, 1, (n_pois, rank)) * np.sqrt(r.district_poi / np.sqrt(rank))
    hour_rank = 3
    phase = rng.uniform(0, 2 * np.pi, hour_rank)
    hours = np.arange(24)[:, None]
    hour_f = np.cos(2 * np.pi * np.arange(1, hour_rank + 1) * hours / 24 + phase)  # smooth daily curves
    hour_cuisine = r.hour_cuisine * hour_f @ rng.normal(0, 1, (hour_rank, n_cuisines)) / np.sqrt(hour_rank)
    daytype_cuisine = rng.normal(0, r.daytype_cuisine, (len(DAY_TYPES), n_cuisines))
    budget = r.price_budget * (affluence[home] + rng.normal(0, 0.7, n_users)) / np.sqrt(1.49)
    z = (remote[home] + rng.normal(0, 1, n_users)) / np.sqrt(2.0)
    sigma = r.distance_mobility
    mobility = np.exp(sigma * z - sigma ** 2 / 2)
    return Interactions(user_cuisine=affinity[group], district_vec=district_vec, poi_vec=poi_vec,
                        hour_cuisine=hour_cuisine, daytype_cuisine=daytype_cuisine, budget=budget,
                        mobility=mobility, wet_distance=r.wet_distance, id_affinity=r.id_affinity)
