"""Benchmark: time per one-shot search step of jnas's supernets against a PyTorch DARTS-style supernet.

A *search step* is what ``jnas.train.oneshot.search_supernet`` runs per
step of a DARTS search (``darts``: first order, ``darts2``: second order):
the host gather of a weight-half and an architecture-half batch (``uint8
[B, 32, 32, 3]`` and labels, B = 64 by default), their copy to the device,
augmentation of both (crop after 4 pixels of zero padding, horizontal flip),
the architecture step (Adam 3e-4, betas (0.5, 0.999), weight decay 1e-3, on
the architecture batch's loss; second order: DARTS's unrolled gradient with
the finite-difference Hessian-vector product), the weight step with the new
architecture (clip at global norm 5, SGD momentum 0.9, weight decay 3e-4,
per-step cosine learning rate) and the accumulation of the step's metrics.
jnas runs ``jnas.train.oneshot.make_search_step`` built as ``search_supernet``
builds it (one jitted call per step, batches ``device_put`` with the batch
sharding, no per-step sync); PyTorch runs the eager ``TorchSearchStep`` of
``bench/torch_supernet.py`` on the twin supernet (same ops, channels, cells,
affine-free BatchNorm inside the cells, same parameter count). Inputs are
random CIFAR-shaped batches, 10 classes (the step's cost does not depend on
their content); the schedules are those of a 50-epoch search on CIFAR-10
(390 steps per epoch at batch 64).

Configurations: the NB201 supernet (16 channels, 5 cells per stage) and the
DARTS supernet (16 channels, 8 cells), each at first and second order. The two
frameworks alternate in ``--rounds`` blocks of timed steps per configuration,
so a change in machine load hits both. Before timing, each supernet's
parameter count is asserted equal between the two; a check at reduced size
(jnas weights copied into PyTorch, augmentation off) asserts equal logits for
the same edge weights, equal architecture gradients (each order timed) and
equal weights and architecture after one full search step.

    python bench/supernet.py [--device cpu|gpu] [--spaces nb201,darts] [--orders 1,2] [--steps N]
        [--rounds R] [--batch 64] [--threads 2,1] [--no-check] [--jnas-variant default|per-edge-grouped]

``--threads`` sets PyTorch's intra-op threads and XLA:CPU's (1 or all
cores; default all cores); a list runs each setting in its own process.
Prints a table (jnas ms/step, PyTorch ms/step, ratio PyTorch/jnas: > 1 means
jnas is faster, jnas compile seconds) and writes ``bench/results/supernet.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_reference as tref  # noqa: E402
import torch_supernet as tsn  # noqa: E402
from train_throughput import machine_info, parse_list, set_threads  # noqa: E402

from jnas.models.cost import count_params  # noqa: E402
from jnas.models.supernet import DartsSupernet, NB201Supernet  # noqa: E402
from jnas.train.oneshot import (  # noqa: E402
    _graphdef,
    arch_gradient,
    arch_value,
    make_loss,
    make_search_step,
    search_config,
    split_supernet,
)
from jnas.train.oneshot_methods import make_method  # noqa: E402
from jnas.train.optim import make_optimizer, make_schedule  # noqa: E402
from jnas.train.sharding import batch_sharding, make_mesh, replicate  # noqa: E402

SUPERNETS = {"nb201": NB201Supernet, "darts": DartsSupernet}
#: the timed supernets (jnas's defaults: DARTS's search network, NB201's skeleton)
OPTIONS = {"nb201": {"channels": 16, "cells_per_stage": 5}, "darts": {"channels": 16, "layers": 8}}
#: the supernets of the equivalence check (the DARTS one keeps both reductions and a cell after each)
SMALL = {"nb201": {"channels": 8, "cells_per_stage": 1}, "darts": {"channels": 4, "layers": 5}}
METHODS = {1: "darts", 2: "darts2"}
#: ``--jnas-variant``: how jnas's supernet is formulated (the results are the same; speed, memory and compile
#: time are not): ``default`` batches the edges that read one state (``run_edges``) and, on the CPU, writes
#: depthwise convolutions as fused slices; ``per-edge-grouped`` calls each edge on its own and uses XLA's
#: grouped convolution (on CPU, about a fifth of the memory for the DARTS supernet: ``bench/supernet_compile.py``)
VARIANTS = {"default": {"options": {}, "grouped": False},
            "per-edge-grouped": {"options": {"batch_edges": False}, "grouped": True}}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
NUM_CLASSES = 10
IMAGE = (32, 32, 3)
EPOCHS = 50  # DARTS's search length: sets the cosine schedule (and so the virtual step size ξ)
HALF = 25_000  # CIFAR-10's training set cut in the weight and the architecture half
POOL = 512  # host images per half, gathered batch by batch as search_supernet gathers them
CPU_STEPS = 4
GPU_STEPS = 50


def torch_device(device: str) -> torch.device:
    return torch.device("cuda" if device == "gpu" else "cpu")


def sync(device: str) -> None:
    if device == "gpu":
        torch.cuda.synchronize()


class HostData:
    """Random ``uint8 [POOL, 32, 32, 3]`` images and labels per half, and each step's row indices.

    ``batch(i)`` -> ``(xt, yt, xv, yv)``: numpy batches of step ``i`` (weight half, architecture half),
    gathered by index as ``search_supernet`` gathers its epoch's batches; labels in ``label_dtype``.
    """

    def __init__(self, batch: int, label_dtype, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.x = [rng.integers(0, 256, (POOL, *IMAGE), dtype=np.uint8) for _ in range(2)]
        self.y = [rng.integers(0, NUM_CLASSES, POOL).astype(label_dtype) for _ in range(2)]
        n = POOL // batch
        self.rows = [rng.permutation(POOL)[: n * batch].reshape(n, batch) for _ in range(2)]

    def batch(self, i: int):
        rw = self.rows[0][i % len(self.rows[0])]
        ra = self.rows[1][i % len(self.rows[1])]
        return self.x[0][rw], self.y[0][rw], self.x[1][ra], self.y[1][ra]


def steps_per_epoch(batch: int) -> int:
    return HALF // batch


def jnas_supernet(space: str, method, options: dict, seed: int = 0):
    """``(model, search key)``: jnas's supernet of ``space`` as ``jnas.runs.supernet`` builds it from ``seed``."""
    k_model, k_arch, k_search = jax.random.split(jax.random.key(seed), 3)
    model = SUPERNETS[space](method.init_arch(k_arch), num_classes=NUM_CLASSES, rngs=nnx.Rngs(k_model), **options)
    return model, k_search


