"""Results of a multi-objective search: hypervolume curves, regret against the table's true front, fronts.

Objectives are ``(metric, fidelity)`` keys of one complete table. Every
objective is *maximised* after its sign (lower-is-better metrics are
negated) and normalised by the table's range: 0 is the table's worst value,
1 its best. Hypervolume is measured from the reference point at the origin
of that space (the table's worst corner; ``jnas.metrics.pareto``), so it
lies in [0, 1], and hypervolume regret is the true front's hypervolume minus
the search's. ``trajectory.npz`` of a multi-objective run holds (``[seeds,
budget]`` unless said): ``index`` (published index), ``values``
(``[seeds, budget, M]``, as measured), ``hypervolume`` and ``hv_regret`` (of
the first t+1 queries, on the search objectives), ``test_hypervolume``
(the same curve with each objective's test counterpart). ``front.json``
holds each seed's final Pareto set: architectures as strings with their
search and test objective values.

A multi-objective search by *training* (``TrainingEvaluator``, e.g.
NAGO's ``valid_acc,memory``; ``summarise_loop_multi``) has no table, hence
no true front, no regret and no test metric: ``summary.json`` says
``"true_front": false`` and its regret, test-hypervolume and true-front keys
are ``null``. Its hypervolume is normalised by the run itself
(``run_bounds``): over **all** evaluations of the run (every seed, failed
ones left out), per (maximised) objective, the *ideal* ``hi`` is the best
value and the *reference* ``lo`` the worst finite value minus
``REFERENCE_MARGIN`` (10 %) of the range ``hi - worst`` (so that the
extreme points of a front, each the worst in some objective, still add
volume; an objective with one value gets ``lo = hi - 1``, putting every
point at its ideal). Each seed's hypervolume is then that of its points
mapped by ``(y - lo) / (hi - lo)`` above the origin, in ``[0, 1]``, and the
seeds of one run share one scale (``summary["normalisation"]`` records both
points in the metrics' own units); runs compared with each other are put on
one scale by ``jnas.runs.compare``. ``trajectory.npz`` then holds ``index`` (space index, -1 where the
space is not enumerable), ``arch`` (strings), ``values`` (``[seeds, budget,
M]``, as measured, NaN rows for failed trainings) and ``hypervolume``;
``front.json`` each seed's non-dominated evaluations with their objective
values (``search``), no test values.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jnas.benchmarks.base import TabularBenchmark
from jnas.errors import JnasError
from jnas.metrics import pareto
from jnas.runs.results import SearchResult, metric_name
from jnas.runs.runner import RunRecord
from jnas.runs.trajectory import mean_se


def parse_objectives(bench, objectives, allow_test_metric: bool = False) -> tuple:
    """``("valid_acc@200", "edgegpu_latency")`` (or a comma-separated string) -> checked ``(metric, fidelity)`` keys.

    Refuses, naming ``objectives``: fewer than two, a repeat, an unknown
    metric or fidelity, test data (unless ``allow_test_metric``) and a column
    with missing values (the true front must be that of the whole table).
    ``bench`` may also be a training evaluator: every objective is then
    measured after ``config.epochs`` (the default fidelity; no other).
    """
    if isinstance(objectives, str):
        objectives = [o for o in objectives.split(",")]
    names = [str(o).strip() for o in objectives]
    if any(not n for n in names):
        raise JnasError(f"objectives: got {','.join(names)!r}, expected comma-separated metric names without "
                        "empty entries (e.g. valid_acc@200,edgegpu_latency)")
    if len(names) < 2:
        raise JnasError(f"objectives: got one objective ({names[0] if names else ''!r}), expected two or more, "
                        "comma-separated (e.g. valid_acc@200,edgegpu_latency)")
    keys = []
    for n in names:
        metric, _, fid = n.partition("@")
        if fid and not fid.isdigit():
            raise JnasError(f"objectives: {n!r} has fidelity {fid!r}, expected an integer (e.g. valid_acc@200)")
        try:
            key = bench.resolve(metric, int(fid) if fid else None)
        except JnasError as e:
            raise JnasError(f"objectives: {n!r}: {e}") from None
        if key not in bench.metrics:  # a training evaluator measures every metric after config.epochs only
            at = sorted(str(f) for m, f in bench.metrics if m == key[0])
            why = "" if isinstance(bench, TabularBenchmark) else " (config.epochs: one training measures them all)"
            raise JnasError(f"objectives: {n!r}: {bench.name} measures {key[0]} only at fidelity "
                            f"{', '.join(at) or 'none'}{why}")
        if key in keys:
            raise JnasError(f"objectives: {metric_name(key)!r} is given twice")
        if bench.uses_test_data(key) and not allow_test_metric:
            raise JnasError(f"objectives: {metric_name(key)!r} is test data of {bench.name}; searches never look at "
                            "test data unless --allow-test-metric (allow_test_metric=True) is given")
        info = bench.metrics[key]
        if info.coverage is not None and info.coverage < bench.n_rows:
            raise JnasError(f"objectives: {metric_name(key)!r} has no value for {bench.n_rows - info.coverage} of "
                            f"{bench.n_rows} architectures of {bench.name}; a multi-objective search needs "
                            "complete columns")
        keys.append(key)
    return tuple(keys)


def test_counterpart(bench: TabularBenchmark, key) -> tuple:
    """The test metric standing for objective ``key``: the test accuracy at the same fidelity for the search
    metric, the key itself for any other (latency, energy and parameters have no validation/test split)."""
    if key[0] != bench.search_metric[0] or bench.uses_test_data(key):
        return key
    same = (bench.test_metric[0], key[1])
    return same if same in bench.metrics else bench.test_metric


def _signed_table(bench: TabularBenchmark, keys) -> np.ndarray:
    """``float64[n_rows, M]``: every objective of every row, maximised."""
    cols = [bench.column(*k) * (1.0 if bench.metrics[k].higher_is_better else -1.0) for k in keys]
    return np.stack(cols, axis=1)


@functools.lru_cache(maxsize=32)
def table_front(bench: TabularBenchmark, keys: tuple) -> dict:
    """The table's range and true front for ``keys``: ``{"lo", "hi", "front", "rows", "hypervolume"}`` (host arrays)."""
    y = _signed_table(bench, keys)
    ok = np.isfinite(y).all(axis=1)
    lo, hi = np.where(ok[:, None], y, np.inf).min(0), np.where(ok[:, None], y, -np.inf).max(0)
    mask = np.asarray(pareto.pareto_mask(jnp.asarray(y, jnp.float32), jnp.asarray(ok)))
    front = y[mask]
    hv = float(pareto.normalised_hypervolume(jnp.asarray(front), jnp.asarray(lo), jnp.asarray(hi)))
    return {"lo": lo, "hi": hi, "front": front, "rows": np.flatnonzero(mask), "hypervolume": hv}


