"""NNX networks drawn from NAGO generators (HNAG and RNAG).

``build(arch, ...)`` turns a generator hyperparameter vector (``jnas.spaces.nago``)
into one network: it draws the graphs with
``generate(config, jax.random.key(seed))`` and picks the largest integer
channel multiplier ``m`` whose network has at most ``param_limit``
parameters; stage ``s`` then has ``channel_ratio[s] * m`` channels.

Skeleton (following the NAGO authors' network):

* stem: for images smaller than 40 pixels, conv 3x3 → BN → ReLU → conv 3x3
  → BN at full resolution; for larger images the two convs have stride 2
  (the first with half the channels). Output: stage-0 channels.
* body: the top-level DAG of cells. Cell ``i`` of stage ``s`` works at the
  stem resolution halved ``s`` times; an input from an earlier stage is
  average-pooled (2x2, stride 2, once per stage) down to it. A cell is its
  mid-level DAG, each mid-level node is its bottom-level DAG, each
  bottom-level node one operation (``OPS``): ``convKxK`` is ReLU → conv
  (no bias) → BN; ``avgpoolKxK`` is a 1x1 ReLU-conv-BN when the channel
  count changes, then KxK average pooling (stride 1). Every node of a cell
  outputs the cell's stage channels.
* merging, at every level, of a node's predecessors (inputs pooled to the
  node's resolution first): one input passes through; several are combined
  by the node's ``merge`` option: ``sum`` (1x1 conv, no bias, on the inputs
  whose channels differ from the node's, then sum), ``weighted_sum`` (the
  same with a learnt weight ``sigmoid(a_i)`` per input, ``a_i = 0`` at
  init), ``attention`` (the same with per-image weights ``softmax_i(q ·
  GAP(x_i))``, ``q`` learnt, zero at init) or ``concat`` (channel
  concatenation; the node's ops then read the summed channel count).
  Nodes without predecessors read the graph's input; a graph's output is
  the mean of its nodes without successors (at the top level after pooling
  them to the last stage's resolution and 1x1-projecting them to its channels).
* head: ReLU → global average pooling → linear. (The authors' head adds a
  1x1 conv to 1280 channels and dropout before the linear layer; we keep
  the plainer head of the other jnas networks.)

Parameter limit: ``count_params_at`` counts the parameters of the network
of a set of graphs analytically, from the graphs and channel counts alone
(microseconds, where even an abstract ``nnx.eval_shape`` construction of a
1,000-operation network takes seconds); tests check that it equals
``cost.count_params`` of the built network. The count is a quadratic
polynomial in ``m`` (every channel count is a multiple of ``m``), so
``choose_multiplier`` solves for the largest ``m`` under the limit from the
counts at ``m = 1, 2, 3`` and confirms it with the counts at ``m`` and ``m + 1``.
``activation_bytes`` likewise gives ``cost.activation_bytes_per_image`` of
a network from its components (each traced alone, cached across networks).
"""

from __future__ import annotations

import functools
import math
import operator

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
from flax import nnx

from jnas.errors import JnasError, bad_argument
from jnas.models.cost import activation_bytes_per_image, image_shape
from jnas.models.ops import Identity, Pool, ReLUConvBN, batch_norm, conv
from jnas.spaces.nago import MERGES, SPACES, NetworkGraphs, generate

#: images at least this large get a stride-4 stem (the authors' switch between small and large images)
LARGE_IMAGE = 40
_HALVE = Pool("avg", 2, 2)
#: non-searched generator settings accepted by ``build``
_SETTINGS = {"hnag": ("stage_ratio", "channel_ratio", "op_probs", "merge_probs"),
             "rnag": ("channel_ratio", "op_probs", "merge_probs")}


def _halve(x, times: int):
    for _ in range(times):
        x = _HALVE(x)
    return x


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
        if kind == "single":
            self.out_channels = int(inputs[0][0])
        elif kind == "concat":
            self.out_channels = int(sum(c for c, _ in inputs))
        else:
            self.out_channels = int(c_target)
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


