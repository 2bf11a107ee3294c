"""Regularized evolution (``re``; Real et al., 2019).

The first ``population_size`` queries are uniform samples. Afterwards each
step draws ``sample_size`` distinct members of the population, mutates the
best of them (one edit), queries the child, and the child replaces the
*oldest* member (ageing, the "regularization"). With ``batch_size`` B > 1
(children evaluated together, e.g. on parallel workers) a step runs B
independent tournaments on the same population and the B children replace
the B oldest members.

The tournament is drawn exactly but cheaply: the winner of ``S`` distinct
members out of ``P`` has fitness rank ``r`` (0 = best) with probability
``C(P-1-r, S-1) / C(P, S)``, so one uniform number and the members' ranks
replace ``S`` random draws (ties rank by position, as ``argmax`` would).
A failed evaluation's fitness follows ``on_failure`` (default ``-inf``).
"""

from __future__ import annotations

from math import comb
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.errors import JnasError
from jnas.strategies.base import Option, Strategy, batch_option, failure_option, select, stack1


class REState(NamedTuple):
    pop: object  # architectures, leading axis population_size (ring buffer; slot = told count % P)
    fit: jax.Array  # float[population_size], -inf where empty (failures per on_failure)


class RegularizedEvolution(Strategy):
    """Aging evolution with tournament selection."""

    name = "re"
    options = (
        Option("population_size", int, 30, "an integer >= 2", lambda v: v >= 2, "population size P"),
        Option("sample_size", int, 10, "an integer in [1, population_size]", lambda v: v >= 1, "tournament size S"),
        failure_option("-inf"),
        batch_option(1, help="children per step (evaluated together, e.g. on parallel workers)"),
    )

    def validate(self):
        if self.sample_size > self.population_size:
            raise JnasError(
                f"--set sample_size: got {self.sample_size}, expected at most population_size={self.population_size}"
            )
        if self.batch_size > self.population_size:
            raise JnasError(f"--set batch_size: got {self.batch_size}, expected at most population_size="
                            f"{self.population_size} (each child of a step replaces a different oldest member)")

    def _winner_cdf(self):
        p, s = self.population_size, self.sample_size
        probs = [comb(p - 1 - r, s - 1) / comb(p, s) for r in range(p)]
        return jnp.cumsum(jnp.asarray(probs, jnp.float32))

    def _init(self, key):
        tmpl = self.space.template()
        pop = jax.tree.map(lambda x: jnp.zeros((self.population_size,) + x.shape, x.dtype), tmpl)
        return REState(pop, jnp.full((self.population_size,), -jnp.inf))

    def _ask(self, state, key):
        if self.batch_size == 1:
            return stack1(self._child(state, key, state.history.count)), state.inner
        counts = state.history.count + jnp.arange(self.batch_size, dtype=jnp.int32)
        keys = jax.random.split(key, self.batch_size)
        return jax.vmap(lambda k, c: self._child(state, k, c))(keys, counts), state.inner

    def _child(self, state, key, count):
        """One query: a uniform sample while the population fills (``count`` < P), else a tournament's child."""
        k_rand, k_pick, k_mut = jax.random.split(key, 3)
        f = state.inner.fit
        idx = jnp.arange(self.population_size)
        # rank_i = number of members strictly better than i (earlier position wins ties)
        better = (f[None, :] > f[:, None]) | ((f[None, :] == f[:, None]) & (idx[None, :] < idx[:, None]))
        rank = better.sum(axis=1)
        cdf = self._winner_cdf()
        u = jax.random.uniform(k_pick) * cdf[-1]
        r = jnp.minimum(jnp.sum(cdf <= u), self.population_size - 1)  # inverse CDF by counting
        best = jnp.argmax(rank == r)
        parent = jax.tree.map(lambda x: x[best], state.inner.pop)
        child = self.space.mutate(k_mut, parent)
        fresh = self.space.sample(k_rand)
        return select(count < self.population_size, fresh, child)

    def _tell(self, state, archs, values):
        pop, fit = state.inner
        b = self.batch_size
        # the oldest members (ring buffer); a batch larger than the population keeps its last P children
        slots = (state.history.count - b + jnp.arange(b, dtype=jnp.int32)) % self.population_size
        pop = jax.tree.map(lambda p, a: p.at[slots].set(a), pop, archs)
        return REState(pop, fit.at[slots].set(values.astype(fit.dtype)))
