"""NAGO network generators: HNAG (hierarchical) and RNAG (randomly wired), as search spaces.

NAGO (Ru et al., "Neural Architecture Generator Optimization", NeurIPS 2020)
searches over the hyperparameters of a *stochastic network generator*
instead of over single networks. A point of the space is a small vector of
random-graph hyperparameters; ``generate(config, key)`` draws one network's
graphs from it, and ``jnas.models.nago.build`` turns those into an NNX
network whose width meets a parameter limit.

HNAG (``NAGO``, registry name ``"nago"``) is a three-level hierarchy:

* top level: a Watts–Strogatz (WS) graph whose nodes are *cells*, split into
  stages of decreasing resolution by ``stage_ratio`` (node order);
* mid level: each cell is an Erdős–Rényi (ER) graph of *nodes* (ER can give a
  single node, which reduces the hierarchy to two levels);
* bottom level: each mid-level node is a WS graph of *operations*.

RNAG (``RNAG``, registry name ``"rnag"``) is the flat generator of Xie et al.
("Exploring Randomly Wired Neural Networks for Image Recognition", ICCV
2019): three WS graphs of operations in sequence, one per stage. It is
expressed with the same three levels (a chain of three cells, each cell's
mid-level graph is its stage's WS graph, each mid-level node a single op),
so one network builder serves both.

Architecture arrays. The hyperparameters are stored as ``int16`` vectors (so
they behave like every other jnas architecture: fixed shape, integer,
jittable sampling and mutation); probabilities are stored in hundredths
(``p = value / 100``). HNAG, ``int16[8]``::

    index  field      meaning                               range (value)
    0      top_n      WS nodes (cells)                      3..10
    1      top_k      WS ring neighbours (clipped to n-1)   2..5
    2      top_p      WS rewiring probability x 100         10..100 (0.10..1.00)
    3      mid_n      ER nodes per cell                     1..10
    4      mid_p      ER edge probability x 100             20..100 (0.20..1.00)
    5      bottom_n   WS nodes (operations) per node        3..10
    6      bottom_k   WS ring neighbours (clipped to n-1)   2..5
    7      bottom_p   WS rewiring probability x 100         10..100

These are the NAGO search ranges (Appendix E; the numbers lost from the text
are those of the authors' public configuration, except that the mid level
allows a single node as in the paper's Table 3). RNAG, ``int16[9]``: for
stages s = 1, 2, 3, ``stage{s}_n`` in 10..40, ``stage{s}_k`` in 2..10 and
``stage{s}_p`` x 100 in 10..100. The RNAG ranges are our choice (the paper's
numbers are missing from the text): they contain Xie et al.'s default
WS(32, 4, 0.75) and give 30..120 operations per network, the range the
paper quotes for RNAG against 3..1000 for HNAG.

Fixed generator settings (``GeneratorConfig`` / ``RNAGConfig`` fields, not
searched, defaults of the paper's main experiments): ``stage_ratio`` (relative
stage lengths of the top level, equal thirds), ``channel_ratio`` (1:2:4),
``op_probs`` over ``OPS`` (3x3 conv only) and ``merge_probs`` over ``MERGES``
(plain sum only).

Graph conventions (how undirected graphs become DAGs, connectivity redraws,
networkx's WS ``k``) are in ``jnas.spaces.nago_generator``.

The space is not enumerable (``enumerate`` / ``index`` / ``from_index``
raise ``NotEnumerableError``). One edit (``neighbours``) moves one
hyperparameter by one step (1 for node counts and ``k``, 0.05 for
probabilities), clipped to its range. ``unit_vector`` / ``from_unit`` map to
and from ``[0, 1]^d`` for continuous optimisers (BO over generators).

Modules, one job each (every name is also importable from here):

* ``jnas.spaces.nago_generator``: the generator configs (``WS``, ``ER``,
  ``GeneratorConfig``, ``RNAGConfig``) and ``generate``, which draws one
  network's networkx graphs (``NetworkGraphs``) from a config and a key.
* ``jnas.spaces.nago_codec``: the vector layouts (``HNAG_FIELDS``,
  ``RNAG_FIELDS``) and the conversions between vectors, configs and strings.
* here: the spaces. ``GeneratorSpace`` holds everything the two generators
  share; ``HNAGSpace`` (``NAGO``) and ``RNAGSpace`` (``RNAG``) name their
  layout and config type.
"""

from __future__ import annotations

import abc
import math

