"""One-shot NAS methods: a relaxation, an architecture update and a derivation rule each.

The bilevel loop (``jnas.train.oneshot``) is the same for every method; a
method says

* ``init_arch(space, key)``: the initial architecture parameters (held by the
  supernet as its ``ArchParam``);
* ``edge_weights(arch, key, progress)``: the supernet's edge weights
  (``jnas.models.supernet.edge_weight_shape``) from the parameters; ``key``
  for stochastic relaxations, ``progress`` in ``[0, 1]`` for annealing
  (``epoch / (epochs - 1)``, epochs counted from 0: 0 in the first epoch, 1
  in the last);
* ``arch_optimizer()``: an optax transformation of the architecture step;
  ``second_order``: whether the architecture gradient is DARTS's unrolled one;
* ``strengths(arch)``: per-edge op strengths (what is reported each epoch
  and what an arg-max derivation reads);
* ``derive``: ``"argmax"`` (``jnas.models.supernet.derive_argmax`` of the
  strengths) or ``"sample"`` (ANASOD-DNAS: cells sampled from the learned
  distribution, the best by supernet validation loss kept).

A method may also fix the supernet's structure (``structure()``: PC-DARTS's
partial channels, P-DARTS's pruned op sets), add dropout on the skip
connections (``skip_drop_rate``), bring its paper's weight-training settings
(``config_defaults``, between DARTS's ``SEARCH_CONFIG`` and the user's
``--config``), derive by its own rule (``derive_arch``) and run in stages
(``stage_plan``/``next_stage``: P-DARTS; every other method has one stage).
Every method takes ``warmup_epochs``: that many epochs (of each stage)
train the weights alone, the architecture frozen (PC-DARTS 15, P-DARTS 10,
the others 0).

Every method also takes DARTS+'s early stopping (Liang et al., 2019;
``early_stop_reason``): ``early_stop=skip`` stops the search after the
first epoch whose derived normal cell has 2 or more skip connections,
``rank`` once the per-edge ranking of the parameterised ops has not changed
for ``stable_epochs`` epochs (default 10), ``both`` at whichever comes
first; the derived architecture is the stopping epoch's.

Methods (``METHODS``; options settable with ``--set``):

``darts`` / ``darts2``
    Liu et al. (ICLR 2019): per-edge logits ``α`` (init ``1e-3·N(0, 1)``),
    weights ``softmax(α)``; Adam lr 3e-4, betas (0.5, 0.999), weight decay
    1e-3 (L2, added to the gradient as in PyTorch's Adam). ``darts2`` uses the
    second-order (unrolled) gradient with the finite-difference
    Hessian-vector product, virtual step size = the weights' current
    learning rate, ``ε = 0.01 / ‖∇_w' L_val‖``.
``gdas``
    Dong & Yang (CVPR 2019): per-edge logits; weights are a hard one-hot
    Gumbel-softmax sample, ``one_hot(argmax((α + g) / τ))`` in the forward
    pass and the gradient of ``softmax((α + g) / τ)`` in the backward pass
    (straight-through). ``τ`` falls linearly per epoch from ``tau_max = 10``
    in the first to ``tau_min = 0.1`` in the last (as GDAS's code). Same Adam
    as DARTS. Every op of an edge is evaluated, so the logit of an unsampled
    op gets the textbook straight-through gradient ``⟨∂L/∂out, op_k(x)⟩``;
    GDAS's own code runs only the sampled op and adds the others' zero weights
    as constants, which gives them ``Σ ∂L/∂out`` instead (cheaper, biased
    differently; the sampled op's gradient is the same).
``snas``
    Xie et al. (ICLR 2019): per-edge logits ``log α``; weights are a *soft*
    concrete sample ``softmax((α + g) / τ)`` (no straight-through; every op
    runs, weighted), ``τ`` annealed geometrically from ``tau_max = 1`` in the
    first epoch to ``tau_min = 0.03`` in the last (the temperatures of the
    SNAS authors' published search command). Same Adam as DARTS, on the
    architecture half's loss (jnas keeps one bilevel loop; SNAS trains both
    on one generic loss). Resource constraint (``resource_lambda`` η > 0):
    ``η · log E[C(Z)]`` is added to the architecture loss, ``C`` the op
    parameters of the cell (``op_parameters`` at ``cost_channels``); the
    expectation is exact because ``p_α`` factorises over edges (SNAS
    estimates its gradient by Monte Carlo), and the log is SNAS's
    ``--log_penalty`` form. Derivation: the distribution's mode, the arg-max
    op of every edge (for DARTS the DARTS rule: the two strongest incoming
    edges of each node, ``none`` excluded).
``pc-darts``
    Xu et al. (ICLR 2020): first-order DARTS with partial channel
    connections (each edge's ops see ``1/K`` of its channels,
    ``partial_channels = K = 4``; the rest bypass them, then the channels are
    shuffled) and edge normalisation: per-edge logits ``β`` softmaxed over
    each node's incoming edges scale the edge, ``w_e = softmax(β)_e ·
    softmax(α_e)``. The parameters are one array ``[..., n_edges, n_ops + 1]``:
    ``α`` then ``β`` in the last column. Adam lr 6e-4, weight decay 1e-3;
    weights: batch 256, SGD lr 0.1 cosine to 0; the first 15 epochs train
    the weights alone. Derivation: the DARTS rule on ``softmax(α) · β``
    (PC-DARTS's genotype).
``pdarts``
    Chen et al. (ICCV 2019): stages of growing depth (``depths``: DARTS 5,
    11, 17 cells; NB201 1, 3, 5 cells per stage of its skeleton), each a
    fresh supernet trained for ``--epochs`` epochs (10 of them warm-up) with
    fresh ``α``; between stages each edge keeps its ``keep_ops`` strongest ops
    (DARTS 8 → 5 → 3, NB201 5 → 3 → 2; a DARTS edge never keeps only
    ``none``), so the deeper stages run fewer ops. Dropout on the stride-1
    ``skip_connect`` outputs, from ``skip_dropout`` per stage (the paper's
    CIFAR-10 rates 0.0, 0.3, 0.6) decaying linearly to 0 in the stage's last
    epoch. Derivation: the DARTS rule with at most ``max_skips = 2`` skips in
    the normal cell (the weakest chosen skip struck out until it holds).
    Adam lr 6e-4, weight decay 1e-3; weights: batch 96, SGD lr 0.025 cosine to 0.
``anasod-dnas``
    Wan et al., Algorithm 1: one operation distribution ``p̃`` per cell type
    (NB201: ``[1, 5]``; DARTS: ``[2, 7]``, normal and reduce, without
    ``none``) shared by all edges of the cell, initialised uniform; the step
    is exponentiated gradient (mirror descent on the simplex: ``p ← p ·
    exp(-η g)``, renormalised), ``η = lr = 0.1`` (GAEA's default, which
    ANASOD's implementation builds on). Derivation: ``derive_samples = 10``
    cells whose op counts are the Bomze rounding of ``N · p̃``
    (``jnas.encodings.opdist``), placed on random edges (random wiring on
    DARTS), the one with the lowest supernet validation loss kept.
``enas``
    Pham et al. (ICML 2018), weight sharing by a controller: the policy is
    ``jnas.models.controller.Controller`` over the space's categorical
    decisions (``controller = lstm``, ``hidden = 64``, ENAS's micro-search
    size; or ``softmax``), its parameters one flat ``ArchParam`` array. Each
    step the architecture step draws ``samples`` children, scores each with
    the shared weights on the architecture batch (one-hot edge weights) and
    takes one REINFORCE step on their accuracies (fractions in [0, 1]):
    Adam ``arch_lr = 0.0035``, moving-average baseline (decay
    ``baseline_decay = 0.99``, bias-corrected), entropy bonus ``entropy =
    1e-4`` (ENAS's micro-search settings). The weight step trains one child
    drawn from the updated policy, and only its weights move
    (``trains_sampled_child``). ENAS alternates whole phases (an epoch of
    weight steps, then a few hundred controller samples); jnas interleaves
    one controller step per weight step, as its bilevel loop does for every
    method. Not reproduced: ENAS's logit temperature and tanh constant.
    Derivation: ``derive_samples = 10`` children drawn from the policy, the
    one with the highest shared-weight accuracy on the first
    ``derive_examples = 1024`` images of the architecture half kept (ENAS
    scores its samples on one validation minibatch). ``strengths``: the
    probability that a child carries op ``k`` on edge ``e``, estimated from
    ``STRENGTH_DRAWS`` draws with a fixed key; that is what the history
    records as ``arch``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jnas.errors import JnasError, is_int, is_number
from jnas.models.supernet import SPACES, derive_argmax, edge_weight_shape, limit_skips, node_softmax, op_names


@dataclasses.dataclass(frozen=True)
class MethodOption:
    """A method option settable with ``--set name=value``."""

    name: str
    type: type
    default: Any
    expected: str
    check: Callable[[Any], bool] = lambda v: True


def _positive(v) -> bool:
    return v > 0 and math.isfinite(v)


_ADAM = (
    MethodOption("arch_lr", float, 3e-4, "a positive number", _positive),
    MethodOption("arch_weight_decay", float, 1e-3, "a number >= 0", lambda v: v >= 0 and math.isfinite(v)),
)


EARLY_STOPS = ("none", "skip", "rank", "both")
#: DARTS+ (Liang et al., 2019) early stopping, settable on every method
EARLY_STOP_OPTIONS = (
    MethodOption("early_stop", str, "none", f"one of {', '.join(EARLY_STOPS)}", lambda v: v in EARLY_STOPS),
    MethodOption("stable_epochs", int, 10, "an integer >= 1", lambda v: v >= 1),
)


def _warmup_option(default: int) -> MethodOption:
    """``warmup_epochs``: epochs (of each stage) that train the weights only, the architecture frozen."""
    return MethodOption("warmup_epochs", int, default, "an integer >= 0", lambda v: v >= 0)


class Method:
    """Base class of the one-shot methods (see the module docstring)."""

    name: str = ""
    spaces: tuple[str, ...] = SPACES
    options: tuple[MethodOption, ...] = ()
    second_order: bool = False
    derive: str = "argmax"
    #: ``warmup_epochs`` default (PC-DARTS and P-DARTS freeze the architecture at first)
    warmup_default: int = 0
    #: weight-training settings of the method's paper that differ from DARTS's (``SEARCH_CONFIG``)
    config_defaults: dict = {}
    #: ops each edge of the supernet holds (``bool``, edge-weight shape; ``None``: all); P-DARTS prunes
    op_mask = None
    #: the architecture step is a policy gradient on sampled children's rewards (``policy_update``), not a
    #: gradient of the architecture batch's loss (ENAS)
    policy_gradient: bool = False
    #: the weight step updates only the weights the step's sampled child uses (weight tensors with a zero
    #: gradient, and their optimizer state, are left as they are: ENAS)
    trains_sampled_child: bool = False
    #: what a sampling derivation keeps: the candidate with the lowest ``"loss"`` or highest ``"accuracy"``
    derive_by: str = "loss"
    #: examples of the architecture half a sampling derivation scores each candidate on (``None``: all)
    derive_examples: int | None = None

    def __init__(self, space: str, **opts):
        if space not in self.spaces:
            raise JnasError(f"--space: got {space!r}, expected one of {', '.join(self.spaces)} (the spaces "
                            f"method {self.name} supports)")
        self.space = space
        known = {o.name: o for o in self.all_options()}
        for k in opts:
            if k not in known:
                valid = ", ".join(known) or "none"
                raise JnasError(f"--set {k}: unknown option for method {self.name!r}; valid options: {valid}")
        for o in self.all_options():
            v = opts.get(o.name, o.default)
            if o.type is str:
                if is_number(v):  # the CLI reads `--set depths=5` as the number 5; a list option takes it
                    v = str(v)
                typed = isinstance(v, str)
            else:
                typed = is_int(v) if o.type is int else is_number(v)  # never round 2.5 to 2 or read True as 1.0
            if not typed or not o.check(v):
                raise JnasError(f"--set {o.name}: got {v!r}, expected {o.expected}")
            setattr(self, o.name, o.type(v))
        self.validate()

    @classmethod
    def all_options(cls) -> tuple[MethodOption, ...]:
        """The method's own options, then the options every method has: the architecture warm-up and
        DARTS+ early stopping."""
        return cls.options + (_warmup_option(cls.warmup_default),) + EARLY_STOP_OPTIONS

    def validate(self) -> None:
        """Cross-option checks (override)."""

    def settings(self) -> dict:
        """Option values in force (JSON-ready)."""
        return {o.name: getattr(self, o.name) for o in self.all_options()}

    def init_arch(self, key) -> jax.Array:
        raise NotImplementedError

    def edge_weights(self, arch, key, progress) -> jax.Array:
        raise NotImplementedError

    def arch_optimizer(self) -> optax.GradientTransformation:
        raise NotImplementedError

    def strengths(self, arch) -> jax.Array:
        """Per-edge op strengths, shaped like the edge weights."""
        raise NotImplementedError

    def arch_penalty(self, arch) -> jax.Array:
        """A term added to the architecture step's loss (a resource constraint); 0 unless overridden."""
        return jnp.zeros((), jnp.float32)

    def skip_drop_rate(self, progress) -> jax.Array | None:
        """Dropout rate on the supernet's ``skip_connect`` outputs at ``progress`` (P-DARTS), or ``None`` (off)."""
        return None

    def structure(self) -> dict:
        """Supernet structure the method fixes (``jnas.models.supernet.build_supernet`` keywords)."""
        return {} if self.op_mask is None else {"op_mask": self.op_mask}

    def derive_arch(self, strength) -> np.ndarray:
        """The derived architecture of per-edge op strengths (``derive == "argmax"``)."""
        return derive_argmax(self.space, strength)

    def derive_candidates(self, arch, key, space_obj) -> list:
        """The cells a sampling derivation (``derive == "sample"``) chooses among (override)."""
        raise NotImplementedError

    def record_arch(self, arch) -> np.ndarray:
        """The architecture parameters as an epoch's record keeps them (``arch``); the parameters themselves by
        default, ENAS the policy's op probabilities (its controller is too large to record every epoch)."""
        return np.asarray(arch)

    def recorded_strengths(self, recorded) -> np.ndarray:
        """Per-edge op strengths of a recorded ``arch`` (``record_arch``'s output)."""
        return np.asarray(self.strengths(jnp.asarray(recorded)))

    def stage_plan(self) -> list[dict]:
        """Per stage of a progressive search (P-DARTS), the supernet options (``--model``) that stage sets;
        one stage setting nothing for every other method. The method object runs the first stage."""
        return [{}]

    def next_stage(self, arch) -> "Method":
        """The method as it runs the stage after this one, from this stage's final parameters ``arch``."""
        raise JnasError(f"method {self.name} has {len(self.stage_plan())} stage(s); there is no next one")


