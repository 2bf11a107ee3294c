"""Operation library shared by the cell networks (NB201, NB101, DARTS, ...).

Every module maps NHWC float arrays ``[B, H, W, C]`` to NHWC arrays. Padding
is explicit and symmetric (as in the PyTorch reference implementations), so a
stride-2 op on an even input halves ``H`` and ``W`` exactly. Convolutions that
feed a BatchNorm have no bias. BatchNorm follows PyTorch's defaults
(``momentum=0.1`` in PyTorch's convention, i.e. flax ``momentum=0.9``;
``eps=1e-5``) and flax's mode switch: ``model.train()`` uses batch statistics
and updates ``nnx.BatchStat`` running averages, ``model.eval()`` uses them.
One difference remains: the running variance averages the biased batch
variance (flax), where PyTorch uses the unbiased one (a factor n/(n-1) per
update, < 0.1 % at batch 64 on 32x32 maps).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx.nn import normalization as _normalization

from jnas.errors import bad_argument

#: flax momentum of the running BN statistics (PyTorch momentum 0.1)
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class BatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` whose training-mode call stores the new running statistics with ``set_value``.

    Same variables, numerics and mode switch as ``nnx.BatchNorm``. The reason
    is tracing time: flax stores the statistics with ``variable[...] = new``,
    which compares the new value's ``sharding`` with the old one's; on a
    tracer that attribute raises, and building the error message walks the
    whole program traced so far. Every BatchNorm of a network thus costs time
    proportional to the program before it: quadratic in depth, minutes for a
    DARTS supernet's search step. ``set_value`` replaces the value without
    that comparison.
    """

    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        running = self.use_running_average if use_running_average is None else use_running_average
        if running:
            return super().__call__(x, use_running_average=True, mask=mask)
        feature = _normalization._canonicalize_axes(x.ndim, self.axis)
        reduce = tuple(i for i in range(x.ndim) if i not in feature)
        scale = self.scale[...] if self.scale is not None else None
        bias = self.bias[...] if self.bias is not None else None
        x, _, _, scale, bias = self.promote_dtype((x, self.mean[...], self.var[...], scale, bias), dtype=self.dtype)
        mean, var = _normalization._compute_stats(
            x, reduce, dtype=self.dtype, axis_name=self.axis_name, axis_index_groups=self.axis_index_groups,
            use_fast_variance=self.use_fast_variance, mask=mask)
        m = self.momentum
        # the stored statistics stay in their own dtype (float32), as flax keeps them, whatever the compute dtype
        self.mean.set_value(jax.lax.stop_gradient(m * self.mean[...] + (1 - m) * mean))
        self.var.set_value(jax.lax.stop_gradient(m * self.var[...] + (1 - m) * var))
        return _normalization._normalize(x, mean, var, scale, bias, reduce, feature, self.dtype, self.epsilon)


def batch_norm(c: int, *, affine: bool = True, rngs: nnx.Rngs) -> BatchNorm:
    """BatchNorm over ``c`` channels; ``affine=False`` drops the scale and shift ``nnx.Param``s."""
    return BatchNorm(
        c,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        use_bias=affine,
        use_scale=affine,
        rngs=rngs,
    )


