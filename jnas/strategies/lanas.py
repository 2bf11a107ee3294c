"""LaNAS (``lanas``; Wang et al., "Neural Architecture Search by Learning Action Space
for Monte Carlo Tree Search", Algorithms 1–2) and its regression-tree ablation (``rt``).

A complete binary tree of height ``h`` partitions the space: every internal
node fits a linear regressor ``f_j`` (ridge least squares over the space's
features, ``features.py``) on the samples in its region, and splits the region
into a good left child ``f_j(a) > V(Ω_j)`` and a bad right child
``f_j(a) <= V(Ω_j)``, ``V(Ω_j)`` being the region's mean value (``lanas_tree.py``).

* The first ``n_init`` queries are uniform samples.
* Learning phase, after ``n_init`` queries and then every ``n_select``: refit
  every node on all samples so far (top-down) and recompute visit counts and
  values.
* Search phase, every query: from the root take the child with the larger
  UCB ``v + 2·Cp·sqrt(2·ln(n_parent)/n_child)`` (+inf if unvisited) down to
  a leaf; sample uniformly inside the leaf's region; back-propagate the
  sample's count and value to every node on its path. ``Cp = cp · |best
  value seen|``, in the metric's own units (the paper's advice; ``cp = 0.1``
  equals the public code's ``Cp = 0.1`` on accuracies in [0, 1]).

A sample honours *every* constraint on its path. If the leaf's region holds
no unqueried architecture, the sample comes from the nearest ancestor region
that does (all of whose constraints it honours); its statistics go to the
leaf it actually lies in. A failed evaluation counts as the worst value told
so far (``on_failure = worst``, the only choice: -inf would poison every
mean above it).

Samplers (option ``sampler``):

* ``enumerate`` (default for enumerable spaces up to 100,000 members): the
  features of the whole space are a device constant; each refit routes every
  architecture to its leaf and counts the unqueried ones per (leaf, block of
  128 indices), so a query draws uniformly among the unqueried members of
  the region from those counts and one block of the space. It never repeats
  an architecture, so the budget is at most the space's size.
* ``reject`` (default otherwise): ``n_candidates`` draws from the space's
  sampler, routed through the tree; a uniform pick among those in the
  deepest region reached along the leaf's path (the leaf when any hits),
  excluding architectures already queried.
* ``hitandrun``: as ``reject``, plus ``n_candidates`` points from hit-and-run
  chains in the continuous relaxation of the features, started at the
  deepest rejection candidate, pushed across the remaining constraints of
  the path where the relaxation allows it, and rounded at random to
  architectures.

``rt`` is the paper's regression-tree ablation: the same tree, no UCB, every
query from the leftmost (best predicted) leaf.

State: the kit's ``State(history, inner)``. The history holds every told
architecture and value (a refit encodes the told architectures afresh), the
count, the best and worst value, and the set of queried architectures (a mask
on enumerable spaces, ``arch_hash`` values otherwise); ``inner``
(``LaNASState``) holds only the tree: the splits, each node's count and value
sum, for ``enumerate`` the leaf of every architecture and the free-member
counts, and the leaf and region depth of the last ask.

The learning phase runs under ``lax.cond`` on the query counter, which does
not depend on the seed; under the runner's ``vmap`` it stays a branch, so a
step pays for a refit only when one is due.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import pick_masked
from jnas.strategies import history as hist
from jnas.strategies import lanas_tree as lt
from jnas.strategies.base import Option, State, Strategy, failure_option, stack1, unstack1
from jnas.strategies.features import feature_map, space_features
from jnas.strategies.history import History

SAMPLERS = ("auto", "enumerate", "reject", "hitandrun")
#: largest space the ``auto`` sampler enumerates (features and a mask of this size per seed)
AUTO_ENUMERATE_LIMIT = 100_000
#: largest space ``sampler=enumerate`` accepts
ENUMERATE_LIMIT = 1 << 24
#: a split sends a sample left only if its score beats this fraction of the value spread
SPLIT_TOL = 1e-5
#: hit-and-run steps per chain
HR_STEPS = 8


class LaNASState(NamedTuple):
    """The tree (what the kit's ``History`` does not hold)."""

    splits: lt.Splits  # the learned actions
    cnt: jax.Array  # int32[n_nodes] samples per node region
    tot: jax.Array  # float[n_nodes] value sum per node region (failures per on_failure: the worst value told)
    leaf_of: jax.Array  # int16[size padded to lt.BLOCK] leaf position of every architecture (enumerate) or int16[0]
    free: jax.Array  # int32[n_leaves, n_blocks] unqueried architectures per leaf and index block (enumerate)
    leaf: jax.Array  # int32[] leaf chosen by the last ask
    depth: jax.Array  # int32[] level of the region the last ask sampled from (h-1 = the leaf itself)


class LaNAS(Strategy):
    """Latent-action NAS: learned linear partitions searched with MCTS."""

    name = "lanas"
    asynchronous = False  # ask keeps the selected leaf and path for tell
    use_ucb = True
    keeps_history = True  # every refit fits on all told architectures and values
    tracks_queried = True  # samples avoid told architectures
    options = (
        Option("height", int, 5, "an integer in [1, 12]", lambda v: 1 <= v <= 12, "tree height h (2**(h-1) leaves)"),
        Option("cp", float, 0.1, "a number >= 0", lambda v: v >= 0, "UCB exploration Cp as a fraction of |best value|"),
        Option("n_init", int, 10, "an integer >= 1", lambda v: v >= 1, "uniform samples before the first fit"),
        Option("n_select", int, 20, "an integer >= 1", lambda v: v >= 1, "queries between learning phases"),
        Option("sampler", str, "auto", f"one of {', '.join(SAMPLERS)}", lambda v: v in SAMPLERS,
               "how a leaf is sampled"),
        Option("n_candidates", int, 256, "an integer >= 1", lambda v: v >= 1,
               "candidates per query (reject, hitandrun)"),
        failure_option("worst", choices=("worst",)),
    )

    @property
    def repeats(self) -> bool:
        """Enumerated sampling never repeats an architecture; candidate samplers may, once all are seen."""
        return not self.enumerated

    def validate(self):
        self.features = feature_map(self.space)  # refuses a space without a relaxation
        sp = self.space
        if self.sampler == "auto":
            self.sampler_used = "enumerate" if sp.enumerable and sp.size <= AUTO_ENUMERATE_LIMIT else "reject"
        elif self.sampler == "enumerate" and not (sp.enumerable and sp.size <= ENUMERATE_LIMIT):
            raise JnasError(
                f"--set sampler: got 'enumerate', expected reject or hitandrun for space {sp.name!r} "
                f"(enumerate needs an enumerable space of at most {ENUMERATE_LIMIT} architectures)"
            )
        else:
            self.sampler_used = self.sampler
        self.enumerated = self.sampler_used == "enumerate"

    def setup(self):
        # features of the whole space, padded with zero rows to a multiple of lt.BLOCK
        phi = space_features(self.space) if self.enumerated else np.zeros((0, self.features.dim), np.float32)
        self.phi = np.pad(phi, ((0, -len(phi) % lt.BLOCK), (0, 0)))

    # ----- shapes -------------------------------------------------------------------
    def _dtype(self):
        return jnp.result_type(float)

    def _queried(self, h: History) -> jax.Array:
        """``bool[size padded to lt.BLOCK]``: the history's queried mask, padding marked queried (enumerate)."""
        return jnp.pad(h.queried, (0, len(self.phi) - h.queried.shape[0]), constant_values=True)

    def _init(self, key):
        dt, h = self._dtype(), self.height
        n_pad = len(self.phi)
        leaf_of = jnp.zeros((n_pad,), jnp.int16)
        free = jnp.arange(n_pad) < (self.space.size if self.enumerated else 0)
        return LaNASState(
            splits=lt.empty_splits(h, self.features.dim, dt),
            cnt=jnp.zeros((lt.n_nodes(h),), jnp.int32), tot=jnp.zeros((lt.n_nodes(h),), dt),
            leaf_of=leaf_of,
            free=lt.block_counts(free, leaf_of, h) if n_pad else jnp.zeros((0, 0), jnp.int32),
            leaf=jnp.int32(0), depth=jnp.int32(h - 1),
        )

    # ----- search phase ----------------------------------------------------------------
    def target_leaf(self, state: State) -> jax.Array:
        """The leaf the next query aims at: UCB descent (``lanas``) or the leftmost leaf (``rt``)."""
        if not self.use_ucb:
            return jnp.int32(0)
        vmax = state.history.best
        best = jnp.where(jnp.isfinite(vmax), jnp.abs(vmax), 0.0)
        return lt.ucb_leaf(state.inner.cnt, state.inner.tot, self.cp * best, self.height)

    def _ask(self, state, key):
        leaf = self.target_leaf(state)
        if self.enumerated:
            arch, depth = self._sample_enumerated(state, key, leaf)
        else:
            arch, depth = self._sample_candidates(state, key, leaf)
        return stack1(arch), state.inner._replace(leaf=leaf, depth=depth)

    def _sample_enumerated(self, state, key, leaf):
        # the deepest region on the leaf's path with a free member, from per-leaf counts;
        # then a draw that touches one block of the space, not all of it
        inner = state.inner
        depth = lt.region_depth(inner.free.sum(1, dtype=jnp.int32), leaf, self.height)
        i = lt.pick_in_region(key, inner.free, inner.leaf_of, self._queried(state.history), leaf, depth, self.height)
        return self.space.from_index(i), depth

    def _candidates(self, state, key, leaf):
        """Candidate architectures (leading axis) from the space's sampler, or also hit-and-run."""
        k_rej, k_hr = jax.random.split(key)
        cands = self.space.sample_batch(k_rej, self.n_candidates)
        if self.sampler_used != "hitandrun":
            return cands
        fm, splits = self.features, state.inner.splits
        feats = jax.vmap(fm.encode)(cands)
        md = lt.match_depth(lt.route(splits, feats, self.height), leaf, self.height)
        start = jnp.argmax(md)
        chains = hit_and_run(k_hr, feats[start], md[start], splits, leaf, self.height, fm, self.n_candidates)
        rounded = jax.vmap(fm.decode)(jax.random.split(k_hr, self.n_candidates), chains)
        return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), cands, rounded)

    def _sample_candidates(self, state, key, leaf):
        k_cand, k_pick = jax.random.split(key)
        cands = self._candidates(state, k_cand, leaf)
        feats = jax.vmap(self.features.encode)(cands)
        md = lt.match_depth(lt.route(state.inner.splits, feats, self.height), leaf, self.height)
        valid = jax.vmap(self.space.is_valid)(cands)
        ok = ~self.seen(state, cands) & valid
        ok = jnp.where(ok.any(), ok, valid)  # every candidate already seen: allow a repeat
        depth = jnp.max(jnp.where(ok, md, -1))
        i = pick_masked(k_pick, ok & (md >= depth))
        return jax.tree.map(lambda a: a[i], cands), depth.astype(jnp.int32)

    # ----- tell: back-propagation and the learning phase ------------------------------------
    def _tell(self, state, archs, values):
        h, inner = state.history, state.inner
        arch = unstack1(archs)
        if self.enumerated:
            i = self.space.index(arch)
            leaf = inner.leaf_of[i].astype(jnp.int32)
            inner = inner._replace(free=lt.recount_cell(inner.free, ~self._queried(h), inner.leaf_of, leaf, i))
        else:
            leaf = lt.route(inner.splits, self.features.encode(arch).astype(inner.tot.dtype), self.height)
        path = lt.on_path(leaf, self.height)
        inner = inner._replace(cnt=inner.cnt + path, tot=inner.tot + jnp.where(path, values[0], 0))
        due = (h.count >= self.n_init) & ((h.count - self.n_init) % self.n_select == 0)
        return jax.lax.cond(due, lambda s: self.learn(h, s), lambda s: s, inner)

    def learn(self, h: History, inner: LaNASState) -> LaNASState:
        """Learning phase: refit every node on all samples so far (``h``); recount the regions."""
        live = hist.live(h)
        dt = inner.tot.dtype
        x = jnp.where(live[:, None], jax.vmap(self.features.encode)(h.archs).astype(dt), 0)  # float[capacity, dim]
        y = jnp.where(live, self.fill_failures(h.values, h), 0)  # float[capacity]
        spread = jnp.where(jnp.isfinite(h.best - h.worst), h.best - h.worst, 0)
        splits, leaf = lt.fit(x, y, h.count, self.height, SPLIT_TOL * spread)
        cnt, tot = lt.node_stats(leaf, y, live, self.height)
        inner = inner._replace(splits=splits, cnt=cnt, tot=tot)
        if self.enumerated:
            leaf_of = lt.route(splits, jnp.asarray(self.phi, dt), self.height)
            free = lt.block_counts(~self._queried(h), leaf_of, self.height)
            inner = inner._replace(leaf_of=leaf_of.astype(jnp.int16), free=free)
        return inner


