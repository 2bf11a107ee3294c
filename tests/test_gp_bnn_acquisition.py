"""GP, BNN and acquisition functions: closed forms, bounds, masks, toy fits, batch selection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import acquisition as acq
from jnas.errors import JnasError
from jnas.predictors.bnn import BNN
from jnas.predictors.gp import GP

# ---------------------------------------------------------------- helpers


def _matern52(r):
    return (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)


def _closed_form(X, y, Xs, ls, os, noise, kernel):
    """Textbook GP posterior in float64 NumPy (Rasmussen & Williams, alg. 2.1)."""

    def k(a, b):
        r = np.sqrt((((a[:, None] - b[None]) / ls) ** 2).sum(-1))
        return os * (_matern52(r) if kernel == "matern52" else np.exp(-0.5 * r**2))

    K = k(X, X) + noise * np.eye(len(X))
    ks = k(X, Xs)
    mean = ks.T @ np.linalg.solve(K, y)
    var = os - np.einsum("nm,nm->m", ks, np.linalg.solve(K, ks))
    return mean, var


def _toy(n, seed=1, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 1))
    return X, np.sin(6 * X[:, 0]) + noise * rng.normal(size=n)


# ---------------------------------------------------------------- GP


@pytest.mark.parametrize("kernel,ard", [("matern52", False), ("rbf", True)])
def test_gp_posterior_matches_closed_form(kernel, ard):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(7, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1]
    Xs = rng.uniform(size=(5, 2))
    ls = np.array([0.3, 0.7]) if ard else np.array([0.4])
    gp = GP(kernel=kernel, ard=ard, input_bounds=(0.0, 1.0), standardise=False, jitter=0.0)
    mean, var = jax.jit(lambda X, y, Xs: gp.predict(gp.condition(X, y, ls, 1.3, 0.01), Xs))(X, y, Xs)
    ref_mean, ref_var = _closed_form(X, y, Xs, ls, 1.3, 0.01, kernel)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(var, ref_var, rtol=1e-3, atol=1e-5)


def test_gp_log_target_and_standardisation_map_back():
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(6, 1)) * 10.0 + 5.0  # min-max scaled to [0, 1] inside
    y = np.exp(rng.normal(size=6))
    Xs = np.array([[6.0], [9.0], [14.0]])
    gp = GP(log_target=True, jitter=0.0)

    @jax.jit
    def both(X, y, Xs):
        params = gp.condition(X, y, 0.3, 2.0, 0.05)
        return gp.predict(params, Xs, log_space=True), gp.predict(params, Xs)

    (mean, var), (mean_y, var_y) = both(X, y, Xs)
    lo, span = X.min(), X.max() - X.min()
    t = np.log(y)
    zm, zs = t.mean(), t.std()
    m, v = _closed_form((X - lo) / span, (t - zm) / zs, (Xs - lo) / span, 0.3, 2.0, 0.05, "matern52")
    lm, lv = zm + zs * m, zs**2 * v
    np.testing.assert_allclose(mean, lm, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(var, lv, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(mean_y, np.exp(lm + lv / 2), rtol=1e-3)
    np.testing.assert_allclose(var_y, np.expm1(lv) * np.exp(2 * lm + lv), rtol=1e-3)
    with pytest.raises(JnasError, match="y:"):
        gp.fit(jax.random.key(0), X, -y)


def _in_bounds(params, gp):
    for value, (lo, hi) in zip((params.lengthscale, params.outputscale, params.noise), gp.bounds):
        assert np.all(np.asarray(value) >= lo * (1 - 1e-5)) and np.all(np.asarray(value) <= hi * (1 + 1e-5))


def test_gp_ml2_bounds_improvement_and_exact_masking():
    # float64: masking is exact, but in float32 round-off steers L-BFGS (an ARD lengthscale drifting to its
    # bound) to a slightly different stopping point on the two layouts
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        X = rng.uniform(size=(12, 2))
        y = np.sin(6 * X[:, 0]) + 0.05 * rng.normal(size=12)  # dimension 1 is irrelevant
        Xs = rng.uniform(size=(20, 2))
        gp = GP(ard=True)

        @jax.jit
        def fit_and_score(X, y, mask):
            params = gp.fit(jax.random.key(0), X, y, mask)
            fitted = gp.log_marginal_likelihood(X, y, params.lengthscale[0], params.outputscale[0], params.noise[0],
                                                mask)
            initial = gp.log_marginal_likelihood(X, y, *gp.initial_hyperparameters(2), mask)
            return params, fitted, initial, gp.predict(params, Xs)

        params, fitted, initial, pred = fit_and_score(X, y, np.ones(12, bool))
        _in_bounds(params, gp)
        assert fitted > initial + 1.0
        assert params.lengthscale[0, 1] > params.lengthscale[0, 0]  # ARD finds the irrelevant input

        # garbage rows (huge or NaN inputs, wild targets) anywhere in the buffer change nothing
        Xg = np.concatenate([X[:5], np.full((2, 2), 1e6), X[5:], np.full((3, 2), np.nan)])
        yg = np.concatenate([y[:5], [1e9, -1e9], y[5:], [np.nan, 3.0, 1e4]])
        mask = np.concatenate([np.ones(5, bool), np.zeros(2, bool), np.ones(7, bool), np.zeros(3, bool)])
        pg, fitted_g, _, pred_g = fit_and_score(Xg, yg, mask)
        for a, b in zip(pred, pred_g):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(pg.lengthscale, params.lengthscale, rtol=1e-4)
        np.testing.assert_allclose(fitted_g, fitted, rtol=1e-5)


def test_gp_fully_bayesian_samples_within_bounds_and_predicts():
    X, y = _toy(15, noise=0.05)
    Xs = np.linspace(0.05, 0.95, 30)[:, None]
    gp = GP(fully_bayesian=True, num_samples=16, warmup=40)

    @jax.jit
    def run(key):
        params = gp.fit(key, X, y)
        means, vars_ = gp.predict_samples(params, Xs)
        ei = acq.integrated(acq.expected_improvement, means, vars_, best=y.max())
        return params, means, vars_, gp.predict(params, Xs), ei

    params, means, vars_, (mean, var), ei = run(jax.random.key(3))
    assert params.lengthscale.shape == (16, 1) and params.noise.shape == (16,)
    _in_bounds(params, gp)
    assert np.std(np.asarray(params.outputscale)) > 0  # the chain moves
    assert means.shape == vars_.shape == (16, 30)
    assert float(np.sqrt(np.mean((np.asarray(mean) - np.sin(6 * Xs[:, 0])) ** 2))) < 0.15
    assert np.all(np.asarray(var) >= np.asarray(vars_.mean(0)) - 1e-7)
    assert ei.shape == (30,) and np.all(np.asarray(ei) >= 0)


def test_gp_rejects_bad_arguments():
    with pytest.raises(JnasError, match="kernel"):
        GP(kernel="linear")
    with pytest.raises(JnasError, match="noise_bounds"):
        GP(noise_bounds=(0.1, 0.01))
    with pytest.raises(JnasError, match="X:"):
        GP().fit(jax.random.key(0), jnp.zeros(5), jnp.zeros(5))
    with pytest.raises(JnasError, match="mask"):
        GP().fit(jax.random.key(0), jnp.zeros((5, 1)), jnp.zeros(5), jnp.ones(4, bool))


# ---------------------------------------------------------------- acquisition


EI = jax.jit(acq.expected_improvement)


def test_expected_improvement_limits_and_monotonicity():
    mean = np.array([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(EI(mean, np.zeros(3), 1.0, 0.0), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(EI(mean, np.zeros(3), 1.0, 1.5), [0.0, 0.0, 0.0])
    ei_mu = EI(np.linspace(-3, 3, 61), np.full(61, 0.5), 0.0, 0.0)
    assert np.all(np.diff(np.asarray(ei_mu)) > 0)
    ei_var = EI(np.full(61, -0.5), np.linspace(0.01, 4, 61), 0.0, 0.0)
    assert np.all(np.diff(np.asarray(ei_var)) > 0)
    # the closed form against quadrature of E[max(f - best - ξ, 0)], f ~ N(0.3, 0.8²)
    f = np.linspace(0.3 - 10, 0.3 + 10, 200_001)
    dens = np.exp(-0.5 * ((f - 0.3) / 0.8) ** 2) / (0.8 * np.sqrt(2 * np.pi))
    ref = np.sum(np.maximum(f - 0.6, 0.0) * dens) * (f[1] - f[0])
    np.testing.assert_allclose(EI(np.full(61, 0.3), np.full(61, 0.64), 0.5, 0.1)[0], ref, rtol=1e-4)
    g = jax.jit(jax.grad(lambda m: acq.expected_improvement(m, 0.0, 1.0)))(0.5)  # finite at σ = 0
    assert np.isfinite(float(g))


def test_pi_ucb_gp_ucb_and_incumbent():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=200) * 3
    var = np.where(rng.uniform(size=200) < 0.2, 0.0, rng.exponential(size=200))
    pi, ucb = jax.jit(
        lambda m, v: (acq.probability_of_improvement(m, v, 0.5, xi=0.1), acq.upper_confidence_bound(m, v, 4.0))
    )(mean, var)
    pi = np.asarray(pi)
    assert np.all((pi >= 0) & (pi <= 1))
    np.testing.assert_array_equal(pi[var == 0], (mean[var == 0] > 0.6).astype(float))
    np.testing.assert_allclose(ucb, mean + 2 * np.sqrt(var), rtol=1e-5, atol=1e-6)
    betas = np.asarray(jax.jit(jax.vmap(lambda t: acq.gp_ucb_beta(t, 100)))(jnp.arange(1, 50)))
    assert np.all(np.diff(betas) > 0)
    np.testing.assert_allclose(acq.gp_ucb_beta(3, 100, 0.1), 2 * np.log(100 * 9 * np.pi**2 / 0.6), rtol=1e-6)
    assert float(acq.gp_ucb_beta(1, 1000)) > float(acq.gp_ucb_beta(1, 10))
    with pytest.raises(JnasError, match="delta"):
        acq.gp_ucb_beta(1, 10, delta=1.5)
    assert float(acq.noisy_incumbent(jnp.array([1.0, 5.0, 2.0]), jnp.array([True, False, True]))) == 2.0


def test_thompson_sampling():
    keys = jax.random.split(jax.random.key(0), 4000)
    draws = jax.jit(
        jax.vmap(lambda k: acq.thompson_sample(k, jnp.array([1.0, -2.0, 0.0]), jnp.array([0.25, 4.0, 0.0])))
    )(keys)
    np.testing.assert_allclose(draws.mean(0), [1.0, -2.0, 0.0], atol=0.1)
    np.testing.assert_allclose(draws.std(0), [0.5, 2.0, 0.0], atol=0.1)
    members, m = 4, 20_000
    preds = jnp.broadcast_to(jnp.arange(members, dtype=jnp.float32)[:, None], (members, m))
    chosen = np.asarray(jax.jit(acq.independent_thompson)(jax.random.key(1), preds)).astype(int)
    counts = np.bincount(chosen, minlength=members)
    sd = np.sqrt(m * 0.25 * 0.75)
    assert np.all(np.abs(counts - m / members) < 4 * sd)
    with pytest.raises(JnasError, match="predictions"):
        acq.independent_thompson(jax.random.key(1), jnp.zeros(5))


def test_integrated_acquisition_averages_samples():
    means = jnp.array([[0.0, 1.0], [2.0, -1.0]])
    vars_ = jnp.array([[1.0, 0.5], [0.2, 0.0]])
    out = jax.jit(lambda m, v: acq.integrated(acq.upper_confidence_bound, m, v, beta=1.0))(means, vars_)
    np.testing.assert_allclose(out, (means + jnp.sqrt(vars_)).mean(0), rtol=1e-6)


def test_kriging_believer_distinct_and_matches_refitting():
    gp = GP(input_bounds=(0.0, 1.0), standardise=False)
    X = np.array([[0.1], [0.4], [0.45], [0.9]])
    y = np.array([0.2, 0.8, 0.7, -0.3])
    cand = np.concatenate([np.linspace(0, 1, 41)[:, None], [[0.5], [0.5]]])  # a duplicate pair

    def ei(m, v):
        return acq.expected_improvement(m, v, 0.8)

    class Fixed:  # a predictor whose fit conditions with the same fixed hyperparameters
        def fit(self, key, X, y, mask=None):
            return gp.condition(X, y, 0.15, 1.0, 1e-3, mask)

        def predict(self, params, X):
            return gp.predict(params, X)

    @jax.jit
    def both(X, y):
        rank1 = acq.kriging_believer_gp(gp, Fixed().fit(None, X, y), cand, 6, ei)
        refit = acq.kriging_believer(jax.random.key(0), Fixed(), X, y, None, cand, 6, ei)
        return rank1, refit

    idx, ref = (np.asarray(a) for a in both(X, y))
    assert len(set(idx.tolist())) == 6
    assert len(set(np.round(cand[idx, 0], 6).tolist())) == 6  # never the same point twice
    np.testing.assert_array_equal(idx, ref)


def test_local_penalisation():
    Xc = np.linspace(0, 1, 101)[:, None]
    score = np.exp(-((Xc[:, 0] - 0.3) ** 2) / 0.02)  # peaked: unpenalised, a batch would crowd at its peak
    mean, var = 0.5 * score, np.full(101, 0.01)

    @jax.jit
    def run(Xc, score, mean, var):
        pen = acq.local_penalisation(
            jnp.ones(101),
            Xc,
            jnp.array([[0.5]]),
            jnp.array([0.9]),
            jnp.array([0.01]),
            lipschitz=2.0,
            best=1.0,
            transform="none",
        )
        L = acq.lipschitz_from_pairs(Xc, jnp.sin(3 * Xc[:, 0]))
        L2 = acq.lipschitz_from_gradients(lambda x: jnp.sin(3 * x[:, 0]), Xc)
        idx = acq.select_local_penalisation(score, Xc, mean, var, 3, lipschitz=L, best=0.6)
        return pen, L, L2, idx

    pen, L, L2, idx = (np.asarray(a) for a in run(Xc, score, mean, var))
    assert pen[50] < 0.2 and pen[0] > 0.99 and pen[100] > 0.99
    assert np.all(np.diff(pen[50:]) >= 0) and np.all(np.diff(pen[:51]) <= 0)
    assert 2.9 < float(L) <= 3.0
    np.testing.assert_allclose(L2, 3.0, rtol=1e-5)
    assert len(set(idx.tolist())) == 3 and idx[0] == 30
    assert np.min(np.abs(np.diff(np.sort(Xc[idx, 0])))) > 0.05
    with pytest.raises(JnasError, match="q:"):
        acq.select_local_penalisation(score, Xc, mean, var, 0, 1.0, 0.6)


# ---------------------------------------------------------------- BNN


def test_bnn_nuts_fits_toy_better_than_prior_mean():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(30, 1))
    y = np.sin(6 * X[:, 0]) + 0.1 * rng.normal(size=30)
    Xs = np.linspace(0.05, 0.95, 50)[:, None]
    bnn = BNN(inference="nuts", num_warmup=60, num_samples=20, max_tree_depth=5, map_steps=500)

    @jax.jit
    def run(key):
        params = bnn.fit(key, X, y)
        return params, bnn.predict(params, Xs)

    params, (mean, var) = run(jax.random.key(0))
    rmse = float(np.sqrt(np.mean((np.asarray(mean) - np.sin(6 * Xs[:, 0])) ** 2)))
    prior = float(np.sqrt(np.mean((y.mean() - np.sin(6 * Xs[:, 0])) ** 2)))
    assert rmse < 0.3 * prior
    assert np.all(np.asarray(var) > 0)
    assert jax.tree.leaves(params.samples)[0].shape[0] == 20


def test_bnn_sghmc_heteroscedastic_noise_and_masking():
    rng = np.random.default_rng(1)
    n = 80
    X = rng.uniform(size=(n, 1))
    y = np.sin(6 * X[:, 0]) + np.where(X[:, 0] < 0.5, 0.05, 0.5) * rng.normal(size=n)
    Xs = np.linspace(0.05, 0.95, 50)[:, None]
    bnn = BNN(heteroscedastic=True, inference="sghmc", num_warmup=200, num_samples=20, thinning=5, map_steps=500)

    @jax.jit
    def run(key, X, y, mask):
        params = bnn.fit(key, X, y, mask)
        return params, bnn.predict(params, Xs), bnn.predict_samples(params, Xs)

    params, (mean, _), (_, noise) = run(jax.random.key(0), X, y, np.ones(n, bool))
    truth = np.sin(6 * Xs[:, 0])
    rmse = float(np.sqrt(np.mean((np.asarray(mean) - truth) ** 2)))
    prior = float(np.sqrt(np.mean((y.mean() - truth) ** 2)))
    assert rmse < 0.5 * prior
    noise = np.asarray(noise.mean(0))
    assert noise[Xs[:, 0] > 0.6].mean() > 5 * noise[Xs[:, 0] < 0.4].mean()

    # masked rows: any garbage there gives the same samples
    mask = np.arange(n) % 7 != 3
    a = run(jax.random.key(4), X, np.where(mask, y, 1e6), mask)
    b = run(jax.random.key(4), np.where(mask[:, None], X, np.nan), np.where(mask, y, -3.0), mask)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_bnn_rejects_bad_arguments():
    with pytest.raises(JnasError, match="inference"):
        BNN(inference="vi")
    with pytest.raises(JnasError, match="activation"):
        BNN(activation="gelu")
    with pytest.raises(JnasError, match="hidden"):
        BNN(hidden=(10, 0))
    with pytest.raises(JnasError, match="y:"):
        BNN().fit(jax.random.key(0), jnp.zeros((4, 1)), jnp.zeros(3))


# ---------------------------------------------------------------- longer checks


@pytest.mark.slow
def test_gp_ei_bo_loop_inside_scan_finds_the_optimum():
    grid = jnp.linspace(0, 1, 201)[:, None]
    f = -((grid[:, 0] - 0.62) ** 2) + 0.05 * jnp.sin(25 * grid[:, 0])
    cap, n0 = 16, 3
    gp = GP(restarts=2, steps=50)

    @jax.jit
    def run(key):
        idx0 = jnp.array([10, 100, 190])
        X = jnp.zeros((cap, 1)).at[:n0].set(grid[idx0])
        y = jnp.zeros(cap).at[:n0].set(f[idx0])
        queried = jnp.zeros(201, bool).at[idx0].set(True)

        def step(c, t):
            X, y, queried = c
            mask = jnp.arange(cap) < n0 + t
            params = gp.fit(jax.random.fold_in(key, t), X, y, mask)
            mean, var = gp.predict(params, grid)
            score = jnp.where(queried, -jnp.inf, acq.expected_improvement(mean, var, jnp.max(jnp.where(mask, y, -9))))
            i = jnp.argmax(score)
            return (X.at[n0 + t].set(grid[i]), y.at[n0 + t].set(f[i]), queried.at[i].set(True)), i

        (X, y, _), picks = jax.lax.scan(step, (X, y, queried), jnp.arange(cap - n0))
        return y, picks

    y, picks = run(jax.random.key(0))
    assert len(set(np.asarray(picks).tolist())) == cap - n0
    assert float(jnp.max(y)) > f.max() - 0.005


@pytest.mark.slow
def test_sghmc_posterior_agrees_with_nuts():
    X, y = _toy(40, seed=5)
    Xs = np.linspace(0.05, 0.95, 50)[:, None]
    out = {}
    for name, bnn in {
        "nuts": BNN(inference="nuts", num_warmup=300, num_samples=100, max_tree_depth=7),
        "sghmc": BNN(inference="sghmc"),
    }.items():

        @jax.jit
        def run(key, bnn=bnn):
            p = bnn.fit(key, X, y)
            return bnn.predict(p, Xs), bnn.predict_samples(p, Xs)

        out[name] = run(jax.random.key(1))
    (m_n, v_n), (_, noise_n) = out["nuts"]
    (m_s, v_s), (_, noise_s) = out["sghmc"]
    assert float(jnp.sqrt(jnp.mean((m_n - m_s) ** 2))) < 0.1
    ratio = float(noise_s.mean() / noise_n.mean())
    assert 0.5 < ratio < 2.0
    assert float(jnp.sqrt(jnp.mean((m_s - np.sin(6 * Xs[:, 0])) ** 2))) < 0.15


@pytest.mark.slow
def test_fully_bayesian_kriging_believer_batch():
    X, y = _toy(12, seed=7, noise=0.05)
    cand = np.linspace(0, 1, 101)[:, None]
    gp = GP(fully_bayesian=True, num_samples=24, warmup=100)

    @jax.jit
    def run(key):
        params = gp.fit(key, X, y)
        best = acq.noisy_incumbent(gp.predict(params, X)[0])
        return acq.kriging_believer_gp(gp, params, cand, 5, lambda m, v: acq.expected_improvement(m, v, best))

    idx = np.asarray(run(jax.random.key(2)))
    assert len(set(idx.tolist())) == 5
