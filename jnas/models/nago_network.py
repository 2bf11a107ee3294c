"""The NNX network of one set of NAGO graphs (HNAG/RNAG) at given stage channel counts.

One walk over the three-level hierarchy (top-level DAG of cells, each cell a
mid-level DAG, each mid-level node a bottom-level DAG of operations) turns
the graphs into a ``NetworkPlan``: plain hashable specs of every component
(stem, merges, operations, head) with their channels and resolutions, nested
as the graphs are. Everything else reads that plan:

* ``NagoNetwork`` builds its modules from it (``make_component`` per spec,
  ``Graph`` / ``Node`` per level);
* ``components`` lists its specs in forward order, from which
  ``jnas.models.nago_size`` counts parameters and activation bytes without
  building anything.

The skeleton (stem, cells, merging rules, head) is described in
``jnas.models.nago``.
"""

from __future__ import annotations

import functools
import operator
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import networkx as nx
from flax import nnx

from jnas.errors import JnasError
from jnas.models.ops import Identity, Pool, ReLUConvBN, batch_norm, conv
from jnas.spaces.nago import MERGES, NetworkGraphs

#: images at least this large get a stride-4 stem (the authors' switch between small and large images)
LARGE_IMAGE = 40
_HALVE = Pool("avg", 2, 2)


def _halve(x, times: int):
    for _ in range(times):
        x = _HALVE(x)
    return x


# ----------------------------------------------------------------------------- modules


class Merge(nnx.Module):
    """Combine a node's inputs: pool each to the node's resolution, then merge them by ``kind``.

    ``inputs``: ``(channels, halvings)`` of each input, in order; ``kind``:
    ``"single"`` (exactly one input), a name in ``MERGES``, or ``"mean"``
    (graph outputs). ``out_channels`` is ``c_target`` except for ``concat``
    (sum of input channels) and ``single`` (the input's channels).
    """

    def __init__(self, kind: str, inputs, c_target: int, *, rngs: nnx.Rngs):
        n = len(inputs)
        if kind not in (*MERGES, "single", "mean") or (kind == "single" and n != 1) or (kind in MERGES and n < 2):
            raise JnasError(f"merge {kind!r} with {n} inputs")
        if n == 1 and kind == "mean":
            kind = "single"
        self.kind = kind
        self.halvings = tuple(int(h) for _, h in inputs)
        projected = kind in ("sum", "weighted_sum", "attention", "mean")
        self.proj = nnx.List([conv(c, c_target, 1, rngs=rngs) if projected and c != c_target else Identity()
                              for c, _ in inputs])
        self.out_channels = merged_channels(kind, inputs, c_target)
        if kind == "weighted_sum":
            self.logits = nnx.Param(jnp.zeros((n,), jnp.float32))
        if kind == "attention":
            self.query = nnx.Param(jnp.zeros((c_target,), jnp.float32))

    @staticmethod
    def param_count(kind: str, inputs, c_target: int) -> int:
        """Parameters of ``Merge(kind, inputs, c_target)`` without building it."""
        n = len(inputs)
        if n == 1:
            return 0
        count = sum(c * c_target for c, _ in inputs if c != c_target) if kind != "concat" else 0
        return count + (n if kind == "weighted_sum" else 0) + (c_target if kind == "attention" else 0)

    def __call__(self, xs):
        xs = [p(_halve(x, h)) for x, h, p in zip(xs, self.halvings, self.proj)]
        if self.kind == "single":
            return xs[0]
        if self.kind == "concat":
            return jnp.concatenate(xs, axis=-1)
        if self.kind == "weighted_sum":
            w = jax.nn.sigmoid(self.logits[...])
            xs = [w[i] * x for i, x in enumerate(xs)]
        elif self.kind == "attention":
            scores = jnp.stack([jnp.mean(x, axis=(1, 2)) @ self.query[...] for x in xs])  # [n, B]
            alpha = jax.nn.softmax(scores, axis=0)  # attention over the inputs, per image
            xs = [alpha[i][:, None, None, None] * x for i, x in enumerate(xs)]
        total = functools.reduce(operator.add, xs)  # chained adds (no stacked copy), as DARTS sums its edges
        return total / len(xs) if self.kind == "mean" else total


