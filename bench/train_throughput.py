"""Benchmark: training-step throughput (images/s) of jnas against the same network and step in PyTorch.

Networks: the NB201 cell
``|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|``
(16 channels, 5 cells per stage, 10 classes; NB201 recipe: SGD Nesterov 0.9,
weight decay 5e-4, crop + flip) and DARTS V2 (default 36 channels, 20 cells,
no auxiliary head or drop-path; DARTS recipe: SGD momentum 0.9, weight decay
3e-4, gradient clipping at norm 5, crop + flip + cutout 16). Inputs are
random CIFAR-shaped ``uint8`` batches (throughput does not depend on content).

A "step" is, for both frameworks: host-to-device copy of the ``uint8 [B, 32,
32, 3]`` batch and its labels, augmentation, forward in training mode
(BatchNorm on batch statistics), cross-entropy, backward, (clipping,) SGD
update, per-step cosine learning rate, and the metrics (loss, correct count,
gradient norm). jnas runs ``jnas.train.loop.make_train_step`` exactly as
``jnas.train.loop.train`` does (one jitted call per step, donated buffers, no
per-step sync); PyTorch runs the eager step of ``bench/torch_reference.py``.
The two frameworks alternate in ``--rounds`` blocks of timed steps per
configuration, so a change in machine load hits both.

Before timing, each network's parameter count is asserted equal between the
two, and a check at reduced size (weights copied from jnas into PyTorch,
augmentation off) asserts equal loss and equal parameters and BatchNorm
running means after one SGD step, i.e. that both run the same network and
the same update (running variances differ by n/(n-1): PyTorch's use the
unbiased batch variance, flax's the biased one).

    python bench/train_throughput.py [--device cpu|gpu] [--nets nb201,darts] [--batches 64,256]
        [--steps N] [--darts-channels 36] [--darts-layers 20] [--threads 2,1]

``--threads`` sets PyTorch's intra-op threads and XLA:CPU's (1 or all cores;
default all cores); a list runs each setting in its own process. On a 2-core
CPU the real DARTS network (36 channels, 20 cells) takes minutes per step at
batch 256, so the CPU record in ``BENCHMARKS.md`` uses a smaller DARTS
(``--darts-channels 16 --darts-layers 8``); the defaults are for a GPU.

Prints a table (jnas images/s, PyTorch images/s, ratio jnas/PyTorch, jnas
compile seconds) and writes ``bench/results/train_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from machine import cpu_model  # noqa: E402

from jnas.models import build_network  # noqa: E402
from jnas.models.cost import count_params  # noqa: E402
from jnas.spaces import get_space  # noqa: E402
from jnas.train.loop import compute_graphdef, make_train_step, split_model  # noqa: E402
from jnas.train.optim import TrainConfig, make_optimizer  # noqa: E402
from jnas.train.sharding import batch_sharding, make_mesh, replicate  # noqa: E402

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
ARCHS = {"nb201": NB201_ARCH, "darts": DARTS_V2}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
NUM_CLASSES = 10
IMAGE = (32, 32, 3)
TRAIN_SIZE = 50_000  # CIFAR-10: sets the steps per epoch of the cosine schedule
POOL = 4  # distinct host batches cycled through, so no step sees a cached input
#: timed steps per framework and configuration when --steps is not given
CPU_STEPS = 3
GPU_STEPS = 100
#: XLA:CPU flags for one thread (Eigen's intra-op pool off; XLA has no knob for other counts)
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def recipe(net: str, batch: int) -> TrainConfig:
    """The training recipe of ``net`` (NB201's or DARTS's, see the module docstring) at batch ``batch``."""
    if net == "nb201":
        return TrainConfig(batch_size=batch)
    return TrainConfig(
        epochs=600, batch_size=batch, lr=0.025, nesterov=False, weight_decay=3e-4, grad_clip=5.0, cutout_size=16
    )


def net_options(net: str, args) -> dict:
    return {"channels": args.darts_channels, "layers": args.darts_layers} if net == "darts" else {}


def torch_device(device: str) -> torch.device:
    return torch.device("cuda" if device == "gpu" else "cpu")


def sync(device: str) -> None:
    if device == "gpu":
        torch.cuda.synchronize()


# ----- equivalence check --------------------------------------------------------------------
def check_equivalence(net: str, arch, options: dict, device: str, batch: int = 8) -> dict:
    """Assert jnas and PyTorch compute the same loss and the same one-step update of ``net``.

    Weights are copied from the jnas model into the PyTorch one; augmentation is
    switched off so both steps see the same normalised images. Returns the
    largest absolute differences found.
    """
    config = recipe(net, batch).replace(crop_pad=0, flip=False, cutout_size=0)
    # full float32 convolutions on both sides (GPUs default to TF32 in both frameworks)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with jax.default_matmul_precision("highest"):
            return _check_equivalence(net, arch, options, device, batch, config)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def _check_equivalence(net, arch, options, device, batch, config) -> dict:
    model = build_network(net, arch, num_classes=NUM_CLASSES, rngs=nnx.Rngs(1), **options)
    tmodel = tref.build(net, arch, num_classes=NUM_CLASSES, **options).to(torch_device(device))
    tref.load_jnas_weights(tmodel, nnx.state(model).flat_state())
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (batch, *IMAGE), dtype=np.uint8)
    y = rng.integers(0, NUM_CLASSES, batch).astype(np.int32)

    graphdef = compute_graphdef(model, train=True)
    _, state = split_model(model)
    optimizer = make_optimizer(config, TRAIN_SIZE // batch)
    step = make_train_step(graphdef, optimizer, config, mean=CIFAR_MEAN, std=CIFAR_STD)
    new_state, _, metrics = step(state, optimizer.init(state.params), x, y, jax.random.key(0))

    tdev = torch_device(device)
    tstep = tref.TorchTrainStep(
        tmodel, config, mean=CIFAR_MEAN, std=CIFAR_STD, device=tdev, total_steps=config.epochs * (TRAIN_SIZE // batch)
    )
    tmetrics = tstep(torch.from_numpy(x).to(tdev), torch.from_numpy(y).long().to(tdev))
    sync(device)

    # jnas's updated state, read through the same name mapping as the initial weights
    after = tref.build(net, arch, num_classes=NUM_CLASSES, **options)
    tref.load_jnas_weights(after, nnx.state(nnx.merge(graphdef, new_state.params, new_state.rest)).flat_state())
    ours, theirs = after.state_dict(), {k: v.cpu() for k, v in tmodel.state_dict().items()}
    trainable = {name for name, _ in after.named_parameters()}

    def max_diff(keys, relative=False):
        diffs = [(ours[k] - theirs[k]).abs() / (theirs[k].abs() if relative else 1.0) for k in keys]
        return max(float(d.max()) for d in diffs)

    param_diff = max_diff(trainable)
    mean_diff = max_diff([k for k in ours if k.endswith("running_mean")])
    # PyTorch updates running_var with the unbiased batch variance (n/(n-1)), flax with the biased one
    var_rel = max_diff([k for k in ours if k.endswith("running_var")], relative=True)
    loss_diff = abs(float(metrics["loss"]) - float(tmetrics["loss"]))
    tol = 1.0 if device == "cpu" else 10.0  # GPU reductions run in another order
    if not (loss_diff < 1e-4 * tol and param_diff < 1e-5 * tol and mean_diff < 1e-5 * tol and var_rel < 0.02):
        raise AssertionError(
            f"{net}: jnas and PyTorch steps differ (loss {loss_diff:.2e}, params {param_diff:.2e}, "
            f"BN running mean {mean_diff:.2e}, BN running var relative {var_rel:.2e})"
        )
    return {
        "options": options,
        "batch": batch,
        "loss_abs_diff": loss_diff,
        "params_abs_diff_after_step": param_diff,
        "bn_running_mean_abs_diff": mean_diff,
        "bn_running_var_rel_diff": var_rel,
    }


# ----- timing -------------------------------------------------------------------------------
def host_batches(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, 256, (batch, *IMAGE), dtype=np.uint8) for _ in range(POOL)]
    ys = [rng.integers(0, NUM_CLASSES, batch).astype(np.int32) for _ in range(POOL)]
    return xs, ys


class JnasRunner:
    """jnas's training step set up as ``jnas.train.loop.train`` does; ``run(n)`` times ``n`` steps."""

    def __init__(self, net, arch, options, batch):
        config = recipe(net, batch)
        model = build_network(net, arch, num_classes=NUM_CLASSES, rngs=nnx.Rngs(0), **options)
        self.params = count_params(model)
        self.mesh = make_mesh()
        graphdef = compute_graphdef(model, train=True, bf16=config.bf16)
        _, state = split_model(model)
        optimizer = make_optimizer(config, TRAIN_SIZE // batch)
        self.step = make_train_step(graphdef, optimizer, config, mean=CIFAR_MEAN, std=CIFAR_STD, donate=True)
        self.state = replicate(self.mesh, jax.tree.map(jnp.copy, state))
        self.opt_state = replicate(self.mesh, optimizer.init(self.state.params))
        self.sharding = batch_sharding(self.mesh)
        self.xs, self.ys = host_batches(batch)
        self.key = jax.random.key(0)
        self.done = 0

    def run(self, n: int) -> float:
        """Wall seconds of ``n`` steps, dispatched back to back, until their results are ready."""
        # one augmentation key per step, made before the clock starts (train() splits them per epoch)
        keys = jax.block_until_ready([jax.random.fold_in(self.key, self.done + k) for k in range(n)])
        t0 = time.perf_counter()
        for key in keys:
            i = self.done % POOL
            x = jax.device_put(self.xs[i], self.sharding)
            y = jax.device_put(self.ys[i], self.sharding)
            self.state, self.opt_state, self.metrics = self.step(self.state, self.opt_state, x, y, key)
            self.done += 1
        jax.block_until_ready((self.state, self.opt_state, self.metrics))
        return time.perf_counter() - t0


class TorchRunner:
    """The PyTorch twin of :class:`JnasRunner` (eager step of ``torch_reference.TorchTrainStep``)."""

    def __init__(self, net, arch, options, batch, device):
        config = recipe(net, batch)
        self.device = device
        self.tdev = torch_device(device)
        torch.manual_seed(0)
        model = tref.build(net, arch, num_classes=NUM_CLASSES, **options).to(self.tdev)
        self.params = tref.count_params(model)
        self.step = tref.TorchTrainStep(
            model,
            config,
            mean=CIFAR_MEAN,
            std=CIFAR_STD,
            device=self.tdev,
            total_steps=config.epochs * (TRAIN_SIZE // batch),
        )
        xs, ys = host_batches(batch)
        pin = device == "gpu"
        self.xs = [torch.from_numpy(x).pin_memory() if pin else torch.from_numpy(x) for x in xs]
        self.ys = [torch.from_numpy(y).long() for y in ys]
        self.ys = [y.pin_memory() if pin else y for y in self.ys]
        self.done = 0

    def run(self, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            i = self.done % POOL
            x = self.xs[i].to(self.tdev, non_blocking=True)
            y = self.ys[i].to(self.tdev, non_blocking=True)
            self.metrics = self.step(x, y)
            self.done += 1
        sync(self.device)
        return time.perf_counter() - t0


def bench_config(net, arch, options, batch, args, steps) -> dict:
    """Time jnas and PyTorch on one (network, batch); returns the record."""
    jr = JnasRunner(net, arch, options, batch)
    tr = TorchRunner(net, arch, options, batch, args.device)
    if jr.params != tr.params:
        raise AssertionError(f"{net}: parameter counts differ (jnas {jr.params:,}, PyTorch {tr.params:,})")
    first_jnas = jr.run(1)  # compiles
    first_torch = tr.run(1)
    if args.warmup > 1:
        jr.run(args.warmup - 1)
        tr.run(args.warmup - 1)
    rounds = max(1, min(args.rounds, steps))
    per_round = [steps // rounds + (r < steps % rounds) for r in range(rounds)]
    t_jnas, t_torch = [], []
    for n in per_round:
        t_jnas.append(jr.run(n))
        t_torch.append(tr.run(n))
    for name, m in (("jnas", jr.metrics), ("PyTorch", tr.metrics)):
        if not np.isfinite(float(m["loss"])):
            raise AssertionError(f"{net}: {name} loss is not finite")
    step_jnas, step_torch = sum(t_jnas) / steps, sum(t_torch) / steps
    return {
        "net": net,
        "options": options,
        "batch": batch,
        "params": jr.params,
        "steps": steps,
        "warmup_steps": args.warmup,
        "rounds_steps": per_round,
        "jnas_round_seconds": t_jnas,
        "torch_round_seconds": t_torch,
        "jnas_images_per_s": batch / step_jnas,
        "torch_images_per_s": batch / step_torch,
        "ratio": step_torch / step_jnas,
        "jnas_step_s": step_jnas,
        "torch_step_s": step_torch,
        "jnas_first_call_s": first_jnas,
        "jnas_compile_s": max(first_jnas - step_jnas, 0.0),
        "torch_first_step_s": first_torch,
        "final_loss_jnas": float(jr.metrics["loss"]),
        "final_loss_torch": float(tr.metrics["loss"]),
    }


# ----- machine description ---------------------------------------------------------------------
def memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info(device: str) -> dict:
    import flax
    import optax

    info = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb(),
        "jax_devices": [str(d) for d in jax.devices()],
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
    }
    if device == "gpu":
        info["torch_device"] = torch.cuda.get_device_name(0)
        info["torch_cudnn"] = torch.backends.cudnn.version()
    return info


def parse_list(text: str, name: str, allowed=None, kind=str) -> list:
    try:
        items = [kind(t) for t in text.split(",") if t.strip()]
    except ValueError:
        items = []
    if not items or (allowed is not None and any(i not in allowed for i in items)):
        expected = f"from {sorted(allowed)}" if allowed is not None else f"of type {kind.__name__}"
        raise SystemExit(f"{name}: got {text!r}, expected comma-separated values {expected}")
    return items


def set_threads(device: str, threads: int) -> None:
    """Give PyTorch ``threads`` intra-op threads and XLA:CPU the same (1 or all cores)."""
    from jax._src import xla_bridge

    cores = os.cpu_count()
    if device == "cpu" and threads != cores:
        if threads != 1:
            raise SystemExit(f"--threads: got {threads}, expected 1 or the core count ({cores}) on CPU")
        if xla_bridge.backends_are_initialized():
            raise SystemExit("--threads 1: the XLA backend started before its thread flags could be set")
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_ONE_THREAD}".strip()
    if device == "gpu" and not xla_bridge.backends_are_initialized():
        # jax would otherwise take 75% of the GPU's memory up front and leave PyTorch short
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    torch.set_num_threads(threads)


def run_benchmark(args, threads: int) -> dict:
    """Check, then time every (net, batch) with ``threads`` CPU threads per framework; returns the run record."""
    set_threads(args.device, threads)
    if args.device == "gpu":
        if jax.default_backend() != "gpu" or not torch.cuda.is_available():
            raise SystemExit(
                f"--device gpu needs a GPU for both: jax backend {jax.default_backend()!r}, "
                f"torch.cuda.is_available() = {torch.cuda.is_available()}"
            )
        torch.backends.cudnn.benchmark = True
    elif jax.default_backend() != "cpu":
        jax.config.update("jax_platforms", "cpu")

    load_before = os.getloadavg()
    info = machine_info(args.device)
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, jax {jax.__version__} on {info['jax_devices'][0]}, "
        f"torch {torch.__version__}; threads per framework: {threads}"
    )
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}", flush=True)

    checks = {}
    if not args.no_check:
        small = {"nb201": {"channels": 8, "cells_per_stage": 2}, "darts": {"channels": 8, "layers": 5}}
        for net in args.net_list:
            arch = get_space(net).from_string(ARCHS[net])
            checks[net] = c = check_equivalence(net, arch, small[net], args.device)
            print(
                f"check {net} {small[net]}: same loss and update (loss diff {c['loss_abs_diff']:.1e}, params diff "
                f"after one step {c['params_abs_diff_after_step']:.1e}, BN running var rel. diff "
                f"{c['bn_running_var_rel_diff']:.1e}: PyTorch's is unbiased)",
                flush=True,
            )

    head = (
        f"{'net':6} {'batch':>5} {'params':>10} {'steps':>5} {'jnas img/s':>11} {'torch img/s':>12} "
        f"{'jnas/torch':>10} {'jnas compile s':>15}"
    )
    print(head)
    print("-" * len(head))
    records = []
    for net in args.net_list:
        arch = get_space(net).from_string(ARCHS[net])
        options = net_options(net, args)
        steps = args.steps or (CPU_STEPS if args.device == "cpu" else GPU_STEPS)
        for batch in args.batch_list:
            rec = bench_config(net, arch, options, batch, args, steps)
            records.append(rec)
            if args.device == "gpu":
                torch.cuda.empty_cache()  # the runners are gone; hand their cached blocks back
            print(
                f"{net:6} {batch:5d} {rec['params']:10,d} {steps:5d} {rec['jnas_images_per_s']:11.1f} "
                f"{rec['torch_images_per_s']:12.1f} {rec['ratio']:9.2f}x {rec['jnas_compile_s']:15.1f}",
                flush=True,
            )
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in load_after)}")
    return {
        "threads": threads,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "xla_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "default"),
        "machine": info,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "equivalence_checks": checks,
        "results": records,
    }


