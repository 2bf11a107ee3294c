"""NB101 space: pruning and hashing against real NAS-Bench-101 cells, validity rules."""

from __future__ import annotations

import functools
import itertools
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jnas.errors import JnasError
from jnas.spaces.nb101 import INPUT, NB101, OUTPUT, PRUNED, graph_hash, prune

# conftest.py points JNAS_DATA_DIR at shared/data; a missing table fails the test (no skip)
SUBSET = Path(os.environ["JNAS_DATA_DIR"]) / "nb101_naslib_subset500.csv.gz"


@functools.cache
def subset():
    import pandas as pd

    # 0/1 strings must stay strings: read as numbers they lose leading zeros
    return pd.read_csv(SUBSET, dtype={"raw_adjacency_7x7": str, "adjacency": str})


_hash_batch = jax.jit(jax.vmap(graph_hash))


@functools.cache
def raw_batch():
    """All 500 raw cells stacked as one batched architecture."""
    cells = [NB101.from_spec(r.raw_adjacency_7x7, r.raw_ops) for r in subset().itertuples()]
    return jax.tree.map(lambda *x: jnp.stack(x), *cells)


def spec_graph(matrix: str, ops: str) -> nx.DiGraph:
    """The pruned cell as published in the data, independent of jnas' pruning."""
    names = ops.split(",")
    m = np.array([int(c) for c in matrix]).reshape(len(names), len(names))
    g = nx.DiGraph()
    g.add_nodes_from((v, {"op": o}) for v, o in enumerate(names))
    g.add_edges_from(zip(*np.nonzero(m)))
    return g


def iso(g, h) -> bool:
    return nx.is_isomorphic(g, h, node_match=lambda x, y: x["op"] == y["op"])


def classes(graphs):
    """Isomorphism class id of each graph (exact, with networkx)."""
    reps, out = [], []
    for g in graphs:
        key = (g.number_of_nodes(), g.number_of_edges(), tuple(sorted(d["op"] for _, d in g.nodes(data=True))))
        for cid, (rkey, rg) in enumerate(reps):
            if rkey == key and iso(g, rg):
                out.append(cid)
                break
        else:
            reps.append((key, g))
            out.append(len(reps) - 1)
    return np.array(out)


# ----- real data ------------------------------------------------------------------

def test_subset_cells_are_valid():
    assert np.all(jax.jit(jax.vmap(NB101.is_valid))(raw_batch()))


def test_pruning_reproduces_published_cells():
    adj, ops = (np.asarray(x).astype(int) for x in jax.jit(jax.vmap(prune))(raw_batch()))
    for row, a, o in zip(subset().itertuples(), adj, ops):
        kept = np.flatnonzero(o != PRUNED)
        assert len(kept) == row.num_vertices
        assert "".join(map(str, a[np.ix_(kept, kept)].ravel())) == row.adjacency
        assert ",".join(NB101.labels[k] for k in o[kept]) == row.ops
        assert a.sum() == row.num_edges
        # pruned vertices keep no edges at all
        dead = o == PRUNED
        assert not a[dead].any() and not a[:, dead].any()


def test_hash_collides_exactly_on_isomorphic_cells():
    df = subset()
    hashes = np.asarray(_hash_batch(raw_batch()))
    cls = classes([spec_graph(m, o) for m, o in zip(df.adjacency, df.ops)])
    by_class = {}
    for c, h in zip(cls, map(tuple, hashes)):
        by_class.setdefault(c, set()).add(h)
    assert all(len(hs) == 1 for hs in by_class.values()), "isomorphic cells must share one hash"
    distinct = {next(iter(hs)) for hs in by_class.values()}
    assert len(distinct) == len(by_class), "non-isomorphic cells must get different hashes"
    # the data holds genuinely isomorphic-but-differently-written cells, so the test has teeth
    assert len(by_class) < len(set(zip(df.adjacency, df.ops)))


