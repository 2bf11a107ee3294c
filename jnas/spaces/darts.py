"""DARTS / NASNet cell space: a normal and a reduce cell, 4 nodes of 2 edges each.

Each cell has two input nodes (0: the cell two back, 1: the previous cell)
and four intermediate nodes 2..5; intermediate node ``i + 2`` sums two
edges, each an op applied to a *distinct* earlier node in ``[0, i + 2)``. The
cell output concatenates nodes 2..5. This is the discrete space of DARTS
(Liu et al., ICLR 2019), whose genotype derivation keeps the two strongest
edges from distinct predecessors and never picks ``none``.

An architecture is ``int8[2, 8, 2]`` = (cell, edge, (input, op)): cell 0 is
``normal``, cell 1 ``reduce``; edges ``2i`` and ``2i + 1`` feed intermediate
node ``i + 2``; ``op`` indexes ``OPS``. ``none`` (op 0) belongs to the op list
for supernets but is not a member of the discrete space. Canonical form: in
each node the edge with the smaller input comes first, so each distinct cell
has exactly one array (``is_valid`` requires it; ``canonical`` sorts).

Size: per cell Π_{i=0..3} C(i+2, 2) · 7² = 180 · 7⁸ = 1,037,664,180; the
space is that squared (≈ 1.08e18) and is not enumerable.

One edit (``neighbours``): change the op of one edge, or change the input of
one edge to another allowed node (then re-sort the node).

Self-description: per cell and node three categorical decisions, the
unordered pair of inputs (``C(i + 2, 2)`` values) and the op of each of the
two edges (7 values, ``none`` excluded), so every token vector is a member;
the 16 edges are the op slots (wiring: their inputs); the graph of a cell
has its two inputs, one node per edge op and the concat output.

Strings are DARTS genotypes::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...],
             normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])
"""

from __future__ import annotations

import ast
import math

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jnas.errors import JnasError, is_int
from jnas.spaces.base import Decisions, GraphLayout, OpSlots, Relaxation, Space
from jnas.spaces.generic import categorical, finish_graph