import jax
import jax.numpy as jnp
import numpy as np

from jnas.errors import JnasError, bad_argument
from jnas.spaces.base import Space
from jnas.spaces.nago_codec import (
    HNAG_FIELDS,
    HNAG_GRAPHS,
    RNAG_FIELDS,
    RNAG_GRAPHS,
    Field,
    GraphGroup,
    config_to_vector,
    format_vector,
    hnag_config_from_vector,
    parse_vector,
    rnag_config_from_vector,
)
from jnas.spaces.nago_generator import (
    ER,
    MAX_TRIES,
    MERGES,
    OPS,
    WS,
    CellGraphs,
    GeneratorConfig,
    NetworkGraphs,
    RNAGConfig,
    er_dag,
    generate,
    seed_from_key,
    stage_of_nodes,
    ws_dag,
)


class NotEnumerableError(JnasError, NotImplementedError):
    """Raised by ``enumerate`` / ``index`` / ``from_index`` of a non-enumerable space."""


# ----- the search spaces ------------------------------------------------------------------

class GeneratorSpace(Space):
    """Hyperparameter vectors of a NAGO network generator (``int16[d]``, see the module docstring).

    One subclass per generator sets ``generator``, ``fields``, ``graphs`` and
    ``config_type`` and defines ``config``; everything else is shared.
    """

    enumerable = False
    ops = OPS
    #: a network is drawn from the hyperparameters and a seed (``to_networkx(arch, seed)``)
    generated = True
    # set by each generator's subclass:
    #: generator name (``NetworkGraphs.generator``; key of ``SPACES``)
    generator: str
    #: the vector layout, one ``Field`` per entry
    fields: tuple[Field, ...]
    #: the string form, one ``GraphGroup`` per graph model (in vector order)
    graphs: tuple[GraphGroup, ...]
    #: the config class of the generator (``config`` returns one, ``vector`` takes one)
    config_type: type

    def __init__(self, name: str):
        self.name = name
        self._lo = np.array([f.lo for f in self.fields], np.int32)
        self._hi = np.array([f.hi for f in self.fields], np.int32)
        self._step = np.array([f.step for f in self.fields], np.int32)

    # ----- structure -------------------------------------------------------------
    @property
    def dim(self) -> int:
        return len(self.fields)

    def template(self):
        return jnp.zeros((self.dim,), jnp.int16)

    @property
    def size(self) -> int:
        """Number of distinct hyperparameter vectors (generators, not networks)."""
        return math.prod(int(h - lo + 1) for lo, h in zip(self._lo, self._hi))

    # ----- array primitives ------------------------------------------------------------
    def is_valid(self, arch):
        a = jnp.asarray(arch).astype(jnp.int32)
        return jnp.all((a >= self._lo) & (a <= self._hi))

    def sample(self, key):
        """Each hyperparameter uniform over its (integer) range, independently."""
        return jax.random.randint(key, (self.dim,), self._lo, self._hi + 1).astype(jnp.int16)

    def neighbours(self, arch):
        """Rows ``2 i`` / ``2 i + 1``: hyperparameter ``i`` moved down / up by its step (clipped)."""
        a = jnp.asarray(arch).astype(jnp.int32)
        idx = np.repeat(np.arange(self.dim), 2)
        delta = np.tile([-1, 1], self.dim) * self._step[idx]
        new = jnp.clip(a[idx] + delta, self._lo[idx], self._hi[idx])
        rows = jnp.tile(a, (idx.size, 1)).at[np.arange(idx.size), idx].set(new)
        return rows.astype(jnp.int16), new != a[idx]

    def crossover(self, key, a, b):
        """Each hyperparameter from ``a`` or ``b`` with probability 1/2."""
        take_a = jax.random.bernoulli(key, 0.5, (self.dim,))
        return jnp.where(take_a, jnp.asarray(a), jnp.asarray(b)).astype(jnp.int16)

    def edit_distance(self, a, b):
        """Number of hyperparameters that differ (``neighbours`` are at distance 1)."""
        return jnp.sum(jnp.asarray(a) != jnp.asarray(b))

    def unit_vector(self, arch):
        """``float32[d]`` in ``[0, 1]``: each hyperparameter rescaled from its range (for BO surrogates)."""
        a = jnp.asarray(arch).astype(jnp.float32)
        return (a - self._lo) / (self._hi - self._lo)

    def from_unit(self, u):
        """Inverse of ``unit_vector``: nearest vector of the space to a point of ``[0, 1]^d`` (clipped)."""
        u = jnp.clip(jnp.asarray(u, jnp.float32), 0.0, 1.0)
        return jnp.round(self._lo + u * (self._hi - self._lo)).astype(jnp.int16)

    def relaxation(self):
        """The hyperparameters rescaled to ``[0, 1]`` (``unit_vector``): every coordinate free (no one-hot
        blocks); ``decode`` rounds to the nearest vector of the space (``from_unit``). What MOBO's surrogates
        and LaNAS's regressors see."""
        from jnas.spaces.base import Relaxation

        dim = int(self.dim)
        return Relaxation(dim, self.unit_vector, np.full(dim, -1, np.int32), np.zeros(0, np.float32),
                          lambda key, x: self.from_unit(x))

    # ----- enumeration: not available ----------------------------------------------------
    def _not_enumerable(self, what: str):
        return NotEnumerableError(
            f"space {self.name!r}: {what} is unavailable; a generator space is sampled, not enumerated "
            f"({self.size:,} hyperparameter vectors)")

    def enumerate(self):
        raise self._not_enumerable("enumerate()")

    def index(self, arch):
        raise self._not_enumerable("index()")

    def from_index(self, i):
        raise self._not_enumerable("from_index()")

    # ----- configs ------------------------------------------------------------------
    @abc.abstractmethod
    def config(self, arch, **settings):
        """The generator config of ``arch`` (``settings``: the non-searched config fields)."""

    def vector(self, config):
        """The ``int16`` vector of a config of this space's generator."""
        if not isinstance(config, self.config_type):
            raise bad_argument("config", type(config).__name__, f"a {self.config_type.__name__}")
        return jnp.asarray(config_to_vector(config))

    # ----- host-side --------------------------------------------------------------------
    def to_string(self, arch) -> str:
        """E.g. ``top=WS(n=8,k=4,p=0.75) mid=ER(n=1,p=0.20) bottom=WS(n=5,k=2,p=0.50)``."""
        return format_vector(self.graphs, arch)

    def from_string(self, text: str):
        return jnp.asarray(parse_vector(self.graphs, self.fields, text), jnp.int16)

    def to_networkx(self, arch, seed: int = 0):
        """The flattened op graph of the network drawn with ``jax.random.key(seed)`` (see ``NetworkGraphs``)."""
        return generate(self.config(arch), jax.random.key(seed)).to_networkx()


