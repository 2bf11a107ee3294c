"""Acquisition functions: pure, jittable maps from predictive moments to scores (maximised).

* ``improvement``: ``expected_improvement`` (with ξ), ``probability_of_improvement``,
  ``noisy_incumbent``.
* ``confidence``: ``upper_confidence_bound``, ``gp_ucb`` and its ``gp_ucb_beta`` schedule.
* ``thompson``: ``thompson_sample`` (Gaussian marginals), ``independent_thompson`` (ensembles).
* ``integrated``: average any acquisition over hyperparameter samples ``float[s, m]``.
* ``batch``: kriging believer (any predictor, or GP rank-1 updates) and local penalisation.
"""

from jnas.acquisition.batch import (
    kriging_believer,
    kriging_believer_gp,
    lipschitz_from_gradients,
    lipschitz_from_pairs,
    local_penalisation,
    select_local_penalisation,
)
from jnas.acquisition.confidence import gp_ucb, gp_ucb_beta, upper_confidence_bound
from jnas.acquisition.improvement import expected_improvement, noisy_incumbent, probability_of_improvement
from jnas.acquisition.integrated import integrated
from jnas.acquisition.thompson import independent_thompson, thompson_sample

__all__ = [
    "expected_improvement",
    "gp_ucb",
    "gp_ucb_beta",
    "independent_thompson",
    "integrated",
    "kriging_believer",
    "kriging_believer_gp",
    "lipschitz_from_gradients",
    "lipschitz_from_pairs",
    "local_penalisation",
    "noisy_incumbent",
    "probability_of_improvement",
    "select_local_penalisation",
    "thompson_sample",
    "upper_confidence_bound",
]
