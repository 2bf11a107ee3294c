"""Confidence-bound acquisition for maximisation: UCB and GP-UCB (Srinivas et al., 2010)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jnas.errors import bad_argument


def upper_confidence_bound(mean, var, beta) -> jax.Array:
    """``mean + sqrt(beta) · std``; same shape as ``mean``. ``beta >= 0``."""
    return mean + jnp.sqrt(beta) * jnp.sqrt(jnp.maximum(var, 0.0))


def gp_ucb_beta(t, num_candidates, delta: float = 0.1) -> jax.Array:
    """Srinivas et al.'s schedule for a finite candidate set: ``β_t = 2 log(|D| t² π² / (6 δ))``.

    ``t >= 1`` is the BO iteration (traceable), ``num_candidates`` is ``|D|``
    and ``delta ∈ (0, 1)`` the allowed failure probability of the regret bound.
    Increasing in ``t`` and ``|D|``, decreasing in ``δ``.
    """
    if isinstance(delta, (int, float)) and not 0.0 < delta < 1.0:
        raise bad_argument("delta", delta, "a probability in (0, 1)")
    if isinstance(num_candidates, int) and num_candidates < 1:
        raise bad_argument("num_candidates", num_candidates, "a positive integer")
    if isinstance(t, (int, float)) and t < 1:
        raise bad_argument("t", t, "an iteration count >= 1")
    t = jnp.asarray(t, jnp.result_type(float))
    return 2.0 * (jnp.log(num_candidates * math.pi**2 / (6.0 * delta)) + 2.0 * jnp.log(t))


def gp_ucb(mean, var, t, delta: float = 0.1, num_candidates=None) -> jax.Array:
    """UCB with ``β_t`` from ``gp_ucb_beta``; ``|D|`` defaults to the number of candidates ``mean.shape[-1]``."""
    mean = jnp.asarray(mean)
    d = mean.shape[-1] if num_candidates is None else num_candidates
    return upper_confidence_bound(mean, var, gp_ucb_beta(t, d, delta))
