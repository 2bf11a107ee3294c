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
