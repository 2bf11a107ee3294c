"""Weight-sharing supernets of one-shot NAS: a mixed op on every edge of the NB201 and DARTS cells.

A supernet holds every candidate op of every edge and is called with *edge
weights* ``w``: each edge outputs ``Σ_k w[..., e, k] · op_k(x)``. What the
weights are is the search method's business (``jnas.train.oneshot_methods``):
a softmax of per-edge logits (DARTS), a straight-through one-hot Gumbel
sample (GDAS), one operation distribution broadcast to all edges
(ANASOD-DNAS), or the one-hot encoding of a concrete architecture
(``arch_weights``: evaluating an architecture with inherited weights).

Edge-weight shapes (``edge_weight_shape``):

* ``nb201``: ``[6, 5]`` — edges in ``jnas.spaces.nb201.EDGES`` order, ops in
  ``jnas.spaces.nb201.OPS`` order;
* ``darts``: ``[2, 14, 8]`` — (normal, reduce) cell, the 14 edges of a DARTS
  search cell (node ``i`` = 0..3 reads inputs 0..i+1; edge ``EDGE_OFFSET[i] +
  j`` is input ``j`` of node ``i``), ops in ``jnas.spaces.darts.OPS`` order
  (``none`` first).

The architecture parameters of a method live in the supernet as an
``ArchParam`` variable (``Supernet.arch``), a ``nnx.Variable`` subclass that
is not an ``nnx.Param``: splitting with ``nnx.Param`` gives the weights alone,
so the weight optimizer never touches them.

As in DARTS's search network, BatchNorm inside the cells has no affine
parameters (``affine=False``) and the DARTS cell's pooling candidates are
followed by one; the stem and the NB201 reduction blocks keep theirs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jnas.errors import bad_argument, check_int
from jnas.models import ops
from jnas.models.nb201 import edge_op as nb201_edge_op
from jnas.spaces import darts as darts_space
from jnas.spaces import nb201 as nb201_space

#: spaces with a supernet
SPACES = ("nb201", "darts")
#: DARTS search cell: node i (0..3) reads inputs 0..i+1; its edges start at EDGE_OFFSET[i]
DARTS_EDGE_OFFSET = (0, 2, 5, 9)
DARTS_SEARCH_EDGES = 14


class ArchParam(nnx.Variable):
    """Architecture parameters (logits or an operation distribution): updated by the architecture step only."""


class MixedOp(nnx.Module):
    """``Σ_k w[k] · op_k(x)`` over the candidate ops of one edge."""

    def __init__(self, candidates):
        self.ops = nnx.List(list(candidates))

    def __call__(self, x, w):
        out = None
        for k, op in enumerate(self.ops):
            y = w[k].astype(x.dtype) * op(x)
            out = y if out is None else out + y
        return out


def edge_weight_shape(space: str) -> tuple[int, ...]:
    """Shape of the edge weights of the supernet of ``space``."""
    if space == "nb201":
        return (nb201_space.N_EDGES, nb201_space.N_OPS)
    if space == "darts":
        return (darts_space.N_CELLS, DARTS_SEARCH_EDGES, darts_space.N_OPS)
    raise bad_argument("space", space, f"one of {', '.join(SPACES)}")


def op_names(space: str) -> tuple[str, ...]:
    """The candidate ops of every edge of the supernet of ``space``, in edge-weight order."""
    edge_weight_shape(space)
    return nb201_space.OPS if space == "nb201" else darts_space.OPS


class NB201SearchCell(nnx.Module):
    """An NB201 cell with a mixed op on each of its 6 edges; ``(x, w float[6, 5]) -> node 3``."""

    def __init__(self, c: int, *, rngs: nnx.Rngs):
        def candidates():
            for name in nb201_space.OPS:
                if name.startswith("nor_conv"):
                    yield ops.ReLUConvBN(c, c, int(name[-1]), affine=False, rngs=rngs)
                else:
                    yield nb201_edge_op(name, c, rngs=rngs)

        self.edges = nnx.List([MixedOp(candidates()) for _ in nb201_space.EDGES])

    def __call__(self, x, w):
        nodes = [x]
        for j in (1, 2, 3):
            terms = [op(nodes[src], w[e]) for e, (op, (src, dst)) in enumerate(zip(self.edges, nb201_space.EDGES))
                     if dst == j]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[3]


class NB201Supernet(nnx.Module):
    """The NB201 macro skeleton (``jnas.models.nb201``) with search cells; ``(x [B,H,W,3], w) -> logits``."""

    def __init__(self, arch_init, *, num_classes: int, rngs: nnx.Rngs, channels: int = 16, cells_per_stage: int = 5):
        self.arch = ArchParam(jnp.asarray(arch_init, jnp.float32))
        self.stem_conv = ops.conv(3, channels, 3, rngs=rngs)
        self.stem_bn = ops.batch_norm(channels, rngs=rngs)
        layers, c = [], channels
        for stage in range(3):
            if stage > 0:
                layers.append(ops.ResidualReduction(c, 2 * c, rngs=rngs))
                c *= 2
            layers.extend(NB201SearchCell(c, rngs=rngs) for _ in range(cells_per_stage))
        self.layers = nnx.List(layers)
        self.last_bn = ops.batch_norm(c, rngs=rngs)
        self.classifier = nnx.Linear(c, num_classes, rngs=rngs)

    def __call__(self, x, w):
        x = self.stem_bn(self.stem_conv(x))
        for layer in self.layers:
            x = layer(x, w) if isinstance(layer, NB201SearchCell) else layer(x)
        x = jax.nn.relu(self.last_bn(x))
        return self.classifier(jnp.mean(x, axis=(1, 2)))


class DartsSearchCell(nnx.Module):
    """A DARTS search cell: 4 nodes, a mixed op on each of 14 edges; ``(s0, s1, w float[14, 8]) -> [B,H',W',4c]``."""

    def __init__(self, c_pp: int, c_p: int, c: int, *, reduction: bool, reduction_prev: bool, rngs: nnx.Rngs):
        if reduction_prev:
            self.pre0 = ops.FactorizedReduce(c_pp, c, affine=False, rngs=rngs)
        else:
            self.pre0 = ops.ReLUConvBN(c_pp, c, 1, 1, 0, affine=False, rngs=rngs)
        self.pre1 = ops.ReLUConvBN(c_p, c, 1, 1, 0, affine=False, rngs=rngs)
        edges = []
        for node in range(darts_space.N_NODES):
            for inp in range(node + 2):
                stride = 2 if reduction and inp < 2 else 1
                edges.append(MixedOp(self._candidate(name, c, stride, rngs) for name in darts_space.OPS))
        self.edges = nnx.List(edges)

    @staticmethod
    def _candidate(name: str, c: int, stride: int, rngs: nnx.Rngs):
        op = ops.DARTS_OPS[name](c, stride, rngs, affine=False)
        if "pool" in name:  # as DARTS's search cell: a pool's output is batch-normalised like the convs'
            op = nnx.Sequential(op, ops.batch_norm(c, affine=False, rngs=rngs))
        return op

    def __call__(self, s0, s1, w):
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(darts_space.N_NODES):
            off = DARTS_EDGE_OFFSET[node]
            terms = [self.edges[off + j](h, w[off + j]) for j, h in enumerate(states)]
            states.append(sum(terms[1:], terms[0]))
        return jnp.concatenate(states[2:], axis=-1)


class DartsSupernet(nnx.Module):
    """DARTS's search network (stem ``3·channels``, ``layers`` cells, reductions at ``layers//3`` and
    ``2·layers//3``); ``(x, w float[2, 14, 8]) -> logits``."""

    def __init__(self, arch_init, *, num_classes: int, rngs: nnx.Rngs, channels: int = 16, layers: int = 8):
        self.arch = ArchParam(jnp.asarray(arch_init, jnp.float32))
        c_stem = 3 * channels
        self.stem_conv = ops.conv(3, c_stem, 3, rngs=rngs)
        self.stem_bn = ops.batch_norm(c_stem, rngs=rngs)
        reductions = (layers // 3, 2 * layers // 3)
        c_pp, c_p, c = c_stem, c_stem, channels
        cells, is_reduction, reduction_prev = [], [], False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cells.append(DartsSearchCell(c_pp, c_p, c, reduction=reduction, reduction_prev=reduction_prev, rngs=rngs))
            is_reduction.append(reduction)
            reduction_prev = reduction
            c_pp, c_p = c_p, darts_space.N_NODES * c
        self.is_reduction = tuple(is_reduction)
        self.cells = nnx.List(cells)
        self.classifier = nnx.Linear(c_p, num_classes, rngs=rngs)

    def __call__(self, x, w):
        s0 = s1 = self.stem_bn(self.stem_conv(x))
        for cell, red in zip(self.cells, self.is_reduction):
            s0, s1 = s1, cell(s0, s1, w[1 if red else 0])
        return self.classifier(jnp.mean(s1, axis=(1, 2)))


#: supernet network options per space (``--model``), with defaults (DARTS search: 16 channels, 8 cells)
NETWORK_OPTIONS = {
    "nb201": {"channels": 16, "cells_per_stage": 5},
    "darts": {"channels": 16, "layers": 8},
}


def check_supernet_options(space: str, options: dict) -> dict:
    """Every ``NETWORK_OPTIONS`` value of ``space`` (``options`` over the defaults); one-line errors."""
    edge_weight_shape(space)
    known = NETWORK_OPTIONS[space]
    for k in options:
        if k not in known:
            raise bad_argument("--model", k, f"a supernet option of {space}: {', '.join(known)}")
    return {k: check_int(f"--model {k}", options.get(k, v), 1) for k, v in known.items()}


def build_supernet(space: str, arch_init, *, num_classes: int, rngs: nnx.Rngs, **options) -> nnx.Module:
    """The supernet of ``space`` holding ``arch_init`` as its ``ArchParam``; ``options``: ``NETWORK_OPTIONS``."""
    opts = check_supernet_options(space, options)
    num_classes = check_int("num_classes", num_classes, 1)
    cls = NB201Supernet if space == "nb201" else DartsSupernet
    return cls(arch_init, num_classes=num_classes, rngs=rngs, **opts)


def arch_weights(space: str, arch) -> jax.Array:
    """One-hot edge weights of a concrete architecture (``edge_weight_shape(space)``, float32).

    NB201: ``one_hot(arch)``; DARTS: for each cell, weight 1 on the chosen
    op of each of the 8 chosen edges, 0 elsewhere (an unchosen edge is
    ``none``). Jittable.
    """
    a = jnp.asarray(arch)
    if space == "nb201":
        return jax.nn.one_hot(a, nb201_space.N_OPS, dtype=jnp.float32)
    if space == "darts":
        node = jnp.asarray(darts_space.EDGE_NODE)
        edge = jnp.asarray(DARTS_EDGE_OFFSET)[node][None, :] + a[..., 0]  # [2, 8]
        w = jnp.zeros(edge_weight_shape("darts"), jnp.float32)
        cell = jnp.arange(darts_space.N_CELLS)[:, None]
        return w.at[cell, edge, a[..., 1]].set(1.0)
    raise bad_argument("space", space, f"one of {', '.join(SPACES)}")


def derive_argmax(space: str, strength: np.ndarray) -> np.ndarray:
    """The architecture of per-edge op strengths ``strength`` (``edge_weight_shape(space)``).

    NB201: the strongest op of every edge (``int8[6]``; ``none`` allowed, as
    NB201 has it). DARTS genotype: per node, the two incoming edges whose
    strongest non-``none`` op is strongest, each with that op, inputs sorted
    (``int8[2, 8, 2]``).
    """
    s = np.asarray(strength, np.float64)
    if s.shape != edge_weight_shape(space):
        raise bad_argument("strength", s.shape, f"an array of shape {edge_weight_shape(space)}")
    if space == "nb201":
        return np.argmax(s, axis=-1).astype(np.int8)
    out = np.zeros((darts_space.N_CELLS, darts_space.N_EDGES, 2), np.int8)
    for cell in range(darts_space.N_CELLS):
        for node in range(darts_space.N_NODES):
            off = DARTS_EDGE_OFFSET[node]
            block = s[cell, off:off + node + 2, 1:]  # drop `none` (op 0)
            best_op = np.argmax(block, axis=1) + 1
            best = np.max(block, axis=1)
            inputs = sorted(np.argsort(-best, kind="stable")[:2].tolist())
            for slot, inp in enumerate(inputs):
                out[cell, 2 * node + slot] = (inp, best_op[inp])
    return out


__all__ = [
    "ArchParam", "DartsSearchCell", "DartsSupernet", "MixedOp", "NB201SearchCell", "NB201Supernet",
    "NETWORK_OPTIONS", "SPACES", "arch_weights", "build_supernet", "check_supernet_options",
    "derive_argmax", "edge_weight_shape", "op_names",
]
