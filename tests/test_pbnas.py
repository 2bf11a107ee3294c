"""Predictor-based NAS (``pbnas``) and its candidate samplers on NAS-Bench-201 CIFAR-10."""

from math import comb

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.encodings.graph import graph_tensors
from jnas.errors import JnasError
from jnas.metrics import expected_trials_curve, gain_db
from jnas.predictors.gcn import GCN
from jnas.runs import run_tabular, search
from jnas.spaces import get_space
from jnas.strategies import make_strategy
from jnas.strategies.pbnas import evolve_nb201, ml_ascent, nb201_relaxed_graph

FAST = {"gcn_steps": 10, "n_init": 4, "k": 4}


@pytest.fixture(scope="module")
def c10():
    return get_benchmark("nb201/cifar10")


def run_with_proposals(strategy, bench, seeds: int):
    """Run ``strategy`` with ``run_tabular`` and check every step's proposal in-graph (its ``aux`` hook).

    Returns ``(rows int[seeds, budget], cands_ok bool[seeds, steps], picks_top bool[seeds, steps])``:
    every cell of S' is a cell of the table, and the picks drawn from S' are its best-scored eligible members.
    """
    index = jax.vmap(bench.space.index)

    def check(step):
        # the proposal this step's ask chose from: ``propose`` is ``ask`` plus what it looked at
        archs, _, prop = strategy.propose(step.state, step.key)
        replayed = index(archs) == index(step.archs)
        cands_ok = (bench.rows(prop.candidates) >= 0).all()
        same = (index(step.archs)[:, None] == index(prop.candidates)[None, :]) & prop.eligible[None, :]
        pick_score = jnp.where(same, prop.scores[None, :], -jnp.inf).max(axis=1)  # -inf: a random fill
        top = -jnp.sort(-jnp.concatenate([prop.scores, jnp.full((strategy.k,), -jnp.inf)]))[: strategy.k]
        got = -jnp.sort(-pick_score)
        picks_top = jnp.all((got == top) | (got == -jnp.inf))
        return replayed.all(), cands_ok, picks_top

    rec = run_tabular(strategy, bench, seeds, aux=check)
    replayed, cands_ok, picks_top = rec.aux
    assert replayed.all()  # the proposal checked is the one the run used
    return rec.rows, cands_ok, picks_top


@pytest.mark.parametrize(
    "sampler, opts",
    [
        pytest.param("space", {}, marks=pytest.mark.slow),
        ("uniform", {"n_candidates": 2}),  # fewer candidates than k: the batch is filled at random
        pytest.param("ml", {"n_candidates": 16, "ml_steps": 3}, marks=pytest.mark.slow),
        ("evolutionary", {"n_candidates": 8, "p_mutate": 0.02}),  # mostly parents again: duplicates and re-queries
    ],
)
def test_pbnas_never_requeries_and_proposes_valid_cells(c10, sampler, opts):
    s = make_strategy("pbnas", c10.space, 32, sampler=sampler, **FAST, **opts)
    assert s.batch_size == 4
    rows, cands_ok, picks_top = run_with_proposals(s, c10, 2)
    assert rows.shape == (2, 32)
    assert (rows >= 0).all()  # every query is a cell of the table
    for r in rows:
        assert len(np.unique(r)) == r.size, np.sort(r)
    assert cands_ok.all() and picks_top.all()


