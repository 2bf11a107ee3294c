"""ANASOD-BO (Wan et al., Algorithm 2) and ANASOD-NEP: Bayesian optimisation over operation distributions.

``anasod-bo``: the first ``n_init`` queries draw encodings from the uniform
Dirichlet (``anasod.py``). Every later step

1. fits the surrogate to the encodings of everything evaluated so far
   (``float[cells · k]`` in ``[0, 1]``): a GP with Matérn 5/2, one
   lengthscale (no ARD) and the paper's bounds (lengthscale ``[0.01, 0.5]``,
   outputscale ``[0.5, 5]``, noise ``[1e-6, 1e-1]``), ML-II warm-started from
   the previous step's fit; targets (``target``): ``log-error`` (default,
   the paper's log validation error ``log(100 - accuracy %)``, negated so
   that larger is better, standardised) or ``value`` (the told values,
   standardised);
2. draws a pool of ``n_candidates`` encodings (paper: 100,000) from the
   *encoding-generating distribution* ``Dir(k β p̃* + 1)`` centred on the best
   encoding ``p̃*`` so far;
3. scores the pool with expected improvement and evaluates one architecture
   from each of the best ``batch_size`` encodings (``batch_rule``: ``top``,
   the best distinct ones; ``believer``, kriging believer; ``penalise``,
   local penalisation); with ``acq_optimizer=mirror`` the ``mirror_starts``
   best pool points are first improved by ``mirror_steps`` of projected
   gradient ascent on the acquisition, renormalised onto the simplex after
   each step (the paper's mirror descent, Eq. 4);
4. updates ``β``, the soft trust region: a step that beats the best value
   so far is a success, any other a failure; ``success_tolerance``
   successive successes halve ``β`` (widen the region; below ``beta_min`` it
   becomes 0, the uniform Dirichlet), ``failure_tolerance`` successive failures
   double it (``0 → beta_min``), up to ``beta_max``. ``β`` starts at 0
   (Algorithm 2, line 2). The tolerances default to TuRBO's (Eriksson et
   al., 2019): 3 successes, ``max(4, cells · k) / batch_size`` failures.

With ``sampling=counts`` (default) a candidate stands for its rounded grid
point, so the pool is scored on grid points. Where the whole grid is small
(``GRID_LIMIT``; NB201: 210 points, NAS-Bench-Graph: 495) the step scores
each grid point once and keeps those the pool hit: the same argmax as scoring
all 100,000 draws, at the cost of ``|grid|``. Elsewhere (DARTS: 3,432² grid
points) every draw is scored.

``anasod-nep``: the same loop with the neural ensemble predictor of
BANANAS (an ensemble of MLPs; its mean and spread as a Gaussian for EI)
as the surrogate over encodings.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas import acquisition as acq
from jnas.encodings import opdist
from jnas.errors import JnasError
from jnas.predictors.gp import GP
from jnas.predictors.mlp import MLPEnsemble
from jnas.strategies import model_based as mb
from jnas.strategies.anasod import (
    Incumbent,
    OpDistStrategy,
    beta_max_option,
    init_incumbent,
    sampling_option,
    update_incumbent,
)
from jnas.strategies.base import Option, batch_option, failure_option, select

#: the grid route scores every grid point once when the joint grid has at most this many points
GRID_LIMIT = 20_000
TARGETS = ("log-error", "value")
ACQ_OPTIMIZERS = ("pool", "mirror")
#: ``log-error`` floors the error at this many percentage points (an accuracy of exactly 100 %)
ERROR_FLOOR = 1e-3


class TrustRegion(NamedTuple):
    """ANASOD-BO's encoding-generating distribution: ``Dir(k β p̃* + 1)`` and its success/failure counters."""

    beta: jax.Array  # float32[]
    successes: jax.Array  # int32[] successive successes
    failures: jax.Array  # int32[] successive failures


def trust_region_step(tr: TrustRegion, success, beta_min: float, beta_max: float, success_tolerance: int,
                      failure_tolerance: int) -> TrustRegion:
    """The trust region after one step that succeeded (``success`` True) or failed.

    A success resets the failure count and vice versa; ``success_tolerance``
    successive successes halve ``β`` (to 0 below ``beta_min``),
    ``failure_tolerance`` successive failures double it (0 becomes ``beta_min``),
    capped at ``beta_max``; the count that acted restarts at 0.
    """
    succ = jnp.where(success, tr.successes + 1, 0)
    fail = jnp.where(success, 0, tr.failures + 1)
    halve = succ >= success_tolerance
    double = fail >= failure_tolerance
    half = tr.beta / 2
    beta = jnp.where(halve, jnp.where(half < beta_min, 0.0, half), tr.beta)
    beta = jnp.where(double, jnp.where(beta == 0, beta_min, jnp.minimum(2 * beta, beta_max)), beta)
    return TrustRegion(beta.astype(tr.beta.dtype), jnp.where(halve, 0, succ).astype(jnp.int32),
                       jnp.where(double, 0, fail).astype(jnp.int32))


