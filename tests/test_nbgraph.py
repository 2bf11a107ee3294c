"""NAS-Bench-Graph space and benchmarks, checked against the nas_bench_graph package."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.benchmarks.nbgraph import DATASETS, load, read_table
from jnas.errors import JnasError
from jnas.spaces import get_space
from jnas.spaces.nbgraph import ALL_OPS, NBGRAPH, NBGRAPH_PROTEINS, PROTEINS_OPS, raw_links

nbg = pytest.importorskip("nas_bench_graph")


@functools.cache
def batched(space, method: str):
    """``jax.jit(jax.vmap(space.method))``, compiled once per test session."""
    return jax.jit(jax.vmap(getattr(space, method)))


def package_key(link, ops) -> int:
    return nbg.Arch(list(map(int, link)), list(ops)).valid_hash()


def raw_cells(space) -> np.ndarray:
    """``int8[R, 8]``: every raw cell of ``space`` (link, local op ids)."""
    n = len(space.ops)
    ops = np.array(list(itertools.product(range(n), repeat=4)), np.int8)
    links = np.repeat(raw_links(), len(ops), axis=0)
    return np.concatenate([links, np.tile(ops, (24, 1))], axis=1)


def check_keys(space, cells):
    ours = np.asarray(batched(space, "key")(jnp.asarray(cells)))
    theirs = [package_key(c[:4], [space.ops[o] for o in c[4:]]) for c in cells.tolist()]
    mismatch = np.flatnonzero(ours != np.array(theirs))
    assert mismatch.size == 0, f"{mismatch.size} mismatches, first raw cell {cells[mismatch[0]].tolist()}"


# Exhaustive and still quick (~2 s), so it runs in the default tier.
@pytest.mark.parametrize("space", [NBGRAPH, NBGRAPH_PROTEINS], ids=lambda s: s.name)
def test_keys_match_package_on_all_raw_cells(space):
    cells = raw_cells(space)
    assert len(cells) == 24 * len(space.ops) ** 4  # 157,464 / 15,000
    check_keys(space, cells)


def test_space_is_the_benchmark_key_set():
    assert NBGRAPH.size == 26206 and NBGRAPH_PROTEINS.size == 2021
    assert set(NBGRAPH.keys.tolist()) == set(read_table("cora"))
    assert set(NBGRAPH_PROTEINS.keys.tolist()) == set(read_table("proteins"))
    assert np.all(np.diff(NBGRAPH.keys) > 0)
    # every raw cell canonicalises to a member, except the all-skip cell
    raw_keys = set(NBGRAPH.tables.raw_key.tolist())
    assert len(raw_keys) == 26207 and raw_keys - set(NBGRAPH.keys.tolist()) == {88888}
    assert get_space("nbgraph") is NBGRAPH and get_space("nbgraph-proteins") is NBGRAPH_PROTEINS


def test_known_example():
    a = NBGRAPH.from_raw([0, 1, 1, 2], ["gcn", "gin", "cheb", "fc"])
    assert int(NBGRAPH.key(a)) == 61237 == package_key([0, 1, 1, 2], ["gcn", "gin", "cheb", "fc"])
    assert NBGRAPH.to_string(a) == "link=0,1,1,2;ops=gcn,gin,cheb,fc"
    for link, ops in (([0, 1, 2, 1], ["gcn", "gin", "fc", "cheb"]), ([0, 1, 1, 3], ["gcn", "cheb", "gin", "fc"])):
        assert package_key(link, ops) == 61237
        assert np.array_equal(NBGRAPH.from_raw(link, ops), a)
        raw = jnp.asarray(link + [ALL_OPS.index(o) for o in ops], jnp.int8)
        assert int(NBGRAPH.key(raw)) == 61237
        assert np.array_equal(NBGRAPH.canonicalize(raw), a)
        assert not NBGRAPH.is_valid(raw)  # a raw, non-canonical listing is not a member
    assert int(NBGRAPH.index(a)) == int(np.searchsorted(NBGRAPH.keys, 61237))


@pytest.mark.parametrize("space", [NBGRAPH, NBGRAPH_PROTEINS], ids=lambda s: s.name)
def test_enumeration_and_index(space):
    cells = space.enumerate()
    assert cells.shape == (space.size, 8) and cells.dtype == jnp.int8
    rows = batched(space, "index")(cells)
    assert np.array_equal(rows, np.arange(space.size))
    assert np.array_equal(batched(space, "canonicalize")(cells), cells)
    assert np.array_equal(batched(space, "key")(cells), space.keys)
    assert np.array_equal(space.from_index(jnp.arange(5)), cells[:5])
    skip = len(space.ops) - 1
    invalid = jnp.asarray([[0, 1, 2, 3] + [skip] * 4, [0, 2, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, len(space.ops)]])
    assert not batched(space, "is_valid")(invalid).any()
    assert np.array_equal(batched(space, "key")(invalid), [88888, -1, -1])


@pytest.mark.parametrize("space", [NBGRAPH, NBGRAPH_PROTEINS], ids=lambda s: s.name)
def test_sample_mutate_crossover_are_members(space):
    archs = batched(space, "sample")(jax.random.split(jax.random.key(0), 256))
    assert batched(space, "is_valid")(archs).all()
    rows = batched(space, "index")(archs)
    assert len(np.unique(rows)) > 200  # uniform over 2k/26k rows: few collisions
    keys = jax.random.split(jax.random.key(1), 256)
    mutants = batched(space, "mutate")(keys, archs)
    assert batched(space, "is_valid")(mutants).all()
    assert (batched(space, "index")(mutants) != rows).all()
    children = batched(space, "crossover")(keys, archs, archs[::-1])
    assert batched(space, "is_valid")(children).all()


def one_edit_keys(space, link, ops) -> set[int]:
    """Package keys of every cell one raw edit away from ``(link, ops)``, minus itself and all-skip."""
    out = set()
    for i in range(1, 4):
        for v in range(i + 1):
            if v != link[i]:
                out.add(package_key(link[:i] + [v] + link[i + 1 :], ops))
    for i in range(4):
        for o in space.ops:
            if o != ops[i]:
                out.add(package_key(link, ops[:i] + [o] + ops[i + 1 :]))
    return out - {88888, package_key(link, ops)}


@pytest.mark.parametrize("space", [NBGRAPH, NBGRAPH_PROTEINS], ids=lambda s: s.name)
def test_neighbours_are_the_canonical_single_edits(space):
    n_edits = 6 + 4 * (len(space.ops) - 1)
    rows = np.random.default_rng(1).choice(space.size, 40, replace=False)
    archs = space.from_index(jnp.asarray(rows))
    nbrs, mask = batched(space, "neighbours")(archs)
    assert nbrs.shape == (40, n_edits, 8) and mask.shape == (40, n_edits)
    flat = nbrs.reshape(-1, 8)
    keys = np.asarray(batched(space, "key")(flat)).reshape(40, n_edits)
    valid = np.asarray(batched(space, "is_valid")(flat)).reshape(40, n_edits)
    mask = np.asarray(mask)
    assert valid[mask].all()
    for arch, k, m in zip(np.asarray(archs).tolist(), keys, mask):
        got = k[m].tolist()
        assert len(set(got)) == len(got)  # distinct
        assert set(got) == one_edit_keys(space, arch[:4], [space.ops[o] for o in arch[4:]])


@pytest.mark.parametrize("space", [NBGRAPH, NBGRAPH_PROTEINS], ids=lambda s: s.name)
def test_strings_round_trip(space):
    cells = np.asarray(space.enumerate())
    for row in np.random.default_rng(2).choice(space.size, 200, replace=False):
        text = space.to_string(cells[row])
        assert np.array_equal(space.from_string(text), cells[row])
    spaced = space.from_string(" link=0, 0, 0, 0; ops=skip,fc,skip,gcn ")
    assert np.array_equal(spaced, space.from_raw([0] * 4, ["gcn", "fc", "skip", "skip"]))


@pytest.mark.parametrize(
    "text, arg",
    [
        ("link=0,1,1,2", "arch"),
        ("link=0,2,1,2;ops=gcn,gin,cheb,fc", "link"),
        ("link=1,0,0,0;ops=gcn,gin,cheb,fc", "link"),
        ("link=0,a,1,2;ops=gcn,gin,cheb,fc", "link"),
        ("link=0,1,1,2;ops=gcn,gin,cheb", "ops"),
        ("link=0,1,1,2;ops=gcn,gin,cheb,mlp", "ops"),
        ("link=0,1,2,3;ops=skip,skip,skip,skip", "arch"),
    ],
)
def test_bad_strings_raise(text, arg):
    with pytest.raises(JnasError, match=f"^{arg}: "):
        NBGRAPH.from_string(text)


def test_proteins_op_set():
    assert NBGRAPH_PROTEINS.ops == PROTEINS_OPS
    with pytest.raises(JnasError, match="^ops: "):
        NBGRAPH_PROTEINS.from_string("link=0,1,1,2;ops=gcn,gin,cheb,fc")
    a = NBGRAPH_PROTEINS.from_string("link=0,0,0,0;ops=sage,gcn,fc,arma")
    assert NBGRAPH_PROTEINS.to_string(a) == "link=0,0,0,0;ops=gcn,sage,arma,fc"
    assert int(NBGRAPH_PROTEINS.key(a)) == package_key([0, 0, 0, 0], ["sage", "gcn", "fc", "arma"]) == 1457


def test_to_networkx():
    g = NBGRAPH.to_networkx(NBGRAPH.from_raw([0, 1, 1, 2], ["gcn", "gin", "cheb", "fc"]))
    assert [g.nodes[n]["op"] for n in range(6)] == ["input", "gcn", "gin", "cheb", "fc", "output"]
    assert sorted(g.edges) == [(0, 1), (1, 2), (1, 3), (2, 4), (3, 5), (4, 5)]


@pytest.fixture(scope="module")
def cora():
    return get_benchmark("nbgraph/cora")


def test_benchmark_values_match_package(cora):
    raw = read_table("cora")
    assert cora.name == "nbgraph/cora" and cora.space is NBGRAPH and cora.n_rows == 26206
    for k in (61237, 0, 1111, 88887, int(NBGRAPH.keys[12345])):
        row = int(np.searchsorted(NBGRAPH.keys, k))
        assert cora.official([row])[0] == k
        r = raw[k]
        assert cora.column("valid_acc")[row] == pytest.approx(r["valid_perf"] * 100)
        assert cora.column("test_acc")[row] == pytest.approx(r["perf"] * 100)
        assert cora.column("latency")[row] == pytest.approx(r["latency"])
        assert cora.column("params")[row] == pytest.approx(r["para"])
    assert cora.metrics[("valid_acc", None)].optimum == pytest.approx(81.93, abs=0.01)
    assert not cora.metrics[("latency", None)].higher_is_better
    assert cora.search_metric == ("valid_acc", None) and cora.test_metric == ("test_acc", None)


def test_query_is_jittable_and_vmappable(cora):
    archs = batched(NBGRAPH, "sample")(jax.random.split(jax.random.key(3), 64))
    want = cora.column("valid_acc")[np.asarray(batched(NBGRAPH, "index")(archs))]
    query = jax.jit(cora.query, static_argnames=("metric", "fidelity", "dtype"))
    assert np.allclose(query(archs), want, rtol=1e-6)
    per_arch = jax.jit(jax.vmap(lambda a: cora.query(a[None], "test_acc")[0]))(archs)
    assert np.allclose(per_arch, query(archs, "test_acc"))
    raw = jnp.asarray([[0, 1, 2, 1, 1, 2, 7, 3]], jnp.int8)  # non-canonical listing of key 61237
    assert np.isnan(query(raw)).all()
    row = int(NBGRAPH.keys.searchsorted(61237))
    assert query(batched(NBGRAPH, "canonicalize")(raw))[0] == pytest.approx(cora.column()[row], rel=1e-6)


def test_proteins_benchmark():
    b = load("proteins")
    assert b.space is NBGRAPH_PROTEINS and b.n_rows == 2021
    assert b.metrics[("valid_acc", None)].optimum == pytest.approx(85.33, abs=0.01)
    with pytest.raises(JnasError, match="^dataset: "):
        load("mnist")


@pytest.mark.slow
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_value_matches_package(dataset):
    b, raw = load(dataset), read_table(dataset)
    keys = b.official(np.arange(b.n_rows))
    fields = {"valid_acc": ("valid_perf", 100), "test_acc": ("perf", 100)}
    fields.update(latency=("latency", 1), params=("para", 1))
    for name, (field, scale) in fields.items():
        want = np.array([raw[int(k)][field] for k in keys], np.float64) * scale
        assert np.array_equal(b.column(name), want)
