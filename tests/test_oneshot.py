"""One-shot NAS: supernets (mixed ops, one-hot edge weights, derivation), methods and the bilevel loop.

Compile time rules this file. A search step of the NB201 supernet (3 stages,
even at ``cells_per_stage=1``) takes ~25 s to trace and compile on CPU, so
the loop tests run on ``TinySupernet``: the NB201 supernet's own parts (stem,
one ``NB201SearchCell`` with its 6 mixed edges of 5 ops, classifier) at a
fraction of that, and the resume test compiles its step once for its three
runs. The full NB201 supernet is only run forward; the DARTS supernet is
never compiled (its logic is tested through ``arch_weights`` and
``derive_argmax``). The second-order gradient is checked on a smooth
network (``SmoothSupernet`` says why).
"""

import itertools
import json
import os
import re
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
from helpers import real_weights

from jnas.encodings import opdist
from jnas.errors import JnasError
from jnas.models import ops
from jnas.models.supernet import (
    DARTS_EDGE_OFFSET,
    ArchParam,
    MixedOp,
    NB201SearchCell,
    arch_weights,
    build_supernet,
    derive_argmax,
    edge_weight_shape,
)
from jnas.spaces import darts as darts_space
from jnas.spaces import get_space
from jnas.spaces import nb201 as nb201_space
from jnas.train import oneshot
from jnas.train.loop import CheckpointMismatch
from jnas.train.oneshot import (
    arch_gradient,
    arch_value,
    derive,
    evaluate_weights,
    make_arch_eval,
    make_loss,
    make_search_step,
    search_config,
    search_supernet,
    split_supernet,
)
from jnas.train.oneshot_methods import exponentiated_gradient, make_method
from jnas.train.optim import make_optimizer, make_schedule
from jnas.train.sharding import make_mesh, replicate

ROOT = Path(__file__).resolve().parents[1]


class TinySupernet(nnx.Module):
    """conv 3x3 -> BatchNorm -> one NB201 search cell -> ReLU -> global mean -> dense; ``(x, w [6, 5]) -> logits``."""

    def __init__(self, arch_init, *, channels=2, num_classes=3, rngs):
        self.arch = ArchParam(jnp.asarray(arch_init, jnp.float32))
        self.stem = ops.conv(3, channels, 3, rngs=rngs)
        self.bn = ops.batch_norm(channels, rngs=rngs)
        self.cell = NB201SearchCell(channels, rngs=rngs)
        self.fc = nnx.Linear(channels, num_classes, rngs=rngs)

    def __call__(self, x, w, drop=None):
        h = self.cell(self.bn(self.stem(x)), w, drop)
        return self.fc(jnp.mean(jax.nn.relu(h), axis=(1, 2)))


def tiny_supernet(arch_init, channels=2, seed=0):
    """A ``TinySupernet`` with numpy-drawn weights (no initialiser compiles) holding ``arch_init``."""
    model = real_weights(lambda: TinySupernet(arch_init, channels=channels, rngs=nnx.Rngs(0)), seed)
    model.arch[...] = jnp.asarray(arch_init, jnp.float32)
    return model


def nb201_supernet(arch_init, channels=2, seed=0):
    """The real NB201 supernet (3 stages, one cell each), numpy-drawn weights."""
    model = real_weights(lambda: build_supernet("nb201", arch_init, num_classes=3, rngs=nnx.Rngs(0),
                                                channels=channels, cells_per_stage=1), seed)
    model.arch[...] = jnp.asarray(arch_init, jnp.float32)
    return model


def images(n, seed, classes=3, size=8):
    """``n`` random uint8 images ``[n, size, size, 3]`` with random int32 labels in ``[0, classes)``."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, classes, n).astype(np.int32)


def strip_times(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def f64(tree):
    return jax.tree.map(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def ce64(logits, y):
    """Mean cross-entropy in the logits' own precision (``jnas.train.optim.cross_entropy`` works in float32)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, y[:, None], axis=-1).mean()


# ----- supernet: mixed ops and one-hot edge weights --------------------------------------------------
def _mixed_op(space, c):
    """The mixed op of one search edge of ``space`` (numpy-drawn weights)."""
    if space == "nb201":
        return real_weights(lambda: NB201SearchCell(c, rngs=nnx.Rngs(0))).edges[0]
    return real_weights(lambda: MixedOp(ops.DARTS_OPS[name](c, 1, nnx.Rngs(0), affine=False)
                                        for name in darts_space.OPS))


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_mixed_op_is_weighted_sum_of_its_ops(space):
    mixed = _mixed_op(space, 3)
    k = edge_weight_shape(space)[-1]
    assert len(mixed.ops) == k
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
    w = jax.random.normal(jax.random.key(2), (k,))  # arbitrary real weights, not one-hot, not a distribution
    want = sum(w[i] * op(x) for i, op in enumerate(mixed.ops))  # training-mode BatchNorm: batch statistics
    np.testing.assert_allclose(mixed(x, w), want, rtol=1e-5, atol=1e-6)
    # a one-hot weight selects its op
    np.testing.assert_allclose(mixed(x, jax.nn.one_hot(k - 1, k)), mixed.ops[k - 1](x), rtol=1e-6, atol=1e-6)


