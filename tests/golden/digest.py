"""Order-independent digests of job outputs and of generated worlds: the refactor-parity test compares job
outputs with the digests the hard-coded pipeline produced before the feature spec existed
(``food_delivery_tiny_seed7.json``); the world test pins the default tiny world (``world_tiny_seed7.json``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

JOBS = {"cpt_corpus": None, "contrastive_pairs": None, "scene_vocab": None, "ctr_samples": None}


def _canon(v: object, float_digits: int | None = None) -> str:
    if isinstance(v, np.ndarray | list | tuple):
        return "[" + ",".join(_canon(x, float_digits) for x in v) + "]"
    if isinstance(v, float | np.floating):
        return repr(float(v)) if float_digits is None else f"{float(v):.{float_digits}g}"
    return str(v)


def frame_digest(df: pd.DataFrame, float_digits: int | None = None) -> dict[str, object]:
    """``float_digits``: floats rounded to that many significant digits (default: exact, ``repr``)."""
    cols = sorted(df.columns)
    rows = sorted("\x1f".join(_canon(v, float_digits) for v in r)
                  for r in df[cols].itertuples(index=False, name=None))
    h = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return {"rows": len(rows), "columns": cols, "sha256": h}


def jobs_digest(out: Path) -> dict[str, dict[str, object]]:
    return {name: frame_digest(pd.read_parquet(out / name)) for name in JOBS}


# Tables whose floats come out of transcendental functions (the oracle's probabilities: exp, logistic): numpy
# picks its SIMD kernels by CPU (AVX2, AVX-512), and those differ in the last bit, so the same code gives another
# exact digest on another machine.  They are compared at 8 significant digits: a last-bit difference (1e-16
# relative) crosses a rounding boundary for about 1e-8 of values, while any change of the model moves them all.
ROUNDED_TABLES = {"oracle": 8}
WORLD_TABLES = {"regions": "regions.parquet", "districts": "districts.parquet", "pois": "pois.parquet",
                "users": "users.parquet", "weather": "weather.parquet", "impressions": "impressions",
                "orders": "orders", "oracle": "_oracle/test_truth.parquet"}


def world_digest(root: Path) -> dict[str, object]:
    """Digests of a generated world's raw tables (partitioned ones read whole, with their partition column),
    the oracle and the general text: what `larr generate` writes, minus the manifest's timings."""
    out: dict[str, object] = {}
    for name, rel in WORLD_TABLES.items():
        out[name] = frame_digest(pd.read_parquet(root / rel), ROUNDED_TABLES.get(name))
    out["general_text"] = hashlib.sha256((root / "general_text.txt").read_bytes()).hexdigest()
    return out


if __name__ == "__main__":
    import json
    import sys

    fn = world_digest if len(sys.argv) > 2 and sys.argv[2] == "world" else jobs_digest
    print(json.dumps(fn(Path(sys.argv[1])), indent=2))
