"""BO's surrogates on NAS-Bench-201: the ML-II GP, the fully Bayesian GP (NUTS), the BNN and NAGO's BNN.

Runs ``bo --set surrogate=S`` (``gp``, ``gp-nuts``, ``bnn``, ``bnn-hetero``; EI, one query per
step, everything else at bo's defaults) on ``nb201/cifar10`` at 150 queries over ``--seeds`` seeds,
each surrogate one compiled call through ``jnas.runs.search`` (compilation included in the wall
time). Reported: the mean test regret (± standard error over seeds) of the best-by-validation
architecture, beside random search's exact mean regret at the same budget (``bench/bo.py``), and
the wall time. Every run is a result folder under ``experiments/results/bo_surrogates_runs/`` (not
in git), so an interrupted study resumes with the surrogates it has not finished, e.g.::

    jnas compare experiments/results/bo_surrogates_runs/{gp,gp-nuts,bnn,bnn-hetero} --plot bo_surrogates.png

Writes ``experiments/results/bo_surrogates.json``.

    python experiments/bo_surrogates.py [--seeds 10] [--only gp bnn]
    python experiments/bo_surrogates.py --table     # the recorded table as markdown
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from jnas.benchmarks import get_benchmark
from jnas.runs import search

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bo import random_search_regret  # noqa: E402  (bench/bo.py: random search's exact regret)
from machine import cpu_model  # noqa: E402  (bench/machine.py: one reader of the CPU model)

HERE = Path(__file__).resolve().parent
BENCHMARK = "nb201/cifar10"
BUDGET = 150
#: (label, bo options): the surrogates at their defaults
RUNS = (
    ("gp", {"surrogate": "gp"}),
    ("gp-nuts", {"surrogate": "gp-nuts"}),
    ("bnn", {"surrogate": "bnn"}),
    ("bnn-hetero", {"surrogate": "bnn-hetero"}),
)


def run_one(options: dict, seeds: int, out: Path) -> dict:
    """One surrogate's search: test regret (mean, standard error), wall time and the options in force."""
    t = time.time()
    res = search(BENCHMARK, "bo", BUDGET, seeds=seeds, options=options, out=out)
    s = res.summary
    return {"options": options, "settings": s["options"], "seeds": seeds,
            "test_regret_mean": s["final_regret_mean"], "test_regret_se": s["final_regret_se"],
            "wall_seconds": s["wall_seconds"], "origin": res.origin, "elapsed": time.time() - t}


def markdown(record: dict) -> str:
    """The recorded table as markdown: test regret (mean ± standard error) and wall time per surrogate."""
    out = ["| surrogate | seeds | test regret | random search (exact) | wall (s) |", "|---|---:|---:|---:|---:|"]
    for label, r in record["runs"].items():
        out.append(f"| {label} | {r['seeds']} | {r['test_regret_mean']:.3f} ± {r['test_regret_se']:.3f} | "
                   f"{record['rs_exact_regret']:.3f} | {r['wall_seconds']:.0f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--only", nargs="+", default=None, choices=[label for label, _ in RUNS],
                    help="run only these surrogates")
    ap.add_argument("--runs", default=str(HERE / "results" / "bo_surrogates_runs"))
    ap.add_argument("--out", default=str(HERE / "results" / "bo_surrogates.json"))
    ap.add_argument("--table", action="store_true", help="print the recorded table as markdown and exit")
    args = ap.parse_args()
    path = Path(args.out)
    if args.table:
        print(markdown(json.loads(path.read_text())))
        return
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update({"benchmark": BENCHMARK, "budget": BUDGET, "cpu": cpu_model(), "cores": os.cpu_count(),
                   "date": time.strftime("%Y-%m-%d"), "load_average_start": os.getloadavg()[0],
                   "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                   "rs_exact_regret": random_search_regret(get_benchmark(BENCHMARK), BUDGET)})
    record.setdefault("runs", {})
    print(f"random search (exact) at {BUDGET} queries: {record['rs_exact_regret']:.3f}", flush=True)
    for label, options in RUNS:
        if args.only and label not in args.only:
            continue
        record["runs"][label] = r = run_one(options, args.seeds, Path(args.runs) / label)
        print(f"{label:11} test regret {r['test_regret_mean']:.3f} ± {r['test_regret_se']:.3f}  "
              f"{r['wall_seconds']:.0f} s ({args.seeds} seeds, {r['origin']})", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
