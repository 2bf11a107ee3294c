"""Multi-objective metrics: Pareto dominance, non-dominated sorting, fronts and hypervolume.

Every objective is **maximised**: negate lower-is-better metrics (latency,
energy, parameters) before calling. Points are ``Y float[n, m]`` (``n``
points, ``m`` objectives), with an optional ``mask bool[n]``. A row is
*valid* when its mask is True and all its entries are finite; invalid rows
are never on a front, never dominate and add no volume.

Everything is pure ``jax.numpy`` with shapes fixed by the inputs (masks,
never boolean indexing), so it runs under ``jax.jit``, ``jax.vmap`` over a
leading seeds axis and inside ``lax.scan`` (e.g. an NSGA-II strategy).
Shape and argument errors are raised while tracing, as ``JnasError``.

Normalised hypervolume
----------------------
To compare searches on a tabular benchmark, objectives are normalised by the
complete table's range: ``lo`` is the table's worst value and ``hi`` its best
value of each (maximised) objective, so the table spans ``[0, 1]^m``. The
reference point is the origin of that space, ``REFERENCE = 0.0`` (the table's
worst corner): a normalised hypervolume lies in ``[0, 1]`` for points drawn
from the table, and ``hypervolume_regret`` is the gap to the table's own
Pareto front.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jnas.errors import JnasError

REFERENCE = 0.0  # reference point of normalised hypervolume: the origin, i.e. the table's worst corner
CHUNK = 512  # candidate rows per block in the pairwise front check (memory O(CHUNK * n))


# ----------------------------------------------------------------------------- argument checks


def _float(x) -> jax.Array:
    """``x`` as a JAX array, integers and bools converted to the default float dtype."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _points(Y, mask, name: str = "Y") -> tuple[jax.Array, jax.Array]:
    """``(Y float[n, m], valid bool[n])``: the checked points and which rows count."""
    Y = _float(Y)
    if Y.ndim != 2 or Y.shape[1] < 1:
        raise JnasError(f"{name}: got shape {Y.shape}, expected a 2-D array float[n, m] with m >= 1 objectives")
    valid = jnp.all(jnp.isfinite(Y), axis=1)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != Y.shape[:1]:
            raise JnasError(f"mask: got shape {mask.shape}, expected ({Y.shape[0]},) (one flag per row of {name})")
        valid = valid & mask.astype(bool)
    return Y, valid


def _per_objective(name: str, x, m: int, dtype) -> jax.Array:
    """``x`` as ``float[m]``: one value per objective, or a scalar broadcast to all of them."""
    x = jnp.asarray(x, dtype)
    if x.shape not in ((), (m,)):
        raise JnasError(f"{name}: got shape {x.shape}, expected ({m},) (one value per objective) or a scalar")
    return jnp.broadcast_to(x, (m,))


def _hv_objectives(Y: jax.Array) -> int:
    m = Y.shape[1]
    if m not in (2, 3):
        raise JnasError(f"Y: got {m} objectives (shape {Y.shape}), expected 2 or 3 for hypervolume")
    return m


# ----------------------------------------------------------------------------- dominance and fronts


@jax.jit
def dominates(a, b) -> jax.Array:
    """Whether ``a`` Pareto-dominates ``b`` (maximisation): ``a >= b`` everywhere and ``a > b`` somewhere.

    ``a``, ``b``: ``float[..., m]``, broadcast against each other; returns
    ``bool[...]`` (a scalar for two single points). Identical points do not
    dominate each other; a NaN entry never dominates nor is dominated.
    """
    a, b = _float(a), _float(b)
    if a.ndim < 1 or b.ndim < 1 or a.shape[-1] != b.shape[-1]:
        raise JnasError(f"a, b: got shapes {a.shape} and {b.shape}, expected points with the same number of objectives")
    return jnp.all(a >= b, axis=-1) & jnp.any(a > b, axis=-1)


@jax.jit
def domination_matrix(Y, mask=None) -> jax.Array:
    """``bool[n, n]`` with ``D[i, j]`` = valid row ``i`` dominates valid row ``j``.

    Invalid rows (masked out or non-finite) dominate nothing and are dominated
    by nothing. Memory ``O(n^2)``.
    """
    Y, valid = _points(Y, mask)
    return dominates(Y[:, None, :], Y[None, :, :]) & valid[:, None] & valid[None, :]


@jax.jit
def non_dominated_sort(Y, mask=None) -> jax.Array:
    """Front rank of every point, ``int32[n]``: 0 = non-dominated, 1 = non-dominated once front 0 is removed, ...

    Invalid rows (masked out or non-finite) get rank ``n``, larger than any
    real rank. Identical points share a rank. Peels fronts off the
    :func:`domination_matrix` in a ``lax.while_loop`` (one iteration per
    front): ``O(n^2)`` memory, meant for populations and search histories of
    up to a few thousand points; use :func:`pareto_mask` for a whole table.
    """
    Y, valid = _points(Y, mask)
    n = Y.shape[0]
    D = domination_matrix(Y, valid)

    def peel(state):
        rank, remaining, k = state
        dominated = jnp.any(D & remaining[:, None], axis=0)
        front = remaining & ~dominated
        return jnp.where(front, k, rank), remaining & ~front, k + 1

    rank0 = jnp.full((n,), n, jnp.int32)
    rank, _, _ = lax.while_loop(lambda s: jnp.any(s[1]), peel, (rank0, valid, jnp.int32(0)))
    return rank


