"""The search-space protocol.

A space is a set of pure functions over *architectures*: small fixed-shape
integer arrays (or pytrees of them, e.g. NB101's ``(adjacency, ops)``). Every
array-level method is jittable and vmappable; string and graph conversions
are host-side helpers that sit outside the hot path.

Subclasses implement the abstract primitives; ``mutate`` (a uniformly random
valid neighbour) and ``sample`` (for enumerable spaces: a uniform index) come
for free from them, so every space mutates by the same rule: one edit.

A space also *describes itself* to the code above it, so encodings and
strategies need no switch on space names:

- ``decisions`` / ``to_decisions`` / ``from_decisions`` / ``live_decisions``:
  the architecture as a sequence of categorical decisions (the tokens a
  controller or TPE walks), with the cardinality of each and which ones
  matter given the others. Where the architecture is its own token vector
  (one flat array, entry ``d`` = token ``d``: NB201, NAS-Bench-Graph), the
  default ``to_decisions`` / ``from_decisions`` are casts; other spaces
  define their own.
- ``canonicalize``: the one array of a network that has several (identity by
  default).
- ``op_slot_layout`` / ``op_slots`` / ``with_op_slots``: the operation slots an
  operation distribution counts.
- ``graph_layout`` / ``graph_tensors`` / ``relaxed_graph``: the cell as a
  graph with ops as nodes, padded ``(A, X, mask)`` for GNNs, the edges any
  member can have (which the path encoding walks), and, for spaces that are
  their op slots, the same tensors from continuous op rows.
- ``onehot`` / ``onehot_names``: the BANANAS adjacency one-hot encoding.
- ``relaxation``: the continuous relaxation of the space that LaNAS samples in.
- ``generated``: whether a network is drawn from the architecture *and* a seed.

Optional members a space does not define raise a one-line ``JnasError``
(``space: got 'convnet', which does not define ...``); ``supports(member)``
asks without raising. Members derived from ``decisions`` (``onehot``,
``relaxation``) come for free once a space defines its decisions.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError

Arch = Any  # a pytree of integer arrays with a space-specific fixed shape


class Decisions(NamedTuple):
    """An architecture read as ``D`` categorical decisions (the token sequence a controller or TPE walks).

    Token ``t[d]`` takes values ``0 .. cardinality[d] - 1``. ``from_decisions``
    of any token vector is an architecture array (raw: pass it through
    ``canonicalize``; it may still be invalid, e.g. NAS-Bench-Graph's
    all-skip cell). Decisions are ordered so that a decision's liveness
    depends only on earlier ones.
    """

    cardinality: np.ndarray  # int32[D]: number of values of each decision
    names: tuple[str, ...]  # D names, e.g. "edge0->1"
    values: tuple[tuple[str, ...], ...]  # per decision, the name of each of its values
    conditional: bool  # True when a decision can be dead (``live_decisions`` is not always all True)


class OpSlots(NamedTuple):
    """The operation slots of a space: ``cells`` cells of ``slots`` slots, each holding one of ``ops``."""

    ops: tuple[str, ...]  # the k ops a member can hold in a slot, in encoding order (names of ``space.ops``)
    cells: int  # cells whose slots are counted separately (DARTS: normal, reduce)
    slots: int  # op slots per cell (N)
    wired: bool  # the architecture has decisions besides its op slots (edge inputs, links)


class GraphLayout(NamedTuple):
    """How ``graph_tensors`` lays a cell out as a graph with ops as nodes.

    ``wiring`` holds every edge some member can have (``A <= wiring``), with
    the leading cell axis when ``cells`` is not empty. Nodes without a
    possible incoming edge are the graph's inputs, nodes without a possible
    outgoing edge its outputs; the path encoding walks ``wiring`` between them.
    """

    labels: tuple[str, ...]  # names of the columns of X (node label vocabulary)
    wiring: np.ndarray  # bool[n, n] (or bool[cells, n, n]): row = source, column = target
    cells: tuple[str, ...]  # names of the leading cell axis of A, X, mask; () for one graph per architecture
    paths: bool  # whether the BANANAS path encoding is defined (False where it would be huge)


class Relaxation(NamedTuple):
    """Features of a space with their continuous relaxation (what LaNAS's regressors and hit-and-run see).

    ``encode(arch) -> float[dim]`` (jittable, vmappable) with every coordinate
    in ``[0, 1]``. ``block``: ``int[dim]`` block id of each coordinate (-1 =
    a free coordinate in ``[0, 1]``); ``block_sum``: ``float[n_blocks]`` the
    sum each block keeps. ``decode(key, x)`` rounds a relaxed point
    ``float[dim]`` to an architecture at random (it may be invalid; check
    ``space.is_valid``); a vertex of the relaxation rounds to its own architecture.
    """

    dim: int
    encode: Callable
    block: np.ndarray
    block_sum: np.ndarray
    decode: Callable


#: optional members that raise "does not define" unless a space overrides them
OPTIONAL = ("decisions", "to_decisions", "from_decisions", "op_slot_layout", "op_slots", "with_op_slots",
            "graph_layout", "graph_tensors", "relaxed_graph", "onehot", "onehot_names", "relaxation")
#: optional members whose default is derived from ``decisions``
_FROM_DECISIONS = ("to_decisions", "from_decisions", "onehot", "onehot_names", "relaxation")


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

    # ----- self-description: decisions ---------------------------------------------
    #: networks are drawn from the architecture *and* a seed (generator spaces such as NAGO)
    generated: bool = False

    def canonicalize(self, arch: Arch) -> Arch:
        """The one array of the network ``arch`` describes (identity where every network has one array)."""
        return arch

    @property
    def decisions(self) -> Decisions:
        """The architecture as categorical decisions (see ``Decisions``)."""
        raise self.unsupported("categorical decisions")

    def to_decisions(self, arch: Arch) -> jax.Array:
        """``int32[D]`` tokens of one architecture (dead decisions hold 0).

        Default: ``arch`` cast, for a space whose architecture is its token vector.
        """
        self._token_dtype()
        return jnp.asarray(arch).astype(jnp.int32)

    def from_decisions(self, tokens: jax.Array) -> Arch:
        """The (raw) architecture of ``int[D]`` tokens; dead decisions are ignored.

        Default: ``tokens`` cast to the architecture's dtype, for a space whose architecture is its token vector.
        """
        dtype = self._token_dtype()  # raises first for a space without decisions
        return jnp.asarray(tokens).astype(dtype)

    def _token_dtype(self):
        """The dtype of an architecture that is its own token vector (the default ``to/from_decisions``)."""
        if not self.supports("decisions"):
            raise self.unsupported("categorical decisions")
        t = self.template()
        if not isinstance(t, (np.ndarray, jax.Array)) or t.shape != (len(self.decisions.cardinality),):
            raise NotImplementedError(f"space {self.name!r}: its architecture is not its token vector; "
                                      "define to_decisions and from_decisions")
        return t.dtype

    def live_decisions(self, tokens: jax.Array) -> jax.Array:
        """``bool[D]``: decisions that matter given the others (all True unless ``decisions.conditional``)."""
        return jnp.ones(len(self.decisions.cardinality), bool)

    # ----- self-description: op slots ----------------------------------------------------
    @property
    def op_slot_layout(self) -> OpSlots:
        """The operation slots an operation distribution counts (see ``OpSlots``)."""
        raise self.unsupported("op slots (the operation-distribution encoding)")

    def op_slots(self, arch: Arch) -> jax.Array:
        """``int32[cells, slots]``: the ``space.ops`` id held by every op slot of ``arch``."""
        raise self.unsupported("op slots (the operation-distribution encoding)")

    def with_op_slots(self, arch: Arch, ops: jax.Array) -> Arch:
        """``arch`` with its op slots replaced by ``ops`` (``int[cells, slots]`` ``space.ops`` ids), canonical."""
        raise self.unsupported("op slots (the operation-distribution encoding)")

    # ----- self-description: the cell as a graph -------------------------------------------
    @property
    def graph_layout(self) -> GraphLayout:
        """Node labels and possible edges of ``graph_tensors`` (see ``GraphLayout``)."""
        raise self.unsupported("graph tensors")

    def graph_tensors(self, arch: Arch) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(A float32[n, n], X float32[n, f], mask bool[n])`` of one architecture, ops as nodes.

        ``A[i, j] = 1`` when node ``i`` feeds node ``j``; ``X`` one-hot over
        ``graph_layout.labels``; ``mask`` marks existing nodes (padding nodes
        have zero rows and columns). A leading cell axis when ``graph_layout.cells``.
        """
        raise self.unsupported("graph tensors")

    def relaxed_graph(self, rows: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``graph_tensors`` of a cell given (possibly continuous) op rows ``float[slots, k]``.

        Columns follow ``op_slot_layout.ops``; equals ``graph_tensors`` on
        one-hot rows and is differentiable in ``rows``. Only for spaces that
        are their op slots (one cell, not ``wired``).
        """
        raise self.unsupported("a graph of continuous op rows")

    # ----- self-description: encodings ----------------------------------------------------
    def onehot(self, arch: Arch) -> jax.Array:
        """``float32[d]`` BANANAS adjacency one-hot encoding (default: one-hot of every live decision)."""
        from jnas.spaces import generic

        if not self.supports("decisions"):
            raise self.unsupported("the adjacency one-hot encoding")
        return generic.decision_onehot(self, arch)

    def onehot_names(self) -> tuple[str, ...]:
        """Human names of the entries of ``onehot``, in order."""
        from jnas.spaces import generic

        if not self.supports("decisions"):
            raise self.unsupported("the adjacency one-hot encoding")
        return generic.decision_onehot_names(self)

    def relaxation(self) -> Relaxation:
        """The features LaNAS regresses on and their continuous relaxation (default: one-hot decisions)."""
        from jnas.spaces import generic

        if not self.supports("decisions"):
            raise self.unsupported("a continuous relaxation (LaNAS feature map)")
        return generic.decision_relaxation(self)

    def supports(self, member: str) -> bool:
        """Whether the optional ``member`` (one of ``OPTIONAL``) is defined for this space."""
        if member not in OPTIONAL:
            raise JnasError(f"member: got {member!r}, expected one of {', '.join(OPTIONAL)}")
        if getattr(type(self), member) is not getattr(Space, member):
            return True
        return member in _FROM_DECISIONS and self.supports("decisions")

    def unsupported(self, what: str) -> JnasError:
        """The one-line error for an optional member this space does not define."""
        return JnasError(f"space: got {self.name!r}, which does not define {what}")

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