class RegressionTree(LaNAS):
    """LaNAS without MCTS: every query from the leftmost (best predicted) leaf."""

    name = "rt"
    asynchronous = True  # no tree walk: ask leaves the state as it is
    use_ucb = False
    options = tuple(o for o in LaNAS.options if o.name != "cp")
    cp = 0.0


def path_constraints(splits: lt.Splits, leaf, height: int):
    """Half-spaces ``a · x <= b`` of the path to ``leaf``: ``float[h-1, dim]``, ``float[h-1]``.

    Row ``l`` is the decision at level ``l``: left (``w·x - c > tol``) becomes
    ``-w·x <= -c``, right becomes ``w·x <= c`` (the boundary has measure zero
    in the continuous relaxation, and the tolerance only guards rounding).
    """
    levels = np.arange(height - 1)
    j = (2**levels - 1) + (leaf >> (height - 1 - levels))
    right = (leaf >> (height - 2 - levels)) & 1
    sign = jnp.where(right == 1, 1.0, -1.0).astype(splits.w.dtype)
    return sign[:, None] * splits.w[j], sign * splits.c[j]


def _project(u, block, n_blocks):
    """Remove each block's mean from direction ``u`` so block sums stay fixed."""
    if n_blocks == 0:
        return u
    b = jnp.asarray(block)
    inb = b >= 0
    sums = jax.ops.segment_sum(jnp.where(inb, u, 0), jnp.where(inb, b, 0), n_blocks)
    sizes = jax.ops.segment_sum(inb.astype(u.dtype), jnp.where(inb, b, 0), n_blocks)
    return jnp.where(inb, u - (sums / jnp.maximum(sizes, 1))[jnp.where(inb, b, 0)], u)


