"""Multi-fidelity search on NAS-Bench-201 CIFAR-10: BOHB and Hyperband against RS and RE at equal cost.

Every method gets the same budget in training epochs: ``--budget B`` full
evaluations' worth, B × 200 epochs. Random search and regularized evolution
query the 200-epoch validation accuracy (``valid_acc@200``) B times;
``hyperband`` and ``bohb`` spend the same epochs on brackets whose low rungs
read the 12-epoch validation column (``valid_acc@12``, NAS-Bench-201 v1.1)
and whose top rung reads the 200-epoch one (a query at f epochs costs f:
the two tables are separate trainings). The outcome of every method is the
test accuracy (``test_acc@200``) of its best architecture by the 200-epoch
validation accuracy; the figure is its regret against the table's best, mean
± standard error over seeds, at several points of the cost axis (the
best-so-far of the queries whose cumulative cost fits).

Also reported: the rank correlation (Spearman) of the 12- and 200-epoch
validation columns over the whole space, which is what lets the low rungs
screen configurations.

Runs are result folders under ``experiments/results/mf_runs/`` (not in git);
the figure is ``docs/mf_nb201.png`` (``jnas compare --plot --x cost``).
Writes ``experiments/results/multifidelity_nb201.json``.

    python experiments/multifidelity_nb201.py [--seeds 50] [--budget 150]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from jnas.benchmarks import get_benchmark
from jnas.metrics.ranking import spearman
from jnas.runs import search
from jnas.runs.compare import plot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from machine import cpu_model  # noqa: E402

HERE = Path(__file__).resolve().parent
METHODS = (  # (label, strategy, options)
    ("bohb", "bohb", {}),
    ("bohb (eta=2)", "bohb", {"eta": 2}),
    ("hyperband", "hyperband", {}),
    ("hyperband (eta=2)", "hyperband", {"eta": 2}),
    ("random search", "rs", {}),
    ("regularized evolution", "re", {}),
)
CHECKPOINTS = (10, 25, 50, 100, 150)  # cost points, in full evaluations (200 epochs)


def regret_at(result, opt: float, cost: float) -> tuple[float, float, float]:
    """Mean and SE over seeds of the test regret of the best-so-far architecture once ``cost`` full
    evaluations are spent, and the share of seeds with a top-fidelity result by then."""
    t = result.trajectory
    top = result.summary["max_fidelity"]
    spent = t["cost"][0] / top if "cost" in t else np.arange(1, t["best_test"].shape[1] + 1, dtype=float)
    k = int(np.searchsorted(spent, cost + 1e-9))  # queries whose cumulative cost fits
    if k == 0:
        return float("nan"), float("nan"), 0.0
    best = t["best_test"][:, k - 1]
    regret = opt - best
    ok = np.isfinite(regret)
    n = int(ok.sum())
    if n == 0:
        return float("nan"), float("nan"), 0.0
    se = float(regret[ok].std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return float(regret[ok].mean()), se, n / len(regret)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--budget", type=int, default=150, help="full evaluations' worth of epochs per run")
    args = ap.parse_args()
    bench = get_benchmark("nb201/cifar10")
    opt = bench.metrics[bench.test_metric].optimum
    rho = spearman(bench.column("valid_acc", 12), bench.column("valid_acc", 200))
    print(f"Spearman(valid_acc@12, valid_acc@200) over {bench.n_rows} cells: {rho:.3f}", flush=True)
    runs = HERE / "results" / "mf_runs"
    out = {"benchmark": bench.name, "seeds": args.seeds, "budget": args.budget, "machine": cpu_model(),
           "spearman_valid12_valid200": rho, "test_optimum": opt, "methods": {}}
    results, labels = [], []
    points = [c for c in CHECKPOINTS if c <= args.budget]
    for label, strategy, options in METHODS:
        t0 = time.time()
        folder = runs / f"{strategy}{''.join(f'-{k}{v}' for k, v in options.items())}-b{args.budget}"
        r = search("nb201/cifar10", strategy, args.budget, seeds=args.seeds, options=options, out=folder)
        results.append(r)
        labels.append(label)
        s = r.summary
        rec = {"strategy": strategy, "options": s["options"], "queries": s.get("queries", s["budget"]),
               "cost_used_epochs": s["cost_used"], "wall_seconds": s["wall_seconds"], "regret": {}}
        for c in points:
            m, se, share = regret_at(r, opt, c)
            rec["regret"][str(c)] = {"mean": m, "se": se, "seeds_with_result": share}
        out["methods"][label] = rec
        cells = "  ".join(f"{c}: {rec['regret'][str(c)]['mean']:.3f} ± {rec['regret'][str(c)]['se']:.3f}"
                          for c in points)
        print(f"{label:24} queries {rec['queries']:4}  regret at cost {cells}  ({time.time() - t0:.0f} s)",
              flush=True)
    plot(results, HERE.parent / "docs" / "mf_nb201.png", labels=labels, x="cost")
    path = HERE / "results" / "multifidelity_nb201.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
