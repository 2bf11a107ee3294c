"""NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 operations per edge.

An architecture is ``int8[6]``: the op id on edges in the order of the
official string, ``(0→1), (0→2), (1→2), (0→3), (1→3), (2→3)``. The space's
own ``index`` is the base-5 code with edge 0 most significant; the official
NAS-Bench-201 index is a permutation of it known only from the data, and is
handled by ``jnas.benchmarks.nb201``.

``NB201Space`` also takes a reduced op set, as ablations in the literature
use: ``NB201_3`` (registry name ``nb201-3``) keeps ``none``, ``skip_connect``
and ``nor_conv_3x3`` (3⁶ = 729 cells). Its op ids index its own ``ops``; its
strings are official NB201 strings and ``to_nb201`` maps a cell to the
full space (for the table view ``nb201-3/<dataset>`` and the network).

Self-description: every edge is one categorical decision and one op slot;
the graph has the input, one node per edge op (edge order) and the output,
with a fixed wiring that ``none`` cuts.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import Decisions, GraphLayout, OpSlots, Space
from jnas.spaces.generic import finish_graph, none_id

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (source, target) of each of the 6 edges, in official-string order
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
N_EDGES = len(EDGES)
N_OPS = len(OPS)
_POW = N_OPS ** np.arange(N_EDGES - 1, -1, -1)  # big-endian base-5 weights
_TOKEN = re.compile(r"^([a-z_0-9]+)~(\d)$")


@functools.cache
def _wiring(edges) -> np.ndarray:
    """``float32[n_e + 2, n_e + 2]`` op-node wiring of the cell with every op present.

    Node 0 is the input, node ``1 + e`` the op of edge ``e``, the last node the output.
    """
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


class NB201Space(Space):
    """The 15,625-cell NAS-Bench-201 topology space, or the same cell over a subset of its ops.

    ``ops``: the op names, a subset of ``OPS`` in any order (op ids index
    this tuple); ``len(ops) ** 6`` cells.
    """

    enumerable = True
    edges = EDGES

    def __init__(self, name: str = "nb201", ops: tuple[str, ...] = OPS):
        if not ops or len(set(ops)) != len(ops) or not set(ops) <= set(OPS):
            raise JnasError(f"ops: got {ops!r}, expected distinct NB201 ops ({', '.join(OPS)})")
        self.name = name
        self.ops = tuple(ops)
        self.n_ops = len(self.ops)
        #: ``int8[len(ops)]``: the full-space (``OPS``) id of each op
        self.nb201_ids = np.array([OPS.index(o) for o in self.ops], np.int8)
        self._pow = self.n_ops ** np.arange(N_EDGES - 1, -1, -1)  # big-endian base-len(ops) weights

    def template(self):
        return jnp.zeros((N_EDGES,), jnp.int8)

    @property
    def size(self) -> int:
        return self.n_ops**N_EDGES

    def neighbours(self, arch):
        # Row e*(k-1) + j replaces the op of edge e by the j-th other op.
        k = self.n_ops
        edge = jnp.repeat(jnp.arange(N_EDGES), k - 1)
        shift = jnp.tile(jnp.arange(1, k), N_EDGES)
        new_op = (arch[edge].astype(jnp.int32) + shift) % k
        nbrs = jnp.tile(arch, (N_EDGES * (k - 1), 1))
        nbrs = nbrs.at[jnp.arange(edge.shape[0]), edge].set(new_op.astype(jnp.int8))
        return nbrs, jnp.ones((edge.shape[0],), bool)

    def mutate(self, key, arch):
        # Same law as the generic rule (uniform over the 6·(k-1) neighbours), without
        # materialising them: this sits in the innermost loop of evolution.
        k = self.n_ops
        r = jax.random.randint(key, (), 0, N_EDGES * (k - 1))
        edge, shift = r // (k - 1), r % (k - 1) + 1
        new = (arch[edge].astype(jnp.int32) + shift) % k
        return arch.at[edge].set(new.astype(arch.dtype))

    def crossover(self, key, a, b):
        take_a = jax.random.bernoulli(key, 0.5, (N_EDGES,))
        return jnp.where(take_a, a, b)

    def is_valid(self, arch):
        arch = jnp.asarray(arch)
        return jnp.all((arch >= 0) & (arch < self.n_ops))

    def enumerate(self):
        return self.from_index(jnp.arange(self.size))

    def index(self, arch):
        arch = jnp.asarray(arch).astype(jnp.int32)
        code = jnp.sum(arch * jnp.asarray(self._pow, jnp.int32), axis=-1)
        return jnp.where(self.is_valid(arch), code, -1).astype(jnp.int32)

    def from_index(self, i):
        i = jnp.asarray(i, jnp.int32)
        digits = (i[..., None] // jnp.asarray(self._pow, jnp.int32)) % self.n_ops
        return digits.astype(jnp.int8)

    def to_nb201(self, arch):
        """The same cell as an ``int8[6]`` architecture of the full space ``NB201`` (-1 where out of range)."""
        a = jnp.asarray(arch).astype(jnp.int32)
        ok = (a >= 0) & (a < self.n_ops)
        return jnp.where(ok, jnp.asarray(self.nb201_ids)[jnp.clip(a, 0, self.n_ops - 1)], -1).astype(jnp.int8)

    # ----- self-description ---------------------------------------------------------
    @property
    def decisions(self) -> Decisions:
        """One decision per edge: its op (``len(ops)`` values)."""
        return Decisions(
            np.full(N_EDGES, self.n_ops, np.int32),
            tuple(f"edge{s}->{t}" for s, t in EDGES),
            (self.ops,) * N_EDGES,
            False,
        )

    @property
    def op_slot_layout(self) -> OpSlots:
        """One cell of 6 op slots (the edges), every op allowed, no wiring besides."""
        return OpSlots(self.ops, 1, N_EDGES, False)

    def op_slots(self, arch):
        return jnp.asarray(arch).astype(jnp.int32)[None, :]

    def with_op_slots(self, arch, ops):
        return jnp.asarray(ops).astype(jnp.asarray(arch).dtype)[0]

    @property
    def graph_layout(self) -> GraphLayout:
        """8 nodes: input, the 6 edge ops (edge order), output; wiring fixed by the cell."""
        return GraphLayout(("input",) + self.ops + ("output",), _wiring(EDGES) > 0, (), True)

    def graph_tensors(self, arch):
        """``none`` op nodes stay (labelled ``none``, ``mask`` True) with every edge removed."""
        ops = jnp.asarray(arch).astype(jnp.int32)
        n_e, k = ops.shape[0], self.n_ops
        labels = jnp.concatenate([jnp.zeros((1,), jnp.int32), 1 + ops, jnp.full((1,), 1 + k, jnp.int32)])
        io = jnp.ones((1,), bool)
        alive = jnp.concatenate([io, ops != none_id(self.ops), io])
        mask = jnp.ones((n_e + 2,), bool)
        return finish_graph(jnp.asarray(_wiring(EDGES)), labels, mask, k + 2, alive)

    def relaxed_graph(self, rows):
        """``A = wiring ⊙ alive aliveᵀ`` with ``alive = 1 - rows[:, none]`` on the op nodes.

        For one-hot ``rows`` (``float[6, len(ops)]``) this equals
        ``graph_tensors`` exactly; gradients reach ``rows`` through both ``X`` and ``A``.
        """
        rows = jnp.asarray(rows)
        n_e, k = rows.shape
        x = jnp.zeros((n_e + 2, k + 2), jnp.float32)
        x = x.at[0, 0].set(1.0).at[1:-1, 1:-1].set(rows).at[-1, -1].set(1.0)
        one = jnp.ones((1,), jnp.float32)
        none = none_id(self.ops)
        dead = rows[:, none] if none >= 0 else jnp.zeros((n_e,), jnp.float32)
        alive = jnp.concatenate([one, 1.0 - dead, one])
        wiring = jnp.asarray(_wiring(EDGES))
        return wiring * alive[:, None] * alive[None, :], x, jnp.ones((n_e + 2,), bool)

    # ----- host-side ---------------------------------------------------------
    def to_string(self, arch) -> str:
        a = np.asarray(arch).reshape(-1)
        groups, k = [], 0
        for node in (1, 2, 3):
            toks = []
            for src in range(node):
                toks.append(f"{self.ops[int(a[k])]}~{src}")
                k += 1
            groups.append("|" + "|".join(toks) + "|")
        return "+".join(groups)

    def from_string(self, text: str):
        expected = "an NB201 string like '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|'"
        if not isinstance(text, str):
            raise JnasError(f"arch: got {text!r}, expected {expected}")
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise JnasError(f"arch: got {text!r}, expected {expected}")
        ops = []
        for node, g in enumerate(groups, start=1):
            toks = [t for t in g.split("|") if t]
            if not (g.startswith("|") and g.endswith("|")) or len(toks) != node:
                raise JnasError(f"arch: node {node} of {text!r} must list {node} edges, expected {expected}")
            for src, tok in enumerate(toks):
                m = _TOKEN.match(tok)
                if not m or m.group(1) not in self.ops or int(m.group(2)) != src:
                    raise JnasError(
                        f"arch: bad edge {tok!r} in {text!r}; expected 'op~{src}' with op in {', '.join(self.ops)}"
                    )
                ops.append(self.ops.index(m.group(1)))
        return jnp.asarray(ops, jnp.int8)

    def to_networkx(self, arch):
        a = np.asarray(arch).reshape(-1)
        g = nx.DiGraph()
        g.add_nodes_from(range(4))
        for (src, dst), op in zip(EDGES, a):
            g.add_edge(src, dst, op=self.ops[int(op)])
        return g


#: the full space: 5 ops, 15,625 cells
NB201 = NB201Space()
#: the reduced op set of ablations: none, skip_connect, nor_conv_3x3 (729 cells)
NB201_3 = NB201Space("nb201-3", ("none", "skip_connect", "nor_conv_3x3"))
