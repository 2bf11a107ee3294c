"""The search cells' batched edges (``run_edges``) compute what the edges called one by one compute."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jnas.models import ops
from jnas.models.supernet import (
    DARTS_SEARCH_EDGES,
    DartsSearchCell,
    MixedOp,
    NB201SearchCell,
    fan_out,
    node_softmax,
    run_edges,
)
from jnas.spaces import darts as darts_space
from jnas.spaces import nb201 as nb201_space


def _cell(batch_edges: bool, *, reduction: bool, op_mask=None, partial: int = 1):
    return DartsSearchCell(6, 6, 4, reduction=reduction, reduction_prev=False, rngs=nnx.Rngs(3), op_mask=op_mask,
                           partial=partial, batch_edges=batch_edges)


def _run(cell, inputs, w, drop):
    """Output, gradients (weights and edge weights) and BatchNorm statistics after one training-mode call."""
    graphdef, params, rest = nnx.split(cell, nnx.Param, ...)

    def loss(p, w):
        m = nnx.merge(graphdef, p, rest, copy=True)
        out = m(*inputs, w, drop)
        return jnp.sum(jnp.sin(out)), (out, nnx.split(m, nnx.Param, ...)[2])

    (_, (out, new_rest)), (g_p, g_w) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, w)
    return out, g_p, g_w, new_rest


def _mask(rng):
    """A P-DARTS-like mask: 3 ops per edge (``skip_connect`` and a conv among them on the out-edges of states 0 and
    1, each of which shares one set: two batched groups of 4), a random set on the other edges."""
    mask = np.zeros((DARTS_SEARCH_EDGES, darts_space.N_OPS), bool)
    for e in range(DARTS_SEARCH_EDGES):
        mask[e, rng.choice(darts_space.N_OPS, 3, replace=False)] = True
    names = darts_space.OPS
    for edges, kept in (([0, 2, 5, 9], ("skip_connect", "sep_conv_3x3", "avg_pool_3x3")),
                        ([1, 3, 6, 10], ("skip_connect", "dil_conv_5x5", "none"))):
        mask[edges] = False
        mask[np.ix_(edges, [names.index(n) for n in kept])] = True
    return mask


def _check(reduction, *, full_ops=False, partial=1, dropout=False):
    rng = np.random.default_rng(0)
    mask = None if full_ops else _mask(rng)
    s0, s1 = (jnp.asarray(rng.standard_normal((2, 8, 8, 6)), jnp.float32) for _ in range(2))
    w = jax.nn.softmax(jnp.asarray(rng.standard_normal((DARTS_SEARCH_EDGES, darts_space.N_OPS)), jnp.float32))
    if partial > 1:
        w = w * node_softmax("darts", jnp.asarray(rng.standard_normal(DARTS_SEARCH_EDGES), jnp.float32))[:, None]
    drop = (jnp.float32(0.3), jax.random.key(5)) if dropout else None
    kw = {"op_mask": mask, "partial": partial}
    _compare(_run(_cell(True, reduction=reduction, **kw), (s0, s1), w, drop),
             _run(_cell(False, reduction=reduction, **kw), (s0, s1), w, drop))


def _compare(ours, ref):
    for name, a, b in zip(("output", "weight gradients", "edge-weight gradients", "BatchNorm statistics"), ours, ref):
        pairs = [(np.asarray(x, np.float64), np.asarray(y, np.float64))
                 for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)]
        scale = max(np.abs(y).max() for _, y in pairs)  # float32 sums in another order: at the tree's scale
        assert max(np.abs(x - y).max() for x, y in pairs) <= 1e-5 * scale, name
    stats = [np.asarray(s) for s in jax.tree.leaves(ours[3])]
    assert any(np.abs(s - np.round(s)).max() > 0 for s in stats)  # the statistics moved from their 0 / 1 start


def test_batched_pruned_edges_with_skip_dropout_equal_edges_called_one_by_one():
    _check(False, dropout=True)


def test_batched_pruned_partial_channel_reduction_edges_equal_edges_called_one_by_one():
    _check(True, partial=2)


@pytest.mark.parametrize("kw", [{}, {"partial": 2, "op_mask": np.arange(30).reshape(6, 5) % 3 != 0}])
def test_batched_nb201_edges_equal_edges_called_one_by_one(kw):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 4)), jnp.float32)
    w = jax.nn.softmax(jnp.asarray(rng.standard_normal((nb201_space.N_EDGES, nb201_space.N_OPS)), jnp.float32))
    drop = (jnp.float32(0.3), jax.random.key(5))
    _compare(*(_run(NB201SearchCell(4, rngs=nnx.Rngs(3), batch_edges=b, **kw), (x,), w, drop) for b in (True, False)))


@pytest.mark.slow
@pytest.mark.parametrize("reduction", [False, True])
def test_batched_edges_of_every_op_equal_edges_called_one_by_one(reduction):
    _check(reduction, full_ops=True)


def test_batched_edges_trace_a_smaller_program():
    """What the batching is for: the out-edges of a state trace one copy of each op, not one per edge."""
    rng = np.random.default_rng(1)
    s0, s1 = (jnp.asarray(rng.standard_normal((2, 8, 8, 6)), jnp.float32) for _ in range(2))
    w = jnp.full((DARTS_SEARCH_EDGES, darts_space.N_OPS), 1 / darts_space.N_OPS, jnp.float32)

    def size(batch_edges):
        graphdef, state = nnx.split(_cell(batch_edges, reduction=False))
        jaxpr = jax.make_jaxpr(lambda st: nnx.merge(graphdef, st)(s0, s1, w))(state)
        return len(jaxpr.eqns) + sum(len(j.eqns) for e in jaxpr.eqns for j in jax.core.jaxprs_in_params(e.params))

    assert size(True) < 0.5 * size(False)


@pytest.mark.parametrize("stride, size", [(1, 8), (2, 8), (2, 7)])
def test_pointwise_conv_is_the_one_by_one_conv(stride, size):
    """Same parameter (name, shape, initial values from the same stream) and output as ``ops.conv(.., 1, s, 0)``."""
    ours = ops.PointwiseConv(5, 3, stride, rngs=nnx.Rngs(7))
    theirs = ops.conv(5, 3, 1, stride, 0, rngs=nnx.Rngs(7))
    assert jax.tree.map(jnp.shape, nnx.state(ours, nnx.Param)) == jax.tree.map(jnp.shape, nnx.state(theirs, nnx.Param))
    np.testing.assert_array_equal(ours.kernel[...], theirs.kernel[...])
    x = jax.random.normal(jax.random.key(0), (2, size, size, 5))
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stride", [1, 2])
def test_run_edges_with_grouped_depthwise_convolutions(stride):
    """The formulation other backends take (XLA's grouped convolution, ``shifts=False``) batches the same way."""
    names = ("sep_conv_3x3", "dil_conv_5x5", "skip_connect")

    def mixed_ops():
        rngs = nnx.Rngs(4)
        mods = [MixedOp([DartsSearchCell._candidate(n, 4, stride, rngs) for n in names]) for _ in range(3)]
        for m in mods:
            m.set_attributes(shifts=False, raise_if_not_found=True)
        return nnx.List(mods)

    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 4)), jnp.float32)
    w = jax.nn.softmax(jnp.asarray(rng.standard_normal((3, len(names))), jnp.float32))

    def call(batched):
        return lambda mods, w: (run_edges(list(mods), x, w, [0, 1, 2], None) if batched
                                else [m(x, w[e]) for e, m in enumerate(mods)])

    _compare(*(_run(_Wrap(mixed_ops(), call(b)), (), w, None) for b in (True, False)))


