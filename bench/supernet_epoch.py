"""CPU profile of one-shot search: one epoch of the NB201 supernet on the 4,800-image CIFAR-10 subset.

The issue's budget: with ``--model channels=8 --model cells_per_stage=1``,
one epoch of first-order DARTS takes under 3 minutes on the 2-core machine.
For each method this runs ``jnas supernet`` for one epoch in a fresh folder
(what a user's first command costs: compilation included) and then a second
epoch of a 2-epoch run resumed from it (steady state), and prints the times
beside the 180 s budget as a ratio (> 1: under budget). Writes
``bench/results/supernet_epoch.json``.

    python bench/supernet_epoch.py [--methods darts,darts2,gdas,anasod-dnas]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from machine import summary as machine_summary

BUDGET_S = 180.0
MODEL = {"channels": 8, "cells_per_stage": 1}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="darts,darts2,gdas,anasod-dnas")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "supernet_epoch.json"))
    args = ap.parse_args()
    import jax

    from jnas.runs.supernet import run_supernet

    rows = []
    print(f"{'method':12} {'1st epoch s':>11} {'of which build':>14} {'steady epoch s':>14} {'budget s':>8} "
          f"{'budget / 1st':>12}")
    for method in args.methods.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            first = run_supernet("nb201", method, data="cifar10_subset", epochs=1, out=Path(tmp) / "a",
                                 model_options=MODEL)
            wall_first = time.perf_counter() - t0
            two = run_supernet("nb201", method, data="cifar10_subset", epochs=2, out=Path(tmp) / "b",
                               model_options=MODEL)
        steady = two["history"][1]["seconds"]
        rows.append({"method": method, "first_epoch_seconds": wall_first, "build_seconds": first["build_seconds"],
                     "steady_epoch_seconds": steady, "budget_seconds": BUDGET_S, "ratio": BUDGET_S / wall_first})
        print(f"{method:12} {wall_first:11.1f} {first['build_seconds']:14.1f} {steady:14.1f} {BUDGET_S:8.0f} "
              f"{BUDGET_S / wall_first:11.1f}×", flush=True)
    record = {"date": time.strftime("%Y-%m-%d"), "machine": machine_summary(),
              "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
              "load_average_start": os.getloadavg()[0], "model_options": MODEL, "data": "cifar10_subset",
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