def _node_inputs(dag: nx.DiGraph, i: int, c_in: int, stages, channels):
    """``(merge kind, [(channels, halvings)] per input)`` of node ``i`` of ``dag``."""
    preds = sorted(dag.predecessors(i))
    if not preds:
        return "single", [(c_in, stages[i])]
    kind = dag.nodes[i]["merge"] if len(preds) > 1 else "single"
    return kind, [(channels[j], stages[i] - stages[j]) for j in preds]


def _output_inputs(dag: nx.DiGraph, stages, channels):
    """``(output nodes, [(channels, halvings)] per output)``; the last node is always an output."""
    order = sorted(dag.nodes)
    outputs = [i for i in order if dag.out_degree(i) == 0]
    last = order[-1]
    return outputs, [(channels[j], stages[last] - stages[j]) for j in outputs]


def _merge_channels(kind: str, inputs, c_target: int) -> int:
    if kind == "single":
        return inputs[0][0]
    return sum(c for c, _ in inputs) if kind == "concat" else c_target


def _graph(dag: nx.DiGraph, c_in: int, stages, channels, make_body, *, rngs) -> Graph:
    """Build a ``Graph`` over ``dag`` whose input has ``c_in`` channels at (relative) stage 0.

    ``stages[i]`` / ``channels[i]``: resolution level and output channels of
    node ``i``; ``make_body(i, c_node_in)`` builds node ``i``'s body.
    """
    order = sorted(dag.nodes)
    nodes = []
    for i in order:
        kind, inputs = _node_inputs(dag, i, c_in, stages, channels)
        merge = Merge(kind, inputs, channels[i], rngs=rngs)
        nodes.append(Node(merge, make_body(i, merge.out_channels)))
    outputs, out_inputs = _output_inputs(dag, stages, channels)
    out_merge = Merge("mean", out_inputs, channels[order[-1]], rngs=rngs)
    return Graph([sorted(dag.predecessors(i)) for i in order], nodes, outputs, out_merge)


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


def _cell_levels(graphs: NetworkGraphs, channels):
    """Stage and channel count of every top-level cell."""
    stages = [c.stage for c in graphs.cells]
    return stages, [channels[s] for s in stages]


def components(graphs: NetworkGraphs, channels, *, num_classes: int, input_shape=(32, 32, 3)) -> list[tuple]:
    """Every component of ``NagoNetwork(graphs, channels, ...)`` in forward order, as hashable specs.

    ``("stem", c_img, c_mid, c0, stride, H, W)``, ``("merge", kind, inputs,
    c_target)`` with ``inputs = ((channels, halvings, H_in, W_in), ...)``,
    ``("op", name, c_in, c_out, H, W)`` and ``("head", c, num_classes, H, W)``.
    The network computes exactly these modules (``Graph`` and ``Node`` only
    route tensors), so parameters and activation bytes are sums over them.
    """
    h, _, c_img = input_shape
    stride, c_mid = _stem_channels(channels, h)
    res = _stage_resolutions(input_shape, len(channels))
    out = [("stem", c_img, c_mid, channels[0], stride, *input_shape[:2])]

    def level(dag, c_in, base, stages, chans, body):
        for i in sorted(dag.nodes):
            kind, inputs = _node_inputs(dag, i, c_in, stages, chans)
            at = base + stages[i]
            out.append(("merge", kind, tuple((c, hv, *res[at - hv]) for c, hv in inputs), chans[i]))
            body(i, _merge_channels(kind, inputs, chans[i]))
        _, out_inputs = _output_inputs(dag, stages, chans)
        at = base + stages[max(dag.nodes)]
        out.append(("merge", "mean", tuple((c, hv, *res[at - hv]) for c, hv in out_inputs), chans[max(dag.nodes)]))

    cell_stage, cell_channels = _cell_levels(graphs, channels)

    def cell_body(i, c_cell_in):
        cell, c, s = graphs.cells[i], cell_channels[i], cell_stage[i]

        def mid_body(j, c_node_in):
            bottom = cell.bottoms[j]
            n = bottom.number_of_nodes()

            def op_body(k, c_op_in):
                out.append(("op", bottom.nodes[k]["op"], c_op_in, c, *res[s]))

            level(bottom, c_node_in, s, [0] * n, [c] * n, op_body)

        level(cell.mid, c_cell_in, s, [0] * cell.mid.number_of_nodes(), [c] * cell.mid.number_of_nodes(), mid_body)

    level(graphs.top, channels[0], 0, cell_stage, cell_channels, cell_body)
    out.append(("head", cell_channels[-1], num_classes, *res[cell_stage[-1]]))
    return out