def conv(
    c_in: int,
    c_out: int,
    kernel: int,
    stride: int = 1,
    padding: int | None = None,
    dilation: int = 1,
    *,
    groups: int = 1,
    bias: bool = False,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """A 2-D convolution with symmetric padding (default ``dilation*(kernel-1)//2``)."""
    if padding is None:
        padding = dilation * (kernel - 1) // 2
    return nnx.Conv(
        c_in,
        c_out,
        (kernel, kernel),
        strides=stride,
        padding=((padding, padding), (padding, padding)),
        kernel_dilation=dilation,
        feature_group_count=groups,
        use_bias=bias,
        rngs=rngs,
    )


def depthwise_conv(x, kernel, stride: int = 1, dilation: int = 1, padding: int | None = None, *,
                   shifts: bool | None = None):
    """Depthwise 2-D convolution: ``x [B, H, W, C]``, ``kernel [k, k, 1, C]`` -> ``[B, H', W', C]``.

    Symmetric zero padding (default ``dilation*(k-1)//2``). Two formulations
    with the same result: ``shifts=True`` sums ``k*k`` strided slices of the
    padded input scaled per channel (XLA fuses them into one loop), with the
    hand-written gradient of :func:`_depthwise_shifts`; ``shifts=False`` is
    ``lax.conv_general_dilated`` with ``feature_group_count=C``. The default
    (``None``) takes the shifts on the CPU, where XLA's grouped convolution is
    10-100x slower than the fused loop (``bench/depthwise.py``), and the
    convolution elsewhere. The shifts are differentiable in reverse mode
    (``grad``, ``vjp``, ``jacrev``, to any order), not in forward mode
    (``jvp``, ``jacfwd``): use ``shifts=False`` for those.
    """
    k = kernel.shape[0]
    if padding is None:
        padding = dilation * (k - 1) // 2
    if shifts is None:
        shifts = jax.default_backend() == "cpu"
    if not shifts:
        return jax.lax.conv_general_dilated(
            x, kernel, (stride, stride), ((padding, padding), (padding, padding)), rhs_dilation=(dilation, dilation),
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1])
    return _depthwise_shifts(x, kernel, stride, dilation, padding)


def _shift_sum(x, kernel, stride: int, dilation: int, pads):
    """``sum_{u,v} xp[:, i*stride + u*dilation, j*stride + v*dilation] * kernel[u, v, 0]`` with ``xp = lax.pad(x,
    0, pads)`` (``pads``: ``(low, high, interior)`` for H and for W); ``x [B, H, W, C]``, ``kernel [k, k, 1, C]``."""
    k = kernel.shape[0]
    xp = jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), *pads, (0, 0, 0)))
    b, hp, wp, c = xp.shape
    ho = (hp - dilation * (k - 1) - 1) // stride + 1
    wo = (wp - dilation * (k - 1) - 1) // stride + 1
    out = None
    for u in range(k):
        for v in range(k):
            start = (0, u * dilation, v * dilation, 0)
            limit = (b, start[1] + (ho - 1) * stride + 1, start[2] + (wo - 1) * stride + 1, c)
            term = jax.lax.slice(xp, start, limit, (1, stride, stride, 1)) * kernel[u, v, 0]
            out = term if out is None else out + term
    return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _depthwise_shifts(x, kernel, stride: int, dilation: int, padding: int):
    """The shifted-slices depthwise convolution, its gradient written out.

    Differentiated automatically, every slice ``x[u, v]`` is a residual of the
    kernel gradient, and XLA:CPU keeps all ``k*k`` of them: a 5×5 separable
    convolution at 64×32×32×16 needed 239 MB of temporaries for its forward
    and backward pass (38 MB as a grouped convolution) and 2.3x the time it
    takes with this gradient (``BENCHMARKS.md``). Here the only residuals are
    ``x`` and the kernel; the input gradient is the same shifted sum over the
    output gradient (dilated by the stride, flipped kernel), and each
    kernel-gradient tap is one reduction: over the padded input against the
    padded output gradient at stride 1, over the input's strided slice
    against the output gradient otherwise (XLA materialised an output gradient
    padded with holes).
    """
    return _shift_sum(x, kernel, stride, dilation, ((padding, padding, 0),) * 2)


def _depthwise_shifts_fwd(x, kernel, stride, dilation, padding):
    return _depthwise_shifts(x, kernel, stride, dilation, padding), (x, kernel)


def _depthwise_shifts_bwd(stride, dilation, padding, residuals, g):
    x, kernel = residuals
    k = kernel.shape[0]
    span = dilation * (k - 1)
    (h, w), (ho, wo) = x.shape[1:3], g.shape[1:3]
    low = span - padding
    dx = _shift_sum(g, kernel[::-1, ::-1], 1, dilation,
                    ((low, h + span - low - ((ho - 1) * stride + 1), stride - 1),
                     (low, w + span - low - ((wo - 1) * stride + 1), stride - 1)))
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    b, hp, wp, c = xp.shape
    zero = jnp.zeros((), g.dtype)
    taps = []
    for u in range(k):
        for v in range(k):
            a, e = u * dilation, v * dilation
            if stride == 1:
                gp = jax.lax.pad(g, zero, ((0, 0, 0), (a, hp - a - ho, 0), (e, wp - e - wo, 0), (0, 0, 0)))
                taps.append(jnp.sum(gp * xp, axis=(0, 1, 2)))
            else:
                xs = jax.lax.slice(xp, (0, a, e, 0), (b, a + (ho - 1) * stride + 1, e + (wo - 1) * stride + 1, c),
                                   (1, stride, stride, 1))
                taps.append(jnp.sum(xs * g, axis=(0, 1, 2)))
    return dx, jnp.stack(taps).reshape(kernel.shape).astype(kernel.dtype)


