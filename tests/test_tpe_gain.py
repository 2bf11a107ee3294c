"""TPE (``jnas.strategies.tpe``) and the sample-efficiency gain (``jnas.metrics.gain``)."""

import itertools

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
from jnas.spaces.base import pick_masked
from jnas.strategies import make_strategy
from jnas.strategies.tpe import (
    decision_cardinalities,
    good_mask,
    mixture_log_pdf,
    mixture_sample,
    n_good,
    parzen_table,
    pick_unqueried,
    ramp_weights,
    set_weights,
)


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


def test_good_set_size_follows_optunas_rule_in_exact_arithmetic():
    # optuna's default_gamma: min(ceil(0.1 n), 25), here in integer arithmetic
    assert [n_good(n, 0.1, 25) for n in range(400)] == [min((n + 9) // 10, 25) for n in range(400)]
    assert n_good(300, 0.1, 0) == 30 and n_good(6, 0.25) == 2
    assert n_good(100, 0.15, 0) == 15 and n_good(50, 0.3, 0) == 15  # float32 products would give 16
    fit = jnp.asarray(np.r_[np.arange(100.0), np.full(20, -np.inf)])
    assert np.asarray(good_mask(fit, jnp.int32(100), 0.15)).sum() == 15


def _reference_good(fit, n, gamma, max_good):
    k = n_good(n, gamma, max_good)
    best = sorted(range(n), key=lambda i: (-fit[i], i))[:k]  # by value, ties: the earlier slot
    out = np.zeros(len(fit), bool)
    out[best] = True
    return out


def test_capped_good_set_is_the_k_best_with_ties_and_failures():
    rng = np.random.default_rng(3)
    b = 48
    mask = jax.jit(good_mask, static_argnums=(2, 3))
    for gamma, cap in itertools.product([0.1, 0.25, 0.6], [0, 1, 3, 7]):
        for _ in range(15):
            n = int(rng.integers(0, b + 1))
            fit = rng.integers(0, 6, b).astype(np.float32)  # many ties
            fit[rng.random(b) < 0.2] = -np.inf  # failed evaluations
            fit[n:] = -np.inf  # empty slots
            got = np.asarray(mask(jnp.asarray(fit), jnp.int32(n), gamma, cap))
            np.testing.assert_array_equal(got, _reference_good(fit, n, gamma, cap), err_msg=f"{fit} {n} {gamma} {cap}")


def _optuna_default_weights(x):
    """Optuna's ``default_weights`` as documented: the 25 newest weigh 1, older ones linspace(1/x, 1, x - 25)."""
    if x < 25:
        return np.ones(x)
    return np.concatenate([np.linspace(1.0 / x, 1.0, num=x - 25), np.ones(25)])


@pytest.mark.parametrize("x", [0, 1, 24, 25, 26, 27, 40, 123])
def test_ramp_weights_are_optunas_over_the_members_in_time_order(x):
    rng = np.random.default_rng(x)
    member = np.zeros(2 * x + 7, bool)
    member[np.sort(rng.choice(len(member), x, replace=False))] = True
    w = np.asarray(ramp_weights(jnp.asarray(member)))
    assert np.all(w[~member] == 0)
    np.testing.assert_allclose(w[member], _optuna_default_weights(x), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(set_weights(jnp.asarray(member), "uniform")), member.astype(np.float32))
    if x > 26:
        assert w[member][0] == pytest.approx(1.0 / x) and np.all(np.diff(w[member]) >= 0)


CARDS = np.array([1, 2, 3, 4, 3])  # unequal cardinalities, as NAS-Bench-Graph's links


def _allowed(cards):
    return np.arange(cards.max())[None, :] < cards[:, None]


def _reference_log_pdf(x, obs, weight, cards, pw, live_obs=None, live_x=None):
    """The mixture of the TPE docstring (Optuna's categorical kernels), one kernel at a time."""
    members = np.flatnonzero(weight > 0)
    a = pw / (len(members) + 1)
    out = []
    for i, xv in enumerate(x):
        lx = np.ones(len(cards), bool) if live_x is None else live_x[i]
        dens = pw * np.prod([1.0 / cards[d] for d in range(len(cards)) if lx[d]])  # the uniform prior kernel
        for b in members:
            p = 1.0
            for d in np.flatnonzero(lx):
                if live_obs is not None and not live_obs[b, d]:
                    p *= 1.0 / cards[d]
                else:
                    p *= ((xv[d] == obs[b, d]) + a) / (1.0 + cards[d] * a)
            dens += weight[b] * p
        out.append(np.log(dens / (weight.sum() + pw)))
    return np.array(out)


def _random_tokens(rng, n, cards):
    return np.stack([rng.integers(0, c, n) for c in cards], axis=1)


@pytest.mark.parametrize("pw", [1.0, 0.3])
def test_mixture_log_pdf_is_the_documented_parzen_mixture(pw):
    rng = np.random.default_rng(int(pw * 10))
    obs = _random_tokens(rng, 12, CARDS)
    weight = np.where(rng.random(12) < 0.6, rng.uniform(0.1, 1.0, 12), 0.0)
    x = _random_tokens(rng, 9, CARDS)
    allowed = jnp.asarray(_allowed(CARDS))
    got = np.asarray(mixture_log_pdf(jnp.asarray(x, jnp.int8), jnp.asarray(obs, jnp.int8), jnp.asarray(weight),
                                     allowed, pw))
    np.testing.assert_allclose(got, _reference_log_pdf(x, obs, weight, CARDS, pw), rtol=1e-5)
    # conditional: dead decisions of an observation are uniform, dead decisions of x are not scored
    live_obs, live_x = rng.random(obs.shape) < 0.7, rng.random(x.shape) < 0.7
    got = np.asarray(mixture_log_pdf(jnp.asarray(x, jnp.int8), jnp.asarray(obs, jnp.int8), jnp.asarray(weight),
                                     allowed, pw, jnp.asarray(live_obs), jnp.asarray(live_x)))
    np.testing.assert_allclose(got, _reference_log_pdf(x, obs, weight, CARDS, pw, live_obs, live_x), rtol=1e-5)
    # two sets at once give each set's density; no member at all: the uniform prior
    both = np.stack([weight, (weight == 0).astype(float)])
    two = np.asarray(mixture_log_pdf(jnp.asarray(x, jnp.int8), jnp.asarray(obs, jnp.int8), jnp.asarray(both),
                                     allowed, pw))
    np.testing.assert_allclose(two[1], _reference_log_pdf(x, obs, both[1], CARDS, pw), rtol=1e-5)
    empty = np.asarray(mixture_log_pdf(jnp.asarray(x, jnp.int8), jnp.asarray(obs, jnp.int8), jnp.zeros(12),
                                       allowed, pw))
    np.testing.assert_allclose(empty, -np.log(CARDS).sum(), rtol=1e-6)


def test_mixture_sample_draws_from_the_mixture_density():
    rng = np.random.default_rng(5)
    obs = _random_tokens(rng, 6, CARDS)
    weight = np.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.2])
    allowed = jnp.asarray(_allowed(CARDS))
    every = np.array(list(itertools.product(*[range(c) for c in CARDS])))  # all 72 token vectors
    p = np.exp(np.asarray(mixture_log_pdf(jnp.asarray(every, jnp.int8), jnp.asarray(obs, jnp.int8),
                                          jnp.asarray(weight), allowed, 1.0)))
    assert p.sum() == pytest.approx(1.0, rel=1e-5)
    n = 40000
    draws = np.asarray(mixture_sample(jax.random.key(0), n, jnp.asarray(obs, jnp.int8), jnp.asarray(weight),
                                      allowed, 1.0))
    assert np.all(draws < CARDS) and np.all(draws >= 0)
    freq = np.bincount(np.ravel_multi_index(draws.T, tuple(CARDS)), minlength=len(every)) / n
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) < 5 * se + 1e-4), np.abs(freq - p).max()


