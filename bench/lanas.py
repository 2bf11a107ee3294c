"""Benchmark: LaNAS for 100 seeds as one compiled scan + vmap, against the same run seed by seed.

A 1,000-query LaNAS search (paper defaults: height 5, Cp = 0.1·|best|, 10
initial samples, a learning phase every 20) on ``nb201/cifar10``.

* batched: ``make_scan_fn`` over all seeds at once: one compiled program
  (``lax.scan`` over queries, ``vmap`` over seeds), called once.
* sequential: the same ``make_scan_fn`` built for one seed, compiled once
  (a warm-up call, timed separately) and then called once per seed.

Both use the same keys, so they run the same searches; the script reports
how many seeds gave identical query sequences (float32 sums batched over
seeds may round differently, which can move a sample across a split).
Prints wall times (with and without compilation) and their ratio, plus the
searches' samples-to-optimum, and writes ``bench/results/lanas.json``.

    python bench/lanas.py [--seeds 100] [--budget 1000] [--strategy lanas]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from jnas.benchmarks import get_benchmark
from jnas.runs.runner import make_scan_fn, seed_keys
from jnas.runs.trajectory import samples_to_hit
from jnas.strategies import make_strategy


def timed(fn, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--strategy", default="lanas")
    ap.add_argument("--benchmark", default="nb201/cifar10")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "lanas.json"))
    args = ap.parse_args()

    bench = get_benchmark(args.benchmark)
    strategy = make_strategy(args.strategy, bench.space, args.budget)
    keys = seed_keys(args.seeds)
    machine = f"{platform.machine()} {os.cpu_count()} cores, {jax.devices()[0].platform}, jax {jax.__version__}"
    print(f"{args.benchmark}, {args.strategy} {strategy.settings()}, {args.budget} queries, {args.seeds} seeds")
    load = os.getloadavg()[0]
    print(f"machine: {machine}; load average before: {load:.1f}")

    batched = make_scan_fn(strategy, bench, bench.search_metric)
    (rows_b, _), batched_first = timed(batched, keys)
    (rows_b, _), batched_run = timed(batched, keys)

    single = make_scan_fn(strategy, bench, bench.search_metric)
    _, single_compile = timed(single, keys[:1])
    t0 = time.perf_counter()
    rows_s = [np.asarray(jax.block_until_ready(single(keys[i : i + 1]))[0])[0] for i in range(args.seeds)]
    sequential_run = time.perf_counter() - t0
    rows_b, rows_s = np.asarray(rows_b), np.stack(rows_s)

    col = bench.column(*bench.search_metric)
    opt = bench.metrics[bench.search_metric].optimum
    to_opt = {
        name: float(samples_to_hit((r >= 0) & (col[np.clip(r, 0, None)] == opt)).mean())
        for name, r in (("batched", rows_b), ("sequential", rows_s))
    }
    same = int((rows_b == rows_s).all(axis=1).sum())
    rec = {
        "benchmark": args.benchmark, "strategy": args.strategy, "options": strategy.settings(),
        "budget": args.budget, "seeds": args.seeds, "machine": machine, "load_average_before": load,
        "batched_seconds_with_compile": batched_first, "batched_seconds": batched_run,
        "sequential_compile_seconds": single_compile, "sequential_seconds": sequential_run,
        "sequential_method": "make_scan_fn for one seed, compiled once, called once per seed",
        "ratio": sequential_run / batched_run,
        "ratio_with_compile": (sequential_run + single_compile) / batched_first,
        "identical_trajectories": same, "samples_to_optimum_mean": to_opt,
    }
    print(f"{'':12} {'compile+run s':>14} {'run s':>8}")
    print(f"{'batched':12} {batched_first:14.2f} {batched_run:8.2f}")
    print(f"{'sequential':12} {single_compile + sequential_run:14.2f} {sequential_run:8.2f}"
          "   (100 calls of a 1-seed scan)")
    print(f"ratio sequential / batched: {rec['ratio']:.2f}x (with compilation {rec['ratio_with_compile']:.2f}x)")
    print(f"identical trajectories: {same}/{args.seeds}; samples to optimum (mean): "
          f"batched {to_opt['batched']:.1f}, sequential {to_opt['sequential']:.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