def component_params(spec: tuple) -> int:
    """Parameters of one component spec (see ``components``)."""
    kind = spec[0]
    if kind == "stem":
        return Stem.param_count(*spec[1:4])
    if kind == "merge":
        return Merge.param_count(spec[1], [(c, hv) for c, hv, _, _ in spec[2]], spec[3])
    if kind == "op":
        return Operation.param_count(*spec[1:4])
    return Head.param_count(*spec[1:3])


def count_params_at(graphs: NetworkGraphs, channels, *, num_classes: int, input_shape=(32, 32, 3)) -> int:
    """Parameters of ``NagoNetwork(graphs, channels, ...)``, counted from the graphs alone (no modules built).

    Equal to ``jnas.models.cost.count_params`` of the built network (tested);
    this is what makes the multiplier search cheap.
    """
    return sum(component_params(s) for s in components(graphs, channels, num_classes=num_classes,
                                                        input_shape=input_shape))


class NagoNetwork(nnx.Module):
    """The network of one set of NAGO graphs at given stage channel counts.

    ``channels[s]``: channels of stage ``s``; ``input_shape``: ``(H, W, C)``
    of the images (the stem depends on it). ``model(x)``: ``[B, H, W, C] ->
    [B, num_classes]``.
    """

    def __init__(self, graphs: NetworkGraphs, channels, *, num_classes: int, input_shape, rngs: nnx.Rngs):
        self.channels = tuple(int(c) for c in channels)
        self.multiplier: int | None = None  # set by ``build`` (channels = channel_ratio * multiplier)
        h, _, c_img = input_shape
        stride, c_mid = _stem_channels(self.channels, h)
        self.stem = Stem(c_img, c_mid, self.channels[0], stride, rngs=rngs)
        cell_stage, cell_channels = _cell_levels(graphs, self.channels)

        def cell_body(i, c_cell_in):
            cell, c = graphs.cells[i], cell_channels[i]
            n_mid = cell.mid.number_of_nodes()

            def mid_body(j, c_node_in):
                bottom = cell.bottoms[j]
                n_ops = bottom.number_of_nodes()

                def op_body(k, c_op_in):
                    return Operation(bottom.nodes[k]["op"], c_op_in, c, rngs=rngs)

                return _graph(bottom, c_node_in, [0] * n_ops, [c] * n_ops, op_body, rngs=rngs)

            return _graph(cell.mid, c_cell_in, [0] * n_mid, [c] * n_mid, mid_body, rngs=rngs)

        self.body = _graph(graphs.top, self.channels[0], cell_stage, cell_channels, cell_body, rngs=rngs)
        self.head = Head(cell_channels[-1], num_classes, rngs=rngs)

    def __call__(self, x):
        return self.head(self.body(self.stem(x)))


def choose_multiplier(graphs: NetworkGraphs, channel_ratio, *, num_classes: int, param_limit: float,
                      input_shape=(32, 32, 3)) -> tuple[int, int]:
    """``(m, params)``: the largest multiplier whose network has at most ``param_limit`` parameters.

    Raises ``JnasError`` when even ``m = 1`` exceeds the limit.
    """
    cache: dict[int, int] = {}

    def params(m):
        if m not in cache:
            cache[m] = count_params_at(graphs, [r * m for r in channel_ratio], num_classes=num_classes,
                                       input_shape=input_shape)
        return cache[m]

    p1, p2, p3 = params(1), params(2), params(3)
    if p1 > param_limit:
        raise bad_argument("param_limit", param_limit,
                           f"at least {p1:,} (the parameters of this network at channel multiplier 1)")
    # params(m) = a m^2 + b m + c exactly, up to the rounding of a large-image stem's half width
    a = (p3 - 2 * p2 + p1) / 2
    b = p2 - p1 - 3 * a
    c = p1 - a - b
    m = int((-b + math.sqrt(b * b - 4 * a * (c - param_limit))) / (2 * a)) if a > 0 else 1
    m = max(m, 1)
    while m > 1 and params(m) > param_limit:
        m -= 1
    while params(m + 1) <= param_limit:
        m += 1
    return m, params(m)