_depthwise_shifts.defvjp(_depthwise_shifts_fwd, _depthwise_shifts_bwd)


class DepthwiseConv(nnx.Module):
    """Depthwise k×k convolution over ``c`` channels (no bias) by :func:`depthwise_conv`.

    Its parameter is ``kernel [k, k, 1, c]``, initialised and drawn from ``rngs``
    exactly as ``nnx.Conv(c, c, k, feature_group_count=c)`` would, so weights
    and checkpoints are interchangeable with that layer. ``dtype`` (None: the
    input's) is the compute dtype, as the flax layers' attribute of that name;
    ``shifts``: :func:`depthwise_conv`'s formulation (None: by backend).
    """

    def __init__(self, c: int, kernel: int, stride: int = 1, dilation: int = 1, padding: int | None = None, *,
                 rngs: nnx.Rngs, dtype=None, shifts: bool | None = None):
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (kernel, kernel, 1, c), jnp.float32))
        self.stride, self.dilation = stride, dilation
        self.padding = dilation * (kernel - 1) // 2 if padding is None else padding
        self.dtype = dtype
        self.shifts = shifts

    def __call__(self, x):
        kernel = self.kernel[...]
        if self.dtype is not None:
            x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        return depthwise_conv(x, kernel, self.stride, self.dilation, self.padding, shifts=self.shifts)


class PointwiseConv(nnx.Module):
    """1×1 convolution (no bias, stride ``stride``, no padding) as a matrix product over the channels.

    ``[B, H, W, c_in] -> [B, ⌈H/s⌉, ⌈W/s⌉, c_out]``. Its parameter is
    ``kernel [1, 1, c_in, c_out]``, initialised and drawn from ``rngs`` exactly
    as ``ops.conv(c_in, c_out, 1, stride, 0)`` would, so the two are
    interchangeable. A matrix product rather than a convolution because
    under ``vmap`` over stacked kernels (a supernet's edges run as one call,
    ``jnas.models.supernet``) a convolution becomes a grouped convolution,
    which XLA:CPU runs slowly, and a matrix product a batched one.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, *, rngs: nnx.Rngs, dtype=None):
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (1, 1, c_in, c_out), jnp.float32))
        self.stride = stride
        self.dtype = dtype

    def __call__(self, x):
        kernel = self.kernel[...]
        if self.dtype is not None:
            x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        if self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        return jnp.einsum("bhwc,cd->bhwd", x, kernel[0, 0])


class ReLUConvBN(nnx.Module):
    """ReLU → conv (no bias) → BN, the op of NB201 / DARTS cells."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        *,
        affine: bool = True,
        rngs: nnx.Rngs,
    ):
        self.conv = conv(c_in, c_out, kernel, stride, padding, dilation, rngs=rngs)
        self.bn = batch_norm(c_out, affine=affine, rngs=rngs)

    def __call__(self, x):
        return self.bn(self.conv(jax.nn.relu(x)))


class ConvBNReLU(nnx.Module):
    """Conv (no bias, "same" padding) → BN → ReLU, the NB101 order."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, rngs: nnx.Rngs):
        self.conv = conv(c_in, c_out, kernel, stride, rngs=rngs)
        self.bn = batch_norm(c_out, rngs=rngs)

    def __call__(self, x):
        return jax.nn.relu(self.bn(self.conv(x)))


class DilConv(nnx.Module):
    """ReLU → depthwise dilated k×k (stride s) → pointwise 1×1 → BN (DARTS ``dil_conv``)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int, *, affine: bool = True, rngs: nnx.Rngs
    ):
        self.depthwise = DepthwiseConv(c_in, kernel, stride, dilation, rngs=rngs)
        self.pointwise = PointwiseConv(c_in, c_out, rngs=rngs)
        self.bn = batch_norm(c_out, affine=affine, rngs=rngs)

    def __call__(self, x):
        return self.bn(self.pointwise(self.depthwise(jax.nn.relu(x))))


