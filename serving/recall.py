"""Vector recall (paper 4.5): embed a free-text scene query, return the nearest POIs.

Feast's vector search (``retrieve_online_documents``) is implemented for pgvector, Milvus, Elasticsearch,
Qdrant and an sqlite-vec build of SQLite -- not for the SQLite and Redis online stores we ship.  So recall
uses this documented in-process index: the POI vectors are read once from the online store with
``get_online_features`` (view ``{item}_embedding`` of the feature spec, in feature service ``recall``),
L2-normalised, and searched by exact inner product (brute force, exact; ~1 ms per query for 10^4 POIs on a
CPU).  What a hit displays (region, main dish) comes from the raw item table, not from Feast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from larr.spec import Spec, load_spec
from larr.text import render


@dataclass
class RecallHit:
    poi_id: int | str  # the item key (an int for the food spec)
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
    def from_feast(cls, repo: Path, raw: Path, spec: Spec | None = None) -> PoiIndex:
        """Read every item's vector from the online store (view ``{spec.item_name}_embedding``) and what a hit
        displays from the raw item table (:func:`display_info`)."""
        from larr.feast_repo import embedding_views
        from larr.feature_store import store

        spec = spec or load_spec()
        info = display_info(raw, spec)
        view = embedding_views(spec)["item"]
        resp = store(repo).get_online_features(
            features=[f"{view}:embedding"],
            entity_rows=[{spec.item_key: _plain(p)} for p in info["poi_id"]]).to_dict()
        emb = resp["embedding"]
        dim = max((len(e) for e in emb if e is not None), default=1)
        vectors = np.array([e if e is not None else [np.nan] * dim for e in emb], dtype=np.float32)
        return cls(info["poi_id"].to_numpy(), vectors, info)

    def search(self, query_vector: np.ndarray, k: int = 10) -> list[RecallHit]:
        q = query_vector / np.linalg.norm(query_vector)
        scores = self.vectors @ q
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [RecallHit(_plain(self.poi_ids[i]), str(self.info.at[self.poi_ids[i], "region"]),
                          str(self.info.at[self.poi_ids[i], "main_dish"]), float(scores[i])) for i in top]


def _plain(v):
    """A numpy scalar id as a Python int / str (what Feast entity rows and reports take)."""
    return v.item() if isinstance(v, np.generic) else v


def _first_name(entries) -> str:
    """The name of the first entry of a list<struct<name,description>> value ("?" when empty)."""
    if entries is None or len(entries) == 0:
        return "?"
    first = entries[0]
    name = first.get("name") if isinstance(first, dict) else None
    return str(name) if name else "?"


def display_info(raw: Path, spec: Spec | None = None) -> pd.DataFrame:
    """What a recall hit shows, from the raw item table: columns ``poi_id`` (the item key, whatever the spec
    calls it), ``region`` (the item's ``region_name`` lookup when the spec declares one, else "?") and
    ``main_dish`` (the first name of the item table's first list<struct<name,description>> column -- the
    dishes of a POI -- else "?")."""
    spec = spec or load_spec()
    table = spec.tables[spec.item.table]
    dishes = next((c for c, col in table.columns.items() if col.type == "list<struct<name,description>>"), None)
    region = table.lookups.get("region_name")
    cols = [spec.item_key] + ([dishes] if dishes else []) + ([region.via] if region else [])
    items = pd.read_parquet(raw / f"{spec.item.table}.parquet", columns=list(dict.fromkeys(cols)))
    info = pd.DataFrame({"poi_id": items[spec.item_key]})
    if region is not None:
        names = pd.read_parquet(raw / f"{region.table}.parquet", columns=[spec.tables[region.table].key[0],
                                                                          region.column])
        names = names.set_index(spec.tables[region.table].key[0])[region.column]
        info["region"] = items[region.via].map(names).fillna("?").astype(str)
    else:
        info["region"] = "?"
    info["main_dish"] = items[dishes].map(_first_name) if dishes else "?"
    return info


def query_text(text: str) -> str:
    """A recall query goes through the one renderer like every other text."""
    return render("QUERY", text)
