"""Encodings: adjacency one-hot, path, ANASOD operation distribution, graph tensors."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from jnas import encodings as E
from jnas.errors import JnasError
from jnas.spaces import get_space, names

ALL_SPACES = ("nb201", "nb201-3", "nb101", "darts", "nbgraph", "nbgraph-proteins", "convnet", "convnet-small")


def space_or_skip(name):
    """The registered space ``name``. A space that disappears (from the registry or its module) fails, never skips."""
    if name not in names():
        pytest.fail(f"space {name!r} is no longer registered; registered: {', '.join(names())}")
    try:
        return get_space(name)
    except ModuleNotFoundError as e:
        pytest.fail(f"space {name!r} is registered but its module is gone: {e}")


def _nb101_cells(rng, n):
    """Valid NB101 cells: random upper-triangular bits, kept when ≤ 9 edges and input reaches output."""
    out = []
    while len(out) < n:
        adj = np.triu(rng.random((7, 7)) < 0.3, k=1).astype(np.uint8)
        reach = np.eye(7, dtype=int)[0]
        for _ in range(6):
            reach = reach | (reach @ adj > 0)
        if adj.sum() <= 9 and reach[6]:
            out.append((adj, np.array([3, *rng.integers(0, 3, 5), 4], np.int8)))
    return np.stack([a for a, _ in out]), np.stack([o for _, o in out])


def _darts_cells(rng, n):
    """Valid DARTS architectures: per node two distinct sorted inputs, ops other than `none`."""
    inp = np.zeros((n, 2, 8), np.int8)
    for b, c, i in itertools.product(range(n), range(2), range(4)):
        inp[b, c, 2 * i : 2 * i + 2] = np.sort(rng.choice(i + 2, 2, replace=False))
    return np.stack([inp, rng.integers(1, 8, (n, 2, 8)).astype(np.int8)], -1)


@functools.lru_cache(maxsize=None)
def _samples(space):
    # Drawn host-side (or by index), so tests pay no compile for the spaces' samplers.
    rng = np.random.default_rng(0)
    fam = space.name.split("-")[0]
    if space.name == "nb201":
        return rng.integers(0, 5, (6, 6)).astype(np.int8)
    if fam == "nb101":
        return _nb101_cells(rng, 6)
    if fam == "darts":
        return _darts_cells(rng, 6)
    return np.asarray(space.from_index(jnp.asarray(rng.integers(0, space.size, 6), jnp.int32)))


def batch(space, n=6):
    """The first ``n`` of 6 fixed random architectures of ``space`` (numpy leaves)."""
    return jax.tree.map(lambda x: x[:n], _samples(space))


def row(archs, i):
    return jax.tree.map(lambda x: x[i], archs)


def nb201(*ops):
    return jnp.asarray(ops, jnp.int8)


@pytest.mark.parametrize("name", ALL_SPACES)
def test_fixture_architectures_are_members(name):
    s = space_or_skip(name)
    assert bool(jax.jit(jax.vmap(s.is_valid))(batch(s)).all())


# ----- ANASOD: rounding and grid neighbours ---------------------------------------------


def grid(n, k):
    """All points of {m ∈ ℕ^k : Σ m = n}."""
    return np.array([c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n])


def test_grid_neighbours_paper_example():
    nbrs, mask = E.grid_neighbours(jnp.array([1, 1, 3]))
    assert nbrs.shape == (6, 3) and bool(mask.all())
    got = {tuple(r) for r in np.asarray(nbrs)}
    assert got == {(0, 1, 4), (1, 0, 4), (0, 2, 3), (2, 0, 3), (1, 2, 2), (2, 1, 2)}


def test_grid_tools_under_jit_and_vmap():
    nbrs, mask = jax.jit(jax.vmap(E.grid_neighbours))(jnp.array([[1, 1, 3], [0, 0, 5]]))
    single = E.grid_neighbours(jnp.array([0, 0, 5]))
    np.testing.assert_array_equal(nbrs[1], single[0])
    np.testing.assert_array_equal(mask[1], single[1])
    assert int(mask[1].sum()) == 2
    p = jnp.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    traced_n = jax.jit(E.round_to_grid)(p, jnp.int32(7))
    np.testing.assert_array_equal(traced_n, E.round_to_grid(p, 7))


def test_grid_neighbours_mask_negative_moves():
    nbrs, mask = E.grid_neighbours(jnp.array([0, 2, 3, 0]))
    assert nbrs.shape == (12, 4)
    valid = np.asarray(nbrs)[np.asarray(mask)]
    assert (valid >= 0).all() and (valid.sum(1) == 5).all()
    assert len({tuple(r) for r in valid}) == 2 * 3  # 2 nonzero sources x 3 destinations
    assert (np.asarray(nbrs)[~np.asarray(mask)].min(1) < 0).all()


@pytest.mark.parametrize("n,k", [(1, 2), (3, 3), (5, 3), (6, 4), (4, 5)])
def test_round_to_grid_is_closest_grid_point(n, k):
    pts = grid(n, k).astype(np.float64)
    p = np.random.default_rng(n * 10 + k).dirichlet(np.ones(k), size=200)
    r = np.asarray(jax.vmap(lambda q: E.round_to_grid(q, n))(jnp.asarray(p, jnp.float32)))
    assert (r.sum(1) == n).all() and (r >= 0).all()
    for q, m in zip(p * n, r):
        for order in (1, 2):
            best = np.linalg.norm(pts - q, ord=order, axis=1).min()
            assert np.linalg.norm(m - q, ord=order) <= best + 1e-4


@pytest.mark.parametrize("n,k", [(1, 3), (5, 3), (6, 5), (8, 4)])
def test_round_to_grid_fixes_grid_points(n, k):
    pts = grid(n, k)
    out = jax.jit(jax.vmap(lambda q: E.round_to_grid(q, n)))(jnp.asarray(pts / n, jnp.float32))
    np.testing.assert_array_equal(np.asarray(out), pts)


def test_round_to_grid_rule_and_scale_invariance():
    np.testing.assert_array_equal(E.round_to_grid(jnp.array([0.2, 0.3, 0.5]), 5), [1, 2, 2])
    # deficit 2, tied fractional parts: lower index first
    np.testing.assert_array_equal(E.round_to_grid(jnp.ones(3) / 3, 5), [2, 2, 1])
    np.testing.assert_array_equal(E.round_to_grid(jnp.array([1.0, 1.5, 2.5]), 5), [1, 2, 2])


def test_round_to_grid_bad_input():
    with pytest.raises(JnasError, match="^p:"):
        E.round_to_grid(jnp.array([0.5, -0.1, 0.6]), 4)
    with pytest.raises(JnasError, match="^p:"):
        E.round_to_grid(jnp.zeros(3), 4)
    for bad_n in (-1, 2.5):
        with pytest.raises(JnasError, match="^n:"):
            E.round_to_grid(jnp.ones(3) / 3, bad_n)


# ----- ANASOD: counts and decoding -----------------------------------------------------


def test_counts_nb201():
    s = get_space("nb201")
    a = nb201(3, 1, 2, 4, 0, 1)  # ops: none, skip, conv1x1, conv3x3, avg_pool
    np.testing.assert_array_equal(E.counts(a, s), [1, 2, 1, 1, 1])
    np.testing.assert_allclose(E.distribution(a, s), np.array([1, 2, 1, 1, 1]) / 6)
    assert E.n_slots(s) == 6


@pytest.mark.parametrize("name", ["nb201", "darts", "nbgraph", "nbgraph-proteins"])
def test_decode_counts_reproduces_exact_multiset(name):
    s = space_or_skip(name)
    c = E.counts(row(batch(s, 1), 0), s)
    is_valid = jax.jit(s.is_valid)
    outs = [E.decode(kk, c, s) for kk in jax.random.split(jax.random.key(1), 8)]
    for out in outs:
        np.testing.assert_array_equal(E.counts(out, s), c)
        assert bool(is_valid(out))
    # the same multiset in different slot orders (a random permutation, not a fixed one)
    assert len({np.asarray(out).tobytes() for out in outs}) > 1


def test_decode_darts_shared_and_per_cell_counts():
    s = space_or_skip("darts")
    assert E.opdist.ops(s) == s.ops[1:]  # no member holds `none`
    shared = jnp.array([2, 0, 0, 4, 1, 1, 0], jnp.int32)
    a = E.decode(jax.random.key(0), shared, s)
    np.testing.assert_array_equal(E.counts(a, s), np.stack([shared, shared]))
    per_cell = jnp.array([[8, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 8]], jnp.int32)
    np.testing.assert_array_equal(E.counts(E.decode(jax.random.key(1), per_cell, s), s), per_cell)


def test_decode_probabilities_follow_distribution():
    s = get_space("nb201")
    p = jnp.array([0.0, 0.5, 0.0, 0.3, 0.2])
    out = jax.vmap(lambda kk: E.decode(kk, p, s))(jax.random.split(jax.random.key(0), 1000))
    freq = np.bincount(np.asarray(out).ravel(), minlength=5) / out.size
    assert freq[0] == 0 and freq[2] == 0
    np.testing.assert_allclose(freq, p, atol=0.04)


def test_decode_bad_input():
    s = get_space("nb201")
    with pytest.raises(JnasError, match="^counts_or_p:.*summing to 6"):
        E.decode(jax.random.key(0), jnp.array([1, 1, 1, 1, 1]), s)
    with pytest.raises(JnasError, match="^counts_or_p:.*probabilities"):
        E.decode(jax.random.key(0), jnp.array([0.5, -0.5, 1.0, 0.0, 0.0]), s)
    with pytest.raises(JnasError, match=r"^counts_or_p:.*\[5\]"):
        E.decode(jax.random.key(0), jnp.array([1, 1, 4]), s)
    with pytest.raises(JnasError, match="^space:"):
        E.decode(jax.random.key(0), jnp.array([1.0]), space_or_skip("convnet"))


# ----- path encoding ---------------------------------------------------------------------


def test_path_nb201_counts_and_examples():
    s = get_space("nb201")
    assert E.n_path_features(s) == 4 + 16 + 64
    assert not E.path_encoding(s, nb201(0, 0, 0, 0, 0, 0)).any()
    skip = nb201(*[1] * 6)
    # 4 paths (lengths 1, 2, 2, 3); both 2-paths are skip>skip, so 3 distinct features
    assert float(E.path_encoding(s, skip).sum()) == 3
    assert float(E.path_encoding(s, skip, counts=True).sum()) == 4
    a = nb201(3, 1, 2, 4, 0, 1)  # 0->1 conv3, 0->2 skip, 1->2 conv1, 0->3 pool, 1->3 none, 2->3 skip
    names = {f for f, v in zip(E.path_features(s), np.asarray(E.path_encoding(s, a))) if v}
    assert names == {"input>avg_pool_3x3", "input>skip_connect>skip_connect",
                     "input>nor_conv_3x3>nor_conv_1x1>skip_connect"}


def test_path_truncation_keeps_shortest_paths():
    s = get_space("nb201")
    a = nb201(3, 1, 2, 4, 0, 1)
    full = E.path_encoding(s, a)
    np.testing.assert_array_equal(E.path_encoding(s, a, k=20), full[:20])
    lengths = [f.count(">") for f in E.path_features(s)]
    assert lengths == sorted(lengths)
    assert len(E.path_features(s, k=4)) == 4
    for bad in (0, 85, 2.5, True):
        with pytest.raises(JnasError, match="^k:"):
            E.path_encoding(s, a, k=bad)


def test_path_nb101():
    s = space_or_skip("nb101")
    assert E.n_path_features(s) == sum(3**k for k in range(6)) == 364
    adj = np.zeros((7, 7), np.uint8)
    adj[0, 1] = adj[1, 2] = adj[2, 6] = adj[0, 6] = 1
    ops = np.array([3, 0, 2, 1, 1, 1, 4], np.int8)  # input, conv3x3, maxpool, (dead...), output
    v = np.asarray(E.path_encoding(s, (jnp.asarray(adj), jnp.asarray(ops))))
    names = {f for f, x in zip(E.path_features(s), v) if x}
    assert names == {"input", "input>conv3x3-bn-relu>maxpool3x3"}


def test_path_nbgraph_follows_links_to_leaves():
    s = space_or_skip("nbgraph")
    a = s.from_string("link=0,0,1,1;ops=gcn,gin,sage,fc")
    names = {f for f, x in zip(E.path_features(s), np.asarray(E.path_encoding(s, a))) if x}
    link, ops = np.asarray(a[:4]), [s.ops[i] for i in np.asarray(a[4:])]
    expected = set()
    for v in range(4):
        if v + 1 in link:
            continue  # not a leaf
        chain, u = [], v
        while True:
            chain.append(ops[u])
            if link[u] == 0:
                break
            u = link[u] - 1
        expected.add(">".join(["input", *chain[::-1]]))
    assert names == expected


def test_path_unsupported_space():
    with pytest.raises(JnasError, match="^space:.*path"):
        E.path_encoding(space_or_skip("convnet"), space_or_skip("convnet").template())


# ----- jit / vmap agree with single calls ------------------------------------------------


def _encoders(name):
    fams = {"onehot": lambda s, a: E.adjacency_onehot(s, a), "graph": lambda s, a: E.graph_tensors(s, a)}
    if name.split("-")[0] in ("nb201", "nb101", "darts", "nbgraph"):
        fams["path"] = lambda s, a: E.path_encoding(s, a)
    if name.split("-")[0] in ("nb201", "darts", "nbgraph"):
        fams["counts"] = lambda s, a: E.counts(a, s)
    return fams


@pytest.mark.parametrize("name", ALL_SPACES)
def test_jit_vmap_match_single_calls(name):
    s = space_or_skip(name)
    archs = batch(s, 3)
    for label, f in _encoders(name).items():
        batched = jax.jit(jax.vmap(lambda a, f=f: f(s, a)))(archs)
        for i in range(3):
            single = f(s, row(archs, i))
            for b, o in zip(jax.tree.leaves(batched), jax.tree.leaves(single)):
                np.testing.assert_array_equal(np.asarray(b)[i], np.asarray(o), err_msg=f"{name} {label}")


@pytest.mark.parametrize("name", ALL_SPACES)
def test_onehot_shape_and_names(name):
    s = space_or_skip(name)
    v = E.adjacency_onehot(s, row(batch(s, 1), 0))
    assert v.dtype == jnp.float32 and v.shape == (len(E.onehot_features(s)),)
    assert set(np.unique(np.asarray(v))) <= {0.0, 1.0}


def test_onehot_nb201_is_op_per_edge():
    v = np.asarray(E.adjacency_onehot(get_space("nb201"), nb201(3, 1, 2, 4, 0, 1)))
    assert v.shape == (30,)
    np.testing.assert_array_equal(v.reshape(6, 5).argmax(1), [3, 1, 2, 4, 0, 1])


# ----- graph tensors ---------------------------------------------------------------------


def _tensor_graph(a, x, mask, labels):
    """networkx graph of the unmasked nodes of (A, X) with their label names."""
    a, x, mask = (np.asarray(t) for t in (a, x, mask))
    g = nx.DiGraph()
    for v in np.flatnonzero(mask):
        assert x[v].sum() == 1
        g.add_node(int(v), op=labels[int(x[v].argmax())])
    for i, j in zip(*np.nonzero(a)):
        assert mask[i] and mask[j]
        g.add_edge(int(i), int(j))
    return g


def _ops_as_nodes(cell_graph, inputs, output, cut=("none",)):
    """Line graph of an ops-on-edges cell: one node per live op edge, plus inputs and output."""
    g = nx.DiGraph()
    for v in inputs:
        g.add_node(("in", v), op=inputs[v])
    g.add_node("out", op="output")
    live = [(u, v, d["op"]) for u, v, d in cell_graph.edges(data=True) if d["op"] not in cut]
    for u, v, op in cell_graph.edges(data="op"):
        g.add_node((u, v), op=op)
    for u, v, _ in live:
        if u in inputs:
            g.add_edge(("in", u), (u, v))
        if v == output or output is None:
            g.add_edge((u, v), "out")
        for u2, v2, _ in live:
            if u2 == v:
                g.add_edge((u, v), (u2, v2))
    return g


def _same(g1, g2):
    return nx.is_isomorphic(g1, g2, node_match=lambda p, q: p["op"] == q["op"])


@pytest.mark.parametrize("name", ALL_SPACES)
def test_graph_shapes(name):
    s = space_or_skip(name)
    a, x, m = E.graph_tensors(name, row(batch(s, 1), 0))
    n, f = E.n_nodes(s), len(E.node_labels(s))
    lead = (2,) if name == "darts" else ()
    assert a.shape == lead + (n, n) and x.shape == lead + (n, f) and m.shape == lead + (n,)
    assert a.dtype == x.dtype == jnp.float32 and m.dtype == jnp.bool_
    assert not np.asarray(jnp.tril(a)).any()  # every space numbers nodes topologically


def test_graph_nb201_matches_cell():
    s = get_space("nb201")
    labels = E.node_labels(s)
    for arch in [nb201(3, 1, 2, 4, 0, 1), nb201(0, 0, 0, 0, 0, 0), nb201(*[1] * 6), *batch(s, 5)]:
        a, x, m = E.graph_tensors(s, arch)
        assert bool(m.all()) and a.shape == (8, 8)
        ref = _ops_as_nodes(s.to_networkx(arch), {0: "input"}, 3)
        assert _same(_tensor_graph(a, x, m, labels), ref)
        # node 1 + e is edge e's op; `none` nodes stay but lose every edge
        np.testing.assert_array_equal(np.asarray(x)[1:7].argmax(1) - 1, np.asarray(arch))
        dead = np.asarray(arch) == 0
        assert not np.asarray(a)[1:7][dead].any() and not np.asarray(a)[:, 1:7][:, dead].any()
    a, _, _ = E.graph_tensors(s, nb201(*[1] * 6))
    # 0->1, 0->2, 0->3 leave the input; 3 op edges reach the output; 4 op-to-op links
    assert float(a[0].sum()) == 3 and float(a[:, 7].sum()) == 3 and float(a[1:7, 1:7].sum()) == 4


def test_graph_nb101_matches_pruned_cell():
    s = space_or_skip("nb101")
    for i in range(6):
        arch = row(batch(s, 6), i)
        a, x, m = E.graph_tensors(s, arch)
        ref = s.to_networkx(arch, pruned=True)
        assert _same(_tensor_graph(a, x, m, E.node_labels(s)), ref)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(s.prune(arch)[0], np.float32))


def test_graph_darts_matches_cells():
    s = space_or_skip("darts")
    labels = E.node_labels(s)
    for arch in batch(s, 3):
        a, x, m = E.graph_tensors(s, arch)
        cells = np.asarray(arch)
        for c in range(2):
            cell = nx.DiGraph()
            for e in range(8):
                cell.add_edge(int(cells[c, e, 0]), e // 2 + 2, op=s.ops[cells[c, e, 1]])
            ref = _ops_as_nodes(cell, {0: "c_{k-2}", 1: "c_{k-1}"}, None)
            assert _same(_tensor_graph(a[c], x[c], m[c], labels), ref)
            assert float(a[c, :, 10].sum()) == 8  # every edge op feeds the concat


def test_graph_nbgraph_is_the_cell():
    s = space_or_skip("nbgraph")
    for arch in batch(s, 5):
        a, x, m = E.graph_tensors(s, arch)
        g = s.to_networkx(arch)
        np.testing.assert_array_equal(np.asarray(a), nx.to_numpy_array(g, nodelist=range(6)))
        assert _same(_tensor_graph(a, x, m, E.node_labels(s)), g)


@pytest.mark.parametrize("name", ["convnet", "convnet-small"])
def test_graph_convnet_is_a_chain(name):
    s = space_or_skip(name)
    for arch in batch(s, 5):
        a, x, m = E.graph_tensors(s, arch)
        d = int(arch[0])
        assert int(m.sum()) == d + 2 and float(a.sum()) == d + 1
        g = _tensor_graph(a, x, m, E.node_labels(s))
        assert nx.is_directed_acyclic_graph(g) and max(dict(g.out_degree()).values()) == 1
        assert [g.nodes[v]["op"] for v in nx.topological_sort(g)] == (
            ["input"] + [s.ops[int(arch[1 + 2 * i]) * len(s.kernels) + int(arch[2 + 2 * i])] for i in range(d)]
            + ["output"]
        )


def test_graph_unknown_space():
    with pytest.raises(JnasError, match="unknown space 'nb999'"):
        E.graph_tensors("nb999", nb201(0, 0, 0, 0, 0, 0))
    with pytest.raises(JnasError, match="^space:"):
        E.graph_tensors(object(), nb201(0, 0, 0, 0, 0, 0))


def test_batched_arch_is_rejected_with_hint():
    batch_of_two = jnp.zeros((2, 6), jnp.int8)
    for f in (E.adjacency_onehot, E.path_encoding, E.graph_tensors):
        with pytest.raises(JnasError, match=r"^arch: got shape \[2, 6\].*jax.vmap"):
            f("nb201", batch_of_two)
    with pytest.raises(JnasError, match="^arch:"):
        E.counts(batch_of_two, "nb201")


# ----- encodings read the space's own description ------------------------------------------


def test_space_or_skip_fails_for_a_space_that_disappeared():
    with pytest.raises(pytest.fail.Exception, match="no longer registered"):
        space_or_skip("nb999")


@pytest.mark.parametrize("name", ["nbgraph", "nbgraph-proteins"])
def test_nbgraph_onehot_is_the_code_lanas_regresses_on(name):
    """One one-hot code for NAS-Bench-Graph: links over the i + 1 inputs node i can read (10), then ops."""
    from jnas.strategies.features import feature_map

    s = space_or_skip(name)
    archs = batch(s)
    got = np.asarray(jax.jit(jax.vmap(lambda a: E.adjacency_onehot(s, a)))(archs))
    want = np.asarray(jax.jit(jax.vmap(feature_map(s).encode))(archs), np.float32)
    np.testing.assert_array_equal(got, want)
    assert got.shape[1] == 10 + 4 * len(s.ops) == len(E.onehot_features(s))
    assert E.onehot_features(s)[:3] == ("node0.input=input", "node1.input=input", "node1.input=node0")


def test_reduced_nb201_encodings_follow_the_full_space():
    """nb201-3 gets every encoding from its description; each agrees with NB201's on the same cell."""
    s, full = space_or_skip("nb201-3"), get_space("nb201")
    archs = batch(s)
    assert E.n_path_features(s) == 2 + 4 + 8  # paths of 1-3 ops over skip_connect, nor_conv_3x3
    assert E.onehot_features(s)[:3] == ("edge0->1=none", "edge0->1=skip_connect", "edge0->1=nor_conv_3x3")
    assert E.opdist.ops(s) == s.ops and E.n_slots(s) == 6
    for i in range(archs.shape[0]):
        a = archs[i]
        f = s.to_nb201(a)
        names_s = {n for n, v in zip(E.path_features(s), np.asarray(E.path_encoding(s, a))) if v}
        names_f = {n for n, v in zip(E.path_features(full), np.asarray(E.path_encoding(full, f))) if v}
        assert names_s == names_f
        ga, gf = E.graph_tensors(s, a), E.graph_tensors(full, f)
        np.testing.assert_array_equal(ga[0], gf[0])  # same wiring, same cuts
        lab_s = np.array(E.node_labels(s))[np.asarray(ga[1]).argmax(1)]
        lab_f = np.array(E.node_labels(full))[np.asarray(gf[1]).argmax(1)]
        np.testing.assert_array_equal(lab_s, lab_f)
        np.testing.assert_array_equal(np.asarray(E.counts(a, s)), np.asarray(E.counts(f, full))[list(s.nb201_ids)])


