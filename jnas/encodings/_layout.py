"""What encodings need to know about a space, read from the space's own description.

Encodings never switch on space names: layouts, op slots and graphs come
from the members of ``jnas.spaces.base.Space`` (``op_slot_layout``,
``op_slots``, ``graph_layout``, ``graph_tensors``, ``onehot``, ...). This
module resolves the ``space`` argument, checks architecture shapes, and
keeps the small helpers that several encodings share.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from jnas.errors import JnasError
from jnas.spaces import get_space
from jnas.spaces.base import Space

#: op slots that `none` removes from the graph (no path runs through them)
CUT_OPS = ("none",)


def resolve(space) -> Space:
    """The space object for ``space`` (a ``Space`` or a registered name); anything else is a ``JnasError``."""
    if isinstance(space, str):
        return get_space(space)
    if isinstance(space, Space):
        return space
    raise JnasError(f"space: got {space!r}, expected a registered space name or a jnas Space")


@functools.lru_cache(maxsize=None)
def _arch_layout(space):
    """``(treedef, leaf shapes)`` of one architecture of ``space``."""
    leaves, treedef = jax.tree.flatten(space.template())
    return treedef, tuple(leaf.shape for leaf in leaves)


def check_arch(space, arch, what: str = "arch"):
    """``arch`` if its leaves have the shapes of one architecture of ``space``, else ``JnasError``.

    Shapes are static, so this also works on traced values (under ``jit``/``vmap``).
    """
    treedef, want = _arch_layout(space)
    try:
        got = tuple(np.shape(leaf) for leaf in treedef.flatten_up_to(arch))
    except (TypeError, ValueError):
        got = tuple(np.shape(leaf) for leaf in jax.tree.leaves(arch))
    if got != want:
        shown = ", ".join(str(list(w)) for w in want)
        raise JnasError(
            f"{what}: got shape {', '.join(str(list(g)) for g in got) or 'nothing'}, expected one {space.name} "
            f"architecture of shape {shown} (use jax.vmap for batches)"
        )
    return arch


def require(space, member: str, what: str) -> Space:
    """``space`` if it defines the optional ``member``, else its one-line "does not define ``what``" error."""
    if not space.supports(member):
        raise space.unsupported(what)
    return space


# ----- op slots (the decisions an operation distribution counts) -------------


def slot_ops(space) -> tuple[str, ...]:
    """Ops a member architecture can hold in an op slot, in encoding order (``space.op_slot_layout.ops``)."""
    return tuple(space.op_slot_layout.ops)


def slot_op_ids(space) -> np.ndarray:
    """``int32[k]``: the ``space.ops`` id of each entry of ``slot_ops(space)``."""
    return np.array([space.ops.index(o) for o in slot_ops(space)], np.int32)


def has_wiring(space) -> bool:
    """Whether ``space`` has decisions besides its op slots (edge inputs, links)."""
    return bool(space.op_slot_layout.wired)


def slots_per_cell(space) -> int:
    """Number of op slots ``N`` in one cell of ``space``."""
    return int(space.op_slot_layout.slots)


def n_cells(space) -> int:
    """Number of cells whose op slots are counted separately."""
    return int(space.op_slot_layout.cells)


def op_slots(space, arch):
    """``int32[cells, slots]``: the op id of every op slot of ``arch``."""
    return space.op_slots(arch)


def with_op_slots(space, arch, ops):
    """``arch`` with its op slots replaced by ``ops`` (``int[cells, slots]``)."""
    return space.with_op_slots(arch, ops)
