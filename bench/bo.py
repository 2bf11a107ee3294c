"""Model-based searches on NAS-Bench-201: wall time and test regret beside random search's exact regret.

Runs ``bo``, ``tpe``, ``bananas`` and ``pbnas`` at 150 queries (the four together: the 10-minute target)
and ``bananas`` and ``pbnas`` at 100 as well, 10 seeds each, on
``nb201/cifar10`` (search metric: 200-epoch validation accuracy; reported: test regret of the
best-by-validation architecture, mean ± standard error over seeds), each as one compiled call
(``jnas.runs.search``: compilation included in the wall time). The reference is random search
without replacement at the same budget, whose mean test regret is computed exactly: with the
architectures ranked by the search metric, the best of ``B`` uniform draws from ``N`` is rank ``i``
with probability ``C(N - i, B - 1) / C(N, B)``. Prints both and writes ``bench/results/bo.json``.

    python bench/bo.py [--runs bo:150,tpe:150,bananas:150,pbnas:150,bananas:100,pbnas:100] [--seeds 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from machine import summary as machine_summary

from jnas.benchmarks import get_benchmark
from jnas.runs import search

RUNS = "bo:150,tpe:150,bananas:150,pbnas:150,bananas:100,pbnas:100"


def random_search_regret(bench, budget: int) -> float:
    """Exact mean test regret of random search without replacement after ``budget`` queries (search-metric
    ties broken by table order)."""
    val = bench.column(*bench.search_metric)
    test = bench.column(*bench.test_metric)
    ok = np.isfinite(val)
    t = test[ok][np.argsort(-val[ok], kind="stable")]
    n = len(t)
    lg = np.vectorize(math.lgamma)
    i = np.arange(1, n + 1)
    feasible = n - i >= budget - 1
    j = np.where(feasible, n - i, budget - 1)
    log_p = lg(j + 1) - lg(budget) - lg(j - budget + 2) - (lg(n + 1) - lg(budget + 1) - lg(n - budget + 1))
    p = np.where(feasible, np.exp(log_p), 0.0)
    return float(np.sum(p * (np.nanmax(test) - t)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=RUNS, help="strategy:budget pairs, comma-separated")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--benchmark", default="nb201/cifar10")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "bo.json"))
    args = ap.parse_args()
    bench = get_benchmark(args.benchmark)
    rows = []
    print(f"{'strategy':9} {'budget':>6} {'seeds':>5} {'wall s':>7} {'test regret':>15} {'RS exact':>8}")
    for run in args.runs.split(","):
        name, _, budget = run.partition(":")
        if not budget.isdigit():
            raise SystemExit(f"--runs: expected strategy:budget pairs such as bo:150, got {run!r}")
        budget = int(budget)
        t0 = time.perf_counter()
        s = search(args.benchmark, name, budget, seeds=args.seeds).summary
        wall = time.perf_counter() - t0
        rs = random_search_regret(bench, budget)
        rows.append({"strategy": name, "budget": budget, "seeds": args.seeds, "wall_seconds": wall,
                     "search_wall_seconds": s["wall_seconds"], "regret_mean": s["final_regret_mean"],
                     "regret_se": s["final_regret_se"], "rs_exact_regret": rs})
        print(f"{name:9} {budget:6d} {args.seeds:5d} {wall:7.1f} {s['final_regret_mean']:7.3f} ± "
              f"{s['final_regret_se']:.3f} {rs:8.3f}", flush=True)
    record = {"date": time.strftime("%Y-%m-%d"), "machine": machine_summary(),
              "load_average_start": os.getloadavg()[0], "benchmark": args.benchmark, "rows": rows,
              "total_wall_seconds": sum(r["wall_seconds"] for r in rows),
              "wall_seconds_four_at_150": sum(r["wall_seconds"] for r in rows if r["budget"] == 150)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"total {record['total_wall_seconds']:.0f} s (the runs at 150 queries: "
          f"{record['wall_seconds_four_at_150']:.0f} s) -> {args.out}")


if __name__ == "__main__":
    main()