class _Probe(nnx.Module):
    """Feeds one flat image ``[B, 1, L, 1]`` to ``inner`` as a list of ``[B, H, W, C]`` tensors of ``shapes``.

    With ``inner=None`` it returns the list: the glue alone, whose activation
    bytes are subtracted from those of the probe with ``inner``.
    """

    def __init__(self, inner, shapes):
        self.inner = inner
        self.shapes = tuple(tuple(s) for s in shapes)

    def __call__(self, x):
        flat, pieces, offset = x.reshape(x.shape[0], -1), [], 0
        for s in self.shapes:
            n = math.prod(s)
            pieces.append(flat[:, offset:offset + n].reshape(x.shape[0], *s))
            offset += n
        return pieces if self.inner is None else self.inner(pieces)


def _traced_bytes(make, input_shape) -> int:
    abstract = nnx.eval_shape(lambda: make(nnx.Rngs(0)))  # shapes only, small module: cheap
    return activation_bytes_per_image(abstract, input_shape)


@functools.lru_cache(maxsize=None)
def component_bytes(spec: tuple) -> int:
    """``cost.activation_bytes_per_image`` of one component spec (see ``components``), traced alone and cached."""
    kind = spec[0]
    if kind == "stem":
        c_img, c_mid, c0, stride, h, w = spec[1:]
        return _traced_bytes(lambda rngs: Stem(c_img, c_mid, c0, stride, rngs=rngs), (h, w, c_img))
    if kind == "op":
        name, c_in, c_out, h, w = spec[1:]
        return _traced_bytes(lambda rngs: Operation(name, c_in, c_out, rngs=rngs), (h, w, c_in))
    if kind == "head":
        c, n, h, w = spec[1:]
        return _traced_bytes(lambda rngs: Head(c, n, rngs=rngs), (h, w, c))
    merge, inputs, c_target = spec[1:]
    if len(inputs) == 1 and inputs[0][1] == 0:
        return 0  # passes its input through
    shapes = [(h, w, c) for c, _, h, w in inputs]
    flat = (1, sum(math.prod(s) for s in shapes), 1)
    specs = [(c, hv) for c, hv, _, _ in inputs]
    probe = _traced_bytes(lambda rngs: _Probe(Merge(merge, specs, c_target, rngs=rngs), shapes), flat)
    return probe - activation_bytes_per_image(_Probe(None, shapes), flat)


def activation_bytes(graphs: NetworkGraphs, channel_ratio, multiplier: int, *, num_classes: int,
                     input_shape=(32, 32, 3)) -> int:
    """``cost.activation_bytes_per_image`` of the network of ``graphs`` at ``multiplier``, without building it.

    The network's forward pass is exactly the sequence of its ``components``,
    so its activation bytes are their sum; each distinct component is traced
    alone once (``component_bytes`` caches them). Every array of a component
    has a size proportional to ``multiplier`` or independent of it, so the
    body is traced at multipliers 1 and 2 (components that recur across
    networks) and extrapolated; the stem and head at ``multiplier`` itself.
    Equal to tracing the built network (tested), and orders of magnitude
    faster over many networks.
    """
    m = int(multiplier)

    def total(mult, part):
        specs = components(graphs, [r * mult for r in channel_ratio], num_classes=num_classes,
                           input_shape=input_shape)
        return sum(component_bytes(s) for s in specs if (s[0] in ("stem", "head")) == (part == "ends"))

    b1 = total(1, "body")
    body = b1 if m == 1 else b1 + (m - 1) * (total(2, "body") - b1)
    return body + total(m, "ends")


