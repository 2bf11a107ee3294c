"""Predictor-based NAS (``pbnas``; Mauch et al., 2020, "Efficient Sampling for Predictor-Based NAS").

Algorithm 1 of the paper: query ``n_init`` random architectures; then, every
step, train a GCN ranking predictor (``jnas.predictors.gcn``) on *all*
architectures evaluated so far, score a candidate set ``S'``, and query the
``k`` best-scored candidates that were never queried before (they leave the
space: the strategy never re-queries). ``batch_size = k``.

The candidate set ``S'`` (option ``sampler``):

``space``
    every architecture of the (enumerable) space not yet queried.
``uniform``
    ``n_candidates`` distinct unqueried architectures, uniformly at random
    (on enumerable spaces exactly: the first ``n_candidates`` unqueried
    entries of a fresh keyed permutation of the space).
``ml``
    "maximum-likelihood" sampling: ``n_candidates`` gradient ascents of the
    predicted score from random starts over continuous shadow copies of the
    GCN input, read through a straight-through estimator (STE). For spaces
    that are their op slots and build a graph from continuous op rows
    (``Space.relaxed_graph``: nb201, nb201-3); see ``ml_ascent``.
``evolutionary``
    Algorithm 2: the ``n_parents`` best queried architectures are parents;
    the first ``round(alpha * n_candidates)`` candidates are mutations of a
    random parent, the rest crossovers of two random parents. See
    ``evolve_op_rows`` for how the paper's bit flips of ``(A, X)`` act on a
    space that is its op slots (``A`` follows from ``X``: nb201, nb201-3);
    other spaces mutate by one edit and cross over with their own ``crossover``.

Invalid candidates, duplicates inside ``S'`` and queried architectures never
win; if fewer than ``k`` candidates are left, the rest of the batch is filled
with random unqueried architectures (on enumerable spaces from a keyed
permutation, which cannot run dry before the space does). Identity is the
space's index on enumerable spaces; elsewhere it is a 31-bit hash of the
architecture arrays (a collision only hides a candidate, it never lets a
repeat through; two different arrays of the same cell count as different).

When ``n_init`` is not a multiple of ``k`` the random phase runs whole batches
(``ceil(n_init / k) * k`` random queries). State is the strategy kit's history
alone (every told architecture and value, and the queried set: a mask on
enumerable spaces, ``arch_hash`` of each told architecture elsewhere), of
fixed capacity ``ceil(budget / k) * k``; everything is jittable: a run is one ``lax.scan`` and seeds
``vmap``. The GCN is re-initialised and trained for ``gcn_steps`` full-batch
steps at every step on the whole buffer (padding rows are masked out), so a
step costs the same at every point of the run.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.encodings.graph import graph_tensors
from jnas.errors import JnasError
from jnas.predictors.base import score_in_chunks
from jnas.predictors.gcn import GCN, gcn_scores
from jnas.strategies import history as hist
from jnas.strategies.base import Option, Strategy, batch_option, failure_option
from jnas.strategies.history import arch_hash
from jnas.strategies.permutation import permute, round_keys

SAMPLERS = ("space", "uniform", "ml", "evolutionary")
_CHUNK = 4096  # graphs scored per compiled predictor call


class Proposal(NamedTuple):
    """What one ``ask`` looked at (for studies of the candidate sets)."""

    candidates: object  # S': architectures, leading axis n_candidates (or space.size)
    eligible: jax.Array  # bool[len(S')]: valid, unqueried, first of its duplicates
    scores: jax.Array  # float[len(S')]: predicted score, -inf where not eligible


def _is(v, lo, hi=math.inf):
    return lo <= v <= hi


class PredictorBasedNAS(Strategy):
    """GCN predictor-based search with uniform, gradient (ML) or evolutionary candidate sampling."""

    name = "pbnas"
    repeats = False
    keeps_history = True
    tracks_queried = True
    options = (
        Option("n_init", int, 4, "an integer >= 1", lambda v: v >= 1, "random architectures before the first fit |T0|"),
        batch_option(4, aliases=("k",), help="architectures queried per step K"),
        Option("sampler", str, "space", f"one of {', '.join(SAMPLERS)}", lambda v: v in SAMPLERS,
               "candidate set S' scored by the predictor"),
        Option("n_candidates", int, 1000, "an integer >= 1", lambda v: v >= 1, "N' = |S'| (not for sampler=space)"),
        Option("gcn_hidden", int, 32, "an integer >= 1", lambda v: v >= 1, "GCN features per node"),
        Option("gcn_layers", int, 3, "an integer >= 1", lambda v: v >= 1, "GCN graph convolutions"),
        Option("gcn_steps", int, 100, "an integer >= 1", lambda v: v >= 1, "GCN training steps per search step"),
        Option("gcn_lr", float, 0.05, "a positive number", lambda v: v > 0, "GCN initial learning rate (SGD)"),
        Option("ml_steps", int, 10, "an integer >= 1", lambda v: v >= 1, "gradient-ascent steps of sampler=ml"),
        Option("ml_lr", float, 0.5, "a positive number", lambda v: v > 0,
               "sampler=ml step size, in units of the largest gradient entry"),
        Option("n_parents", int, 16, "an integer >= 1", lambda v: v >= 1, "P: parents of sampler=evolutionary"),
        Option("p_mutate", float, 0.05, "a number in (0, 1]", lambda v: _is(v, 1e-12, 1.0),
               "bit-flip probability of sampler=evolutionary (spaces that are their op slots, e.g. NB201)"),
        Option("alpha", float, 0.5, "a number in [0, 1]", lambda v: _is(v, 0.0, 1.0),
               "fraction of mutations (vs crossovers) in sampler=evolutionary"),
        failure_option("-inf"),
    )

    def validate(self):
        sp = self.space
        a, _, _ = jax.eval_shape(lambda t: graph_tensors(sp, t), sp.template())
        if a.ndim != 2:
            raise JnasError(f"space: pbnas needs one graph per architecture; got {sp.name!r} (graphs {a.shape})")
        if self.sampler == "space" and not sp.enumerable:
            raise JnasError(f"--set sampler: got 'space', expected uniform, ml or evolutionary ({sp.name!r}: too big)")
        if self.sampler == "ml" and not sp.supports("relaxed_graph"):
            raise JnasError(
                f"--set sampler: got 'ml', expected space, uniform or evolutionary ('ml' needs a space whose graph "
                f"follows from continuous op rows, e.g. nb201; {sp.name!r} does not define one)"
            )

    def setup(self):
        self.gcn = GCN(hidden=self.gcn_hidden, layers=self.gcn_layers, steps=self.gcn_steps, lr=self.gcn_lr)
        self._space_graphs = None

    # ----- helpers ---------------------------------------------------------------
    def graphs(self, archs):
        """Graph tensors ``(A, X, mask)`` of a batch of architectures (leading axis kept)."""
        return jax.vmap(lambda a: graph_tensors(self.space, a))(archs)

    def _all_graphs(self):
        # The whole space's graphs are the same at every step: build them once on the host.
        if self._space_graphs is None:
            with jax.ensure_compile_time_eval():  # concrete even when first called under a trace
                g = jax.jit(self.graphs)(self.space.enumerate())
            self._space_graphs = jax.tree.map(jax.device_get, g)
        return self._space_graphs

    def _keys(self, archs) -> jax.Array:
        """``int32[n]`` identity of each architecture: its index, else the top 31 bits of
        ``arch_hash``; -1 if invalid."""
        if self.space.enumerable:
            return jax.vmap(self.space.index)(archs).astype(jnp.int32)
        h = jax.vmap(arch_hash)(archs)
        valid = jax.vmap(self.space.is_valid)(archs)
        return jnp.where(valid, (h >> 1).astype(jnp.int32), -1)

    def _unseen(self, state, archs, keys) -> jax.Array:
        """``bool[n]``: valid (``keys >= 0``) and never told (the kit's queried set)."""
        return (keys >= 0) & ~self.seen(state, archs)

    def _random_unseen(self, state, key, n: int):
        """``(archs, ok)``: ``n`` random architectures, unqueried ones first (``ok`` marks them).

        Enumerable spaces draw ``n + capacity`` distinct entries of a keyed
        permutation, so at least ``n`` of them are unqueried whenever the space
        has that many left.
        """
        if self.space.enumerable:
            m = min(n + self.capacity, self.space.size)
            rk = round_keys(key)
            idx = jax.vmap(lambda t: permute(rk, t, self.space.size))(jnp.arange(m))
            archs = self.space.from_index(idx)
        else:
            m = n
            archs = jax.vmap(self.space.sample)(jax.random.split(key, n))
        ok = self._unseen(state, archs, self._keys(archs))
        order = jnp.argsort(~ok, stable=True)[:n]
        return jax.tree.map(lambda x: x[order], archs), ok[order]

    # ----- samplers ----------------------------------------------------------------
    def _candidates(self, state, params, key):
        """``(S', graphs of S')``."""
        s = self.sampler
        if s == "space":
            return self.space.enumerate(), self._all_graphs()
        if s == "uniform":
            cands, _ = self._random_unseen(state, key, self.n_candidates)
        elif s == "ml":
            starts = jax.vmap(self.space.sample)(jax.random.split(key, self.n_candidates))
            cands, _, _ = ml_ascent(self.space, params, starts, self.ml_steps, self.ml_lr)
        else:
            cands = self._evolve(state, key)
        return cands, self.graphs(cands)

    def _evolve(self, state, key):
        """Algorithm 2: ``n_candidates`` children of the ``n_parents`` best queried architectures."""
        told, vals, _ = self.observations(state)
        n_par = min(self.n_parents, self.capacity)
        _, best = jax.lax.top_k(vals, n_par)
        avail = jnp.clip(jnp.minimum(state.history.count, n_par), 1, n_par)
        k_a, k_b, k_op = jax.random.split(key, 3)
        n = self.n_candidates
        ia = best[jnp.floor(jax.random.uniform(k_a, (n,)) * avail).astype(jnp.int32)]
        ib = best[jnp.floor(jax.random.uniform(k_b, (n,)) * avail).astype(jnp.int32)]
        pa = jax.tree.map(lambda x: x[ia], told)
        pb = jax.tree.map(lambda x: x[ib], told)
        is_mut = jnp.arange(n) < round(self.alpha * n)
        keys = jax.random.split(k_op, n)
        if op_rows_space(self.space):
            def evolve(k, a, b, m):
                return evolve_op_rows(self.space, k, a, b, m, self.p_mutate)

            return jax.vmap(evolve)(keys, pa, pb, is_mut)

        def child(k, a, b, m):
            mut = self.space.mutate(k, a)
            xo = self.space.crossover(k, a, b)
            return jax.tree.map(lambda u, v: jnp.where(m, u, v), mut, xo)

        return jax.vmap(child)(keys, pa, pb, is_mut)

    # ----- protocol ------------------------------------------------------------------
    def _ask(self, state, key):
        archs, inner, _ = self.propose(state, key)
        return archs, inner

    def propose(self, state, key):
        """``(archs, inner, Proposal)``: ``_ask`` and the ``Proposal`` it chose from."""
        k_fit, k_cand, k_fill = jax.random.split(key, 3)
        archs, vals, _ = self.observations(state)
        told = hist.live(state.history)  # failed rows stay in the fit at their on_failure value
        params = self.gcn.fit(k_fit, self.graphs(archs), vals, told)
        cands, g = self._candidates(state, params, k_cand)
        n_c = jax.tree.leaves(g)[0].shape[0]
        score, _ = score_in_chunks(self.gcn.predict, params, g, chunk=min(_CHUNK, n_c))
        keys = self._keys(cands)
        eligible = self._unseen(state, cands, keys)
        if self.sampler != "space":  # the enumeration has no duplicates
            eligible &= _first_occurrence(keys)
        ok = eligible & ~jnp.isnan(score) & (state.history.count >= self.n_init)
        score = jnp.where(ok, score, -jnp.inf)
        k = self.batch_size
        top, idx = jax.lax.top_k(score, min(k, n_c))
        if n_c < k:
            top = jnp.concatenate([top, jnp.full((k - n_c,), -jnp.inf)])
            idx = jnp.concatenate([idx, jnp.zeros((k - n_c,), idx.dtype)])
        picked = top > -jnp.inf  # top_k sorts descending: picked slots come first
        n_picked = picked.sum()
        # fill the remaining slots with random unqueried architectures not picked already
        pool, pool_ok = self._random_unseen(state, k_fill, self.capacity + 2 * k)
        clash = (self._keys(pool)[:, None] == jnp.where(picked, keys[idx], -2)[None, :]).any(axis=1)
        order = jnp.argsort(~(pool_ok & ~clash), stable=True)
        slot = jnp.arange(k)
        from_pool = order[jnp.clip(slot - n_picked, 0, order.shape[0] - 1)]
        out = jax.tree.map(lambda c, p: jnp.where(_bcast(picked, c), c[idx], p[from_pool]), cands, pool)
        return out, state.inner, Proposal(cands, eligible, score)


def _bcast(mask, like):
    return mask.reshape(mask.shape + (1,) * (like.ndim - 1))


def _first_occurrence(keys) -> jax.Array:
    """``bool[n]``: True for the first entry of each distinct key."""
    order = jnp.argsort(keys, stable=True)
    s = keys[order]
    first = jnp.concatenate([jnp.ones((1,), bool), s[1:] != s[:-1]])
    return jnp.zeros_like(first).at[order].set(first)


# ----- spaces that are their op slots, as (A, X) --------------------------------------------
#
# When a space is its op slots (one cell, no wiring besides; nb201, nb201-3), its
# graph tensors are fixed by the op rows of X: the wiring A is fixed by the cell,
# except that a ``none`` op removes its node's edges. So every valid (A, X) is
# determined by the op rows (one-hot over ``op_slot_layout.ops``), and the
# operators below act on those rows.


def op_rows_space(space) -> bool:
    """Whether ``space`` is its op slots: one cell, no wiring besides (``A`` follows from ``X``)."""
    if not space.supports("op_slot_layout"):
        return False
    layout = space.op_slot_layout
    return layout.cells == 1 and not layout.wired


def _slot_ids(space) -> np.ndarray:
    """``int32[k]``: the ``space.ops`` id of each column of an op row."""
    return np.array([space.ops.index(o) for o in space.op_slot_layout.ops], np.int32)


def op_rows(space, arch) -> jax.Array:
    """``int32[slots]``: the column (position in ``op_slot_layout.ops``) of each op slot of ``arch``."""
    ids = space.op_slots(arch)[0]
    table = np.full(len(space.ops), -1, np.int32)
    table[_slot_ids(space)] = np.arange(len(space.op_slot_layout.ops))
    return jnp.asarray(table)[ids]


def from_op_rows(space, arch, columns) -> object:
    """``arch`` with op slot ``s`` set to column ``columns[s]`` of ``op_slot_layout.ops``."""
    return space.with_op_slots(arch, jnp.asarray(_slot_ids(space))[columns][None])


def relaxed_graph(space, rows):
    """Graph tensors from (possibly continuous) op rows ``float[slots, k]`` (``space.relaxed_graph``).

    For one-hot ``rows`` this equals ``graph_tensors`` exactly, and gradients
    reach ``rows`` through both ``X`` and ``A``.
    """
    return space.relaxed_graph(rows)


def nb201_relaxed_graph(space, rows):
    """Old name of ``relaxed_graph`` (NB201: ``rows float[6, n_ops]``)."""
    return relaxed_graph(space, rows)


def ml_ascent(space, params, starts, steps: int, lr: float):
    """Gradient ("maximum-likelihood") sampling: ascend the GCN score from ``starts``.

    For a space that is its op slots and defines ``relaxed_graph`` (NB201).
    ``starts``: ``n`` architectures (leading axis; NB201 ``int8[n, 6]``);
    ``params``: GCN parameters. Each start gets a continuous shadow matrix
    ``S float[slots, k]`` initialised to its one-hot op rows. Every step reads
    ``S`` through the straight-through estimator (forward: the row-wise
    arg-max one-hot, i.e. a valid cell, with ``A`` following from it;
    backward: identity to ``S``) and moves ``S`` by ``lr`` times the gradient
    divided by its largest entry (the ranking score has no unit, so steps are
    scale-free). The wiring is fixed, so there is no separate ``A`` to
    threshold: ``A`` is read off the arg-max rows.

    Returns ``(best, start_score float[n], best_score float[n])``: ``best``
    the highest-scored cell visited per start (same shape as ``starts``; an
    ascent never ends below its start).
    """
    n_ops = len(space.op_slot_layout.ops)

    def score_hard(s):
        hard = jax.nn.one_hot(jnp.argmax(s, -1), n_ops, dtype=s.dtype)
        rows = s + jax.lax.stop_gradient(hard - s)  # straight-through
        a, x, m = space.relaxed_graph(rows)
        return gcn_scores(params, a[None], x[None], m[None])[0]

    def decode(s):  # the cells of the arg-max rows
        return jax.vmap(lambda a, c: from_op_rows(space, a, c))(starts, jnp.argmax(s, -1))

    def where(pred, a, b):
        return jax.tree.map(lambda u, v: jnp.where(_bcast(pred, u), u, v), a, b)

    value_grad = jax.vmap(jax.value_and_grad(score_hard))
    s0 = jax.nn.one_hot(jax.vmap(lambda a: op_rows(space, a))(starts), n_ops, dtype=jnp.float32)

    def step(carry, _):
        s, best, best_f, f0 = carry
        f, g = value_grad(s)
        better = f > best_f
        best = where(better, decode(s), best)
        best_f = jnp.maximum(best_f, f)
        f0 = jnp.where(jnp.isnan(f0), f, f0)
        scale = jnp.max(jnp.abs(g), axis=(1, 2), keepdims=True)
        s = s + lr * g / jnp.where(scale > 0, scale, 1.0)
        return (s, best, best_f, f0), None

    n = s0.shape[0]
    init = (s0, starts, jnp.full((n,), -jnp.inf), jnp.full((n,), jnp.nan))
    (s, best, best_f, f0), _ = jax.lax.scan(step, init, None, length=steps)
    f_last = jax.vmap(score_hard)(s)
    best = where(f_last > best_f, decode(s), best)
    return best, f0, jnp.maximum(best_f, f_last)


def evolve_op_rows(space, key, a, b, mutate, p_mutate: float):
    """One child of Algorithm 2 on cells ``a``, ``b`` of a space that is its op slots: a mutation or a crossover.

    Mutation flips every bit of the one-hot op rows of ``X`` independently
    with probability ``p_mutate``; a row that then has several bits set
    becomes one of them uniformly, a row with none keeps the parent's op. (Bit
    flips of ``A`` have no counterpart besides ``none``: cutting an op node
    out of the wiring *is* op ``none``, one of ``X``'s columns, so flipping
    ``X`` covers every reachable cell.) Crossover takes each op row from
    ``a`` or ``b`` with probability 0.5; ``A`` follows from the rows.
    """
    n_ops = len(space.op_slot_layout.ops)
    ra, rb = op_rows(space, a), op_rows(space, b)
    k_flip, k_pick, k_x = jax.random.split(key, 3)
    bits = jax.nn.one_hot(ra, n_ops, dtype=bool)
    bits = bits ^ jax.random.bernoulli(k_flip, p_mutate, bits.shape)
    # uniform among set bits: the arg-max of uniform noise restricted to them
    u = jnp.where(bits, jax.random.uniform(k_pick, bits.shape), -1.0)
    mut = jnp.where(bits.any(-1), jnp.argmax(u, -1), ra)
    xo = jnp.where(jax.random.bernoulli(k_x, 0.5, ra.shape), ra, rb)
    return from_op_rows(space, a, jnp.where(mutate, mut, xo))


def evolve_nb201(key, a, b, mutate, p_mutate: float):
    """Old name: ``evolve_op_rows`` on NB201 cells ``a``, ``b`` (``int8[6]``)."""
    from jnas.spaces.nb201 import NB201

    return evolve_op_rows(NB201, key, a, b, mutate, p_mutate)
