"""Memory range of networks sampled from HNAG, RNAG and DARTS (NAGO, Appendix F).

NAGO (Ru et al., NeurIPS 2020, Appendix F / Figure 7) draws 300 architectures
from each of HNAG, RNAG and the DARTS space and compares their "memory
consumption per image"; its claim is qualitative: HNAG's range is much wider
than those of RNAG and DARTS (the figure's numbers are not in the text).

What is measured here, per sampled network (32x32x3 images, 10 classes):

* memory = ``jnas.models.cost.activation_bytes_per_image``: the bytes of
  every array an unfused inference pass of one image computes from the
  image (input excluded, logits included). It is exact and reproducible, and
  proportional to the activation memory a training step must keep; it is
  not the peak memory of a compiled program on a GPU, which is what the
  paper's per-image figure most likely reports (so compare ranges and
  ratios, not absolute values).
* params = ``jnas.models.cost.count_params``.

Samples: HNAG / RNAG: a generator hyperparameter vector drawn uniformly from
the space (``NAGO`` / ``RNAG``), then one network from it; channels are
scaled to the 4M-parameter limit as in NAGO. DARTS: a uniform genotype of
``jnas.spaces.darts.DARTS`` (recorded as its flattened ``int8[2, 8, 2]``
array) in its CIFAR evaluation network (36 channels, 20 cells, as in DARTS;
1.8M to 4.2M parameters). "ops" counts operations (DARTS: edges).

Speed. Building and tracing 900 networks one by one takes about an hour on
a small CPU, so both quantities are computed from components traced once and
cached (exact, not approximations):

* HNAG / RNAG: ``jnas.models.nago.count_params_at`` and ``activation_bytes``
  (sums over the network's components, tested equal to the full trace);
* DARTS: the network is a fixed skeleton plus one op per edge, so
  ``value(network) = K + sum over edges of value(op, channels, stride,
  resolution)``; ``K`` comes from one fully built and traced network.

Both are checked here against full builds and traces of a few sampled
networks (``--check``); the run stops if any differs.

Usage: ``python experiments/nago_memory.py [--samples 300] [--seed 0] [--check 2]``
Writes ``experiments/results/nago_memory.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jnas.models import darts as darts_net
from jnas.models import nago as nago_net
from jnas.models.cost import activation_bytes_per_image, count_params
from jnas.models.ops import DARTS_OPS
from jnas.spaces.darts import DARTS, OPS
from jnas.spaces.nago import NAGO, RNAG, generate

INPUT = (32, 32, 3)
NUM_CLASSES = 10
PARAM_LIMIT = 4e6
DARTS_CHANNELS, DARTS_LAYERS = 36, 20
OUT = Path(__file__).parent / "results" / "nago_memory.json"
MB = 1e6


# ----- HNAG / RNAG ------------------------------------------------------------------------

def generator_samples(space, key, n: int) -> list[dict]:
    """``n`` networks, each from its own uniformly drawn generator vector."""
    k_arch, k_net = jax.random.split(key)
    archs = np.asarray(space.sample_batch(k_arch, n))
    net_keys = jax.random.split(k_net, n)
    out = []
    for arch, kn in zip(archs, net_keys):
        config = space.config(arch)
        graphs = generate(config, kn)
        m, params = nago_net.choose_multiplier(graphs, config.channel_ratio, num_classes=NUM_CLASSES,
                                               param_limit=PARAM_LIMIT, input_shape=INPUT)
        nbytes = nago_net.activation_bytes(graphs, config.channel_ratio, m, num_classes=NUM_CLASSES,
                                           input_shape=INPUT)
        out.append(dict(arch=space.to_string(arch), ops=graphs.num_ops, multiplier=m, params=params,
                        activation_bytes=nbytes, _graphs=graphs, _ratio=config.channel_ratio))
    return out


def check_generator(samples: list[dict], k: int) -> list[dict]:
    """Build the ``k`` smallest sampled networks (abstractly) and trace them in full; compare."""
    rows = []
    for s in sorted(samples, key=lambda s: s["ops"])[:k]:
        channels = [r * s["multiplier"] for r in s["_ratio"]]
        net = nnx.eval_shape(lambda s=s, channels=channels: nago_net.NagoNetwork(
            s["_graphs"], channels, num_classes=NUM_CLASSES, input_shape=INPUT, rngs=nnx.Rngs(0)))
        full = dict(params=count_params(net), activation_bytes=activation_bytes_per_image(net, INPUT))
        rows.append(dict(arch=s["arch"], ops=s["ops"], fast=dict(params=s["params"],
                         activation_bytes=s["activation_bytes"]), full=full))
        if full["params"] != s["params"] or full["activation_bytes"] != s["activation_bytes"]:
            raise SystemExit(f"component sums differ from the full trace: {rows[-1]}")
    return rows


# ----- DARTS --------------------------------------------------------------------------------

def darts_edges(arch) -> list[tuple[str, int, int, int]]:
    """``(op, channels, stride, input resolution)`` of every edge of the DARTS evaluation network."""
    genes = np.asarray(arch)
    reductions = (DARTS_LAYERS // 3, 2 * DARTS_LAYERS // 3)
    c, res, out = DARTS_CHANNELS, INPUT[0], []
    for i in range(DARTS_LAYERS):
        reduction = i in reductions
        if reduction:
            c *= 2
        for inp, op in genes[1 if reduction else 0]:
            stride = 2 if reduction and inp < 2 else 1
            # stride-2 edges read the cell inputs at the previous resolution; the others the cell's own
            edge_res = res if stride == 2 or not reduction else (res + 1) // 2
            out.append((OPS[int(op)], c, stride, edge_res))
        if reduction:
            res = (res + 1) // 2
    return out


@functools.lru_cache(maxsize=None)
def darts_edge_cost(op: str, c: int, stride: int, res: int) -> tuple[int, int]:
    """(params, activation bytes) of one DARTS edge op applied to a ``res x res x c`` input."""
    module = nnx.eval_shape(lambda: DARTS_OPS[op](c, stride, nnx.Rngs(0)))
    return count_params(module), activation_bytes_per_image(module, (res, res, c))


def darts_full(arch) -> dict:
    net = darts_net.build(arch, num_classes=NUM_CLASSES, rngs=nnx.Rngs(0), channels=DARTS_CHANNELS,
                          layers=DARTS_LAYERS)
    return dict(params=count_params(net), activation_bytes=activation_bytes_per_image(net, INPUT))


def darts_samples(key, n: int, k_check: int) -> tuple[list[dict], list[dict]]:
    archs = np.asarray(DARTS.sample_batch(key, n))

    def edge_sum(arch):
        costs = [darts_edge_cost(*e) for e in darts_edges(arch)]
        return np.sum(costs, axis=0)

    full0 = darts_full(archs[0])
    p0, b0 = edge_sum(archs[0])
    k_params, k_bytes = full0["params"] - int(p0), full0["activation_bytes"] - int(b0)
    out = []
    for arch in archs:
        p, b = edge_sum(arch)
        out.append(dict(arch=np.asarray(arch).reshape(-1).tolist(), ops=len(darts_edges(arch)),
                        params=k_params + int(p), activation_bytes=k_bytes + int(b)))
    checks = []
    for arch, s in zip(archs[1:1 + k_check], out[1:1 + k_check]):
        full = darts_full(arch)
        checks.append(dict(fast=dict(params=s["params"], activation_bytes=s["activation_bytes"]), full=full))
        if full["params"] != s["params"] or full["activation_bytes"] != s["activation_bytes"]:
            raise SystemExit(f"DARTS edge sums differ from the full trace: {checks[-1]}")
    return out, checks


# ----- report ---------------------------------------------------------------------------------

def summary(samples: list[dict]) -> dict:
    mem = np.array([s["activation_bytes"] for s in samples], np.float64) / MB
    par = np.array([s["params"] for s in samples], np.float64) / 1e6
    ops = np.array([s["ops"] for s in samples])
    q = np.percentile(mem, [0, 5, 50, 95, 100])
    return dict(
        n=len(samples),
        activation_mb=dict(zip(("min", "p5", "median", "p95", "max"), (round(float(x), 3) for x in q))),
        activation_max_over_min=round(float(mem.max() / mem.min()), 2),
        activation_p95_over_p5=round(float(q[3] / q[1]), 2),
        params_m=dict(min=round(float(par.min()), 3), median=round(float(np.median(par)), 3),
                      max=round(float(par.max()), 3)),
        ops=dict(min=int(ops.min()), median=float(np.median(ops)), max=int(ops.max())),
    )


def _dumps(record: dict) -> str:
    """JSON with the summary indented and one line per sample."""
    head = json.dumps({k: v for k, v in record.items() if k != "samples"}, indent=1)[:-2]
    groups = [f"  {json.dumps(name)}: [\n" + ",\n".join("   " + json.dumps(s) for s in rows) + "\n  ]"
              for name, rows in record["samples"].items()]
    text = head + ',\n "samples": {\n' + ",\n".join(groups) + "\n }\n}\n"
    assert json.loads(text) == json.loads(json.dumps(record))
    return text


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=300, help="networks per space (NAGO: 300)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", type=int, default=2, help="networks per space also built and traced in full")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    k_h, k_r, k_d = jax.random.split(jax.random.key(args.seed), 3)
    results, checks, timings = {}, {}, {}
    for name, space, key in (("hnag", NAGO, k_h), ("rnag", RNAG, k_r)):
        t = time.perf_counter()
        samples = generator_samples(space, key, args.samples)
        timings[name] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        checks[name] = check_generator(samples, args.check)
        timings[f"{name}_check"] = round(time.perf_counter() - t, 1)
        results[name] = samples
    t = time.perf_counter()
    results["darts"], checks["darts"] = darts_samples(k_d, args.samples, args.check)
    timings["darts"] = round(time.perf_counter() - t, 1)

    table = {name: summary(s) for name, s in results.items()}
    print(f"\nmemory = activation bytes of one inference pass per 32x32 image (MB = 1e6 bytes); "
          f"{args.samples} networks per space; params limit {PARAM_LIMIT / 1e6:g}M for HNAG/RNAG")
    print(f"{'space':6} {'ops min-med-max':>17} {'params M min-max':>17} {'MB min':>8} {'p5':>8} "
          f"{'median':>8} {'p95':>8} {'max':>8} {'max/min':>8}")
    for name, row in table.items():
        a, p, o = row["activation_mb"], row["params_m"], row["ops"]
        print(f"{name:6} {o['min']:>5}-{o['median']:>5.0f}-{o['max']:<5} {p['min']:>8.2f}-{p['max']:<8.2f} "
              f"{a['min']:>8.1f} {a['p5']:>8.1f} {a['median']:>8.1f} {a['p95']:>8.1f} {a['max']:>8.1f} "
              f"{row['activation_max_over_min']:>8.1f}")
    widest = max(table, key=lambda k: table[k]["activation_max_over_min"])
    print("NAGO App. F (Fig. 7, numbers not in the text): HNAG's memory range is much wider than "
          f"RNAG's and DARTS's. Here the widest range (max/min) is {widest}'s.")
    print("timings (s):", timings)

    record = dict(
        experiment="NAGO Appendix F: memory range of sampled networks",
        memory_definition=("jnas.models.cost.activation_bytes_per_image: bytes of all image-dependent arrays of "
                           "one unfused inference pass of one 32x32x3 image (not the peak memory of a compiled "
                           "GPU program, which NAGO's per-image memory most likely is)"),
        reference=("NAGO (Ru et al., NeurIPS 2020), Appendix F / Fig. 7: 300 samples each from HNAG, RNAG "
                   "and DARTS; HNAG's memory range is much wider than RNAG's and DARTS's (qualitative)"),
        settings=dict(samples=args.samples, seed=args.seed, input_shape=INPUT, num_classes=NUM_CLASSES,
                      param_limit=PARAM_LIMIT, darts=dict(channels=DARTS_CHANNELS, layers=DARTS_LAYERS)),
        summary=table,
        widest_range=widest,
        checks_against_full_trace=checks,
        timings_s=timings,
        host=dict(cpus=os.cpu_count(), jax=jax.__version__, backend=jax.default_backend()),
        samples={name: [{k: v for k, v in s.items() if not k.startswith("_")} for s in rows]
                 for name, rows in results.items()},
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_dumps(record))
    print(f"wrote {args.out}")
    return record


if __name__ == "__main__":
    main()
