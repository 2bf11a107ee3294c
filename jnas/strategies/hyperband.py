"""Hyperband (``hyperband``; Li et al., JMLR 2018): successive halving over brackets of fidelities.

Fidelities are training epochs. With the top fidelity ``R`` (the search metric's: a full evaluation),
the lowest ``r`` (``min_fidelity``) and ``η`` (``eta``), Hyperband runs
``s_max + 1`` brackets, ``s_max = floor(log_η(R / r))``. Bracket ``s``
starts ``n_0 = ceil((s_max + 1) / (s + 1) · η^s)`` new configurations at
``R · η^-s`` epochs; rung ``i`` keeps the best ``floor(n_0 · η^-i)`` of the
previous rung (by the value measured there; failures rank last) and
evaluates them at ``R · η^(i - s)``, up to ``R`` at rung ``s``. Brackets
run from the most exploratory (``s_max``) to plain evaluation at ``R``
(``s = 0``) and then start over, until the budget is spent.

Fidelities the evaluator offers (``fidelities``, a constructor keyword):
a rung's fidelity snaps down to the largest offered one that does not exceed
it (the lowest offered one if none), and the top rung is ``R`` itself. A
table with two fidelities (NAS-Bench-201's 12 and 200 epochs) therefore has
low rungs at 12 and the top rung at 200. Consecutive rungs that snap to the
same fidelity are one rung: their promotions pick from values already
measured, so re-querying would only cost. The default ``min_fidelity`` is
``max(lowest offered, R / η²)``: three rungs, as NAGO's 30/60/120 epochs with
``η = 2``.

Cost. A query at fidelity ``f`` costs ``f`` epochs: every evaluation trains
from scratch, because the cosine schedule of a run depends on its length (the
12- and 200-epoch tables of NAS-Bench-201 are separate trainings too; a
promoted configuration is retrained, not continued). ``budget`` counts full
evaluations' worth of cost: the run makes queries while their total cost
stays within ``budget · R`` epochs, so ``--budget 150`` compares with a
150-query single-fidelity search. The whole schedule is fixed by ``(R, r,
η, budget)`` before the search starts: ``fidelity_of`` reads it, and the
run is one ``lax.scan`` on a table.

New configurations are uniform samples (``new_configs``); ``bohb``
(``bohb.py``) replaces that with its model.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.strategies.base import Option, Strategy, failure_option, select, stack1


def snap(r: float, offered: tuple[int, ...]) -> int:
    """The largest offered fidelity that does not exceed ``r`` (the lowest offered one if none does)."""
    below = [f for f in offered if f <= r + 1e-6]
    return below[-1] if below else offered[0]


def brackets(min_fidelity: float, max_fidelity: int, eta: int, offered: tuple[int, ...]) -> list[list[tuple[int, int]]]:
    """Hyperband's brackets, most exploratory first: per bracket, its rungs as ``(configurations, fidelity)``.

    Rung fidelities are snapped to ``offered`` (``snap``; the top rung is
    ``max_fidelity``) and consecutive rungs with the same fidelity merged
    into the first of them.
    """
    s_max = int(math.floor(math.log(max_fidelity / min_fidelity) / math.log(eta) + 1e-9))
    out = []
    for s in range(s_max, -1, -1):
        n0 = math.ceil((s_max + 1) / (s + 1) * eta**s)
        rungs = []
        for i in range(s + 1):
            f = max_fidelity if i == s else snap(max_fidelity * eta ** (i - s), offered)
            n = int(math.floor(n0 * eta**-i + 1e-9))
            if rungs and rungs[-1][1] == f:
                continue  # same fidelity as the rung below: its promotion only selects; no new query
            rungs.append((n, f))
        out.append(rungs)
    return out


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Every query of a run, in order (arrays ``[Q]``): fixed before the search by the bracket structure."""

    fidelity: np.ndarray  # int32: the query's fidelity (epochs)
    new: np.ndarray  # bool: a new configuration (first rung of a bracket); else a promotion
    prev_start: np.ndarray  # int32: first query of the rung it is promoted from (promotions)
    prev_len: np.ndarray  # int32: size of that rung
    rank: np.ndarray  # int32: which of that rung's configurations, by rank (0 = best)
    bracket: np.ndarray  # int32: bracket run it belongs to (0, 1, ... in order)

    @property
    def cost(self) -> np.ndarray:
        """float64[Q]: epochs each query costs (every evaluation trains from scratch)."""
        return self.fidelity.astype(np.float64)


def schedule(brackets_: list[list[tuple[int, int]]], cost_limit: float) -> Schedule:
    """The queries of cycling through ``brackets_`` until the next query would exceed ``cost_limit`` epochs."""
    rows: list[tuple[int, bool, int, int, int, int]] = []
    cost, run = 0.0, 0
    while True:
        for rungs in brackets_:
            prev = (0, 0)
            for i, (n, f) in enumerate(rungs):
                start = len(rows)
                for j in range(n):
                    if cost + f > cost_limit + 1e-9:
                        return _as_schedule(rows)
                    rows.append((f, i == 0, prev[0], prev[1], j, run))
                    cost += f
                prev = (start, n)
            run += 1


