"""Benchmarks behind one protocol: ``query(archs, metric, fidelity=None) -> values``."""

from __future__ import annotations

import functools
import importlib

from jnas.benchmarks.base import MetricInfo, TabularBenchmark
from jnas.errors import unknown_name

NB201_DATASETS = ("cifar10", "cifar100", "imagenet16-120")
NBGRAPH_DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")

# name -> (module, loader function, its arguments...)
_REGISTRY = {f"nb201/{d}": ("jnas.benchmarks.nb201", "load", d) for d in NB201_DATASETS}
_REGISTRY.update({f"nb201-3/{d}": ("jnas.benchmarks.nb201", "load_subspace", d, "nb201-3") for d in NB201_DATASETS})
_REGISTRY.update({f"nbgraph/{d}": ("jnas.benchmarks.nbgraph", "load", d) for d in NBGRAPH_DATASETS})


def names() -> list[str]:
    """Registered benchmark names."""
    return list(_REGISTRY)


@functools.lru_cache(maxsize=None)
def get_benchmark(name: str) -> TabularBenchmark:
    """Load (once per process) the benchmark registered under ``name``."""
    if name not in _REGISTRY:
        raise unknown_name("benchmark", name, _REGISTRY)
    module, fn, *args = _REGISTRY[name]
    return getattr(importlib.import_module(module), fn)(*args)


__all__ = ["MetricInfo", "TabularBenchmark", "get_benchmark", "names", "NB201_DATASETS", "NBGRAPH_DATASETS"]
