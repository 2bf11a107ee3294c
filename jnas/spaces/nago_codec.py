"""The NAGO hyperparameter vectors: their layout and their conversions.

A generator's searched hyperparameters are stored as an ``int16`` vector, one
``Field`` per entry (probabilities in hundredths); ``HNAG_FIELDS`` and
``RNAG_FIELDS`` are the two layouts (the table is in ``jnas.spaces.nago``).
This module converts between those vectors, the generator configs of
``jnas.spaces.nago_generator`` (``hnag_config_from_vector``,
``rnag_config_from_vector``, ``config_to_vector``) and the string form of a
vector, one graph model per ``GraphGroup`` (``format_vector``,
``parse_vector``: ``top=WS(n=8,k=4,p=0.75) mid=ER(n=1,p=0.20) ...``). Every
conversion checks the search ranges and names the offending entry.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from jnas.errors import bad_argument
from jnas.spaces.nago_generator import ER, WS, GeneratorConfig, RNAGConfig

_P_SCALE = 100  # probabilities are stored in hundredths

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



# ----- the string form ---------------------------------------------------------------------

class GraphGroup(NamedTuple):
    """Consecutive entries of a vector that make one graph model, e.g. ``top=WS(n=..,k=..,p=..)``."""

    label: str  # "top", "mid", "bottom" or "stage1".."stage3"
    model: str  # "WS" or "ER"
    params: tuple[str, ...]  # parameter names in vector order ("n", "k", "p")


HNAG_GRAPHS = (GraphGroup("top", "WS", ("n", "k", "p")), GraphGroup("mid", "ER", ("n", "p")),
               GraphGroup("bottom", "WS", ("n", "k", "p")))
RNAG_GRAPHS = tuple(GraphGroup(f"stage{s}", "WS", ("n", "k", "p")) for s in (1, 2, 3))

_GRAPH = re.compile(r"(\w+)=(WS|ER)\(([^)]*)\)")
_PARAM = re.compile(r"^\s*(n|k|p)\s*=\s*([0-9.]+)\s*$")


def format_vector(groups, vec) -> str:
    """E.g. ``top=WS(n=8,k=4,p=0.75) mid=ER(n=1,p=0.20) bottom=WS(n=5,k=2,p=0.50)`` (no range checks)."""
    v = np.asarray(vec).reshape(-1).astype(int).tolist()
    parts, i = [], 0
    for label, model, names in groups:
        items = []
        for nm in names:
            items.append(f"{nm}={v[i] / _P_SCALE:.2f}" if nm == "p" else f"{nm}={v[i]}")
            i += 1
        parts.append(f"{label}={model}({','.join(items)})")
    return " ".join(parts)


def parse_vector(groups, fields, text) -> np.ndarray:
    """The ``int16`` vector of ``text`` (inverse of ``format_vector``); checks the format and the search ranges."""
    example = format_vector(groups, [f.lo for f in fields])
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
    return np.asarray(_stored(fields, np.asarray(out)), np.int16)


__all__ = [
    "HNAG_FIELDS",
    "HNAG_GRAPHS",
    "RNAG_FIELDS",
    "RNAG_GRAPHS",
    "Field",
    "GraphGroup",
    "config_to_vector",
    "format_vector",
    "hnag_config_from_vector",
    "parse_vector",
    "rnag_config_from_vector",
]
