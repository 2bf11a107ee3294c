"""Parameters, FLOPs and activation memory of any NNX network, without compiling it.

Everything but :func:`count_params` traces one inference-mode forward pass
of a single image (``jax.make_jaxpr`` at batch 1, BatchNorm on running
statistics, drop-path off) and walks the jaxpr, descending into nested
jaxprs (``jit``/``pjit``, ``custom_jvp_call``, ``custom_vjp_call``, ``cond``,
``scan``, ...). Only work on arrays that depend on the input image is
counted; arithmetic on parameters alone (reshaping a bias, ``rsqrt`` of a
running variance, ...) and on constants is not.

FLOPs convention. The published NAS-Bench-201 FLOPs of NAS-Bench-Suite-Zero
(``jnas`` data file ``nb201_zero_cost_proxies``) come from the layer-wise
counter of ``torchstat`` (used through ``tensorwatch``). We count the same
things, read off the jaxpr primitives:

* convolution: one per multiply-accumulate, ``out_elements · k_h · k_w ·
  c_in / groups``;
* matrix product (``dot_general``): one per multiply-accumulate;
* window pooling (``reduce_window_*``: avg / max pooling): ``out_elements ·
  k_h · k_w``;
* reductions (``reduce_sum`` / ``reduce_max`` / ``reduce_min``, e.g. global
  average pooling): one per input element;
* ReLU (``max`` of an activation and a constant): one per element;
* BatchNorm: one per element for the normalisation (subtracting the running
  mean, a ``nnx.BatchStat``) plus one for the learned shift when affine,
  i.e. 2 per element (1 without affine); multiplications by a per-channel
  scale are folded into these;
* a learned bias (any ``nnx.Param``-derived array added to an activation,
  e.g. a conv or dense bias): one per element;
* nothing else: sums of branches, zeros, padding, concatenation, the
  division of average pooling, other activations.

Against ``torchstat`` this differs in two places only: it leaves out the
bias of ``nn.Linear`` (we count ``num_classes`` more) and counts
``AdaptiveAvgPool2d(1)`` as ``C·(H+1)·(W+1)`` (its windows are taken
inclusively), where we count ``C·H·W``. On the 19,615 NAS-Bench-201 rows of
the table both together are at most 0.023 % of the total (see
``tests/test_models_cost.py`` and ``tests/test_models_nb201.py``). NAS-Bench-201's
own API (``get_model_infos``) uses a narrower count: conv and linear
multiply-accumulates, biases and window pooling only, no BN or ReLU.

Activation bytes per image: the sum of the sizes in bytes of every array
produced by a primitive operation that depends on the input image (the
input itself excluded, the logits included), i.e. what an unfused
inference pass writes. It is an exact, reproducible count, not the peak
memory of a compiled program.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax.extend.core import ClosedJaxpr, Jaxpr, Literal

from jnas.errors import bad_argument

# Dependence flags carried by each jaxpr variable.
IMAGE, PARAM, STAT = 1, 2, 4
_REDUCTIONS = ("reduce_sum", "reduce_max", "reduce_min")


def count_params(model: nnx.Module) -> int:
    """Total number of scalars in the ``nnx.Param`` leaves of ``model`` (BN running statistics excluded)."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def _sub_jaxprs(params) -> list[Jaxpr]:
    out = []
    for value in params.values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, ClosedJaxpr):
                out.append(item.jaxpr)
            elif isinstance(item, Jaxpr):
                out.append(item)
    return out


def _size(var) -> int:
    return math.prod(var.aval.shape)


def _leaf_flops(eqn, flags: list[int]) -> int:
    """FLOPs of one primitive with an image-dependent input (see module docstring)."""
    name = eqn.primitive.name
    out = _size(eqn.outvars[0])
    if name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        c_out = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
        return out * math.prod(rhs) // c_out
    if name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        return out * math.prod(lhs[d] for d in lhs_contract)
    if name.startswith("reduce_window"):
        return out * math.prod(eqn.params["window_dimensions"])
    if name in _REDUCTIONS:
        return _size(eqn.invars[0])
    if name in ("max", "add", "sub") and len(flags) == 2:
        # The operand that is not the activation decides what the op is.
        other = flags[1] if flags[0] & IMAGE else flags[0]
        if other & IMAGE:
            return 0
        if name == "max":  # ReLU-style clamp against a constant or parameter
            return out
        if name == "add" and other & PARAM:  # bias / BN shift
            return out
        if name == "sub" and other & STAT and flags[0] & IMAGE:  # BN normalisation
            return out
    return 0


