"""Multi-objective Bayesian optimisation (``mobo``): NAGO's variant of USeMO (Belakaria et al., 2020).

Each step fits one Bayesian neural network per measured objective (NAGO Appendix C:
3 × 10 tanh units, SGHMC with burn-in and thinned samples; ``surrogate=
bnn-hetero`` (default) adds NAGO's heteroscedastic noise head, ``bnn`` has
one global noise) to the one-hot features of everything evaluated so far. Objectives counted
from the architecture (parameters, FLOPs: ``known_objectives``) are looked
up for every candidate instead of modelled: their acquisition is their
value and they add nothing to the uncertainty volume.
From each surrogate comes one acquisition per objective (``ucb``: ``mean +
sqrt(beta)·std``, or ``ei`` over the best value of that objective), and the
candidates whose acquisition vectors are Pareto-optimal form the cheap
front. USeMO's selection: the next query is the front member with the
largest *uncertainty volume* ``Π_j 2·sqrt(beta)·std_j(x)`` (computed as its
log). A batch of ``batch_size`` (NAGO: 8) is collected by hard local
penalisation of that uncertainty (NAGO Appendix D, Alvi et al. 2019): after
each pick ``x_j`` every candidate within ``(|U(x_j) − M| + U(x_j)) / L`` of it
(``U`` the log volume shifted to be positive, ``M`` its maximum over the
candidates, ``L`` its Lipschitz constant estimated from pairs of candidates)
is scaled by ``min(L·‖x − x_j‖ / radius, 1)``. When the front has fewer than
``batch_size`` unqueried members the rest of the batch comes from the other
candidates, by the same penalised uncertainty.

Candidates: the whole space where it is enumerable (features precomputed in
``setup``); otherwise ``n_candidates`` uniform samples, improved for
``nsga_generations`` generations of a jitted NSGA-II on the acquisition
vectors (``nsga2.survivors``: crossover, mutation and (μ + λ) selection by
front rank and crowding). The first ``n_init`` queries are uniform samples.
A failed evaluation (NaN in any objective) is left out of every fit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.acquisition.batch import lipschitz_from_pairs
from jnas.acquisition.improvement import expected_improvement
from jnas.errors import JnasError
from jnas.metrics.pareto import pareto_mask
from jnas.predictors.bnn import BNN
from jnas.strategies import model_based as mb
from jnas.strategies.base import Option, Strategy, select
from jnas.strategies.features import feature_map, space_features
from jnas.strategies.nsga2 import survivors

SURROGATES = ("bnn-hetero", "bnn")
ACQUISITIONS = ("ucb", "ei")
#: candidates whose pairwise slopes estimate the Lipschitz constant of the uncertainty (O(k²))
LIPSCHITZ_SAMPLE = 256


def hard_penaliser(dist: jax.Array, value: jax.Array, best: jax.Array, lipschitz: jax.Array) -> jax.Array:
    """NAGO's hard local penaliser ``min(L·d / (|value − best| + value), 1)`` (``float``, broadcasting).

    ``dist``: distance to the pending point; ``value``: the (positive) penalised
    quantity at the pending point; ``best``: its maximum over the candidates.
    """
    radius = jnp.abs(value - best) + value
    return jnp.clip(lipschitz * dist / jnp.maximum(radius, 1e-12), 0.0, 1.0)


def penalised_batch(feats: jax.Array, score: jax.Array, first: jax.Array, q: int, lipschitz) -> jax.Array:
    """``int32[q]`` distinct picks: the best ``score`` (> 0) among ``first`` candidates, then the others,
    each pick multiplying the scores of its neighbours by ``hard_penaliser``. ``score = -inf``: never picked."""
    best = jnp.max(jnp.where(jnp.isfinite(score), score, -jnp.inf))
    log_s = jnp.log(jnp.maximum(score, 1e-30))
    usable = jnp.isfinite(score)
    tier = jnp.where(first & usable, 0.0, jnp.where(usable, -1e6, -2e6))  # front first, then the rest

    def body(carry, _):
        log_pen, picked = carry
        total = jnp.where(picked, -jnp.inf, tier + log_s + log_pen)
        i = jnp.argmax(total)
        dist = jnp.sqrt(jnp.sum((feats - feats[i]) ** 2, axis=-1))
        phi = hard_penaliser(dist, score[i], best, lipschitz)
        return (log_pen + jnp.log(jnp.maximum(phi, 1e-30)), picked.at[i].set(True)), i

    init = (jnp.zeros_like(log_s), jnp.zeros(score.shape, bool))
    _, idx = jax.lax.scan(body, init, None, length=q)
    return idx.astype(jnp.int32)


class MOBO(Strategy):
    """NAGO's multi-objective BO over Bayesian-neural-network surrogates."""

    name = "mobo"
    objectives = "multi"
    keeps_history = True
    tracks_queried = True
    options = (
        Option("batch_size", int, 8, "an integer >= 1", lambda v: v >= 1, "queries per step (NAGO: 8)"),
        Option("n_init", int, 16, "an integer >= 2", lambda v: v >= 2, "initial uniform samples"),
        Option("surrogate", str, "bnn-hetero", f"one of {', '.join(SURROGATES)}", lambda v: v in SURROGATES,
               "bnn-hetero: NAGO's heteroscedastic SGHMC BNN; bnn: one global noise variance"),
        Option("acquisition", str, "ucb", f"one of {', '.join(ACQUISITIONS)}", lambda v: v in ACQUISITIONS,
               "acquisition per objective"),
        Option("beta", float, 2.0, "a number > 0", lambda v: v > 0, "UCB weight (mean + sqrt(beta)·std)",
               applies=(lambda s: s.acquisition == "ucb", "acquisition=ucb")),
        Option("bnn_samples", int, 30, "an integer >= 2", lambda v: v >= 2, "posterior samples kept per fit"),
        Option("bnn_burnin", int, 300, "an integer >= 0", lambda v: v >= 0, "SGHMC burn-in steps per fit"),
        Option("bnn_thinning", int, 5, "an integer >= 1", lambda v: v >= 1, "SGHMC steps between kept samples"),
        Option("bnn_map_steps", int, 300, "an integer >= 0", lambda v: v >= 0,
               "Adam steps of the MAP start of each fit"),
        Option("n_candidates", int, 2000, "an integer >= batch_size", lambda v: v >= 1,
               "candidate pool (non-enumerable spaces)",
               applies=(lambda s: not s.space.enumerable, "the space is not enumerable (else all are scored)")),
        Option("nsga_generations", int, 10, "an integer >= 0", lambda v: v >= 0,
               "NSGA-II generations over the pool's acquisitions (non-enumerable spaces)",
               applies=(lambda s: not s.space.enumerable, "the space is not enumerable (else all are scored)")),
    )

    def validate(self):
        if len(self.known_objectives) >= self.n_objectives:
            raise JnasError("objectives: every objective is counted from the architecture; mobo needs at least "
                            "one measured objective to model")
        if self.n_candidates < self.batch_size:
            raise JnasError(f"--set n_candidates: got {self.n_candidates}, expected >= batch_size={self.batch_size}")
        if self.space.enumerable and self.space.size < self.batch_size:
            raise JnasError(f"--set batch_size: got {self.batch_size}, expected at most {self.space.size} "
                            f"(the size of space {self.space.name!r})")

    def setup(self):
        # objectives counted from the architecture (parameters, FLOPs) are looked up, not modelled (NAGO)
        self.modelled = tuple(j for j in range(self.n_objectives) if j not in self.known_objectives)
        self.known = {j: jnp.asarray(v) for j, v in self.known_objectives.items()}
        self.features = feature_map(self.space)
        self.model = BNN(heteroscedastic=self.surrogate == "bnn-hetero", inference="sghmc",
                         num_samples=self.bnn_samples, num_warmup=self.bnn_burnin, thinning=self.bnn_thinning,
                         map_steps=self.bnn_map_steps)
        self.all_feats = jnp.asarray(space_features(self.space)) if self.space.enumerable else None

    # ----- the surrogate and the acquisitions ---------------------------------------------
    def _encode(self, archs):
        return jax.vmap(self.features.encode)(archs)

    def _fit(self, key, X, values, ok):
        """One BNN per modelled objective, vmapped: posterior samples with a leading objectives axis."""
        keys = jax.random.split(key, len(self.modelled))
        ys = values[:, jnp.asarray(self.modelled)]
        return jax.vmap(lambda k, y: self.model.fit(k, X, y, ok), in_axes=(0, 1))(keys, ys)

    def _acquire(self, params, feats, values, ok):
        """``(acq float[M, n], log_volume float[n])`` at ``feats``; known objectives need the whole space's
        ``feats`` in index order (their acquisition is their value, and they add no uncertainty)."""
        mean, var = jax.vmap(lambda p: self.model.predict(p, feats))(params)
        std = jnp.sqrt(jnp.maximum(var, 1e-12))
        if self.acquisition == "ucb":
            acq = mean + jnp.sqrt(self.beta) * std
        else:
            best = jnp.max(jnp.where(ok[:, None], values, -jnp.inf), axis=0)[jnp.asarray(self.modelled)]
            acq = jax.vmap(expected_improvement)(mean, var, best)
        rows = {j: acq[i] for i, j in enumerate(self.modelled)}
        rows.update({j: jnp.where(jnp.isfinite(v), v, -jnp.inf) for j, v in self.known.items()})
        log_volume = jnp.sum(jnp.log(2.0 * jnp.sqrt(self.beta) * std), axis=0)
        return jnp.stack([rows[j] for j in range(self.n_objectives)]), log_volume

    # ----- candidates -------------------------------------------------------------------------
    def _pool(self, state, key, params, values, ok):
        """``(archs, feats, fresh bool[n])`` of the candidates: the space, or an evolved sample of it."""
        if self.space.enumerable:
            archs = None
            return archs, self.all_feats, ~state.history.queried
        k_s, k_e = jax.random.split(jax.random.fold_in(key, 1))  # ``key`` itself also draws the Lipschitz sample
        archs = jax.vmap(self.space.sample)(jax.random.split(k_s, self.n_candidates))

        def generation(pop, k):
            k_a, k_b, k_x, k_m = jax.random.split(k, 4)
            n = self.n_candidates
            ia, ib = jax.random.randint(k_a, (n,), 0, n), jax.random.randint(k_b, (n,), 0, n)
            pa, pb = (jax.tree.map(lambda x, i=i: x[i], pop) for i in (ia, ib))
            kids = jax.vmap(self.space.crossover)(jax.random.split(k_x, n), pa, pb)
            kids = jax.vmap(self.space.mutate)(jax.random.split(k_m, n), kids)
            union = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), pop, kids)
            acq, _ = self._acquire(params, self._encode(union), values, ok)
            idx, _, _ = survivors(acq.T, n)
            return jax.tree.map(lambda x: x[idx], union), None

        if self.nsga_generations:
            archs, _ = jax.lax.scan(generation, archs, jax.random.split(k_e, self.nsga_generations))
        return archs, self._encode(archs), ~self.seen(state, archs)

    # ----- ask --------------------------------------------------------------------------------------
    def _ask(self, state, key):
        k_init, k_fit, k_pool = jax.random.split(key, 3)
        h = state.history
        q = self.batch_size
        if self.space.enumerable:
            fresh = mb.random_unqueried(self.space, k_init, h.queried, q)
        else:
            fresh = jax.vmap(self.space.sample)(jax.random.split(k_init, q))

        archs, values, ok = self.observations(state)
        X = self._encode(archs)
        params = self._fit(k_fit, X, jnp.where(ok[:, None], values, 0.0), ok)
        pool, feats, new = self._pool(state, k_pool, params, values, ok)
        acq, log_volume = self._acquire(params, feats, values, ok)
        front = pareto_mask(acq.T, new)
        # the penalised quantity must be positive: the log volume shifted above its minimum over the pool
        u = log_volume - jnp.min(jnp.where(new, log_volume, jnp.inf)) + 1.0
        score = jnp.where(new, u, -jnp.inf)
        sample = jax.random.choice(k_pool, feats.shape[0], (min(LIPSCHITZ_SAMPLE, feats.shape[0]),), replace=False)
        lipschitz = lipschitz_from_pairs(feats[sample], u[sample], new[sample])
        idx = penalised_batch(feats, score, front, q, lipschitz)
        chosen = jax.vmap(self.space.from_index)(idx) if pool is None else jax.tree.map(lambda x: x[idx], pool)
        return select(h.count < self.n_init, fresh, chosen), state.inner

