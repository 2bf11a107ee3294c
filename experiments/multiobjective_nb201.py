"""Multi-objective NAS on NAS-Bench-201 × HW-NAS-Bench, and NAGO's Table 1 check of its BNN surrogate.

Part 1 (the study of NAGO's MOBO): CIFAR-10 validation accuracy (``valid_acc@200``)
against the latency of one of two devices (``edgegpu_latency``: an NVIDIA
Jetson TX2 edge GPU; ``raspi4_latency``: a Raspberry Pi 4 CPU). Each method
gets 150 queries; the figure is the hypervolume regret of what it queried
(normalised objectives, reference point at the table's worst corner: see
``jnas.runs.multiobjective``), mean ± standard error over seeds, with the
test hypervolume of the same queries beside it. Methods: ``mobo`` with the
heteroscedastic BNN (NAGO) and with the homoscedastic one, ``nsga2`` and
multi-objective random search. Every run is a result folder under
``experiments/results/mo_runs/`` (not in git): an interrupted study resumes,
and ``jnas compare --plot`` draws the regret curves and a seed's front.

Part 2 (NAGO Table 1 on NB201 data): 150 random architectures of each NB201
table, split 4:1 into 120 training and 30 test points (the ratio the text
lost; stated here), 10 random splits; the BNN (3 × 10 tanh, SGHMC, NAGO's
100 samples kept every 10th after burn-in) with the heteroscedastic head
and without, on the one-hot encoding, target the search metric's accuracy as
a fraction (NAGO's scale). Reports the median test NLL (Gaussian predictive,
per point) and RMSE over the splits.

Writes ``experiments/results/multiobjective_nb201.json``.

    python experiments/multiobjective_nb201.py [--seeds 20] [--part 1 2]
    python experiments/multiobjective_nb201.py --table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jnas.benchmarks import get_benchmark
from jnas.predictors.bnn import BNN
from jnas.runs import search
from jnas.strategies.features import space_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from machine import cpu_model  # noqa: E402

HERE = Path(__file__).resolve().parent
DEVICES = ("edgegpu_latency", "raspi4_latency")
METHODS = (  # (label, strategy, options)
    ("mobo (heteroscedastic BNN)", "mobo", {"surrogate": "bnn-hetero"}),
    ("mobo (homoscedastic BNN)", "mobo", {"surrogate": "bnn"}),
    ("nsga2", "nsga2", {}),
    ("random search", "rs", {}),
)
TABLE1 = ("nb201/cifar10", "nb201/cifar100", "nb201/imagenet16-120")


def part1(seeds: int, runs: Path) -> dict:
    out = {}
    for device in DEVICES:
        objectives = f"valid_acc@200,{device}"
        rec = out.setdefault(objectives, {})
        for label, strategy, options in METHODS:
            folder = runs / device / (strategy + ("-" + options["surrogate"] if "surrogate" in options else ""))
            t = time.time()
            r = search("nb201/cifar10", strategy, 150, seeds=seeds, objectives=objectives, options=options,
                       out=folder)
            s = r.summary
            rec[label] = {k: s[k] for k in ("final_hv_regret_mean", "final_hv_regret_se", "final_hypervolume_mean",
                                            "final_test_hypervolume_mean", "final_test_hypervolume_se",
                                            "wall_seconds", "seeds", "options")}
            print(f"{objectives:32} {label:28} hv regret {s['final_hv_regret_mean']:.4f} ± "
                  f"{s['final_hv_regret_se']:.4f}  test hv {s['final_test_hypervolume_mean']:.4f}  "
                  f"({s['wall_seconds']:.0f} s; {time.time() - t:.0f} s here)", flush=True)
    return out


def part2(splits: int = 10, n: int = 150, n_train: int = 120) -> dict:
    out = {}
    for name in TABLE1:
        bench = get_benchmark(name)
        feats = space_features(bench.space)
        rows = np.asarray(bench.rows(bench.space.enumerate()))
        y_all = bench.column(*bench.search_metric)[rows] / 100.0
        ok = np.flatnonzero(np.isfinite(y_all))
        res = {"hetero": {"nll": [], "rmse": []}, "homo": {"nll": [], "rmse": []}}
        for split in range(splits):
            rng = np.random.default_rng(split)
            pick = rng.choice(ok, n, replace=False)
            tr, te = pick[:n_train], pick[n_train:]
            for kind, hetero in (("hetero", True), ("homo", False)):
                model = BNN(heteroscedastic=hetero)  # NAGO Appendix C: SGHMC, 100 samples, every 10th kept
                params = jax.jit(model.fit)(jax.random.key(split), jnp.asarray(feats[tr]), jnp.asarray(y_all[tr]))
                mean, var = jax.jit(model.predict)(params, jnp.asarray(feats[te]))
                mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
                err = y_all[te] - mean
                res[kind]["nll"].append(float(np.mean(0.5 * np.log(2 * np.pi * var) + err**2 / (2 * var))))
                res[kind]["rmse"].append(float(np.sqrt(np.mean(err**2))))
        out[name] = {
            "search_metric": list(bench.search_metric),
            **{f"{kind}_{m}_median": float(np.median(res[kind][m])) for kind in res for m in ("nll", "rmse")},
            "splits": res,
        }
        o = out[name]
        print(f"{name:22} NLL hom {o['homo_nll_median']:.2f} het {o['hetero_nll_median']:.2f}   "
              f"RMSE hom {o['homo_rmse_median']:.4f} het {o['hetero_rmse_median']:.4f}", flush=True)
    return out


def markdown(rec: dict) -> str:
    lines = []
    if "part1" in rec:
        objs = list(rec["part1"])
        lines += ["| method | " + " | ".join(f"hv regret, {o.split(',')[1]}" for o in objs) + " | wall s |",
                  "|---|" + "---:|" * (len(objs) + 1)]
        for label, _, _ in METHODS:
            cells = [f"{rec['part1'][o][label]['final_hv_regret_mean']:.4f} ± "
                     f"{rec['part1'][o][label]['final_hv_regret_se']:.4f}" for o in objs]
            wall = "/".join(f"{rec['part1'][o][label]['wall_seconds']:.0f}" for o in objs)
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {wall} |")
    if "part2" in rec:
        lines += ["", "| table (search metric) | NLL hom | NLL het | RMSE hom | RMSE het |",
                  "|---|---:|---:|---:|---:|"]
        for name, o in rec["part2"].items():
            lines.append(f"| {name} ({'@'.join(map(str, o['search_metric']))}) | {o['homo_nll_median']:.2f} | "
                         f"{o['hetero_nll_median']:.2f} | {o['homo_rmse_median']:.4f} | "
                         f"{o['hetero_rmse_median']:.4f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--part", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    ap.add_argument("--runs", default=str(HERE / "results" / "mo_runs"))
    ap.add_argument("--out", default=str(HERE / "results" / "multiobjective_nb201.json"))
    ap.add_argument("--table", action="store_true", help="print the recorded tables as markdown and exit")
    args = ap.parse_args()
    path = Path(args.out)
    rec = json.loads(path.read_text()) if path.exists() else {}
    if args.table:
        print(markdown(rec))
        return
    rec["cpu"] = cpu_model()
    if 2 in args.part:
        rec["part2"] = part2()
        path.write_text(json.dumps(rec, indent=2) + "\n")
    if 1 in args.part:
        rec["part1"] = part1(args.seeds, Path(args.runs))
        path.write_text(json.dumps(rec, indent=2) + "\n")
    print(markdown(rec))


if __name__ == "__main__":
    main()
