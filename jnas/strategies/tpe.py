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

State is the strategy kit's history alone (``keeps_history``: the told
architectures, read as tokens when the tables are built, and their values;
``tracks_queried``: a ``bool[size]`` mask of queried rows, so the space must
be enumerable and TPE never repeats itself; a failed evaluation counts as
``on_failure``, -inf by default). Candidates already queried (or drawn token
vectors with no member of the space, such as NAS-Bench-Graph's all-skip
cell) are skipped, and when every candidate is skipped the query is a
uniform sample among the rows not yet queried. Candidates are scored in
their canonical form (``space.canonicalize(space.from_decisions(tokens))``,
read back as tokens), the form the observations are stored in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import pick_masked
from jnas.strategies.base import Option, Strategy, failure_option, stack1


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
    repeats = False
    keeps_history = True
    tracks_queried = True
    options = (
        Option("gamma", float, 0.25, "a number in (0, 1)", lambda v: 0.0 < v < 1.0, "quantile of the good set"),
        Option("n_candidates", int, 24, "an integer >= 1", lambda v: v >= 1, "candidates drawn from l per query"),
        Option("n_init", int, 10, "an integer >= 1", lambda v: v >= 1, "uniform random start-up queries"),
        Option("prior_weight", float, 1.0, "a number > 0", lambda v: v > 0.0, "pseudo-observations per decision"),
        failure_option("-inf"),
    )

    def validate(self):
        self.cards = decision_cardinalities(self.space)
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

    def tables(self, state) -> tuple[jax.Array, jax.Array]:
        """``(l, g)``: ``float[D, C]`` Parzen tables of the good set and the rest of the history."""
        archs, fit, told = self.observations(state)
        n = state.history.count
        obs = jax.vmap(self.space.to_decisions)(archs).astype(jnp.int8)  # int8[capacity, D]
        good = good_mask(fit, n, self.gamma)
        rest = (jnp.arange(fit.shape[0]) < n) & ~good
        allowed = self._allowed()
        dt = fit.dtype
        live = self._live(obs)
        lo = parzen_table(obs, good.astype(dt), allowed, self.prior_weight, live)
        hi = parzen_table(obs, rest.astype(dt), allowed, self.prior_weight, live)
        return lo, hi

    def _ask(self, state, key):
        queried = state.history.queried
        k_rand, k_cand = jax.random.split(key)
        fresh_row = pick_masked(k_rand, ~queried)
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
        ok = (rows >= 0) & ~queried[jnp.maximum(rows, 0)]
        score = jnp.where(ok, score, -jnp.inf)
        best = jnp.argmax(score)
        use_model = (state.history.count >= self.n_init) & ok[best]
        row = jnp.where(use_model, rows[best], fresh_row)
        return stack1(self.space.from_index(row)), state.inner
