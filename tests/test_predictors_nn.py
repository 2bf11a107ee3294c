"""Neural predictors (GCN, MLP ensemble) and the Kendall tau they are judged by."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.encodings import MultiHot, graph_tensors, path_encoding, path_multihot
from jnas.errors import JnasError
from jnas.metrics.ranking import kendall_tau, spearman
from jnas.predictors import GCN, MLPEnsemble, score_in_chunks


@pytest.fixture(scope="module")
def nb201():
    """Every NB201 architecture as graph tensors and path features, valid_acc@200, a fixed split."""
    bench = get_benchmark("nb201/cifar10")
    space = bench.space
    archs = space.enumerate()
    graphs = jax.jit(jax.vmap(lambda a: graph_tensors(space, a)))(archs)
    paths = jax.jit(jax.vmap(lambda a: path_encoding(space, a)))(archs)
    hot = jax.jit(jax.vmap(lambda a: path_multihot(space, a)))(archs)
    y = np.asarray(bench.query(archs, "valid_acc", 200))
    perm = np.random.default_rng(0).permutation(len(archs))
    return {"graphs": graphs, "paths": paths, "hot": hot, "y": y, "train": perm[:200], "test": perm[200:1200]}


def _rows(tree, idx):
    return jax.tree.map(lambda a: a[idx], tree)


# ----- Kendall tau -------------------------------------------------------------


def _tau_b_brute(a, b):
    """Direct O(n²) tau-b from its definition."""
    con = dis = ta = tb = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
        con += da * db > 0
        dis += da * db < 0
        ta += da == 0
        tb += db == 0
    n0 = len(a) * (len(a) - 1) // 2
    den = (n0 - ta) * (n0 - tb)
    return (con - dis) / np.sqrt(den) if den else np.nan


@pytest.mark.parametrize("n", [2, 3, 7, 40, 150])
@pytest.mark.parametrize("levels", [3, 1000])
def test_kendall_tau_matches_brute_force(n, levels):
    rng = np.random.default_rng(n * levels)
    for _ in range(4):
        a = rng.integers(0, levels, n).astype(float)
        b = rng.integers(0, levels, n) + 0.5 * a  # correlated, with ties when levels is small
        want = _tau_b_brute(a, b)
        if np.isnan(want):
            assert np.isnan(kendall_tau(a, b))
        else:
            assert kendall_tau(a, b) == pytest.approx(want, abs=1e-12)


def test_kendall_tau_edges():
    x = np.arange(10.0)
    assert kendall_tau(x, x) == pytest.approx(1.0)
    assert kendall_tau(x, -x) == pytest.approx(-1.0)
    assert np.isnan(kendall_tau(x, np.ones(10)))  # a constant side has no ranking
    with_nan = np.where(x == 3, np.nan, x)
    assert kendall_tau(with_nan, x) == pytest.approx(1.0)  # NaN positions are dropped
    with pytest.raises(JnasError, match="a, b"):
        kendall_tau(x, x[:5])


# ----- GCN ---------------------------------------------------------------------


def test_gcn_invariant_to_node_permutation_and_padding(nb201):
    m = GCN(hidden=16)
    A, X, mask = _rows(nb201["graphs"], nb201["train"][:32])
    params = m.init(jax.random.key(0), X.shape[-1])
    predict = jax.jit(m.predict)
    want, var = predict(params, (A, X, mask))
    assert np.all(np.asarray(var) == 0)
    assert np.ptp(np.asarray(want)) > 0  # different graphs, different scores

    def permuted(a, x, k, perms):  # P A Pᵀ, P X, P mask per graph
        rows = jax.vmap(lambda t, p: t[p])
        return jax.vmap(lambda t, p: t[p][:, p])(a, perms), rows(x, perms), rows(k, perms)

    rng = np.random.default_rng(1)
    perms = np.stack([rng.permutation(A.shape[1]) for _ in range(A.shape[0])])
    got, _ = predict(params, permuted(A, X, mask, perms))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    # three padding nodes full of garbage, then shuffled in among the real ones
    n, v, f = X.shape
    Ap = jnp.asarray(rng.integers(0, 2, (n, v + 3, v + 3)), jnp.float32).at[:, :v, :v].set(A)
    Xp = jnp.asarray(rng.normal(size=(n, v + 3, f)), jnp.float32).at[:, :v].set(X)
    mp = jnp.zeros((n, v + 3), bool).at[:, :v].set(mask)
    perms = np.stack([rng.permutation(v + 3) for _ in range(n)])
    got, _ = predict(params, permuted(Ap, Xp, mp, perms))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gcn_ranking_loss_ranks_held_out_nb201(nb201):
    m = GCN(hidden=64, steps=500)  # default loss (ranking), lr and schedule
    tr, te = nb201["train"], nb201["test"]
    params = jax.jit(m.fit)(jax.random.key(0), _rows(nb201["graphs"], tr), nb201["y"][tr])
    score, _ = jax.jit(m.predict)(params, _rows(nb201["graphs"], te))
    tau = kendall_tau(np.asarray(score), nb201["y"][te])
    assert tau > 0.5, tau


@pytest.mark.parametrize(
    "model",
    [
        GCN(hidden=16, steps=40),
        GCN(hidden=16, steps=40, loss="mse"),
        GCN(hidden=16, steps=40, batch_pairs=16),
        MLPEnsemble(members=2, layers=3, width=8, steps=40, batch_size=16),
        (MLPEnsemble(members=2, layers=3, width=8, steps=40), "hot"),
    ],
    ids=["gcn-ranking", "gcn-mse", "gcn-ranking-batched", "mlp-batched", "mlp-multihot"],
)
def test_masked_rows_are_ignored(nb201, model):
    model, kind = model if isinstance(model, tuple) else (model, "graphs" if isinstance(model, GCN) else "paths")
    feats = nb201[kind]
    real = nb201["train"][:40]
    X, y = _rows(feats, real), nb201["y"][real]
    # 12 garbage rows (NaN targets, random inputs) scattered among the real ones
    rng = np.random.default_rng(2)
    garbage = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=(12,) + a.shape[1:]) * 9).astype(a.dtype), X)
    order = np.sort(rng.permutation(52)[:40])  # where the real rows go, in their order
    is_real = np.zeros(52, bool)
    is_real[order] = True
    pos = np.empty(52, int)
    pos[order], pos[~is_real] = np.arange(40), 40 + np.arange(12)
    Xg = jax.tree.map(lambda r, g: jnp.concatenate([r, g])[pos], X, garbage)
    yg = np.concatenate([y, np.full(12, np.nan)])[pos]

    fit = jax.jit(model.fit)
    p_clean = fit(jax.random.key(3), X, y)
    p_masked = fit(jax.random.key(3), Xg, yg, jnp.asarray(is_real))
    probe = _rows(feats, nb201["test"][:100])
    predict = jax.jit(model.predict)
    want, got = predict(p_clean, probe)[0], predict(p_masked, probe)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.std(want)))


def test_gcn_rejects_bad_input(nb201):
    with pytest.raises(JnasError, match="loss"):
        GCN(loss="hinge")
    with pytest.raises(JnasError, match="hidden"):
        GCN(hidden=0)
    A, X, mask = _rows(nb201["graphs"], np.arange(4))
    with pytest.raises(JnasError, match="X"):
        GCN(steps=1).fit(jax.random.key(0), X, jnp.zeros(4))
    with pytest.raises(JnasError, match="X"):
        GCN(steps=1).fit(jax.random.key(0), (A, X, mask), jnp.zeros(5))
    with pytest.raises(JnasError, match="mask"):
        GCN(steps=1).fit(jax.random.key(0), (A, X, mask), jnp.zeros(4), jnp.ones(3, bool))


# ----- MLP ensemble ------------------------------------------------------------


def test_mlp_ensemble_ranks_held_out_nb201(nb201):
    m = MLPEnsemble()  # BANANAS defaults: 5 members of 10 × 20, Adam 0.01, MAE
    tr, te = nb201["train"], nb201["test"]
    params = jax.jit(m.fit)(jax.random.key(0), nb201["paths"][tr], nb201["y"][tr])
    mean, var = jax.jit(m.predict)(params, nb201["paths"][te])
    members = jax.jit(m.predict_members)(params, nb201["paths"][te])
    assert members.shape == (5, len(te))
    np.testing.assert_allclose(mean, members.mean(0), rtol=1e-6)
    assert np.all(np.asarray(var) > 0)
    tau = kendall_tau(np.asarray(mean), nb201["y"][te])
    assert tau > 0.4, tau
    for j in range(5):  # each member alone is a usable Thompson sample
        assert kendall_tau(np.asarray(members[j]), nb201["y"][te]) > 0.3


def test_mlp_on_multihot_rows_is_the_dense_model(nb201):
    """Path features held as MultiHot rows train and predict the same ensemble as the dense matrix."""
    m = MLPEnsemble(members=3, layers=4, width=12, steps=60)
    tr, te = nb201["train"][:80], nb201["test"][:300]
    fit, predict = jax.jit(m.fit), jax.jit(m.predict_members)
    want = predict(fit(jax.random.key(5), nb201["paths"][tr], nb201["y"][tr]), nb201["paths"][te])
    got = predict(fit(jax.random.key(5), nb201["hot"][tr], nb201["y"][tr]), nb201["hot"][te])
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.std(want)))
    assert float(np.std(want)) > 0.1  # a trained model, not a constant


def test_mlp_rejects_bad_input():
    with pytest.raises(JnasError, match="members"):
        MLPEnsemble(members=0)
    with pytest.raises(JnasError, match="loss"):
        MLPEnsemble(loss="huber")
    with pytest.raises(JnasError, match="X"):
        MLPEnsemble(steps=1).fit(jax.random.key(0), jnp.zeros((4, 3, 2)), jnp.zeros(4))
    with pytest.raises(JnasError, match="X"):
        MLPEnsemble(steps=1).fit(jax.random.key(0), (jnp.zeros((4, 3)),) * 3, jnp.zeros(4))
    with pytest.raises(JnasError, match="^X:"):
        MLPEnsemble(steps=1).fit(jax.random.key(0), MultiHot(jnp.zeros((5, 2), jnp.int32), 9), jnp.zeros(4))


# ----- scoring the whole space --------------------------------------------------


@pytest.mark.parametrize("kind", ["gcn", "mlp"])
def test_score_in_chunks_whole_nb201_matches_direct(nb201, kind):
    if kind == "gcn":
        m, feats = GCN(hidden=16), nb201["graphs"]
        params = m.init(jax.random.key(4), feats[1].shape[-1])
    else:
        m, feats = MLPEnsemble(members=3, layers=3, width=8), nb201["paths"]
        params = m.init(jax.random.key(4), feats.shape[-1])
    want_mean, want_var = jax.jit(m.predict)(params, feats)
    chunked = jax.jit(lambda p, x: score_in_chunks(m.predict, p, x, chunk=4096))
    mean, var = chunked(params, feats)
    assert mean.shape == var.shape == (15625,)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(var, want_var, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("levels", [3, 1000])
def test_spearman_matches_scipy_with_ties_and_nan(levels):
    from scipy.stats import spearmanr

    rng = np.random.default_rng(levels)
    a = rng.integers(0, levels, 60).astype(float)
    b = rng.integers(0, levels, 60) + 0.5 * a
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    a[[3, 9]] = np.nan
    keep = ~np.isnan(a)
    assert spearman(a, b) == pytest.approx(spearmanr(a[keep], b[keep]).statistic, abs=1e-12)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))