def test_pick_unqueried_draws_what_pick_masked_draws():
    rng = np.random.default_rng(0)
    keys = jax.random.split(jax.random.key(3), 16)
    for n in (1, 7, 120, 15625):
        for frac in (0.0, 0.3, 0.999, 1.0):
            masks = jnp.asarray(rng.random((16, n)) >= frac)
            np.testing.assert_array_equal(np.asarray(jax.vmap(pick_unqueried)(keys, masks)),
                                          np.asarray(jax.vmap(pick_masked)(keys, masks)))


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


# rows of the TPE of commit 3d8a208 (hyperopt-style defaults), nb201/cifar10, 30 queries, seed 7
FORMER_TPE_ROWS = [1477, 12961, 14108, 6094, 13841, 522, 4644, 11237, 5067, 13038, 4729, 4192, 10861, 1462, 5207,
                   15341, 7632, 293, 1062, 13054, 9049, 1654, 12005, 7720, 8254, 5315, 4655, 1160, 983, 7408]
FORMER_OPTIONS = {"gamma": 0.25, "max_good": 0, "estimator": "tables", "weights": "uniform"}


def test_former_defaults_are_the_former_tpe_query_for_query():
    bench = get_benchmark("nb201/cifar10")
    rec = run_tabular(make_strategy("tpe", bench.space, 30, **FORMER_OPTIONS), bench, 1, seed0=7)
    np.testing.assert_array_equal(rec.rows[0], FORMER_TPE_ROWS)
    s = make_strategy("tpe", bench.space, 30)
    assert (s.gamma, s.max_good, s.estimator, s.weights, s.prior_weight, s.n_candidates, s.n_init) == (
        0.1, 25, "mixture", "ramp", 1.0, 24, 10)  # Optuna's TPESampler defaults


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
    with pytest.raises(JnasError, match="--set estimator: got 'gp', expected one of mixture, tables"):
        make_strategy("tpe", get_space("nb201"), 50, estimator="gp")
    with pytest.raises(JnasError, match="--set weights: got 'linear', expected one of ramp, uniform"):
        make_strategy("tpe", get_space("nb201"), 50, weights="linear")
    with pytest.raises(JnasError, match="--set max_good: got -1"):
        make_strategy("tpe", get_space("nb201"), 50, max_good=-1)
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
