"""BANANAS path encoding (White et al.): which labelled input→output paths a cell has.

Every feature is one op sequence (a path's "label"); the encoding is 1 where
the cell has at least one input→output path with that label. A ``none`` op
cuts every path through it. Features are ordered by path length first (then
start group, then op sequence, most significant op first), so truncating to
the first ``k`` features keeps the shortest paths, as BANANAS does.

=========  ==================================================  ==========
space      paths                                               features
=========  ==================================================  ==========
nb201      4 edge sequences 0→3 of 1–3 ops, 4 non-none ops      4+16+64 = 84
nb101      node sequences 0→…→6 through 0–5 inner nodes, 3 ops  Σ 3^L = 364
darts      per cell and cell input, chains of 1–4 edges ending  4·Σ a^L, L≤4
           at an intermediate node (all feed the concat)
nbgraph    input→…→leaf chains of 1–4 nodes (leaves feed out)  Σ a^L, L≤4
=========  ==================================================  ==========

Implementation: the set of *candidate* paths of a space is fixed, so it is
tabulated once in numpy (which structural facts each path needs, which op
slots label it, where its label block starts). Encoding an architecture is
then gathers, an ``all`` and one scatter-add — jittable (``space`` and ``k``
static) and vmappable.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.encodings import _layout
from jnas.errors import JnasError

PATH_FAMILIES = ("nb201", "nb101", "darts", "nbgraph")
_DARTS_INPUTS = ("c_{k-2}", "c_{k-1}")


class _Candidate(NamedTuple):
    group: int  # start group (DARTS: cell and cell input), 0 elsewhere
    conds: tuple[int, ...]  # indices into the structure vector that must all be True
    slots: tuple[int, ...]  # indices into the label vector, in path order


class PathTable(NamedTuple):
    """Numpy tables of one space's candidate paths (``P`` paths, ``C`` conds, ``L`` ops max)."""

    cond: np.ndarray  # int32[P, C]; padding points at an always-True entry
    slot: np.ndarray  # int32[P, L]; padding 0
    weight: np.ndarray  # int32[P, L]; place value of each op in the label, 0 on padding
    used: np.ndarray  # bool[P, L]; False on padding
    offset: np.ndarray  # int32[P]; first feature of the path's (length, group) block
    names: tuple[str, ...]  # one per feature


def _label_table(ops) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map op id -> label id (-1 for ops that cut paths) and the label alphabet."""
    alphabet = tuple(o for o in ops if o not in _layout.CUT_OPS)
    return np.array([alphabet.index(o) if o in alphabet else -1 for o in ops], np.int32), alphabet


def _build(candidates, group_names, alphabet, n_structure: int) -> PathTable:
    """Tabulate candidate paths; feature blocks are ordered by (length, group)."""
    a = len(alphabet)
    blocks = sorted({(len(c.slots), c.group) for c in candidates})
    offsets, names, start = {}, [], 0
    for length, group in blocks:
        offsets[length, group] = start
        start += a**length
        for seq in itertools.product(alphabet, repeat=length):
            names.append(group_names[group] + ">".join(("input",) + seq))
    n_c = max(len(c.conds) for c in candidates) or 1
    n_l = max(len(c.slots) for c in candidates) or 1
    p = len(candidates)
    cond = np.full((p, n_c), n_structure, np.int32)
    slot = np.zeros((p, n_l), np.int32)
    weight = np.zeros((p, n_l), np.int32)
    used = np.zeros((p, n_l), bool)
    offset = np.zeros((p,), np.int32)
    for i, c in enumerate(candidates):
        length = len(c.slots)
        cond[i, : len(c.conds)] = c.conds
        slot[i, :length] = c.slots
        weight[i, :length] = a ** np.arange(length - 1, -1, -1)
        used[i, :length] = True
        offset[i] = offsets[length, c.group]
    return PathTable(cond, slot, weight, used, offset, tuple(names))


# ----- per-space candidate paths and views ------------------------------------


def _nb201_table(space) -> PathTable:
    edges = tuple(space.edges)
    out = max(t for _, t in edges)

    def walk(node, used_edges):
        if node == out:
            yield used_edges
        for e, (s, t) in enumerate(edges):
            if s == node:
                yield from walk(t, used_edges + (e,))

    cands = [_Candidate(0, (), path) for path in walk(0, ())]
    return _build(cands, ("",), _label_table(space.ops)[1], 0)


def _nb101_table(space) -> PathTable:
    n = 7
    cands = []
    for length in range(0, n - 1):
        for inner in itertools.combinations(range(1, n - 1), length):
            nodes = (0,) + inner + (n - 1,)
            conds = tuple(s * n + t for s, t in zip(nodes[:-1], nodes[1:]))
            cands.append(_Candidate(0, conds, inner))
    return _build(cands, ("",), _label_table(space.ops)[1], n * n)


def _darts_table(space) -> PathTable:
    # structure vector: [cell, edge, source] one-hot of edge inputs (6 sources)
    n_edges, n_src = 8, 6
    cands = []
    for cell in range(2):
        base = cell * n_edges * n_src
        for start in range(2):
            for nodes in itertools.chain.from_iterable(itertools.combinations(range(4), r) for r in range(1, 5)):
                for picks in itertools.product(range(2), repeat=len(nodes)):
                    edges = [2 * m + j for m, j in zip(nodes, picks)]
                    srcs = [start] + [m + 2 for m in nodes[:-1]]
                    conds = tuple(base + e * n_src + s for e, s in zip(edges, srcs))
                    slots = tuple(cell * n_edges + e for e in edges)
                    cands.append(_Candidate(cell * 2 + start, conds, slots))
    groups = tuple(f"{c}/{i}:" for c in ("normal", "reduce") for i in _DARTS_INPUTS)
    return _build(cands, groups, _label_table(space.ops)[1], 2 * n_edges * n_src)


def _nbgraph_table(space) -> PathTable:
    # structure vector: link[i] == j one-hot (4 x 5), then leaf flags (4)
    cands = []
    for nodes in itertools.chain.from_iterable(itertools.combinations(range(4), r) for r in range(1, 5)):
        srcs = [0] + [v + 1 for v in nodes[:-1]]
        conds = tuple(v * 5 + s for v, s in zip(nodes, srcs)) + (20 + nodes[-1],)
        cands.append(_Candidate(0, conds, nodes))
    return _build(cands, ("",), _label_table(space.ops)[1], 24)


def _labels(space, op_ids) -> jax.Array:
    table, _ = _label_table(space.ops)
    ids = jnp.asarray(op_ids).astype(jnp.int32)
    ok = (ids >= 0) & (ids < table.shape[0])
    return jnp.where(ok, jnp.asarray(table)[jnp.clip(ids, 0, table.shape[0] - 1)], -1)


def _view(space, arch) -> tuple[jax.Array, jax.Array]:
    """``(structure bool[V], labels int32[W])`` of ``arch`` for its family's table."""
    fam = _layout.family(space)
    if fam == "nb201":
        return jnp.zeros((0,), bool), _labels(space, arch)
    if fam == "nb101":
        adj, ops = arch
        return jnp.asarray(adj).reshape(-1) != 0, _labels(space, ops)
    if fam == "darts":
        arch = jnp.asarray(arch).astype(jnp.int32)
        src = jax.nn.one_hot(arch[..., 0], 6, dtype=bool)
        return src.reshape(-1), _labels(space, arch[..., 1].reshape(-1))
    if fam == "nbgraph":
        arch = jnp.asarray(arch).astype(jnp.int32)
        link = arch[:4]
        is_input_of = link[None, :] == jnp.arange(1, 5)[:, None]  # [v, j]: node v feeds node j
        leaf = ~is_input_of.any(axis=1)
        return jnp.concatenate([jax.nn.one_hot(link, 5, dtype=bool).reshape(-1), leaf]), _labels(space, arch[4:])
    raise _layout.unsupported("the path encoding", space, PATH_FAMILIES)


