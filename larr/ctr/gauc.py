"""Group AUC: per-user AUC weighted by the user's impressions, in one vectorised pass.

Users whose labels are all one class have no AUC; they are skipped and counted.  Ties count one half
(average ranks within a user).  No Python loop over users: one lexsort by (user, score), average ranks of
ties inside each user from run boundaries, then per-user rank sums by ``np.add.reduceat``.
"""

from __future__ import annotations

import numpy as np


def gauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> tuple[float, int]:
    """Return (GAUC, number of users skipped because all their labels are one class)."""
    u = np.asarray(users)
    y = np.asarray(labels).astype(np.int64)
    s = np.asarray(scores, dtype=float)
    if not (len(u) == len(y) == len(s)):
        raise ValueError(f"gauc: users {len(u)}, labels {len(y)}, scores {len(s)} must have equal length")
    if len(u) == 0:
        return float("nan"), 0
    order = np.lexsort((s, u))
    u, y, s = u[order], y[order], s[order]
    new_user = np.r_[True, u[1:] != u[:-1]]
    user_start = np.flatnonzero(new_user)
    # runs of equal (user, score): each gets the average of the ranks it spans, ranks counted within the user
    new_run = new_user | np.r_[True, s[1:] != s[:-1]]
    run_start = np.flatnonzero(new_run)
    run_len = np.diff(np.r_[run_start, len(s)])
    user_of_run = np.searchsorted(user_start, run_start, side="right") - 1
    first_rank = run_start - user_start[user_of_run] + 1
    avg_rank = np.repeat(first_rank + (run_len - 1) / 2.0, run_len)
    n = np.diff(np.r_[user_start, len(s)])
    pos = np.add.reduceat(y, user_start)
    neg = n - pos
    rank_sum_pos = np.add.reduceat(avg_rank * y, user_start)
    ok = (pos > 0) & (neg > 0)
    auc = (rank_sum_pos[ok] - pos[ok] * (pos[ok] + 1) / 2.0) / (pos[ok] * neg[ok])
    skipped = int((~ok).sum())
    if not ok.any():
        return float("nan"), skipped
    return float(np.sum(auc * n[ok]) / np.sum(n[ok])), skipped
