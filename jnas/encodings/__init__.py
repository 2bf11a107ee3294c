"""Architecture encodings: fixed-length arrays that predictors and strategies consume.

- ``onehot``: adjacency one-hot (BANANAS adjacency encoding).
- ``path``: BANANAS path encoding, truncatable to the shortest paths (``path_multihot``: held sparsely).
- ``opdist``: ANASOD operation distribution, simplex rounding, grid neighbours, decoding.
- ``graph``: padded ``(A, X, mask)`` tensors with ops as nodes, for GNNs.

Every array function takes the space (a ``Space`` or its registered name) as a
static argument and is jittable and vmappable over architectures.
"""

from jnas.encodings import graph, onehot, opdist, path
from jnas.encodings.graph import graph_tensors, n_nodes, node_labels
from jnas.encodings.multihot import MultiHot
from jnas.encodings.onehot import adjacency_onehot, onehot_features
from jnas.encodings.opdist import counts, decode, distribution, grid_neighbours, n_slots, round_to_grid
from jnas.encodings.path import n_path_features, path_encoding, path_features, path_multihot

__all__ = [
    "MultiHot",
    "adjacency_onehot",
    "counts",
    "decode",
    "distribution",
    "graph",
    "graph_tensors",
    "grid_neighbours",
    "n_nodes",
    "n_path_features",
    "n_slots",
    "node_labels",
    "onehot",
    "onehot_features",
    "opdist",
    "path",
    "path_encoding",
    "path_features",
    "path_multihot",
    "round_to_grid",
]
