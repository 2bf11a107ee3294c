"""One-call searches on tabular benchmarks: ``search("nb201/cifar10", "re", 300, seeds=100)``."""

from __future__ import annotations

import jax.numpy as jnp

from jnas.benchmarks import get_benchmark
from jnas.errors import JnasError
from jnas.runs.results import SearchResult, summarise
from jnas.runs.runner import run_tabular
from jnas.strategies import make_strategy


def search(
    benchmark: str,
    strategy: str,
    budget: int,
    seeds: int = 1,
    metric: str | None = None,
    fidelity: int | None = None,
    options: dict | None = None,
    seed0: int = 0,
    prng: str = "hash",
    float64: bool = False,
    chunk: int | None = None,
    progress=None,
) -> SearchResult:
    """Run ``seeds`` independent searches of ``strategy`` on ``benchmark`` as one compiled scan.

    ``metric``/``fidelity`` choose the search metric (default: the
    benchmark's, which never looks at test data); ``options`` are strategy
    options (``--set``). ``float64`` gathers full-precision values (requires
    ``jax.config.update("jax_enable_x64", True)``).
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise JnasError(f"seeds: got {seeds!r}, expected a positive integer")
    bench = get_benchmark(benchmark)
    key = bench.resolve(metric, fidelity)
    strat = make_strategy(strategy, bench.space, budget, **(options or {}))
    if bench.space.enumerable and budget > bench.space.size:
        raise JnasError(f"budget: got {budget}, expected at most {bench.space.size} (the size of {benchmark})")
    dtype = jnp.float64 if float64 else jnp.float32
    record = run_tabular(strat, bench, seeds, key, seed0=seed0, prng=prng, dtype=dtype, chunk=chunk, progress=progress)
    return summarise(record, bench, strat, key, extra={"seed0": seed0, "prng": prng})
