"""Candidate bookkeeping shared by surrogate-model strategies (BO, BANANAS).

The observations themselves are the kit's history (``base.Strategy`` with
``keeps_history`` and ``tracks_queried``): every told architecture and value
at fixed capacity, so a model is refit on the masked buffer inside a
``lax.scan`` (``Strategy.observations``), and on enumerable spaces a
``bool[size]`` mask of queried indices so candidates are never re-queried.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def select_distinct(key_ids: jax.Array, scores: jax.Array, q: int) -> jax.Array:
    """Indices of the ``q`` best ``scores`` whose ``key_ids`` are pairwise distinct.

    ``key_ids``: int[m] identity of each candidate (e.g. its space index);
    ``scores``: float[m] (-inf = not selectable). Greedy: take the best, drop
    every candidate with the same identity, repeat.
    """

    def pick(s, _):
        i = jnp.argmax(s)
        s = jnp.where(key_ids == key_ids[i], -jnp.inf, s)
        return s, i

    _, idx = jax.lax.scan(pick, scores, None, length=q)
    return idx


def random_unqueried(space, key, queried: jax.Array, q: int):
    """``q`` distinct uniformly random architectures not yet queried (enumerable spaces)."""
    u = jax.random.uniform(key, queried.shape)
    scores = jnp.where(queried, -jnp.inf, u)
    _, idx = jax.lax.top_k(scores, q)
    return jax.vmap(space.from_index)(idx)