class BOState(NamedTuple):
    warm: jax.Array  # the previous GP fit's unconstrained hyperparameters (ML-II warm start); () for NEP
    region: TrustRegion
    best: Incumbent


def _code_radix(n: int, dim: int) -> int | None:
    """Radix of the integer code of a count vector, or None when the code would overflow int32."""
    return n + 1 if (n + 1) ** dim < 2**31 else None


class AnasodBO(OpDistStrategy):
    """Bayesian optimisation over ANASOD encodings with a Dirichlet trust region (Algorithm 2)."""

    name = "anasod-bo"
    keeps_history = True
    surrogate = "gp"
    options = (
        Option("n_init", int, 10, "an integer >= 2", lambda v: v >= 2, "initial encodings from Dir(1, ..., 1)"),
        batch_option(1),
        Option("n_candidates", int, 100_000, "an integer >= 1", lambda v: v >= 1,
               "pool of encodings drawn per step"),
        Option("target", str, "log-error", "log-error or value", lambda v: v in TARGETS,
               "surrogate targets: log(100 - accuracy %) (the paper's log validation error) or the values"),
        beta_max_option(2.0, "largest Dirichlet scale β of the trust region"),
        Option("beta_min", float, 0.25, "a number > 0", lambda v: v > 0,
               "smallest nonzero β (halving below it gives 0, doubling 0 gives it)"),
        Option("success_tolerance", int, 3, "an integer >= 1", lambda v: v >= 1,
               "successive successes that halve β"),
        Option("failure_tolerance", int, 0, "an integer >= 0", lambda v: v >= 0,
               "successive failures that double β (0: max(4, cells·k) / batch_size, rounded up)"),
        Option("batch_rule", str, "top", "one of top, believer, penalise",
               lambda v: v in ("top", "believer", "penalise"), "how a batch is chosen when batch_size > 1",
               applies=(lambda s: s.batch_size > 1, "batch_size > 1")),
        Option("acq_optimizer", str, "pool", "pool or mirror", lambda v: v in ACQ_OPTIMIZERS,
               "pool: the best pool points; mirror: then gradient ascent on the simplex from the best of them"),
        Option("mirror_starts", int, 10, "an integer >= 1", lambda v: v >= 1, "pool points mirror ascent starts from",
               applies=(lambda s: s.acq_optimizer == "mirror", "acq_optimizer=mirror")),
        Option("mirror_steps", int, 50, "an integer >= 1", lambda v: v >= 1, "mirror ascent steps",
               applies=(lambda s: s.acq_optimizer == "mirror", "acq_optimizer=mirror")),
        Option("mirror_lr", float, 0.05, "a number > 0", lambda v: v > 0, "mirror ascent step size",
               applies=(lambda s: s.acq_optimizer == "mirror", "acq_optimizer=mirror")),
        Option("gp_steps", int, 20, "an integer >= 0", lambda v: v >= 0,
               "ML-II L-BFGS iterations per fit, at most (warm-started from the previous fit)"),
        sampling_option(),
        failure_option("-inf"),
    )

    def validate(self):
        super().validate()
        if self.beta_min > self.beta_max:
            raise JnasError(f"--set beta_min: got {self.beta_min}, expected at most beta_max={self.beta_max}")
        if self.batch_rule != "top" and self.surrogate != "gp":
            raise JnasError(f"--set batch_rule: got {self.batch_rule!r}, expected top for {self.name} "
                            "(believer and penalise need the GP)")
        if self.acq_optimizer == "mirror" and self.mirror_starts < self.batch_size:
            raise JnasError(f"--set mirror_starts: got {self.mirror_starts}, expected >= batch_size="
                            f"{self.batch_size}")
        self.failures_needed = self.failure_tolerance or -(-max(4, self.dim) // self.batch_size)

    def check_metric(self, info) -> None:
        if self.target == "log-error" and not (info.unit == "%" and info.higher_is_better):
            raise JnasError(f"--set target: log-error needs an accuracy in percent, but metric {info.name!r} is in "
                            f"{info.unit!r} ({'higher' if info.higher_is_better else 'lower'} is better); "
                            "use --set target=value")

    def setup(self):
        self.model = self.make_model()
        grid_size = int(opdist.grid_points(self.n, self.k).shape[0]) ** self.cells
        radix = _code_radix(self.n, self.dim)
        self._grid = None
        if self.sampling == "counts" and grid_size <= GRID_LIMIT and radix is not None:
            one = opdist.grid_points(self.n, self.k)
            grid = one[:, None, :]
            for _ in range(self.cells - 1):  # the product of the per-cell grids, lexicographic
                grid = np.concatenate([np.repeat(grid, one.shape[0], 0), np.tile(one, (grid.shape[0], 1))[:, None]],
                                      axis=1)
            self._grid = grid.astype(np.int32)  # [G, cells, k]
            self._radix = radix
            self._grid_codes = self._code(jnp.asarray(self._grid))  # ascending: lexicographic = mixed radix

    def make_model(self):
        return GP(kernel="matern52", input_bounds=(0.0, 1.0), restarts=1, steps=self.gp_steps)

    def _code(self, counts) -> jax.Array:
        """``int32[...]`` mixed-radix code of count vectors ``int[..., cells, k]`` (first entry most significant)."""
        flat = counts.reshape(counts.shape[:-2] + (self.dim,)).astype(jnp.int32)
        weights = jnp.asarray(self._radix ** np.arange(self.dim - 1, -1, -1), jnp.int32)
        return (flat * weights).sum(-1)

    # ----- the surrogate --------------------------------------------------------------------
    def targets(self, values) -> jax.Array:
        """Surrogate targets (larger is better) of told values (failed: -inf, dropped by the fit's mask)."""
        if self.target == "value":
            return values
        return -jnp.log(jnp.maximum(100.0 - values, ERROR_FLOOR))

    def _fit(self, key, x, t, valid, warm):
        params = self.model.fit(key, x, t, valid, init=warm)
        return params, self.model.unconstrained(params)

    def _initial_warm(self):
        return jnp.zeros(self.model.n_hyperparameters(self.dim), jnp.result_type(float))

    def _acquisition(self, params, feats, best):
        mean, var = self.model.predict(params, feats)
        return acq.expected_improvement(mean, var, best), mean, var

    # ----- the protocol ------------------------------------------------------------------------
    def _init(self, key):
        tr = TrustRegion(jnp.float32(0.0), jnp.int32(0), jnp.int32(0))
        return BOState(self._initial_warm(), tr, init_incumbent(self, jnp.result_type(float)))

    def _pool(self, key, inner):
        """``(feats float[m, dim], counts-or-p float[m, cells, k], present bool[m] | None)`` of this step."""
        alpha = opdist.biased_concentration(inner.best.p, inner.region.beta)
        p = self.draw(key, alpha, self.n_candidates)
        if self.sampling == "categorical":
            return p.reshape(-1, self.dim), p, None
        c = self.on_grid(p)
        if self._grid is None:
            return (c.astype(jnp.float32) / self.n).reshape(-1, self.dim), c, None
        idx = jnp.searchsorted(jnp.asarray(self._grid_codes), self._code(c))
        present = jnp.zeros(self._grid.shape[0], bool).at[idx].set(True)
        g = jnp.asarray(self._grid)
        return (g.astype(jnp.float32) / self.n).reshape(-1, self.dim), g, present

    def _ids(self, points):
        """Identities of pool points for distinct picks: a hash of the counts (``counts``), else the row."""
        if self.sampling == "counts":
            c = points.reshape(points.shape[0], -1).astype(jnp.uint32)
            mult = jnp.asarray(np.uint32(2654435761) ** np.arange(self.dim, dtype=np.uint64) % 2**32, jnp.uint32)
            return (c * mult).sum(-1).astype(jnp.int32)  # equal counts share it
        return jnp.arange(points.shape[0])

    def _mirror(self, params, feats, score, best):
        """Projected gradient ascent on the acquisition from the best ``mirror_starts`` pool points.

        Returns ``(feats, points)`` of the improved starts (rounded to the grid under ``counts``)."""
        _, top = jax.lax.top_k(score, self.mirror_starts)
        start = feats[top].reshape(-1, self.cells, self.k)

        def a(p):
            return self._acquisition(params, p.reshape(1, self.dim), best)[0][0]

        def step(p, _):
            g = jax.vmap(jax.grad(a))(p)
            q = jnp.maximum(p + self.mirror_lr * g, 0.0)
            s = q.sum(-1, keepdims=True)
            return jnp.where(s > 0, q / jnp.where(s > 0, s, 1.0), p), None

        p, _ = jax.lax.scan(step, start, None, length=self.mirror_steps)
        if self.sampling == "categorical":
            return p.reshape(-1, self.dim), p
        c = self.on_grid(p)
        return (c.astype(jnp.float32) / self.n).reshape(-1, self.dim), c

    def _select(self, key, params, x, t, valid, feats, points, score, mean, var, best):
        """``int32[q]`` rows of ``feats`` to evaluate."""
        q = self.batch_size
        if q == 1 or self.batch_rule == "top":
            return mb.select_distinct(self._ids(points), score, q)
        if self.batch_rule == "believer":
            excluded = ~jnp.isfinite(score)
            return acq.kriging_believer_gp(
                self.model, params, feats, q,
                lambda m, v: jnp.where(excluded, -jnp.inf, acq.expected_improvement(m, v, best)))
        lipschitz = acq.lipschitz_from_pairs(x, t, valid)
        return acq.select_local_penalisation(score, feats, mean, var, q, lipschitz, best)

    def _ask(self, state, key):
        k_init, k_fit, k_pool, k_pick, k_arch = jax.random.split(key, 5)
        h, inner = state.history, state.inner
        archs, values, valid = self.observations(state)
        x = self.encode(archs).reshape(-1, self.dim)
        t = jnp.where(valid, self.targets(values), 0.0)
        params, fitted = self._fit(k_fit, x, t, valid, inner.warm)
        best = jnp.max(jnp.where(valid, t, -jnp.inf))
        feats, points, present = self._pool(k_pool, inner)
        score, mean, var = self._acquisition(params, feats, best)
        if present is not None:
            score = jnp.where(present, score, -jnp.inf)
        if self.acq_optimizer == "mirror":
            m_feats, m_points = self._mirror(params, feats, score, best)
            m_score, m_mean, m_var = self._acquisition(params, m_feats, best)
            feats, points = jnp.concatenate([feats, m_feats]), jnp.concatenate([points, m_points.astype(points.dtype)])
            score, mean, var = (jnp.concatenate(z) for z in ((score, m_score), (mean, m_mean), (var, m_var)))
        pick = self._select(k_pick, params, x, t, valid, feats, points, score, mean, var, best)
        chosen = self.realise_batch(k_arch, points[pick])
        fresh = self.realise_batch(k_arch, self.draw(k_init, self.uniform_concentration(), self.batch_size))
        model_phase = h.count >= self.n_init
        # only fits of the model phase carry over: the first one starts from the box centre
        warm = jax.tree.map(lambda a, b: jnp.where(model_phase, a, b), fitted, inner.warm)
        return select(model_phase, chosen, fresh), inner._replace(warm=warm)

    def _tell(self, state, archs, values):
        inner = state.inner
        best, improved = update_incumbent(self, inner.best, archs, values)
        # the trust region moves on model-phase steps only (the initial design is uniform by definition)
        model_step = state.history.count - self.batch_size >= self.n_init
        moved = trust_region_step(inner.region, improved, self.beta_min, self.beta_max, self.success_tolerance,
                                  self.failures_needed)
        region = jax.tree.map(lambda a, b: jnp.where(model_step, a, b), moved, inner.region)
        return inner._replace(region=region, best=best)


class AnasodNEP(AnasodBO):
    """ANASOD-BO with the neural ensemble predictor (BANANAS's MLP ensemble) as the surrogate."""

    name = "anasod-nep"
    surrogate = "nep"
    options = tuple(o for o in AnasodBO.options if o.name not in ("gp_steps", "batch_rule")) + (
        Option("members", int, 5, "an integer >= 2", lambda v: v >= 2, "ensemble size"),
        Option("layers", int, 10, "an integer >= 1", lambda v: v >= 1, "hidden layers per MLP"),
        Option("width", int, 20, "an integer >= 1", lambda v: v >= 1, "hidden units per layer"),
        Option("steps", int, 200, "an integer >= 1", lambda v: v >= 1, "Adam steps per fit"),
    )
    batch_rule = "top"

    def make_model(self):
        return MLPEnsemble(members=self.members, layers=self.layers, width=self.width, steps=self.steps)

    def _fit(self, key, x, t, valid, warm):
        return self.model.fit(key, x, t, valid), warm

    def _initial_warm(self):
        return jnp.zeros((0,), jnp.result_type(float))
