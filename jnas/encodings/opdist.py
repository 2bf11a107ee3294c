"""ANASOD operation-distribution encoding (Wan et al.).

A cell with ``N`` op slots and ``k`` candidate ops is summarised by how many
slots hold each op: the count vector ``n`` (``Σ n = N``) or the simplex point
``p = n / N``. Many architectures share one encoding; ``decode`` samples them.
Encodings live on the regular grid ``{n ∈ ℕ^k : Σ n = N}``; ``round_to_grid``
snaps any simplex point onto it (Bomze, Gollowitz & Yıldırım 2014) and
``grid_neighbours`` lists the adjacent grid vertices (used by ANASOD-LS).

Spaces with op slots (``Space.op_slot_layout``): ``nb201`` (6 edges, one
cell, k = 5 ops incl. ``none``; ``nb201-3``: k = 3), ``darts`` (8 edges per
cell, normal and reduce counted separately, k = 7: no member holds
``none``), ``nbgraph`` (4 nodes). ``ops(space)`` names the entries. All
array functions are jittable (``space`` static) and vmappable.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jnas.encodings import _layout
from jnas.errors import JnasError


def _slot_space(space):
    return _layout.require(_layout.resolve(space), "op_slot_layout", "op slots (the operation-distribution encoding)")


def ops(space) -> tuple[str, ...]:
    """The ``k`` ops an encoding counts, in order (DARTS: all but ``none``)."""
    return _layout.slot_ops(_slot_space(space))


def n_ops(space) -> int:
    """Number of candidate ops ``k`` of the encoding of ``space``."""
    return len(ops(space))


def n_slots(space) -> int:
    """Number of op slots ``N`` per cell of ``space``."""
    return _layout.slots_per_cell(_slot_space(space))


def counts(arch, space) -> jax.Array:
    """How many op slots of ``arch`` hold each op.

    Returns ``int32[k]`` (``int32[2, k]`` for ``darts``: normal, reduce), in
    the order of ``ops(space)``; for member architectures each cell's counts
    sum to ``n_slots(space)``.
    """
    space = _slot_space(space)
    return _counts(_layout.check_arch(space, arch), space)


def distribution(arch, space) -> jax.Array:
    """The normalised ANASOD encoding: ``counts(arch, space) / N`` (float32, sums to 1 per cell)."""
    return counts(arch, space).astype(jnp.float32) / n_slots(space)


@functools.partial(jax.jit, static_argnums=1)
def _counts(arch, space) -> jax.Array:
    slots = _layout.op_slots(space, arch)
    ids = jnp.asarray(_layout.slot_op_ids(space))
    c = (slots[..., :, None] == ids).astype(jnp.int32).sum(axis=-2)
    return c[0] if _layout.n_cells(space) == 1 else c


def _concrete(x):
    """``x`` as a numpy array when it is a concrete value, else ``None`` (traced)."""
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def round_to_grid(p, n) -> jax.Array:
    """Closest point of the grid ``{m ∈ ℕ^k : Σ m = n}`` to ``n · p``.

    ``p``: ``float[..., k]`` nonnegative weights with a positive sum, normalised
    here to the simplex (so both ``p̃`` and the unnormalised ``N p̃`` work).
    ``n``: total count ``N`` (int). Returns ``int32[..., k]`` summing to ``n``.

    Rule: take ``floor(n p)``; the deficit ``g = n - Σ floor`` lies in
    ``[0, k - 1]``; add 1 to the ``g`` entries with the largest fractional
    parts (ties: lower index first). Bomze et al. show this is a closest grid
    point in every ℓ_q norm, q ≥ 1.
    """
    p = jnp.asarray(p, jnp.float32)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise JnasError(f"p: got shape {p.shape}, expected float[..., k] with k >= 1")
    n_host = _concrete(n)
    if n_host is not None and (n_host.ndim != 0 or not np.issubdtype(n_host.dtype, np.integer) or n_host < 0):
        raise JnasError(f"n: got {n!r}, expected a nonnegative integer grid size")
    host = _concrete(p)
    if host is not None and (not np.all(np.isfinite(host)) or np.any(host < 0) or np.any(host.sum(-1) <= 0)):
        raise JnasError("p: expected finite nonnegative weights with a positive sum")
    return _round_to_grid(p, jnp.asarray(n, jnp.int32))


@jax.jit
def _round_to_grid(p, n) -> jax.Array:
    m = n * p / p.sum(axis=-1, keepdims=True)
    base = jnp.floor(m)
    frac = m - base
    deficit = n - base.sum(axis=-1, keepdims=True).astype(jnp.int32)
    rank = _descending_rank(frac)
    return base.astype(jnp.int32) + (rank < deficit).astype(jnp.int32)


def _descending_rank(x) -> jax.Array:
    """``int32[..., k]``: position of each entry when ``x`` is sorted descending, ties by lower index first.

    For small ``k`` by counting the entries that come before (``k²`` comparisons:
    10x faster than a double argsort on 100,000 × 5 on CPU), else by argsort.
    """
    k = x.shape[-1]
    if k > 16:
        return jnp.argsort(jnp.argsort(-x, axis=-1, stable=True), axis=-1, stable=True).astype(jnp.int32)
    xi, xj = x[..., :, None], x[..., None, :]
    before = (xj > xi) | ((xj == xi) & (np.arange(k)[None, :] < np.arange(k)[:, None]))
    return before.sum(-1).astype(jnp.int32)


def _moves(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Source and destination coordinate of each of the ``k(k-1)`` unit moves."""
    src, dst = np.nonzero(~np.eye(k, dtype=bool))
    return src, dst


