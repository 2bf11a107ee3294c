"""Acquisition functions: pure, jittable maps from predictive moments to scores (maximised).

* ``improvement``: ``expected_improvement`` (with ξ), ``probability_of_improvement``,
  ``noisy_incumbent``.
* ``confidence``: ``upper_confidence_bound``, ``gp_ucb`` and its ``gp_ucb_beta`` schedule.
* ``thompson``: ``thompson_sample`` (Gaussian marginals), ``independent_thompson`` (ensembles;
  ``method="gaussian"`` is BANANAS's, used by the ``bananas`` strategy).
* ``integrated``: average any acquisition over hyperparameter samples ``float[s, m]``
  (``bo --set gp_samples=S``).
* ``batch``: kriging believer (any predictor, or GP rank-1 updates) and local penalisation
  (``bo --set batch_rule=believer|penalise``).

Clients in the strategies: ``bo`` (EI, PI, UCB, ``thompson_sample``, ``integrated``,
``kriging_believer_gp``, ``select_local_penalisation``, ``lipschitz_from_pairs``) and
``bananas`` (``independent_thompson``). ``gp_ucb``/``gp_ucb_beta``, ``noisy_incumbent``,
``kriging_believer`` (any predictor), ``local_penalisation`` and ``lipschitz_from_gradients`` are
library functions no strategy calls yet (tested in ``tests/test_gp_bnn_acquisition.py``).
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
from jnas.acquisition.thompson import ITS_METHODS, independent_thompson, thompson_sample

__all__ = [
    "ITS_METHODS",
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
