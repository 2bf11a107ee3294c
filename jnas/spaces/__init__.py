"""Search spaces: pure functions over fixed-shape integer architectures."""

from __future__ import annotations

import importlib

from jnas.errors import unknown_name
from jnas.spaces.base import Arch, Decisions, GraphLayout, OpSlots, Relaxation, Space

# name -> (module, attribute); imported lazily so that `jnas list` stays fast
_REGISTRY = {
    "nb201": ("jnas.spaces.nb201", "NB201"),
    "nb201-3": ("jnas.spaces.nb201", "NB201_3"),
    "nb101": ("jnas.spaces.nb101", "NB101"),
    "darts": ("jnas.spaces.darts", "DARTS"),
    "darts-blocks": ("jnas.spaces.darts_blocks", "DARTS_BLOCKS"),
    "convnet": ("jnas.spaces.convnet", "CONVNET"),
    "convnet-small": ("jnas.spaces.convnet", "CONVNET_SMALL"),
    "nbgraph": ("jnas.spaces.nbgraph", "NBGRAPH"),
    "nbgraph-proteins": ("jnas.spaces.nbgraph", "NBGRAPH_PROTEINS"),
    "nago": ("jnas.spaces.nago", "NAGO"),
    "rnag": ("jnas.spaces.nago", "RNAG"),
}


def names() -> list[str]:
    """Registered space names."""
    return sorted(_REGISTRY)


def get_space(name: str) -> Space:
    """The space registered under ``name``; unknown names list the valid ones."""
    if name not in _REGISTRY:
        raise unknown_name("space", name, _REGISTRY)
    module, attr = _REGISTRY[name]
    return getattr(importlib.import_module(module), attr)


__all__ = ["Arch", "Decisions", "GraphLayout", "OpSlots", "Relaxation", "Space", "get_space", "names"]
