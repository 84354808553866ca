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


def test_evaluate_counts_the_users_gauc_skips_in_every_slice() -> None:
    """``gauc_users_skipped`` of each slice is the number of users whose clicks in that slice are one class."""
    import pandas as pd

    from training.ctr import evaluate

    rng = np.random.default_rng(4)
    n = 3000
    test = pd.DataFrame({"user_id": rng.integers(0, 200, n), "click": (rng.random(n) < 0.15).astype(int)})
    test["order"] = test["click"] * (rng.random(n) < 0.3)
    p = rng.random(n)
    half = (test["user_id"] % 2 == 0).to_numpy()
    out = evaluate(test, p, p / 2, {"all": np.ones(n, bool), "even": half, "odd": ~half})
    for name, m in (("all", np.ones(n, bool)), ("even", half), ("odd", ~half)):
        _, skipped = slow_gauc(test["user_id"].to_numpy()[m], test["click"].to_numpy()[m], p[m])
        assert out[name]["gauc_users_skipped"] == skipped > 0, name


def test_seed_statistics_are_the_mean_and_sample_std() -> None:
    """The report's ``std`` over seeds is the sample standard deviation (ddof 1), 0 for one seed."""
    from training.ctr_report import _stats

    s = _stats([0.70, 0.72, 0.77])
    assert s["mean"] == pytest.approx(0.73) and s["n"] == 3
    assert s["std"] == pytest.approx(np.sqrt(((0.03**2) + (0.01**2) + (0.04**2)) / 2))
    assert _stats([0.7])["std"] == 0.0
