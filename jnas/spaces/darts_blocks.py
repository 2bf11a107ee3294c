"""DARTS / NASNet cells by number of blocks (``darts-blocks``): the space PNAS grows cells in.

A DARTS intermediate node is a PNAS *block*: two inputs, an op on each,
summed. Here a cell holds ``b`` = 1..4 blocks: intermediate nodes
``2 .. b + 1`` are present, the later ones absent. The array is DARTS's
``int8[2, 8, 2]`` (cell, edge, (input, op)); both edges of an absent node
hold ``(0, none), (1, none)``, and absent nodes are trailing (node ``i``
present implies node ``i - 1`` present). A present node follows the DARTS
rules (distinct inputs among the earlier nodes, sorted; no ``none``), so a
cell of 4 blocks is exactly a ``darts`` cell. The normal and the reduce
cell may hold different numbers of blocks; PNAS ties them by default
(``jnas.strategies.pnas``, ``tie_cells``).

The cell output concatenates its present nodes only (``normal_concat =
[2, .., b + 1]``): the network of a ``b``-block cell is narrower
(``jnas.models.darts``, built with ``space="darts-blocks"``). A ``darts``
supernet scores these cells with one-hot ``none`` weights on the absent
nodes' edges, i.e. a zero node in its fixed four-node concat
(``SUPERNET_SPACE``; ``jnas.benchmarks.supernet``).

Size: per cell ``Σ_{b=1..4} Π_{i<b} C(i + 2, 2) · 7²`` = 1,039,789,114;
the space is that squared.

One edit (``neighbours``) is a DARTS edit of a present node (the op of one
edge, or the input of one edge); no edit changes a cell's block count. PNAS's
expansions add a block (``jnas.strategies.pnas.darts_expansions``).

Self-description: per cell a ``blocks`` decision (1..4), then DARTS's three
decisions per node (input pair, two ops), live only for present nodes
(``conditional``). The one-hot encoding is DARTS's per-edge one-hot of
(input, op), in which an absent edge reads ``none``; the LaNAS relaxation is
the decision one-hot; the graph tensors are DARTS's with the ``none`` edges
cut out. There are no op slots (ANASOD): an op count over a variable number
of edges is not a distribution of fixed size.

Strings are DARTS genotypes with ``2 b`` edges and the concat of each cell::

    Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2],
             reduce=[...], reduce_concat=[2, 3, 4, 5])
"""

from __future__ import annotations

import ast
import math

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jnas.errors import JnasError, is_int
from jnas.spaces import darts as D
from jnas.spaces.base import Decisions, Space

#: the space whose supernet scores these cells (absent nodes as ``none`` edges)
SUPERNET_SPACE = "darts"
#: distinct cells of exactly b blocks, b = 1..4
CELLS_BY_BLOCKS = tuple(
    math.prod(math.comb(i + 2, 2) * (D.N_OPS - 1) ** 2 for i in range(b)) for b in range(1, D.N_NODES + 1))
#: the two edges of an absent node
ABSENT = np.array([[0, D.NONE], [1, D.NONE]], np.int8)

# The (cell, node) each row of ``DartsSpace.neighbours`` edits (op rows, then input rows; see its layout).
_OP_C, _OP_E, _ = (a.reshape(-1) for a in np.meshgrid(
    np.arange(D.N_CELLS), np.arange(D.N_EDGES), np.arange(1, D.N_OPS), indexing="ij"))
_IN_C, _IN_E, _ = (a.reshape(-1) for a in np.meshgrid(
    np.arange(D.N_CELLS), np.arange(D.N_EDGES), np.arange(D.N_NODES + 1), indexing="ij"))
_EDIT_CELL = np.concatenate([_OP_C, _IN_C])
_EDIT_NODE = np.concatenate([_OP_E, _IN_E]) // 2


def present(arch) -> jax.Array:
    """``bool[..., 2, 4]``: which intermediate nodes of each cell are present (first edge's op not ``none``)."""
    a = jnp.asarray(arch)
    return a[..., 0::2, 1] != D.NONE


def blocks(arch) -> jax.Array:
    """``int32[..., 2]``: blocks (present nodes) of the normal and the reduce cell."""
    return jnp.sum(present(arch), axis=-1).astype(jnp.int32)


def with_blocks(arch, b) -> jax.Array:
    """``arch`` (``int8[2, 8, 2]``) cut to ``b`` (``int[2]``) blocks per cell: later nodes made absent."""
    a = jnp.asarray(arch)
    keep = jnp.arange(D.N_NODES)[None, :] < jnp.asarray(b)[:, None]  # [2, 4]
    keep = jnp.repeat(keep, 2, axis=1)[..., None]  # [2, 8, 1]
    absent = jnp.tile(jnp.asarray(ABSENT, a.dtype), (D.N_NODES, 1))  # [8, 2]
    return jnp.where(keep, a, absent[None])


