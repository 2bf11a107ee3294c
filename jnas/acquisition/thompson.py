"""Thompson sampling scores: argmax of a posterior draw picks the next point.

Two approximate posteriors, one draw per candidate, independent across
candidates (no posterior correlations — the usual cheap approximation over
large candidate sets):

* ``thompson_sample(key, mean, var)``: a Gaussian marginal per candidate
  (any surrogate with predictive moments, e.g. the GP of ``bo``).
* ``independent_thompson(key, predictions, method)``: an ensemble's
  predictions ``float[members, m]``. ``method="gaussian"`` is BANANAS's
  "independent Thompson sampling" as the paper and its code (naszilla's
  ``its``) define it: a draw from ``N(mean, var)`` with the members' mean and
  variance (``ddof=0``); this is what the ``bananas`` strategy uses by
  default. ``method="member"`` (this function's default) draws one member per
  candidate uniformly: the ensemble's own empirical posterior, no Gaussian
  assumption (``bananas --set its=member``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.errors import bad_argument

#: ``independent_thompson`` methods
ITS_METHODS = ("gaussian", "member")


def thompson_sample(key: jax.Array, mean, var) -> jax.Array:
    """One draw per candidate from its Gaussian marginal ``N(mean, var)``; same shape as ``mean``.

    Marginals are sampled independently (no posterior correlations), the
    usual cheap approximation over large candidate sets.
    """
    mean = jnp.asarray(mean)
    return mean + jnp.sqrt(jnp.maximum(var, 0.0)) * jax.random.normal(key, mean.shape, jnp.result_type(mean, float))


def independent_thompson(key: jax.Array, predictions, method: str = "member") -> jax.Array:
    """Independent Thompson sampling for ensembles: ``float[m]``, one draw per candidate.

    ``predictions float[members, m]``. ``method="member"``: each candidate gets
    the prediction of one member drawn uniformly and independently of the
    other candidates. ``method="gaussian"`` (BANANAS, White et al. 2021): each
    candidate gets an independent draw from ``N(mean, var)``, the members'
    mean and variance (``ddof=0``) at that candidate.
    """
    predictions = jnp.asarray(predictions)
    if predictions.ndim != 2:
        raise bad_argument("predictions", predictions.shape, "float[members, m]")
    if method == "gaussian":
        mean, var = predictions.mean(0), predictions.var(0)
        return mean + jnp.sqrt(var) * jax.random.normal(key, mean.shape)
    if method != "member":
        raise bad_argument("method", method, f"one of {', '.join(ITS_METHODS)}")
    members, m = predictions.shape
    pick = jax.random.randint(key, (m,), 0, members)
    return predictions[pick, jnp.arange(m)]