def test_darts_search_pool_candidates_are_batch_normalised():
    from jnas.models.supernet import DartsSearchCell

    cell = real_weights(lambda: DartsSearchCell(4, 4, 2, reduction=True, reduction_prev=False, rngs=nnx.Rngs(0)))
    x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), (4, 8, 8, 2))
    for edge in (0, 2):  # stride 2 (reads a cell input) and stride 1 (reads node 2)
        for name in ("max_pool_3x3", "avg_pool_3x3"):
            y = cell.edges[edge].ops[darts_space.OPS.index(name)](x)  # training mode: batch statistics
            np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
            np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1.0, rtol=1e-2)


def test_nb201_arch_weights_select_the_cell_of_the_arch():
    space = get_space("nb201")
    cell = real_weights(lambda: NB201SearchCell(2, rngs=nnx.Rngs(0)))
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 2))
    for seed in range(3):
        arch = np.asarray(space.sample(jax.random.key(seed)))
        w = arch_weights("nb201", arch)
        assert w.shape == edge_weight_shape("nb201") == (6, 5) and w.dtype == jnp.float32
        np.testing.assert_array_equal(w, np.eye(5, dtype=np.float32)[arch])
        # the discrete cell of `arch`: node j sums op_{e, arch[e]}(node src) over its incoming edges
        nodes = [x]
        for j in (1, 2, 3):
            nodes.append(sum(cell.edges[e].ops[int(arch[e])](nodes[src])
                             for e, (src, dst) in enumerate(nb201_space.EDGES) if dst == j))
        np.testing.assert_allclose(cell(x, w), nodes[3], rtol=1e-6, atol=1e-6)


def test_darts_arch_weights_mark_the_eight_chosen_edges_of_each_cell():
    space = get_space("darts")
    jitted = jax.jit(lambda a: arch_weights("darts", a))
    for seed in range(5):
        arch = np.asarray(space.sample(jax.random.key(seed)))
        w = np.asarray(arch_weights("darts", arch))
        assert w.shape == edge_weight_shape("darts") == (2, 14, 8) and w.dtype == np.float32
        want = np.zeros((2, 14, 8), np.float32)
        for cell, k in itertools.product(range(2), range(8)):
            node = k // 2  # edges 2i, 2i+1 feed intermediate node i
            inp, op = arch[cell, k]
            want[cell, DARTS_EDGE_OFFSET[node] + inp, op] = 1.0
        np.testing.assert_array_equal(w, want)
        assert w.sum(axis=(1, 2)).tolist() == [8.0, 8.0] and not w[..., 0].any()  # `none` never weighted
        assert w.sum(-1).max() == 1.0  # at most one op per search edge
        np.testing.assert_array_equal(jitted(arch), w)


# ----- derivation --------------------------------------------------------------------------------
def _darts_reference(strength):
    """Brute force: per node the pair of distinct inputs whose strongest non-`none` strengths sum highest."""
    out = np.zeros((2, 8, 2), np.int8)
    for cell in range(2):
        for node in range(4):
            off = DARTS_EDGE_OFFSET[node]
            best = {j: (strength[cell, off + j, 1:].max(), 1 + int(strength[cell, off + j, 1:].argmax()))
                    for j in range(node + 2)}
            pair = max(itertools.combinations(range(node + 2), 2), key=lambda p: best[p[0]][0] + best[p[1]][0])
            for slot, j in enumerate(pair):
                out[cell, 2 * node + slot] = (j, best[j][1])
    return out


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_derived_architectures_are_valid_and_round_trip(space_name):
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    for trial in range(20):
        s = rng.random(edge_weight_shape(space_name))
        if trial % 2:  # `none` strongest everywhere: NB201 may pick it, DARTS never does
            s[..., 0] = 2.0
        a = derive_argmax(space_name, s)
        assert a.dtype == np.int8 and bool(space.is_valid(a))
        np.testing.assert_array_equal(np.asarray(space.from_string(space.to_string(a))), a)
        if space_name == "nb201":
            np.testing.assert_array_equal(a, s.argmax(-1))
        else:
            assert (a[..., 1] != 0).all()
            np.testing.assert_array_equal(a, _darts_reference(s))


def test_darts_derivation_ranks_edges_by_strongest_real_op():
    s = np.zeros((2, 14, 8))
    # node 1 (edges 2..4, inputs 0..2): input 0 has a huge `none` but the weakest real op, so it is dropped
    s[0, 2, 0], s[0, 2, 3] = 9.0, 0.1
    s[0, 3, 5], s[0, 4, 6] = 0.5, 0.3
    # node 3 (edges 9..13, inputs 0..4): inputs 4 and 1 are strongest; the genotype lists inputs sorted
    s[0, 13, 2], s[0, 10, 7], s[0, 9, 0] = 0.9, 0.8, 5.0
    a = derive_argmax("darts", s)
    assert a[0, 2].tolist() == [1, 5] and a[0, 3].tolist() == [2, 6]
    assert a[0, 6].tolist() == [1, 7] and a[0, 7].tolist() == [4, 2]


