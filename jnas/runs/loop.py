"""A search driven from Python, one evaluation at a time, with a journal that loses nothing.

This is the path of evaluators that cannot be traced (real training): the
strategy's jitted ``ask``/``tell`` run batch by batch and each evaluation is
appended to the run journal before the next ask. Rerunning the same search
replays the journal: the strategy asks again (deterministic for a fixed
key), every recorded evaluation is answered from the journal instead of being
repeated, and the end result equals an uninterrupted run's.

Keys follow ``run_tabular``: seed ``i`` uses ``key(seed0 + i, impl)``, split
into an init key and one key per step.

A multi-objective search (``metric_key`` a tuple of ``(metric, fidelity)``
keys, ``jnas.runs.runner.objective_keys``) runs the same way: each
evaluation gives one value per objective, all read from the same journal
entry (which keeps every non-test metric), and the strategy is told them with
their signs (every objective maximised), as ``run_tabular`` does.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.runs.journal import Journal
from jnas.runs.runner import _split, is_multi, objective_keys, seed_keys
from jnas.runs.trajectory import best_so_far
from jnas.strategies.base import Strategy, stack1


@dataclasses.dataclass
class LoopRecord:
    """Raw outcome of a journaled run, per seed and query (arrays ``[seeds, budget]``)."""

    archs: list[list]  # the queried architectures (pytrees), [seed][query]
    texts: np.ndarray  # str: their string forms
    values: np.ndarray  # float64: search-metric values (NaN = failed); multi-objective: [seeds, budget, M]
    failed: np.ndarray  # bool: the evaluation failed (multi-objective: any objective is not finite)
    wall_seconds: float  # journaled evaluations' time plus this session's wall time
    resumed: int  # evaluations answered from the journal
    fidelity: np.ndarray  # int: the fidelity each query was evaluated at (epochs; -1 for none)
    attempts: np.ndarray | None = None  # int: tries each evaluation took (1 = no retry; 0 = never evaluated)


#: evaluation modes of a journaled search
MODES = ("sync", "async")


def _unbatch(archs, n: int) -> list:
    return [jax.tree.map(lambda a, i=i: np.asarray(a)[i], archs) for i in range(n)]


def _entry_value(entry: dict, metric: str) -> float:
    v = (entry.get("metrics") or {}).get(metric)
    return float("nan") if v is None else float(v)


def check_mode(mode: str, strategy: Strategy) -> str:
    """``mode`` if ``strategy`` can run in it; a one-line error otherwise."""
    if mode not in MODES:
        raise JnasError(f"--mode: got {mode!r}, expected one of {', '.join(MODES)}")
    if mode == "async":
        if not getattr(strategy, "asynchronous", False):
            raise JnasError(f"--mode async: strategy {strategy.name!r} cannot ask while evaluations are running "
                            "(its ask keeps state its tell needs, or it follows a fixed schedule); use --mode sync")
        if strategy.batch_size != 1:
            raise JnasError(f"--mode async asks one architecture per free worker: got batch_size="
                            f"{strategy.batch_size} for {strategy.name!r}; give --set batch_size=1 or use --mode sync")
    return mode


def run_journaled(
    strategy: Strategy,
    evaluator,
    seeds: int,
    metric_key: tuple,
    seed0: int = 0,
    prng: str = "hash",
    journal: Journal | None = None,
    progress: Callable[[dict], None] | None = None,
    backend=None,
    retries: int = 0,
    mode: str = "sync",
) -> LoopRecord:
    """Run ``seeds`` searches of ``strategy`` against ``evaluator`` from Python, journaling every evaluation.

    ``evaluator.evaluate(arch, fidelity)`` returns a record with the metric
    values, ``status`` (``ok``/``failed``), ``reason`` and ``wall_seconds``;
    an exception there is recorded as a failure too. A failed evaluation is
    tried again up to ``retries`` times (``attempt`` in its journal entry),
    then told as NaN (the worst value) and the search goes on. ``progress``
    gets ``{"done", "total", "arch", "best", "resumed"}`` after every evaluation.

    ``backend`` (``jnas.runs.backends``; default: this process) runs the
    evaluations. ``mode="sync"``: every seed asks its next batch, the whole
    step's evaluations run at once on the backend, and each seed is told its
    batch when all of it is in; the result does not depend on the backend or
    its worker count. ``mode="async"`` (strategies with ``asynchronous``,
    ``batch_size`` 1): each seed keeps ``backend.workers`` evaluations
    running and asks a new architecture as soon as one finishes. Evaluations
    still running are *pending points*: the strategy asks from a copy of its
    state told each of them at the worst value seen so far (a constant liar,
    the kriging believer's cheapest form), so a model-based strategy avoids
    their neighbourhood and a strategy that tracks queried architectures
    never asks one again. The copy is dropped; the real state is told only
    real results, in the order they finish.

    Resume: rerunning replays the journal. Sync: the strategy asks again
    (deterministic for a fixed key) and every recorded evaluation is
    answered from the journal. Async: the journal's order is the order
    results were told, so replaying it in that order asks the same
    architectures; evaluations that were running when the driver died run
    again. Every finished evaluation is in the journal before the next ask.

    ``metric_key``: one ``(metric, fidelity)``, or a tuple of them (all at one
    fidelity) for a multi-objective search: values are then
    ``float64[seeds, budget, M]`` as measured (a NaN row for a failure), each
    objective told times its sign, and ``best`` in ``progress`` is that of the first objective.
    """
    check_mode(mode, strategy)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise JnasError(f"--retries: got {retries!r}, expected a non-negative integer")
    objs = objective_keys(metric_key)
    top = objs[0][1]
    if any(k[1] != top for k in objs):
        raise JnasError(f"objectives: got fidelities {[k[1] for k in objs]}, expected one fidelity for every "
                        "objective (one evaluation measures them all)")
    if backend is None:
        from jnas.runs.backends import LocalBackend

        backend = LocalBackend(evaluator)
    run = _Run(strategy, evaluator, seeds, metric_key, seed0, prng, journal, progress, backend, retries)
    if mode == "sync":
        run.sync()
    else:
        run.asynchronous()
    return run.record()


class _Run:
    """The bookkeeping of one journaled search: per-seed states, the journal, results so far."""

    def __init__(self, strategy, evaluator, seeds, metric_key, seed0, prng, journal, progress, backend, retries):
        self.strategy, self.evaluator, self.seeds, self.journal = strategy, evaluator, seeds, journal
        self.progress, self.backend, self.retries = progress, backend, retries
        self.objs = objective_keys(metric_key)
        self.multi = is_multi(metric_key)
        self.signs = np.array([1.0 if evaluator.metrics[k].higher_is_better else -1.0 for k in self.objs])
        self.space = evaluator.space
        self.bs, self.budget, self.n_steps = strategy.batch_size, strategy.n_queries, strategy.n_steps
        top = self.objs[0][1]
        # a multi-fidelity strategy's schedule says each query's fidelity; otherwise every query is at the metric's
        self.fids = np.asarray(strategy.schedule.fidelity) if strategy.multi_fidelity else np.full(self.budget, top)
        self.entries = journal.load() if journal is not None else {}
        self.ask, self.tell, self.init = jax.jit(strategy.ask), jax.jit(strategy.tell), jax.jit(strategy.init)
        self.keys = [_split(k, self.n_steps) for k in seed_keys(seeds, seed0, prng)]
        m = len(self.objs)
        self.values = np.full((seeds, self.budget, m) if self.multi else (seeds, self.budget), np.nan)
        self.failed = np.zeros((seeds, self.budget), bool)
        self.attempts = np.zeros((seeds, self.budget), np.int64)
        self.texts = np.full((seeds, self.budget), "", dtype=object)
        self.archs: list[list] = [[None] * self.budget for _ in range(seeds)]
        self.resumed, self.done, self.best = 0, 0, None
        self.journaled_seconds = 0.0
        self.retried: dict[tuple[int, int], list[str]] = {}
        self.cache: dict[tuple, dict] = {}  # (arch text, fidelity) -> final entry of this session
        self.waiting: dict[tuple, list] = {}  # (arch text, fidelity) running -> the other queries asking for it
        self.ready: list = []  # final entries not yet handed to the loop (answered from ``cache``)
        self.t_session = time.perf_counter()

    # ----- one query -----------------------------------------------------------------------
    def fidelity(self, q: int):
        f = self.fids[q]
        return None if f is None else int(f)

    def journaled(self, s: int, q: int, text: str, fidelity):
        """The journal's entry of seed ``s`` query ``q`` (checked against what this run asks), or ``None``."""
        entry = self.entries.get((s, q))
        if entry is not None and (entry.get("arch") != text or entry.get("fidelity") != fidelity):
            raise JnasError(
                f"journal {self.journal.path}: seed {s} query {q} recorded {entry.get('arch')!r} at fidelity "
                f"{entry.get('fidelity')}, but this run asks {text!r} at {fidelity}; it is the journal of "
                "a different run (use another folder or --overwrite)"
            )
        return entry

    def absorb(self, s: int, q: int, arch, entry: dict, resumed: bool):
        """Record an evaluation's entry; ``told`` value(s) for the strategy (signs applied)."""
        v = np.array([_entry_value(entry, k[0]) for k in self.objs])
        if resumed:
            self.resumed += 1
            self.journaled_seconds += float(entry.get("wall_seconds") or 0.0)
            self.cache.setdefault((entry["arch"], entry.get("fidelity")), entry)
        self.failed[s, q] = entry.get("status") != "ok" or not np.isfinite(v).all()
        if self.multi and self.failed[s, q]:  # a failure is a whole row of NaN: no objective of it is told
            v = np.full(len(self.objs), np.nan)
        self.values[s, q] = v if self.multi else v[0]
        self.attempts[s, q] = int(entry.get("attempt") or 1)
        self.texts[s, q], self.archs[s][q] = entry["arch"], arch
        self.done += 1
        sign = self.signs[0]
        if np.isfinite(v[0]) and (self.best is None or sign * v[0] > sign * self.best):
            self.best = float(v[0])
        if self.progress:
            self.progress({"done": self.done, "total": self.seeds * self.budget, "arch": entry["arch"],
                           "best": self.best, "resumed": self.resumed})
        return self.signs * v if self.multi else self.signs[0] * v[0]

    def submit(self, s: int, q: int, arch, text: str):
        """Evaluate seed ``s`` query ``q``; an architecture already evaluated (or running) at the same fidelity in
        this session is not evaluated again: it gets that evaluation's entry (the evaluator is deterministic, and
        two workers training the same network would share its checkpoint folder)."""
        from jnas.runs.backends import Job

        key = (text, self.fidelity(q))
        if key in self.cache:
            self.ready.append((s, q, arch, self.copy_entry(self.cache[key], s, q)))
        elif key in self.waiting:
            self.waiting[key].append((s, q, arch))
        else:
            self.waiting[key] = []
            self.backend.submit(Job(s, q, arch, text, self.fidelity(q)))

    def copy_entry(self, entry: dict, s: int, q: int) -> dict:
        e = {**entry, "seed": s, "query": q, "wall_seconds": 0.0}
        if self.journal is not None:
            self.journal.append(e)
        return e

    @property
    def outstanding(self) -> int:
        return self.backend.outstanding + len(self.ready)

    def finished(self) -> list:
        """Journal final outcomes (retrying failed ones) and return ``[(seed, query, arch, entry)]`` of those
        that are final; waits for the backend when nothing is ready."""
        from jnas.runs.backends import Job

        if self.ready:
            out, self.ready = self.ready, []
            return out
        out = []
        for o in self.backend.wait():
            j = o.job
            entry = self.entry_of(o)
            bad = entry["status"] != "ok" or not all(np.isfinite(_entry_value(entry, k[0])) for k in self.objs)
            if bad and j.attempt <= self.retries:
                self.retried.setdefault((j.seed, j.query), []).append(
                    entry.get("reason") or "a metric is not finite")
                self.backend.submit(Job(j.seed, j.query, j.arch, j.text, j.fidelity, j.attempt + 1))
                continue
            if self.journal is not None:
                self.journal.append(entry)
            key = (j.text, j.fidelity)
            self.cache[key] = entry
            out.append((j.seed, j.query, j.arch, entry))
            out.extend((s, q, arch, self.copy_entry(entry, s, q)) for s, q, arch in self.waiting.pop(key, []))
        return out

    def entry_of(self, o) -> dict:
        """The journal entry of an outcome: what the search saw (never a test metric) and where it ran."""
        rec, j = o.record, o.job
        metric_names = [m for m, f in self.evaluator.metrics if not self.evaluator.uses_test_data((m, f))]
        entry = {
            "seed": j.seed,
            "query": j.query,
            "arch": j.text,
            "fidelity": j.fidelity,
            "status": rec.get("status", "ok"),
            "reason": rec.get("reason"),
            "metrics": {m: rec.get(m) for m in metric_names if m in rec},
            "wall_seconds": o.wall_seconds,  # what this evaluation cost where it ran (a cached answer: ~0)
            "attempt": j.attempt,
            "node": o.node,
            "pid": o.pid,
        }
        earlier = self.retried.get((j.seed, j.query))
        if earlier:
            entry["earlier_attempts"] = list(earlier)
        return entry

    # ----- the two modes ---------------------------------------------------------------------
    def sync(self):
        states = [self.init(k_init) for k_init, _ in self.keys]
        for t in range(self.n_steps):
            asked, told, where = [], [], {}
            for s in range(self.seeds):
                archs, st = self.ask(states[s], self.keys[s][1][t])
                asked.append((archs, st))
                told.append(np.full((self.bs, len(self.objs)) if self.multi else self.bs, np.nan))
                for i, arch in enumerate(_unbatch(archs, self.bs)):
                    q = t * self.bs + i
                    if q >= self.budget:  # the last batch may run past the budget: those are never evaluated
                        break
                    text = self.space.to_string(arch)
                    entry = self.journaled(s, q, text, self.fidelity(q))
                    if entry is not None:
                        told[s][i] = self.absorb(s, q, arch, entry, resumed=True)
                    else:
                        where[(s, q)] = i
                        self.submit(s, q, arch, text)
            while self.outstanding:
                for s, q, arch, entry in self.finished():
                    told[s][where[(s, q)]] = self.absorb(s, q, arch, entry, resumed=False)
            if (t + 1) * self.bs < self.budget:  # nothing asks after the last step
                for s in range(self.seeds):
                    archs, st = asked[s]
                    states[s] = self.tell(st, archs, jnp.asarray(told[s], dtype=jnp.result_type(float)))

    def asynchronous(self):
        window = max(1, int(self.backend.workers))
        states = [self.init(k_init) for k_init, _ in self.keys]
        n_asked = [0] * self.seeds
        running: list[dict] = [{} for _ in range(self.seeds)]  # per seed: query -> (arch, text), in ask order
        lie = jax.jit(_lie, static_argnums=1)

        def ask_next(s: int) -> int:
            fork = states[s]
            for arch, _ in running[s].values():  # the pending points, told at the worst value so far
                fork = self.tell(fork, stack1(arch), lie(fork, len(self.objs) if self.multi else 0))
            q = n_asked[s]
            archs, _ = self.ask(fork, self.keys[s][1][q])
            arch = _unbatch(archs, 1)[0]
            running[s][q] = (arch, self.space.to_string(arch))
            n_asked[s] += 1
            return q

        def tell_real(s: int, q: int, value):
            arch, _ = running[s].pop(q)
            if n_asked[s] < self.budget:  # nothing asks after the last query
                states[s] = self.tell(states[s], stack1(arch),
                                      jnp.asarray(np.asarray(value)[None], dtype=jnp.result_type(float)))
                ask_next(s)

        order: dict[int, list] = {}
        for (s, q), entry in self.entries.items():  # file order: the order results were told
            order.setdefault(s, []).append((q, entry))
        for s in range(self.seeds):
            for _ in range(min(window, self.budget)):
                ask_next(s)
            for q, entry in order.get(s, []):
                if q not in running[s]:
                    raise JnasError(
                        f"journal {self.journal.path}: seed {s} recorded query {q}, which this run does not have "
                        "running at that point; it is the journal of a different run (another --workers count or "
                        "mode; use another folder or --overwrite)")
                arch, text = running[s][q]
                self.journaled(s, q, text, self.fidelity(q))
                tell_real(s, q, self.absorb(s, q, arch, entry, resumed=True))
            for q, (arch, text) in running[s].items():
                self.submit(s, q, arch, text)
        while self.outstanding:
            for s, q, arch, entry in self.finished():
                before = set(running[s])
                tell_real(s, q, self.absorb(s, q, arch, entry, resumed=False))
                for q2 in set(running[s]) - before:
                    self.submit(s, q2, *running[s][q2])

    def record(self) -> LoopRecord:
        wall = self.journaled_seconds + (time.perf_counter() - self.t_session)
        fidelity = np.broadcast_to(np.asarray([-1 if f is None else f for f in self.fids], np.int64),
                                   (self.seeds, self.budget))
        return LoopRecord(self.archs, self.texts.astype(str), self.values, self.failed, wall, self.resumed,
                          fidelity.copy(), self.attempts)


def _lie(state, n_objectives: int):
    """The constant liar's value for a pending point: the worst finite value told so far (NaN before any)."""
    h = getattr(state, "history", None)
    if h is None:
        worst = jnp.full((n_objectives,) if n_objectives else (), jnp.nan)
    else:
        worst = jnp.where(jnp.isfinite(h.worst), h.worst, jnp.nan)
    return worst[None]


def summarise_loop(record: LoopRecord, evaluator, strategy, metric_key, extra: dict | None = None):
    """Best-so-far curves and test results of a journaled run.

    The test metric of every architecture that was ever best-so-far is
    measured *after* the search by ``evaluator.test_value(arch)``; the
    search itself never saw it. Regret and samples-to-optimum need a known
    optimum (tables): otherwise they are ``None``.
    """
    from jnas.runs.results import SearchResult, at_top_fidelity, cost_summary, fidelity_arrays, summary_of

    info = evaluator.metrics[metric_key]
    seeds, budget = record.values.shape
    pos = np.broadcast_to(np.arange(budget), (seeds, budget))
    top = at_top_fidelity(record.fidelity if strategy.multi_fidelity else None, metric_key)
    best_val, best_pos = best_so_far(pos, np.where(top, record.values, np.nan), info.higher_is_better)
    cache: dict[str, float] = {}
    best_test = np.full((seeds, budget), np.nan)
    for s in range(seeds):
        for q in range(budget):
            p = best_pos[s, q]
            if p < 0:
                continue
            text = record.texts[s, p]
            if text not in cache:
                cache[text] = float(evaluator.test_value(record.archs[s][p]))
            best_test[s, q] = cache[text]
    hit = None
    if info.optimum is not None and np.isfinite(info.optimum):
        hit = top & (record.values == info.optimum)
    summary = summary_of(evaluator, strategy, metric_key, best_test[:, -1], hit, record.wall_seconds, record.failed,
                         {**cost_summary(strategy, metric_key),
                          "evaluations_failed": int(record.failed.sum()),
                          "resumed_evaluations": int(record.resumed),
                          "test_measured_after_search": len(cache),
                          **(extra or {})})
    trajectory = {
        "index": np.array([[evaluator.index_of(a) for a in row] for row in record.archs], np.int64),
        "arch": record.texts,
        "value": record.values.astype(np.float64),
        "best_search": best_val,
        "best_test": best_test,
        **fidelity_arrays(strategy, record.fidelity if strategy.multi_fidelity else None),
    }
    return SearchResult(summary, trajectory)
