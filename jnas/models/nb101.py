"""The NAS-Bench-101 network (Ying et al., ICML 2019) of one cell.

Skeleton (NB101's CIFAR-10 model): stem conv 3×3 → BN → ReLU with
``stem_channels`` (128) channels, then ``stacks`` (3) stacks of
``cells_per_stack`` (3) copies of the cell; before every stack but the first a
2×2 max-pool with stride 2 halves ``H``, ``W`` and the channel count doubles
(128, 256, 512). Global average pooling and a dense layer (with bias) give the
logits.

Cell (NB101's ``build_module``), applied to the *pruned* cell (vertices on no
input→output path removed, like NB101's ``ModelSpec``):

- Channels: the output vertex concatenates the vertices that feed it, so the
  cell's output channels are split between them (``c_out // k`` each, the
  first ``c_out % k`` of them one more). A vertex that does not feed the
  output gets the largest channel count among its successors.
- A vertex sums its inputs: edges from other vertices are truncated to the
  vertex's channel count (keep the first channels); an edge from the cell
  input passes through its own 1×1 conv → BN → ReLU projection.
- Vertex ops: ``conv3x3-bn-relu`` / ``conv1x1-bn-relu`` are conv → BN → ReLU;
  ``maxpool3x3`` is a 3×3 max-pool with stride 1 (no parameters).
- Output: the concatenation, plus a projected residual of the cell input when
  the cell has the input→output edge; a cell whose only edge is
  input→output is just that projection.

Parameter counts match NB101's ``trainable_parameters`` (TF
``tf.trainable_variables``: conv kernels, BN scale and offset, dense kernel
and bias), i.e. the ``nnx.Param`` leaves here; BN running statistics are
``nnx.BatchStat``. BN momentum/epsilon follow ``jnas.models.ops`` (PyTorch
defaults), not NB101's TF values (0.997, 1e-5); that changes training
dynamics slightly, not the network. Downsampling max-pools use no padding,
identical to NB101's ``"same"`` for even sizes (32 → 16 → 8).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jnas.errors import bad_argument, check_int
from jnas.models.ops import ConvBNReLU, Pool
from jnas.spaces.nb101 import LABELS, N_VERTICES, NB101, PRUNED, prune

# One compiled program each instead of dozens of eagerly dispatched ops per build.
_IS_VALID = jax.jit(NB101.is_valid)
_PRUNE = jax.jit(prune)

_EXPECTED = (
    "a valid NB101 cell: (uint8[7, 7] strictly upper-triangular 0/1 adjacency, int8[7] ops "
    "input, 5 of {0, 1, 2} or pruned, output) with an input->output path and at most 9 edges after pruning"
)


def cell_spec(arch) -> tuple[np.ndarray, list[str]]:
    """The pruned, compacted cell ``(matrix int[n, n], op names)`` of a raw NB101 ``arch``.

    Raises ``JnasError`` naming ``arch`` when it is not a valid member of the space.
    """
    try:
        adj, ops = arch
        adj, ops = np.asarray(adj), np.asarray(ops)
    except (TypeError, ValueError):
        raise bad_argument("arch", arch, _EXPECTED + ", as concrete (untraced) arrays") from None
    if adj.shape != (N_VERTICES, N_VERTICES) or ops.shape != (N_VERTICES,):
        raise bad_argument("arch", f"arrays of shapes {adj.shape} and {ops.shape}", _EXPECTED)
    got = f"adjacency {adj.tolist()}, ops {ops.tolist()}"
    integral = all(np.issubdtype(a.dtype, np.integer) or a.dtype == bool for a in (adj, ops))
    arch = (adj.astype(np.uint8), ops.astype(np.int8))
    # Values that the casts would wrap around (e.g. op 255 -> -1) are invalid, not reinterpreted.
    if not integral or not (np.array_equal(arch[0], adj) and np.array_equal(arch[1], ops)):
        raise bad_argument("arch", got, _EXPECTED)
    # Eager even inside a trace (e.g. building under ``nnx.eval_shape``): the structure is static.
    with jax.ensure_compile_time_eval():
        if not bool(_IS_VALID(arch)):
            raise bad_argument("arch", got, _EXPECTED)
        adj, ops = (np.asarray(a).astype(int) for a in _PRUNE(arch))
    kept = np.flatnonzero(ops != PRUNED)  # compact like NB101's ModelSpec (``NB101.to_spec``)
    return adj[np.ix_(kept, kept)], [LABELS[o] for o in ops[kept]]


def vertex_channels(c_in: int, c_out: int, matrix: np.ndarray) -> list[int]:
    """Channels of every vertex of a compacted cell, as NB101 assigns them.

    ``matrix`` is the ``n × n`` pruned adjacency (vertex 0 input, ``n-1``
    output). The output's ``c_out`` channels are split among the vertices
    feeding it (extra channels to the earliest); other interior vertices take
    the maximum over their successors.
    """
    n = matrix.shape[0]
    channels = [0] * n
    channels[0], channels[-1] = c_in, c_out
    if n == 2:
        return channels
    feeders = [v for v in range(1, n - 1) if matrix[v, n - 1]]
    share, extra = divmod(c_out, len(feeders))
    for i, v in enumerate(feeders):
        channels[v] = share + (1 if i < extra else 0)
    for v in range(n - 2, 0, -1):  # successors have larger indices: fill backwards
        if not matrix[v, n - 1]:
            channels[v] = max(channels[d] for d in range(v + 1, n - 1) if matrix[v, d])
    return channels


def _vertex_op(name: str, c: int, rngs: nnx.Rngs) -> nnx.Module:
    if name == "conv3x3-bn-relu":
        return ConvBNReLU(c, c, 3, rngs=rngs)
    if name == "conv1x1-bn-relu":
        return ConvBNReLU(c, c, 1, rngs=rngs)
    return Pool("max", 3, 1)


class NB101Cell(nnx.Module):
    """One NB101 cell: ``[B, H, W, c_in] -> [B, H, W, c_out]`` (see the module docstring)."""

    def __init__(self, matrix: np.ndarray, ops: list[str], c_in: int, c_out: int, *, rngs: nnx.Rngs):
        n = matrix.shape[0]
        self.n = n
        #: static structure: in-edges of each vertex and the vertices feeding the output
        self.edges = tuple(tuple(int(s) for s in np.flatnonzero(matrix[:, v])) for v in range(n))
        self.channels = tuple(vertex_channels(c_in, c_out, matrix))
        # Projections of the cell input, keyed by the receiving vertex ("out" for the residual).
        proj = {str(v): ConvBNReLU(c_in, self.channels[v], 1, rngs=rngs) for v in range(1, n - 1) if matrix[0, v]}
        if matrix[0, n - 1]:
            proj["out"] = ConvBNReLU(c_in, c_out, 1, rngs=rngs)
        self.proj = nnx.Dict(proj)
        self.ops = nnx.Dict({str(v): _vertex_op(ops[v], self.channels[v], rngs) for v in range(1, n - 1)})

    def __call__(self, x):
        n = self.n
        if n == 2:
            return self.proj["out"](x)
        values = [x]
        for v in range(1, n - 1):
            c = self.channels[v]
            terms = [self.proj[str(v)](x) if s == 0 else values[s][..., :c] for s in self.edges[v]]
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            values.append(self.ops[str(v)](total))
        feeders = [values[s] for s in self.edges[n - 1] if s != 0]
        out = feeders[0] if len(feeders) == 1 else jnp.concatenate(feeders, axis=-1)
        if "out" in self.proj:
            out = out + self.proj["out"](x)
        return out


class NB101Network(nnx.Module):
    """NB101's stacked-cell network; ``__call__``: ``[B, H, W, in_channels] -> [B, num_classes]``."""

    def __init__(
        self,
        matrix: np.ndarray,
        ops: list[str],
        *,
        num_classes: int,
        rngs: nnx.Rngs,
        stem_channels: int = 128,
        stacks: int = 3,
        cells_per_stack: int = 3,
        in_channels: int = 3,
    ):
        self.stem = ConvBNReLU(in_channels, stem_channels, 3, rngs=rngs)
        self.downsample = Pool("max", 2, 2)
        cells, c = [], stem_channels
        for stack in range(stacks):
            c_out = stem_channels * 2**stack
            for _ in range(cells_per_stack):
                cells.append(NB101Cell(matrix, ops, c, c_out, rngs=rngs))
                c = c_out
        self.cells = nnx.List(cells)
        self.cells_per_stack = cells_per_stack
        self.head = nnx.Linear(c, num_classes, rngs=rngs)

    def __call__(self, x):
        x = self.stem(x)
        for i, cell in enumerate(self.cells):
            if i > 0 and i % self.cells_per_stack == 0:
                x = self.downsample(x)
            x = cell(x)
        return self.head(jnp.mean(x, axis=(1, 2)))


