"""GCN bulk scoring: the folded normalisation, the all-real fast path, blocks and chunks give the reference values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.predictors import GCN, score_in_chunks
from jnas.predictors.gcn import (
    _blocking,
    _compact_sorted,
    _count_keys,
    _count_vectors,
    bulk_scores,
    gcn_scores,
    init_params,
)


def masked_reference(params, A, X, mask):
    """The paper's eqs. 3–4 as written, in float64 NumPy: every layer masks and normalises ``Ã`` itself."""
    A, X, m = (np.asarray(t, np.float64) for t in (A, X, mask))
    v = A.shape[-1]
    a = (A + np.eye(v)) * m[:, :, None] * m[:, None, :]
    deg = a.sum(-1)
    norm = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1.0)), 0.0)
    h = X * m[:, :, None]
    for w in params["gc"]:
        h = np.maximum(norm[:, :, None] * (a @ (h @ np.asarray(w, np.float64))), 0.0)
    pooled = (h * m[:, :, None]).sum(1) / np.maximum(m.sum(1), 1.0)[:, None]
    return pooled @ np.asarray(params["out_w"], np.float64) + float(params["out_b"])


def random_graphs(seed, n, v=7, f=5, all_real=False):
    """Upper-triangular DAGs with one-hot labels; padded nodes carry finite garbage that must be ignored."""
    rng = np.random.default_rng(seed)
    A = np.triu(rng.random((n, v, v)) < 0.5, 1).astype(np.float32)
    X = np.eye(f, dtype=np.float32)[rng.integers(0, f, (n, v))]
    mask = np.ones((n, v), bool) if all_real else rng.random((n, v)) < 0.6
    if not all_real:
        mask[0] = False  # no real node: the score is the output bias
        mask[1] = np.arange(v) == 3  # a single real node
        pad = ~mask
        A = np.where(pad[:, :, None] | pad[:, None, :], rng.normal(size=A.shape), A).astype(np.float32)
        X = np.where(pad[:, :, None], rng.normal(size=X.shape), X).astype(np.float32)
    return A, X, mask


def random_params(seed, f, hidden, layers):
    p = init_params(jax.random.key(seed), f, hidden, layers)
    p["out_b"] = jnp.float32(0.3)
    p["scale"] = jnp.array([1.5, 2.0])
    return p


# (f, hidden, layers): one-hot inputs narrower than the layers, inputs wider than them, a single layer
SHAPES = [(5, 32, 3), (40, 16, 2), (5, 8, 1)]


@pytest.mark.parametrize("f,hidden,layers", SHAPES)
def test_gcn_scores_equal_the_masked_reference_with_padding(f, hidden, layers):
    params = random_params(0, f, hidden, layers)
    A, X, mask = random_graphs(1, 40, f=f)
    got = jax.jit(gcn_scores)(params, A, X, mask)
    want = masked_reference(params, A, X, mask)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    assert float(got[0]) == pytest.approx(0.3)  # all padded


