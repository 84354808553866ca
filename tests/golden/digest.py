"""Order-independent digests of job outputs: the refactor-parity test compares them with the digests the
hard-coded pipeline produced before the feature spec existed (``food_delivery_tiny_seed7.json``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

JOBS = {"cpt_corpus": None, "contrastive_pairs": None, "scene_vocab": None, "ctr_samples": None}


def _canon(v: object) -> str:
    if isinstance(v, np.ndarray | list | tuple):
        return "[" + ",".join(_canon(x) for x in v) + "]"
    if isinstance(v, float | np.floating):
        return repr(float(v))
    return str(v)


def frame_digest(df: pd.DataFrame) -> dict[str, object]:
    cols = sorted(df.columns)
    rows = sorted("\x1f".join(_canon(v) for v in r) for r in df[cols].itertuples(index=False, name=None))
    h = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return {"rows": len(rows), "columns": cols, "sha256": h}


def jobs_digest(out: Path) -> dict[str, dict[str, object]]:
    return {name: frame_digest(pd.read_parquet(out / name)) for name in JOBS}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(jobs_digest(Path(sys.argv[1])), indent=2))
