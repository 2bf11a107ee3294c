"""Size and memory of NAGO networks without building them: parameters, channel multiplier, activation bytes.

All of it reads the component specs of ``jnas.models.nago_network`` (one
walk over the graphs):

* ``count_params_at``: the parameters of the network of a set of graphs,
  counted analytically from the graphs and channel counts alone
  (microseconds, where even an abstract ``nnx.eval_shape`` construction of a
  1,000-operation network takes seconds); equal to ``cost.count_params`` of
  the built network (tested).
* ``choose_multiplier``: the count is a quadratic polynomial in the channel
  multiplier ``m`` (every channel count is a multiple of ``m``), so it solves
  for the largest ``m`` under a parameter limit from the counts at
  ``m = 1, 2, 3`` and confirms it with the counts at ``m`` and ``m + 1``.
* ``activation_bytes``: ``cost.activation_bytes_per_image`` of a network from
  its components (each traced alone, cached across networks).
"""

from __future__ import annotations

import functools
import math

from flax import nnx

from jnas.errors import bad_argument
from jnas.models.cost import activation_bytes_per_image
from jnas.models.nago_network import Head, Merge, Operation, Stem, components, make_component
from jnas.spaces.nago import NetworkGraphs


def component_params(spec: tuple) -> int:
    """Parameters of one component spec (see ``jnas.models.nago_network.network_plan``)."""
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
    """``cost.activation_bytes_per_image`` of one component spec, traced alone and cached."""
    kind = spec[0]
    if kind == "stem":
        c_img, _, _, _, h, w = spec[1:]
        return _traced_bytes(lambda rngs: make_component(spec, rngs=rngs), (h, w, c_img))
    if kind == "op":
        _, c_in, _, h, w = spec[1:]
        return _traced_bytes(lambda rngs: make_component(spec, rngs=rngs), (h, w, c_in))
    if kind == "head":
        c, _, h, w = spec[1:]
        return _traced_bytes(lambda rngs: make_component(spec, rngs=rngs), (h, w, c))
    _, inputs, _ = spec[1:]
    if len(inputs) == 1 and inputs[0][1] == 0:
        return 0  # passes its input through
    shapes = [(h, w, c) for c, _, h, w in inputs]
    flat = (1, sum(math.prod(s) for s in shapes), 1)
    probe = _traced_bytes(lambda rngs: _Probe(make_component(spec, rngs=rngs), shapes), flat)
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


__all__ = ["activation_bytes", "choose_multiplier", "component_bytes", "component_params", "count_params_at"]