@pytest.mark.parametrize("f,hidden,layers", SHAPES)
def test_all_real_fast_path_equals_the_masked_reference(f, hidden, layers):
    params = random_params(2, f, hidden, layers)
    A, X, mask = random_graphs(3, 40, f=f, all_real=True)
    fast = jax.jit(gcn_scores)(params, A, X, None)
    np.testing.assert_allclose(fast, masked_reference(params, A, X, mask), rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(fast, gcn_scores(params, A, X, mask), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n,block", [(37, 8), (37, None), (64, 16), (5, 8)])
def test_bulk_scores_equal_gcn_scores_for_any_size(n, block):
    params = random_params(4, 5, 16, 3)
    A, X, mask = random_graphs(5, n)
    got = bulk_scores(params, A, X, mask, block=block)
    assert got.shape == (n,)
    np.testing.assert_allclose(got, masked_reference(params, A, X, mask), rtol=2e-5, atol=2e-5)


def test_compact_sorted_puts_real_nodes_first_and_sorts_by_count():
    A, X, mask = random_graphs(11, 50)
    a, x, m, counts, order = _compact_sorted(jnp.asarray(A), jnp.asarray(X), jnp.asarray(mask))
    counts, order, m = np.asarray(counts), np.asarray(order), np.asarray(m)
    assert sorted(order) == list(range(50)) and np.all(np.diff(counts) >= 0)
    np.testing.assert_array_equal(counts, mask[order].sum(1))
    np.testing.assert_array_equal(m, np.arange(7)[None, :] < counts[:, None])  # real nodes first
    for i in (0, 17, 49):  # each graph's real nodes keep their order, with their edges and labels
        real = np.flatnonzero(mask[order[i]])
        k = len(real)
        np.testing.assert_array_equal(np.asarray(a)[i, :k, :k], A[order[i]][np.ix_(real, real)])
        np.testing.assert_array_equal(np.asarray(x)[i, :k], X[order[i]][real])


def test_bulk_scores_by_node_count_under_vmap_equal_each_seed_alone():
    # the sorted path (CPU, several blocks) loops over a vmapped batch; each member must equal its own call
    A, X, mask = random_graphs(12, 45)
    ps = [random_params(s, 5, 16, 3) for s in (13, 14)]
    stacked = jax.tree.map(lambda *t: jnp.stack(t), *ps)
    got = jax.jit(jax.vmap(lambda p: bulk_scores(p, A, X, mask, block=8)))(stacked)
    for i, p in enumerate(ps):
        np.testing.assert_allclose(got[i], masked_reference(p, A, X, mask), rtol=2e-5, atol=2e-5)


def test_blocking_fills_blocks_evenly():
    for n in (1, 7, 291, 292, 293, 4096, 100_000):
        n_blocks, block = _blocking(n, 7 * 256)
        assert 0 <= n_blocks * block - n < n_blocks
        assert block <= 292  # 2 MiB of activations at 7 nodes x 256 features
    assert _blocking(4096, 7 * 256) == (15, 274)
    assert _blocking(100, 7 * 256) == (1, 100)


def test_count_vectors_and_their_keys_match_one_to_one():
    C = _count_vectors(7, 5)
    assert C.shape == (792, 5) and C.min() == 0 and C.sum(1).max() == 7
    assert len({tuple(c) for c in C}) == 792
    X = np.zeros((792, 7, 5), np.float32)
    X[:, 0] = C  # no edges: node 0's label counts are its own features
    keys, ok = _count_keys(np.zeros((792, 7, 7), np.float32), X, np.ones((792, 7), bool))
    assert bool(ok)
    np.testing.assert_array_equal(keys[:, 0], np.arange(792))


@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("all_real", [False, True])
def test_bulk_scores_count_table_equals_the_masked_reference(layers, all_real):
    # 500 graphs x 7 nodes >= 4 x 792 table rows: the count table is used for one-hot labels
    params = random_params(8, 5, 16, layers)
    A, X, mask = random_graphs(9, 500, all_real=all_real)
    assert bool(_count_keys(A, X, mask)[1])
    got = bulk_scores(params, A, X, None if all_real else mask)
    np.testing.assert_allclose(got, masked_reference(params, A, X, mask), rtol=2e-5, atol=2e-5)


def test_bulk_scores_without_label_counts_falls_back_to_gcn_scores():
    params = random_params(10, 5, 16, 3)
    A, X, mask = random_graphs(11, 500)
    X = 0.5 * X  # half counts: (Ã X)_i is in no table row
    assert not bool(_count_keys(A, X, mask)[1])
    np.testing.assert_allclose(bulk_scores(params, A, X, mask), masked_reference(params, A, X, mask),
                               rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("chunk", [16, 64])
def test_score_in_chunks_equals_unchunked_predict(chunk):
    m = GCN(hidden=16)
    params = random_params(6, 5, 16, 3)
    A, X, mask = random_graphs(7, 37)
    want_mean, want_var = m.predict(params, (A, X, mask))
    np.testing.assert_allclose(want_mean, masked_reference(params, A, X, mask) * 2.0 + 1.5, rtol=2e-5, atol=2e-5)
    for mean, var in (
        score_in_chunks(m.predict, params, (A, X, mask), chunk=chunk),
        jax.jit(lambda p, g: score_in_chunks(m.predict, p, g, chunk=chunk))(params, (A, X, mask)),
    ):
        assert mean.shape == var.shape == (37,)
        np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(var, want_var)


TRACES = []


def _counting_predict(params, X):
    TRACES.append(1)
    return X * params, jnp.zeros_like(X)


def test_score_in_chunks_compiles_once_per_shape():
    TRACES.clear()
    x = jnp.arange(10.0)
    for scale in (1.0, 2.0):
        mean, _ = score_in_chunks(_counting_predict, jnp.float32(scale), x, chunk=4)
        np.testing.assert_allclose(mean, scale * x)
    assert len(TRACES) == 1


class _Unhashable:
    __hash__ = None

    def __call__(self, params, X):
        return X + params, X * 0


def test_score_in_chunks_accepts_an_unhashable_predict():
    mean, var = score_in_chunks(_Unhashable(), 1.0, jnp.arange(5.0), chunk=2)
    np.testing.assert_allclose(mean, np.arange(5.0) + 1)
    np.testing.assert_allclose(var, 0.0)
