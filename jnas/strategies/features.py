"""The features LaNAS's linear regressors see, with their continuous relaxation.

``feature_map(space)`` is the space's own ``Space.relaxation()``: a
``FeatureMap`` (``jnas.spaces.base.Relaxation``) with ``encode(arch) ->
float[dim]`` (jittable, vmappable) plus what hit-and-run needs to move in
the continuous relaxation of the encoded space and to round a relaxed point
back to an architecture. Every coordinate of the relaxation lies in
``[0, 1]``; coordinates of one *block* (a one-hot group) keep a fixed sum.
By default a space's relaxation is the one-hot of its categorical decisions
(``Space.decisions``), the same code as its adjacency one-hot encoding.

| space | features | dim |
|---|---|---|
| ``nb201`` (``nb201-3``) | one-hot op per edge | 6 · 5 = 30 (6 · 3 = 18) |
| ``convnet``, ``convnet-small`` | depth / max depth; per layer channels / max channels and | 1 + 2 · max depth |
|  | kernel / max kernel (0 past the depth) |  |
| ``nbgraph``, ``nbgraph-proteins`` | one-hot input per node (node ``i`` has ``i + 1`` | 10 + 4 · ops |
|  | choices), one-hot op per node |  |
| ``darts`` | one-hot edges: per cell, node, input and op (not ``none``); two per node | 2 · 14 · 7 = 196 |
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from jnas.spaces.base import Relaxation, Space

#: the relaxation of a space (old name)
FeatureMap = Relaxation


def families() -> tuple[str, ...]:
    """Registered spaces that have a LaNAS feature map, in registry order."""
    from jnas.spaces import get_space, names

    return tuple(n for n in names() if get_space(n).supports("relaxation"))


def __getattr__(name):
    # ``FAMILIES`` (old constant) is computed from the registry on first use.
    if name == "FAMILIES":
        return families()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def feature_map(space: Space) -> FeatureMap:
    """The ``FeatureMap`` of ``space`` (its ``relaxation()``); a one-line ``JnasError`` where it has none."""
    return space.relaxation()


@functools.cache
def space_features(space: Space) -> np.ndarray:
    """``float32[size, dim]``: the features of every architecture of an enumerable space, in index order."""
    fm = feature_map(space)
    with jax.ensure_compile_time_eval():
        return np.asarray(jax.jit(jax.vmap(fm.encode))(space.enumerate()), np.float32)
