"""NAS-Bench-101 cell space (Ying et al., ICML 2019).

A cell is a DAG on 7 vertices: vertex 0 is the input, vertex 6 the output,
vertices 1..5 each apply one op of ``OPS``. An architecture is the tuple
pytree ``(adjacency uint8[7, 7], ops int8[7])``:

- ``adjacency[i, j] = 1`` is an edge ``i -> j``; it must be 0/1 and strictly
  upper-triangular (vertex order is a topological order).
- ``ops[1..5]`` index ``OPS`` (0 conv3x3-bn-relu, 1 conv1x1-bn-relu,
  2 maxpool3x3); ``ops[0] = INPUT`` (3) and ``ops[6] = OUTPUT`` (4), so
  ``LABELS[ops[v]]`` names every vertex. ``PRUNED`` (-1) marks a vertex that
  ``prune`` removed; it is only valid on a vertex without edges.

Architectures are *raw* cells as NAS-Bench-101's ``ModelSpec`` receives them:
vertices that lie on no input→output path are allowed and ignored, exactly as
NB101 prunes them. ``prune`` does that pruning at fixed shape: dead vertices
get zero rows/columns and op ``PRUNED``; kept vertices keep their position
(``to_spec`` compacts them like NB101 does). Validity follows NB101's
``is_valid``: an input→output path exists and the *pruned* cell has at most
9 edges (the raw matrix may have more).

Two raw cells are the same member of the space when their pruned cells are
isomorphic (op-labelled). ``graph_hash`` is a jittable Weisfeiler–Lehman
style hash of the pruned cell (two independent 32-bit lanes, ``uint32[2]``)
under which isomorphic cells collide; ``is_isomorphic`` is the exact
host-side check. ``size`` is NB101's published count of unique cells,
423,624 (the space is far too large to enumerate as raw arrays: 2^21 · 3^5).

``sample`` draws each upper-triangular bit with p = 1/2 and each op
uniformly, rejecting invalid cells (NASLib's random sampling). It is uniform
over valid raw arrays, *not* over unique cells: pruning makes small cells
more frequent.

One edit (``neighbours``): flip one upper-triangular adjacency bit or change
one inner op (36 rows: 21 flips, then 5 vertices x 3 ops). Only edits that
give a valid cell not isomorphic to the input nor to an earlier row (decided
by ``graph_hash``) are unmasked, so ``mutate`` always changes the cell.

String form (raw cell, round-trippable)::

    adj=0110001/0001000/0000100/0000010/0000001/0000001/0000000;ops=input,conv3x3-bn-relu,...,output

7 rows of 7 binary digits separated by ``/``, then 7 op labels
(``input``/``output`` at the ends, ``pruned`` allowed inside).

Self-description: the graph is the *pruned* cell (vertices as nodes, 0 the
input, 6 the output; pruned vertices are padding), and the one-hot
encoding is that of BANANAS: the upper triangle of the pruned adjacency
then a one-hot op per inner vertex. The op slots (the operation-distribution
encoding) are the 5 inner vertices of the raw cell, ``OPS`` each, wired by
the adjacency. They are counted on the raw cell: a vertex on no
input→output path still counts, one already ``PRUNED`` counts for no op.
NB101 defines no categorical decisions or relaxation here.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import GraphLayout, OpSlots, Space
from jnas.spaces.generic import finish_graph

OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT, OUTPUT, PRUNED = 3, 4, -1
#: name of every op code (``LABELS[PRUNED]`` is ``"pruned"``)
LABELS = OPS + ("input", "output", "pruned")
N_VERTICES = 7
MAX_EDGES = 9
N_CELLS = 423_624  # unique cells reported by NAS-Bench-101 (Ying et al. 2019)
_ROWS, _COLS = np.triu_indices(N_VERTICES, 1)  # the 21 possible edges
_INNER = np.arange(1, N_VERTICES - 1)
_IO = np.zeros(N_VERTICES, bool)
_IO[[0, -1]] = True

# Hash constants: murmur3's fmix32 multipliers and per-lane salts (arbitrary 32-bit words).
_M1, _M2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)
_SALTS = np.array(
    [[0x9E3779B9, 0x7F4A7C15, 0x94D049BB, 0x632BE5AB, 0xBF58476D],
     [0x2545F491, 0x4F6CDD1D, 0xD6E8FEB8, 0x1B873593, 0xCC9E2D51]],
    np.uint32,
)
_TEXT = re.compile(r"^\s*adj\s*=\s*([01/]+)\s*;\s*ops\s*=\s*([a-z0-9,\-\s]+?)\s*$")


# ----- pure array functions -----------------------------------------------------------

def _reach(adj):
    """``(from_input, to_output)`` bool[7]: vertices reachable from 0 / reaching 6."""
    a = jnp.asarray(adj).astype(jnp.int32)
    # (I + A)^8 by three squarings covers every path (at most 6 edges) in a 7-vertex DAG.
    r = jnp.minimum(a + jnp.eye(N_VERTICES, dtype=jnp.int32), 1)
    for _ in range(3):
        r = jnp.minimum(r @ r, 1)
    return r[0] > 0, r[:, -1] > 0


def prune(arch):
    """NB101 pruning at fixed shape.

    Vertices not on an input→output path get zero rows/columns and op
    ``PRUNED``; input and output always keep their ops. A cell with no
    input→output path prunes to no edges at all (NB101 would reject it).
    Returns ``(adjacency uint8[7, 7], ops int8[7])``.
    """
    adj, ops = arch
    adj = jnp.asarray(adj)
    fwd, bwd = _reach(adj)
    keep = fwd & bwd
    adj = adj * (keep[:, None] & keep[None, :]).astype(adj.dtype)
    ops = jnp.where(keep | _IO, jnp.asarray(ops), PRUNED).astype(jnp.int8)
    return adj.astype(jnp.uint8), ops


def _fmix(h):
    """murmur3 32-bit finaliser: a bijective avalanche mix of uint32 words."""
    h = h ^ (h >> 16)
    h = h * _M1
    h = h ^ (h >> 13)
    h = h * _M2
    return h ^ (h >> 16)


def graph_hash(arch):
    """``uint32[2]`` hash of the pruned cell, invariant under vertex relabelling.

    Weisfeiler–Lehman refinement, as NB101's own hash: each vertex starts from
    (op, in-degree, out-degree) and, for 7 rounds, mixes in the *sum* of mixed
    labels of its in-neighbours and, separately salted, of its out-neighbours
    (sums of mixed words are order-free, so no sorting is needed). The graph
    hash mixes the sum over kept vertices. Two lanes with different salts
    give 64 bits, so accidental collisions among 4e5 cells are ~1e-8 likely.
    Cells without an input→output path all share one hash.
    """
    adj, ops = prune(arch)
    a = adj.astype(jnp.uint32)
    keep = (ops != PRUNED).astype(jnp.uint32)
    indeg = jnp.sum(adj, axis=0).astype(jnp.uint32)
    outdeg = jnp.sum(adj, axis=1).astype(jnp.uint32)
    label = (ops.astype(jnp.int32) + 2).astype(jnp.uint32) + (indeg << 4) + (outdeg << 8)
    salt = jnp.asarray(_SALTS)[:, :, None]  # (lane, role, 1): broadcasts over vertices

    def refine(_, h):  # h: uint32[lanes, 7]
        up = jnp.sum(a * _fmix(h ^ salt[:, 1])[:, :, None], axis=1)  # sum over in-neighbours
        down = jnp.sum(a * _fmix(h ^ salt[:, 2])[:, None, :], axis=2)  # sum over out-neighbours
        return _fmix(_fmix(h ^ salt[:, 3]) + up + _fmix(down))

    # A rolled loop keeps the compiled graph small (unrolled, it dominates compile time).
    h = jax.lax.fori_loop(0, N_VERTICES, refine, _fmix(label[None, :] ^ salt[:, 0]))
    return _fmix(jnp.sum(keep * _fmix(h ^ salt[:, 4]), axis=1))


class NB101Space(Space):
    """The NAS-Bench-101 space of 423,624 unique cells (raw 7-vertex DAGs + ops)."""

    name = "nb101"
    enumerable = False
    ops = OPS
    labels = LABELS
    n_vertices = N_VERTICES
    max_edges = MAX_EDGES

    def template(self):
        return jnp.zeros((N_VERTICES, N_VERTICES), jnp.uint8), jnp.zeros((N_VERTICES,), jnp.int8)

    @property
    def size(self) -> int:
        return N_CELLS

    # ----- array primitives ----------------------------------------------------------
    def prune(self, arch):
        """See module-level ``prune``."""
        return prune(arch)

    def graph_hash(self, arch):
        """See module-level ``graph_hash``."""
        return graph_hash(arch)

    def is_valid(self, arch):
        adj, ops = arch
        adj = jnp.asarray(adj)
        ops = jnp.asarray(ops).astype(jnp.int32)
        upper = jnp.asarray(np.triu(np.ones((N_VERTICES, N_VERTICES), bool), 1))
        binary = jnp.all(adj <= 1) & jnp.all(jnp.where(upper, True, adj == 0))
        io = (ops[0] == INPUT) & (ops[-1] == OUTPUT)
        degree = jnp.sum(adj, axis=0).astype(jnp.int32) + jnp.sum(adj, axis=1).astype(jnp.int32)
        inner = ops[_INNER]
        inner_ok = jnp.all(((inner >= 0) & (inner < len(OPS))) | ((inner == PRUNED) & (degree[_INNER] == 0)))
        fwd, _ = _reach(adj)
        pruned_adj, _ = prune((adj, ops))
        small = jnp.sum(pruned_adj.astype(jnp.int32)) <= MAX_EDGES
        return binary & io & inner_ok & fwd[-1] & small

    # ----- self-description -------------------------------------------------------------
    @property
    def graph_layout(self) -> GraphLayout:
        """The 7 vertices of the pruned cell; any upper-triangular edge."""
        wiring = np.triu(np.ones((N_VERTICES, N_VERTICES), bool), 1)
        return GraphLayout(("input",) + OPS + ("output",), wiring, (), True)

    def graph_tensors(self, arch):
        """The pruned cell: vertices off every input→output path become padding."""
        adj, ops = prune(arch)
        adj = jnp.asarray(adj).astype(jnp.float32)
        ops = jnp.asarray(ops).astype(jnp.int32)
        n = adj.shape[0]
        node = jnp.arange(n)
        inner = jnp.clip(ops, 0, len(OPS) - 1)
        labels = jnp.where(node == 0, 0, jnp.where(node == n - 1, len(OPS) + 1, 1 + inner))
        mask = (node == 0) | (node == n - 1) | ((ops >= 0) & (ops < len(OPS)))
        return finish_graph(adj, labels, mask, len(OPS) + 2)

    @property
    def op_slot_layout(self) -> OpSlots:
        """One cell of 5 op slots (the inner vertices), wired by the adjacency."""
        return OpSlots(OPS, 1, len(_INNER), True)

    def op_slots(self, arch):
        return jnp.asarray(arch[1]).astype(jnp.int32)[None, 1:N_VERTICES - 1]

    def with_op_slots(self, arch, ops):
        adj, old = arch
        old = jnp.asarray(old)
        return adj, old.at[1:N_VERTICES - 1].set(jnp.asarray(ops)[0].astype(old.dtype))

    def onehot(self, arch):
        """``float32[36]``: upper triangle of the pruned adjacency (21, row-major), one-hot op of vertices 1..5.

        A pruned vertex gets an all-zero op block (NB101 ignores vertices on no input→output path).
        """
        adj, ops = prune(arch)
        inner = jnp.asarray(ops)[1:6].astype(jnp.int32)  # PRUNED (-1) one-hots to zeros
        op_block = jax.nn.one_hot(inner, len(OPS), dtype=jnp.float32).reshape(-1)
        return jnp.concatenate([jnp.asarray(adj).astype(jnp.float32)[_ROWS, _COLS], op_block])

    def onehot_names(self) -> tuple[str, ...]:
        adj = tuple(f"adj{i}->{j}" for i, j in zip(_ROWS, _COLS))
        return adj + tuple(f"node{v}={o}" for v in range(1, 6) for o in OPS)

    def sample(self, key, n_tries: int = 8):
        """Rejection sampling, ``n_tries`` candidates per round (~73% of raw draws are valid)."""
        return _sample(self, key, n_tries)

    def neighbours(self, arch):
        """36 one-edit rows (21 edge flips, 15 op settings); mask: valid, new and distinct cells."""
        adj, ops = arch
        adj = jnp.asarray(adj).astype(jnp.uint8)
        ops = jnp.asarray(ops).astype(jnp.int8)
        n_flip = _ROWS.size
        # edge flips: row r toggles edge (_ROWS[r], _COLS[r])
        r = np.arange(n_flip)
        flip_adj = jnp.tile(adj, (n_flip, 1, 1)).at[r, _ROWS, _COLS].set(1 - adj[_ROWS, _COLS])
        flip_ops = jnp.tile(ops, (n_flip, 1))
        # op changes: row (inner vertex v, op t) sets ops[v] = t
        v, t = (x.reshape(-1) for x in np.meshgrid(_INNER, np.arange(len(OPS)), indexing="ij"))
        op_adj = jnp.tile(adj, (v.size, 1, 1))
        op_ops = jnp.tile(ops, (v.size, 1)).at[np.arange(v.size), v].set(t.astype(np.int8))
        nbrs = (jnp.concatenate([flip_adj, op_adj]), jnp.concatenate([flip_ops, op_ops]))

        valid = jax.vmap(self.is_valid)(nbrs)
        hashes = jax.vmap(graph_hash)(nbrs)
        new_cell = jnp.any(hashes != graph_hash((adj, ops)), axis=-1)
        cand = valid & new_cell
        # keep the first of neighbours that are the same cell
        same = jnp.all(hashes[:, None, :] == hashes[None, :, :], axis=-1)
        n = cand.shape[0]
        earlier = jnp.asarray(np.tril(np.ones((n, n), bool), -1))
        dup = jnp.any(same & earlier & cand[None, :], axis=1)
        return nbrs, cand & ~dup

    def crossover(self, key, a, b, n_tries: int = 16):
        """Uniform crossover of adjacency bits and ops; the first of ``n_tries`` valid children, else ``a``."""
        adj_a, ops_a = (jnp.asarray(x) for x in a)
        adj_b, ops_b = (jnp.asarray(x) for x in b)

        m = jax.random.bernoulli(key, 0.5, (n_tries, N_VERTICES * (N_VERTICES + 1)))
        m_adj = m[:, : N_VERTICES * N_VERTICES].reshape(n_tries, N_VERTICES, N_VERTICES)
        m_ops = m[:, N_VERTICES * N_VERTICES:]
        kids = (jnp.where(m_adj, adj_a, adj_b).astype(jnp.uint8), jnp.where(m_ops, ops_a, ops_b).astype(jnp.int8))
        ok = jax.vmap(self.is_valid)(kids)
        i = jnp.argmax(ok)
        pick = jax.tree.map(lambda x: x[i], kids)
        return (jnp.where(ok.any(), pick[0], adj_a.astype(jnp.uint8)),
                jnp.where(ok.any(), pick[1], ops_a.astype(jnp.int8)))

    # ----- host-side ----------------------------------------------------------------
    def to_string(self, arch) -> str:
        adj, ops = (np.asarray(x).astype(int) for x in arch)
        rows = "/".join("".join(str(b) for b in row) for row in adj)
        return f"adj={rows};ops={','.join(LABELS[o] for o in ops)}"

    def from_string(self, text: str):
        expected = "'adj=<7 rows of 7 binary digits joined by />;ops=input,<5 ops>,output'"
        m = _TEXT.match(text) if isinstance(text, str) else None
        if not m:
            raise JnasError(f"arch: got {text!r}, expected {expected}")
        rows = m.group(1).split("/")
        if len(rows) != N_VERTICES or any(len(r) != N_VERTICES for r in rows):
            raise JnasError(f"arch: adjacency of {text!r} must be 7 rows of 7 digits, expected {expected}")
        names = [s.strip() for s in m.group(2).split(",")]
        if len(names) != N_VERTICES or any(n not in LABELS for n in names):
            raise JnasError(f"arch: ops of {text!r} must be 7 of {', '.join(LABELS)}, expected {expected}")
        adj = np.array([[int(c) for c in r] for r in rows], np.uint8)
        ops = np.array([LABELS.index(n) if n != "pruned" else PRUNED for n in names], np.int8)
        return self._checked(adj, ops, text)

    def _checked(self, adj, ops, what):
        """``(adj, ops)`` as jax arrays after the structural checks of a raw cell."""
        if np.any(np.tril(adj)):
            raise JnasError(f"arch: adjacency of {what!r} must be strictly upper-triangular")
        if ops[0] != INPUT or ops[-1] != OUTPUT or np.any(np.isin(ops[1:-1], [INPUT, OUTPUT])):
            raise JnasError(f"arch: ops of {what!r} must start with 'input', end with 'output' and use neither inside")
        return jnp.asarray(adj, jnp.uint8), jnp.asarray(ops, jnp.int8)

    def from_spec(self, matrix, ops):
        """A raw cell from an NB101 ``ModelSpec``-style ``(matrix, ops)`` with ``n <= 7`` vertices.

        ``matrix`` is an ``n x n`` 0/1 upper-triangular array (or its row-major
        0/1 string), ``ops`` a list (or comma-separated string) of NB101 op
        names with ``input`` first and ``output`` last. Missing inner vertices
        are padded as ``PRUNED`` vertices; the output moves to vertex 6.
        """
        if isinstance(ops, str):
            ops = ops.split(",")
        ops = [str(o).strip() for o in ops]
        n = len(ops)
        if isinstance(matrix, str):
            if len(matrix) != n * n or set(matrix) - {"0", "1"}:
                raise JnasError(f"matrix: got {matrix!r}, expected {n * n} binary digits for {n} ops")
            matrix = np.array([int(c) for c in matrix]).reshape(n, n)
        matrix = np.asarray(matrix)
        if not 2 <= n <= N_VERTICES or matrix.shape != (n, n):
            raise JnasError(f"matrix: got shape {matrix.shape} for {n} ops, expected a square n x n with 2 <= n <= 7")
        if any(o not in LABELS[:-1] for o in ops):
            raise JnasError(f"ops: got {ops!r}, expected names from {', '.join(LABELS[:-1])}")
        pos = list(range(n - 1)) + [N_VERTICES - 1]  # where each spec vertex goes
        adj = np.zeros((N_VERTICES, N_VERTICES), np.uint8)
        adj[np.ix_(pos, pos)] = matrix
        codes = np.full(N_VERTICES, PRUNED, np.int8)
        codes[pos] = [LABELS.index(o) for o in ops]
        return self._checked(adj, codes, (matrix.tolist(), ops))

    def to_spec(self, arch):
        """The pruned cell compacted like NB101's ``ModelSpec``: ``(matrix int[n, n], op names)``."""
        adj, ops = (np.asarray(x).astype(int) for x in prune(arch))
        kept = np.flatnonzero(ops != PRUNED)
        return adj[np.ix_(kept, kept)], [LABELS[o] for o in ops[kept]]

    def to_networkx(self, arch, pruned: bool = False):
        """A DiGraph on vertices 0..6 whose nodes carry ``op`` (a name of ``LABELS``).

        With ``pruned=True`` the graph of the pruned cell (dead vertices dropped).
        """
        if pruned:
            arch = prune(arch)
        adj, ops = (np.asarray(x).astype(int) for x in arch)
        g = nx.DiGraph()
        for v in range(N_VERTICES):
            if not (pruned and ops[v] == PRUNED):
                g.add_node(v, op=LABELS[ops[v]])
        for i, j in zip(*np.nonzero(adj)):
            g.add_edge(int(i), int(j))
        return g

    def is_isomorphic(self, a, b) -> bool:
        """Exact host-side check that the pruned cells of ``a`` and ``b`` are op-labelled isomorphic."""
        ga, gb = self.to_networkx(a, pruned=True), self.to_networkx(b, pruned=True)
        return nx.is_isomorphic(ga, gb, node_match=lambda x, y: x["op"] == y["op"])