class Darts(Method):
    """First-order DARTS: softmax over per-edge logits, Adam on the validation loss."""

    name = "darts"
    options = _ADAM

    def init_arch(self, key):
        return 1e-3 * jax.random.normal(key, edge_weight_shape(self.space), jnp.float32)

    def edge_weights(self, arch, key, progress):
        return jax.nn.softmax(arch, axis=-1)

    def arch_optimizer(self):
        # PyTorch Adam's weight_decay is L2 added to the gradient before the moments
        return optax.chain(optax.add_decayed_weights(self.arch_weight_decay),
                           optax.adam(self.arch_lr, b1=0.5, b2=0.999))

    def strengths(self, arch):
        return jax.nn.softmax(arch, axis=-1)


class Darts2(Darts):
    """Second-order DARTS: the unrolled architecture gradient (finite-difference Hessian-vector product)."""

    name = "darts2"
    second_order = True


class GDAS(Darts):
    """GDAS: straight-through hard Gumbel-softmax samples, temperature annealed linearly."""

    name = "gdas"
    options = _ADAM + (
        MethodOption("tau_max", float, 10.0, "a positive number", _positive),
        MethodOption("tau_min", float, 0.1, "a positive number", _positive),
    )

    def validate(self):
        if self.tau_min > self.tau_max:
            raise JnasError(f"--set tau_min: got {self.tau_min}, expected at most tau_max={self.tau_max}")

    def tau(self, progress):
        """Gumbel-softmax temperature at ``progress`` (0: first epoch, 1: last)."""
        return self.tau_max - (self.tau_max - self.tau_min) * progress

    def edge_weights(self, arch, key, progress):
        g = jax.random.gumbel(key, arch.shape, arch.dtype)
        soft = jax.nn.softmax((arch + g) / self.tau(progress), axis=-1)
        hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), arch.shape[-1], dtype=soft.dtype)
        return hard - jax.lax.stop_gradient(soft) + soft


