"""Bayesian neural-network regression (BOHAMIANN-style; NAGO's heteroscedastic variant).

Network: ``hidden`` fully connected layers (default 3 × 10 units, as in NAGO)
with ``tanh`` (default, as in Springenberg et al. 2016) or ``relu``, on
standardised inputs (per-dimension mean and std over the real rows), and a
linear head for the standardised target.

* ``heteroscedastic=False``: one global noise variance ``σ_n²``.
* ``heteroscedastic=True`` (NAGO): a second head gives the log noise variance
  as a function of the input, ``log σ_n²(x)``.

Either way the log noise variance is mapped smoothly into
``log noise_bounds`` (``log σ² = log a + (log b - log a) sigmoid(raw)``,
standardised-target units) so that neither sampler meets an infinite
precision.

Priors: weights ``N(0, prior_scale² / fan_in)``, biases ``N(0, prior_scale²)``,
the raw global noise ``N(0, 1)``. Likelihood ``y_i ~ N(μ(x_i), σ_n²(x_i))``
over the real rows (``mask`` True, finite target and inputs); the other rows
are ignored exactly.

Inference (both start from a MAP estimate: the best by log posterior of
``map_restarts`` runs of ``map_steps`` full-batch Adam steps from prior draws;
small networks have poor local optima, and a good start shortens burn-in a
lot):

* ``inference="nuts"``: NumPyro's NUTS (``num_warmup`` adaptation steps, then
  ``num_samples`` draws); jittable (functional NumPyro kernel under ``lax.scan``).
* ``inference="sghmc"``: blackjax's SGHMC (Chen et al. 2014) with blackjax's
  minibatch gradient estimator ``∇log p(θ) + N/B Σ_batch ∇log p(y|x, θ)``;
  ``num_warmup`` burn-in steps (rounded up to a multiple of ``thinning``) then
  ``num_samples × thinning`` steps keeping every ``thinning``-th position.
  Each step resamples the momentum and runs ``num_integration_steps``
  integration steps on one minibatch of ``batch_size`` real rows drawn
  without replacement (with at most ``batch_size`` real rows the gradient is
  exact). NAGO's paper setting: 100 samples, every 10th kept.

``params`` hold the posterior samples; ``predict`` returns, in target units,
``mean = E_s[μ_s(x)]`` and ``var = E_s[σ²_s(x)] + Var_s[μ_s(x)]`` (aleatoric +
epistemic; NAGO eq. 2). ``predict_samples`` returns the per-sample ``μ_s`` and
``σ²_s``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jnas.errors import bad_argument, check_bounds, check_int, check_positive, is_int
from jnas.predictors.base import Predictor, check_targets
from jnas.predictors.nuts import nuts_sample

INFERENCE = ("nuts", "sghmc")
ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


class BNNParams(NamedTuple):
    """Posterior samples and the data standardisation.

    samples: network pytree (``{"layers": [{"w", "b"}, ...], "noise": raw}``) with a leading axis ``s``.
    x_mean, x_std: ``float[d]``; y_mean, y_std: ``float[]``.
    """

    samples: dict
    x_mean: jax.Array
    x_std: jax.Array
    y_mean: jax.Array
    y_std: jax.Array


class BNN(Predictor):
    """Bayesian MLP regressor on feature vectors ``X float[n, d]``.

    Parameters
    ----------
    hidden: units per hidden layer (default ``(10, 10, 10)``).
    activation: ``"tanh"`` or ``"relu"``.
    heteroscedastic: input-dependent noise head (NAGO) instead of a global noise.
    inference: ``"sghmc"`` (default, as NAGO) or ``"nuts"``.
    num_samples: posterior samples kept.
    num_warmup: NUTS adaptation steps (default 200) or SGHMC burn-in steps (default 1000).
    thinning: SGHMC steps between kept samples.
    step_size, num_integration_steps, friction, batch_size: SGHMC settings (blackjax's ``alpha`` is
        ``friction``). blackjax integrates with explicit Euler steps, which heat the chain unless
        ``step_size`` is small; the defaults (``ε = 1e-3``, ``α = 50``, so the momentum decays by
        ``αε = 0.05`` per step, Springenberg et al.'s ``mdecay``) keep a 3 × 10 tanh network near the
        NUTS posterior on standardised data.
    max_tree_depth: NUTS tree depth limit.
    map_steps, map_lr, map_restarts: Adam steps, learning rate and vmapped restarts of the MAP initialisation.
    prior_scale: prior standard deviation scale (see the module docstring).
    noise_bounds: range of the noise variance of standardised targets.
    """

    name = "bnn"

    def __init__(
        self,
        hidden=(10, 10, 10),
        activation: str = "tanh",
        heteroscedastic: bool = False,
        inference: str = "sghmc",
        num_samples: int = 100,
        num_warmup: int | None = None,
        thinning: int = 10,
        step_size: float = 1e-3,
        num_integration_steps: int = 10,
        friction: float = 50.0,
        batch_size: int = 32,
        max_tree_depth: int = 8,
        map_steps: int = 1000,
        map_lr: float = 1e-2,
        map_restarts: int = 8,
        prior_scale: float = 1.0,
        noise_bounds=(1e-3, 1.0),
    ):
        if is_int(hidden):
            hidden = (hidden,)
        if not isinstance(hidden, (tuple, list)) or not all(is_int(h) and h >= 1 for h in hidden):
            raise bad_argument("hidden", hidden, "a tuple of positive integers (units per hidden layer)")
        if activation not in ACTIVATIONS:
            raise bad_argument("activation", activation, "'tanh' or 'relu'")
        if inference not in INFERENCE:
            raise bad_argument("inference", inference, "'nuts' or 'sghmc'")
        noise_bounds = check_bounds("noise_bounds", noise_bounds)
        self.hidden, self.activation = tuple(int(h) for h in hidden), activation
        self.heteroscedastic, self.inference = bool(heteroscedastic), inference
        self.num_samples = check_int("num_samples", num_samples, 1)
        if num_warmup is None:
            num_warmup = 1000 if inference == "sghmc" else 200
        self.num_warmup = check_int("num_warmup", num_warmup, 0)
        self.thinning = check_int("thinning", thinning, 1)
        self.step_size = check_positive("step_size", step_size)
        self.num_integration_steps = check_int("num_integration_steps", num_integration_steps, 1)
        self.friction = check_positive("friction", friction)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.max_tree_depth = check_int("max_tree_depth", max_tree_depth, 1)
        self.map_steps = check_int("map_steps", map_steps, 0)
        self.map_lr = check_positive("map_lr", map_lr)
        self.map_restarts = check_int("map_restarts", map_restarts, 1)
        self.prior_scale = check_positive("prior_scale", prior_scale)
        self.noise_bounds = noise_bounds

    # ------------------------------------------------------------ the network

    def _dims(self, d):
        return [d, *self.hidden, 2 if self.heteroscedastic else 1]

    def _flat(self, d):
        """``(prior std float[P], unravel)``: the network as one flat parameter vector.

        Inference runs on the flat vector: one random draw per step instead of
        one per leaf, which keeps compiled programs (and compile times) small.
        """
        dims = self._dims(d)
        tree = {
            "layers": [
                {
                    "w": np.full((a, b), self.prior_scale / np.sqrt(a), np.float32),
                    "b": np.full((b,), self.prior_scale, np.float32),
                }
                for a, b in zip(dims[:-1], dims[1:])
            ],
            "noise": np.ones((), np.float32),
        }
        std, unravel = ravel_pytree(tree)
        return std.astype(jnp.result_type(float)), unravel

    def init(self, key: jax.Array, d: int) -> dict:
        """A draw from the prior: ``{"layers": [{"w": float[i, o], "b": float[o]}, ...], "noise": float[]}``."""
        std, unravel = self._flat(d)
        return unravel(std * jax.random.normal(key, std.shape, std.dtype))

    def forward(self, net: dict, x: jax.Array):
        """``(mean float[m], log noise variance float[m])`` of one network on standardised inputs ``x float[m, d]``."""
        act = ACTIVATIONS[self.activation]
        h = x
        for layer in net["layers"][:-1]:
            h = act(h @ layer["w"] + layer["b"])
        out = h @ net["layers"][-1]["w"] + net["layers"][-1]["b"]
        raw = out[:, 1] if self.heteroscedastic else jnp.broadcast_to(net["noise"], out.shape[:1])
        la, lb = jnp.log(self.noise_bounds[0]), jnp.log(self.noise_bounds[1])
        return out[:, 0], la + (lb - la) * jax.nn.sigmoid(raw)

    def log_prior(self, net: dict) -> jax.Array:
        """Log prior density of one network (scalar, up to a constant)."""
        flat, _ = ravel_pytree(net)
        std, _ = self._flat(net["layers"][0]["w"].shape[0])
        return -0.5 * jnp.sum((flat / std) ** 2)

    def _loglik_rows(self, net, x, z):
        mu, lv = self.forward(net, x)
        return -0.5 * (jnp.log(2.0 * jnp.pi) + lv + (z - mu) ** 2 * jnp.exp(-lv))

    # ------------------------------------------------------------ fitting

    def _prepare(self, X, y, mask):
        X = jnp.asarray(X)
        if X.ndim != 2:
            raise bad_argument("X", X.shape, "a float[n, d] feature matrix")
        y, mask = check_targets(X.shape[0], y, mask)
        dt = jnp.result_type(float)
        X, y = X.astype(dt), y.astype(dt)
        valid = mask.astype(bool) & jnp.isfinite(y) & jnp.all(jnp.isfinite(X), axis=1)
        cnt = jnp.maximum(valid.sum(), 1)
        # unused rows are zeroed so that NaN/inf garbage cannot leak through 0-weights
        Xv = jnp.where(valid[:, None], X, 0.0)
        yv = jnp.where(valid, y, 0.0)
        xm = Xv.sum(0) / cnt
        xs = jnp.sqrt(jnp.where(valid[:, None], (X - xm) ** 2, 0.0).sum(0) / cnt)
        xs = jnp.where(xs > 0, xs, 1.0)
        ym = yv.sum() / cnt
        ys = jnp.sqrt(jnp.where(valid, (y - ym) ** 2, 0.0).sum() / cnt)
        ys = jnp.where(ys > 0, ys, 1.0)
        x = jnp.where(valid[:, None], (Xv - xm) / xs, 0.0)
        z = jnp.where(valid, (yv - ym) / ys, 0.0)
        return x, z, valid, xm, xs, ym, ys

    def _log_post(self, x, z, valid):
        """Log posterior of the flat parameter vector (up to a constant)."""
        std, unravel = self._flat(x.shape[1])

        def log_post(flat):
            ll = self._loglik_rows(unravel(flat), x, z)
            return -0.5 * jnp.sum((flat / std) ** 2) + jnp.sum(jnp.where(valid, ll, 0.0))

        return log_post

    def _map(self, key, log_post, d):
        """Best of ``map_restarts`` Adam runs (vmapped) from prior draws, by log posterior: ``float[P]``."""
        std, _ = self._flat(d)
        opt = optax.adam(self.map_lr)
        grad = jax.grad(lambda f: -log_post(f))

        def run(f):
            def step(c, _):
                f, s = c
                upd, s = opt.update(grad(f), s, f)
                return (f + upd, s), None

            (f, _), _ = jax.lax.scan(step, (f, opt.init(f)), None, length=self.map_steps)
            lp = log_post(f)
            return f, jnp.where(jnp.isfinite(lp), lp, -jnp.inf)

        starts = std * jax.random.normal(key, (self.map_restarts,) + std.shape, std.dtype)
        fs, lps = jax.vmap(run)(starts)
        return fs[jnp.argmax(lps)]

    def _sghmc(self, key, flat, x, z, valid):
        """``float[num_samples, P]`` SGHMC samples started at ``flat``."""
        import blackjax
        from blackjax.sgmcmc.gradients import grad_estimator

        std, unravel = self._flat(x.shape[1])
        n, b = valid.shape[0], self.batch_size
        count = valid.sum()
        order = jnp.argsort(~valid, stable=True)  # real rows first, in their original order
        ranks = jnp.arange(n)

        def log_prior(f):
            return -0.5 * jnp.sum((f / std) ** 2)

        def loglik_one(f, row):
            xi, zi, wi = row
            return wi * self._loglik_rows(unravel(f), xi[None], zi[None])[0]

        # blackjax's estimator: log p(θ) + count · mean_batch(w · log p(z | x, θ))
        sampler = blackjax.sghmc(
            grad_estimator(log_prior, loglik_one, count),
            num_integration_steps=self.num_integration_steps,
            alpha=self.friction,
        )

        def step(p, k):
            kb, ks = jax.random.split(k)
            # b real rows without replacement, drawn in rank space (the k-th real row), so masked rows
            # change nothing, not even the random stream; with count <= b the batch is the full data
            u = jnp.where(ranks < count, jax.random.uniform(kb, (n,)), 2.0)
            pick = jnp.argsort(u)[:b] if b < n else jnp.concatenate([jnp.argsort(u), jnp.full(b - n, n - 1)])
            used = (jnp.arange(b) < count) & (jnp.arange(b) < n)
            w = used * (b / jnp.maximum(jnp.minimum(count, min(b, n)), 1))
            idx = order[pick]
            return sampler.step(ks, p, (x[idx], z[idx], w), self.step_size), None

        def block(p, k):
            p, _ = jax.lax.scan(step, p, jax.random.split(k, self.thinning))
            return p, p

        # one scan over blocks of `thinning` steps (burn-in rounded up to whole blocks) compiles the step once
        burn = -(-self.num_warmup // self.thinning)
        _, kept = jax.lax.scan(block, flat, jax.random.split(key, burn + self.num_samples))
        return kept[burn:]

    def fit(self, key: jax.Array, X, y: jax.Array, mask: jax.Array | None = None) -> BNNParams:
        """Posterior samples for ``X float[n, d]``, ``y float[n]``; rows with ``mask`` False are ignored."""
        x, z, valid, xm, xs, ym, ys = self._prepare(X, y, mask)
        log_post = self._log_post(x, z, valid)
        _, unravel = self._flat(x.shape[1])
        k_init, k_mc = jax.random.split(key)
        flat = self._map(k_init, log_post, x.shape[1])
        if self.inference == "nuts":
            flats = nuts_sample(
                k_mc, lambda f: -log_post(f), flat, self.num_warmup, self.num_samples, self.max_tree_depth
            )
        else:
            flats = self._sghmc(k_mc, flat, x, z, valid)
        return BNNParams(jax.vmap(unravel)(flats), xm, xs, ym, ys)

    # ------------------------------------------------------------ prediction

    def predict_samples(self, params: BNNParams, X):
        """Per-sample ``(means float[s, m], noise variances float[s, m])`` in target units."""
        X = jnp.asarray(X)
        if X.ndim != 2:
            raise bad_argument("X", X.shape, "a float[m, d] feature matrix")
        x = (X.astype(params.x_mean.dtype) - params.x_mean) / params.x_std
        mu, lv = jax.vmap(lambda net: self.forward(net, x))(params.samples)
        return params.y_mean + params.y_std * mu, params.y_std**2 * jnp.exp(lv)

    def predict(self, params: BNNParams, X) -> tuple[jax.Array, jax.Array]:
        """Predictive ``(mean float[m], var float[m])``: mean noise plus variance of the sample means."""
        mu, noise = self.predict_samples(params, X)
        mean = mu.mean(0)
        return mean, noise.mean(0) + jnp.mean((mu - mean) ** 2, 0)
