"""LaNAS, its regression-tree ablation and the sequential-MCTS baseline: invariants and sample efficiency."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.errors import JnasError
from jnas.runs import run_loop, run_tabular, search
from jnas.spaces import get_space
from jnas.strategies import lanas_tree as lt
from jnas.strategies import make_strategy
from jnas.strategies.features import FAMILIES, feature_map, space_features
from jnas.strategies.mcts import prefix_tree


@pytest.fixture(scope="module")
def c10():
    return get_benchmark("nb201/cifar10")


# ----- helpers (numpy, float64) ---------------------------------------------------------
def path_scores(splits, leaf, feats, height):
    """``[n, h-1]`` signed margins of feature rows against each constraint on the path to ``leaf``.

    Positive = the constraint holds: left needs ``w·x - c > tol``, right ``w·x - c <= tol``.
    """
    w, c, tol = (np.asarray(a, np.float64) for a in splits)
    out = []
    for level in range(height - 1):
        j = 2**level - 1 + (leaf >> (height - 1 - level))
        right = (leaf >> (height - 2 - level)) & 1
        s = feats @ w[j] - c[j] - tol
        out.append(np.where(right, -s + 1e-300, s))  # right holds at s == 0 too
    return np.stack(out, axis=1)


def deepest_satisfied(margins):
    """Number of leading constraints (per row) that hold."""
    ok = margins > 0
    return np.where(ok.all(1), ok.shape[1], np.argmin(ok, axis=1))


def drive(strategy, bench, n, seed=0):
    """Run one seed of ``n`` queries with ``run_tabular``; yield (state after ask, asked batch) per query.

    The runner's ``aux`` hook hands back every step's state after ``ask`` (``State(history, inner)``, the
    tree in ``inner``); values are float64 under x64.
    """
    rec = run_tabular(strategy, bench, 1, seed0=seed, dtype=jnp.result_type(float),
                      aux=lambda step: (step.asked, step.archs))
    states, archs = jax.tree.map(lambda a: a[0], rec.aux)  # the one seed
    for t in range(n):
        yield jax.tree.map(lambda a, t=t: a[t], (states, archs))


# ----- feature maps ---------------------------------------------------------------------
FAST_FAMILIES = ("nb201", "nbgraph-proteins")


@pytest.mark.parametrize(
    "name", [f if f in FAST_FAMILIES else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES]
)
def test_feature_maps_encode_blocks_and_round_trip(name):
    space = get_space(name)
    fm = feature_map(space)
    archs = jax.jit(space.sample_batch, static_argnums=1)(jax.random.key(0), 32)
    x = np.asarray(jax.jit(jax.vmap(fm.encode))(archs))
    assert x.shape == (32, fm.dim) and np.all((x >= 0) & (x <= 1))
    for b, total in enumerate(fm.block_sum):
        np.testing.assert_allclose(x[:, fm.block == b].sum(1), total)
    # a vertex of the relaxation rounds back to its own architecture
    back = jax.jit(jax.vmap(fm.decode))(jax.random.split(jax.random.key(1), 32), jnp.asarray(x))
    for a, b in zip(jax.tree.leaves(archs), jax.tree.leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_unknown_space_and_bad_options_name_the_argument():
    with pytest.raises(JnasError, match="space: got 'nb101'"):
        make_strategy("lanas", get_space("nb101"), 10)
    with pytest.raises(JnasError, match="--set height"):
        make_strategy("lanas", get_space("nb201"), 10, height=0)
    with pytest.raises(JnasError, match="--set sampler"):
        make_strategy("lanas", get_space("darts"), 10, sampler="enumerate")
    with pytest.raises(JnasError, match="--set cp: unknown option"):
        make_strategy("rt", get_space("nb201"), 10, cp=0.5)
    with pytest.raises(JnasError, match="space: got 'darts'"):
        make_strategy("mcts", get_space("darts"), 10)


# ----- the tree -----------------------------------------------------------------------------
def test_learning_puts_the_better_half_on_the_left(c10):
    """After a fit, every node's left child has a mean value >= its right child's (on the fitted data)."""
    phi = space_features(c10.space)
    y_all = c10.column(*c10.search_metric)
    rows = np.asarray(c10.rows(c10.space.enumerate()))
    checked = 0
    fit = jax.jit(lambda x, y: lt.fit(x, y, jnp.int32(400), 5, jnp.float32(1e-4)))
    stats = jax.jit(lambda leaf, y: lt.node_stats(leaf, y, jnp.ones(400, bool), 5))
    for seed in range(3):
        idx = np.random.default_rng(seed).choice(len(phi), 400, replace=False)
        x, y = jnp.asarray(phi[idx], jnp.float32), jnp.asarray(y_all[rows[idx]], jnp.float32)
        splits, leaf = fit(x, y)
        cnt, tot = (np.asarray(a, np.float64) for a in stats(leaf, y))
        mean = tot / np.maximum(cnt, 1)
        for j in range(lt.n_internal(5)):
            left, right = 2 * j + 1, 2 * j + 2
            if cnt[left] and cnt[right]:
                assert mean[left] >= mean[right], (seed, j, mean[left], mean[right], cnt[left], cnt[right])
                checked += 1
        assert cnt[0] == 400 and mean[1] > mean[0] > mean[2]
    assert checked >= 30


def test_every_sample_honours_every_constraint_of_its_path(c10):
    """Enumerated sampling: the region is the leaf whenever it has an unqueried member, else the deepest one."""
    with jax.enable_x64(True):
        s = make_strategy("lanas", c10.space, 130)
        phi = space_features(c10.space).astype(np.float64)
        queried = np.zeros(len(phi), bool)
        deep = 0
        for state, archs in drive(s, c10, 130):
            i = int(c10.space.index(archs[0]))
            leaf, depth = int(state.inner.leaf), int(state.inner.depth)
            margins = path_scores(state.inner.splits, leaf, phi, 5)
            sat = deepest_satisfied(margins)
            assert not queried[i]
            assert sat[i] >= depth  # the sample honours every constraint down to its region
            assert depth == sat[~queried].max()  # ... and that region is the deepest with a free member
            deep += depth == 4
            queried[i] = True
        assert deep > 100  # nearly always the leaf itself


@pytest.mark.parametrize("sampler", ["reject", pytest.param("hitandrun", marks=pytest.mark.slow)])
def test_candidate_samplers_honour_the_constraints_of_their_region(c10, sampler):
    with jax.enable_x64(True):
        s = make_strategy("lanas", c10.space, 70, sampler=sampler, n_candidates=64)
        fm = feature_map(c10.space)
        seen, deep = set(), 0
        for state, archs in drive(s, c10, 70):
            x = np.asarray(fm.encode(archs[0]), np.float64)[None]
            sat = deepest_satisfied(path_scores(state.inner.splits, int(state.inner.leaf), x, 5))[0]
            assert sat >= int(state.inner.depth)
            deep += int(state.inner.depth) == 4
            seen.add(int(c10.space.index(archs[0])))
        assert len(seen) == 70  # no repeats
        assert deep > 35  # the leaf itself, usually (tiny leaves right after the first fit are missed)


@pytest.mark.slow
def test_non_enumerable_space_runs_with_both_candidate_samplers():
    space = get_space("darts")
    for sampler in ("reject", "hitandrun"):
        s = make_strategy("lanas", space, 40, sampler=sampler, n_candidates=32, n_init=8, n_select=8, height=3)

        def evaluate(archs):  # a smooth toy objective: prefer separable convolutions
            return np.asarray(((archs[..., 1] == 4) | (archs[..., 1] == 5)).sum(axis=(1, 2)), np.float64)

        rec = run_loop(s, evaluate, 1)
        assert np.isfinite(rec.values).all()
        assert rec.values[0, 20:].mean() > rec.values[0, :8].mean()


# ----- runs -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lanas", "rt"])
def test_needs_far_fewer_samples_than_random_search_to_reach_the_optimum(c10, name):
    # Random search without replacement hits the single optimum at a uniform time on 1..n: mean
    # (n + 1) / 2 ~ 7,800, and within 1,000 queries in 6.4% of runs. Misses count as budget + 1, so
    # a mean under a tenth of (n + 1) / 2 needs most seeds to hit.
    n, budget = c10.n_rows, 1000
    res = search("nb201/cifar10", name, budget, seeds=50).summary
    rs = search("nb201/cifar10", "rs", budget, seeds=50).summary
    assert res["found_optimum_fraction"] >= 0.8 > 0.3 > rs["found_optimum_fraction"]
    assert res["samples_to_optimum_mean"] < min((n + 1) / 2 / 10, rs["samples_to_optimum_mean"] / 2)


@pytest.mark.parametrize("name", ["lanas", "mcts"])
def test_vmapped_seed_equals_single_run_in_float64(c10, name):
    with jax.enable_x64(True):
        s = make_strategy(name, c10.space, 90)
        many = run_tabular(s, c10, 4, dtype=jnp.float64)
        for i in (0, 3):
            one = run_tabular(s, c10, 1, seed0=i, dtype=jnp.float64)
            np.testing.assert_array_equal(many.rows[i], one.rows[0])
            np.testing.assert_array_equal(many.values[i], one.values[0])


def test_loop_runner_equals_scan_runner_in_float64(c10):
    """The same strategy object drives a Python loop (e.g. real training) and the compiled scan alike.

    In float32 the two compile the refit into different programs whose sums round differently; an
    architecture on a split's boundary can then change sides and the runs part ways (statistically
    alike, not bitwise).
    """
    with jax.enable_x64(True):
        s = make_strategy("lanas", c10.space, 60)
        key = c10.search_metric
        scan = run_tabular(s, c10, 1, dtype=jnp.float64)
        loop = run_loop(s, lambda a: np.asarray(c10.query(a, *key, dtype=jnp.float64)), 1, row_of=c10.rows)
        np.testing.assert_array_equal(scan.rows, loop.rows)


def test_mcts_never_repeats_and_beats_random_search_on_nbgraph_proteins():
    bench = get_benchmark("nbgraph/proteins")
    n = bench.n_rows
    res = search("nbgraph/proteins", "mcts", n, seeds=100)
    idx = res.trajectory["index"]
    assert all(len(np.unique(r)) == n for r in idx[:10])
    col = bench.column(*bench.search_metric)
    m = int((col == np.nanmax(col)).sum())
    rs = (n + 1) / (m + 1)
    tau = res.summary["samples_to_optimum_mean"]
    sd = n / np.sqrt(12 * 100)
    assert tau < rs - 3 * sd, (tau, rs)


def test_prefix_tree_regions_are_contiguous_prefix_ranges():
    space = get_space("nbgraph-proteins")
    t = prefix_tree(space)
    from jnas.strategies.mcts import decisions

    dec = decisions(space)[t.order]
    assert t.size[0] == space.size
    for depth in range(dec.shape[1] + 1):
        nodes = t.path[:, depth]
        assert np.all(np.diff(nodes) >= 0)  # sorted order visits each node's region in one run
        first = t.lo[nodes]
        np.testing.assert_array_equal(dec[first, :depth], dec[:, :depth])


# ----- slow: the study numbers ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["lanas", "rt"])
def test_beats_random_search_on_nbgraph_citeseer(name):
    # On citeseer a linear model over links and ops ranks the optimum in its top 0.1%. (On cora it
    # ranks it in its bottom 2%, and LaNAS, RT and RE all find it less often than random search.)
    bench = get_benchmark("nbgraph/citeseer")
    res = search("nbgraph/citeseer", name, 2000, seeds=100).summary
    assert res["found_optimum_fraction"] >= 0.9  # random search: 2000 / 26206 = 7.6%
    assert res["samples_to_optimum_mean"] < (bench.n_rows + 1) / 2 / 10, res["samples_to_optimum_mean"]


@pytest.mark.slow
def test_mcts_beats_random_search_on_nb201_cifar10(c10):
    res = search("nb201/cifar10", "mcts", c10.n_rows, seeds=100).summary
    rs, sd = (c10.n_rows + 1) / 2, c10.n_rows / np.sqrt(12 * 100)
    assert res["samples_to_optimum_mean"] < rs - 3 * sd, res["samples_to_optimum_mean"]