def op_parameters(space: str, channels: int) -> np.ndarray:
    """Weights of each candidate op of ``space`` at ``channels`` in and out (``float32[n_ops]``; no BatchNorm).

    NB201: a ``k × k`` ReLU-conv-BN has ``k²C²``; DARTS (normal cells): a separable conv two depthwise
    ``k × k`` and two pointwise convs, ``2(k²C + C²)``, a dilated conv one of each, ``k²C + C²``;
    pooling, the identity and ``none`` have none.
    """
    c = int(channels)
    costs = []
    for name in op_names(space):
        if name.startswith("nor_conv"):
            k = int(name[-1])
            costs.append(k * k * c * c)
        elif name.startswith(("sep_conv", "dil_conv")):
            k = int(name[-1])
            costs.append((2 if name.startswith("sep") else 1) * (k * k * c + c * c))
        else:
            costs.append(0)
    return np.asarray(costs, np.float32)


def _normal_cell_skips(space: str, derived) -> int:
    """``skip_connect`` edges of the derived normal cell (NB201: of its one cell)."""
    skip = op_names(space).index("skip_connect")
    d = np.asarray(derived)
    ops = d if space == "nb201" else d[0, :, 1]  # DARTS genotype [cell, edge, (input, op)]: cell 0 is the normal one
    return int(np.sum(ops == skip))


