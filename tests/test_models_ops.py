"""The op library of jnas.models.ops: shapes, semantics, parameter counts, modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import apply_jit as _apply
from helpers import real_weights as _real

from jnas.errors import JnasError
from jnas.models import cost, ops
from jnas.spaces import darts


def _x(shape=(2, 8, 8, 4), seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _shape(module, x):
    """Output shape of ``module(x)`` by abstract evaluation (no XLA compilation)."""
    graphdef, state = nnx.split(module)
    return jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, x).shape


def _abstract(make):
    return nnx.eval_shape(make)


def _input_support(module, x, out_index):
    """Boolean [H, W]: input pixels that output pixel ``out_index`` (row, col) depends on (eval mode)."""
    module.eval()  # per-channel affine BN: no mixing across pixels
    graphdef, state = nnx.split(module)

    def f(x, s):
        return nnx.merge(graphdef, s)(x)[0, out_index[0], out_index[1], :].sum()

    g = jax.jit(jax.grad(f))(jnp.abs(x) + 0.1, state)  # positive: every ReLU passes gradient
    return np.asarray(jnp.abs(g[0]).sum(-1) > 0)


def test_darts_ops_cover_the_space_and_keep_or_halve_shape():
    assert set(ops.DARTS_OPS) == set(darts.OPS)
    x = _x()
    for name, factory in ops.DARTS_OPS.items():
        for stride, hw in ((1, 8), (2, 4)):
            module = _abstract(lambda f=factory, s=stride: f(4, s, nnx.Rngs(0)))
            assert _shape(module, x) == (2, hw, hw, 4), (name, stride)
    rngs = nnx.Rngs(0)
    assert isinstance(ops.DARTS_OPS["skip_connect"](4, 1, rngs), ops.Identity)
    assert isinstance(_abstract(lambda: ops.DARTS_OPS["skip_connect"](4, 2, nnx.Rngs(0))), ops.FactorizedReduce)
    assert isinstance(ops.DARTS_OPS["none"](4, 2, rngs), ops.Zero)
    # affine=False (supernets) drops the BN parameters
    sep = _abstract(lambda: ops.DARTS_OPS["sep_conv_3x3"](4, 1, nnx.Rngs(0), affine=False))
    assert cost.count_params(sep) == 2 * (9 * 4 + 4 * 4)


def test_relu_conv_bn_params_and_padding():
    x = _x()
    m = _abstract(lambda: ops.ReLUConvBN(4, 6, 3, rngs=nnx.Rngs(0)))
    assert cost.count_params(m) == 9 * 4 * 6 + 2 * 6  # no conv bias; BN scale+shift
    assert cost.count_params(_abstract(lambda: ops.ReLUConvBN(4, 6, 3, affine=False, rngs=nnx.Rngs(0)))) == 9 * 4 * 6
    assert _shape(m, x) == (2, 8, 8, 6)
    assert _shape(_abstract(lambda: ops.ReLUConvBN(4, 6, 3, 2, rngs=nnx.Rngs(0))), x) == (2, 4, 4, 6)
    explicit = _abstract(lambda: ops.ReLUConvBN(4, 6, 3, 1, 0, rngs=nnx.Rngs(0)))
    assert _shape(explicit, x) == (2, 6, 6, 6)
    assert _shape(_abstract(lambda: ops.ReLUConvBN(4, 6, 3, dilation=2, rngs=nnx.Rngs(0))), x) == (2, 8, 8, 6)
    assert _shape(_abstract(lambda: ops.ReLUConvBN(4, 6, 5, 2, rngs=nnx.Rngs(0))), x) == (2, 4, 4, 6)
    cbr = _abstract(lambda: ops.ConvBNReLU(4, 6, 3, rngs=nnx.Rngs(0)))
    assert cost.count_params(cbr) == 9 * 4 * 6 + 2 * 6
    assert _shape(cbr, x) == (2, 8, 8, 6)


def test_relu_conv_bn_and_conv_bn_relu_orders():
    x = _x()
    rcb = _real(lambda: ops.ReLUConvBN(4, 6, 3, rngs=nnx.Rngs(0)))
    rcb.eval()
    # ReLU first: the negative part of the input is invisible
    np.testing.assert_allclose(_apply(rcb, jnp.minimum(x, 0.0) - 1.0), _apply(rcb, jnp.zeros_like(x)), atol=1e-6)
    assert float(_apply(rcb, x).min()) < 0.0  # and the output is not clipped
    cbr = _real(lambda: ops.ConvBNReLU(4, 6, 3, rngs=nnx.Rngs(0)))
    cbr.eval()
    y = _apply(cbr, x)
    assert float(y.min()) == 0.0 and float(y.max()) > 0.0  # ReLU last


@pytest.mark.parametrize("kernel", [3, 5])
def test_sep_and_dil_conv_param_counts_by_formula(kernel):
    c_in, c_out = 4, 6
    k2 = kernel * kernel
    sep = _abstract(lambda: ops.SepConv(c_in, c_out, kernel, 1, rngs=nnx.Rngs(0)))
    expected_sep = (k2 * c_in + c_in * c_in + 2 * c_in) + (k2 * c_in + c_in * c_out + 2 * c_out)
    assert cost.count_params(sep) == expected_sep
    dil = _abstract(lambda: ops.DilConv(c_in, c_out, kernel, 2, 2, rngs=nnx.Rngs(0)))
    assert cost.count_params(dil) == k2 * c_in + c_in * c_out + 2 * c_out
    assert _shape(dil, _x()) == (2, 4, 4, c_out)
    assert _shape(sep, _x()) == (2, 8, 8, c_out)


def test_dil_and_sep_conv_receptive_fields():
    m = _real(lambda: ops.DilConv(2, 2, 3, 1, 2, rngs=nnx.Rngs(0)))
    support = _input_support(m, _x((1, 9, 9, 2)), (4, 4))
    expected = np.zeros((9, 9), bool)
    expected[2:7:2, 2:7:2] = True
    np.testing.assert_array_equal(support, expected)
    # SepConv stacks two 3x3 convs: a 5x5 receptive field (its inner ReLU may
    # cut some paths, so check containment and reach)
    sep = _real(lambda: ops.SepConv(2, 2, 3, 1, rngs=nnx.Rngs(0)))
    support = _input_support(sep, _x((1, 9, 9, 2)), (4, 4))
    window = np.zeros((9, 9), bool)
    window[2:7, 2:7] = True
    assert not np.any(support & ~window)
    assert np.any(support[2]) or np.any(support[6]) or np.any(support[:, 2]) or np.any(support[:, 6])


@pytest.mark.parametrize("kernel,stride,dilation,size,padding", [
    (3, 1, 1, 8, None), (5, 2, 2, 9, None), (3, 2, 1, 7, None), (5, 1, 2, 8, None), (3, 2, 1, 8, None),
    (3, 1, 1, 7, 0), (3, 2, 1, 9, 0), (5, 2, 1, 8, 4), (3, 3, 2, 10, 1), (1, 2, 1, 7, 0), (3, 1, 2, 6, 3)])
def test_depthwise_shift_formulation_equals_grouped_convolution(kernel, stride, dilation, size, padding):
    """The fused-slices depthwise conv (the CPU default, with its hand-written gradient) is the grouped
    convolution: values and both gradients, for odd and even sizes, strides 1-3, no, usual and extra padding."""
    x = _x((2, size, size + 1, 3))
    k = jnp.asarray(np.random.default_rng(1).normal(size=(kernel, kernel, 1, 3)), jnp.float32)
    r = jnp.asarray(np.random.default_rng(2).normal(size=ops.depthwise_conv(x, k, stride, dilation, padding,
                                                                            shifts=False).shape), jnp.float32)

    def loss(x, k, shifts):
        return jnp.vdot(ops.depthwise_conv(x, k, stride, dilation, padding, shifts=shifts), r)

    y_shift = ops.depthwise_conv(x, k, stride, dilation, padding, shifts=True)
    y_conv = ops.depthwise_conv(x, k, stride, dilation, padding, shifts=False)
    np.testing.assert_allclose(y_shift, y_conv, rtol=1e-5, atol=1e-5)
    g_shift = jax.grad(loss, argnums=(0, 1))(x, k, True)
    g_conv = jax.grad(loss, argnums=(0, 1))(x, k, False)
    for a, b in zip(g_shift, g_conv):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_depthwise_conv_module_is_interchangeable_with_a_grouped_nnx_conv():
    """Same parameter name, shape and initial values as ``nnx.Conv(..., feature_group_count=c)`` from the same
    seed, and the same output, so checkpoints written before the switch still load."""
    ours = ops.DepthwiseConv(4, 5, 2, 2, rngs=nnx.Rngs(7))
    theirs = ops.conv(4, 4, 5, 2, None, 2, groups=4, rngs=nnx.Rngs(7))
    assert ours.kernel[...].shape == theirs.kernel[...].shape == (5, 5, 1, 4)
    np.testing.assert_array_equal(ours.kernel[...], theirs.kernel[...])
    x = _x((2, 9, 9, 4))
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_avg_pool_excludes_padding_from_the_average():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    xs = np.asarray(x[0, :, :, 0])
    y = np.asarray(_apply(ops.Pool("avg"), x))[0, :, :, 0]
    assert y[0, 0] == pytest.approx(xs[:2, :2].mean())  # 4 real pixels, not /9
    assert y[0, 1] == pytest.approx(xs[:2, :3].mean())
    assert y[1, 1] == pytest.approx(xs[:3, :3].mean())
    assert y[3, 3] == pytest.approx(xs[2:, 2:].mean())
    np.testing.assert_allclose(_apply(ops.Pool("avg"), jnp.ones((1, 5, 5, 2))), 1.0, rtol=1e-6)
    # stride 2, and the 2x2 pooling of the NB201 shortcut
    y3 = np.asarray(_apply(ops.Pool("avg", 3, 2), x))[0, :, :, 0]
    assert y3.shape == (2, 2) and y3[0, 0] == pytest.approx(xs[:2, :2].mean())
    y2 = _apply(ops.Pool("avg", 2, 2), x)
    np.testing.assert_allclose(y2[0, :, :, 0], xs.reshape(2, 2, 2, 2).mean(axis=(1, 3)))
    assert cost.count_params(ops.Pool("avg")) == 0


def test_max_pool_ignores_padding():
    x = -1.0 - jnp.arange(16.0).reshape(1, 4, 4, 1)
    y = np.asarray(_apply(ops.Pool("max", 3, 1), x))[0, :, :, 0]
    assert y.max() < 0  # zero padding would have produced 0 at the border
    assert y[0, 0] == -1.0 and y[3, 3] == -11.0
    assert _shape(ops.Pool("max", 3, 2), _x()) == (2, 4, 4, 4)
    with pytest.raises(JnasError, match="kind"):
        ops.Pool("min")


def test_identity_and_zero():
    x = _x()
    assert ops.Identity()(x) is x
    z = _apply(ops.Zero(), x)
    assert z.shape == x.shape and not np.any(np.asarray(z))
    z2 = _apply(ops.Zero(2), _x((2, 7, 8, 3)))
    assert z2.shape == (2, 4, 4, 3) and not np.any(np.asarray(z2))


def test_factorized_reduce_halves_resolution_and_sees_every_pixel():
    fr = _real(lambda: ops.FactorizedReduce(4, 6, rngs=nnx.Rngs(0)))
    assert cost.count_params(fr) == 4 * 3 + 4 * 3 + 2 * 6
    assert _shape(fr, _x()) == (2, 4, 4, 6)
    odd = _abstract(lambda: ops.FactorizedReduce(4, 5, rngs=nnx.Rngs(0)))
    assert cost.count_params(odd) == 4 * 2 + 4 * 3 + 2 * 5
    assert _shape(odd, _x((2, 7, 7, 4))) == (2, 4, 4, 5)
    # output (1, 1) reads input (2, 2) (first conv) and (3, 3) (shifted conv)
    support = _input_support(fr, _x((1, 8, 8, 4)), (1, 1))
    expected = np.zeros((8, 8), bool)
    expected[2, 2] = expected[3, 3] = True
    np.testing.assert_array_equal(support, expected)


def test_residual_reduction():
    m = _real(lambda: ops.ResidualReduction(4, 8, rngs=nnx.Rngs(0)))
    conv_a, conv_b, shortcut = 9 * 4 * 8 + 2 * 8, 9 * 8 * 8 + 2 * 8, 4 * 8
    assert cost.count_params(m) == conv_a + conv_b + shortcut
    m.eval()
    x = _x()
    y = _apply(m, x)
    assert y.shape == (2, 4, 4, 8)
    # the sum of the main path and the pooled 1x1 shortcut
    graphdef, state = nnx.split(m)

    def by_parts(s, x):
        r = nnx.merge(graphdef, s)
        return r.conv_b(r.conv_a(x)) + r.shortcut(ops.Pool("avg", 2, 2)(x))

    np.testing.assert_allclose(y, jax.jit(by_parts)(state, x), rtol=1e-5, atol=1e-5)
    main_only = jax.jit(lambda s, x: nnx.merge(graphdef, s).conv_b(nnx.merge(graphdef, s).conv_a(x)))(state, x)
    assert not np.allclose(y, main_only, atol=1e-3)


def test_drop_path_identity_at_zero_and_unbiased():
    x = _x()
    assert ops.drop_path(x, 0.0, None) is x
    assert ops.drop_path(x, 0, jax.random.key(0)) is x
    n = 20000
    y = np.asarray(jax.jit(ops.drop_path, static_argnums=1)(jnp.ones((n, 2, 2, 1)), 0.3, jax.random.key(1)))
    per_sample = y.reshape(n, -1)
    # whole samples are dropped or kept, kept ones scaled by 1/(1-rate)
    assert np.all(per_sample.min(1) == per_sample.max(1))
    np.testing.assert_allclose(np.unique(per_sample), [0.0, 1 / 0.7], rtol=1e-6)
    # E[y] = 1; the std of the mean is sqrt(0.3/0.7)/sqrt(20000) ≈ 0.0046
    assert abs(per_sample[:, 0].mean() - 1.0) < 0.02
    assert abs((per_sample[:, 0] == 0).mean() - 0.3) < 0.02
    # a traced rate works too
    y2 = jax.jit(ops.drop_path)(jnp.ones((8, 2)), jnp.float32(0.5), jax.random.key(2))
    assert set(np.unique(np.asarray(y2)).tolist()) <= {0.0, 2.0}
    with pytest.raises(JnasError, match="rate"):
        ops.drop_path(x, 1.0, jax.random.key(0))
    with pytest.raises(JnasError, match="key"):
        ops.drop_path(x, 0.2, None)


def test_drop_path_module_follows_train_and_eval():
    x = jnp.ones((64, 2, 2, 1))
    d = ops.DropPath(0.5, rngs=nnx.Rngs(dropout=0))
    y = np.asarray(d(x))
    assert 0 < (y == 0).mean() < 1
    assert not np.array_equal(y, np.asarray(d(x)))  # a fresh key each call
    d.eval()
    assert d(x) is x
    d.train()
    assert np.any(np.asarray(d(x)) == 0)
    assert nnx.view(d, deterministic=True)(x) is x
    assert ops.DropPath(0.0)(x) is x
    with pytest.raises(JnasError, match="rngs"):
        ops.DropPath(0.5)(x)


def _run(module, x):
    """(``module(x)``, the module's state afterwards) through jit; ``module`` is left untouched."""
    graphdef, state = nnx.split(module)

    def step(state, x):
        m = nnx.merge(graphdef, state)
        y = m(x)
        return y, nnx.state(m)

    return jax.jit(step)(state, x)


@pytest.mark.parametrize("affine,dtype", [(True, None), (False, None), (True, jnp.bfloat16)])
def test_batchnorm_equals_flax_batchnorm(affine, dtype):
    """Same outputs, running statistics and gradients as ``nnx.BatchNorm`` in both modes (the subclass only
    changes how the statistics are stored)."""
    ours = ops.batch_norm(4, affine=affine, rngs=nnx.Rngs(0))
    ref = nnx.BatchNorm(4, momentum=ops.BN_MOMENTUM, epsilon=ops.BN_EPSILON, use_bias=affine, use_scale=affine,
                        rngs=nnx.Rngs(0))
    if dtype is not None:  # bf16 training sets the compute dtype of every layer
        ours.dtype = ref.dtype = dtype
    x = 2.0 * _x() + 1.0
    for mode in ("train", "eval"):
        outs = []
        for m in (ours, ref):
            getattr(m, mode)()
            graphdef, state = nnx.split(m)

            def f(state, x, graphdef=graphdef):
                mod = nnx.merge(graphdef, state)
                y = mod(x)
                return jnp.sum(jnp.sin(y)), (y, nnx.state(mod, nnx.BatchStat))

            (_, (y, stats)), (gs, gx) = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(state, x)
            outs.append((y, stats["mean"][...], stats["var"][...], gx, *jax.tree.leaves(nnx.state(gs, nnx.Param))))
        for a, b in zip(*outs):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-6, atol=1e-6)
        assert outs[0][1].dtype == jnp.float32  # running statistics stay float32 under a bf16 compute dtype
        moved = not np.allclose(np.asarray(outs[0][1]), 0.0)  # the running mean (both start at 0)
        assert moved == (mode == "train")


