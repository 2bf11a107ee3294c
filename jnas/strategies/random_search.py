"""Random search (``rs``): uniform samples, without replacement on enumerable spaces.

On an enumerable space query ``t`` is element ``t`` of a keyed pseudo-random
permutation of the space's indices (``permutation.py``), so no architecture
is repeated, any budget up to the space's size works, and the state is six
round keys and a counter. Other spaces draw independent uniform samples.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.errors import JnasError
from jnas.strategies.base import Strategy, stack1
from jnas.strategies.permutation import permute, round_keys


class RSState(NamedTuple):
    keys: jax.Array  # uint32[ROUNDS] permutation round keys
    t: jax.Array  # int32[] queries asked so far


class RandomSearch(Strategy):
    """Uniform random search; never repeats an architecture on enumerable spaces."""

    name = "rs"

    def validate(self):
        if self.space.enumerable and self.budget > self.space.size:
            raise JnasError(
                f"budget: got {self.budget}, expected at most {self.space.size} "
                f"(the size of space {self.space.name!r}; random search does not repeat)"
            )

    def init(self, key):
        return RSState(round_keys(key), jnp.int32(0))

    def ask(self, state, key):
        if self.space.enumerable:
            arch = self.space.from_index(permute(state.keys, state.t, self.space.size))
        else:
            arch = self.space.sample(key)
        return stack1(arch), state._replace(t=state.t + 1)

    def tell(self, state, archs, values):
        return state
