"""Supervised training of an NNX image classifier: jitted, data-parallel steps and the epoch loop.

The steps are pure functions of arrays. A model is split once into a graph
definition and a ``ModelState`` (``params``: the ``nnx.Param`` variables;
``rest``: BatchNorm statistics, RNG streams and any other variables). Two
graph definitions are derived from it: a training one (BatchNorm uses and
updates batch statistics, dropout active) and an evaluation one (BatchNorm
uses its running averages). With ``bf16`` both set the layers' compute dtype
to bfloat16 and the parameters are cast to bfloat16 inside the step, so the
convolutions run in bfloat16 while the parameters, their gradients, the
optimizer state, BatchNorm statistics and the loss stay float32.

Images enter the steps as ``uint8 [B, H, W, C]``; augmentation
(``jnas.train.augment``) and normalisation happen inside the jitted step. The
batch is sharded over the ``data`` axis of a mesh, everything else is
replicated (``jnas.train.sharding``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jnas.errors import MachineFault, bad_argument
from jnas.train import checkpoint as ckpt
from jnas.train.augment import augment_batch, eval_batch
from jnas.train.data import epoch_batches
from jnas.train.optim import TrainConfig, cross_entropy, make_optimizer, make_schedule
from jnas.train.sharding import batch_sharding, check_divisible, make_mesh, n_data, replicate, replicated


class ModelState(NamedTuple):
    """The arrays of a model: trainable ``params`` and everything else (``rest``)."""

    params: Any  # nnx.State of nnx.Param
    rest: Any  # nnx.State of the other variables (BatchStat, RNG streams, ...)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass
class TrainResult:
    """Outcome of ``train``. Accuracies are in percent, losses are mean cross-entropy in nats.

    ``history`` holds one record per epoch: ``epoch`` (1-based), ``train_loss``
    and ``train_acc`` (over the epoch's augmented batches, in training mode),
    ``test_loss``/``test_acc`` and ``valid_loss``/``valid_acc`` (``None`` where
    not evaluated), ``lr`` (at the end of the epoch) and ``seconds`` (wall time
    of the epoch, evaluation included). ``valid_*`` are NaN without ``valid_data``.
    """

    history: list[dict]
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    valid_loss: float
    valid_acc: float
    epochs: int
    wall_seconds: float
    params: int
    steps_per_epoch: int
    resumed_from: int  # completed epochs found in the checkpoint (0: fresh run)

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return dataclasses.asdict(self)


# ----- model <-> arrays ---------------------------------------------------------------
def split_model(model: nnx.Module) -> tuple[Any, ModelState]:
    """``(graphdef, ModelState)`` of ``model`` (arrays shared with the model, not copied)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return graphdef, ModelState(params, rest)


def compute_graphdef(model: nnx.Module, *, train: bool, bf16: bool = False):
    """Graph definition of ``model`` in training or evaluation mode, optionally computing in bfloat16.

    ``model`` itself is left unchanged (the modes are set on a clone).
    """
    clone = nnx.clone(model)
    if train:
        clone.train()
    else:
        clone.eval()
    if bf16:
        clone.set_attributes(dtype=jnp.bfloat16, raise_if_not_found=False)
    graphdef, _, _ = nnx.split(clone, nnx.Param, ...)
    return graphdef


def count_params(params) -> int:
    """Number of scalars in a pytree of parameter arrays."""
    return int(sum(math.prod(np.shape(p)) for p in jax.tree.leaves(params)))


def _cast_floats(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _match_dtypes(new, old):
    """Cast floating leaves of ``new`` back to the dtypes of ``old`` (bf16 compute must not leak into state)."""
    return jax.tree.map(lambda n, o: n.astype(o.dtype) if jnp.issubdtype(o.dtype, jnp.floating) else n, new, old)


# ----- steps --------------------------------------------------------------------------
def make_train_step(
    graphdef,
    optimizer: optax.GradientTransformation,
    config: TrainConfig,
    *,
    mean,
    std,
    mesh=None,
    donate: bool = False,
) -> Callable:
    """Jitted ``(state, opt_state, x, y, key) -> (state, opt_state, metrics)``.

    ``graphdef``: training-mode graph (``compute_graphdef(model, train=True, bf16=config.bf16)``);
    ``state``: ``ModelState``; ``x``: ``uint8 [B, H, W, C]``; ``y``: ``int32 [B]``;
    ``key``: PRNG key for augmentation. ``mean``/``std``: per-channel statistics in
    pixel/255 units. ``metrics``: ``loss`` (mean cross-entropy with label smoothing,
    float32; plus ``config.aux_weight`` times the auxiliary head's, if the network has
    one), ``correct`` (int32 count of argmax hits) and ``grad_norm`` (global L2
    norm of the loss gradient before clipping). With a ``mesh`` the batch is sharded
    on its ``data`` axis and the rest replicated; ``donate`` lets the step reuse the
    input state's buffers (the inputs are then invalid after the call).
    """
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    cdtype = jnp.bfloat16 if config.bf16 else jnp.float32
    smoothing = config.label_smoothing

    def step(state: ModelState, opt_state, x, y, key):
        xa = augment_batch(
            key, x, mean=mean, std=std, crop_pad=config.crop_pad, flip=config.flip, cutout_size=config.cutout_size
        )

        def loss_fn(params, rest):
            model = nnx.merge(graphdef, _cast_floats(params, cdtype) if config.bf16 else params, rest, copy=True)
            out = model(xa.astype(cdtype))
            # networks with an auxiliary head (DARTS) return (logits, aux_logits) in training mode
            logits, aux = out if isinstance(out, tuple) else (out, None)
            logits = logits.astype(jnp.float32)
            loss = cross_entropy(logits, y, smoothing).mean()
            if aux is not None:
                loss = loss + config.aux_weight * cross_entropy(aux.astype(jnp.float32), y, smoothing).mean()
            _, _, rest = nnx.split(model, nnx.Param, ...)
            return loss, (logits, rest)

        (loss, (logits, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.rest)
        updates, opt_state = optimizer.update(grads, opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "correct": (jnp.argmax(logits, axis=-1) == y).sum(dtype=jnp.int32),
            "grad_norm": optax.global_norm(grads),
        }
        return ModelState(params, _match_dtypes(rest, state.rest)), opt_state, metrics

    mesh = make_mesh() if mesh is None else mesh
    rep, bat = replicated(mesh), batch_sharding(mesh)
    return jax.jit(
        step,
        in_shardings=(rep, rep, bat, bat, rep),
        out_shardings=(rep, rep, rep),
        donate_argnums=(0, 1) if donate else (),
    )


def make_eval_step(graphdef, config: TrainConfig, *, mean, std, mesh=None) -> Callable:
    """Jitted ``(state, x, y, weight) -> (loss_sum, correct_sum)`` on one evaluation batch.

    ``graphdef``: evaluation-mode graph (BatchNorm running averages);
    ``x``: ``uint8 [B, H, W, C]``, ``y``: ``int32 [B]``, ``weight``: ``float32 [B]``
    (0 for padding rows). Loss is plain cross-entropy (no smoothing), summed over
    the weighted rows; both outputs are float32 scalars.
    """
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    cdtype = jnp.bfloat16 if config.bf16 else jnp.float32

    def step(state: ModelState, x, y, w):
        params = _cast_floats(state.params, cdtype) if config.bf16 else state.params
        model = nnx.merge(graphdef, params, state.rest)
        logits = model(eval_batch(x, mean=mean, std=std).astype(cdtype)).astype(jnp.float32)
        hits = (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)
        return (cross_entropy(logits, y) * w).sum(), (hits * w).sum()

    mesh = make_mesh() if mesh is None else mesh
    rep, bat = replicated(mesh), batch_sharding(mesh)
    return jax.jit(step, in_shardings=(rep, bat, bat, bat), out_shardings=(rep, rep))


def evaluate(eval_step: Callable, state: ModelState, data, batch_size: int, mesh) -> tuple[float, float]:
    """``(mean loss, accuracy in percent)`` of ``state`` on ``data = (x uint8 [N,H,W,C], y int [N])``.

    The last batch is padded (with zero weight) so every call has the same shape.
    """
    x, y = data
    n = len(y)
    nd = n_data(mesh)
    bs = min(batch_size, -(-n // nd) * nd)
    sharding = batch_sharding(mesh)
    loss_sum = correct = 0.0
    for start in range(0, n, bs):
        xb, yb = x[start : start + bs], y[start : start + bs]
        w = np.ones(len(yb), np.float32)
        pad = bs - len(yb)
        if pad:
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
            yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
            w = np.concatenate([w, np.zeros(pad, np.float32)])
        ls, c = eval_step(state, *(jax.device_put(a, sharding) for a in (xb, yb, w)))
        loss_sum, correct = loss_sum + ls, correct + c
    return float(loss_sum) / n, 100.0 * float(correct) / n


# ----- the loop ---------------------------------------------------------------------
def _check_data(data, name: str):
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise bad_argument(name, type(data).__name__, "a pair (images uint8 [N, H, W, C], labels int [N])")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.dtype != np.uint8 or x.ndim != 4:
        raise bad_argument(f"{name} images", f"{x.dtype}{list(x.shape)}", "uint8 [N, H, W, C]")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise bad_argument(f"{name} labels", f"{y.dtype}{list(y.shape)}", f"integers [N={len(x)}]")
    if len(y) == 0:
        raise bad_argument(name, "an empty set", "at least one example")
    if y.min() < 0:
        raise bad_argument(f"{name} labels", int(y.min()), "labels >= 0")
    return x, y.astype(np.int32)


def pixel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(mean, std)`` of ``uint8 [N, H, W, C]`` images in pixel/255 units (float32 ``[C]``)."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64) / 255.0
    return flat.mean(0).astype(np.float32), np.maximum(flat.std(0), 1e-3).astype(np.float32)


def _key_data(key) -> list:
    k = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return np.asarray(k).ravel().tolist()


def _json(obj):
    return json.loads(json.dumps(obj))


@functools.lru_cache(maxsize=4)
def _steps(gd_train, gd_eval, config: TrainConfig, steps_per_epoch: int, mean: tuple, std: tuple, mesh):
    """Optimizer and jitted steps, shared by runs of the same network and config (saves recompiling)."""
    optimizer = make_optimizer(config, steps_per_epoch)
    train_step = make_train_step(gd_train, optimizer, config, mean=mean, std=std, mesh=mesh, donate=True)
    eval_step = make_eval_step(gd_eval, config, mean=mean, std=std, mesh=mesh)
    return optimizer, train_step, eval_step


class CheckpointMismatch(MachineFault):
    """``checkpoint_dir`` holds a checkpoint of a different run; ``differences`` names each field that differs."""

    def __init__(self, directory, differences: list[str]):
        self.directory, self.differences = directory, list(differences)
        super().__init__(
            f"checkpoint_dir: {directory} holds a checkpoint of a different run ({'; '.join(self.differences)}); "
            "use a fresh directory"
        )


def _compare(name: str, saved, now) -> list[str]:
    """One phrase per differing leaf of ``saved`` (checkpoint) and ``now``; dicts are compared key by key."""
    if isinstance(saved, dict) and isinstance(now, dict):
        return [d for k in {**saved, **now} for d in _compare(f"{name}.{k}" if name else k, saved.get(k), now.get(k))]
    return [] if saved == now else [f"{name}: {saved!r} (checkpoint) vs {now!r} (now)"]


# sizes of the evaluation sets in a checkpoint's meta record (0: the run did not evaluate that set)
_EVAL_SETS = ("n_test", "n_valid")


def _check_resumable(directory, saved: dict, now: dict) -> None:
    """Refuse to resume a checkpoint written by a different run (identity, config, key or data sizes).

    ``saved``/``now`` are checkpoint meta records; the fields of ``run`` (the
    caller's identity: space, architecture, ...) are named without a prefix.
    """
    if now.get("run") is not None and saved.get("run") is None:
        diffs = ["run identity: none in the checkpoint (written by an older jnas or without one), so it cannot be "
                 "told apart from another run"]
    else:
        diffs = _compare("", saved.get("run") or {}, now.get("run") or {})
    for k in now:
        if k == "run":
            continue
        if k in _EVAL_SETS and not saved.get(k):  # evaluation sets never change training: one may be added later
            continue
        diffs += _compare(k, saved.get(k), now[k])
    if diffs:
        raise CheckpointMismatch(directory, diffs)


def train(
    model: nnx.Module,
    train_data,
    test_data,
    config: TrainConfig,
    *,
    key: jax.Array,
    mesh=None,
    checkpoint_dir=None,
    on_epoch: Callable[[dict], None] | None = None,
    mean=None,
    std=None,
    valid_data=None,
    identity: dict | None = None,
) -> TrainResult:
    """Train ``model`` on ``train_data`` for ``config.epochs`` epochs and evaluate it on ``test_data``.

    Data are pairs ``(uint8 [N, H, W, C], int [N])`` of host arrays; ``test_data``
    may be ``None`` (no evaluation). Each epoch visits a fresh permutation in
    batches of ``config.batch_size`` (the incomplete last batch is dropped).
    ``key`` fixes every random choice (permutations, augmentation): on CPU the
    same key gives bit-identical results. ``mesh``: device mesh with a ``data``
    axis (default: all local devices). ``mean``/``std``: per-channel pixel/255
    statistics (default: computed from the training images). ``valid_data``: an
    optional held-out set evaluated alongside ``test_data`` (e.g. the search
    signal of a NAS run, which must not look at the test set).

    ``checkpoint_dir``: write an orbax checkpoint after every epoch and, if the
    directory already holds one from the same run, resume after its last
    completed epoch (the result equals that of an uninterrupted run).
    ``identity``: a JSON-serialisable dict saying what is trained (e.g. space,
    architecture, data, network options); it is saved with every checkpoint.
    A checkpoint whose identity, config, key or data sizes differ from this
    run's is refused with ``CheckpointMismatch`` (before any array is read).
    ``on_epoch(record)`` is called after each epoch with its history record.

    On return ``model`` holds the trained parameters and statistics. Raises
    ``TrainingDiverged`` when an epoch's mean loss is not finite.
    """
    if not isinstance(config, TrainConfig):
        raise bad_argument("config", type(config).__name__, "a TrainConfig")
    if not isinstance(model, nnx.Module):
        raise bad_argument("model", type(model).__name__, "a flax nnx.Module")
    if not (hasattr(key, "dtype") and (jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape == (2,))):
        raise bad_argument("key", key, "a jax.random key")
    if identity is not None:
        try:
            identity = _json(dict(identity))
        except (TypeError, ValueError):
            raise bad_argument("identity", identity, "a JSON-serialisable dict") from None
    t_start = time.perf_counter()
    x_train, y_train = _check_data(train_data, "train_data")
    test = None if test_data is None else _check_data(test_data, "test_data")
    valid = None if valid_data is None else _check_data(valid_data, "valid_data")
    mesh = make_mesh() if mesh is None else mesh
    check_divisible(mesh, config.batch_size, "TrainConfig.batch_size")
    check_divisible(mesh, config.eval_batch_size, "TrainConfig.eval_batch_size")
    n = len(y_train)
    spe = n // config.batch_size
    if spe == 0:
        raise bad_argument("TrainConfig.batch_size", config.batch_size, f"at most the training set size ({n})")
    if mean is None or std is None:
        mean, std = pixel_stats(x_train)

    gd_train = compute_graphdef(model, train=True, bf16=config.bf16)
    gd_eval = compute_graphdef(model, train=False, bf16=config.bf16)
    _, state = split_model(model)
    n_classes = jax.eval_shape(
        lambda s: nnx.merge(gd_eval, s.params, s.rest)(jnp.zeros((1, *x_train.shape[1:]))), state
    )
    n_classes = n_classes.shape[-1]
    top = max([int(y_train.max())] + [int(d[1].max()) for d in (test, valid) if d is not None])
    if top >= n_classes:
        raise bad_argument("labels", top, f"labels < the model's {n_classes} outputs")

    mean = tuple(float(v) for v in np.asarray(mean, np.float32).ravel())
    std = tuple(float(v) for v in np.asarray(std, np.float32).ravel())
    optimizer, train_step, eval_step = _steps(gd_train, gd_eval, config, spe, mean, std, mesh)
    # a private copy: the donated step buffers must not be the model's own arrays
    state = replicate(mesh, jax.tree.map(jnp.copy, state))
    opt_state = replicate(mesh, optimizer.init(state.params))
    schedule = make_schedule(config, spe)

    meta = {
        "run": identity,
        "config": _json(config.to_dict()),
        "steps_per_epoch": spe,
        "key": _key_data(key),
        "n_train": n,
        "n_test": 0 if test is None else len(test[1]),
        "n_valid": 0 if valid is None else len(valid[1]),
    }
    history: list[dict] = []
    start, wall_before = 0, 0.0
    if checkpoint_dir is not None and ckpt.latest_epoch(checkpoint_dir) is not None:
        _check_resumable(checkpoint_dir, ckpt.read_meta(checkpoint_dir), meta)
        found = ckpt.restore(checkpoint_dir, state=state, opt_state=opt_state, key=key)
        state, opt_state = found.state, found.opt_state
        start, history = found.epoch, found.history
        wall_before = float(found.meta.get("wall_seconds", 0.0))
    resumed_from = start

    params = count_params(state.params)
    sharding = batch_sharding(mesh)
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        k_perm, k_steps = jax.random.split(jax.random.fold_in(key, epoch))
        order = epoch_batches(k_perm, n, config.batch_size, shuffle=True, drop_last=True).idx
        step_keys = jax.random.split(k_steps, len(order))
        loss_sum, correct = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        for i, idx in enumerate(order):
            xb = jax.device_put(x_train[idx], sharding)
            yb = jax.device_put(y_train[idx], sharding)
            state, opt_state, m = train_step(state, opt_state, xb, yb, step_keys[i])
            loss_sum, correct = loss_sum + m["loss"], correct + m["correct"]
        train_loss = float(loss_sum) / len(order)
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training diverged: mean loss {train_loss} in epoch {epoch + 1}")
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": 100.0 * int(correct) / (len(order) * config.batch_size),
            "test_loss": None,
            "test_acc": None,
            "valid_loss": None,
            "valid_acc": None,
            "lr": float(schedule((epoch + 1) * spe)),
        }
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            for name, data in (("test", test), ("valid", valid)):
                if data is not None:
                    loss, acc = evaluate(eval_step, state, data, config.eval_batch_size, mesh)
                    record[f"{name}_loss"], record[f"{name}_acc"] = loss, acc
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        if checkpoint_dir is not None:
            wall = wall_before + time.perf_counter() - t_start
            ckpt.save(
                checkpoint_dir,
                epoch + 1,
                state=state,
                opt_state=opt_state,
                key=key,
                history=history,
                meta={**meta, "wall_seconds": wall},
            )
        if on_epoch is not None:
            on_epoch(dict(record))

    last = history[-1]
    # a finished run trained without an evaluation set that is given now (e.g. the test set, measured only
    # after a search): evaluate its final weights on it, without training again
    for name, data in (("test", test), ("valid", valid)):
        if data is not None and last.get(f"{name}_acc") is None:
            loss, acc = evaluate(eval_step, state, data, config.eval_batch_size, mesh)
            last[f"{name}_loss"], last[f"{name}_acc"] = loss, acc
    nnx.update(model, state.params, state.rest)
    nan = float("nan")
    return TrainResult(
        history=history,
        train_loss=last["train_loss"],
        train_acc=last["train_acc"],
        test_loss=nan if last["test_loss"] is None else last["test_loss"],
        test_acc=nan if last["test_acc"] is None else last["test_acc"],
        valid_loss=nan if last.get("valid_loss") is None else last["valid_loss"],
        valid_acc=nan if last.get("valid_acc") is None else last["valid_acc"],
        epochs=config.epochs,
        wall_seconds=wall_before + time.perf_counter() - t_start,
        params=params,
        steps_per_epoch=spe,
        resumed_from=resumed_from,
    )


__all__ = [
    "CheckpointMismatch",
    "ModelState",
    "TrainResult",
    "TrainingDiverged",
    "compute_graphdef",
    "count_params",
    "evaluate",
    "make_eval_step",
    "make_train_step",
    "pixel_stats",
    "split_model",
    "train",
]
