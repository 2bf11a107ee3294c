"""NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 operations per edge.

An architecture is ``int8[6]``: the op id on edges in the order of the
official string, ``(0→1), (0→2), (1→2), (0→3), (1→3), (2→3)``. The space's
own ``index`` is the base-5 code with edge 0 most significant; the official
NAS-Bench-201 index is a permutation of it known only from the data, and is
handled by ``jnas.benchmarks.nb201``.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import Space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (source, target) of each of the 6 edges, in official-string order
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
N_EDGES = len(EDGES)
N_OPS = len(OPS)
_POW = N_OPS ** np.arange(N_EDGES - 1, -1, -1)  # big-endian base-5 weights
_TOKEN = re.compile(r"^([a-z_0-9]+)~(\d)$")


class NB201Space(Space):
    """The 15,625-cell NAS-Bench-201 topology space."""

    name = "nb201"
    enumerable = True
    ops = OPS
    edges = EDGES

    def template(self):
        return jnp.zeros((N_EDGES,), jnp.int8)

    @property
    def size(self) -> int:
        return N_OPS**N_EDGES

    def neighbours(self, arch):
        # Row e*4 + j replaces the op of edge e by the j-th other op.
        edge = jnp.repeat(jnp.arange(N_EDGES), N_OPS - 1)
        shift = jnp.tile(jnp.arange(1, N_OPS), N_EDGES)
        new_op = (arch[edge].astype(jnp.int32) + shift) % N_OPS
        nbrs = jnp.tile(arch, (N_EDGES * (N_OPS - 1), 1))
        nbrs = nbrs.at[jnp.arange(edge.shape[0]), edge].set(new_op.astype(jnp.int8))
        return nbrs, jnp.ones((edge.shape[0],), bool)

    def mutate(self, key, arch):
        # Same law as the generic rule (uniform over the 24 neighbours), without
        # materialising them: this sits in the innermost loop of evolution.
        r = jax.random.randint(key, (), 0, N_EDGES * (N_OPS - 1))
        edge, shift = r // (N_OPS - 1), r % (N_OPS - 1) + 1
        new = (arch[edge].astype(jnp.int32) + shift) % N_OPS
        return arch.at[edge].set(new.astype(arch.dtype))

    def crossover(self, key, a, b):
        take_a = jax.random.bernoulli(key, 0.5, (N_EDGES,))
        return jnp.where(take_a, a, b)

    def is_valid(self, arch):
        arch = jnp.asarray(arch)
        return jnp.all((arch >= 0) & (arch < N_OPS))

    def enumerate(self):
        return self.from_index(jnp.arange(self.size))

    def index(self, arch):
        arch = jnp.asarray(arch).astype(jnp.int32)
        code = jnp.sum(arch * jnp.asarray(_POW, jnp.int32), axis=-1)
        return jnp.where(self.is_valid(arch), code, -1).astype(jnp.int32)

    def from_index(self, i):
        i = jnp.asarray(i, jnp.int32)
        digits = (i[..., None] // jnp.asarray(_POW, jnp.int32)) % N_OPS
        return digits.astype(jnp.int8)

    # ----- host-side ---------------------------------------------------------
    def to_string(self, arch) -> str:
        a = np.asarray(arch).reshape(-1)
        groups, k = [], 0
        for node in (1, 2, 3):
            toks = []
            for src in range(node):
                toks.append(f"{OPS[int(a[k])]}~{src}")
                k += 1
            groups.append("|" + "|".join(toks) + "|")
        return "+".join(groups)

    def from_string(self, text: str):
        expected = "an NB201 string like '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|'"
        if not isinstance(text, str):
            raise JnasError(f"arch: got {text!r}, expected {expected}")
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise JnasError(f"arch: got {text!r}, expected {expected}")
        ops = []
        for node, g in enumerate(groups, start=1):
            toks = [t for t in g.split("|") if t]
            if not (g.startswith("|") and g.endswith("|")) or len(toks) != node:
                raise JnasError(f"arch: node {node} of {text!r} must list {node} edges, expected {expected}")
            for src, tok in enumerate(toks):
                m = _TOKEN.match(tok)
                if not m or m.group(1) not in OPS or int(m.group(2)) != src:
                    raise JnasError(
                        f"arch: bad edge {tok!r} in {text!r}; expected 'op~{src}' with op in {', '.join(OPS)}"
                    )
                ops.append(OPS.index(m.group(1)))
        return jnp.asarray(ops, jnp.int8)

    def to_networkx(self, arch):
        a = np.asarray(arch).reshape(-1)
        g = nx.DiGraph()
        g.add_nodes_from(range(4))
        for (src, dst), op in zip(EDGES, a):
            g.add_edge(src, dst, op=OPS[int(op)])
        return g


NB201 = NB201Space()
