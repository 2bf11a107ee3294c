"""NAS-Bench-Graph cell space: 4 computing nodes, one GNN op and one input each.

A *raw cell* is ``link`` (``int[4]``, ``link[i] ∈ [0, i]``: the input of
computing node ``i``; 0 = the graph input, ``k`` = the ``k``-th computing node)
plus ``ops`` (one op per node). Nodes nobody reads from are joined into the
output. There are 24 links × 9⁴ ops = 157,464 raw cells, but many describe
the same network; NAS-Bench-Graph stores each network once, under the key of
its canonical form (Qin et al., NeurIPS 2022; package ``nas-bench-graph``):
relabel the link into one of 9 canonical links, move "skip" nodes to the
front, relabel again, then sort interchangeable sibling leaves by op id.

An architecture is ``int8[8]``: the canonical ``(link[0..3], ops[0..3])``,
ops as ids into ``space.ops``. The space holds only canonical cells (26,206;
2,021 for the reduced ``proteins`` op set); the all-skip cell is not in the
benchmark and is not a member. Canonicalisation is a gather from a table
(raw-cell index → canonical key) built once per process with numpy, so it
jits and vmaps. The benchmark key is ``L·10⁴ + o₁·10³ + o₂·10² + o₃·10 + o₄``
with ``L`` the canonical link's position in ``LINKS`` and ``oᵢ`` the op's
position in the full 9-op list (also for ``proteins``).

Self-description: 8 categorical decisions, ``link[i]`` (``i + 1`` values)
then ``ops[i]``; the 4 op nodes are the op slots (the links are wiring);
the graph is input, the 4 op nodes, output (leaves feed the output).
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import Decisions, GraphLayout, OpSlots, Relaxation, Space
from jnas.spaces.generic import categorical, decision_relaxation, finish_graph

#: the full op list; a key's op digits index into it
ALL_OPS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
#: the op set of the ``proteins`` benchmark (same relative order as ``ALL_OPS``)
PROTEINS_OPS = ("gcn", "sage", "arma", "fc", "skip")
#: canonical links; a key's leading digit indexes into this list
LINKS = (
    (0, 0, 0, 0),
    (0, 0, 0, 1),
    (0, 0, 1, 1),
    (0, 0, 1, 2),
    (0, 0, 1, 3),
    (0, 1, 1, 1),
    (0, 1, 1, 2),
    (0, 1, 2, 2),
    (0, 1, 2, 3),
)
N_NODES = 4
N_RAW_LINKS = 24  # 1 · 2 · 3 · 4 choices of link[0..3]
KEY_SPAN = len(LINKS) * 10**4  # every key is < 90,000
_SKIP = ALL_OPS.index("skip")
_LINK_RADIX = np.array([0, 12, 4, 1])  # raw link id = 12·link[1] + 4·link[2] + link[3]
_KEY_WEIGHTS = np.array([1000, 100, 10, 1])

# The package's relabelling of each non-canonical link: link -> (canonical
# link, order) with new ops[j] = old ops[order[j]]. Other relabellings are
# also isomorphisms, but the skip-moving step depends on node order, so only
# this choice reproduces the benchmark's keys.
_RELABEL = {
    (0, 0, 0, 2): ((0, 0, 0, 1), (1, 0, 2, 3)),
    (0, 0, 0, 3): ((0, 0, 0, 1), (2, 0, 1, 3)),
    (0, 0, 1, 0): ((0, 0, 0, 1), (0, 1, 3, 2)),
    (0, 0, 2, 0): ((0, 0, 0, 1), (1, 0, 3, 2)),
    (0, 0, 2, 1): ((0, 0, 1, 2), (1, 0, 2, 3)),
    (0, 0, 2, 2): ((0, 0, 1, 1), (1, 0, 2, 3)),
    (0, 0, 2, 3): ((0, 0, 1, 3), (1, 0, 2, 3)),
    (0, 1, 0, 0): ((0, 0, 0, 1), (0, 2, 3, 1)),
    (0, 1, 0, 1): ((0, 0, 1, 1), (0, 2, 1, 3)),
    (0, 1, 0, 2): ((0, 0, 1, 3), (0, 2, 1, 3)),
    (0, 1, 0, 3): ((0, 0, 1, 2), (0, 2, 1, 3)),
    (0, 1, 1, 0): ((0, 0, 1, 1), (0, 3, 1, 2)),
    (0, 1, 1, 3): ((0, 1, 1, 2), (0, 2, 1, 3)),
    (0, 1, 2, 0): ((0, 0, 1, 3), (0, 3, 1, 2)),
    (0, 1, 2, 1): ((0, 1, 1, 2), (0, 1, 3, 2)),
}
# Canonical link -> node positions that are interchangeable leaves of one parent.
_SIBLING_LEAVES = {
    (0, 0, 0, 0): (0, 1, 2, 3),
    (0, 0, 0, 1): (1, 2),
    (0, 0, 1, 1): (2, 3),
    (0, 1, 1, 1): (1, 2, 3),
    (0, 1, 2, 2): (2, 3),
}
# Link (0,0,1,2) is two parallel 2-node chains, (0→2) and (1→3), ordered by their ops.
_TWO_CHAINS = LINKS.index((0, 0, 1, 2))


def raw_links() -> np.ndarray:
    """``int8[24, 4]``: every raw link, in raw-link-id order."""
    r = np.arange(N_RAW_LINKS)
    return np.stack([np.zeros_like(r), r // 12, (r // 4) % 3, r % 4], axis=1).astype(np.int8)


# ----- the canonical form of one (link, skip pattern), host-side --------------------
def _relabel(link: list[int], order: list[int]) -> tuple[list[int], list[int]]:
    if tuple(link) not in _RELABEL:
        return link, order
    new_link, perm = _RELABEL[tuple(link)]
    return list(new_link), [order[p] for p in perm]


def _skip_chain_to_input(k: int, link: list[int], skip: list[bool]) -> bool:
    """Whether node ``k`` and all its ancestors are skips (it carries the raw input)."""
    while k >= 0:
        if not skip[k]:
            return False
        k = link[k] - 1
    return True


def _move_to_front(k: int, link: list[int], order: list[int]) -> tuple[list[int], list[int]]:
    """Make node ``k`` node 0 (reading the input); its readers read its parent instead.

    Readers of the input now read the moved node; renumbering shifts nodes before ``k``.
    """

    def renumber(f: int) -> int:
        if f == k + 1:
            return link[k] + 1
        return f + 1 if f <= k else f

    rest = [renumber(f) for i, f in enumerate(link) if i != k]
    return [0] + rest, [order[k]] + order[:k] + order[k + 1 :]


def _move_skips(link: list[int], order: list[int], is_skip: tuple[bool, ...]) -> tuple[list[int], list[int]]:
    """The package's skip-moving pass, scanning node positions left to right.

    A skip node moves to the front when it has a reader, has no sibling, or
    only forwards the raw input. The scan continues at the next position of
    the already-reordered cell, as upstream does.
    """
    for i in range(N_NODES):
        skip = [is_skip[o] for o in order]
        if not skip[i]:
            continue
        has_child = any(f == i + 1 for f in link)
        has_sibling = any(j != i and f == link[i] for j, f in enumerate(link))
        if has_child or not has_sibling or _skip_chain_to_input(i, link, skip):
            link, order = _move_to_front(i, link, order)
    return link, order


def _canonical_order(link: tuple[int, ...], is_skip: tuple[bool, ...]) -> tuple[int, list[int]]:
    """``(canonical link id, order)``: canonical ops (before the sibling sort) = ``ops[order]``."""
    link, order = _relabel(list(link), list(range(N_NODES)))
    link, order = _move_skips(link, order, is_skip)
    link, order = _relabel(link, order)
    if tuple(link) not in LINKS:  # upstream would fail here too; never happens for valid raw cells
        raise AssertionError(f"non-canonical link {link} after moving skips")
    return LINKS.index(tuple(link)), order


@functools.cache
def _order_tables() -> tuple[np.ndarray, np.ndarray]:
    """``(int8[24, 16] link id, int8[24, 16, 4] order)`` per raw link and skip bit pattern."""
    link_id = np.empty((N_RAW_LINKS, 16), np.int8)
    order = np.empty((N_RAW_LINKS, 16, N_NODES), np.int8)
    for r, link in enumerate(raw_links().tolist()):
        for bits in range(16):
            is_skip = tuple(bool(bits >> j & 1) for j in range(N_NODES))
            link_id[r, bits], order[r, bits] = _canonical_order(tuple(link), is_skip)
    return link_id, order


def canonical_keys(raw_link_id: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """Benchmark keys of raw cells, vectorised (host-side numpy).

    ``raw_link_id``: ``int[n]`` in ``[0, 24)`` (see ``raw_links``); ``ops``:
    ``int[n, 4]`` ids into ``ALL_OPS``. Returns ``int32[n]``, equal to the
    package's ``Arch(link, ops).valid_hash()`` (the all-skip cell gives 88888).
    """
    link_table, order_table = _order_tables()
    ops = np.asarray(ops, np.int32)
    bits = ((ops == _SKIP) << np.arange(N_NODES)).sum(axis=1)
    link_id = link_table[raw_link_id, bits].astype(np.int32)
    ops = np.take_along_axis(ops, order_table[raw_link_id, bits].astype(np.intp), axis=1)
    for link, cols in _SIBLING_LEAVES.items():
        rows = link_id == LINKS.index(link)
        ops[np.ix_(rows, cols)] = np.sort(ops[np.ix_(rows, cols)], axis=1)
    swap = (link_id == _TWO_CHAINS) & (
        (ops[:, 0] > ops[:, 1]) | ((ops[:, 0] == ops[:, 1]) & (ops[:, 2] > ops[:, 3]))
    )
    ops[swap] = ops[swap][:, [1, 0, 3, 2]]
    return (link_id * 10**4 + ops @ _KEY_WEIGHTS).astype(np.int32)


class Tables(NamedTuple):
    """Host tables of one op set. ``R`` = raw cells, ``N`` = canonical architectures."""

    raw_key: np.ndarray  # int32[R]: canonical key of each raw cell (88888 for all-skip)
    raw_row: np.ndarray  # int32[R]: row of each raw cell's canonical form (-1 if not a member)
    keys: np.ndarray  # int32[N]: keys of the members, ascending (row order)
    key_row: np.ndarray  # int32[KEY_SPAN]: row of each key (-1 if not a member)
    cells: np.ndarray  # int8[N, 8]: the members, (link, local op ids)
    to_local: np.ndarray  # int8[9]: local id of each ALL_OPS id (-1 if not in the op set)


@functools.cache
def build_tables(ops: tuple[str, ...]) -> Tables:
    """Canonicalisation tables for the op subset ``ops`` (computed once per process)."""
    n_ops = len(ops)
    to_global = np.array([ALL_OPS.index(o) for o in ops], np.int32)
    to_local = np.full(len(ALL_OPS), -1, np.int32)
    to_local[to_global] = np.arange(n_ops)
    local = np.stack(np.unravel_index(np.arange(n_ops**N_NODES), (n_ops,) * N_NODES), axis=1)
    raw_link_id = np.repeat(np.arange(N_RAW_LINKS), n_ops**N_NODES)
    raw_key = canonical_keys(raw_link_id, np.tile(to_global[local], (N_RAW_LINKS, 1)))
    all_skip = canonical_keys(np.zeros(1, int), np.full((1, N_NODES), _SKIP))[0]  # not in the benchmark
    keys = np.unique(raw_key)
    keys = keys[keys != all_skip].astype(np.int32)
    key_row = np.full(KEY_SPAN, -1, np.int32)
    key_row[keys] = np.arange(len(keys), dtype=np.int32)
    digits = keys[:, None] // np.array([10**4, *_KEY_WEIGHTS]) % 10
    cells = np.concatenate([np.array(LINKS)[digits[:, 0]], to_local[digits[:, 1:]]], axis=1).astype(np.int8)
    return Tables(raw_key, key_row[raw_key], keys, key_row, cells, to_local.astype(np.int8))


class _DeviceTables(NamedTuple):
    raw_key: jax.Array
    raw_row: jax.Array
    cells: jax.Array
    links: jax.Array
    to_local: jax.Array


@functools.cache
def _device_tables(ops: tuple[str, ...]) -> _DeviceTables:
    t = build_tables(ops)
    with jax.ensure_compile_time_eval():  # concrete arrays even when first used under jit
        return _DeviceTables(
            jnp.asarray(t.raw_key),
            jnp.asarray(t.raw_row),
            jnp.asarray(t.cells),
            jnp.asarray(np.array(LINKS), jnp.int8),
            jnp.asarray(t.to_local),
        )


def _edit_table(n_ops: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(column, shift, modulus)`` of every single raw edit: new = (arch[column] + shift) % modulus."""
    edits = [(node, s, node + 1) for node in range(1, N_NODES) for s in range(1, node + 1)]
    edits += [(N_NODES + node, s, n_ops) for node in range(N_NODES) for s in range(1, n_ops)]
    return tuple(np.array(c, np.int32) for c in zip(*edits))


