"""The DARTS evaluation network (Liu et al., ICLR 2019; NASNet-style CIFAR skeleton).

Skeleton: stem conv 3×3 (``3 * channels`` output channels, no bias) → BN;
then ``layers`` cells. Cells ``layers // 3`` and ``2 * layers // 3`` are
*reduction* cells (the reduce genotype, stride 2 on the edges that read the
cell inputs, channels doubled from there on); the others are *normal* cells.
Each cell reads the outputs of the two previous cells (both the stem output
for the first cell). Global average pooling and a linear layer give the logits.

Cell with ``c`` channels: input 0 (two cells back) is preprocessed by
``FactorizedReduce(c_pp, c)`` when the previous cell was a reduction (input 0
is then at twice the resolution), else by ``ReLUConvBN(c_pp, c, 1×1)``; input
1 by ``ReLUConvBN(c_p, c, 1×1)``. Node ``i + 2`` (i = 0..3) sums the ops of
its two edges (``DARTS_OPS``; stride 2 in reduction cells when the edge reads
node 0 or 1). The cell output concatenates nodes 2..5 (``4 c`` channels).

Cells of fewer blocks (``space="darts-blocks"``, PNAS's progressive cells):
only the present nodes ``2 .. b + 1`` are built and concatenated (``b c``
channels), so the ``b``-block network is the narrower network PNAS trains,
not a four-node cell with zero nodes.

Training extras, both active only in training mode (``model.train()``, or
``nnx.view(model, deterministic=False, use_running_average=False)``):

- drop-path: every edge whose op is not the identity zeroes whole samples
  with probability ``drop_path_rate`` (survivors scaled by ``1/(1-p)``),
  keys drawn from the ``dropout`` stream of ``rngs``. DARTS ramps the rate
  over training; ``set_drop_path_rate`` changes it between steps.
- auxiliary head (``auxiliary=True``), fed by the output of cell
  ``2 * layers // 3``: ReLU → 5×5 average pool, stride 3, no padding → 1×1
  conv 128 → BN → ReLU → 2×2 conv 768 (no padding) → BN → ReLU → linear.
  In training mode ``model(x)`` then returns ``(logits, aux_logits)``; in eval
  mode (and when ``auxiliary=False``) only ``logits``. For 32×32 inputs the
  head sees 8×8 maps and ends at 1×1, as in DARTS; for other sizes the pool
  window shrinks to fit maps smaller than 5×5, maps too small for the 2×2
  conv are zero-padded to 2×2, and whatever spatial extent remains is
  averaged.

Parameter count: ``count_params`` of the network without the auxiliary head
equals DARTS's ``count_parameters_in_MB`` (which skips the auxiliary head):
DARTS V2 at 36 channels, 20 layers, 10 classes has 3,349,342 parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jnas.errors import bad_argument, check_int, is_number
from jnas.models.ops import DARTS_OPS, DropPath, FactorizedReduce, Identity, ReLUConvBN, batch_norm, conv
from jnas.spaces.darts import DARTS, N_EDGES, NONE, OPS

_EXPECTED = (
    "a valid DARTS architecture int8[2, 8, 2] (cell, edge, (input node, op)) with distinct, "
    "sorted inputs per node and no 'none' op"
)
STEM_MULTIPLIER = 3
AUX_HIDDEN, AUX_FEATURES = 128, 768
_IS_VALID = jax.jit(DARTS.is_valid)  # one compiled program, not many eager ops per build
#: spaces whose architectures this network builds (``build(..., space=...)``)
SPACES = ("darts", "darts-blocks")
_EXPECTED_BLOCKS = (
    "a valid darts-blocks architecture int8[2, 8, 2] (cell, edge, (input node, op)): 1 to 4 present nodes per "
    "cell, each with distinct, sorted inputs and no 'none' op, then absent nodes ((0, none), (1, none))"
)


class DartsCell(nnx.Module):
    """One normal or reduction cell: ``(s0, s1) -> [B, H', W', n_nodes c]`` (``n_nodes``: its present nodes)."""

    def __init__(
        self,
        genes: np.ndarray,
        c_pp: int,
        c_p: int,
        c: int,
        *,
        reduction: bool,
        reduction_prev: bool,
        drop_path_rate: float,
        rngs: nnx.Rngs,
    ):
        if reduction_prev:
            self.pre0 = FactorizedReduce(c_pp, c, rngs=rngs)
        else:
            self.pre0 = ReLUConvBN(c_pp, c, 1, 1, 0, rngs=rngs)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, rngs=rngs)
        #: present intermediate nodes (4 in a DARTS cell; fewer in a darts-blocks cell: absent nodes are trailing)
        self.n_nodes = int(np.sum(np.asarray(genes)[0::2, 1] != NONE))
        genes = np.asarray(genes)[: 2 * self.n_nodes]
        self.inputs = tuple(int(i) for i in genes[:, 0])
        edges, drops = [], []
        for inp, op in genes:
            stride = 2 if reduction and inp < 2 else 1
            edges.append(DARTS_OPS[OPS[int(op)]](c, stride, rngs))
            # DARTS drops every edge output except plain identities.
            drops.append(None if isinstance(edges[-1], Identity) else DropPath(drop_path_rate, rngs=rngs))
        self.edges = nnx.List(edges)
        self.drops = nnx.List(drops)

    def __call__(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(self.n_nodes):
            total = None
            for e in (2 * node, 2 * node + 1):
                h = self.edges[e](states[self.inputs[e]])
                if self.drops[e] is not None:
                    h = self.drops[e](h)
                total = h if total is None else total + h
            states.append(total)
        return jnp.concatenate(states[2:], axis=-1)


class AuxiliaryHead(nnx.Module):
    """DARTS's CIFAR auxiliary classifier (see the module docstring): ``[B, H, W, c] -> [B, num_classes]``."""

    def __init__(self, c: int, num_classes: int, *, rngs: nnx.Rngs):
        self.conv1 = conv(c, AUX_HIDDEN, 1, 1, 0, rngs=rngs)
        self.bn1 = batch_norm(AUX_HIDDEN, rngs=rngs)
        self.conv2 = conv(AUX_HIDDEN, AUX_FEATURES, 2, 1, 0, rngs=rngs)
        self.bn2 = batch_norm(AUX_FEATURES, rngs=rngs)
        self.classifier = nnx.Linear(AUX_FEATURES, num_classes, rngs=rngs)

    def __call__(self, x):
        x = jax.nn.relu(x)
        kh, kw = min(5, x.shape[1]), min(5, x.shape[2])
        # No padding, so this mean is the same with or without counting padding.
        x = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, kh, kw, 1), (1, 3, 3, 1), "VALID") / (kh * kw)
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        pad_h, pad_w = max(0, 2 - x.shape[1]), max(0, 2 - x.shape[2])
        if pad_h or pad_w:
            x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
        x = jax.nn.relu(self.bn2(self.conv2(x)))
        return self.classifier(jnp.mean(x, axis=(1, 2)))


