"""Local search (``ls``; White et al., 2020, "Local search is state of the art for NAS benchmarks").

Start from a uniform sample; query its edit-distance-1 neighbours in random
order; when the neighbourhood is exhausted move to its best member if it beats
the centre, otherwise the centre is a local optimum and the search restarts
from a fresh uniform sample. With ``first_improvement=1`` the search moves as
soon as a neighbour beats the centre. A failed evaluation counts per
``on_failure`` (default ``-inf``: a failed neighbour never wins).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.strategies.base import Option, Strategy, failure_option, select, stack1, unstack1


class LSState(NamedTuple):
    center: object  # current centre architecture
    center_val: jax.Array  # float[]
    nbrs: object  # its neighbours, leading axis n_neighbours
    n_valid: jax.Array  # int32[] number of valid neighbours (they come first in ``order``)
    order: jax.Array  # int32[n_neighbours] query order
    ptr: jax.Array  # int32[] neighbours of this centre queried so far
    best: object  # best neighbour seen around this centre
    best_val: jax.Array  # float[]
    scanning: jax.Array  # bool[]: False = the next query evaluates a fresh centre


class LocalSearch(Strategy):
    """Best-improvement hill climbing over one-edit neighbourhoods with random restarts."""

    name = "ls"
    options = (
        Option("first_improvement", int, 0, "0 or 1", lambda v: v in (0, 1), "move on the first better neighbour"),
        failure_option("-inf"),
    )

    def _init(self, key):
        tmpl = self.space.template()
        nbrs, mask = self.space.neighbours(tmpl)
        ninf = jnp.array(-jnp.inf)
        return LSState(
            tmpl, ninf, nbrs, jnp.int32(0), jnp.arange(mask.shape[0], dtype=jnp.int32),
            jnp.int32(0), tmpl, ninf, jnp.array(False),
        )

    def _ask(self, kit, key):
        state = kit.inner
        k_fresh, k_order = jax.random.split(key)
        fresh = self.space.sample(k_fresh)
        # A new neighbourhood (ptr == 0) gets a random order, valid members first.
        _, mask = self.space.neighbours(state.center)
        u = jnp.where(mask, jax.random.uniform(k_order, mask.shape), 2.0)
        order = jnp.where(state.ptr == 0, jnp.argsort(u).astype(jnp.int32), state.order)
        nbr = jax.tree.map(lambda x: x[order[jnp.clip(state.ptr, 0, order.shape[0] - 1)]], state.nbrs)
        proposal = select(state.scanning, nbr, fresh)
        center = select(state.scanning, state.center, fresh)
        return stack1(proposal), state._replace(center=center, order=order)

    def _enter(self, state, center, value):
        """Make ``center`` (already evaluated at ``value``) the centre of a new neighbourhood."""
        nbrs, mask = self.space.neighbours(center)
        n_valid = mask.sum().astype(jnp.int32)
        return state._replace(
            center=center, center_val=value, nbrs=nbrs, n_valid=n_valid, ptr=jnp.int32(0),
            best_val=jnp.full_like(state.best_val, -jnp.inf), scanning=n_valid > 0,
        )

    def _tell(self, kit, archs, values):
        state = kit.inner
        arch = unstack1(archs)
        v = values[0].astype(state.center_val.dtype)
        # Case 1: a fresh centre was evaluated.
        fresh = self._enter(state, state.center, v)
        # Case 2: a neighbour was evaluated.
        better = v > state.best_val
        scan = state._replace(
            best=select(better, arch, state.best), best_val=jnp.where(better, v, state.best_val), ptr=state.ptr + 1
        )
        done = scan.ptr >= scan.n_valid
        if self.first_improvement:
            done = done | (scan.best_val > scan.center_val)
        improved = scan.best_val > scan.center_val
        moved = self._enter(scan, scan.best, scan.best_val)
        restart = scan._replace(scanning=jnp.array(False))
        after = select(done, select(improved, moved, restart), scan)
        return select(state.scanning, after, fresh)
