"""REINFORCE with an autoregressive controller (``reinforce``; Zoph & Le, ICLR 2017).

An architecture is read as the space's categorical decisions
(``Space.decisions``: ``D`` tokens with known cardinalities, the sequence
TPE also walks). A *controller* emits them one by one and is trained by
policy gradient on the told values (every objective maximised, as the kit
tells them):

* ``controller=lstm`` (Zoph & Le): at step ``d`` the embedding of the previous
  token (a learned start token at ``d = 0``; every decision has its own
  embedding rows) goes through one LSTM cell (``flax.nnx.LSTMCell``, ``hidden``
  units) and decision ``d``'s own softmax head reads the cell's output; the
  sampled token is fed to the next step. Parameters start uniform in
  ``[-0.08, 0.08]`` as in Zoph & Le, so the first policy is close to uniform.
* ``controller=softmax``: independent logits per decision (the policy of
  the NAS-Bench-201 paper's REINFORCE baseline), starting at zero: the
  uniform distribution.

Where decisions can be dead (``decisions.conditional``: a ConvNet layer past
the depth), a dead decision is set to 0 and is no part of the sample's
log-probability or entropy; liveness depends only on earlier decisions, so
the controller knows it at the step it decides.

Update (one per ``ask``/``tell`` step, on the ``batch_size`` architectures of
the step), with ``R_b`` the told values and ``b`` the baseline::

    loss = −mean_b[(R_b − b) · log p(a_b)] − entropy · mean_b[H_b]

``log p(a_b) = Σ_d log p(a_bd | a_b,<d)`` over live decisions and ``H_b`` the
sum of the per-step entropies of the distributions the sample was drawn
from; ``−mean_b[R_b · log p(a_b)]``'s gradient is the REINFORCE estimate of
``−∇ E[R]`` (``surrogate_loss``), the baseline lowers its variance and the
entropy bonus keeps the policy from collapsing early. Adam (``optax.adam``,
``lr``) takes one step on the loss. The baseline is an exponential moving
average of the steps' mean rewards with decay ``baseline_decay``,
bias-corrected (``num / den`` with ``num ← β·num + (1 − β)·mean R``, ``den
← β·den + (1 − β)``), and taken *before* the step's rewards enter it, so it
does not depend on the samples it is subtracted from; at the first step,
with no baseline yet, it is that step's mean reward (with ``batch_size=1``
the first step only moves the entropy term).

Defaults: ``lr = 0`` stands for the tuned rate of the controller (``DEFAULT_LR``:
0.001 for ``lstm`` — Zoph & Le used 0.0006 — and 0.1 for ``softmax``),
``baseline_decay = 0.9`` (the NAS-Bench-201 REINFORCE baseline's momentum),
``entropy = 0``, ``hidden = 64``, ``batch_size = 1``. They were tuned on
``nb201/cifar100`` at 300 queries (``experiments/reinforce_nb201.py``; results
in ``experiments/README.md``): the learning rate matters most (the LSTM
collapses early onto a poor cell from 0.01 up), the baseline's decay and
the entropy bonus little. With ``entropy = 0`` the search does not depend
on the scale of the reward (Adam's steps are scale-free); a bonus is in the
reward's units per nat (NB201: accuracy in percent).

Failed evaluations (NaN; ``on_failure``): ``worst`` (default) counts one as
the worst finite value told so far (0 before any), so the controller learns
to avoid what fails; ``skip`` leaves it out of the gradient and of the
baseline. A drawn token vector that is not a member of the space
(NAS-Bench-Graph's all-skip cell) is redrawn, up to ``DRAWS`` draws in all
(the last draw is queried if none is a member); this samples from the policy
restricted to members, and the update still uses ``log p(a)``, which is off
by ``∇ log P(member)``, a term that vanishes where every draw is a member
(NB201, DARTS, ConvNet) and is multiplied by ``E[R − b] ≈ 0`` elsewhere.
Queried architectures are canonical (``space.canonicalize``); the controller
learns from the tokens it drew, which ``ask`` keeps in the state for
``tell`` (so ``asynchronous`` is False). The controller may propose an
architecture again (``repeats``): every query counts.

State: the controller's parameters (an ``nnx.State``), the Adam state, the
baseline and the last batch's tokens; every array has a fixed shape, so a
tabular run is one ``lax.scan`` and seeds ``vmap``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jnas.errors import JnasError
from jnas.models.controller import CONTROLLERS, Controller, init_controller_params, rollout, surrogate_loss
from jnas.strategies.base import Option, Strategy, batch_option

FAILURES = {
    "worst": "a failed evaluation (NaN) counts as the worst finite value told so far (0 before any)",
    "skip": "a failed evaluation is left out of the gradient and of the baseline",
}
#: the learning rate ``lr=0`` stands for, per controller (tuned on nb201/cifar100, 300 queries)
DEFAULT_LR = {"lstm": 0.001, "softmax": 0.1}
#: draws per architecture until one is a member of the space (the last is queried if none is)
DRAWS = 4


def decision_cardinalities(space) -> np.ndarray:
    """``int[D]``: the cardinality of each categorical decision of ``space``; a one-line ``JnasError`` for a space
    that does not describe itself as categorical decisions."""
    if not space.supports("decisions"):
        from jnas.spaces import get_space, names

        ok = [n for n in names() if get_space(n).supports("decisions")]
        raise JnasError(f"space: got {getattr(space, 'name', space)!r}, which does not define categorical decisions; "
                        f"reinforce's controller emits an architecture decision by decision ({', '.join(ok)})")
    return np.asarray(space.decisions.cardinality, np.int32)


class RLState(NamedTuple):
    params: Any  # nnx.State of the controller
    opt: Any  # optax Adam state
    num: jax.Array  # float[]: the baseline's moving average, before bias correction
    den: jax.Array  # float[]: its weight (1 − β^n after n updates); 0 before the first
    tokens: jax.Array  # int32[batch_size, D]: the tokens of the last asked batch (what tell learns from)


class Reinforce(Strategy):
    """REINFORCE (Zoph & Le) with an LSTM or per-decision softmax controller, a moving-average baseline and Adam."""

    name = "reinforce"
    asynchronous = False  # ask keeps the drawn tokens its tell learns from
    options = (
        Option("controller", str, "lstm", f"one of {', '.join(CONTROLLERS)}", lambda v: v in CONTROLLERS,
               "lstm: Zoph & Le's autoregressive controller (embedding of the previous token, one LSTM cell, a "
               "softmax head per decision); softmax: independent logits per decision"),
        Option("hidden", int, 64, "an integer >= 1", lambda v: v >= 1, "LSTM units (and embedding size)",
               applies=(lambda s: s.controller == "lstm", "controller=lstm")),
        Option("lr", float, 0.0, "a number >= 0 (0: the controller's default)", lambda v: v >= 0.0,
               "Adam learning rate of the controller (0: " + ", ".join(f"{v} for {k}" for k, v in DEFAULT_LR.items())
               + ")"),
        Option("baseline_decay", float, 0.9, "a number in [0, 1)", lambda v: 0.0 <= v < 1.0,
               "decay of the baseline's exponential moving average of the rewards (0: the last step's mean)"),
        Option("entropy", float, 0.0, "a number >= 0", lambda v: v >= 0.0,
               "weight of the entropy bonus (reward units per nat)"),
        Option("on_failure", str, "worst", f"one of {', '.join(FAILURES)}", lambda v: v in FAILURES,
               "what a failed evaluation counts as: " + "; ".join(f"{k}: {v}" for k, v in FAILURES.items())),
        batch_option(1, help="architectures sampled per controller update"),
    )

    def validate(self):
        if self.lr == 0.0:  # resolved here, so settings() and result files record the rate in force
            self.lr = DEFAULT_LR[self.controller]
        self.cards = decision_cardinalities(self.space)
        self._conditional = bool(self.space.decisions.conditional)

    def setup(self):
        abstract = nnx.eval_shape(lambda: Controller(self.cards, self.controller, self.hidden, rngs=nnx.Rngs(0)))
        self.graphdef, self._shapes = nnx.split(abstract)
        self.optimizer = optax.adam(self.lr)

    # ----- the controller ----------------------------------------------------------------
    def live_fn(self):
        """``tokens -> bool[D]`` live decisions, or ``None`` when every decision always is."""
        return self.space.live_decisions if self._conditional else None

    def init_params(self, key: jax.Array):
        """The controller's initial parameters (``jnas.models.controller.init_controller_params``)."""
        return init_controller_params(self._shapes, self.controller, key)

    def model(self, params) -> Controller:
        return nnx.merge(self.graphdef, params)

    def sample(self, params, key: jax.Array):
        """``(tokens int32[D], log_prob, entropy)``: one draw of the controller (no membership check)."""
        return rollout(self.model(params), key, None, self.live_fn())

    def score(self, params, tokens: jax.Array):
        """``(log_prob, entropy)`` of ``tokens`` (``int[D]``) under the controller."""
        _, logp, ent = rollout(self.model(params), None, tokens, self.live_fn())
        return logp, ent

    def _draw(self, params, key):
        """``(tokens, arch)``: the first of ``DRAWS`` draws whose architecture is a member (else the last)."""
        sp = self.space
        toks, _, _ = jax.vmap(lambda k: self.sample(params, k))(jax.random.split(key, DRAWS))
        archs = jax.vmap(lambda t: sp.canonicalize(sp.from_decisions(t)))(toks)
        ok = jax.vmap(sp.is_valid)(archs)
        i = jnp.where(ok.any(), jnp.argmax(ok), DRAWS - 1)
        return toks[i], jax.tree.map(lambda x: x[i], archs)

    # ----- the protocol ------------------------------------------------------------------
    def _init(self, key):
        params = self.init_params(key)
        return RLState(params, self.optimizer.init(params), jnp.float32(0), jnp.float32(0),
                       jnp.zeros((self.batch_size, len(self.cards)), jnp.int32))

    def _ask(self, state, key):
        inner = state.inner
        toks, archs = jax.vmap(lambda k: self._draw(inner.params, k))(jax.random.split(key, self.batch_size))
        return archs, inner._replace(tokens=toks)

    def fill_failures(self, values, h):
        if self.on_failure == "skip":
            return jnp.where(jnp.isfinite(values), values, jnp.nan)
        return super().fill_failures(values, h)

    def _tell(self, state, archs, values):
        inner = state.inner
        ok = jnp.isfinite(values)
        r = jnp.where(ok, values, 0.0).astype(jnp.float32)
        n_ok = ok.sum()
        mean = r.sum() / jnp.maximum(n_ok, 1)
        baseline = jnp.where(inner.den > 0, inner.num / jnp.where(inner.den > 0, inner.den, 1.0), mean)
        adv = jnp.where(ok, r - baseline, 0.0)
        grads = jax.grad(lambda p: surrogate_loss(self.graphdef, p, inner.tokens, adv, self.entropy,
                                                  self.live_fn()))(inner.params)
        updates, opt = self.optimizer.update(grads, inner.opt, inner.params)
        params = optax.apply_updates(inner.params, updates)
        beta = self.baseline_decay
        upd = n_ok > 0
        num = jnp.where(upd, beta * inner.num + (1 - beta) * mean, inner.num)
        den = jnp.where(upd, beta * inner.den + (1 - beta), inner.den)
        return RLState(params, opt, num, den, inner.tokens)
