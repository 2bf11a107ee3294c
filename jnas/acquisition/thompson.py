"""Thompson sampling scores: argmax of a posterior draw picks the next point."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.errors import bad_argument


def thompson_sample(key: jax.Array, mean, var) -> jax.Array:
    """One draw per candidate from its Gaussian marginal ``N(mean, var)``; same shape as ``mean``.

    Marginals are sampled independently (no posterior correlations), the
    usual cheap approximation over large candidate sets.
    """
    mean = jnp.asarray(mean)
    return mean + jnp.sqrt(jnp.maximum(var, 0.0)) * jax.random.normal(key, mean.shape, jnp.result_type(mean, float))


def independent_thompson(key: jax.Array, predictions) -> jax.Array:
    """Independent Thompson sampling for ensembles (BANANAS): ``float[m]``.

    ``predictions float[members, m]``: each candidate gets the prediction of
    one member drawn uniformly and independently of the other candidates.
    """
    predictions = jnp.asarray(predictions)
    if predictions.ndim != 2:
        raise bad_argument("predictions", predictions.shape, "float[members, m]")
    members, m = predictions.shape
    pick = jax.random.randint(key, (m,), 0, members)
    return predictions[pick, jnp.arange(m)]
