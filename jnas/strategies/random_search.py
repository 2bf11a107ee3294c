"""Random search (``rs``): uniform samples, without replacement on enumerable spaces.

On an enumerable space query ``t`` is element ``t`` of a keyed pseudo-random
permutation of the space's indices (``permutation.py``), so no architecture
is repeated, any budget up to the space's size works, and the state is six
round keys (plus the kit's counter). Other spaces draw independent uniform
samples. Values are never looked at, so there is no failure option, and
the same search serves any number of objectives (``--objectives``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jnas.strategies.base import Strategy, batch_option, stack1
from jnas.strategies.permutation import permute, round_keys


class RandomSearch(Strategy):
    """Uniform random search; never repeats an architecture on enumerable spaces."""

    name = "rs"
    repeats = False  # on enumerable spaces (elsewhere independent samples; the budget check does not apply)
    objectives = "any"  # values are never looked at: multi-objective random search is the same search
    options = (batch_option(1, help="queries per step (evaluated together, e.g. on parallel workers)"),)

    def _init(self, key):
        return round_keys(key)  # uint32[ROUNDS] permutation round keys

    def _ask(self, state, key):
        bs = self.batch_size
        if self.space.enumerable:  # query t is element t of the permutation, whatever the batch size
            t = state.history.count + jnp.arange(bs, dtype=jnp.int32)
            archs = jax.vmap(lambda i: self.space.from_index(permute(state.inner, i, self.space.size)))(t)
        elif bs == 1:
            archs = stack1(self.space.sample(key))
        else:
            archs = jax.vmap(self.space.sample)(jax.random.split(key, bs))
        return archs, state.inner