def early_stop_reason(method: Method, history: list[dict]) -> str | None:
    """DARTS+'s stopping rule after the last epoch of ``history`` (records with ``arch`` and ``derived``).

    ``skip``: the derived normal cell has 2 or more ``skip_connect`` edges. ``rank``: on every edge the
    ranking of the learnable (parameterised) ops by strength has not changed for ``stable_epochs`` epochs,
    i.e. it is the same in the last ``stable_epochs + 1`` records. Warm-up epochs (``arch_frozen``) are left
    out. Returns the reason, or ``None``.
    """
    rule = method.early_stop
    # warm-up epochs do not count: their architecture is the random initial one, frozen
    history = [h for h in history if not h.get("arch_frozen")]
    if rule == "none" or not history:
        return None
    if rule in ("skip", "both"):
        n = _normal_cell_skips(method.space, history[-1]["derived"])
        if n >= 2:
            return f"skip: the derived normal cell has {n} skip connections (DARTS+: stop at 2)"
    if rule in ("rank", "both") and len(history) > method.stable_epochs:
        learnable = np.flatnonzero(op_parameters(method.space, 16) > 0)
        ranks = [np.argsort(-method.recorded_strengths(h["arch"])[..., learnable], axis=-1, kind="stable")
                 for h in history[-(method.stable_epochs + 1):]]
        if all(np.array_equal(r, ranks[0]) for r in ranks[1:]):
            return f"rank: the learnable ops' ranking has not changed for {method.stable_epochs} epochs"
    return None


