"""BANANAS (White et al., AAAI 2021): an MLP ensemble on the path encoding,
independent Thompson sampling over candidates made by mutating the best
architectures.

Each step (``batch_size`` queries; ``per_iteration`` is the older name): the
first step queries ``batch_size`` uniform samples; later steps train
``members`` MLPs on the path encodings of everything evaluated so far, make
``n_candidates`` candidates by mutating the ``n_parents`` best architectures
(one edit, a fresh random edit per candidate), score each candidate with its
own posterior draw (``acquisition.independent_thompson``: the paper's
independent Thompson sampling, ``mean + std · ε`` with the ensemble's mean
and spread, or with ``its=member`` one ensemble member per candidate), and
query the best ``batch_size`` distinct, never-queried candidates. Defaults
follow the paper: 10 initial, 10 per iteration, 5 members of 10 × 20, 100
candidates. Failed evaluations follow ``on_failure`` (default ``-inf``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas import acquisition as acq
from jnas.encodings import path_multihot
from jnas.errors import JnasError
from jnas.predictors.mlp import MLPEnsemble
from jnas.strategies import model_based as mb
from jnas.strategies.base import Option, Strategy, batch_option, failure_option, select, stack1


class Bananas(Strategy):
    """Ensemble-of-MLPs Bayesian optimisation with path encodings."""

    name = "bananas"
    repeats = False
    keeps_history = True
    tracks_queried = True
    options = (
        batch_option(10, aliases=("per_iteration",), help="queries per step (also the initial design)"),
        Option("n_candidates", int, 100, "an integer >= batch_size", lambda v: v >= 1,
               "mutation candidates per step"),
        Option("n_parents", int, 10, "an integer >= 1", lambda v: v >= 1, "best architectures mutated"),
        Option("members", int, 5, "an integer >= 2", lambda v: v >= 2, "ensemble size"),
        Option("layers", int, 10, "an integer >= 1", lambda v: v >= 1, "hidden layers per MLP"),
        Option("width", int, 20, "an integer >= 1", lambda v: v >= 1, "hidden units per layer"),
        Option("steps", int, 200, "an integer >= 1", lambda v: v >= 1, "Adam steps per fit"),
        Option("its", str, "gaussian", "gaussian or member", lambda v: v in acq.ITS_METHODS,
               "independent Thompson sampling: a Gaussian draw from the ensemble's moments (paper) "
               "or one member per candidate"),
        failure_option("-inf"),
    )

    def validate(self):
        if not self.space.enumerable:
            raise JnasError(f"bananas: space {self.space.name!r} is not enumerable; supported: nb201, nbgraph, convnet")
        if self.n_candidates < self.batch_size:
            raise JnasError(f"--set n_candidates: got {self.n_candidates}, expected >= batch_size={self.batch_size}")

    def setup(self):
        self.model = MLPEnsemble(members=self.members, layers=self.layers, width=self.width, steps=self.steps)
        self._features(stack1(self.space.template()))  # builds the space's path table now, outside any trace

    def _features(self, archs):
        # held sparsely: NAS-Bench-Graph's 7,380 path features would make the first layer a dense matmul
        return jax.vmap(lambda a: path_multihot(self.space, a))(archs)

    def _ask(self, state, key):
        k_init, k_fit, k_par, k_mut, k_ts = jax.random.split(key, 5)
        h = state.history
        archs, values, valid = self.observations(state)
        q = self.batch_size
        fresh = mb.random_unqueried(self.space, k_init, h.queried, q)

        params = self.model.fit(k_fit, self._features(archs), values, valid)
        # parents: the n_parents best observations (ties/failed rank last)
        _, top = jax.lax.top_k(values, self.n_parents)
        parent_idx = top[jax.random.randint(k_par, (self.n_candidates,), 0, self.n_parents)]
        parents = jax.tree.map(lambda x: x[parent_idx], archs)
        cands = jax.vmap(self.space.mutate)(jax.random.split(k_mut, self.n_candidates), parents)
        feats = self._features(cands)
        draw = acq.independent_thompson(k_ts, self.model.predict_members(params, feats), method=self.its)
        ids = jax.vmap(self.space.index)(cands)
        draw = jnp.where(h.queried[jnp.clip(ids, 0)] | (ids < 0), -jnp.inf, draw)
        pick = mb.select_distinct(ids, draw, q)
        chosen = jax.tree.map(lambda x: x[pick], cands)
        # too few new candidates (all mutants already queried): fill with fresh samples
        ok = jnp.isfinite(draw[pick])
        chosen = jax.tree.map(lambda c, f: jnp.where(ok.reshape((-1,) + (1,) * (c.ndim - 1)), c, f), chosen, fresh)
        return select(h.count == 0, fresh, chosen), state.inner