def merged_channels(kind: str, inputs, c_target: int) -> int:
    """Output channels of a merge of ``inputs`` (``(channels, halvings)`` each) into ``c_target`` channels."""
    if kind == "single" or (kind == "mean" and len(inputs) == 1):
        return int(inputs[0][0])
    if kind == "concat":
        return int(sum(c for c, _ in inputs))
    return int(c_target)


class Operation(nnx.Module):
    """One bottom-level operation (a name in ``OPS``) from ``c_in`` to ``c_out`` channels, stride 1."""

    def __init__(self, name: str, c_in: int, c_out: int, *, rngs: nnx.Rngs):
        kind, size = name[:-3], int(name[-1])
        self.name = name
        if kind == "conv":
            self.pre, self.pool = ReLUConvBN(c_in, c_out, size, rngs=rngs), Identity()
        elif kind == "avgpool":
            pre = ReLUConvBN(c_in, c_out, 1, rngs=rngs) if c_in != c_out else Identity()
            self.pre, self.pool = pre, Pool("avg", size, 1)
        else:
            raise JnasError(f"unknown NAGO op {name!r}")

    @staticmethod
    def param_count(name: str, c_in: int, c_out: int) -> int:
        """Parameters of ``Operation(name, c_in, c_out)`` without building it."""
        size = int(name[-1])
        if name.startswith("conv"):
            return c_in * c_out * size * size + 2 * c_out
        return c_in * c_out + 2 * c_out if c_in != c_out else 0

    def __call__(self, x):
        return self.pool(self.pre(x))


class Node(nnx.Module):
    """A node of a graph: merge its inputs, then apply ``body`` (an ``Operation`` or a ``Graph``)."""

    def __init__(self, merge: Merge, body: nnx.Module):
        self.merge = merge
        self.body = body

    def __call__(self, xs):
        return self.body(self.merge(xs))


class Graph(nnx.Module):
    """A DAG of nodes. ``sources[i]``: predecessors of node ``i`` (``()``: reads the graph input)."""

    def __init__(self, sources, nodes, outputs, out_merge: Merge):
        self.sources = tuple(tuple(s) for s in sources)
        self.nodes = nnx.List(nodes)
        self.outputs = tuple(outputs)
        self.out_merge = out_merge

    def __call__(self, x):
        results = []
        for src, node in zip(self.sources, self.nodes):
            results.append(node([x] if not src else [results[j] for j in src]))
        return self.out_merge([results[j] for j in self.outputs])


class Stem(nnx.Module):
    """Conv 3x3 → BN → ReLU → conv 3x3 → BN (both convs with stride ``stride``)."""

    def __init__(self, c_img: int, c_mid: int, c_out: int, stride: int, *, rngs: nnx.Rngs):
        self.conv_a = conv(c_img, c_mid, 3, stride, rngs=rngs)
        self.bn_a = batch_norm(c_mid, rngs=rngs)
        self.conv_b = conv(c_mid, c_out, 3, stride, rngs=rngs)
        self.bn_b = batch_norm(c_out, rngs=rngs)

    @staticmethod
    def param_count(c_img: int, c_mid: int, c_out: int) -> int:
        return 9 * c_img * c_mid + 2 * c_mid + 9 * c_mid * c_out + 2 * c_out

    def __call__(self, x):
        return self.bn_b(self.conv_b(jax.nn.relu(self.bn_a(self.conv_a(x)))))


