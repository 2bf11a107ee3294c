"""TPE (``jnas.strategies.tpe``) and the sample-efficiency gain (``jnas.metrics.gain``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.errors import JnasError
from jnas.metrics import expected_trials, expected_trials_curve, gain_db, gain_split
from jnas.runs import run_tabular, search
from jnas.runs.runner import make_scan_fn, seed_keys
from jnas.spaces import get_space
from jnas.strategies import make_strategy
from jnas.strategies.tpe import decision_cardinalities, good_mask, parzen_table


# ----- Parzen estimators ---------------------------------------------------------------
def test_parzen_tables_are_distributions_that_follow_the_good_set():
    cards = decision_cardinalities(get_space("nbgraph"))
    np.testing.assert_array_equal(cards, [1, 2, 3, 4, 9, 9, 9, 9])
    allowed = jnp.asarray(np.arange(9)[None, :] < cards[:, None])
    rng = np.random.default_rng(0)
    obs = np.stack([rng.integers(0, c, 40) for c in cards], axis=1)
    obs[:10, 3] = 2  # the 10 first rows (the "good" set below) prefer value 2 of decision 3
    obs[:10, 5] = 7
    weight = jnp.asarray(np.arange(40) < 10, jnp.float32)
    for w in (weight, 1.0 - weight, jnp.zeros(40)):
        p = np.asarray(parzen_table(jnp.asarray(obs, jnp.int8), w, allowed, 1.0))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
        assert np.all(p[~np.asarray(allowed)] == 0) and np.all(p[np.asarray(allowed)] > 0)
    lo = np.asarray(parzen_table(jnp.asarray(obs, jnp.int8), weight, allowed, 1.0))
    hi = np.asarray(parzen_table(jnp.asarray(obs, jnp.int8), 1.0 - weight, allowed, 1.0))
    assert lo[3].argmax() == 2 and lo[5].argmax() == 7
    assert lo[3, 2] > hi[3, 2] and lo[5, 7] > hi[5, 7]
    # exact smoothing: (count + prior_weight / card) / (n + prior_weight)
    assert lo[3, 2] == pytest.approx((10 + 0.25) / 11)
    empty = np.asarray(parzen_table(jnp.asarray(obs, jnp.int8), jnp.zeros(40), allowed, 2.0))
    np.testing.assert_allclose(empty[3, :4], 0.25)  # no observations: the uniform prior


def test_good_set_is_the_ceil_gamma_n_best_of_the_observed():
    fit = jnp.asarray([3.0, -jnp.inf, 7.0, 5.0, 1.0, 9.0, 0.0, 0.0])  # slots >= n are empty
    good = np.asarray(good_mask(fit, jnp.int32(6), 0.25))
    np.testing.assert_array_equal(np.flatnonzero(good), [2, 5])  # ceil(1.5) = 2 best of the first 6
    assert np.asarray(good_mask(fit, jnp.int32(6), 0.5)).sum() == 3


# ----- the strategy ----------------------------------------------------------------------
def test_tpe_beats_random_search_on_nb201_cifar10():
    rs = search("nb201/cifar10", "rs", 150, seeds=50).summary
    tpe = search("nb201/cifar10", "tpe", 150, seeds=50).summary
    diff = rs["final_regret_mean"] - tpe["final_regret_mean"]
    se = np.hypot(rs["final_regret_se"], tpe["final_regret_se"])
    assert diff > 2 * se, (rs["final_regret_mean"], tpe["final_regret_mean"], se)


def test_tpe_is_deterministic_and_a_vmapped_seed_equals_the_single_run():
    c10 = get_benchmark("nb201/cifar10")
    with jax.enable_x64(True):
        s = make_strategy("tpe", c10.space, 40)
        fn = make_scan_fn(s, c10, c10.search_metric, jnp.float64)
        keys = seed_keys(4)
        rows_a, vals_a = (np.asarray(x) for x in fn(keys))
        rows_b, _ = (np.asarray(x) for x in fn(keys))
        np.testing.assert_array_equal(rows_a, rows_b)
        assert not np.array_equal(rows_a[0], rows_a[1])
        rows_1, vals_1 = (np.asarray(x) for x in fn(keys[2:3]))
        np.testing.assert_array_equal(rows_a[2], rows_1[0])
        np.testing.assert_array_equal(vals_a[2], vals_1[0])
    assert all(len(np.unique(r)) == 40 for r in rows_a)  # never re-queries


def test_tpe_on_nbgraph_queries_every_member_once_when_the_budget_is_the_space():
    bench = get_benchmark("nbgraph/proteins")
    n = bench.space.size
    rec = run_tabular(make_strategy("tpe", bench.space, n, n_candidates=8), bench, 1)
    assert np.all(rec.rows >= 0)
    assert len(np.unique(rec.rows[0])) == n  # candidates canonicalised; exhausted -> random unqueried


def test_tpe_rejects_other_spaces_and_bad_options():
    with pytest.raises(JnasError, match="space: got 'nb101', expected nb201, nbgraph"):
        make_strategy("tpe", get_space("nb101"), 50)
    with pytest.raises(JnasError, match="--set gamma: got 1.5"):
        make_strategy("tpe", get_space("nb201"), 50, gamma=1.5)
    with pytest.raises(JnasError, match="--set prior_weight"):
        make_strategy("tpe", get_space("nb201"), 50, prior_weight=0)
    with pytest.raises(JnasError, match="budget: got 20000, expected at most 15625"):
        make_strategy("tpe", get_space("nb201"), 20000)


# ----- expected trials and gain --------------------------------------------------------------
@pytest.mark.parametrize("k,m", [(20, 1), (20, 3), (50, 10), (7, 7)])
def test_expected_trials_matches_draws_without_replacement(k, m):
    rng = np.random.default_rng(k * 100 + m)
    n = 20000
    # position (1-based) of the first of the m successes in a random order of k candidates
    order = np.argsort(rng.random((n, k)), axis=1)
    tau = (order < m).argmax(axis=1) + 1
    se = tau.std() / np.sqrt(n)
    assert abs(tau.mean() - expected_trials(k, m)) < 4 * se + 1e-12
    assert expected_trials(k, m) == pytest.approx((k + 1) / (m + 1))


def test_expected_trials_curve_counts_successes_at_each_target():
    values = np.array([0.1, 0.5, 0.5, 0.9, np.nan, 0.3])  # K = 6 (the failure never succeeds)
    targets = np.array([-1.0, 0.3, 0.5, 0.6, 0.9, 1.0])
    up = expected_trials_curve(values, targets)
    m = np.array([5, 4, 3, 1, 1, 0])
    np.testing.assert_allclose(up, np.where(m > 0, 7 / (m + 1), np.inf))
    down = expected_trials_curve(values, targets, higher_is_better=False)  # the paper's error <= J_target
    m = np.array([0, 2, 4, 4, 5, 5])
    np.testing.assert_allclose(down, np.where(m > 0, 7 / (m + 1), np.inf))
    # Monte Carlo check of one level
    rng = np.random.default_rng(1)
    hits = np.nan_to_num(values, nan=-1) >= 0.5
    first = np.array([np.flatnonzero(hits[rng.permutation(6)])[0] + 1 for _ in range(20000)])
    assert abs(first.mean() - up[2]) < 4 * first.std() / np.sqrt(20000)


def test_gain_in_decibels_and_its_split():
    assert gain_db(5.0, 5.0) == 0.0
    assert gain_db(100.0, 10.0) == pytest.approx(10.0)
    assert gain_db(10.0, 100.0) == pytest.approx(-10.0)
    np.testing.assert_allclose(gain_db([1e5, 2.0], [1.0, 2.0]), [50.0, 0.0])
    g = gain_split(1000.0, 50.0, 2.0)
    assert g.e == pytest.approx(10 * np.log10(20)) and g.p == pytest.approx(10 * np.log10(25))
    assert g.total == pytest.approx(g.e + g.p) and g.total == pytest.approx(10 * np.log10(500))
    # from values: drawing from the best tenth needs ~10x fewer trials for a top target
    space = np.arange(1000.0)
    tau_s = expected_trials_curve(space, [990.0])
    tau_c = expected_trials_curve(space[900:], [990.0])
    assert gain_db(tau_s, tau_c)[0] == pytest.approx(10 * np.log10((1001 / 11) / (101 / 11)))


def test_gain_arguments_are_checked():
    with pytest.raises(JnasError, match="M: got 5, expected at most K=3"):
        expected_trials(3, 5)
    with pytest.raises(JnasError, match="K: got -1"):
        expected_trials(-1, 0)
    with pytest.raises(JnasError, match="tau: got"):
        gain_db(0.0, 1.0)
    assert expected_trials(10, 0) == np.inf