class SNAS(Darts):
    """SNAS: soft concrete (Gumbel-softmax) samples, temperature annealed geometrically, optional resource cost."""

    name = "snas"
    options = _ADAM + (
        MethodOption("tau_max", float, 1.0, "a positive number", _positive),
        MethodOption("tau_min", float, 0.03, "a positive number", _positive),
        MethodOption("resource_lambda", float, 0.0, "a number >= 0", lambda v: v >= 0 and math.isfinite(v)),
        MethodOption("cost_channels", int, 16, "an integer >= 1", lambda v: v >= 1),
    )

    def validate(self):
        if self.tau_min > self.tau_max:
            raise JnasError(f"--set tau_min: got {self.tau_min}, expected at most tau_max={self.tau_max}")
        self.op_cost = op_parameters(self.space, self.cost_channels)

    def tau(self, progress):
        """Temperature at ``progress`` (0: first epoch, 1: last): ``tau_max · (tau_min / tau_max)^progress``."""
        return self.tau_max * (self.tau_min / self.tau_max) ** progress

    def edge_weights(self, arch, key, progress):
        g = jax.random.gumbel(key, arch.shape, arch.dtype)
        return jax.nn.softmax((arch + g) / self.tau(progress), axis=-1)

    def expected_cost(self, arch) -> jax.Array:
        """``E_{Z ~ p_α}[C(Z)]``: the expected op parameters of a sampled cell (exact: ``p_α`` factorises)."""
        return jnp.sum(jax.nn.softmax(arch, axis=-1) * jnp.asarray(self.op_cost))

    def arch_penalty(self, arch):
        if self.resource_lambda == 0:
            return jnp.zeros((), jnp.float32)
        return self.resource_lambda * jnp.log(jnp.maximum(self.expected_cost(arch), 1.0))


class PCDarts(Darts):
    """PC-DARTS: partial channel connections and edge normalisation over first-order DARTS."""

    name = "pc-darts"
    warmup_default = 15
    config_defaults = {"batch_size": 256, "lr": 0.1, "lr_end": 0.0}
    options = (
        MethodOption("arch_lr", float, 6e-4, "a positive number", _positive),
        MethodOption("arch_weight_decay", float, 1e-3, "a number >= 0", lambda v: v >= 0 and math.isfinite(v)),
        MethodOption("partial_channels", int, 4, "an integer >= 1", lambda v: v >= 1),
    )

    def init_arch(self, key):
        shape = edge_weight_shape(self.space)
        return 1e-3 * jax.random.normal(key, shape[:-1] + (shape[-1] + 1,), jnp.float32)

    def edge_weights(self, arch, key, progress):
        return self.strengths(arch)

    def strengths(self, arch):
        # arch[..., :-1]: the op logits α; arch[..., -1]: the edge logits β
        return jax.nn.softmax(arch[..., :-1], axis=-1) * node_softmax(self.space, arch[..., -1])[..., None]

    def structure(self):
        return {**super().structure(), "partial_channels": self.partial_channels}


def _int_list(name: str, text: str, lo: int) -> tuple[int, ...]:
    try:
        out = tuple(int(t) for t in text.split(","))
    except ValueError:
        out = ()
    if not out or min(out) < lo:
        raise JnasError(f"--set {name}: got {text!r}, expected comma-separated integers >= {lo}")
    return out


