"""Improvement-based acquisition for maximisation: EI, PI and the noisy incumbent.

All functions are pure and jittable over ``mean``/``var`` arrays of any
shape (usually ``float[m]`` candidates); ``best`` and ``xi`` broadcast.
Where ``var == 0`` the prediction is a point mass and both criteria take
their limits (EI ``max(μ - best - ξ, 0)``, PI ``1[μ > best + ξ]``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr


def _split_std(var):
    """``(std, positive)`` with ``std`` replaced by 1 where it is 0, so that divisions stay finite."""
    std = jnp.sqrt(jnp.maximum(var, 0.0))
    pos = std > 0
    return jnp.where(pos, std, 1.0), pos


def expected_improvement(mean, var, best, xi=0.0) -> jax.Array:
    """``E[max(f - best - ξ, 0)]`` for ``f ~ N(mean, var)``; same shape as ``mean``.

    ``xi >= 0`` trades exploitation for exploration (Lizotte 2008). Zero where
    ``var == 0`` and ``mean <= best + ξ``; increasing in ``mean`` and in ``var``.
    """
    std, pos = _split_std(var)
    imp = mean - best - xi
    z = imp / std
    ei = std * (z * ndtr(z) + jnp.exp(-0.5 * z * z) / jnp.sqrt(2.0 * jnp.pi))
    # the closed form cancels for z << 0; EI is never negative
    return jnp.where(pos, jnp.maximum(ei, 0.0), jnp.maximum(imp, 0.0))


def probability_of_improvement(mean, var, best, xi=0.0) -> jax.Array:
    """``P(f > best + ξ)`` for ``f ~ N(mean, var)``, in ``[0, 1]``; same shape as ``mean``."""
    std, pos = _split_std(var)
    imp = mean - best - xi
    return jnp.where(pos, ndtr(imp / std), (imp > 0).astype(jnp.result_type(mean, float)))


def noisy_incumbent(mean, mask=None) -> jax.Array:
    """The best posterior mean among the observed points (scalar; ``-inf`` if none).

    ``mean float[n]`` is the surrogate's predictive mean *at the observed
    inputs*; ``mask bool[n]`` marks the real observations of a padded buffer.
    With noisy evaluations this is a steadier ``best`` for EI/PI than the best
    noisy observation.
    """
    mean = jnp.asarray(mean)
    if mask is not None:
        mean = jnp.where(mask, mean, -jnp.inf)
    return jnp.max(mean, initial=-jnp.inf)