class HNAGSpace(GeneratorSpace):
    """HNAG: top WS graph of cells, mid ER graph of nodes, bottom WS graph of operations (``int16[8]``)."""

    generator = "hnag"
    fields = HNAG_FIELDS
    graphs = HNAG_GRAPHS
    config_type = GeneratorConfig

    def config(self, arch, **settings) -> GeneratorConfig:
        """The ``GeneratorConfig`` of ``arch`` (``settings``: the non-searched config fields)."""
        return hnag_config_from_vector(arch, **settings)


class RNAGSpace(GeneratorSpace):
    """RNAG: one WS graph of operations per stage, three stages in sequence (``int16[9]``)."""

    generator = "rnag"
    fields = RNAG_FIELDS
    graphs = RNAG_GRAPHS
    config_type = RNAGConfig

    def config(self, arch, **settings) -> RNAGConfig:
        """The ``RNAGConfig`` of ``arch`` (``settings``: the non-searched config fields)."""
        return rnag_config_from_vector(arch, **settings)


#: HNAG generator hyperparameters, ``int16[8]``
NAGO = HNAGSpace("nago")
#: RNAG generator hyperparameters, ``int16[9]``
RNAG = RNAGSpace("rnag")
#: generator name -> space
SPACES = {space.generator: space for space in (NAGO, RNAG)}

__all__ = [
    "ER",
    "HNAG_FIELDS",
    "MAX_TRIES",
    "MERGES",
    "NAGO",
    "OPS",
    "RNAG",
    "RNAG_FIELDS",
    "SPACES",
    "WS",
    "CellGraphs",
    "Field",
    "GeneratorConfig",
    "GeneratorSpace",
    "HNAGSpace",
    "NetworkGraphs",
    "NotEnumerableError",
    "RNAGConfig",
    "RNAGSpace",
    "config_to_vector",
    "er_dag",
    "generate",
    "hnag_config_from_vector",
    "rnag_config_from_vector",
    "seed_from_key",
    "stage_of_nodes",
    "ws_dag",
]