def _walk(jaxpr: Jaxpr, in_flags: list[int]):
    """(flops, activation bytes, flags of the outputs) of ``jaxpr`` given its inputs' flags."""
    flag = {v: f for v, f in zip(jaxpr.invars, in_flags) if f}
    flops = nbytes = 0

    def flags_of(vars_):
        return [0 if isinstance(v, Literal) else flag.get(v, 0) for v in vars_]

    for eqn in jaxpr.eqns:
        fin = flags_of(eqn.invars)
        union = 0
        for f in fin:
            union |= f
        subs = _sub_jaxprs(eqn.params)
        if subs:
            results = []
            for sub in subs:
                # Call-like primitives pass operands one to one; cond drops its predicate.
                skip = len(eqn.invars) - len(sub.invars)
                results.append(_walk(sub, fin[skip:] if skip in (0, 1) else [union] * len(sub.invars)))
            pick = max if eqn.primitive.name == "cond" else sum
            times = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
            flops += times * pick(r[0] for r in results)
            nbytes += times * pick(r[1] for r in results)
            for i, v in enumerate(eqn.outvars):
                f = 0
                for r in results:
                    f |= r[2][i] if len(r[2]) == len(eqn.outvars) else union
                flag[v] = f
            continue
        for v in eqn.outvars:
            flag[v] = union
        if union & IMAGE:
            flops += _leaf_flops(eqn, fin)
            nbytes += sum(_size(v) * jnp.dtype(v.aval.dtype).itemsize for v in eqn.outvars)
    return flops, nbytes, flags_of(jaxpr.outvars)


def image_shape(input_shape) -> tuple[int, int, int]:
    """``input_shape`` as ``(H, W, C)`` positive ints, or a one-line error naming ``input_shape``."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise bad_argument("input_shape", input_shape, "(H, W, C) of one image, e.g. (32, 32, 3)")
    return shape


def _trace(model: nnx.Module, input_shape) -> tuple[int, int]:
    """(FLOPs, activation bytes) of one inference-mode forward pass of one image."""
    shape = image_shape(input_shape)
    view = nnx.view(model, use_running_average=True, deterministic=True, raise_if_not_found=False)
    graphdef, params, stats, rest = nnx.split(view, nnx.Param, nnx.BatchStat, ...)

    def abstract(tree):
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)

    def forward(x, params, stats, rest):
        return nnx.merge(graphdef, params, stats, rest)(x)

    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    closed = jax.make_jaxpr(forward)(x, abstract(params), abstract(stats), abstract(rest))
    in_flags = [IMAGE]
    for tree, f in ((params, PARAM), (stats, STAT), (rest, 0)):
        in_flags += [f] * len(jax.tree.leaves(tree))
    flops, nbytes, _ = _walk(closed.jaxpr, in_flags)
    return int(flops), int(nbytes)


def flops_per_image(model: nnx.Module, input_shape=(32, 32, 3)) -> int:
    """FLOPs of one forward pass of one ``input_shape`` = (H, W, C) image (convention in the module doc)."""
    return _trace(model, input_shape)[0]


def activation_bytes_per_image(model: nnx.Module, input_shape=(32, 32, 3)) -> int:
    """Bytes of all image-dependent intermediate arrays of one inference pass (see module doc)."""
    return _trace(model, input_shape)[1]


def describe(model: nnx.Module, input_shape=(32, 32, 3)) -> dict:
    """``{"params", "flops", "activation_bytes_per_image"}`` of ``model`` (one trace)."""
    flops, nbytes = _trace(model, input_shape)
    return {"params": count_params(model), "flops": flops, "activation_bytes_per_image": nbytes}


__all__ = ["activation_bytes_per_image", "count_params", "describe", "flops_per_image"]
