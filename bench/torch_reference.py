"""PyTorch re-implementation of jnas's NB201 and DARTS networks and of its training step (benchmark reference).

The modules mirror ``jnas.models.nb201`` / ``jnas.models.darts`` /
``jnas.models.ops`` one to one: same ops, channels, cells, padding, BatchNorm
settings (PyTorch defaults: momentum 0.1, eps 1e-5) and parameter count, and
the same attribute names, so a jnas parameter path such as
``('layers', 0, 'edges', 1, 'conv', 'kernel')`` names the tensor
``layers.0.edges.1.conv.weight`` here (:func:`load_jnas_weights` copies a jnas
model into one of these to check that both compute the same function).
Tensors are NCHW, PyTorch's native layout.

The training step (:class:`TorchTrainStep`) does what
``jnas.train.loop.make_train_step`` does: augmentation of a ``uint8`` NHWC
batch (random crop after zero padding, horizontal flip, normalisation, cutout),
forward in training mode, mean cross-entropy, backward, optional global-norm
gradient clipping, SGD with (Nesterov) momentum and coupled weight decay
(``torch.optim.SGD``), a per-step cosine learning rate, and the same metrics
(loss, correct count, gradient norm).

Used only by ``bench/train_throughput.py``; PyTorch is not a jnas dependency.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jnas.spaces import darts as darts_space
from jnas.spaces import nb201 as nb201_space


# ----- ops (jnas.models.ops) ------------------------------------------------------------------
def conv(c_in, c_out, kernel, stride=1, padding=None, dilation=1, groups=1):
    """Bias-free 2-D convolution with symmetric padding (default ``dilation*(kernel-1)//2``)."""
    if padding is None:
        padding = dilation * (kernel - 1) // 2
    return nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups=groups, bias=False)


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride=1, padding=None, dilation=1):
        super().__init__()
        self.conv = conv(c_in, c_out, kernel, stride, padding, dilation)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return self.bn(self.conv(F.relu(x)))


class DilConv(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, dilation):
        super().__init__()
        self.depthwise = conv(c_in, c_in, kernel, stride, None, dilation, groups=c_in)
        self.pointwise = conv(c_in, c_out, 1)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return self.bn(self.pointwise(self.depthwise(F.relu(x))))


class SepConv(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride):
        super().__init__()
        self.first = DilConv(c_in, c_in, kernel, stride, 1)
        self.second = DilConv(c_in, c_out, kernel, 1, 1)

    def forward(self, x):
        return self.second(self.first(x))


class Identity(nn.Module):
    def forward(self, x):
        return x