class DartsBlocksSpace(D.DartsSpace):
    """DARTS normal + reduce cells of 1 to 4 blocks each (≈ 1.08e18 architectures)."""

    name = "darts-blocks"
    supernet_space = SUPERNET_SPACE

    # no op slots here; the LaNAS relaxation is the (generic) decision one-hot
    op_slot_layout = Space.op_slot_layout
    op_slots = Space.op_slots
    with_op_slots = Space.with_op_slots
    relaxation = Space.relaxation

    @property
    def size(self) -> int:
        return sum(CELLS_BY_BLOCKS) ** D.N_CELLS

    # ----- array primitives ----------------------------------------------------------
    def is_valid(self, arch):
        a = jnp.asarray(arch).astype(jnp.int32)
        inp, op = a[..., 0], a[..., 1]
        edge_ok = (inp >= 0) & (inp < jnp.asarray(D.EDGE_LIMIT)) & (op > D.NONE) & (op < D.N_OPS)
        node_inp = inp.reshape(*inp.shape[:-1], D.N_NODES, 2)
        node_op = op.reshape(*op.shape[:-1], D.N_NODES, 2)
        node_ok = edge_ok.reshape(node_inp.shape).all(-1) & (node_inp[..., 0] < node_inp[..., 1])
        absent_ok = (node_inp[..., 0] == 0) & (node_inp[..., 1] == 1) & (node_op == D.NONE).all(-1)
        here = node_op[..., 0] != D.NONE
        ok = jnp.where(here, node_ok, absent_ok)
        trailing = here[..., 0] & jnp.all(here[..., 1:] <= here[..., :-1], axis=-1)
        return jnp.all(ok) & jnp.all(trailing)

    def sample(self, key):
        """Uniform over the space: each cell's block count by its share of cells, then a uniform cell of it."""
        k_b, k_arch = jax.random.split(key)
        logits = jnp.log(jnp.asarray(CELLS_BY_BLOCKS, jnp.float32))
        b = jax.random.categorical(k_b, logits, shape=(D.N_CELLS,)) + 1
        return with_blocks(super().sample(k_arch), b).astype(jnp.int8)

    def neighbours(self, arch):
        """DARTS's 192 rows (op edits, then input edits), valid only where the edited node is present."""
        nbrs, mask = super().neighbours(arch)
        here = present(arch)[jnp.asarray(_EDIT_CELL), jnp.asarray(_EDIT_NODE)]
        return nbrs, mask & here

    def crossover(self, key, a, b):
        """Each cell's block count from one parent; each node it keeps from a parent that has it."""
        k_count, k_node = jax.random.split(key)
        a, b = jnp.asarray(a), jnp.asarray(b)
        ba, bb = blocks(a), blocks(b)
        n = jnp.where(jax.random.bernoulli(k_count, 0.5, (D.N_CELLS,)), bb, ba)
        node = jnp.arange(D.N_NODES)[None, :]
        a_has, b_has = node < ba[:, None], node < bb[:, None]
        from_a = jnp.where(a_has & b_has, jax.random.bernoulli(k_node, 0.5, (D.N_CELLS, D.N_NODES)), a_has)
        child = jnp.where(jnp.repeat(from_a, 2, axis=1)[..., None], a, b)
        return with_blocks(child, n).astype(jnp.int8)

    # ----- self-description ---------------------------------------------------------------
    @property
    def decisions(self) -> Decisions:
        """Per cell: ``blocks`` (1..4), then per node DARTS's input pair, op_a and op_b (live for present nodes)."""
        base = super().decisions
        per = 3 * D.N_NODES
        card, names, values = [], [], []
        for c, cell in enumerate(D.CELLS):
            card += [D.N_NODES] + base.cardinality[c * per:(c + 1) * per].tolist()
            names += [f"{cell}/blocks"] + list(base.names[c * per:(c + 1) * per])
            values += [tuple(str(b) for b in range(1, D.N_NODES + 1))] + list(base.values[c * per:(c + 1) * per])
        return Decisions(np.array(card, np.int32), tuple(names), tuple(values), True)

    def to_decisions(self, arch):
        t = super().to_decisions(arch).reshape(D.N_CELLS, D.N_NODES, 3)
        t = jnp.where(present(arch)[..., None], t, 0).reshape(D.N_CELLS, -1)
        return jnp.concatenate([blocks(arch)[:, None] - 1, t], axis=1).reshape(-1)

    def from_decisions(self, tokens):
        t = jnp.asarray(tokens).astype(jnp.int32).reshape(D.N_CELLS, 1 + 3 * D.N_NODES)
        b = jnp.clip(t[:, 0], 0, D.N_NODES - 1) + 1
        return with_blocks(super().from_decisions(t[:, 1:].reshape(-1)), b).astype(jnp.int8)

    def live_decisions(self, tokens):
        t = jnp.asarray(tokens).astype(jnp.int32).reshape(D.N_CELLS, 1 + 3 * D.N_NODES)
        b = jnp.clip(t[:, 0], 0, D.N_NODES - 1) + 1
        nodes = jnp.repeat(jnp.arange(D.N_NODES)[None, :] < b[:, None], 3, axis=1)
        return jnp.concatenate([jnp.ones((D.N_CELLS, 1), bool), nodes], axis=1).reshape(-1)

    # ----- host-side ----------------------------------------------------------------
    def to_string(self, arch) -> str:
        a = np.asarray(arch).astype(int).reshape(D.N_CELLS, D.N_EDGES, 2)
        parts = []
        for c, cell in enumerate(D.CELLS):
            n = int(np.sum(a[c, 0::2, 1] != D.NONE))
            edges = ", ".join(f"('{D.OPS[a[c, e, 1]]}', {a[c, e, 0]})" for e in range(2 * n))
            parts.append(f"{cell}=[{edges}], {cell}_concat={list(range(2, n + 2))}")
        return f"Genotype({', '.join(parts)})"

    def from_string(self, text: str):
        expected = ("a DARTS genotype of 1 to 4 nodes per cell like \"Genotype(normal=[('sep_conv_3x3', 0), "
                    "('skip_connect', 1)], normal_concat=[2], reduce=[...], reduce_concat=[...])\"")
        fields = D.genotype_fields(text, expected)
        out = np.tile(ABSENT, (D.N_CELLS, D.N_NODES, 1))
        for c, cell in enumerate(D.CELLS):
            edges = _parse_partial_edges(cell, fields[cell])
            out[c, :len(edges)] = edges
            want = list(range(2, len(edges) // 2 + 2))
            if f"{cell}_concat" in fields and D._parse_concat(fields[f"{cell}_concat"]) != want:
                raise JnasError(f"arch: {cell}_concat must be {want} (its {len(edges) // 2} nodes) in {text!r}")
        return D.canonical(jnp.asarray(out))

    def to_networkx(self, arch):
        """As ``darts``'s graph, with only the present nodes (and their edges) of each cell."""
        a = np.asarray(arch).astype(int).reshape(D.N_CELLS, D.N_EDGES, 2)
        g = nx.DiGraph()
        for c, cell in enumerate(D.CELLS):
            n = int(np.sum(a[c, 0::2, 1] != D.NONE))
            out = n + 2
            for j in range(out + 1):
                g.add_node((cell, j), op="input" if j < 2 else "sum" if j < out else "concat")
            for e in range(2 * n):
                g.add_edge((cell, int(a[c, e, 0])), (cell, e // 2 + 2), op=D.OPS[a[c, e, 1]])
            for j in range(2, out):
                g.add_edge((cell, j), (cell, out), op="concat")
        return g


def _parse_partial_edges(cell: str, node) -> np.ndarray:
    """``int8[2 b, 2]`` (input, op) from the AST of a list of ``2 b`` (op_name, input) pairs, b = 1..4."""
    try:
        edges = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        edges = None
    if not isinstance(edges, (list, tuple)) or len(edges) not in range(2, D.N_EDGES + 1, 2):
        raise JnasError(f"arch: {cell} expected a list of 2, 4, 6 or 8 (op, input) pairs (two per node)")
    out = np.zeros((len(edges), 2), np.int8)
    for e, edge in enumerate(edges):
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2 and isinstance(edge[0], str) and is_int(edge[1])):
            raise JnasError(f"arch: {cell} edge {e} got {edge!r}, expected an (op name, input node) pair")
        name, src = edge
        if name not in D.OPS[1:]:
            raise JnasError(f"arch: {cell} edge {e} op got {name!r}, expected one of {', '.join(D.OPS[1:])}")
        if not 0 <= src < D.EDGE_LIMIT[e]:
            raise JnasError(f"arch: {cell} edge {e} input got {src}, expected a node in 0..{D.EDGE_LIMIT[e] - 1}")
        out[e] = (src, D.OPS.index(name))
    for i in range(len(edges) // 2):
        if out[2 * i, 0] == out[2 * i + 1, 0]:
            raise JnasError(f"arch: {cell} node {i + 2} got inputs {out[2 * i, 0]} twice, expected two distinct inputs")
    return out


DARTS_BLOCKS = DartsBlocksSpace()
