"""Benchmark: where a DARTS supernet search step's compile time goes, and what the cell's formulation costs.

Times one first-order DARTS search step (``jnas.train.oneshot.make_search_step``
built as ``search_supernet`` builds it; batch 64 per half, 32×32 inputs,
16 channels) of DARTS supernets with ``--layers`` cells, in three phases:
tracing (``jit(...).trace``), lowering to StableHLO (``.lower``) and XLA's
compilation (``.compile``); then the size of the lowered program (StableHLO
operations), the buffer memory XLA assigned to the step's temporaries
(``memory_analysis().temp_size_in_bytes``) and ``--steps`` steady steps. Each configuration runs in its own
process (a fresh compile, its own memory). Variants of the same network:

* ``batched``: jnas's cell: the edges that read one state run as one vmapped
  call (``jnas.models.supernet.run_edges``);
* ``per-edge``: the 14 edges of a cell called one by one (``batch_edges=False``);
* ``grouped``: per edge, with XLA's grouped convolution for the depthwise
  convolutions instead of the fused slices (``DepthwiseConv.shifts=False``);
* ``batched-grouped``: batched edges and grouped convolutions.

    python bench/supernet_compile.py [--layers 1,2] [--variants batched,per-edge,grouped,batched-grouped] [--steps 2]
        [--batch 64] [--threads 1] [--out bench/results/supernet_compile.json]

Prints one line per configuration and writes the record. ``--threads 1``
gives XLA:CPU one thread for running (its compiler still uses its own
threads), as ``bench/supernet.py --threads 1`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("batched", "per-edge", "grouped", "batched-grouped")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
BATCH = 64
CHANNELS = 16


def measure(layers: int, variant: str, steps: int, batch: int = BATCH) -> dict:
    """Trace, lower and compile one search step of a ``layers``-cell supernet in ``variant`` at ``batch`` per half;
    time ``steps`` steps (0: compile only)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from jnas.models.supernet import DartsSupernet
    from jnas.train.oneshot import _graphdef, make_search_step, search_config, split_supernet
    from jnas.train.oneshot_methods import make_method
    from jnas.train.optim import make_optimizer, make_schedule

    method = make_method("darts", "darts")
    config = search_config(50, overrides={"batch_size": batch})
    k_model, k_arch, key = jax.random.split(jax.random.key(0), 3)
    model = DartsSupernet(method.init_arch(k_arch), num_classes=10, rngs=nnx.Rngs(k_model), channels=CHANNELS,
                          layers=layers, batch_edges=variant.startswith("batched"))
    if variant.endswith("grouped"):
        model.set_attributes(shifts=False, raise_if_not_found=True)
    spe = 25_000 // batch
    w_opt, a_opt = make_optimizer(config, spe), method.arch_optimizer()
    step = make_search_step(_graphdef(model, train=True, bf16=False), method, w_opt, a_opt, config,
                            make_schedule(config, spe), mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
    _, state = split_supernet(model)
    rng = np.random.default_rng(0)
    x = [rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8) for _ in range(2)]
    y = [rng.integers(0, 10, batch).astype(np.int32) for _ in range(2)]
    args = (state, w_opt.init(state.params), a_opt.init(state.arch), x[0], y[0], x[1], y[1], key, jnp.int32(0),
            jnp.float32(0.0))
    t0 = time.perf_counter()
    traced = step.trace(*args)
    t1 = time.perf_counter()
    lowered = traced.lower()
    t2 = time.perf_counter()
    compiled = lowered.compile()
    t3 = time.perf_counter()
    hlo_ops = len(re.findall(r"= stablehlo\.", lowered.as_text()))
    mem = compiled.memory_analysis()
    temp_gb = None if mem is None else mem.temp_size_in_bytes / 1e9
    times = []
    if steps:
        jax.block_until_ready(compiled(*args))  # warm-up
    for _ in range(steps):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t)
    return {"layers": layers, "variant": variant, "trace_s": t1 - t0, "lower_s": t2 - t1, "compile_s": t3 - t2,
            "stablehlo_ops": hlo_ops, "temp_gb": temp_gb, "batch": batch,
            "step_s": sorted(times)[len(times) // 2] if times else None, "step_s_all": times}


def child(layers: int, variant: str, steps: int, threads: int, batch: int = BATCH) -> dict:
    """:func:`measure` in a fresh process (fresh compilation caches and memory; XLA's threads set at start)."""
    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {XLA_ONE_THREAD}".strip()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
                f"import supernet_compile as b; "
                f"open({str(out)!r}, 'w').write(json.dumps(b.measure({layers}, {variant!r}, {steps}, {batch})))")
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return json.loads(out.read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="1,2", help="comma-separated cell counts of the DARTS supernet")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=2,
                    help="timed steps after compiling (median reported); 0: compile only")
    ap.add_argument("--batch", type=int, default=BATCH, help="images per half (weight and architecture batch)")
    ap.add_argument("--threads", type=int, choices=(1, os.cpu_count()), default=1,
                    help="XLA:CPU threads for running the step: 1 or all cores")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "supernet_compile.json"))
    args = ap.parse_args()
    try:
        layers = [int(v) for v in args.layers.split(",")]
    except ValueError:
        raise SystemExit(f"--layers: got {args.layers!r}, expected comma-separated integers >= 1") from None
    if not layers or min(layers) < 1:
        raise SystemExit(f"--layers: got {args.layers!r}, expected comma-separated integers >= 1")
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"--variants: got {v!r}, expected a comma-separated subset of {','.join(VARIANTS)}")
    if args.steps < 0:
        raise SystemExit(f"--steps: got {args.steps}, expected an integer >= 0 (0: compile only)")
    if args.batch < 1:
        raise SystemExit(f"--batch: got {args.batch}, expected an integer >= 1")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import machine

    print(f"machine: {machine.summary()}; one first-order DARTS search step, {CHANNELS} channels, batch {args.batch}, "
          f"XLA:CPU threads {args.threads}; load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'cells':>5} {'variant':>9} {'trace s':>8} {'lower s':>8} {'compile s':>10} {'StableHLO ops':>14} "
          f"{'temp GB':>8} {'step s':>8}", flush=True)
    results = []
    for n in layers:
        for v in variants:
            r = child(n, v, args.steps, args.threads, args.batch)
            results.append(r)
            print(f"{n:5d} {v:>9} {r['trace_s']:8.1f} {r['lower_s']:8.1f} {r['compile_s']:10.1f} "
                  f"{r['stablehlo_ops']:14,d} {r['temp_gb'] or float('nan'):8.2f} "
                  f"{r['step_s'] or float('nan'):8.2f}", flush=True)
    record = {"command": " ".join(["python", "bench/supernet_compile.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": machine.summary(), "threads": args.threads,
              "channels": CHANNELS, "batch": args.batch, "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
