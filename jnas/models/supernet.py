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

Method-specific structure (``build_supernet`` keywords): ``op_mask`` keeps
only some ops on each edge (P-DARTS's pruning; the mixed op reads the
weights of the ops it holds), ``partial_channels`` sends a share of each
edge's channels through its ops (PC-DARTS). A supernet called with ``drop =
(rate, key)`` applies dropout to the stride-1 ``skip_connect`` outputs
(P-DARTS).

The edges that read the same state run as one call vmapped over their
stacked parameters (``run_edges``; ``batch_edges=False`` calls them one by
one, with the same result): the traced program then holds one copy of each
op per state rather than per edge, which cuts XLA's compile time (a DARTS
search cell: 14 edges, 5 states read) and runs the out-edges' first
convolutions as one larger one.

The architecture parameters of a method live in the supernet as an
``ArchParam`` variable (``Supernet.arch``), a ``nnx.Variable`` subclass that
is not an ``nnx.Param``: splitting with ``nnx.Param`` gives the weights alone,
so the weight optimizer never touches them.

As in DARTS's search network, BatchNorm inside the cells has no affine
parameters (``affine=False``) and the DARTS cell's pooling candidates are
followed by one; the stem and the NB201 reduction blocks keep theirs.
"""

from __future__ import annotations

import functools

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
    """``Σ_k w[k] · op_k(x)`` over the candidate ops of one edge.

    ``candidates``: the op modules; ``index``: each one's position in the edge
    weights (default ``0, 1, …``; an op pruned from the edge, as P-DARTS does,
    has no module and its weight is ignored); ``skip``: the index of the op
    whose output skip dropout applies to (the stride-1 ``skip_connect``), or ``None``.

    With ``partial > 1`` (PC-DARTS's partial channel connection, Xu et al.,
    2020) the ops see only the first ``C / partial`` channels (the modules are
    built for that many); the other channels bypass them (max-pooled 2×2 on a
    stride-2 edge), are scaled by ``Σ_k w[k]`` and concatenated after the ops'
    output, and the channels are shuffled in ``partial`` groups. With edge
    weights ``β_e · softmax(α_e)`` (PC-DARTS's edge normalisation) that is
    ``β_e · shuffle(concat(Σ_k softmax(α_e)_k op_k(x_1), x_2))``, as PC-DARTS computes.
    """

    def __init__(self, candidates, *, index=None, partial: int = 1, stride: int = 1, skip: int | None = None):
        self.ops = nnx.List(list(candidates))
        self.index = tuple(range(len(self.ops)) if index is None else (int(k) for k in index))
        if len(self.index) != len(self.ops):
            raise bad_argument("index", self.index, f"{len(self.ops)} op positions, one per candidate")
        self.partial = partial
        self.stride = stride
        self.skip = skip

    def __call__(self, x, w, drop=None):
        """``x [B, H, W, C]``, ``w float[n_ops]``; ``drop``: ``(rate, key)`` of skip dropout or ``None``."""
        c = x.shape[-1]
        xp = x[..., : c // self.partial] if self.partial > 1 else x
        out = None
        for k, op in zip(self.index, self.ops):
            y = op(xp)
            if drop is not None and k == self.skip:
                y = dropout(y, *drop)
            y = w[k].astype(x.dtype) * y
            out = y if out is None else out + y
        if self.partial == 1:
            return out
        rest = x[..., c // self.partial:]
        if self.stride > 1:
            rest = max_pool_2x2(rest)
        out = jnp.concatenate([out, jnp.sum(w).astype(x.dtype) * rest], axis=-1)
        return channel_shuffle(out, self.partial)


def dropout(x, rate, key):
    """Inverted dropout: each element zeroed with probability ``rate`` (a traced scalar in ``[0, 1)``), the rest
    scaled by ``1 / (1 - rate)``."""
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate).astype(x.dtype), jnp.zeros((), x.dtype))


def max_pool_2x2(x):
    """2×2 max pooling with stride 2 (``[B, H, W, C] -> [B, ⌈H/2⌉, ⌈W/2⌉, C]``, an odd edge padded), the size a
    stride-2 op of the DARTS cell gives."""
    pad = ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0))
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), pad)


def channel_shuffle(x, groups: int):
    """Interleave ``groups`` channel groups (``[..., C]``; channel ``g · C/groups + j`` moves to ``j · groups + g``)."""
    c = x.shape[-1]
    y = x.reshape(*x.shape[:-1], groups, c // groups)
    return jnp.swapaxes(y, -1, -2).reshape(x.shape)


def node_softmax(space: str, beta) -> jax.Array:
    """PC-DARTS's edge normalisation: softmax of per-edge ``beta`` (``[..., n_edges]``) over each node's incoming
    edges (NB201: nodes 1-3 have 1, 2 and 3; DARTS search cell: nodes 0-3 have 2, 3, 4 and 5)."""
    if space == "nb201":
        groups = [[e for e, (_, dst) in enumerate(nb201_space.EDGES) if dst == j] for j in (1, 2, 3)]
    elif space == "darts":
        groups = [list(range(off, off + node + 2)) for node, off in enumerate(DARTS_EDGE_OFFSET)]
    else:
        raise bad_argument("space", space, f"one of {', '.join(SPACES)}")
    parts = [jax.nn.softmax(beta[..., g], axis=-1) for g in groups]
    order = np.argsort(np.concatenate(groups))
    return jnp.concatenate(parts, axis=-1)[..., order]


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
    """An NB201 cell with a mixed op on each of its 6 edges; ``(x, w float[6, 5]) -> node 3``.

    ``op_mask`` (``bool[6, 5]`` or ``None``): the ops each edge holds; ``partial``: PC-DARTS's channel share;
    ``batch_edges``: run the edges that read the same node as one vmapped call (``run_edges``).
    """

    def __init__(self, c: int, *, rngs: nnx.Rngs, op_mask=None, partial: int = 1, batch_edges: bool = True):
        self.batch_edges = bool(batch_edges)
        cp = c // partial

        def candidate(name):
            if name.startswith("nor_conv"):
                return ops.ReLUConvBN(cp, cp, int(name[-1]), affine=False, rngs=rngs)
            return nb201_edge_op(name, cp, rngs=rngs)

        skip = nb201_space.OPS.index("skip_connect")
        edges = []
        for e in range(nb201_space.N_EDGES):
            index = [k for k in range(nb201_space.N_OPS) if op_mask is None or op_mask[e][k]]
            edges.append(MixedOp([candidate(nb201_space.OPS[k]) for k in index], index=index, partial=partial,
                                 skip=skip))
        self.edges = nnx.List(edges)

    def __call__(self, x, w, drop=None):
        nodes = [x]
        outs = {}  # edge -> output, until its node is summed
        for src in range(4):
            if src >= 1:  # every input of node src is computed
                terms = [outs.pop(e) for e, (_, dst) in enumerate(nb201_space.EDGES) if dst == src]
                nodes.append(sum(terms[1:], terms[0]))
            edges = [e for e, (s, _) in enumerate(nb201_space.EDGES) if s == src]
            if self.batch_edges:
                outs.update(zip(edges, run_edges([self.edges[e] for e in edges], nodes[src], w, edges, drop)))
            else:
                outs.update((e, self.edges[e](nodes[src], w[e], _edge_drop(drop, e))) for e in edges)
        return nodes[3]


def run_edges(mods, x, w, edges, drop) -> list:
    """The outputs of the mixed ops ``mods`` of edges ``edges`` that read the same input ``x``.

    ``w``: the cell's edge weights ``[n_edges, n_ops]``; ``drop``: the cell's
    skip-dropout ``(rate, key)`` or ``None``. Ops of the same structure (the
    same candidates, stride and channel share: every out-edge of a state of an
    unpruned cell) run as one call vmapped over their stacked parameters, so
    the traced program holds one copy of each op per input state instead of
    one per edge (XLA:CPU's compile time grows faster than linearly in the
    program's size). Each vmapped edge reads its own copy of ``x``
    (:func:`fan_out`). The results and the updated BatchNorm statistics are
    those of calling each op on its own.
    """
    out = [None] * len(mods)
    split = [nnx.split(m, nnx.Param, ...) for m in mods]
    groups: list[list[int]] = []
    for i, (graphdef, *_) in enumerate(split):
        for g in groups:
            if split[g[0]][0] == graphdef:
                g.append(i)
                break
        else:
            groups.append([i])
    for g in groups:
        if len(g) == 1:
            i = g[0]
            out[i] = mods[i](x, w[edges[i]], _edge_drop(drop, edges[i]))
            continue
        graphdef = split[g[0]][0]
        params, rest = (jax.tree.map(lambda *a: jnp.stack(a), *(split[i][k] for i in g)) for k in (1, 2))
        ids = np.asarray([edges[i] for i in g])
        keys = None if drop is None else jax.vmap(lambda e: jax.random.fold_in(drop[1], e))(jnp.asarray(ids))

        def one(p, r, wr, key, x, graphdef=graphdef):
            m = nnx.merge(graphdef, p, r)
            y = m(x, wr, None if key is None else (drop[0], key))
            return y, nnx.split(m, nnx.Param, ...)[2]

        ys, new_rest = jax.vmap(one)(params, rest, w[ids], keys, fan_out(x, len(g)))
        for n, i in enumerate(g):
            nnx.update(mods[i], jax.tree.map(lambda a, n=n: a[n], new_rest))
            out[i] = ys[n]
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def fan_out(x, n: int):
    """``n`` copies of ``x`` stacked on a new leading axis; its gradient adds the copies' gradients one by one.

    :func:`run_edges` hands each vmapped edge its own copy of the input. With
    the input unbatched (or broadcast), the gradient's sum over the edges is
    a reduction that XLA:CPU merges with the edges' depthwise-convolution
    gradients into one YNNPACK fusion, which materialises each of its
    ``edges × k²`` terms (a 5×5 depthwise convolution read by 4 edges: 0.8 GB
    of temporaries instead of 42 MB at batch 64, 32×32×16). A chain of adds
    stays an ordinary fused loop.
    """
    return jnp.broadcast_to(x, (n, *x.shape))


def _fan_out_fwd(x, n):
    return fan_out(x, n), None


def _fan_out_bwd(n, _, g):
    total = g[0]
    for i in range(1, n):
        total = total + g[i]
    return (total,)


fan_out.defvjp(_fan_out_fwd, _fan_out_bwd)


def _edge_drop(drop, i: int):
    """The skip-dropout ``(rate, key)`` of edge/cell ``i`` (its own key), or ``None``."""
    return None if drop is None else (drop[0], jax.random.fold_in(drop[1], i))


class NB201Supernet(nnx.Module):
    """The NB201 macro skeleton (``jnas.models.nb201``) with search cells; ``(x [B,H,W,3], w) -> logits``;
    ``batch_edges``: see ``NB201SearchCell``."""

    def __init__(self, arch_init, *, num_classes: int, rngs: nnx.Rngs, channels: int = 16, cells_per_stage: int = 5,
                 op_mask=None, partial_channels: int = 1, batch_edges: bool = True):
        self.arch = ArchParam(jnp.asarray(arch_init, jnp.float32))
        self.stem_conv = ops.conv(3, channels, 3, rngs=rngs)
        self.stem_bn = ops.batch_norm(channels, rngs=rngs)
        layers, c = [], channels
        for stage in range(3):
            if stage > 0:
                layers.append(ops.ResidualReduction(c, 2 * c, rngs=rngs))
                c *= 2
            layers.extend(NB201SearchCell(c, rngs=rngs, op_mask=op_mask, partial=partial_channels,
                                          batch_edges=batch_edges) for _ in range(cells_per_stage))
        self.layers = nnx.List(layers)
        self.last_bn = ops.batch_norm(c, rngs=rngs)
        self.classifier = nnx.Linear(c, num_classes, rngs=rngs)

    def __call__(self, x, w, drop=None):
        """``drop``: ``(rate, key)`` of dropout on the ``skip_connect`` outputs (P-DARTS), or ``None``."""
        x = self.stem_bn(self.stem_conv(x))
        for i, layer in enumerate(self.layers):
            x = layer(x, w, _edge_drop(drop, i)) if isinstance(layer, NB201SearchCell) else layer(x)
        x = jax.nn.relu(self.last_bn(x))
        return self.classifier(jnp.mean(x, axis=(1, 2)))


class DartsSearchCell(nnx.Module):
    """A DARTS search cell: 4 nodes, a mixed op on each of 14 edges; ``(s0, s1, w float[14, 8]) -> [B,H',W',4c]``.

    ``op_mask`` (``bool[14, 8]`` or ``None``): the ops each edge holds; ``partial``: PC-DARTS's channel share;
    ``batch_edges``: run the edges that read the same state as one vmapped call (``run_edges``: the same
    result, a program about a third the size); ``False`` calls the 14 edges one by one.
    """

    def __init__(self, c_pp: int, c_p: int, c: int, *, reduction: bool, reduction_prev: bool, rngs: nnx.Rngs,
                 op_mask=None, partial: int = 1, batch_edges: bool = True):
        self.batch_edges = bool(batch_edges)
        if reduction_prev:
            self.pre0 = ops.FactorizedReduce(c_pp, c, affine=False, rngs=rngs)
        else:
            self.pre0 = ops.ReLUConvBN(c_pp, c, 1, 1, 0, affine=False, rngs=rngs)
        self.pre1 = ops.ReLUConvBN(c_p, c, 1, 1, 0, affine=False, rngs=rngs)
        edges = []
        for node in range(darts_space.N_NODES):
            for inp in range(node + 2):
                e = DARTS_EDGE_OFFSET[node] + inp
                stride = 2 if reduction and inp < 2 else 1
                index = [k for k in range(darts_space.N_OPS) if op_mask is None or op_mask[e][k]]
                cands = [self._candidate(darts_space.OPS[k], c // partial, stride, rngs) for k in index]
                # a stride-2 skip is a FactorizedReduce, not an identity: skip dropout is for identities
                skip = darts_space.OPS.index("skip_connect") if stride == 1 else None
                edges.append(MixedOp(cands, index=index, partial=partial, stride=stride, skip=skip))
        self.edges = nnx.List(edges)

    @staticmethod
    def _candidate(name: str, c: int, stride: int, rngs: nnx.Rngs):
        op = ops.DARTS_OPS[name](c, stride, rngs, affine=False)
        if "pool" in name:  # as DARTS's search cell: a pool's output is batch-normalised like the convs'
            op = nnx.Sequential(op, ops.batch_norm(c, affine=False, rngs=rngs))
        return op

    def __call__(self, s0, s1, w, drop=None):
        states = [self.pre0(s0), self.pre1(s1)]
        outs = {}  # edge -> output, until its node is summed
        for src in range(darts_space.N_NODES + 2):
            if src >= 2:  # every input of node src - 2 is computed
                off = DARTS_EDGE_OFFSET[src - 2]
                terms = [outs.pop(off + j) for j in range(src)]
                states.append(sum(terms[1:], terms[0]))
            edges = [DARTS_EDGE_OFFSET[node] + src for node in range(max(src - 1, 0), darts_space.N_NODES)]
            if self.batch_edges:
                outs.update(zip(edges, run_edges([self.edges[e] for e in edges], states[src], w, edges, drop)))
            else:
                outs.update((e, self.edges[e](states[src], w[e], _edge_drop(drop, e))) for e in edges)
        return jnp.concatenate(states[2:], axis=-1)


class DartsSupernet(nnx.Module):
    """DARTS's search network (stem ``3·channels``, ``layers`` cells, reductions at ``layers//3`` and
    ``2·layers//3``); ``(x, w float[2, 14, 8]) -> logits``. ``op_mask`` (``bool[2, 14, 8]``): the ops each edge
    of the normal and the reduction cells holds; ``batch_edges``: see ``DartsSearchCell``."""

    def __init__(self, arch_init, *, num_classes: int, rngs: nnx.Rngs, channels: int = 16, layers: int = 8,
                 op_mask=None, partial_channels: int = 1, batch_edges: bool = True):
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
            mask = None if op_mask is None else op_mask[1 if reduction else 0]
            cells.append(DartsSearchCell(c_pp, c_p, c, reduction=reduction, reduction_prev=reduction_prev, rngs=rngs,
                                         op_mask=mask, partial=partial_channels, batch_edges=batch_edges))
            is_reduction.append(reduction)
            reduction_prev = reduction
            c_pp, c_p = c_p, darts_space.N_NODES * c
        self.is_reduction = tuple(is_reduction)
        self.cells = nnx.List(cells)
        self.classifier = nnx.Linear(c_p, num_classes, rngs=rngs)

    def __call__(self, x, w, drop=None):
        """``drop``: ``(rate, key)`` of dropout on the ``skip_connect`` outputs (P-DARTS), or ``None``."""
        s0 = s1 = self.stem_bn(self.stem_conv(x))
        for i, (cell, red) in enumerate(zip(self.cells, self.is_reduction)):
            s0, s1 = s1, cell(s0, s1, w[1 if red else 0], _edge_drop(drop, i))
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


def build_supernet(space: str, arch_init, *, num_classes: int, rngs: nnx.Rngs, op_mask=None,
                   partial_channels: int = 1, **options) -> nnx.Module:
    """The supernet of ``space`` holding ``arch_init`` as its ``ArchParam``; ``options``: ``NETWORK_OPTIONS``.

    The method's structure: ``op_mask`` (``bool``, ``edge_weight_shape(space)``; ``None``: every op on every
    edge) keeps only the marked ops of each edge (P-DARTS's pruning, at least one per edge);
    ``partial_channels`` ``K`` sends ``1/K`` of each edge's channels through its ops (PC-DARTS; every cell's
    channel count must be divisible by ``K``).
    """
    opts = check_supernet_options(space, options)
    num_classes = check_int("num_classes", num_classes, 1)
    k = check_int("partial_channels", partial_channels, 1)
    if op_mask is not None:
        op_mask = np.asarray(op_mask)
        if op_mask.shape != edge_weight_shape(space) or op_mask.dtype != bool or not op_mask.any(-1).all():
            raise bad_argument("op_mask", f"{op_mask.dtype}{list(op_mask.shape)}",
                               f"bool{list(edge_weight_shape(space))} with at least one op per edge")
    if opts["channels"] % k:  # cells double it, so the first cell's count decides
        raise bad_argument("partial_channels", k, f"a divisor of the supernet's {opts['channels']} channels")
    cls = NB201Supernet if space == "nb201" else DartsSupernet
    return cls(arch_init, num_classes=num_classes, rngs=rngs, op_mask=op_mask, partial_channels=k, **opts)


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


def limit_skips(space: str, strength, max_skips: int) -> np.ndarray:
    """``derive_argmax`` with at most ``max_skips`` ``skip_connect`` edges in the normal cell (P-DARTS's
    search-space regularisation; NB201: in its one cell): while the derived normal cell has more, the
    chosen skip with the lowest strength is struck out and the cell derived again."""
    s = np.array(strength, np.float64)
    skip = op_names(space).index("skip_connect")
    while True:
        arch = derive_argmax(space, s)
        if space == "nb201":
            chosen = np.flatnonzero(arch == skip)
            if len(chosen) <= max_skips:
                return arch
            s[chosen[np.argmin(s[chosen, skip])], skip] = -np.inf
        else:
            inputs, ops_ = arch[0, :, 0].astype(int), arch[0, :, 1]
            slots = np.flatnonzero(ops_ == skip)
            if len(slots) <= max_skips:
                return arch
            edges = [DARTS_EDGE_OFFSET[slot // 2] + inputs[slot] for slot in slots]
            weakest = min(edges, key=lambda e: s[0, e, skip])
            s[0, weakest, skip] = -np.inf


__all__ = [
    "ArchParam", "DartsSearchCell", "DartsSupernet", "MixedOp", "NB201SearchCell", "NB201Supernet",
    "NETWORK_OPTIONS", "SPACES", "arch_weights", "build_supernet", "channel_shuffle", "check_supernet_options",
    "derive_argmax", "dropout", "edge_weight_shape", "limit_skips", "max_pool_2x2", "node_softmax", "op_names",
]