class _Wrap(nnx.Module):
    """``(w, drop) -> stacked outputs`` of ``call(mods, w)`` (``drop`` unused)."""

    def __init__(self, mods, call):
        self.mods = mods
        self.call = call

    def __call__(self, w, drop):
        return jnp.stack(self.call(self.mods, w))


def test_fan_out_copies_the_input_and_adds_the_copies_gradients():
    """``fan_out``: n stacked copies; its gradient (also under jit and vmap) is the sum of the copies' gradients,
    what broadcasting gives."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4)), jnp.float32)
    c = jnp.asarray(np.random.default_rng(1).normal(size=(4, 2, 3, 4)), jnp.float32)
    np.testing.assert_array_equal(fan_out(x, 4), jnp.broadcast_to(x, (4, 2, 3, 4)))
    ours = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(fan_out(x, 4)) * c)))(x)
    ref = jax.grad(lambda x: jnp.sum(jnp.sin(jnp.broadcast_to(x, (4, 2, 3, 4))) * c))(x)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
    per_row = jax.vmap(jax.grad(lambda x, c: jnp.sum(fan_out(x, 4) * c)), in_axes=(0, 1))(x, c)
    np.testing.assert_allclose(per_row, jnp.sum(c, axis=0), rtol=1e-6, atol=1e-6)
