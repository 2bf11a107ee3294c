"""Benchmark: GCN bulk scoring (graphs/s) of jnas against a PyTorch module that computes the same function.

Workload: ``--n`` (100,000) random NAS-Bench-101 cells (``NB101.sample``, uniform
over valid raw cells), encoded as jnas's GCN reads them (``graph_tensors``: the
pruned cell, 7 nodes, 5 one-hot node labels, padded nodes masked out; ~4.2
real nodes per graph), scored by ``jnas.predictors.GCN`` with the paper's
network (3 graph convolutions x 256 features, mean pool, linear output) at a
random He initialisation (scoring cost does not depend on the weights).

jnas runs its public paths: ``score_in_chunks(gcn.predict, params, graphs,
chunk=4096)`` as ``pbnas`` scores candidates, and ``gcn.predict`` on all graphs
at once. Each is timed on its first call (compilation included) and then in
steady state. PyTorch runs ``TorchGCN`` (below): the same network written the
usual PyTorch way (normalised adjacency built once per forward, ``bmm`` per
layer), under ``torch.inference_mode`` with ``--threads`` intra-op threads,
over chunks of each size in ``--torch-chunks``; its best chunk size is the
reference. Two more PyTorch variants take jnas's algebra, so that the ratio
can be split into algebra and framework: the first layer reordered
(``(Ã X) W`` rather than ``Ã (X W)``), and that plus jnas's label-count table
for the second layer's first product (``bulk_scores``; table built once per
pass over all graphs). Before timing, jnas's weights are copied into all
three modules and their outputs asserted equal to jnas's (max |diff| <= 1e-4
on 2,000 graphs).

Steady state is the median (and best) of ``--reps`` timed passes over all
graphs; jnas and PyTorch passes alternate (order flipped every round), so a
change in machine load hits both. Prints a table "workload | jnas | pytorch |
ratio" and writes ``bench/results/gcn_scoring.json``. PyTorch is needed only
here (it is not a jnas dependency).

    python bench/gcn_scoring.py [--n 100000] [--reps 7] [--torch-chunks 256,1024,4096] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np
import torch
from machine import cpu_model
from torch import nn

from jnas.encodings.graph import graph_tensors
from jnas.predictors import GCN, score_in_chunks
from jnas.spaces import get_space

CHUNK = 4096  # pbnas's scoring chunk (jnas.strategies.pbnas._CHUNK)
AGREE_N, AGREE_TOL = 2000, 1e-4


# ----- workload ------------------------------------------------------------------------------
def nb101_graphs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A float32[n, 7, 7], X float32[n, 7, 5], mask bool[n, 7])`` of ``n`` random NB101 cells."""
    space = get_space("nb101")
    archs = jax.jit(jax.vmap(space.sample))(jax.random.split(jax.random.key(seed), n))
    graphs = jax.jit(jax.vmap(lambda a: graph_tensors(space, a)))(archs)
    return tuple(np.asarray(t) for t in graphs)