class Zero(nn.Module):
    def __init__(self, stride=1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        s = self.stride
        return (x[:, :, ::s, ::s] if s > 1 else x) * 0.0


class FactorizedReduce(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        half = c_out // 2
        self.conv_a = conv(c_in, half, 1, 2, 0)
        self.conv_b = conv(c_in, c_out - half, 1, 2, 0)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = F.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


class ResidualReduction(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.pool = nn.AvgPool2d(2, 2, 0)
        self.shortcut = conv(c_in, c_out, 1, 1, 0)

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.shortcut(self.pool(x))


def avg_pool_3x3(stride):
    return nn.AvgPool2d(3, stride, 1, count_include_pad=False)


# ----- NAS-Bench-201 (jnas.models.nb201) --------------------------------------------------------
def nb201_edge_op(name, c):
    return {
        "none": lambda: Zero(),
        "skip_connect": lambda: Identity(),
        "nor_conv_1x1": lambda: ReLUConvBN(c, c, 1),
        "nor_conv_3x3": lambda: ReLUConvBN(c, c, 3),
        "avg_pool_3x3": lambda: avg_pool_3x3(1),
    }[name]()


class NB201Cell(nn.Module):
    def __init__(self, arch, c):
        super().__init__()
        self.edges = nn.ModuleList(nb201_edge_op(nb201_space.OPS[int(op)], c) for op in arch)

    def forward(self, x):
        nodes = [x]
        for j in (1, 2, 3):
            terms = [op(nodes[src]) for op, (src, dst) in zip(self.edges, nb201_space.EDGES) if dst == j]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[3]


class NB201Network(nn.Module):
    """``[B, 3, H, W] -> [B, num_classes]``; same skeleton as ``jnas.models.nb201.NB201Network``."""

    def __init__(self, arch, num_classes, channels=16, cells_per_stage=5):
        super().__init__()
        self.stem_conv = conv(3, channels, 3)
        self.stem_bn = nn.BatchNorm2d(channels)
        layers, c = [], channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(NB201Cell(arch, c) for _ in range(cells_per_stage))
        self.layers = nn.ModuleList(layers)
        self.last_bn = nn.BatchNorm2d(c)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.stem_bn(self.stem_conv(x))
        for layer in self.layers:
            x = layer(x)
        x = F.relu(self.last_bn(x))
        return self.classifier(x.mean(dim=(2, 3)))


# ----- DARTS (jnas.models.darts; no auxiliary head, no drop-path) --------------------------------
def darts_op(name, c, stride):
    return {
        "none": lambda: Zero(stride),
        "skip_connect": lambda: Identity() if stride == 1 else FactorizedReduce(c, c),
        "max_pool_3x3": lambda: nn.MaxPool2d(3, stride, 1),
        "avg_pool_3x3": lambda: avg_pool_3x3(stride),
        "sep_conv_3x3": lambda: SepConv(c, c, 3, stride),
        "sep_conv_5x5": lambda: SepConv(c, c, 5, stride),
        "dil_conv_3x3": lambda: DilConv(c, c, 3, stride, 2),
        "dil_conv_5x5": lambda: DilConv(c, c, 5, stride, 2),
    }[name]()


class DartsCell(nn.Module):
    def __init__(self, genes, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.inputs = [int(i) for i in genes[:, 0]]
        self.edges = nn.ModuleList(
            darts_op(darts_space.OPS[int(op)], c, 2 if reduction and inp < 2 else 1) for inp, op in genes
        )

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(darts_space.N_NODES):
            a, b = 2 * node, 2 * node + 1
            states.append(self.edges[a](states[self.inputs[a]]) + self.edges[b](states[self.inputs[b]]))
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """``[B, 3, H, W] -> [B, num_classes]``; same network as ``jnas.models.darts.build(..., auxiliary=False)``."""

    def __init__(self, arch, num_classes, channels=36, layers=20):
        super().__init__()
        arch = np.asarray(arch)
        c_stem = 3 * channels
        self.stem_conv = conv(3, c_stem, 3)
        self.stem_bn = nn.BatchNorm2d(c_stem)
        reductions = (layers // 3, 2 * layers // 3)
        c_pp, c_p, c = c_stem, c_stem, channels
        cells, reduction_prev = [], False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cells.append(DartsCell(arch[1 if reduction else 0], c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, darts_space.N_NODES * c
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x):
        s0 = s1 = self.stem_bn(self.stem_conv(x))
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1.mean(dim=(2, 3)))


def build(space: str, arch, *, num_classes: int, **options) -> nn.Module:
    """The PyTorch twin of ``jnas.models.build_network(space, arch, ...)`` for ``space`` in {nb201, darts}."""
    if space == "nb201":
        return NB201Network(np.asarray(arch), num_classes, **options)
    if space == "darts":
        return DartsNetwork(arch, num_classes, **options)
    raise ValueError(f"space: got {space!r}, expected 'nb201' or 'darts'")


def count_params(model: nn.Module) -> int:
    """Trainable scalars (BatchNorm running statistics excluded), as ``jnas.models.cost.count_params``."""
    return sum(p.numel() for p in model.parameters())


# ----- weight transfer (for the equivalence check) -------------------------------------------
_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


def load_jnas_weights(torch_model: nn.Module, flat_state) -> int:
    """Copy a jnas model's arrays (``nnx.state(model).flat_state()``) into ``torch_model``; returns tensors copied.

    Conv kernels go from HWIO to OIHW, dense kernels from [in, out] to [out, in].
    Raises ``KeyError`` when a jnas path has no PyTorch counterpart.
    """
    tensors = dict(torch_model.state_dict())
    copied = 0
    with torch.no_grad():
        for path, var in flat_state:
            leaf = path[-1]
            if leaf not in _LEAF:
                continue  # RNG streams and other non-array state
            name = ".".join(str(p) for p in path[:-1]) + "." + _LEAF[leaf]
            value = np.array(var.get_value() if hasattr(var, "get_value") else var.value)
            if leaf == "kernel":
                value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
            target = tensors[name]
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)).reshape(target.shape))
            copied += 1
    return copied


# ----- the training step (jnas.train.loop.make_train_step) ------------------------------------
def augment(x, gen, mean, std, *, crop_pad=4, flip=True, cutout_size=0):
    """``uint8 [B, H, W, C]`` -> ``float32 [B, C, H, W]``: crop, flip, normalise, cutout (as ``jnas.train.augment``)."""
    b, h, w, c = x.shape
    dev = x.device
    if crop_pad:
        p = crop_pad
        padded = F.pad(x, (0, 0, p, p, p, p))  # pads W and H of NHWC
        off = torch.randint(0, 2 * p + 1, (b, 2), generator=gen, device=dev)
        rows = off[:, :1] + torch.arange(h, device=dev)  # [B, H]
        cols = off[:, 1:] + torch.arange(w, device=dev)  # [B, W]
        x = padded[torch.arange(b, device=dev)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if flip:
        mirror = torch.rand(b, generator=gen, device=dev) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(2), x)
    x = (x.float() / 255.0 - mean) / std
    if cutout_size:
        centre_y = torch.randint(0, h, (b, 1), generator=gen, device=dev) - cutout_size // 2
        centre_x = torch.randint(0, w, (b, 1), generator=gen, device=dev) - cutout_size // 2
        r, q = torch.arange(h, device=dev)[None], torch.arange(w, device=dev)[None]
        in_r = (r >= centre_y) & (r < centre_y + cutout_size)
        in_c = (q >= centre_x) & (q < centre_x + cutout_size)
        x = x.masked_fill(in_r[:, :, None, None] & in_c[:, None, :, None], 0.0)
    return x.permute(0, 3, 1, 2).contiguous()


class TorchTrainStep:
    """``step(x_uint8 [B,H,W,C], y int64 [B]) -> metrics`` on ``model`` with the recipe of a jnas ``TrainConfig``.

    SGD(lr from a per-step cosine schedule over ``total_steps``, momentum,
    nesterov, weight_decay) after optional ``clip_grad_norm_(grad_clip)``;
    label smoothing as ``F.cross_entropy(label_smoothing=...)``. ``model`` is put
    in training mode (BatchNorm on batch statistics, running averages updated).
    """

    def __init__(self, model, config, *, mean, std, device, total_steps: int, seed: int = 0):
        self.model = model.train()
        self.config = config
        self.params = [p for p in model.parameters()]
        self.opt = torch.optim.SGD(
            self.params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        lr, lr_end = config.lr, config.lr_end
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda t: (lr_end + 0.5 * (lr - lr_end) * (1 + math.cos(math.pi * min(t / total_steps, 1)))) / lr
        )
        self.mean = torch.tensor(np.asarray(mean, np.float32), device=device)
        self.std = torch.tensor(np.asarray(std, np.float32), device=device)
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, x, y):
        cfg = self.config
        xa = augment(
            x, self.gen, self.mean, self.std, crop_pad=cfg.crop_pad, flip=cfg.flip, cutout_size=cfg.cutout_size
        )
        logits = self.model(xa)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            grad_norm = nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        else:
            grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in self.params]))
        self.opt.step()
        self.sched.step()
        return {"loss": loss.detach(), "correct": (logits.argmax(1) == y).sum(), "grad_norm": grad_norm}


__all__ = [
    "DartsNetwork",
    "NB201Network",
    "TorchTrainStep",
    "augment",
    "build",
    "count_params",
    "load_jnas_weights",
]
