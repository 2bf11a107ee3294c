"""Reference implementations: the same search algorithms as plain per-seed,
per-query Python loops over a dict keyed by architecture string — the way
NASLib and naszilla run them on tabular benchmarks. Used by ``bench/`` to
measure jnas's scan + vmap runner against the usual way in the same run.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from jnas.spaces.nb201 import N_EDGES, N_OPS, NB201


def make_table(benchmark, metric_key) -> dict:
    """``{official string: (search value, test value)}`` over the whole NB201 table."""
    codes = np.arange(NB201.size)
    archs = np.asarray(NB201.from_index(codes))
    rows = np.asarray(benchmark.rows(archs))
    search = benchmark.column(*metric_key)[rows]
    test = benchmark.column(*benchmark.test_metric)[rows]
    return {NB201.to_string(a): (float(s), float(t)) for a, s, t in zip(archs, search, test)}


def _string(ops) -> str:
    names = NB201.ops
    return (
        f"|{names[ops[0]]}~0|+|{names[ops[1]]}~0|{names[ops[2]]}~1|+"
        f"|{names[ops[3]]}~0|{names[ops[4]]}~1|{names[ops[5]]}~2|"
    )


def _random_arch(rng) -> list:
    return [rng.randrange(N_OPS) for _ in range(N_EDGES)]


def _mutate(rng, ops) -> list:
    child = list(ops)
    e = rng.randrange(N_EDGES)
    child[e] = rng.choice([o for o in range(N_OPS) if o != ops[e]])
    return child


def random_search(table: dict, budget: int, seed: int) -> list:
    """Best-so-far test value per query; uniform sampling without replacement."""
    rng = random.Random(seed)
    seen, best, best_test, out = set(), -np.inf, np.nan, []
    while len(out) < budget:
        ops = _random_arch(rng)
        key = _string(ops)
        if key in seen:
            continue
        seen.add(key)
        val, test = table[key]
        if val > best:
            best, best_test = val, test
        out.append(best_test)
    return out


def regularized_evolution(table: dict, budget: int, seed: int, population_size=30, sample_size=10) -> list:
    """Best-so-far test value per query; aging evolution with tournament selection."""
    rng = random.Random(seed)
    population = deque()
    best, best_test, out = -np.inf, np.nan, []
    for _ in range(budget):
        if len(population) < population_size:
            ops = _random_arch(rng)
        else:
            parent = max(rng.sample(list(population), sample_size), key=lambda m: m[1])
            ops = _mutate(rng, parent[0])
        val, test = table[_string(ops)]
        population.append((ops, val))
        if len(population) > population_size:
            population.popleft()
        if val > best:
            best, best_test = val, test
        out.append(best_test)
    return out