def _front_2d(Y: jax.Array, valid: jax.Array) -> jax.Array:
    """Non-dominated valid points of ``Y float[n, 2]`` by one sort: ``O(n log n)``."""
    n = Y.shape[0]
    low = jnp.asarray(-jnp.inf, Y.dtype)  # invalid rows sort last and never raise the running max
    y0 = jnp.where(valid, Y[:, 0], low)
    y1 = jnp.where(valid, Y[:, 1], low)
    order = jnp.lexsort((-y1, -y0))  # objective 0 descending, ties by objective 1 descending
    s0, s1 = y0[order], y1[order]
    # a point is dominated iff an earlier point (higher y0, or equal y0 and higher y1) has y1 >= its y1;
    # exact duplicates are compared against the points before their whole group, so all copies are kept
    idx = jnp.arange(n)
    new = jnp.concatenate([jnp.array([True]), (s0[1:] != s0[:-1]) | (s1[1:] != s1[:-1])])
    start = lax.cummax(jnp.where(new, idx, 0), axis=0)
    before = jnp.concatenate([low[None], lax.cummax(s1, axis=0)[:-1]])
    front_sorted = (s1 > before[start]) & valid[order]
    return jnp.zeros(n, bool).at[order].set(front_sorted)


def _front_chunked(Y: jax.Array, valid: jax.Array, chunk: int) -> jax.Array:
    """Non-dominated valid points of ``Y float[n, m]``, checking ``chunk`` candidates against all rows at a time."""

    def undominated(y):
        return ~jnp.any(dominates(Y, y) & valid)

    return lax.map(undominated, Y, batch_size=min(chunk, Y.shape[0])) & valid


@jax.jit
def pareto_mask(Y, mask=None) -> jax.Array:
    """``bool[n]``: the valid points no valid point dominates (the Pareto front).

    Works on a whole benchmark table (tens of thousands of rows) without an
    ``n x n`` matrix: for ``m == 2`` by one sort (``O(n log n)``); otherwise by
    checking blocks of ``CHUNK`` rows against all rows (``O(n^2 m)`` time,
    ``O(CHUNK * n)`` memory). Identical points do not dominate each other, so
    every copy of a non-dominated point is on the front. Equals
    ``non_dominated_sort(Y, mask) == 0``.
    """
    Y, valid = _points(Y, mask)
    if Y.shape[0] == 0:
        return jnp.zeros(0, bool)
    if Y.shape[1] == 2:
        return _front_2d(Y, valid)
    return _front_chunked(Y, valid, CHUNK)


# ----------------------------------------------------------------------------- hypervolume


def _sweep_2d(x, y, w, rx, ry) -> jax.Array:
    """Area dominated by the weighted points ``(x, y)`` above ``(rx, ry)``; ``x`` sorted descending, all ``>= r``.

    Each point adds the strip between the highest ``y`` seen so far and its
    own ``y``, of width ``x - rx`` (every later point is narrower).
    """
    h = jnp.where(w, y, ry)
    seen = jnp.concatenate([ry[None], lax.cummax(h, axis=0)[:-1]])
    return jnp.sum(jnp.where(w, (x - rx) * jnp.maximum(h - seen, 0), 0))


def _clipped(Y, valid, ref) -> jax.Array:
    """Points raised to the reference point (only their part above it counts); invalid rows put on it."""
    return jnp.where(valid[:, None], jnp.maximum(Y, ref), ref)


def _hv2(Y, valid, ref) -> jax.Array:
    Yc = _clipped(Y, valid, ref)
    order = jnp.argsort(-Yc[:, 0])
    return _sweep_2d(Yc[order, 0], Yc[order, 1], valid[order], ref[0], ref[1])


def _hv3(Y, valid, ref) -> jax.Array:
    """Sum of slabs between consecutive third-objective levels; each slab's area is a 2-D sweep. ``O(n^2)``."""
    Yc = _clipped(Y, valid, ref)
    order = jnp.argsort(-Yc[:, 0])  # one sort serves every slab: a slab only masks points out
    x, y, z, w = Yc[order, 0], Yc[order, 1], Yc[order, 2], valid[order]
    levels = -jnp.sort(-z)
    heights = levels - jnp.concatenate([levels[1:], ref[2:]])

    def area(level):
        return _sweep_2d(x, y, w & (z >= level), ref[0], ref[1])

    areas = lax.map(area, levels, batch_size=min(64, Y.shape[0]))
    return jnp.sum(heights * areas)


