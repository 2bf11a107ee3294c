"""Rank correlation between predictions and true values (host-side numpy)."""

from __future__ import annotations

import math

import numpy as np

from jnas.errors import JnasError


def _inversions(v: np.ndarray) -> int:
    """Number of pairs ``i < j`` with ``v[i] > v[j]`` (strict), for ints ``0 <= v < len(v)``.

    Bottom-up merge sort, each level vectorised: for every element of a right
    block, count the elements of its left partner block that are larger
    (one ``searchsorted`` over all blocks at once, made globally sorted by
    offsetting each block pair by ``pair * (n + 1)``). ``O(n log² n)``.
    """
    n = v.shape[0]
    v = v.astype(np.int64)
    big = n + 1
    idx = np.arange(n)
    total, w = 0, 1
    while w < n:
        block = idx // w
        pair = block // 2
        left = block % 2 == 0
        key = pair * big + v
        lk = key[left]  # each left block sorted, block pairs ascending -> globally sorted
        rk, rp = key[~left], pair[~left]
        end = np.searchsorted(lk, (rp + 1) * big, side="left")
        pos = np.searchsorted(lk, rk, side="right")
        total += int((end - pos).sum())
        v = np.sort(key) - (idx // (2 * w)) * big
        w *= 2
    return total


def _tied_pairs(x: np.ndarray) -> int:
    """Number of pairs with equal values in ``x``."""
    _, c = np.unique(x, return_counts=True)
    return int((c * (c - 1) // 2).sum())


def kendall_tau(a, b) -> float:
    """Kendall rank correlation tau-b of two equal-length 1-D sequences.

    ``tau_b = (C - D) / sqrt((n0 - n1) (n0 - n2))`` with ``C``/``D`` the
    concordant/discordant pairs, ``n0 = n(n-1)/2`` and ``n1``/``n2`` the pairs
    tied in ``a``/``b``. Positions where either value is NaN are dropped.
    Returns NaN when one side is constant (or fewer than two positions remain).
    ``O(n log² n)``: fine for whole search spaces.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 1 or b.shape != a.shape:
        raise JnasError(f"a, b: got shapes {a.shape} and {b.shape}, expected two 1-D sequences of equal length")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = a.shape[0]
    if n < 2:
        return float("nan")
    ra = np.unique(a, return_inverse=True)[1].ravel().astype(np.int64)
    rb = np.unique(b, return_inverse=True)[1].ravel().astype(np.int64)
    n0 = n * (n - 1) // 2
    n1, n2, n3 = _tied_pairs(ra), _tied_pairs(rb), _tied_pairs(ra * n + rb)
    # sort by a, ties in a by b: then pairs tied in a are never inversions of b
    d = _inversions(rb[np.lexsort((rb, ra))])
    c = n0 - n1 - n2 + n3 - d
    den = (n0 - n1) * (n0 - n2)
    if den == 0:
        return float("nan")
    return float((c - d) / np.sqrt(float(den)))


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` (float ``[n]``), ties sharing their mean rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tied = x == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman's rho of two equal-length 1-D sequences: the Pearson correlation of average ranks.

    Positions where either value is NaN are dropped; NaN when one side is constant.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    if keep.sum() < 2:
        return float("nan")
    ra, rb = average_ranks(a[keep]), average_ranks(b[keep])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / den) if den > 0 else float("nan")