def _min_vertex(a, fm):
    """The vertex of the relaxation minimising ``a · x``: in each block its ``block_sum`` smallest
    coordinates are 1 (ties to the lower index), free coordinates are 1 where ``a < 0``."""
    block = jnp.asarray(fm.block)
    idx = jnp.arange(a.shape[0])
    same = (block[:, None] == block[None, :]) & (block[:, None] >= 0)
    before = (a[None, :] < a[:, None]) | ((a[None, :] == a[:, None]) & (idx[None, :] < idx[:, None]))
    rank = jnp.sum(same & before, axis=1)
    quota = jnp.asarray(np.append(fm.block_sum, 0.0))[jnp.where(block >= 0, block, len(fm.block_sum))]
    return jnp.where(block >= 0, rank < quota, a < 0).astype(a.dtype)


def _interval(x, u, a, b, active):
    """``[lo, hi]`` of ``λ`` keeping ``x + λu`` in ``[0, 1]^dim`` and ``a·(x + λu) <= b`` where ``active``."""
    big = jnp.asarray(1e9, x.dtype)
    # box
    lo_box = jnp.where(u > 0, -x / jnp.where(u > 0, u, 1), jnp.where(u < 0, (1 - x) / jnp.where(u < 0, u, 1), -big))
    hi_box = jnp.where(u > 0, (1 - x) / jnp.where(u > 0, u, 1), jnp.where(u < 0, -x / jnp.where(u < 0, u, 1), big))
    au, slack = a @ u, b - a @ x
    safe = jnp.where(au == 0, 1, au)
    hi_c = jnp.where(active & (au > 0), slack / safe, big)
    lo_c = jnp.where(active & (au < 0), slack / safe, -big)
    lo = jnp.maximum(jnp.max(lo_box), jnp.max(lo_c))
    hi = jnp.minimum(jnp.min(hi_box), jnp.min(hi_c))
    return jnp.minimum(lo, 0), jnp.maximum(hi, 0)


