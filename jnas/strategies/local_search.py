"""Local search (``ls``; White et al., 2020, "Local search is state of the art for NAS benchmarks").

Start from a uniform sample; query its edit-distance-1 neighbours in random
order; when the neighbourhood is exhausted move to its best member if it beats
the centre, otherwise the centre is a local optimum and the search restarts
from a fresh uniform sample. With ``first_improvement=1`` the search moves as
soon as a neighbour beats the centre. A failed evaluation counts per
``on_failure`` (default ``-inf``: a failed neighbour never wins).

The hill climber itself (``climb_init``, ``climb_ask``, ``climb_tell``) works
on any centre with a neighbourhood; ANASOD-LS climbs encodings with it too.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.strategies.base import Option, Strategy, failure_option, select, stack1


class LSState(NamedTuple):
    center: object  # current centre (an architecture; an encoding in anasod-ls)
    center_val: jax.Array  # float[]
    nbrs: object  # its neighbours, leading axis n_neighbours
    n_valid: jax.Array  # int32[] number of valid neighbours (they come first in ``order``)
    order: jax.Array  # int32[n_neighbours] query order
    ptr: jax.Array  # int32[] neighbours of this centre queried so far
    best: object  # best neighbour seen around this centre
    best_val: jax.Array  # float[]
    scanning: jax.Array  # bool[]: False = the next query evaluates a fresh centre


def climb_init(centre, neighbours) -> LSState:
    """A climber with ``centre`` as a placeholder (not scanning: the first ask proposes a fresh centre).

    ``neighbours(centre) -> (nbrs, mask)``: the neighbourhood with a leading
    axis and which rows are valid. The centre can be anything with a
    neighbourhood: an architecture (``ls``) or an encoding (``anasod-ls``).
    """
    nbrs, mask = neighbours(centre)
    ninf = jnp.array(-jnp.inf)
    return LSState(centre, ninf, nbrs, jnp.int32(0), jnp.arange(mask.shape[0], dtype=jnp.int32), jnp.int32(0),
                   centre, ninf, jnp.array(False))


def climb_ask(state: LSState, k_order, fresh, neighbours):
    """``(proposal, state)``: the next neighbour of the centre, or ``fresh`` when not scanning.

    A new neighbourhood (``ptr == 0``) gets a random order, valid members first.
    """
    _, mask = neighbours(state.center)
    u = jnp.where(mask, jax.random.uniform(k_order, mask.shape), 2.0)
    order = jnp.where(state.ptr == 0, jnp.argsort(u).astype(jnp.int32), state.order)
    nbr = jax.tree.map(lambda x: x[order[jnp.clip(state.ptr, 0, order.shape[0] - 1)]], state.nbrs)
    proposal = select(state.scanning, nbr, fresh)
    center = select(state.scanning, state.center, fresh)
    return proposal, state._replace(center=center, order=order)


def _enter(state: LSState, center, value, neighbours) -> LSState:
    """Make ``center`` (already evaluated at ``value``) the centre of a new neighbourhood."""
    nbrs, mask = neighbours(center)
    n_valid = mask.sum().astype(jnp.int32)
    return state._replace(
        center=center, center_val=value, nbrs=nbrs, n_valid=n_valid, ptr=jnp.int32(0),
        best_val=jnp.full_like(state.best_val, -jnp.inf), scanning=n_valid > 0,
    )


def climb_tell(state: LSState, value, neighbours, first_improvement: bool) -> LSState:
    """The climber after the value of its last proposal: best improvement (or first, ``first_improvement``).

    When a neighbourhood is exhausted the climber moves to its best member if
    that beats the centre; otherwise the centre is a local optimum and the
    climber stops scanning (its next ask proposes a fresh centre).
    """
    v = value.astype(state.center_val.dtype)
    # Case 1: a fresh centre was evaluated.
    fresh = _enter(state, state.center, v, neighbours)
    # Case 2: a neighbour was evaluated (the one climb_ask proposed).
    cand = jax.tree.map(lambda x: x[state.order[jnp.clip(state.ptr, 0, state.order.shape[0] - 1)]], state.nbrs)
    better = v > state.best_val
    scan = state._replace(
        best=select(better, cand, state.best), best_val=jnp.where(better, v, state.best_val), ptr=state.ptr + 1
    )
    done = scan.ptr >= scan.n_valid
    if first_improvement:
        done = done | (scan.best_val > scan.center_val)
    improved = scan.best_val > scan.center_val
    moved = _enter(scan, scan.best, scan.best_val, neighbours)
    restart = scan._replace(scanning=jnp.array(False))
    after = select(done, select(improved, moved, restart), scan)
    return select(state.scanning, after, fresh)


class LocalSearch(Strategy):
    """Best-improvement hill climbing over one-edit neighbourhoods with random restarts."""

    name = "ls"
    asynchronous = False  # ask moves the walk (the neighbour being tried)
    options = (
        Option("first_improvement", int, 0, "0 or 1", lambda v: v in (0, 1), "move on the first better neighbour"),
        failure_option("-inf"),
    )

    def _init(self, key):
        return climb_init(self.space.template(), self.space.neighbours)

    def _ask(self, kit, key):
        k_fresh, k_order = jax.random.split(key)
        proposal, state = climb_ask(kit.inner, k_order, self.space.sample(k_fresh), self.space.neighbours)
        return stack1(proposal), state

    def _tell(self, kit, archs, values):
        return climb_tell(kit.inner, values[0], self.space.neighbours, bool(self.first_improvement))