def _row_to_index(bench: TabularBenchmark) -> np.ndarray:
    """``int[n_rows]``: the space index of each table row (for architecture strings)."""
    space = bench.space
    rows = np.asarray(bench.rows(space.enumerate()))
    inv = np.full(bench.n_rows, -1, np.int64)
    inv[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
    return inv


def hypervolume_curves(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``float[S, B]``: normalised hypervolume of each seed's first t+1 points ``y float[S, B, M]`` (maximised)."""
    ok = np.isfinite(y).all(axis=2)
    f = jax.jit(jax.vmap(lambda v, m: pareto.hypervolume_trajectory(v, jnp.asarray(lo), jnp.asarray(hi), m)))
    return np.asarray(f(jnp.asarray(np.where(ok[..., None], y, 0.0), jnp.float32), jnp.asarray(ok)), np.float64)


def summarise_multi(record: RunRecord, bench: TabularBenchmark, strategy, keys: tuple, extra: dict | None = None):
    """The ``SearchResult`` of a multi-objective tabular run (see the module docstring)."""
    keys = tuple(keys)
    signs = np.array([1.0 if bench.metrics[k].higher_is_better else -1.0 for k in keys])
    rows = record.rows
    y = record.values.astype(np.float64) * signs
    truth = table_front(bench, keys)
    hv = hypervolume_curves(y, truth["lo"], truth["hi"])
    regret = truth["hypervolume"] - hv
    tkeys = tuple(test_counterpart(bench, k) for k in keys)
    ty_table = _signed_table(bench, tkeys)
    ty = np.where((rows >= 0)[..., None], ty_table[np.clip(rows, 0, None)], np.nan)
    t_truth = table_front(bench, tkeys)
    test_hv = hypervolume_curves(ty, t_truth["lo"], t_truth["hi"])

    inv = _row_to_index(bench)
    fronts = []
    for s in range(rows.shape[0]):
        ok = np.isfinite(y[s]).all(axis=1)
        on = np.asarray(pareto.pareto_mask(jnp.asarray(np.where(ok[:, None], y[s], 0.0), jnp.float32),
                                           jnp.asarray(ok)))
        seen, members = set(), []
        for t in np.flatnonzero(on):
            if rows[s, t] in seen:
                continue
            seen.add(int(rows[s, t]))
            arch = bench.space.to_string(bench.space.from_index(int(inv[rows[s, t]])))
            members.append({"arch": arch, "index": int(bench.official([rows[s, t]])[0]), "query": int(t),
                            "search": [float(v) for v in record.values[s, t]],
                            "test": [float(v) for v in (ty[s, t] * signs)]})
        fronts.append(members)

    hv_mean, hv_se = mean_se(hv[:, -1])
    r_mean, r_se = mean_se(regret[:, -1])
    t_mean, t_se = mean_se(test_hv[:, -1])
    failed = ~np.isfinite(record.values).all(axis=2)
    summary = {
        "benchmark": bench.name,
        "strategy": strategy.name,
        "budget": int(strategy.budget),
        "seeds": int(rows.shape[0]),
        "objectives": [metric_name(k) for k in keys],
        "directions": ["max" if s > 0 else "min" for s in signs],
        "test_objectives": [metric_name(k) for k in tkeys],
        "search_metric": ",".join(metric_name(k) for k in keys),
        "test_metric": ",".join(metric_name(k) for k in tkeys),
        "final_hypervolume_mean": hv_mean,
        "final_hypervolume_se": hv_se,
        "final_hv_regret_mean": r_mean,
        "final_hv_regret_se": r_se,
        "final_test_hypervolume_mean": t_mean,
        "final_test_hypervolume_se": t_se,
        "true_front": True,
        "true_front_hypervolume": truth["hypervolume"],
        "true_front_size": int(len(truth["rows"])),
        "reference_point": "the table's worst value of every objective (normalised hypervolume in [0, 1])",
        "wall_seconds": float(record.wall_seconds),
        "failed_fraction": float(np.mean(failed)),
        "options": strategy.settings(),
        "space": bench.space.name,
        "device": str(jax.devices()[0].platform),
    }
    summary.update(extra or {})
    trajectory = {
        "index": bench.official(rows).astype(np.int64),
        "values": record.values.astype(np.float64),
        "hypervolume": hv,
        "hv_regret": regret,
        "test_hypervolume": test_hv,
    }
    return SearchResult(summary, trajectory, fronts=fronts)


REFERENCE_MARGIN = 0.1  # runs without a table: the reference lies this part of the range below the worst value


def run_bounds(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)``, ``float64[M]``: reference and ideal point of the maximised objectives ``y float[..., M]`` of
    a run without a table. Over the complete rows (every objective finite): ``hi`` the best value,
    ``lo = worst - REFERENCE_MARGIN * (hi - worst)``, or ``hi - 1`` where the objective has one value; both 0
    where no row is complete (nothing adds volume)."""
    flat = np.asarray(y, np.float64).reshape(-1, y.shape[-1])
    ok = np.isfinite(flat).all(axis=1)
    if not ok.any():
        return np.zeros(flat.shape[1]), np.zeros(flat.shape[1])
    worst, hi = flat[ok].min(axis=0), flat[ok].max(axis=0)
    span = hi - worst
    return np.where(span > 0, worst - REFERENCE_MARGIN * span, hi - 1.0), hi


def _ranks(y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """``float32[n, M]``: each objective of ``y float64[n, M]`` replaced by its dense rank among the ``ok`` rows
    (0 elsewhere). Dominance is unchanged by a rank per objective, and ranks are exact in float32, so
    ``pareto.pareto_mask`` decides on them exactly what it would on the float64 values."""
    out = np.zeros(y.shape, np.float32)
    for j in range(y.shape[1]):
        if ok.any():
            out[ok, j] = np.unique(y[ok, j], return_inverse=True)[1]
    return out


def summarise_loop_multi(record, evaluator, strategy, keys: tuple, extra: dict | None = None) -> SearchResult:
    """The ``SearchResult`` of a multi-objective training run (``jnas.runs.loop.LoopRecord``; module docstring).

    No table: no true front, no regret, no test metric. Each seed's front is
    the Pareto set of what it evaluated; hypervolumes are normalised by the
    run's own ideal and reference points (``run_bounds`` of all its evaluations).
    """
    from jnas.runs.results import cost_summary

    keys = tuple(keys)
    signs = np.array([1.0 if evaluator.metrics[k].higher_is_better else -1.0 for k in keys])
    values = record.values.astype(np.float64)  # [S, B, M], NaN rows for failures
    y = values * signs
    lo, hi = run_bounds(y)
    hv = hypervolume_curves(y, lo, hi)
    seeds = values.shape[0]
    fronts = []
    for s in range(seeds):
        ok = np.isfinite(y[s]).all(axis=1)
        on = np.asarray(pareto.pareto_mask(jnp.asarray(_ranks(y[s], ok)), jnp.asarray(ok)))
        seen, members = set(), []
        for t in np.flatnonzero(on):
            text = str(record.texts[s, t])
            if text in seen:  # asked again (a strategy may repeat): one member per architecture
                continue
            seen.add(text)
            members.append({"arch": text, "index": int(evaluator.index_of(record.archs[s][t])), "query": int(t),
                            "search": [float(v) for v in values[s, t]]})
        fronts.append(members)
    hv_mean, hv_se = mean_se(hv[:, -1])
    summary = {
        "benchmark": evaluator.name,
        "strategy": strategy.name,
        "budget": int(strategy.budget),
        "seeds": int(seeds),
        "objectives": [metric_name(k) for k in keys],
        "directions": ["max" if s > 0 else "min" for s in signs],
        "units": [evaluator.metrics[k].unit for k in keys],
        "test_objectives": None,
        "search_metric": ",".join(metric_name(k) for k in keys),
        "test_metric": None,
        "test_measured": "none: a training search has no test counterpart of its objectives; front.json holds "
                         "the search objectives only",
        "final_hypervolume_mean": hv_mean,
        "final_hypervolume_se": hv_se,
        "final_hv_regret_mean": None,  # regret needs the true front, unknown without a table
        "final_hv_regret_se": None,
        "final_test_hypervolume_mean": None,
        "final_test_hypervolume_se": None,
        "true_front": False,
        "true_front_hypervolume": None,
        "true_front_size": None,
        "reference_point": f"over all evaluations of this run (all seeds): the worst finite value of every objective "
                           f"less {REFERENCE_MARGIN:g} of its range; ideal point: the best value; hypervolume "
                           "normalised by them to [0, 1] (jnas.runs.multiobjective.run_bounds)",
        "normalisation": {"reference": [float(v) for v in lo * signs], "ideal": [float(v) for v in hi * signs]},
        "front_sizes": [len(f) for f in fronts],
        "wall_seconds": float(record.wall_seconds),
        "failed_fraction": float(np.mean(record.failed)),
        "evaluations_failed": int(record.failed.sum()),
        "resumed_evaluations": int(record.resumed),
        **cost_summary(strategy, keys[0]),  # every objective is measured by one training of keys[0][1] epochs
        "options": strategy.settings(),
        "space": evaluator.space.name,
        "device": str(jax.devices()[0].platform),
    }
    summary.update(extra or {})
    trajectory = {
        "index": np.array([[evaluator.index_of(a) for a in row] for row in record.archs], np.int64),
        "arch": record.texts,
        "values": values,
        "hypervolume": hv,
    }
    return SearchResult(summary, trajectory, fronts=fronts)