@jax.jit
def hypervolume(Y, ref, mask=None) -> jax.Array:
    """Exact hypervolume dominated by the valid points of ``Y float[n, m]`` and bounded below by ``ref``.

    ``ref``: ``float[m]`` (or a scalar for every objective), in the units of
    ``Y``. Points not strictly above ``ref`` in every objective count only
    with their part above it (they are clipped to ``max(y, ref)``), so they
    add no volume. ``m`` must be 2 (sort and sweep, ``O(n log n)``) or 3
    (slabs along the third objective, each a 2-D sweep, ``O(n^2)``).
    Returns a scalar in the units of ``Y`` to the power ``m``; 0 for no valid point.
    """
    Y, valid = _points(Y, mask)
    m = _hv_objectives(Y)
    ref = _per_objective("ref", ref, m, Y.dtype)
    if Y.shape[0] == 0:
        return jnp.zeros((), Y.dtype)
    return _hv2(Y, valid, ref) if m == 2 else _hv3(Y, valid, ref)


@jax.jit
def normalise(Y, lo, hi) -> jax.Array:
    """``(Y - lo) / (hi - lo)`` per objective, ``float[n, m]``.

    ``lo``, ``hi``: ``float[m]`` (or scalars), usually a complete table's worst
    and best value of each maximised objective, so that the table spans
    ``[0, 1]``. An objective with ``hi == lo`` carries no information and maps to 0.
    """
    Y = _float(Y)
    if Y.ndim != 2:
        raise JnasError(f"Y: got shape {Y.shape}, expected a 2-D array float[n, m]")
    m = Y.shape[1]
    lo = _per_objective("lo", lo, m, Y.dtype)
    hi = _per_objective("hi", hi, m, Y.dtype)
    span = hi - lo
    flat = span == 0
    return jnp.where(flat, 0, (Y - lo) / jnp.where(flat, 1, span))


@jax.jit
def normalised_hypervolume(Y, lo, hi, mask=None) -> jax.Array:
    """Hypervolume of ``normalise(Y, lo, hi)`` above the origin ``REFERENCE`` (the worst corner ``lo``).

    In ``[0, 1]`` when the points lie within ``[lo, hi]`` (e.g. drawn from the
    table that gave ``lo`` and ``hi``); points beyond ``hi`` can exceed it.
    """
    Z = normalise(Y, lo, hi)
    return hypervolume(Z, jnp.full(Z.shape[1], REFERENCE, Z.dtype), mask)


@jax.jit
def hypervolume_regret(Y, true_front, lo, hi, mask=None) -> jax.Array:
    """Normalised hypervolume of ``true_front`` minus that of ``Y``: what a search's points miss.

    ``true_front``: ``float[k, m]``, e.g. the table's Pareto set (its
    dominated or non-finite rows change nothing). ``>= 0`` up to float error
    when ``Y`` comes from the same table; 0 when ``Y`` contains the front.
    """
    Y, _ = _points(Y, mask)
    F, _ = _points(true_front, None, "true_front")
    if F.shape[1] != Y.shape[1]:
        raise JnasError(f"true_front: got {F.shape[1]} objectives (shape {F.shape}), expected {Y.shape[1]} like Y")
    return normalised_hypervolume(F, lo, hi) - normalised_hypervolume(Y, lo, hi, mask)


@jax.jit
def hypervolume_trajectory(Y, lo, hi, mask=None) -> jax.Array:
    """``float[n]``: normalised hypervolume of the first ``t + 1`` points, ``t = 0 .. n-1`` (a search's anytime curve).

    Rows in evaluation order; invalid rows add nothing. Non-decreasing; the
    last entry is ``normalised_hypervolume(Y, lo, hi, mask)``. ``O(n^2)`` for
    ``m == 2`` (one sort, then a masked sweep per prefix) and ``O(n^3)`` for
    ``m == 3``: meant for search histories (up to about a thousand points
    at ``m == 2``, a few hundred at ``m == 3``).
    """
    Y, valid = _points(Y, mask)
    m = _hv_objectives(Y)
    n = Y.shape[0]
    if n == 0:
        return jnp.zeros(0, Y.dtype)
    Z = normalise(Y, lo, hi)
    ref = jnp.full((m,), REFERENCE, Z.dtype)
    idx = jnp.arange(n)
    if m == 3:
        hv = lax.map(lambda t: _hv3(Z, valid & (idx <= t), ref), idx)
    else:
        Zc = _clipped(Z, valid, ref)
        order = jnp.argsort(-Zc[:, 0])
        x, y, w, when = Zc[order, 0], Zc[order, 1], valid[order], idx[order]
        hv = lax.map(lambda t: _sweep_2d(x, y, w & (when <= t), ref[0], ref[1]), idx, batch_size=min(64, n))
    # each prefix sums its slabs/strips in a different order: rounding alone could make the curve dip by an ulp
    return lax.cummax(hv, axis=0)


__all__ = [
    "CHUNK",
    "REFERENCE",
    "dominates",
    "domination_matrix",
    "hypervolume",
    "hypervolume_regret",
    "hypervolume_trajectory",
    "non_dominated_sort",
    "normalise",
    "normalised_hypervolume",
    "pareto_mask",
]