def _input_shape(input_shape, n_stages: int) -> tuple[int, int, int]:
    shape = image_shape(input_shape)
    h, w, _ = shape
    stem = 4 if h >= LARGE_IMAGE else 1
    if min(h, w) // stem < 2 ** (n_stages - 1):
        raise bad_argument("input_shape", input_shape,
                           f"images large enough to halve {n_stages - 1} times after the stem")
    return shape


def build_from_graphs(graphs: NetworkGraphs, channel_ratio=(1, 2, 4), *, num_classes: int, rngs: nnx.Rngs,
                      param_limit: float = 4e6, input_shape=(32, 32, 3)) -> NagoNetwork:
    """The network of ``graphs`` with the largest channel multiplier under ``param_limit``.

    The result has attributes ``multiplier`` and ``channels`` (per stage).
    """
    if not isinstance(graphs, NetworkGraphs):
        raise bad_argument("graphs", type(graphs).__name__, "a NetworkGraphs from jnas.spaces.nago.generate")
    if len(channel_ratio) != graphs.num_stages:
        raise bad_argument("channel_ratio", channel_ratio, f"{graphs.num_stages} stage ratios")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise bad_argument("num_classes", num_classes, "a positive integer")
    try:
        limit = float(param_limit)
    except (TypeError, ValueError):
        limit = math.nan
    if not limit > 0:
        raise bad_argument("param_limit", param_limit, "a positive number of parameters")
    shape = _input_shape(input_shape, graphs.num_stages)
    m, _ = choose_multiplier(graphs, channel_ratio, num_classes=int(num_classes), param_limit=limit,
                             input_shape=shape)
    model = NagoNetwork(graphs, [r * m for r in channel_ratio], num_classes=int(num_classes),
                        input_shape=shape, rngs=rngs)
    model.multiplier = m
    return model


def extra_options(generator: str = "hnag") -> tuple[str, ...]:
    """Names of the generator settings ``build`` takes through ``**settings`` (``jnas.models`` lists them)."""
    return _SETTINGS[generator]


def build(arch, *, num_classes: int, rngs: nnx.Rngs, seed: int = 0, param_limit: float = 4e6,
          input_shape=(32, 32, 3), generator: str = "hnag", **settings) -> NagoNetwork:
    """The network drawn from the generator ``arch`` with ``jax.random.key(seed)``.

    ``arch``: ``int16[8]`` HNAG or ``int16[9]`` RNAG hyperparameters
    (``generator="hnag"`` / ``"rnag"``; see ``jnas.spaces.nago``).
    ``settings``: the generator's non-searched fields (``stage_ratio`` (HNAG
    only), ``channel_ratio``, ``op_probs``, ``merge_probs``). The channel
    multiplier is the largest whose network has at most ``param_limit``
    parameters for ``input_shape`` images (``model.multiplier``).
    """
    if generator not in SPACES:
        raise bad_argument("generator", generator, "'hnag' or 'rnag'")
    space = SPACES[generator]
    unknown = set(settings) - set(_SETTINGS[generator])
    if unknown:
        raise bad_argument("settings", sorted(unknown), f"keywords among {', '.join(_SETTINGS[generator])}")
    config = space.config(arch, **settings)  # checks shape and ranges (one error naming the field)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise bad_argument("seed", seed, "an integer")
    with jax.ensure_compile_time_eval():  # a concrete key even when building under nnx.eval_shape
        key = jax.random.key(int(seed))
    graphs = generate(config, key)
    return build_from_graphs(graphs, config.channel_ratio, num_classes=num_classes, rngs=rngs,
                             param_limit=param_limit, input_shape=input_shape)


__all__ = ["Graph", "Head", "Merge", "NagoNetwork", "Node", "Operation", "Stem", "activation_bytes", "build",
           "build_from_graphs", "choose_multiplier", "component_bytes", "component_params", "components",
           "count_params_at", "extra_options"]
