"""The search-space protocol.

A space is a set of pure functions over *architectures*: small fixed-shape
integer arrays (or pytrees of them, e.g. NB101's ``(adjacency, ops)``). Every
array-level method is jittable and vmappable; string and graph conversions
are host-side helpers that sit outside the hot path.

Subclasses implement the abstract primitives; ``mutate`` (a uniformly random
valid neighbour) and ``sample`` (for enumerable spaces: a uniform index) come
for free from them, so every space mutates by the same rule: one edit.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import jax.numpy as jnp

Arch = Any  # a pytree of integer arrays with a space-specific fixed shape


class Space(abc.ABC):
    """Base class of search spaces. Instances are immutable and hashable by identity."""

    #: short registry name, e.g. ``"nb201"``
    name: str = ""
    #: True when ``enumerate`` / ``index`` / ``from_index`` are available
    enumerable: bool = False

    # ----- structure -------------------------------------------------------
    @abc.abstractmethod
    def template(self) -> Arch:
        """An all-zeros architecture of the right shape and dtype (for buffers)."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Number of distinct valid architectures (exact where finite)."""

    # ----- array primitives (jittable, vmappable) ----------------------------
    def sample(self, key: jax.Array) -> Arch:
        """One architecture drawn uniformly from the space."""
        if not self.enumerable:
            raise NotImplementedError(f"{self.name}: sample must be implemented")
        return self.from_index(jax.random.randint(key, (), 0, self.size))

    @abc.abstractmethod
    def neighbours(self, arch: Arch) -> tuple[Arch, jax.Array]:
        """All architectures at edit distance 1.

        Returns ``(archs, mask)``: ``archs`` has a fixed leading dimension
        ``n_neighbours`` (the same for every input), ``mask`` is ``bool[n]`` and
        marks the entries that are valid, distinct members of the space.
        """

    def mutate(self, key: jax.Array, arch: Arch) -> Arch:
        """A uniformly random valid neighbour (one edit); ``arch`` itself if it has none."""
        nbrs, mask = self.neighbours(arch)
        i = pick_masked(key, mask)
        out = jax.tree.map(lambda x: x[i], nbrs)
        return jax.tree.map(lambda o, a: jnp.where(mask.any(), o, a), out, arch)

    @abc.abstractmethod
    def crossover(self, key: jax.Array, a: Arch, b: Arch) -> Arch:
        """A valid child mixing the decisions of parents ``a`` and ``b``."""

    @abc.abstractmethod
    def is_valid(self, arch: Arch) -> jax.Array:
        """``bool[]``: whether ``arch`` is a member of the space."""

    # ----- enumeration (enumerable spaces only) ---------------------------------
    def enumerate(self) -> Arch:
        """The whole space, stacked along a leading axis in ``index`` order."""
        raise NotImplementedError(f"space {self.name!r} is not enumerable")

    def index(self, arch: Arch) -> jax.Array:
        """``int32[]`` position of ``arch`` in ``enumerate()`` (-1 if invalid)."""
        raise NotImplementedError(f"space {self.name!r} is not enumerable")

    def from_index(self, i: jax.Array) -> Arch:
        """Inverse of ``index``."""
        raise NotImplementedError(f"space {self.name!r} is not enumerable")

    # ----- host-side conversions ---------------------------------------------
    @abc.abstractmethod
    def to_string(self, arch: Arch) -> str:
        """Human/official string form of one architecture."""

    @abc.abstractmethod
    def from_string(self, text: str) -> Arch:
        """Parse ``to_string`` output; raises ``JnasError`` on malformed text."""

    @abc.abstractmethod
    def to_networkx(self, arch: Arch):
        """A ``networkx.DiGraph`` of the cell (nodes carry an ``op`` attribute)."""

    # ----- conveniences ------------------------------------------------------
    def sample_batch(self, key: jax.Array, n: int) -> Arch:
        """``n`` independent samples stacked along a leading axis."""
        return jax.vmap(self.sample)(jax.random.split(key, n))

    def __repr__(self) -> str:
        return f"<space {self.name}>"

    # Spaces are used as static arguments of jitted functions.
    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other) -> bool:
        return self is other


def pick_masked(key: jax.Array, mask: jax.Array) -> jax.Array:
    """Uniform random position among the ``True`` entries of ``bool[n]`` (0 if none).

    One random integer and a cumulative sum, rather than one Gumbel draw per
    entry: mutation sits in the innermost loop of every evolutionary search.
    """
    n_valid = mask.sum()
    r = jax.random.randint(key, (), 0, jnp.maximum(n_valid, 1))
    return jnp.argmax(jnp.cumsum(mask) > r)