def test_is_isomorphic_agrees_with_hash_on_data_pairs():
    df = subset().iloc[:40]
    cells = [NB101.from_spec(r.raw_adjacency_7x7, r.raw_ops) for r in df.itertuples()]
    hashes = [tuple(h) for h in np.asarray(_hash_batch(raw_batch()))[:40]]
    for i, j in itertools.combinations(range(len(cells)), 2):
        assert NB101.is_isomorphic(cells[i], cells[j]) == (hashes[i] == hashes[j])


# ----- hashing under relabelling ---------------------------------------------------

def relabel(arch, rng):
    """The same raw cell with inner vertices renumbered by a random topological order."""
    adj, ops = (np.asarray(x) for x in arch)
    g = nx.DiGraph(adj)
    order, ready = [], {v for v in range(1, 6) if not any(adj[u, v] for u in range(1, 6))}
    indeg = {v: int(sum(adj[u, v] for u in range(1, 6))) for v in range(1, 6)}
    while ready:
        v = rng.choice(sorted(ready))
        ready.remove(v)
        order.append(v)
        for w in g.successors(v):
            if 1 <= w <= 5:
                indeg[w] -= 1
                if indeg[w] == 0:
                    ready.add(w)
    perm = [0, *order, 6]  # new vertex k is old vertex perm[k]
    return jnp.asarray(adj[np.ix_(perm, perm)]), jnp.asarray(ops[perm])


_hash = jax.jit(graph_hash)
_valid = jax.jit(NB101.is_valid)
_sample = jax.jit(NB101.sample)
_neighbours = jax.jit(NB101.neighbours)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_hash_is_invariant_under_relabelling(seed):
    a = _sample(jax.random.key(seed))
    b = relabel(a, np.random.default_rng(seed))
    assert bool(_valid(b))
    assert NB101.is_isomorphic(a, b)
    np.testing.assert_array_equal(_hash(a), _hash(b))
    np.testing.assert_array_equal(_hash(a), _hash(prune(a)))  # pruning keeps the cell


# ----- neighbourhood against a host-side brute force ------------------------------------

def host_valid(adj, ops) -> bool:
    """NB101's rules, written with networkx: path input->output, <= 9 edges after pruning."""
    g = nx.DiGraph(np.asarray(adj))
    if not nx.has_path(g, 0, 6):
        return False
    live = (nx.descendants(g, 0) | {0}) & (nx.ancestors(g, 6) | {6})
    return g.subgraph(live).number_of_edges() <= 9 and all(0 <= ops[v] <= 2 for v in live - {0, 6})


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_neighbours_are_all_new_cells_one_edit_away(seed):
    a = _sample(jax.random.key(seed))
    adj, ops = (np.asarray(x) for x in a)
    edits = []
    for i, j in zip(*np.triu_indices(7, 1)):
        b = adj.copy()
        b[i, j] ^= 1
        edits.append((b, ops))
    for v in range(1, 6):
        for t in range(3):
            if t != ops[v]:
                o = ops.copy()
                o[v] = t
                edits.append((adj, o))
    new = [e for e in edits if host_valid(*e) and not NB101.is_isomorphic(e, a)]
    want = classes([NB101.to_networkx(e, pruned=True) for e in new])

    nbrs, mask = _neighbours(a)
    got = [jax.tree.map(lambda x, k=k: np.asarray(x[k]), nbrs) for k in np.flatnonzero(np.asarray(mask))]
    assert len(got) == len(set(want.tolist()))  # one neighbour per distinct new cell
    for g in got:
        assert any(NB101.is_isomorphic(g, e) for e in new)
    for g, h in itertools.combinations(got, 2):
        assert not NB101.is_isomorphic(g, h)


# ----- validity rules -------------------------------------------------------------

CHAIN = "adj=0100000/0010000/0001000/0000100/0000010/0000001/0000000;ops=input," + ",".join(
    ["conv3x3-bn-relu"] * 5) + ",output"


