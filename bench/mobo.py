"""Benchmark: ``mobo`` at 150 queries × 10 seeds on NB201 × HW-NAS-Bench against its 5-minute target.

The target (issue 15): ``jnas search --benchmark nb201/cifar10 --strategy mobo
--objectives valid_acc@200,edgegpu_latency --budget 150 --seeds 10`` in under
300 s on the 2-core CPU. This runs that search through ``jnas.runs.search``
(the CLI's path: one seed per compiled call, ``default_chunk``; compilation
included, as a fresh process pays it) with ``nsga2`` and ``rs`` on the same
objectives beside it, and prints
"strategy | wall s | target s | ratio | hv regret". No reference library
implements NAGO's MOBO; the ratio is to the target.
Writes ``bench/results/mobo.json``.

    python bench/mobo.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
from machine import cpu_model

from jnas.runs.search import default_chunk, search

TARGET_S = 300.0
OBJ = "valid_acc@200,edgegpu_latency"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    rows = []
    print(f"machine: {cpu_model()}, jax {jax.__version__}")
    print("| strategy | wall s (summary) | process s | target s | ratio | hv regret |\n|---|---:|---:|---:|---:|---:|")
    for strategy in ("mobo", "nsga2", "rs"):
        t = time.perf_counter()
        r = search("nb201/cifar10", strategy, 150, seeds=args.seeds, objectives=OBJ,
                   chunk=default_chunk(args.seeds))
        dt = time.perf_counter() - t
        s = r.summary
        rows.append({"strategy": strategy, "wall_seconds": s["wall_seconds"], "process_seconds": dt,
                     "ratio_to_target": s["wall_seconds"] / TARGET_S,
                     "hv_regret": [s["final_hv_regret_mean"], s["final_hv_regret_se"]]})
        ratio = s["wall_seconds"] / TARGET_S
        print(f"| {strategy} | {s['wall_seconds']:.1f} | {dt:.1f} | {TARGET_S:.0f} | {ratio:.2f} | "
              f"{s['final_hv_regret_mean']:.4f} ± {s['final_hv_regret_se']:.4f} |", flush=True)
    out = Path(__file__).resolve().parent / "results" / "mobo.json"
    out.write_text(json.dumps({"machine": cpu_model(), "jax": jax.__version__, "seeds": args.seeds,
                               "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
