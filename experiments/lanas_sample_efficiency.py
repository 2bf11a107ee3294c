"""LaNAS sample efficiency (LaNAS paper, Table/Fig. 5 and the ablations of Fig. 7), on real tables.

For each benchmark and strategy, ``--seeds`` independent runs; reported: the
mean number of queries until the search metric's global optimum is queried
(a miss counts as budget + 1, so with misses the mean is a lower bound and the
found fraction is printed beside it), its ratio to LaNAS, and mean
best-so-far curves (Fig. 5 style, log x). Ablations on ``nb201/cifar10``:
tree height × ``n_select`` and ``cp``. Writes
``experiments/results/lanas_sample_efficiency.json`` and PNG curves.

    python experiments/lanas_sample_efficiency.py [--seeds 100] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jnas.benchmarks import get_benchmark
from jnas.runs import search
from jnas.runs.compare import plot

BENCHMARKS = ("nb201/cifar10", "nb201/cifar100", "nbgraph/cora", "nbgraph/citeseer", "nbgraph/pubmed")
RESULTS = Path(__file__).resolve().parent / "results"


def budgets(size: int, quick: bool) -> dict:
    """Per-strategy query budgets.

    The cheap baselines (RS, RE, LS, MCTS) get the whole table, so every seed
    reaches the optimum and their means are exact; LaNAS/RT get a cap they
    almost always beat; the model-based ones (TPE, BO) a smaller cap, and
    their means are then lower bounds (the found fraction is printed beside).
    """
    cap = 1000 if quick else 3000
    return {"lanas": cap, "rt": cap, "mcts": size, "rs": size, "re": size, "ls": size,
            "tpe": min(cap, 1000), "bo": 200 if quick else 300}


def run_one(bench, strat, budget, seeds, options=None):
    t0 = time.perf_counter()
    res = search(bench, strat, budget, seeds=seeds, options=options or {})
    s = res.summary
    return res, {"budget": budget, "samples_to_optimum_mean": s["samples_to_optimum_mean"],
                 "found_optimum_fraction": s["found_optimum_fraction"], "final_test_mean": s["final_test_mean"],
                 "wall_seconds": time.perf_counter() - t0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="smaller budgets and ablation grid")
    ap.add_argument("--strategies", default="lanas,rt,mcts,rs,re,ls,tpe,bo")
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--bo-seeds", type=int, default=10, help="BO scores the whole space per step: fewer seeds")
    ap.add_argument("--no-ablations", action="store_true")
    ap.add_argument("--only-ablations", action="store_true")
    ap.add_argument("--ablation-budget", type=int, default=None, help="queries per ablation run (default: LaNAS's cap)")
    ap.add_argument("--record", default=str(RESULTS / "lanas_sample_efficiency.json"), help="JSON record to extend")
    ap.add_argument("--fresh", action="store_true", help="discard the existing record instead of adding to it")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = Path(args.record)
    # runs of separate benchmark subsets accumulate into one record
    out = json.loads(path.read_text()) if path.exists() and not args.fresh else {"table": {}, "ablations": {}}
    out["seeds"] = args.seeds
    strategies = args.strategies.split(",")
    for bench in [] if args.only_ablations else args.benchmarks.split(","):
        size = get_benchmark(bench).n_rows
        rows, curves = {}, []
        for strat in strategies:
            b = budgets(size, args.quick)[strat]
            seeds = args.seeds if strat != "bo" else min(args.seeds, args.bo_seeds)
            res, rec = run_one(bench, strat, b, seeds)
            rows[strat] = rec
            if strat != "rs":
                curves.append(res)
            print(f"{bench:18} {strat:6} budget {b:6d}  samples to optimum {rec['samples_to_optimum_mean']:9.1f}"
                  f"  found {rec['found_optimum_fraction']:.2f}  ({rec['wall_seconds']:.0f} s)", flush=True)
        base = rows.get("lanas", {}).get("samples_to_optimum_mean")
        for rec in rows.values():
            rec["ratio_to_lanas"] = rec["samples_to_optimum_mean"] / base if base else float("nan")
        out["table"][bench] = rows
        plot(curves, RESULTS / f"lanas_curves_{bench.replace('/', '_')}.png")
        save(out, path)

    if not args.no_ablations:
        out["ablations"] = ablations(args)
        out["ablation_budget"] = ablation_budget(args)
    report(out)
    save(out, path)


def ablation_budget(args) -> int:
    return args.ablation_budget or budgets(15625, args.quick)["lanas"]


def ablations(args) -> dict:
    """Fig. 7 on ``nb201/cifar10``: tree height x ``n_select``, then ``cp``."""
    bench = "nb201/cifar10"
    b = ablation_budget(args)
    heights = (1, 3, 5, 7) if not args.quick else (1, 5)
    selects = (10, 20, 50, 100) if not args.quick else (20, 100)
    grid = {}
    for h in heights:
        for ns in selects:
            _, rec = run_one(bench, "lanas", b, args.seeds, {"height": h, "n_select": ns})
            grid[f"h={h},n_select={ns}"] = rec
            print(f"ablation height {h} n_select {ns}: {rec['samples_to_optimum_mean']:.1f} "
                  f"(found {rec['found_optimum_fraction']:.2f})", flush=True)
    cps = {}
    for cp in ((0.0, 0.01, 0.1, 0.5, 1.0) if not args.quick else (0.0, 0.1, 1.0)):
        _, rec = run_one(bench, "lanas", b, args.seeds, {"cp": cp})
        cps[str(cp)] = rec
        print(f"ablation cp {cp}: {rec['samples_to_optimum_mean']:.1f} (found {rec['found_optimum_fraction']:.2f})",
              flush=True)
    return {"height_x_n_select": grid, "cp": cps}


def report(out: dict) -> None:
    print("\nmean samples to the optimum (ratio to LaNAS; found fraction)")
    for bench, rows in out["table"].items():
        cells = [f"{s} {r['samples_to_optimum_mean']:.0f} "
                 f"({r['ratio_to_lanas']:.1f}x; {r['found_optimum_fraction']:.2f})" for s, r in rows.items()]
        print(f"{bench:18} " + " | ".join(cells))


def save(out: dict, path: Path) -> None:
    """Written after every benchmark, so a long run keeps what it has finished."""
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