class NBGraphSpace(Space):
    """The 26,206 canonical NAS-Bench-Graph architectures (``int8[8]`` = link, ops)."""

    name = "nbgraph"
    enumerable = True
    ops = ALL_OPS
    links = LINKS

    # ----- tables ---------------------------------------------------------------
    @property
    def tables(self) -> Tables:
        """Host canonicalisation tables (see ``Tables``)."""
        return build_tables(self.ops)

    @property
    def keys(self) -> np.ndarray:
        """``int32[size]`` benchmark key of each row, ascending (host)."""
        return self.tables.keys

    def _raw(self, arch) -> tuple[jax.Array, jax.Array]:
        """``(raw cell index, in range)`` of a raw or canonical cell (int32[], bool[])."""
        a = jnp.asarray(arch).astype(jnp.int32)
        link, ops = a[:N_NODES], a[N_NODES:]
        n = len(self.ops)
        ok = jnp.all((link >= 0) & (link <= jnp.arange(N_NODES))) & jnp.all((ops >= 0) & (ops < n))
        code = jnp.sum(link * jnp.asarray(_LINK_RADIX, jnp.int32)) * n**N_NODES
        code = code + jnp.sum(ops * jnp.asarray(n ** np.arange(N_NODES - 1, -1, -1), jnp.int32))
        return jnp.where(ok, code, 0), ok

    # ----- structure -------------------------------------------------------------
    def template(self):
        return jnp.zeros((2 * N_NODES,), jnp.int8)

    @property
    def size(self) -> int:
        return len(self.tables.keys)

    # ----- array primitives ----------------------------------------------------------
    def key(self, arch) -> jax.Array:
        """``int32[]`` benchmark key of a raw or canonical cell (-1 if out of range).

        Equals the package's ``Arch(link, ops).valid_hash()``; the all-skip cell
        gives 88888, which the benchmark does not contain.
        """
        raw, ok = self._raw(arch)
        return jnp.where(ok, _device_tables(self.ops).raw_key[raw], -1)

    def canonicalize(self, arch) -> jax.Array:
        """The canonical ``int8[8]`` form of a raw cell (``arch`` itself if out of range)."""
        t = _device_tables(self.ops)
        raw, ok = self._raw(arch)
        key = t.raw_key[raw]
        digits = key // jnp.asarray([10**4, *_KEY_WEIGHTS], jnp.int32) % 10
        out = jnp.concatenate([t.links[digits[0]], t.to_local[digits[1:]]])
        return jnp.where(ok, out, jnp.asarray(arch).astype(jnp.int8))

    def index(self, arch) -> jax.Array:
        """Row of a canonical cell; -1 for non-canonical, out-of-range or all-skip cells."""
        t = _device_tables(self.ops)
        arch = jnp.asarray(arch).astype(jnp.int8)
        raw, ok = self._raw(arch)
        row = t.raw_row[raw]
        member = ok & (row >= 0) & jnp.all(t.cells[jnp.maximum(row, 0)] == arch)
        return jnp.where(member, row, -1).astype(jnp.int32)

    def is_valid(self, arch) -> jax.Array:
        return self.index(arch) >= 0

    def enumerate(self):
        return _device_tables(self.ops).cells

    def from_index(self, i):
        return _device_tables(self.ops).cells[jnp.asarray(i, jnp.int32)]

    def neighbours(self, arch):
        """Every single raw edit (one link or one op changed), canonicalised.

        Fixed size ``6 + 4·(len(ops) - 1)``; ``mask`` marks members that differ
        from ``arch`` and from every earlier entry, so mutation stays uniform
        over distinct neighbours. Masked entries hold ``arch``.
        """
        t = _device_tables(self.ops)
        arch = jnp.asarray(arch).astype(jnp.int8)
        col, shift, mod = (jnp.asarray(x) for x in _edit_table(len(self.ops)))
        new = (arch[col].astype(jnp.int32) + shift) % mod
        cand = jnp.tile(arch, (col.shape[0], 1)).at[jnp.arange(col.shape[0]), col].set(new.astype(jnp.int8))
        raw, ok = jax.vmap(self._raw)(cand)
        rows = jnp.where(ok, t.raw_row[raw], -1)
        own_raw, own_ok = self._raw(arch)
        own = jnp.where(own_ok, t.raw_row[own_raw], -1)
        earlier = jnp.tril(rows[:, None] == rows[None, :], k=-1).any(axis=1)
        mask = (rows >= 0) & (rows != own) & ~earlier
        out = jnp.where(mask[:, None], t.cells[jnp.maximum(rows, 0)], arch)
        return out, mask

    def crossover(self, key, a, b):
        """Each node takes its (input, op) from ``a`` or ``b``; canonicalised, else ``a``."""
        t = _device_tables(self.ops)
        take_a = jnp.tile(jax.random.bernoulli(key, 0.5, (N_NODES,)), 2)
        child = jnp.where(take_a, jnp.asarray(a, jnp.int8), jnp.asarray(b, jnp.int8))
        raw, ok = self._raw(child)
        row = jnp.where(ok, t.raw_row[raw], -1)
        return jnp.where(row >= 0, t.cells[jnp.maximum(row, 0)], jnp.asarray(a, jnp.int8))

    # ----- self-description ---------------------------------------------------------
    @property
    def decisions(self) -> Decisions:
        """``link[0..3]`` (node ``i`` reads one of ``i + 1`` inputs), then ``ops[0..3]``; tokens = the raw cell."""
        sources = ("input",) + tuple(f"node{j}" for j in range(N_NODES))
        return Decisions(
            np.array([i + 1 for i in range(N_NODES)] + [len(self.ops)] * N_NODES, np.int32),
            tuple(f"node{i}.input" for i in range(N_NODES)) + tuple(f"node{i}.op" for i in range(N_NODES)),
            tuple(sources[: i + 1] for i in range(N_NODES)) + (tuple(self.ops),) * N_NODES,
            False,
        )

    @property
    def op_slot_layout(self) -> OpSlots:
        """One cell of 4 op slots (the nodes); the links are wiring."""
        return OpSlots(tuple(self.ops), 1, N_NODES, True)

    def op_slots(self, arch):
        return jnp.asarray(arch)[N_NODES:].astype(jnp.int32)[None, :]

    def with_op_slots(self, arch, ops):
        # Relabelling to the canonical form permutes nodes, so the op multiset survives.
        arch = jnp.asarray(arch)
        return self.canonicalize(arch.at[N_NODES:].set(jnp.asarray(ops).astype(arch.dtype)[0]))

    @property
    def graph_layout(self) -> GraphLayout:
        """6 nodes: input (0), computing nodes 1..4, output (5); node ``i + 1`` may read any of 0..i."""
        n = N_NODES + 2
        wiring = np.zeros((n, n), bool)
        for i in range(N_NODES):
            wiring[: i + 1, 1 + i] = True  # link[i] in [0, i]
            wiring[1 + i, n - 1] = True  # a leaf feeds the output
        return GraphLayout(("input",) + tuple(self.ops) + ("output",), wiring, (), True)

    def graph_tensors(self, arch):
        """The cell itself: ``A`` = ``to_networkx`` adjacency (node ``k`` = computing node ``k``)."""
        arch = jnp.asarray(arch).astype(jnp.int32)
        link, ops = arch[:N_NODES], arch[N_NODES:]
        node = jnp.arange(N_NODES)
        n = N_NODES + 2
        # link values already are A indices: 0 = input, k = computing node k (A index k)
        a = jnp.zeros((n, n), jnp.float32).at[link, 1 + node].set(1.0)
        leaf = ~(link[None, :] == (1 + node)[:, None]).any(axis=1)
        a = a.at[1 + node, n - 1].set(leaf.astype(jnp.float32))
        k = len(self.ops)
        labels = jnp.concatenate([jnp.zeros((1,), jnp.int32), 1 + ops, jnp.full((1,), 1 + k, jnp.int32)])
        return finish_graph(a, labels, jnp.ones((n,), bool), k + 2)

    def relaxation(self) -> Relaxation:
        """One-hot decisions (``10 + 4·len(ops)`` features); rounding draws the links, then the ops."""
        base = decision_relaxation(self)
        n_ops, n_link = len(self.ops), N_NODES * (N_NODES + 1) // 2
        link_off = np.concatenate([[0], np.cumsum(np.arange(1, N_NODES))])  # node i's input block starts here

        def decode(key, x):
            k_link, k_ops = jax.random.split(key)
            pos = np.arange(N_NODES)
            idx = np.minimum(link_off[:, None] + pos[None, :], n_link - 1)
            w = x[:n_link][idx]  # [node, choice], choices past i masked below
            valid = jnp.asarray(pos[None, :] <= pos[:, None])
            link = jax.vmap(categorical)(jax.random.split(k_link, N_NODES), w, valid)
            wo = x[n_link:].reshape(N_NODES, n_ops)
            ops = jax.vmap(categorical)(jax.random.split(k_ops, N_NODES), wo, jnp.ones_like(wo, bool))
            return self.canonicalize(jnp.concatenate([link, ops]).astype(jnp.int8))

        return base._replace(decode=decode)

    # ----- host-side ---------------------------------------------------------------
    def from_raw(self, link, ops):
        """Canonical ``int8[8]`` of a raw cell given as ``link`` ints and ``ops`` names or ids."""
        expected_link = "4 ints with link[i] in [0, i] (0 = input, k = k-th node)"
        try:
            link = [int(v) for v in link]
        except (TypeError, ValueError):
            raise JnasError(f"link: got {link!r}, expected {expected_link}") from None
        if len(link) != N_NODES or any(not 0 <= v <= i for i, v in enumerate(link)):
            raise JnasError(f"link: got {link!r}, expected {expected_link}")
        ids = []
        for o in list(ops) if not isinstance(ops, str) else [ops]:
            if isinstance(o, str) and o in self.ops:
                ids.append(self.ops.index(o))
            elif isinstance(o, (int, np.integer)) and 0 <= o < len(self.ops):
                ids.append(int(o))
            else:
                raise JnasError(f"ops: got {ops!r}, expected 4 of {', '.join(self.ops)}")
        if len(ids) != N_NODES:
            raise JnasError(f"ops: got {ops!r}, expected 4 of {', '.join(self.ops)}")
        n = len(self.ops)
        raw = int(np.dot(link, _LINK_RADIX)) * n**N_NODES + int(np.dot(ids, n ** np.arange(N_NODES - 1, -1, -1)))
        row = int(self.tables.raw_row[raw])
        if row < 0:
            raise JnasError(f"arch: got link={link} ops={list(ops)}, expected a cell with a non-skip op")
        return jnp.asarray(self.tables.cells[row])

    def to_string(self, arch) -> str:
        a = np.asarray(arch).reshape(-1)
        ok = a.shape == (2 * N_NODES,) and all(0 <= v <= i for i, v in enumerate(a[:N_NODES]))
        if not ok or not all(0 <= v < len(self.ops) for v in a[N_NODES:]):
            expected = f"int8[8] = (link[i] in [0, i], op ids in [0, {len(self.ops)}))"
            raise JnasError(f"arch: got {a.tolist()!r}, expected {expected}")
        link = ",".join(str(int(v)) for v in a[:N_NODES])
        return f"link={link};ops={','.join(self.ops[int(v)] for v in a[N_NODES:])}"

    def from_string(self, text: str):
        """Parse ``link=0,1,1,2;ops=gcn,gin,cheb,fc`` (any raw cell) into its canonical form."""
        m = re.fullmatch(r"\s*link=([^;]*);\s*ops=(.*?)\s*", text) if isinstance(text, str) else None
        if not m:
            raise JnasError(f"arch: got {text!r}, expected a string like 'link=0,1,1,2;ops=gcn,gin,cheb,fc'")
        link = [s.strip() for s in m.group(1).split(",")]
        if not all(s.isdigit() for s in link):
            raise JnasError(f"link: got {m.group(1)!r}, expected 4 ints with link[i] in [0, i]")
        return self.from_raw(link, [s.strip() for s in m.group(2).split(",")])

    def to_networkx(self, arch):
        """Nodes 0 = input, 1..4 = computing nodes, 5 = output; nodes carry ``op``."""
        a = np.asarray(arch).reshape(-1)
        link, ops = a[:N_NODES].tolist(), a[N_NODES:].tolist()
        g = nx.DiGraph()
        g.add_node(0, op="input")
        for i in range(N_NODES):
            g.add_node(i + 1, op=self.ops[ops[i]])
        g.add_node(N_NODES + 1, op="output")
        for i, src in enumerate(link):
            g.add_edge(src, i + 1)
        for i in range(N_NODES):
            if i + 1 not in link:  # leaves are joined into the output
                g.add_edge(i + 1, N_NODES + 1)
        return g


class NBGraphProteinsSpace(NBGraphSpace):
    """The 2,021 canonical architectures over the ``proteins`` op set."""

    name = "nbgraph-proteins"
    ops = PROTEINS_OPS


NBGRAPH = NBGraphSpace()
NBGRAPH_PROTEINS = NBGraphProteinsSpace()
