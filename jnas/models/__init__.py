"""Flax (NNX) networks built from architecture arrays.

``build_network(space, arch, num_classes=..., rngs=...)`` returns an
``nnx.Module`` whose ``__call__(x)`` maps float images ``[B, H, W, C]``
(NHWC) to logits ``[B, num_classes]``. Train/eval behaviour (BatchNorm
statistics, drop-path) follows flax's mode switch (``model.train()`` /
``model.eval()``). Each space's module exposes ``build(arch, *, num_classes,
rngs, **options)``; ``jnas.models.cost`` reports parameters, FLOPs and
activation memory of any built network without compiling it.
"""

from __future__ import annotations

import importlib

from jnas.errors import bad_argument, unknown_name

# space name -> (module holding ``build``, options that space fixes); imported lazily (flax import is slow)
_BUILDERS = {
    "nb201": ("jnas.models.nb201", {}),
    "nb101": ("jnas.models.nb101", {}),
    "darts": ("jnas.models.darts", {}),
    "convnet": ("jnas.models.convnet", {"space": "convnet"}),
    "convnet-small": ("jnas.models.convnet", {"space": "convnet-small"}),
    "nago": ("jnas.models.nago", {"generator": "hnag"}),
    "rnag": ("jnas.models.nago", {"generator": "rnag"}),
}

#: spaces whose architecture is a generator configuration: the network also needs a seed and the input shape
GENERATED = frozenset({"nago", "rnag"})


def names() -> list[str]:
    """Space names that have a network builder."""
    return sorted(_BUILDERS)


def build_network(space: str, arch, *, num_classes: int, rngs, **options):
    """The network of ``arch`` in ``space`` (see the space's ``build`` for ``options``)."""
    if space not in _BUILDERS:
        raise unknown_name("network space", space, _BUILDERS)
    module, fixed = _BUILDERS[space]
    for name in fixed.keys() & options.keys():
        raise bad_argument(name, options[name], f"no value: the space {space!r} fixes it to {fixed[name]!r}")
    return importlib.import_module(module).build(arch, num_classes=num_classes, rngs=rngs, **fixed, **options)


__all__ = ["GENERATED", "build_network", "names"]
