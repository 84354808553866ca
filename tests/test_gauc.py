"""GAUC against a slow per-user reference on random data, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from larr.ctr.gauc import gauc


def slow_gauc(users, labels, scores):
    num = den = 0.0
    skipped = 0
    for u in np.unique(users):
        m = users == u
        if labels[m].min() == labels[m].max():
            skipped += 1
            continue
        num += roc_auc_score(labels[m], scores[m]) * m.sum()
        den += m.sum()
    return num / den, skipped


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5000
    users = rng.integers(0, 300, n)
    labels = (rng.random(n) < 0.2).astype(int)
    scores = np.round(rng.random(n) + 0.3 * labels, 2)  # rounding makes ties
    fast, skipped = gauc(users, labels, scores)
    slow, slow_skipped = slow_gauc(users, labels, scores)
    assert fast == pytest.approx(slow, abs=1e-12)
    assert skipped == slow_skipped > 0


def test_hand_checked_and_degenerate_cases() -> None:
    users = np.array([1, 1, 1, 2, 2, 3])
    labels = np.array([1, 0, 0, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.2, 0.4])
    value, skipped = gauc(users, labels, scores)
    assert skipped == 1  # user 3 has one class only
    assert value == pytest.approx((1.0 * 3 + 0.0 * 2) / 5)
    assert np.isnan(gauc(np.array([1, 1]), np.array([0, 0]), np.array([0.1, 0.2]))[0])
    with pytest.raises(ValueError, match="equal length"):
        gauc(np.array([1]), np.array([0, 1]), np.array([0.1]))
