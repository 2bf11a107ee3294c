"""Tree math of LaNAS: a complete binary tree of linear splits over feature vectors.

Layout: a tree of height ``h`` has levels ``0 .. h-1``; the node at level
``l`` and position ``p`` (``0 <= p < 2**l``) has heap id ``2**l - 1 + p``;
its children are positions ``2p`` (left, the *good* side) and ``2p + 1``
(right). Internal nodes are levels ``0 .. h-2`` (``2**(h-1) - 1`` of them),
leaves level ``h-1``. A leaf is named by its position; the leaf's ancestor at
level ``l`` is ``pos >> (h-1-l)``.

Node ``j`` holds a ridge regressor fitted on the samples in its region,
centred there: ``f_j(x) - V_j = w_j · (x - μ_j)``, with ``V_j`` the mean value
and ``μ_j`` the mean feature vector of the region. A feature vector ``x`` goes
left iff ``w_j · x - c_j > tol`` with ``c_j = w_j · μ_j`` (Alg. 2's
constraint ``f_j(a) > V(Ω_j)``). ``tol`` is a hair above zero so that sums
rounded differently (batched or not) cannot flip a sample sitting exactly on
a degenerate split (e.g. a region whose values are all equal).

Everything here is jittable; shapes are static given the height.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.linalg import cho_solve, cholesky

#: ridge penalty relative to the mean diagonal of a node's (centred) Gram matrix
RIDGE = 1e-3
#: rows of the sample buffer per Gram accumulation step (bounds memory under vmap)
CHUNK = 128
#: consecutive space indices per block of the free-member counts
BLOCK = 128


class Splits(NamedTuple):
    """The linear splits of the internal nodes, in heap order."""

    w: jax.Array  # float[n_internal, dim]
    c: jax.Array  # float[n_internal]
    tol: jax.Array  # float[]: go left iff w·x - c > tol


def n_internal(height: int) -> int:
    return 2 ** (height - 1) - 1


def n_nodes(height: int) -> int:
    return 2**height - 1


def empty_splits(height: int, dim: int, dtype) -> Splits:
    """Untrained splits: every score is 0 > -1, so everything goes left (to leaf 0)."""
    m = n_internal(height)
    return Splits(jnp.zeros((m, dim), dtype), jnp.zeros((m,), dtype), -jnp.ones((), dtype))


def step_down(splits: Splits, level: int, pos: jax.Array, x: jax.Array) -> jax.Array:
    """Positions at ``level + 1`` of feature rows ``x[..., dim]`` sitting at ``pos`` on ``level``."""
    lo, k = 2**level - 1, 2**level
    # every node of the level scores every row (one matmul), then each row keeps its own node's score;
    # cheaper than gathering one weight vector per row
    sc = x @ splits.w[lo : lo + k].T - splits.c[lo : lo + k]
    score = jnp.sum(jnp.where(jnp.arange(k) == pos[..., None], sc, 0), axis=-1)
    return 2 * pos + (score <= splits.tol).astype(pos.dtype)


def route(splits: Splits, x: jax.Array, height: int) -> jax.Array:
    """``int32[...]`` leaf position of each feature row ``x[..., dim]``."""
    pos = jnp.zeros(x.shape[:-1], jnp.int32)
    for level in range(height - 1):
        pos = step_down(splits, level, pos, x)
    return pos


def match_depth(pos: jax.Array, leaf: jax.Array, height: int) -> jax.Array:
    """Level of the deepest common ancestor of leaves ``pos`` and ``leaf`` (``h-1`` when equal).

    A region at level ``L`` on the path to ``leaf`` holds exactly the
    architectures with ``match_depth >= L``: those satisfy the first ``L``
    constraints of the path.
    """
    diff = (pos ^ leaf).astype(jnp.int32)
    return (height - 1) - (32 - jax.lax.clz(diff))


def region_depth(per_leaf: jax.Array, leaf: jax.Array, height: int) -> jax.Array:
    """``int32[]`` deepest level ``L`` whose region on the path to ``leaf`` has a positive count.

    ``per_leaf`` is ``int[2**(h-1)]`` (e.g. unqueried architectures per
    leaf); a region's count is the sum over its leaves. -1 if all are zero.
    """
    depth = jnp.int32(-1)
    counts = per_leaf
    for level in range(height - 1, -1, -1):  # leaves first, then their parents
        here = _at(counts, leaf >> (height - 1 - level)) > 0
        depth = jnp.where((depth < 0) & here, level, depth)
        counts = counts.reshape(-1, 2).sum(-1, dtype=counts.dtype) if level else counts
    return depth


def block_counts(free: jax.Array, leaf_of: jax.Array, height: int) -> jax.Array:
    """``int32[n_leaves, n // BLOCK]``: free entries per (leaf, block of ``BLOCK`` consecutive indices).

    ``free`` and ``leaf_of`` have a length ``n`` that is a multiple of ``BLOCK``.
    """
    n = free.shape[0]
    cell = leaf_of.astype(jnp.int32) * (n // BLOCK) + jnp.arange(n) // BLOCK
    return jax.ops.segment_sum(free.astype(jnp.int32), cell, 2 ** (height - 1) * (n // BLOCK)).reshape(-1, n // BLOCK)


def recount_cell(counts: jax.Array, free: jax.Array, leaf_of: jax.Array, leaf: jax.Array, i: jax.Array) -> jax.Array:
    """``counts`` (``block_counts(free, leaf_of)`` before entry ``i`` changed) with the one cell it can
    change, (``leaf``, block of ``i``), recounted from ``free`` and ``leaf_of`` over that block alone.

    ``leaf`` is ``leaf_of[i]``; recounting rather than decrementing keeps the
    counts exact when an entry is told twice.
    """
    b = i // BLOCK
    rows = jax.lax.dynamic_slice_in_dim(leaf_of, b * BLOCK, BLOCK).astype(jnp.int32)
    here = jax.lax.dynamic_slice_in_dim(free, b * BLOCK, BLOCK) & (rows == leaf)
    cell = (jnp.arange(counts.shape[0])[:, None] == leaf) & (jnp.arange(counts.shape[1])[None, :] == b)
    return jnp.where(cell, jnp.sum(here, dtype=counts.dtype), counts)


def pick_in_region(key, counts, leaf_of, queried, leaf, depth, height) -> jax.Array:
    """Uniform random index among the unqueried entries whose leaf lies in the region of ``leaf`` at ``depth``.

    ``counts`` is ``block_counts(~queried, leaf_of)``. The region's count per
    block comes from ``counts`` (no pass over the space); one uniform ``r``
    selects the block holding the ``r``-th free member of the region, and a
    cumulative sum inside that block finds it: the ``r``-th member in index
    order, as ``jnas.spaces.base.pick_masked`` would give on the full mask,
    for the price of one block. 0 if the region has no free member.
    """
    shift = height - 1 - depth
    inside = ((jnp.arange(counts.shape[0]) ^ leaf) >> shift) == 0
    per_block = jnp.sum(jnp.where(inside[:, None], counts, 0), axis=0, dtype=jnp.int32)
    cum = jnp.cumsum(per_block)
    r = jax.random.randint(key, (), 0, jnp.maximum(cum[-1], 1))
    b = jnp.minimum(jnp.sum(cum <= r, dtype=jnp.int32), counts.shape[1] - 1)
    within = r - (_at(cum, b) - _at(per_block, b))
    rows = jax.lax.dynamic_slice_in_dim(leaf_of, b * BLOCK, BLOCK).astype(jnp.int32)
    ok = ~jax.lax.dynamic_slice_in_dim(queried, b * BLOCK, BLOCK) & (((rows ^ leaf) >> shift) == 0)
    j = jnp.minimum(jnp.sum(jnp.cumsum(ok.astype(jnp.int32)) <= within, dtype=jnp.int32), BLOCK - 1)
    return jnp.where(cum[-1] > 0, b * BLOCK + j, 0).astype(jnp.int32)


def on_path(leaf: jax.Array, height: int) -> jax.Array:
    """``bool[n_nodes]``: the nodes from the root to ``leaf`` (heap order)."""
    return jnp.concatenate([jnp.arange(2**lv) == (leaf >> (height - 1 - lv)) for lv in range(height)])


def _at(a: jax.Array, i: jax.Array) -> jax.Array:
    """``a[i]`` for a small vector ``a`` and a traced scalar ``i``, as a masked sum.

    Under ``vmap`` a scalar gather becomes a batched gather, which XLA on CPU
    runs an order of magnitude slower than this inside the search loop.
    """
    return jnp.sum(jnp.where(jnp.arange(a.shape[0]) == i, a, jnp.zeros((), a.dtype)), dtype=a.dtype)


def node_stats(leaf: jax.Array, y: jax.Array, mask: jax.Array, height: int) -> tuple[jax.Array, jax.Array]:
    """Per node (heap order) the sample count ``int32[n_nodes]`` and value sum ``float[n_nodes]``."""
    n_leaves = 2 ** (height - 1)
    cnt = jax.ops.segment_sum(mask.astype(jnp.int32), leaf, n_leaves)
    tot = jax.ops.segment_sum(jnp.where(mask, y, 0), leaf, n_leaves)
    cnts, tots = [cnt], [tot]
    for _ in range(height - 1):  # a parent holds its two children
        cnt = cnt.reshape(-1, 2).sum(-1, dtype=cnt.dtype)
        tot = tot.reshape(-1, 2).sum(-1)
        cnts.insert(0, cnt)
        tots.insert(0, tot)
    return jnp.concatenate(cnts), jnp.concatenate(tots)


def ucb_leaf(cnt: jax.Array, tot: jax.Array, cp: jax.Array, height: int) -> jax.Array:
    """Leaf reached from the root by taking, at each node, the child of larger UCB.

    ``UCB = v + 2·cp·sqrt(2·ln(n_parent) / n_child)`` with ``v`` the child's
    mean value; an unvisited child scores +inf. Ties go left (the good side).
    """
    pos = jnp.int32(0)
    for level in range(height - 1):
        lo, k = 2**level - 1, 2**level
        n_par = jnp.maximum(cnt[lo : lo + k], 1).astype(tot.dtype)[:, None]
        n = cnt[2 * lo + 1 : 2 * lo + 1 + 2 * k].reshape(k, 2).astype(tot.dtype)
        v = tot[2 * lo + 1 : 2 * lo + 1 + 2 * k].reshape(k, 2) / jnp.maximum(n, 1)
        ucb = jnp.where(n > 0, v + 2 * cp * jnp.sqrt(2 * jnp.log(n_par) / jnp.maximum(n, 1)), jnp.inf)
        right = _at((ucb[:, 0] < ucb[:, 1]).astype(jnp.int32), pos)
        pos = 2 * pos + right
    return pos


def fit(x: jax.Array, y: jax.Array, n: jax.Array, height: int, tol: jax.Array) -> tuple[Splits, jax.Array]:
    """Fit every internal node top-down on the first ``n`` rows of ``x[B, dim]``, ``y[B]``.

    Level by level: a node's region is the set of samples its ancestors'
    fresh splits send to it; the node fits ridge least squares on them
    (masked, centred, so its threshold is the region's mean value). The Gram
    matrices are accumulated over ``ceil(n / CHUNK)`` chunks, so a refit costs
    work proportional to ``n``, not to the buffer's capacity. Levels run in a
    loop over a fixed width of ``2**(h-2)`` nodes (the widest level), which
    compiles one level instead of ``h - 1``.

    Returns the splits and ``int32[B]`` leaf position of every row.
    """
    cap, dim = x.shape
    dtype = x.dtype
    tol = jnp.asarray(tol, dtype)
    if height == 1:
        return empty_splits(height, dim, dtype)._replace(tol=tol), jnp.zeros(cap, jnp.int32)
    k = 2 ** (height - 2)
    pad = -cap % CHUNK
    xp = jnp.pad(x, ((0, pad), (0, 0)))
    yp = jnp.pad(y, (0, pad))
    live = jnp.arange(cap + pad) < n
    n_chunks = (n + CHUNK - 1) // CHUNK
    eye = jnp.eye(dim, dtype=dtype)

    def level_fit(level, carry):
        splits, pos = carry
        onehot = jax.nn.one_hot(pos, k, dtype=dtype) * live[:, None]  # [B, k]
        cnt = onehot.sum(0)
        mu = (onehot.T @ xp) / jnp.maximum(cnt, 1)[:, None]  # [k, dim]
        ybar = (onehot.T @ yp) / jnp.maximum(cnt, 1)
        xc = (xp - mu[pos]) * live[:, None]
        yc = (yp - ybar[pos]) * live

        def gram(i, acc):
            g, r = acc
            m = jax.lax.dynamic_slice_in_dim(onehot, i * CHUNK, CHUNK)
            xs = jax.lax.dynamic_slice_in_dim(xc, i * CHUNK, CHUNK)
            ys = jax.lax.dynamic_slice_in_dim(yc, i * CHUNK, CHUNK)
            mx = (m[:, :, None] * xs[:, None, :]).reshape(CHUNK, k * dim)
            return g + (mx.T @ xs).reshape(k, dim, dim), r + (mx.T @ ys).reshape(k, dim)

        zero = (jnp.zeros((k, dim, dim), dtype), jnp.zeros((k, dim), dtype))
        g, r = jax.lax.fori_loop(0, n_chunks, gram, zero)
        lam = RIDGE * jnp.trace(g, axis1=1, axis2=2) / dim + jnp.finfo(dtype).tiny ** 0.5
        chol = cholesky(g + lam[:, None, None] * eye)
        w = cho_solve(chol, r)
        # rows past this level's 2**level nodes are empty (w = 0) and are overwritten by the next level
        lo = 2**level - 1
        splits = splits._replace(
            w=jax.lax.dynamic_update_slice_in_dim(splits.w, w, lo, 0),
            c=jax.lax.dynamic_update_slice_in_dim(splits.c, jnp.sum(w * mu, -1), lo, 0),
        )
        sc = xp @ w.T - jnp.sum(w * mu, -1)
        score = jnp.sum(jnp.where(jnp.arange(k) == pos[:, None], sc, 0), axis=-1)
        return splits, 2 * pos + (score <= tol).astype(jnp.int32)

    init = (empty_splits(height, dim, dtype)._replace(tol=tol), jnp.zeros(cap + pad, jnp.int32))
    splits, pos = jax.lax.fori_loop(0, height - 1, level_fit, init)
    return splits, pos[:cap]
