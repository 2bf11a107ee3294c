"""Benchmark: depthwise convolutions under XLA:CPU, two formulations, against PyTorch's.

The DARTS cells are mostly depthwise-separable and dilated convolutions, and
the jnas DARTS network trained at about 0.23x eager PyTorch on one CPU
thread. This times one depthwise k×k convolution (forward, and forward +
backward of a linear loss, i.e. both gradients) at the shapes of the DARTS
search and evaluation networks:

- ``grouped``: ``lax.conv_general_dilated(..., feature_group_count=C)``, what
  ``nnx.Conv(groups=C)`` runs;
- ``shifts``: ``jnas.models.ops.depthwise_conv(shifts=True)``, the sum of k*k
  strided slices of the padded input scaled per channel (jnas's CPU default);
- PyTorch: ``F.conv2d(groups=C)`` (NCHW, oneDNN), eager.

Before timing, each shape asserts that both jnas formulations give the same
output and gradients. Threads: one for every framework by default
(``--threads 2`` for all cores; XLA fixes its threads at start-up, so this
script sets them before importing jax).

    python bench/depthwise.py [--threads 1] [--batch 64] [--reps 20]

Prints ms per call and the ratio PyTorch / jnas (> 1: jnas faster) and writes
``bench/results/depthwise.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--threads", type=int, default=1, choices=(1, 2), help="threads per framework (1 or all cores)")
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--reps", type=int, default=20, help="timed calls per measurement")
ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "depthwise.json"))
args = ap.parse_args()
if args.threads == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                               "intra_op_parallelism_threads=1").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import machine_info  # noqa: E402

from jnas.models.ops import depthwise_conv  # noqa: E402

#: (H = W, C, kernel, stride, dilation): DARTS's sep/dil convs at 16 channels (search) and 36 (evaluation)
SHAPES = [(32, 16, 3, 1, 1), (32, 16, 5, 1, 1), (32, 16, 3, 1, 2), (32, 16, 5, 1, 2), (32, 32, 3, 2, 1),
          (16, 32, 3, 1, 1), (16, 32, 5, 1, 2), (8, 64, 5, 1, 1), (32, 36, 3, 1, 1), (8, 144, 5, 1, 2)]


def seconds(f, reps: int) -> float:
    jax.block_until_ready(f())
    t0 = time.perf_counter()
    for _ in range(reps):
        r = f()
    jax.block_until_ready(r)
    return (time.perf_counter() - t0) / reps


def bench_shape(h, c, k, s, d, batch, reps, rng) -> dict:
    x = jnp.asarray(rng.standard_normal((batch, h, h, c)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, 1, c)), jnp.float32)
    y0 = depthwise_conv(x, w, s, d, shifts=False)
    r = jnp.asarray(rng.standard_normal(y0.shape), jnp.float32)
    out = {"H": h, "C": c, "kernel": k, "stride": s, "dilation": d, "batch": batch}
    grads = {}
    for name, shifts in (("grouped", False), ("shifts", True)):
        fwd = jax.jit(lambda x, w, shifts=shifts: depthwise_conv(x, w, s, d, shifts=shifts))
        both = jax.jit(jax.grad(lambda x, w, shifts=shifts: jnp.vdot(depthwise_conv(x, w, s, d, shifts=shifts), r),
                                argnums=(0, 1)))
        grads[name] = both(x, w)
        out[f"{name}_fwd_ms"] = 1e3 * seconds(lambda f=fwd: f(x, w), reps)
        out[f"{name}_fwd_bwd_ms"] = 1e3 * seconds(lambda f=both: f(x, w), reps)
    for a, b in zip(grads["shifts"], grads["grouped"]):
        if not np.allclose(a, b, rtol=1e-4, atol=1e-3):
            raise AssertionError(f"{out}: the two formulations' gradients differ")
    if not np.allclose(depthwise_conv(x, w, s, d, shifts=True), y0, rtol=1e-4, atol=1e-4):
        raise AssertionError(f"{out}: the two formulations differ")
    xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    wt = torch.from_numpy(np.asarray(w).transpose(3, 2, 0, 1).copy()).requires_grad_(True)
    rt = torch.from_numpy(np.asarray(r).transpose(0, 3, 1, 2).copy())
    p = d * (k - 1) // 2

    def t_fwd():
        with torch.no_grad():
            return F.conv2d(xt, wt, stride=s, padding=p, dilation=d, groups=c)

    def t_both():
        xt.grad = wt.grad = None
        (F.conv2d(xt, wt, stride=s, padding=p, dilation=d, groups=c) * rt).sum().backward()

    for name, f in (("torch_fwd_ms", t_fwd), ("torch_fwd_bwd_ms", t_both)):
        f()
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        out[name] = 1e3 * (time.perf_counter() - t0) / reps
    return out


def main():
    torch.set_num_threads(args.threads)
    if jax.default_backend() != "cpu":
        raise SystemExit("bench/depthwise.py measures XLA:CPU; run it with JAX_PLATFORMS=cpu")
    info = machine_info("cpu")
    print(f"machine: {info['cpu']}, {info['cores']} cores; jax {jax.__version__}, torch {torch.__version__}; "
          f"threads {args.threads}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rng = np.random.default_rng(0)
    rows = []
    head = (f"{'H':>3} {'C':>4} {'k':>2} {'s':>2} {'d':>2} | {'grouped f/f+b':>15} | {'shifts f/f+b':>13} | "
            f"{'torch f/f+b':>13} | torch/shifts f+b")
    print(head + "\n" + "-" * len(head))
    for shape in SHAPES:
        r = bench_shape(*shape, args.batch, args.reps, rng)
        rows.append(r)
        print(f"{r['H']:3d} {r['C']:4d} {r['kernel']:2d} {r['stride']:2d} {r['dilation']:2d} | "
              f"{r['grouped_fwd_ms']:6.2f} {r['grouped_fwd_bwd_ms']:8.2f} | {r['shifts_fwd_ms']:5.2f} "
              f"{r['shifts_fwd_bwd_ms']:7.2f} | {r['torch_fwd_ms']:5.2f} {r['torch_fwd_bwd_ms']:7.2f} | "
              f"{r['torch_fwd_bwd_ms'] / r['shifts_fwd_bwd_ms']:5.2f}x", flush=True)
    total = {k: sum(r[k] for r in rows) for k in ("grouped_fwd_bwd_ms", "shifts_fwd_bwd_ms", "torch_fwd_bwd_ms")}
    print(f"sum over shapes, forward + backward: grouped {total['grouped_fwd_bwd_ms']:.1f} ms, shifts "
          f"{total['shifts_fwd_bwd_ms']:.1f} ms, PyTorch {total['torch_fwd_bwd_ms']:.1f} ms; PyTorch / shifts "
          f"{total['torch_fwd_bwd_ms'] / total['shifts_fwd_bwd_ms']:.2f}x, PyTorch / grouped "
          f"{total['torch_fwd_bwd_ms'] / total['grouped_fwd_bwd_ms']:.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(["python", "bench/depthwise.py", *sys.argv[1:]]),
                               "date": time.strftime("%Y-%m-%d"), "machine": info, "threads": args.threads,
                               "rows": rows, "sums_ms": total}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
