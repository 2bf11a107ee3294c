"""The GPU record: one unattended run that measures jnas's GPU figures and writes one JSON record.

On a machine with a GPU, within ``--budget`` seconds (default 480, the
8 minutes a lent device gives), in this order, each part with its share of
the time left and a line of progress:

1. ``gcn``: GCN scoring of 423,624 NB101-shaped graphs (graphs/s), jnas vs
   PyTorch (``bench/gcn_scoring.py``, as a child process);
2. ``re_10k``: regularized evolution, 300 queries on ``nb201/cifar10``,
   10,000 seeds as one compiled scan: first call (compilation included) and
   second call;
3. ``train_steps``: the NB201 and DARTS training steps against PyTorch
   (``bench/train_throughput.py --device gpu``, child process);
4. ``supernet``: the DARTS and NB201 supernet search steps against PyTorch
   (``bench/supernet.py --device gpu``, first order, child process);
5. ``darts_epoch``: first-order DARTS at full CIFAR-10 shapes (16 channels,
   8 cells, batch 64 per half, 25,000-image halves: 390 steps an epoch):
   timed steps, the epoch and the 50-epoch search they project;
6. ``bf16``: the NB201 training step in bfloat16 against float32.

What the machine cannot run is skipped with a line saying why (no GPU, no
PyTorch, out of time); a part that fails or runs past its share is recorded
as such and the record is still written. ``--allow-cpu`` runs the parts on
a CPU (to try the script; the figures are not GPU figures), ``--small`` with
tiny sizes. Record: ``bench/results/gpu_record.json``.

    python bench/gpu_record.py [--budget 480] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from machine import summary as machine_summary  # noqa: E402

#: parts in order, with the share of the remaining budget each may take
PARTS = (("gcn", 0.2), ("re_10k", 0.2), ("train_steps", 0.3), ("supernet", 0.4), ("darts_epoch", 0.6),
         ("bf16", 1.0))
#: parts measured by functions of this script (in a child process of their own); the others run bench scripts
IN_PROCESS = ("re_10k", "darts_epoch", "bf16")
DARTS_EPOCH_STEPS = 25_000 // 64
SEARCH_EPOCHS = 50


def say(msg: str) -> None:
    print(f"[gpu_record {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def child(args: list[str], limit: float) -> dict:
    """Run ``python bench/<args>`` with ``--out`` a temporary file; its JSON record, or why there is none."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "record.json"
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:], "--out", str(out)],
                                  capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "seconds": time.perf_counter() - t0}
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        if proc.returncode != 0 or not out.exists():
            return {"status": "failed", "seconds": time.perf_counter() - t0, "output_tail": tail}
        return {"status": "ok", "seconds": time.perf_counter() - t0, "record": json.loads(out.read_text()),
                "output_tail": tail}


def part_gcn(limit: float, small: bool, device: str) -> dict:
    n = 4_000 if small else 423_624
    return child(["gcn_scoring.py", "--n", str(n), "--reps", "2" if small else "3", "--torch-chunks", "4096"],
                 limit)


def part_re_10k(limit: float, small: bool, device: str) -> dict:
    import jax

    from jnas.benchmarks import get_benchmark
    from jnas.runs.runner import make_scan_fn, seed_keys
    from jnas.strategies import make_strategy

    seeds, budget = (100, 30) if small else (10_000, 300)
    bench = get_benchmark("nb201/cifar10")
    fn = make_scan_fn(make_strategy("re", bench.space, budget), bench, bench.search_metric)
    keys = seed_keys(seeds)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(keys))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(fn(keys))
    second = time.perf_counter() - t0
    return {"status": "ok", "seeds": seeds, "budget": budget, "first_call_seconds": first,
            "second_call_seconds": second, "queries_per_second": seeds * budget / second}


def part_train_steps(limit: float, small: bool, device: str) -> dict:
    steps = ["--steps", "3", "--warmup", "1"] if small else ["--steps", "50", "--warmup", "5"]
    extra = ["--darts-channels", "4", "--darts-layers", "5", "--batches", "8"] if small else ["--batches", "64,256"]
    return child(["train_throughput.py", "--device", device, *steps, *extra, "--rounds", "1", "--no-check"], limit)


def part_supernet(limit: float, small: bool, device: str) -> dict:
    steps = ["--steps", "1", "--batch", "8"] if small else ["--steps", "20"]
    return child(["supernet.py", "--device", device, "--spaces", "nb201" if small else "darts,nb201",
                  "--orders", "1", *steps, "--rounds", "1", "--no-check"], limit)


