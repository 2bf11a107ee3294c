"""The plain ConvNet of LaNAS's ConvNet spaces (Wang et al., 2019/2020).

What the paper fixes: a network is a chain of ``depth`` conv layers, each
with its own channel count and kernel size (the architecture array), "plain
VGG-style ConvNets, no residual connections"; its motivating example calls
the primitive a "Conv-ReLU layer". What it leaves open, and the choices made
here:

- each layer is conv (no bias, stride 1, "same" padding) → BN → ReLU
  (``ConvBNReLU``): BN is added to the paper's Conv-ReLU so that deep plain
  chains train reliably;
- no pooling or striding between layers (the paper names none, and with up
  to 8 layers every resolution choice would be arbitrary): all layers run at
  the input resolution;
- head: global average pooling, then one linear layer (with bias).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jnas.errors import bad_argument, check_int
from jnas.models.ops import ConvBNReLU
from jnas.spaces.convnet import CONVNET, CONVNET_SMALL, ConvNetSpace

SPACES = {"convnet": CONVNET, "convnet-small": CONVNET_SMALL}
# one compiled program per space, not many eager ops per build
_IS_VALID = {name: jax.jit(space.is_valid) for name, space in SPACES.items()}


class ConvNet(nnx.Module):
    """A chain of ``ConvBNReLU`` layers + global average pool + linear: ``[B, H, W, C] -> [B, num_classes]``."""

    def __init__(self, layers: list[tuple[int, int]], *, num_classes: int, rngs: nnx.Rngs, in_channels: int = 3):
        convs, c = [], in_channels
        for channels, kernel in layers:
            convs.append(ConvBNReLU(c, channels, kernel, rngs=rngs))
            c = channels
        self.layers = nnx.List(convs)
        self.head = nnx.Linear(c, num_classes, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(jnp.mean(x, axis=(1, 2)))


def layers_of(arch, space: ConvNetSpace) -> list[tuple[int, int]]:
    """``[(channels, kernel), ...]`` of a valid ``arch`` of ``space``; ``JnasError`` otherwise."""
    expected = (
        f"a valid {space.name} architecture int8[{1 + 2 * space.max_depth}] "
        f"[depth in {space.min_depth}..{space.max_depth}, ch_0, k_0, ...] with unused layers zeroed"
    )
    try:
        a = np.asarray(arch)
    except (TypeError, ValueError):
        raise bad_argument("arch", arch, expected + ", as a concrete (untraced) array") from None
    if a.shape != (1 + 2 * space.max_depth,) or not np.issubdtype(a.dtype, np.integer):
        raise bad_argument("arch", f"array of shape {a.shape} and dtype {a.dtype}", expected)
    if not np.array_equal(a.astype(np.int8), a):  # would wrap around in the space's int32 checks
        raise bad_argument("arch", a.tolist(), expected)
    # Eager even inside a trace (e.g. building under ``nnx.eval_shape``): the structure is static.
    with jax.ensure_compile_time_eval():
        valid = bool(_IS_VALID[space.name](a))
    if not valid:
        raise bad_argument("arch", a.tolist(), expected)
    a = a.astype(int)
    return [(space.channels[a[1 + 2 * i]], space.kernels[a[2 + 2 * i]]) for i in range(a[0])]


def build(arch, *, num_classes: int, rngs: nnx.Rngs, space: str = "convnet", in_channels: int = 3) -> ConvNet:
    """The ConvNet of ``arch`` in ``space`` (``"convnet"`` or ``"convnet-small"``).

    ``in_channels`` is the image channel count.
    """
    if space not in SPACES:
        raise bad_argument("space", space, "'convnet' or 'convnet-small'")
    num_classes = check_int("num_classes", num_classes, 1)
    in_channels = check_int("in_channels", in_channels, 1)
    layers = layers_of(arch, SPACES[space])
    return ConvNet(layers, num_classes=num_classes, rngs=rngs, in_channels=in_channels)


__all__ = ["ConvNet", "SPACES", "build", "layers_of"]
