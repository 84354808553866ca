"""Vector recall (paper 4.5): embed a free-text scene query, return the nearest POIs.

Feast's vector search (``retrieve_online_documents``) is implemented for pgvector, Milvus, Elasticsearch,
Qdrant and an sqlite-vec build of SQLite -- not for the SQLite and Redis online stores we ship.  So recall
uses this documented in-process index: the POI vectors are read once from the online store with
``get_online_features`` (feature service ``recall``), L2-normalised, and searched by exact inner product
(brute force, exact; ~1 ms per query for 10^4 POIs on a CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from larr.text import render


@dataclass
class RecallHit:
    poi_id: int
    region: str
    main_dish: str
    score: float


class PoiIndex:
    """Exact cosine search over POI vectors."""

    def __init__(self, poi_ids: np.ndarray, vectors: np.ndarray, info: pd.DataFrame):
        ok = np.isfinite(vectors).all(axis=1)
        if not ok.any():
            raise ValueError("no POI has a finite vector in the online store: materialize poi_embedding first")
        self.poi_ids = np.asarray(poi_ids)[ok]
        v = vectors[ok].astype(np.float32)
        self.vectors = v / np.linalg.norm(v, axis=1, keepdims=True)
        self.info = info.set_index("poi_id")

    @classmethod
    def from_feast(cls, repo: Path, raw: Path) -> PoiIndex:
        """Read every POI's vector, region and main dish from the online store (view ``poi_embedding``)."""
        from larr.feature_store import store

        pois = pd.read_parquet(raw / "pois.parquet", columns=["poi_id"])
        regions = pd.read_parquet(raw / "regions.parquet").set_index("region_id")["name"]
        resp = store(repo).get_online_features(
            features=["poi_embedding:embedding", "poi_embedding:region_id", "poi_embedding:main_dish"],
            entity_rows=[{"poi_id": int(p)} for p in pois["poi_id"]]).to_dict()
        emb = resp["embedding"]
        dim = max((len(e) for e in emb if e is not None), default=1)
        vectors = np.array([e if e is not None else [np.nan] * dim for e in emb], dtype=np.float32)
        region_ids, dishes = resp["region_id"], resp["main_dish"]
        info = pd.DataFrame({"poi_id": pois["poi_id"],
                             "region": [regions.get(r, "?") if r is not None else "?" for r in region_ids],
                             "main_dish": [d or "?" for d in dishes]})
        return cls(pois["poi_id"].to_numpy(), vectors, info)

    def search(self, query_vector: np.ndarray, k: int = 10) -> list[RecallHit]:
        q = query_vector / np.linalg.norm(query_vector)
        scores = self.vectors @ q
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [RecallHit(int(self.poi_ids[i]), str(self.info.at[self.poi_ids[i], "region"]),
                          str(self.info.at[self.poi_ids[i], "main_dish"]), float(scores[i])) for i in top]


def query_text(text: str) -> str:
    """A recall query goes through the one renderer like every other text."""
    return render("QUERY", text)
