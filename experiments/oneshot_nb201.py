"""One-shot search on NAS-Bench-201 with real CIFAR-10: DARTS (1st/2nd order), GDAS, SNAS, PC-DARTS, P-DARTS
and ANASOD-DNAS.

Every method searches the NB201 cell with its supernet (``jnas supernet``'s
``run_supernet``); after every epoch the derived cell is looked up in the
NAS-Bench-201 table (200-epoch CIFAR-10 test accuracy), and the share of
``skip_connect`` and ``none`` edges in it is recorded: DARTS's collapse onto
parameter-free cells shows as a rising share and a falling accuracy
(ANASOD Table 3: DARTS 54.30 %, ANASOD-DNAS 92.25 % on CIFAR-10).

Profiles:

``cpu`` (default, about an hour on the 2-core machine)
    the 4,800-image ``cifar10_subset``, a small supernet (8 channels, one
    cell per stage), 5 epochs per method (PC-DARTS: the first a warm-up;
    P-DARTS: 3 stages of 3 epochs, 1, 2 and 3 cells per stage), 3 seeds.
``gpu``
    the papers' schedules: full CIFAR-10 (``jnas data prepare cifar10``
    first), 16 channels, 5 cells per stage, 50 epochs (DARTS, GDAS, SNAS,
    PC-DARTS), 3 stages of 25 (P-DARTS) and 20 (ANASOD-DNAS). ``--max-epochs
    N`` stops each run after N epochs and projects the full run's time from
    the timed epochs.

Each run lives in ``--work/<profile>/<method>-s<seed>`` and checkpoints
every epoch, so rerunning the script resumes where it was stopped. The
aggregate goes to ``experiments/results/oneshot_nb201_<profile>.json``;
``--merge`` adds the methods of this invocation to the record already there.

    python experiments/oneshot_nb201.py [--profile cpu|gpu] [--seeds 3] [--merge]
        [--methods darts,darts2,gdas,snas,pc-darts,pdarts,anasod-dnas]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from jnas.runs.supernet import run_supernet

PROFILES = {
    "cpu": {"data": "cifar10_subset", "model": {"channels": 8, "cells_per_stage": 1},
            "epochs": {"darts": 5, "darts2": 5, "gdas": 5, "snas": 5, "pc-darts": 5, "pdarts": 3,
                       "anasod-dnas": 5},
            # the papers' warm-ups (PC-DARTS 15 of 50 epochs, P-DARTS 10 of 25 per stage) scaled to the
            # short schedules; P-DARTS grows 1 -> 2 -> 3 cells per stage (the skeleton has 3 stages)
            "options": {"pc-darts": {"warmup_epochs": 1}, "pdarts": {"depths": "1,2,3", "warmup_epochs": 1}}},
    "gpu": {"data": "cifar10", "model": {"channels": 16, "cells_per_stage": 5},
            "epochs": {"darts": 50, "darts2": 50, "gdas": 50, "snas": 50, "pc-darts": 50, "pdarts": 25,
                       "anasod-dnas": 20},
            "options": {}},
}
METHODS = ("darts", "darts2", "gdas", "snas", "pc-darts", "pdarts", "anasod-dnas")
#: ANASOD (Wan et al.), Table 3: NB201 CIFAR-10 test accuracy of the searched cells
PAPER = {"darts": 54.30, "anasod-dnas": 92.25}


def _mean_se(values) -> tuple[float | None, float | None]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
    if v.size == 0:
        return None, None
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Per method: per-epoch mean ± s.e. of the looked-up accuracy and the skip/none shares, final cells."""
    out = {}
    for method, recs in runs.items():
        n_ep = min(len(r["history"]) for r in recs)
        curve, skip, none = [], [], []
        for e in range(n_ep):
            curve.append(_mean_se([r["history"][e]["nb201_cifar10_test_acc"] for r in recs]))
            skip.append(_mean_se([r["history"][e]["op_share"]["skip_connect"] for r in recs]))
            none.append(_mean_se([r["history"][e]["op_share"]["none"] for r in recs]))
        seconds = [h["seconds"] for r in recs for h in r["history"]]
        out[method] = {
            "seeds": len(recs),
            "epochs": n_ep,
            "cifar10_test_acc_per_epoch": [m for m, _ in curve],
            "cifar10_test_acc_se_per_epoch": [s for _, s in curve],
            "skip_share_per_epoch": [m for m, _ in skip],
            "none_share_per_epoch": [m for m, _ in none],
            "final_cifar10_test_acc": curve[-1][0],
            "final_cifar10_test_acc_se": curve[-1][1],
            "final_cells": [r["derived_arch"] for r in recs],
            "final_nb201_test_acc": [r.get("nb201_test_acc") for r in recs],
            "seconds_per_epoch": float(np.median(seconds)),
            "paper_cifar10_test_acc": PAPER.get(method),
        }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=tuple(PROFILES), default="cpu")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--merge", action="store_true",
                    help="add these methods' rows to the record already in --out (same profile and seeds)")
    ap.add_argument("--max-epochs", type=int, default=None,
                    help="stop each run after this many epochs (the schedule stays the full one) and project its time")
    ap.add_argument("--work", default="runs/oneshot_nb201", help="folder of the per-run result folders")
    ap.add_argument("--out", default=None,
                    help="aggregate JSON (default experiments/results/oneshot_nb201_<profile>.json)")
    args = ap.parse_args()
    prof = PROFILES[args.profile]
    methods = [m.strip() for m in args.methods.split(",")]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"--methods: unknown {bad[0]!r}, expected some of {', '.join(METHODS)}")
    out = Path(args.out or Path(__file__).resolve().parent / "results" / f"oneshot_nb201_{args.profile}.json")
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        for method in methods:
            epochs = prof["epochs"][method]
            folder = Path(args.work) / args.profile / f"{method}-s{seed}"
            stop = args.max_epochs

            def on_epoch(rec, method=method, seed=seed, stop=stop):
                stage = f"stage {rec['stage']} " if "stage" in rec else ""
                print(f"{method:12} seed {seed} {stage}epoch {rec['epoch']:3d}  {rec['derived_arch']}  "
                      f"cifar10 {rec['nb201_cifar10_test_acc']}  skip {rec['op_share']['skip_connect']:.2f} "
                      f"none {rec['op_share']['none']:.2f}  ({rec['seconds']:.0f} s)", flush=True)
                if stop is not None and rec["epoch"] >= stop:
                    raise _Stop(rec)

            try:
                model = dict(prof["model"])
                if method == "pdarts":  # it sets the depth per stage
                    model.pop("cells_per_stage")
                rec = run_supernet("nb201", method, data=prof["data"], epochs=epochs, out=folder, seed=seed,
                                   model_options=model, method_options=prof["options"].get(method),
                                   on_epoch=on_epoch)
            except _Stop:
                rec = _partial(folder, method, seed, epochs)
            runs[method].append(rec)
    summary = summarise(runs)
    record = {"profile": args.profile, "data": prof["data"], "model_options": prof["model"],
              "schedules": {m: prof["epochs"][m] for m in methods}, "method_options": {
                  m: prof["options"][m] for m in methods if m in prof["options"]}, "max_epochs": args.max_epochs,
              "seeds": args.seeds, "wall_seconds": time.perf_counter() - t0, "methods": summary}
    if args.max_epochs is not None:
        record["projected_hours"] = {m: s["seconds_per_epoch"] * prof["epochs"][m] * _stages(m, prof) / 3600
                                     for m, s in summary.items()}
    if args.merge:
        record = _merge(out, record, args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\n{'method':12} {'final C10 test %':>18} {'skip':>5} {'none':>5} {'s/epoch':>8} {'paper':>6}")
    for m, s in summary.items():
        se = s["final_cifar10_test_acc_se"]
        print(f"{m:12} {s['final_cifar10_test_acc']:10.2f} ± {se:5.2f} {s['skip_share_per_epoch'][-1]:5.2f} "
              f"{s['none_share_per_epoch'][-1]:5.2f} {s['seconds_per_epoch']:8.1f} "
              f"{'-' if s['paper_cifar10_test_acc'] is None else s['paper_cifar10_test_acc']:>6}")
    print(f"-> {out}")


def _stages(method: str, prof: dict) -> int:
    from jnas.train.oneshot_methods import make_method

    return len(make_method(method, "nb201", **prof["options"].get(method, {})).stage_plan())


def _machine() -> str:
    """The CPU model and core count (``/proc/cpuinfo`` where there is one) and JAX's backend."""
    import os
    import platform

    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {jax.default_backend()}"


def _merge(out: Path, record: dict, args) -> dict:
    """``record``'s methods added to (or replacing theirs in) the record already in ``out``, the invocation
    noted under ``separate_invocations``; refused when the two differ in profile, data, model or seeds."""
    import datetime

    if not out.is_file():
        raise SystemExit(f"--merge: {out} does not exist yet")
    old = json.loads(out.read_text())
    for k in ("profile", "data", "model_options", "seeds", "max_epochs"):
        if old.get(k) != record[k]:
            raise SystemExit(f"--merge: {out} has {k}={old.get(k)!r}, this run {record[k]!r}")
    merged = dict(old)
    for k in ("schedules", "method_options", "methods"):
        merged[k] = {**old.get(k, {}), **record[k]}
    note = {"date": datetime.date.today().isoformat(), "machine": _machine(),
            "command": "python experiments/oneshot_nb201.py --merge --methods " + ",".join(record["methods"]),
            "wall_seconds": record["wall_seconds"]}
    merged["separate_invocations"] = {**old.get("separate_invocations", {}),
                                      **{m: note for m in record["methods"]}}
    return merged


class _Stop(Exception):
    """Raised from ``on_epoch`` to end a run early (``--max-epochs``); its checkpoint stays for a resume."""

    def __init__(self, rec):
        self.rec = rec


def _partial(folder: Path, method: str, seed: int, epochs: int) -> dict:
    """The record of a run stopped by ``--max-epochs``, read back from its last checkpoint."""
    from jnas.spaces import get_space
    from jnas.train import checkpoint as ckpt

    staged = sorted((folder / "checkpoints").glob("stage*"), key=lambda p: int(p.name[5:]))
    found = [dict(h, **({"stage": i + 1} if staged else {}))
             for i, d in enumerate(staged or [folder / "checkpoints"]) for h in ckpt.read_history(d)]
    space = get_space("nb201")
    from jnas.runs.supernet import NB201Lookup, op_shares

    lookup = NB201Lookup()
    history = []
    for h in found:
        arch = np.asarray(h["derived"], np.int8)
        history.append({**h, "derived_arch": space.to_string(arch), "op_share": op_shares("nb201", arch),
                        "nb201_cifar10_test_acc": (lookup.test_acc(arch, ("cifar10",)) or {}).get("cifar10")})
    last = np.asarray(history[-1]["derived"], np.int8)
    return {"method": method, "seed": seed, "epochs": epochs, "derived_arch": history[-1]["derived_arch"],
            "nb201_test_acc": lookup.test_acc(last), "history": history}


if __name__ == "__main__":
    main()
