"""The columns of a CTR sample, derived from the feature spec.

The ``ctr_samples`` job writes them and the CTR input pipeline reads them, so both take the lists from
here: the spec's categorical and numeric features, plus what every spec gets -- prior statistics of the
user, the item and the pair (impressions and label positives of the days before, smoothed rates) and,
when items carry a creation date, the item's age in days.
"""

from __future__ import annotations

from dataclasses import dataclass

from larr.spec import Spec


@dataclass(frozen=True)
class CtrColumns:
    categorical: tuple[str, ...]
    counts: tuple[str, ...]  # log1p-ed before standardising
    numeric: tuple[str, ...]  # counts, rates, item age, the spec's numeric features (model input order)
    labels: tuple[str, ...]  # click, then conversion when the spec has one
    item_age: str  # column of the item's age in days ("" without item.created)
    user_col: int  # index of the user id among the categorical columns
    item_col: int


def ctr_columns(spec: Spec) -> CtrColumns:
    counts_of = ("imps", "clicks", "orders") if spec.has_conversion else ("imps", "clicks")
    counts = tuple(f"{p}_{c}" for p in ("u", "p", "up") for c in counts_of)
    rates = ("u_ctr", "p_ctr", "p_cvr", "up_ctr") if spec.has_conversion else ("u_ctr", "p_ctr", "up_ctr")
    item_age = f"{spec.item_name}_age_days" if spec.item.created else ""
    numeric = counts + rates + ((item_age,) if item_age else ()) + tuple(spec.ctr.numeric)
    cat = tuple(spec.ctr.categorical)
    return CtrColumns(cat, counts, numeric, spec.labels_out, item_age, cat.index(spec.user_key),
                      cat.index(spec.item_key))
