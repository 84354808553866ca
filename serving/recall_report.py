"""Recall case study (paper 4.5) for every region and for weather/time queries, fine-tuned encoder vs base.

* region queries: "a user visiting <region> on vacation, rainy evening" -> share of the top-10 POIs located
  in that region;
* kind queries (hot weather, cold rain, breakfast, late night) -> share of the top-10 POIs whose tags show
  the expected food kind (tags are public POI data).

The fine-tuned encoder searches the vectors materialized in Feast; the base model (last-token hidden
state, no training) and all-MiniLM-L6-v2 search vectors computed in process over the same POI texts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from larr.spec import Spec, load_spec
from serving.recall import PoiIndex, display_info, query_text

KIND_QUERIES = {
    "a scorching hot sunny afternoon, something cold and refreshing": "cold food",
    "a freezing cold rainy night, something hot with soup to warm up": "soup",
    "early morning, a quick breakfast before work": "breakfast",
    "a late night snack after midnight": "late night",
}


def region_query(region: str) -> str:
    return f"a user visiting {region} on vacation, rainy evening"


def evaluate(index: PoiIndex, embed: Callable[[list[str]], np.ndarray], pois: pd.DataFrame,
             regions: list[str], k: int = 10) -> dict[str, Any]:
    """Per-region and per-kind shares of the top-k for one encoder."""
    region_of = pois.set_index("poi_id")["region"]
    tags_of = pois.set_index("poi_id")["tags"].map(lambda t: set(t))
    queries = [region_query(r) for r in regions] + list(KIND_QUERIES)
    vectors = embed([query_text(q) for q in queries])
    out: dict[str, Any] = {"regions": {}, "kinds": {}}
    for r, v in zip(regions, vectors[: len(regions)], strict=True):
        hits = index.search(v, k)
        out["regions"][r] = {"share_in_region": float(np.mean([region_of[h.poi_id] == r for h in hits])),
                             "top": [f"{h.region}; {h.main_dish}; {h.score:.3f}" for h in hits]}
    for (q, kind), v in zip(KIND_QUERIES.items(), vectors[len(regions):], strict=True):
        hits = index.search(v, k)
        out["kinds"][q] = {"expected": kind, "share_matching": float(np.mean([kind in tags_of[h.poi_id]
                                                                              for h in hits]))}
    out["mean_share_in_region"] = float(np.mean([x["share_in_region"] for x in out["regions"].values()]))
    out["mean_share_matching_kind"] = float(np.mean([x["share_matching"] for x in out["kinds"].values()]))
    return out


def run(repo: Path, raw: Path, llm: Path, out: Path, k: int = 10, spec: Spec | None = None) -> dict[str, Any]:
    from larr.llm.backbone import load_backbone
    from larr.llm.encoder import TextEncoder
    from training.llm_report import item_full_texts

    spec = spec or load_spec()
    pois = pd.read_parquet(raw / "pois.parquet")
    names = pd.read_parquet(raw / "regions.parquet").set_index("region_id")["name"]
    pois["region"] = pois["region_id"].map(names)
    regions = names.tolist()
    results = {}
    tuned = TextEncoder.load(llm / "encoder")
    results["CPT + contrastive (Feast vectors)"] = evaluate(PoiIndex.from_feast(repo, raw, spec),
                                                            lambda t: tuned.encode(t), pois, regions, k)
    texts = item_full_texts(raw, spec)
    info = display_info(raw, spec)
    model, tok = load_backbone(llm / "base")
    base = TextEncoder(model, tok, None)
    results["base (no training)"] = evaluate(PoiIndex(texts["item_id"].to_numpy(), base.encode(texts["text"].tolist()),
                                                      info), lambda t: base.encode(t), pois, regions, k)
    report = {"k": k, "encoders": results,
              "random_share_in_region": float(np.mean([(pois["region"] == r).mean() for r in regions]))}
    out.mkdir(parents=True, exist_ok=True)
    (out / "recall_report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Recall case study", "", "Written by `larr recall-report`. Share of the top-10 POIs located in the "
             "queried region, and share whose tags match the expected food kind.", "",
             "| encoder | mean share in region | mean share matching kind |", "|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['mean_share_in_region']:.2f} | {r['mean_share_matching_kind']:.2f} |")
    lines += ["", f"Random share in region: {report['random_share_in_region']:.2f}.", "",
              "| region | fine-tuned share | base share |", "|---|---|---|"]
    for r in regions:
        lines.append(f"| {r} | {results['CPT + contrastive (Feast vectors)']['regions'][r]['share_in_region']:.1f} | "
                     f"{results['base (no training)']['regions'][r]['share_in_region']:.1f} |")
    lines += ["", "| query | expected | fine-tuned | base |", "|---|---|---|---|"]
    for q, kind in KIND_QUERIES.items():
        lines.append(f"| {q} | {kind} | {results['CPT + contrastive (Feast vectors)']['kinds'][q]['share_matching']:.1f}"
                     f" | {results['base (no training)']['kinds'][q]['share_matching']:.1f} |")
    (out / "recall_report.md").write_text("\n".join(lines) + "\n")
    return report
