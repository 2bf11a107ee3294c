"""PNAS (Liu et al., 2018): progressive search from small cells to large ones, ranked by a surrogate.

A cell's *blocks* are its edges that are not ``none`` (NAS-Bench-201 and
its 3-op variant: 0 to 6 blocks), so the search grows cells from sparse to
dense. Each step queries ``batch_size`` (K, default 8) cells:

* step 0: K distinct random cells of one block;
* step t ≥ 1 (cells of ``b = t + 1`` blocks while ``b`` ≤ the edge count): the
  *beam* is the K best cells of the previous round; every way of adding one
  block to a beam cell (one ``none`` edge set to another op) is a candidate;
  an MLP ensemble (``jnas.predictors.mlp``, the ``bananas`` surrogate), fitted
  on the one-hot ops of every cell evaluated so far, ranks the candidates by
  predicted mean, and the K best distinct, never-queried ones are queried;
* once cells have every edge, a budget that is not spent yet continues at
  full size (an extension of the paper, which stops there): the beam is the K
  best full cells evaluated, and the candidates are every one-op change of
  them, ranked the same way.

When the candidates run out (all queried), the step is filled with random
never-queried cells. Failed evaluations follow ``on_failure`` (default
``-inf``: never in a beam).

On the DARTS/NASNet cell (space ``darts-blocks``, ``jnas.spaces.darts_blocks``)
a block is an intermediate node (two inputs, an op on each, a sum), and a
``b``-block cell holds nodes ``2 .. b + 1``. Cells grow from 1 to 4 blocks
the same way, then continue at 4 blocks with one-edit changes (an op or an
input of one edge: the space's ``neighbours``):

* ``tie_cells`` (default true, as in the paper): the reduction cell is the
  normal cell (the network applies it with stride 2). One-block cells: the
  49 op pairs on inputs (0, 1); the expansions of a ``b``-block cell are the
  ``C(b + 2, 2) · 49`` ways to add block ``b + 1`` (an unordered pair of
  distinct inputs among the two cell inputs and the ``b`` earlier blocks,
  then an op for each, ``none`` excluded): 147, 294, 490 for b = 1, 2, 3;
  at 4 blocks the candidates are the 96 one-edit changes of the cell.
* ``tie_cells=false``: both cells grow together, each by one block, so a
  candidate is a pair (normal expansion, reduce expansion): up to 490² per
  beam cell (2,401 one-block pairs to start), scored in chunks; at 4 blocks
  one edit in either cell (192 rows).

The surrogate (the same MLP ensemble) reads the space's one-hot of every
edge's (input, op) (``DartsSpace.onehot``; an absent edge reads ``none``),
only the normal cell's half when the cells are tied. Candidates are scored in
bulk (``jnas.predictors.base.score_in_chunks``, straight from their ids, so
the untied product is never materialised); the K best distinct, never-told
ones are queried (told cells are recognised by their hash). The fill, when
candidates run out, draws random cells of the step's block count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.predictors.base import score_in_chunks
from jnas.predictors.mlp import MLPEnsemble
from jnas.spaces import darts as D
from jnas.spaces import darts_blocks as DB
from jnas.strategies import model_based as mb
from jnas.strategies.base import Option, Strategy, batch_option, failure_option
from jnas.strategies.history import arch_hash


def blocks(arch, none: int = 0) -> jax.Array:
    """``int32[]``: the edges of a cell (``int[E]`` op ids) that are not ``none``."""
    return jnp.sum(jnp.asarray(arch) != none).astype(jnp.int32)


def _one_edge_edits(arch, n_ops: int, none: int):
    """Every cell that sets one edge of ``arch`` to one non-``none`` op: ``(cells int[E·(n_ops-1), E], old op,
    new op)``, candidate ``e·(n_ops-1) + j`` setting edge ``e`` to the ``j``-th non-``none`` op."""
    arch = jnp.asarray(arch)
    n_edges = arch.shape[0]
    ops = jnp.asarray([o for o in range(n_ops) if o != none], arch.dtype)
    e = jnp.repeat(jnp.arange(n_edges), n_ops - 1)
    o = jnp.tile(ops, n_edges)
    return jnp.tile(arch[None], (e.shape[0], 1)).at[jnp.arange(e.shape[0]), e].set(o), arch[e], o


def expansions(arch, n_ops: int, none: int = 0):
    """Every cell with one more block than ``arch``: ``(cells int[E·(n_ops-1), E], valid bool[E·(n_ops-1)])``;
    a candidate is valid where it sets a ``none`` edge of ``arch``."""
    cells, old, _ = _one_edge_edits(arch, n_ops, none)
    return cells, old == none


def op_changes(arch, n_ops: int, none: int = 0):
    """Every cell that changes one non-``none`` edge of ``arch`` to another non-``none`` op (same blocks):
    ``(cells, valid)`` of the same layout as ``expansions``."""
    cells, old, new = _one_edge_edits(arch, n_ops, none)
    return cells, (old != none) & (old != new)


# ----- the DARTS/NASNet cell (space darts-blocks) -------------------------------------------------------------
#: ways to add one block to a cell: input pair (``D.PAIRS`` order) x op of the first edge x op of the second
_EXP_PAIR, _EXP_OP_A, _EXP_OP_B = (a.reshape(-1) for a in np.meshgrid(
    np.arange(len(D.PAIRS)), np.arange(1, D.N_OPS), np.arange(1, D.N_OPS), indexing="ij"))
N_EXPANSIONS = _EXP_PAIR.size  # 490
#: the rows of ``DartsBlocksSpace.neighbours`` that edit the normal cell (op edits, then input edits): 96
_NORMAL_EDITS = np.flatnonzero(DB._EDIT_CELL == 0)
N_EDITS = _NORMAL_EDITS.size
#: rows per cell in a candidate table: the expansions (or the edits, padded), then the cell itself
_ROWS = max(N_EXPANSIONS, N_EDITS) + 1
_SELF = _ROWS - 1


def is_blocks_space(space) -> bool:
    """Whether ``space`` is the DARTS cell by blocks (``darts-blocks``), PNAS's DARTS search space."""
    return isinstance(space, DB.DartsBlocksSpace)


