"""PyTorch twins of jnas's one-shot supernets and of its DARTS search step (benchmark reference).

The networks mirror ``jnas.models.supernet`` (with every op on every edge and
all channels through the ops): same candidate ops, channels, cells and
BatchNorm settings (no affine parameters inside the cells, a BatchNorm after
each pooling candidate of the DARTS cell; the stem, the NB201 reduction blocks
and NB201's last BatchNorm keep theirs), the same parameter count and the same
attribute names, so ``torch_reference.load_jnas_weights`` copies a jnas
supernet into one of these (the architecture parameters, ``arch``, are not
part of the network here: the step holds them). The ops are those of
``bench/torch_reference.py`` with their BatchNorms swapped for affine-free
ones where jnas has ``affine=False``. Tensors are NCHW.

Edge weights ``w`` have jnas's shapes (``jnas.models.supernet.edge_weight_shape``):
``[6, 5]`` for NB201 (shared by every cell), ``[2, 14, 8]`` for DARTS
(normal, reduce); each edge outputs ``Σ_k w[e, k] · op_k(x)``.

:class:`TorchSearchStep` is ``jnas.train.oneshot.make_search_step`` for
DARTS (``darts``: first order, ``darts2``: second order) in eager PyTorch: an
architecture step on the architecture batch (Adam), then a weight step on the
weight batch with the new architecture (clip, SGD). Used only by
``bench/supernet.py``; PyTorch is not a jnas dependency.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
import torch_reference as tref
from torch import nn

from jnas.spaces import darts as darts_space
from jnas.spaces import nb201 as nb201_space

#: DARTS search cell: node i (0..3) reads inputs 0..i+1; its edges start at DARTS_EDGE_OFFSET[i] (as jnas)
DARTS_EDGE_OFFSET = (0, 2, 5, 9)
DARTS_SEARCH_EDGES = 14
#: DARTS's finite-difference radius numerator (ε = R / ‖∇_w' L_val‖)
FD_RADIUS = 0.01


def drop_affine(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` inside ``module`` by one without scale and shift; returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.BatchNorm2d(child.num_features, affine=False))
        else:
            drop_affine(child)
    return module


class PoolBN(nn.Module):
    """A pooling candidate of the DARTS search cell followed by an affine-free BatchNorm.

    The submodules sit in ``layers`` (0: pool, 1: BN) as jnas's ``nnx.Sequential`` holds them.
    """

    def __init__(self, pool: nn.Module, c: int):
        super().__init__()
        self.layers = nn.ModuleList([pool, nn.BatchNorm2d(c, affine=False)])

    def forward(self, x):
        return self.layers[1](self.layers[0](x))


class MixedOp(nn.Module):
    """``(x [B, C, H, W], w float[n_ops]) -> Σ_k w[k] · op_k(x)`` over the candidate ops of one edge."""

    def __init__(self, candidates):
        super().__init__()
        self.ops = nn.ModuleList(candidates)

    def forward(self, x, w):
        out = None
        for k, op in enumerate(self.ops):
            y = w[k] * op(x)
            out = y if out is None else out + y
        return out


# ----- NAS-Bench-201 ---------------------------------------------------------------------------
def nb201_candidate(name: str, c: int) -> nn.Module:
    """NB201 op ``name`` on ``c`` channels as the supernet has it (the convs' BatchNorm without affine)."""
    op = tref.nb201_edge_op(name, c)
    return drop_affine(op) if name.startswith("nor_conv") else op


class NB201SearchCell(nn.Module):
    """An NB201 cell with a mixed op on each of its 6 edges; ``(x, w float[6, 5]) -> node 3``."""

    def __init__(self, c: int):
        super().__init__()
        self.edges = nn.ModuleList(
            MixedOp(nb201_candidate(name, c) for name in nb201_space.OPS) for _ in nb201_space.EDGES
        )

    def forward(self, x, w):
        nodes = [x]
        for j in (1, 2, 3):
            terms = [
                op(nodes[src], w[e])
                for e, (op, (src, dst)) in enumerate(zip(self.edges, nb201_space.EDGES))
                if dst == j
            ]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[3]


class NB201Supernet(nn.Module):
    """``(x [B, 3, H, W], w float[6, 5]) -> logits [B, num_classes]``; as ``jnas.models.supernet.NB201Supernet``."""

    def __init__(self, num_classes: int, channels: int = 16, cells_per_stage: int = 5):
        super().__init__()
        self.stem_conv = tref.conv(3, channels, 3)
        self.stem_bn = nn.BatchNorm2d(channels)
        layers, c = [], channels
        for stage in range(3):
            if stage > 0:
                layers.append(tref.ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(NB201SearchCell(c) for _ in range(cells_per_stage))
        self.layers = nn.ModuleList(layers)
        self.last_bn = nn.BatchNorm2d(c)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x, w):
        x = self.stem_bn(self.stem_conv(x))
        for layer in self.layers:
            x = layer(x, w) if isinstance(layer, NB201SearchCell) else layer(x)
        x = F.relu(self.last_bn(x))
        return self.classifier(x.mean(dim=(2, 3)))


# ----- DARTS -----------------------------------------------------------------------------------
def darts_candidate(name: str, c: int, stride: int) -> nn.Module:
    """DARTS op ``name`` on ``c`` channels with ``stride`` as the search cell has it (affine-free BN; pool + BN)."""
    op = drop_affine(tref.darts_op(name, c, stride))
    return PoolBN(op, c) if "pool" in name else op


class DartsSearchCell(nn.Module):
    """A DARTS search cell: 4 nodes, a mixed op on each of 14 edges; ``(s0, s1, w float[14, 8]) -> [B, 4c, H', W']``."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        if reduction_prev:
            self.pre0 = drop_affine(tref.FactorizedReduce(c_pp, c))
        else:
            self.pre0 = drop_affine(tref.ReLUConvBN(c_pp, c, 1, 1, 0))
        self.pre1 = drop_affine(tref.ReLUConvBN(c_p, c, 1, 1, 0))
        edges = []
        for node in range(darts_space.N_NODES):
            for inp in range(node + 2):
                stride = 2 if reduction and inp < 2 else 1
                edges.append(MixedOp(darts_candidate(name, c, stride) for name in darts_space.OPS))
        self.edges = nn.ModuleList(edges)

    def forward(self, s0, s1, w):
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(darts_space.N_NODES):
            off = DARTS_EDGE_OFFSET[node]
            terms = [self.edges[off + j](h, w[off + j]) for j, h in enumerate(states)]
            states.append(sum(terms[1:], terms[0]))
        return torch.cat(states[2:], dim=1)


class DartsSupernet(nn.Module):
    """DARTS's search network; ``(x [B, 3, H, W], w float[2, 14, 8]) -> logits``; as
    ``jnas.models.supernet.DartsSupernet`` (stem ``3·channels``, reductions at ``layers//3`` and ``2·layers//3``)."""

    def __init__(self, num_classes: int, channels: int = 16, layers: int = 8):
        super().__init__()
        c_stem = 3 * channels
        self.stem_conv = tref.conv(3, c_stem, 3)
        self.stem_bn = nn.BatchNorm2d(c_stem)
        reductions = (layers // 3, 2 * layers // 3)
        c_pp, c_p, c = c_stem, c_stem, channels
        cells, is_reduction, reduction_prev = [], [], False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cells.append(DartsSearchCell(c_pp, c_p, c, reduction, reduction_prev))
            is_reduction.append(reduction)
            reduction_prev = reduction
            c_pp, c_p = c_p, darts_space.N_NODES * c
        self.is_reduction = tuple(is_reduction)
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x, w):
        s0 = s1 = self.stem_bn(self.stem_conv(x))
        for cell, red in zip(self.cells, self.is_reduction):
            s0, s1 = s1, cell(s0, s1, w[1 if red else 0])
        return self.classifier(s1.mean(dim=(2, 3)))


def edge_weight_shape(space: str) -> tuple[int, ...]:
    """Shape of the edge weights (and of DARTS's architecture logits) of the supernet of ``space``."""
    if space == "nb201":
        return (nb201_space.N_EDGES, nb201_space.N_OPS)
    if space == "darts":
        return (darts_space.N_CELLS, DARTS_SEARCH_EDGES, darts_space.N_OPS)
    raise ValueError(f"space: got {space!r}, expected 'nb201' or 'darts'")


def build_supernet(space: str, *, num_classes: int, **options) -> nn.Module:
    """The PyTorch twin of ``jnas.models.supernet.build_supernet(space, ...)`` (default ``op_mask`` and channels)."""
    if space == "nb201":
        return NB201Supernet(num_classes, **options)
    if space == "darts":
        return DartsSupernet(num_classes, **options)
    raise ValueError(f"space: got {space!r}, expected 'nb201' or 'darts'")


# ----- the search step -------------------------------------------------------------------------
class TorchSearchStep:
    """``step(xt, yt, xv, yv) -> metrics``: DARTS's architecture step, then its weight step, on ``model``.

    ``xt, xv``: ``uint8 [B, H, W, C]`` weight-half and architecture-half
    batches, ``yt, yv``: ``int64 [B]``. Both batches are augmented (crop after
    ``config.crop_pad`` zero padding, flip, normalisation: ``torch_reference.augment``).

    Architecture step, on ``alpha`` (float32, ``edge_weight_shape``; edge
    weights ``softmax(alpha, -1)``), ``Adam(arch_lr, betas (0.5, 0.999),
    weight_decay arch_weight_decay)``:

    * first order: ``∇_α L_val(w, α)``;
    * second order (DARTS's unrolled step): ``w' = w − ξ (∇_w L_train(w, α) +
      λ w)``, ``∇_α L_val(w', α) − ξ (∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α))
      / 2ε`` with ``w^± = w ± ε ∇_w' L_val(w', α)``, ``ε = 0.01 / ‖∇_w'
      L_val‖``; ``ξ`` the weights' current learning rate, ``λ`` their weight
      decay; no momentum in the virtual step.

    Weight step: ``L_train(w, α_new)``, ``clip_grad_norm_(config.grad_clip)``,
    ``SGD(momentum, weight_decay)`` with a per-step cosine learning rate from
    ``config.lr`` to ``config.lr_end`` over ``total_steps``.

    BatchNorm runs on batch statistics throughout; only the weight step
    updates the running averages (as jnas, whose architecture step discards them).
    ``metrics``: ``train_loss``, ``train_correct``, ``val_loss``, ``val_correct`` (0-d tensors, no sync).
    """

    def __init__(self, model, alpha, config, *, second_order: bool, mean, std, device, total_steps: int,
                 arch_lr: float = 3e-4, arch_weight_decay: float = 1e-3, seed: int = 0):
        self.model = model.train()
        self.config = config
        self.second_order = second_order
        self.params = list(model.parameters())
        self.alpha = alpha.detach().clone().to(device).requires_grad_(True)
        self.bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.w_opt = torch.optim.SGD(self.params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                                     weight_decay=config.weight_decay)
        lr, lr_end = config.lr, config.lr_end
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.w_opt,
            lambda t: (lr_end + 0.5 * (lr - lr_end) * (1 + math.cos(math.pi * min(t / total_steps, 1)))) / lr,
        )
        self.a_opt = torch.optim.Adam([self.alpha], lr=arch_lr, betas=(0.5, 0.999), weight_decay=arch_weight_decay)
        self.mean = torch.tensor(np.asarray(mean, np.float32), device=device)
        self.std = torch.tensor(np.asarray(std, np.float32), device=device)
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def _loss(self, x, y, alpha):
        logits = self.model(x, F.softmax(alpha, dim=-1))
        return F.cross_entropy(logits, y), logits

    def _track_stats(self, on: bool) -> None:
        # a BatchNorm in training mode with track_running_stats off normalises with the batch statistics
        # and leaves its running averages alone
        for bn in self.bns:
            bn.track_running_stats = on

    def augment(self, x):
        """``uint8 [B, H, W, C]`` -> normalised ``float32 [B, C, H, W]`` with the config's crop and flip."""
        cfg = self.config
        return tref.augment(x, self.gen, self.mean, self.std, crop_pad=cfg.crop_pad, flip=cfg.flip,
                            cutout_size=cfg.cutout_size)

    def arch_grad(self, xt, yt, xv, yv):
        """``(L_val, val logits, ∇_α)`` of the architecture step on augmented batches (float NCHW)."""
        self._track_stats(False)
        try:
            if not self.second_order:
                v_loss, v_logits = self._loss(xv, yv, self.alpha)
                (g_a,) = torch.autograd.grad(v_loss, [self.alpha])
                return v_loss.detach(), v_logits.detach(), g_a
            return self._unrolled_grad(xt, yt, xv, yv)
        finally:
            self._track_stats(True)

    def _unrolled_grad(self, xt, yt, xv, yv):
        xi = self.w_opt.param_groups[0]["lr"]
        wd = self.config.weight_decay
        params = self.params
        t_loss, _ = self._loss(xt, yt, self.alpha.detach())
        g_w = torch.autograd.grad(t_loss, params)
        with torch.no_grad():
            backup = [p.detach().clone() for p in params]
            # w' = w - xi (g + wd w), written into the parameters (restored below)
            torch._foreach_add_(params, torch._foreach_add(g_w, params, alpha=wd), alpha=-xi)
        v_loss, v_logits = self._loss(xv, yv, self.alpha)
        *d_w, d_a = torch.autograd.grad(v_loss, params + [self.alpha])
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(d_w)))
            eps = FD_RADIUS / torch.clamp(norm, min=1e-12)
            step = torch._foreach_mul(d_w, eps)  # a tensor factor: no host sync on a GPU
            torch._foreach_copy_(params, backup)
            torch._foreach_add_(params, step)
        g_plus = torch.autograd.grad(self._loss(xt, yt, self.alpha)[0], [self.alpha])[0]
        with torch.no_grad():
            torch._foreach_copy_(params, backup)
            torch._foreach_sub_(params, step)
        g_minus = torch.autograd.grad(self._loss(xt, yt, self.alpha)[0], [self.alpha])[0]
        with torch.no_grad():
            torch._foreach_copy_(params, backup)
            g_a = d_a - xi * (g_plus - g_minus) / (2 * eps)
        return v_loss.detach(), v_logits.detach(), g_a

    def __call__(self, xt, yt, xv, yv):
        xt, xv = self.augment(xt), self.augment(xv)
        v_loss, v_logits, g_a = self.arch_grad(xt, yt, xv, yv)
        self.alpha.grad = g_a
        self.a_opt.step()
        self.alpha.grad = None

        t_loss, logits = self._loss(xt, yt, self.alpha.detach())
        self.w_opt.zero_grad(set_to_none=True)
        t_loss.backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.w_opt.step()
        self.sched.step()
        return {
            "train_loss": t_loss.detach(),
            "train_correct": (logits.detach().argmax(1) == yt).sum(),
            "val_loss": v_loss,
            "val_correct": (v_logits.argmax(1) == yv).sum(),
        }


__all__ = [
    "DartsSearchCell",
    "DartsSupernet",
    "MixedOp",
    "NB201SearchCell",
    "NB201Supernet",
    "PoolBN",
    "TorchSearchStep",
    "build_supernet",
    "drop_affine",
    "edge_weight_shape",
]
