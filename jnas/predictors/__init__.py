"""Surrogate predictors behind one protocol (``jnas.predictors.base``).

``params = p.fit(key, X, y, mask=None)``; ``mean, var = p.predict(params, X)``;
both pure and jittable, so strategies can refit inside ``lax.scan``.

- ``GCN``: graph-convolutional predictor on ``(A, X, node_mask)`` graph tensors,
  pairwise ranking loss (Mauch et al.) or MSE.
- ``MLPEnsemble``: BANANAS ensemble of MLPs on vector features (path encoding);
  ``predict_members`` for independent Thompson sampling.
- ``GP``: Gaussian process (Matérn 5/2 / RBF, ARD, ML-II under bounds or fully
  Bayesian with NUTS; ``predict_samples`` for integrated acquisition).
- ``BNN``: Bayesian neural network (NUTS or SGHMC), optionally heteroscedastic (NAGO).
"""

from jnas.predictors.base import Predictor, full_mask, score_in_chunks
from jnas.predictors.bnn import BNN, BNNParams
from jnas.predictors.gcn import GCN
from jnas.predictors.gp import GP, GPParams
from jnas.predictors.mlp import MLPEnsemble

__all__ = ["BNN", "BNNParams", "GCN", "GP", "GPParams", "MLPEnsemble", "Predictor", "full_mask", "score_in_chunks"]
