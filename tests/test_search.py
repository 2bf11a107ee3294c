"""Strategies and runners on real tables: statistics that would break if a method were wrong."""

from math import comb

import jax
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.errors import JnasError
from jnas.runs import run_loop, run_tabular, search
from jnas.runs.results import SUMMARY_KEYS, load_result
from jnas.strategies import make_strategy


@pytest.fixture(scope="module")
def c10():
    return get_benchmark("nb201/cifar10")


@pytest.mark.parametrize("name", ["nbgraph/proteins", "nb201/cifar10"])
def test_random_search_samples_to_optimum_is_uniform_with_mean_n_plus_1_over_m_plus_1(name):
    bench = get_benchmark(name)
    n = bench.n_rows
    col = bench.column(*bench.search_metric)
    m = int((col == np.nanmax(col)).sum())
    res = search(name, "rs", n, seeds=400)
    assert res.summary["found_optimum_fraction"] == 1.0  # without replacement: budget = size finds it
    expected = (n + 1) / (m + 1)
    idx = np.searchsorted(bench.official_index, res.trajectory["index"])  # published keys -> rows
    assert all(len(np.unique(r)) == n for r in idx[:20])  # never repeats
    tau = res.summary["samples_to_optimum_mean"]
    sd = n / np.sqrt(12 * 400)  # ~ uniform on 1..n when m = 1
    assert abs(tau - expected) < 4 * sd, (tau, expected)
    # first query is uniform over the space (chi-square over 10 bins)
    first = idx[:, 0] * 10 // n
    counts = np.bincount(first, minlength=10)
    assert ((counts - 40) ** 2 / 40).sum() < 27.9  # chi2(9) at p = 0.001


def test_regularized_evolution_beats_random_search_on_nb201_cifar10():
    rs = search("nb201/cifar10", "rs", 300, seeds=100).summary
    re = search("nb201/cifar10", "re", 300, seeds=100).summary
    diff = rs["final_regret_mean"] - re["final_regret_mean"]
    se = np.hypot(rs["final_regret_se"], re["final_regret_se"])
    assert diff > 2 * se, (rs["final_regret_mean"], re["final_regret_mean"], se)


def test_local_search_beats_random_search_on_nb201_cifar10():
    rs = search("nb201/cifar10", "rs", 300, seeds=100).summary
    ls = search("nb201/cifar10", "ls", 300, seeds=100).summary
    diff = rs["final_regret_mean"] - ls["final_regret_mean"]
    assert diff > 2 * np.hypot(rs["final_regret_se"], ls["final_regret_se"])


@pytest.mark.parametrize("name", ["rs", "re", "ls"])
def test_same_key_same_trajectory(c10, name):
    s = make_strategy(name, c10.space, 60)
    a = run_tabular(s, c10, 3, seed0=5)
    b = run_tabular(s, c10, 3, seed0=5)
    np.testing.assert_array_equal(a.rows, b.rows)
    c = run_tabular(s, c10, 3, seed0=6)
    assert not np.array_equal(a.rows, c.rows)


@pytest.mark.parametrize("name", ["rs", "re", "ls"])
def test_vmapped_seed_equals_single_run_in_float64(c10, name):
    with jax.enable_x64(True):
        s = make_strategy(name, c10.space, 80)
        many = run_tabular(s, c10, 6, dtype=jax.numpy.float64)
        for i in (0, 3, 5):
            one = run_tabular(s, c10, 1, seed0=i, dtype=jax.numpy.float64)
            np.testing.assert_array_equal(many.rows[i], one.rows[0])
            np.testing.assert_array_equal(many.values[i], one.values[0])


@pytest.mark.parametrize("name", ["re", "ls"])
def test_loop_runner_equals_scan_runner(c10, name):
    s = make_strategy(name, c10.space, 50)
    key = c10.search_metric
    scan = run_tabular(s, c10, 2)
    loop = run_loop(s, lambda a: np.asarray(c10.query(a, *key)), 2, row_of=c10.rows)
    np.testing.assert_array_equal(scan.rows, loop.rows)
    np.testing.assert_allclose(scan.values, loop.values, rtol=1e-6)


def test_failed_evaluations_are_recorded_and_the_search_goes_on(c10):
    s = make_strategy("re", c10.space, 60)
    calls = {"n": 0}

    def flaky(archs):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("training diverged")
        if calls["n"] % 5 == 0:
            return np.array([np.nan])
        return np.asarray(c10.query(archs, *c10.search_metric))

    rec = run_loop(s, flaky, 1, row_of=c10.rows)
    assert calls["n"] == 60
    failed = np.isnan(rec.values[0])
    assert failed.sum() == 20 + 8  # every 3rd raises, every 5th (not 15th) returns NaN
    assert np.nanmax(rec.values[0]) > 85  # the successful evaluations still drove the search