# ----- equivalence check --------------------------------------------------------------------
def normalised(x: np.ndarray) -> np.ndarray:
    """``uint8 [B, H, W, C]`` -> ``float32 [B, H, W, C]`` normalised with the CIFAR-10 statistics."""
    return ((x.astype(np.float32) / 255.0 - np.float32(CIFAR_MEAN)) / np.float32(CIFAR_STD)).astype(np.float32)


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def rel_diff(a, b) -> float:
    """``max |a - b| / max |b|`` (0 when both are 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a).max())


def check_equivalence(space: str, orders: list[int], batch: int = 8) -> dict:
    """Run :func:`_check_equivalence` in full float32 (jnas on its default device, PyTorch on the CPU)."""
    with jax.default_matmul_precision("highest"):
        return _check_equivalence(space, orders, batch)


def _check_equivalence(space: str, orders: list[int], batch: int) -> dict:
    """Assert jnas and PyTorch compute the same supernet and the same search step at reduced size (PyTorch on the CPU).

    jnas's weights go into the PyTorch supernet; the architecture logits are
    set to ``N(0, 1)`` draws so the edge weights are far from uniform;
    augmentation is off. Checks the logits for the same edge weights, the
    architecture gradient of every order in ``orders`` and the weights and
    architecture after one full search step of the highest order. Returns the
    relative differences found.
    """
    options = SMALL[space]
    config = search_config(EPOCHS, overrides={"batch_size": batch, "crop_pad": 0, "flip": False})
    spe = steps_per_epoch(batch)
    rng = np.random.default_rng(1)
    x = [rng.integers(0, 256, (batch, *IMAGE), dtype=np.uint8) for _ in range(2)]
    y = [rng.integers(0, NUM_CLASSES, batch).astype(np.int32) for _ in range(2)]
    xn = [normalised(a) for a in x]
    alpha = rng.standard_normal(tsn.edge_weight_shape(space)).astype(np.float32)
    out = {"options": options, "batch": batch}
    for order in orders:
        method = make_method(METHODS[order], space)
        model, _ = jnas_supernet(space, method, options, seed=1)
        graphdef = _graphdef(model, train=True, bf16=False)
        _, state = split_supernet(model)
        state = state._replace(arch=jax.tree.map(lambda a: jnp.asarray(alpha), state.arch))
        tmodel = tsn.build_supernet(space, num_classes=NUM_CLASSES, **options)
        tref.load_jnas_weights(tmodel, nnx.state(model).flat_state())
        if count_params(model) != tref.count_params(tmodel):
            raise AssertionError(f"{space} (small): parameter counts differ")
        tstep = tsn.TorchSearchStep(tmodel, torch.from_numpy(alpha), config, second_order=order == 2,
                                    mean=CIFAR_MEAN, std=CIFAR_STD, device=torch.device("cpu"),
                                    total_steps=EPOCHS * spe)
        xt, xv = nchw(xn[0]), nchw(xn[1])
        yt, yv = (torch.from_numpy(a).long() for a in y)
        loss = make_loss(graphdef, method)
        key = jax.random.key(0)
        if "logits_rel_diff" not in out:
            _, (logits, _) = jax.jit(loss)(state.params, state.arch, state.rest, xn[1], y[1], key, 0.0)
            tstep._track_stats(False)
            with torch.no_grad():
                _, tlogits = tstep._loss(xv, yv, tstep.alpha)
            tstep._track_stats(True)
            out["logits_rel_diff"] = d = rel_diff(logits, tlogits)
            if d > 1e-4:
                raise AssertionError(f"{space}: supernet logits differ (relative {d:.1e})")
        xi = float(make_schedule(config, spe)(0))
        _, g = jax.jit(arch_gradient, static_argnums=(0, 1))(
            loss, method, state.params, state.arch, state.rest, xn[0], y[0], xn[1], y[1], key, 0.0, xi,
            config.weight_decay)
        _, _, tg = tstep.arch_grad(xt, yt, xv, yv)
        out[f"arch_grad_rel_diff_order{order}"] = d = rel_diff(arch_value(g), tg)
        if d > (1e-4 if order == 1 else 1e-3):
            raise AssertionError(f"{space}: order-{order} architecture gradients differ (relative {d:.1e})")
        if order != max(orders):
            continue
        # one full step from the same state on both sides
        w_opt, a_opt = make_optimizer(config, spe), method.arch_optimizer()
        step = make_search_step(graphdef, method, w_opt, a_opt, config, make_schedule(config, spe),
                                mean=CIFAR_MEAN, std=CIFAR_STD)
        new, _, _, metrics = step(state, w_opt.init(state.params), a_opt.init(state.arch), x[0], y[0], x[1], y[1],
                                  key, jnp.int32(0), jnp.float32(0.0))
        tmetrics = tstep(torch.from_numpy(x[0]), yt, torch.from_numpy(x[1]), yv)
        after = tsn.build_supernet(space, num_classes=NUM_CLASSES, **options)
        tref.load_jnas_weights(after, nnx.state(nnx.merge(graphdef, new.arch, new.params, new.rest)).flat_state())
        theirs = dict(tmodel.named_parameters())
        param_diff = max(float((p - theirs[n]).detach().abs().max()) for n, p in after.named_parameters())
        arch_diff = float(np.abs(np.asarray(arch_value(new.arch)) - tstep.alpha.detach().numpy()).max())
        loss_diff = max(abs(float(metrics[k]) - float(tmetrics[k])) for k in ("train_loss", "val_loss"))
        out.update(step_order=order, params_abs_diff_after_step=param_diff, arch_abs_diff_after_step=arch_diff,
                   loss_abs_diff=loss_diff)
        if param_diff > 1e-5 or arch_diff > 1e-6 or loss_diff > 1e-4:
            raise AssertionError(f"{space}: search steps differ (params {param_diff:.1e}, arch {arch_diff:.1e}, "
                                 f"losses {loss_diff:.1e})")
    return out


# ----- timing -------------------------------------------------------------------------------
class JnasSearch:
    """jnas's search step set up as ``search_supernet`` sets it up; ``run(n)`` times ``n`` steps."""

    def __init__(self, space: str, order: int, batch: int, seed: int = 0, variant: str = "default"):
        method = make_method(METHODS[order], space)
        config = search_config(EPOCHS, overrides={"batch_size": batch})
        model, key = jnas_supernet(space, method, {**OPTIONS[space], **VARIANTS[variant]["options"]}, seed)
        if VARIANTS[variant]["grouped"]:
            model.set_attributes(shifts=False, raise_if_not_found=space == "darts")
        self.params = count_params(model)
        mesh = make_mesh()
        spe = steps_per_epoch(batch)
        schedule = make_schedule(config, spe)
        w_opt = make_optimizer(config, spe)
        a_opt = method.arch_optimizer()
        graphdef = _graphdef(model, train=True, bf16=config.bf16)
        _, state = split_supernet(model)
        self.state = replicate(mesh, jax.tree.map(jnp.copy, state))
        self.w_state = replicate(mesh, w_opt.init(self.state.params))
        self.a_state = replicate(mesh, a_opt.init(self.state.arch))
        self.step = make_search_step(graphdef, method, w_opt, a_opt, config, schedule, mean=CIFAR_MEAN,
                                     std=CIFAR_STD, mesh=mesh)
        self.sharding = batch_sharding(mesh)
        self.keys = jax.block_until_ready(jax.random.split(key, spe))
        self.spe = spe
        self.data = HostData(batch, np.int32)
        self.sums = {"train_loss": 0.0, "train_correct": 0, "val_loss": 0.0, "val_correct": 0}
        self.done = 0

    def run(self, n: int) -> float:
        """Wall seconds of ``n`` steps, dispatched back to back, until their results are ready."""
        t0 = time.perf_counter()
        for _ in range(n):
            i = self.done
            batch = [jax.device_put(a, self.sharding) for a in self.data.batch(i)]
            progress = jnp.float32(0.0)  # epoch / (epochs - 1) in the first epoch
            self.state, self.w_state, self.a_state, m = self.step(
                self.state, self.w_state, self.a_state, *batch, self.keys[i % self.spe], jnp.int32(i), progress)
            self.sums = {k: self.sums[k] + m[k] for k in self.sums}
            self.done += 1
        jax.block_until_ready((self.state, self.w_state, self.a_state, self.sums))
        return time.perf_counter() - t0


