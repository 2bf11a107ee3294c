"""The evaluator protocol: what a search needs from anything that scores architectures.

Both the tabular benchmarks (``TabularBenchmark``) and the training
evaluator (``TrainingEvaluator``) satisfy it, so one search entry point,
one summary and one set of result files serve both:

* ``name``, ``space``: what is evaluated.
* ``metrics``: ``{(metric, fidelity): MetricInfo}`` with direction, unit and
  coverage (``coverage``/``optimum`` are ``None`` where unknown, as for
  training); ``search_metric`` and ``test_metric`` are keys of it.
* ``fidelities``: the fidelities it offers (epochs; ``(None,)`` for a table
  column without one).
* ``cost(fidelity)``: training epochs one query costs (0 for a table look-up).
* ``traceable``: ``True`` when ``query`` can run under ``jit``/``vmap`` (one
  compiled ``lax.scan`` for the whole search); ``False`` means the Python loop.
* ``resolve(metric, fidelity)``, ``uses_test_data(key)``.
* ``query(archs, metric, fidelity)``: values of a batch.
* ``evaluate(arch, fidelity)``: one architecture's record (every metric it
  measured, ``status``, ``reason``, ``wall_seconds``), test metrics excluded.
* ``test_value(arch)``: the test metric, measured after the search.
* ``index_of(arch)``: a published id for result files (-1 if none).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Evaluator(Protocol):
    """Anything a search can run against (see the module docstring)."""

    name: str
    space: Any
    search_metric: tuple[str, int | None]
    test_metric: tuple[str, int | None]
    traceable: bool

    @property
    def metrics(self) -> dict: ...

    @property
    def fidelities(self) -> tuple: ...

    def cost(self, fidelity: int | None = None) -> float: ...

    def resolve(self, metric: str | None = None, fidelity: int | None = None) -> tuple[str, int | None]: ...

    def uses_test_data(self, key: tuple[str, int | None]) -> bool: ...

    def query(self, archs, metric: str | None = None, fidelity: int | None = None): ...

    def evaluate(self, arch, fidelity: int | None = None) -> dict: ...

    def test_value(self, arch) -> float: ...

    def index_of(self, arch) -> int: ...


def unbatch(space, archs) -> list:
    """The architectures of ``archs`` (one of ``space``, or a batch with a leading axis) as a list of
    NumPy pytrees; a one-line ``JnasError`` for anything else. What a Python-loop evaluator iterates."""
    import jax
    import numpy as np

    from jnas.errors import bad_argument

    leaves = [np.asarray(a) for a in jax.tree.leaves(archs)]
    template = jax.tree.leaves(space.template())
    if not leaves or len(leaves) != len(template):
        raise bad_argument("archs", type(archs).__name__, f"a batch of {space.name} architectures")
    if all(a.ndim == np.ndim(t) for a, t in zip(leaves, template)):  # a single architecture
        return [jax.tree.map(np.asarray, archs)]
    if any(a.ndim != np.ndim(t) + 1 for a, t in zip(leaves, template)):
        raise bad_argument("archs", [a.shape for a in leaves], f"a batch of {space.name} architectures")
    return [jax.tree.map(lambda a, i=i: np.asarray(a)[i], archs) for i in range(leaves[0].shape[0])]