def grid_neighbours(n) -> tuple[jax.Array, jax.Array]:
    """Grid vertices one unit move away from the count vector ``n`` (``int[k]``).

    Returns ``(neighbours int32[k(k-1), k], mask bool[k(k-1)])``: row ``r``
    moves one unit from coordinate ``src`` to ``dst`` (pairs ``src != dst`` in
    row-major order); ``mask`` is False where ``n[src] == 0`` (the move would go
    negative). Every neighbour keeps the total ``Σ n``.
    """
    n = jnp.asarray(n)
    if n.ndim != 1 or not jnp.issubdtype(n.dtype, jnp.integer):
        raise JnasError(f"n: got {n.dtype}{list(n.shape)}, expected an integer count vector int[k]")
    return _grid_neighbours(n.astype(jnp.int32))


@jax.jit
def _grid_neighbours(n) -> tuple[jax.Array, jax.Array]:
    src, dst = _moves(n.shape[0])
    rows = np.arange(src.shape[0])
    nbrs = jnp.tile(n, (src.shape[0], 1)).at[rows, src].add(-1).at[rows, dst].add(1)
    return nbrs, n[src] > 0


def _per_cell(x, space, what: str) -> jax.Array:
    """``x`` (``[k]`` or ``[cells, k]``) broadcast to ``[cells, k]``, shape-checked."""
    cells, k = _layout.n_cells(space), n_ops(space)
    x = jnp.asarray(x)
    if x.shape not in ((k,), (cells, k)):
        shapes = f"[{k}]" + (f" or [{cells}, {k}]" if cells > 1 else "")
        names = ", ".join(ops(space))
        raise JnasError(f"{what}: got shape {list(x.shape)}, expected {shapes} (one entry per op: {names})")
    return jnp.broadcast_to(x, (cells, k))


def _shuffled_multiset(key, c, n: int) -> jax.Array:
    """A uniformly random arrangement of the multiset with counts ``c`` (``int[k]``, Σ = n)."""
    ends = jnp.cumsum(c)
    # position t of the sorted multiset holds the first op whose running total exceeds t
    sorted_ops = jnp.searchsorted(ends, jnp.arange(n), side="right")
    return jax.random.permutation(key, jnp.minimum(sorted_ops, c.shape[0] - 1))


def decode(key, counts_or_p, space):
    """Sample one architecture of ``space`` whose ops follow an ANASOD encoding.

    ``counts_or_p``: either an integer count vector (``int[k]``; for ``darts``
    also ``int[2, k]`` per cell) whose entries sum to ``n_slots(space)`` —
    the ops are then exactly that multiset, in uniformly random slot order — or
    a float probability vector (``float[k]`` / ``float[2, k]``), each slot drawn
    i.i.d. from it. The dtype decides which. Wiring (where a space has any,
    e.g. DARTS edge inputs, NAS-Bench-Graph links) comes from
    ``space.sample``. A ``[k]`` vector applies to every cell.
    """
    space = _slot_space(space)
    x = _per_cell(counts_or_p, space, "counts_or_p")
    n = n_slots(space)
    host = _concrete(x)
    if host is not None and jnp.issubdtype(x.dtype, jnp.integer):
        if np.any(host < 0) or np.any(host.sum(-1) != n):
            raise JnasError(f"counts_or_p: got counts {host.tolist()}, expected nonnegative counts summing to {n}")
    elif host is not None and (not np.all(np.isfinite(host)) or np.any(host < 0) or np.any(host.sum(-1) <= 0)):
        raise JnasError(f"counts_or_p: got {host.tolist()}, expected nonnegative probabilities with a positive sum")
    return _decode(key, x, space)


@functools.partial(jax.jit, static_argnums=2)
def _decode(key, x, space):
    cells, n = x.shape[0], n_slots(space)
    k_wire, k_ops = jax.random.split(key)
    cell_keys = jax.random.split(k_ops, cells)
    if jnp.issubdtype(x.dtype, jnp.integer):
        picks = jax.vmap(lambda kk, c: _shuffled_multiset(kk, c, n))(cell_keys, x.astype(jnp.int32))
    else:
        logits = jnp.log(jnp.clip(x.astype(jnp.float32), 0.0, None))
        picks = jax.vmap(lambda kk, lg: jax.random.categorical(kk, lg, shape=(n,)))(cell_keys, logits)
    op_ids = jnp.asarray(_layout.slot_op_ids(space))[picks]
    base = space.sample(k_wire) if _layout.has_wiring(space) else space.template()
    return _layout.with_op_slots(space, base, op_ids)


