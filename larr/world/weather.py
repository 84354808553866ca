"""Hourly weather per region: climate + daily anomaly + diurnal cycle, rainy spells."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from larr.config import WorldConfig
from larr.world import catalog as cat


def build_weather(cfg: WorldConfig, rng: np.random.Generator, days: list[date]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Return the weather table and the arrays ``temp[r, d, h]`` and ``condition[r, d, h]`` (index into
    :data:`~larr.world.catalog.WEATHER_CONDITIONS`)."""
    regions = cat.REGIONS[: cfg.n_regions]
    n_r, n_d = len(regions), len(days)
    base = np.array([r.mean_temp_c for r in regions])[:, None, None] + cfg.season_offset_c
    anomaly = rng.normal(0, 4.0, (n_r, n_d, 1))
    hours = np.arange(24)[None, None, :]
    temp = base + anomaly + 4.5 * np.cos(2 * np.pi * (hours - 15) / 24) + rng.normal(0, 0.6, (n_r, n_d, 24))
    temp = np.round(temp, 1)

    rain_p = np.array([r.rain_prob for r in regions])[:, None]
    wet_day = rng.random((n_r, n_d)) < rain_p
    start = rng.integers(0, 24, (n_r, n_d))
    length = rng.integers(3, 14, (n_r, n_d))
    in_spell = ((hours - start[..., None]) % 24) < length[..., None]
    heavy = rng.random((n_r, n_d, 1)) < 0.35
    cloudy = rng.random((n_r, n_d, 24)) < 0.35
    cond = np.where(cloudy, 1, 0)
    rain = np.where(heavy, 3, 2)
    cond = np.where(wet_day[..., None] & in_spell, rain, cond)
    cond = np.where((cond >= 2) & (temp <= 1.0), 4, cond)

    rows = []
    for ri in range(n_r):
        for di, day in enumerate(days):
            t0 = datetime(day.year, day.month, day.day)
            for h in range(24):
                rows.append((ri, t0 + timedelta(hours=h), cat.WEATHER_CONDITIONS[cond[ri, di, h]], temp[ri, di, h]))
    table = pd.DataFrame(rows, columns=["region_id", "ts", "condition", "temperature_c"])
    table["region_id"] = table["region_id"].astype(np.int64)
    table["ts"] = table["ts"].astype("datetime64[us]")
    return table, temp, cond.astype(np.int8)