# ----- methods -----------------------------------------------------------------------------------
def test_exponentiated_gradient_is_mirror_descent_on_the_simplex():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=2).astype(np.float32)
    g = rng.normal(size=(2, 5)).astype(np.float32)
    opt = exponentiated_gradient(0.7)
    upd, _ = opt.update(jnp.asarray(g), opt.init(p), jnp.asarray(p))
    want = p * np.exp(-0.7 * g)
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(p + upd), want, rtol=1e-5, atol=1e-7)
    # a huge step stays finite and on the simplex (all mass on the smallest gradient)
    upd, _ = exponentiated_gradient(1e4).update(jnp.asarray(g), None, jnp.asarray(p))
    q = np.asarray(p + upd)
    assert np.all(np.isfinite(q)) and np.allclose(q.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(q.argmax(-1), g.argmin(-1))


def test_gdas_weights_are_hard_forward_and_soft_backward():
    default = make_method("gdas", "darts")
    assert default.tau(0.0) == 10.0 and default.tau(1.0) == pytest.approx(0.1)
    method = make_method("gdas", "nb201", tau_max=4.0, tau_min=0.5)
    assert method.tau(0.0) == 4.0 and method.tau(1.0) == 0.5 and method.tau(0.5) == pytest.approx(2.25)
    arch = jax.random.normal(jax.random.key(0), (6, 5))
    key, progress = jax.random.key(1), 0.25
    w = np.asarray(method.edge_weights(arch, key, progress))
    gumbel = jax.random.gumbel(key, arch.shape, arch.dtype)
    np.testing.assert_array_equal(w, np.eye(5, dtype=np.float32)[np.argmax(arch + gumbel, -1)])  # exactly one-hot
    c = jax.random.normal(jax.random.key(2), (6, 5))
    g = jax.grad(lambda a: (method.edge_weights(a, key, progress) * c).sum())(arch)
    tau = method.tau(progress)
    want = jax.grad(lambda a: (jax.nn.softmax((a + gumbel) / tau, axis=-1) * c).sum())(arch)
    assert np.abs(np.asarray(g)).min() > 0
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7)  # straight-through: the soft sample's gradient
    # different keys sample different edges
    samples = {np.asarray(method.edge_weights(arch, jax.random.key(s), 0.0)).argmax(-1).tobytes() for s in range(8)}
    assert len(samples) > 1


def test_method_state_shapes_and_strengths():
    key = jax.random.key(0)
    for space in ("nb201", "darts"):
        for name in ("darts", "darts2", "gdas", "snas"):
            m = make_method(name, space)
            a = m.init_arch(key)
            assert a.shape == edge_weight_shape(space) and float(jnp.abs(a).max()) < 1e-2
            np.testing.assert_allclose(m.strengths(a).sum(-1), 1.0, rtol=1e-6)
    m = make_method("anasod-dnas", "darts")
    p = jnp.asarray(np.random.default_rng(0).dirichlet(np.ones(7), size=2), jnp.float32)
    np.testing.assert_array_equal(m.init_arch(key), np.full((2, 7), 1 / 7, np.float32))
    s = np.asarray(m.edge_weights(p, key, 0.0))
    assert s.shape == (2, 14, 8) and not s[..., 0].any()  # `none` gets no weight
    np.testing.assert_array_equal(s[:, 5, 1:], p)
    np.testing.assert_array_equal(s[:, :, 1:], np.broadcast_to(np.asarray(p)[:, None], (2, 14, 7)))


# ----- architecture gradients (float64) ----------------------------------------------------------
def _f64_batches(seed):
    """Two float64 batches ``(x [4, 8, 8, 3], y [4])``; float32-representable images, as ``make_loss`` computes
    in float32 and would round them."""
    rng = np.random.default_rng(seed)
    return [(jnp.asarray(rng.normal(size=(4, 8, 8, 3)).astype(np.float32), jnp.float64),
             jnp.asarray(rng.integers(0, 3, 4), jnp.int32)) for _ in range(2)]


def test_first_order_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        arch = (0.5 * np.random.default_rng(3).normal(size=(6, 5))).astype(np.float32).astype(np.float64)
        graphdef, s = split_supernet(tiny_supernet(arch, channels=2, seed=1))  # the NB201 search cell, BatchNorm
        s = f64(s)
        _, (xv, yv) = _f64_batches(1)
        method = make_method("darts", "nb201")
        loss = make_loss(graphdef, method)
        value, g = jax.jit(lambda p, a, r, xv, yv: arch_gradient(
            loss, method, p, a, r, None, None, xv, yv, jax.random.key(0), 0.0, 0.0, 0.0))(
            s.params, s.arch, s.rest, xv, yv)
        g = np.asarray(arch_value(g))

        @jax.jit
        @jax.vmap
        def val(a):  # the validation loss of softmax(a), all in float64
            return ce64(nnx.merge(graphdef, s.arch, s.params, s.rest, copy=True)(xv, jax.nn.softmax(a, axis=-1)), yv)

        h, basis = 1e-5, jnp.eye(30, dtype=jnp.float64).reshape(30, 6, 5)
        fd = np.asarray((val(arch + h * basis) - val(arch - h * basis)) / (2 * h)).reshape(6, 5)
        assert float(value) == pytest.approx(float(val(jnp.asarray(arch)[None])[0]), rel=1e-6)
    assert g.dtype == np.float64 and np.abs(fd).max() > 1e-3  # a gradient worth checking
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())
    np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-9)  # softmax: shifting an edge's logits changes nothing