@pytest.mark.parametrize("name", names())
def test_every_registered_space_encodes_or_names_what_it_lacks(name):
    s = space_or_skip(name)
    arch = s.sample(jax.random.key(0))
    calls = {
        "onehot": lambda: E.adjacency_onehot(s, arch),
        "path": lambda: E.path_encoding(s, arch),
        "graph": lambda: E.graph_tensors(s, arch),
        "counts": lambda: E.counts(arch, s),
    }
    for label, call in calls.items():
        try:
            out = call()
        except JnasError as e:
            msg = str(e)
            assert msg.startswith(f"space: got {name!r}, which does not define") and "\n" not in msg, (label, msg)
            continue
        assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(out)), label


@pytest.mark.parametrize("name", ["nb201", "nbgraph", "nb101", "darts"])
def test_path_multihot_is_the_path_encoding(name):
    """The sparse rows stand for exactly the dense encoding: binary and counts, whole and truncated."""
    s = space_or_skip(name)
    archs = jax.vmap(s.sample)(jax.random.split(jax.random.key(1), 64))
    for counts, k in ((False, None), (True, None), (False, 30), (True, 30)):
        dense = jax.vmap(functools.partial(E.path_encoding, s, k=k, counts=counts))(archs)
        hot = jax.vmap(functools.partial(E.path_multihot, s, k=k, counts=counts))(archs)
        assert hot.shape == dense.shape
        np.testing.assert_array_equal(np.asarray(hot.dense()), np.asarray(dense))
        w = jax.random.normal(jax.random.key(2), (dense.shape[1], 3))
        np.testing.assert_allclose(hot.matmul(w), dense @ w, rtol=1e-5, atol=1e-5)
    assert float(dense.sum()) > 0  # the check saw paths, not only empty cells


def test_multihot_padding_and_errors():
    hot = E.MultiHot(jnp.array([[0, 2, 2, 5], [-1, 1, 4, 3]]), 4)  # 5, 4 and -1 are padding
    np.testing.assert_array_equal(hot.dense(), [[1, 0, 2, 0], [0, 1, 0, 1]])
    w = jnp.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(hot.matmul(w), hot.dense() @ w)
    np.testing.assert_array_equal(hot.keep_rows(jnp.array([True, False])).dense()[1], 0)
    with pytest.raises(JnasError, match="^w:"):
        hot.matmul(jnp.zeros((5, 2)))
