"""TrainingEvaluator: the benchmark protocol answered by training (tiny networks, 2 classes, 8x8 images)."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import two_class_images as make_data

from jnas.benchmarks.training import TrainingEvaluator
from jnas.errors import JnasError
from jnas.models import build_network
from jnas.runs import run_loop
from jnas.spaces import get_space
from jnas.strategies import make_strategy
from jnas.train.loop import count_params, split_model
from jnas.train.optim import TrainConfig

NB201 = get_space("nb201")


DATA = (make_data(48, 0), make_data(16, 1))
VALID = 16  # held out of the 48 training images: 32 are trained on, 2 steps per epoch
CFG = TrainConfig(epochs=2, batch_size=16, lr=0.1, crop_pad=1, eval_batch_size=16)


class TinyNet(nnx.Module):
    """conv 3x3 -> BatchNorm -> ReLU -> global mean -> dense."""

    def __init__(self, *, num_classes, rngs):
        self.conv = nnx.Conv(3, 8, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.fc = nnx.Linear(8, num_classes, rngs=rngs)

    def __call__(self, x):
        return self.fc(nnx.relu(self.bn(self.conv(x))).mean(axis=(1, 2)))


def tiny_builder(space, arch, *, num_classes, rngs):
    """Stand-in for ``build_network``: first edge ``none`` -> NaN output bias, ``skip_connect`` -> crash."""
    first = int(np.asarray(arch)[0])
    if first == 1:
        raise RuntimeError("builder crashed")
    model = TinyNet(num_classes=num_classes, rngs=rngs)
    if first == 0:  # same graph as the healthy networks (no recompilation), NaN logits from the first step
        model.fc.bias.value = jnp.full_like(model.fc.bias.value, jnp.nan)
    return model


def arch(text):
    return NB201.from_string(text)


GOOD_A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
GOOD_B = "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
NAN = "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
CRASH = "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def stack(*texts):
    return jnp.stack([arch(t) for t in texts])


def test_failures_are_recorded_and_earlier_results_kept():
    ev = TrainingEvaluator("nb201", DATA, config=CFG, builder=tiny_builder, valid_size=VALID)
    assert ev.num_classes == 2 and ev.resolve() == ("valid_acc", 2) == ev.search_metric
    first = ev.query(stack(GOOD_A), metric="test_acc")
    assert first.shape == (1,) and first.dtype == np.float64 and 0.0 <= first[0] <= 100.0
    # the default metric is the validation accuracy (never the test set), from the same run
    assert ev.query(stack(GOOD_A))[0] == ev.history[0]["valid_acc"] and len(ev.history) == 1
    assert 0.0 <= ev.history[0]["valid_acc"] <= 100.0

    values = ev.query(stack(NAN, GOOD_B, CRASH), metric="test_acc")
    assert values.shape == (3,)
    assert math.isnan(values[0]) and math.isnan(values[2]) and 0.0 <= values[1] <= 100.0
    assert [r["arch"] for r in ev.history] == [GOOD_A, NAN, GOOD_B, CRASH]
    assert [r["status"] for r in ev.history] == ["ok", "failed", "ok", "failed"]
    assert [f["arch"] for f in ev.failures] == [NAN, CRASH]
    assert ev.failures[0]["reason"].startswith("diverged: ") and "epoch 1" in ev.failures[0]["reason"]
    assert ev.failures[1]["reason"] == "RuntimeError: builder crashed"
    assert ev.history[0]["test_acc"] == first[0] and ev.history[0]["params"] == 8 * 27 + 8 + 16 + 8 * 2 + 2

    # answered from the cache: no new training, same numbers, other metrics of the same runs
    again = ev.query(stack(GOOD_A, NAN), "test_acc")
    assert again[0] == first[0] and math.isnan(again[1]) and len(ev.history) == 4
    loss = ev.query(arch(GOOD_A), metric="train_loss")  # a single architecture (no batch axis) works too
    assert loss.shape == (1,) and loss[0] == ev.history[0]["train_loss"] > 0
    assert ev.query(stack(GOOD_A), metric="train_acc")[0] == ev.history[0]["train_acc"]

    # another fidelity is another run, with a schedule over that many epochs
    one = ev.query(stack(GOOD_A), "test_acc", fidelity=1)
    assert len(ev.history) == 5 and ev.history[-1]["epochs"] == 1 and 0.0 <= one[0] <= 100.0
    info = ev.describe()
    assert info["evaluated"] == 5 and info["failed"] == 2
    assert (info["train_size"], info["valid_size"], info["test_size"]) == (32, 16, 16)
    json.dumps(info)
    json.dumps(ev.history)


def test_same_seed_same_value_and_bad_arguments():
    a = TrainingEvaluator("nb201", DATA, config=CFG, builder=tiny_builder, valid_size=VALID).query(stack(GOOD_B))
    b = TrainingEvaluator("nb201", DATA, config=CFG, builder=tiny_builder, valid_size=VALID).query(stack(GOOD_B))
    assert a[0] == b[0]
    ev = TrainingEvaluator("nb201", DATA, config=CFG, builder=tiny_builder, valid_size=0)
    assert ev.search_metric == ("test_acc", 2)
    with pytest.raises(JnasError, match=r"metric: got 'valid_acc'.*test_acc, train_acc, train_loss \(valid_acc needs"):
        ev.query(stack(GOOD_A), metric="valid_acc")
    with pytest.raises(JnasError, match="valid_size: got 48"):
        TrainingEvaluator("nb201", DATA, config=CFG, builder=tiny_builder, valid_size=48)
    with pytest.raises(JnasError, match="fidelity: got 0"):
        ev.query(stack(GOOD_A), fidelity=0)
    with pytest.raises(JnasError, match="archs"):
        ev.query(jnp.zeros((2, 3, 6), jnp.int8))
    with pytest.raises(JnasError, match="num_classes: got 1"):
        TrainingEvaluator("nb201", DATA, config=CFG, num_classes=1, builder=tiny_builder)
    with pytest.raises(JnasError, match="batch_size: got 64, expected at most the training set size"):
        TrainingEvaluator("nb201", DATA, config=CFG.replace(batch_size=64), builder=tiny_builder)
    with pytest.raises(JnasError, match="data"):
        TrainingEvaluator("nb201", DATA[0], config=CFG, builder=tiny_builder)
    with pytest.raises(JnasError, match="config"):
        TrainingEvaluator("nb201", DATA, config={"epochs": 2})
    with pytest.raises(JnasError, match="unknown space"):
        TrainingEvaluator("nb999", DATA, config=CFG)
    assert ev.history == []


def test_python_loop_runner_drives_a_search():
    ev = TrainingEvaluator("nb201", DATA, config=CFG.replace(epochs=1), builder=tiny_builder, valid_size=VALID)
    strategy = make_strategy("rs", NB201, 3)
    record = run_loop(strategy, ev.query, seeds=1, row_of=None)  # searches on valid_acc, the default metric
    assert record.values.shape == (1, 3)
    assert len(ev.history) == 3
    expected = np.array([r["valid_acc"] for r in ev.history])
    assert np.array_equal(record.values[0], expected, equal_nan=True)
    assert all((r["status"] == "ok") == np.isfinite(r["valid_acc"]) for r in ev.history)


@pytest.mark.slow  # building an NB201 network compiles ~35 initializers: ~10-25 s of CPU before training starts
def test_nb201_network_from_build_network():
    opts = {"channels": 4, "cells_per_stage": 1}
    ev = TrainingEvaluator("nb201", DATA, config=CFG.replace(epochs=1, batch_size=8), model_options=opts)
    value = ev.query(stack(GOOD_A))
    rec = ev.history[0]
    assert rec["status"] == "ok", rec["reason"]
    assert 0.0 <= value[0] <= 100.0 and np.isfinite(rec["train_loss"])
    model = build_network("nb201", arch(GOOD_A), num_classes=2, rngs=nnx.Rngs(0), **opts)
    assert rec["params"] == count_params(split_model(model)[1].params) > 0
