"""Bayesian optimisation (``bo``): a surrogate, an acquisition function and a candidate generator.

Each step fits a surrogate (``surrogate``, below) to the encodings of everything evaluated so far,
scores the candidates and queries ``batch_size`` distinct, never-queried ones. Candidates: the whole
space when it is enumerable (encodings precomputed once in ``setup``, scored in bulk); otherwise
``n_candidates`` architectures, half uniform samples and half one-edit mutations of the best
observations. The first ``n_init`` queries are uniform samples.

Surrogates (``surrogate``):

* ``gp`` (default): a Gaussian process (Matérn 5/2 by default) with hyperparameters by ML-II under
  the ANASOD bounds, warm-started from the previous step's fit.
* ``gp-nuts``: the fully Bayesian GP: ``gp_samples`` hyperparameter samples by NumPyro NUTS
  (``gp_warmup`` adaptation steps, tree depth at most ``GP_NUTS_TREE_DEPTH``), refit from scratch at
  every step; default ``GP_NUTS_SAMPLES`` samples. ``gp_samples = S > 0`` with ``surrogate=gp`` is the
  older spelling of ``surrogate=gp-nuts gp_samples=S``; settings report ``gp-nuts``.
* ``bnn`` / ``bnn-hetero``: a Bayesian neural network (``jnas.predictors.bnn.BNN``: 3 × 10 tanh units,
  as NAGO; ``bnn-hetero`` adds NAGO's input-dependent noise head) sampled by SGHMC: ``bnn_burnin``
  burn-in steps, then ``bnn_samples`` samples, one every ``bnn_thinning`` steps, from a MAP start.
  Each sample ``s`` is a Gaussian ``N(μ_s(x), σ²_s(x))`` (its mean and its noise variance).
  The defaults (20 samples after 500 burn-in steps; NAGO kept 100) keep a 150-query, 10-seed run
  on NB201 near 5 minutes on 2 busy CPU cores (``experiments/bo_surrogates.py``).

The surrogate sees the space's one-hot encoding (``encoding=path``: the BANANAS
path encoding, binary, as ANASOD's Path-BO baseline). The ANASOD lengthscale bounds
[0.01, 0.5] suit its low-dimensional simplex points; one-hot codes of two
distinct architectures are at least √2 apart, and with those bounds the GP
decorrelates every pair and reverts to its mean (measured on NB201:
rank correlation with the truth 0.08 after 14 queries). BO therefore widens
the lengthscale box to ``ONEHOT_LENGTHSCALE`` = [0.1, 10] (for both binary
encodings).

Acquisitions: ``ei`` (expected improvement with ``xi``), ``pi``, ``ucb``
(``mean + sqrt(beta)·std``) and ``ts`` (Thompson sampling). With a sampled
surrogate (``gp-nuts``, ``bnn*``) ``ei``/``pi``/``ucb`` are integrated over the
samples (``acquisition.integrated``: the mean of the per-sample acquisitions;
Snoek et al., 2012). ``ts``: the GPs draw each candidate from its marginal
(``gp-nuts``: the mixture's moments); the BNNs score every candidate with the
mean function ``μ_s`` of one posterior sample ``s`` drawn per step, a
coherent function draw that needs no Gaussian assumption.

Batches (``batch_size`` > 1; ``q`` is the older name) by ``batch_rule``
(alias ``batch_method``, whose values ``topq``, ``kb``, ``lp`` name the same rules):
``top`` (default) the ``batch_size`` best-scored candidates; ``believer``
kriging believer with rank-1 GP updates (``acquisition.kriging_believer_gp``;
GP surrogates only: for a BNN the believer is a refit per pick);
``penalise`` local penalisation with the Lipschitz constant of the observed
pairs and the surrogate's predictive mean and std
(``acquisition.select_local_penalisation``). ``believer`` and
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
from jnas.predictors.bnn import BNN
from jnas.predictors.gp import GP
from jnas.strategies import model_based as mb
from jnas.strategies.base import Option, Strategy, batch_option, failure_option, select

ACQUISITIONS = ("ei", "pi", "ucb", "ts")
SURROGATES = ("gp", "gp-nuts", "bnn", "bnn-hetero")
BATCH_RULES = ("top", "believer", "penalise")
#: ``batch_method`` spellings of the batch rules (top-q scores, kriging believer, local penalisation)
BATCH_METHODS = {"topq": "top", "kb": "believer", "lp": "penalise"}
ONEHOT_LENGTHSCALE = (0.1, 10.0)
ENCODINGS = ("onehot", "path")
#: fully Bayesian GP: hyperparameter samples when ``gp_samples`` is not given, and the NUTS tree depth.
#: The NUTS fit runs at every step, and under a vmap over seeds each tree runs as long as the longest
#: seed's: depth 3 and 20 warm-up steps (``gp_warmup``) fit 10 seeds on 150 NB201 points in 1.1 s
#: instead of 40 s (depth 6, 50 warm-up steps; 2-core EPYC), with the same predictive ranking
#: (Spearman 0.67 against the table either way; a 300 + 200-step reference chain agrees).
GP_NUTS_SAMPLES = 8
GP_NUTS_TREE_DEPTH = 3
#: BNN hidden layers (NAGO Appendix C) and its MAP start: Adam steps and restarts (the BNN's own
#: 8 × 1000 triple the cost of a fit, which runs at every step)
BNN_HIDDEN = (10, 10, 10)
BNN_MAP_STEPS = 300
BNN_MAP_RESTARTS = 4


def batch_rule(value) -> str:
    """The canonical batch rule of a ``batch_rule`` or ``batch_method`` value (unknown values pass through)."""
    value = str(value)
    return BATCH_METHODS.get(value, value)


def mixture_moments(means: jax.Array, vars_: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and variance ``float[m]`` of the equal-weight mixture of Gaussians ``float[s, m]``.

    Law of total variance: the mean of the variances plus the variance of the means.
    """
    mean = means.mean(0)
    return mean, vars_.mean(0) + jnp.mean((means - mean) ** 2, 0)


