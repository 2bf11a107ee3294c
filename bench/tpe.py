"""jnas's TPE against Optuna's ``TPESampler``: test regret after the same budget, and seconds per run.

Protocol (both sides): ``nb201/cifar10``, 300 queries, seeds ``0 .. S-1`` (100 by default, at least
50 for the issue's comparison). The search metric is the benchmark's own (``bench.search_metric``:
200-epoch validation accuracy, maximised); the reported number is the test regret of the
best-by-search-metric architecture after the last query (``test optimum - test accuracy`` of the
first query that reached the best search-metric value), mean ± standard error over seeds — the
definition of ``jnas.runs.results.summarise``.

* Optuna: ``TPESampler(seed=s)`` with every other setting at its default (Optuna 5: multivariate
  TPE, ``n_startup_trials=10``, 24 EI candidates), one ``suggest_categorical`` per NB201 decision
  (6 edges x 5 ops, named as ``space.decisions``), ``direction="maximize"``; the objective looks
  the architecture up in the same table jnas uses and returns its search-metric value. Optuna may
  propose an architecture twice (each proposal counts as a query); jnas's TPE never does.
  Seconds per run: the wall time of all studies / seeds.
* jnas: ``jnas.runs.search(benchmark, "tpe", budget, seeds=S)`` (one compiled scan, seeds
  vmapped). Seconds per run: that call's wall time (compilation included) / seeds, and the steady
  state: a second call of the same compiled function (``make_scan_fn``) / seeds. The bench
  recomputes jnas's regret from the compiled function's rows with the function that scores Optuna
  and checks it against the summary, so the two sides are scored by the same code.

Prints a table and writes ``bench/results/tpe.json`` (machine, date, versions, every number).
Optuna is imported here only (``pip install optuna``); jnas does not depend on it.

    JNAS_DATA_DIR=... python bench/tpe.py [--seeds 100] [--budget 300] [--set gamma=0.1 ...]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from machine import summary as machine_summary

from jnas.benchmarks import get_benchmark
from jnas.runs import search
from jnas.runs.runner import make_scan_fn, seed_keys
from jnas.runs.trajectory import best_so_far, mean_se
from jnas.strategies import make_strategy


def token_rows(bench) -> np.ndarray:
    """``int[prod(card)]``: the table row of every token vector (mixed-radix code, first decision most
    significant), -1 where the vector describes no member of the space."""
    sp = bench.space
    cards = np.asarray(sp.decisions.cardinality)
    if sp.decisions.conditional:
        raise SystemExit(f"{bench.name}: conditional decisions are not supported by this bench")
    tokens = np.stack(np.unravel_index(np.arange(int(np.prod(cards))), tuple(cards)), axis=1)
    archs = jax.vmap(lambda t: sp.canonicalize(sp.from_decisions(t)))(jnp.asarray(tokens, jnp.int8))
    return np.asarray(bench.rows(archs)).astype(np.int64)


def final_test_regret(bench, rows: np.ndarray, values: np.ndarray, metric_key) -> np.ndarray:
    """``float[S]``: test regret of each seed's best-by-search-metric query (ties: the first queried)."""
    info = bench.metrics[metric_key]
    _, best_row = best_so_far(rows, values, info.higher_is_better)
    test = bench.column(*bench.test_metric)
    final = np.where(best_row[:, -1] >= 0, test[np.clip(best_row[:, -1], 0, None)], np.nan)
    opt = bench.metrics[bench.test_metric].optimum
    return opt - final if bench.metrics[bench.test_metric].higher_is_better else final - opt


