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

Graph conventions. Undirected graphs become DAGs by orienting every edge from
the smaller to the larger node index. Nodes without predecessors read the
graph's input; nodes without successors are averaged into its output. WS
graphs are redrawn (with fresh seeds) until connected; ER graphs too, up to
``MAX_TRIES`` draws, after which the last draw is kept (isolated nodes are
then parallel input-to-output branches). networkx's WS model joins each node
to its ``k // 2`` nearest neighbours on each side, so an odd ``k`` acts as
``k - 1``.

The space is not enumerable (``enumerate`` / ``index`` / ``from_index``
raise ``NotEnumerableError``). One edit (``neighbours``) moves one
hyperparameter by one step (1 for node counts and ``k``, 0.05 for
probabilities), clipped to its range. ``unit_vector`` / ``from_unit`` map to
and from ``[0, 1]^d`` for continuous optimisers (BO over generators).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jnas.errors import JnasError, bad_argument
from jnas.spaces.base import Space

#: bottom-level operations (``op_probs`` is a distribution over these)
OPS = ("conv3x3", "conv5x5", "conv1x1", "avgpool3x3", "avgpool5x5")
#: ways to merge several inputs at a node (``merge_probs`` is a distribution over these)
MERGES = ("sum", "weighted_sum", "attention", "concat")
#: draws of a graph before giving up on connectivity
MAX_TRIES = 100
_P_SCALE = 100  # probabilities are stored in hundredths


class NotEnumerableError(JnasError, NotImplementedError):
    """Raised by ``enumerate`` / ``index`` / ``from_index`` of a non-enumerable space."""


# ----- generator configurations ----------------------------------------------------------

def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        rng = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
        raise bad_argument(name, value, rng)
    return int(value)


def _check_prob(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not 0.0 <= v <= 1.0:
        raise bad_argument(name, value, "a probability in [0, 1]")
    return v


def _check_weights(name: str, values, n: int | None, *, positive: bool) -> tuple[float, ...]:
    """Validate a vector of nonnegative (or positive) weights; returns it normalised to sum 1."""
    try:
        w = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        w = np.array([np.nan])
    want = f"{n} " if n is not None else ""
    kind = "positive" if positive else "nonnegative (not all zero)"
    bad = w.size == 0 or not np.all(np.isfinite(w)) or (n is not None and w.size != n)
    bad = bad or (np.any(w <= 0) if positive else (np.any(w < 0) or w.sum() <= 0))
    if bad:
        raise bad_argument(name, values, f"{want}{kind} weights")
    return tuple(float(x) for x in w / w.sum())


@dataclass(frozen=True)
class WS:
    """Watts–Strogatz graph model: ``n`` nodes on a ring, each joined to its ``k`` nearest, rewired with ``p``."""

    n: int
    k: int
    p: float

    def __post_init__(self):
        object.__setattr__(self, "n", _check_int("WS.n", self.n, 3))
        object.__setattr__(self, "k", _check_int("WS.k", self.k, 2))
        object.__setattr__(self, "p", _check_prob("WS.p", self.p))

    @property
    def k_used(self) -> int:
        """``k`` clipped to ``n - 1`` (NAGO's rule; networkx needs ``k < n`` for a ring lattice)."""
        return min(self.k, self.n - 1)


@dataclass(frozen=True)
class ER:
    """Erdős–Rényi graph model: ``n`` nodes, each pair joined with probability ``p`` (``n = 1`` allowed)."""

    n: int
    p: float

    def __post_init__(self):
        object.__setattr__(self, "n", _check_int("ER.n", self.n, 1))
        object.__setattr__(self, "p", _check_prob("ER.p", self.p))


@dataclass(frozen=True)
class GeneratorConfig:
    """HNAG generator: graph models of the three levels plus the fixed settings.

    ``stage_ratio`` (relative stage lengths, normalised) and ``channel_ratio``
    (channels of each stage relative to the multiplier) must have the same
    length, the number of stages; ``top.n`` must be at least that. ``op_probs``
    is over ``OPS`` and ``merge_probs`` over ``MERGES`` (normalised). Channel
    ratios must be positive integers (stage channels are ``ratio * multiplier``).
    """

    top: WS
    mid: ER
    bottom: WS
    stage_ratio: tuple[float, ...] = (1.0, 1.0, 1.0)
    channel_ratio: tuple[int, ...] = (1, 2, 4)
    op_probs: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0)
    merge_probs: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)

    def __post_init__(self):
        for name, cls in (("top", WS), ("mid", ER), ("bottom", WS)):
            if not isinstance(getattr(self, name), cls):
                raise bad_argument(name, getattr(self, name), f"a {cls.__name__}")
        _common_settings(self)
        sr = _check_weights("stage_ratio", self.stage_ratio, len(self.channel_ratio), positive=True)
        object.__setattr__(self, "stage_ratio", sr)
        if self.top.n < len(sr):
            raise bad_argument("top.n", self.top.n, f"at least the number of stages ({len(sr)})")

    @property
    def num_stages(self) -> int:
        return len(self.channel_ratio)