def function_draw(key: jax.Array, means: jax.Array) -> jax.Array:
    """Thompson sampling from posterior samples: the mean function ``float[m]`` of one sample, uniform."""
    return means[jax.random.randint(key, (), 0, means.shape[0])]


def _is_gp(s) -> bool:
    return s.surrogate in ("gp", "gp-nuts")


def _is_bnn(s) -> bool:
    return s.surrogate in ("bnn", "bnn-hetero")


class BayesianOptimisation(Strategy):
    """Bayesian optimisation over architectures with a GP (ML-II or NUTS) or a Bayesian NN surrogate."""

    name = "bo"
    repeats = False  # on enumerable spaces: queried indices are masked out
    keeps_history = True
    options = (
        Option("n_init", int, 10, "an integer >= 2", lambda v: v >= 2, "initial uniform samples"),
        batch_option(1, aliases=("q",)),
        Option("surrogate", str, "gp", f"one of {', '.join(SURROGATES)}", lambda v: v in SURROGATES,
               "gp: ML-II GP; gp-nuts: fully Bayesian GP (NUTS); bnn: Bayesian NN (SGHMC); "
               "bnn-hetero: the BNN with NAGO's input-dependent noise"),
        Option("encoding", str, "onehot", "onehot or path", lambda v: v in ENCODINGS,
               "what the surrogate sees: the one-hot (adjacency) encoding or the BANANAS path encoding"),
        Option("acquisition", str, "ei", f"one of {', '.join(ACQUISITIONS)}", lambda v: v in ACQUISITIONS,
               "acquisition function"),
        Option("kernel", str, "matern52", "matern52 or rbf", lambda v: v in ("matern52", "rbf"), "GP kernel",
               applies=(_is_gp, "surrogate is gp or gp-nuts")),
        Option("xi", float, 0.0, "a number >= 0", lambda v: v >= 0, "EI/PI exploration margin (metric units)",
               applies=(lambda s: s.acquisition in ("ei", "pi"), "acquisition is ei or pi")),
        Option("beta", float, 2.0, "a number > 0", lambda v: v > 0, "UCB exploration weight",
               applies=(lambda s: s.acquisition == "ucb", "acquisition=ucb")),
        Option("gp_steps", int, 10, "an integer >= 0", lambda v: v >= 0,
               "ML-II L-BFGS iterations per fit, at most (the first restart warm-starts from the previous fit)",
               applies=(lambda s: s.surrogate == "gp" and s.gp_samples == 0, "surrogate=gp and gp_samples=0")),
        Option("gp_restarts", int, 1, "an integer >= 1", lambda v: v >= 1,
               "ML-II restarts: the warm start, then uniform draws",
               applies=(lambda s: s.surrogate == "gp" and s.gp_samples == 0, "surrogate=gp and gp_samples=0")),
        Option("gp_samples", int, 0, "an integer >= 0", lambda v: v >= 0,
               f"NUTS hyperparameter samples of the fully Bayesian GP (0: {GP_NUTS_SAMPLES} with surrogate=gp-nuts, "
               "ML-II with surrogate=gp; S > 0 with surrogate=gp: the same as surrogate=gp-nuts)",
               applies=(_is_gp, "surrogate is gp or gp-nuts")),
        Option("gp_warmup", int, 20, "an integer >= 0", lambda v: v >= 0, "NUTS warm-up steps of the fully Bayesian GP",
               applies=(lambda s: s.surrogate == "gp-nuts" or (_is_gp(s) and s.gp_samples > 0),
                        "surrogate=gp-nuts (or gp_samples > 0)")),
        Option("bnn_samples", int, 20, "an integer >= 1", lambda v: v >= 1, "BNN posterior samples kept (SGHMC)",
               applies=(_is_bnn, "surrogate is bnn or bnn-hetero")),
        Option("bnn_burnin", int, 500, "an integer >= 0", lambda v: v >= 0, "SGHMC burn-in steps of the BNN",
               applies=(_is_bnn, "surrogate is bnn or bnn-hetero")),
        Option("bnn_thinning", int, 10, "an integer >= 1", lambda v: v >= 1, "SGHMC steps between kept BNN samples",
               applies=(_is_bnn, "surrogate is bnn or bnn-hetero")),
        Option("batch_rule", batch_rule, "top",
               f"one of {', '.join(BATCH_RULES)} (batch_method: "
               f"{', '.join(f'{k} = {v}' for k, v in BATCH_METHODS.items())})",
               lambda v: v in BATCH_RULES, "how a batch is chosen when batch_size > 1",
               aliases=("batch_method",), applies=(lambda s: s.batch_size > 1, "batch_size > 1")),
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
        if self.batch_rule == "believer" and _is_bnn(self):
            raise JnasError(f"--set batch_rule: got 'believer', expected top or penalise with "
                            f"surrogate={self.surrogate} (a kriging believer would refit the BNN for every pick)")
        # one name per surrogate: gp_samples > 0 is the fully Bayesian GP, reported as such
        if self.surrogate == "gp" and self.gp_samples > 0:
            self.surrogate = "gp-nuts"
        if self.surrogate == "gp-nuts" and self.gp_samples == 0:
            self.gp_samples = GP_NUTS_SAMPLES
        self.tracks_queried = self.space.enumerable  # candidates elsewhere are fresh samples (they may repeat)

    @property
    def sampled(self) -> bool:
        """Whether the surrogate is a set of posterior samples (acquisitions integrated over them)."""
        return self.surrogate != "gp"

    def setup(self):
        if _is_bnn(self):
            self.model = BNN(hidden=BNN_HIDDEN, heteroscedastic=self.surrogate == "bnn-hetero", inference="sghmc",
                             num_samples=self.bnn_samples, num_warmup=self.bnn_burnin, thinning=self.bnn_thinning,
                             map_steps=BNN_MAP_STEPS, map_restarts=BNN_MAP_RESTARTS)
        else:
            self.model = GP(kernel=self.kernel, input_bounds=(0.0, 1.0), restarts=self.gp_restarts,
                            steps=self.gp_steps, lengthscale_bounds=ONEHOT_LENGTHSCALE,
                            fully_bayesian=self.gp_samples > 0, num_samples=max(self.gp_samples, 1),
                            warmup=self.gp_warmup, max_tree_depth=GP_NUTS_TREE_DEPTH)
        encode = adjacency_onehot if self.encoding == "onehot" else path_encoding
        self._encode = jax.vmap(lambda a: encode(self.space, a))
        if self.space.enumerable:
            self._all = self._encode(self.space.enumerate())  # scored in bulk at every step

    def _init(self, key):
        if _is_bnn(self):
            return jnp.zeros((0,), jnp.result_type(float))  # refit from a MAP start: nothing carries over
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
        """The acquisition of moments ``float[m]`` (or ``float[s, m]`` per posterior sample, integrated)."""
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
        """``(score, mean, var)`` of the candidates ``float[m]``: the acquisition and the predictive moments.

        A sampled surrogate's moments are its mixture's; its ``ei``/``pi``/``ucb`` are integrated over
        the samples, its ``ts`` is a function draw (BNN) or a draw from the mixture's marginals (GP).
        """
        if not self.sampled:
            mean, var = self.model.predict(params, feats)
            return self._acquire(key, mean, var, best), mean, var
        means, vars_ = self.model.predict_samples(params, feats)
        mean, var = mixture_moments(means, vars_)
        if self.acquisition != "ts":
            return self._acquire(key, means, vars_, best), mean, var
        if _is_bnn(self):
            return function_draw(key, means), mean, var
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
        if _is_bnn(self):
            params = self.model.fit(k_fit, obs_x, values, valid)
        else:
            params = self.model.fit(k_fit, obs_x, values, valid, init=state.inner)
        # only ML-II fits of the model phase carry over: the first one starts from the box centre
        warm = state.inner if self.sampled else select(h.count < self.n_init, state.inner,
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
