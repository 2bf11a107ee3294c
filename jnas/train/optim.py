"""Training hyperparameters, the learning-rate schedule, the optimizer and the loss.

``TrainConfig()`` is the NAS-Bench-201 recipe (Dong & Yang, ICLR 2020):
SGD with Nesterov momentum 0.9, learning rate 0.1 annealed to 0 by a cosine
schedule (updated every step), weight decay 5e-4 coupled to the gradient
(as PyTorch's ``SGD(weight_decay=...)``), batch size 256, 200 epochs, random
crop (pad 4) and horizontal flip, no label smoothing, no gradient clipping.
The DARTS recipe (Liu et al., ICLR 2019) is
``TrainConfig(epochs=600, batch_size=96, lr=0.025, nesterov=False,
weight_decay=3e-4, grad_clip=5.0, cutout_size=16)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jnas.errors import bad_argument, check_int, is_number


def _is_real(v) -> bool:
    return is_number(v) and math.isfinite(v)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (validated on construction).

    Attributes
    ----------
    epochs: passes over the training set; the cosine schedule spans all of them.
    batch_size: global training batch (split over devices; must divide by the device count).
    lr: peak learning rate. lr_end: value the cosine schedule reaches at the last step.
    warmup_epochs: linear warm-up from 0 to ``lr`` before the cosine decay.
    momentum, nesterov: SGD momentum (PyTorch convention: ``buf = m*buf + g``).
    weight_decay: L2 coefficient added to the gradient before momentum.
    decay_norm_and_bias: also decay 0/1-d parameters (BatchNorm scale/bias, biases), as PyTorch does.
    label_smoothing: mass spread uniformly over the classes, in [0, 1).
    aux_weight: weight of the auxiliary head's loss for networks that return ``(logits, aux_logits)``
        in training mode (DARTS with ``auxiliary=True``; DARTS uses 0.4). Ignored otherwise.
    grad_clip: clip the loss gradient to this global L2 norm (``None``: no clipping).
    crop_pad, flip, cutout_size: augmentation (pixels of zero padding before a random crop,
        random horizontal flip, side of the cutout square; 0 disables).
    bf16: compute forward/backward in bfloat16 (parameters, optimizer state and the loss stay float32).
    seed: seed used by callers that need one (``TrainingEvaluator``); ``train`` takes an explicit key.
    eval_batch_size: batch for test-set evaluation (must divide by the device count).
    eval_every: evaluate the test set every this many epochs (always after the last).
    """

    epochs: int = 200
    batch_size: int = 256
    lr: float = 0.1
    lr_end: float = 0.0
    warmup_epochs: int = 0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = True
    label_smoothing: float = 0.0
    aux_weight: float = 0.4
    grad_clip: float | None = None
    crop_pad: int = 4
    flip: bool = True
    cutout_size: int = 0
    bf16: bool = False
    seed: int = 0
    eval_batch_size: int = 512
    eval_every: int = 1

    def __post_init__(self):
        def check(name, ok, expected):
            if not ok:
                raise bad_argument(f"TrainConfig.{name}", getattr(self, name), expected)
            value = getattr(self, name)
            if is_number(value) and type(value) not in (int, float):  # a NumPy scalar: keep to_dict JSON-ready
                object.__setattr__(self, name, float(value))

        def integer(name, low, high=None, expected=None):
            value = check_int(f"TrainConfig.{name}", getattr(self, name), low, high, expected=expected)
            object.__setattr__(self, name, value)  # a NumPy integer as a Python one: keep to_dict JSON-ready

        integer("epochs", 1)
        integer("batch_size", 1)
        check("lr", _is_real(self.lr) and self.lr > 0, "a finite number > 0")
        check("lr_end", _is_real(self.lr_end) and self.lr_end >= 0, "a finite number >= 0")
        integer("warmup_epochs", 0, self.epochs, f"an integer in [0, epochs={self.epochs}]")
        check("momentum", _is_real(self.momentum) and 0 <= self.momentum < 1, "a number in [0, 1)")
        check("nesterov", isinstance(self.nesterov, bool), "True or False")
        if self.nesterov and self.momentum == 0:
            raise bad_argument("TrainConfig.nesterov", True, "False when momentum is 0 (Nesterov needs momentum)")
        check("weight_decay", _is_real(self.weight_decay) and self.weight_decay >= 0, "a finite number >= 0")
        check("decay_norm_and_bias", isinstance(self.decay_norm_and_bias, bool), "True or False")
        check(
            "label_smoothing",
            _is_real(self.label_smoothing) and 0 <= self.label_smoothing < 1,
            "a number in [0, 1)",
        )
        check("aux_weight", _is_real(self.aux_weight) and self.aux_weight >= 0, "a finite number >= 0")
        check("grad_clip", self.grad_clip is None or (_is_real(self.grad_clip) and self.grad_clip > 0), "None or > 0")
        integer("crop_pad", 0)
        check("flip", isinstance(self.flip, bool), "True or False")
        integer("cutout_size", 0)
        check("bf16", isinstance(self.bf16, bool), "True or False")
        integer("seed", 0)
        integer("eval_batch_size", 1)
        integer("eval_every", 1)

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied (and validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            name = sorted(unknown)[0]
            raise bad_argument(
                "TrainConfig field", name, f"one of {', '.join(f.name for f in dataclasses.fields(self))}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready field values."""
        return dataclasses.asdict(self)


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> Callable:
    """Learning rate as a jittable function of the step count (``int -> float32``).

    Linear warm-up over ``warmup_epochs`` from 0 to ``lr``, then a half-cosine from
    ``lr`` to ``lr_end`` that reaches ``lr_end`` exactly at step
    ``epochs * steps_per_epoch`` (and stays there).
    """
    steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, 1)
    warm = config.warmup_epochs * steps_per_epoch
    decay = max(config.epochs * steps_per_epoch - warm, 1)
    lr, lr_end = config.lr, config.lr_end

    def schedule(step):
        t = jnp.asarray(step, jnp.float32)
        frac = jnp.clip((t - warm) / decay, 0.0, 1.0)
        cosine = lr_end + 0.5 * (lr - lr_end) * (1.0 + jnp.cos(jnp.pi * frac))
        if warm == 0:
            return cosine
        return jnp.where(t < warm, lr * t / warm, cosine)

    return schedule


def _decay_mask(params):
    """True for parameters of rank >= 2 (weights of convolutions and dense layers)."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """SGD as in ``config``: clip (global norm) -> + weight decay * params -> momentum -> * -lr.

    Clipping acts on the loss gradient only, before weight decay is added, as
    ``clip_grad_norm_`` followed by ``SGD(weight_decay=...)`` does in PyTorch.
    """
    parts = []
    if config.grad_clip is not None:
        parts.append(optax.clip_by_global_norm(config.grad_clip))
    if config.weight_decay > 0:
        mask = None if config.decay_norm_and_bias else _decay_mask
        parts.append(optax.add_decayed_weights(config.weight_decay, mask=mask))
    momentum = config.momentum if config.momentum > 0 else None
    parts.append(optax.sgd(make_schedule(config, steps_per_epoch), momentum=momentum, nesterov=config.nesterov))
    return optax.chain(*parts)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example cross-entropy ``float32[B]`` of ``logits [B, K]`` against int ``labels [B]``.

    With smoothing ``s`` the target is ``(1 - s) * onehot + s / K``.
    """
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, labels[:, None].astype(jnp.int32), axis=-1)[:, 0]
    if label_smoothing == 0:
        return nll
    return (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(axis=-1)


__all__ = ["TrainConfig", "cross_entropy", "make_optimizer", "make_schedule"]