class SmoothSupernet(nnx.Module):
    """Two ``MixedOp`` edges over smooth candidates (zero, identity, tanh-convs, average pool); ``w [2, 5]``.

    DARTS's finite-difference Hessian-vector product moves the weights by
    ``0.01`` (in norm): on a tiny ReLU network that radius crosses ReLU kinks
    and its error is not ``O(ε²)`` (the NB201 search cell gets 25% off on
    one edge), so the second-order check runs on a smooth network.
    """

    class Tanh(nnx.Module):
        def __init__(self, c, k, rngs):
            self.conv = nnx.Conv(c, c, (k, k), rngs=rngs)

        def __call__(self, x):
            return jnp.tanh(self.conv(x))

    def __init__(self, arch_init, *, c=3, rngs):
        self.arch = ArchParam(jnp.asarray(arch_init, jnp.float32))
        self.stem = nnx.Conv(3, c, (3, 3), rngs=rngs)
        self.edges = nnx.List([MixedOp([ops.Zero(), ops.Identity(), self.Tanh(c, 1, rngs), self.Tanh(c, 3, rngs),
                                        ops.Pool("avg", 3, 1)]) for _ in range(2)])
        self.fc = nnx.Linear(c, 3, rngs=rngs)

    def __call__(self, x, w, drop=None):
        h = jnp.tanh(self.stem(x))
        for e, op in enumerate(self.edges):
            h = op(h, w[e])
        return self.fc(h.mean(axis=(1, 2)))


def test_second_order_gradient_matches_autodiff_through_the_virtual_step():
    xi, wd = 0.5, 3e-3
    with jax.enable_x64(True):
        arch = (0.5 * np.random.default_rng(4).normal(size=(2, 5))).astype(np.float32).astype(np.float64)
        graphdef, s = split_supernet(SmoothSupernet(arch, rngs=nnx.Rngs(0)))
        s = f64(s)
        (xt, yt), (xv, yv) = _f64_batches(1)

        def ref_loss(params, a, x, y):
            return ce64(nnx.merge(graphdef, s.arch, params, s.rest, copy=True)(x, jax.nn.softmax(a, axis=-1)), y)

        method = make_method("darts2", "nb201")
        assert method.second_order
        loss = make_loss(graphdef, method)
        value, g2 = jax.jit(lambda p, a, r, xt, yt, xv, yv: arch_gradient(
            loss, method, p, a, r, xt, yt, xv, yv, jax.random.key(0), 0.0, xi, wd))(
            s.params, s.arch, s.rest, xt, yt, xv, yv)
        g2 = np.asarray(arch_value(g2))

        def virtual(a):  # w' = w - xi (grad_w L_train(w, a) + wd w)
            g_w = jax.grad(ref_loss)(s.params, a, xt, yt)
            return jax.tree.map(lambda w, g: w - xi * (g + wd * w), s.params, g_w)

        @jax.jit
        def reference(a):
            exact = jax.grad(lambda a: ref_loss(virtual(a), a, xv, yv))(a)  # autodiff through the virtual step
            value, direct = jax.value_and_grad(ref_loss, argnums=1)(virtual(a), a, xv, yv)  # w' held fixed
            first = jax.grad(ref_loss, argnums=1)(s.params, a, xv, yv)  # first order, at w
            return exact, direct, first, value

        exact, direct, first, unrolled_value = map(np.asarray, reference(jnp.asarray(arch)))
    assert float(value) == pytest.approx(float(unrolled_value), rel=1e-6)  # L_val at w'
    correction = exact - direct  # -xi * (d2 L_train / d alpha d w) . grad_w' L_val: what the FD estimates
    tol = 1e-3 * np.abs(correction).max()
    assert np.abs(correction).max() > 1e-4
    np.testing.assert_allclose(g2 - direct, correction, rtol=0, atol=tol)
    np.testing.assert_allclose(g2, exact, rtol=0, atol=tol)
    # the check has teeth: a flipped correction, xi dropped (0.5) or the first-order gradient is off by >> tol
    assert np.abs(correction).max() > 100 * tol and np.abs(g2 - first).max() > 100 * tol


