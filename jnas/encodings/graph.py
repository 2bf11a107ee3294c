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
            (also ``nb201-3``)
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
Each space builds its own tensors (``Space.graph_tensors``) and says how
(``Space.graph_layout``: label vocabulary, possible edges, cells); this
module checks arguments and jits. All functions are jittable (``space``
static) and vmappable over ``arch``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from jnas.encodings import _layout


def _graph_space(space):
    return _layout.require(_layout.resolve(space), "graph_tensors", "graph tensors")


def node_labels(space) -> tuple[str, ...]:
    """Names of the columns of ``X`` (node label vocabulary) of ``space``."""
    return tuple(_graph_space(space).graph_layout.labels)


def n_nodes(space) -> int:
    """Padded node count ``n`` of one graph of ``space``."""
    return int(np.shape(_graph_space(space).graph_layout.wiring)[-1])


def graph_tensors(space, arch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(A float32[n, n], X float32[n, f], mask bool[n])`` of one architecture.

    ``space``: a ``Space`` or a registered name (anything else raises
    ``JnasError``); ``n = n_nodes(space)``, ``f = len(node_labels(space))``.
    DARTS returns a leading cell axis (normal, reduce): ``[2, 11, 11]``,
    ``[2, 11, f]``, ``[2, 11]``.
    """
    space = _graph_space(space)
    return _graph_tensors(space, _layout.check_arch(space, arch))


@functools.partial(jax.jit, static_argnums=0)
def _graph_tensors(space, arch):
    return space.graph_tensors(arch)
