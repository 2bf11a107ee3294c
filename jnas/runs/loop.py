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
from jnas.strategies.base import Strategy


@dataclasses.dataclass
class LoopRecord:
    """Raw outcome of a journaled run, per seed and query (arrays ``[seeds, budget]``)."""

    archs: list[list]  # the queried architectures (pytrees), [seed][query]
    texts: np.ndarray  # str: their string forms
    values: np.ndarray  # float64: search-metric values (NaN = failed); multi-objective: [seeds, budget, M]
    failed: np.ndarray  # bool: the evaluation failed (multi-objective: any objective is not finite)
    wall_seconds: float  # evaluation time (journaled ones included) plus this session's search overhead
    resumed: int  # evaluations answered from the journal
    fidelity: np.ndarray  # int: the fidelity each query was evaluated at (epochs; -1 for none)


def _unbatch(archs, n: int) -> list:
    return [jax.tree.map(lambda a, i=i: np.asarray(a)[i], archs) for i in range(n)]


def _entry_value(entry: dict, metric: str) -> float:
    v = (entry.get("metrics") or {}).get(metric)
    return float("nan") if v is None else float(v)


def run_journaled(
    strategy: Strategy,
    evaluator,
    seeds: int,
    metric_key: tuple,
    seed0: int = 0,
    prng: str = "hash",
    journal: Journal | None = None,
    progress: Callable[[dict], None] | None = None,
) -> LoopRecord:
    """Run ``seeds`` searches of ``strategy`` against ``evaluator`` from Python, journaling every evaluation.

    ``evaluator.evaluate(arch, fidelity)`` returns a record with the metric
    values, ``status`` (``ok``/``failed``), ``reason`` and ``wall_seconds``;
    an exception there is recorded as a failure too. Failed evaluations are
    told as NaN (the worst value) and the search goes on. ``progress`` gets
    ``{"done", "total", "arch", "best", "resumed"}`` after every evaluation.

    ``metric_key``: one ``(metric, fidelity)``, or a tuple of them (all at one
    fidelity) for a multi-objective search: values are then
    ``float64[seeds, budget, M]`` as measured (a NaN row for a failure), each
    objective told times its sign, and ``best`` in ``progress`` is that of the first objective.
    """
    objs = objective_keys(metric_key)
    multi = is_multi(metric_key)
    top = objs[0][1]
    if any(k[1] != top for k in objs):
        raise JnasError(f"objectives: got fidelities {[k[1] for k in objs]}, expected one fidelity for every "
                        "objective (one evaluation measures them all)")
    signs = np.array([1.0 if evaluator.metrics[k].higher_is_better else -1.0 for k in objs])
    sign = signs[0]
    space = evaluator.space
    bs, budget = strategy.batch_size, strategy.n_queries
    n_steps = strategy.n_steps
    # a multi-fidelity strategy's schedule says each query's fidelity; otherwise every query is at the metric's
    fids = np.asarray(strategy.schedule.fidelity) if strategy.multi_fidelity else np.full(budget, top)
    entries = journal.load() if journal is not None else {}
    ask, tell, init = jax.jit(strategy.ask), jax.jit(strategy.tell), jax.jit(strategy.init)
    keys = seed_keys(seeds, seed0, prng)
    values = np.full((seeds, budget, len(objs)) if multi else (seeds, budget), np.nan)
    failed = np.zeros((seeds, budget), bool)
    texts = np.full((seeds, budget), "", dtype=object)
    archs_out: list[list] = [[None] * budget for _ in range(seeds)]
    resumed, done, wall = 0, 0, 0.0
    new_seconds: list[float] = []
    best = None
    t_session = time.perf_counter()
    for s in range(seeds):
        k_init, k_steps = _split(keys[s], n_steps)
        state = init(k_init)
        for t in range(n_steps):
            archs, state = ask(state, k_steps[t])
            batch = _unbatch(archs, bs)
            told = np.full((bs, len(objs)) if multi else bs, np.nan)
            for i, arch in enumerate(batch):
                q = t * bs + i
                if q >= budget:  # the last batch may run past the budget: those are never evaluated
                    break
                text = space.to_string(arch)
                fidelity = None if fids[q] is None else int(fids[q])
                entry = entries.get((s, q))
                if entry is not None:
                    if entry.get("arch") != text or entry.get("fidelity") != fidelity:
                        raise JnasError(
                            f"journal {journal.path}: seed {s} query {q} recorded {entry.get('arch')!r} at fidelity "
                            f"{entry.get('fidelity')}, but this run asks {text!r} at {fidelity}; it is the journal of "
                            "a different run (use another folder or --overwrite)"
                        )
                    resumed += 1
                else:
                    entry = _evaluate(evaluator, arch, text, fidelity, s, q)
                    new_seconds.append(entry["wall_seconds"])
                    if journal is not None:
                        journal.append(entry)
                v = np.array([_entry_value(entry, k[0]) for k in objs])
                wall += float(entry.get("wall_seconds") or 0.0)
                failed[s, q] = entry.get("status") != "ok" or not np.isfinite(v).all()
                if multi and failed[s, q]:  # a failure is a whole row of NaN: no objective of it is told
                    v = np.full(len(objs), np.nan)
                values[s, q] = v if multi else v[0]
                texts[s, q], archs_out[s][q] = text, arch
                told[i] = signs * v if multi else sign * v[0]
                done += 1
                if np.isfinite(v[0]) and (best is None or sign * v[0] > sign * best):
                    best = float(v[0])
                if progress:
                    progress({"done": done, "total": seeds * budget, "arch": text, "best": best,
                              "resumed": resumed})
            if (t + 1) * bs < budget:  # nothing asks after the last step
                state = tell(state, archs, jnp.asarray(told, dtype=jnp.result_type(float)))
    fresh = sum(e for e in new_seconds)
    overhead = time.perf_counter() - t_session - fresh
    fidelity = np.broadcast_to(np.asarray([-1 if f is None else f for f in fids], np.int64), (seeds, budget))
    return LoopRecord(archs_out, texts.astype(str), values, failed, wall + overhead, resumed, fidelity.copy())


def _evaluate(evaluator, arch, text: str, fidelity, seed: int, query: int) -> dict:
    t0 = time.perf_counter()
    try:
        rec = evaluator.evaluate(arch, fidelity)
    except Exception as e:  # noqa: BLE001 — a crashed evaluation is data for the search, not the end of it
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        rec = {"status": "failed", "reason": f"{type(e).__name__}: {first}"}
    # the journal is what the search saw: never a test metric, even one the evaluator happened to hold
    metric_names = [m for m, f in evaluator.metrics if not evaluator.uses_test_data((m, f))]
    return {
        "seed": seed,
        "query": query,
        "arch": text,
        "fidelity": fidelity,
        "status": rec.get("status", "ok"),
        "reason": rec.get("reason"),
        "metrics": {m: rec.get(m) for m in metric_names if m in rec},
        "wall_seconds": time.perf_counter() - t0,  # what this evaluation cost here (a cached answer: ~0)
    }


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
