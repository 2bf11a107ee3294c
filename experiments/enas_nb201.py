"""ENAS on NAS-Bench-201 with real CIFAR-10: the search, and how well its shared weights rank architectures.

Each seed runs ``jnas supernet --method enas`` on the NB201 supernet
(``run_supernet``): the controller samples a child per step, the shared
weights train on it, the controller learns from the child's shared-weight
validation accuracy. After the search the trained supernet becomes an
evaluator (``load_supernet_run``: inherited weights, one-hot edge weights of
the queried cell) and scores ``--archs`` (default 100) architectures drawn
uniformly from the NB201 space with one fixed key, the same for every seed,
on the 2,400-image architecture half the search validated on. Their
shared-weight accuracies are compared with the NAS-Bench-201 CIFAR-10
table (the search metric, validation accuracy after 200 epochs, and the
test accuracy) by Kendall's τ-b (``jnas.metrics.ranking.kendall_tau``).

With ``--uniform`` a second supernet per seed is trained the same way with a
controller that never learns (``arch_lr`` 1e-12: every child drawn from the
initial, near-uniform policy: random sampling with weight sharing, Li &
Talwalkar 2019), to tell what the controller adds to the ranking.

CPU profile: the 4,800-image ``cifar10_subset``, 8 channels, one cell per
stage, ``--epochs`` (default 10) epochs of 37 steps, batch 64, 3 seeds.

    python experiments/enas_nb201.py [--seeds 3] [--epochs 10] [--archs 100] [--uniform]

Each run checkpoints in ``--work``; rerunning resumes. Record:
``experiments/results/enas_nb201_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import jax
import numpy as np
from oneshot_nb201 import _machine  # a sibling script: experiments/ is on sys.path when run

from jnas.benchmarks import get_benchmark
from jnas.metrics.ranking import kendall_tau
from jnas.runs.supernet import load_supernet_run, run_supernet
from jnas.spaces import get_space

MODEL = {"channels": 8, "cells_per_stage": 1}
DATA = "cifar10_subset"


def sample_archs(n: int, seed: int = 12345) -> np.ndarray:
    """``n`` distinct NB201 cells drawn uniformly (``int8[n, 6]``), the same for every run."""
    space = get_space("nb201")
    idx = np.asarray(jax.random.choice(jax.random.key(seed), space.size, (n,), replace=False))
    return np.asarray(jax.vmap(space.from_index)(idx))


def rank_study(folder: Path, archs: np.ndarray, bench) -> dict:
    """Shared-weight accuracy of ``archs`` and Kendall τ against the table's validation and test accuracy, and
    against the number of parameterised (convolution) edges; kept in ``folder/rank_study.json`` and read back
    from there when the same architectures were scored before."""
    space = get_space("nb201")
    cells = [space.to_string(a) for a in archs]
    cache = folder / "rank_study.json"
    if cache.is_file() and json.loads(cache.read_text()).get("archs") == cells:
        return json.loads(cache.read_text())["study"]
    ev = load_supernet_run(folder)
    t0 = time.perf_counter()
    shared = np.asarray(ev.query(archs, "valid_acc"), np.float64)
    seconds = time.perf_counter() - t0
    rows = np.asarray(bench.rows(archs))
    valid = np.asarray(bench.column(*bench.search_metric), np.float64)[rows]
    test = np.asarray(bench.column(*bench.test_metric), np.float64)[rows]
    convs = np.isin(np.asarray(archs), [2, 3]).sum(-1).astype(np.float64)  # nor_conv_1x1, nor_conv_3x3
    study = {"kendall_tau_valid": kendall_tau(shared, valid), "kendall_tau_test": kendall_tau(shared, test),
             "kendall_tau_shared_vs_convs": kendall_tau(shared, convs),
             "kendall_tau_table_vs_convs": kendall_tau(valid, convs),
             "shared_acc_mean": float(np.nanmean(shared)), "shared_acc_min": float(np.nanmin(shared)),
             "shared_acc_max": float(np.nanmax(shared)), "scoring_seconds": seconds,
             "shared_acc": shared.tolist(), "table_valid_acc": valid.tolist()}
    cache.write_text(json.dumps({"archs": cells, "study": study}) + "\n")
    return study


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--archs", type=int, default=100)
    ap.add_argument("--uniform", action="store_true", help="also train supernets with a frozen (uniform) policy")
    ap.add_argument("--work", default="runs/enas_nb201")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "enas_nb201_cpu.json"))
    args = ap.parse_args()
    bench = get_benchmark("nb201/cifar10")
    archs = sample_archs(args.archs)
    variants = {"enas": {}}
    if args.uniform:
        variants["uniform"] = {"arch_lr": 1e-12}
    t_all = time.perf_counter()
    runs = {v: [] for v in variants}
    for seed in range(args.seeds):
        for variant, opts in variants.items():
            folder = Path(args.work) / f"{variant}-s{seed}"

            def on_epoch(rec, variant=variant, seed=seed):
                print(f"{variant:8} seed {seed} epoch {rec['epoch']:3d}  {rec['derived_arch']}  "
                      f"cifar10 {rec['nb201_cifar10_test_acc']}  val acc {rec['val_acc']:.1f}  "
                      f"({rec['seconds']:.0f} s)", flush=True)

            rec = run_supernet("nb201", "enas", data=DATA, epochs=args.epochs, out=folder, seed=seed,
                               model_options=MODEL, method_options=opts, on_epoch=on_epoch)
            study = rank_study(folder, archs, bench)
            print(f"{variant:8} seed {seed}: Kendall tau vs NB201 valid {study['kendall_tau_valid']:.3f}, "
                  f"test {study['kendall_tau_test']:.3f} ({study['scoring_seconds']:.0f} s)", flush=True)
            runs[variant].append({"seed": seed, "derived_arch": rec["derived_arch"],
                                  "nb201_test_acc": rec.get("nb201_test_acc"),
                                  "seconds_per_epoch": float(np.median([h["seconds"] for h in rec["history"]])),
                                  **study})
            write_record(args, runs, time.perf_counter() - t_all)


def write_record(args, runs: dict, wall: float) -> None:
    """The aggregate of the runs finished so far (written after each, so a stopped study keeps them)."""
    summary = {}
    for variant, recs in runs.items():
        if not recs:
            continue
        out = {}
        for k in ("kendall_tau_valid", "kendall_tau_test"):
            v = np.asarray([r[k] for r in recs], np.float64)
            out[k] = float(v.mean())
            out[k + "_se"] = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
        acc = [r["nb201_test_acc"]["cifar10"] for r in recs if r.get("nb201_test_acc")]
        out["derived_cifar10_test_acc"] = float(np.mean(acc)) if acc else None
        out["kendall_tau_shared_vs_convs"] = float(np.mean([r["kendall_tau_shared_vs_convs"] for r in recs]))
        summary[variant] = out
    record = {"data": DATA, "model_options": MODEL, "epochs": args.epochs, "seeds": args.seeds,
              "seeds_done": {v: len(r) for v, r in runs.items()}, "archs": args.archs, "arch_sample_seed": 12345,
              "machine": _machine(), "wall_seconds": wall, "summary": summary, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    for variant, s in summary.items():
        print(f"{variant:8} tau valid {s['kendall_tau_valid']:.3f} ± {s['kendall_tau_valid_se']:.3f}  "
              f"tau test {s['kendall_tau_test']:.3f} ± {s['kendall_tau_test_se']:.3f}  "
              f"derived cell C10 test {s['derived_cifar10_test_acc']}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
