"""The benchmark protocol: ``query(archs, metric, fidelity=None) -> values``.

A tabular benchmark keeps every column as a device array indexed by *row*; a
query maps a batch of architectures to rows (a jittable function of the
space) and gathers. Missing values are NaN. All accuracies are in percent.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import Space

#: metrics that are a deterministic function of the architecture, counted rather than measured: a
#: multi-objective strategy may compute them for any architecture instead of modelling them (NAGO)
COMPUTED_METRICS = ("params", "flops")


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """What one column means and how much of the space it covers."""

    name: str
    fidelity: int | None
    description: str
    unit: str
    higher_is_better: bool
    coverage: int | None  # number of rows with a finite value (None: unknown, e.g. training)
    optimum: float | None  # best finite value (max or min per ``higher_is_better``; None: unknown)
    optimum_row: int | None  # first row attaining it (None: no table)


class TabularBenchmark:
    """A benchmark whose every value is a look-up in a table on the device.

    Parameters
    ----------
    name: registry name, e.g. ``"nb201/cifar10"``.
    space: the search space whose architectures are queried.
    columns: ``{(metric, fidelity): float[n_rows]}`` host arrays.
    descriptions: ``{metric: (description, unit, higher_is_better)}``.
    row_of: jittable ``arch -> int32 row`` for one architecture (-1 if absent).
    search_metric: default ``(metric, fidelity)`` the search maximises.
    test_metric: ``(metric, fidelity)`` reported as the outcome (test accuracy).
    official_index: optional ``int[n_rows]`` of published ids for each row.
    """

    def __init__(
        self,
        name: str,
        space: Space,
        columns: dict[tuple[str, int | None], np.ndarray],
        descriptions: dict[str, tuple[str, str, bool]],
        row_of: Callable,
        search_metric: tuple[str, int | None],
        test_metric: tuple[str, int | None],
        official_index: np.ndarray | None = None,
    ):
        self.name = name
        self.space = space
        self.n_rows = len(next(iter(columns.values())))
        self._row_of = row_of
        self._rows = jax.jit(jax.vmap(row_of))  # nested under an outer jit it simply inlines
        self._columns = {k: jnp.asarray(np.asarray(v, np.float64), jnp.float32) for k, v in columns.items()}
        self._columns64 = {k: np.asarray(v, np.float64) for k, v in columns.items()}
        self.search_metric = search_metric
        self.test_metric = test_metric
        self.official_index = None if official_index is None else np.asarray(official_index)
        self.metrics: dict[tuple[str, int | None], MetricInfo] = {}
        for (metric, fid), col in self._columns64.items():
            desc, unit, hib = descriptions[metric]
            finite = np.isfinite(col)
            if finite.any():
                vals = np.where(finite, col, -np.inf if hib else np.inf)
                row = int(np.argmax(vals) if hib else np.argmin(vals))
                opt = float(col[row])
            else:
                row, opt = -1, float("nan")
            self.metrics[(metric, fid)] = MetricInfo(metric, fid, desc, unit, hib, int(finite.sum()), opt, row)

    # ----- protocol ------------------------------------------------------------
    def resolve(self, metric: str | None = None, fidelity: int | None = None) -> tuple[str, int | None]:
        """Normalise a (metric, fidelity) request; unknown ones list the valid choices.

        No metric means the default search metric; a fidelity given alone
        applies to it (an error if that metric has no such fidelity).
        """
        if metric is None:
            if fidelity is None:
                return self.search_metric
            metric = self.search_metric[0]
        choices = sorted({m for m, _ in self.metrics})
        if metric not in choices:
            raise JnasError(f"metric: got {metric!r} for {self.name}, expected one of {', '.join(choices)}")
        fids = sorted((f for m, f in self.metrics if m == metric), key=lambda f: -1 if f is None else f)
        if fidelity is None:
            fidelity = fids[-1]  # highest fidelity by default
        if (metric, fidelity) not in self.metrics:
            raise JnasError(f"fidelity: got {fidelity!r} for metric {metric!r}, expected one of {fids}")
        return metric, fidelity

    # ----- evaluator protocol (jnas.benchmarks.protocol) ------------------------------------
    traceable = True  # every query is a gather: a whole search compiles into one scan

    @property
    def fidelities(self) -> tuple:
        """Fidelities of the columns (epochs; ``None`` for a column without one), ascending."""
        fids = {f for _, f in self.metrics}
        return tuple(sorted(fids, key=lambda f: -1 if f is None else f))

    def cost(self, fidelity: int | None = None) -> float:
        """Training epochs a query costs: none, it is a look-up."""
        return 0.0

    def evaluate(self, arch, fidelity: int | None = None) -> dict:
        """Every non-test metric of one architecture at ``fidelity`` (and those without a fidelity), as a record."""
        import jax

        row = int(self.rows(jax.tree.map(lambda x: jnp.asarray(x)[None], arch))[0])
        rec = {"status": "ok" if row >= 0 else "failed", "reason": None if row >= 0 else "not in the table",
               "wall_seconds": 0.0}
        for (metric, fid), col in self._columns64.items():
            if self.uses_test_data((metric, fid)) or (fid is not None and fid != fidelity):
                continue
            rec[metric] = float(col[row]) if row >= 0 else float("nan")
        return rec

    def test_value(self, arch) -> float:
        """The test metric of one architecture (NaN if absent)."""
        import jax

        row = int(self.rows(jax.tree.map(lambda x: jnp.asarray(x)[None], arch))[0])
        return float(self.column(*self.test_metric)[row]) if row >= 0 else float("nan")

    def index_of(self, arch) -> int:
        """Published id of one architecture (-1 if absent)."""
        import jax

        row = int(self.rows(jax.tree.map(lambda x: jnp.asarray(x)[None], arch))[0])
        return int(self.official([row])[0]) if row >= 0 else -1

    def is_computed(self, key: tuple[str, int | None]) -> bool:
        """Whether metric ``key`` is counted from the architecture (``COMPUTED_METRICS``), not measured."""
        return key[0] in COMPUTED_METRICS

    def uses_test_data(self, key: tuple[str, int | None]) -> bool:
        """Whether metric ``key`` is measured on test data (the outcome metric, at any fidelity)."""
        return key[0] == self.test_metric[0]

    def rows(self, archs) -> jax.Array:
        """``int32[...]`` table rows of a batch of architectures (-1 where absent)."""
        return self._rows(archs)

    def query(self, archs, metric: str | None = None, fidelity: int | None = None, dtype=jnp.float32) -> jax.Array:
        """Values of ``metric`` at ``fidelity`` for a batch of architectures (NaN if missing).

        Jittable in ``archs``; ``metric`` and ``fidelity`` are static.
        ``dtype=jnp.float64`` (with x64 enabled) gathers from full-precision columns.
        """
        key = self.resolve(metric, fidelity)
        return self.query_rows(self.rows(archs), key, dtype)

    def query_rows(self, rows, key: tuple[str, int | None], dtype=jnp.float32) -> jax.Array:
        """Gather column ``key`` at ``rows`` (NaN where ``rows`` is -1)."""
        col = self._columns[key] if dtype == jnp.float32 else jnp.asarray(self._columns64[key], dtype)
        safe = jnp.clip(rows, 0, self.n_rows - 1)
        return jnp.where(rows >= 0, col[safe], jnp.nan)

    def column(self, metric: str | None = None, fidelity: int | None = None) -> np.ndarray:
        """Host copy (float64) of a whole column, in row order."""
        return self._columns64[self.resolve(metric, fidelity)]

    def official(self, rows) -> np.ndarray:
        """Published ids of ``rows`` (the row itself when the benchmark has none)."""
        rows = np.asarray(rows)
        return rows if self.official_index is None else np.where(rows >= 0, self.official_index[rows], -1)

    def describe(self) -> dict:
        """JSON-ready metadata: metrics, their coverage and optimum."""
        return {
            "name": self.name,
            "space": self.space.name,
            "rows": self.n_rows,
            "search_metric": list(self.search_metric),
            "test_metric": list(self.test_metric),
            "metrics": [dataclasses.asdict(m) for m in self.metrics.values()],
        }

    def __repr__(self) -> str:
        return f"<benchmark {self.name}>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other) -> bool:
        return self is other
