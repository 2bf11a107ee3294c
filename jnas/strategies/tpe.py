"""Tree-structured Parzen Estimator (``tpe``; Bergstra et al., NeurIPS 2011) for categorical cells.

An architecture is read as the space's categorical decisions
(``Space.decisions``: ``D`` tokens with known cardinalities): NB201's 6 edges ×
5 ops; NAS-Bench-Graph's 4 links (node ``i`` reads one of ``i + 1`` inputs:
cardinalities 1, 2, 3, 4) and 4 ops; ConvNet's depth, then each layer's
channels and kernel. Where decisions can be dead (``decisions.conditional``:
a ConvNet layer past the depth), each decision's table counts only the
observations in which it is live, and a candidate's score sums only its
live decisions — the tree structure of TPE.

The first ``n_init`` queries are uniform samples. Afterwards, with ``n``
observations, the ``ceil(gamma · n)`` best form the *good* set and the others
the *rest*. Each set gets a Parzen estimator that is, for categorical
decisions, an independent smoothed frequency table per decision::

    p[d, c] = (count[d, c] + prior_weight / card[d]) / (n_set + prior_weight)

i.e. ``prior_weight`` pseudo-observations spread uniformly over the values
decision ``d`` can take (zero mass on values it cannot take). ``l`` is the
good set's table, ``g`` the rest's. ``n_candidates`` cells are drawn from
``l`` and the one maximising ``l(x) / g(x) = Π_d l[d, x_d] / g[d, x_d]``
(summed in log space) is queried; this maximises expected improvement under
the TPE model (Bergstra et al. show EI ∝ 1 / (γ + (1 − γ)·g/l)).

Defaults follow hyperopt's TPE: ``gamma = 0.25``, ``n_candidates = 24``,
``prior_weight = 1``; ``n_init = 10`` random start-up queries. The good set is
``ceil(gamma · n)`` (the task's linear rule; hyperopt uses
``ceil(gamma · sqrt(n))``, optuna ``min(ceil(0.1 · n), 25)``).

The space must be enumerable: a ``bool[size]`` mask of queried rows keeps
TPE from repeating itself. Candidates already queried (or drawn token
vectors with no member of the space, such as NAS-Bench-Graph's all-skip
cell) are skipped, and when every candidate is skipped the query is a
uniform sample among the rows not yet queried. Candidates are scored in
their canonical form (``space.canonicalize(space.from_decisions(tokens))``,
read back as tokens), the form the observations are stored in.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import pick_masked
from jnas.strategies.base import Option, Strategy, failed_to_worst, stack1, unstack1


class TPEState(NamedTuple):
    obs: jax.Array  # int8[budget, D] decision tokens of the architectures told, in order
    fit: jax.Array  # float[budget], -inf where empty or failed
    queried: jax.Array  # bool[space.size] rows already asked
    t: jax.Array  # int32[] architectures told so far


def decision_cardinalities(space) -> np.ndarray:
    """``int[D]``: number of values of each categorical decision of ``space`` (``space.decisions.cardinality``).

    Raises ``JnasError`` for spaces TPE cannot search: those that do not
    describe themselves as categorical decisions, and non-enumerable ones.
    """
    if not (space.supports("decisions") and space.enumerable):
        from jnas.spaces import get_space, names

        ok = [n for n in names() if get_space(n).enumerable and get_space(n).supports("decisions")]
        raise JnasError(
            f"space: got {getattr(space, 'name', space)!r}, expected nb201, nbgraph or another enumerable space "
            f"described by categorical decisions ({', '.join(ok)}); TPE needs a flat vector of categorical decisions"
        )
    return np.asarray(space.decisions.cardinality)


def parzen_table(obs: jax.Array, weight: jax.Array, allowed: jax.Array, prior_weight: float,
                 live: jax.Array | None = None) -> jax.Array:
    """Smoothed categorical frequency table of a weighted set of decision vectors.

    ``obs``: ``int[B, D]`` decisions; ``weight``: ``float[B]`` (1 for members of
    the set, 0 for others, e.g. empty buffer slots); ``allowed``: ``bool[D, C]``
    values each decision can take; ``live``: optional ``bool[B, D]``, the
    decisions that matter in each observation (a dead one is not counted).
    Returns ``float[D, C]`` probabilities, ``(count + prior_weight / card) /
    (n + prior_weight)`` with ``n`` the weight that counts for the decision:
    each row sums to 1 and is 0 where not allowed. ``prior_weight`` must be > 0.
    """
    onehot = jax.nn.one_hot(obs, allowed.shape[1], dtype=weight.dtype)  # [B, D, C]
    prior = allowed / allowed.sum(axis=1, keepdims=True)
    if live is None:
        counts = jnp.einsum("b,bdc->dc", weight, onehot)
        return (counts + prior_weight * prior) / (weight.sum() + prior_weight)
    w = weight[:, None] * live.astype(weight.dtype)  # [B, D]
    counts = jnp.einsum("bd,bdc->dc", w, onehot)
    return (counts + prior_weight * prior) / (w.sum(axis=0)[:, None] + prior_weight)


def good_mask(fit: jax.Array, n: jax.Array, gamma: float) -> jax.Array:
    """``bool[B]``: the ``ceil(gamma · n)`` best of the first ``n`` slots of ``fit`` (ties: earlier first)."""
    filled = jnp.arange(fit.shape[0]) < n
    order = jnp.lexsort((-fit, ~filled))  # filled first, then by value descending; stable
    rank = jnp.zeros(fit.shape[0], jnp.int32).at[order].set(jnp.arange(fit.shape[0], dtype=jnp.int32))
    n_good = jnp.ceil(gamma * n).astype(jnp.int32)
    return filled & (rank < n_good)


class TPE(Strategy):
    """TPE over categorical decisions with ``ceil(gamma·n)`` good observations and smoothed frequency tables."""

    name = "tpe"
    options = (
        Option("gamma", float, 0.25, "a number in (0, 1)", lambda v: 0.0 < v < 1.0, "quantile of the good set"),
        Option("n_candidates", int, 24, "an integer >= 1", lambda v: v >= 1, "candidates drawn from l per query"),
        Option("n_init", int, 10, "an integer >= 1", lambda v: v >= 1, "uniform random start-up queries"),
        Option("prior_weight", float, 1.0, "a number > 0", lambda v: v > 0.0, "pseudo-observations per decision"),
    )

    def validate(self):
        self.cards = decision_cardinalities(self.space)
        if self.budget > self.space.size:
            raise JnasError(
                f"budget: got {self.budget}, expected at most {self.space.size} "
                f"(the size of space {self.space.name!r}; TPE does not repeat)"
            )
        self._conditional = bool(self.space.decisions.conditional)

    def _live(self, tokens) -> jax.Array | None:
        """``bool[..., D]`` live decisions of token vectors, or ``None`` when every decision always is."""
        if not self._conditional:
            return None
        return jax.vmap(self.space.live_decisions)(tokens)

    def _canonical_tokens(self, tokens) -> jax.Array:
        """Token vectors ``int[n, D]`` of the canonical architectures they describe (``int8[n, D]``)."""
        sp = self.space
        return jax.vmap(lambda t: sp.to_decisions(sp.canonicalize(sp.from_decisions(t))))(tokens).astype(jnp.int8)

    def _allowed(self) -> jax.Array:
        return jnp.asarray(np.arange(self.cards.max())[None, :] < self.cards[:, None])

    def init(self, key):
        d = len(self.cards)
        return TPEState(
            jnp.zeros((self.budget, d), jnp.int8),
            jnp.full((self.budget,), -jnp.inf),
            jnp.zeros((self.space.size,), bool),
            jnp.int32(0),
        )

    def tables(self, state) -> tuple[jax.Array, jax.Array]:
        """``(l, g)``: ``float[D, C]`` Parzen tables of the good set and the rest."""
        good = good_mask(state.fit, state.t, self.gamma)
        rest = (jnp.arange(self.budget) < state.t) & ~good
        allowed = self._allowed()
        dt = state.fit.dtype
        live = self._live(state.obs)
        lo = parzen_table(state.obs, good.astype(dt), allowed, self.prior_weight, live)
        hi = parzen_table(state.obs, rest.astype(dt), allowed, self.prior_weight, live)
        return lo, hi

    def ask(self, state, key):
        k_rand, k_cand = jax.random.split(key)
        fresh_row = pick_masked(k_rand, ~state.queried)
        lo, hi = self.tables(state)
        allowed = self._allowed()
        logits = jnp.where(allowed, jnp.log(jnp.where(allowed, lo, 1.0)), -jnp.inf)
        cand = jax.random.categorical(k_cand, logits, shape=(self.n_candidates, len(self.cards)))
        cand = self._canonical_tokens(cand.astype(jnp.int8))
        archs = jax.vmap(self.space.from_decisions)(cand)
        rows = jax.vmap(self.space.index)(archs)
        log_ratio = jnp.log(jnp.where(allowed, lo, 1.0)) - jnp.log(jnp.where(allowed, hi, 1.0))
        d = jnp.arange(len(self.cards))
        terms = log_ratio[d[None, :], cand.astype(jnp.int32)]
        live = self._live(cand)
        score = (terms if live is None else jnp.where(live, terms, 0.0)).sum(axis=1)
        ok = (rows >= 0) & ~state.queried[jnp.maximum(rows, 0)]
        score = jnp.where(ok, score, -jnp.inf)
        best = jnp.argmax(score)
        use_model = (state.t >= self.n_init) & ok[best]
        row = jnp.where(use_model, rows[best], fresh_row)
        return stack1(self.space.from_index(row)), state

    def tell(self, state, archs, values):
        arch = unstack1(archs)
        slot = jnp.minimum(state.t, self.budget - 1)
        row = self.space.index(arch)
        queried = state.queried.at[jnp.maximum(row, 0)].set(state.queried[jnp.maximum(row, 0)] | (row >= 0))
        return TPEState(
            state.obs.at[slot].set(self.space.to_decisions(arch).astype(jnp.int8)),
            state.fit.at[slot].set(failed_to_worst(values[0]).astype(state.fit.dtype)),
            queried,
            state.t + 1,
        )