def part_darts_epoch(limit: float, small: bool, device: str) -> dict:
    import supernet as sn

    if small:
        sn.OPTIONS["darts"] = dict(sn.SMALL["darts"])
    batch = 8 if small else 64
    t0 = time.perf_counter()
    search = sn.JnasSearch("darts", 1, batch)
    warm = search.run(2)  # the first call compiles
    setup = time.perf_counter() - t0
    n = 2 if small else 40
    per_step = search.run(n) / n
    epoch = per_step * DARTS_EPOCH_STEPS
    return {"status": "ok", "batch": batch, "timed_steps": n, "seconds_per_step": per_step,
            "first_two_steps_seconds": warm, "setup_and_compile_seconds": setup,
            "steps_per_epoch": DARTS_EPOCH_STEPS, "projected_epoch_seconds": epoch,
            "projected_search_hours": epoch * SEARCH_EPOCHS / 3600, "search_epochs": SEARCH_EPOCHS,
            "model_options": sn.OPTIONS["darts"], "parameters": search.params}


def part_bf16(limit: float, small: bool, device: str) -> dict:
    import train_throughput as tt

    from jnas.spaces import get_space

    batch = 8 if small else 256
    n = 2 if small else 50
    options = {"channels": 4, "cells_per_stage": 1} if small else {}
    seconds = {}
    base = tt.recipe
    try:
        for name, bf16 in (("float32", False), ("bfloat16", True)):
            tt.recipe = lambda net, b, _bf16=bf16: base(net, b).replace(bf16=_bf16)
            runner = tt.JnasRunner("nb201", get_space("nb201").from_string(tt.ARCHS["nb201"]), options, batch)
            runner.run(3)  # compile and warm up
            seconds[name] = runner.run(n) / n
    finally:
        tt.recipe = base
    return {"status": "ok", "net": "nb201", "batch": batch, "timed_steps": n, "seconds_per_step": seconds,
            "bf16_speedup": seconds["float32"] / seconds["bfloat16"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole record")
    ap.add_argument("--allow-cpu", action="store_true", help="run the parts without a GPU (not GPU figures)")
    ap.add_argument("--small", action="store_true", help="tiny sizes (to try the script)")
    ap.add_argument("--parts", default=",".join(p for p, _ in PARTS), help="comma-separated subset")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu_record.json"))
    ap.add_argument("--one-part", default=None, help=argparse.SUPPRESS)  # a child process runs one in-process part
    args = ap.parse_args(argv)
    if args.one_part:
        import jax

        device = "gpu" if jax.devices()[0].platform == "gpu" else "cpu"
        res = globals()[f"part_{args.one_part}"](args.budget, args.small, device)
        Path(args.out).write_text(json.dumps(res, default=str) + "\n")
        return 0
    t_start = time.perf_counter()
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in dict(PARTS)]
    if unknown:
        ap.error(f"--parts: unknown {', '.join(unknown)}; expected some of {', '.join(p for p, _ in PARTS)}")

    import jax

    platform = jax.devices()[0].platform
    has_gpu = platform == "gpu"
    has_torch = importlib.util.find_spec("torch") is not None
    device = "gpu" if has_gpu else "cpu"
    record = {"bench": "gpu_record", "date": time.strftime("%Y-%m-%d"), "machine": machine_summary(),
              "devices": [str(d) for d in jax.devices()], "device_kind": jax.devices()[0].device_kind,
              "jax": jax.__version__, "budget_seconds": args.budget, "small": args.small,
              "command": "python bench/gpu_record.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "parts": {}}
    say(f"devices: {record['devices']}; torch: {'yes' if has_torch else 'no'}; budget {args.budget:.0f} s")
    needs_torch = {"gcn", "train_steps", "supernet", "darts_epoch", "bf16"}  # the bench modules import torch
    for name, share in PARTS:
        if name not in wanted:
            continue
        left = args.budget - (time.perf_counter() - t_start)
        if not has_gpu and not args.allow_cpu:
            why = f"no GPU on this machine (jax platform {platform}); --allow-cpu runs it anyway"
        elif name in needs_torch and not has_torch:
            why = "PyTorch is not installed (pip install -e '.[bench]')"
        elif left < 20:
            why = f"out of time ({left:.0f} s of the budget left)"
        else:
            why = None
        if why:
            say(f"{name}: skipped: {why}")
            record["parts"][name] = {"status": "skipped", "why": why}
            continue
        limit = max(15.0, share * left)
        say(f"{name}: running (up to {limit:.0f} s) ...")
        t0 = time.perf_counter()
        if name in IN_PROCESS:  # in a child too, so that its time limit holds
            res = child(["gpu_record.py", "--one-part", name, "--budget", str(limit),
                         *(["--small"] if args.small else [])], limit)
            if res["status"] == "ok":
                res = {**res.pop("record"), "output_tail": res.get("output_tail")}
        else:
            res = globals()[f"part_{name}"](limit, args.small, device)
        res["seconds"] = time.perf_counter() - t0
        record["parts"][name] = res
        say(f"{name}: {res['status']} in {res['seconds']:.0f} s")
    record["wall_seconds"] = time.perf_counter() - t_start
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2, default=str) + "\n")
    say(f"wrote {args.out} ({record['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
