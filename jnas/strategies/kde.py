"""BOHB's model (Falkner, Klein & Hutter, ICML 2018): a ratio of two kernel density estimators.

BOHB proposes a configuration TPE-style. Among the observations of the
largest budget that has enough of them, the ``N_l = max(N_min, ceil(γ N))``
best form the *good* set and the ``N_g = max(N_min, N − N_l)`` worst the
*bad* set (``N_min = D + 1``; the two overlap while ``N < 2 N_min``). A KDE
``l(x)`` is fit on the good set and ``g(x)`` on the bad one; candidates are
drawn from ``l`` with its bandwidths widened by a factor (3) and the one
maximising ``l(x) / g(x)`` (scored with the unwidened bandwidths) is
proposed (``split_good_bad``, ``propose``).

Representation: a configuration is a ``float32[D]`` vector; a static NumPy
``card: int32[D]`` gives each coordinate's kind:

* ``card[d] == 0``: continuous in ``[0, 1]``. Kernel: a Gaussian of std
  ``bw[d]`` centred on the observation, truncated to ``[0, 1]`` and
  renormalised by its mass there.
* ``card[d] >= 2``: categorical, codes ``0 .. c−1`` stored as floats. Kernel:
  Aitchison–Aitken, ``1 − bw`` on the observation's code and ``bw / (c − 1)``
  on each other code (uniform at ``bw = (c − 1) / c``).
* ``card[d] == 1``: a constant decision (always 0); its kernel is 1.

The KDE is the equal-weight mixture of the product kernels of its members.
Observations are ``points: float32[N, D]`` at a fixed capacity ``N`` with
``mask: bool[N]`` the member rows; other rows are ignored entirely. Every
function is pure and jittable/vmappable (``card``, ``n`` and the factors
static).

Bandwidths follow statsmodels' ``KDEMultivariate(bw='normal_reference')``,
which BOHB's reference implementation (hpbandster) fits: ``1.06 · std ·
n^(−1/(4 + D))`` per coordinate (the std of the integer codes for
categorical ones), clipped below by ``min_bandwidth``. Unlike hpbandster
(which scales only continuous bandwidths when sampling), ``sample`` widens
every kernel by ``factor``, as the paper states.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm


def _kinds(card: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static ``(continuous bool[D], categorical bool[D], c float32[D])``; ``c`` is ``card`` with 0/1 raised to 1."""
    card = np.asarray(card, np.int32)
    return card == 0, card >= 2, np.maximum(card, 1).astype(np.float32)


def bandwidths(points: jax.Array, mask: jax.Array, card: np.ndarray, min_bandwidth: float = 1e-3) -> jax.Array:
    """``float32[D]``: normal-reference bandwidths of the masked rows of ``points`` (``float32[N, D]``).

    ``1.06 · std · n^(−1/(4 + D))`` with ``n = sum(mask)`` and ``std`` the
    population std of each coordinate over the masked rows (unit: the
    coordinate's own, ``[0, 1]`` or integer codes), clipped below by
    ``min_bandwidth`` and, for a categorical coordinate of ``c`` values,
    above by ``(c − 1) / c``. With ``n <= 1`` every bandwidth is ``min_bandwidth``.
    """
    _, cat, c = _kinds(card)
    w = mask.astype(jnp.float32)[:, None]
    n = jnp.maximum(w.sum(), 1.0)
    mean = (w * points).sum(0) / n
    std = jnp.sqrt((w * (points - mean) ** 2).sum(0) / n)
    bw = jnp.maximum(1.06 * std * n ** (-1.0 / (4 + points.shape[1])), min_bandwidth)
    return jnp.where(cat, jnp.minimum(bw, (c - 1) / c), bw)


def log_density(x: jax.Array, points: jax.Array, mask: jax.Array, bw: jax.Array, card: np.ndarray) -> jax.Array:
    """``float32[M]``: log-density of the KDE of the masked rows of ``points`` at ``x`` (``float32[M, D]``).

    Density w.r.t. Lebesgue measure on continuous coordinates and counting
    measure on categorical ones; ``bw`` is ``float32[D]``. ``-inf`` when
    ``mask`` is empty.
    """
    cont, cat, c = _kinds(card)
    xi, p = x[:, None, :], points[None, :, :]  # [M, 1, D], [1, N, D]
    # continuous: truncated Gaussian, renormalised by its mass on [0, 1]
    mass = norm.cdf((1.0 - points) / bw) - norm.cdf(-points / bw)
    log_cont = norm.logpdf(xi, p, bw) - jnp.log(jnp.maximum(mass, 1e-30))
    # categorical: Aitchison–Aitken
    same = jnp.round(xi) == jnp.round(p)
    log_cat = jnp.where(same, jnp.log1p(-bw), jnp.log(bw / jnp.maximum(c - 1, 1)))
    log_k = jnp.where(cont, log_cont, jnp.where(cat, log_cat, 0.0)).sum(-1)  # [M, N]
    n = jnp.maximum(mask.sum(), 1)
    return logsumexp(jnp.where(mask, log_k, -jnp.inf), axis=1) - jnp.log(n)


