"""Per-request reads from Feast's online store.

What a request needs and where it comes from:

* the user's rows of the day (statistics, scene-field keys, and every user x item statistic as the arrays of
  ``{user}_{item}_history``) and the real-time scene state of the request's region: **one**
  ``get_online_features`` call with **one** entity row per request, whatever the number of candidates;
* the candidates' item rows (statistics, profile): from :class:`ItemCache`, an in-memory copy of the item
  views read from the same online store at start-up and refreshed in the background (items are a bounded
  set that changes once a day; users are not).  A candidate the cache does not hold is read from the store
  in that request.

A per-candidate read of the store costs about 0.1-0.2 ms per row in Feast's Python SDK (it converts every
value), so reading 100 candidates' item and pair rows per request would cost more than the whole latency
budget; see ``benchmarks/serving.py``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from larr.feast_repo import REALTIME_VIEW, context_views, pair_history, pair_stats, stat_columns
from larr.spec import Spec

log = logging.getLogger("larr.serve")


class BadRequest(ValueError):
    """The request holds a value the service cannot use (a key the store cannot encode, a path switched off):
    a 422, unlike any other ``ValueError``, which is a bug and a 500."""


class StoreUnavailable(RuntimeError):
    """The online store cannot be read (down, unreachable, not applied); the request cannot be scored."""


@dataclass(frozen=True)
class OnlineViews:
    """Which Feast views hold which columns for ``spec``: ``{view: [column, ...]}`` by role."""

    user: dict[str, list[str]]
    item: dict[str, list[str]]
    pair: dict[str, list[str]]
    realtime: dict[str, list[str]]
    history: str  # the user-keyed arrays of the pair statistics
    history_items: str  # its column of item ids
    history_arrays: dict[str, str]  # pair column -> its array column

    @classmethod
    def of(cls, spec: Spec) -> OnlineViews:
        from larr.realtime.state import state_columns

        (u_view, (_, u_counts, u_rates)), (i_view, (_, i_counts, i_rates)) = stat_columns(spec).items()
        user, item = {u_view: u_counts + u_rates}, {i_view: i_counts + i_rates}
        for view, (role, schema) in context_views(spec).items():
            (user if role == "user" else item)[view] = [c for c, _ in schema]
        p_view, p_counts, p_rates = pair_stats(spec)
        h_view, h_items, h_arrays, _ = pair_history(spec)
        rt = {REALTIME_VIEW: state_columns(spec)} if spec.realtime else {}
        return cls(user, item, {p_view: p_counts + p_rates}, rt, h_view, h_items, h_arrays)

    def request_refs(self, with_realtime: bool) -> list[str]:
        """Feature references of the one per-request read (user views, pair arrays, real-time state)."""
        groups = [self.user, self.history_views] + ([self.realtime] if with_realtime else [])
        return [f"{v}:{c}" for g in groups for v, cols in g.items() for c in cols]

    @property
    def history_views(self) -> dict[str, list[str]]:
        return {self.history: [self.history_items, *self.history_arrays.values()]}

    def item_refs(self) -> list[str]:
        return [f"{v}:{c}" for v, cols in self.item.items() for c in cols]


class OnlineReader:
    """Reads a request's rows through :class:`feast.FeatureStore` (SQLite or Redis, per the repo's yaml)."""

    def __init__(self, repo: Path, spec: Spec, item_refresh_s: float = 300.0):
        from larr import feature_store as fsx

        self.repo, self.spec = Path(repo), spec
        self.views = OnlineViews.of(spec)
        self.store = fsx.store(self.repo)
        self._refs = {True: self.views.request_refs(True), False: self.views.request_refs(False)}
        self.items = ItemCache(self, item_refresh_s)

    def _get(self, features: list[str], rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        try:
            return self.store.get_online_features(features=features, entity_rows=rows,
                                                  full_feature_names=True).to_dict()
        except Exception as e:  # noqa: BLE001 - any failure to read is an outage for this request
            if _is_user_value_error(e):
                raise BadRequest(f"a key the online store cannot hold: {e}") from e
            raise StoreUnavailable(f"online store unreachable ({type(e).__name__}: {e})") from e

    def read(self, user: Any, items: list[Any], realtime_key: Any | None) -> dict[str, list[Any]]:
        """``{"view__column": [value per candidate]}`` (None where the store has no row): the shape the
        assembler takes, whatever store or cache each value came from."""
        s, v, n = self.spec, self.views, len(items)
        with_rt = realtime_key is not None and bool(v.realtime)
        row = {s.user_key: user, **({s.realtime.key: realtime_key} if with_rt else {})}
        one = self._get(self._refs[with_rt], [row])
        out: dict[str, list[Any]] = {}
        for groups in (v.user, v.realtime if with_rt else {}):
            for view, cols in groups.items():
                for c in cols:
                    out[f"{view}__{c}"] = one[f"{view}__{c}"] * n
        (p_view, p_cols), = v.pair.items()
        ids = one[f"{v.history}__{v.history_items}"][0] or []
        pos = {i: k for k, i in enumerate(ids)}
        at = [pos.get(i) for i in items]
        for c in p_cols:
            arr = one[f"{v.history}__{v.history_arrays[c]}"][0] or []
            out[f"{p_view}__{c}"] = [None if k is None or k >= len(arr) else arr[k] for k in at]
        out.update(self.items.rows(items))
        return out

    def read_items(self, items: list[Any]) -> dict[str, list[Any]]:
        """The item views' rows of ``items`` straight from the store."""
        return self._get(self.views.item_refs(), [{self.spec.item_key: i} for i in items])

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless one online read succeeds."""
        probe = 0 if self.spec.tables[self.spec.user.table].columns[self.spec.user_key].type == "int" else ""
        self._get(self._refs[False], [{self.spec.user_key: probe}])


class ItemCache:
    """The item views' online rows, held in memory: ``{item id: {"view__column": value}}``.

    Filled from the online store for every item id of the item views' offline sources (Feast's registry
    names the parquet, so the serving host needs read access to it) and refreshed every ``refresh_s``
    seconds by a background thread (:meth:`start`); the dict is replaced whole, so a request sees one
    consistent copy, and a refresh that fails keeps the previous one.  Cost: a Python dict per item (about
    1 KB with 10 columns), and a refresh reads every item through Feast's SDK (0.1-0.2 ms per item), so
    this suits up to some 10^5 items per worker; beyond that the copy belongs in a shared cache."""

    CHUNK = 2_000

    def __init__(self, reader: OnlineReader, refresh_s: float):
        self.reader, self.refresh_s = reader, refresh_s
        self.rows_by_id: dict[Any, dict[str, Any]] = {}
        self.loaded_at: float | None = None
        self.misses = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def ids(self) -> list[Any]:
        """Every item id the item views' offline sources hold (what the online store was materialised from).
        Raises when a source cannot be read: a refresh must not swap in a smaller copy."""
        import pandas as pd

        key, found = self.reader.spec.item_key, set()
        for view in self.reader.views.item:
            path = self.reader.store.get_feature_view(view).batch_source.path
            found.update(pd.read_parquet(path, columns=[key])[key].tolist())
        return sorted(found, key=str)

    def refresh(self) -> int:
        """Re-read every item from the online store; returns how many the cache holds."""
        import time

        ids = self.ids()
        fresh: dict[Any, dict[str, Any]] = {}
        for k in range(0, len(ids), self.CHUNK):
            chunk = ids[k:k + self.CHUNK]
            got = self.reader.read_items(chunk)
            cols = [c for c in got if "__" in c]
            for j, i in enumerate(chunk):
                fresh[i] = {c: got[c][j] for c in cols}
        self.rows_by_id = fresh
        self.loaded_at = time.monotonic()
        log.info("item cache: %s items from the online store", f"{len(fresh):,}")
        return len(fresh)

    def try_refresh(self) -> bool:
        """:meth:`refresh`, logging instead of raising (store down, a source being rewritten, any other
        failure): the previous copy stays, and items it lacks are read per request meanwhile."""
        with self._lock:
            try:
                self.refresh()
                return True
            except Exception as e:  # noqa: BLE001 - a failed refresh must never end the service or the loop
                log.warning("item cache refresh failed, keeping the previous copy (%s items): %s",
                            f"{len(self.rows_by_id):,}", e, exc_info=not isinstance(e, StoreUnavailable))
                return False

    def start(self, stop: threading.Event) -> None:
        """Refresh every ``refresh_s`` seconds in a daemon thread until ``stop`` is set; until the first
        refresh succeeds (store down at start-up), retry after 1, 2, 4 .. 30 s whatever ``refresh_s`` is."""
        if self._thread is not None:
            return

        def loop() -> None:
            backoff = 1.0
            while True:
                if self.loaded_at is None:
                    wait, backoff = backoff, min(backoff * 2, 30.0)
                elif self.refresh_s > 0:
                    wait = self.refresh_s
                else:
                    return  # loaded once; 0 means only at start-up
                if stop.wait(wait):
                    return
                self.try_refresh()

        self._thread = threading.Thread(target=loop, name="larr-item-cache", daemon=True)
        self._thread.start()

    def rows(self, items: list[Any]) -> dict[str, list[Any]]:
        """``{"view__column": [value per candidate]}``; items the cache lacks are read from the store now."""
        held = self.rows_by_id
        refs = [r.replace(":", "__") for r in self.reader.views.item_refs()]
        missing = [i for i in dict.fromkeys(items) if i not in held]
        extra: dict[Any, dict[str, Any]] = {}
        if missing:
            self.misses += len(missing)
            got = self.reader.read_items(missing)
            extra = {i: {c: got[c][j] for c in refs} for j, i in enumerate(missing)}
        none = dict.fromkeys(refs)
        rows = [held.get(i) or extra.get(i) or none for i in items]
        return {c: [r[c] for r in rows] for c in refs}


def _is_user_value_error(e: Exception) -> bool:
    """A key the store cannot encode (an int outside int64) is the caller's error, not an outage."""
    return isinstance(e, ValueError | OverflowError) and "out of range" in str(e).lower()
