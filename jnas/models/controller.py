"""The policy of a REINFORCE controller over a space's categorical decisions (Zoph & Le, ICLR 2017).

Shared by the ``reinforce`` strategy (``jnas.strategies.reinforce``: one
controller update per ask/tell step, rewards from the evaluator) and ENAS
(``jnas.train.oneshot_methods.Enas``: the controller samples children of a
supernet and learns from their shared-weight validation accuracy).

A controller emits ``D`` tokens, decision ``d`` taking one of
``cards[d]`` values: ``lstm`` feeds the embedding of the previous token
(a learned start token first; every decision has its own embedding rows)
through one ``nnx.LSTMCell`` and decision ``d``'s own softmax head reads
its output; ``softmax`` has independent logits per decision.
``rollout`` samples or re-scores one token vector; ``surrogate_loss`` is
the loss whose gradient is the REINFORCE estimate of ``−∇ E[R]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

#: controller kinds
CONTROLLERS = ("lstm", "softmax")
#: Zoph & Le initialise the controller's parameters uniformly in [-INIT_RANGE, INIT_RANGE]
INIT_RANGE = 0.08


class Controller(nnx.Module):
    """The policy over ``D`` categorical decisions of cardinalities ``cards`` (``kind``: ``CONTROLLERS``).

    ``lstm``: embedding of the previous token → one ``nnx.LSTMCell`` → decision ``d``'s linear head
    (``head_w[d]``, ``head_b[d]``); ``softmax``: ``logits[d]``, independent of the other decisions.
    Values past a decision's cardinality are masked out of its softmax.
    """

    def __init__(self, cards, kind: str, hidden: int, *, rngs: nnx.Rngs):
        self.cards = tuple(int(c) for c in cards)
        self.kind = kind
        self.hidden = int(hidden)
        d, c = len(self.cards), max(self.cards)
        if kind == "lstm":
            self.embed = nnx.Embed(1 + sum(self.cards), self.hidden, rngs=rngs)  # row 0: the start token
            self.cell = nnx.LSTMCell(self.hidden, self.hidden, rngs=rngs)
            self.head_w = nnx.Param(jnp.zeros((d, self.hidden, c)))
            self.head_b = nnx.Param(jnp.zeros((d, c)))
        else:
            self.logits = nnx.Param(jnp.zeros((d, c)))

    def first(self):
        """The recurrent carry before decision 0 (``()`` for ``softmax``)."""
        if self.kind != "lstm":
            return ()
        z = jnp.zeros((self.hidden,), jnp.float32)
        return (z, z, jnp.int32(0))  # LSTM (c, h) and the embedding row of the previous token

    def step(self, carry, d):
        """``(carry, logits float[C])`` of decision ``d`` (a traced index) given the carry."""
        if self.kind != "lstm":
            return carry, self.logits[d]
        c, h, prev = carry
        (c, h), out = self.cell((c, h), self.embed(prev))
        return (c, h, prev), out @ self.head_w[d] + self.head_b[d]

    def feed(self, carry, d, token):
        """The carry after decision ``d`` took ``token``."""
        if self.kind != "lstm":
            return carry
        offsets = jnp.asarray(np.concatenate([[0], np.cumsum(self.cards)[:-1]]) + 1, jnp.int32)
        c, h, _ = carry
        return (c, h, offsets[d] + token.astype(jnp.int32))


def rollout(model: Controller, key: jax.Array | None, tokens: jax.Array | None = None, live_fn=None):
    """``(tokens int32[D], log_prob, entropy)``: one pass of the controller over the decisions.

    With ``key`` it samples; with ``tokens`` it re-scores them (teacher forcing). ``live_fn(tokens)
    -> bool[D]`` (conditional spaces) marks live decisions: a dead one is set to 0 and counts in neither
    the log-probability nor the entropy. ``entropy`` is the sum of the per-step entropies along the path.
    """
    cards = jnp.asarray(model.cards, jnp.int32)
    n_dec, n_val = len(model.cards), max(model.cards)
    allowed = jnp.arange(n_val)[None, :] < cards[:, None]
    keys = jax.random.split(key, n_dec) if tokens is None else jnp.zeros((n_dec,), jnp.int32)
    given = jnp.zeros((n_dec,), jnp.int32) if tokens is None else jnp.asarray(tokens).astype(jnp.int32)

    def body(c, xs):
        carry, buf, logp, ent = c
        d, k, g = xs
        carry, logits = model.step(carry, d)
        logits = jnp.where(allowed[d], logits, -jnp.inf)
        logq = jax.nn.log_softmax(logits)
        tok = jax.random.categorical(k, logits).astype(jnp.int32) if tokens is None else g
        live = jnp.bool_(True) if live_fn is None else live_fn(buf)[d]
        tok = jnp.where(live, tok, 0)
        safe = jnp.where(allowed[d], logq, 0.0)  # no 0 · (−inf) in the entropy or its gradient
        h_d = -jnp.sum(jnp.exp(logq) * safe)
        logp = logp + jnp.where(live, logq[tok], 0.0)
        ent = ent + jnp.where(live, h_d, 0.0)
        return (model.feed(carry, d, tok), buf.at[d].set(tok), logp, ent), None

    init = (model.first(), jnp.zeros((n_dec,), jnp.int32), jnp.float32(0), jnp.float32(0))
    (_, buf, logp, ent), _ = jax.lax.scan(body, init, (jnp.arange(n_dec), keys, given))
    return buf, logp, ent


def surrogate_loss(graphdef, params, tokens: jax.Array, advantages: jax.Array, entropy: float = 0.0,
                   live_fn=None) -> jax.Array:
    """The loss REINFORCE descends: ``−mean_b[advantages_b · log p(tokens_b)] − entropy · mean_b[H_b]``.

    ``tokens``: ``int[B, D]``; ``advantages``: ``float[B]`` (reward minus baseline; held constant). Its
    gradient in ``params`` is the REINFORCE estimate of ``−∇ E[R]`` when ``advantages`` are rewards.
    """
    model = nnx.merge(graphdef, params)
    _, logp, ent = jax.vmap(lambda t: rollout(model, None, t, live_fn))(tokens)
    adv = jax.lax.stop_gradient(advantages).astype(logp.dtype)
    return -jnp.mean(adv * logp) - entropy * jnp.mean(ent)


def init_controller_params(shapes, kind: str, key: jax.Array):
    """Initial parameters of a controller whose abstract state is ``shapes`` (``nnx.split`` of an
    ``nnx.eval_shape``): uniform in ``[-INIT_RANGE, INIT_RANGE]`` (``lstm``), zeros (``softmax``: the
    uniform policy)."""
    leaves, treedef = jax.tree.flatten(shapes)
    if kind == "softmax":
        return jax.tree.unflatten(treedef, [jnp.zeros(x.shape, x.dtype) for x in leaves])
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.uniform(k, x.shape, x.dtype, -INIT_RANGE, INIT_RANGE)
                                        for k, x in zip(keys, leaves)])


__all__ = ["CONTROLLERS", "INIT_RANGE", "Controller", "init_controller_params", "rollout", "surrogate_loss"]
