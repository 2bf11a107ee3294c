"""Integrated acquisition (Snoek et al., 2012): average over hyperparameter samples.

Client: ``bo`` with a fully Bayesian GP (``--set gp_samples=S``) integrates EI, PI and UCB over
the GP's ``S`` hyperparameter samples with this function.
"""

from __future__ import annotations

import jax


def integrated(acquisition, means, vars_, **kwargs) -> jax.Array:
    """``mean_s acquisition(means[s], vars_[s], **kwargs)``: ``float[m]`` from ``float[s, m]`` moments.

    ``means, vars_`` are per-sample predictive moments, e.g. from
    ``GP.predict_samples`` of a fully Bayesian GP; ``kwargs`` (``best``, ``xi``,
    ``beta``...) are shared by all samples.
    """
    return jax.vmap(lambda m, v: acquisition(m, v, **kwargs))(means, vars_).mean(0)