@dataclass(frozen=True)
class RNAGConfig:
    """RNAG generator: one WS graph of operations per stage, stages in sequence."""

    stages: tuple[WS, ...]
    channel_ratio: tuple[int, ...] = (1, 2, 4)
    op_probs: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0)
    merge_probs: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)

    def __post_init__(self):
        stages = tuple(self.stages) if isinstance(self.stages, (tuple, list)) else None
        if not stages or not all(isinstance(s, WS) for s in stages):
            raise bad_argument("stages", self.stages, "a non-empty tuple of WS graph models")
        object.__setattr__(self, "stages", stages)
        _common_settings(self)
        if len(stages) != len(self.channel_ratio):
            raise bad_argument("stages", len(stages), f"one WS model per channel ratio ({len(self.channel_ratio)})")

    @property
    def num_stages(self) -> int:
        return len(self.channel_ratio)


def _common_settings(cfg) -> None:
    cr = cfg.channel_ratio
    ok = isinstance(cr, (tuple, list)) and len(cr) > 0
    ok = ok and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0 for c in cr)
    if not ok:
        raise bad_argument("channel_ratio", cr, "a non-empty tuple of positive integers")
    object.__setattr__(cfg, "channel_ratio", tuple(int(c) for c in cr))
    object.__setattr__(cfg, "op_probs", _check_weights("op_probs", cfg.op_probs, len(OPS), positive=False))
    object.__setattr__(cfg, "merge_probs", _check_weights("merge_probs", cfg.merge_probs, len(MERGES), positive=False))


# ----- hyperparameter vectors ----------------------------------------------------------------

class Field(NamedTuple):
    """One entry of a hyperparameter vector: stored integer in ``[lo, hi]``, ``scale`` to its value."""

    name: str
    lo: int
    hi: int
    scale: float  # value = stored * scale
    step: int  # neighbour step, in stored units


def _ws_fields(prefix: str, n: tuple[int, int], k: tuple[int, int]) -> tuple[Field, ...]:
    return (
        Field(f"{prefix}_n", n[0], n[1], 1.0, 1),
        Field(f"{prefix}_k", k[0], k[1], 1.0, 1),
        Field(f"{prefix}_p", 10, 100, 1.0 / _P_SCALE, 5),
    )


HNAG_FIELDS = (
    *_ws_fields("top", (3, 10), (2, 5)),
    Field("mid_n", 1, 10, 1.0, 1),
    Field("mid_p", 20, 100, 1.0 / _P_SCALE, 5),
    *_ws_fields("bottom", (3, 10), (2, 5)),
)
RNAG_FIELDS = tuple(f for s in (1, 2, 3) for f in _ws_fields(f"stage{s}", (10, 40), (2, 10)))