def cell_expansions(cell):
    """Every cell with one more block than ``cell`` (``int[8, 2]``, ``b`` present nodes; ``b = 0``: no node):
    ``(cells int32[490, 8, 2], valid bool[490])``. Row ``(p·7 + i)·7 + j`` adds node ``b + 2`` reading the input
    pair ``D.PAIRS[p]`` with ops ``i + 1`` and ``j + 1``; valid where the pair reads nodes before it
    (``p < C(b + 2, 2)``) and ``b < 4``."""
    cell = jnp.asarray(cell).astype(jnp.int32)
    b = jnp.sum(cell[0::2, 1] != D.NONE)
    pair = jnp.asarray(D.PAIRS)[jnp.asarray(_EXP_PAIR)]  # [490, 2]
    first = jnp.stack([pair[:, 0], jnp.asarray(_EXP_OP_A)], -1)
    second = jnp.stack([pair[:, 1], jnp.asarray(_EXP_OP_B)], -1)
    e = 2 * jnp.minimum(b, D.N_NODES - 1)
    rows = jnp.tile(cell[None], (N_EXPANSIONS, 1, 1)).at[:, e].set(first).at[:, e + 1].set(second)
    valid = (b < D.N_NODES) & (jnp.asarray(_EXP_PAIR) < (b + 2) * (b + 1) // 2)
    return rows, valid


def cell_edits(cell):
    """Every one-edit change of a cell (``int[8, 2]``) that keeps its blocks: one op to another non-``none``
    op, or one input to another allowed node (node re-sorted), on a present node:
    ``(cells int32[96, 8, 2], valid bool[96])``."""
    cell = jnp.asarray(cell).astype(jnp.int8)
    nbrs, mask = DB.DARTS_BLOCKS.neighbours(jnp.stack([cell, cell]))
    rows = jnp.asarray(_NORMAL_EDITS)
    return nbrs[rows, 0].astype(jnp.int32), mask[rows]


def darts_expansions(arch, tie_cells: bool = True):
    """Every architecture of ``darts-blocks`` with one more block per cell than ``arch`` (``int[2, 8, 2]``):
    ``(archs int32[n, 2, 8, 2], valid bool[n])``.

    ``tie_cells``: both cells are ``arch``'s normal cell grown by one block
    (``n = 490``); otherwise every pair (normal cell grown, reduce cell grown)
    (``n = 490²``, row ``i · 490 + j``).
    """
    a = jnp.asarray(arch)
    cn, vn = cell_expansions(a[0])
    if tie_cells:
        return jnp.stack([cn, cn], axis=1), vn
    cr, vr = cell_expansions(a[1])
    i, j = np.divmod(np.arange(N_EXPANSIONS ** 2), N_EXPANSIONS)
    return jnp.stack([cn[i], cr[j]], axis=1), vn[i] & vr[j]


def _flag(value) -> bool:
    """A boolean option value: a bool, or true/false (also 1/0, yes/no) as text."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(value)


class PNAS(Strategy):
    """Progressive NAS on cells whose blocks are their non-``none`` edges."""

    name = "pnas"
    repeats = False
    keeps_history = True
    tracks_queried = True
    options = (
        batch_option(8, aliases=("k",), help="cells queried per step, and the beam kept between steps (K)"),
        Option("members", int, 5, "an integer >= 2", lambda v: v >= 2, "surrogate: MLPs in the ensemble"),
        Option("layers", int, 3, "an integer >= 1", lambda v: v >= 1, "surrogate: hidden layers per MLP"),
        Option("width", int, 32, "an integer >= 1", lambda v: v >= 1, "surrogate: hidden units per layer"),
        Option("steps", int, 300, "an integer >= 1", lambda v: v >= 1, "surrogate: Adam steps per fit"),
        Option("tie_cells", _flag, True, "true or false", help="darts-blocks: the reduction cell is the normal "
               "cell (the paper's setting); false: both cells grow, candidates are pairs of expansions",
               applies=(lambda s: is_blocks_space(s.space), "the space is darts-blocks")),
        failure_option("-inf"),
    )

    def settings(self) -> dict:
        """The option values in force; ``tie_cells`` only on ``darts-blocks`` (where it applies)."""
        out = super().settings()
        if not is_blocks_space(self.space):
            out.pop("tie_cells")
        return out

    def validate(self):
        self.darts = is_blocks_space(self.space)
        if self.darts:
            self.n_blocks = D.N_NODES
            one_block = (D.N_OPS - 1) ** 2 * (1 if self.tie_cells else (D.N_OPS - 1) ** 2)
            if self.batch_size > one_block:
                raise JnasError(f"--set batch_size: got {self.batch_size}, expected at most {one_block} (the "
                                f"{'tied ' if self.tie_cells else ''}cells of one block in {self.space.name})")
            return
        ops = tuple(getattr(self.space, "ops", ()) or ())
        tmpl = self.space.template()
        if "none" not in ops or not self.space.enumerable or getattr(tmpl, "ndim", 0) != 1:
            raise JnasError(f"pnas: space {self.space.name!r} has no cells of op ids with a 'none' op to count "
                            "blocks by; supported: nb201, nb201-3, darts-blocks")
        self.none = ops.index("none")
        self.n_ops, self.n_edges = len(ops), int(tmpl.shape[0])
        one_block = self.n_edges * (self.n_ops - 1)
        if self.batch_size > one_block:
            raise JnasError(f"--set batch_size: got {self.batch_size}, expected at most {one_block} (the cells of "
                            f"one block in {self.space.name})")

    def setup(self):
        self.model = MLPEnsemble(members=self.members, layers=self.layers, width=self.width, steps=self.steps)

    def _features(self, archs):
        if self.darts:
            x = jax.vmap(self.space.onehot)(archs)
            return x[:, : x.shape[1] // 2] if self.tie_cells else x  # tied: the normal cell says it all
        return jax.nn.one_hot(archs, self.n_ops).reshape(archs.shape[0], -1)

    def _init(self, key):
        return jnp.int32(0)  # the step about to be asked

    def _ask(self, state, key):
        if self.darts:
            return self._ask_darts(state, key)
        k_first, k_fit, k_fill = jax.random.split(key, 3)
        h, t, q = state.history, state.inner, self.batch_size
        # step 0: K random cells of one block
        singles, _ = expansions(jnp.full((self.n_edges,), self.none, jnp.int32), self.n_ops, self.none)
        first = singles[jax.random.permutation(k_first, singles.shape[0])[:q]]

        archs, values, _ = self.observations(state)
        b = jnp.minimum(t + 1, self.n_edges)  # blocks of this step's cells
        n_blocks = jax.vmap(lambda a: blocks(a, self.none))(archs)
        live = jnp.arange(values.shape[0]) < h.count
        # the beam: the K best cells of the previous round (b - 1 blocks), or of full cells once full
        beam_rows = live & (n_blocks == jnp.where(t + 1 > self.n_edges, self.n_edges, b - 1))
        _, beam = jax.lax.top_k(jnp.where(beam_rows, values, -jnp.inf), q)
        grow = t + 1 <= self.n_edges
        fn = lambda a: jax.lax.cond(grow, lambda: expansions(a, self.n_ops, self.none),  # noqa: E731
                                    lambda: op_changes(a, self.n_ops, self.none))
        cands, valid = jax.vmap(fn)(archs[beam].astype(jnp.int32))
        valid = valid & jnp.isfinite(values[beam])[:, None]
        cands, valid = cands.reshape(-1, self.n_edges), valid.reshape(-1)
        params = self.model.fit(k_fit, self._features(archs), values, live & jnp.isfinite(values))
        mean, _ = self.model.predict(params, self._features(cands))
        ids = jax.vmap(self.space.index)(cands)
        score = jnp.where(valid & ~h.queried[jnp.clip(ids, 0)] & (ids >= 0), mean, -jnp.inf)
        pick = mb.select_distinct(ids, score, q)
        chosen = cands[pick]
        fresh = mb.random_unqueried(self.space, k_fill, h.queried, q)
        ok = jnp.isfinite(score[pick])[:, None]
        chosen = jnp.where(ok, chosen, fresh).astype(first.dtype)
        out = jnp.where(t == 0, first, chosen)
        return out.astype(self.space.template().dtype), t

    def _tell(self, state, archs, values):
        return state.inner + 1

    # ----- darts-blocks ---------------------------------------------------------------------------------------
    def _n_candidates(self) -> int:
        """Candidates per step: beam cells x rows (tied) or x rows² (untied pairs)."""
        return self.batch_size * (_ROWS if self.tie_cells else _ROWS * _ROWS)

    def _tables(self, beam_archs, grow):
        """Per beam architecture and cell, the candidate cells ``int32[K, 2, _ROWS, 8, 2]`` and whether each
        changes the cell validly ``bool[K, 2, _ROWS]``: the expansions while growing, else the edits (padded),
        and in the last row the cell itself (not a change)."""

        def per_cell(cell):
            exp, ok_exp = cell_expansions(cell)
            ed, ok_ed = cell_edits(cell)
            pad = N_EXPANSIONS - N_EDITS
            ed = jnp.concatenate([ed, jnp.zeros((pad,) + ed.shape[1:], ed.dtype)])
            ok_ed = jnp.concatenate([ok_ed, jnp.zeros((pad,), bool)])
            rows = jnp.where(grow, exp, ed)
            ok = jnp.where(grow, ok_exp, ok_ed)
            cell = jnp.asarray(cell).astype(jnp.int32)
            return jnp.concatenate([rows, cell[None]]), jnp.concatenate([ok, jnp.zeros((1,), bool)])

        return jax.vmap(jax.vmap(per_cell))(beam_archs)

    def _decode(self, tables, ids):
        """Candidates ``ids`` (``int32[m]``) as ``(archs int8[m, 2, 8, 2], ok bool[m])``."""
        cells, ok, beam_ok, grow = tables["cells"], tables["ok"], tables["beam_ok"], tables["grow"]
        if self.tie_cells:
            k, a = ids // _ROWS, ids % _ROWS
            normal = cells[k, 0, a]
            archs = jnp.stack([normal, normal], axis=1)
            valid = ok[k, 0, a]
        else:
            k, rest = ids // (_ROWS * _ROWS), ids % (_ROWS * _ROWS)
            a, b = rest // _ROWS, rest % _ROWS
            archs = jnp.stack([cells[k, 0, a], cells[k, 1, b]], axis=1)
            va, vb = ok[k, 0, a], ok[k, 1, b]
            # growing: both cells gain a block; at full size: one edit in one cell, the other unchanged
            valid = jnp.where(grow, va & vb, (va & (b == _SELF)) | ((a == _SELF) & vb))
        return archs.astype(jnp.int8), valid & beam_ok[k]

    def _score_ids(self, params, ids):
        """``score_in_chunks``'s predict: the surrogate's mean of valid candidates (-inf elsewhere)."""
        archs, valid = self._decode(params["tables"], ids)
        mean, _ = self.model.predict(params["model"], self._features(archs))
        score = jnp.where(valid, mean, -jnp.inf)
        return score, score

    def _random_cells(self, key, b):
        """``batch_size`` random architectures of ``b`` blocks per cell (tied when ``tie_cells``)."""
        archs = jax.vmap(self.space.sample)(jax.random.split(key, self.batch_size))
        if self.tie_cells:
            archs = jnp.stack([archs[:, 0], archs[:, 0]], axis=1)
        return jax.vmap(lambda a: DB.with_blocks(a, jnp.full((D.N_CELLS,), b)))(archs).astype(jnp.int8)

    def _ask_darts(self, state, key):
        k_first, k_fit, k_fill = jax.random.split(key, 3)
        h, t, q = state.history, state.inner, self.batch_size
        grow = t + 1 <= self.n_blocks
        b = jnp.minimum(t + 1, self.n_blocks)  # blocks of this step's cells

        # step 0: K distinct random cells of one block (tied: 49; untied: 49² pairs)
        empty = jnp.tile(jnp.asarray(DB.ABSENT, jnp.int32), (D.N_NODES, 1))
        singles = cell_expansions(empty)[0][: (D.N_OPS - 1) ** 2]  # input pair (0, 1): the first 49 rows
        n_one = singles.shape[0]
        pick = jax.random.permutation(k_first, n_one if self.tie_cells else n_one * n_one)[:q]
        first = (jnp.stack([singles[pick], singles[pick]], axis=1) if self.tie_cells
                 else jnp.stack([singles[pick // n_one], singles[pick % n_one]], axis=1)).astype(jnp.int8)

        def later():
            archs, values, mask = self.observations(state)
            nb = DB.blocks(archs)
            arch_blocks = jnp.where(nb[:, 0] == nb[:, 1], nb[:, 0], -1)
            live = jnp.arange(values.shape[0]) < h.count
            beam_rows = live & (arch_blocks == jnp.where(grow, t, self.n_blocks))
            _, beam = jax.lax.top_k(jnp.where(beam_rows, values, -jnp.inf), q)
            cells, ok = self._tables(archs[beam], grow)
            tables = {"cells": cells, "ok": ok, "beam_ok": jnp.isfinite(values[beam]) & beam_rows[beam],
                      "grow": grow}
            model = self.model.fit(k_fit, self._features(archs), values, mask)
            n = self._n_candidates()
            score, _ = score_in_chunks(self._score_ids, {"model": model, "tables": tables},
                                       jnp.arange(n, dtype=jnp.int32))
            # a candidate has at most K copies (one per beam cell), so the best K·(K + capacity) hold K distinct
            # never-told ones whenever there are that many
            top_score, top = jax.lax.top_k(score, min(n, q * (q + self.capacity)))
            cand, _ = self._decode(tables, top)
            top_score = jnp.where(self.seen(state, cand), -jnp.inf, top_score)
            pick = mb.select_distinct(jax.vmap(arch_hash)(cand), top_score, q)
            ok = jnp.isfinite(top_score[pick])[:, None, None, None]
            return jnp.where(ok, cand[pick], self._random_cells(k_fill, b))

        out = jax.lax.cond(t == 0, lambda: first, later)
        return out.astype(self.space.template().dtype), t
