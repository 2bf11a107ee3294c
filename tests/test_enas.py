"""ENAS (`jnas supernet --method enas`): the weight step trains the sampled child alone, the controller learns
from rewards, the derivation keeps the most accurate sampled child, and the search runs and resumes end to end."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from helpers import tiny_image_npz

from jnas.cli import main
from jnas.errors import JnasError
from jnas.models.supernet import build_supernet, edge_weight_shape
from jnas.runs.supernet import run_supernet
from jnas.spaces import get_space
from jnas.train import oneshot
from jnas.train.oneshot import make_search_step, search_config, split_supernet, touched_update
from jnas.train.oneshot_methods import make_method
from jnas.train.optim import make_optimizer, make_schedule
from jnas.train.sharding import make_mesh


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_image_npz(tmp_path_factory.mktemp("data"))


def _edge_op(path) -> tuple[int, int] | None:
    """``(edge, op)`` of a supernet weight under ``edges[e].ops[k]``, else ``None`` (stem, reductions, head)."""
    keys = [getattr(p, "key", getattr(p, "idx", None)) for p in path]
    if "edges" in keys and "ops" in keys:
        return int(keys[keys.index("edges") + 1]), int(keys[keys.index("ops") + 1])
    return None


def _one_step(method_name: str, **opts):
    method = make_method(method_name, "nb201", **opts)
    model = build_supernet("nb201", method.init_arch(jax.random.key(1)), num_classes=3, rngs=nnx.Rngs(0),
                           channels=2, cells_per_stage=1)
    graphdef, state = split_supernet(model)
    config = search_config(2, overrides={"batch_size": 8})
    w_opt, a_opt = make_optimizer(config, 4), method.arch_optimizer()
    # a first step builds momentum on every weight the step touches, so the second shows momentum kept apart
    step = make_search_step(oneshot._graphdef(model, train=True, bf16=False), method, w_opt, a_opt, config,
                            make_schedule(config, 4), mean=[0.5] * 3, std=[0.25] * 3)
    rng = np.random.default_rng(0)
    xt, xv = (rng.integers(0, 255, (8, 8, 8, 3)).astype(np.uint8) for _ in range(2))
    yt, yv = (rng.integers(0, 3, 8).astype(np.int32) for _ in range(2))
    w_state, a_state = w_opt.init(state.params), a_opt.init(state.arch)
    key = jax.random.key(7)
    new, *_ = step(state, w_state, a_state, xt, yt, xv, yv, key, jnp.int32(0), jnp.float32(0))
    return method, state, new, key


def test_weight_step_updates_only_the_sampled_childs_weights():
    method, before, after, key = _one_step("enas")
    # the child of the weight step: drawn with the step's weight key from the controller after its update
    k_w = jax.random.split(key, 4)[3]
    child = np.asarray(method.arch_of_tokens(method.sample_tokens(oneshot.arch_value(after.arch), k_w)))
    moved, still, shared_moved = set(), set(), 0
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(before.params)[0], jax.tree.leaves(after.params)):
        changed = not np.array_equal(np.asarray(a), np.asarray(b))
        eo = _edge_op(path)
        if eo is None:
            shared_moved += changed
        else:
            (moved if changed else still).add(eo)
    assert shared_moved > 0  # stem, reductions and classifier belong to every child
    assert moved and all(child[e] == k for e, k in moved)  # nothing outside the child moved ...
    parameterised = {(e, int(child[e])) for e in range(6) if child[e] in (2, 3)}  # nor_conv_1x1 / 3x3
    assert moved <= parameterised and len(moved) >= 1


def test_touched_update_keeps_untouched_weights_and_their_momentum():
    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.add_decayed_weights(0.1),
                      optax.sgd(0.1, momentum=0.9))
    params = {"a": jnp.ones(3), "b": jnp.ones(2)}
    state = opt.init(params)
    _, state = opt.update({"a": jnp.ones(3), "b": jnp.ones(2)}, state, params)  # momentum on both
    upd, new_state = touched_update(opt, {"a": jnp.full(3, 0.5), "b": jnp.zeros(2)}, state, params)
    assert np.all(np.asarray(upd["b"]) == 0) and np.all(np.asarray(upd["a"]) != 0)
    plain, _ = opt.update({"a": jnp.full(3, 0.5), "b": jnp.zeros(2)}, state, params)
    assert np.all(np.asarray(plain["b"]) != 0)  # weight decay and momentum would move it
    trace_old, trace_new = state[2][0].trace, new_state[2][0].trace
    assert np.array_equal(trace_new["b"], trace_old["b"]) and not np.array_equal(trace_new["a"], trace_old["a"])


def test_controller_learns_the_best_child_from_rewards():
    method = make_method("enas", "nb201", controller="softmax", arch_lr=0.1, entropy=0.0)
    target = jnp.asarray([3, 1, 3, 2, 0, 4])
    state_opt = method.arch_optimizer()

    def reward(tokens):
        return jnp.mean(method.arch_of_tokens(tokens) == target).astype(jnp.float32)

    @jax.jit
    def update(arch, st, key):
        tokens = jax.vmap(lambda k: method.sample_tokens(arch, k))(jax.random.split(key, 8))
        return method.policy_update(arch, st, tokens, jax.vmap(reward)(tokens))

    arch = method.init_arch(jax.random.key(0))
    st = state_opt.init({"arch": arch})
    for i in range(300):
        arch, st = update(arch, st, jax.random.key(i))
    draws = jax.vmap(lambda k: method.arch_of_tokens(method.sample_tokens(arch, k)))(
        jax.random.split(jax.random.key(999), 200))
    assert float(jnp.mean(jnp.all(draws == target, axis=-1))) >= 0.95
    strength = np.asarray(method.strengths(arch))
    assert np.allclose(strength.sum(-1), 1.0) and (strength.argmax(-1) == np.asarray(target)).all()


def test_derivation_keeps_the_most_accurate_sampled_child_not_the_lowest_loss():
    method = make_method("enas", "nb201", derive_samples=6, derive_examples=4)
    space = get_space("nb201")
    arch = method.init_arch(jax.random.key(0))
    cands = [np.asarray(c) for c in method.derive_candidates(arch, jax.random.key(3), space)]
    assert len(cands) == 6 and all(bool(space.is_valid(c)) for c in cands)
    seen = []

    def fake_eval(state, weights, x, y, mask):  # accuracy rises with 3x3 convs, and so does the loss
        seen.append(int(mask.sum()))
        n3 = jnp.sum(weights[:, 3])
        return n3 * mask.sum(), (n3 / 6.0) * mask.sum()

    best, loss = oneshot.derive(method, None, arch, fake_eval, (np.zeros((10, 4, 4, 3), np.uint8),
                                np.zeros(10, np.int32)), search_config(1), make_mesh(), jax.random.key(3), space)
    counts = [int(np.sum(c == 3)) for c in cands]
    assert int(np.sum(best == 3)) == max(counts)
    assert loss == max(counts) and sum(seen) == 4 * 6  # each candidate scored on derive_examples examples


@pytest.mark.parametrize("opts, match", [
    ({"controller": "gru"}, r"^--set controller: got 'gru', expected one of lstm, softmax$"),
    ({"baseline_decay": 1.0}, r"^--set baseline_decay: got 1\.0, expected a number in \[0, 1\)$"),
    ({"samples": 0}, r"^--set samples: got 0, expected an integer >= 1$"),
    ({"controller": "softmax", "hidden": 8}, r"^--set hidden: applies only with controller=lstm"),
    ({"lr": 0.1}, r"^--set lr: unknown option for method 'enas'; valid options: controller, hidden, arch_lr"),
])
def test_bad_options_are_one_line_errors(opts, match):
    with pytest.raises(JnasError, match=match):
        make_method("enas", "nb201", **opts)


@pytest.mark.slow
def test_interrupted_enas_search_resumes_like_an_uninterrupted_run(data, tmp_path):
    kw = dict(data=data, epochs=2, model_options={"channels": 2, "cells_per_stage": 1},
              config_overrides={"batch_size": 8, "eval_batch_size": 16}, method_options={"derive_samples": 3})
    whole = run_supernet("nb201", "enas", out=tmp_path / "whole", **kw)

    def stop(rec):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # after epoch 1 is checkpointed: controller, Adam and baseline too
        run_supernet("nb201", "enas", out=tmp_path / "cut", on_epoch=stop, **kw)
    resumed = run_supernet("nb201", "enas", out=tmp_path / "cut", **kw)
    assert resumed["resumed_from"] == 1
    assert resumed["derived_arch"] == whole["derived_arch"] and np.allclose(resumed["arch"], whole["arch"])
    # the record keeps the policy's per-edge op probabilities, not the controller's parameters
    arch = np.asarray(whole["arch"])
    assert arch.shape == edge_weight_shape("nb201") and np.allclose(arch.sum(-1), 1.0)


def test_enas_search_from_the_cli_writes_a_valid_cell_and_the_policy(data, tmp_path, capsys):
    out = tmp_path / "nb201"
    rc = main(["supernet", "--space", "nb201", "--method", "enas", "--data", data, "--epochs", "1", "--out", str(out),
               "--model", "channels=2", "--model", "cells_per_stage=1", "--config", "batch_size=8",
               "--config", "eval_batch_size=16", "--set", "derive_samples=2", "--set", "samples=2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((out / "result.json").read_text())
    space = get_space("nb201")
    assert bool(space.is_valid(space.from_string(rec["derived_arch"])))
    assert rec["method_options"]["samples"] == 2 and rec["method_options"]["controller"] == "lstm"
    arch = np.asarray(rec["arch"])  # the policy's per-edge op probabilities, not the controller's parameters
    assert arch.shape == edge_weight_shape("nb201") and np.allclose(arch.sum(-1), 1.0)


@pytest.mark.slow
def test_enas_on_the_darts_supernet_derives_a_genotype(data, tmp_path, capsys):
    out = tmp_path / "darts"
    rc = main(["supernet", "--space", "darts", "--method", "enas", "--data", data, "--epochs", "1", "--out", str(out),
               "--model", "channels=2", "--model", "layers=2", "--config", "batch_size=8",
               "--config", "eval_batch_size=16", "--set", "derive_samples=2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((out / "result.json").read_text())
    space = get_space("darts")
    assert bool(space.is_valid(space.from_string(rec["derived_arch"])))
    strengths = np.asarray(rec["arch"])
    # every node draws two of its incoming edges: per cell the 14 edges carry 8 ops in expectation
    assert strengths.shape == (2, 14, 8) and np.allclose(strengths.sum((-1, -2)), 8.0)
