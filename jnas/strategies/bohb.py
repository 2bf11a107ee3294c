"""BOHB (``bohb``; Falkner, Klein & Hutter, ICML 2018): Hyperband whose new configurations come from a model.

The brackets, rungs, promotions and cost are Hyperband's (``hyperband.py``).
Where Hyperband samples a new configuration uniformly, BOHB:

* with probability ``random_fraction`` (1/3) still samples uniformly;
* otherwise builds its model on the observations of the *largest fidelity
  with enough points* (at least ``N_min + 2``, ``N_min = D + 1`` for ``D``
  coordinates): the best ``N_l = max(N_min, ceil(γ·N))`` form the good set
  and the worst ``N_g = max(N_min, N − N_l)`` the bad set (``γ`` = ``gamma``,
  0.15; failures rank last), one kernel density estimator each
  (``kde.py``: l(x) and g(x)); it draws ``n_samples`` (64) candidates from
  l with bandwidths widened by ``bandwidth_factor`` (3) and queries the one
  that maximises l(x)/g(x). With no fidelity holding enough points yet, it
  samples uniformly.

A configuration is read as coordinates: the space's categorical decisions
(``Space.decisions``: Aitchison–Aitken kernels), or, for a space without
them whose members are points of a box (the NAGO generators'
hyperparameters, ``unit_vector``/``from_unit``), continuous coordinates in
[0, 1] (truncated Gaussian kernels). A proposal that decodes to an invalid
architecture is replaced by a uniform sample.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.strategies import kde
from jnas.strategies.base import Option, select
from jnas.strategies.hyperband import Hyperband, fidelity_options


class BOHB(Hyperband):
    """Hyperband with a KDE model proposing new configurations (see the module docstring)."""

    name = "bohb"
    options = fidelity_options(3) + (
        Option("random_fraction", float, 1 / 3, "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0,
               "share of new configurations sampled uniformly"),
        Option("gamma", float, 0.15, "a number in (0, 1)", lambda v: 0.0 < v < 1.0,
               "share of the observations in the good set"),
        Option("n_samples", int, 64, "an integer >= 1", lambda v: v >= 1,
               "candidates drawn from the good density per proposal"),
        Option("bandwidth_factor", float, 3.0, "a number > 0", lambda v: v > 0,
               "widening of the good density's bandwidths when drawing candidates"),
        Option("min_bandwidth", float, 1e-3, "a number > 0", lambda v: v > 0,
               "smallest kernel bandwidth (keeps a model of identical points from collapsing)"),
        Option("min_points", int, 0, "an integer >= 0 (0: coordinates + 1)", lambda v: v >= 0,
               "N_min: fewest points of each set (0: coordinates + 1)"),
    )

    def validate(self) -> None:
        super().validate()
        sp = self.space
        if sp.supports("decisions"):
            self._card = np.asarray(sp.decisions.cardinality, np.int32)
            self._continuous = False
        elif callable(getattr(sp, "unit_vector", None)) and callable(getattr(sp, "from_unit", None)):
            self._card = np.zeros(int(sp.dim), np.int32)
            self._continuous = True
        else:
            raise JnasError(f"space: got {sp.name!r}, expected a space with categorical decisions or a box "
                            "(unit_vector/from_unit) for bohb's density model")
        self.n_min = self.min_points or len(self._card) + 1

    # ----- the configuration as coordinates ---------------------------------------------------
    def encode(self, archs) -> jax.Array:
        """``float32[n, D]``: coordinates of a batch of architectures."""
        f = self.space.unit_vector if self._continuous else self.space.to_decisions
        return jax.vmap(f)(archs).astype(jnp.float32)

    def decode(self, x):
        """The architecture of one coordinate vector ``float32[D]``."""
        if self._continuous:
            return self.space.from_unit(x)
        return self.space.canonicalize(self.space.from_decisions(jnp.round(x).astype(jnp.int32)))

    # ----- the model ----------------------------------------------------------------------------
    def new_config(self, state, key, fidelity):
        k_coin, k_rand, k_model = jax.random.split(key, 3)
        h = state.history
        told = jnp.arange(self.capacity) < h.count
        vals = self.fill_failures(h.values, h)
        vals = jnp.where(jnp.isnan(vals), -jnp.inf, vals)
        counts = jnp.stack([(told & (self._fid == f)).sum() for f in self.rung_fidelities])
        enough = counts >= self.n_min + 2
        f_model = jnp.asarray(self.rung_fidelities)[jnp.argmax(jnp.where(enough, jnp.arange(len(counts)), -1))]
        at = told & (self._fid == f_model)
        good, bad = kde.split_good_bad(vals, at, self.gamma, n_min=self.n_min)
        x, _ = kde.propose(k_model, self.n_samples, self.encode(h.archs), good, bad, self._card,
                           self.bandwidth_factor, self.min_bandwidth)
        proposal = self.decode(x)
        use_model = enough.any() & (jax.random.uniform(k_coin) >= self.random_fraction)
        use_model &= self.space.is_valid(proposal)
        return select(use_model, proposal, self.space.sample(k_rand)), state.inner


__all__ = ["BOHB"]