class PDarts(Darts):
    """P-DARTS: stages of growing depth, ops pruned between them, skip dropout, at most M skips derived."""

    name = "pdarts"
    warmup_default = 10
    config_defaults = {"batch_size": 96, "lr": 0.025, "lr_end": 0.0}
    #: the paper's schedules per space: cells per stage (DARTS: cells; NB201: cells per stage of the
    #: skeleton), ops kept per edge after each stage but the last, initial skip dropout rate per stage
    AUTO = {"darts": ("5,11,17", "5,3", "0.0,0.3,0.6"), "nb201": ("1,3,5", "3,2", "0.0,0.3,0.6")}
    options = (
        MethodOption("arch_lr", float, 6e-4, "a positive number", _positive),
        MethodOption("arch_weight_decay", float, 1e-3, "a number >= 0", lambda v: v >= 0 and math.isfinite(v)),
        MethodOption("depths", str, "auto", "'auto' or comma-separated depths, one per stage"),
        MethodOption("keep_ops", str, "auto", "'auto' or comma-separated op counts, one per stage but the last"),
        MethodOption("skip_dropout", str, "auto", "'auto' or comma-separated rates in [0, 1), one per stage"),
        MethodOption("max_skips", int, 2, "an integer >= 0", lambda v: v >= 0),
    )
    stage = 0

    def validate(self):
        auto = self.AUTO[self.space]
        self.stage_depths = _int_list("depths", auto[0] if self.depths == "auto" else self.depths, 1)
        n = len(self.stage_depths)
        self.stage_keep = () if n == 1 else _int_list("keep_ops", auto[1] if self.keep_ops == "auto" else
                                                      self.keep_ops, 1)
        n_ops = edge_weight_shape(self.space)[-1]
        keep = (n_ops,) + self.stage_keep
        if len(self.stage_keep) != n - 1 or any(b >= a for a, b in zip(keep, keep[1:])):
            raise JnasError(f"--set keep_ops: got {self.keep_ops!r} ({','.join(map(str, self.stage_keep))}), "
                            f"expected {n - 1} decreasing op counts below {n_ops} (one per stage but the last)")
        text = auto[2] if self.skip_dropout == "auto" else self.skip_dropout
        try:
            rates = tuple(float(t) for t in text.split(","))
        except ValueError:
            rates = ()
        if len(rates) != n or not all(0.0 <= r < 1.0 for r in rates):
            raise JnasError(f"--set skip_dropout: got {self.skip_dropout!r}, expected {n} comma-separated rates "
                            f"in [0, 1), one per stage")
        self.stage_rates = rates

    def stage_plan(self):
        key = "layers" if self.space == "darts" else "cells_per_stage"
        return [{key: d} for d in self.stage_depths]

    def next_stage(self, arch):
        if self.stage + 1 >= len(self.stage_depths):
            return super().next_stage(arch)
        out = copy.copy(self)
        out.stage = self.stage + 1
        out.op_mask = self.prune(arch, self.stage_keep[self.stage])
        return out

    def prune(self, arch, keep: int) -> np.ndarray:
        """The op mask keeping the ``keep`` strongest ops of each edge (of those this stage holds); on DARTS a
        mask that would keep only ``none`` keeps the strongest other op instead."""
        s = np.asarray(self.strengths(jnp.asarray(arch)), np.float64)
        if self.op_mask is not None:
            s = np.where(self.op_mask, s, -np.inf)
        order = np.argsort(-s, axis=-1, kind="stable")[..., :keep]
        mask = np.zeros(s.shape, bool)
        np.put_along_axis(mask, order, True, axis=-1)
        if self.space == "darts":  # the DARTS cell never derives `none`: an edge must keep a real op
            best_real = np.argmax(s[..., 1:], axis=-1) + 1
            for idx in zip(*np.nonzero(~mask[..., 1:].any(-1))):
                mask[idx] = False
                mask[idx + (best_real[idx],)] = True
        return mask

    def _masked(self, arch):
        if self.op_mask is None:
            return arch
        return jnp.where(jnp.asarray(self.op_mask), arch, -jnp.inf)

    def edge_weights(self, arch, key, progress):
        return self.strengths(arch)

    def strengths(self, arch):
        return jax.nn.softmax(self._masked(arch), axis=-1)

    def skip_drop_rate(self, progress):
        rate = self.stage_rates[self.stage]
        return None if rate == 0 else rate * (1.0 - progress)

    def derive_arch(self, strength):
        return limit_skips(self.space, strength, self.max_skips)


def exponentiated_gradient(lr: float) -> optax.GradientTransformation:
    """Mirror descent on the simplex (last axis): ``p ← p · exp(-lr · g) / Σ``; updates are ``new - p``."""

    def init(params):
        return optax.EmptyState()

    def update(grads, state, params):
        def one(g, p):
            # log-domain for stability: a large step must not overflow exp
            logits = jnp.log(jnp.clip(p, 1e-30)) - lr * g
            return jax.nn.softmax(logits, axis=-1) - p

        return jax.tree.map(one, grads, params), state

    return optax.GradientTransformation(init, update)


