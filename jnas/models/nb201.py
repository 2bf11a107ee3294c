"""The NAS-Bench-201 network of a cell ``arch`` (``int8[6]``, see ``jnas.spaces.nb201``).

Macro skeleton of NAS-Bench-201 (Dong & Yang, ICLR 2020): a 3×3 conv stem
(``channels`` filters, no bias) + BN; three stages of ``cells_per_stage``
identical cells with ``channels``, ``2·channels`` and ``4·channels``
channels, separated by :class:`~jnas.models.ops.ResidualReduction` blocks;
then BN → ReLU → global average pooling → linear classifier.

Inside a cell, node 0 is the cell input and node ``j`` (1..3) is the sum of
its incoming edges ``(i, j)``, each one op of ``none`` (zeros),
``skip_connect``, ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU → conv → BN) or
``avg_pool_3x3`` (stride 1, padding excluded from the average). The cell
output is node 3. As in the reference implementation, every edge gets its
module, even ones whose result cannot reach the output, so parameter and
FLOP counts match the published tables.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jnas.errors import bad_argument, check_int
from jnas.models import ops
from jnas.spaces.nb201 import EDGES, N_EDGES, NB201, OPS


def edge_op(name: str, c: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """The module of NB201 op ``name`` on ``c`` channels (stride 1, channels kept)."""
    if name == "none":
        return ops.Zero()
    if name == "skip_connect":
        return ops.Identity()
    if name == "nor_conv_1x1":
        return ops.ReLUConvBN(c, c, 1, rngs=rngs)
    if name == "nor_conv_3x3":
        return ops.ReLUConvBN(c, c, 3, rngs=rngs)
    if name == "avg_pool_3x3":
        return ops.Pool("avg", 3, 1)
    raise bad_argument("op", name, f"one of {', '.join(OPS)}")


class Cell(nnx.Module):
    """One NB201 cell on ``c`` channels: 4 nodes, 6 edges, output = node 3."""

    def __init__(self, arch, c: int, *, rngs: nnx.Rngs):
        self.edges = nnx.List([edge_op(OPS[int(op)], c, rngs=rngs) for op in arch])

    def __call__(self, x):
        nodes = [x]
        for j in (1, 2, 3):
            terms = [op(nodes[src]) for op, (src, dst) in zip(self.edges, EDGES) if dst == j]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[3]


class NB201Network(nnx.Module):
    """NB201 macro network; ``__call__`` maps ``[B, H, W, 3]`` images to ``[B, num_classes]`` logits.

    ``H`` and ``W`` must be divisible by 4 (the two reductions halve them,
    and their shortcut and main paths must agree): 32×32 for CIFAR, 16×16
    for ImageNet16-120.
    """

    def __init__(self, arch, *, num_classes: int, rngs: nnx.Rngs, channels: int = 16, cells_per_stage: int = 5):
        self.stem_conv = ops.conv(3, channels, 3, rngs=rngs)
        self.stem_bn = ops.batch_norm(channels, rngs=rngs)
        layers = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ops.ResidualReduction(c, 2 * c, rngs=rngs))
                c *= 2
            layers.extend(Cell(arch, c, rngs=rngs) for _ in range(cells_per_stage))
        self.layers = nnx.List(layers)
        self.last_bn = ops.batch_norm(c, rngs=rngs)
        self.classifier = nnx.Linear(c, num_classes, rngs=rngs)

    def __call__(self, x):
        x = self.stem_bn(self.stem_conv(x))
        for layer in self.layers:
            x = layer(x)
        x = jax.nn.relu(self.last_bn(x))
        return self.classifier(jnp.mean(x, axis=(1, 2)))


def _is_valid(a: np.ndarray) -> bool:
    # Eager even when building under a trace (nnx.eval_shape, jax.jit).
    with jax.ensure_compile_time_eval():
        return bool(NB201.is_valid(a))


def check_arch(arch) -> np.ndarray:
    """``arch`` as a host ``int`` array of 6 op ids, or a :class:`~jnas.errors.JnasError`."""
    try:
        a = np.asarray(arch)
    except Exception as err:  # e.g. a traced array
        raise bad_argument("arch", type(arch).__name__, "a concrete int8[6] NB201 architecture") from err
    if a.shape != (N_EDGES,) or not np.issubdtype(a.dtype, np.integer) or not _is_valid(a):
        raise bad_argument("arch", a.tolist(), f"an int array of {N_EDGES} op ids in [0, {len(OPS)})")
    return a.astype(np.int64)


def build(arch, *, num_classes: int, rngs: nnx.Rngs, channels: int = 16, cells_per_stage: int = 5) -> NB201Network:
    """The NB201 network of ``arch`` with ``num_classes`` outputs (``channels`` = width of stage 1)."""
    a = check_arch(arch)
    return NB201Network(
        a,
        num_classes=check_int("num_classes", num_classes, 1),
        rngs=rngs,
        channels=check_int("channels", channels, 1),
        cells_per_stage=check_int("cells_per_stage", cells_per_stage, 1),
    )


def _stage_shapes(input_shape, channels: int) -> list[tuple[int, int, int]]:
    """(H, W, C) seen by the cells of each of the 3 stages."""
    h, w, _ = input_shape
    return [(h >> s, w >> s, channels << s) for s in range(3)]


@functools.lru_cache(maxsize=32)
def _op_costs(num_classes: int, input_shape: tuple, channels: int, cells_per_stage: int):
    # Local import: cost is a sibling module that itself needs nothing from here.
    from jnas.models import cost

    # Abstract modules (nnx.eval_shape): the same code and shapes, no weights drawn.
    skeleton = nnx.eval_shape(
        lambda: NB201Network(
            np.zeros(N_EDGES, np.int64),
            num_classes=num_classes,
            rngs=nnx.Rngs(0),
            channels=channels,
            cells_per_stage=cells_per_stage,
        )
    )
    fixed = (cost.count_params(skeleton), cost.flops_per_image(skeleton, input_shape))
    per_op = np.zeros((len(OPS), 2), np.int64)
    for k, name in enumerate(OPS):
        for shape in _stage_shapes(input_shape, channels):
            module = nnx.eval_shape(lambda name=name, c=shape[2]: edge_op(name, c, rngs=nnx.Rngs(0)))
            per_op[k] += cells_per_stage * np.array([cost.count_params(module), cost.flops_per_image(module, shape)])
    return np.array(fixed, np.int64), per_op


def op_costs(*, num_classes: int, input_shape=(32, 32, 3), channels: int = 16, cells_per_stage: int = 5):
    """Additive decomposition of the parameters and FLOPs of every NB201 network.

    Returns ``(fixed, per_op)``: ``fixed`` = int64 ``[2]`` (params, FLOPs) of the
    skeleton (stem, reductions, head; the network whose cells are all
    ``none``), ``per_op`` = int64 ``[5, 2]`` (params, FLOPs) that one cell edge
    carrying op ``k`` adds, summed over all ``3 · cells_per_stage`` cells. Both
    are measured with ``jnas.models.cost`` on the network's own modules (the
    skeleton and each op at each stage's shape, built abstractly with
    ``nnx.eval_shape``); branch sums cost nothing in that
    convention, so the network of ``arch`` costs
    ``fixed + per_op[arch].sum(0)`` (see :func:`params_and_flops`).
    FLOPs are per image of ``input_shape`` = (H, W, C), H and W divisible by 4.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or shape[0] % 4 or shape[1] % 4 or min(shape) < 1:
        raise bad_argument("input_shape", input_shape, "(H, W, C) with H and W divisible by 4")
    fixed, per_op = _op_costs(
        check_int("num_classes", num_classes, 1),
        shape,
        check_int("channels", channels, 1),
        check_int("cells_per_stage", cells_per_stage, 1),
    )
    return fixed.copy(), per_op.copy()


def params_and_flops(archs, *, num_classes: int, input_shape=(32, 32, 3), channels: int = 16, cells_per_stage: int = 5):
    """(params, FLOPs) of the NB201 networks of ``archs`` (``[..., 6]``) without building them.

    Same numbers as ``cost.count_params`` / ``cost.flops_per_image`` of
    ``build(arch, ...)``, from :func:`op_costs`; int64 arrays of shape ``archs.shape[:-1]``.
    """
    a = np.asarray(archs)
    ok = a.shape[-1:] == (N_EDGES,) and np.issubdtype(a.dtype, np.integer)
    if not ok or (a.size and (a.min() < 0 or a.max() >= len(OPS))):
        expected = f"int op ids in [0, {len(OPS)}) of shape [..., {N_EDGES}]"
        raise bad_argument("archs", f"array of shape {a.shape} and dtype {a.dtype}", expected)
    fixed, per_op = op_costs(
        num_classes=num_classes, input_shape=input_shape, channels=channels, cells_per_stage=cells_per_stage
    )
    total = fixed + per_op[a].sum(axis=-2)
    return total[..., 0], total[..., 1]


__all__ = ["Cell", "NB201Network", "build", "check_arch", "edge_op", "op_costs", "params_and_flops"]
