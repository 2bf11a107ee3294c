"""DARTS space: genotype strings, size, canonical form, neighbourhood completeness."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jnas.errors import JnasError
from jnas.spaces.darts import DARTS, OPS

# DARTS-V2 as published in the DARTS repository (genotypes.py)
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)


def test_darts_v2_parses_to_the_published_cells():
    a = np.asarray(DARTS.from_string(DARTS_V2))
    assert a.shape == (2, 8, 2) and a.dtype == np.int8
    assert bool(DARTS.is_valid(a))
    # node by node, the (op, input) multisets of the published genotype
    published_normal = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                        ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)]
    for node in range(4):
        got = sorted((OPS[a[0, e, 1]], int(a[0, e, 0])) for e in (2 * node, 2 * node + 1))
        assert got == sorted(published_normal[2 * node: 2 * node + 2])
    # canonical order: smaller input first, ops travel with their inputs
    assert a[0, 4].tolist() == [0, OPS.index("skip_connect")] and a[0, 5].tolist() == [1, OPS.index("sep_conv_3x3")]
    assert a[1, 2].tolist() == [1, OPS.index("max_pool_3x3")] and a[1, 3].tolist() == [2, OPS.index("skip_connect")]


def test_genotype_round_trip_and_range_concat():
    a = DARTS.from_string(DARTS_V2)
    text = DARTS.to_string(a)
    assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1),")
    assert "normal_concat=[2, 3, 4, 5]" in text and "reduce_concat=[2, 3, 4, 5]" in text
    np.testing.assert_array_equal(DARTS.from_string(text), a)
    ranged = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    np.testing.assert_array_equal(DARTS.from_string(ranged), a)
    # the DARTS repo also builds genotypes without concat lists in some scripts
    assert DARTS.to_string(DARTS.from_string(text.replace(", normal_concat=[2, 3, 4, 5]", ""))) == text


@pytest.mark.parametrize("bad", [
    DARTS_V2.replace("('dil_conv_3x3', 2)", "('none', 2)"),  # 'none' is not a discrete op
    DARTS_V2.replace("('dil_conv_3x3', 2)", "('conv_7x1_1x7', 2)"),  # unknown op
    DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"),  # node 5 has inputs 0..4
    DARTS_V2.replace("('sep_conv_3x3', 1), ('sep_conv_3x3', 0)", "('sep_conv_3x3', 1), ('sep_conv_3x3', 1)", 1),
    DARTS_V2.replace("('dil_conv_3x3', 2)]", "]"),  # seven edges
    DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"),
    DARTS_V2.replace("Genotype(", "Genome("),
    DARTS_V2.replace("reduce=", "reduction="),
    DARTS_V2[:-1],  # unbalanced
    "__import__('os').system('true')",
])
def test_malformed_genotypes_raise(bad):
    assert bad != DARTS_V2
    with pytest.raises(JnasError):
        DARTS.from_string(bad)


def test_size_from_combinatorics():
    per_cell = 1
    for i in range(4):  # node i picks 2 distinct inputs of i + 2, each edge one of 7 ops
        per_cell *= math.comb(i + 2, 2) * 7 * 7
    assert DARTS.size == per_cell**2 == 1_076_746_950_455_072_400
    assert not DARTS.enumerable


def test_validity_rules():
    a = DARTS.from_string(DARTS_V2)
    assert bool(DARTS.is_valid(a))
    assert not DARTS.is_valid(a.at[0, 0, 1].set(0))  # 'none'
    assert not DARTS.is_valid(a.at[0, 0, 1].set(8))  # op out of range
    assert not DARTS.is_valid(a.at[0, 1, 0].set(0))  # both inputs of node 2 are node 0
    assert not DARTS.is_valid(a.at[0, 0, 0].set(2))  # node 2 cannot read itself
    assert not DARTS.is_valid(a.at[0, 2:4].set(a[0, 2:4][::-1]))  # not canonical (larger input first)
    assert bool(DARTS.is_valid(DARTS.canonical(a.at[0, 2:4].set(a[0, 2:4][::-1]))))


def test_sample_is_uniform_over_input_pairs():
    archs = np.asarray(DARTS.sample_batch(jax.random.key(0), 20_000))
    # node 5 (edges 6, 7) chooses among C(5, 2) = 10 pairs; ops among 7
    pairs = archs[:, 0, 6, 0] * 10 + archs[:, 0, 7, 0]
    counts = np.unique(pairs, return_counts=True)[1]
    assert len(counts) == 10 and counts.min() > 1700 and counts.max() < 2300
    assert set(np.unique(archs[..., 1])) == set(range(1, 8))


def _node_options(node):
    """Every canonical (input, op) pair-of-edges of intermediate node ``node``."""
    for i, j in itertools.combinations(range(node + 2), 2):
        for oi, oj in itertools.product(range(1, 8), repeat=2):
            yield np.array([[i, oi], [j, oj]], np.int8)


def _field_distance(x, y):
    return min(int(np.sum(x != y)), int(np.sum(x != y[::-1])))


_neighbours = jax.jit(DARTS.neighbours)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_neighbourhood_is_complete(seed):
    a = np.asarray(DARTS.sample(jax.random.key(seed)))
    want = set()
    for cell, node in itertools.product(range(2), range(4)):
        current = a[cell, 2 * node: 2 * node + 2]
        for opt in _node_options(node):
            if _field_distance(current, opt) == 1:
                b = a.copy()
                b[cell, 2 * node: 2 * node + 2] = opt
                want.add(b.tobytes())
    nbrs, mask = _neighbours(jnp.asarray(a))
    got = [np.asarray(n).tobytes() for n in np.asarray(nbrs)[np.asarray(mask)]]
    assert len(got) == len(set(got)) == len(want)
    assert set(got) == want


def test_networkx_graph():
    g = DARTS.to_networkx(DARTS.from_string(DARTS_V2))
    assert isinstance(g, nx.DiGraph) and g.number_of_nodes() == 14
    assert g.edges[("normal", 2), ("normal", 5)]["op"] == "dil_conv_3x3"
    assert g.nodes[("reduce", 6)]["op"] == "concat"
    assert g.number_of_edges() == 2 * (8 + 4)
