"""Batch selection: kriging believer fantasies and local penalisation.

Both pick ``q`` distinct candidates out of a fixed candidate set, greedily,
inside ``lax.scan`` (jittable). Acquisitions are maximised.

* Kriging believer (Ginsbourger et al., 2010): after each pick, pretend the
  surrogate's posterior mean at the picked point was observed there, update
  the surrogate, and pick again.

  - ``kriging_believer``: any predictor, through its ``fit``/``predict``. The
    observation buffers grow by ``q`` padded rows, the fantasies are written
    into them and the predictor is refitted (hyperparameters included) before
    each pick: ``q`` fits.
  - ``kriging_believer_gp``: a GP with its hyperparameters held fixed. Observing
    the posterior mean leaves the GP mean unchanged and shrinks the variance by
    a rank-1 update, ``Σ' = Σ - c cᵀ`` with ``c = Σ[:, i] / sqrt(Σ[i, i] + σ_n²)``,
    so nothing is refitted: ``O(q (n + q) m)`` work for ``m`` candidates and
    ``n`` observations. With several hyperparameter samples (fully Bayesian)
    each sample is updated and the acquisition is averaged over samples.

* Local penalisation (González et al., 2016): the acquisition is multiplied by
  a penaliser around each pending point ``x_j``,
  ``φ(x; x_j) = Φ((L ‖x - x_j‖ - M + μ(x_j)) / σ(x_j))``: the probability that
  ``x`` lies outside the ball around ``x_j`` that cannot hold the maximum
  ``M`` of an ``L``-Lipschitz objective. ``L`` comes from
  ``lipschitz_from_gradients`` (the paper: the largest gradient norm of the
  posterior mean) or ``lipschitz_from_pairs`` (the largest slope between pairs
  of points, for discrete encodings). Distances are Euclidean in the feature
  space the caller passes; use the same space as for ``L``.

Clients: ``bo --set batch_rule=believer`` calls ``kriging_believer_gp`` and
``bo --set batch_rule=penalise`` calls ``select_local_penalisation`` with
``lipschitz_from_pairs``. ``kriging_believer`` (any predictor, refitted per
pick), ``local_penalisation`` (the penalised scores themselves) and
``lipschitz_from_gradients`` have no client in jnas yet besides the tests
(``tests/test_gp_bnn_acquisition.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from jnas.errors import bad_argument, check_int


def _check_q(q, m) -> int:
    return check_int("q", q, 1, m, expected=f"an integer in [1, {m}] (at most the number of candidates)")


def _pick(scores, picked):
    """Index of the best not-yet-picked candidate (a picked one only if nothing else is left)."""
    s = jnp.where(picked, -jnp.inf, jnp.maximum(scores, jnp.finfo(scores.dtype).min))
    return jnp.argmax(jnp.where(jnp.isnan(s), jnp.finfo(scores.dtype).min, s))


def kriging_believer(key: jax.Array, predictor, X, y, mask, candidates, q: int, acquisition) -> jax.Array:
    """Pick ``q`` distinct candidates, refitting ``predictor`` on posterior-mean fantasies: ``int32[q]``.

    ``X`` (pytree, leading axis ``n``), ``y float[n]``, ``mask bool[n]`` (or
    ``None``) are the observations; ``candidates`` a pytree like ``X`` with
    leading axis ``m``; ``acquisition(mean, var) -> float[m]`` (close over
    ``best``, which stays fixed). ``predictor.fit`` must accept ``mask``.
    """
    y = jnp.asarray(y)
    candidates = jax.tree.map(jnp.asarray, candidates)
    n = y.shape[0]
    m = jax.tree.leaves(candidates)[0].shape[0]
    q = _check_q(q, m)
    mask = jnp.ones(n, bool) if mask is None else jnp.asarray(mask, bool)
    Xa = jax.tree.map(
        lambda a, c: jnp.concatenate([jnp.asarray(a), jnp.zeros((q,) + a.shape[1:], a.dtype)]), X, candidates
    )
    ya = jnp.concatenate([y, jnp.zeros(q, y.dtype)])
    ma = jnp.concatenate([mask, jnp.zeros(q, bool)])

    def body(carry, inp):
        Xa, ya, ma, picked = carry
        j, k = inp
        mean, var = predictor.predict(predictor.fit(k, Xa, ya, ma), candidates)
        i = _pick(acquisition(mean, var), picked)
        Xa = jax.tree.map(lambda a, c: a.at[n + j].set(c[i].astype(a.dtype)), Xa, candidates)
        ya = ya.at[n + j].set(mean[i].astype(ya.dtype))
        return (Xa, ya, ma.at[n + j].set(True), picked.at[i].set(True)), i

    init = (Xa, ya, ma, jnp.zeros(m, bool))
    _, idx = jax.lax.scan(body, init, (jnp.arange(q), jax.random.split(key, q)))
    return idx.astype(jnp.int32)


def kriging_believer_gp(gp, params, candidates, q: int, acquisition) -> jax.Array:
    """Kriging believer for a conditioned GP by rank-1 variance updates: ``int32[q]`` distinct indices.

    ``gp`` is a ``jnas.predictors.gp.GP`` and ``params`` its ``GPParams``;
    ``candidates float[m, d]`` raw inputs; ``acquisition(mean, var) -> float[m]``
    in target units (``GP.predict_samples`` units), averaged over hyperparameter
    samples. The fantasies are noisy observations (noise variance ``σ_n²`` of
    each sample, plus the GP's jitter) of the latent function, as a real
    evaluation would be; this equals refitting with the hyperparameters held
    fixed when the input scaling is fixed (``input_bounds``) and targets are
    not standardised (otherwise a refit would also move the scaling).
    """
    candidates = jnp.asarray(candidates)
    m = candidates.shape[0]
    q = _check_q(q, m)
    mean0, var0, V = gp.latent(params, candidates)  # [s, m], [s, m], [s, n, m]
    s = mean0.shape[0]

    def body(carry, j):
        C, picked = carry  # C[s, q, m]: rank-1 factors of the picks so far
        var = jnp.maximum(var0 - jnp.sum(C * C, 1), 0.0)
        means, vars_ = gp.to_original(params, mean0, var)
        score = jax.vmap(acquisition)(means, vars_).mean(0)
        i = _pick(score, picked)
        k_i = gp.prior_covariance(params, candidates, jax.lax.dynamic_slice_in_dim(candidates, i, 1))[:, :, 0]
        cov_i = k_i - jnp.einsum("snm,sn->sm", V, V[:, :, i]) - jnp.einsum("sqm,sq->sm", C, C[:, :, i])
        c = cov_i / jnp.sqrt(var[:, i] + params.noise + gp.effective_jitter())[:, None]
        return (C.at[:, j].set(c), picked.at[i].set(True)), i

    init = (jnp.zeros((s, q, m), mean0.dtype), jnp.zeros(m, bool))
    _, idx = jax.lax.scan(body, init, jnp.arange(q))
    return idx.astype(jnp.int32)


# ---------------------------------------------------------------- local penalisation


def lipschitz_from_gradients(mean_fn, X) -> jax.Array:
    """``max_x ‖∇μ(x)‖`` over the rows of ``X float[k, d]``; ``mean_fn(X) -> float[k]`` (scalar).

    The estimate of González et al. (2016); evaluate it on the candidates or a
    sample of the domain. Floored at ``1e-7`` so that penalisers stay defined.
    """
    X = jnp.asarray(X)
    grads = jax.vmap(jax.grad(lambda x: mean_fn(x[None])[0]))(X)
    return jnp.maximum(jnp.max(jnp.linalg.norm(grads, axis=-1)), 1e-7)


def lipschitz_from_pairs(X, values, mask=None) -> jax.Array:
    """``max |v_i - v_j| / ‖x_i - x_j‖`` over pairs of distinct rows of ``X float[k, d]`` (scalar, ``>= 1e-7``).

    For discrete encodings, where gradients of the mean mean little; ``values``
    are observations or posterior means, ``mask`` marks real rows. ``O(k²)``.
    """
    X = jnp.asarray(X)
    values = jnp.asarray(values)
    d = jnp.sqrt(jnp.sum((X[:, None] - X[None]) ** 2, -1))
    ok = d > 0
    if mask is not None:
        ok = ok & mask[:, None] & mask[None, :]
    slope = jnp.abs(values[:, None] - values[None]) / jnp.where(ok, d, 1.0)
    return jnp.maximum(jnp.max(jnp.where(ok, slope, 0.0)), 1e-7)


def _log_penalty(X, pending, pending_mean, pending_var, lipschitz, best):
    """``float[m]``: ``Σ_j log φ(x; x_j)`` over the pending points (``pending_mean`` NaN = no point)."""
    dist = jnp.sqrt(jnp.sum((X[:, None, :] - pending[None, :, :]) ** 2, -1))  # [m, p]
    std = jnp.sqrt(jnp.maximum(pending_var, 1e-12))
    logphi = log_ndtr((lipschitz * dist - best + pending_mean) / std)
    return jnp.sum(jnp.where(jnp.isnan(pending_mean), 0.0, logphi), -1)


def _transform(acq, transform):
    if transform == "softplus":
        return jax.nn.softplus(acq)
    if transform == "none":
        return acq
    raise bad_argument("transform", transform, "'softplus' (any acquisition) or 'none' (non-negative ones, e.g. EI)")


def local_penalisation(acq, X, pending, pending_mean, pending_var, lipschitz, best, transform: str = "softplus"):
    """Penalised acquisition ``g(α(x)) Π_j φ(x; x_j)``: ``float[m]``.

    ``acq float[m]`` at candidates ``X float[m, d]``; ``pending float[p, d]``
    with the surrogate's ``pending_mean, pending_var float[p]`` there;
    ``lipschitz`` the Lipschitz constant ``L``; ``best`` the estimate ``M`` of
    the maximum (e.g. the best observation). ``g`` is ``softplus`` (makes any
    acquisition positive, as the paper does) or the identity (``"none"``).
    """
    g = _transform(acq, transform)
    return g * jnp.exp(_log_penalty(jnp.asarray(X), jnp.asarray(pending), pending_mean, pending_var, lipschitz, best))


def select_local_penalisation(acq, X, mean, var, q: int, lipschitz, best, transform: str = "softplus"):
    """Greedy batch of ``q`` distinct candidates by local penalisation: ``int32[q]``.

    ``acq, mean, var float[m]`` at candidates ``X float[m, d]``; each pick
    becomes a pending point with its own ``mean``/``var`` and penalises the rest.
    """
    X = jnp.asarray(X)
    m = X.shape[0]
    q = _check_q(q, m)
    log_g = jnp.log(_transform(acq, transform))
    pend_x = jnp.zeros((q, X.shape[1]), X.dtype)
    pend_m = jnp.full((q,), jnp.nan, mean.dtype)
    pend_v = jnp.ones((q,), var.dtype)

    def body(carry, j):
        px, pm, pv, picked = carry
        i = _pick(log_g + _log_penalty(X, px, pm, pv, lipschitz, best), picked)
        return (px.at[j].set(X[i]), pm.at[j].set(mean[i]), pv.at[j].set(var[i]), picked.at[i].set(True)), i

    _, idx = jax.lax.scan(body, (pend_x, pend_m, pend_v, jnp.zeros(m, bool)), jnp.arange(q))
    return idx.astype(jnp.int32)
