"""Surrogate predictors behind one protocol (``jnas.predictors.base``).

``params = p.fit(key, X, y, mask=None)``; ``mean, var = p.predict(params, X)``;
both pure and jittable, so strategies can refit inside ``lax.scan``.

- ``GCN``: graph-convolutional predictor on ``(A, X, node_mask)`` graph tensors,
  pairwise ranking loss (Mauch et al.) or MSE.
- ``MLPEnsemble``: BANANAS ensemble of MLPs on vector features (path encoding);
  ``predict_members`` for independent Thompson sampling.
"""

from jnas.predictors.base import Predictor, full_mask, score_in_chunks
from jnas.predictors.gcn import GCN
from jnas.predictors.mlp import MLPEnsemble

# --- further predictors (gp, bnn): their imports and __all__ entries are merged here ---

__all__ = ["GCN", "MLPEnsemble", "Predictor", "full_mask", "score_in_chunks"]
