"""Benchmark: a whole search as one scan, seeds vmapped, against per-seed, per-query Python loops.

Regularized evolution and random search, 300 queries on ``nb201/cifar10``,
for 100 and for 10,000 seeds. jnas runs each configuration twice through a
freshly built jitted function: the first call includes compilation, the
second does not. Each configuration also runs in two fresh processes that
share a new persistent compilation cache (as ``jnas search`` keeps one): the
second process's first call (``jnas_seconds_second_process``) finds the
program in the cache instead of compiling it. The reference is the same
algorithms as plain Python loops over a dict keyed by architecture string
(``python_baselines.py``), timed on the same machine in the same run. Prints
the times and their ratios and writes ``bench/results/search_loop.json``.

    python bench/search_loop.py [--seeds 100 10000] [--budget 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_baselines import make_table, random_search, regularized_evolution  # noqa: E402

from jnas.benchmarks import get_benchmark  # noqa: E402
from jnas.runs.runner import make_scan_fn, seed_keys  # noqa: E402
from jnas.runs.trajectory import best_so_far  # noqa: E402
from jnas.strategies import make_strategy  # noqa: E402

PYTHON = {"rs": random_search, "re": regularized_evolution}


def time_jnas(name, bench, budget, seeds):
    strategy = make_strategy(name, bench.space, budget)
    fn = make_scan_fn(strategy, bench, bench.search_metric)  # a new jitted function: compiles on first call
    keys = seed_keys(seeds)
    jax.block_until_ready(keys)
    t0 = time.perf_counter()
    rows, vals = jax.block_until_ready(fn(keys))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows, vals = jax.block_until_ready(fn(keys))
    second = time.perf_counter() - t0
    _, best_row = best_so_far(np.asarray(rows), np.asarray(vals))
    final_test = bench.column(*bench.test_metric)[best_row[:, -1]].mean()
    return first, second, float(final_test)


def time_python(name, table, budget, seeds):
    t0 = time.perf_counter()
    finals = [PYTHON[name](table, budget, seed)[-1] for seed in range(seeds)]
    return time.perf_counter() - t0, float(np.mean(finals))


def time_in_new_process(name, budget, seeds, cache_dir) -> float:
    """First-call seconds (compile or cache hit + run) of ``time_jnas`` in a new Python process."""
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    out = subprocess.run([sys.executable, __file__, "--child", name, str(budget), str(seeds)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 10_000])
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "search_loop.json"))
    ap.add_argument("--child", nargs=3, metavar=("ALG", "BUDGET", "SEEDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, budget, seeds = args.child[0], int(args.child[1]), int(args.child[2])
        print(time_jnas(name, get_benchmark("nb201/cifar10"), budget, seeds)[0])
        return

    load = os.getloadavg()[0]
    bench = get_benchmark("nb201/cifar10")
    table = make_table(bench, bench.search_metric)
    machine = f"{platform.machine()} {os.cpu_count()} cores, {jax.devices()[0].platform}, jax {jax.__version__}"
    print(f"nb201/cifar10, {args.budget} queries; machine: {machine}")
    head = (f"{'alg':4} {'seeds':>6} {'python s':>9} {'jnas+compile s':>15} {'jnas s':>8} "
            f"{'ratio+compile':>14} {'ratio':>8} {'2nd process s':>14} {'ratio':>7}")
    print(head)
    print("-" * len(head))
    records = []
    for seeds in args.seeds:
        for name in ("rs", "re"):
            first, second, jnas_test = time_jnas(name, bench, args.budget, seeds)
            py, py_test = time_python(name, table, args.budget, seeds)
            with tempfile.TemporaryDirectory() as cache:
                time_in_new_process(name, args.budget, seeds, cache)  # compiles, fills the cache
                cached = time_in_new_process(name, args.budget, seeds, cache)
            rec = {
                "algorithm": name, "seeds": seeds, "budget": args.budget,
                "python_seconds": py, "jnas_seconds_with_compile": first, "jnas_seconds": second,
                "ratio_with_compile": py / first, "ratio": py / second,
                "jnas_seconds_second_process": cached, "ratio_second_process": py / cached,
                "python_us_per_query": py / (seeds * args.budget) * 1e6,
                "final_test_mean_jnas": jnas_test, "final_test_mean_python": py_test,
            }
            records.append(rec)
            print(f"{name:4} {seeds:6d} {py:9.2f} {first:15.2f} {second:8.3f} {py / first:13.1f}x {py / second:7.1f}x"
                  f" {cached:14.3f} {py / cached:6.1f}x   (final test: jnas {jnas_test:.2f}, python {py_test:.2f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "date": time.strftime("%Y-%m-%d"), "load_average_start": load,
                              "results": records}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
