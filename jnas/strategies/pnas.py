"""PNAS (Liu et al., 2018): progressive search from small cells to large ones, ranked by a surrogate.

A cell's *blocks* are its edges that are not ``none`` (NAS-Bench-201 and
its 3-op variant: 0 to 6 blocks), so the search grows cells from sparse to
dense. Each step queries ``batch_size`` (K, default 8) cells:

* step 0: K distinct random cells of one block;
* step t ≥ 1 (cells of ``b = t + 1`` blocks while ``b`` ≤ the edge count): the
  *beam* is the K best cells of the previous round; every way of adding one
  block to a beam cell (one ``none`` edge set to another op) is a candidate;
  an MLP ensemble (``jnas.predictors.mlp``, the ``bananas`` surrogate), fitted
  on the one-hot ops of every cell evaluated so far, ranks the candidates by
  predicted mean, and the K best distinct, never-queried ones are queried;
* once cells have every edge, a budget that is not spent yet continues at
  full size (an extension of the paper, which stops there): the beam is the K
  best full cells evaluated, and the candidates are every one-op change of
  them, ranked the same way.

When the candidates run out (all queried), the step is filled with random
never-queried cells. Failed evaluations follow ``on_failure`` (default
``-inf``: never in a beam).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.errors import JnasError
from jnas.predictors.mlp import MLPEnsemble
from jnas.strategies import model_based as mb
from jnas.strategies.base import Option, Strategy, batch_option, failure_option


def blocks(arch, none: int = 0) -> jax.Array:
    """``int32[]``: the edges of a cell (``int[E]`` op ids) that are not ``none``."""
    return jnp.sum(jnp.asarray(arch) != none).astype(jnp.int32)


def _one_edge_edits(arch, n_ops: int, none: int):
    """Every cell that sets one edge of ``arch`` to one non-``none`` op: ``(cells int[E·(n_ops-1), E], old op,
    new op)``, candidate ``e·(n_ops-1) + j`` setting edge ``e`` to the ``j``-th non-``none`` op."""
    arch = jnp.asarray(arch)
    n_edges = arch.shape[0]
    ops = jnp.asarray([o for o in range(n_ops) if o != none], arch.dtype)
    e = jnp.repeat(jnp.arange(n_edges), n_ops - 1)
    o = jnp.tile(ops, n_edges)
    return jnp.tile(arch[None], (e.shape[0], 1)).at[jnp.arange(e.shape[0]), e].set(o), arch[e], o


def expansions(arch, n_ops: int, none: int = 0):
    """Every cell with one more block than ``arch``: ``(cells int[E·(n_ops-1), E], valid bool[E·(n_ops-1)])``;
    a candidate is valid where it sets a ``none`` edge of ``arch``."""
    cells, old, _ = _one_edge_edits(arch, n_ops, none)
    return cells, old == none


def op_changes(arch, n_ops: int, none: int = 0):
    """Every cell that changes one non-``none`` edge of ``arch`` to another non-``none`` op (same blocks):
    ``(cells, valid)`` of the same layout as ``expansions``."""
    cells, old, new = _one_edge_edits(arch, n_ops, none)
    return cells, (old != none) & (old != new)


class PNAS(Strategy):
    """Progressive NAS on cells whose blocks are their non-``none`` edges."""

    name = "pnas"
    repeats = False
    keeps_history = True
    tracks_queried = True
    options = (
        batch_option(8, aliases=("k",), help="cells queried per step, and the beam kept between steps (K)"),
        Option("members", int, 5, "an integer >= 2", lambda v: v >= 2, "surrogate: MLPs in the ensemble"),
        Option("layers", int, 3, "an integer >= 1", lambda v: v >= 1, "surrogate: hidden layers per MLP"),
        Option("width", int, 32, "an integer >= 1", lambda v: v >= 1, "surrogate: hidden units per layer"),
        Option("steps", int, 300, "an integer >= 1", lambda v: v >= 1, "surrogate: Adam steps per fit"),
        failure_option("-inf"),
    )

    def validate(self):
        ops = tuple(getattr(self.space, "ops", ()) or ())
        tmpl = self.space.template()
        if "none" not in ops or not self.space.enumerable or getattr(tmpl, "ndim", 0) != 1:
            raise JnasError(f"pnas: space {self.space.name!r} has no cells of op ids with a 'none' op to count "
                            "blocks by; supported: nb201, nb201-3")
        self.none = ops.index("none")
        self.n_ops, self.n_edges = len(ops), int(tmpl.shape[0])
        one_block = self.n_edges * (self.n_ops - 1)
        if self.batch_size > one_block:
            raise JnasError(f"--set batch_size: got {self.batch_size}, expected at most {one_block} (the cells of "
                            f"one block in {self.space.name})")

    def setup(self):
        self.model = MLPEnsemble(members=self.members, layers=self.layers, width=self.width, steps=self.steps)

    def _features(self, archs):
        return jax.nn.one_hot(archs, self.n_ops).reshape(archs.shape[0], -1)

    def _init(self, key):
        return jnp.int32(0)  # the step about to be asked

    def _ask(self, state, key):
        k_first, k_fit, k_fill = jax.random.split(key, 3)
        h, t, q = state.history, state.inner, self.batch_size
        # step 0: K random cells of one block
        singles, _ = expansions(jnp.full((self.n_edges,), self.none, jnp.int32), self.n_ops, self.none)
        first = singles[jax.random.permutation(k_first, singles.shape[0])[:q]]

        archs, values, _ = self.observations(state)
        b = jnp.minimum(t + 1, self.n_edges)  # blocks of this step's cells
        n_blocks = jax.vmap(lambda a: blocks(a, self.none))(archs)
        live = jnp.arange(values.shape[0]) < h.count
        # the beam: the K best cells of the previous round (b - 1 blocks), or of full cells once full
        beam_rows = live & (n_blocks == jnp.where(t + 1 > self.n_edges, self.n_edges, b - 1))
        _, beam = jax.lax.top_k(jnp.where(beam_rows, values, -jnp.inf), q)
        grow = t + 1 <= self.n_edges
        fn = lambda a: jax.lax.cond(grow, lambda: expansions(a, self.n_ops, self.none),  # noqa: E731
                                    lambda: op_changes(a, self.n_ops, self.none))
        cands, valid = jax.vmap(fn)(archs[beam].astype(jnp.int32))
        valid = valid & jnp.isfinite(values[beam])[:, None]
        cands, valid = cands.reshape(-1, self.n_edges), valid.reshape(-1)
        params = self.model.fit(k_fit, self._features(archs), values, live & jnp.isfinite(values))
        mean, _ = self.model.predict(params, self._features(cands))
        ids = jax.vmap(self.space.index)(cands)
        score = jnp.where(valid & ~h.queried[jnp.clip(ids, 0)] & (ids >= 0), mean, -jnp.inf)
        pick = mb.select_distinct(ids, score, q)
        chosen = cands[pick]
        fresh = mb.random_unqueried(self.space, k_fill, h.queried, q)
        ok = jnp.isfinite(score[pick])[:, None]
        chosen = jnp.where(ok, chosen, fresh).astype(first.dtype)
        out = jnp.where(t == 0, first, chosen)
        return out.astype(self.space.template().dtype), t

    def _tell(self, state, archs, values):
        return state.inner + 1