class SepConv(nnx.Module):
    """DARTS ``sep_conv``: two depthwise-separable blocks, the first with stride ``stride``.

    Each block is ReLU → depthwise k×k → pointwise 1×1 → BN; the first keeps
    ``c_in`` channels, the second maps to ``c_out``.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, *, affine: bool = True, rngs: nnx.Rngs):
        self.first = DilConv(c_in, c_in, kernel, stride, 1, affine=affine, rngs=rngs)
        self.second = DilConv(c_in, c_out, kernel, 1, 1, affine=affine, rngs=rngs)

    def __call__(self, x):
        return self.second(self.first(x))


def _valid_counts(size: int, kernel: int, stride: int, pad: int) -> np.ndarray:
    """Number of real (non-padding) pixels in each pooling window along one axis."""
    starts = np.arange(0, size + 2 * pad - kernel + 1, stride) - pad
    return np.minimum(starts + kernel, size) - np.maximum(starts, 0)


class Pool(nnx.Module):
    """k×k average or max pooling with stride ``stride`` and padding ``(kernel-1)//2``.

    ``kind="avg"`` divides by the number of real pixels in the window
    (PyTorch's ``count_include_pad=False``); ``kind="max"`` ignores padding.
    No parameters.
    """

    def __init__(self, kind: str, kernel: int = 3, stride: int = 1):
        if kind not in ("avg", "max"):
            raise bad_argument("kind", kind, "'avg' or 'max'")
        self.kind = kind
        self.kernel = kernel
        self.stride = stride
        self.pad = (kernel - 1) // 2

    def __call__(self, x):
        k, s, p = self.kernel, self.stride, self.pad
        window, strides = (1, k, k, 1), (1, s, s, 1)
        padding = ((0, 0), (p, p), (p, p), (0, 0))
        if self.kind == "max":
            return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, padding)
        total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
        # The divisor depends on shapes only, so it is a constant (no traced work).
        counts = np.outer(_valid_counts(x.shape[1], k, s, p), _valid_counts(x.shape[2], k, s, p))
        return total / jnp.asarray(counts[None, :, :, None], x.dtype)


class Identity(nnx.Module):
    """Returns its input (``skip_connect``)."""

    def __call__(self, x):
        return x


class Zero(nnx.Module):
    """The ``none`` op: zeros shaped like ``x[:, ::stride, ::stride, :]``.

    Computed as ``x[:, ::s, ::s, :] * 0`` (as the PyTorch reference does), so
    what follows stays a function of the input: a cell whose output is all
    zeros does not turn the rest of the network into constants, and
    ``jnas.models.cost`` still counts the layers after it.
    """

    def __init__(self, stride: int = 1):
        self.stride = stride

    def __call__(self, x):
        s = self.stride
        if s > 1:
            x = x[:, ::s, ::s, :]
        return x * jnp.zeros((), x.dtype)


class FactorizedReduce(nnx.Module):
    """Halve resolution: ReLU → two 1×1 stride-2 convs → concat to ``c_out`` channels → BN.

    The second conv sees the input shifted by one pixel (zero-padded at the
    bottom/right), so together the two cover every pixel; odd sizes work.
    """

    def __init__(self, c_in: int, c_out: int, *, affine: bool = True, rngs: nnx.Rngs):
        half = c_out // 2
        self.conv_a = PointwiseConv(c_in, half, 2, rngs=rngs)
        self.conv_b = PointwiseConv(c_in, c_out - half, 2, rngs=rngs)
        self.bn = batch_norm(c_out, affine=affine, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(x)
        shifted = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))[:, 1:, 1:, :]
        return self.bn(jnp.concatenate([self.conv_a(x), self.conv_b(shifted)], axis=-1))


class ResidualReduction(nnx.Module):
    """NB201's stride-2 ResNet basic block between stages.

    ``ReLUConvBN(3×3, s2) → ReLUConvBN(3×3, s1)`` plus the shortcut
    ``avg-pool 2×2 s2 → conv 1×1`` (no BN), summed.
    """

    def __init__(self, c_in: int, c_out: int, *, rngs: nnx.Rngs):
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, rngs=rngs)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, rngs=rngs)
        self.pool = Pool("avg", 2, 2)
        self.shortcut = conv(c_in, c_out, 1, 1, 0, rngs=rngs)

    def __call__(self, x):
        return self.conv_b(self.conv_a(x)) + self.shortcut(self.pool(x))


def drop_path(x, rate, key):
    """Zero whole samples of ``x`` (axis 0) with probability ``rate``; scale survivors by ``1/(1-rate)``.

    Keeps the expectation of ``x``. Identity when ``rate == 0`` (``key`` may
    then be ``None``). ``rate`` may be a Python number in ``[0, 1)`` or a
    traced scalar.
    """
    if isinstance(rate, (int, float)):
        if not 0 <= rate < 1:
            raise bad_argument("rate", rate, "a drop probability in [0, 1)")
        if rate == 0:
            return x
    if key is None:
        raise bad_argument("key", key, "a jax.random key when rate > 0")
    keep = 1.0 - jnp.asarray(rate, x.dtype)
    mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, jnp.zeros((), x.dtype))


class DropPath(nnx.Module):
    """Module form of :func:`drop_path` that follows ``train()`` / ``eval()``.

    Active only when ``deterministic`` is False (the default, like
    ``nnx.Dropout``) and ``rate > 0``; draws keys from the ``dropout`` stream
    of ``rngs``. ``rate`` can be changed between calls (a drop-path schedule).
    """

    def __init__(self, rate: float = 0.0, *, deterministic: bool = False, rngs: nnx.Rngs | None = None):
        self.rate = rate
        self.deterministic = deterministic
        self.rngs = rngs["dropout"].fork() if rngs is not None else nnx.data(None)

    def __call__(self, x):
        if self.deterministic or (isinstance(self.rate, (int, float)) and self.rate == 0):
            return x
        if self.rngs is None:
            raise bad_argument("rngs", None, "an nnx.Rngs with a 'dropout' stream for drop-path in training mode")
        return drop_path(x, self.rate, self.rngs())

    def set_view(self, deterministic: bool | None = None):
        """Used by ``nnx.view``: ``deterministic=True`` disables dropping."""
        if deterministic is not None:
            self.deterministic = deterministic


def _skip(c: int, stride: int, rngs: nnx.Rngs, affine: bool = True) -> nnx.Module:
    return Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine, rngs=rngs)


#: name in ``jnas.spaces.darts.OPS`` -> ``factory(c, stride, rngs, affine=True)`` (channels kept)
DARTS_OPS: dict[str, Callable[..., nnx.Module]] = {
    "none": lambda c, stride, rngs, affine=True: Zero(stride),
    "skip_connect": _skip,
    "max_pool_3x3": lambda c, stride, rngs, affine=True: Pool("max", 3, stride),
    "avg_pool_3x3": lambda c, stride, rngs, affine=True: Pool("avg", 3, stride),
    "sep_conv_3x3": lambda c, stride, rngs, affine=True: SepConv(c, c, 3, stride, affine=affine, rngs=rngs),
    "sep_conv_5x5": lambda c, stride, rngs, affine=True: SepConv(c, c, 5, stride, affine=affine, rngs=rngs),
    "dil_conv_3x3": lambda c, stride, rngs, affine=True: DilConv(c, c, 3, stride, 2, affine=affine, rngs=rngs),
    "dil_conv_5x5": lambda c, stride, rngs, affine=True: DilConv(c, c, 5, stride, 2, affine=affine, rngs=rngs),
}

__all__ = [
    "DARTS_OPS",
    "BatchNorm",
    "ConvBNReLU",
    "DepthwiseConv",
    "DilConv",
    "DropPath",
    "FactorizedReduce",
    "Identity",
    "PointwiseConv",
    "Pool",
    "ReLUConvBN",
    "ResidualReduction",
    "SepConv",
    "Zero",
    "batch_norm",
    "conv",
    "drop_path",
]
