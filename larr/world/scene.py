"""The simulated world's scene vocabulary: time slot of an hour, temperature band, day type.

Simulator knowledge only (the world generator and the event simulator ``streaming/simulate.py``): every
other layer reads these derivations from the feature spec (``larr/specs/food_delivery.yaml``: the log's
derived ``meal_slot`` and ``temp_band``, its ``day_type`` column), which uses the same bands.
"""

from __future__ import annotations

from datetime import date

import numpy as np

TIME_SLOTS: tuple[str, ...] = ("breakfast", "lunch", "afternoon tea", "dinner", "late night")
# hour -> slot index; 21:00-05:59 is late night.
_HOUR_TO_SLOT = np.array([4] * 6 + [0] * 4 + [1] * 4 + [2] * 3 + [3] * 4 + [4] * 3, dtype=np.int8)
DAY_TYPES: tuple[str, ...] = ("weekday", "weekend", "holiday")
TEMPERATURE_BANDS: tuple[tuple[float, str], ...] = (
    (0.0, "freezing"),
    (10.0, "cold"),
    (18.0, "cool"),
    (25.0, "mild"),
    (30.0, "warm"),
    (35.0, "hot"),
    (float("inf"), "scorching"),
)
_BAND_EDGES = np.array([edge for edge, _ in TEMPERATURE_BANDS[:-1]])
_BAND_NAMES = np.array([name for _, name in TEMPERATURE_BANDS])


def time_slot_index(hours: np.ndarray) -> np.ndarray:
    """Vectorised hour (0-23) -> index into :data:`TIME_SLOTS`."""
    return _HOUR_TO_SLOT[np.asarray(hours, dtype=np.int64) % 24]


def time_slot(hour: int) -> str:
    """The meal slot a local hour falls in."""
    return TIME_SLOTS[int(_HOUR_TO_SLOT[int(hour) % 24])]


def temperature_band(temp_c: float | np.ndarray) -> str | np.ndarray:
    """Band name of a temperature in degrees C (vectorised for arrays).

    Bands are what gets embedded: a temperature never seen before still maps to
    a band that has a vector.
    """
    arr = np.asarray(temp_c, dtype=float)
    if np.isnan(arr).any():
        raise ValueError("temperature_band: temperature is NaN; drop or repair the row first")
    names = _BAND_NAMES[np.searchsorted(_BAND_EDGES, arr, side="right")]
    return str(names) if names.ndim == 0 else names


def day_type(day: date, holidays: set[date] | frozenset[date] = frozenset()) -> str:
    """weekday / weekend / holiday."""
    if day in holidays:
        return "holiday"
    return "weekend" if day.weekday() >= 5 else "weekday"
