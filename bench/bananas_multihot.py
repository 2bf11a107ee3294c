"""Benchmark: BANANAS on NAS-Bench-Graph with the path encoding held as ``MultiHot`` rows vs the dense matrix.

NAS-Bench-Graph's path encoding has 7,380 features and a cell sets at most 15
of them. ``bananas`` feeds its MLP ensemble ``path_multihot`` rows (the first
layer is a gather of at most 15 rows of ``w_in``); the reference is the same
strategy fed ``path_encoding``'s dense ``float32[n, 7380]`` matrix (the first
layer a dense matmul), which is what jnas did before.

Two workloads, each timed for both, alternating order between rounds:

- ``fit``: one jitted ``MLPEnsemble.fit`` (BANANAS defaults: 5 members of
  10 × 20, 200 full-batch Adam steps) on 300 random cells of
  ``nbgraph/cora``, steady state (median of ``--reps``; compiled before timing).
- ``search``: ``run_tabular`` of ``bananas`` on ``nbgraph/cora``, 300 queries ×
  ``--seeds`` seeds, compilation included (a fresh strategy object each time),
  median of two rounds.

Before timing, the two feature forms are asserted to give the same outputs
for one set of weights (training itself is chaotic: 200 Adam steps of a
10-layer net amplify float rounding, so the searches' best-found values are
printed beside each other rather than asserted equal). Prints "workload | multihot | dense | ratio" and writes
``bench/results/bananas_multihot.json``.

    python bench/bananas_multihot.py [--reps 5] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from machine import cpu_model

from jnas.benchmarks import get_benchmark
from jnas.encodings import path_encoding, path_multihot
from jnas.predictors.mlp import MLPEnsemble
from jnas.runs.runner import run_tabular
from jnas.strategies import make_strategy
from jnas.strategies.bananas import Bananas

BENCH = "nbgraph/cora"


class DenseBananas(Bananas):
    """The reference: ``bananas`` with the dense path matrix."""

    def _features(self, archs):
        return jax.vmap(lambda a: path_encoding(self.space, a))(archs)


def timed(fn) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    bench = get_benchmark(BENCH)
    space = bench.space
    archs = jax.vmap(space.sample)(jax.random.split(jax.random.key(0), 300))
    y = np.asarray(bench.query(archs, *bench.search_metric))
    feats = {"multihot": jax.jit(jax.vmap(lambda a: path_multihot(space, a)))(archs),
             "dense": jax.jit(jax.vmap(lambda a: path_encoding(space, a)))(archs)}
    model = MLPEnsemble(steps=200)
    fit = jax.jit(model.fit)
    # the same function: one set of weights gives the same outputs on both (training itself is chaotic:
    # 200 Adam steps of a 10-layer net amplify float rounding, so two fits are compared by their searches)
    params = model.init(jax.random.key(1), feats["dense"].shape[1])
    params["scale"] = jnp.array([0.0, 1.0])
    preds = {k: model.predict_members(params, X) for k, X in feats.items()}
    np.testing.assert_allclose(preds["multihot"], preds["dense"], rtol=1e-4, atol=1e-4)

    times = {"fit": {"multihot": [], "dense": []}, "search": {"multihot": [], "dense": []}}
    for r in range(args.reps):
        for kind in (("multihot", "dense") if r % 2 == 0 else ("dense", "multihot")):
            times["fit"][kind].append(timed(lambda X=feats[kind], r=r: fit(jax.random.key(r), X, y)))
    best = {}
    for r in range(2):  # two rounds, order flipped
        for kind in (("multihot", "dense") if r % 2 == 0 else ("dense", "multihot")):
            strat = make_strategy("bananas", space, 300) if kind == "multihot" else DenseBananas(space, 300)
            t = time.perf_counter()
            rec = run_tabular(strat, bench, args.seeds, bench.search_metric, seed0=7)
            times["search"][kind].append(time.perf_counter() - t)
            best[kind] = np.nanmax(rec.values, axis=1)

    rows = []
    print(f"machine: {cpu_model()}, jax {jax.__version__}")
    print("| workload | multihot (s) | dense (s) | ratio |\n|---|---:|---:|---:|")
    for w, t in times.items():
        m, d = statistics.median(t["multihot"]), statistics.median(t["dense"])
        rows.append({"workload": w, "multihot_s": m, "dense_s": d, "ratio": m / d})
        print(f"| {w} | {m:.2f} | {d:.2f} | {m / d:.2f} |")
    print("best valid acc found (mean over seeds): " + ", ".join(f"{k} {v.mean():.2f}" for k, v in best.items()))
    out = Path(__file__).resolve().parent / "results" / "bananas_multihot.json"
    out.write_text(json.dumps({"machine": cpu_model(), "jax": jax.__version__, "seeds": args.seeds,
                               "rows": rows, "best_found": {k: v.tolist() for k, v in best.items()}},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
