"""LaNAS plain ConvNet space: a chain of conv layers of chosen width and kernel.

From LaNAS (Wang et al., "Learning Search Space Partition for Black-box
Optimization using Monte Carlo Tree Search", NeurIPS 2020): a network is a
stack of ``depth`` conv layers, each with its own channel count and kernel
size. ``CONVNET`` is the full space (depth 1–8, channels {32, 64, 96},
kernels {3, 5}: Σ_{d=1..8} 6^d = 2,015,538 networks); ``CONVNET_SMALL`` is
the paper's motivating example (depth 1–5, channels {32, 64}, kernels {3, 5}:
Σ_{d=1..5} 4^d = 1,364 networks).

An architecture is ``int8[1 + 2 * max_depth]``::

    [depth, ch_0, k_0, ch_1, k_1, ..., ch_{D-1}, k_{D-1}]

``ch_l`` indexes ``space.channels`` and ``k_l`` indexes ``space.kernels``;
fields of layers ``l >= depth`` are 0 (the padding is part of validity, so
every network has exactly one array).

Index: networks are ordered by depth, then by a mixed-radix code over the
layers with layer 0 most significant, each layer's digit being
``ch * len(kernels) + k`` (so ``space.ops[digit]`` names the layer). The index
of a network is ``offset(depth) + code`` with ``offset(d) = Σ_{d' < d} R^{d'}``
and ``R = len(channels) * len(kernels)``.

One edit (``neighbours``): change one layer's channel or kernel, remove the
last layer, or append a layer with any (channel, kernel).

Self-description: decisions are the depth, then each layer's channel and
kernel (a layer's decisions are dead past the depth); the graph is the chain
input → layers → output; the one-hot encoding is one ``space.ops`` choice
per layer slot (zero past the depth); the relaxation LaNAS uses is ordinal
(depth, channels and kernels scaled to ``[0, 1]``). No op slots (layers
come and go) and no path encoding (``Σ len(ops)^L`` features).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np

from jnas.errors import JnasError
from jnas.spaces.base import Decisions, GraphLayout, Relaxation, Space
from jnas.spaces.generic import finish_graph, stochastic_round

_LAYER = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


class ConvNetSpace(Space):
    """Plain ConvNets of ``min_depth..max_depth`` layers with per-layer (channels, kernel)."""

    enumerable = True

    def __init__(self, name: str, max_depth: int, channels, kernels, min_depth: int = 1):
        self.name = name
        self.min_depth = int(min_depth)
        self.max_depth = int(max_depth)
        self.channels = tuple(int(c) for c in channels)
        self.kernels = tuple(int(k) for k in kernels)
        n_c, n_k = len(self.channels), len(self.kernels)
        #: per-layer choice names, indexed by the layer digit ``ch * len(kernels) + k``
        self.ops = tuple(f"conv{k}x{k}-{c}" for c in self.channels for k in self.kernels)
        self._radix = n_c * n_k
        depths = np.arange(self.min_depth, self.max_depth + 1)
        block = self._radix ** depths
        #: first index of each depth block, for depths min_depth..max_depth
        self._starts = np.concatenate([[0], np.cumsum(block)[:-1]]).astype(np.int64)
        self._size = int(block.sum())
        if self._size >= 2**31:
            raise JnasError(f"max_depth: got {max_depth!r}, expected a space of fewer than 2**31 networks")
        self._pow = (self._radix ** np.arange(self.max_depth)).astype(np.int64)  # R^j

    # ----- structure -------------------------------------------------------------
    def template(self):
        return jnp.zeros((1 + 2 * self.max_depth,), jnp.int8)

    @property
    def size(self) -> int:
        return self._size

    def _fields(self, arch):
        """``(depth int32[], ch int32[D], k int32[D])`` of one architecture."""
        arch = jnp.asarray(arch).astype(jnp.int32)
        return arch[0], arch[1::2], arch[2::2]

    def _pack(self, depth, ch, k):
        """Inverse of ``_fields`` (leading batch dims allowed)."""
        layers = jnp.stack([ch, k], axis=-1).reshape(*ch.shape[:-1], 2 * self.max_depth)
        return jnp.concatenate([jnp.asarray(depth)[..., None], layers], axis=-1).astype(jnp.int8)

    # ----- array primitives ----------------------------------------------------------
    def is_valid(self, arch):
        d, ch, k = self._fields(arch)
        live = jnp.arange(self.max_depth) < d
        in_range = (ch >= 0) & (ch < len(self.channels)) & (k >= 0) & (k < len(self.kernels))
        padded = (ch == 0) & (k == 0)
        depth_ok = (d >= self.min_depth) & (d <= self.max_depth)
        return depth_ok & jnp.all(jnp.where(live, in_range, padded))

    def index(self, arch):
        d, ch, k = self._fields(arch)
        digit = ch * len(self.kernels) + k
        code = jnp.zeros((), jnp.int32)
        for layer in range(self.max_depth):  # Horner over the live layers, layer 0 most significant
            code = jnp.where(layer < d, code * self._radix + digit[layer], code)
        start = jnp.asarray(self._starts, jnp.int32)[jnp.clip(d - self.min_depth, 0, len(self._starts) - 1)]
        return jnp.where(self.is_valid(arch), start + code, -1).astype(jnp.int32)

    def from_index(self, i):
        i = jnp.asarray(i, jnp.int32)
        starts = jnp.asarray(self._starts, jnp.int32)
        block = jnp.sum(i[..., None] >= starts, axis=-1) - 1  # which depth block
        d = block + self.min_depth
        code = i - starts[block]
        layer = jnp.arange(self.max_depth)
        live = layer < d[..., None]
        shift = jnp.clip(d[..., None] - 1 - layer, 0, self.max_depth - 1)
        digit = (code[..., None] // jnp.asarray(self._pow, jnp.int32)[shift]) % self._radix
        digit = jnp.where(live, digit, 0)
        n_k = len(self.kernels)
        return self._pack(d, digit // n_k, digit % n_k)

    def enumerate(self):
        return self.from_index(jnp.arange(self.size, dtype=jnp.int32))

    def neighbours(self, arch):
        """Rows: D x |channels| channel edits, D x |kernels| kernel edits, 1 removal, R appends."""
        arch = jnp.asarray(arch).astype(jnp.int8)
        d, ch, k = self._fields(arch)
        D, n_c, n_k = self.max_depth, len(self.channels), len(self.kernels)

        # channel edits: row (layer l, value v) sets ch_l = v
        lc, vc = (a.reshape(-1) for a in np.meshgrid(np.arange(D), np.arange(n_c), indexing="ij"))
        ch_rows = jnp.tile(arch, (lc.size, 1)).at[np.arange(lc.size), 1 + 2 * lc].set(vc.astype(np.int8))
        ch_mask = (lc < d) & (vc != ch[lc])

        # kernel edits: row (layer l, value v) sets k_l = v
        lk, vk = (a.reshape(-1) for a in np.meshgrid(np.arange(D), np.arange(n_k), indexing="ij"))
        k_rows = jnp.tile(arch, (lk.size, 1)).at[np.arange(lk.size), 2 + 2 * lk].set(vk.astype(np.int8))
        k_mask = (lk < d) & (vk != k[lk])

        # remove the last layer
        last = jnp.clip(d - 1, 0, D - 1)
        rm = arch.at[0].set((d - 1).astype(jnp.int8)).at[1 + 2 * last].set(0).at[2 + 2 * last].set(0)
        rm_mask = (d > self.min_depth)[None]

        # append a layer with each (channel, kernel)
        u = np.arange(self._radix)
        app = jnp.tile(arch, (u.size, 1)).at[:, 0].set((d + 1).astype(jnp.int8))
        app = app.at[:, 1 + 2 * d].set((u // n_k).astype(np.int8), mode="drop")
        app = app.at[:, 2 + 2 * d].set((u % n_k).astype(np.int8), mode="drop")
        app_mask = jnp.broadcast_to(d < self.max_depth, (u.size,))

        nbrs = jnp.concatenate([ch_rows, k_rows, rm[None], app], axis=0)
        mask = jnp.concatenate([ch_mask, k_mask, rm_mask, app_mask])
        return nbrs, mask

    def crossover(self, key, a, b):
        k_depth, k_layer = jax.random.split(key)
        da, cha, ka = self._fields(a)
        db, chb, kb = self._fields(b)
        d = jnp.where(jax.random.bernoulli(k_depth), da, db)
        layer = jnp.arange(self.max_depth)
        # Shared layers come from either parent; deeper ones from the parent that has them.
        use_a = jnp.where(layer < jnp.minimum(da, db), jax.random.bernoulli(k_layer, 0.5, layer.shape), layer < da)
        live = layer < d
        ch = jnp.where(live, jnp.where(use_a, cha, chb), 0)
        k = jnp.where(live, jnp.where(use_a, ka, kb), 0)
        return self._pack(d, ch, k)

    # ----- self-description ---------------------------------------------------------------
    @property
    def decisions(self) -> Decisions:
        """``depth - min_depth``, then per layer its channel id and kernel id (dead past the depth)."""
        D = self.max_depth
        card = [D - self.min_depth + 1] + [len(self.channels), len(self.kernels)] * D
        names = ("depth",) + tuple(f"layer{i}.{f}" for i in range(D) for f in ("channels", "kernel"))
        depths = tuple(str(d) for d in range(self.min_depth, D + 1))
        values = (depths,) + (tuple(map(str, self.channels)), tuple(map(str, self.kernels))) * D
        return Decisions(np.array(card, np.int32), names, values, True)

    def to_decisions(self, arch):
        a = jnp.asarray(arch).astype(jnp.int32)
        return a.at[0].add(-self.min_depth)

    def from_decisions(self, tokens):
        t = jnp.asarray(tokens).astype(jnp.int32)
        d = t[0] + self.min_depth
        live = jnp.arange(self.max_depth) < d
        return self._pack(d, jnp.where(live, t[1::2], 0), jnp.where(live, t[2::2], 0))

    def live_decisions(self, tokens):
        d = jnp.asarray(tokens)[0].astype(jnp.int32) + self.min_depth
        return jnp.concatenate([jnp.ones((1,), bool), jnp.repeat(jnp.arange(self.max_depth) < d, 2)])

    @property
    def graph_layout(self) -> GraphLayout:
        """``max_depth + 2`` nodes: input, the layer slots, output; a chain cut at the depth."""
        D = self.max_depth
        n = D + 2
        wiring = np.zeros((n, n), bool)
        wiring[np.arange(D), np.arange(1, D + 1)] = True  # input -> layer 0 -> ... -> layer D-1
        wiring[np.arange(self.min_depth, D + 1), n - 1] = True  # the last layer feeds the output
        return GraphLayout(("input",) + self.ops + ("output",), wiring, (), False)

    def graph_tensors(self, arch):
        """Node ``1 + l`` is layer ``l`` (label: its ``space.ops`` choice); nodes past the depth are padding."""
        arch = jnp.asarray(arch).astype(jnp.int32)
        d_max = self.max_depth
        depth, ch, k = arch[0], arch[1::2], arch[2::2]
        n = d_max + 2
        node = jnp.arange(n)
        # chain input -> layer 0 -> ... -> layer depth-1 (A index 1 + l), then the output node n - 1
        a = jnp.zeros((n, n), jnp.float32).at[node[:-1], node[:-1] + 1].set((node[:-1] < depth).astype(jnp.float32))
        a = a.at[jnp.clip(depth, 0, d_max), n - 1].set(1.0)
        digit = ch * len(self.kernels) + k
        labels = jnp.concatenate([jnp.zeros((1,), jnp.int32), 1 + digit, jnp.full((1,), 1 + len(self.ops), jnp.int32)])
        mask = (node <= depth) | (node == n - 1)
        return finish_graph(a, labels, mask, len(self.ops) + 2)

    def onehot(self, arch):
        """``float32[max_depth · len(ops)]``: one-hot layer choice per layer slot, all-zero past the depth."""
        arch = jnp.asarray(arch).astype(jnp.int32)
        live = jnp.arange(self.max_depth) < arch[0]
        digit = arch[1::2] * len(self.kernels) + arch[2::2]
        return (jax.nn.one_hot(digit, len(self.ops), dtype=jnp.float32) * live[:, None]).reshape(-1)

    def onehot_names(self) -> tuple[str, ...]:
        return tuple(f"layer{i}={o}" for i in range(self.max_depth) for o in self.ops)

    def relaxation(self) -> Relaxation:
        """``1 + 2·max_depth`` free coordinates: depth / max depth; per layer channels / max channels and
        kernel / max kernel (0 past the depth). Rounding picks each value between its two nearest choices."""
        D = self.max_depth
        ch = np.asarray(self.channels, np.float64)
        kn = np.asarray(self.kernels, np.float64)
        ch_scale, k_scale = ch / ch.max(), kn / kn.max()

        def encode(arch):
            a = jnp.asarray(arch).astype(jnp.int32)
            d, c, k = a[0], a[1::2], a[2::2]
            live = jnp.arange(D) < d
            cf = jnp.where(live, jnp.asarray(ch_scale)[c], 0.0)
            kf = jnp.where(live, jnp.asarray(k_scale)[k], 0.0)
            layers = jnp.stack([cf, kf], axis=-1).reshape(-1)
            return jnp.concatenate([(d / D)[None], layers]).astype(jnp.result_type(float))

        def decode(key, x):
            kd, kc, kk = jax.random.split(key, 3)
            d = stochastic_round(kd, x[:1] * D - self.min_depth, D - self.min_depth + 1)[0] + self.min_depth
            # fractional position of each layer's value among the sorted choices
            c = stochastic_round(kc, jnp.interp(x[1::2], jnp.asarray(ch_scale), jnp.arange(len(ch))), len(ch))
            k = stochastic_round(kk, jnp.interp(x[2::2], jnp.asarray(k_scale), jnp.arange(len(kn))), len(kn))
            live = jnp.arange(D) < d
            return self._pack(d, jnp.where(live, c, 0), jnp.where(live, k, 0))

        dim = 1 + 2 * D
        return Relaxation(dim, encode, np.full(dim, -1), np.zeros(0), decode)

    # ----- host-side ----------------------------------------------------------------
    def to_string(self, arch) -> str:
        a = np.asarray(arch).reshape(-1).astype(int)
        d = int(a[0])
        return ",".join(f"{self.channels[a[1 + 2 * i]]}-{self.kernels[a[2 + 2 * i]]}" for i in range(d))

    def from_string(self, text: str):
        expected = (
            f"comma-separated 'channels-kernel' layers like '32-3,64-5' with channels in {self.channels}, "
            f"kernels in {self.kernels} and {self.min_depth}..{self.max_depth} layers"
        )
        if not isinstance(text, str) or not text.strip():
            raise JnasError(f"arch: got {text!r}, expected {expected}")
        layers = text.split(",")
        if not self.min_depth <= len(layers) <= self.max_depth:
            raise JnasError(f"arch: got {len(layers)} layers in {text!r}, expected {expected}")
        out = np.zeros(1 + 2 * self.max_depth, np.int8)
        out[0] = len(layers)
        for i, tok in enumerate(layers):
            m = _LAYER.match(tok)
            if not m or int(m.group(1)) not in self.channels or int(m.group(2)) not in self.kernels:
                raise JnasError(f"arch: bad layer {tok!r} in {text!r}, expected {expected}")
            out[1 + 2 * i] = self.channels.index(int(m.group(1)))
            out[2 + 2 * i] = self.kernels.index(int(m.group(2)))
        return jnp.asarray(out)

    def to_networkx(self, arch):
        """A chain ``input -> layer 0 -> ... -> output``; layer nodes carry ``op``, ``channels``, ``kernel``."""
        a = np.asarray(arch).reshape(-1).astype(int)
        d = int(a[0])
        g = nx.DiGraph()
        g.add_node("input", op="input")
        prev = "input"
        for layer in range(d):
            c, k = self.channels[a[1 + 2 * layer]], self.kernels[a[2 + 2 * layer]]
            g.add_node(layer, op=f"conv{k}x{k}", channels=c, kernel=k)
            g.add_edge(prev, layer)
            prev = layer
        g.add_node("output", op="output")
        g.add_edge(prev, "output")
        return g


#: the full LaNAS ConvNet space: 2,015,538 networks
CONVNET = ConvNetSpace("convnet", max_depth=8, channels=(32, 64, 96), kernels=(3, 5))
#: LaNAS's motivating example: 1,364 networks
CONVNET_SMALL = ConvNetSpace("convnet-small", max_depth=5, channels=(32, 64), kernels=(3, 5))