def _stored(fields, vec) -> list[int]:
    """The integer entries of ``vec``, with a clear error for wrong shape or out-of-range values."""
    a = np.asarray(vec)
    if a.shape != (len(fields),) or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise bad_argument("arch", vec if a.size < 20 else f"array of shape {a.shape}",
                           f"a vector of {len(fields)} integers ({', '.join(f.name for f in fields)})")
    out = []
    for i, (f, v) in enumerate(zip(fields, a.tolist())):
        if not float(v).is_integer() or not f.lo <= v <= f.hi:
            unit = "" if f.scale == 1 else f" (hundredths: {f.lo / _P_SCALE:.2f}..{f.hi / _P_SCALE:.2f})"
            raise bad_argument(f"arch[{i}] ({f.name})", v, f"an integer in [{f.lo}, {f.hi}]{unit}")
        out.append(int(v))
    return out


def _p_stored(name: str, p: float) -> int:
    v = round(p * _P_SCALE)
    if abs(v - p * _P_SCALE) > 1e-6:
        raise bad_argument(name, p, "a multiple of 0.01 (probabilities are stored in hundredths)")
    return v


def hnag_config_from_vector(vec, **settings) -> GeneratorConfig:
    """``GeneratorConfig`` of an ``int16[8]`` HNAG vector; ``settings`` are the non-searched fields."""
    v = _stored(HNAG_FIELDS, vec)
    p = [x / _P_SCALE for x in v]
    return GeneratorConfig(WS(v[0], v[1], p[2]), ER(v[3], p[4]), WS(v[5], v[6], p[7]), **settings)


def rnag_config_from_vector(vec, **settings) -> RNAGConfig:
    """``RNAGConfig`` of an ``int16[9]`` RNAG vector; ``settings`` are the non-searched fields."""
    v = _stored(RNAG_FIELDS, vec)
    stages = tuple(WS(v[3 * s], v[3 * s + 1], v[3 * s + 2] / _P_SCALE) for s in range(3))
    return RNAGConfig(stages, **settings)


def config_to_vector(config) -> np.ndarray:
    """The hyperparameter vector of a config (inverse of ``*_config_from_vector``); checks the search ranges."""
    if isinstance(config, GeneratorConfig):
        t, m, b = config.top, config.mid, config.bottom
        raw = [t.n, t.k, _p_stored("top.p", t.p), m.n, _p_stored("mid.p", m.p),
               b.n, b.k, _p_stored("bottom.p", b.p)]
        fields = HNAG_FIELDS
    elif isinstance(config, RNAGConfig):
        if len(config.stages) != 3:
            raise bad_argument("config.stages", len(config.stages), "3 stages (the RNAG search space)")
        raw = [x for i, s in enumerate(config.stages) for x in (s.n, s.k, _p_stored(f"stages[{i}].p", s.p))]
        fields = RNAG_FIELDS
    else:
        raise bad_argument("config", type(config).__name__, "a GeneratorConfig or RNAGConfig")
    return np.asarray(_stored(fields, np.asarray(raw)), np.int16)


# ----- generated networks ------------------------------------------------------------------

@dataclass(frozen=True)
class CellGraphs:
    """One top-level node: its stage, its mid-level DAG and one bottom-level DAG per mid-level node.

    ``mid`` nodes carry ``merge``; ``bottoms[i]`` nodes carry ``op`` and ``merge``
    (``merge`` is ``"single"`` where a node has fewer than two predecessors).
    """

    stage: int
    mid: nx.DiGraph
    bottoms: tuple[nx.DiGraph, ...]