# ----- the bilevel step and loop -----------------------------------------------------------------
def _search_steps(method, arch0, n_steps=5):
    """``(state, metrics)`` after each of ``n_steps`` bilevel steps of a tiny NB201 supernet (3 channels)."""
    model = tiny_supernet(arch0, channels=3)
    cfg = search_config(1, overrides=dict(batch_size=8))
    graphdef, state = split_supernet(model)
    w_opt, a_opt, schedule = make_optimizer(cfg, n_steps), method.arch_optimizer(), make_schedule(cfg, n_steps)
    step = make_search_step(graphdef, method, w_opt, a_opt, cfg, schedule,
                            mean=np.full(3, 127.0), std=np.full(3, 70.0))
    # committed like search_supernet's (uncommitted first arguments would compile the step a second time)
    state, w_state, a_state = replicate(make_mesh(), (state, w_opt.init(state.params), a_opt.init(state.arch)))
    for i in range(n_steps):
        xt, yt = images(8, 2 * i)
        xv, yv = images(8, 2 * i + 1)
        state, w_state, a_state, m = step(state, w_state, a_state, xt, yt, xv, yv, jax.random.key(i),
                                          jnp.int32(i), jnp.float32(i / n_steps))
        assert all(np.isfinite(float(v)) for v in m.values())
        yield state, m


def test_anasod_step_keeps_the_distribution_on_the_simplex():
    method = make_method("anasod-dnas", "nb201")
    uniform = np.full((1, 5), 0.2, np.float32)
    for state, _ in _search_steps(method, method.init_arch(jax.random.key(0))):
        p = np.asarray(arch_value(state.arch))
        assert p.shape == (1, 5) and (p >= 0).all() and p.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.abs(p - uniform).max() > 1e-2


def _search_setup():
    method = make_method("darts", "nb201")
    cfg = search_config(2, overrides=dict(batch_size=8, eval_batch_size=8))
    return method, cfg, images(64, 0)


