"""NAGO network generators: their configurations and the networkx graphs they draw.

A generator is a ``GeneratorConfig`` (HNAG, hierarchical) or an ``RNAGConfig``
(RNAG, randomly wired); ``generate(config, key)`` draws one network's graphs
from it, reproducibly from a JAX key, as a ``NetworkGraphs`` of the
three-level hierarchy (top: cells; mid: nodes of a cell; bottom: operations
of a node). RNAG is expressed with the same three levels: a chain of one
cell per stage, each cell's mid-level graph its stage's WS graph, each
mid-level node a single operation. ``jnas.spaces.nago`` describes the
generators and searches over their hyperparameters.

Graph conventions. Undirected graphs become DAGs by orienting every edge from
the smaller to the larger node index. Nodes without predecessors read the
graph's input; nodes without successors are averaged into its output. WS
graphs are redrawn (with fresh seeds) until connected; ER graphs too, up to
``MAX_TRIES`` draws, after which the last draw is kept (isolated nodes are
then parallel input-to-output branches). networkx's WS model joins each node
to its ``k // 2`` nearest neighbours on each side, so an odd ``k`` acts as
``k - 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jnas.errors import JnasError, bad_argument, check_int, is_int

#: bottom-level operations (``op_probs`` is a distribution over these)
OPS = ("conv3x3", "conv5x5", "conv1x1", "avgpool3x3", "avgpool5x5")
#: ways to merge several inputs at a node (``merge_probs`` is a distribution over these)
MERGES = ("sum", "weighted_sum", "attention", "concat")
#: draws of a graph before giving up on connectivity
MAX_TRIES = 100


# ----- generator configurations ----------------------------------------------------------

def _check_prob(name: str, value) -> float:
    """``float(value)`` when it is a probability in ``[0, 1]``.

    Not ``jnas.errors.check_number``: this one takes anything ``float`` takes
    (0-d arrays, JAX scalars, numeric strings), as the configs always have.
    """
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
        object.__setattr__(self, "n", check_int("WS.n", self.n, 3))
        object.__setattr__(self, "k", check_int("WS.k", self.k, 2))
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
        object.__setattr__(self, "n", check_int("ER.n", self.n, 1))
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
    ok = ok and all(is_int(c) and c > 0 for c in cr)
    if not ok:
        raise bad_argument("channel_ratio", cr, "a non-empty tuple of positive integers")
    object.__setattr__(cfg, "channel_ratio", tuple(int(c) for c in cr))
    object.__setattr__(cfg, "op_probs", _check_weights("op_probs", cfg.op_probs, len(OPS), positive=False))
    object.__setattr__(cfg, "merge_probs", _check_weights("merge_probs", cfg.merge_probs, len(MERGES), positive=False))


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


def _draw_hnag(config: GeneratorConfig, rng: np.random.Generator) -> NetworkGraphs:
    """HNAG: the top WS graph, then per cell its mid ER graph and per mid node its bottom WS graph."""
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


def _draw_rnag(config: RNAGConfig, rng: np.random.Generator) -> NetworkGraphs:
    """RNAG: a chain of one cell per stage; per stage its WS graph, then one op per node."""
    top = nx.path_graph(config.num_stages, create_using=nx.DiGraph)
    cells = []
    for s, model in enumerate(config.stages):
        top.nodes[s].update(stage=s, merge="single")
        mid = _label(ws_dag(model, rng), rng, config.merge_probs)
        cells.append(CellGraphs(s, mid, tuple(_single_op(rng, config) for _ in range(model.n))))
    return NetworkGraphs("rnag", config.num_stages, top, tuple(cells))


def generate(config: GeneratorConfig | RNAGConfig, key) -> NetworkGraphs:
    """Draw the graphs of one network from a generator, reproducibly from ``key``.

    One integer seed is derived from ``key``; a numpy generator seeded with it
    draws every networkx seed and every op / merge choice in a fixed order
    (HNAG: top graph, then per cell its mid graph and per mid node its bottom
    graph; RNAG: per stage its WS graph and op choices).
    """
    rng = np.random.default_rng(seed_from_key(key))
    if isinstance(config, GeneratorConfig):
        return _draw_hnag(config, rng)
    if isinstance(config, RNAGConfig):
        return _draw_rnag(config, rng)
    raise bad_argument("config", type(config).__name__, "a GeneratorConfig or RNAGConfig")


__all__ = [
    "ER",
    "MAX_TRIES",
    "MERGES",
    "OPS",
    "WS",
    "CellGraphs",
    "GeneratorConfig",
    "NetworkGraphs",
    "RNAGConfig",
    "er_dag",
    "generate",
    "seed_from_key",
    "stage_of_nodes",
    "ws_dag",
]