@dataclass(frozen=True)
class NetworkGraphs:
    """The graphs of one sampled network.

    ``top`` is the DAG of cells (nodes carry ``stage`` and ``merge``);
    ``cells[i]`` holds cell ``i``'s lower levels. Node ``i`` of every DAG only
    has predecessors ``< i``.
    """

    generator: str  # "hnag" or "rnag"
    num_stages: int
    top: nx.DiGraph
    cells: tuple[CellGraphs, ...] = field(default=())

    @property
    def num_ops(self) -> int:
        """Number of bottom-level operations in the network."""
        return sum(b.number_of_nodes() for c in self.cells for b in c.bottoms)

    def signature(self) -> tuple:
        """A hashable description of every graph, node attribute and edge (for equality tests)."""

        def sig(g):
            nodes = tuple((n, tuple(sorted(d.items()))) for n, d in sorted(g.nodes(data=True)))
            return nodes, tuple(sorted(g.edges()))

        return (self.generator, self.num_stages, sig(self.top),
                tuple((c.stage, sig(c.mid), tuple(sig(b) for b in c.bottoms)) for c in self.cells))

    def to_networkx(self) -> nx.DiGraph:
        """The flattened data-flow graph: one node per operation plus ``"input"`` and ``"output"``.

        Operation nodes are ``(cell, mid_node, op_node)`` with attributes ``op``,
        ``stage`` and ``merge``. An edge ``u -> v`` means that ``v``'s input
        includes ``u``'s output (through the averaging and merging of the levels above).
        """
        g = nx.DiGraph()
        g.add_node("input", op="input")
        g.add_node("output", op="output")

        def ops_at(cell, mid_node, ends):  # input (ends=0) or output (ends=1) ops of one bottom graph
            b = self.cells[cell].bottoms[mid_node]
            return [(cell, mid_node, o) for o in b.nodes if (b.in_degree(o) if ends == 0 else b.out_degree(o)) == 0]

        def mids_at(cell, ends):
            m = self.cells[cell].mid
            return [i for i in m.nodes if (m.in_degree(i) if ends == 0 else m.out_degree(i)) == 0]

        def cell_ends(cell, ends):
            return [op for i in mids_at(cell, ends) for op in ops_at(cell, i, ends)]

        for c, cell in enumerate(self.cells):
            for i, b in enumerate(cell.bottoms):
                for o, d in b.nodes(data=True):
                    g.add_node((c, i, o), op=d["op"], merge=d["merge"], stage=cell.stage)
                g.add_edges_from(((c, i, u), (c, i, v)) for u, v in b.edges)
            for u, v in cell.mid.edges:
                g.add_edges_from((a, z) for a in ops_at(c, u, 1) for z in ops_at(c, v, 0))
        for u, v in self.top.edges:
            g.add_edges_from((a, z) for a in cell_ends(u, 1) for z in cell_ends(v, 0))
        for c in self.top.nodes:
            if self.top.in_degree(c) == 0:
                g.add_edges_from(("input", z) for z in cell_ends(c, 0))
            if self.top.out_degree(c) == 0:
                g.add_edges_from((a, "output") for a in cell_ends(c, 1))
        return g


def seed_from_key(key) -> int:
    """A 64-bit integer seed derived from a JAX PRNG key (typed or raw ``uint32[2]``)."""
    try:
        is_key = jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape == (2,))
    except AttributeError:
        is_key = False
    if not is_key:
        raise bad_argument("key", key, "a jax.random key (e.g. jax.random.key(0))")
    # Eager even inside a trace (e.g. a network built under ``nnx.eval_shape``): the graphs are static.
    with jax.ensure_compile_time_eval():
        try:
            lo, hi = (int(x) for x in np.asarray(jax.random.bits(key, (2,), jnp.uint32)))
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            raise bad_argument("key", key, "a concrete jax.random key (not a traced value)") from None
    return (hi << 32) | lo


def _oriented(g: nx.Graph) -> nx.DiGraph:
    """The DAG of ``g`` with every edge pointing from the smaller to the larger node index."""
    d = nx.DiGraph()
    d.add_nodes_from(range(g.number_of_nodes()))
    d.add_edges_from((min(u, v), max(u, v)) for u, v in g.edges)
    return d


def ws_dag(model: WS, rng: np.random.Generator) -> nx.DiGraph:
    """A connected WS graph (redrawn with new seeds until connected) as a DAG; ``k`` clipped to ``n - 1``."""
    for _ in range(MAX_TRIES):
        g = nx.watts_strogatz_graph(model.n, model.k_used, model.p, seed=int(rng.integers(2**31)))
        if nx.is_connected(g):
            return _oriented(g)
    raise JnasError(f"no connected Watts-Strogatz graph for {model} in {MAX_TRIES} draws")


def er_dag(model: ER, rng: np.random.Generator) -> nx.DiGraph:
    """An ER graph as a DAG, redrawn up to ``MAX_TRIES`` times for connectivity (then kept as is)."""
    for _ in range(MAX_TRIES):
        g = nx.erdos_renyi_graph(model.n, model.p, seed=int(rng.integers(2**31)))
        if nx.is_connected(g):
            break
    return _oriented(g)


