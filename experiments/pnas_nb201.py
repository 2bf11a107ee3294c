"""PNAS (progressive search by blocks) on NAS-Bench-201 against RS and RE (issue 20, part 3).

``pnas`` with K = 8 grows cells from one non-``none`` edge to six (one block
per step, an MLP-ensemble surrogate ranking the expansions of the previous
round's 8 cells), then continues at full size; RS and RE (defaults) run the
same budget. All through ``jnas.runs.search`` (one ``lax.scan`` per run,
seeds vmapped), ``nb201/cifar10``'s default search metric (200-epoch
validation accuracy). Reported: best validation error (%) after 8, 48, 100
and 150 queries and the final test regret (percentage points below the
table's best test accuracy) of the best-by-validation cell, mean ± SE over
seeds.

Writes ``experiments/results/pnas_nb201.json`` and prints the table.

    python experiments/pnas_nb201.py [--seeds 20] [--budget 150]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from jnas.runs import search

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from machine import cpu_model  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCH = "nb201/cifar10"
METHODS = (("RS", "rs", {}), ("RE", "re", {}), ("PNAS (K=8)", "pnas", {"batch_size": 8}))
CHECKPOINTS = (8, 48, 100, 150)


def mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, np.float64)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=150)
    ap.add_argument("--out", default=str(HERE / "results" / "pnas_nb201.json"))
    args = ap.parse_args(argv)
    rows = {}
    for label, name, opts in METHODS:
        t0 = time.perf_counter()
        res = search(BENCH, name, args.budget, seeds=args.seeds, options=opts)
        best = np.asarray(res.trajectory["best_search"])  # best validation accuracy so far, [seeds, budget]
        row = {f"valid_err@{c}": mean_se(100.0 - best[:, c - 1]) for c in CHECKPOINTS if c <= args.budget}
        row["test_regret"] = (res.summary["final_regret_mean"], res.summary["final_regret_se"])
        row["seconds"] = time.perf_counter() - t0
        rows[label] = row
        cells = "  ".join(f"{k} {v[0]:.2f}±{v[1]:.2f}" for k, v in row.items() if k != "seconds")
        print(f"{label:12s} {cells}  ({row['seconds']:.0f} s)", flush=True)
    record = {"benchmark": BENCH, "seeds": args.seeds, "budget": args.budget, "machine": cpu_model(),
              "date": time.strftime("%Y-%m-%d"), "methods": {label: {"strategy": n, "options": o}
                                                             for label, n, o in METHODS},
              "results": rows}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
