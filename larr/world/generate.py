"""``larr generate``: write a seeded, deterministic simulated food-delivery world.

Entity tables (regions, districts, POIs, users, weather) are small and built in
memory.  Impressions are generated one (day, user chunk) at a time and written
as hive-partitioned parquet (``impressions/date=YYYY-MM-DD/part-NNNNN.parquet``)
so that the ``large`` profile never holds the whole log in memory.  Each chunk
has its own seed derived from (seed, day, chunk), so the same profile and seed
always give identical files.

The true click/order probabilities of the test day are written to
``_oracle/`` -- a folder no training code reads -- and their AUC (the ceiling
every model is measured against) goes into ``manifest.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from larr import __version__
from larr.config import LarrConfig, config_to_dict, save_config
from larr.metrics import auc
from larr.world import catalog as cat
from larr.world.behaviour import Interactions, PoiLatents, UserLatents, click_order_probabilities
from larr.world.entities import build_interactions, build_pois, build_regions, build_users
from larr.world.knowledge import general_text
from larr.world.scene import DAY_TYPES, TIME_SLOTS, day_type, time_slot_index
from larr.world.weather import build_weather

log = logging.getLogger("larr.generate")

# Share of requests in each local hour: breakfast, lunch, dinner and late-night peaks.
HOUR_WEIGHTS = np.array([1.0, 0.6, 0.3, 0.2, 0.2, 0.4, 1.5, 3.0, 3.0, 1.8, 2.5, 5.0,
                         5.5, 3.0, 1.5, 1.5, 1.8, 3.0, 5.0, 5.0, 3.0, 2.0, 2.0, 1.5])
HOUR_WEIGHTS = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
_SLOT_HOURS = [np.flatnonzero(time_slot_index(np.arange(24)) == s) for s in range(len(TIME_SLOTS))]
_SLOT_LEN = np.array([len(h) for h in _SLOT_HOURS])
_SLOT_PAD = np.array([np.resize(h, _SLOT_LEN.max()) for h in _SLOT_HOURS])
_MANAGED = ("regions.parquet", "districts.parquet", "pois.parquet", "users.parquet", "weather.parquet",
            "impressions", "orders", "_oracle", "general_text.txt", "manifest.json", "config.yaml")


@dataclass
class _World:
    cfg: LarrConfig
    days: list[date]
    regions: pd.DataFrame
    districts: pd.DataFrame
    pois: pd.DataFrame
    users: pd.DataFrame
    weather: pd.DataFrame
    poi_lat: PoiLatents
    user_lat: UserLatents
    pref_slot: np.ndarray
    temp: np.ndarray
    cond: np.ndarray
    inter: Interactions | None = None  # realistic variant only


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def data_days(cfg: LarrConfig) -> list[date]:
    """All days of the log; the last is the test day, the one before it the validation day."""
    return [cfg.world.start_date + timedelta(days=d) for d in range(cfg.world.n_days)]


def split_of_days(days: list[date]) -> dict[str, Any]:
    """Train / valid / test days as ISO strings."""
    return {"train": [d.isoformat() for d in days[:-2]], "valid": days[-2].isoformat(),
            "test": days[-1].isoformat()}


def _build_world(cfg: LarrConfig) -> _World:
    w = cfg.world
    days = data_days(cfg)
    regions, districts = build_regions(w, _rng(cfg.seed, 1))
    names = regions["name"].tolist()
    realistic = w.variant == "realistic"  # its extra draws come from streams of their own (5, 6)
    pois, poi_lat = build_pois(w, _rng(cfg.seed, 2), districts, names, days[-1],
                               text_rng=_rng(cfg.seed, 6) if realistic else None)
    users, user_lat, pref_slot = build_users(w, _rng(cfg.seed, 3), districts, names)
    weather, temp, cond = build_weather(w, _rng(cfg.seed, 4), days)
    inter = build_interactions(w, _rng(cfg.seed, 5), users, districts, len(pois)) if realistic else None
    return _World(cfg, days, regions, districts, pois, users, weather, poi_lat, user_lat, pref_slot, temp, cond,
                  inter)


def _candidates(world: _World, rng: np.random.Generator, region: np.ndarray, district: np.ndarray,
                day: date) -> np.ndarray:
    """K candidate POI rows per request: half from the request's district, half from its region.

    Only POIs that exist on ``day`` are eligible; requests in a region with no POI get -1.
    """
    k = world.cfg.world.candidates_per_request
    pois = world.pois
    exists = (pois["created_date"].to_numpy() <= day)
    cand = np.full((len(region), k), -1, dtype=np.int64)
    p_region = pois["region_id"].to_numpy()
    p_district = pois["district_id"].to_numpy()
    for r in np.unique(region):
        pool_r = np.flatnonzero(exists & (p_region == r))
        if len(pool_r) == 0:
            continue
        rows_r = np.flatnonzero(region == r)
        cand[rows_r] = pool_r[rng.integers(0, len(pool_r), (len(rows_r), k))]
        for d in np.unique(district[rows_r]):
            pool_d = np.flatnonzero(exists & (p_district == d))
            if len(pool_d) == 0:
                continue
            rows_d = rows_r[district[rows_r] == d]
            local = rng.random((len(rows_d), k)) < 0.5
            picks = pool_d[rng.integers(0, len(pool_d), (len(rows_d), k))]
            cand[rows_d] = np.where(local, picks, cand[rows_d])
    return cand


def _chunk(world: _World, di: int, lo: int, hi: int, ci: int, first_request: int
           ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Impressions, orders and oracle rows for users ``lo:hi`` on day ``di``."""
    cfg, w = world.cfg, world.cfg.world
    rng = _rng(cfg.seed, 10, di, ci)
    day = world.days[di]
    is_test = di == len(world.days) - 1
    ul, pl = world.user_lat, world.poi_lat
    n_users = hi - lo
    n_req = rng.poisson(w.requests_per_user_day * ul.activity[lo:hi])
    u = np.repeat(np.arange(lo, hi), n_req)
    r_count = len(u)

    n_regions = len(world.regions)
    p_travel = (w.test_travel_prob if is_test else w.travel_prob) if n_regions > 1 else 0.0
    travel_user = rng.random(n_users) < p_travel
    dest_user = (ul.home_region[lo:hi] + rng.integers(1, max(2, n_regions), n_users)) % n_regions
    travelling = travel_user[u - lo]
    region = np.where(travelling, dest_user[u - lo], ul.home_region[u])
    home_district = world.users["home_district_id"].to_numpy()[u]
    random_district = region * 100 + rng.integers(0, w.districts_per_region, r_count)
    district = np.where(~travelling & (rng.random(r_count) < 0.8), home_district, random_district)
    drows = world.districts.set_index("district_id")
    req_lat = drows.loc[district, "lat"].to_numpy() + rng.normal(0, 0.015, r_count)
    req_lon = drows.loc[district, "lon"].to_numpy() + rng.normal(0, 0.015, r_count)

    pref = world.pref_slot[u]
    slot_pick = _SLOT_PAD[pref, rng.integers(0, 1000, r_count) % _SLOT_LEN[pref]]
    hour = np.where(rng.random(r_count) < 0.5, slot_pick, rng.choice(24, size=r_count, p=HOUR_WEIGHTS))
    seconds = hour * 3600 + rng.integers(0, 3600, r_count)
    day_start = np.datetime64(datetime(day.year, day.month, day.day), "s")
    day_end = day_start + np.timedelta64(86399, "s")  # an order stays on its impression's day
    ts = day_start + seconds.astype("timedelta64[s]")

    cand = _candidates(world, rng, region, district, day)
    k = cand.shape[1]
    req = np.repeat(np.arange(r_count), k)
    poi = cand.reshape(-1)
    keep = poi >= 0
    req, poi = req[keep], poi[keep]
    _, first = np.unique(req * (len(world.pois) + 1) + poi, return_index=True)  # drop repeated (request, POI)
    req, poi = req[first], poi[first]

    uu = u[req]
    hh = hour[req]
    rr = region[req]
    temp = world.temp[rr, di, hh]
    cond = world.cond[rr, di, hh]
    slot = time_slot_index(hh)
    trav = travelling[req]
    dist = haversine_km(req_lat[req], req_lon[req], world.pois["lat"].to_numpy()[poi],
                        world.pois["lon"].to_numpy()[poi])
    dtype = day_type(day, set(w.holidays))
    extra = {}
    if world.inter is not None:
        extra = {"inter": world.inter, "district": district[req],
                 "day_type": np.full(len(req), DAY_TYPES.index(dtype))}
    p_click, p_order = click_order_probabilities(
        w, pl, ul, poi, uu, hour=hh, temperature_c=temp, wet=cond >= 2, slot=slot, region=rr,
        travelling=trav, distance_km=dist, **extra)
    click = rng.random(len(req)) < p_click
    if is_test:  # the same impressions with the semantic part switched off: how much text can add
        no_sem = w.model_copy(update={"semantic": w.semantic.model_copy(update={"scale": 0.0})})
        p_click_ids, p_order_ids = click_order_probabilities(
            no_sem, pl, ul, poi, uu, hour=hh, temperature_c=temp, wet=cond >= 2, slot=slot, region=rr,
            travelling=trav, distance_km=dist, **extra)
    order = click & (rng.random(len(req)) < p_order)

    request_id = int(day.strftime("%Y%m%d")) * 1_000_000_000 + first_request + req
    imp = pd.DataFrame({
        "request_id": request_id.astype(np.int64),
        "ts": ts[req].astype("datetime64[us]"),
        "user_id": world.users["user_id"].to_numpy()[uu],
        "poi_id": world.pois["poi_id"].to_numpy()[poi],
        "region_id": rr.astype(np.int64),
        "district_id": district[req].astype(np.int64),
        "time_slot": pd.Categorical.from_codes(slot, TIME_SLOTS).astype(str),
        "day_type": np.full(len(req), dtype),
        "weather": np.array(cat.WEATHER_CONDITIONS)[cond],
        "temperature_c": temp.astype(np.float64),
        "out_of_area": trav,
        "distance_km": np.round(dist, 3),
        "user_lat": req_lat[req],
        "user_lon": req_lon[req],
        "click": click.astype(np.int8),
        "order": order.astype(np.int8),
    })

    o = np.flatnonzero(order)
    dishes = world.pois["dishes"].to_numpy()
    dish_pick = rng.integers(0, 100, len(o))
    orders = pd.DataFrame({
        "order_id": int(day.strftime("%Y%m%d")) * 10_000_000 + ci * 1_000_000 + np.arange(len(o), dtype=np.int64),
        "request_id": imp["request_id"].to_numpy()[o],
        "ts": np.minimum(ts[req][o] + rng.integers(60, 1800, len(o)).astype("timedelta64[s]"),
                         day_end).astype("datetime64[us]"),
        "user_id": imp["user_id"].to_numpy()[o],
        "poi_id": imp["poi_id"].to_numpy()[o],
        "dish": [dishes[p][i % len(dishes[p])]["name"] for p, i in zip(poi[o], dish_pick, strict=True)],
        "amount": np.round(pl.price_level[poi[o]] * rng.uniform(12, 22, len(o)) + rng.uniform(0, 10, len(o)), 2),
    })
    truth = pd.DataFrame()
    if is_test:
        truth = pd.DataFrame({"request_id": imp["request_id"], "poi_id": imp["poi_id"],
                              "p_click": p_click, "p_order_given_click": p_order,
                              "p_ctcvr": p_click * p_order, "p_click_without_semantics": p_click_ids,
                              "p_ctcvr_without_semantics": p_click_ids * p_order_ids})
    return imp, orders, truth