def test_validity_rules():
    adj, ops = NB101.from_string(CHAIN)
    assert NB101.is_valid((adj, ops))
    assert not NB101.is_valid((adj.at[1, 2].set(0), ops))  # no input->output path
    assert not NB101.is_valid((adj.at[3, 1].set(1), ops))  # below the diagonal
    assert not NB101.is_valid((adj.at[0, 1].set(2), ops))  # not binary
    assert not NB101.is_valid((adj, ops.at[2].set(3)))  # 'input' inside the cell
    assert not NB101.is_valid((adj, ops.at[0].set(0)))  # vertex 0 must be the input
    assert not NB101.is_valid((adj, ops.at[2].set(PRUNED)))  # sentinel on a live vertex
    full = jnp.triu(jnp.ones((7, 7), jnp.uint8), 1)
    assert not NB101.is_valid((full, ops))  # 21 edges, all live
    # many raw edges are fine when pruning leaves <= 9 (NB101 checks the pruned cell)
    dead_heavy = full.at[:, 6].set(0).at[0, 6].set(1)
    assert int(dead_heavy.sum()) > 9 and NB101.is_valid((dead_heavy, ops))
    pa, po = prune((dead_heavy, ops))
    assert int(pa.sum()) == 1 and list(np.asarray(po)) == [INPUT] + [PRUNED] * 5 + [OUTPUT]
    assert NB101.is_valid((pa, po))  # pruned forms are members too


def test_size_and_ops():
    assert NB101.size == 423_624
    assert NB101.ops == ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
    assert NB101.labels[INPUT] == "input" and NB101.labels[OUTPUT] == "output"
    with pytest.raises(NotImplementedError):
        NB101.enumerate()


def test_spec_round_trip_and_string_format():
    a = NB101.from_string(CHAIN)
    assert NB101.to_string(a) == CHAIN
    m, o = NB101.to_spec(a)
    assert m.shape == (7, 7) and o[0] == "input" and o[-1] == "output"
    small = NB101.from_spec("010001000", "input,maxpool3x3,output")
    assert NB101.to_spec(small)[1] == ["input", "maxpool3x3", "output"]
    assert NB101.to_string(small).endswith("ops=input,maxpool3x3,pruned,pruned,pruned,pruned,output")
    assert bool(NB101.is_valid(small))


@pytest.mark.parametrize("text", [
    CHAIN.replace("adj=0100000", "adj=010000"),  # short row
    CHAIN.replace("conv3x3-bn-relu", "conv7x7", 1),  # unknown op
    CHAIN.replace("ops=input", "ops=output"),  # input not first
    CHAIN.replace("/0000000;", "/1000000;"),  # lower triangle
    CHAIN.replace("adj=", "adjacency="),
    CHAIN + ",output",  # eight ops
])
def test_from_string_rejects(text):
    with pytest.raises(JnasError):
        NB101.from_string(text)


@pytest.mark.parametrize("matrix, ops", [
    ("0100", "input,output,output"),  # wrong length
    ("011001000", "input,conv5x5,output"),  # unknown op
    (np.ones((8, 8)), ["input"] + ["maxpool3x3"] * 6 + ["output"]),  # too many vertices
])
def test_from_spec_rejects(matrix, ops):
    with pytest.raises(JnasError):
        NB101.from_spec(matrix, ops)


def test_networkx_graph_carries_ops():
    g = NB101.to_networkx(NB101.from_string(CHAIN))
    assert isinstance(g, nx.DiGraph) and g.number_of_nodes() == 7 and g.number_of_edges() == 6
    assert g.nodes[0]["op"] == "input" and g.nodes[6]["op"] == "output"
    small = NB101.from_spec("010001000", "input,maxpool3x3,output")
    assert NB101.to_networkx(small, pruned=True).number_of_nodes() == 3