class DartsNetwork(nnx.Module):
    """The DARTS CIFAR network; ``__call__``: ``[B, H, W, in_channels] -> [B, num_classes]``.

    With ``auxiliary=True`` in training mode it returns ``(logits, aux_logits)``.
    ``deterministic`` is the mode flag (False = training, the flax default),
    set by ``train()`` / ``eval()`` / ``nnx.view``.
    """

    def __init__(
        self,
        arch: np.ndarray,
        *,
        num_classes: int,
        rngs: nnx.Rngs,
        channels: int = 36,
        layers: int = 20,
        auxiliary: bool = False,
        drop_path_rate: float = 0.0,
        in_channels: int = 3,
    ):
        c_stem = STEM_MULTIPLIER * channels
        self.stem_conv = conv(in_channels, c_stem, 3, rngs=rngs)
        self.stem_bn = batch_norm(c_stem, rngs=rngs)
        self.reductions = (layers // 3, 2 * layers // 3)
        self.aux_after = 2 * layers // 3
        c_pp, c_p, c = c_stem, c_stem, channels
        cells, reduction_prev, c_aux = [], False, None
        for i in range(layers):
            reduction = i in self.reductions
            if reduction:
                c *= 2
            genes = arch[1 if reduction else 0]
            cells.append(
                DartsCell(
                    genes,
                    c_pp,
                    c_p,
                    c,
                    reduction=reduction,
                    reduction_prev=reduction_prev,
                    drop_path_rate=drop_path_rate,
                    rngs=rngs,
                )
            )
            reduction_prev = reduction
            c_pp, c_p = c_p, cells[-1].n_nodes * c
            if i == self.aux_after:
                c_aux = c_p
        self.cells = nnx.List(cells)
        self.auxiliary = nnx.data(AuxiliaryHead(c_aux, num_classes, rngs=rngs) if auxiliary else None)
        self.classifier = nnx.Linear(c_p, num_classes, rngs=rngs)
        self.deterministic = False

    def set_view(self, deterministic: bool | None = None):
        """Used by ``nnx.view``: ``deterministic=True`` is evaluation mode (no aux output, no drop-path)."""
        if deterministic is not None:
            self.deterministic = deterministic

    def set_drop_path_rate(self, rate: float) -> None:
        """Set the drop-path probability of every edge (e.g. DARTS's linear ramp, once per epoch)."""
        if not (is_number(rate) and 0 <= rate < 1):
            raise bad_argument("rate", rate, "a drop probability in [0, 1)")
        for _, module in nnx.iter_modules(self):
            if isinstance(module, DropPath):
                module.rate = float(rate)

    def __call__(self, x):
        s0 = s1 = self.stem_bn(self.stem_conv(x))
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_after and self.auxiliary is not None and not self.deterministic:
                aux = self.auxiliary(s1)
        logits = self.classifier(jnp.mean(s1, axis=(1, 2)))
        return logits if aux is None else (logits, aux)


def _blocks_valid():
    """The jitted ``is_valid`` of ``darts-blocks`` (compiled on first use)."""
    global _IS_VALID_BLOCKS
    if _IS_VALID_BLOCKS is None:
        from jnas.spaces.darts_blocks import DARTS_BLOCKS

        _IS_VALID_BLOCKS = jax.jit(DARTS_BLOCKS.is_valid)
    return _IS_VALID_BLOCKS


_IS_VALID_BLOCKS = None


def genes_of(arch, space: str = "darts") -> np.ndarray:
    """``arch`` as a host ``int[2, 8, 2]`` array after checking it is a valid architecture of ``space``
    (``darts``, or ``darts-blocks``: cells of 1 to 4 nodes)."""
    if space not in SPACES:
        raise bad_argument("space", space, " or ".join(repr(s) for s in SPACES))
    expected = _EXPECTED if space == "darts" else _EXPECTED_BLOCKS
    try:
        a = np.asarray(arch)
    except (TypeError, ValueError):
        raise bad_argument("arch", arch, expected + ", as concrete (untraced) arrays") from None
    if a.shape != (2, N_EDGES, 2) or not np.issubdtype(a.dtype, np.integer):
        raise bad_argument("arch", f"array of shape {a.shape} and dtype {a.dtype}", expected)
    if not np.array_equal(a.astype(np.int8), a):  # would wrap around in the space's int8/int32 checks
        raise bad_argument("arch", a.tolist(), expected)
    # Eager even inside a trace (e.g. building under ``nnx.eval_shape``): the structure is static.
    with jax.ensure_compile_time_eval():
        valid = bool((_IS_VALID if space == "darts" else _blocks_valid())(a))
    if not valid:
        raise bad_argument("arch", a.tolist(), expected)
    return a.astype(np.int64)


def build(
    arch,
    *,
    num_classes: int,
    rngs: nnx.Rngs,
    channels: int = 36,
    layers: int = 20,
    auxiliary: bool = False,
    drop_path_rate: float = 0.0,
    in_channels: int = 3,
    space: str = "darts",
) -> DartsNetwork:
    """The DARTS evaluation network of ``arch`` (``int8[2, 8, 2]``, normal and reduce cell).

    Defaults are DARTS's CIFAR-10 evaluation setting (36 channels, 20 cells);
    ``auxiliary`` adds the auxiliary head at cell ``2 * layers // 3``;
    ``drop_path_rate`` is the drop-path probability in training mode;
    ``in_channels`` is the image channel count; ``space`` is ``darts`` or
    ``darts-blocks`` (cells of 1 to 4 nodes: only the present ones are built).
    """
    genes = genes_of(arch, space)
    if not (is_number(drop_path_rate) and 0 <= drop_path_rate < 1):
        raise bad_argument("drop_path_rate", drop_path_rate, "a drop probability in [0, 1)")
    if not isinstance(auxiliary, (bool, np.bool_)):
        raise bad_argument("auxiliary", auxiliary, "True or False")
    return DartsNetwork(
        genes,
        num_classes=check_int("num_classes", num_classes, 1),
        rngs=rngs,
        channels=check_int("channels", channels, 1),
        layers=check_int("layers", layers, 1),
        auxiliary=bool(auxiliary),
        drop_path_rate=float(drop_path_rate),
        in_channels=check_int("in_channels", in_channels, 1),
    )


__all__ = ["SPACES", "AuxiliaryHead", "DartsCell", "DartsNetwork", "build", "genes_of"]
