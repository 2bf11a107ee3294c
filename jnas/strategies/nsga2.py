"""NSGA-II (``nsga2``; Deb et al., 2002) as an ask/tell strategy over two or more objectives.

Generation 0 queries ``population_size`` = P uniform samples (distinct,
never-queried on enumerable spaces). Every later step queries P offspring:
each picks two parents by binary tournament (lower front rank wins, then the
larger crowding distance), takes their ``space.crossover`` with probability
``crossover_prob`` (else the first parent), then one ``space.mutate`` edit
with probability ``mutation_prob``; a child already queried is replaced by a
fresh mutation of it (up to ``n_tries`` draws). ``tell`` forms the union of
the population and its offspring (2P), ranks it by non-dominated sorting and
crowding distance (``jnas.metrics.pareto``), and keeps the best P — the
elitist (μ + λ) selection of NSGA-II. Failed evaluations (NaN in any
objective) are never selected while P valid members exist.

Everything is fixed-shape and jittable: a run is one ``lax.scan``, seeds
``vmap`` (as ``re``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.metrics.pareto import non_dominated_sort
from jnas.strategies import model_based as mb
from jnas.strategies.base import Option, Strategy, select


class NSGA2State(NamedTuple):
    pop: object  # architectures, leading axis P
    values: jax.Array  # float[P, M] maximised objectives; -inf rows: empty or failed
    rank: jax.Array  # int32[P] front rank in the last selection
    crowd: jax.Array  # float[P] crowding distance in the last selection


def crowding_distance(Y: jax.Array, rank: jax.Array) -> jax.Array:
    """``float[n]``: NSGA-II crowding distance of each point within its front.

    Per objective, points of the same front sorted by value: the two extremes
    get ``inf``, the others the gap between their neighbours over the front's
    range of that objective, summed over objectives. ``rank`` (``int32[n]``)
    names each point's front; rows with non-finite values get 0.
    """
    n, m = Y.shape
    ok = jnp.isfinite(Y).all(axis=1)
    safe = jnp.where(ok[:, None], Y, 0.0)
    total = jnp.zeros((n,), Y.dtype)
    for j in range(m):
        order = jnp.lexsort((safe[:, j], rank))  # by front, then value
        r, v = rank[order], safe[order, j]
        prev_same = jnp.concatenate([jnp.zeros((1,), bool), r[1:] == r[:-1]])
        next_same = jnp.concatenate([r[:-1] == r[1:], jnp.zeros((1,), bool)])
        v_prev = jnp.concatenate([v[:1], v[:-1]])
        v_next = jnp.concatenate([v[1:], v[-1:]])
        # the front's range of this objective: its last value minus its first
        first = jax.ops.segment_min(v, r, num_segments=n + 1)
        last = jax.ops.segment_max(v, r, num_segments=n + 1)
        span = (last - first)[jnp.clip(r, 0, n)]
        gap = jnp.where(span > 0, (v_next - v_prev) / jnp.where(span > 0, span, 1.0), 0.0)
        d = jnp.where(prev_same & next_same, gap, jnp.inf)
        total = total.at[order].add(d)
    return jnp.where(ok, total, 0.0)


def survivors(Y: jax.Array, keep: int):
    """The ``keep`` best rows of ``Y float[n, M]`` by (front rank, -crowding): ``(idx, rank, crowd)`` of them."""
    rank = non_dominated_sort(Y)
    crowd = crowding_distance(Y, rank)
    order = jnp.lexsort((-crowd, rank))[:keep]
    return order, rank[order], crowd[order]


class NSGA2(Strategy):
    """Elitist non-dominated sorting genetic algorithm (NSGA-II)."""

    name = "nsga2"
    objectives = "multi"
    tracks_queried = True
    options = (
        Option("population_size", int, 20, "an integer >= 2", lambda v: v >= 2,
               "population P; also the offspring queried per generation"),
        Option("crossover_prob", float, 0.9, "a number in [0, 1]", lambda v: 0 <= v <= 1,
               "probability that a child is the crossover of its parents (else a copy of the first)"),
        Option("mutation_prob", float, 1.0, "a number in [0, 1]", lambda v: 0 <= v <= 1,
               "probability of one mutation edit per child"),
        Option("n_tries", int, 8, "an integer >= 1", lambda v: v >= 1,
               "draws per child to find one not queried before"),
    )

    def validate(self):
        self.batch_size = self.population_size

    def _init(self, key):
        p, m = self.population_size, self.n_objectives
        pop = jax.tree.map(lambda x: jnp.zeros((p,) + x.shape, x.dtype), self.space.template())
        return NSGA2State(pop, jnp.full((p, m), -jnp.inf), jnp.zeros((p,), jnp.int32), jnp.zeros((p,)))

    def _fresh(self, state, key):
        if self.space.enumerable:
            return mb.random_unqueried(self.space, key, state.history.queried, self.population_size)
        return jax.vmap(self.space.sample)(jax.random.split(key, self.population_size))

    def _child(self, inner, seen_fn, key):
        p = self.population_size
        k_t, k_x, k_c, k_m, k_u, k_r = jax.random.split(key, 6)
        cand = jax.random.randint(k_t, (2, 2), 0, p)  # two tournaments of two

        def winner(i, j):  # binary tournament: rank, then crowding
            r, c = inner.rank, inner.crowd
            return jnp.where((r[i] < r[j]) | ((r[i] == r[j]) & (c[i] >= c[j])), i, j)

        def member(i):
            return jax.tree.map(lambda x: x[i], inner.pop)

        pa, pb = member(winner(cand[0, 0], cand[0, 1])), member(winner(cand[1, 0], cand[1, 1]))
        child = select(jax.random.uniform(k_x) < self.crossover_prob, self.space.crossover(k_c, pa, pb), pa)
        child = select(jax.random.uniform(k_u) < self.mutation_prob, self.space.mutate(k_m, child), child)

        def retry(carry, k):  # a child queried before: mutate it again
            c = carry
            return select(seen_fn(c), self.space.mutate(k, c), c), None

        child, _ = jax.lax.scan(retry, child, jax.random.split(k_r, self.n_tries))
        return child

    def _ask(self, state, key):
        k_fresh, k_kids = jax.random.split(key)
        fresh = self._fresh(state, k_fresh)
        seen_fn = lambda a: self.seen(state, jax.tree.map(lambda x: x[None], a))[0]  # noqa: E731
        kids = jax.vmap(lambda k: self._child(state.inner, seen_fn, k))(
            jax.random.split(k_kids, self.population_size))
        return select(state.history.count == 0, fresh, kids), state.inner

    def _tell(self, state, archs, values):
        inner = state.inner
        y = jnp.concatenate([inner.values, values.astype(inner.values.dtype)])
        y = jnp.where(jnp.isfinite(y).all(axis=1, keepdims=True), y, -jnp.inf)
        union = jax.tree.map(lambda a, b: jnp.concatenate([a, b.astype(a.dtype)]), inner.pop, archs)
        idx, rank, crowd = survivors(jnp.where(jnp.isfinite(y), y, jnp.nan), self.population_size)
        pop = jax.tree.map(lambda x: x[idx], union)
        return NSGA2State(pop, y[idx], rank, crowd)
