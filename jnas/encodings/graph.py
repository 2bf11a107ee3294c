"""Padded graph tensors ``(A, X, mask)`` for GNN predictors, ops as nodes.

The form of the GCN predictor of Mauch et al. ("Efficient Sampling for
Predictor-Based NAS"): ``A[i, j] = 1`` when node ``i`` feeds node ``j`` (row =
source, directed, no self loops), ``X[i]`` one-hot label of node ``i``,
``mask[i]`` True for the nodes that exist. Every space gets a fixed node count
``n`` so batches stack; padding nodes have zero rows/columns in ``A`` and
zero rows in ``X``. Label columns: ``node_labels(space)``.

==========  ===============================================  ============
space       nodes                                            shape of A
==========  ===============================================  ============
nb201       input, 6 edge-op nodes (edge order), output      [8, 8]
nb101       the pruned 7×7 cell; 0 input, 6 output           [7, 7]
darts       per cell: c_{k-2}, c_{k-1}, 8 edge-op nodes,     [2, 11, 11]
            output (every intermediate node feeds the concat)
nbgraph     input, 4 op nodes, output (leaves feed output)   [6, 6]
convnet     input, max_depth layer slots, output (a chain)   [D+2, D+2]
==========  ===============================================  ============

``none`` ops (NB201; DARTS lists one for supernets) stay as nodes labelled
``none`` with ``mask`` True, but with every edge to and from them removed: the
node count stays fixed per space and a ``none`` is visibly "nothing here".
Nodes left without a path through (e.g. behind a ``none``) are kept as they are.
All functions are jittable (``space`` static) and vmappable over ``arch``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jnas.encodings import _layout


def node_labels(space) -> tuple[str, ...]:
    """Names of the columns of ``X`` (node label vocabulary) of ``space``."""
    space = _layout.resolve(space)
    first = ("c_{k-2}", "c_{k-1}") if _layout.family(space) == "darts" else ("input",)
    return first + tuple(space.ops) + ("output",)


def n_nodes(space) -> int:
    """Padded node count ``n`` of one graph of ``space``."""
    space = _layout.resolve(space)
    fam = _layout.family(space)
    if fam == "nb201":
        return 2 + len(space.edges)
    if fam == "convnet":
        return space.max_depth + 2
    return {"nb101": 7, "darts": 11, "nbgraph": 6}[fam]


def _finish(a, labels, mask, n_labels: int, alive=None):
    """Cast, cut ``none`` nodes out of ``A`` (``alive`` False) and zero padding."""
    if alive is not None:
        a = a * alive[:, None] * alive[None, :]
    a = a * mask[:, None] * mask[None, :]
    x = jax.nn.one_hot(labels, n_labels, dtype=jnp.float32) * mask[:, None]
    return a.astype(jnp.float32), x, mask


def _none_id(space) -> int:
    """Op id of ``none`` in ``space.ops``, or -1 when the space has none."""
    return space.ops.index("none") if "none" in space.ops else -1


@functools.lru_cache(maxsize=None)
def _nb201_wiring(edges) -> np.ndarray:
    """``float32[8, 8]`` op-node wiring of the NB201 cell with every op present."""
    n_e = len(edges)
    out_node = max(t for _, t in edges)
    a = np.zeros((n_e + 2, n_e + 2), np.float32)
    for e, (s, t) in enumerate(edges):
        if s == 0:
            a[0, 1 + e] = 1
        if t == out_node:
            a[1 + e, n_e + 1] = 1
        for f, (s2, _) in enumerate(edges):
            if s2 == t:
                a[1 + e, 1 + f] = 1
    return a


def _nb201(space, arch):
    ops = jnp.asarray(arch).astype(jnp.int32)
    n_e = ops.shape[0]
    labels = jnp.concatenate([jnp.zeros((1,), jnp.int32), 1 + ops, jnp.full((1,), 1 + len(space.ops), jnp.int32)])
    io = jnp.ones((1,), bool)
    alive = jnp.concatenate([io, ops != _none_id(space), io])
    mask = jnp.ones((n_e + 2,), bool)
    return _finish(jnp.asarray(_nb201_wiring(tuple(space.edges))), labels, mask, len(space.ops) + 2, alive)


def _nb101(space, arch):
    adj, ops = space.prune(arch)  # vertices off every input->output path become padding
    adj = jnp.asarray(adj).astype(jnp.float32)
    ops = jnp.asarray(ops).astype(jnp.int32)
    n = adj.shape[0]
    node = jnp.arange(n)
    inner = jnp.clip(ops, 0, len(space.ops) - 1)
    labels = jnp.where(node == 0, 0, jnp.where(node == n - 1, len(space.ops) + 1, 1 + inner))
    mask = (node == 0) | (node == n - 1) | ((ops >= 0) & (ops < len(space.ops)))
    return _finish(adj, labels, mask, len(space.ops) + 2)


# DARTS cell: A-node 0, 1 = cell inputs, 2 + k = op of edge k, 10 = output.
# _DARTS_PRODUCES[u, s]: A-node u emits DARTS node s (edges 2m, 2m+1 sum into node m + 2).
_DARTS_PRODUCES = np.zeros((11, 6), np.float32)
_DARTS_PRODUCES[0, 0] = _DARTS_PRODUCES[1, 1] = 1
_DARTS_PRODUCES[2 + np.arange(8), np.arange(8) // 2 + 2] = 1


def _darts_cell(space, cell):
    cell = jnp.asarray(cell).astype(jnp.int32)
    src, ops = cell[:, 0], cell[:, 1]
    reads = jax.nn.one_hot(src, 6, dtype=jnp.float32)  # [8, 6]
    a = jnp.zeros((11, 11), jnp.float32).at[:, 2:10].set(jnp.asarray(_DARTS_PRODUCES) @ reads.T)
    a = a.at[2:10, 10].set(1.0)  # the cell output concatenates every intermediate node
    n_ops = len(space.ops)
    labels = jnp.concatenate([jnp.array([0, 1]), 2 + ops, jnp.array([2 + n_ops])])
    io = jnp.ones((2,), bool)
    alive = jnp.concatenate([io, ops != _none_id(space), io[:1]])
    return _finish(a, labels, jnp.ones((11,), bool), n_ops + 3, alive)


def _darts(space, arch):
    return jax.vmap(lambda c: _darts_cell(space, c))(jnp.asarray(arch))


def _nbgraph(space, arch):
    arch = jnp.asarray(arch).astype(jnp.int32)
    link, ops = arch[:4], arch[4:]
    node = jnp.arange(4)
    # link values already are A indices: 0 = input, k = computing node k (A index k)
    a = jnp.zeros((6, 6), jnp.float32).at[link, 1 + node].set(1.0)
    leaf = ~(link[None, :] == (1 + node)[:, None]).any(axis=1)
    a = a.at[1 + node, 5].set(leaf.astype(jnp.float32))
    labels = jnp.concatenate([jnp.zeros((1,), jnp.int32), 1 + ops, jnp.full((1,), 1 + len(space.ops), jnp.int32)])
    return _finish(a, labels, jnp.ones((6,), bool), len(space.ops) + 2)


def _convnet(space, arch):
    arch = jnp.asarray(arch).astype(jnp.int32)
    d_max = space.max_depth
    depth, ch, k = arch[0], arch[1::2], arch[2::2]
    n = d_max + 2
    node = jnp.arange(n)
    # chain input -> layer 0 -> ... -> layer depth-1 (A index 1 + l), then the output node n - 1
    a = jnp.zeros((n, n), jnp.float32).at[node[:-1], node[:-1] + 1].set((node[:-1] < depth).astype(jnp.float32))
    a = a.at[jnp.clip(depth, 0, d_max), n - 1].set(1.0)
    digit = ch * len(space.kernels) + k
    labels = jnp.concatenate([jnp.zeros((1,), jnp.int32), 1 + digit, jnp.full((1,), 1 + len(space.ops), jnp.int32)])
    mask = (node <= depth) | (node == n - 1)
    return _finish(a, labels, mask, len(space.ops) + 2)


_BUILDERS = {"nb201": _nb201, "nb101": _nb101, "darts": _darts, "nbgraph": _nbgraph, "convnet": _convnet}


def graph_tensors(space, arch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(A float32[n, n], X float32[n, f], mask bool[n])`` of one architecture.

    ``space``: a ``Space`` or a registered name (anything else raises
    ``JnasError``); ``n = n_nodes(space)``, ``f = len(node_labels(space))``.
    DARTS returns a leading cell axis (normal, reduce): ``[2, 11, 11]``,
    ``[2, 11, f]``, ``[2, 11]``.
    """
    space = _layout.resolve(space)
    _layout.family(space)  # raises JnasError for a non-space
    return _graph_tensors(space, _layout.check_arch(space, arch))


@functools.partial(jax.jit, static_argnums=0)
def _graph_tensors(space, arch):
    return _BUILDERS[_layout.family(space)](space, arch)
