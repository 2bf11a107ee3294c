"""MCTS over a hand-designed sequential action space (``mcts``), the baseline LaNAS compares to.

The action space is the space's categorical decisions (``Space.decisions``,
``to_decisions``), taken in order: a tree node is a prefix of decisions
(NB201: the op of edge 0, then edge 1, …; NAS-Bench-Graph: the inputs of
nodes 0..3, then their ops; ConvNet: the depth, then each layer's channels
and kernel), and its region is every architecture of the space that starts
with that prefix. Decisions that never vary across the space are skipped.
For an enumerable space the whole prefix tree is built once on the host
(``prefix_tree``): sorting the space lexicographically makes every region a
contiguous range.

Each query runs one UCT iteration. Selection: from the root, while the
current node has been visited, move to the child with the largest
``v + 2·Cp·sqrt(2·ln(n_parent)/n_child)`` (unvisited children first, drawn
uniformly; exhausted children, all of whose members were queried, are
skipped). Rollout: the query is a uniform member of the reached (unvisited)
node's region, i.e. the remaining decisions are drawn at random. Back-up:
every node on the queried architecture's path gains a visit and its value
(a failed evaluation counts as the worst value seen so far, ``on_failure =
worst``: -inf would poison every mean above it). ``Cp = cp · |best value
seen|`` as in LaNAS, so the two differ only in how the space is partitioned.
Every query is a new architecture, so visits count the queried members of a
region and exhaustion is ``visits == size``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import Space, pick_masked
from jnas.strategies.base import Option, Strategy, failure_option, stack1, unstack1

#: largest space whose prefix tree is built
MAX_SIZE = 1_000_000


class PrefixTree(NamedTuple):
    """The prefix tree of an enumerable space (host arrays).

    ``order[s]``: space index of the ``s``-th architecture in lexicographic
    order; ``rank``: its inverse. Node 0 is the root; ``child[u, a]``: node
    reached from ``u`` by decision value ``a`` (-1 if no member starts so);
    node ``u``'s region is sorted positions ``lo[u] .. lo[u] + size[u] - 1``;
    ``path[s]``: the nodes from the root to sorted position ``s``.
    """

    order: np.ndarray  # int32[N]
    rank: np.ndarray  # int32[N]
    child: np.ndarray  # int32[n_nodes, max_branch]
    lo: np.ndarray  # int32[n_nodes]
    size: np.ndarray  # int32[n_nodes]
    path: np.ndarray  # int32[N, n_decisions + 1]


def decisions(space: Space) -> np.ndarray:
    """``int32[N, L]``: the tokens (``space.to_decisions``) of each enumerated architecture, constant ones dropped."""
    tokens = np.asarray(jax.vmap(space.to_decisions)(space.enumerate()), np.int32)
    varies = (tokens != tokens[:1]).any(axis=0)
    return tokens[:, varies]


@functools.cache
def prefix_tree(space: Space) -> PrefixTree:
    """Build the prefix tree of an enumerable ``space`` (once per process)."""
    dec = decisions(space)
    n, depth = dec.shape
    order = np.lexsort(dec.T[::-1]).astype(np.int32)  # first column most significant
    dec = dec[order]
    rank = np.empty(n, np.int32)
    rank[order] = np.arange(n, dtype=np.int32)
    branch = int(dec.max()) + 1 if depth else 1
    # new_group[k][s]: sorted position s starts a new prefix of length k
    node_of = np.zeros((n, depth + 1), np.int64)
    los, sizes, first = [np.array([0])], [np.array([n])], 1
    for k in range(1, depth + 1):
        starts = np.ones(n, bool)
        starts[1:] = (dec[1:, :k] != dec[:-1, :k]).any(axis=1)
        group = np.cumsum(starts) - 1
        node_of[:, k] = first + group
        lo = np.flatnonzero(starts)
        los.append(lo)
        sizes.append(np.diff(np.append(lo, n)))
        first += len(lo)
    lo, size = np.concatenate(los), np.concatenate(sizes)
    child = np.full((first, branch), -1, np.int64)
    for k in range(depth):
        child[node_of[:, k], dec[:, k]] = node_of[:, k + 1]
    return PrefixTree(order, rank, child.astype(np.int32), lo.astype(np.int32), size.astype(np.int32),
                      node_of.astype(np.int32))


class MCTSState(NamedTuple):
    visits: jax.Array  # int32[n_nodes] queried members of each node's region
    tot: jax.Array  # float[n_nodes] sum of their values (failures per on_failure: the worst value seen)


class MCTS(Strategy):
    """UCT over decisions taken one at a time (a hand-designed action space)."""

    name = "mcts"
    repeats = False
    options = (
        Option("cp", float, 0.1, "a number >= 0", lambda v: v >= 0, "UCB exploration Cp as a fraction of |best value|"),
        failure_option("worst", choices=("worst",)),
    )

    def validate(self):
        sp = self.space
        if not sp.enumerable or sp.size > MAX_SIZE or not sp.supports("to_decisions"):
            raise JnasError(
                f"space: got {sp.name!r}, expected an enumerable space of at most {MAX_SIZE} architectures "
                "with categorical decisions for mcts"
            )

    def setup(self):
        self.tree = prefix_tree(self.space)
        self.n_decisions = self.tree.path.shape[1] - 1

    def _init(self, key):
        m = self.tree.lo.shape[0]
        return MCTSState(jnp.zeros((m,), jnp.int32), jnp.zeros((m,), jnp.result_type(float)))

    def _ask(self, kit, key):
        state, vmax = kit.inner, kit.history.best
        t = self.tree
        child, size, lo = jnp.asarray(t.child), jnp.asarray(t.size), jnp.asarray(t.lo)
        keys = jax.random.split(key, self.n_decisions + 1)
        cp = self.cp * jnp.where(jnp.isfinite(vmax), jnp.abs(vmax), 0.0)
        node = jnp.int32(0)
        for k in range(self.n_decisions):
            kids = child[node]
            safe = jnp.maximum(kids, 0)
            n = state.visits[safe]
            ok = (kids >= 0) & (n < size[safe])
            fresh = ok & (n == 0)
            nf = n.astype(state.tot.dtype)
            bonus = 2 * cp * jnp.sqrt(2 * jnp.log(jnp.maximum(state.visits[node], 1)) / jnp.maximum(nf, 1))
            ucb = jnp.where(ok, state.tot[safe] / jnp.maximum(nf, 1) + bonus, -jnp.inf)
            pick = jnp.where(fresh.any(), pick_masked(keys[k], fresh), jnp.argmax(ucb))
            node = jnp.where(state.visits[node] > 0, kids[pick], node)
        # an unvisited node: all its members are unqueried, so the rollout is a uniform member
        s = lo[node] + jax.random.randint(keys[-1], (), 0, size[node])
        return stack1(self.space.from_index(jnp.asarray(t.order)[s])), state

    def _tell(self, kit, archs, values):
        state = kit.inner
        filled = values[0].astype(state.tot.dtype)  # failures: the worst value seen (0 before any)
        s = jnp.asarray(self.tree.rank)[self.space.index(unstack1(archs))]
        path = jnp.asarray(self.tree.path)[s]
        return MCTSState(state.visits.at[path].add(1), state.tot.at[path].add(filled))
