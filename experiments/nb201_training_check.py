"""Does real training with jnas reproduce the NAS-Bench-201 ranking on CIFAR-10?

Trains ``--archs`` NB201 cells (default 12) on the real CIFAR-10 subset
(``$JNAS_DATA_DIR/cifar10_subset.npz``: 4,800 train / 850 test images) with
``jnas.benchmarks.training.TrainingEvaluator`` and compares our test
accuracies with NB201's 200-epoch CIFAR-10 test accuracy (seed mean, 50k
training images) by Spearman's rho and Kendall's tau-b.

Which cells. The pool is the 9,445 cells with published parameter counts
(NAS-Bench-Suite-Zero; the cells without unreachable branches), one cell per
isomorphism class (the only automorphism of the NB201 cell DAG swaps nodes 1
and 2, possible when edge 1->2 is ``none``; the representative is the
lowest official index). Sorted by NB201 test accuracy (ties by index), the
pool is cut into ``n`` equal-count strata and the median cell of each
stratum is taken: every chosen cell stands for 1/n of the population, so
the span is the one a search meets, not an artificially easy one. Cells at
chance level (<= 15 %) are excluded unless ``--keep-chance`` is given (only
one cell of the pool is at chance; with equal-count strata it would need
n > 4,380 to be picked anyway); the correlations are also reported without
chance-level cells, so a span that includes them cannot inflate the number.

References printed beside our correlation, on the same cells:
* NB201's own 12-epoch test accuracy (a short schedule in the benchmark itself),
* the published parameter count alone (the trivial "bigger is better" ranker).

Parameter agreement: for every chosen cell the full NB201 network (C=16,
N=5, 10 classes) is built abstractly and its parameters counted
(``jnas.models.cost.count_params``); the count, and the fast analytic
``jnas.models.nb201.params_and_flops``, must equal the published count
exactly (the table stores millions with 6 decimals, i.e. exact integers).

Profiles (explicit options override them):
* ``cpu``: a reduced network (C=8, N=1), batch 64, 8 epochs (600 steps) — 27 min
  for 12 cells on a shared, loaded 2-core CPU;
* ``gpu``: the real NB201 network (C=16, N=5), NB201's recipe (batch 256,
  lr 0.1, Nesterov, cosine, wd 5e-4), 100 epochs.

Runs that diverge or crash are recorded as failures (NaN) and left out of
the correlations. The JSON record is rewritten after every cell, so an
interrupted run leaves its partial result (``"complete": false``).

Usage::

    python experiments/nb201_training_check.py --profile cpu
    python experiments/nb201_training_check.py --profile gpu
    python experiments/nb201_training_check.py --archs 12 --epochs 20 --channels 8 --cells-per-stage 1

Writes ``experiments/results/nb201_training_check.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jnas.benchmarks import get_benchmark
from jnas.benchmarks.training import TrainingEvaluator
from jnas.metrics import kendall_tau, spearman
from jnas.models import build_network
from jnas.models.cost import count_params
from jnas.models.nb201 import params_and_flops
from jnas.spaces import get_space
from jnas.train.optim import TrainConfig

OUT = Path(__file__).parent / "results" / "nb201_training_check.json"
DATA = "cifar10_subset"
NUM_CLASSES = 10
CHANCE = 15.0  # percent; NB201's cells without an input->output path sit at 10 %
FULL = dict(channels=16, cells_per_stage=5)  # the published NB201 network

PROFILES = {
    "cpu": dict(channels=8, cells_per_stage=1, epochs=8, batch_size=64, lr=0.1),
    "gpu": dict(channels=16, cells_per_stage=5, epochs=100, batch_size=256, lr=0.1),
}


# ----- statistics ------------------------------------------------------------------------

def bootstrap_interval(a, b, *, n_boot: int = 2000, seed: int = 0, level: float = 0.9) -> list[float]:
    """``level`` percentile interval of Spearman's rho over resamples of the cells (pairs kept together)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 3:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    rhos = np.array([spearman(a[i], b[i]) for i in idx])
    rhos = rhos[np.isfinite(rhos)]
    lo, hi = np.quantile(rhos, [(1 - level) / 2, (1 + level) / 2])
    return [round(float(lo), 3), round(float(hi), 3)]