OPS = (
    "none",
    "skip_connect",
    "max_pool_3x3",
    "avg_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
CELLS = ("normal", "reduce")
N_CELLS = len(CELLS)
N_NODES = 4  # intermediate nodes per cell
N_EDGES = 2 * N_NODES
N_OPS = len(OPS)
NONE = 0
#: intermediate node (0..3) fed by each edge
EDGE_NODE = np.repeat(np.arange(N_NODES), 2)
#: inputs of edge e are drawn from [0, EDGE_LIMIT[e])
EDGE_LIMIT = EDGE_NODE + 2
CONCAT = [2, 3, 4, 5]
#: unordered input pairs (a < b), numbered b(b-1)/2 + a: node i (inputs 0..i+1) uses the first C(i+2, 2)
PAIRS = np.array([(a, b) for b in range(1, N_NODES + 1) for a in range(b)], np.int32)
#: sources an edge can read in the one-hot encoding: c_{k-2}, c_{k-1}, nodes 2..4
_ONEHOT_SOURCES = N_NODES + 1
_INPUT_NAMES = ("c_{k-2}", "c_{k-1}")
# Graph of a cell: A-node 0, 1 = cell inputs, 2 + k = op of edge k, 10 = output.
# _PRODUCES[u, s]: A-node u emits DARTS node s (edges 2m, 2m+1 sum into node m + 2).
_PRODUCES = np.zeros((N_EDGES + 3, N_NODES + 2), np.float32)
_PRODUCES[0, 0] = _PRODUCES[1, 1] = 1
_PRODUCES[2 + np.arange(N_EDGES), np.arange(N_EDGES) // 2 + 2] = 1


def _cell_count() -> int:
    """Distinct cells: for each node, an unordered pair of inputs and an op per edge."""
    return math.prod(math.comb(i + 2, 2) * (N_OPS - 1) ** 2 for i in range(N_NODES))


def canonical(arch):
    """``arch`` with each node's two edges ordered by input (smaller first).

    Works on ``int8[..., 2, 8, 2]``; the edge pair travels with its op.
    """
    arch = jnp.asarray(arch)
    pairs = arch.reshape(*arch.shape[:-2], N_NODES, 2, 2)
    swap = pairs[..., 0, 0] > pairs[..., 1, 0]
    pairs = jnp.where(swap[..., None, None], pairs[..., ::-1, :], pairs)
    return pairs.reshape(arch.shape)


class DartsSpace(Space):
    """The DARTS search space of normal + reduce cells (≈ 1.08e18 architectures)."""

    name = "darts"
    enumerable = False
    ops = OPS
    cells = CELLS
    edge_node = EDGE_NODE

    def template(self):
        return jnp.zeros((N_CELLS, N_EDGES, 2), jnp.int8)

    @property
    def size(self) -> int:
        return _cell_count() ** N_CELLS

    # ----- array primitives ----------------------------------------------------------
    def is_valid(self, arch):
        arch = jnp.asarray(arch).astype(jnp.int32)
        inp, op = arch[..., 0], arch[..., 1]
        in_range = (inp >= 0) & (inp < jnp.asarray(EDGE_LIMIT)) & (op > NONE) & (op < N_OPS)
        pairs = inp.reshape(*inp.shape[:-1], N_NODES, 2)
        ordered = pairs[..., 0] < pairs[..., 1]  # also makes the two inputs distinct
        return jnp.all(in_range) & jnp.all(ordered)

    def sample(self, key):
        # One uniform draw for all choices (each random call costs compile time).
        u = jax.random.uniform(key, (N_CELLS, 2 * N_NODES + N_EDGES))
        n = jnp.arange(N_NODES) + 2  # candidate inputs of each node

        def pick(x, m):  # uniform integer in [0, m)
            return jnp.minimum(jnp.floor(x * m), m - 1).astype(jnp.int32)

        # Uniform ordered pair of distinct inputs -> uniform unordered pair once sorted.
        first = pick(u[:, :N_NODES], n)
        second = pick(u[:, N_NODES : 2 * N_NODES], n - 1)
        second = second + (second >= first)
        inp = jnp.stack([jnp.minimum(first, second), jnp.maximum(first, second)], -1).reshape(N_CELLS, N_EDGES)
        op = 1 + pick(u[:, 2 * N_NODES :], N_OPS - 1)
        return jnp.stack([inp, op], -1).astype(jnp.int8)

    def neighbours(self, arch):
        """192 rows: 2 cells x 8 edges x 7 ops (op edits), then 2 x 8 x 5 input nodes (input edits)."""
        arch = jnp.asarray(arch).astype(jnp.int8)
        inp = arch[..., 0].astype(jnp.int32)
        op = arch[..., 1].astype(jnp.int32)

        # op edits: row (cell c, edge e, new op v), v over the non-'none' ops
        c, e, v = (a.reshape(-1) for a in np.meshgrid(
            np.arange(N_CELLS), np.arange(N_EDGES), np.arange(1, N_OPS), indexing="ij"))
        rows = np.arange(c.size)
        op_rows = jnp.tile(arch, (c.size, 1, 1, 1)).at[rows, c, e, 1].set(v.astype(np.int8))
        op_mask = v != op[c, e]

        # input edits: row (cell c, edge e, new input x); must differ from both inputs of the node
        c2, e2, x = (a.reshape(-1) for a in np.meshgrid(
            np.arange(N_CELLS), np.arange(N_EDGES), np.arange(N_NODES + 1), indexing="ij"))
        rows2 = np.arange(c2.size)
        in_rows = jnp.tile(arch, (c2.size, 1, 1, 1)).at[rows2, c2, e2, 0].set(x.astype(np.int8))
        in_rows = canonical(in_rows)
        sibling = e2 ^ 1
        in_mask = (x < EDGE_LIMIT[e2]) & (x != inp[c2, e2]) & (x != inp[c2, sibling])

        nbrs = jnp.concatenate([op_rows, in_rows], axis=0)
        mask = jnp.concatenate([op_mask, in_mask])
        return nbrs, mask

    def crossover(self, key, a, b):
        # Whole nodes (both edges) come from one parent, so the child stays valid.
        take_a = jax.random.bernoulli(key, 0.5, (N_CELLS, N_NODES))
        take_a = jnp.repeat(take_a, 2, axis=1)[..., None]
        return jnp.where(take_a, jnp.asarray(a), jnp.asarray(b)).astype(jnp.int8)

    def canonicalize(self, arch):
        """Each node's two edges ordered by input (see module-level ``canonical``)."""
        return canonical(arch)

    def canonical(self, arch):
        """Old name of ``canonicalize``."""
        return canonical(arch)

    # ----- self-description ---------------------------------------------------------------
    @property
    def decisions(self) -> Decisions:
        """Per cell and node: input pair (``C(i+2, 2)`` values), op from the smaller input, op from the other."""
        ops = OPS[1:]
        card, names, values = [], [], []
        for cell in CELLS:
            for i in range(N_NODES):
                n_pairs = (i + 2) * (i + 1) // 2
                card += [n_pairs, len(ops), len(ops)]
                names += [f"{cell}/node{i + 2}.inputs", f"{cell}/node{i + 2}.op_a", f"{cell}/node{i + 2}.op_b"]
                values += [tuple(f"{a},{b}" for a, b in PAIRS[:n_pairs]), ops, ops]
        return Decisions(np.array(card, np.int32), tuple(names), tuple(values), False)

    def to_decisions(self, arch):
        a = jnp.asarray(arch).astype(jnp.int32).reshape(N_CELLS, N_NODES, 2, 2)
        lo, hi = jnp.minimum(a[..., 0, 0], a[..., 1, 0]), jnp.maximum(a[..., 0, 0], a[..., 1, 0])
        swap = a[..., 0, 0] > a[..., 1, 0]
        op_a = jnp.where(swap, a[..., 1, 1], a[..., 0, 1]) - 1
        op_b = jnp.where(swap, a[..., 0, 1], a[..., 1, 1]) - 1
        pair = hi * (hi - 1) // 2 + lo
        return jnp.stack([pair, op_a, op_b], axis=-1).reshape(-1)

    def from_decisions(self, tokens):
        t = jnp.asarray(tokens).astype(jnp.int32).reshape(N_CELLS, N_NODES, 3)
        inp = jnp.asarray(PAIRS)[jnp.clip(t[..., 0], 0, len(PAIRS) - 1)]  # [cells, nodes, 2]
        ops = jnp.stack([t[..., 1], t[..., 2]], axis=-1) + 1
        return jnp.stack([inp, ops], axis=-1).reshape(N_CELLS, N_EDGES, 2).astype(jnp.int8)

    @property
    def op_slot_layout(self) -> OpSlots:
        """Two cells (normal, reduce) of 8 edge ops over the 7 ops other than ``none``; inputs are wiring."""
        return OpSlots(OPS[1:], N_CELLS, N_EDGES, True)

    def op_slots(self, arch):
        return jnp.asarray(arch)[..., 1].astype(jnp.int32)

    def with_op_slots(self, arch, ops):
        arch = jnp.asarray(arch)
        return arch.at[..., 1].set(jnp.asarray(ops).astype(arch.dtype))

    @property
    def graph_layout(self) -> GraphLayout:
        """Per cell 11 nodes: c_{k-2}, c_{k-1}, the 8 edge ops, the concat output."""
        n = N_EDGES + 3
        reads = np.arange(N_NODES + 2)[None, :] < EDGE_LIMIT[:, None]  # [edge, DARTS node it may read]
        cell = np.zeros((n, n), bool)
        cell[:, 2 : 2 + N_EDGES] = (_PRODUCES @ reads.T.astype(np.float32)) > 0
        cell[2 : 2 + N_EDGES, n - 1] = True  # the output concatenates every intermediate node
        wiring = np.stack([cell] * N_CELLS)
        return GraphLayout(_INPUT_NAMES + OPS + ("output",), wiring, CELLS, True)

    def graph_tensors(self, arch):
        """Leading cell axis (normal, reduce): ``[2, 11, 11]``, ``[2, 11, f]``, ``[2, 11]``."""
        return jax.vmap(_cell_graph)(jnp.asarray(arch))

    def onehot(self, arch):
        """Per cell and edge, one-hot input among the 5 nodes an edge can read, then one-hot op: ``2·8·(5 + 8)``."""
        arch = jnp.asarray(arch).astype(jnp.int32)
        src = jax.nn.one_hot(arch[..., 0], _ONEHOT_SOURCES, dtype=jnp.float32)
        op = jax.nn.one_hot(arch[..., 1], N_OPS, dtype=jnp.float32)
        return jnp.concatenate([src, op], axis=-1).reshape(-1)

    def onehot_names(self) -> tuple[str, ...]:
        srcs = _INPUT_NAMES + tuple(f"node{j}" for j in range(2, _ONEHOT_SOURCES))
        kinds = tuple(f"in={s}" for s in srcs) + tuple(f"op={o}" for o in OPS)
        return tuple(f"{cell}/edge{e}:{kind}" for cell in CELLS for e in range(N_EDGES) for kind in kinds)

    def relaxation(self) -> Relaxation:
        """One-hot edges: per cell, node, input and op (not ``none``), two per node: ``2 · 14 · 7 = 196``.

        One block per (cell, node) summing to 2; rounding draws the node's two
        edges from its block, the second from an input other than the first's.
        """
        n_real = N_OPS - 1  # 'none' is not a member
        # column of (cell, node, input j, op) in the feature vector
        starts = np.concatenate([[0], np.cumsum((np.arange(N_NODES) + 2) * n_real)])[:N_NODES]
        per_cell = int(((np.arange(N_NODES) + 2) * n_real).sum())
        max_in = N_NODES + 1

        def encode(arch):
            a = jnp.asarray(arch).astype(jnp.int32)
            col = (jnp.arange(N_CELLS)[:, None] * per_cell + jnp.asarray(starts)[EDGE_NODE][None, :]
                   + a[..., 0] * n_real + a[..., 1] - 1)
            return jnp.zeros(N_CELLS * per_cell).at[col.reshape(-1)].set(1.0).astype(jnp.result_type(float))

        def decode(key, x):
            inp, op = [], []
            keys = jax.random.split(key, 2 * N_CELLS * N_NODES).reshape(N_CELLS, N_NODES, 2)
            for c in range(N_CELLS):
                for i in range(N_NODES):
                    n_in = i + 2
                    s = c * per_cell + starts[i]
                    w = jnp.zeros((max_in, n_real)).at[:n_in].set(x[s : s + n_in * n_real].reshape(n_in, n_real))
                    ok = jnp.asarray(np.arange(max_in) < n_in)[:, None] & jnp.ones((1, n_real), bool)
                    first = categorical(keys[c, i, 0], w.reshape(-1), ok.reshape(-1))
                    ok2 = ok & (jnp.arange(max_in)[:, None] != first // n_real)
                    second = categorical(keys[c, i, 1], w.reshape(-1), ok2.reshape(-1))
                    pair = jnp.stack([first, second])
                    inp.append(pair // n_real)
                    op.append(pair % n_real + 1)
            arch = jnp.stack([jnp.stack(inp).reshape(N_CELLS, -1), jnp.stack(op).reshape(N_CELLS, -1)], axis=-1)
            return canonical(arch.astype(jnp.int8))

        block = np.concatenate(
            [c * N_NODES + np.repeat(np.arange(N_NODES), (np.arange(N_NODES) + 2) * n_real) for c in range(N_CELLS)]
        )
        return Relaxation(N_CELLS * per_cell, encode, block, np.full(N_CELLS * N_NODES, 2.0), decode)

    # ----- host-side ----------------------------------------------------------------
    def to_string(self, arch) -> str:
        a = np.asarray(arch).astype(int).reshape(N_CELLS, N_EDGES, 2)
        parts = []
        for c, cell in enumerate(CELLS):
            edges = ", ".join(f"('{OPS[a[c, e, 1]]}', {a[c, e, 0]})" for e in range(N_EDGES))
            parts.append(f"{cell}=[{edges}], {cell}_concat={CONCAT}")
        return f"Genotype({', '.join(parts)})"

    def from_string(self, text: str):
        expected = (
            "a DARTS genotype like \"Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], "
            "reduce=[...], reduce_concat=[2, 3, 4, 5])\""
        )
        fields = genotype_fields(text, expected)
        out = np.zeros((N_CELLS, N_EDGES, 2), np.int8)
        for c, cell in enumerate(CELLS):
            out[c] = _parse_edges(cell, fields[cell])
            if f"{cell}_concat" in fields and _parse_concat(fields[f"{cell}_concat"]) != CONCAT:
                raise JnasError(f"arch: {cell}_concat must be [2, 3, 4, 5] (or range(2, 6)) in {text!r}")
        return canonical(jnp.asarray(out))

    def to_networkx(self, arch):
        """Both cells in one graph; nodes are ``(cell, j)`` with ``j`` = 0, 1 (inputs), 2..5, 6 (output).

        Edges carry the op name (``"concat"`` into the output); nodes carry
        ``op`` = ``"input"``, ``"sum"`` or ``"concat"``.
        """
        a = np.asarray(arch).astype(int).reshape(N_CELLS, N_EDGES, 2)
        g = nx.DiGraph()
        for c, cell in enumerate(CELLS):
            for j in range(N_NODES + 3):
                g.add_node((cell, j), op="input" if j < 2 else "sum" if j < N_NODES + 2 else "concat")
            for e in range(N_EDGES):
                g.add_edge((cell, int(a[c, e, 0])), (cell, int(EDGE_NODE[e]) + 2), op=OPS[a[c, e, 1]])
            for j in CONCAT:
                g.add_edge((cell, j), (cell, N_NODES + 2), op="concat")
        return g


def _cell_graph(cell):
    """``(A, X, mask)`` of one cell ``int8[8, 2]``: 11 nodes, ``none`` ops cut out of ``A``."""
    cell = jnp.asarray(cell).astype(jnp.int32)
    src, ops = cell[:, 0], cell[:, 1]
    n = N_EDGES + 3
    reads = jax.nn.one_hot(src, N_NODES + 2, dtype=jnp.float32)  # [8, 6]
    a = jnp.zeros((n, n), jnp.float32).at[:, 2 : 2 + N_EDGES].set(jnp.asarray(_PRODUCES) @ reads.T)
    a = a.at[2 : 2 + N_EDGES, n - 1].set(1.0)  # the cell output concatenates every intermediate node
    labels = jnp.concatenate([jnp.array([0, 1]), 2 + ops, jnp.array([2 + N_OPS])])
    io = jnp.ones((2,), bool)
    alive = jnp.concatenate([io, ops != NONE, io[:1]])
    return finish_graph(a, labels, jnp.ones((n,), bool), N_OPS + 3, alive)


def genotype_fields(text, expected: str) -> dict:
    """The keyword fields (``normal``, ``reduce``, optional ``*_concat``: AST nodes) of a ``Genotype(...)``
    string; a one-line ``JnasError`` naming ``expected`` for anything else."""
    if not isinstance(text, str):
        raise JnasError(f"arch: got {text!r}, expected {expected}")
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise JnasError(f"arch: got {text!r}, expected {expected}") from None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"
            and not call.args):
        raise JnasError(f"arch: got {text!r}, expected {expected}")
    fields = {kw.arg: kw.value for kw in call.keywords}
    unknown = set(fields) - {"normal", "reduce", "normal_concat", "reduce_concat"}
    if unknown or None in fields or not {"normal", "reduce"} <= set(fields):
        raise JnasError(f"arch: genotype fields must be normal, normal_concat, reduce, reduce_concat; got {text!r}")
    return fields


def _parse_edges(cell: str, node) -> np.ndarray:
    """``int8[8, 2]`` (input, op) from the AST of a list of ``(op_name, input)`` pairs."""
    try:
        edges = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        edges = None
    if not isinstance(edges, (list, tuple)) or len(edges) != N_EDGES:
        raise JnasError(f"arch: {cell} expected a list of {N_EDGES} (op, input) pairs")
    out = np.zeros((N_EDGES, 2), np.int8)
    for e, edge in enumerate(edges):
        ok = isinstance(edge, (list, tuple)) and len(edge) == 2 and isinstance(edge[0], str) and is_int(edge[1])
        if not ok:
            raise JnasError(f"arch: {cell} edge {e} got {edge!r}, expected an (op name, input node) pair")
        name, src = edge
        if name not in OPS[1:]:
            raise JnasError(f"arch: {cell} edge {e} op got {name!r}, expected one of {', '.join(OPS[1:])}")
        if not 0 <= src < EDGE_LIMIT[e]:
            raise JnasError(f"arch: {cell} edge {e} input got {src}, expected a node in 0..{EDGE_LIMIT[e] - 1}")
        out[e] = (src, OPS.index(name))
    for i in range(N_NODES):
        if out[2 * i, 0] == out[2 * i + 1, 0]:
            raise JnasError(f"arch: {cell} node {i + 2} got inputs {out[2 * i, 0]} twice, expected two distinct inputs")
    return out


def _parse_concat(node):
    """The concat list from its AST: a list literal or ``range(a, b)``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" and not node.keywords:
        try:
            return list(range(*(ast.literal_eval(a) for a in node.args)))
        except (ValueError, TypeError):
            return None
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return None
    return list(value) if isinstance(value, (list, tuple)) else None


DARTS = DartsSpace()
