"""ANASOD on the NAS benchmarks: the paper's Table 1 computed exactly, and its Table 2 / Table 6 comparison.

Part 1 (Table 1 / Fig. 2): over every architecture of a complete table, the
standard deviation of the validation error (100 - validation accuracy, %)
overall, and the median SD among architectures that share an ANASOD
encoding (their op counts), over all encodings and over the better half by
mean error. The paper drew 200 encodings x 5 architectures; a complete
table needs no sampling.

Part 2 (Table 2 / Table 6): each strategy's best validation error after 300
queries (RS-class and LS-class) or 150 queries (BO-class), and the test
accuracy of that architecture, mean ± standard error over seeds. Every run
is a result folder under ``experiments/results/anasod_runs/`` (not in git), so
an interrupted study resumes where it stopped and ``jnas compare`` draws the
Fig. 3-style curves from them, e.g.::

    jnas compare experiments/results/anasod_runs/nb201_cifar10/{rs,anasod-biased-rs,anasod-bo} --plot fig3.png

Writes ``experiments/results/anasod_nasbench.json``.

    python experiments/anasod_nasbench.py [--seeds 30] [--cheap-seeds 100] [--benchmarks ...]
    python experiments/anasod_nasbench.py --table     # the recorded tables as markdown
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jnas.benchmarks import get_benchmark
from jnas.encodings import opdist
from jnas.runs import search

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from machine import cpu_model  # noqa: E402  (bench/machine.py: one reader of the CPU model)

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("nb201/cifar10", "nb201/cifar100", "nb201/imagenet16-120", "nbgraph/cora", "nbgraph/citeseer")
# (label, strategy, options, budget, cheap): cheap runs use --cheap-seeds
RUNS = (
    ("rs", "rs", {}, 300, True),
    ("anasod-rs", "anasod-rs", {}, 300, True),
    ("anasod-biased-rs", "anasod-biased-rs", {}, 300, True),
    ("re", "re", {}, 300, True),
    ("tpe", "tpe", {}, 300, True),
    ("ls", "ls", {}, 300, True),
    ("anasod-ls", "anasod-ls", {}, 300, True),
    ("bananas", "bananas", {}, 300, False),
    ("bo", "bo", {}, 150, False),
    ("bo-path", "bo", {"encoding": "path"}, 150, False),
    ("anasod-bo", "anasod-bo", {}, 150, False),
    ("anasod-nep", "anasod-nep", {}, 150, False),
)
SLOW = ("anasod-nep",)
#: path encodings too wide for a GP over the whole space each step (NAS-Bench-Graph: 7,380 paths x 26,206 cells)
PATH_BO_SPACES = ("nb201",)


def encoding_spread(name: str) -> dict:
    """Table 1 for one complete table: SDs of the validation error overall and within encodings."""
    bench = get_benchmark(name)
    space = bench.space
    archs = space.enumerate()
    rows = np.asarray(bench.rows(archs))
    acc = bench.column(*bench.search_metric)[rows]
    err = 100.0 - acc
    counts = np.asarray(jax.jit(jax.vmap(lambda a: opdist.counts(a, space)))(archs)).reshape(len(rows), -1)
    ok = np.isfinite(err)
    groups: dict[tuple, list[float]] = {}
    for c, e in zip(map(tuple, counts[ok]), err[ok]):
        groups.setdefault(c, []).append(float(e))
    multi = {c: np.asarray(v) for c, v in groups.items() if len(v) >= 2}
    sds = np.array([v.std(ddof=1) for v in multi.values()])
    means = np.array([v.mean() for v in multi.values()])
    better = means <= np.median(means)
    return {
        "search_metric": list(bench.search_metric),
        "architectures": int(ok.sum()),
        "encodings": len(groups),
        "encodings_with_2_or_more": len(multi),
        "overall_sd": float(err[ok].std(ddof=1)),
        "median_sd_within_encoding": float(np.median(sds)),
        "median_sd_within_encoding_top50": float(np.median(sds[better])),
    }


def run_one(bench: str, label: str, strategy: str, options: dict, budget: int, seeds: int, out: Path) -> dict:
    t = time.time()
    res = search(bench, strategy, budget, seeds=seeds, options=options, out=out)
    s = res.summary
    best = np.asarray(res.trajectory["best_search"])[:, -1]
    err = 100.0 - best
    return {
        "strategy": strategy, "options": options, "budget": budget, "seeds": seeds,
        "valid_error_mean": float(err.mean()), "valid_error_se": float(err.std(ddof=1) / np.sqrt(len(err))),
        "test_mean": s["final_test_mean"], "test_se": s["final_test_se"],
        "test_regret_mean": s["final_regret_mean"], "test_regret_se": s["final_regret_se"],
        "wall_seconds": s["wall_seconds"], "origin": res.origin, "elapsed": time.time() - t,
    }


def markdown(record: dict) -> str:
    """The study's two tables as markdown (validation error / test accuracy, mean ± standard error)."""
    out = ["| benchmark | overall SD | median SD, same encoding | same encoding, top 50 % | encodings |",
           "|---|---:|---:|---:|---:|"]
    for name, t in record["table1"].items():
        out.append(f"| {name} | {t['overall_sd']:.2f} | {t['median_sd_within_encoding']:.2f} | "
                   f"{t['median_sd_within_encoding_top50']:.2f} | {t['encodings']} |")
    names = list(record["table2"])
    out += ["", "| strategy | queries | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for label, _, _, budget, _ in RUNS:
        cells = []
        for name in names:
            r = record["table2"][name].get(label)
            cells.append("n/a" if r is None else f"{r['valid_error_mean']:.2f} ± {r['valid_error_se']:.2f} / "
                         f"{r['test_mean']:.2f} ± {r['test_se']:.2f}")
        out.append(f"| {label} | {budget} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=30, help="seeds of the model-based runs")
    ap.add_argument("--cheap-seeds", type=int, default=100, help="seeds of the cheap runs (RS, RE, TPE, LS)")
    ap.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS))
    ap.add_argument("--only", nargs="+", default=None, help="run only these labels")
    ap.add_argument("--runs", default=str(HERE / "results" / "anasod_runs"))
    ap.add_argument("--out", default=str(HERE / "results" / "anasod_nasbench.json"))
    ap.add_argument("--table", action="store_true", help="print the recorded tables as markdown and exit")
    args = ap.parse_args()
    path = Path(args.out)
    if args.table:
        print(markdown(json.loads(path.read_text())))
        return
    record = json.loads(path.read_text()) if path.exists() else {}
    record.setdefault("table1", {})
    record.setdefault("table2", {})
    record["cpu"] = cpu_model()

    def save():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")

    for name in args.benchmarks:
        record["table1"][name] = t1 = encoding_spread(name)
        print(f"{name:22} SD overall {t1['overall_sd']:.2f}  median SD within an encoding "
              f"{t1['median_sd_within_encoding']:.2f} (top 50%: {t1['median_sd_within_encoding_top50']:.2f}); "
              f"{t1['encodings']} encodings", flush=True)
    save()
    # the slowest method (an MLP ensemble refit at every one of 140 steps) runs last, on every benchmark
    order = [(name, run) for slow in (False, True) for name in args.benchmarks for run in RUNS
             if (run[0] in SLOW) == slow]
    for name, (label, strategy, options, budget, cheap) in order:
        rec = record["table2"].setdefault(name, {})
        if args.only and label not in args.only:
            continue
        if label == "bo-path" and get_benchmark(name).space.name.split("-")[0] not in PATH_BO_SPACES:
            continue
        seeds = args.cheap_seeds if cheap else args.seeds
        folder = Path(args.runs) / name.replace("/", "_") / label
        rec[label] = r = run_one(name, label, strategy, options, budget, seeds, folder)
        print(f"{name:22} {label:17} {budget:4} q  valid err {r['valid_error_mean']:6.2f} ± "
              f"{r['valid_error_se']:.2f}  test {r['test_mean']:6.2f} ± {r['test_se']:.2f}  "
              f"({r['wall_seconds']:.0f} s, {seeds} seeds)", flush=True)
        save()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
