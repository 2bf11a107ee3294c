"""Per-space feature maps for LaNAS's linear regressors, with their continuous relaxation.

``feature_map(space)`` returns a ``FeatureMap``: ``encode(arch) -> float[dim]``
(jittable, vmappable) plus what hit-and-run needs to move in the continuous
relaxation of the encoded space and to round a relaxed point back to an
architecture. Every coordinate of the relaxation lies in ``[0, 1]``;
coordinates of one *block* (a one-hot group) keep a fixed sum.

| family | features | dim |
|---|---|---|
| ``nb201`` | one-hot op per edge | 6 · 5 = 30 |
| ``convnet``, ``convnet-small`` | depth / max depth; per layer channels / max channels and | 1 + 2 · max depth |
|  | kernel / max kernel (0 past the depth) |  |
| ``nbgraph``, ``nbgraph-proteins`` | one-hot input per node (node ``i`` has ``i + 1`` | 10 + 4 · ops |
|  | choices), one-hot op per node |  |
| ``darts`` | one-hot edges: per cell, node, input and op (not ``none``); two per node | 2 · 14 · 7 = 196 |
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import Space

FAMILIES = ("nb201", "convnet", "convnet-small", "nbgraph", "nbgraph-proteins", "darts")


class FeatureMap(NamedTuple):
    """Features of one space and their continuous relaxation.

    ``block``: ``int[dim]`` block id of each coordinate (-1 = a free
    coordinate in ``[0, 1]``); ``block_sum``: ``float[n_blocks]`` the sum each
    block keeps. ``decode(key, x)`` rounds a relaxed point ``float[dim]`` to an
    architecture at random (it may be invalid; check ``space.is_valid``).
    """

    dim: int
    encode: Callable
    block: np.ndarray
    block_sum: np.ndarray
    decode: Callable


def _categorical(key, w, valid):
    """Index drawn with probability proportional to ``w`` over ``valid`` entries (uniform if all zero)."""
    w = jnp.where(valid, jnp.maximum(w, 0.0), 0.0)
    w = jnp.where(w.sum() > 0, w, valid.astype(w.dtype))
    return jax.random.categorical(key, jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf))


def _stochastic_round(key, x, n):
    """Round fractional indices ``x`` to integers in ``[0, n)`` up with probability ``frac(x)``."""
    lo = jnp.floor(x)
    up = jax.random.uniform(key, x.shape, x.dtype) < (x - lo)
    return jnp.clip(lo + up, 0, n - 1).astype(jnp.int32)


# ----- NB201 ------------------------------------------------------------------------
def _nb201(space) -> FeatureMap:
    n_edges, n_ops = space.template().shape[0], len(space.ops)

    def encode(arch):
        return jax.nn.one_hot(jnp.asarray(arch, jnp.int32), n_ops, dtype=jnp.result_type(float)).reshape(-1)

    def decode(key, x):
        w = x.reshape(n_edges, n_ops)
        keys = jax.random.split(key, n_edges)
        ops = jax.vmap(_categorical)(keys, w, jnp.ones_like(w, bool))
        return ops.astype(jnp.int8)

    block = np.repeat(np.arange(n_edges), n_ops)
    return FeatureMap(n_edges * n_ops, encode, block, np.ones(n_edges), decode)


# ----- ConvNet --------------------------------------------------------------------------
def _convnet(space) -> FeatureMap:
    D = space.max_depth
    ch = np.asarray(space.channels, np.float64)
    kn = np.asarray(space.kernels, np.float64)
    ch_scale, k_scale = ch / ch.max(), kn / kn.max()

    def encode(arch):
        a = jnp.asarray(arch).astype(jnp.int32)
        d, c, k = a[0], a[1::2], a[2::2]
        live = jnp.arange(D) < d
        cf = jnp.where(live, jnp.asarray(ch_scale)[c], 0.0)
        kf = jnp.where(live, jnp.asarray(k_scale)[k], 0.0)
        layers = jnp.stack([cf, kf], axis=-1).reshape(-1)
        return jnp.concatenate([(d / D)[None], layers]).astype(jnp.result_type(float))

    def decode(key, x):
        kd, kc, kk = jax.random.split(key, 3)
        d = _stochastic_round(kd, x[:1] * D - space.min_depth, D - space.min_depth + 1)[0] + space.min_depth
        # fractional position of each layer's value among the sorted choices
        c = _stochastic_round(kc, jnp.interp(x[1::2], jnp.asarray(ch_scale), jnp.arange(len(ch))), len(ch))
        k = _stochastic_round(kk, jnp.interp(x[2::2], jnp.asarray(k_scale), jnp.arange(len(kn))), len(kn))
        live = jnp.arange(D) < d
        return space._pack(d, jnp.where(live, c, 0), jnp.where(live, k, 0))

    dim = 1 + 2 * D
    return FeatureMap(dim, encode, np.full(dim, -1), np.zeros(0), decode)


# ----- NAS-Bench-Graph --------------------------------------------------------------------------
def _nbgraph(space) -> FeatureMap:
    n_nodes, n_ops = 4, len(space.ops)
    link_off = np.array([0, 1, 3, 6])  # node i's input one-hot starts here (i + 1 choices)
    n_link = 10

    def encode(arch):
        a = jnp.asarray(arch).astype(jnp.int32)
        dt = jnp.result_type(float)
        link = jnp.zeros(n_link, dt).at[jnp.asarray(link_off) + a[:n_nodes]].set(1.0)
        ops = jax.nn.one_hot(a[n_nodes:], n_ops, dtype=dt).reshape(-1)
        return jnp.concatenate([link, ops])

    def decode(key, x):
        k_link, k_ops = jax.random.split(key)
        pos = np.arange(n_nodes)
        idx = np.minimum(link_off[:, None] + pos[None, :], n_link - 1)
        w = x[:n_link][idx]  # [node, choice], choices past i masked below
        valid = jnp.asarray(pos[None, :] <= pos[:, None])
        link = jax.vmap(_categorical)(jax.random.split(k_link, n_nodes), w, valid)
        wo = x[n_link:].reshape(n_nodes, n_ops)
        ops = jax.vmap(_categorical)(jax.random.split(k_ops, n_nodes), wo, jnp.ones_like(wo, bool))
        return space.canonicalize(jnp.concatenate([link, ops]).astype(jnp.int8))

    nodes = np.arange(n_nodes)
    block = np.concatenate([np.repeat(nodes, nodes + 1), n_nodes + np.repeat(nodes, n_ops)])
    return FeatureMap(n_link + n_nodes * n_ops, encode, block, np.ones(2 * n_nodes), decode)


# ----- DARTS -------------------------------------------------------------------------------
def _darts(space) -> FeatureMap:
    from jnas.spaces.darts import N_CELLS, N_NODES, N_OPS

    n_real = N_OPS - 1  # 'none' is not a member
    # column of (cell, node, input j, op) in the feature vector
    starts = np.concatenate([[0], np.cumsum((np.arange(N_NODES) + 2) * n_real)])[:N_NODES]
    per_cell = int(((np.arange(N_NODES) + 2) * n_real).sum())
    edge_node = np.repeat(np.arange(N_NODES), 2)
    max_in = N_NODES + 1

    def encode(arch):
        a = jnp.asarray(arch).astype(jnp.int32)
        col = (jnp.arange(N_CELLS)[:, None] * per_cell + jnp.asarray(starts)[edge_node][None, :]
               + a[..., 0] * n_real + a[..., 1] - 1)
        return jnp.zeros(N_CELLS * per_cell).at[col.reshape(-1)].set(1.0).astype(jnp.result_type(float))

    def decode(key, x):
        inp, op = [], []
        keys = jax.random.split(key, 2 * N_CELLS * N_NODES).reshape(N_CELLS, N_NODES, 2)
        for c in range(N_CELLS):
            for i in range(N_NODES):
                n_in = i + 2
                s = c * per_cell + starts[i]
                w = jnp.zeros((max_in, n_real)).at[:n_in].set(x[s : s + n_in * n_real].reshape(n_in, n_real))
                ok = jnp.asarray(np.arange(max_in) < n_in)[:, None] & jnp.ones((1, n_real), bool)
                first = _categorical(keys[c, i, 0], w.reshape(-1), ok.reshape(-1))
                ok2 = ok & (jnp.arange(max_in)[:, None] != first // n_real)
                second = _categorical(keys[c, i, 1], w.reshape(-1), ok2.reshape(-1))
                pair = jnp.stack([first, second])
                inp.append(pair // n_real)
                op.append(pair % n_real + 1)
        arch = jnp.stack([jnp.stack(inp).reshape(N_CELLS, -1), jnp.stack(op).reshape(N_CELLS, -1)], axis=-1)
        return space.canonical(arch.astype(jnp.int8))

    block = np.concatenate(
        [c * N_NODES + np.repeat(np.arange(N_NODES), (np.arange(N_NODES) + 2) * n_real) for c in range(N_CELLS)]
    )
    return FeatureMap(N_CELLS * per_cell, encode, block, np.full(N_CELLS * N_NODES, 2.0), decode)


_BUILDERS = {
    "nb201": _nb201,
    "convnet": _convnet,
    "convnet-small": _convnet,
    "nbgraph": _nbgraph,
    "nbgraph-proteins": _nbgraph,
    "darts": _darts,
}


@functools.cache
def feature_map(space: Space) -> FeatureMap:
    """The ``FeatureMap`` of ``space`` (dispatch on ``space.name``)."""
    if space.name not in _BUILDERS:
        raise JnasError(f"space: got {space.name!r}, expected one with a LaNAS feature map: {', '.join(FAMILIES)}")
    return _BUILDERS[space.name](space)


@functools.cache
def space_features(space: Space) -> np.ndarray:
    """``float32[size, dim]``: the features of every architecture of an enumerable space, in index order."""
    fm = feature_map(space)
    with jax.ensure_compile_time_eval():
        return np.asarray(jax.jit(jax.vmap(fm.encode))(space.enumerate()), np.float32)
