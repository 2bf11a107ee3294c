"""Training loop, optimizer, schedule, sharding and checkpoints on a tiny CNN (2 classes, 8x8 images)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from helpers import two_class_images as make_data

from jnas.errors import JnasError
from jnas.train import checkpoint
from jnas.train.loop import (
    CheckpointMismatch,
    TrainingDiverged,
    compute_graphdef,
    make_train_step,
    split_model,
    train,
)
from jnas.train.optim import TrainConfig, cross_entropy, make_optimizer, make_schedule

ROOT = Path(__file__).resolve().parents[1]


class TinyNet(nnx.Module):
    """conv 3x3 -> BatchNorm -> ReLU -> global mean -> dropout -> dense."""

    def __init__(self, *, num_classes=2, channels=8, dropout=0.0, rngs):
        self.conv = nnx.Conv(3, channels, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(channels, rngs=rngs)
        self.drop = nnx.Dropout(dropout, rngs=rngs)
        self.fc = nnx.Linear(channels, num_classes, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.bn(self.conv(x)))
        return self.fc(self.drop(h.mean(axis=(1, 2))))


TRAIN, TEST = make_data(64, 0), make_data(32, 1)
CFG = TrainConfig(epochs=6, batch_size=16, lr=0.1, weight_decay=5e-4, crop_pad=1, eval_batch_size=16)


def tiny(seed=0, dropout=0.1):
    return TinyNet(channels=16, dropout=dropout, rngs=nnx.Rngs(seed))


def leaves_equal(a, b) -> bool:
    def raw(x):
        return np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)

    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(raw(x), raw(y)) for x, y in zip(la, lb))


def strip_times(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


@pytest.fixture(scope="module")
def reference():
    """One uninterrupted run: (result, trained state)."""
    model = tiny()
    result = train(model, TRAIN, TEST, CFG, key=jax.random.key(0))
    return result, split_model(model)[1]


# ----- learning ---------------------------------------------------------------------------------
def test_tiny_network_learns_and_reports(reference):
    result, state = reference
    first, last = result.history[0], result.history[-1]
    assert [r["epoch"] for r in result.history] == list(range(1, CFG.epochs + 1))
    # dropout and random crops keep training-mode accuracy jittering just below 100 on some epochs
    assert max(r["train_acc"] for r in result.history) == 100.0 and last["train_acc"] >= 95.0
    assert result.test_acc == 100.0
    assert last["train_loss"] < 0.2 * first["train_loss"]
    assert last["lr"] == 0.0  # cosine schedule ends at lr_end
    assert result.steps_per_epoch == 4 and result.epochs == CFG.epochs and result.resumed_from == 0
    assert result.params == 3 * 3 * 3 * 16 + 16 + 2 * 16 + 16 * 2 + 2  # conv + bias, BN scale/bias, dense
    # the model handed in now holds the trained weights
    init = split_model(tiny())[1]
    assert not np.allclose(np.asarray(state.params["fc"]["kernel"]), np.asarray(init.params["fc"]["kernel"]))
    json.dumps(result.to_dict())


def test_same_key_same_result_other_key_differs(reference):
    ref, ref_state = reference
    again = tiny()
    res = train(again, TRAIN, TEST, CFG, key=jax.random.key(0))
    assert strip_times(res.history) == strip_times(ref.history)
    assert leaves_equal(split_model(again)[1], ref_state)
    other = tiny()
    train(other, TRAIN, TEST, CFG, key=jax.random.key(1))
    assert not np.array_equal(
        np.asarray(split_model(other)[1].params["fc"]["kernel"]), ref_state.params["fc"]["kernel"]
    )


def test_nan_loss_raises_diverged():
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(tiny(dropout=0.0), TRAIN, TEST, CFG.replace(lr=1e30, epochs=1), key=jax.random.key(0))


# ----- checkpoints ----------------------------------------------------------------------------
class Interrupt(Exception):
    pass


def test_interrupted_then_resumed_run_is_bit_identical(reference, tmp_path):
    ref, ref_state = reference

    def stop_after_3(record):
        if record["epoch"] == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(tiny(), TRAIN, TEST, CFG, key=jax.random.key(0), checkpoint_dir=tmp_path, on_epoch=stop_after_3)
    assert checkpoint.latest_epoch(tmp_path) == 3

    model = tiny()
    res = train(model, TRAIN, TEST, CFG, key=jax.random.key(0), checkpoint_dir=tmp_path)
    assert res.resumed_from == 3
    assert strip_times(res.history) == strip_times(ref.history)
    assert leaves_equal(split_model(model)[1], ref_state)  # params, BN statistics and the dropout RNG state

    # a finished run resumes to the same answer without training
    done = tiny()
    res2 = train(done, TRAIN, TEST, CFG, key=jax.random.key(0), checkpoint_dir=tmp_path)
    assert res2.resumed_from == CFG.epochs and res2.test_acc == ref.test_acc
    assert leaves_equal(split_model(done)[1], ref_state)

    with pytest.raises(JnasError, match=r"config.lr: 0.1 \(checkpoint\) vs 0.2"):
        train(tiny(), TRAIN, TEST, CFG.replace(lr=0.2), key=jax.random.key(0), checkpoint_dir=tmp_path)
    with pytest.raises(JnasError, match="key"):
        train(tiny(), TRAIN, TEST, CFG, key=jax.random.key(5), checkpoint_dir=tmp_path)


def test_resume_checks_the_run_identity_before_reading_arrays(tmp_path):
    """A checkpoint of another architecture with the same parameter tree is refused, not resumed."""
    cfg = CFG.replace(epochs=1)
    ident = {"space": "nb201", "arch": "a", "data": "d", "model_options": {"channels": 16}}
    train(tiny(), TRAIN, TEST, cfg, key=jax.random.key(0), checkpoint_dir=tmp_path, identity=ident)
    assert checkpoint.read_meta(tmp_path)["run"] == ident  # saved with the checkpoint

    with pytest.raises(CheckpointMismatch, match=r"\(arch: 'a' \(checkpoint\) vs 'b' \(now\)\)"):
        train(tiny(), TRAIN, TEST, cfg, key=jax.random.key(0), checkpoint_dir=tmp_path, identity={**ident, "arch": "b"})
    with pytest.raises(JnasError, match=r"model_options.channels: 16 \(checkpoint\) vs 8 \(now\)"):
        other = {**ident, "model_options": {"channels": 8}}
        train(TinyNet(channels=8, rngs=nnx.Rngs(0)), TRAIN, TEST, cfg, key=jax.random.key(0),
              checkpoint_dir=tmp_path, identity=other)  # another tree: named by identity, not by orbax
    res = train(tiny(), TRAIN, TEST, cfg, key=jax.random.key(0), checkpoint_dir=tmp_path, identity=ident)
    assert res.resumed_from == 1

    plain = tmp_path / "plain"  # written without an identity: cannot be vouched for
    train(tiny(), TRAIN, TEST, cfg, key=jax.random.key(0), checkpoint_dir=plain)
    with pytest.raises(JnasError, match="run identity: none in the checkpoint"):
        train(tiny(), TRAIN, TEST, cfg, key=jax.random.key(0), checkpoint_dir=plain, identity=ident)
    with pytest.raises(JnasError, match="identity: got"):
        train(tiny(), TRAIN, TEST, cfg, key=jax.random.key(0), identity={"arch": object()})


# ----- optimizer pieces -----------------------------------------------------------------------
def test_cosine_schedule_warmup_and_end_value():
    cfg = TrainConfig(epochs=10, lr=0.4, lr_end=0.01, warmup_epochs=2)
    sched = make_schedule(cfg, steps_per_epoch=5)
    lrs = np.array([float(sched(t)) for t in range(0, 61)])
    assert lrs[0] == 0.0 and np.isclose(lrs[10], 0.4)  # linear warm-up reaches the peak at step 10
    assert np.allclose(lrs[:11], 0.4 * np.arange(11) / 10)
    assert np.all(np.diff(lrs[10:51]) < 0)  # then decays ...
    assert np.isclose(lrs[30], (0.4 + 0.01) / 2)  # ... half-way at the middle of the cosine ...
    assert lrs[50] == pytest.approx(0.01, abs=1e-7) and np.allclose(lrs[50:], lrs[50])  # ... and stays at lr_end


def _one_update(config, grads, params, steps=1, grads2=None):
    opt = make_optimizer(config, steps_per_epoch=100)
    state = opt.init(params)
    upd, state = opt.update(grads, state, params)
    if grads2 is not None:
        upd, state = opt.update(grads2, state, params)
    return upd


PARAMS = {"w": jnp.full((3, 2), 2.0), "b": jnp.full((2,), 3.0)}
PLAIN = dict(lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0)


def test_grad_clip_bounds_update_norm():
    big = {"w": jnp.full((3, 2), 10.0), "b": jnp.full((2,), -10.0)}
    free = _one_update(TrainConfig(**PLAIN), big, PARAMS)
    clipped = _one_update(TrainConfig(**PLAIN, grad_clip=1.5), big, PARAMS)
    assert float(optax.global_norm(free)) == pytest.approx(float(optax.global_norm(big)), rel=1e-6)
    assert float(optax.global_norm(clipped)) == pytest.approx(1.5, rel=1e-5)
    # same direction, only shorter
    ratio = np.asarray(clipped["w"]) / np.asarray(free["w"])
    assert np.allclose(ratio, ratio.flat[0])
    small = jax.tree.map(lambda g: g * 1e-3, big)  # below the threshold: untouched
    assert np.allclose(_one_update(TrainConfig(**PLAIN, grad_clip=1.5), small, PARAMS)["w"], -small["w"])


def test_weight_decay_pulls_towards_zero_and_can_spare_norm_and_bias():
    zero = jax.tree.map(jnp.zeros_like, PARAMS)
    cfg = TrainConfig(**{**PLAIN, "lr": 0.5, "weight_decay": 0.1})
    upd = _one_update(cfg, zero, PARAMS)
    assert np.allclose(upd["w"], -0.5 * 0.1 * 2.0) and np.allclose(upd["b"], -0.5 * 0.1 * 3.0)
    upd = _one_update(cfg.replace(decay_norm_and_bias=False), zero, PARAMS)
    assert np.allclose(upd["w"], -0.5 * 0.1 * 2.0) and np.allclose(upd["b"], 0.0)
    assert np.allclose(_one_update(TrainConfig(**PLAIN), zero, PARAMS)["w"], 0.0)


def test_nesterov_momentum_matches_pytorch_formula():
    g1 = {"w": jnp.full((3, 2), 1.0), "b": jnp.full((2,), 2.0)}
    g2 = {"w": jnp.full((3, 2), -0.5), "b": jnp.full((2,), 1.0)}
    m, lr = 0.9, 0.1
    heavy = _one_update(TrainConfig(lr=lr, momentum=m, nesterov=False, weight_decay=0.0), g1, PARAMS, grads2=g2)
    nest = _one_update(TrainConfig(lr=lr, momentum=m, nesterov=True, weight_decay=0.0), g1, PARAMS, grads2=g2)
    for k in PARAMS:
        buf = m * g1[k] + g2[k]  # buf_2 = m * buf_1 + g_2, buf_1 = g_1
        # step 2 is at t=1 of a 100-step cosine: lr barely below 0.1
        lr_t = float(make_schedule(TrainConfig(lr=lr), 100)(1))
        assert np.allclose(heavy[k], -lr_t * buf, rtol=1e-6)
        assert np.allclose(nest[k], -lr_t * (g2[k] + m * buf), rtol=1e-6)
    assert not np.allclose(heavy["w"], nest["w"])


def test_label_smoothing_targets_and_gradient():
    logits = jnp.array([[4.0, -1.0, 0.5], [0.0, 2.0, -3.0]])
    y = jnp.array([0, 2])
    s, k = 0.2, 3
    assert np.allclose(cross_entropy(logits, y, 0.0), -jax.nn.log_softmax(logits)[jnp.arange(2), y])
    target = (1 - s) * jax.nn.one_hot(y, k) + s / k
    grad = jax.grad(lambda z: cross_entropy(z, y, s).sum())(logits)
    assert np.allclose(grad, jax.nn.softmax(logits) - target, atol=1e-6)
    # a confident correct prediction is penalised by smoothing, not by the plain loss
    confident = jnp.array([[20.0, -20.0, -20.0]])
    assert float(cross_entropy(confident, jnp.array([0]), s)[0]) > 1.0
    assert float(cross_entropy(confident, jnp.array([0]), 0.0)[0]) < 1e-6


def test_bf16_computes_in_bf16_keeps_float32_state():
    model = tiny(dropout=0.0)
    mean, std = np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32)
    _, state = split_model(model)
    x, y = TRAIN[0][:16], TRAIN[1][:16]
    out = {}
    for bf16 in (False, True):
        cfg = CFG.replace(bf16=bf16)
        opt = make_optimizer(cfg, 4)
        step = make_train_step(compute_graphdef(model, train=True, bf16=bf16), opt, cfg, mean=mean, std=std)
        args = (state, opt.init(state.params), x, y, jax.random.key(0))
        # output types of every convolution (forward and backward) in the traced step, e.g. "bf16[16,8,8,8]"
        lines = [ln for ln in str(jax.make_jaxpr(step)(*args)).splitlines() if "= conv_general_dilated" in ln]
        types = {ln.split("=")[0].split(":")[1].split("[")[0].strip() for ln in lines}
        assert len(lines) >= 2 and types == {"bf16" if bf16 else "f32"}
        new_state, new_opt, metrics = step(*args)
        for tree in (new_state, new_opt):
            floats = {a.dtype for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)}
            assert floats == {jnp.dtype(jnp.float32)}
        out[bf16] = (float(metrics["loss"]), new_state)
    assert out[True][0] == pytest.approx(out[False][0], rel=0.02)
    assert out[True][0] != out[False][0]  # it really ran at lower precision
    dw = np.asarray(out[True][1].params["fc"]["kernel"]) - np.asarray(out[False][1].params["fc"]["kernel"])
    assert np.abs(dw).max() < 1e-2


# ----- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 0),
        ("epochs", 2.0),
        ("batch_size", True),
        ("lr", -0.1),
        ("lr", float("nan")),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("label_smoothing", 1.0),
        ("grad_clip", 0.0),
        ("crop_pad", -1),
        ("cutout_size", 1.5),
        ("bf16", "yes"),
        ("warmup_epochs", 300),
        ("eval_every", 0),
    ],
)
def test_bad_config_field_is_named(field, value):
    with pytest.raises(JnasError, match=rf"TrainConfig\.{field}: got"):
        TrainConfig(**{field: value})


def test_bad_config_combinations_and_inputs():
    with pytest.raises(JnasError, match="nesterov.*momentum"):
        TrainConfig(momentum=0.0, nesterov=True)
    with pytest.raises(JnasError, match="TrainConfig field: got 'learning_rate'"):
        CFG.replace(learning_rate=0.1)
    with pytest.raises(JnasError, match="batch_size: got 128, expected at most the training set size"):
        train(tiny(), TRAIN, TEST, CFG.replace(batch_size=128), key=jax.random.key(0))
    with pytest.raises(JnasError, match="labels: got 5"):
        train(tiny(), (TRAIN[0], TRAIN[1] + 4), TEST, CFG, key=jax.random.key(0))
    with pytest.raises(JnasError, match=r"train_data images: got 'float32\[64, 8, 8, 3\]', expected uint8"):
        train(tiny(), (TRAIN[0].astype(np.float32), TRAIN[1]), TEST, CFG, key=jax.random.key(0))
    with pytest.raises(JnasError, match="config: got 'dict'"):
        train(tiny(), TRAIN, TEST, {"epochs": 1}, key=jax.random.key(0))


# ----- data parallel ----------------------------------------------------------------------------
_SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    from test_train_loop import CFG, TRAIN, TEST, tiny
    from jnas.errors import JnasError
    from jnas.train.loop import split_model, train
    from jnas.train.sharding import make_mesh

    def raw(a):
        a = jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a
        return np.asarray(a, np.float64)

    out = {{"devices": len(jax.devices()), "runs": []}}
    states = []
    for mesh in (make_mesh(jax.devices()[:1]), make_mesh()):
        model = tiny()
        res = train(model, TRAIN, TEST, CFG.replace(epochs=2), key=jax.random.key(0), mesh=mesh)
        state = split_model(model)[1]
        states.append(jax.tree.map(raw, state))
        n_dev = len(state.params["fc"]["kernel"].sharding.device_set)
        out["runs"].append({{"mesh_devices": n_dev, "history": res.history}})
    out["max_abs_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(*map(jax.tree.leaves, states)))
    try:
        train(tiny(), TRAIN, TEST, CFG.replace(batch_size=18), key=jax.random.key(0))
    except JnasError as e:
        out["error"] = str(e)
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_step_matches_single_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    script = _SHARDED_SCRIPT.format(tests=str(ROOT / "tests"))
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    out = json.loads(line[len("RESULT") :])
    one, four = out["runs"]
    assert out["devices"] == 4 and one["mesh_devices"] == 1 and four["mesh_devices"] == 4
    # 8 steps on a 4-way split batch (BatchNorm statistics over the global batch) == 8 steps on one device
    assert out["max_abs_diff"] < 1e-5
    for a, b in zip(one["history"], four["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
        assert a["train_acc"] == b["train_acc"] and a["test_acc"] == b["test_acc"]
    assert "TrainConfig.batch_size: got 18, expected a multiple of the number of devices (4)" in out["error"]


class AuxNet(TinyNet):
    """TinyNet with a second (auxiliary) head, returned beside the logits in training mode, like DARTS."""

    def __init__(self, *, rngs):
        super().__init__(channels=8, rngs=rngs)
        self.aux = nnx.Linear(8, 2, rngs=rngs)
        self.training = True

    def __call__(self, x):
        h = nnx.relu(self.bn(self.conv(x))).mean(axis=(1, 2))
        logits = self.fc(h)
        return (logits, self.aux(h)) if self.training else logits


@pytest.mark.parametrize("weight", [0.0, 0.4])
def test_auxiliary_head_adds_its_weighted_loss(weight):
    model = AuxNet(rngs=nnx.Rngs(0))
    cfg = CFG.replace(aux_weight=weight, crop_pad=0, flip=False)
    mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    opt = make_optimizer(cfg, 4)
    _, state = split_model(model)
    x, y = TRAIN[0][:16], TRAIN[1][:16]
    _, _, metrics = make_train_step(compute_graphdef(model, train=True), opt, cfg, mean=mean, std=std)(
        state, opt.init(state.params), x, y, jax.random.key(0))
    logits, aux = AuxNet(rngs=nnx.Rngs(0))(jnp.asarray(x, jnp.float32) / 255.0)
    want = cross_entropy(logits, y).mean() + weight * cross_entropy(aux, y).mean()
    assert float(metrics["loss"]) == pytest.approx(float(want), rel=1e-5)
    assert int(metrics["correct"]) == int((jnp.argmax(logits, -1) == y).sum())