def correlations(ours, reference) -> dict:
    """Spearman rho (with a 90 % bootstrap interval), Kendall tau-b and the number of cells compared."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    n = int((~(np.isnan(ours) | np.isnan(reference))).sum())
    return dict(
        n=n,
        spearman=round(spearman(ours, reference), 4),
        spearman_90ci=bootstrap_interval(ours, reference),
        kendall_tau=round(kendall_tau(ours, reference), 4),
    )


# ----- choosing the cells ------------------------------------------------------------------

def canonical(ops: np.ndarray) -> np.ndarray:
    """Isomorphism-class key of NB201 cells ``int [..., 6]`` (edges 01, 02, 12, 03, 13, 23).

    Nodes 0 (input) and 3 (output) are fixed; nodes 1 and 2 can be swapped
    exactly when edge 1->2 is absent (op ``none`` = 0), which exchanges edges
    01<->02 and 13<->23. The key is the smaller base-5 code of the two forms.
    """
    ops = np.asarray(ops, np.int64)
    swapped = ops[..., [1, 0, 2, 3, 5, 4]]
    weights = 5 ** np.arange(5, -1, -1)
    code, code_swapped = ops @ weights, swapped @ weights
    return np.where(ops[..., 2] == 0, np.minimum(code, code_swapped), code)


def select_cells(test_acc: np.ndarray, params: np.ndarray, ops: np.ndarray, n: int, *, keep_chance: bool) -> dict:
    """Rows of ``n`` cells: the median of each of ``n`` equal-count strata of the pool by NB201 test accuracy.

    ``test_acc``, ``params``: float ``[R]`` per official row (params NaN where unpublished);
    ``ops``: int ``[R, 6]``. Returns the chosen rows (ascending accuracy) and pool sizes.
    """
    rows = np.flatnonzero(np.isfinite(params) & np.isfinite(test_acc))
    n_published = len(rows)
    keys = canonical(ops[rows])
    _, first = np.unique(keys, return_index=True)  # rows are ascending, so the lowest index per class
    rows = np.sort(rows[first])
    n_unique = len(rows)
    if not keep_chance:
        rows = rows[test_acc[rows] > CHANCE]
    if not 2 <= n <= len(rows):
        raise SystemExit(f"--archs: got {n}, expected 2..{len(rows)} (the pool size)")
    pool = rows[np.lexsort((rows, test_acc[rows]))]
    picks = ((np.arange(n) + 0.5) / n * len(pool)).astype(int)
    return dict(rows=pool[picks], pool=len(pool), published=n_published, unique=n_unique)


# ----- parameter counts ------------------------------------------------------------------

def full_network_params(arch) -> int:
    """Parameters of the published NB201 network (C=16, N=5, 10 classes), built abstractly."""
    net = nnx.eval_shape(lambda: build_network("nb201", arch, num_classes=NUM_CLASSES, rngs=nnx.Rngs(0), **FULL))
    return count_params(net)


# ----- report ------------------------------------------------------------------------------

def _round(x, k=2):
    return None if x is None or not np.isfinite(x) else round(float(x), k)


def test_noise_interval(ours, reference, n_test: int, *, n_draws: int = 2000, seed: int = 0) -> list[float]:
    """5 / 50 / 95 % quantiles of Spearman's rho when each test accuracy is redrawn with its binomial error.

    A rough parametric bootstrap of the test-set sampling noise (``n_test`` images per cell):
    ``acc + N(0, 100 sqrt(p (1 - p) / n_test))``. It shows how much of rho a different test set could move.
    """
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    keep = ~(np.isnan(ours) | np.isnan(reference))
    ours, reference = ours[keep], reference[keep]
    if len(ours) < 3:
        return [float("nan")] * 3
    p = ours / 100
    se = 100 * np.sqrt(p * (1 - p) / n_test)
    rng = np.random.default_rng(seed)
    rhos = [spearman(ours + rng.normal(0, se), reference) for _ in range(n_draws)]
    return [round(float(q), 3) for q in np.quantile(rhos, [0.05, 0.5, 0.95])]


def summarise(cells: list[dict], n_test: int) -> dict:
    """Correlations of the finished cells with the NB201 table and the reference rankers (see module doc)."""
    done = [c for c in cells if c["status"] in ("ok", "failed")]
    ok = np.array([c["status"] == "ok" for c in done], bool)
    ours = np.array([c["test_acc"] if c["status"] == "ok" else np.nan for c in done], np.float64)
    train = np.array([c["train_acc"] if c["status"] == "ok" else np.nan for c in done], np.float64)
    ref = np.array([c["nb201_test_acc_200ep"] for c in done])
    ref12 = np.array([c["nb201_test_acc_12ep"] for c in done])
    params = np.array([c["published_params"] for c in done], np.float64)
    above = ok & (ref > CHANCE) & (ours > CHANCE)
    by_epoch = []
    epochs = min((len(c["history"]) for c, k in zip(done, ok) if k), default=0)
    for e in range(epochs):
        test_e = [c["history"][e]["test_acc"] if k else np.nan for c, k in zip(done, ok)]
        train_e = [c["history"][e]["train_acc"] if k else np.nan for c, k in zip(done, ok)]
        test_e = np.array([np.nan if v is None else v for v in test_e], np.float64)
        by_epoch.append(dict(epoch=e + 1, test=round(spearman(test_e, ref), 3),
                             train=round(spearman(np.array(train_e, np.float64), ref), 3)))
    return dict(
        ours_vs_nb201_200ep=correlations(ours, ref),
        ours_vs_nb201_200ep_without_chance=correlations(np.where(above, ours, np.nan), ref),
        ours_train_acc_vs_nb201_200ep=correlations(train, ref),
        reference_nb201_12ep_vs_200ep=correlations(np.where(ok, ref12, np.nan), ref),
        reference_params_vs_200ep=correlations(np.where(ok, params, np.nan), ref),
        ours_vs_params=correlations(ours, params),
        test_noise_spearman_5_50_95=test_noise_interval(ours, ref, n_test),
        spearman_by_epoch=by_epoch,
        chance_level_cells=int((ok & ~above).sum()),
        failed=int((~ok).sum()),
        params_match=all(c["params_match"] for c in cells),
    )


def print_table(cells: list[dict], summary: dict, model: dict) -> None:
    print(f"\n{'official string':92} {'idx':>5} {'NB201 %':>8} {'NB201@12':>8} {'ours %':>7} "
          f"{'train %':>7} {'params ours/pub (C16,N5)':>25} {'trained':>8} {'s':>5}")
    for c in cells:
        ours = c["status"] if c["status"] != "ok" else f"{c['test_acc']:.2f}"
        train = "" if c["status"] != "ok" else f"{c['train_acc']:.1f}"
        mark = "=" if c["params_match"] else "!="
        print(f"{c['arch']:92} {c['official_index']:5d} {c['nb201_test_acc_200ep']:8.2f} "
              f"{c['nb201_test_acc_12ep']:8.2f} {ours:>7} {train:>7} "
              f"{c['full_params']:>11,d} {mark} {c['published_params']:<11,d} {c['trained_params'] or 0:8,d} "
              f"{c['wall_seconds'] or 0:5.0f}")
    print(f"(trained network: C={model['channels']}, N={model['cells_per_stage']})")
    for name, key in (
        ("ours vs NB201 200 ep", "ours_vs_nb201_200ep"),
        ("  without chance-level cells", "ours_vs_nb201_200ep_without_chance"),
        ("ours (train acc., last epoch) vs 200 ep", "ours_train_acc_vs_nb201_200ep"),
        ("NB201 12 ep vs 200 ep (reference)", "reference_nb201_12ep_vs_200ep"),
        ("published params vs 200 ep (reference)", "reference_params_vs_200ep"),
        ("ours vs published params", "ours_vs_params"),
    ):
        s = summary[key]
        print(f"{name:40} n={s['n']:2d}  Spearman {s['spearman']:+.3f} (90% CI {s['spearman_90ci'][0]:+.2f}"
              f"..{s['spearman_90ci'][1]:+.2f})  Kendall {s['kendall_tau']:+.3f}")
    q = summary["test_noise_spearman_5_50_95"]
    print(f"test-set noise (binomial redraws of our test accuracies): Spearman 5/50/95 % = {q[0]:+.2f} / "
          f"{q[1]:+.2f} / {q[2]:+.2f}")
    print("Spearman by epoch (test / train acc.): " + ", ".join(
        f"{r['epoch']}: {r['test']:+.2f}/{r['train']:+.2f}" for r in summary["spearman_by_epoch"]))
    print(f"failed runs: {summary['failed']}; chance-level cells: {summary['chance_level_cells']}; "
          f"parameter counts equal the table for every cell: {summary['params_match']}")


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    dev = jax.devices()[0]
    return dict(cpu=cpu, cpu_count=os.cpu_count(), backend=jax.default_backend(),
                device=getattr(dev, "device_kind", str(dev)), device_count=jax.device_count(),
                load_average_at_start=None if load is None else [round(x, 2) for x in load],
                python=platform.python_version(), jax=jax.__version__)


def write(path: Path, record: dict) -> None:
    """JSON with one line per cell (their epoch histories on one line each)."""
    head = json.dumps({k: v for k, v in record.items() if k != "cells"}, indent=1)[:-2]
    cells = ",\n".join("  " + json.dumps(c) for c in record["cells"])
    text = head + ',\n "cells": [\n' + cells + "\n ]\n}\n"
    assert json.loads(text) == json.loads(json.dumps(record))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu", help="default schedule and network size")
    ap.add_argument("--archs", type=int, default=12, help="cells to train (equal-count strata of NB201 accuracy)")
    ap.add_argument("--epochs", type=int, help="training epochs (cosine schedule spans them)")
    ap.add_argument("--channels", type=int, help="channels of the first stage (NB201: 16)")
    ap.add_argument("--cells-per-stage", type=int, help="cells per stage (NB201: 5)")
    ap.add_argument("--batch-size", type=int, help="training batch (NB201: 256)")
    ap.add_argument("--lr", type=float, help="peak learning rate (NB201: 0.1)")
    ap.add_argument("--seed", type=int, default=0, help="initialisation / augmentation / order seed (all cells)")
    ap.add_argument("--keep-chance", action="store_true", help="keep chance-level cells (<= 15 %%) in the pool")
    ap.add_argument("--select-only", action="store_true", help="choose the cells and check params; no training")
    ap.add_argument("--resummarise", action="store_true",
                    help="recompute the summary of the record at --out (no training) and print its table")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if args.resummarise:
        record = json.loads(args.out.read_text())
        if "test_size" not in record:  # records written before the field existed
            from jnas.train.data import load_split

            record["test_size"] = len(load_split(record["data"], "test")[1])
        record["summary"] = summarise(record["cells"], record["test_size"])
        write(args.out, record)
        print_table(record["cells"], record["summary"], record["model"])
        return record
    prof = dict(PROFILES[args.profile])
    for k in prof:
        if getattr(args, k) is not None:
            prof[k] = getattr(args, k)
    t_start = time.perf_counter()

    bench = get_benchmark("nb201/cifar10")
    space = get_space("nb201")
    all_archs = np.asarray(space.enumerate())
    row_of_index = np.asarray(bench.rows(all_archs))
    ops = np.empty_like(all_archs)
    ops[row_of_index] = all_archs  # ops of each official row
    acc200 = bench.column("test_acc", 200)
    acc12 = bench.column("test_acc", 12)
    pub_params = bench.column("params")  # millions, 6 decimals = exact counts
    chosen = select_cells(acc200, pub_params, ops, args.archs, keep_chance=args.keep_chance)
    rows = chosen["rows"]
    fast_params, _ = params_and_flops(ops[rows], num_classes=NUM_CLASSES, **FULL)

    cells = []
    for r, fast in zip(rows, fast_params):
        published = int(round(pub_params[r] * 1e6))
        full = full_network_params(ops[r])
        cells.append(dict(arch=space.to_string(ops[r]), official_index=int(bench.official([r])[0]),
                          nb201_test_acc_200ep=round(float(acc200[r]), 4),
                          nb201_test_acc_12ep=round(float(acc12[r]), 4), published_params=published,
                          full_params=full, full_params_analytic=int(fast),
                          params_match=full == published == int(fast),
                          status="pending", reason=None, test_acc=None, train_acc=None, train_loss=None,
                          test_loss=None, trained_params=None, wall_seconds=None, history=[]))

    model = dict(channels=prof["channels"], cells_per_stage=prof["cells_per_stage"])
    config = TrainConfig(epochs=prof["epochs"], batch_size=prof["batch_size"], lr=prof["lr"], seed=args.seed)
    record = dict(
        experiment="nb201_training_check",
        question="Spearman of our CIFAR-10-subset test accuracies with NB201's 200-epoch CIFAR-10 test accuracy "
                 "(goal >= 0.6) and exact parameter-count agreement of the full C=16, N=5 network",
        command="python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]),
        profile=args.profile,
        data=DATA,
        model=model,
        train_config=config.to_dict(),
        selection=dict(method="median cell of each of n equal-count strata of NB201 200-epoch test accuracy, "
                              "pool = cells with published params, one per isomorphism class"
                              + ("" if args.keep_chance else f", above {CHANCE:g} %"),
                       n=args.archs, pool=chosen["pool"], published=chosen["published"],
                       unique=chosen["unique"], keep_chance=args.keep_chance, chance_threshold=CHANCE),
        machine=machine(),
        complete=False,
        wall_seconds=None,
        summary=None,
        cells=cells,
    )
    bad = [c for c in cells if not c["params_match"]]
    for c in bad:
        print(f"PARAMS DIFFER {c['arch']}: built {c['full_params']}, analytic {c['full_params_analytic']}, "
              f"published {c['published_params']}")
    if args.select_only:
        for c in cells:
            print(f"{c['arch']:92} {c['official_index']:5d} {c['nb201_test_acc_200ep']:7.2f} "
                  f"{c['full_params']:>9,d} {'=' if c['params_match'] else '!='} {c['published_params']:,d}")
        return record

    log_epoch = {}

    def on_epoch(arch: str, rec: dict) -> None:
        log_epoch.setdefault(arch, []).append({k: _round(v, 4) if isinstance(v, float) else v for k, v in rec.items()})
        print(f"  epoch {rec['epoch']:3d}  loss {rec['train_loss']:.3f}  train {rec['train_acc']:5.1f}  "
              f"test {rec['test_acc'] if rec['test_acc'] is not None else float('nan'):5.1f}  "
              f"{rec['seconds']:5.1f}s", flush=True)

    evaluator = TrainingEvaluator("nb201", DATA, config=config, num_classes=NUM_CLASSES, model_options=model,
                                  on_epoch=on_epoch)
    record["test_size"] = evaluator.describe()["test_size"]
    for i, c in enumerate(cells):
        print(f"[{i + 1}/{len(cells)}] {c['arch']}  (NB201 {c['nb201_test_acc_200ep']:.2f} %)", flush=True)
        res = evaluator.evaluate(space.from_string(c["arch"]))
        c.update(status=res["status"], reason=res["reason"], test_acc=_round(res["test_acc"], 4),
                 train_acc=_round(res["train_acc"], 4), train_loss=_round(res["train_loss"], 4),
                 test_loss=_round(res["test_loss"], 4), trained_params=res["params"],
                 wall_seconds=_round(res["wall_seconds"], 1), history=log_epoch.get(c["arch"], []))
        if res["status"] != "ok":
            print(f"  FAILED: {res['reason']}", flush=True)
        record["wall_seconds"] = round(time.perf_counter() - t_start, 1)
        write(args.out, record)

    record["summary"] = summarise(cells, record["test_size"])
    record["failures"] = evaluator.failures
    record["complete"] = True
    record["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    write(args.out, record)
    print_table(cells, record["summary"], model)
    print(f"wall time {record['wall_seconds']:.0f} s; wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