# ----- the PyTorch reference -----------------------------------------------------------------
class TorchGCN(nn.Module):
    """jnas's GCN (``jnas.predictors.gcn``) in PyTorch, weights copied from a jnas ``params`` dict.

    ``forward(A float[n, v, v], X float[n, v, f], mask bool[n, v]) -> float[n]``: the
    predicted mean, ``raw * scale[1] + scale[0]``. ``variant``: ``"plain"``, the
    usual PyTorch GCN; ``"reorder"`` multiplies by the adjacency before the
    weights where that is cheaper (``d_in < d_out``); ``"table"`` also takes
    jnas's label-count table (``jnas.predictors.gcn.bulk_scores``), built once
    per scoring pass (``count_table``) and looked up by a mixed-radix key.
    """

    def __init__(self, params: dict, variant: str = "plain", v: int = 7):
        super().__init__()

        def tensor(x):
            return torch.from_numpy(np.array(x, np.float32))

        self.gc = nn.ParameterList([nn.Parameter(tensor(w), requires_grad=False) for w in params["gc"]])
        self.out_w = nn.Parameter(tensor(params["out_w"]), requires_grad=False)
        self.out_b = nn.Parameter(tensor(params["out_b"]), requires_grad=False)
        self.scale = nn.Parameter(tensor(params["scale"]), requires_grad=False)
        self.variant = variant
        if variant == "table":  # every label-count vector (sum <= v) and its row, by key sum_k c_k (v + 1)^k
            f = self.gc[0].shape[0]
            counts = [c for c in itertools.product(range(v + 1), repeat=f) if sum(c) <= v]
            self.counts = torch.tensor(counts, dtype=torch.float32)
            self.radix = (v + 1) ** torch.arange(f)
            self.row = torch.full(((v + 1) ** f,), -1, dtype=torch.long)
            self.row[(self.counts.long() * self.radix).sum(-1)] = torch.arange(len(counts))

    def count_table(self) -> torch.Tensor:
        """``relu(counts W_1) W_2``: the second layer's ``h W_2`` of a node, by label counts (before D̃^{-1/2})."""
        return torch.relu(self.counts @ self.gc[0]) @ self.gc[1]

    def forward(self, A, X, mask, table=None) -> torch.Tensor:
        m = mask.to(A.dtype)
        v = A.shape[-1]
        a = (A + torch.eye(v, dtype=A.dtype)) * m[:, :, None] * m[:, None, :]
        deg = a.sum(-1, keepdim=True)
        r = torch.where(deg > 0, deg.clamp(min=1.0).rsqrt(), torch.zeros_like(deg))
        layers = list(self.gc)
        if table is not None:
            c = torch.bmm(a, X)
            ci = c.round()
            if bool(((c == ci) & (ci >= 0)).all() and (ci.sum(-1) <= v).all()):
                rows = self.row[(ci.long() * self.radix).sum(-1)]
                h = torch.relu(torch.bmm(a * r, r * table[rows]))
                layers = layers[2:]
            else:
                table = None
        a = a * r
        if table is None:
            h = X * m[:, :, None]
        for w in layers:
            if self.variant != "plain" and w.shape[0] < w.shape[1]:
                h = torch.relu(torch.bmm(a, h) @ w)
            else:
                h = torch.relu(torch.bmm(a, h @ w))
        pooled = (h * m[:, :, None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1.0)
        return (pooled @ self.out_w + self.out_b) * self.scale[1] + self.scale[0]


def torch_scores(model: TorchGCN, graphs, chunk: int) -> torch.Tensor:
    """``model`` over ``graphs`` (torch tensors) in chunks of ``chunk`` graphs: ``float[n]``."""
    A, X, m = graphs
    with torch.inference_mode():
        table = model.count_table() if model.variant == "table" else None
        return torch.cat([model(A[i : i + chunk], X[i : i + chunk], m[i : i + chunk], table)
                          for i in range(0, len(A), chunk)])


# ----- timing --------------------------------------------------------------------------------
def seconds(fn) -> float:
    """Wall seconds of ``fn()``, waiting for jax's asynchronous results."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def summary(n: int, times: list[float]) -> dict:
    """Graphs/s of ``n`` graphs per pass: median and best over the passes ``times`` (s)."""
    rates = [n / t for t in times]
    return {"median_graphs_per_s": float(np.median(rates)), "best_graphs_per_s": float(np.max(rates)),
            "seconds": times}


def machine_info(threads: int) -> dict:
    return {"platform": platform.platform(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "jax_devices": [str(d) for d in jax.devices()], "torch_threads": threads,
            "versions": {"python": platform.python_version(), "jax": jax.__version__, "numpy": np.__version__,
                         "torch": torch.__version__}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--torch-chunks", default="256,1024,4096")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "gcn_scoring.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    t0 = time.perf_counter()
    graphs = nb101_graphs(args.n, args.seed)
    build_s = time.perf_counter() - t0
    jgraphs = jax.device_put(graphs)  # both frameworks start from arrays they own
    gcn = GCN(hidden=256, layers=3)
    params = gcn.init(jax.random.key(args.seed + 1), graphs[1].shape[-1])
    tgraphs = tuple(torch.from_numpy(np.array(g)) for g in graphs)
    torch_models = {"pytorch": TorchGCN(params), "pytorch + layer-1 reorder": TorchGCN(params, "reorder"),
                    "pytorch + reorder + count table": TorchGCN(params, "table")}

    # the same function: jnas's predictions against both modules on a subset
    sub = tuple(g[:AGREE_N] for g in graphs)
    want = np.asarray(gcn.predict(params, sub)[0])
    agreement = {}
    for name, model in torch_models.items():
        got = torch_scores(model, tuple(t[:AGREE_N] for t in tgraphs), 1024).numpy()
        agreement[name] = float(np.max(np.abs(got - want)))
        assert agreement[name] <= AGREE_TOL, f"{name} differs from jnas by {agreement[name]:.2e}"

    jnas_paths = {
        f"score_in_chunks(chunk={CHUNK})": lambda: score_in_chunks(gcn.predict, params, jgraphs, chunk=CHUNK)[0],
        "predict (all at once)": lambda: gcn.predict(params, jgraphs)[0],
    }
    first_call = {name: seconds(fn) for name, fn in jnas_paths.items()}
    chunks = [int(c) for c in args.torch_chunks.split(",")]
    torch_paths = {(name, c): (lambda m=model, c=c: torch_scores(m, tgraphs, c))
                   for name, model in torch_models.items() for c in chunks}
    for fn in torch_paths.values():  # warm-up: thread pools, allocator
        fn()

    everything = list(jnas_paths.items()) + list(torch_paths.items())
    times = {name: [] for name, _ in everything}
    for r in range(args.reps):
        for name, fn in everything if r % 2 == 0 else everything[::-1]:
            times[name].append(seconds(fn))
    jnas = {name: summary(args.n, times[name]) | {"first_call_s": first_call[name]} for name in jnas_paths}
    torch_runs = {f"{name} @ chunk {c}": summary(args.n, times[(name, c)]) for name, c in torch_paths}

    def best_chunk(name):
        c = max(chunks, key=lambda c: torch_runs[f"{name} @ chunk {c}"]["median_graphs_per_s"])
        return c, torch_runs[f"{name} @ chunk {c}"]["median_graphs_per_s"]

    rows = []
    for jname, jrun in jnas.items():
        for tname in torch_models:
            c, trate = best_chunk(tname)
            jrate = jrun["median_graphs_per_s"]
            rows.append({"workload": f"{jname} vs {tname} (chunk {c})", "jnas_graphs_per_s": jrate,
                         "pytorch_graphs_per_s": trate, "ratio": jrate / trate})

    print(f"{args.n} NB101 graphs (mean {graphs[2].sum(1).mean():.2f} real nodes of 7), GCN 3 x 256, "
          f"{os.cpu_count()} cores, median of {args.reps}; graphs/s")
    width = max(len(r["workload"]) for r in rows)
    print(f"{'workload':{width}} | {'jnas':>9} | {'pytorch':>9} | ratio")
    for r in rows:
        print(f"{r['workload']:{width}} | {r['jnas_graphs_per_s']:9.0f} | {r['pytorch_graphs_per_s']:9.0f} | "
              f"{r['ratio']:.2f}x")
    for name, run in jnas.items():
        steady = args.n / run["median_graphs_per_s"]
        print(f"jnas {name}: first call {run['first_call_s']:.2f} s (steady {steady:.2f} s, "
              f"so ~{run['first_call_s'] - steady:.2f} s compile)")
    for name, run in torch_runs.items():
        print(f"{name}: {run['median_graphs_per_s']:.0f} graphs/s (best {run['best_graphs_per_s']:.0f})")

    record = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python bench/gcn_scoring.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "machine": machine_info(args.threads),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "workload": {"graphs": args.n, "space": "nb101", "nodes": int(graphs[0].shape[1]),
                     "features": int(graphs[1].shape[2]), "mean_real_nodes": float(graphs[2].sum(1).mean()),
                     "hidden": gcn.hidden, "layers": gcn.layers, "build_s": build_s},
        "agreement_max_abs_diff": agreement,
        "jnas": jnas,
        "pytorch": torch_runs,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
