"""Wide 0/1 (or count) feature rows held as the column ids of their ones.

A path encoding of NAS-Bench-Graph has 7,380 columns but any one cell has at
most a few dozen paths: a dense ``float[n, 7380]`` matrix turns a model's
first layer into a large matmul that is almost all zeros. ``MultiHot`` keeps
each row as ``int32[m]`` column ids instead (an id repeated r times counts r;
ids outside ``[0, width)`` are padding), and ``matmul`` becomes a gather and a sum —
the same product, at ``m / width`` of the cost. It is a pytree (``ids`` is
the leaf, ``width`` static), so it passes through ``jit``, ``vmap`` and
``scan`` like an array.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.errors import bad_argument


@jax.tree_util.register_pytree_node_class
class MultiHot:
    """Rows of a matrix ``float[..., width]`` of small non-negative integers, as ``ids int32[..., m]``.

    Row ``r`` has ``dense()[r, j]`` = how often ``j`` occurs in ``ids[r]``; ids
    outside ``[0, width)`` are padding.
    """

    def __init__(self, ids, width: int):
        self.ids = ids
        self.width = int(width)

    def tree_flatten(self):
        return (self.ids,), self.width

    @classmethod
    def tree_unflatten(cls, width, leaves):
        return cls(leaves[0], width)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the dense matrix these rows stand for."""
        return (*self.ids.shape[:-1], self.width)

    @property
    def ndim(self) -> int:
        return self.ids.ndim

    def __getitem__(self, rows) -> MultiHot:
        """Select rows (any index that does not touch the last axis)."""
        return MultiHot(self.ids[rows], self.width)

    def keep_rows(self, mask: jax.Array) -> MultiHot:
        """Rows where ``mask`` (bool[n]) is False become all-zero rows."""
        return MultiHot(jnp.where(mask[..., None], self.ids, self.width), self.width)

    def matmul(self, w: jax.Array) -> jax.Array:
        """``dense() @ w`` for ``w float[width, k]``: ``float[..., k]``, without forming ``dense()``."""
        if w.shape[0] != self.width:
            raise bad_argument("w", w.shape, f"a matrix with {self.width} rows (the feature width)")
        ids = jnp.where(self.ids < 0, self.width, self.ids)  # take would wrap a negative id
        return jnp.take(w, ids, axis=0, mode="fill", fill_value=0).sum(axis=-2)

    def dense(self) -> jax.Array:
        """The rows as ``float32[..., width]``."""
        hot = self.ids[..., None] == jnp.arange(self.width, dtype=self.ids.dtype)
        return hot.sum(axis=-2, dtype=jnp.float32)

    def __repr__(self) -> str:
        return f"MultiHot(shape={self.shape}, ids_per_row={self.ids.shape[-1]})"