_TABLES = {"nb201": _nb201_table, "nb101": _nb101_table, "darts": _darts_table, "nbgraph": _nbgraph_table}


@functools.lru_cache(maxsize=None)
def path_table(space) -> PathTable:
    """The (cached) candidate-path tables of ``space``."""
    space = _layout.resolve(space)
    fam = _layout.family(space)
    if fam not in _TABLES:
        raise _layout.unsupported("the path encoding", space, PATH_FAMILIES)
    return _TABLES[fam](space)


def n_path_features(space) -> int:
    """Length of the untruncated path encoding of ``space``."""
    return len(path_table(_layout.resolve(space)).names)


def path_features(space, k: int | None = None) -> tuple[str, ...]:
    """Human names of the (first ``k``) features, e.g. ``'input>skip_connect>nor_conv_3x3'``."""
    names = path_table(_layout.resolve(space)).names
    return names[: _check_k(k, len(names))]


def _check_k(k, n: int) -> int:
    if k is None:
        return n
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise JnasError(f"k: got {k!r}, expected an int in [1, {n}] (number of path features kept) or None")
    return int(k)


def path_encoding(space, arch, k: int | None = None, counts: bool = False) -> jax.Array:
    """BANANAS path encoding of one architecture.

    Returns ``float32[k]`` (all ``n_path_features(space)`` when ``k`` is None):
    1.0 where ``arch`` has an input→output path with that op sequence, else
    0.0; with ``counts=True`` the number of such paths instead. Jit with
    ``space``, ``k`` and ``counts`` static; vmap over ``arch``.
    """
    space = _layout.resolve(space)
    k = _check_k(k, n_path_features(space))
    return _path_encoding(space, _layout.check_arch(space, arch), k, bool(counts))


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _path_encoding(space, arch, k: int, counts: bool) -> jax.Array:
    table = path_table(space)
    n = len(table.names)
    structure, labels = _view(space, arch)
    structure = jnp.concatenate([structure, jnp.ones((1,), bool)])  # last entry: padding, always True
    lab = labels[table.slot]  # [P, L]
    present = structure[table.cond].all(axis=1) & jnp.where(table.used, lab >= 0, True).all(axis=1)
    idx = table.offset + (jnp.where(table.used, lab, 0) * table.weight).sum(axis=1)
    vec = jnp.zeros((n,), jnp.float32).at[jnp.where(present, idx, n)].add(1.0, mode="drop")
    if not counts:
        vec = jnp.minimum(vec, 1.0)
    return vec[:k]
