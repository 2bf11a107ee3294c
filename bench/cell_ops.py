"""Benchmark: forward + backward time of each DARTS supernet op, jnas against PyTorch, one thread each.

Each candidate op of a DARTS search cell (``jnas.models.ops.DARTS_OPS``,
BatchNorm after the pools as in the search cell, affine-free BatchNorm) at
one activation shape, jnas (jitted gradient of ``sum(op(x)**2)`` with respect
to the op's parameters and ``x``) against the same op in eager PyTorch
(``bench/torch_supernet.py``'s ``darts_candidate``); then the 1×1 convolution of those ops
as ``nnx.Conv`` and as ``ops.PointwiseConv``, alone and with 4 stacked
kernels under ``vmap`` (as ``jnas.models.supernet.run_edges`` runs the
out-edges of a state). Median of ``--repeats`` calls after one warm-up.

    python bench/cell_ops.py [--shape 64,32,32,16] [--repeats 5] [--out bench/results/cell_ops.json]

XLA:CPU and PyTorch each get one thread (set before jax starts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402
import torch_supernet as tsn  # noqa: E402

from jnas.models import ops  # noqa: E402
from jnas.models.supernet import DartsSearchCell  # noqa: E402
from jnas.spaces import darts as darts_space  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def jnas_ms(make, x, repeats: int, stacked: int = 0) -> float:
    """Forward + backward of ``make()`` on ``x``; ``stacked > 0``: that many copies vmapped over their parameters."""
    mods = [make() for _ in range(max(stacked, 1))]
    graphdef, _ = nnx.split(mods[0])
    states = [nnx.split(m)[1] for m in mods]
    if stacked:
        state = jax.tree.map(lambda *a: jnp.stack(a), *states)

        def loss(st, x):
            return jnp.sum(jax.vmap(lambda s: nnx.merge(graphdef, s)(x))(st) ** 2)
    else:
        state = states[0]

        def loss(st, x):
            return jnp.sum(nnx.merge(graphdef, st)(x) ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return median_ms(lambda: jax.block_until_ready(grad(state, x)), repeats)


def torch_ms(module, x, repeats: int) -> float:
    def step():
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).pow(2).sum().backward()

    return median_ms(step, repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="64,32,32,16", help="B,H,W,C of the input")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "cell_ops.json"))
    args = ap.parse_args()
    try:
        b, h, w, c = (int(v) for v in args.shape.split(","))
    except ValueError:
        raise SystemExit(f"--shape: got {args.shape!r}, expected four integers B,H,W,C") from None
    if args.repeats < 1:
        raise SystemExit(f"--repeats: got {args.repeats}, expected an integer >= 1")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    xn = rng.standard_normal((b, h, w, c)).astype(np.float32)
    x = jnp.asarray(xn)
    xt = torch.from_numpy(np.ascontiguousarray(xn.transpose(0, 3, 1, 2))).requires_grad_(True)
    print(f"machine: {machine.summary()}; input {b}x{h}x{w}x{c}, one thread per framework, forward + backward, "
          f"median of {args.repeats}")
    rows = []
    for name in darts_space.OPS:
        if name == "none":
            continue
        ours = jnas_ms(lambda name=name: DartsSearchCell._candidate(name, c, 1, nnx.Rngs(0)), x, args.repeats)
        theirs = torch_ms(tsn.darts_candidate(name, c, 1), xt, args.repeats)
        rows.append({"op": name, "jnas_ms": ours, "torch_ms": theirs})
        print(f"  {name:14} jnas {ours:8.2f} ms  PyTorch {theirs:8.2f} ms  PyTorch/jnas {theirs / ours:5.2f}x",
              flush=True)
    pointwise = {}
    for stacked in (0, 4):
        for label, make in (("nnx.Conv 1x1", lambda: ops.conv(c, c, 1, 1, 0, rngs=nnx.Rngs(0))),
                            ("PointwiseConv", lambda: ops.PointwiseConv(c, c, rngs=nnx.Rngs(0)))):
            pointwise[f"{label}, {'alone' if not stacked else f'{stacked} stacked (vmap)'}"] = v = jnas_ms(
                make, x, args.repeats, stacked)
            print(f"  {label:14} {'alone' if not stacked else f'x{stacked} vmap':>8}: {v:8.2f} ms", flush=True)
    record = {"command": " ".join(["python", "bench/cell_ops.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
              "machine": machine.summary(), "shape": [b, h, w, c], "repeats": args.repeats, "ops": rows,
              "pointwise_ms": pointwise}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