def prepare_out(out: Path, force: bool, managed: tuple[str, ...] = _MANAGED) -> None:
    """Make ``out`` ready for a world: refuse a non-empty folder that holds no world (unless ``force``), and
    remove the ``managed`` entries of a previous world."""
    if out.exists() and any(out.iterdir()):
        if not (out / "manifest.json").exists() and not force:
            raise FileExistsError(f"{out} is not empty and holds no larr world; pass --force to write into it")
        for name in managed:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, compression="zstd")


def generate_world(cfg: LarrConfig, out_dir: str | Path, *, force: bool = False, progress: bool = True
                   ) -> dict[str, Any]:
    """Generate the world into ``out_dir`` and return the manifest (also written as ``manifest.json``)."""
    out = Path(out_dir)
    prepare_out(out, force)
    t0 = time.perf_counter()
    world = _build_world(cfg)
    w = cfg.world
    for name, df in (("regions", world.regions), ("districts", world.districts), ("pois", world.pois),
                     ("users", world.users), ("weather", world.weather)):
        _write(df, out / f"{name}.parquet")
    docs = general_text(world.regions["name"].tolist(), w.realism if w.variant == "realistic" else None,
                        _rng(cfg.seed, 7))
    (out / "general_text.txt").write_text("\n".join(docs) + "\n")

    users_per_chunk = max(1, int(w.chunk_rows / (w.requests_per_user_day * w.candidates_per_request)))
    chunks = [(lo, min(lo + users_per_chunk, w.n_users)) for lo in range(0, w.n_users, users_per_chunk)]
    n_days = len(world.days)
    counts = {"impressions": 0, "clicks": 0, "orders": 0}
    test_truth = []
    test_labels = []
    poi_clicks = np.zeros(len(world.pois))
    poi_imps = np.zeros(len(world.pois))
    bar = tqdm(total=n_days * len(chunks), desc="generate", unit="chunk", disable=not progress)
    for di, day in enumerate(world.days):
        next_request = 0
        part = f"date={day.isoformat()}"
        for ci, (lo, hi) in enumerate(chunks):
            imp, orders, truth = _chunk(world, di, lo, hi, ci, next_request)
            next_request = int(imp["request_id"].max() % 1_000_000_000) + 1 if len(imp) else next_request
            _write(imp, out / "impressions" / part / f"part-{ci:05d}.parquet")
            _write(orders, out / "orders" / part / f"part-{ci:05d}.parquet")
            counts["impressions"] += len(imp)
            counts["clicks"] += int(imp["click"].sum())
            counts["orders"] += len(orders)
            if di < n_days - 2:  # popularity floor from training days only
                idx = imp["poi_id"].to_numpy() - 1_000_000
                np.add.at(poi_imps, idx, 1)
                np.add.at(poi_clicks, idx, imp["click"].to_numpy())
            if di == n_days - 1:
                test_truth.append(truth)
                test_labels.append(imp[["poi_id", "click", "order"]])
            bar.update(1)
    bar.close()
    truth = pd.concat(test_truth, ignore_index=True)
    labels = pd.concat(test_labels, ignore_index=True)
    _write(truth, out / "_oracle" / "test_truth.parquet")
    (out / "_oracle" / "README.txt").write_text(
        "True click/order probabilities of the test day. Evaluation only: no training code may read this.\n")

    elapsed = time.perf_counter() - t0
    prior = poi_clicks.sum() / max(1.0, poi_imps.sum())
    pop = (poi_clicks + 20 * prior) / (poi_imps + 20)  # smoothed CTR; unseen (new) POIs get the prior
    pop_score = pop[labels["poi_id"].to_numpy() - 1_000_000]
    new_pois = int((world.pois["created_date"] == world.days[-1]).sum())
    manifest: dict[str, Any] = {
        "larr_version": __version__,
        "profile": cfg.profile,
        "seed": cfg.seed,
        "window": {"start": world.days[0].isoformat(), "end": world.days[-1].isoformat()},
        "split": split_of_days(world.days),
        "rows": {"regions": len(world.regions), "districts": len(world.districts), "pois": len(world.pois),
                 "users": len(world.users), "weather": len(world.weather),
                 "impressions": counts["impressions"], "orders": counts["orders"],
                 "test_impressions": len(labels)},
        "clicks": counts["clicks"],
        "ctr": counts["clicks"] / max(1, counts["impressions"]),
        "new_pois_on_test_day": new_pois,
        "oracle_auc": {"ctr": auc(labels["click"].to_numpy(), truth["p_click"].to_numpy()),
                       "ctcvr": auc(labels["order"].to_numpy(), truth["p_ctcvr"].to_numpy())},
        "oracle_auc_without_semantics": {
            "ctr": auc(labels["click"].to_numpy(), truth["p_click_without_semantics"].to_numpy()),
            "ctcvr": auc(labels["order"].to_numpy(), truth["p_ctcvr_without_semantics"].to_numpy())},
        "popularity_auc": {"ctr": auc(labels["click"].to_numpy(), pop_score),
                           "ctcvr": auc(labels["order"].to_numpy(), pop_score)},
        "seconds": round(elapsed, 2),
        "impressions_per_second": round(counts["impressions"] / elapsed, 1),
        "config": config_to_dict(cfg),
    }
    save_config(cfg, out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote %s impressions in %.1fs (%.0f rows/s) to %s", f"{counts['impressions']:,}", elapsed,
             manifest["impressions_per_second"], out)
    return manifest