def hit_and_run(key, x0, depth0, splits, leaf, height, fm, n_chains):
    """``n_chains`` relaxed points from hit-and-run in the region of ``leaf``'s path that ``x0`` can reach.

    ``x0`` (a vertex of the relaxation) satisfies the first ``depth0``
    constraints of the path. A vertex is a corner that almost no direction
    leaves, so it first moves towards the centre of the relaxation, as far
    (of 1/2, 1/4, ...) as keeps those constraints. It is then pushed,
    constraint by constraint, along the projected normal of the next violated
    one as far as the box and the constraints already met allow; the chains
    then mix in the polytope of the constraints met, ``HR_STEPS`` steps each.
    """
    a, b = path_constraints(splits, leaf, height)
    n_blocks = len(fm.block_sum)
    x = x0.astype(a.dtype)
    met = jnp.arange(height - 1) < depth0
    sizes = np.bincount(fm.block[fm.block >= 0], minlength=n_blocks)
    centre = np.where(fm.block >= 0, fm.block_sum[np.maximum(fm.block, 0)] / sizes[np.maximum(fm.block, 0)]
                      if n_blocks else 0.5, 0.5)
    eps = jnp.asarray(0.5 ** np.arange(1, 8), a.dtype)
    xs = x[None] + eps[:, None] * (jnp.asarray(centre, a.dtype) - x)[None]
    feasible = jnp.all((xs @ a.T <= b) | ~met, axis=1)
    x = jnp.where(feasible.any(), xs[jnp.argmax(feasible)], x)
    # Push across the remaining constraints in order: move along the segment towards the
    # relaxation's vertex that minimises the next constraint (alone, or together with the ones
    # already met), as far as those stay met; stop at the first that cannot be reached.
    lhs = jnp.where(met[:, None], a / jnp.linalg.norm(a, axis=1, keepdims=True), 0).sum(0)
    for level in range(height - 1):
        x_before, met_before = x, met
        for objective in (a[level], a[level] / jnp.linalg.norm(a[level]) + lhs):
            v = _min_vertex(objective, fm)
            ax, av = a @ x, a @ v
            # a·(x + θ(v - x)) <= b for the constraints met: θ <= (b - a·x) / (a·v - a·x) where a·v > a·x
            rise = av - ax
            theta_max = jnp.min(jnp.where(met & (rise > 0), (b - ax) / jnp.where(rise > 0, rise, 1), 1.0))
            need = (ax[level] - b[level]) / jnp.where(rise[level] < 0, -rise[level], 1.0)
            can = ~met[level] & (rise[level] < 0) & (need <= theta_max)
            theta = jnp.minimum(0.5 * (need + theta_max), 1.0)
            x = jnp.where(can, x + theta * (v - x), x)
            met = met.at[level].set(met[level] | can)
        keep = jnp.all(met_before[:level]) & ~met_before[level]  # only the first unmet level may move
        x = jnp.where(keep, x, x_before)
        met = jnp.where(keep, met, met_before)
        lhs = lhs + jnp.where(met[level] & ~met_before[level], a[level] / jnp.linalg.norm(a[level]), 0)
    met = met & (jnp.cumsum(~met) == 0)  # a prefix of the path

    def chain(k):
        def body(i, xc):
            ku, kl = jax.random.split(jax.random.fold_in(k, i))
            u = _project(jax.random.normal(ku, xc.shape, xc.dtype), fm.block, n_blocks)
            lo, hi = _interval(xc, u, a, b, met)
            return xc + jax.random.uniform(kl, (), xc.dtype, lo, hi) * u

        return jax.lax.fori_loop(0, HR_STEPS, body, x)

    return jax.vmap(chain)(jax.random.split(key, n_chains))