def sample(
    key: jax.Array, n: int, points: jax.Array, mask: jax.Array, bw: jax.Array, card: np.ndarray, factor: float = 3.0
) -> jax.Array:
    """``float32[n, D]``: BOHB's proposal draws from the KDE of the masked rows, kernels widened by ``factor``.

    Each draw picks a masked row uniformly, then per coordinate: continuous,
    a normal of std ``factor · bw[d]`` centred on the row's value, truncated
    to ``[0, 1]``; categorical, the row's code with probability ``1 − b``,
    else a uniform code of ``0 .. c−1`` (``b = clip(factor · bw[d], 0, 1)``);
    constant, 0. ``n`` is static; ``mask`` must have a member.
    """
    cont, cat, c = _kinds(card)
    k_row, k_norm, k_flip, k_code = jax.random.split(key, 4)
    rows = jax.random.categorical(k_row, jnp.where(mask, 0.0, -jnp.inf), shape=(n,))
    m = points[rows]  # [n, D]
    s = jnp.maximum(factor * bw, 1e-12)
    z = jax.random.truncated_normal(k_norm, -m / s, (1.0 - m) / s, m.shape)
    x_cont = jnp.clip(m + s * z, 0.0, 1.0)
    flip = jax.random.uniform(k_flip, m.shape) < jnp.clip(factor * bw, 0.0, 1.0)
    code = jnp.minimum(jnp.floor(jax.random.uniform(k_code, m.shape) * c), c - 1)
    x_cat = jnp.where(flip, code, jnp.round(m))
    return jnp.where(cont, x_cont, jnp.where(cat, x_cat, 0.0)).astype(jnp.float32)


def propose(
    key: jax.Array,
    n_samples: int,
    points: jax.Array,
    mask_good: jax.Array,
    mask_bad: jax.Array,
    card: np.ndarray,
    factor: float = 3.0,
    min_bandwidth: float = 1e-3,
) -> tuple[jax.Array, jax.Array]:
    """``(best float32[D], score float32)``: BOHB's model-based proposal.

    Fits ``bandwidths`` on the good and the bad rows, draws ``n_samples``
    (static) candidates from the good KDE widened by ``factor`` (``sample``)
    and returns the one maximising ``log l(x) − log g(x)`` under the
    unwidened KDEs, with that score (nats).
    """
    bw_good = bandwidths(points, mask_good, card, min_bandwidth)
    bw_bad = bandwidths(points, mask_bad, card, min_bandwidth)
    cands = sample(key, n_samples, points, mask_good, bw_good, card, factor)
    score = log_density(cands, points, mask_good, bw_good, card) - log_density(cands, points, mask_bad, bw_bad, card)
    i = jnp.argmax(score)
    return cands[i], score[i]


def split_good_bad(
    values: jax.Array, mask: jax.Array, gamma: float = 0.15, *, n_min: int
) -> tuple[jax.Array, jax.Array]:
    """``(mask_good bool[N], mask_bad bool[N])``: BOHB's good and bad sets among the masked rows.

    ``values: float32[N]`` are maximised (-inf for failures); with ``n =
    sum(mask)`` (may be traced), the good set is the ``max(n_min, ceil(γ n))``
    best masked rows and the bad set the ``max(n_min, n − n_good)`` worst; they
    overlap when ``n < 2 · n_min``. Ties keep row order (earlier = better).
    ``gamma`` and ``n_min`` (BOHB: ``D + 1``) are static.
    """
    size = values.shape[0]
    n = mask.sum()
    # ceil(γ i) on the host in double precision: float32 would make 0.15 · 40 round up to 7
    n_good = jnp.asarray([max(n_min, math.ceil(gamma * i)) for i in range(size + 1)], jnp.int32)[n]
    n_bad = jnp.maximum(n_min, n - n_good)
    order = jnp.lexsort((-values, ~mask))  # masked rows first, best first; stable
    rank = jnp.zeros(size, jnp.int32).at[order].set(jnp.arange(size, dtype=jnp.int32))
    return mask & (rank < n_good), mask & (rank >= n - n_bad)
