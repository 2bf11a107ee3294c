"""NAGO's search on real training: HNAG vs RNAG with BOHB, random search and MOBO (NAGO Table 2, Fig. 3).

NAGO (Ru et al., NeurIPS 2020) optimises the hyperparameters of a network
generator. Each queried configuration is judged by *one* network drawn from
it (generator seed fixed, as in the paper's search phase) and trained for the
fidelity's epochs; the recommended configuration of a search is then reported
by ``--resample`` networks drawn afresh from it and trained to the final
schedule (``jnas.runs.resample``), mean ± standard error of their test
accuracy.

Methods (every search gets the same budget in epochs, ``budget`` full
evaluations at the top fidelity):

* HNAG-BOHB, RNAG-BOHB: ``bohb`` on ``nago`` / ``rnag``, η = 2 and three rungs
  (NAGO: 30/60/120 epochs);
* HNAG-RS: ``rs`` on ``nago``, every query at the top fidelity;
* HNAG-MOBO, RNAG-MOBO: ``mobo`` with two objectives, validation accuracy and
  sample memory (``memory``: activation MB per image of the trained network,
  ``jnas.models.cost``), every query at the top fidelity; the fronts are
  compared by the hypervolume of each run's front with one reference point
  for both (the worst accuracy and memory either run measured).

Profiles:

* ``cpu`` (default; what this project's 2-core CPU machines can run): the
  offline CIFAR-10 subset downsampled to 16×16 (1,200 training images, 200
  of them held out for validation; 400 test images), networks under 10^5
  parameters, top fidelity 2 epochs (rungs 1/2), 3 full evaluations per
  search (BOHB: four queries; RS: three), MOBO 4 queries, 2 resampled networks. Each evaluation compiles a new network
  (minutes on CPU), so this profile can only show that the whole pipeline
  runs on real data; its accuracies are far from converged and a handful of
  queries cannot separate the methods.
* ``gpu``: the subset at 32×32 (4,800 training images, 480 held out; 850
  test), NAGO's 4M-parameter limit and budgets 30/60/120 epochs, 20 full
  evaluations per search, 8 resampled networks.

Runs are result folders under ``experiments/results/nago_runs/<profile>/``
(not in git; every evaluation is journaled, so an interrupted study resumes).
Writes ``experiments/results/nago_search_<profile>_<part>.json`` (one file per part, so
the parts can run as separate processes).

    python experiments/nago_search.py [--profile cpu|gpu] [--part bohb mobo]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from jnas.benchmarks.training import TrainingEvaluator
from jnas.metrics.pareto import hypervolume, pareto_mask
from jnas.paths import data_dir
from jnas.runs import search
from jnas.runs.resample import resample_run
from jnas.train.optim import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from machine import cpu_model  # noqa: E402

HERE = Path(__file__).resolve().parent
PROFILES = {
    "cpu": dict(size=16, train=1200, valid=200, test=400, param_limit=1e5, epochs=2, budget=3, resample=2,
                batch_size=100, mobo_budget=4),
    "gpu": dict(size=32, train=4800, valid=480, test=850, param_limit=4e6, epochs=120, budget=20, resample=8,
                batch_size=96, mobo_budget=24),
}


def subset(p: dict):
    """The offline CIFAR-10 subset, downsampled by averaging pixel blocks to ``size`` × ``size``."""
    z = np.load(data_dir() / "cifar10_subset.npz")

    def shrink(x):
        f = x.shape[1] // p["size"]
        return x.reshape(x.shape[0], p["size"], f, p["size"], f, 3).mean(axis=(2, 4)).round().astype(np.uint8)

    return ((shrink(z["x_train"][: p["train"]]), z["y_train"][: p["train"]].astype(np.int64)),
            (shrink(z["x_test"][: p["test"]]), z["y_test"][: p["test"]].astype(np.int64)))


def evaluator(space: str, p: dict, data, folder: Path) -> TrainingEvaluator:
    config = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], eval_batch_size=p["batch_size"],
                         crop_pad=2 if p["size"] <= 16 else 4, lr=0.05)
    return TrainingEvaluator(space, data, config=config, valid_size=p["valid"], checkpoint_dir=folder / "checkpoints",
                             model_options={"param_limit": p["param_limit"],
                                            "input_shape": (p["size"], p["size"], 3)})


def part_bohb(p: dict, data, runs: Path) -> dict:
    out = {}
    for label, space, strategy, options in (
        ("HNAG-BOHB", "nago", "bohb", {"eta": 2}),
        ("RNAG-BOHB", "rnag", "bohb", {"eta": 2}),
        ("HNAG-RS", "nago", "rs", {}),
    ):
        t0 = time.time()
        folder = runs / label
        ev = evaluator(space, p, data, folder)
        r = search(evaluator=ev, strategy=strategy, budget=p["budget"], options=options, out=folder)
        rec = resample_run(r, ev, p["resample"], folder)[0]
        s = r.summary
        out[label] = {"space": space, "strategy": strategy, "options": s["options"],
                      "queries": s.get("queries", s["budget"]), "cost_used_epochs": s["cost_used"],
                      "failed": s["evaluations_failed"], "best_valid_acc": float(r.trajectory["best_search"][0, -1]),
                      "recommended": rec["arch"], "resample": rec, "search_wall_seconds": s["wall_seconds"],
                      "wall_seconds_this_call": time.time() - t0}
        print(f"{label:10} queries {out[label]['queries']:3}  best valid {out[label]['best_valid_acc']:.2f}  "
              f"resampled test {rec['test_acc_mean']} ± {rec['test_acc_se']} over {rec['n']}  "
              f"({time.time() - t0:.0f} s)", flush=True)
    return out


def part_mobo(p: dict, data, runs: Path) -> dict:
    results = {}
    for label, space in (("HNAG-MOBO", "nago"), ("RNAG-MOBO", "rnag")):
        t0 = time.time()
        folder = runs / label
        ev = evaluator(space, p, data, folder)
        r = search(evaluator=ev, strategy="mobo", budget=p["mobo_budget"], objectives="valid_acc,memory",
                   options={"batch_size": 2, "n_init": 2}, out=folder)
        results[label] = (r, time.time() - t0)
    # one reference point for both runs: the worst accuracy and the largest memory either measured
    pts = {k: np.asarray(r.trajectory["values"][0], np.float64) for k, (r, _) in results.items()}
    every = np.concatenate([v[np.isfinite(v).all(axis=1)] for v in pts.values()])
    lo, hi = every.min(axis=0), every.max(axis=0)
    out = {}
    for label, (_, dt) in results.items():
        v = pts[label][np.isfinite(pts[label]).all(axis=1)]
        # maximise both in [0, 1]: accuracy scaled up, memory scaled and flipped; reference at the origin
        z = np.stack([(v[:, 0] - lo[0]) / max(hi[0] - lo[0], 1e-12), (hi[1] - v[:, 1]) / max(hi[1] - lo[1], 1e-12)],
                     axis=1)
        front = v[np.asarray(pareto_mask(z))]
        hv = float(hypervolume(z[np.asarray(pareto_mask(z))], np.zeros(2))) if len(z) else 0.0
        out[label] = {"evaluated": int(len(v)), "front": front.tolist(), "hypervolume_shared_reference": hv,
                      "search_wall_seconds": results[label][0].summary["wall_seconds"], "wall_seconds_this_call": dt}
        print(f"{label:10} evaluated {len(v):3}  front {len(front)} points  hypervolume {hv:.3f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    ap.add_argument("--part", nargs="+", choices=("bohb", "mobo"), default=["bohb", "mobo"])
    args = ap.parse_args()
    p = PROFILES[args.profile]
    data = subset(p)
    runs = HERE / "results" / "nago_runs" / args.profile
    for part, fn in (("bohb", part_bohb), ("mobo", part_mobo)):
        if part in args.part:
            out = {"profile": args.profile, "settings": p, "machine": cpu_model(), part: fn(p, data, runs)}
            path = HERE / "results" / f"nago_search_{args.profile}_{part}.json"
            path.write_text(json.dumps(out, indent=1) + "\n")
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