def test_tracing_batchnorms_never_builds_a_tracer_origin_message(monkeypatch):
    """Storing running statistics must not query a tracer's ``sharding``: its error message walks the whole
    program traced so far, which made tracing quadratic in depth (minutes for a DARTS supernet step)."""
    from jax._src import core

    calls = []
    original = core.Tracer._origin_msg
    monkeypatch.setattr(core.Tracer, "_origin_msg", lambda self: calls.append(1) or original(self))
    net = nnx.Sequential(*[ops.ReLUConvBN(4, 4, 1, affine=False, rngs=nnx.Rngs(i)) for i in range(4)])
    graphdef, state = nnx.split(net)

    def f(state, x):
        m = nnx.merge(graphdef, state)
        return m(x).sum(), nnx.state(m)

    jax.make_jaxpr(jax.grad(f, has_aux=True))(state, _x())
    assert calls == []


def test_batchnorm_follows_the_mode_switch():
    m = _real(lambda: ops.ReLUConvBN(4, 4, 1, rngs=nnx.Rngs(0)))
    assert isinstance(m.bn.mean, nnx.BatchStat) and isinstance(m.conv.kernel, nnx.Param)
    assert m.bn.use_running_average is False  # training mode by default, like nnx.BatchNorm
    x = _x() + 3.0
    _, new_state = _run(m, x)
    nnx.update(m, new_state)
    assert not np.allclose(np.asarray(m.bn.mean[...]), 0.0)  # running mean moved
    m.eval()
    y_full, after = _run(m, x)
    np.testing.assert_array_equal(np.asarray(after["bn"]["mean"][...]), np.asarray(m.bn.mean[...]))
    # eval mode: a sample's output does not depend on the rest of the batch
    y_one, _ = _run(m, x[:1])
    np.testing.assert_allclose(y_full[:1], y_one, rtol=1e-5, atol=1e-5)
    m.train()
    y_train, _ = _run(m, x)
    assert not np.allclose(y_train, y_full, atol=1e-3)
