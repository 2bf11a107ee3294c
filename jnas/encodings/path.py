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

Implementation: paths are walked in the space's graph (``Space.graph_layout``
and ``Space.graph_tensors``, ops as nodes): a candidate path runs from an
input node (no possible incoming edge) through op nodes to an output node
(no possible outgoing edge) along edges some member can have. The set of
candidates is fixed, so it is tabulated once in numpy (which entries of
``A`` each path needs, which nodes label it, where its label block
starts); start groups are (cell, input node) where a space has several.
Encoding an architecture is then its graph tensors, gathers, an ``all`` and
one scatter-add — jittable (``space`` and ``k`` static) and vmappable.
A space whose ``graph_layout.paths`` is False (ConvNet) has no path encoding.
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.encodings import _layout
from jnas.encodings.multihot import MultiHot
from jnas.errors import check_int


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


# ----- candidate paths from the space's graph ---------------------------------------


def _path_space(space):
    space = _layout.resolve(space)
    if not space.supports("graph_layout") or not space.graph_layout.paths:
        raise space.unsupported("the path encoding")
    return space


@functools.lru_cache(maxsize=None)
def path_table(space) -> PathTable:
    """The (cached) candidate-path tables of ``space``, walked in ``space.graph_layout.wiring``."""
    space = _path_space(space)
    layout = space.graph_layout
    wiring = np.asarray(layout.wiring, bool)
    cells = wiring.reshape(-1, *wiring.shape[-2:])
    n_cells, n = cells.shape[0], cells.shape[-1]
    # the label of each input node, read off the template's graph (it does not depend on the architecture)
    with jax.ensure_compile_time_eval():  # concrete even when first asked for under a trace
        x = np.asarray(space.graph_tensors(space.template())[1]).reshape(n_cells, n, -1)
    cands, group_names = [], []
    for c in range(n_cells):
        w = cells[c]
        starts = [v for v in range(n) if w[v].any() and not w[:, v].any()]
        ends = {v for v in range(n) if w[:, v].any() and not w[v].any()}

        def walk(v, nodes, conds, c=c, w=w, starts=starts, ends=ends):
            for u in np.flatnonzero(w[v]).tolist():
                edge = (c * n + v) * n + u
                if u in ends:
                    yield nodes, conds + (edge,)
                elif u not in starts:
                    yield from walk(u, nodes + (c * n + u,), conds + (edge,))

        for s0 in starts:
            parts = ([layout.cells[c]] if n_cells > 1 else []) + (
                [layout.labels[int(x[c, s0].argmax())]] if len(starts) > 1 else [])
            group = len(group_names)
            group_names.append("/".join(parts) + ":" if parts else "")
            cands += [_Candidate(group, conds, nodes) for nodes, conds in walk(s0, (), ())]
    return _build(cands, tuple(group_names), _label_table(space.ops)[1], n_cells * n * n)


def _view(space, arch) -> tuple[jax.Array, jax.Array]:
    """``(structure bool[cells·n·n], labels int32[cells·n])``: the graph's edges and each node's label id.

    A node's label id is its op's position in the path alphabet, -1 for
    inputs, outputs, padding and ops that cut paths.
    """
    a, x, mask = space.graph_tensors(arch)
    alphabet = _label_table(space.ops)[1]
    column = np.array([alphabet.index(lab) if lab in alphabet else -1 for lab in space.graph_layout.labels], np.int32)
    lab = jnp.asarray(column)[jnp.argmax(x, axis=-1)]
    lab = jnp.where(mask & (x.sum(axis=-1) > 0), lab, -1)
    return (a > 0).reshape(-1), lab.reshape(-1)


def n_path_features(space) -> int:
    """Length of the untruncated path encoding of ``space``."""
    return len(path_table(_path_space(space)).names)


def path_features(space, k: int | None = None) -> tuple[str, ...]:
    """Human names of the (first ``k``) features, e.g. ``'input>skip_connect>nor_conv_3x3'``."""
    names = path_table(_path_space(space)).names
    return names[: _check_k(k, len(names))]


def _check_k(k, n: int) -> int:
    if k is None:
        return n
    return check_int("k", k, 1, n, expected=f"an int in [1, {n}] (number of path features kept) or None")


def path_encoding(space, arch, k: int | None = None, counts: bool = False) -> jax.Array:
    """BANANAS path encoding of one architecture.

    Returns ``float32[k]`` (all ``n_path_features(space)`` when ``k`` is None):
    1.0 where ``arch`` has an input→output path with that op sequence, else
    0.0; with ``counts=True`` the number of such paths instead. Jit with
    ``space``, ``k`` and ``counts`` static; vmap over ``arch``.
    """
    space = _path_space(space)
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


def path_multihot(space, arch, k: int | None = None, counts: bool = False) -> MultiHot:
    """The path encoding of one architecture as a ``MultiHot`` row: the same vector, held sparsely.

    ``path_multihot(...).dense()`` equals ``path_encoding(...)`` with the same
    ``k`` and ``counts``; the row holds one id per candidate path of the space
    (``ids int32[P]``, padding ``>= k``). Use it for wide encodings
    (NAS-Bench-Graph: 7,380 features, at most ``P`` set), where a model's first
    layer then costs ``P`` rows instead of ``k`` columns. Jit with ``space``,
    ``k`` and ``counts`` static; vmap over ``arch``.
    """
    space = _path_space(space)
    k = _check_k(k, n_path_features(space))
    return MultiHot(_path_ids(space, _layout.check_arch(space, arch), k, bool(counts)), k)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _path_ids(space, arch, k: int, counts: bool) -> jax.Array:
    table = path_table(space)
    structure, labels = _view(space, arch)
    structure = jnp.concatenate([structure, jnp.ones((1,), bool)])
    lab = labels[table.slot]
    present = structure[table.cond].all(axis=1) & jnp.where(table.used, lab >= 0, True).all(axis=1)
    idx = table.offset + (jnp.where(table.used, lab, 0) * table.weight).sum(axis=1)
    ids = jnp.sort(jnp.where(present & (idx < k), idx, k))
    if not counts:  # a label present along several paths is one 1, not a count
        ids = jnp.where(jnp.concatenate([jnp.zeros((1,), bool), ids[1:] == ids[:-1]]), k, ids)
    return ids.astype(jnp.int32)
