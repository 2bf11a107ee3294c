"""Random search (``rs``): uniform samples, without replacement on enumerable spaces.

On an enumerable space query ``t`` is element ``t`` of a keyed pseudo-random
permutation of the space's indices (``permutation.py``), so no architecture
is repeated, any budget up to the space's size works, and the state is six
round keys (plus the kit's counter). Other spaces draw independent uniform
samples. Values are never looked at, so there is no failure option, and
the same search serves any number of objectives (``--objectives``).
"""

from __future__ import annotations

from jnas.strategies.base import Strategy, stack1
from jnas.strategies.permutation import permute, round_keys


class RandomSearch(Strategy):
    """Uniform random search; never repeats an architecture on enumerable spaces."""

    name = "rs"
    repeats = False  # on enumerable spaces (elsewhere independent samples; the budget check does not apply)
    objectives = "any"  # values are never looked at: multi-objective random search is the same search

    def _init(self, key):
        return round_keys(key)  # uint32[ROUNDS] permutation round keys

    def _ask(self, state, key):
        if self.space.enumerable:
            arch = self.space.from_index(permute(state.inner, state.history.count, self.space.size))
        else:
            arch = self.space.sample(key)
        return stack1(arch), state.inner
