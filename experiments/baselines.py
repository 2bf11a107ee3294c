"""Baselines on every real tabular benchmark: RS, RE and LS, plus random search's
samples-to-optimum against its closed form.

For each benchmark: 100 seeds x 300 queries of ``rs``, ``re`` and ``ls``
(final test accuracy of the best-by-validation architecture, test regret,
fraction of seeds that found the validation optimum). Then random search
without replacement with a budget equal to the space size: the mean number
of queries to the search metric's optimum must be (N + 1) / (m + 1) for N
architectures of which m attain the optimum. Writes
``experiments/results/baselines.json`` and prints a table.

    python experiments/baselines.py [--seeds 100] [--budget 300]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from jnas.benchmarks import get_benchmark, names
from jnas.runs import search


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "baselines.json"))
    args = ap.parse_args()
    out = {"seeds": args.seeds, "budget": args.budget, "benchmarks": {}}
    print(f"{'benchmark':22} {'alg':3} {'test %':>14} {'regret pp':>15} {'found opt':>9}")
    for name in names():
        bench = get_benchmark(name)
        rec = {}
        for alg in ("rs", "re", "ls"):
            s = search(name, alg, args.budget, seeds=args.seeds).summary
            rec[alg] = {k: s[k] for k in ("final_test_mean", "final_test_se", "final_regret_mean", "final_regret_se",
                                          "found_optimum_fraction", "samples_to_optimum_mean")}
            print(f"{name:22} {alg:3} {s['final_test_mean']:8.2f} ± {s['final_test_se']:.2f} "
                  f"{s['final_regret_mean']:8.3f} ± {s['final_regret_se']:.3f} {s['found_optimum_fraction']:9.2f}")
        n = bench.n_rows
        col = bench.column(*bench.search_metric)
        m = int((col == np.nanmax(col)).sum())
        full = search(name, "rs", n, seeds=args.seeds).summary
        theory = (n + 1) / (m + 1)
        rec["rs_full"] = {"samples_to_optimum_mean": full["samples_to_optimum_mean"], "theory": theory, "n": n, "m": m}
        print(f"{name:22} rs to optimum: {full['samples_to_optimum_mean']:.0f} (theory (N+1)/(m+1) = {theory:.0f})")
        out["benchmarks"][name] = rec
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
