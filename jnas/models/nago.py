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

Modules, one job each (every name is also importable from here):

* ``jnas.models.nago_network``: the NNX modules and the one walk over the
  three-level hierarchy (``network_plan``) that ``NagoNetwork`` builds from
  and ``components`` lists.
* ``jnas.models.nago_size``: parameters (``count_params_at``, analytic, from
  the graphs alone), the channel multiplier under the parameter limit
  (``choose_multiplier``) and activation bytes (``activation_bytes``), all
  without building a network.
* here: ``build`` / ``build_from_graphs``, from a generator vector or graphs to
  a network at the largest multiplier under ``param_limit``.
"""

from __future__ import annotations

import math

import jax
from flax import nnx

from jnas.errors import bad_argument, check_int
from jnas.models.cost import image_shape
from jnas.models.nago_network import (
    LARGE_IMAGE,
    Graph,
    GraphPlan,
    Head,
    Merge,
    NagoNetwork,
    NetworkPlan,
    Node,
    Operation,
    Stem,
    components,
    make_component,
    network_plan,
)
from jnas.models.nago_size import (
    activation_bytes,
    choose_multiplier,
    component_bytes,
    component_params,
    count_params_at,
)
from jnas.spaces.nago import SPACES, NetworkGraphs, generate

#: non-searched generator settings accepted by ``build``
_SETTINGS = {"hnag": ("stage_ratio", "channel_ratio", "op_probs", "merge_probs"),
             "rnag": ("channel_ratio", "op_probs", "merge_probs")}


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
    num_classes = check_int("num_classes", num_classes, 1, expected="a positive integer")
    try:
        limit = float(param_limit)
    except (TypeError, ValueError):
        limit = math.nan
    if not limit > 0:
        raise bad_argument("param_limit", param_limit, "a positive number of parameters")
    shape = _input_shape(input_shape, graphs.num_stages)
    m, _ = choose_multiplier(graphs, channel_ratio, num_classes=num_classes, param_limit=limit,
                             input_shape=shape)
    model = NagoNetwork(graphs, [r * m for r in channel_ratio], num_classes=num_classes,
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
    seed = check_int("seed", seed)
    with jax.ensure_compile_time_eval():  # a concrete key even when building under nnx.eval_shape
        key = jax.random.key(seed)
    graphs = generate(config, key)
    return build_from_graphs(graphs, config.channel_ratio, num_classes=num_classes, rngs=rngs,
                             param_limit=param_limit, input_shape=input_shape)


__all__ = ["LARGE_IMAGE", "Graph", "GraphPlan", "Head", "Merge", "NagoNetwork", "NetworkPlan", "Node", "Operation",
           "Stem", "activation_bytes", "build", "build_from_graphs", "choose_multiplier", "component_bytes",
           "component_params", "components", "count_params_at", "extra_options", "make_component", "network_plan"]
