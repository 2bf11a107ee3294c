"""BANANAS (White et al., AAAI 2021): an MLP ensemble on the path encoding,
independent Thompson sampling over candidates made by mutating the best
architectures.

Each step (``batch_size = per_iteration`` queries): the first step queries
``per_iteration`` uniform samples; later steps train ``members`` MLPs on the
path encodings of everything evaluated so far, make ``n_candidates``
candidates by mutating the ``n_parents`` best architectures (one edit, a
fresh random edit per candidate), score each candidate with its own
posterior draw (independent Thompson sampling: ``mean + std · ε`` with the
ensemble's mean and spread), and query the best ``per_iteration`` distinct,
never-queried candidates. Defaults follow the paper: 10 initial, 10 per
iteration, 5 members of 10 × 20, 100 candidates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.encodings import path_encoding
from jnas.errors import JnasError
from jnas.predictors.mlp import MLPEnsemble
from jnas.strategies import model_based as mb
from jnas.strategies.base import Option, Strategy, select


class Bananas(Strategy):
    """Ensemble-of-MLPs Bayesian optimisation with path encodings."""

    name = "bananas"
    options = (
        Option("per_iteration", int, 10, "an integer >= 1", lambda v: v >= 1,
               "queries per step (also the initial design)"),
        Option("n_candidates", int, 100, "an integer >= per_iteration", lambda v: v >= 1,
               "mutation candidates per step"),
        Option("n_parents", int, 10, "an integer >= 1", lambda v: v >= 1, "best architectures mutated"),
        Option("members", int, 5, "an integer >= 2", lambda v: v >= 2, "ensemble size"),
        Option("layers", int, 10, "an integer >= 1", lambda v: v >= 1, "hidden layers per MLP"),
        Option("width", int, 20, "an integer >= 1", lambda v: v >= 1, "hidden units per layer"),
        Option("steps", int, 200, "an integer >= 1", lambda v: v >= 1, "Adam steps per fit"),
    )

    def validate(self):
        if not self.space.enumerable:
            raise JnasError(f"bananas: space {self.space.name!r} is not enumerable; supported: nb201, nbgraph, convnet")
        if self.n_candidates < self.per_iteration:
            raise JnasError(f"--set n_candidates: got {self.n_candidates}, expected >= per_iteration")
        if self.budget > self.space.size:
            raise JnasError(f"budget: got {self.budget}, expected at most {self.space.size}")
        self.batch_size = self.per_iteration
        self.model = MLPEnsemble(members=self.members, layers=self.layers, width=self.width, steps=self.steps)

    def _features(self, archs):
        return jax.vmap(lambda a: path_encoding(self.space, a))(archs)

    def init(self, key):
        cap = -(-self.budget // self.batch_size) * self.batch_size
        return mb.SurrogateState(mb.empty(self.space, cap), jnp.int32(0))

    def ask(self, state, key):
        k_init, k_fit, k_par, k_mut, k_ts = jax.random.split(key, 5)
        obs = state.obs
        q = self.batch_size
        fresh = mb.random_unqueried(self.space, k_init, obs.queried, q)

        params = self.model.fit(k_fit, self._features(obs.archs), obs.values, mb.mask(obs))
        # parents: the n_parents best observations (ties/failed rank last)
        _, top = jax.lax.top_k(obs.values, self.n_parents)
        parent_idx = top[jax.random.randint(k_par, (self.n_candidates,), 0, self.n_parents)]
        parents = jax.tree.map(lambda x: x[parent_idx], obs.archs)
        cands = jax.vmap(self.space.mutate)(jax.random.split(k_mut, self.n_candidates), parents)
        mean, var = self.model.predict(params, self._features(cands))
        draw = mean + jnp.sqrt(var) * jax.random.normal(k_ts, mean.shape)
        ids = jax.vmap(self.space.index)(cands)
        draw = jnp.where(obs.queried[jnp.clip(ids, 0)] | (ids < 0), -jnp.inf, draw)
        pick = mb.select_distinct(ids, draw, q)
        chosen = jax.tree.map(lambda x: x[pick], cands)
        # too few new candidates (all mutants already queried): fill with fresh samples
        ok = jnp.isfinite(draw[pick])
        chosen = jax.tree.map(lambda c, f: jnp.where(ok.reshape((-1,) + (1,) * (c.ndim - 1)), c, f), chosen, fresh)
        archs = select(state.t == 0, fresh, chosen)
        return archs, state

    def tell(self, state, archs, values):
        return mb.SurrogateState(mb.record(self.space, state.obs, archs, values), state.t + 1)