def run_optuna(bench, budget: int, seeds: int):
    """``(rows int[S, B], values float[S, B], seconds, optuna version)`` of ``seeds`` default-settings Optuna TPE
    studies (row -1, value NaN: a token vector with no member of the space, a failed trial)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sp = bench.space
    names, choices = sp.decisions.names, sp.decisions.values
    cards = np.asarray(sp.decisions.cardinality)
    lookup = token_rows(bench)
    metric = bench.column(*bench.search_metric)
    sign = 1.0 if bench.metrics[bench.search_metric].higher_is_better else -1.0
    rows = np.full((seeds, budget), -1, np.int64)

    def objective(trial, asked: list):
        tokens = [choices[d].index(trial.suggest_categorical(names[d], choices[d])) for d in range(len(names))]
        row = int(lookup[np.ravel_multi_index(tokens, tuple(cards))])
        asked.append(row)
        return float(sign * metric[row]) if row >= 0 else float("nan")  # NaN: a failed trial

    t0 = time.perf_counter()
    for s in range(seeds):
        asked: list[int] = []
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=s))
        study.optimize(functools.partial(objective, asked=asked), n_trials=budget)
        rows[s] = asked
    seconds = time.perf_counter() - t0
    values = np.where(rows >= 0, metric[np.clip(rows, 0, None)], np.nan)
    return rows, values, seconds, optuna.__version__


def run_jnas(bench, budget: int, seeds: int, options: dict):
    """Regret summary of the public ``search`` call, its wall time, and the steady-state time of a second
    call of the compiled scan; also the rows/values of that call (for the shared regret check)."""
    res = search(bench.name, "tpe", budget, seeds=seeds, options=options)
    strategy = make_strategy("tpe", bench.space, budget, **options)
    fn = make_scan_fn(strategy, bench, bench.search_metric)
    keys = seed_keys(seeds)
    jax.block_until_ready(fn(keys))  # compile
    t0 = time.perf_counter()
    rows, values = jax.block_until_ready(fn(keys))
    steady = time.perf_counter() - t0
    return res.summary, steady, np.asarray(rows).astype(np.int64), np.asarray(values).astype(np.float64)


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--benchmark", default="nb201/cifar10")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="jnas tpe option")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "tpe.json"))
    args = ap.parse_args()
    bench = get_benchmark(args.benchmark)
    options = parse_sets(args.set)
    load = os.getloadavg()[0]

    summary, steady, j_rows, j_vals = run_jnas(bench, args.budget, args.seeds, options)
    j_regret = final_test_regret(bench, j_rows, j_vals, bench.search_metric)
    j_mean, j_se = mean_se(j_regret)
    if not np.isclose(j_mean, summary["final_regret_mean"], atol=1e-6):
        raise SystemExit(f"regret check failed: {j_mean} here, {summary['final_regret_mean']} in the summary")
    o_rows, o_vals, o_seconds, o_version = run_optuna(bench, args.budget, args.seeds)
    o_mean, o_se = mean_se(final_test_regret(bench, o_rows, o_vals, bench.search_metric))
    o_repeats = float(np.mean([args.budget - len(np.unique(r)) for r in o_rows]))

    j_first = summary["wall_seconds"] / args.seeds
    j_steady = steady / args.seeds
    o_run = o_seconds / args.seeds
    print(f"{args.benchmark}, {args.budget} queries, {args.seeds} seeds (test regret, pp: mean ± SE)")
    print(f"{'':24} {'test regret':>15} {'s/run':>9} {'Optuna/jnas':>11}")
    print(f"{'Optuna TPESampler ' + o_version:24} {o_mean:7.3f} ± {o_se:.3f} {o_run:9.4f} {'':>11}")
    print(f"{'jnas tpe (compile+run)':24} {j_mean:7.3f} ± {j_se:.3f} {j_first:9.4f} {o_run / j_first:10.1f}x")
    print(f"{'jnas tpe (steady)':24} {'':15} {j_steady:9.4f} {o_run / j_steady:10.1f}x")
    print(f"Optuna re-proposed {o_repeats:.1f} of {args.budget} queries per run on average; jnas never repeats")

    record = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine_summary(),
        "load_average_start": load, "python": platform.python_version(), "jax": jax.__version__,
        "optuna": o_version, "benchmark": args.benchmark, "budget": args.budget, "seeds": args.seeds,
        "search_metric": summary["search_metric"], "test_metric": summary["test_metric"],
        "jnas": {"options": summary["options"], "regret_mean": j_mean, "regret_se": j_se,
                 "seconds_per_run_compile_and_run": j_first, "seconds_per_run_steady": j_steady,
                 "wall_seconds": summary["wall_seconds"], "steady_wall_seconds": steady},
        "optuna_tpe": {"settings": "TPESampler(seed=s), defaults", "regret_mean": o_mean, "regret_se": o_se,
                       "seconds_per_run": o_run, "wall_seconds": o_seconds, "repeated_queries_mean": o_repeats},
        "speedup_compile_and_run": o_run / j_first, "speedup_steady": o_run / j_steady,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