class TorchSearch:
    """The PyTorch twin of :class:`JnasSearch` (eager ``torch_supernet.TorchSearchStep``)."""

    def __init__(self, space: str, order: int, batch: int, device: str, seed: int = 0):
        config = search_config(EPOCHS, overrides={"batch_size": batch})
        self.device = device
        self.tdev = torch_device(device)
        torch.manual_seed(seed)
        model = tsn.build_supernet(space, num_classes=NUM_CLASSES, **OPTIONS[space]).to(self.tdev)
        self.params = tref.count_params(model)
        alpha = 1e-3 * torch.randn(tsn.edge_weight_shape(space))
        self.step = tsn.TorchSearchStep(model, alpha, config, second_order=order == 2, mean=CIFAR_MEAN,
                                        std=CIFAR_STD, device=self.tdev, total_steps=EPOCHS * steps_per_epoch(batch))
        self.data = HostData(batch, np.int64)
        self.sums = {"train_loss": 0.0, "train_correct": 0, "val_loss": 0.0, "val_correct": 0}
        self.done = 0

    def run(self, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            xt, yt, xv, yv = (torch.from_numpy(a).to(self.tdev) for a in self.data.batch(self.done))
            m = self.step(xt, yt, xv, yv)
            self.sums = {k: self.sums[k] + m[k] for k in self.sums}
            self.done += 1
        sync(self.device)
        return time.perf_counter() - t0


def bench_config(space: str, order: int, args, steps: int) -> dict:
    """Time jnas and PyTorch on one (supernet, order); returns the record."""
    t0 = time.perf_counter()
    jr = JnasSearch(space, order, args.batch, variant=args.jnas_variant)
    tr = TorchSearch(space, order, args.batch, args.device)
    build_s = time.perf_counter() - t0
    print(f"  {space} {METHODS[order]}: parameters jnas {jr.params:,}, PyTorch {tr.params:,}", flush=True)
    if jr.params != tr.params:
        raise AssertionError(f"{space}: parameter counts differ (jnas {jr.params:,}, PyTorch {tr.params:,})")
    first_jnas = jr.run(1)  # compiles
    first_torch = tr.run(1)
    rounds = max(1, min(args.rounds, steps))
    per_round = [steps // rounds + (r < steps % rounds) for r in range(rounds)]
    t_jnas, t_torch = [], []
    for n in per_round:
        t_jnas.append(jr.run(n))
        t_torch.append(tr.run(n))
    losses = {"jnas": float(jr.sums["train_loss"]) / jr.done, "PyTorch": float(tr.sums["train_loss"]) / tr.done}
    for name, value in losses.items():
        if not np.isfinite(value):
            raise AssertionError(f"{space} {METHODS[order]}: {name} loss is not finite")
    step_jnas, step_torch = sum(t_jnas) / steps, sum(t_torch) / steps
    return {
        "space": space,
        "method": METHODS[order],
        "order": order,
        "options": OPTIONS[space],
        "jnas_variant": args.jnas_variant,
        "batch": args.batch,
        "params": jr.params,
        "steps": steps,
        "rounds_steps": per_round,
        "jnas_round_seconds": t_jnas,
        "torch_round_seconds": t_torch,
        "jnas_ms_per_step": 1e3 * step_jnas,
        "torch_ms_per_step": 1e3 * step_torch,
        "ratio_torch_over_jnas": step_torch / step_jnas,
        "jnas_first_call_s": first_jnas,
        "jnas_compile_s": max(first_jnas - step_jnas, 0.0),
        "torch_first_step_s": first_torch,
        "build_s": build_s,
        "mean_train_loss_jnas": losses["jnas"],
        "mean_train_loss_torch": losses["PyTorch"],
    }


def run_benchmark(args, threads: int) -> dict:
    """Check, then time every (space, order) with ``threads`` CPU threads per framework; returns the run record."""
    set_threads(args.device, threads)
    if args.device == "gpu":
        if jax.default_backend() != "gpu" or not torch.cuda.is_available():
            raise SystemExit(f"--device gpu needs a GPU for both: jax backend {jax.default_backend()!r}, "
                             f"torch.cuda.is_available() = {torch.cuda.is_available()}")
        torch.backends.cudnn.benchmark = True
    elif jax.default_backend() != "cpu":
        jax.config.update("jax_platforms", "cpu")
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    info = machine_info(args.device)
    print(f"machine: {info['cpu']}, {info['cores']} cores, jax {jax.__version__} on {info['jax_devices'][0]}, "
          f"torch {torch.__version__}; threads per framework: {threads}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}", flush=True)

    checks = {}
    if not args.no_check:
        for space in args.space_list:
            t0 = time.perf_counter()
            checks[space] = c = check_equivalence(space, args.order_list)
            grads = ", ".join(f"order {o} {c[f'arch_grad_rel_diff_order{o}']:.1e}" for o in args.order_list)
            print(f"check {space} {c['options']} batch {c['batch']}: same logits (rel. diff "
                  f"{c['logits_rel_diff']:.1e}), arch gradients (rel. diff {grads}), one {METHODS[c['step_order']]} "
                  f"step (params diff {c['params_abs_diff_after_step']:.1e}, arch diff "
                  f"{c['arch_abs_diff_after_step']:.1e}) [{time.perf_counter() - t0:.0f} s]", flush=True)

    steps = args.steps or (CPU_STEPS if args.device == "cpu" else GPU_STEPS)
    records = []
    for space in args.space_list:
        for order in args.order_list:
            records.append(r := bench_config(space, order, args, steps))
            print(f"  {space} {METHODS[order]}: jnas {r['jnas_ms_per_step']:.0f} ms/step, PyTorch "
                  f"{r['torch_ms_per_step']:.0f} ms/step, ratio {r['ratio_torch_over_jnas']:.2f}x, jnas compile "
                  f"{r['jnas_compile_s']:.0f} s", flush=True)
            if args.device == "gpu":
                torch.cuda.empty_cache()
    print_table(records, threads)
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in load_after)}; "
          f"run took {time.perf_counter() - t_start:.0f} s")
    return {
        "threads": threads,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "machine": info,
        "processor": __import__("platform").processor(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "equivalence_checks": checks,
        "results": records,
        "wall_seconds": time.perf_counter() - t_start,
    }


def print_table(records: list[dict], threads: int) -> None:
    head = (f"{'config':14} {'params':>9} {'steps':>5} {'jnas ms/step':>12} {'torch ms/step':>13} "
            f"{'torch/jnas':>10} {'jnas compile s':>14}")
    print(f"\nthreads {threads} (ratio > 1: jnas faster)")
    print(head)
    print("-" * len(head))
    for r in records:
        print(f"{r['space'] + ' ' + r['method']:14} {r['params']:9,d} {r['steps']:5d} {r['jnas_ms_per_step']:12.1f} "
              f"{r['torch_ms_per_step']:13.1f} {r['ratio_torch_over_jnas']:9.2f}x {r['jnas_compile_s']:14.1f}",
              flush=True)


def child_run(args, threads: int, check: bool) -> dict:
    """One thread setting in a fresh process (XLA fixes its threads when its backend starts)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--device", args.device, "--spaces", args.spaces,
               "--orders", args.orders, "--rounds", str(args.rounds), "--batch", str(args.batch),
               "--threads", str(threads), "--out", str(out)]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        if not check:
            cmd.append("--no-check")
        cmd += ["--jnas-variant", args.jnas_variant]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())["runs"][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--spaces", default="nb201,darts", help="comma-separated subset of nb201,darts")
    ap.add_argument("--orders", default="1,2", help="comma-separated subset of 1 (darts), 2 (darts2)")
    ap.add_argument("--steps", type=int, default=None,
                    help=f"timed steps per framework and configuration (default: CPU {CPU_STEPS}, GPU {GPU_STEPS})")
    ap.add_argument("--rounds", type=int, default=2, help="alternate jnas/PyTorch in this many timed blocks")
    ap.add_argument("--batch", type=int, default=64, help="images per half-batch (weight and architecture)")
    ap.add_argument("--threads", default=str(os.cpu_count()),
                    help="CPU threads per framework: a count, or a comma-separated list (each run in its own "
                         "process); on CPU only 1 or all cores")
    ap.add_argument("--no-check", action="store_true", help="skip the jnas/PyTorch equivalence check")
    ap.add_argument("--jnas-variant", choices=tuple(VARIANTS), default="default",
                    help="formulation of jnas's supernet to time (see VARIANTS; the check uses the default)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "supernet.json"))
    args = ap.parse_args()
    args.space_list = parse_list(args.spaces, "--spaces", allowed=OPTIONS)
    args.order_list = sorted(set(parse_list(args.orders, "--orders", allowed=METHODS, kind=int)))
    thread_list = parse_list(args.threads, "--threads", kind=int)
    if args.steps is not None and args.steps < 1:
        raise SystemExit(f"--steps: got {args.steps}, expected an integer >= 1")
    if args.batch < 1:
        raise SystemExit(f"--batch: got {args.batch}, expected an integer >= 1")

    t0 = time.perf_counter()
    if len(thread_list) == 1:
        runs = [run_benchmark(args, thread_list[0])]
    else:
        runs = [child_run(args, t, check=not args.no_check and k == 0) for k, t in enumerate(thread_list)]
        print("\nsummary (ms per search step; ratio = PyTorch / jnas, same process and load window)")
        for run in runs:
            for r in run["results"]:
                print(f"  threads {run['threads']}: {r['space']:6} {r['method']:7} jnas {r['jnas_ms_per_step']:8.1f}  "
                      f"torch {r['torch_ms_per_step']:8.1f}  ratio {r['ratio_torch_over_jnas']:.2f}x  "
                      f"compile {r['jnas_compile_s']:.1f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "device": args.device,
        "command": " ".join(["python", "bench/supernet.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "step_includes": (
            "host gather of a weight-half and an architecture-half batch (uint8 images, labels), copy to the "
            "device, augmentation of both (crop pad 4, flip), architecture step (Adam 3e-4, betas (0.5, 0.999), "
            "wd 1e-3; darts2: unrolled gradient, finite-difference Hessian-vector product), weight step with the "
            "new architecture (clip 5, SGD momentum 0.9, wd 3e-4, per-step cosine LR), metric sums"
        ),
        "wall_seconds": time.perf_counter() - t0,
        "runs": runs,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out} (total {record['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