@functools.partial(jax.jit, static_argnums=(0, 2))
def _sample(space, key, n_tries: int):
    """``NB101Space.sample``, jitted once per (space, n_tries): an eager call must not retrace the loop."""

    def draw(k):
        # One uniform draw per round: separate random calls cost compile time, not accuracy.
        u = jax.random.uniform(k, (n_tries, _ROWS.size + N_VERTICES - 2))
        bits = (u[:, : _ROWS.size] < 0.5).astype(jnp.uint8)
        adj = jnp.zeros((n_tries, N_VERTICES, N_VERTICES), jnp.uint8).at[:, _ROWS, _COLS].set(bits)
        inner = jnp.minimum(jnp.floor(u[:, _ROWS.size:] * len(OPS)), len(OPS) - 1).astype(jnp.int8)
        io = jnp.broadcast_to(jnp.array([INPUT, OUTPUT], jnp.int8), (n_tries, 2))
        ops = jnp.concatenate([io[:, :1], inner, io[:, 1:]], axis=1)
        return adj, ops

    def body(state):
        i, arch, _ = state
        cands = draw(jax.random.fold_in(key, i))
        ok = jax.vmap(space.is_valid)(cands)
        first = jax.tree.map(lambda x: x[jnp.argmax(ok)], cands)
        return i + 1, first, ok.any()

    init = (jnp.zeros((), jnp.int32), space.template(), jnp.zeros((), bool))
    _, arch, _ = jax.lax.while_loop(lambda s: ~s[2], body, init)
    return arch

NB101 = NB101Space()