def test_search_resumes_where_an_uninterrupted_run_ends(tmp_path, monkeypatch):
    # the three runs have the same method, config, data sizes and mesh: compile their step once, not three times
    built, real = [], oneshot.make_search_step

    def once(*args, **kwargs):
        if not built:
            built.append(real(*args, **kwargs))
        return built[0]

    monkeypatch.setattr(oneshot, "make_search_step", once)
    method, cfg, data = _search_setup()
    arch0 = method.init_arch(jax.random.key(7))
    key = jax.random.key(1)
    ref = search_supernet(tiny_supernet(arch0), method, data, cfg, key=key)
    assert [r["epoch"] for r in ref.history] == [1, 2] and ref.resumed_from == 0
    assert not np.array_equal(ref.arch, np.asarray(arch0))  # the architecture did move

    class Stop(Exception):
        pass

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Stop

    ck = tmp_path / "ck"
    with pytest.raises(Stop):
        search_supernet(tiny_supernet(arch0), method, data, cfg, key=key, checkpoint_dir=ck, on_epoch=stop_after_first)
    seen = []
    res = search_supernet(tiny_supernet(arch0), method, data, cfg, key=key, checkpoint_dir=ck, on_epoch=seen.append)
    assert res.resumed_from == 1 and [r["epoch"] for r in seen] == [2]
    np.testing.assert_array_equal(res.arch, ref.arch)
    np.testing.assert_array_equal(res.derived, ref.derived)
    assert strip_times(res.history) == strip_times(ref.history)
    for a, b in zip(jax.tree.leaves(res.state), jax.tree.leaves(ref.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the finished run reruns without a step; another method option, config or key is refused before any step
    again = search_supernet(tiny_supernet(arch0), method, data, cfg, key=key, checkpoint_dir=ck)
    assert again.resumed_from == 2 and strip_times(again.history) == strip_times(ref.history)
    np.testing.assert_array_equal(again.arch, ref.arch)
    other = make_method("darts", "nb201", arch_lr=1e-3)
    for args, diff in (((other, data, cfg), "options.arch_lr: 0.0003 (checkpoint) vs 0.001 (now)"),
                       ((method, data, cfg.replace(lr=0.05)), "config.lr: 0.025 (checkpoint) vs 0.05 (now)"),
                       ((method, images(48, 0), cfg), "n_train: 64 (checkpoint) vs 48 (now)")):
        with pytest.raises(CheckpointMismatch, match=f"^checkpoint_dir: {re.escape(str(ck))} holds a checkpoint "
                                                     r"of a different run \(.*" + re.escape(diff)) as info:
            search_supernet(tiny_supernet(arch0), *args, key=key, checkpoint_dir=ck)
        assert "\n" not in str(info.value)
    with pytest.raises(CheckpointMismatch, match=r"key: "):
        search_supernet(tiny_supernet(arch0), method, data, cfg, key=jax.random.key(2), checkpoint_dir=ck)
    assert len(built) == 1


def test_anasod_derivation_samples_cells_with_the_rounded_op_counts():
    space = get_space("nb201")
    p = np.array([[0.1, 0.3, 0.05, 0.4, 0.15]], np.float32)
    counts = np.asarray(opdist.round_to_grid(p, 6))[0]
    assert counts.tolist() == [1, 2, 0, 2, 1]  # floor(6p) = [0, 1, 0, 2, 0] + the 3 largest remainders
    method = make_method("anasod-dnas", "nb201", derive_samples=4)
    model = nb201_supernet(p)
    cfg = search_config(1, overrides=dict(eval_batch_size=8))
    graphdef, state = split_supernet(model)
    mesh = make_mesh()
    mean, std = np.full(3, 127.0), np.full(3, 70.0)
    arch_eval = make_arch_eval(graphdef, method, cfg, mean=mean, std=std, mesh=mesh)
    data = images(12, 5)  # 12 = one full and one padded batch of 8
    key = jax.random.key(4)
    arch, loss = derive(method, state, p, arch_eval, data, cfg, mesh, key, space)
    assert arch.dtype == np.int8 and arch.shape == (6,) and bool(space.is_valid(arch))
    assert np.bincount(arch, minlength=5).tolist() == counts.tolist()
    np.testing.assert_array_equal(np.asarray(opdist.counts(arch, space)), counts)
    # the kept sample is the lowest-loss one of the derive_samples candidates
    cands = [np.asarray(opdist.decode(k, jnp.asarray(counts[None]), space)) for k in jax.random.split(key, 4)]
    losses = [evaluate_weights(arch_eval, state, arch_weights("nb201", c), data, 8, mesh)[0] for c in cands]
    assert loss == pytest.approx(min(losses), rel=1e-6)
    np.testing.assert_array_equal(arch, cands[int(np.argmin(losses))])
    with pytest.raises(JnasError, match="^space_obj: got None"):
        derive(method, state, p, arch_eval, data, cfg, mesh, key, None)


# ----- data parallel -----------------------------------------------------------------------------
_SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    from test_oneshot import images, tiny_supernet
    from jnas.train.oneshot import search_config, search_supernet
    from jnas.train.oneshot_methods import make_method
    from jnas.train.sharding import make_mesh, replicate

    method = make_method("darts", "nb201")
    arch0 = method.init_arch(jax.random.key(7))
    cfg = search_config(1, overrides=dict(batch_size=8, eval_batch_size=8))
    out = {{"devices": len(jax.devices()), "runs": []}}
    states = []
    for mesh in (make_mesh(jax.devices()[:1]), make_mesh()):
        res = search_supernet(tiny_supernet(arch0), method, images(64, 0), cfg, key=jax.random.key(1), mesh=mesh)
        states.append([np.asarray(a, np.float64) for a in jax.tree.leaves(res.state)])
        n_dev = len(jax.tree.leaves(res.state.params)[0].sharding.device_set)
        out["runs"].append({{"mesh_devices": n_dev, "history": res.history, "arch": res.arch.tolist()}})
    # per leaf, relative to the leaf's scale (BatchNorm variances and some weights are well above 1)
    out["max_diff"] = max(float(np.abs(a - b).max() / max(1.0, np.abs(a).max())) for a, b in zip(*states))
    names = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(res.state)]
    out["leaf_diffs"] = sorted([[float(np.abs(a - b).max()), n] for n, a, b in zip(names, *states)], reverse=True)[:5]
    out["arch_diff"] = float(np.abs(np.subtract(*(r["arch"] for r in out["runs"]))).max())
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_search_matches_single_device():
    # LLVM optimisation off: both runs compile twice as fast, and they are compared with each other only
    flags = "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    script = _SHARDED_SCRIPT.format(tests=str(ROOT / "tests"))
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    out = json.loads(line[len("RESULT"):])
    one, four = out["runs"]
    assert out["devices"] == 4 and one["mesh_devices"] == 1 and four["mesh_devices"] == 4
    # 4 steps with each batch split 4 ways (BatchNorm statistics over the global batch) == 4 steps on one device
    # float32 summation order only (~1e-5 on the stem BatchNorm after 4 steps); per-shard BatchNorm
    # statistics or a missing cross-device reduction would be off by orders of magnitude more
    assert out["max_diff"] < 1e-4, out["leaf_diffs"]
    assert out["arch_diff"] < 1e-6
    for a, b in zip(one["history"], four["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        assert a["derived"] == b["derived"]


# ----- bad inputs --------------------------------------------------------------------------------
def _supernet(space="nb201", **options):
    return build_supernet(space, np.zeros((6, 5)), num_classes=3, rngs=nnx.Rngs(0), **options)


BAD_INPUTS = {
    "method-typo": (lambda: make_method("dart", "nb201"),
                    r"^--method: got 'dart', expected one of .*\(did you mean 'darts'\?\)$"),
    "space": (lambda: make_method("darts", "nb101"), r"^--space: got 'nb101', expected one of nb201, darts"),
    "tau-order": (lambda: make_method("gdas", "nb201", tau_min=5, tau_max=1),
                  r"^--set tau_min: got 5\.0, expected at most tau_max=1\.0$"),
    "unknown-option": (lambda: make_method("darts", "nb201", bogus=1),
                       r"^--set bogus: unknown option for method 'darts'; valid options: arch_lr, "
                       r"arch_weight_decay, warmup_epochs, early_stop, stable_epochs$"),
    "arch-lr": (lambda: make_method("darts2", "darts", arch_lr=0),
                r"^--set arch_lr: got 0(\.0)?, expected a positive number$"),
    "int-option": (lambda: make_method("anasod-dnas", "nb201", derive_samples="many"),
                   r"^--set derive_samples: got 'many'"),
    "int-not-rounded": (lambda: make_method("anasod-dnas", "nb201", derive_samples=2.5),
                        r"^--set derive_samples: got 2\.5, expected an integer >= 1$"),
    "model-option": (lambda: _supernet(foo=1),
                     r"^--model: got 'foo', expected a supernet option of nb201: channels, cells_per_stage$"),
    "channels": (lambda: _supernet(channels=0), r"channels: got 0, expected an integer >= 1$"),
    "supernet-space": (lambda: _supernet("nb101"), r"^space: got 'nb101'"),
    "strength-shape": (lambda: derive_argmax("darts", np.zeros((14, 8))),
                       r"^strength: got \(14, 8\), expected an array of shape"),
}


@pytest.mark.parametrize("call, pattern", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs_give_one_line_errors(call, pattern):
    with pytest.raises(JnasError, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)


def test_search_refuses_bad_batch_and_config():
    method, cfg, data = _search_setup()
    model = tiny_supernet(method.init_arch(jax.random.key(0)))
    with pytest.raises(JnasError, match=r"^batch_size: got 64, expected at most half the training set \(32\)$"):
        search_supernet(model, method, data, cfg.replace(batch_size=64), key=jax.random.key(0))
    with pytest.raises(JnasError, match=r"^config: got 'dict', expected a TrainConfig$"):
        search_supernet(model, method, data, {"epochs": 1}, key=jax.random.key(0))


def test_anasod_derivation_skips_nan_candidates(monkeypatch):
    losses = iter([float("nan"), 2.0, 1.0, float("nan")])
    seen = []

    def fake_eval(arch_eval, state, weights, data, batch_size, mesh):
        seen.append(np.asarray(weights))
        return next(losses), 50.0

    monkeypatch.setattr(oneshot, "evaluate_weights", fake_eval)
    method = make_method("anasod-dnas", "nb201", derive_samples=4)
    p = np.full((1, 5), 0.2, np.float32)
    arch, loss = oneshot.derive(method, None, p, None, None, search_config(1), None, jax.random.key(0),
                                get_space("nb201"))
    assert loss == 1.0 and np.array_equal(arch_weights("nb201", arch), seen[2])
    losses = iter([float("nan")] * 4)
    arch, loss = oneshot.derive(method, None, p, None, None, search_config(1), None, jax.random.key(0),
                                get_space("nb201"))
    assert loss is None and bool(get_space("nb201").is_valid(arch))


def test_snas_weights_are_soft_concrete_samples_annealed_geometrically():
    default = make_method("snas", "darts")
    assert default.tau(0.0) == 1.0 and default.tau(1.0) == pytest.approx(0.03)
    m = make_method("snas", "nb201", tau_max=2.0, tau_min=0.5)
    assert m.tau(0.5) == pytest.approx(1.0)  # geometric: the mean of the logs
    arch = jax.random.normal(jax.random.key(0), (6, 5))
    key = jax.random.key(1)
    w = np.asarray(m.edge_weights(arch, key, 0.0))
    gumbel = jax.random.gumbel(key, arch.shape, arch.dtype)
    np.testing.assert_allclose(w, jax.nn.softmax((arch + gumbel) / 2.0, axis=-1), rtol=1e-6)
    assert np.all(w > 0) and np.all(w < 1)  # soft: every op keeps a share (GDAS would be one-hot)
    # colder is closer to one-hot, with the same sampled argmax
    cold = np.asarray(make_method("snas", "nb201", tau_max=0.01, tau_min=0.01).edge_weights(arch, key, 0.0))
    assert cold.max(-1).min() > 0.99 and np.array_equal(cold.argmax(-1), w.argmax(-1))
    np.testing.assert_allclose(m.strengths(arch), jax.nn.softmax(arch, axis=-1), rtol=1e-6)


def test_snas_resource_penalty_moves_mass_to_cheaper_ops():
    from jnas.train.oneshot_methods import op_parameters

    np.testing.assert_array_equal(op_parameters("nb201", 16), [0, 0, 256, 2304, 0])
    np.testing.assert_array_equal(op_parameters("darts", 16), [0, 0, 0, 0, 800, 1312, 400, 656])
    free = make_method("snas", "nb201")
    arch = jnp.zeros((6, 5))
    assert float(free.arch_penalty(arch)) == 0.0 and float(jnp.abs(jax.grad(free.arch_penalty)(arch)).max()) == 0.0
    m = make_method("snas", "nb201", resource_lambda=0.1)
    g = np.asarray(jax.grad(m.arch_penalty)(arch))
    # ∂E[C]/∂α_k = p_k (c_k - E[C]): descending it lowers the 3x3 conv (above the mean cost) and raises the
    # free ops most, the 1x1 conv (below the mean at uniform weights) less
    assert np.all(g[:, 3] > 0) and np.all(g[:, [0, 1, 4]] < g[:, [2]]) and np.all(g[:, 2] < 0)
    opt = m.arch_optimizer()
    state, a = opt.init(arch), arch
    for _ in range(50):
        upd, state = opt.update(jax.grad(m.arch_penalty)(a), state, a)
        a = optax.apply_updates(a, upd)
    assert float(m.expected_cost(a)) < float(m.expected_cost(arch))
    with pytest.raises(JnasError, match="resource_lambda"):
        make_method("snas", "nb201", resource_lambda=-1.0)


def test_snas_search_step_applies_the_resource_penalty():
    method = make_method("snas", "nb201", resource_lambda=1.0, arch_lr=0.05)
    arch0 = method.init_arch(jax.random.key(0))
    steps = list(_search_steps(method, arch0))
    # the reported loss is the cross-entropy, not loss + penalty (~7.3)
    assert all(float(m["val_loss"]) < 5.0 for _, m in steps)
    a = arch_value(steps[-1][0].arch)
    # a strong constraint outweighs the tiny task: the expected cost falls, the 3x3 conv loses most
    assert float(method.expected_cost(a)) < 0.8 * float(method.expected_cost(arch0))
    assert np.all(np.asarray(a)[:, 3] < np.asarray(arch0)[:, 3])


def _nb201_record(arch, derived):
    return {"arch": np.asarray(arch, np.float32).tolist(), "derived": list(derived)}


def test_darts_plus_stop_triggers_on_crafted_histories_and_not_on_a_healthy_one():
    from jnas.train.oneshot_methods import early_stop_reason

    skip = darts_space.OPS.index("skip_connect")
    rng = np.random.default_rng(0)
    healthy = [_nb201_record(rng.normal(size=(6, 5)), [3, 2, 1, 3, 4, 2]) for _ in range(6)]
    for rule in ("none", "skip", "rank", "both"):
        assert early_stop_reason(make_method("darts", "nb201", early_stop=rule, stable_epochs=3), healthy) is None
    # two skip connections in the derived cell
    collapsed = healthy + [_nb201_record(rng.normal(size=(6, 5)), [1, 1, 3, 3, 2, 2])]
    assert early_stop_reason(make_method("darts", "nb201", early_stop="skip"), collapsed).startswith("skip")
    assert early_stop_reason(make_method("darts", "nb201", early_stop="rank"), collapsed) is None
    # DARTS: the normal cell (0) counts, the reduction cell (1) does not
    geno = np.zeros((2, 8, 2), np.int8)
    geno[..., 1] = darts_space.OPS.index("sep_conv_3x3")
    geno[1, :3, 1] = skip
    rec = {"arch": np.zeros((2, 14, 8)).tolist(), "derived": geno.tolist()}
    assert early_stop_reason(make_method("gdas", "darts", early_stop="skip"), [rec]) is None
    geno[0, [2, 5], 1] = skip
    rec = {"arch": np.zeros((2, 14, 8)).tolist(), "derived": geno.tolist()}
    assert "2 skip connections" in early_stop_reason(make_method("gdas", "darts", early_stop="both"), [rec])
    # a ranking of the learnable ops (the two convolutions) unchanged for stable_epochs epochs
    base = rng.normal(size=(6, 5))
    drift = [_nb201_record(base + 1e-3 * i * rng.normal(size=(6, 5)) * np.array([1, 1, 0, 0, 1]), [3] * 6)
             for i in range(4)]  # only the non-learnable ops move
    m = make_method("darts", "nb201", early_stop="rank", stable_epochs=3)
    assert early_stop_reason(m, drift).startswith("rank")
    assert early_stop_reason(m, drift[:3]) is None  # fewer than stable_epochs + 1 records
    flipped = np.array(base)
    flipped[0, [2, 3]] = flipped[0, [3, 2]]
    assert early_stop_reason(m, drift[:3] + [_nb201_record(flipped, [3] * 6)]) is None


def test_search_stops_early_and_a_rerun_does_not_continue(tmp_path):
    method = make_method("darts", "nb201", early_stop="rank", stable_epochs=1, arch_lr=1e-12)
    cfg = search_config(4, overrides=dict(batch_size=8, eval_batch_size=8))
    data = images(32, 0)
    arch0 = method.init_arch(jax.random.key(3))
    ck = tmp_path / "ck"
    res = search_supernet(tiny_supernet(arch0), method, data, cfg, key=jax.random.key(1), checkpoint_dir=ck)
    # α barely moves, so its ranking is the same after epochs 1 and 2: stop there, not at epoch 4
    assert [r["epoch"] for r in res.history] == [1, 2] and res.history[-1]["early_stop"].startswith("rank")
    again = search_supernet(tiny_supernet(arch0), method, data, cfg, key=jax.random.key(1), checkpoint_dir=ck)
    assert [r["epoch"] for r in again.history] == [1, 2] and again.resumed_from == 2
