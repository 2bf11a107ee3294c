"""Functions whose ``vmap`` runs the batch as a loop on CPU.

``vmap`` is how jnas runs many seeds at once, and on accelerators it is the
right thing everywhere. On XLA:CPU two kinds of work lose under it:

- iterative solvers (L-BFGS, line searches): a vmapped ``while_loop`` runs
  until the slowest batch member stops, and every ``cond`` inside becomes a
  ``select`` that computes both branches. One GP fit for ten seeds (150
  points, ``bo``'s default ML-II) costs 0.41 s vmapped and 0.11 s as a
  loop over the seeds on the 2-core CI machine.
- LAPACK factorisations and solves: batched, they can deadlock the
  intra-op thread pool (see ``jnas.linalg``).

``sequential_vmap(f)`` returns ``f`` unchanged for unbatched calls; under
``vmap``, when lowered for CPU, the batch goes through ``lax.map`` (one
member at a time, unbatched arguments closed over) and on other platforms
through the ordinary ``vmap`` of ``f``. Nested ``vmap``s nest the loops.
Such a function has no reverse-mode derivative (``custom_vmap`` does not
transpose): use it for work that is not differentiated from outside, or
give it a ``custom_jvp`` as ``jnas.linalg`` does.
"""

from __future__ import annotations

import jax

__all__ = ["sequential_vmap", "map_batched"]


def map_batched(f, raw, axis_size: int, in_batched, args):
    """``(f over the batch, True)``: the body of a ``custom_vmap`` rule that loops on CPU.

    ``in_batched`` mirrors ``args`` (pytrees of bools, as ``custom_vmap``
    passes them); unbatched leaves are closed over. On CPU ``f`` (the
    ``custom_vmap`` function itself, so that enclosing ``vmap``s loop too) is
    called on one batch member's arguments at a time; elsewhere ``raw`` (the
    plain function) is vmapped.
    """
    leaves, tree = jax.tree.flatten(args)
    flags = jax.tree.leaves(in_batched)
    if len(flags) != len(leaves):
        raise ValueError(f"map_batched: {len(flags)} batch flags for {len(leaves)} argument leaves")
    idx = [i for i, b in enumerate(flags) if b]

    def member(fn, batched_leaves):
        full = list(leaves)
        for i, x in zip(idx, batched_leaves):
            full[i] = x
        return fn(*jax.tree.unflatten(tree, full))

    batched = [leaves[i] for i in idx]
    looped = lambda *b: jax.lax.map(lambda m: member(f, m), list(b))  # noqa: E731
    vmapped = lambda *b: jax.vmap(lambda m: member(raw, m))(list(b))  # noqa: E731
    return jax.lax.platform_dependent(*batched, cpu=looped, default=vmapped), True


def sequential_vmap(f):
    """``f`` whose ``vmap`` is a ``lax.map`` loop on CPU (module docstring); positional array arguments."""
    g = jax.custom_batching.custom_vmap(f)

    @g.def_vmap
    def rule(axis_size, in_batched, *args):
        out, _ = map_batched(g, f, axis_size, in_batched, args)
        return out, jax.tree.map(lambda _: True, out)

    return g
