"""Turning the raw per-query record of a run into best-so-far curves and summary numbers.

All functions are host-side numpy over ``[seeds, budget]`` arrays.
"""

from __future__ import annotations

import numpy as np


def best_so_far(rows: np.ndarray, values: np.ndarray, higher_is_better: bool = True):
    """Best-so-far value and the row that attains it, per query.

    ``rows``: int[S, B] queried table rows; ``values``: float[S, B] search
    metric (NaN = failed). Ties keep the first queried architecture.
    Returns ``(best_value float[S, B], best_row int[S, B])``; before any
    successful query the value is NaN and the row -1.
    """
    s = values if higher_is_better else -values
    s = np.where(np.isnan(s), -np.inf, s)
    running = np.maximum.accumulate(s, axis=1)
    # position of the first query that reached the running maximum
    b = s.shape[1]
    improved = np.concatenate([np.ones_like(s[:, :1], bool), s[:, 1:] > running[:, :-1]], axis=1)
    pos = np.maximum.accumulate(np.where(improved, np.arange(b)[None, :], 0), axis=1)
    best_row = np.take_along_axis(rows, pos, axis=1)
    best_val = np.take_along_axis(values, pos, axis=1).astype(np.float64)
    ok = np.isfinite(running)
    return np.where(ok, best_val, np.nan), np.where(ok, best_row, -1)


def samples_to_hit(hit: np.ndarray) -> np.ndarray:
    """1-based index of the first ``True`` per seed; ``budget + 1`` for a miss. ``hit``: bool[S, B]."""
    b = hit.shape[1]
    first = np.argmax(hit, axis=1) + 1
    return np.where(hit.any(axis=1), first, b + 1)


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard error over the first axis (SE 0 for one seed)."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    se = float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return float(x.mean()), se