class AnasodDNAS(Method):
    """ANASOD-DNAS: one operation distribution per cell type shared by its edges; mirror descent; sampled cells."""

    name = "anasod-dnas"
    derive = "sample"
    options = (
        MethodOption("arch_lr", float, 0.1, "a positive number", _positive),
        MethodOption("derive_samples", int, 10, "an integer >= 1", lambda v: v >= 1),
    )

    def validate(self):
        shape = edge_weight_shape(self.space)
        # NB201: one cell, all 5 ops; DARTS: normal and reduce cells, the 7 ops other than `none`
        self.dist_shape = (1, shape[-1]) if self.space == "nb201" else (shape[0], shape[-1] - 1)

    def init_arch(self, key):
        return jnp.full(self.dist_shape, 1.0 / self.dist_shape[-1], jnp.float32)

    def edge_weights(self, arch, key, progress):
        return self.strengths(arch)

    def strengths(self, arch):
        shape = edge_weight_shape(self.space)
        if self.space == "nb201":
            return jnp.broadcast_to(arch[0], shape)
        full = jnp.concatenate([jnp.zeros((shape[0], 1), arch.dtype), arch], axis=-1)  # `none` gets 0
        return jnp.broadcast_to(full[:, None, :], shape)

    def arch_optimizer(self):
        return exponentiated_gradient(self.arch_lr)

    def derive_candidates(self, arch, key, space_obj):
        """``derive_samples`` cells whose op counts are the Bomze rounding of ``N · p̃``, on random edges."""
        from jnas.encodings import opdist

        counts = opdist.round_to_grid(jnp.asarray(arch), opdist.n_slots(space_obj))
        return [np.asarray(opdist.decode(k, counts, space_obj)) for k in jax.random.split(key, self.derive_samples)]


class PolicyState(NamedTuple):
    """Architecture-optimiser state of a policy-gradient method: Adam's state and the reward baseline."""

    adam: Any
    num: jax.Array  # float[]: the baseline's moving average of rewards, before bias correction
    den: jax.Array  # float[]: its weight (1 − β^n after n updates); 0 before the first


#: controller draws that estimate ENAS's per-edge op probabilities (``strengths``), with a fixed key
STRENGTH_DRAWS = 256


