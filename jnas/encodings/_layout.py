"""Where each space keeps its decisions inside the architecture array.

Encodings read architectures through this one module so that a change of a
space's layout is fixed in one place. Layouts (see each space's docstring):

- ``nb201``: ``int8[6]`` op id per edge.
- ``nb101``: ``(adjacency uint8[7, 7], ops int8[7])``; vertex 0 is the input
  (op code 3), vertex 6 the output (4), vertices 1..5 carry an id of
  ``space.ops``, or -1 once ``space.prune`` has removed them.
- ``darts``: ``int8[2, 8, 2]`` = (cell, edge, (input, op)); edges ``2i, 2i+1``
  feed intermediate node ``i + 2``; inputs 0, 1 are the two cell inputs.
- ``nbgraph``: ``int8[8]`` = ``link[4] + ops[4]``; ``link[i] = 0`` is the graph
  input and ``link[i] = j > 0`` the output of node ``j - 1``.
- ``convnet``: ``int8[1 + 2 * max_depth]`` = depth, then (channel id, kernel
  id) per layer, padded after ``depth``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError
from jnas.spaces import get_space

FAMILIES = ("nb201", "nb101", "darts", "convnet", "nbgraph")

#: op slots that `none` removes from the graph (no path runs through them)
CUT_OPS = ("none",)


def resolve(space):
    """The space object for ``space`` (a ``Space`` or a registered name)."""
    return get_space(space) if isinstance(space, str) else space


def family(space) -> str:
    """Layout family of ``space`` (``"convnet-small"`` -> ``"convnet"``)."""
    name = getattr(space, "name", None)
    if isinstance(name, str) and name.split("-")[0] in FAMILIES:
        return name.split("-")[0]
    raise JnasError(f"space: got {space!r}, expected a registered space ({', '.join(FAMILIES)} or a variant)")


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


def unsupported(what: str, space, families) -> JnasError:
    """The error for an encoding that a space family does not define."""
    return JnasError(f"space: {what} is defined for {', '.join(families)}; got {getattr(space, 'name', space)!r}")


# ----- op slots (the decisions an operation distribution counts) -------------

#: families whose every cell has a fixed number of op slots
OP_SLOT_FAMILIES = ("nb201", "darts", "nbgraph")


def slot_ops(space) -> tuple[str, ...]:
    """Ops a member architecture can hold in an op slot, in encoding order.

    DARTS lists ``none`` for supernets only (no member holds it), so its
    operation distribution runs over the other 7 ops; elsewhere all of ``space.ops``.
    """
    ops = tuple(space.ops)
    return tuple(o for o in ops if o != "none") if family(space) == "darts" else ops


def slot_op_ids(space) -> np.ndarray:
    """``int32[k]``: the ``space.ops`` id of each entry of ``slot_ops(space)``."""
    return np.array([space.ops.index(o) for o in slot_ops(space)], np.int32)


def has_wiring(space) -> bool:
    """Whether ``space`` has decisions besides its op slots (edge inputs, links)."""
    return family(space) != "nb201"


def slots_per_cell(space) -> int:
    """Number of op slots ``N`` in one cell of ``space``."""
    fam = family(space)
    if fam not in OP_SLOT_FAMILIES:
        raise unsupported("the operation-distribution encoding", space, OP_SLOT_FAMILIES)
    return len(space.edges) if fam == "nb201" else {"darts": 8, "nbgraph": 4}[fam]


def n_cells(space) -> int:
    """Number of cells whose op slots are counted separately."""
    return 2 if family(space) == "darts" else 1


def op_slots(space, arch) -> jnp.ndarray:
    """``int32[cells, slots]``: the op id of every op slot of ``arch``."""
    fam = family(space)
    if fam == "nb201":
        return jnp.asarray(arch).astype(jnp.int32)[None, :]
    if fam == "darts":
        return jnp.asarray(arch)[..., 1].astype(jnp.int32)
    if fam == "nbgraph":
        return jnp.asarray(arch)[4:].astype(jnp.int32)[None, :]
    raise unsupported("the operation-distribution encoding", space, OP_SLOT_FAMILIES)


def with_op_slots(space, arch, ops) -> jnp.ndarray:
    """``arch`` with its op slots replaced by ``ops`` (``int[cells, slots]``)."""
    fam = family(space)
    arch = jnp.asarray(arch)
    ops = jnp.asarray(ops).astype(arch.dtype)
    if fam == "nb201":
        return ops[0]
    if fam == "darts":
        return arch.at[..., 1].set(ops)
    if fam == "nbgraph":
        # Relabelling to the canonical form permutes nodes, so the op multiset survives.
        return space.canonicalize(arch.at[4:].set(ops[0]))
    raise unsupported("the operation-distribution encoding", space, OP_SLOT_FAMILIES)