class Head(nnx.Module):
    """ReLU → global average pooling → linear: ``[B, H, W, c] -> [B, num_classes]``."""

    def __init__(self, c: int, num_classes: int, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(c, num_classes, rngs=rngs)

    @staticmethod
    def param_count(c: int, num_classes: int) -> int:
        return c * num_classes + num_classes

    def __call__(self, x):
        return self.linear(jnp.mean(jax.nn.relu(x), axis=(1, 2)))


# ----------------------------------------------------------------------------- the plan (one walk)


class GraphPlan(NamedTuple):
    """One DAG of the hierarchy, in node order.

    ``sources[i]``: predecessors of node ``i``; ``merges[i]``: its merge spec;
    ``bodies[i]``: its body, an op spec or a ``GraphPlan``; ``outputs``: the
    nodes without successors; ``out_merge``: the ``"mean"`` merge of their outputs.
    """

    sources: tuple
    merges: tuple
    bodies: tuple
    outputs: tuple
    out_merge: tuple


class NetworkPlan(NamedTuple):
    """Every component of a NAGO network: ``stem`` and ``head`` specs and the top-level ``body``."""

    stem: tuple
    body: GraphPlan
    head: tuple


Body = Union[tuple, GraphPlan]


def _stem_channels(channels, h: int) -> tuple[int, int]:
    """``(stride, channels of the first stem conv)`` for images of height ``h``."""
    if h >= LARGE_IMAGE:
        return 2, max(1, channels[0] // 2)
    return 1, channels[0]


def _stage_resolutions(input_shape, n_stages: int) -> list[tuple[int, int]]:
    """``(H, W)`` of each stage: the stem output, then halved (floor) once per stage."""
    h, w, _ = input_shape
    if h >= LARGE_IMAGE:  # two stride-2 3x3 convs with padding 1: ceil(x / 2) twice
        h, w = (h + 3) // 4, (w + 3) // 4
    out = [(h, w)]
    for _ in range(n_stages - 1):
        out.append((out[-1][0] // 2, out[-1][1] // 2))
    return out


def _graph_plan(dag: nx.DiGraph, c_in: int, base: int, stages, channels, res, body) -> GraphPlan:
    """The plan of ``dag``, whose input has ``c_in`` channels at stage ``base``.

    ``stages[i]`` (relative to ``base``) / ``channels[i]``: resolution level
    and output channels of node ``i``; ``body(i, c_node_in)`` plans node
    ``i``'s body from the channels its merge outputs.
    """

    def merge_spec(kind, inputs, at, c_target):
        return ("merge", kind, tuple((c, hv, *res[at - hv]) for c, hv in inputs), c_target)

    order = sorted(dag.nodes)
    sources, merges, bodies = [], [], []
    for i in order:
        preds = sorted(dag.predecessors(i))
        if not preds:
            kind, inputs = "single", [(c_in, stages[i])]
        else:
            kind = dag.nodes[i]["merge"] if len(preds) > 1 else "single"
            inputs = [(channels[j], stages[i] - stages[j]) for j in preds]
        sources.append(tuple(preds))
        merges.append(merge_spec(kind, inputs, base + stages[i], channels[i]))
        bodies.append(body(i, merged_channels(kind, inputs, channels[i])))
    last = order[-1]  # always an output
    outputs = tuple(i for i in order if dag.out_degree(i) == 0)
    out_inputs = [(channels[j], stages[last] - stages[j]) for j in outputs]
    out_merge = merge_spec("mean", out_inputs, base + stages[last], channels[last])
    return GraphPlan(tuple(sources), tuple(merges), tuple(bodies), outputs, out_merge)


def network_plan(graphs: NetworkGraphs, channels, *, num_classes: int, input_shape=(32, 32, 3)) -> NetworkPlan:
    """The ``NetworkPlan`` of ``graphs`` at stage channels ``channels`` for ``input_shape`` ``(H, W, C)`` images.

    Specs: ``("stem", c_img, c_mid, c0, stride, H, W)``, ``("merge", kind,
    inputs, c_target)`` with ``inputs = ((channels, halvings, H_in, W_in), ...)``,
    ``("op", name, c_in, c_out, H, W)`` and ``("head", c, num_classes, H, W)``.
    """
    channels = tuple(int(c) for c in channels)
    h, w, c_img = input_shape
    stride, c_mid = _stem_channels(channels, h)
    res = _stage_resolutions(input_shape, len(channels))
    cell_stage = [c.stage for c in graphs.cells]
    cell_channels = [channels[s] for s in cell_stage]

    def cell(i, c_cell_in):
        spec, c, s = graphs.cells[i], cell_channels[i], cell_stage[i]

        def mid_node(j, c_node_in):
            bottom = spec.bottoms[j]
            n = bottom.number_of_nodes()

            def op(k, c_op_in):
                return ("op", bottom.nodes[k]["op"], c_op_in, c, *res[s])

            return _graph_plan(bottom, c_node_in, s, [0] * n, [c] * n, res, op)

        n_mid = spec.mid.number_of_nodes()
        return _graph_plan(spec.mid, c_cell_in, s, [0] * n_mid, [c] * n_mid, res, mid_node)

    body = _graph_plan(graphs.top, channels[0], 0, cell_stage, cell_channels, res, cell)
    return NetworkPlan(("stem", c_img, c_mid, channels[0], stride, h, w), body,
                       ("head", cell_channels[-1], num_classes, *res[cell_stage[-1]]))


def _forward_specs(plan: GraphPlan, out: list) -> None:
    for merge, body in zip(plan.merges, plan.bodies):
        out.append(merge)
        if isinstance(body, GraphPlan):
            _forward_specs(body, out)
        else:
            out.append(body)
    out.append(plan.out_merge)


def plan_components(plan: NetworkPlan) -> list[tuple]:
    """The specs of ``plan`` in forward order (the order ``NagoNetwork`` builds and runs them)."""
    out = [plan.stem]
    _forward_specs(plan.body, out)
    out.append(plan.head)
    return out


def components(graphs: NetworkGraphs, channels, *, num_classes: int, input_shape=(32, 32, 3)) -> list[tuple]:
    """Every component of ``NagoNetwork(graphs, channels, ...)`` in forward order, as hashable specs.

    ``("stem", c_img, c_mid, c0, stride, H, W)``, ``("merge", kind, inputs,
    c_target)`` with ``inputs = ((channels, halvings, H_in, W_in), ...)``,
    ``("op", name, c_in, c_out, H, W)`` and ``("head", c, num_classes, H, W)``.
    The network computes exactly these modules (``Graph`` and ``Node`` only
    route tensors), so parameters and activation bytes are sums over them.
    """
    return plan_components(network_plan(graphs, channels, num_classes=num_classes, input_shape=input_shape))


def make_component(spec: tuple, *, rngs: nnx.Rngs) -> nnx.Module:
    """The module of one component spec (see ``network_plan``)."""
    kind = spec[0]
    if kind == "stem":
        c_img, c_mid, c0, stride = spec[1:5]
        return Stem(c_img, c_mid, c0, stride, rngs=rngs)
    if kind == "merge":
        merge, inputs, c_target = spec[1:]
        return Merge(merge, [(c, hv) for c, hv, _, _ in inputs], c_target, rngs=rngs)
    if kind == "op":
        return Operation(*spec[1:4], rngs=rngs)
    if kind == "head":
        return Head(*spec[1:3], rngs=rngs)
    raise JnasError(f"unknown NAGO component {spec!r}")


def _build_graph(plan: GraphPlan, rngs: nnx.Rngs) -> Graph:
    nodes = []
    for merge, body in zip(plan.merges, plan.bodies):
        m = make_component(merge, rngs=rngs)  # each merge before its body: the order of initialisation
        b = _build_graph(body, rngs) if isinstance(body, GraphPlan) else make_component(body, rngs=rngs)
        nodes.append(Node(m, b))
    return Graph(plan.sources, nodes, plan.outputs, make_component(plan.out_merge, rngs=rngs))


class NagoNetwork(nnx.Module):
    """The network of one set of NAGO graphs at given stage channel counts.

    ``channels[s]``: channels of stage ``s``; ``input_shape``: ``(H, W, C)``
    of the images (the stem depends on it). ``model(x)``: ``[B, H, W, C] ->
    [B, num_classes]``. Built from ``network_plan`` (modules created in
    forward order).
    """

    def __init__(self, graphs: NetworkGraphs, channels, *, num_classes: int, input_shape, rngs: nnx.Rngs):
        self.channels = tuple(int(c) for c in channels)
        self.multiplier: int | None = None  # set by ``build`` (channels = channel_ratio * multiplier)
        plan = network_plan(graphs, self.channels, num_classes=num_classes, input_shape=tuple(input_shape))
        self.stem = make_component(plan.stem, rngs=rngs)
        self.body = _build_graph(plan.body, rngs)
        self.head = make_component(plan.head, rngs=rngs)

    def __call__(self, x):
        return self.head(self.body(self.stem(x)))


__all__ = ["LARGE_IMAGE", "Graph", "GraphPlan", "Head", "Merge", "NagoNetwork", "NetworkPlan", "Node", "Operation",
           "Stem", "components", "make_component", "merged_channels", "network_plan", "plan_components"]