class Enas(Method):
    """ENAS: an LSTM (or softmax) controller samples children of the supernet; REINFORCE on their shared-weight
    validation accuracy; the weights are trained on one sampled child per step."""

    name = "enas"
    derive = "sample"
    policy_gradient = True
    trains_sampled_child = True
    derive_by = "accuracy"
    options = (
        MethodOption("controller", str, "lstm", "one of lstm, softmax", lambda v: v in ("lstm", "softmax")),
        MethodOption("hidden", int, 64, "an integer >= 1", lambda v: v >= 1),
        MethodOption("arch_lr", float, 0.0035, "a positive number", _positive),
        MethodOption("baseline_decay", float, 0.99, "a number in [0, 1)", lambda v: 0.0 <= v < 1.0),
        MethodOption("entropy", float, 1e-4, "a number >= 0", lambda v: v >= 0 and math.isfinite(v)),
        MethodOption("samples", int, 1, "an integer >= 1", lambda v: v >= 1),
        MethodOption("derive_samples", int, 10, "an integer >= 1", lambda v: v >= 1),
        MethodOption("derive_examples", int, 1024, "an integer >= 1", lambda v: v >= 1),
    )

    def validate(self):
        from jnas.spaces import get_space

        if self.controller != "lstm" and self.hidden != 64:
            raise JnasError(f"--set hidden: applies only with controller=lstm (got controller={self.controller})")
        self.space_obj = get_space(self.space)
        self.cards = tuple(int(c) for c in np.asarray(self.space_obj.decisions.cardinality))
        self._parts = self._jit = None

    def __getstate__(self):  # the traced helpers are rebuilt on first use (a closure does not pickle)
        state = dict(self.__dict__)
        state["_parts"] = state["_jit"] = None
        return state

    def _controller(self):
        """``(graphdef, abstract state, unravel)`` of the controller, built once."""
        if self._parts is None:
            from jax.flatten_util import ravel_pytree

            from jnas.models.controller import Controller, init_controller_params

            abstract = nnx.eval_shape(lambda: Controller(self.cards, self.controller, self.hidden, rngs=nnx.Rngs(0)))
            graphdef, shapes = nnx.split(abstract)
            _, unravel = ravel_pytree(init_controller_params(shapes, self.controller, jax.random.key(0)))
            self._parts = (graphdef, shapes, unravel)
        return self._parts

    def init_arch(self, key):
        from jax.flatten_util import ravel_pytree

        from jnas.models.controller import init_controller_params

        _, shapes, _ = self._controller()
        flat, _ = ravel_pytree(init_controller_params(shapes, self.controller, key))
        return flat.astype(jnp.float32)

    def sample_tokens(self, arch, key) -> jax.Array:
        """One draw of the controller with parameters ``arch`` (flat): the decision tokens ``int32[D]``."""
        from jnas.models.controller import rollout

        graphdef, _, unravel = self._controller()
        return rollout(nnx.merge(graphdef, unravel(arch)), key)[0]

    def arch_of_tokens(self, tokens):
        """The space's (canonical) architecture of decision tokens; every token vector of NB201 and DARTS is one."""
        sp = self.space_obj
        return sp.canonicalize(sp.from_decisions(tokens))

    def child_weights(self, tokens) -> jax.Array:
        """One-hot edge weights of the child the tokens describe."""
        from jnas.models.supernet import arch_weights

        return arch_weights(self.space, self.arch_of_tokens(tokens))

    def edge_weights(self, arch, key, progress):
        return self.child_weights(self.sample_tokens(jax.lax.stop_gradient(arch), key))

    def strengths(self, arch):
        """The probability that a sampled child has op ``k`` on edge ``e`` (Monte Carlo over ``STRENGTH_DRAWS``
        draws with a fixed key, so the same parameters give the same strengths)."""
        keys = jax.random.split(jax.random.key(0), STRENGTH_DRAWS)
        return jax.vmap(lambda k: self.child_weights(self.sample_tokens(arch, k)))(keys).mean(axis=0)

    def _jitted(self):
        """``(strengths, draw n children)`` compiled once per method object (called between epochs)."""
        if self._jit is None:
            def children(arch, key, n):
                tokens = jax.vmap(lambda k: self.sample_tokens(arch, k))(jax.random.split(key, n))
                return jax.vmap(self.arch_of_tokens)(tokens)

            self._jit = (jax.jit(self.strengths), jax.jit(children, static_argnums=2))
        return self._jit

    def record_arch(self, arch):
        return np.asarray(self._jitted()[0](jnp.asarray(arch, jnp.float32)))

    def recorded_strengths(self, recorded):
        return np.asarray(recorded, np.float32)

    def derive_candidates(self, arch, key, space_obj):
        """``derive_samples`` children drawn from the controller."""
        return list(np.asarray(self._jitted()[1](jnp.asarray(arch, jnp.float32), key, self.derive_samples)))

    def arch_optimizer(self):
        adam = optax.adam(self.arch_lr)

        def init(params):
            # the loop hands over the supernet's ``ArchParam`` state; the policy steps on its one array
            (flat,) = jax.tree.leaves(params)
            return PolicyState(adam.init(flat), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))

        def update(grads, state, params=None):
            upd, inner = adam.update(grads, state.adam, params)
            return upd, state._replace(adam=inner)

        return optax.GradientTransformation(init, update)

    def policy_update(self, arch, state: PolicyState, tokens, rewards):
        """``(arch, state)`` after one REINFORCE step on children ``tokens`` (``int[S, D]``) with ``rewards``
        (``float[S]``, shared-weight validation accuracy in ``[0, 1]``).

        Loss ``−mean_s[(R_s − b) · log p(a_s)] − entropy · mean_s[H_s]`` (``jnas.models.controller.surrogate_loss``),
        one Adam step; ``b`` is the bias-corrected moving average of earlier steps' mean rewards (decay
        ``baseline_decay``; the step's own mean at the first step), updated after the step.
        """
        from jnas.models.controller import surrogate_loss

        graphdef, _, unravel = self._controller()
        mean = jnp.mean(rewards)
        baseline = jnp.where(state.den > 0, state.num / jnp.where(state.den > 0, state.den, 1.0), mean)
        adv = rewards - baseline
        grad = jax.grad(lambda a: surrogate_loss(graphdef, unravel(a), tokens, adv, self.entropy))(arch)
        upd, state = self.arch_optimizer().update(grad, state, arch)
        beta = self.baseline_decay
        return (optax.apply_updates(arch, upd),
                state._replace(num=beta * state.num + (1 - beta) * mean, den=beta * state.den + (1 - beta)))


#: method name -> class
METHODS: dict[str, type[Method]] = {m.name: m for m in (Darts, Darts2, GDAS, SNAS, PCDarts, PDarts, AnasodDNAS,
                                                       Enas)}


def make_method(name: str, space: str, **opts) -> Method:
    """The method ``name`` on ``space`` with ``opts``; a one-line ``JnasError`` for unknown names."""
    if name not in METHODS:
        import difflib

        close = difflib.get_close_matches(str(name), METHODS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise JnasError(f"--method: got {name!r}, expected one of {', '.join(METHODS)}{hint}")
    return METHODS[name](space, **opts)


__all__ = ["METHODS", "SNAS", "AnasodDNAS", "Darts", "Darts2", "Enas", "GDAS", "Method", "MethodOption", "PCDarts",
           "PDarts", "PolicyState",
           "EARLY_STOPS", "early_stop_reason", "exponentiated_gradient", "make_method", "op_parameters"]
