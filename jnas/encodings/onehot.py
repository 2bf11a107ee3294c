"""Adjacency one-hot encoding (BANANAS "adjacency encoding"): a flat 0/1 vector.

The wiring decisions (adjacency entries or chosen inputs) followed by a
one-hot op per op slot. Each space defines it (``Space.onehot``); by
default it is the one-hot of every categorical decision of the space
(``Space.decisions``), all-zero for dead decisions. Lengths:

- ``nb201``: one-hot op per edge: 6 × 5 = 30 (``nb201-3``: 6 × 3 = 18).
- ``nb101``: of the *pruned* cell (NB101 ignores vertices on no input→output
  path), upper triangle of the 7×7 adjacency (21, row-major) + one-hot op of
  the 5 inner vertices (15) = 36; a pruned vertex gets an all-zero op block.
- ``darts``: per cell and edge, one-hot input among the 5 nodes an edge can
  read (c_{k-2}, c_{k-1}, nodes 2–4) then one-hot op: 2 × 8 × (5 + ops).
- ``nbgraph``: one-hot ``link[i]`` over the ``i + 1`` inputs node ``i`` can
  read (1 + 2 + 3 + 4 = 10) + one-hot op per node (4 × ops); the same code
  LaNAS regresses on.
- ``convnet``: one-hot layer choice (``space.ops``) per layer slot, all-zero
  for slots beyond the depth: ``max_depth × len(ops)``.

Jittable (``space`` static) and vmappable over ``arch``.
"""

from __future__ import annotations

import functools

import jax

from jnas.encodings import _layout


def adjacency_onehot(space, arch) -> jax.Array:
    """``float32[d]`` adjacency one-hot encoding of one architecture (``d = len(onehot_features(space))``)."""
    space = _layout.require(_layout.resolve(space), "onehot", "the adjacency one-hot encoding")
    return _adjacency_onehot(space, _layout.check_arch(space, arch))


@functools.partial(jax.jit, static_argnums=0)
def _adjacency_onehot(space, arch) -> jax.Array:
    return space.onehot(arch)


def onehot_features(space) -> tuple[str, ...]:
    """Human names of the entries of ``adjacency_onehot(space, ·)``, in order."""
    space = _layout.require(_layout.resolve(space), "onehot", "the adjacency one-hot encoding")
    return tuple(space.onehot_names())
