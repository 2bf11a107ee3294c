"""Bayesian optimisation (``bo``): a GP surrogate, an acquisition function and a candidate generator.

Each step fits a Gaussian process (Matérn 5/2 by default, hyperparameters by
ML-II under the ANASOD bounds, warm-started from the previous step's fit) to the one-hot encodings of everything
evaluated so far, scores the candidates and queries ``batch_size`` distinct,
never-queried ones. Candidates: the whole space when it is enumerable
(encodings precomputed once in ``setup``, scored in bulk); otherwise
``n_candidates`` architectures, half uniform samples and half one-edit
mutations of the best observations. The first ``n_init`` queries are uniform
samples.

The GP sees the space's one-hot encoding (``encoding=path``: the BANANAS
path encoding, binary, as ANASOD's Path-BO baseline). The ANASOD lengthscale bounds
[0.01, 0.5] suit its low-dimensional simplex points; one-hot codes of two
distinct architectures are at least √2 apart, and with those bounds the GP
decorrelates every pair and reverts to its mean (measured on NB201:
rank correlation with the truth 0.08 after 14 queries). BO therefore widens
the lengthscale box to ``ONEHOT_LENGTHSCALE`` = [0.1, 10] (for both binary
encodings).

Acquisitions: ``ei`` (expected improvement with ``xi``), ``pi``, ``ucb``
(``mean + sqrt(beta)·std``) and ``ts`` (Thompson sampling from the
marginals). With ``gp_samples = S > 0`` the GP is fully Bayesian (NUTS,
``S`` hyperparameter samples) and ``ei``/``pi``/``ucb`` are integrated over
the samples (``acquisition.integrated``; Snoek et al., 2012); ``ts`` draws
from the mixture's moments.

Batches (``batch_size`` > 1; ``q`` is the older name) by ``batch_rule``:
``top`` (default) the ``batch_size`` best-scored candidates; ``believer``
kriging believer with rank-1 GP updates (``acquisition.kriging_believer_gp``);
``penalise`` local penalisation with the Lipschitz constant of the observed
pairs (``acquisition.select_local_penalisation``). ``believer`` and
``penalise`` need an enumerable space (candidates are distinct by
construction there). Failed evaluations follow ``on_failure`` (default
``-inf``: left out of the fit, never the incumbent).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas import acquisition as acq
from jnas.encodings import adjacency_onehot, path_encoding
from jnas.errors import JnasError
from jnas.predictors.gp import GP
from jnas.strategies import model_based as mb
from jnas.strategies.base import Option, Strategy, batch_option, failure_option, select

ACQUISITIONS = ("ei", "pi", "ucb", "ts")
BATCH_RULES = ("top", "believer", "penalise")
ONEHOT_LENGTHSCALE = (0.1, 10.0)
ENCODINGS = ("onehot", "path")


class BayesianOptimisation(Strategy):
    """GP-based Bayesian optimisation over architectures."""

    name = "bo"
    repeats = False  # on enumerable spaces: queried indices are masked out
    keeps_history = True
    options = (
        Option("n_init", int, 10, "an integer >= 2", lambda v: v >= 2, "initial uniform samples"),
        batch_option(1, aliases=("q",)),
        Option("encoding", str, "onehot", "onehot or path", lambda v: v in ENCODINGS,
               "what the GP sees: the one-hot (adjacency) encoding or the BANANAS path encoding"),
        Option("acquisition", str, "ei", f"one of {', '.join(ACQUISITIONS)}", lambda v: v in ACQUISITIONS,
               "acquisition function"),
        Option("kernel", str, "matern52", "matern52 or rbf", lambda v: v in ("matern52", "rbf"), "GP kernel"),
        Option("xi", float, 0.0, "a number >= 0", lambda v: v >= 0, "EI/PI exploration margin (metric units)",
               applies=(lambda s: s.acquisition in ("ei", "pi"), "acquisition is ei or pi")),
        Option("beta", float, 2.0, "a number > 0", lambda v: v > 0, "UCB exploration weight",
               applies=(lambda s: s.acquisition == "ucb", "acquisition=ucb")),
        Option("gp_steps", int, 10, "an integer >= 0", lambda v: v >= 0,
               "ML-II L-BFGS iterations per fit, at most (the first restart warm-starts from the previous fit)"),
        Option("gp_restarts", int, 1, "an integer >= 1", lambda v: v >= 1,
               "ML-II restarts: the warm start, then uniform draws"),
        Option("gp_samples", int, 0, "an integer >= 0", lambda v: v >= 0,
               "0: ML-II; S > 0: fully Bayesian GP (NUTS, S samples), integrated acquisition"),
        Option("gp_warmup", int, 50, "an integer >= 0", lambda v: v >= 0, "NUTS warm-up steps (gp_samples > 0)",
               applies=(lambda s: s.gp_samples > 0, "gp_samples > 0")),
        Option("batch_rule", str, "top", f"one of {', '.join(BATCH_RULES)}", lambda v: v in BATCH_RULES,
               "how a batch is chosen when batch_size > 1",
               applies=(lambda s: s.batch_size > 1, "batch_size > 1")),
        Option("n_candidates", int, 1000, "an integer >= 2", lambda v: v >= 2, "candidates (non-enumerable spaces)",
               applies=(lambda s: not s.space.enumerable, "the space is not enumerable (else all are scored)")),
        failure_option("-inf"),
    )

    def validate(self):
        if self.encoding == "path" and not (self.space.supports("graph_layout") and self.space.graph_layout.paths):
            raise JnasError(f"--set encoding: got 'path', expected onehot for space {self.space.name!r} "
                            "(it defines no path encoding)")
        if self.batch_rule != "top" and not self.space.enumerable:
            raise JnasError(f"--set batch_rule: got {self.batch_rule!r}, expected top for space "
                            f"{self.space.name!r} (believer and penalise need an enumerable space)")
        self.tracks_queried = self.space.enumerable  # candidates elsewhere are fresh samples (they may repeat)

    def setup(self):
        self.model = GP(kernel=self.kernel, input_bounds=(0.0, 1.0), restarts=self.gp_restarts, steps=self.gp_steps,
                        lengthscale_bounds=ONEHOT_LENGTHSCALE, fully_bayesian=self.gp_samples > 0,
                        num_samples=max(self.gp_samples, 1), warmup=self.gp_warmup)
        encode = adjacency_onehot if self.encoding == "onehot" else path_encoding
        self._encode = jax.vmap(lambda a: encode(self.space, a))
        if self.space.enumerable:
            self._all = self._encode(self.space.enumerate())  # scored in bulk at every step

    def _init(self, key):
        # the previous fit's unconstrained hyperparameters (ML-II warm start); the box centre at first
        one = jax.tree.map(lambda x: jnp.asarray(x)[None], self.space.template())
        d = self._encode(one).shape[1]
        return jnp.zeros(self.model.n_hyperparameters(d), jnp.result_type(float))

    def _candidates(self, key, archs, values):
        """(archs or None, features, ids) of the candidate set."""
        if self.space.enumerable:
            return None, self._all, jnp.arange(self.space.size)
        n = self.n_candidates
        k_s, k_p, k_m = jax.random.split(key, 3)
        rand = jax.vmap(self.space.sample)(jax.random.split(k_s, n - n // 2))
        _, top = jax.lax.top_k(values, min(10, values.shape[0]))
        parents = jax.tree.map(lambda x: x[top[jax.random.randint(k_p, (n // 2,), 0, top.shape[0])]], archs)
        muts = jax.vmap(self.space.mutate)(jax.random.split(k_m, n // 2), parents)
        cands = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), rand, muts)
        return cands, self._encode(cands), jnp.arange(n)

    def _acquire(self, key, mean, var, best):
        """The acquisition of moments ``float[m]`` (or ``float[s, m]`` per GP sample, integrated)."""
        if self.acquisition == "ts":
            return acq.thompson_sample(key, mean, var)
        if self.acquisition == "ei":
            f, kw = acq.expected_improvement, {"best": best, "xi": self.xi}
        elif self.acquisition == "pi":
            f, kw = acq.probability_of_improvement, {"best": best, "xi": self.xi}
        else:
            f, kw = acq.upper_confidence_bound, {"beta": self.beta}
        return f(mean, var, **kw) if mean.ndim == 1 else acq.integrated(f, mean, var, **kw)

    def _score(self, key, params, feats, best):
        """``(score, mean, var)`` of the candidates: the acquisition and the mixture's moments."""
        mean, var = self.model.predict(params, feats)
        if self.gp_samples and self.acquisition != "ts":
            means, vars_ = self.model.predict_samples(params, feats)
            return self._acquire(key, means, vars_, best), mean, var
        return self._acquire(key, mean, var, best), mean, var

    def _pick_batch(self, key, params, obs_x, obs_y, obs_ok, feats, ids, score, mean, var, best, exclude):
        q = self.batch_size
        if q == 1 or self.batch_rule == "top":
            return mb.select_distinct(ids, score, q)
        if self.batch_rule == "believer":
            def acquisition(m, v):
                return jnp.where(exclude, -jnp.inf, self._acquire(key, m, v, best))
            return acq.kriging_believer_gp(self.model, params, feats, q, acquisition)
        lipschitz = acq.lipschitz_from_pairs(obs_x, obs_y, obs_ok)
        pen = jnp.where(exclude, -jnp.inf, score)
        return acq.select_local_penalisation(pen, feats, mean, var, q, lipschitz, best)

    def _ask(self, state, key):
        k_init, k_fit, k_cand, k_acq = jax.random.split(key, 4)
        h = state.history
        archs, values, valid = self.observations(state)
        obs_x = self._encode(archs)
        params = self.model.fit(k_fit, obs_x, values, valid, init=state.inner)
        # only fits of the model phase carry over: the first one starts from the box centre
        warm = state.inner if self.gp_samples else select(h.count < self.n_init, state.inner,
                                                          self.model.unconstrained(params))
        cands, feats, ids = self._candidates(k_cand, archs, values)
        best = jnp.max(jnp.where(valid, values, -jnp.inf))
        score, mean, var = self._score(k_acq, params, feats, best)
        q = self.batch_size
        if self.space.enumerable:
            score = jnp.where(h.queried, -jnp.inf, score)
            pick = self._pick_batch(k_acq, params, obs_x, values, valid, feats, ids, score, mean, var, best,
                                    h.queried)
            chosen = jax.vmap(self.space.from_index)(pick)
            fresh = mb.random_unqueried(self.space, k_init, h.queried, q)
        else:
            pick = mb.select_distinct(ids, score, q)
            chosen = jax.tree.map(lambda x: x[pick], cands)
            fresh = jax.vmap(self.space.sample)(jax.random.split(k_init, q))
        return select(h.count < self.n_init, fresh, chosen), warm
