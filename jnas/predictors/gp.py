"""Gaussian-process regression (ANASOD-BO's surrogate: Matérn 5/2, bounded ML-II).

Model, for standardised targets ``z`` of the scaled inputs ``u``::

    z = f(u) + ε,   f ~ GP(0, σ_f² k(u, u' / ℓ)),   ε ~ N(0, σ_n²)

* ``k`` is Matérn 5/2 ``(1 + √5 r + 5r²/3) exp(-√5 r)`` or RBF ``exp(-r²/2)``
  with ``r = ‖(u - u') / ℓ‖``; one lengthscale ``ℓ`` for all inputs, or one per
  input dimension with ``ard=True``. ``σ_f²`` (the *outputscale*, a variance,
  as in gpytorch's ``ScaleKernel``) and ``σ_n²`` (the noise variance) are the
  other hyperparameters.
* Inputs are scaled to ``[0, 1]``: ``u = (x - lo) / (hi - lo)`` with
  ``(lo, hi)`` the per-dimension min and max over the real training rows, or
  the fixed ``input_bounds``. Dimensions with ``hi == lo`` are only shifted.
* Targets: optionally ``log``-transformed (``log_target=True``; only valid for
  positive targets, a non-positive target of a real row is a ``JnasError``,
  or NaN predictions when ``fit`` is traced under ``jit``), then standardised
  by the mean and standard deviation over the real rows (``standardise``).

ML-II (``fully_bayesian=False``): every hyperparameter ``θ`` lives in a box
``[a, b]`` (defaults from ANASOD: lengthscale ``[0.01, 0.5]``, outputscale
``[0.5, 5]``, noise ``[1e-6, 1e-1]``) through ``log θ = log a + (log b - log a)
sigmoid(v)``, so an unconstrained optimiser on ``v`` maximises the log marginal
likelihood inside the box. ``restarts`` runs (the first at the box's geometric
centre or at ``init``, the others uniform in ``v ∈ [-2, 2]``) run one after
another on CPU (each stops on its own) and under ``vmap`` on accelerators; the
best likelihood wins. The optimiser (``optimizer``) is L-BFGS
(default: two-loop recursion over the last 10 pairs, a backtracking Armijo line
search by quadratic interpolation, at most ``steps`` iterations, stopped early when the largest gradient
entry is below ``gtol`` or the objective falls by less than ``ftol`` relative,
the tests of SciPy's L-BFGS-B) or ``steps`` Adam steps of rate ``lr``
(``optimizer="adam"``). All of it is one jittable function, so a
strategy can refit inside ``lax.scan``; warm-started from the previous fit
(``init``), L-BFGS typically stops after a few iterations.

Fully Bayesian (``fully_bayesian=True``): ``log θ`` uniform on its box (a
logistic density on ``v``) times the marginal likelihood, sampled with
NumPyro's NUTS (``jnas.predictors.nuts``: functional ``numpyro.infer.hmc.hmc``
driven by ``lax.scan``, so this mode is jittable too), started at the box centres. ``params``
then hold ``num_samples`` hyperparameter samples, ``predict`` returns the
moments of the mixture and ``predict_samples`` each sample's moments, for
integrated acquisition (Snoek et al., 2012).

Masked rows (``mask`` False) and rows with a non-finite target or input
(NaN is a failed evaluation in jnas) take no part: their rows and columns of
the Gram matrix are replaced by the identity and their targets by 0, so they
decouple exactly (their Cholesky rows are unit vectors, their weights
``K⁻¹ z`` are 0 and they add ``log 1 = 0`` to the log-determinant).

Predictions are in the original target units: ``mean = ȳ + s μ``,
``var = s² σ²`` with ``(μ, σ²)`` the latent posterior (plus ``σ_n²`` when
``observation_noise=True``). With ``log_target`` the Gaussian is over
``log y``, and ``predict`` returns the moments of the implied log-normal,
``E[y] = exp(m + v/2)``, ``Var[y] = (exp(v) - 1) exp(2m + v)``, where
``(m, v)`` are the log-space moments; ``log_space=True`` returns ``(m, v)``
instead (what acquisition on log targets usually wants).

Precision: under float32 the Gram matrix gets a diagonal jitter of ``1e-5``
(``1e-8`` under x64) on top of ``σ_n²``; if a Cholesky factor still fails,
the final factorisation retries with 10× and 100× the jitter. Enable
``jax_enable_x64`` for more than a few hundred observations.

Memory: kernels are built from direct coordinate differences (the expansion
``|a|² + |b|² - 2ab`` loses small distances in float32), ``O(n m d)`` for ``m``
query points; stream large candidate sets through
``jnas.predictors.base.score_in_chunks``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas.batching import sequential_vmap
from jnas.errors import JnasError, bad_argument, check_bounds, check_int, check_number, check_positive
from jnas.linalg import cholesky, solve_triangular
from jnas.predictors.base import Predictor, check_targets
from jnas.predictors.nuts import nuts_sample

KERNELS = ("matern52", "rbf")
#: candidates per block when predicting many at once (``GP.latent``)
PREDICT_CHUNK = 128
OPTIMIZERS = ("lbfgs", "adam")
LBFGS_MEMORY = 10
#: line-search trials per iteration (each backtrack shrinks the step to 0.1-0.5 of the last)
LBFGS_BACKTRACKS = 10
#: before any curvature pair exists, the step moves no coordinate by more than this share of its box
LBFGS_FIRST_STEP = 0.1
LENGTHSCALE_BOUNDS = (0.01, 0.5)
OUTPUTSCALE_BOUNDS = (0.5, 5.0)
NOISE_BOUNDS = (1e-6, 1e-1)


class GPParams(NamedTuple):
    """A conditioned GP; ``s`` hyperparameter samples (1 for ML-II).

    x: ``float[n, d]`` scaled training inputs (0 on unused rows).
    valid: ``bool[n]`` rows that took part in the fit.
    lo, span: ``float[d]`` input scaling ``u = (x - lo) / span``.
    y_mean, y_std: ``float[]`` target standardisation (after the log, if any).
    lengthscale: ``float[s, d]`` (ARD) or ``float[s, 1]``, in scaled input units.
    outputscale, noise: ``float[s]`` kernel variance and noise variance of standardised targets.
    chol: ``float[s, n, n]`` lower Cholesky factor of the masked Gram matrix.
    alpha: ``float[s, n]`` ``K⁻¹ z`` (0 on unused rows).
    """

    x: jax.Array
    valid: jax.Array
    lo: jax.Array
    span: jax.Array
    y_mean: jax.Array
    y_std: jax.Array
    lengthscale: jax.Array
    outputscale: jax.Array
    noise: jax.Array
    chol: jax.Array
    alpha: jax.Array


# ---------------------------------------------------------------- kernels


def kernel_matrix(kind: str, a: jax.Array, b: jax.Array, lengthscale: jax.Array, outputscale,
                  expand: bool = False) -> jax.Array:
    """``float[n, m]`` kernel between scaled inputs ``a float[n, d]`` and ``b float[m, d]``.

    ``lengthscale`` is ``float[d]`` or ``float[1]``; ``outputscale`` the kernel variance.
    ``expand``: squared distances as ``|a|² + |b|² - 2 a·b`` (one matrix product, several times faster
    for many points) instead of direct differences. The expansion loses about ``eps · |a|²`` to
    cancellation, so it serves predictions, not the Gram matrix whose small distances set the
    conditioning; with one shared lengthscale it runs on the unscaled inputs, exact for 0/1 codes.
    """
    if expand:
        shared = lengthscale.shape[-1] == 1
        if not shared:
            a, b = a / lengthscale, b / lengthscale
        r2 = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * (a @ b.T)
        r2 = jnp.maximum(r2, 0.0) / (lengthscale[0] ** 2 if shared else 1.0)
    else:
        a, b = a / lengthscale, b / lengthscale
        # direct differences: the expansion loses the small distances that matter most in float32
        r2 = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, -1)
    return _kernel_of_r2(kind, r2, outputscale)


def _kernel_of_r2(kind: str, r2: jax.Array, outputscale) -> jax.Array:
    """The kernel as a function of the squared scaled distance ``r2`` (any shape)."""
    if kind == "rbf":
        return outputscale * jnp.exp(-0.5 * r2)
    return outputscale * _matern52(r2)


@jax.custom_jvp
def _matern52(r2):
    """Matérn 5/2 ``(1 + √5 r + 5r²/3) exp(-√5 r)`` of ``r2 = r²``, with the derivative in closed form."""
    r = jnp.sqrt(jnp.maximum(r2, 0.0))
    return (1.0 + jnp.sqrt(5.0) * r + (5.0 / 3.0) * r2) * jnp.exp(-jnp.sqrt(5.0) * r)


@_matern52.defjvp
def _matern52_jvp(primals, tangents):
    # dk/d(r²) = -(5/6)(1 + √5 r) exp(-√5 r): finite at r = 0 (where sqrt' is not), and it shares the
    # exponential with the value, so the ML-II gradient costs a few products per Gram entry
    (r2,), (dr2,) = primals, tangents
    r = jnp.sqrt(jnp.maximum(r2, 0.0))
    e = jnp.exp(-jnp.sqrt(5.0) * r)
    s5r = jnp.sqrt(5.0) * r
    return (1.0 + s5r + (5.0 / 3.0) * r2) * e, -(5.0 / 6.0) * (1.0 + s5r) * e * dr2


def _squared_differences(x: jax.Array, ard: bool) -> jax.Array:
    """Unscaled squared differences of the rows of ``x float[n, d]``, computed once per fit.

    ``float[n, n]`` (summed over dimensions: one shared lengthscale divides it) or ``float[n, n, d]``
    (``ard``: a product with ``1 / ℓ²`` sums it). Direct differences, so small distances stay exact.
    """
    diff2 = (x[:, None, :] - x[None, :, :]) ** 2
    return diff2 if ard else jnp.sum(diff2, -1)


def _r2_of(diff2: jax.Array, lengthscale: jax.Array) -> jax.Array:
    """Squared scaled distances ``float[n, n]`` from ``_squared_differences`` and ``lengthscale float[d|1]``."""
    if diff2.ndim == 2:
        return diff2 / lengthscale[0] ** 2
    return diff2 @ (1.0 / lengthscale**2)


def _default_jitter() -> float:
    return 1e-8 if jnp.result_type(float) == jnp.float64 else 1e-5


def _gram(kind, x, valid, ls, os, noise, jitter, diff2=None):
    """Masked Gram matrix: unused rows/columns replaced by the identity (``diff2``: precomputed differences)."""
    n = x.shape[0]
    k = kernel_matrix(kind, x, x, ls, os) if diff2 is None else _kernel_of_r2(kind, _r2_of(diff2, ls), os)
    both = valid[:, None] & valid[None, :]
    diag = jnp.where(valid, noise + jitter, 1.0)
    return jnp.where(both, k, 0.0) + jnp.diag(diag) * jnp.eye(n, dtype=k.dtype)


def log_marginal_likelihood(kind, x, z, valid, lengthscale, outputscale, noise, jitter=None,
                            diff2=None) -> jax.Array:
    """``log p(z | u, θ)`` over the valid rows (scaled inputs ``x``, standardised targets ``z``; scalar).

    ``diff2``: ``_squared_differences(x, ard)``, when the same ``x`` serves many evaluations (ML-II).
    """
    jitter = _default_jitter() if jitter is None else jitter
    z = jnp.where(valid, z, 0.0)
    n_real = valid.sum()
    gram = _gram(kind, x, valid, lengthscale, outputscale, noise, jitter, diff2)
    return _gaussian_log_density(gram, z) - 0.5 * n_real * jnp.log(2.0 * jnp.pi)


@jax.custom_vjp
def _gaussian_log_density(gram, z):
    """``-zᵀK⁻¹z / 2 - log|K| / 2`` for ``K = gram float[n, n]`` (the LML without its constant)."""
    return _gaussian_log_density_fwd(gram, z)[0]


def _gaussian_log_density_fwd(gram, z):
    chol = cholesky(gram)
    w = solve_triangular(chol, z, lower=True)
    alpha = solve_triangular(chol, w, lower=True, trans=1)
    return -0.5 * jnp.sum(w * w) - jnp.sum(jnp.log(jnp.diagonal(chol))), (chol, alpha)


def _gaussian_log_density_bwd(res, g):
    # the closed form ∂/∂K = (ααᵀ - K⁻¹) / 2, with K⁻¹ from the factor by two triangular solves: less than half
    # the cost of differentiating through the Cholesky factorisation (200 points, LML + gradient: 2.0 -> 0.9 ms)
    chol, alpha = res
    l_inv = solve_triangular(chol, jnp.eye(chol.shape[0], dtype=chol.dtype), lower=True)
    k_inv = solve_triangular(chol, l_inv, lower=True, trans=1)
    return 0.5 * g * (jnp.outer(alpha, alpha) - k_inv), -g * alpha


_gaussian_log_density.defvjp(_gaussian_log_density_fwd, _gaussian_log_density_bwd)


def _factor(kind, x, z, valid, ls, os, noise, jitter):
    """``(chol float[s, n, n], alpha float[s, n])`` for ``s`` hyperparameter settings.

    If any Cholesky factor fails (float32 round-off), all are redone with 10×,
    then 100× the jitter; ``lax.cond`` keeps the retries off the common path.
    """

    def attempt(j):
        return jax.vmap(lambda a, b, c: cholesky(_gram(kind, x, valid, a, b, c, j)))(ls, os, noise)

    chol = attempt(jitter)
    for boost in (10.0, 100.0):
        chol = jax.lax.cond(jnp.all(jnp.isfinite(chol)), lambda c: c, lambda c, b=boost: attempt(jitter * b), chol)
    zz = jnp.where(valid, z, 0.0)
    alpha = jax.vmap(lambda c: solve_triangular(c.T, solve_triangular(c, zz, lower=True), lower=False))(chol)
    return chol, alpha


# ---------------------------------------------------------------- bounded hyperparameters


def _to_box(v, bounds):
    """Unconstrained ``v`` → ``θ`` in ``[a, b]`` with ``log θ`` linear in ``sigmoid(v)``."""
    return _from_unit(jax.nn.sigmoid(v), bounds)


def _from_unit(t, bounds):
    """``t ∈ [0, 1]`` → ``θ = exp(log a + (log b - log a) t)`` in ``[a, b]`` (L-BFGS's box coordinates)."""
    la, lb = jnp.log(bounds[0]), jnp.log(bounds[1])
    return jnp.exp(la + (lb - la) * t)


def _logit(t):
    """``sigmoid⁻¹(t)`` with ``t`` kept a float epsilon inside ``(0, 1)``: a point on the box's edge stays finite."""
    eps = jnp.finfo(jnp.result_type(t)).eps
    t = jnp.clip(t, eps, 1.0 - eps)
    return jnp.log(t) - jnp.log1p(-t)


# ---------------------------------------------------------------- input checks


def _concrete(x):
    """``x`` as a NumPy array, or ``None`` when it is traced."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


class GP(Predictor):
    """Gaussian-process regressor on feature vectors ``X float[n, d]``.

    Parameters
    ----------
    kernel: ``"matern52"`` (default) or ``"rbf"``.
    ard: one lengthscale per input dimension (default False: one shared, as in ANASOD).
    input_bounds: ``None`` (min–max over the training rows) or ``(lo, hi)``, each ``float[d]`` or scalar.
    log_target: fit ``log y`` (positive targets only).
    standardise: subtract the mean and divide by the std of the (log) targets.
    lengthscale_bounds, outputscale_bounds, noise_bounds: hyperparameter boxes (scaled inputs,
        standardised targets).
    optimizer: ML-II optimiser, ``"lbfgs"`` (default) or ``"adam"``.
    restarts, steps: ML-II restarts (sequential on CPU, vmapped elsewhere) and iterations (L-BFGS: at most) per restart.
    lr: Adam's learning rate (``optimizer="adam"``).
    gtol, ftol: L-BFGS stops when ``max |∂(-lml)/∂v| < gtol`` or the objective falls by less than
        ``ftol · max(|f|, 1)`` in an iteration.
    fully_bayesian: sample the hyperparameters with NUTS instead of ML-II.
    num_samples, warmup, max_tree_depth: NUTS settings (fully Bayesian mode).
    observation_noise: add the noise variance to the predictive variance (default: latent ``f`` only).
    jitter: diagonal jitter (default ``1e-5`` float32, ``1e-8`` float64).
    """

    name = "gp"

    def __init__(
        self,
        kernel: str = "matern52",
        ard: bool = False,
        input_bounds=None,
        log_target: bool = False,
        standardise: bool = True,
        lengthscale_bounds=LENGTHSCALE_BOUNDS,
        outputscale_bounds=OUTPUTSCALE_BOUNDS,
        noise_bounds=NOISE_BOUNDS,
        optimizer: str = "lbfgs",
        restarts: int = 4,
        steps: int = 100,
        lr: float = 0.1,
        gtol: float = 1e-5,
        ftol: float = 1e-9,
        fully_bayesian: bool = False,
        num_samples: int = 32,
        warmup: int = 100,
        max_tree_depth: int = 6,
        observation_noise: bool = False,
        jitter: float | None = None,
    ):
        if kernel not in KERNELS:
            raise bad_argument("kernel", kernel, "'matern52' or 'rbf'")
        if input_bounds is not None:
            if not isinstance(input_bounds, (tuple, list)) or len(input_bounds) != 2:
                raise bad_argument("input_bounds", input_bounds, "None or a pair (lo, hi) of arrays")
            lo, hi = (np.asarray(b, np.float64) for b in input_bounds)
            if lo.shape != hi.shape or lo.ndim > 1 or not np.all(hi > lo):
                raise bad_argument("input_bounds", input_bounds, "a pair (lo, hi) of equal shape with hi > lo")
            input_bounds = (lo, hi)
        self.kernel, self.ard, self.input_bounds = kernel, bool(ard), input_bounds
        self.log_target, self.standardise = bool(log_target), bool(standardise)
        self.bounds = (
            check_bounds("lengthscale_bounds", lengthscale_bounds),
            check_bounds("outputscale_bounds", outputscale_bounds),
            check_bounds("noise_bounds", noise_bounds),
        )
        if optimizer not in OPTIMIZERS:
            raise bad_argument("optimizer", optimizer, "'lbfgs' or 'adam'")
        self.optimizer = optimizer
        self.gtol = check_number("gtol", gtol, 0, expected="a number >= 0")
        self.ftol = check_number("ftol", ftol, 0, expected="a number >= 0")
        self.restarts = check_int("restarts", restarts, 1)
        self.steps = check_int("steps", steps, 0)
        self.lr = check_positive("lr", lr)
        self.fully_bayesian = bool(fully_bayesian)
        self.num_samples = check_int("num_samples", num_samples, 1)
        self.warmup = check_int("warmup", warmup, 0)
        self.max_tree_depth = check_int("max_tree_depth", max_tree_depth, 1)
        self.observation_noise = bool(observation_noise)
        if jitter is not None:
            check_number("jitter", jitter, 0, expected="None or a number >= 0")
        self.jitter = jitter

    # ------------------------------------------------------------ preprocessing

    def _check(self, X, y=None, mask=None):
        X = jnp.asarray(X)
        if X.ndim != 2:
            raise bad_argument("X", X.shape, "a float[n, d] feature matrix")
        if self.input_bounds is not None and self.input_bounds[0].size not in (1, X.shape[1]):
            raise bad_argument("X", X.shape, f"{self.input_bounds[0].size} features to match input_bounds")
        X = X.astype(jnp.result_type(float))
        if y is None:
            return X
        y, mask = check_targets(X.shape[0], y, mask)
        y = y.astype(X.dtype)
        valid = mask.astype(bool) & jnp.isfinite(y) & jnp.all(jnp.isfinite(X), axis=1)
        if self.log_target:
            yc, vc = _concrete(y), _concrete(valid)
            if yc is not None and vc is not None and np.any(yc[vc] <= 0):
                raise JnasError(
                    f"y: got a non-positive target ({yc[vc].min():g}), expected positive targets with log_target=True"
                )
        return X, y, valid

    def _scaling(self, X, valid):
        if self.input_bounds is not None:
            lo = jnp.broadcast_to(jnp.asarray(self.input_bounds[0], X.dtype), X.shape[1:])
            span = jnp.broadcast_to(jnp.asarray(self.input_bounds[1] - self.input_bounds[0], X.dtype), X.shape[1:])
            return lo, span
        any_real = valid.any()
        lo = jnp.where(valid[:, None], X, jnp.inf).min(0)
        hi = jnp.where(valid[:, None], X, -jnp.inf).max(0)
        lo = jnp.where(any_real, lo, 0.0)
        span = jnp.where(any_real & (hi > lo), hi - lo, 1.0)
        return lo, span

    def _targets(self, y, valid):
        t = jnp.log(jnp.where(valid, y, 1.0)) if self.log_target else jnp.where(valid, y, 0.0)
        if not self.standardise:
            return jnp.where(valid, t, 0.0), jnp.zeros((), y.dtype), jnp.ones((), y.dtype)
        cnt = jnp.maximum(valid.sum(), 1)
        mu = jnp.where(valid, t, 0.0).sum() / cnt
        sd = jnp.sqrt(jnp.where(valid, (t - mu) ** 2, 0.0).sum() / cnt)
        sd = jnp.where(sd > 0, sd, 1.0)
        return jnp.where(valid, (t - mu) / sd, 0.0), mu, sd

    def _prepare(self, X, y, mask):
        X, y, valid = self._check(X, y, mask)
        lo, span = self._scaling(X, valid)
        x = jnp.where(valid[:, None], (X - lo) / span, 0.0)
        z, mu, sd = self._targets(y, valid)
        return x, z, valid, lo, span, mu, sd

    def effective_jitter(self) -> float:
        """The diagonal jitter in use (``jitter``, or the dtype default)."""
        return _default_jitter() if self.jitter is None else self.jitter

    def _n_ls(self, d):
        return d if self.ard else 1

    def _unpack(self, v, d, unit: bool = False):
        """Unconstrained ``v float[n_ls + 2]`` (or box coordinates in ``[0, 1]``, ``unit``) → ``(lengthscale,
        outputscale, noise)``."""
        k = self._n_ls(d)
        ls_b, os_b, nz_b = self.bounds
        f = _from_unit if unit else _to_box
        return f(v[:k], ls_b), f(v[k], os_b), f(v[k + 1], nz_b)

    def _lml_fn(self, x, z, valid, unit: bool = False):
        """The log marginal likelihood as a function of unconstrained ``v`` (or of box coordinates, ``unit``)."""
        jitter, d = self.effective_jitter(), x.shape[1]
        # the differences do not depend on θ: computed once, each evaluation only rescales them
        # (measured: LML + gradient of 200 points 2.2 ms -> 1.0 ms)
        diff2 = _squared_differences(x, self.ard)

        def lml(v):
            ls, os, nz = self._unpack(v, d, unit)
            return log_marginal_likelihood(self.kernel, x, z, valid, ls, os, nz, jitter, diff2)

        return lml

    # ------------------------------------------------------------ fitting

    def _ml2(self, key, x, z, valid, p, init=None):
        """Best unconstrained hyperparameters ``float[p]`` over ``restarts`` runs of the ML-II optimiser.

        The first run starts at ``init`` (a warm start; default the box centre) unless the box centre has the
        higher likelihood, the others at uniform draws in ``[-2, 2]``. L-BFGS works in the box coordinates
        ``t = sigmoid(v) ∈ [0, 1]``, Adam on ``v``.
        """
        first = jnp.zeros((1, p)) if init is None else jnp.reshape(jnp.asarray(init, jnp.result_type(float)), (1, p))
        v0 = jnp.concatenate([first, jax.random.uniform(key, (self.restarts - 1, p), minval=-2.0, maxval=2.0)])
        unit = self.optimizer == "lbfgs"
        lml = self._lml_fn(x, z, valid, unit)

        def objective(v):
            loss = -lml(v)
            return jnp.where(jnp.isfinite(loss), loss, jnp.inf)  # a failed Cholesky is an infinitely bad point

        if unit:
            starts, run = jax.nn.sigmoid(v0), self._lbfgs_run
        else:
            starts, run = v0, self._adam_run
        if init is not None:
            # a warm start can sit on a plateau where no gradient leads out (a lengthscale on its lower bound fits
            # a few far-apart points as white noise; one more point and the optimum is elsewhere): the box centre
            # replaces it when already better there, at the price of one evaluation
            centre = jnp.full_like(starts[0], 0.5 if unit else 0.0)
            starts = starts.at[0].set(jnp.where(objective(centre) < objective(starts[0]), centre, starts[0]))
        if jax.default_backend() == "cpu":
            # one after another: each L-BFGS run stops on its own, where under vmap every run lasts as long as
            # the slowest and a batched Cholesky gains nothing on CPU (bench/gp.py: 4 restarts 0.85 s vmapped)
            vs, losses = jax.lax.map(lambda v: run(objective, v), starts)
        else:
            vs, losses = jax.vmap(lambda v: run(objective, v))(starts)
        best = vs[jnp.argmin(losses)]
        return _logit(best) if unit else best

    def _lbfgs_run(self, objective, t0):
        """``(t, loss)`` after box-constrained L-BFGS on ``t ∈ [0, 1]^p`` from ``t0`` (at most ``steps``
        iterations, early stop by ``gtol``/``ftol``).

        A projected quasi-Newton method in the manner of L-BFGS-B, simplified for a handful of variables: a
        coordinate on the box's edge whose gradient points outwards is held fixed (the active set); the
        two-loop recursion over the last ``LBFGS_MEMORY`` pairs gives the direction of the free ones; trial
        points are projected onto the box and accepted by an Armijo test on the projected step, the step
        shrunk up to ``LBFGS_BACKTRACKS`` times to the minimiser of a quadratic fit (within 0.1-0.5 of the
        last step); the first step, before any curvature pair, moves no coordinate by more than
        ``LBFGS_FIRST_STEP`` of its box. Working on the box itself matters: through a sigmoid a
        hyperparameter that belongs on its bound (often the noise) is approached ever more slowly and the
        ``ftol`` test stops the run short of it. Written here rather than taken from optax: optax's zoom line
        search deadlocked XLA:CPU when vmapped over seeds with a 150 x 150 Cholesky inside (the batched LAPACK
        deadlock that ``jnas.linalg`` now avoids), and a loop of its own stops each seed on its own.
        """
        m, p = LBFGS_MEMORY, t0.shape[0]
        value_grad = jax.value_and_grad(objective)
        t0 = jnp.clip(t0, 0.0, 1.0)
        loss0, g0 = value_grad(t0)
        ok0 = jnp.isfinite(loss0) & jnp.all(jnp.isfinite(g0))
        g0 = jnp.where(ok0, g0, 0.0)

        def free_of(t, g):
            return ~(((t <= 0.0) & (g > 0)) | ((t >= 1.0) & (g < 0)))

        def projected_gradient(t, g):
            return jnp.clip(t - g, 0.0, 1.0) - t

        def direction(g, free, S, Y, used):
            g = jnp.where(free, g, 0.0)
            S, Y = jnp.where(free, S, 0.0), jnp.where(free, Y, 0.0)  # the pairs restricted to the free coordinates
            sy = jnp.sum(S * Y, 1)
            used = used & (sy > 1e-10)
            rho = jnp.where(used, 1.0 / jnp.where(used, sy, 1.0), 0.0)

            def back(q, i):  # newest pair first
                a = rho[i] * jnp.dot(S[i], q)
                return q - a * Y[i], a

            order = jnp.arange(m - 1, -1, -1)
            q, alphas = jax.lax.scan(back, g, order)
            yy = jnp.sum(Y[m - 1] ** 2)
            # no pair yet: a steepest-descent step that moves no coordinate by more than LBFGS_FIRST_STEP of its
            # box (a full box width overshot by orders of magnitude in likelihood, and backtracking from there
            # cost several evaluations; with the quadratic backtracking, bench/gp.py's fit went 21 -> 17)
            gamma = jnp.where(used[m - 1] & (yy > 0), sy[m - 1] / jnp.where(yy > 0, yy, 1.0),
                              jnp.minimum(1.0, LBFGS_FIRST_STEP / jnp.maximum(jnp.max(jnp.abs(g)), 1e-30)))
            r = gamma * q

            def fwd(r, ia):
                i, a = ia
                b = rho[i] * jnp.dot(Y[i], r)
                return r + S[i] * (a - b), None

            r, _ = jax.lax.scan(fwd, r, (order[::-1], alphas[::-1]))
            d = jnp.where(free, -r, 0.0)
            return jnp.where(jnp.dot(d, g) < 0, d, -g)  # not a descent direction: steepest descent

        def body(c):
            t, loss, g, S, Y, used, it, _ = c
            d = direction(g, free_of(t, g), S, Y, used)

            def ls_cond(c):
                return (c[1] < LBFGS_BACKTRACKS) & ~c[2]

            def ls_body(c):
                # each trial with its gradient: the first trial is nearly always accepted, and a gradient
                # taken with the value costs less than evaluating the accepted point a second time
                step, k, _, _, _ = c
                trial = jnp.clip(t + step * d, 0.0, 1.0)
                f, gt = value_grad(trial)
                slope = jnp.dot(g, trial - t)  # along the projected path, per this step
                good = f <= loss + 1e-4 * slope
                # backtrack to the minimiser of the quadratic through f(0), f'(0) and f(step), kept within
                # [0.1, 0.5] of the step (Nocedal & Wright 3.5); a non-finite trial halves the step
                rise = f - loss - slope
                frac = jnp.where(jnp.isfinite(rise) & (rise > 0), -0.5 * slope / jnp.where(rise > 0, rise, 1.0), 0.5)
                return jnp.where(good, step, jnp.clip(frac, 0.1, 0.5) * step), k + 1, good, f, gt

            step, _, found, loss2, g2 = jax.lax.while_loop(
                ls_cond, ls_body, (jnp.ones((), t.dtype), jnp.int32(0), False, loss, g))
            t2 = jnp.clip(t + step * d, 0.0, 1.0)
            ok = found & jnp.isfinite(loss2) & jnp.all(jnp.isfinite(g2))
            s_new, y_new = t2 - t, g2 - g
            keep = ok & (jnp.dot(s_new, y_new) > 1e-10)  # curvature condition, else the pair is skipped
            S2 = jnp.where(keep, jnp.concatenate([S[1:], s_new[None]]), S)
            Y2 = jnp.where(keep, jnp.concatenate([Y[1:], y_new[None]]), Y)
            used2 = jnp.where(keep, jnp.concatenate([used[1:], jnp.ones(1, bool)]), used)
            small = ((jnp.max(jnp.abs(projected_gradient(t2, g2))) < self.gtol)
                     | (loss - loss2 <= self.ftol * jnp.maximum(jnp.abs(loss2), 1.0)))
            return (jnp.where(ok, t2, t), jnp.where(ok, loss2, loss), jnp.where(ok, g2, g), S2, Y2, used2, it + 1,
                    ~ok | small)

        zeros = jnp.zeros((m, p), t0.dtype)

        def phase(t, loss, g, S, Y, used, it):
            """L-BFGS from ``t`` until a stopping test (or ``steps`` iterations in all)."""
            init = (t, loss, g, S, Y, used, it, False)
            t, loss, g, S, Y, used, it, _ = jax.lax.while_loop(lambda c: (c[6] < self.steps) & ~c[7], body, init)
            return t, loss, g, S, Y, used, it

        def probe(t, loss, g):
            """Each free coordinate moved alone to the bound its gradient points at; the best if it is lower.

            L-BFGS stops on ``ftol`` while a hyperparameter whose optimum is a bound (the noise of a
            noiseless table, typically) still creeps along a nearly flat direction; the jump to the bound is
            the projected-gradient step L-BFGS-B's Cauchy point would take. At most ``p`` succeed.
            """
            target = jnp.where(g > 0, 0.0, 1.0)
            movable = free_of(t, g) & (jnp.abs(projected_gradient(t, g)) >= self.gtol)
            cands = jnp.where(jnp.eye(p, dtype=bool), target[:, None], t[None, :])
            if jax.default_backend() == "cpu":
                # only the movable ones, one at a time under a cond (a run that stopped on gtol has none); a
                # vmap would factor all p matrices, one after another on CPU anyway (jnas.linalg)
                losses = jax.lax.map(lambda cm: jax.lax.cond(cm[1], objective, lambda c: jnp.full((), jnp.inf, c.dtype),
                                                             cm[0]), (cands, movable))
            else:
                losses = jnp.where(movable, jax.vmap(objective)(cands), jnp.inf)
            best = jnp.argmin(losses)
            return cands[best], losses[best] < loss

        def outer(c):
            t, loss, g, S, Y, used, it, _ = c
            t, loss, g, S, Y, used, it = phase(t, loss, g, S, Y, used, it)
            t_b, better = probe(t, loss, g)
            # the gradient only where the probe moved (a select under vmap, on accelerators: both branches run)
            loss_b, g_b = jax.lax.cond(better, value_grad, lambda v: (loss, g), t_b)
            better = better & jnp.isfinite(loss_b) & jnp.all(jnp.isfinite(g_b))
            # the memory stays: its pairs still describe the other coordinates, now the free ones
            return (jnp.where(better, t_b, t), jnp.where(better, loss_b, loss), jnp.where(better, g_b, g), S, Y,
                    used, it, better)

        # a start with no finite likelihood (or gradient) is given up at once; another restart may succeed
        go = ok0 & (jnp.max(jnp.abs(projected_gradient(t0, g0))) >= self.gtol)
        t, loss, *_ = jax.lax.while_loop(lambda c: (c[6] < self.steps) & c[7], outer,
                                         (t0, loss0, g0, zeros, zeros, jnp.zeros(m, bool), jnp.int32(0), go))
        return t, loss

    def _adam_run(self, objective, v0):
        """``(v, loss)``: the best point seen in ``steps`` Adam steps from ``v0``."""
        opt = optax.adam(self.lr)
        loss_grad = jax.value_and_grad(objective)

        def step(c, _):
            v, s, best_v, best_l = c
            loss, g = loss_grad(v)
            ok = jnp.isfinite(loss) & jnp.all(jnp.isfinite(g))
            better = ok & (loss < best_l)
            best_v = jnp.where(better, v, best_v)
            best_l = jnp.where(better, loss, best_l)
            upd, s2 = opt.update(jnp.where(ok, g, 0.0), s, v)
            # a failed Cholesky (NaN) leaves the point and the optimiser state as they were
            s = jax.tree.map(lambda a, b: jnp.where(ok, a, b), s2, s)
            return (jnp.where(ok, v + upd, v), s, best_v, best_l), None

        init = (v0, opt.init(v0), v0, jnp.array(jnp.inf, v0.dtype))
        (v, _, best_v, best_l), _ = jax.lax.scan(step, init, None, length=self.steps)
        last = objective(v)
        better = last < best_l
        return jnp.where(better, v, best_v), jnp.where(better, last, best_l)

    def _potential(self, lml):
        def potential(v):
            # log θ uniform on its box ⇔ v logistic: log p(v) = log σ(v) + log σ(-v)
            log_prior = jnp.sum(jax.nn.log_sigmoid(v) + jax.nn.log_sigmoid(-v))
            val = -(lml(v) + log_prior)
            return jnp.where(jnp.isfinite(val), val, jnp.inf)

        return potential

    def fit(self, key: jax.Array, X, y: jax.Array, mask: jax.Array | None = None, init=None) -> GPParams:
        """Condition on ``X float[n, d]``, ``y float[n]`` with hyperparameters by ML-II or NUTS.

        Rows with ``mask`` False or a non-finite ``y`` or ``X`` row are ignored exactly.
        ``init``: unconstrained hyperparameters ``float[n_ls + 2]`` where the first ML-II run starts
        (``unconstrained(previous_fit)``: a warm start inside a search); ignored by NUTS.
        Returns ``GPParams`` with ``s = 1`` (ML-II) or ``num_samples`` hyperparameter samples.
        """
        x, z, valid, lo, span, mu, sd = self._prepare(X, y, mask)
        p = self._n_ls(x.shape[1]) + 2
        if self.fully_bayesian:
            # NUTS starts at the box centre (the prior's mode in v); its warmup finds the posterior
            v = nuts_sample(
                key, self._potential(self._lml_fn(x, z, valid)), jnp.zeros(p, x.dtype), self.warmup, self.num_samples,
                self.max_tree_depth,
            )
        else:
            # seeds vmapped over fit: on CPU one ML-II run after another (jnas.batching: 3.6x faster for bo)
            args = (key, x, z, valid) if init is None else (key, x, z, valid, jnp.asarray(init))
            v = sequential_vmap(lambda k, *a: self._ml2(k, *a[:3], p, *a[3:]))(*args)[None]
        ls, os, nz = jax.vmap(lambda t: self._unpack(t, x.shape[1]))(v)
        return self._condition(x, z, valid, lo, span, mu, sd, ls, os, nz)

    def _condition(self, x, z, valid, lo, span, mu, sd, ls, os, nz):
        jitter = self.effective_jitter()
        chol, alpha = _factor(self.kernel, x, z, valid, ls, os, nz, jitter)
        return GPParams(x, valid, lo, span, mu, sd, ls, os, nz, chol, alpha)

    def condition(self, X, y, lengthscale, outputscale, noise, mask=None) -> GPParams:
        """``GPParams`` for fixed hyperparameters (no optimisation); each may carry a leading sample axis.

        ``lengthscale`` ``float[]``, ``float[d]`` or ``float[s, d|1]``; ``outputscale`` and ``noise``
        ``float[]`` or ``float[s]`` (scaled inputs, standardised targets).
        """
        x, z, valid, lo, span, mu, sd = self._prepare(X, y, mask)
        os = jnp.atleast_1d(jnp.asarray(outputscale, x.dtype))
        nz = jnp.atleast_1d(jnp.asarray(noise, x.dtype))
        ls = jnp.asarray(lengthscale, x.dtype)
        ls = ls.reshape((1, -1)) if ls.ndim <= 1 else ls
        s = max(os.shape[0], nz.shape[0], ls.shape[0])
        ls = jnp.broadcast_to(ls, (s, ls.shape[1]))
        return self._condition(
            x, z, valid, lo, span, mu, sd, ls, jnp.broadcast_to(os, (s,)), jnp.broadcast_to(nz, (s,))
        )

    def log_marginal_likelihood(self, X, y, lengthscale, outputscale, noise, mask=None) -> jax.Array:
        """Log marginal likelihood (scalar) of the preprocessed data at the given hyperparameters.

        Standardised-target units (the quantity ML-II maximises); ``lengthscale`` ``float[]`` or ``float[d]``.
        """
        x, z, valid, *_ = self._prepare(X, y, mask)
        ls = jnp.atleast_1d(jnp.asarray(lengthscale, x.dtype))
        return log_marginal_likelihood(self.kernel, x, z, valid, ls, outputscale, noise, self.effective_jitter())

    def n_hyperparameters(self, d: int) -> int:
        """Length of the unconstrained hyperparameter vector for ``d`` input features."""
        return self._n_ls(d) + 2

    def unconstrained(self, params: GPParams) -> jax.Array:
        """The unconstrained vector ``float[n_ls + 2]`` of the first hyperparameter sample of ``params``
        (the inverse of the box map; a value on a bound stays finite: for L-BFGS, which works on the box, a
        float epsilon inside it, for Adam, whose sigmoid saturates, clipped to ``[-8, 8]``)."""
        def inv(theta, bounds):
            la, lb = jnp.log(bounds[0]), jnp.log(bounds[1])
            frac = (jnp.log(theta) - la) / (lb - la)
            if self.optimizer == "lbfgs":
                return _logit(frac)
            frac = jnp.clip(frac, 1e-6, 1 - 1e-6)
            return jnp.clip(jnp.log(frac) - jnp.log1p(-frac), -8.0, 8.0)

        ls_b, os_b, nz_b = self.bounds
        return jnp.concatenate([inv(params.lengthscale[0], ls_b), inv(params.outputscale[:1], os_b),
                                inv(params.noise[:1], nz_b)])

    def initial_hyperparameters(self, d: int):
        """``(lengthscale float[d|1], outputscale, noise)`` where the first ML-II restart starts (box centres)."""
        return self._unpack(jnp.zeros(self._n_ls(d) + 2), d)

    # ------------------------------------------------------------ prediction

    def scale_inputs(self, params: GPParams, X) -> jax.Array:
        """``X float[m, d]`` mapped with the training scaling (``float[m, d]``)."""
        X = self._check(X)
        if self.input_bounds is not None:
            # the same numbers as params.lo/span, but constants: under a vmap over seeds the scaled candidates
            # then stay one unbatched array (measured: half the cost of bo's scoring of all NB201 cells)
            lo, span = self._scaling(X, None)
            return (X - lo) / span
        return (X - params.lo) / params.span

    def latent(self, params: GPParams, X, with_factor: bool = True):
        """Standardised latent moments per sample and the factor for covariances.

        Returns ``mean float[s, m]``, ``var float[s, m]`` of ``f`` (standardised
        units, no noise) and ``V = L⁻¹ k(x_train, X)`` ``float[s, n, m]``, so that
        ``cov(f(a), f(b)) = k(a, b) - V[:, :, a]ᵀ V[:, :, b]``. With
        ``with_factor=False`` the third item is ``None`` and the moments are
        computed ``PREDICT_CHUNK`` candidates at a time, so that the ``n × m``
        kernel block never leaves the cache (scoring all 15,625 NB201 cells for
        ten seeds at 150 points: 157 -> 78 ms on the 2-core CI machine, where
        every pass over a 94 MB array costs 30 ms).
        """
        u = self.scale_inputs(params, X)

        def one(ls, os, chol, alpha):
            # L⁻¹ once (n×n), then one matrix product over the candidates: on CPU about twice as fast as a
            # triangular solve with m right-hand sides, the same up to float round-off (L is well conditioned:
            # its diagonal is at least sqrt(noise + jitter))
            l_inv = solve_triangular(chol, jnp.eye(chol.shape[0], dtype=chol.dtype), lower=True)

            def block(ub):
                ks = jnp.where(params.valid[:, None], kernel_matrix(self.kernel, params.x, ub, ls, os, expand=True),
                               0.0)
                v = l_inv @ ks
                return ks.T @ alpha, jnp.maximum(os - jnp.sum(v * v, 0), 0.0), v

            m = u.shape[0]
            if with_factor or m <= PREDICT_CHUNK:
                out = block(u)
                return out if with_factor else (*out[:2], None)
            n_chunks = -(-m // PREDICT_CHUNK)
            padded = jnp.concatenate([u, jnp.broadcast_to(u[:1], (n_chunks * PREDICT_CHUNK - m, u.shape[1]))])
            mean, var = jax.lax.map(lambda ub: block(ub)[:2], padded.reshape(n_chunks, PREDICT_CHUNK, -1))
            return mean.reshape(-1)[:m], var.reshape(-1)[:m], None

        if params.chol.shape[0] == 1:  # ML-II: no sample axis to map over (a batched product is slower on CPU)
            return jax.tree.map(lambda a: a[None], one(params.lengthscale[0], params.outputscale[0], params.chol[0],
                                                       params.alpha[0]))
        return jax.vmap(one)(params.lengthscale, params.outputscale, params.chol, params.alpha)

    def prior_covariance(self, params: GPParams, A, B) -> jax.Array:
        """Prior covariance ``float[s, ma, mb]`` between raw inputs ``A`` and ``B`` (standardised units)."""
        a, b = self.scale_inputs(params, A), self.scale_inputs(params, B)
        return jax.vmap(lambda ls, os: kernel_matrix(self.kernel, a, b, ls, os))(params.lengthscale, params.outputscale)

    def to_original(self, params: GPParams, mean, var, log_space: bool = False):
        """Map standardised latent moments ``float[s, m]`` to target units (adds noise if ``observation_noise``)."""
        if self.observation_noise:
            var = var + params.noise[:, None]
        m = params.y_mean + params.y_std * mean
        v = params.y_std**2 * var
        if self.log_target and not log_space:
            return jnp.exp(m + 0.5 * v), jnp.expm1(v) * jnp.exp(2.0 * m + v)
        return m, v

    def predict_samples(self, params: GPParams, X, log_space: bool = False):
        """Per-sample predictive moments ``(means float[s, m], vars float[s, m])`` in target units."""
        mean, var, _ = self.latent(params, X, with_factor=False)
        return self.to_original(params, mean, var, log_space)

    def predict(self, params: GPParams, X, log_space: bool = False) -> tuple[jax.Array, jax.Array]:
        """Predictive ``(mean float[m], var float[m])``: the moments of the mixture over samples."""
        means, vars_ = self.predict_samples(params, X, log_space)
        mean = means.mean(0)
        return mean, vars_.mean(0) + jnp.mean((means - mean) ** 2, 0)