def child_run(args, threads: int, check: bool) -> dict:
    """One thread setting in a fresh process (XLA fixes its threads when its backend starts)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            *args.passthrough,
            "--threads",
            str(threads),
            "--out",
            str(out),
        ]
        if not check:
            cmd.append("--no-check")
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())["runs"][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--nets", default="nb201,darts", help="comma-separated subset of nb201,darts")
    ap.add_argument("--batches", default="64,256", help="comma-separated batch sizes")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"timed steps per framework and configuration (default: CPU {CPU_STEPS}, GPU {GPU_STEPS})",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed steps first, the compiling call included (default: CPU 1, GPU 10)",
    )
    ap.add_argument("--rounds", type=int, default=2, help="alternate jnas/PyTorch in this many timed blocks")
    ap.add_argument("--darts-channels", type=int, default=36)
    ap.add_argument("--darts-layers", type=int, default=20)
    ap.add_argument(
        "--threads",
        default=str(os.cpu_count()),
        help="CPU threads per framework: a count, or a comma-separated list (each run in its own process); "
        "on CPU only 1 or all cores",
    )
    ap.add_argument("--no-check", action="store_true", help="skip the jnas/PyTorch equivalence check")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "train_throughput.json"))
    args = ap.parse_args()
    args.net_list = parse_list(args.nets, "--nets", allowed=ARCHS)
    args.batch_list = parse_list(args.batches, "--batches", kind=int)
    thread_list = parse_list(args.threads, "--threads", kind=int)
    if args.warmup is None:
        args.warmup = 1 if args.device == "cpu" else 10
    args.warmup = max(args.warmup, 1)
    if args.steps is not None and args.steps < 1:
        raise SystemExit(f"--steps: got {args.steps}, expected an integer >= 1")

    if len(thread_list) == 1:
        runs = [run_benchmark(args, thread_list[0])]
    else:
        skip = {"--threads", "--out"}
        argv, args.passthrough = sys.argv[1:], []
        i = 0
        while i < len(argv):
            flag = argv[i].split("=", 1)[0]
            if flag in skip:
                i += 1 if "=" in argv[i] else 2
                continue
            if flag != "--no-check":
                args.passthrough.append(argv[i])
            i += 1
        runs = [child_run(args, t, check=not args.no_check and k == 0) for k, t in enumerate(thread_list)]
        print("\nsummary (images/s; ratio = jnas / PyTorch, same process and load window)")
        for run in runs:
            for r in run["results"]:
                print(
                    f"  threads {run['threads']}: {r['net']:6} batch {r['batch']:4d}  "
                    f"jnas {r['jnas_images_per_s']:8.1f}  torch {r['torch_images_per_s']:8.1f}  ratio {r['ratio']:.2f}x"
                )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "device": args.device,
        "command": " ".join(["python", "bench/train_throughput.py", *sys.argv[1:]]),
        "step_includes": (
            "host-to-device copy of a uint8 batch + labels, augmentation (crop pad 4, flip; DARTS also cutout 16), "
            "forward in training mode, cross-entropy, backward, (DARTS: clip at global norm 5), SGD momentum "
            "(NB201: Nesterov) + weight decay, per-step cosine LR, metrics (loss, correct, grad norm)"
        ),
        "runs": runs,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
