"""Adjacency one-hot encoding (BANANAS "adjacency encoding"): a flat 0/1 vector.

The wiring decisions (adjacency entries or chosen inputs) followed by a
one-hot op per op slot. Lengths:

- ``nb201``: fixed wiring, one-hot op per edge: 6 × 5 = 30.
- ``nb101``: of the *pruned* cell (NB101 ignores vertices on no input→output
  path), upper triangle of the 7×7 adjacency (21, row-major) + one-hot op of
  the 5 inner vertices (15) = 36; a pruned vertex gets an all-zero op block.
- ``darts``: per cell and edge, one-hot input among the 5 nodes an edge can
  read (c_{k-2}, c_{k-1}, nodes 2–4) then one-hot op: 2 × 8 × (5 + ops).
- ``nbgraph``: one-hot ``link[i]`` over 4 sources per node (16) + one-hot op
  per node (4 × ops).
- ``convnet``: one-hot layer choice (``space.ops``) per layer slot, all-zero
  for slots beyond the depth: ``max_depth × len(ops)``.

Jittable (``space`` static) and vmappable over ``arch``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jnas.encodings import _layout

_DARTS_SOURCES = 5  # the 4th intermediate node reads at most node 4
_NB101_TRIU = np.triu_indices(7, k=1)


def _flat_onehot(ids, n: int) -> jax.Array:
    return jax.nn.one_hot(jnp.asarray(ids).astype(jnp.int32), n, dtype=jnp.float32).reshape(-1)


def adjacency_onehot(space, arch) -> jax.Array:
    """``float32[d]`` adjacency one-hot encoding of one architecture (``d = len(onehot_features(space))``)."""
    space = _layout.resolve(space)
    _layout.family(space)  # raises JnasError for a non-space
    return _adjacency_onehot(space, _layout.check_arch(space, arch))


@functools.partial(jax.jit, static_argnums=0)
def _adjacency_onehot(space, arch) -> jax.Array:
    fam = _layout.family(space)
    k = len(space.ops)
    if fam == "nb201":
        return _flat_onehot(arch, k)
    if fam == "nb101":
        adj, ops = space.prune(arch)  # NB101 ignores vertices off every input->output path
        inner = jnp.asarray(ops)[1:6].astype(jnp.int32)  # PRUNED (-1) one-hots to zeros
        op_block = jax.nn.one_hot(inner, k, dtype=jnp.float32).reshape(-1)
        return jnp.concatenate([jnp.asarray(adj).astype(jnp.float32)[_NB101_TRIU], op_block])
    if fam == "darts":
        arch = jnp.asarray(arch).astype(jnp.int32)
        src = jax.nn.one_hot(arch[..., 0], _DARTS_SOURCES, dtype=jnp.float32)
        op = jax.nn.one_hot(arch[..., 1], k, dtype=jnp.float32)
        return jnp.concatenate([src, op], axis=-1).reshape(-1)
    if fam == "nbgraph":
        arch = jnp.asarray(arch)
        return jnp.concatenate([_flat_onehot(arch[:4], 4), _flat_onehot(arch[4:], k)])
    # convnet
    arch = jnp.asarray(arch).astype(jnp.int32)
    live = jnp.arange(space.max_depth) < arch[0]
    digit = arch[1::2] * len(space.kernels) + arch[2::2]
    return (jax.nn.one_hot(digit, k, dtype=jnp.float32) * live[:, None]).reshape(-1)


def onehot_features(space) -> tuple[str, ...]:
    """Human names of the entries of ``adjacency_onehot(space, ·)``, in order."""
    space = _layout.resolve(space)
    fam = _layout.family(space)
    ops = tuple(space.ops)
    if fam == "nb201":
        return tuple(f"edge{s}->{t}={o}" for s, t in space.edges for o in ops)
    if fam == "nb101":
        adj = tuple(f"adj{i}->{j}" for i, j in zip(*_NB101_TRIU))
        return adj + tuple(f"node{v}={o}" for v in range(1, 6) for o in ops)
    if fam == "darts":
        srcs = ("c_{k-2}", "c_{k-1}", "node2", "node3", "node4")
        return tuple(
            f"{cell}/edge{e}:{kind}"
            for cell in ("normal", "reduce")
            for e in range(8)
            for kind in tuple(f"in={s}" for s in srcs) + tuple(f"op={o}" for o in ops)
        )
    if fam == "nbgraph":
        links = tuple(f"node{i}<-{'input' if s == 0 else f'node{s - 1}'}" for i in range(4) for s in range(4))
        return links + tuple(f"node{i}={o}" for i in range(4) for o in ops)
    return tuple(f"layer{i}={o}" for i in range(space.max_depth) for o in ops)
