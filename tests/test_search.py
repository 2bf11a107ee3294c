"""Strategies and runners on real tables: statistics that would break if a method were wrong."""

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
    bs = back.trajectory["best_search"]
    assert np.all(np.diff(bs, axis=1) >= 0)
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
    assert np.all(np.diff(lat, axis=1) <= 0)
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
    s = make_strategy("ls", c10.space, 80)
    rec = run_tabular(s, c10, 4)
    archs = np.asarray(c10.space.enumerate())  # space index == base-5 code
    code_of_row = np.empty(15625, int)
    code_of_row[np.asarray(c10.rows(c10.space.enumerate()))] = np.arange(15625)
    for rows, vals in zip(rec.rows, rec.values):
        ops = archs[code_of_row[rows]]
        center = ops[0]
        nbrs = ops[1:25]
        assert all(int((n != center).sum()) == 1 for n in nbrs)
        assert len({tuple(n) for n in nbrs}) == 24  # the complete neighbourhood, no repeats
        nxt = ops[25]
        best = int(np.argmax(vals[1:25]))
        if vals[1 + best] > vals[0]:
            # moved: the next neighbourhood is around the best neighbour
            assert int((ops[26] != nbrs[best]).sum()) == 1 and int((nxt != nbrs[best]).sum()) == 1
        # otherwise query 25 is a fresh restart (any architecture)