def build(
    arch,
    *,
    num_classes: int,
    rngs: nnx.Rngs,
    stem_channels: int = 128,
    stacks: int = 3,
    cells_per_stack: int = 3,
    in_channels: int = 3,
) -> NB101Network:
    """The NB101 network of the raw cell ``arch = (adjacency uint8[7, 7], ops int8[7])``.

    Defaults are NB101's CIFAR-10 model (128 stem channels, 3 stacks of 3
    cells); ``in_channels`` is the image channel count.
    """
    matrix, ops = cell_spec(arch)
    feeders = int(matrix[1:-1, -1].sum())  # vertices sharing the output channels
    stem_channels = check_int("stem_channels", stem_channels, 1)
    if stem_channels < feeders:
        expected = f"at least {feeders} (one channel per vertex feeding the output)"
        raise bad_argument("stem_channels", stem_channels, expected)
    return NB101Network(
        matrix,
        ops,
        num_classes=check_int("num_classes", num_classes, 1),
        rngs=rngs,
        stem_channels=stem_channels,
        stacks=check_int("stacks", stacks, 1),
        cells_per_stack=check_int("cells_per_stack", cells_per_stack, 1),
        in_channels=check_int("in_channels", in_channels, 1),
    )


__all__ = ["NB101Cell", "NB101Network", "build", "cell_spec", "vertex_channels"]