def stage_of_nodes(n: int, stage_ratio) -> list[int]:
    """Stage of each of ``n`` top-level nodes (in node order) for relative stage lengths ``stage_ratio``.

    Node ``i`` enters stage ``s + 1`` once ``i >= n * (r_0 + ... + r_s)``;
    the result is then adjusted so that stages advance one at a time and none
    is empty (needs ``n >= len(stage_ratio)``).
    """
    r = np.asarray(stage_ratio, np.float64)
    n_stages = r.size
    bounds = n * np.cumsum(r / r.sum())[:-1]
    out, prev = [], 0
    for i in range(n):
        s = int(np.sum(i >= bounds - 1e-9))
        s = max(min(s, prev + 1), n_stages - (n - i))  # one stage at a time, and room for the rest
        out.append(s)
        prev = s
    return out


def _label(dag: nx.DiGraph, rng: np.random.Generator, merge_probs, op_probs=None) -> nx.DiGraph:
    """Draw each node's merge option (and op) in node order; nodes with < 2 inputs get ``"single"``."""
    for i in sorted(dag.nodes):
        if op_probs is not None:
            dag.nodes[i]["op"] = OPS[int(rng.choice(len(OPS), p=op_probs))]
        m = MERGES[int(rng.choice(len(MERGES), p=merge_probs))]
        dag.nodes[i]["merge"] = m if dag.in_degree(i) >= 2 else "single"
    return dag


def _single_op(rng, config) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node(0)
    return _label(g, rng, config.merge_probs, config.op_probs)


def generate(config: GeneratorConfig | RNAGConfig, key) -> NetworkGraphs:
    """Draw the graphs of one network from a generator, reproducibly from ``key``.

    One integer seed is derived from ``key``; a numpy generator seeded with it
    draws every networkx seed and every op / merge choice in a fixed order
    (HNAG: top graph, then per cell its mid graph and per mid node its bottom
    graph; RNAG: per stage its WS graph and op choices).
    """
    rng = np.random.default_rng(seed_from_key(key))
    if isinstance(config, GeneratorConfig):
        top = _label(ws_dag(config.top, rng), rng, config.merge_probs)
        stages = stage_of_nodes(config.top.n, config.stage_ratio)
        cells = []
        for c in range(config.top.n):
            top.nodes[c]["stage"] = stages[c]
            mid = _label(er_dag(config.mid, rng), rng, config.merge_probs)
            bottoms = tuple(_label(ws_dag(config.bottom, rng), rng, config.merge_probs, config.op_probs)
                            for _ in range(config.mid.n))
            cells.append(CellGraphs(stages[c], mid, bottoms))
        return NetworkGraphs("hnag", config.num_stages, top, tuple(cells))
    if isinstance(config, RNAGConfig):
        top = nx.path_graph(config.num_stages, create_using=nx.DiGraph)
        cells = []
        for s, model in enumerate(config.stages):
            top.nodes[s].update(stage=s, merge="single")
            mid = _label(ws_dag(model, rng), rng, config.merge_probs)
            cells.append(CellGraphs(s, mid, tuple(_single_op(rng, config) for _ in range(model.n))))
        return NetworkGraphs("rnag", config.num_stages, top, tuple(cells))
    raise bad_argument("config", type(config).__name__, "a GeneratorConfig or RNAGConfig")


# ----- the search spaces ------------------------------------------------------------------

_GRAPH = re.compile(r"(\w+)=(WS|ER)\(([^)]*)\)")
_PARAM = re.compile(r"^\s*(n|k|p)\s*=\s*([0-9.]+)\s*$")


