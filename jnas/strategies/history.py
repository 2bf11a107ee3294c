"""The strategy kit's history: what a strategy was told, in one fixed-capacity pytree.

Every strategy built on the kit (``base.Strategy`` with ``_init``/``_ask``/``_tell``)
carries a ``History`` in its state; the base ``tell`` appends each batch to it
before the strategy's own ``_tell`` runs. What it holds is decided by three
class flags of the strategy (so a strategy that needs none of it pays for a
counter and two scalars):

* always: ``count`` (architectures told so far), ``best`` and ``worst`` (the
  best and worst *finite* value told; ``-inf``/``+inf`` before any);
* ``keeps_history``: ``archs`` and ``values``, one row per told architecture,
  ``capacity`` rows (``ceil(budget / batch_size) * batch_size``); values are
  stored *as told* (NaN = a failed evaluation; rows not yet told are NaN too,
  ``live`` tells them apart);
* ``tracks_queried``: the set of architectures told, so a strategy can avoid
  them — a ``bool[space.size]`` mask on enumerable spaces (``queried``),
  otherwise ``arch_hash`` of every told architecture (``hashes``). ``seen``
  answers membership either way.

Arrays a strategy did not ask for have a zero-length leading axis. All
functions are jittable and ``vmap`` over seeds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jnas.prng import hash32


class History(NamedTuple):
    """Everything told so far (see the module docstring for which fields are filled)."""

    archs: Any  # architectures, leading axis capacity (0 unless keeps_history)
    values: jax.Array  # float[capacity(, M)] values as told (NaN = failed, and rows not yet told); [0] unless kept
    count: jax.Array  # int32[] architectures told so far
    best: jax.Array  # float[(M)] best finite value told (-inf before any), per objective
    worst: jax.Array  # float[(M)] worst finite value told (+inf before any), per objective
    queried: jax.Array  # bool[space.size] told indices (enumerable spaces, tracks_queried), else bool[0]
    hashes: jax.Array  # uint32[capacity] arch_hash of each told arch (other spaces, tracks_queried), else uint32[0]


def arch_hash(arch) -> jax.Array:
    """``uint32[]`` hash of one architecture pytree: every entry of every leaf, in order, position-salted.

    The one hasher of jnas strategies (duplicate checks where a space cannot
    be enumerated). Entries are read as ``int32``; the same arrays always give
    the same hash, and two different arrays of the same cell are different
    architectures here. ``vmap`` it over a batch.
    """
    flat = jnp.concatenate([jnp.asarray(x).reshape(-1).astype(jnp.int32) for x in jax.tree.leaves(arch)])
    flat = flat.astype(jnp.uint32)
    h = jnp.uint32(0x9E3779B9)
    for j in range(flat.shape[0]):
        h = hash32(h ^ (flat[j] + jnp.uint32((j * 0x85EBCA6B) & 0xFFFFFFFF)))
    return h


def empty(space, capacity: int, keep: bool = True, track: bool = False, dtype=None,
          n_objectives: int = 1) -> History:
    """An empty history for ``capacity`` told architectures of ``space``.

    ``keep``: hold every architecture and value; ``track``: hold the set of
    told architectures (a mask on enumerable spaces, hashes otherwise).
    ``dtype`` of the values: JAX's default float (float64 under x64).
    ``n_objectives`` > 1: every value is a vector ``float[n_objectives]``
    (``values float[capacity, M]``; ``best``/``worst`` per objective).
    """
    obj = () if n_objectives == 1 else (n_objectives,)
    dt = jnp.result_type(float) if dtype is None else dtype
    rows = capacity if keep else 0
    archs = jax.tree.map(lambda x: jnp.zeros((rows,) + x.shape, x.dtype), space.template())
    n_mask = space.size if (track and space.enumerable) else 0
    n_hash = capacity if (track and not space.enumerable) else 0
    return History(
        archs=archs,
        values=jnp.full((rows, *obj), jnp.nan, dt),
        count=jnp.int32(0),
        best=jnp.full(obj, -jnp.inf, dt),
        worst=jnp.full(obj, jnp.inf, dt),
        queried=jnp.zeros((n_mask,), bool),
        hashes=jnp.zeros((n_hash,), jnp.uint32),
    )


def record(space, h: History, archs, values) -> History:
    """Append a batch: ``archs`` (leading axis ``q``) and ``values float[q]`` (``[q, M]``) as told (NaN = failed)."""
    values = jnp.asarray(values)
    q = values.shape[0]
    v = values.astype(h.best.dtype)
    rows = h.count + jnp.arange(q, dtype=jnp.int32)
    new_archs, new_values, queried, hashes = h.archs, h.values, h.queried, h.hashes
    if h.values.shape[0]:
        new_archs = jax.tree.map(lambda b, a: b.at[rows].set(a.astype(b.dtype), mode="drop"), h.archs, archs)
        new_values = h.values.at[rows].set(v, mode="drop")
    if queried.shape[0]:
        idx = jax.vmap(space.index)(archs)
        queried = queried.at[jnp.where(idx >= 0, idx, queried.shape[0])].set(True, mode="drop")
    if hashes.shape[0]:
        hashes = hashes.at[rows].set(jax.vmap(arch_hash)(archs), mode="drop")
    ok = jnp.isfinite(v)
    best = jnp.maximum(h.best, jnp.max(jnp.where(ok, v, -jnp.inf), axis=0))
    worst = jnp.minimum(h.worst, jnp.min(jnp.where(ok, v, jnp.inf), axis=0))
    return History(new_archs, new_values, h.count + q, best, worst, queried, hashes)


def live(h: History) -> jax.Array:
    """``bool[capacity]``: the rows told so far."""
    return jnp.arange(h.values.shape[0]) < h.count


def seen(space, h: History, archs) -> jax.Array:
    """``bool[n]``: which of a batch of architectures were told before (needs ``tracks_queried``).

    On enumerable spaces an architecture outside the space (index -1) counts
    as not seen; elsewhere membership is by ``arch_hash`` (a collision can
    only make a new architecture look seen, never let a repeat through).
    """
    if h.queried.shape[0]:
        idx = jax.vmap(space.index)(archs)
        return (idx >= 0) & h.queried[jnp.clip(idx, 0, h.queried.shape[0] - 1)]
    if h.hashes.shape[0]:
        hh = jax.vmap(arch_hash)(archs)
        told = jnp.arange(h.hashes.shape[0]) < h.count
        return ((hh[:, None] == h.hashes[None, :]) & told[None, :]).any(axis=1)
    raise ValueError("seen(): this history does not track queried architectures (set tracks_queried = True)")
