"""REINFORCE (Zoph & Le) on NAS-Bench-201 against RS, RE and TPE (issue 20; ANASOD Table 2's "RL" row).

Two parts, both with 300 queries per run and the benchmarks' default search
metrics (validation accuracy):

1. **Tuning** on ``nb201/cifar100`` (12-epoch validation column), seeds
   ``1000 ..`` (disjoint from part 2's): a handful of settings of ``lr``,
   ``baseline_decay``, ``entropy`` and ``batch_size`` for both controllers;
   scored by the final best validation error (the search metric, not test).
2. **Comparison** on ``nb201/cifar10``, seeds ``0 ..``: ``rs``, ``re``,
   ``tpe`` and ``reinforce`` at its defaults (LSTM controller) and with
   ``controller=softmax``, all through ``jnas.runs.search`` (one ``lax.scan``
   per run, seeds vmapped). Reported: best validation error (%) after 50, 100,
   150 and 300 queries, the final test regret (percentage points of test
   accuracy of the best-by-validation cell below the table's best), and the
   mean number of distinct cells among the 300 queries.

Writes ``experiments/results/reinforce_nb201.json`` and prints both tables.

    python experiments/reinforce_nb201.py [--seeds 30] [--tune-seeds 10] [--budget 300] [--no-tune]
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
TUNE_BENCH, BENCH = "nb201/cifar100", "nb201/cifar10"
TUNE_SEED0 = 1000
TUNING = (  # reinforce options tried on nb201/cifar100 (the defaults are lstm, lr 0.001, decay 0.9, entropy 0, batch 1)
    {"controller": "lstm", "lr": 0.0003},
    {"controller": "lstm", "lr": 0.001},
    {"controller": "lstm", "lr": 0.003},
    {"controller": "lstm", "lr": 0.01},
    {"controller": "lstm", "lr": 0.03},
    {"controller": "lstm", "lr": 0.001, "baseline_decay": 0.5},
    {"controller": "lstm", "lr": 0.001, "baseline_decay": 0.99},
    {"controller": "lstm", "lr": 0.001, "entropy": 0.1},
    {"controller": "lstm", "lr": 0.001, "entropy": 1.0},
    {"controller": "lstm", "lr": 0.003, "batch_size": 5},
    {"controller": "softmax", "lr": 0.01},
    {"controller": "softmax", "lr": 0.03},
    {"controller": "softmax", "lr": 0.1},
    {"controller": "softmax", "lr": 0.3},
    {"controller": "softmax", "lr": 0.1, "baseline_decay": 0.5},
    {"controller": "softmax", "lr": 0.1, "entropy": 0.1},
)
METHODS = (  # (label, strategy, options)
    ("RS", "rs", {}),
    ("RE", "re", {}),
    ("TPE", "tpe", {}),
    ("REINFORCE (lstm)", "reinforce", {}),
    ("REINFORCE (softmax)", "reinforce", {"controller": "softmax"}),
)
CHECKPOINTS = (50, 100, 150, 300)
#: ANASOD (Wan et al.) Table 2, NB201 CIFAR-10 validation error after 300 queries, 10 trials (mean, SE)
PAPER = {"RS": (8.67, 0.03), "RL": (8.91, 0.05), "RE": (8.86, 0.05), "TPE": (8.57, 0.04)}


def mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, float)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def record(result, budget: int) -> dict:
    """Validation error of the best-so-far cell at the checkpoints, final test regret, distinct cells queried."""
    t, s = result.trajectory, result.summary
    val_err = 100.0 - t["best_search"]  # accuracies in percent
    rows = t["index"]
    distinct = [len(np.unique(r[r >= 0])) for r in rows]
    return {
        "options": s["options"],
        "valid_error": {str(c): mean_se(val_err[:, c - 1]) for c in CHECKPOINTS if c <= budget},
        "test_regret": (s["final_regret_mean"], s["final_regret_se"]),
        "test_acc": (s["final_test_mean"], s["final_test_se"]),
        "found_optimum_fraction": s["found_optimum_fraction"],
        "distinct_cells": mean_se(distinct),
        "wall_seconds": s["wall_seconds"],
    }


def fmt(ms, digits=2) -> str:
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--tune-seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--no-tune", action="store_true", help="skip part 1")
    args = ap.parse_args()
    out = {"budget": args.budget, "machine": cpu_model(), "paper_anasod_table2_cifar10_valid_error": PAPER}

    if not args.no_tune:
        print(f"part 1: reinforce on {TUNE_BENCH}, {args.tune_seeds} seeds (seed0 {TUNE_SEED0}), "
              f"{args.budget} queries; best validation error % at 100 / {args.budget}, test regret", flush=True)
        tune = []
        for opts in TUNING:
            r = search(TUNE_BENCH, "reinforce", args.budget, seeds=args.tune_seeds, seed0=TUNE_SEED0, options=opts)
            rec = record(r, args.budget)
            tune.append(rec)
            label = ", ".join(f"{k}={v}" for k, v in opts.items())
            print(f"  {label:48} {fmt(rec['valid_error']['100'])}  {fmt(rec['valid_error'][str(args.budget)])}  "
                  f"{fmt(rec['test_regret'], 3)}", flush=True)
        rs = record(search(TUNE_BENCH, "rs", args.budget, seeds=args.tune_seeds, seed0=TUNE_SEED0), args.budget)
        print(f"  {'(rs, for reference)':48} {fmt(rs['valid_error']['100'])}  "
              f"{fmt(rs['valid_error'][str(args.budget)])}  {fmt(rs['test_regret'], 3)}", flush=True)
        out["tuning"] = {"benchmark": TUNE_BENCH, "seeds": args.tune_seeds, "seed0": TUNE_SEED0, "runs": tune,
                         "rs": rs}

    print(f"part 2: {BENCH}, {args.seeds} seeds, {args.budget} queries", flush=True)
    cols = [str(c) for c in CHECKPOINTS if c <= args.budget]
    print(f"  {'method':20} " + " ".join(f"{'val err @' + c:>16}" for c in cols)
          + f" {'test regret':>16} {'distinct':>8}", flush=True)
    out["comparison"] = {"benchmark": BENCH, "seeds": args.seeds, "seed0": 0, "methods": {}}
    for label, strategy, opts in METHODS:
        t0 = time.time()
        r = search(BENCH, strategy, args.budget, seeds=args.seeds, options=opts)
        rec = {"strategy": strategy, **record(r, args.budget)}
        out["comparison"]["methods"][label] = rec
        print(f"  {label:20} " + " ".join(f"{fmt(rec['valid_error'][c]):>16}" for c in cols)
              + f" {fmt(rec['test_regret'], 3):>16} {rec['distinct_cells'][0]:8.0f}  ({time.time() - t0:.0f} s)",
              flush=True)
    path = HERE / "results" / "reinforce_nb201.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