# ----- distributions on the simplex (what ANASOD's searches draw encodings from) ------------------


def _gamma_at_least_one(key, alpha, shape) -> jax.Array:
    """Gamma(α) draws for ``α >= 1`` by Marsaglia & Tsang (2000), exact, without a per-draw loop.

    Each round proposes ``x ~ N(0, 1)``, ``v = (1 + c x)³`` and accepts ``d v``
    when ``log u < x²/2 + d - d v + d log v`` (``d = α - 1/3``,
    ``c = 1/√(9d)``); at ``α >= 1`` at least 95 % of proposals are accepted.
    After one full round only the rejected entries are redrawn, compacted into
    a buffer an eighth the size, until none is left. ``jax.random.gamma``
    samples each entry with its own rejection loop: 8x slower on CPU at the
    100,000 × 5 draws an ANASOD-BO step makes.
    """
    d = alpha - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)

    def propose(k, dd, cc):
        kx, ku = jax.random.split(k)
        x = jax.random.normal(kx, dd.shape, dd.dtype)
        u = jax.random.uniform(ku, dd.shape, dd.dtype)
        v = (1.0 + cc * x) ** 3
        safe = jnp.where(v > 0, v, 1.0)
        ok = (v > 0) & (jnp.log(u) < 0.5 * x * x + dd - dd * safe + dd * jnp.log(safe))
        return dd * safe, ok

    d, c = jnp.broadcast_to(d, shape).reshape(-1), jnp.broadcast_to(c, shape).reshape(-1)
    k0, key = jax.random.split(key)
    g, ok = propose(k0, d, c)
    size = g.shape[0]
    buf = max(1, -(-size // 8))

    def body(carry):
        g, ok, key = carry
        key, sub = jax.random.split(key)
        (idx,) = jnp.nonzero(~ok, size=buf, fill_value=size)
        live = idx < size
        at = jnp.minimum(idx, size - 1)
        g2, ok2 = propose(sub, d[at], c[at])
        take = live & ok2
        return g.at[jnp.where(take, idx, size)].set(g2, mode="drop"), ok.at[jnp.where(take, idx, size)].set(
            True, mode="drop"), key

    g, _, _ = jax.lax.while_loop(lambda cr: ~jnp.all(cr[1]), body, (g, ok, key))
    return g.reshape(shape)


def dirichlet(key, alpha, shape=()) -> jax.Array:
    """Draws from ``Dir(alpha)`` with every ``alpha >= 1`` (the only ones ANASOD's searches use).

    ``alpha``: ``float[..., k]``; ``shape``: batch shape broadcast with
    ``alpha.shape[:-1]``. Returns ``float32[*shape, k]`` on the simplex (the
    normalised Gamma(α_i) draws). Same distribution as ``jax.random.dirichlet``,
    a different stream.
    """
    alpha = jnp.asarray(alpha, jnp.float32)
    host = _concrete(alpha)
    if alpha.ndim < 1 or (host is not None and not np.all(host >= 1)):
        raise JnasError(f"alpha: got {host.tolist() if host is not None else alpha.shape}, expected float[..., k] "
                        "concentrations >= 1")
    full = jnp.broadcast_shapes(tuple(shape), alpha.shape[:-1]) + alpha.shape[-1:]
    g = _gamma_at_least_one(key, jnp.broadcast_to(alpha, full), full)
    return g / g.sum(axis=-1, keepdims=True)


def biased_concentration(p_star, beta) -> jax.Array:
    """ANASOD's Dirichlet concentration around the encoding ``p_star``: ``α_i = k β p*_i + 1`` (Eq. 3).

    ``p_star``: ``float[..., k]`` on the simplex; ``beta >= 0`` (0: the uniform
    ``Dir(1, …, 1)``). The mode of ``Dir(α)`` is ``p_star`` for ``β > 0``.
    """
    p_star = jnp.asarray(p_star, jnp.float32)
    return p_star.shape[-1] * jnp.asarray(beta, jnp.float32) * p_star + 1.0


def grid_points(n: int, k: int) -> np.ndarray:
    """Every count vector of the grid ``{m ∈ ℕ^k : Σ m = n}``, ``int32[C(n + k - 1, k - 1), k]``,
    in ascending lexicographic order."""
    if k == 1:
        return np.array([[n]], np.int32)
    rows = [np.concatenate([np.full((len(rest), 1), first, np.int32), rest], axis=1)
            for first in range(n + 1) for rest in [grid_points(n - first, k - 1)]]
    return np.concatenate(rows).astype(np.int32)