class GeneratorSpace(Space):
    """Hyperparameter vectors of a NAGO network generator (``int16[d]``, see the module docstring)."""

    enumerable = False
    ops = OPS
    #: a network is drawn from the hyperparameters and a seed (``to_networkx(arch, seed)``)
    generated = True

    def __init__(self, name: str, generator: str, fields: tuple[Field, ...]):
        self.name = name
        self.generator = generator
        self.fields = fields
        self._lo = np.array([f.lo for f in fields], np.int32)
        self._hi = np.array([f.hi for f in fields], np.int32)
        self._step = np.array([f.step for f in fields], np.int32)

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
    def config(self, arch, **settings):
        """The generator config of ``arch`` (``settings``: the non-searched config fields)."""
        if self.generator == "hnag":
            return hnag_config_from_vector(arch, **settings)
        return rnag_config_from_vector(arch, **settings)

    def vector(self, config):
        """The ``int16`` vector of a config of this space's generator."""
        want = GeneratorConfig if self.generator == "hnag" else RNAGConfig
        if not isinstance(config, want):
            raise bad_argument("config", type(config).__name__, f"a {want.__name__}")
        return jnp.asarray(config_to_vector(config))

    # ----- host-side --------------------------------------------------------------------
    def _groups(self):
        """``(label, model, fields)`` per graph, in vector order."""
        if self.generator == "hnag":
            return [("top", "WS", ("n", "k", "p")), ("mid", "ER", ("n", "p")), ("bottom", "WS", ("n", "k", "p"))]
        return [(f"stage{s}", "WS", ("n", "k", "p")) for s in (1, 2, 3)]

    def to_string(self, arch) -> str:
        """E.g. ``top=WS(n=8,k=4,p=0.75) mid=ER(n=1,p=0.20) bottom=WS(n=5,k=2,p=0.50)``."""
        v = np.asarray(arch).reshape(-1).astype(int).tolist()
        parts, i = [], 0
        for label, model, names in self._groups():
            items = []
            for nm in names:
                items.append(f"{nm}={v[i] / _P_SCALE:.2f}" if nm == "p" else f"{nm}={v[i]}")
                i += 1
            parts.append(f"{label}={model}({','.join(items)})")
        return " ".join(parts)

    def from_string(self, text: str):
        groups = self._groups()
        example = self.to_string([f.lo for f in self.fields])
        expected = f"graphs like {example!r} with values in the search ranges"
        if not isinstance(text, str):
            raise bad_argument("arch", text, expected)
        found = _GRAPH.findall(text)
        rest = _GRAPH.sub("", text).strip()
        labels = [g[0] for g in groups]
        if rest or [f[0] for f in found] != labels:
            raise bad_argument("arch", text, expected)
        out = []
        for (label, model, names), (_, got_model, body) in zip(groups, found):
            items = [_PARAM.match(t) for t in body.split(",")]
            if got_model != model or not all(items) or [m.group(1) for m in items] != list(names):
                raise bad_argument("arch", text, expected)
            for m in items:
                try:
                    x = float(m.group(2))
                except ValueError:
                    raise bad_argument("arch", text, expected) from None
                if m.group(1) == "p":
                    x = _p_stored(f"{label}.p", x)
                elif x != int(x):
                    raise bad_argument(f"{label}.{m.group(1)}", m.group(2), "an integer")
                out.append(int(x))
        return jnp.asarray(_stored(self.fields, np.asarray(out)), jnp.int16)

    def to_networkx(self, arch, seed: int = 0):
        """The flattened op graph of the network drawn with ``jax.random.key(seed)`` (see ``NetworkGraphs``)."""
        return generate(self.config(arch), jax.random.key(seed)).to_networkx()


#: HNAG generator hyperparameters, ``int16[8]``
NAGO = GeneratorSpace("nago", "hnag", HNAG_FIELDS)
#: RNAG generator hyperparameters, ``int16[9]``
RNAG = GeneratorSpace("rnag", "rnag", RNAG_FIELDS)
#: generator name -> space
SPACES = {"hnag": NAGO, "rnag": RNAG}

__all__ = [
    "ER",
    "MERGES",
    "NAGO",
    "OPS",
    "RNAG",
    "SPACES",
    "WS",
    "CellGraphs",
    "GeneratorConfig",
    "GeneratorSpace",
    "NetworkGraphs",
    "NotEnumerableError",
    "RNAGConfig",
    "config_to_vector",
    "generate",
    "hnag_config_from_vector",
    "rnag_config_from_vector",
    "seed_from_key",
    "stage_of_nodes",
]