def test_summary_and_trajectory_files(tmp_path):
    res = search("nb201/cifar10", "re", 40, seeds=4, options={"population_size": 10, "sample_size": 3})
    res.save(tmp_path)
    back = load_result(tmp_path)
    for k in SUMMARY_KEYS:
        assert back.summary[k] is not None
    assert back.summary["search_metric"] == "valid_acc@200"
    for k in ("index", "value", "best_search", "best_test"):
        assert back.trajectory[k].shape == (4, 40)
    # best_search is the running maximum of the values as measured (NaN until the first success)
    np.testing.assert_array_equal(back.trajectory["best_search"], np.fmax.accumulate(back.trajectory["value"], axis=1))
    # best_test is the test accuracy of the best-by-validation architecture
    b = get_benchmark("nb201/cifar10")
    test = b.column("test_acc", 200)
    final_idx = back.trajectory["index"][np.arange(4), np.nanargmax(back.trajectory["value"], axis=1)]
    np.testing.assert_allclose(back.trajectory["best_test"][:, -1], test[final_idx])
    regret = b.metrics[("test_acc", 200)].optimum - test[final_idx]
    assert back.summary["final_regret_mean"] == pytest.approx(regret.mean())


def test_minimised_metric_is_searched_downwards():
    res = search("nb201/cifar10", "re", 100, seeds=5, metric="edgegpu_latency")
    lat = res.trajectory["best_search"]
    np.testing.assert_array_equal(lat, np.fmin.accumulate(res.trajectory["value"], axis=1))  # best = lowest
    col = get_benchmark("nb201/cifar10").column("edgegpu_latency")
    assert np.nanmedian(lat[:, -1]) < np.nanpercentile(col, 5)


def test_bad_arguments_name_the_argument():
    with pytest.raises(JnasError, match="budget: got 20000, expected at most 15625"):
        search("nb201/cifar10", "rs", 20000)
    with pytest.raises(JnasError, match="--set sample_size"):
        search("nb201/cifar10", "re", 50, options={"sample_size": 50})
    with pytest.raises(JnasError, match="--set tournament: unknown option"):
        search("nb201/cifar10", "re", 50, options={"tournament": 5})
    with pytest.raises(JnasError, match="unknown strategy 'ga'"):
        search("nb201/cifar10", "ga", 50)
    with pytest.raises(JnasError, match="seeds: got 0"):
        search("nb201/cifar10", "rs", 50, seeds=0)


def test_local_search_scans_the_whole_neighbourhood_then_moves_or_restarts(c10):
    """Replay every query of 100 runs: each centre's complete neighbourhood in some order, then a move to
    its best neighbour if that beats the centre, else a restart from a fresh uniform sample.

    NB201 cells have 24 neighbours. A restart point is drawn uniformly from the whole space, so its
    Hamming distance to the abandoned local optimum is Binomial(6, 4/5): almost never a neighbour.
    """
    budget, seeds = 300, 100
    s = make_strategy("ls", c10.space, budget)
    rec = run_tabular(s, c10, seeds)
    archs = np.asarray(c10.space.enumerate())  # space index == base-5 code
    code_of_row = np.empty(15625, int)
    code_of_row[np.asarray(c10.rows(c10.space.enumerate()))] = np.arange(15625)
    moves, distances = 0, []
    for rows, vals in zip(rec.rows, rec.values):
        ops = archs[code_of_row[rows]]
        center, center_val, t = ops[0], vals[0], 1
        while t < budget:
            n = min(24, budget - t)
            nbrs, nvals = ops[t : t + n], vals[t : t + n]
            assert all(int((b != center).sum()) == 1 for b in nbrs)  # neighbours of the centre ...
            assert len({tuple(b) for b in nbrs}) == n  # ... each once: the complete neighbourhood
            t += n
            if n < 24 or t == budget:
                break
            best = int(np.argmax(nvals))  # the first best in query order
            if nvals[best] > center_val:  # move: the next block is the best neighbour's neighbourhood
                center, center_val = nbrs[best], nvals[best]
                moves += 1
            else:  # a local optimum: query t is a fresh centre, then its neighbourhood
                distances.append(int((ops[t] != center).sum()))
                center, center_val, t = ops[t], vals[t], t + 1
    assert moves > 100 and len(distances) > 100, (moves, len(distances))
    observed = np.bincount(distances, minlength=7)
    p = np.array([comb(6, d) * 0.8**d * 0.2 ** (6 - d) for d in range(7)])
    obs = np.array([observed[:4].sum(), *observed[4:]])  # d <= 3 pooled: expected counts >= 5
    exp = len(distances) * np.array([p[:4].sum(), *p[4:]])
    assert ((obs - exp) ** 2 / exp).sum() < 16.27, (observed, exp)  # chi2(3) at p = 0.001