def _as_schedule(rows) -> Schedule:
    cols = list(zip(*rows)) if rows else [[]] * 6
    f, new, ps, pl, rank, b = (np.asarray(c) for c in cols)
    return Schedule(f.astype(np.int32), new.astype(bool), ps.astype(np.int32), pl.astype(np.int32),
                    rank.astype(np.int32), b.astype(np.int32))


def fidelity_options(eta_default: int) -> tuple[Option, ...]:
    """The options every bracket-based strategy shares."""
    return (
        Option("eta", int, eta_default, "an integer >= 2", lambda v: v >= 2,
               "η: each rung keeps the best 1/η of the rung below and trains them η times longer"),
        Option("min_fidelity", int, 0, "an integer >= 0 (0: max(lowest offered, top fidelity / eta**2))",
               lambda v: v >= 0, "lowest fidelity (epochs) of a rung (0: three rungs)"),
        failure_option(),
    )


class Hyperband(Strategy):
    """Hyperband with uniformly sampled new configurations (see the module docstring)."""

    name = "hyperband"
    options = fidelity_options(3)
    multi_fidelity = True
    asynchronous = False  # a fixed bracket schedule: query k is at position k of it
    keeps_history = True

    def validate(self) -> None:
        offered = self.offered_fidelities
        top = offered[-1]  # the search metric's fidelity (``--fidelity``): a full evaluation
        low = self.min_fidelity or max(offered[0], top / self.eta**2)
        if self.min_fidelity and self.min_fidelity < offered[0]:
            raise JnasError(f"--set min_fidelity: got {self.min_fidelity}, expected at least the lowest fidelity "
                            f"the evaluator offers ({offered[0]})")
        if self.min_fidelity and self.min_fidelity not in offered:  # a table's few columns: rungs would snap below it
            raise JnasError(f"--set min_fidelity: got {self.min_fidelity}, expected a fidelity the evaluator offers "
                            f"({', '.join(map(str, offered))})")
        if low >= top:
            raise JnasError(f"--set min_fidelity: got {low:g}, expected less than the search metric's fidelity "
                            f"({top} epochs, a full evaluation)")
        self.top_fidelity, self.low_fidelity = top, low

    def plan_steps(self) -> int:
        self.brackets = brackets(self.low_fidelity, self.top_fidelity, self.eta, self.offered_fidelities)
        sched = schedule(self.brackets, self.budget * self.top_fidelity)
        if not (sched.fidelity == self.top_fidelity).any():
            first = self.brackets[0]
            need = sum(n * f for n, f in first[:-1]) + first[-1][1]
            raise JnasError(f"budget: got {self.budget}, expected at least {math.ceil(need / self.top_fidelity)} "
                            f"full evaluations' worth ({need} epochs): {self.name}'s first bracket evaluates "
                            f"{first[0][0]} configurations at {first[0][1]} epochs before one reaches "
                            f"{self.top_fidelity}")
        self.schedule = sched
        self.rung_fidelities = tuple(sorted({int(f) for f in sched.fidelity}))
        self._fid = jnp.asarray(sched.fidelity)
        self._new = jnp.asarray(sched.new)
        self._prev_start = jnp.asarray(sched.prev_start)
        self._prev_len = jnp.asarray(sched.prev_len)
        self._rank = jnp.asarray(sched.rank)
        self._max_rung = int(max(n for rungs in self.brackets for n, _ in rungs))
        return len(sched.fidelity)

    @property
    def n_queries(self) -> int:
        return self.n_steps

    @property
    def query_cost(self) -> np.ndarray:
        """``float64[n_queries]``: epochs each query costs."""
        return self.schedule.cost

    def fidelity_of(self, state) -> jax.Array:
        return self._fid[jnp.minimum(state.history.count, self.n_steps - 1)][None]

    def settings(self) -> dict:
        return {**super().settings(), "rung_fidelities": list(self.rung_fidelities)}

    # ----- ask --------------------------------------------------------------------------
    def _ask(self, state, key):
        q = jnp.minimum(state.history.count, self.n_steps - 1)
        new, inner = self.new_config(state, key, self._fid[q])
        arch = select(self._new[q], new, self.promoted(state, q))
        return stack1(arch), inner

    def promoted(self, state, q):
        """The configuration query ``q`` promotes: rank ``rank[q]`` of its rung below, by measured value."""
        h = state.history
        j = jnp.arange(self._max_rung)
        rows = self._prev_start[q] + j
        ok = j < self._prev_len[q]
        vals = self.fill_failures(h.values[jnp.clip(rows, 0, self.capacity - 1)], h)
        vals = jnp.where(ok, jnp.where(jnp.isnan(vals), -jnp.inf, vals), -jnp.inf)
        order = jnp.argsort(-vals, stable=True)  # best first; ties keep query order
        row = rows[order[jnp.clip(self._rank[q], 0, self._max_rung - 1)]]
        return jax.tree.map(lambda a: a[jnp.clip(row, 0, self.capacity - 1)], h.archs)

    def new_config(self, state, key, fidelity):
        """``(arch, inner)``: a new configuration for the first rung of a bracket (uniform here)."""
        return self.space.sample(key), state.inner


__all__ = ["Hyperband", "Schedule", "brackets", "fidelity_options", "schedule", "snap"]