def test_relaxed_nb201_graph_equals_graph_tensors_on_one_hot_rows(c10):
    archs = c10.space.from_index(jnp.arange(0, c10.space.size, 7))
    rows = jax.nn.one_hot(archs.astype(jnp.int32), 5)
    got = jax.vmap(lambda r: nb201_relaxed_graph(c10.space, r))(rows)
    want = jax.vmap(lambda a: graph_tensors(c10.space, a))(archs)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_ml_ascent_raises_the_predicted_score_of_its_starts(c10):
    sp = c10.space
    idx = jax.random.permutation(jax.random.key(0), sp.size)[:40]
    train = sp.from_index(idx)
    g = jax.vmap(lambda a: graph_tensors(sp, a))
    gcn = GCN(hidden=32, steps=60, lr=0.05)
    params = jax.jit(gcn.fit)(jax.random.key(1), g(train), c10.query(train))
    starts = jax.vmap(sp.sample)(jax.random.split(jax.random.key(2), 64))
    best, f0, f1 = jax.jit(lambda p, s: ml_ascent(sp, p, s, 10, 0.5))(params, starts)
    # the scores it reports are the GCN's scores of the decoded cells
    np.testing.assert_allclose(np.asarray(gcn.predict(params, g(starts))[0]), np.asarray(f0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(gcn.predict(params, g(best))[0]), np.asarray(f1), rtol=1e-4, atol=1e-4)
    assert ((np.asarray(best) >= 0) & (np.asarray(best) < 5)).all()
    gain = np.asarray(f1 - f0)
    assert (gain >= -1e-6).all()
    assert (gain > 1e-6).mean() > 0.5, gain
    # the ascent climbs far: its cells score like the top of the whole space
    all_scores = np.asarray(gcn.predict(params, g(sp.enumerate()))[0])
    assert np.median(np.asarray(f1)) > np.quantile(all_scores, 0.9)
    assert np.median(np.asarray(f0)) < np.quantile(all_scores, 0.75)


def test_evolutionary_operators_on_nb201_rows():
    keys = jax.random.split(jax.random.key(0), 4000)
    a = jnp.array([0, 1, 2, 3, 4, 3], jnp.int8)
    b = jnp.array([4, 4, 4, 4, 4, 4], jnp.int8)
    children = jax.jit(jax.vmap(lambda k, m: evolve_nb201(k, a, b, m, 0.1), in_axes=(0, None)))
    mut, xo = np.asarray(children(keys, True)), np.asarray(children(keys, False))
    assert ((mut >= 0) & (mut < 5)).all() and mut.dtype == np.int8
    # a row keeps its op when its bit goes off and no other comes on, or when its bit
    # stays on and wins the uniform pick among the j other bits that came on
    p = 0.1
    keep = p * (1 - p) ** 4 + (1 - p) * sum(comb(4, j) * p**j * (1 - p) ** (4 - j) / (j + 1) for j in range(5))
    np.testing.assert_allclose((mut == np.asarray(a)).mean(), keep, atol=0.01)
    # and otherwise moves to each of the 4 other ops alike
    moved = mut[:, 0][mut[:, 0] != a[0]]
    np.testing.assert_allclose(np.bincount(moved, minlength=5)[1:] / moved.size, 0.25, atol=0.06)
    assert (((xo == np.asarray(a)) | (xo == np.asarray(b))).all())
    np.testing.assert_allclose((xo == np.asarray(a))[:, :4].mean(), 0.5, atol=0.03)


def test_evolutionary_candidates_gain_more_than_uniform_at_100(c10):
    """The paper's measure of candidate quality (its Figs. 3 and 7), on 12 seeds of 60 queries.

    C = every cell pbnas proposed after its random start (K = 4 per step,
    pooled over steps and seeds); drawing from C instead of the space S until
    one cell reaches J_target takes ``E[τ] = (|C| + 1) / (M + 1)`` draws on
    average (eq. 14, ``M`` = cells of C at or below J_target), and the gain is
    ``10 log10(E_S[τ] / E_C[τ])`` dB (eq. 15). J_target runs over the 0.5 %,
    1 % and 2 % quantiles of the space's validation error, where the paper
    finds uniform sampling of N' = 100 loses most of its gain.
    """
    err = 1 - c10.column(*c10.search_metric) / 100
    j_targets = np.quantile(err, [0.005, 0.01, 0.02])
    tau_s = expected_trials_curve(err, j_targets, higher_is_better=False)
    gains = {}
    for sampler in ("evolutionary", "uniform"):
        s = make_strategy("pbnas", c10.space, 60, sampler=sampler, n_candidates=100, gcn_steps=30)
        rec = run_tabular(s, c10, 12)
        c = 1 - rec.values[:, 4:].reshape(-1) / 100
        with np.errstate(divide="ignore"):  # no hit at all: -inf dB
            gains[sampler] = gain_db(tau_s, expected_trials_curve(c, j_targets, higher_is_better=False))
    assert gains["evolutionary"].mean() > gains["uniform"].mean() + 1.5, gains


def test_pbnas_options_are_checked(c10):
    with pytest.raises(JnasError, match="sampler"):
        make_strategy("pbnas", c10.space, 20, sampler="grid")
    with pytest.raises(JnasError, match="sampler"):
        make_strategy("pbnas", get_space("nb101"), 20, sampler="space")  # not enumerable
    with pytest.raises(JnasError, match="space"):
        make_strategy("pbnas", get_space("darts"), 20, sampler="uniform")
    with pytest.raises(JnasError, match="sampler"):
        make_strategy("pbnas", get_space("nbgraph"), 20, sampler="ml")
    with pytest.raises(JnasError, match="k"):
        make_strategy("pbnas", c10.space, 20, k=0)
    with pytest.raises(JnasError, match="budget"):
        make_strategy("pbnas", c10.space, 20000)


@pytest.mark.slow
def test_pbnas_whole_space_beats_random_search_at_100_queries():
    rs = search("nb201/cifar10", "rs", 100, seeds=12).summary
    pb = search("nb201/cifar10", "pbnas", 100, seeds=12, options={"gcn_steps": 60}).summary
    diff = rs["final_regret_mean"] - pb["final_regret_mean"]
    assert diff > 2 * np.hypot(rs["final_regret_se"], pb["final_regret_se"]), (rs, pb)
    assert pb["found_optimum_fraction"] > rs["found_optimum_fraction"]
