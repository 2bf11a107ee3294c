"""Shared machinery of surrogate-model strategies (BO, BANANAS): a fixed-capacity
buffer of observations and the candidate bookkeeping around it.

Observations are kept as architectures (a pytree with leading axis
``budget``), values ``float[budget]`` (NaN = failed) and a count, so a model
can be refit on the masked buffer inside a ``lax.scan``. On enumerable spaces
a ``bool[size]`` mask records every queried index so candidates are never
re-queried.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.strategies.base import failed_to_worst


class Observations(NamedTuple):
    archs: object  # architectures, leading axis = budget
    values: jax.Array  # float[budget]; -inf for failed or unused rows
    n: jax.Array  # int32[] rows filled
    queried: jax.Array  # bool[size] (enumerable spaces) or bool[1]


class SurrogateState(NamedTuple):
    """State of a surrogate-driven strategy (``bo``, ``bananas``): its observations and step counter."""

    obs: Observations
    t: jax.Array  # int32[] steps taken


def empty(space, budget: int) -> Observations:
    """An empty buffer for ``budget`` observations of ``space``."""
    tmpl = space.template()
    archs = jax.tree.map(lambda x: jnp.zeros((budget,) + x.shape, x.dtype), tmpl)
    queried = jnp.zeros((space.size if space.enumerable else 1,), bool)
    return Observations(archs, jnp.full((budget,), -jnp.inf), jnp.int32(0), queried)


def record(space, obs: Observations, archs, values) -> Observations:
    """Append a batch (leading axis q) of architectures and their values."""
    q = values.shape[0]
    rows = obs.n + jnp.arange(q)
    cap = obs.values.shape[0]
    safe = jnp.clip(rows, 0, cap - 1)
    new_archs = jax.tree.map(lambda b, a: b.at[safe].set(a), obs.archs, archs)
    vals = obs.values.at[safe].set(failed_to_worst(values).astype(obs.values.dtype))
    queried = obs.queried
    if space.enumerable:
        queried = queried.at[jax.vmap(space.index)(archs)].set(True)
    return Observations(new_archs, vals, obs.n + q, queried)


def mask(obs: Observations) -> jax.Array:
    """``bool[budget]``: rows holding a successful observation."""
    return (jnp.arange(obs.values.shape[0]) < obs.n) & jnp.isfinite(obs.values)


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
