"""Per-request reads from Feast's online store: statistics, the user's and the items' rows of the day, and the
real-time scene state -- one ``get_online_features`` call per request (Feast deduplicates entity keys per
view, so the user's and the region's rows are read once however many candidates there are)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from larr.feast_repo import REALTIME_VIEW, context_views, pair_stats, stat_columns
from larr.spec import Spec

log = logging.getLogger("larr.serve")


class StoreUnavailable(RuntimeError):
    """The online store cannot be read (down, unreachable, not applied); the request cannot be scored."""


@dataclass(frozen=True)
class OnlineViews:
    """Which Feast views hold which columns for ``spec``: ``{view: [column, ...]}`` by role."""

    user: dict[str, list[str]]
    item: dict[str, list[str]]
    pair: dict[str, list[str]]
    realtime: dict[str, list[str]]

    @classmethod
    def of(cls, spec: Spec) -> OnlineViews:
        from larr.realtime.state import state_columns

        (u_view, (_, u_counts, u_rates)), (i_view, (_, i_counts, i_rates)) = stat_columns(spec).items()
        user, item = {u_view: u_counts + u_rates}, {i_view: i_counts + i_rates}
        for view, (role, schema) in context_views(spec).items():
            (user if role == "user" else item)[view] = [c for c, _ in schema]
        p_view, p_counts, p_rates = pair_stats(spec)
        rt = {REALTIME_VIEW: state_columns(spec)} if spec.realtime else {}
        return cls(user, item, {p_view: p_counts + p_rates}, rt)

    def refs(self, with_realtime: bool) -> list[str]:
        groups = [self.user, self.item, self.pair] + ([self.realtime] if with_realtime else [])
        return [f"{v}:{c}" for g in groups for v, cols in g.items() for c in cols]


class OnlineReader:
    """Reads a request's rows through :class:`feast.FeatureStore` (SQLite or Redis, per the repo's yaml)."""

    def __init__(self, repo: Path, spec: Spec):
        from larr import feature_store as fsx

        self.repo, self.spec = Path(repo), spec
        self.views = OnlineViews.of(spec)
        self.store = fsx.store(self.repo)
        self._refs = {True: self.views.refs(True), False: self.views.refs(False)}

    def read(self, user: Any, items: list[Any], realtime_key: Any | None) -> dict[str, list[Any]]:
        """``{"view__column": [value per candidate]}`` (None where the store has no row)."""
        s = self.spec
        with_rt = realtime_key is not None and bool(self.views.realtime)
        rows = [{s.user_key: user, s.item_key: i, **({s.realtime.key: realtime_key} if with_rt else {})}
                for i in items]
        try:
            resp = self.store.get_online_features(features=self._refs[with_rt], entity_rows=rows,
                                                  full_feature_names=True)
            return resp.to_dict()
        except Exception as e:  # noqa: BLE001 - any failure to read is an outage for this request
            if _is_user_value_error(e):
                raise
            raise StoreUnavailable(f"online store unreachable ({type(e).__name__}: {e})") from e

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless one online read succeeds."""
        probe = 0 if self.spec.tables[self.spec.user.table].columns[self.spec.user_key].type == "int" else ""
        self.read(probe, [probe], None)


def _is_user_value_error(e: Exception) -> bool:
    """A key the store cannot encode (an int outside int64) is the caller's error, not an outage."""
    return isinstance(e, ValueError | OverflowError) and "out of range" in str(e).lower()
