"""jnas.models.cost: parameter, FLOP and activation-byte counts of NNX modules."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jnas.errors import JnasError
from jnas.models import cost, ops


def _abstract(make):
    """``make()`` built with nnx.eval_shape: same module, no weights drawn (fast)."""
    return nnx.eval_shape(make)


class _Dense(nnx.Module):
    def __init__(self, d_in, d_out, *, bias=True):
        self.dense = nnx.Linear(d_in, d_out, use_bias=bias, rngs=nnx.Rngs(0))

    def __call__(self, x):
        return self.dense(x.reshape(x.shape[0], -1))


class _JittedDense(_Dense):
    def __call__(self, x):
        # a nested jit and a remat: the counter has to look inside both
        return jax.jit(jax.checkpoint(super().__call__))(x)


class _ScanDense(nnx.Module):
    """Three [d, d] matmuls applied by lax.scan over stacked weights."""

    def __init__(self, d):
        self.w = nnx.Param(jnp.zeros((3, d, d)))

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        out, _ = jax.lax.scan(lambda h, w: (h @ w, None), x, self.w[...])
        return out


def test_count_params_counts_nnx_param_only():
    bn = _abstract(lambda: ops.batch_norm(5, rngs=nnx.Rngs(0)))
    assert cost.count_params(bn) == 10  # scale + shift; running mean/var are BatchStat
    assert cost.count_params(_abstract(lambda: ops.batch_norm(5, affine=False, rngs=nnx.Rngs(0)))) == 0
    assert cost.count_params(_abstract(lambda: _Dense(6, 4))) == 6 * 4 + 4
    assert cost.count_params(_abstract(lambda: _Dense(6, 4, bias=False))) == 24
    assert cost.count_params(ops.Pool("max")) == 0


@pytest.mark.parametrize(
    ("kernel", "stride", "groups", "bias"),
    [(3, 1, 1, False), (3, 2, 1, False), (1, 1, 1, True), (5, 1, 4, False)],
)
def test_conv_flops_are_multiply_accumulates(kernel, stride, groups, bias):
    c_in, c_out, h = 4, 8, 8
    m = _abstract(lambda: ops.conv(c_in, c_out, kernel, stride, groups=groups, bias=bias, rngs=nnx.Rngs(0)))
    out_pixels = (h // stride) ** 2
    expected = out_pixels * c_out * kernel * kernel * c_in // groups + (out_pixels * c_out if bias else 0)
    assert cost.flops_per_image(m, (h, h, c_in)) == expected


def test_dense_pool_bn_relu_flops():
    assert cost.flops_per_image(_abstract(lambda: _Dense(12, 5)), (2, 2, 3)) == 12 * 5 + 5
    assert cost.flops_per_image(_abstract(lambda: _Dense(12, 5, bias=False)), (2, 2, 3)) == 60
    # window pooling: kernel area per output element (padding included, as the reference counter)
    assert cost.flops_per_image(ops.Pool("avg", 3, 1), (8, 8, 4)) == 8 * 8 * 4 * 9
    assert cost.flops_per_image(ops.Pool("max", 3, 2), (8, 8, 4)) == 4 * 4 * 4 * 9
    assert cost.flops_per_image(ops.Pool("avg", 2, 2), (8, 8, 4)) == 4 * 4 * 4 * 4
    n = 8 * 8 * 4
    bn = _abstract(lambda: ops.batch_norm(4, rngs=nnx.Rngs(0)))
    assert cost.flops_per_image(bn, (8, 8, 4)) == 2 * n
    bn_plain = _abstract(lambda: ops.batch_norm(4, affine=False, rngs=nnx.Rngs(0)))
    assert cost.flops_per_image(bn_plain, (8, 8, 4)) == n
    # ReLU + conv 1x1 + BN: n + n*4 + 2n
    rcb = _abstract(lambda: ops.ReLUConvBN(4, 4, 1, rngs=nnx.Rngs(0)))
    assert cost.flops_per_image(rcb, (8, 8, 4)) == n + n * 4 + 2 * n
    # train mode does not change the count (the trace uses running statistics)
    rcb.train()
    assert cost.flops_per_image(rcb, (8, 8, 4)) == 7 * n
    assert cost.flops_per_image(ops.Identity(), (8, 8, 4)) == 0
    assert cost.flops_per_image(ops.Zero(), (8, 8, 4)) == 0


def test_nested_jaxprs_are_walked():
    plain = cost.flops_per_image(_abstract(lambda: _Dense(12, 5)), (2, 2, 3))
    assert cost.flops_per_image(_abstract(lambda: _JittedDense(12, 5)), (2, 2, 3)) == plain
    assert cost.flops_per_image(_abstract(lambda: _ScanDense(12)), (2, 2, 3)) == 3 * 12 * 12


def test_activation_bytes_exact_for_a_dense_layer():
    # reshape of the input [1,12] + matmul output [1,5] + bias add [1,5]; the
    # reshaped bias depends on parameters only and is not counted
    assert cost.activation_bytes_per_image(_abstract(lambda: _Dense(12, 5)), (2, 2, 3)) == 4 * (12 + 5 + 5)
    # grows with the number of channels
    small = cost.activation_bytes_per_image(_abstract(lambda: ops.ReLUConvBN(4, 4, 3, rngs=nnx.Rngs(0))), (8, 8, 4))
    wide = cost.activation_bytes_per_image(_abstract(lambda: ops.ReLUConvBN(4, 8, 3, rngs=nnx.Rngs(0))), (8, 8, 4))
    assert 0 < small < wide


def test_describe_and_bad_input_shape():
    m = _abstract(lambda: ops.ReLUConvBN(3, 4, 3, rngs=nnx.Rngs(0)))
    d = cost.describe(m, (8, 8, 3))
    assert d == {
        "params": cost.count_params(m),
        "flops": cost.flops_per_image(m, (8, 8, 3)),
        "activation_bytes_per_image": cost.activation_bytes_per_image(m, (8, 8, 3)),
    }
    for bad in [(8, 8), (0, 8, 3), "8x8x3", (1, 8, 8, 3)]:
        with pytest.raises(JnasError, match="input_shape"):
            cost.flops_per_image(m, bad)


def test_counting_does_not_compile(caplog):
    # a concrete module (arrays put on the device from numpy: no initialiser compiles)
    graphdef, state = nnx.split(_abstract(lambda: ops.ReLUConvBN(3, 4, 3, rngs=nnx.Rngs(0))))
    m = nnx.merge(graphdef, jax.tree.map(lambda a: jnp.asarray(np.ones(a.shape, a.dtype)), state))
    assert isinstance(m.conv.kernel[...], jax.Array)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        cost.describe(m, (8, 8, 3))
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()]
    # and the module is left as it was (train mode, same statistics)
    assert m.bn.use_running_average is False
