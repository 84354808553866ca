"""Synthetic inputs for the multi-process tests: a tiny base backbone and the two LLM job outputs, written in
a second so that the 2-process runs (torchrun children) and the 1-process reference read the same files."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from larr.config import LarrConfig
from larr.llm.backbone import build_default_model, save_backbone, train_tokenizer
from larr.text import render_many

DS = "ds=2024-07-07"
CITIES = ["Chengdu", "Beijing", "Shanghai", "Xi'an", "Hangzhou", "Guangzhou"]
FOODS = ["hot pot", "noodles", "dumplings", "congee", "salad", "barbecue", "soup", "buns", "rice", "tea"]
WORDS = ["spicy", "cold", "sweet", "quick", "breakfast", "late night", "family", "local", "cheap", "fresh"]


def _poi(rng: random.Random, i: int) -> tuple[str, str, str]:
    name = f"{rng.choice(WORDS).title()} {rng.choice(FOODS).title()} {i}"
    prompt = render_many([("POI_name", name), ("POI_loc", f"District {i % 7}, {rng.choice(CITIES)}")])
    target = render_many([("POI_cuisine", rng.choice(FOODS)),
                          ("POI_tags", rng.sample(WORDS, 3)),
                          ("POI_dishes", [f"{rng.choice(WORDS)} {rng.choice(FOODS)}" for _ in range(3)])])
    return name, prompt, target


def write_llm_inputs(root: Path, cfg: LarrConfig, n_pois: int = 60, n_pairs: int = 160, seed: int = 0) -> Path:
    """ROOT/jobs/{cpt_corpus,contrastive_pairs}/ds=.../part-0.parquet and ROOT/run/base (tokenizer + model
    built from ``cfg.llm.backbone``); returns ROOT."""
    rng = random.Random(seed)
    pois = [_poi(rng, i) for i in range(n_pois)]
    corpus = pd.DataFrame({"poi_id": range(n_pois), "prompt": [p for _, p, _ in pois],
                           "target": [t for _, _, t in pois], "text": [f"{p} {t}" for _, p, t in pois],
                           "prompt_chars": [len(p) + 1 for _, p, _ in pois],
                           "split": ["heldout" if i % 10 == 0 else "train" for i in range(n_pois)]})
    corpus["prompt_chars"] = corpus["prompt_chars"].astype("int32")
    rows = []
    kinds = ["user_user", "poi_poi", "user_poi"]
    for j in range(n_pairs):
        kind = kinds[j % 3]
        a, b = rng.randrange(n_pois), rng.randrange(n_pois)
        user = render_many([("USER_profile", f"likes {rng.choice(FOODS)} in {rng.choice(CITIES)}"),
                            ("USER_orders", [pois[a][0], pois[b][0]])])
        other = render_many([("USER_profile", f"likes {rng.choice(FOODS)}"), ("USER_orders", [pois[b][0]])])
        poi = f"{pois[a][1]} {pois[a][2]}"
        anchor, positive = {"user_user": (user, other), "poi_poi": (pois[a][1], pois[a][2]),
                            "user_poi": (user, poi)}[kind]
        rows.append({"kind": kind, "anchor_id": j, "positive_id": a, "anchor_text": anchor,
                     "positive_text": positive, "split": "heldout" if j % 25 == 0 else "train"})
    for name, df in (("cpt_corpus", corpus), ("contrastive_pairs", pd.DataFrame(rows))):
        folder = root / "jobs" / name / DS
        folder.mkdir(parents=True, exist_ok=True)
        df.to_parquet(folder / "part-0.parquet", index=False)
    texts = corpus["text"].tolist() + [r["anchor_text"] for r in rows] + [r["positive_text"] for r in rows]
    tok = train_tokenizer(texts, cfg.llm.backbone.vocab_size)
    save_backbone(build_default_model(cfg.llm.backbone, tok, seed), tok, root / "run" / "base")
    return root


def write_ctr_inputs(root: Path, rows_per_day: int = 1500, days: int = 4, files_per_day: int = 2, seed: int = 0,
                     dim: int = 8) -> Path:
    """ROOT/jobs/ctr_samples/date=*/part-*.parquet with every column the default spec's CTR input reads, and
    ROOT/features/scene_value_embeddings.parquet for their scene keys (random vectors); returns ROOT."""
    import numpy as np

    rng = np.random.default_rng(seed)
    keys = rng.integers(1, 2**62, size=60)
    emb = rng.normal(size=(len(keys) - 5, dim)).astype("float32")  # 5 keys without a vector: the zero row
    (root / "features").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"scene_key": keys[:len(emb)], "embedding": list(emb)}).to_parquet(
        root / "features" / "scene_value_embeddings.parquet", index=False)
    request = 0
    for day in range(days):
        n = rows_per_day
        users, pois = rng.integers(0, 80, n), rng.integers(0, 40 + 5 * day, n)  # new POIs appear later
        weather = rng.choice(["sunny", "rain", "snow"], n)
        df = pd.DataFrame({
            "poi_id": pois, "user_id": users, "out_of_area": rng.random(n) < 0.1,
            "temp_band": rng.choice(["cold", "mild", "hot"], n), "weather": weather,
            "day_type": rng.choice(["workday", "weekend"], n), "time_slot": rng.choice(["breakfast", "lunch"], n),
            "region_id": users % 4, "district_id": users % 9, "request_id": np.arange(request, request + n),
            "temperature_c": rng.normal(20, 8, n), "distance_km": rng.exponential(2, n),
            "hour": rng.integers(0, 24, n).astype("int32"), "price_level": rng.integers(1, 4, n).astype("int8"),
            **{f"{p}_{c}": rng.integers(0, 50, n) for p in ("u", "p", "up") for c in ("imps", "clicks", "orders")},
            **{c: rng.random(n) for c in ("u_ctr", "p_ctr", "p_cvr", "up_ctr")},
            "poi_age_days": np.where(pois >= 40, 0, 30).astype("int32"),
        })
        logit = -1.5 + 0.8 * (weather == "rain") + 0.02 * (users % 7) - 0.1 * df["distance_km"].to_numpy()
        df["click"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")
        df["order"] = (df["click"].to_numpy() * (rng.random(n) < 0.3)).astype("int8")
        df["scene_keys"] = list(rng.choice(keys, size=(n, 10)))
        request += n
        folder = root / "jobs" / "ctr_samples" / f"date=2024-07-0{day + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, part in enumerate(np.array_split(np.arange(n), files_per_day)):
            df.iloc[part].to_parquet(folder / f"part-{i}.parquet", index=False)
    return root
