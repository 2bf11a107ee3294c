"""LaNAS ConvNet spaces: published counts, index layout, strings, neighbourhood."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from jnas.errors import JnasError
from jnas.spaces.convnet import CONVNET, CONVNET_SMALL


def test_small_space_has_1364_networks():
    # LaNAS's motivating example: depth 1-5, channels {32, 64}, kernels {3, 5}
    every = {
        tuple(layers)
        for depth in range(1, 6)
        for layers in itertools.product(itertools.product((32, 64), (3, 5)), repeat=depth)
    }
    assert len(every) == 1364 == CONVNET_SMALL.size
    archs = CONVNET_SMALL.enumerate()
    assert archs.shape == (1364, 11)
    strings = {CONVNET_SMALL.to_string(a) for a in np.asarray(archs)}
    assert strings == {",".join(f"{c}-{k}" for c, k in layers) for layers in every}


def test_full_space_size():
    assert CONVNET.size == sum(6**d for d in range(1, 9)) == 2_015_538
    assert CONVNET.ops == ("conv3x3-32", "conv5x5-32", "conv3x3-64", "conv5x5-64", "conv3x3-96", "conv5x5-96")


def test_index_layout():
    # depth-1 block first, then depth 2, ...; within a depth, layer 0 is the most significant digit
    assert int(CONVNET.index(CONVNET.from_string("32-3"))) == 0
    assert int(CONVNET.index(CONVNET.from_string("96-5"))) == 5
    assert int(CONVNET.index(CONVNET.from_string("32-3,32-3"))) == 6
    assert int(CONVNET.index(CONVNET.from_string("32-5,32-3"))) == 6 + 6
    assert int(CONVNET.index(CONVNET.from_string(",".join(["96-5"] * 8)))) == CONVNET.size - 1
    assert int(CONVNET.index(jnp.zeros(17, jnp.int8))) == -1  # depth 0 is not a network


def test_layout_and_padding():
    a = CONVNET.from_string("64-5,96-3")
    assert a.tolist() == [2, 1, 1, 2, 0] + [0] * 12
    assert not CONVNET.is_valid(a.at[7].set(1))  # junk past depth
    assert not CONVNET.is_valid(a.at[1].set(3))  # channel id out of range
    assert not CONVNET.is_valid(a.at[0].set(9))  # too deep


@pytest.mark.parametrize("text", ["32-3,", "32-7", "48-3", "32x3", ",".join(["32-3"] * 9), "32-3-1"])
def test_bad_strings(text):
    with pytest.raises(JnasError):
        CONVNET.from_string(text)


def test_small_rejects_full_space_choices():
    with pytest.raises(JnasError):
        CONVNET_SMALL.from_string("96-3")
    with pytest.raises(JnasError):
        CONVNET_SMALL.from_string(",".join(["32-3"] * 6))


def test_neighbours_of_full_space_by_brute_force():
    every = np.asarray(CONVNET.enumerate())
    nbrs_fn = jax.jit(CONVNET.neighbours)
    for text in ("32-3", "64-5,96-3,32-5", ",".join(["96-5"] * 8)):
        a = np.asarray(CONVNET.from_string(text))
        d, e = a[0], every[:, 0].astype(int)
        common = np.arange(16) // 2 < np.minimum(d, e)[:, None]
        dist = np.sum((every[:, 1:] != a[1:]) & common, axis=1) + np.abs(e - d)
        nbrs, mask = nbrs_fn(jnp.asarray(a))
        got = np.sort(np.asarray(jax.vmap(CONVNET.index)(nbrs))[np.asarray(mask)])
        np.testing.assert_array_equal(got, np.flatnonzero(dist == 1))


def test_crossover_keeps_layers_of_the_parents():
    a, b = CONVNET.from_string("32-3,32-3,32-3"), CONVNET.from_string("96-5")
    kids = jax.vmap(CONVNET.crossover, (0, None, None))(jax.random.split(jax.random.key(0), 64), a, b)
    texts = {CONVNET.to_string(k) for k in np.asarray(kids)}
    assert texts <= {"32-3", "96-5", "32-3,32-3,32-3", "96-5,32-3,32-3"}
    assert len(texts) == 4


def test_networkx_chain():
    g = CONVNET.to_networkx(CONVNET.from_string("64-5,96-3"))
    assert isinstance(g, nx.DiGraph)
    assert list(nx.topological_sort(g)) == ["input", 0, 1, "output"]
    assert g.nodes[0] == {"op": "conv5x5", "channels": 64, "kernel": 5}
