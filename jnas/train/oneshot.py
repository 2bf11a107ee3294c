"""The bilevel one-shot loop shared by every method of ``jnas.train.oneshot_methods``.

A supernet (``jnas.models.supernet``) is split into three states: the weights
(``nnx.Param``), the architecture parameters (``ArchParam``) and the rest
(BatchNorm statistics). Each step takes one batch of the *weight* half and
one of the *architecture* half of the training data (DARTS: the training
split is cut in two), both augmented, and

1. updates the architecture on the architecture batch's loss
   ``L_val(w, α)`` (first order: ``∇_α L_val(w, α)``; second order: DARTS's
   unrolled gradient ``∇_α L_val(w', α) − ξ · (∇_α L_train(w⁺, α) −
   ∇_α L_train(w⁻, α)) / 2ε`` with ``w' = w − ξ (∇_w L_train(w, α) + λ w)``,
   ``w^± = w ± ε ∇_{w'} L_val(w', α)``, ``ε = 0.01 / ‖∇_{w'} L_val‖``, ``ξ``
   the weights' current learning rate, ``λ`` their weight decay; the
   virtual step leaves out momentum);
2. updates the weights on the weight batch's loss with the new ``α``
   (``TrainConfig``'s SGD: clip, weight decay, momentum, cosine schedule).

BatchNorm statistics are updated by the weight step only. The steps are
jitted once per run; with a ``mesh`` the batches are sharded over its
``data`` axis and everything else is replicated, so a step on several
devices computes the same as on one (up to summation order).
``config.bf16`` computes the convolutions in bfloat16 (weights, gradients,
optimizer states and losses stay float32), as ``jnas.train.loop`` does.

``search_supernet`` runs the epochs; with ``checkpoint_dir`` it writes an
orbax checkpoint after every epoch and resumes a rerun of the same search
(same identity, config, key and data sizes; anything else is refused with
``CheckpointMismatch``) after its last epoch, ending where an uninterrupted
run ends.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jnas.errors import JnasError, bad_argument, check_int
from jnas.models.supernet import ArchParam, arch_weights
from jnas.train import checkpoint as ckpt
from jnas.train.augment import augment_batch, eval_batch
from jnas.train.data import epoch_batches
from jnas.train.loop import _cast_floats, _check_data, _check_resumable, _json, _key_data, _match_dtypes, pixel_stats
from jnas.train.oneshot_methods import Method, early_stop_reason
from jnas.train.optim import TrainConfig, cross_entropy, make_optimizer, make_schedule
from jnas.train.sharding import batch_sharding, check_divisible, make_mesh, replicate, replicated

#: DARTS's search recipe for the weights (the architecture optimiser belongs to the method)
SEARCH_CONFIG = dict(epochs=50, batch_size=64, lr=0.025, lr_end=0.001, momentum=0.9, nesterov=False,
                     weight_decay=3e-4, grad_clip=5.0, crop_pad=4, flip=True, cutout_size=0, eval_batch_size=256)
#: DARTS's finite-difference radius numerator (ε = R / ‖v‖)
FD_RADIUS = 0.01


#: ``TrainConfig`` fields the one-shot loop does not read (no label smoothing, auxiliary head or test
#: evaluation): a value other than the default is refused, not ignored
UNUSED_FIELDS = ("label_smoothing", "aux_weight", "eval_every")


def check_search_config(config: TrainConfig, prefix: str = "config.") -> None:
    """One-line ``JnasError`` if ``config`` sets a field the one-shot loop would ignore (``UNUSED_FIELDS``)."""
    default = TrainConfig(epochs=config.epochs)
    for name in UNUSED_FIELDS:
        if getattr(config, name) != getattr(default, name):
            raise bad_argument(f"{prefix}{name}", getattr(config, name),
                               f"{getattr(default, name)!r} (a one-shot search does not use it)")


def search_config(epochs: int, seed: int = 0, overrides: dict | None = None, method: Method | None = None
                  ) -> TrainConfig:
    """The weights' ``TrainConfig`` of a one-shot search: ``SEARCH_CONFIG``, then the ``method``'s own
    ``config_defaults`` (PC-DARTS's and P-DARTS's batch size and learning rates), then ``overrides``."""
    base = {**SEARCH_CONFIG, **(method.config_defaults if method is not None else {}), "epochs": epochs, "seed": seed}
    config = TrainConfig(**base).replace(**(overrides or {}))
    check_search_config(config, "--config ")
    return config


class SupernetState(NamedTuple):
    """The arrays of a supernet: weights, architecture parameters, everything else."""

    params: Any
    arch: Any
    rest: Any


def split_supernet(model: nnx.Module):
    """``(graphdef, SupernetState)`` of a supernet."""
    graphdef, arch, params, rest = nnx.split(model, ArchParam, nnx.Param, ...)
    return graphdef, SupernetState(params, arch, rest)


def _graphdef(model, *, train: bool, bf16: bool):
    clone = nnx.clone(model)
    clone.train() if train else clone.eval()
    if bf16:
        clone.set_attributes(dtype=jnp.bfloat16, raise_if_not_found=False)
    graphdef, *_ = nnx.split(clone, ArchParam, nnx.Param, ...)
    return graphdef


def arch_value(arch_state) -> jax.Array:
    """The architecture-parameter array of an ``ArchParam`` state."""
    (leaf,) = jax.tree.leaves(arch_state)
    return leaf


def make_loss(graphdef, method: Method, cdtype=jnp.float32) -> Callable:
    """``loss(params, arch, rest, x, y, key, progress, weights=None) -> (loss, (logits, rest))``.

    ``x``: normalised float images; ``weights``: edge weights to use instead of
    the method's relaxation (a concrete architecture's one-hot weights; no skip dropout then).
    """

    def loss(params, arch, rest, x, y, key, progress, weights=None):
        p = _cast_floats(params, cdtype) if cdtype != jnp.float32 else params
        model = nnx.merge(graphdef, arch, p, rest, copy=True)
        drop = None
        if weights is None:
            rate = method.skip_drop_rate(progress)
            if rate is not None:  # only then is the key split: the other methods' samples stay as they were
                key, k_drop = jax.random.split(key)
                drop = (jnp.asarray(rate, jnp.float32), k_drop)
            w = method.edge_weights(arch_value(arch), key, progress)
        else:
            w = weights
        logits = model(x.astype(cdtype), w, drop).astype(jnp.float32)
        value = cross_entropy(logits, y).mean()
        *_, new_rest = nnx.split(model, ArchParam, nnx.Param, ...)
        return value, (logits, _match_dtypes(new_rest, rest))

    return loss


def arch_gradient(loss: Callable, method: Method, params, arch, rest, xt, yt, xv, yv, key, progress, xi, wd):
    """``(L_val, ∇_α)`` of the architecture step (first or second order, see the module docstring).

    ``xt, yt``: a weight-half batch (second order only); ``xv, yv``: an
    architecture-half batch; ``xi``: virtual step size; ``wd``: weight decay.
    """
    (value, _), grad = _arch_step_grad(loss, method, params, arch, rest, xt, yt, xv, yv, key, progress, xi, wd)
    return value, grad


def _arch_step_grad(loss: Callable, method: Method, params, arch, rest, xt, yt, xv, yv, key, progress, xi, wd):
    """``((L_val, val logits), ∇_α)``: ``arch_gradient`` with the logits the loss was computed from (second
    order: at the unrolled weights ``w'``), so the step reports accuracy without another forward pass.
    """
    def lval(p, a):
        # the method's penalty (SNAS's resource cost) shapes the step; the reported L_val stays the loss
        value, (logits, _) = loss(p, a, rest, xv, yv, key, progress)
        return value + method.arch_penalty(arch_value(a)), (value, logits)

    def ltrain(p, a):
        return loss(p, a, rest, xt, yt, key, progress)[0]

    if not method.second_order:
        (_, value), grad = jax.value_and_grad(lval, argnums=1, has_aux=True)(params, arch)
        return value, grad
    g_w = jax.grad(ltrain)(params, arch)
    unrolled = jax.tree.map(lambda w, g: w - xi * (g + wd * w), params, g_w)
    (_, value), (d_w, d_a) = jax.value_and_grad(lval, argnums=(0, 1), has_aux=True)(unrolled, arch)
    eps = FD_RADIUS / jnp.maximum(optax.global_norm(d_w), 1e-12)
    plus = jax.tree.map(lambda w, d: w + eps * d, params, d_w)
    minus = jax.tree.map(lambda w, d: w - eps * d, params, d_w)
    g_plus = jax.grad(ltrain, argnums=1)(plus, arch)
    g_minus = jax.grad(ltrain, argnums=1)(minus, arch)
    grad = jax.tree.map(lambda da, gp, gm: da - xi * (gp - gm) / (2 * eps), d_a, g_plus, g_minus)
    return value, grad


def _policy_step(loss: Callable, method: Method, state: SupernetState, a_state, xv, yv, key, progress):
    """``(L_val, val logits, arch, a_state)`` of a policy-gradient architecture step (ENAS): ``method.samples``
    children drawn from the policy are scored with the shared weights on the architecture batch, their
    accuracies (fractions in ``[0, 1]``) are the rewards of ``method.policy_update``. The reported loss and
    logits are the first child's."""
    flat = arch_value(state.arch)
    tokens = jax.vmap(lambda k: method.sample_tokens(flat, k))(jax.random.split(key, method.samples))

    def child(t):
        w = arch_weights(method.space, method.arch_of_tokens(t))
        value, (logits, _) = loss(state.params, state.arch, state.rest, xv, yv, key, progress, w)
        return value, logits

    values, logits = jax.lax.map(child, tokens)
    rewards = jnp.mean(jnp.argmax(logits, -1) == yv[None, :], axis=-1, dtype=jnp.float32)
    new_flat, a_state = method.policy_update(flat, a_state, tokens, rewards)
    return values[0], logits[0], jax.tree.map(lambda _: new_flat, state.arch), a_state


def touched_update(opt: optax.GradientTransformation, grads, opt_state, params):
    """``opt.update`` that leaves every weight tensor whose gradient is all zero, and its optimizer state
    (momentum), as it is, as PyTorch's optimizers skip a parameter without a gradient: a weight step on one
    child of a supernet (one-hot edge weights) then moves that child's weights alone, weight decay and momentum
    included. Non-parameter state (step counts) advances as usual."""
    touched = jax.tree.map(lambda g: jnp.any(g != 0), grads)
    upd, new_state = opt.update(grads, opt_state, params)
    upd = jax.tree.map(lambda t, u: jnp.where(t, u, jnp.zeros_like(u)), touched, upd)
    keep = optax.tree_utils.tree_map_params(opt, lambda _, t: t, new_state, touched,
                                            transform_non_params=lambda _: jnp.bool_(True))
    new_state = jax.tree.map(lambda k, new, old: jnp.where(k, new, old), keep, new_state, opt_state)
    return upd, new_state


def make_search_step(graphdef, method: Method, w_opt: optax.GradientTransformation,
                     a_opt: optax.GradientTransformation, config: TrainConfig, schedule, *, mean, std, mesh=None,
                     update_arch: bool = True):
    """Jitted ``(state, w_opt_state, a_opt_state, xt, yt, xv, yv, key, step, progress) -> (state, w_opt_state,
    a_opt_state, metrics)``: one architecture step then one weight step (``update_arch=False``: a warm-up
    step, the weight step alone, the architecture batch's loss only measured).

    Images ``uint8 [B, H, W, C]``, labels ``int32 [B]``; ``step``: the global
    step number (learning rate ``schedule(step)``, the virtual step size of a
    second-order method); ``progress``: ``epoch / (epochs - 1)`` (annealing; 1 in the last epoch).
    ``metrics``: ``train_loss``, ``train_correct``, ``val_loss``, ``val_correct``.
    """
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    loss = make_loss(graphdef, method, jnp.bfloat16 if config.bf16 else jnp.float32)
    wd = float(config.weight_decay)

    def aug(k, x):
        return augment_batch(k, x, mean=mean, std=std, crop_pad=config.crop_pad, flip=config.flip,
                             cutout_size=config.cutout_size)

    def step(state: SupernetState, w_state, a_state, xt, yt, xv, yv, key, n, progress):
        k_t, k_v, k_arch, k_w = jax.random.split(key, 4)
        xt, xv = aug(k_t, xt), aug(k_v, xv)
        xi = schedule(n)
        if update_arch and method.policy_gradient:
            v_loss, v_logits, arch, a_state = _policy_step(loss, method, state, a_state, xv, yv, k_arch, progress)
        elif update_arch:
            (v_loss, v_logits), g_a = _arch_step_grad(loss, method, state.params, state.arch, state.rest, xt, yt,
                                                    xv, yv, k_arch, progress, xi, wd)
            upd, a_state = a_opt.update(g_a, a_state, state.arch)
            arch = optax.apply_updates(state.arch, upd)
        else:
            v_loss, (v_logits, _) = loss(state.params, state.arch, state.rest, xv, yv, k_arch, progress)
            arch = state.arch
        (t_loss, (logits, rest)), g_w = jax.value_and_grad(loss, has_aux=True)(
            state.params, arch, state.rest, xt, yt, k_w, progress)
        if method.trains_sampled_child:
            upd, w_state = touched_update(w_opt, g_w, w_state, state.params)
        else:
            upd, w_state = w_opt.update(g_w, w_state, state.params)
        params = optax.apply_updates(state.params, upd)
        metrics = {
            "train_loss": t_loss,
            "train_correct": (jnp.argmax(logits, -1) == yt).sum(dtype=jnp.int32),
            "val_loss": v_loss,
            "val_correct": (jnp.argmax(v_logits, -1) == yv).sum(dtype=jnp.int32),
        }
        return SupernetState(params, arch, rest), w_state, a_state, metrics

    mesh = make_mesh() if mesh is None else mesh
    rep, bat = replicated(mesh), batch_sharding(mesh)
    return jax.jit(step, in_shardings=(rep, rep, rep, bat, bat, bat, bat, rep, rep, rep),
                   out_shardings=(rep, rep, rep, rep))


def make_arch_eval(graphdef, method: Method, config: TrainConfig, *, mean, std, mesh=None):
    """Jitted ``(state, weights, x, y, mask) -> (loss_sum, correct_sum)`` of the supernet with given edge
    weights (inherited weights; BatchNorm on batch statistics, nothing updated) on one batch."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    loss = make_loss(graphdef, method, jnp.bfloat16 if config.bf16 else jnp.float32)

    def run(state: SupernetState, weights, x, y, mask):
        xn = eval_batch(x, mean=mean, std=std)
        _, (logits, _) = loss(state.params, state.arch, state.rest, xn, y, jax.random.key(0), 0.0, weights)
        ce = cross_entropy(logits, y)
        m = mask.astype(jnp.float32)
        return (ce * m).sum(), ((jnp.argmax(logits, -1) == y) * m).sum()

    mesh = make_mesh() if mesh is None else mesh
    rep, bat = replicated(mesh), batch_sharding(mesh)
    return jax.jit(run, in_shardings=(rep, rep, bat, bat, bat), out_shardings=(rep, rep))


def evaluate_weights(arch_eval, state, weights, data, batch_size: int, mesh) -> tuple[float, float]:
    """``(mean loss, accuracy %)`` of the supernet with edge ``weights`` on ``data`` (padded last batch)."""
    x, y = data
    n = len(y)
    bs = min(batch_size, n)
    bs = -(-bs // mesh.devices.size) * mesh.devices.size
    sharding = batch_sharding(mesh)
    idx = epoch_batches(jax.random.key(0), n, bs, shuffle=False, drop_last=False)
    total = correct = 0.0
    for rows, mask in zip(idx.idx, idx.mask):
        ls, c = arch_eval(state, weights, *(jax.device_put(a, sharding) for a in (x[rows], y[rows], mask)))
        total, correct = total + float(ls), correct + float(c)
    return total / n, 100.0 * correct / n


@dataclasses.dataclass
class SupernetResult:
    """Outcome of ``search_supernet``: the derived architecture and the per-epoch history."""

    derived: np.ndarray  # the final derived architecture (the space's array)
    arch: np.ndarray  # final architecture parameters
    history: list[dict]  # per epoch: losses, accuracies, derived arch (list), strengths, seconds
    wall_seconds: float
    resumed_from: int
    state: SupernetState = dataclasses.field(repr=False, default=None)
    graphdef: Any = dataclasses.field(repr=False, default=None)


def split_half(data, key) -> tuple[tuple, tuple]:
    """Cut ``(x, y)`` into the weight half and the architecture half (a keyed permutation; sizes ⌊n/2⌋, n-⌊n/2⌋)."""
    x, y = data
    order = np.asarray(jax.random.permutation(key, len(y)))
    h = len(y) // 2
    return (x[order[:h]], y[order[:h]]), (x[order[h:]], y[order[h:]])


def search_halves(train_data, key) -> tuple[tuple, tuple, jax.Array]:
    """``(weight half, architecture half, key of the epochs)`` that ``search_supernet`` derives from ``key``."""
    k_split, k_run = jax.random.split(key)
    x, y = np.asarray(train_data[0]), np.asarray(train_data[1]).astype(np.int32)
    w_half, a_half = split_half((x, y), k_split)
    return w_half, a_half, k_run


def restore_supernet(checkpoint_dir, model: nnx.Module, method: Method, config: TrainConfig) -> SupernetState:
    """The ``SupernetState`` of the newest checkpoint a ``search_supernet`` of ``model`` wrote in ``checkpoint_dir``."""
    _, state = split_supernet(model)
    opt_states = (make_optimizer(config, 1).init(state.params), method.arch_optimizer().init(state.arch))
    return ckpt.restore(checkpoint_dir, state=state, opt_state=opt_states, key=jax.random.key(0)).state


def search_supernet(
    model: nnx.Module,
    method: Method,
    train_data,
    config: TrainConfig,
    *,
    key: jax.Array,
    space_obj=None,
    mesh=None,
    checkpoint_dir=None,
    identity: dict | None = None,
    mean=None,
    std=None,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int, dict], None] | None = None,
) -> SupernetResult:
    """Run a one-shot search of ``method`` on ``model`` for ``config.epochs`` epochs.

    ``train_data``: ``(uint8 [N, H, W, C], int [N])``, cut in two halves
    (weights / architecture) with a key derived from ``key``; every epoch
    visits both halves in fresh orders, ``config.batch_size`` each (the
    shorter half decides the steps). After each epoch the current
    architecture is derived (``method.derive``; ANASOD-DNAS samples ``space_obj``
    architectures and keeps the lowest supernet loss on the architecture
    half) and recorded with the epoch's losses. ``on_step(i, n, metrics)``
    after each step; ``on_epoch(record)`` after each epoch.
    """
    if not isinstance(config, TrainConfig):
        raise bad_argument("config", type(config).__name__, "a TrainConfig")
    check_int("epochs", config.epochs, 1)
    check_search_config(config)
    if method.warmup_epochs >= config.epochs:
        raise JnasError(f"--set warmup_epochs: got {method.warmup_epochs}, expected fewer than the "
                        f"{config.epochs} epochs of the search (the architecture would never be trained)")
    if method.derive == "sample" and space_obj is None:  # before an epoch is spent, not in its derivation
        raise bad_argument("space_obj", None, f"the {method.space} Space object (method {method.name} samples cells)")
    if identity is not None:
        identity = _json(dict(identity))
    t_start = time.perf_counter()
    x, y = _check_data(train_data, "train_data")
    w_half, a_half, k_run = search_halves((x, y), key)
    mesh = make_mesh() if mesh is None else mesh
    check_divisible(mesh, config.batch_size, "batch_size")
    spe = min(len(w_half[1]), len(a_half[1])) // config.batch_size
    if spe == 0:
        raise bad_argument("batch_size", config.batch_size, f"at most half the training set ({len(w_half[1])})")
    if mean is None or std is None:
        mean, std = pixel_stats(x)
    schedule = make_schedule(config, spe)
    w_opt = make_optimizer(config, spe)
    a_opt = method.arch_optimizer()
    gd_train = _graphdef(model, train=True, bf16=config.bf16)
    _, state = split_supernet(model)
    state = replicate(mesh, jax.tree.map(jnp.copy, state))
    w_state = replicate(mesh, w_opt.init(state.params))
    a_state = replicate(mesh, a_opt.init(state.arch))
    steps = {flag: make_search_step(gd_train, method, w_opt, a_opt, config, schedule, mean=mean, std=std, mesh=mesh,
                                    update_arch=flag) for flag in (True, False)}  # each compiled on first use
    arch_eval = make_arch_eval(gd_train, method, config, mean=mean, std=std, mesh=mesh)

    meta = {"run": identity, "method": method.name, "options": method.settings(), "config": _json(config.to_dict()),
            "steps_per_epoch": spe, "key": _key_data(key), "n_train": int(len(y))}
    history: list[dict] = []
    start, wall_before = 0, 0.0
    opt_states = (w_state, a_state)
    if checkpoint_dir is not None and ckpt.latest_epoch(checkpoint_dir) is not None:
        _check_resumable(checkpoint_dir, ckpt.read_meta(checkpoint_dir), meta)
        found = ckpt.restore(checkpoint_dir, state=state, opt_state=opt_states, key=key)
        state, opt_states = found.state, found.opt_state
        start, history = found.epoch, found.history
        wall_before = float(found.meta.get("wall_seconds", 0.0))
    w_state, a_state = opt_states
    resumed_from = start
    sharding = batch_sharding(mesh)
    derived = None if not history else _array(history[-1]["derived"])
    for epoch in range(start, config.epochs):
        if history and history[-1].get("early_stop"):
            break  # a resumed run that DARTS+ had already stopped
        t0 = time.perf_counter()
        frozen = epoch < method.warmup_epochs
        step_fn = steps[not frozen]
        k_epoch = jax.random.fold_in(k_run, epoch)
        k_pw, k_pa, k_steps, k_derive = jax.random.split(k_epoch, 4)
        order_w = epoch_batches(k_pw, len(w_half[1]), config.batch_size).idx[:spe]
        order_a = epoch_batches(k_pa, len(a_half[1]), config.batch_size).idx[:spe]
        keys = jax.random.split(k_steps, spe)
        sums = {"train_loss": 0.0, "train_correct": 0, "val_loss": 0.0, "val_correct": 0}
        for i in range(spe):
            batch = [jax.device_put(a, sharding) for a in (w_half[0][order_w[i]], w_half[1][order_w[i]],
                                                           a_half[0][order_a[i]], a_half[1][order_a[i]])]
            progress = jnp.float32(epoch / max(1, config.epochs - 1))  # 0 in the first epoch, 1 in the last
            state, w_state, a_state, m = step_fn(state, w_state, a_state, *batch, keys[i],
                                                 jnp.int32(epoch * spe + i), progress)
            sums = {k: sums[k] + m[k] for k in sums}
            if on_step is not None:
                on_step(i + 1, spe, {k: float(v) for k, v in m.items()})
        train_loss = float(sums["train_loss"]) / spe
        if not math.isfinite(train_loss):
            raise JnasError(f"supernet training diverged: mean loss {train_loss} in epoch {epoch + 1}")
        arch = np.asarray(arch_value(state.arch))
        derived, derive_loss = derive(method, state, arch, arch_eval, a_half, config, mesh, k_derive, space_obj)
        n_seen = spe * config.batch_size
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": 100.0 * int(sums["train_correct"]) / n_seen,
            "val_loss": float(sums["val_loss"]) / spe,
            "val_acc": 100.0 * int(sums["val_correct"]) / n_seen,
            "lr": float(schedule((epoch + 1) * spe)),
            "derived": derived.tolist(),
            "derived_val_loss": derive_loss,
            "arch": method.record_arch(arch).tolist(),
            "seconds": time.perf_counter() - t0,
        }
        if frozen:
            record["arch_frozen"] = True
        history.append(record)
        reason = early_stop_reason(method, history)
        if reason is not None:
            record["early_stop"] = reason
        if checkpoint_dir is not None:
            ckpt.save(checkpoint_dir, epoch + 1, state=state, opt_state=(w_state, a_state), key=key,
                      history=history, meta={**meta, "wall_seconds": wall_before + time.perf_counter() - t_start})
        if on_epoch is not None:
            on_epoch(dict(record))
        if reason is not None:
            break
    return SupernetResult(
        derived=_array(history[-1]["derived"]),
        arch=np.asarray(history[-1]["arch"], np.float32),
        history=history,
        wall_seconds=wall_before + time.perf_counter() - t_start,
        resumed_from=resumed_from,
        state=state,
        graphdef=gd_train,
    )


def _array(derived) -> np.ndarray:
    return np.asarray(derived, np.int8)


def derive(method: Method, state, arch: np.ndarray, arch_eval, data, config: TrainConfig, mesh, key, space_obj):
    """``(architecture, its supernet loss on data or None)``: the method's derivation rule.

    ``"sample"``: each of ``method.derive_candidates`` is scored with the shared weights on ``data`` (its
    first ``method.derive_examples`` examples when set) and the one with the lowest loss, or the highest
    accuracy (``method.derive_by``; ties to the lower loss), is kept; a finite score beats a NaN one.
    """
    space = method.space
    if method.derive == "argmax":
        return method.derive_arch(np.asarray(method.strengths(jnp.asarray(arch)))), None
    if space_obj is None:
        raise bad_argument("space_obj", None, f"the {space} Space object (method {method.name} samples cells)")
    if method.derive_examples is not None:
        data = (data[0][: method.derive_examples], data[1][: method.derive_examples])
    best, best_key, best_loss = None, None, math.inf
    for cand in method.derive_candidates(arch, key, space_obj):
        cand = np.asarray(cand)
        loss, acc = evaluate_weights(arch_eval, state, arch_weights(space, cand), data, config.eval_batch_size, mesh)
        score = loss if method.derive_by == "loss" else -acc
        rank = (score, loss) if math.isfinite(score) and math.isfinite(loss) else (math.inf, math.inf)
        if best is None or rank < best_key:
            best, best_key, best_loss = cand, rank, loss
    return best.astype(np.int8), (best_loss if math.isfinite(best_loss) else None)


__all__ = ["SEARCH_CONFIG", "UNUSED_FIELDS", "SupernetResult", "SupernetState", "arch_gradient", "arch_value",
           "check_search_config", "derive",
           "evaluate_weights", "make_arch_eval", "make_loss", "make_search_step", "restore_supernet",
           "search_config", "search_halves", "search_supernet", "split_half", "split_supernet", "touched_update"]
