"""ANASOD searches (jnas.strategies.anasod, anasod_bo, anasod_ls): sampling, the trust region, vmapped
seeds, quality against random search's exact expectation, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.encodings import opdist
from jnas.errors import JnasError
from jnas.runs import search
from jnas.runs.runner import run_tabular
from jnas.spaces import get_space
from jnas.strategies import make_strategy
from jnas.strategies.anasod import op_set_spaces
from jnas.strategies.anasod_bo import TrustRegion, trust_region_step

ANASOD = ("anasod-rs", "anasod-biased-rs", "anasod-bo", "anasod-nep", "anasod-ls")
TINY = {"anasod-bo": {"n_init": 3, "n_candidates": 500, "gp_steps": 3},
        "anasod-nep": {"n_init": 3, "n_candidates": 500, "steps": 5, "layers": 2, "width": 8}}


# ----- sampling ------------------------------------------------------------------------------------
def test_every_fixed_op_set_space_is_served():
    assert {"nb201", "nbgraph", "darts", "nb101"} <= set(op_set_spaces())


@pytest.mark.parametrize("space_name", ["nb201", "nbgraph", "darts", "nb101"])
def test_an_architecture_drawn_from_an_encoding_has_its_rounded_counts(space_name):
    space = get_space(space_name)
    s = make_strategy("anasod-rs", space, 10)
    p = s.draw(jax.random.key(0), s.uniform_concentration(), 16)
    archs = s.realise_batch(jax.random.key(1), p)
    want = np.asarray(opdist.round_to_grid(p, s.n))
    got = np.asarray(jax.vmap(lambda a: opdist.counts(a, space))(archs)).reshape(want.shape)
    np.testing.assert_array_equal(got, want)
    assert bool(jax.vmap(space.is_valid)(archs).all())
    np.testing.assert_allclose(np.asarray(s.encode(archs)), want / s.n, atol=1e-6)


@pytest.mark.parametrize("alpha", [[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 5.0, 1.5, 11.0, 2.0]])
def test_dirichlet_sampler_moments(alpha):
    a = np.asarray(alpha)
    x = np.asarray(opdist.dirichlet(jax.random.key(3), a, (200_000,)), np.float64)
    np.testing.assert_allclose(x.sum(1), 1.0, atol=1e-5)
    a0 = a.sum()
    mean, var = a / a0, a * (a0 - a) / (a0**2 * (a0 + 1))
    se = np.sqrt(var / x.shape[0])
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se)
    np.testing.assert_allclose(x.var(0), var, rtol=0.03)
    # E[log x_i] = ψ(α_i) - ψ(α_0): a check on the whole shape, not only two moments
    psi = np.asarray(jax.scipy.special.digamma(jnp.asarray(np.append(a, a0), jnp.float32)))
    np.testing.assert_allclose(np.log(x).mean(0), psi[:-1] - psi[-1], atol=0.02)


def test_dirichlet_sampler_refuses_concentrations_below_one():
    with pytest.raises(JnasError, match="alpha: .*expected float\\[..., k\\] concentrations >= 1"):
        opdist.dirichlet(jax.random.key(0), jnp.array([0.5, 1.0]), (3,))


def test_biased_concentration_is_eq3_and_its_mode_is_the_centre():
    p = jnp.array([0.5, 0.25, 0.25, 0.0])
    alpha = opdist.biased_concentration(p, 2.0)
    np.testing.assert_allclose(np.asarray(alpha), 4 * 2.0 * np.asarray(p) + 1)
    mode = (np.asarray(alpha) - 1) / (np.asarray(alpha).sum() - 4)
    np.testing.assert_allclose(mode, np.asarray(p), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(opdist.biased_concentration(p, 0.0)), np.ones(4))


def test_grid_points_are_the_whole_grid_in_order():
    g = opdist.grid_points(6, 5)
    assert g.shape == (210, 5) and (g.sum(1) == 6).all() and (g >= 0).all()
    assert len({tuple(r) for r in g}) == 210 and [tuple(r) for r in g] == sorted(tuple(r) for r in g)


def test_fast_rank_equals_the_double_argsort_with_ties():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 4, (5000, 6)) * 0.25, jnp.float32)  # many ties
    want = jnp.argsort(jnp.argsort(-x, axis=-1, stable=True), axis=-1, stable=True)
    np.testing.assert_array_equal(np.asarray(opdist._descending_rank(x)), np.asarray(want))
    wide = jnp.asarray(rng.integers(0, 4, (50, 20)), jnp.float32)  # k > 16: the argsort path
    want = jnp.argsort(jnp.argsort(-wide, axis=-1, stable=True), axis=-1, stable=True)
    np.testing.assert_array_equal(np.asarray(opdist._descending_rank(wide)), np.asarray(want))


# ----- the strategies -----------------------------------------------------------------------------
def test_biased_rs_beta_rises_linearly_to_beta_max():
    s = make_strategy("anasod-biased-rs", get_space("nb201"), 300, beta_max=2.0)
    np.testing.assert_allclose([float(s.beta(t)) for t in (0, 150, 300)], [0.0, 1.0, 2.0])


def test_biased_rs_centres_on_the_best_encoding_told():
    space = get_space("nb201")
    s = make_strategy("anasod-biased-rs", space, 10)
    st = s.init(jax.random.key(0))
    for i, v in enumerate([0.3, 0.9, np.nan, 0.5]):
        arch = space.from_index(jnp.int32(i * 1000 + 7))
        st = s.tell(st, jax.tree.map(lambda x: x[None], arch), jnp.array([v], jnp.float32))
        if i == 1:
            want = np.asarray(opdist.distribution(arch, space))
    np.testing.assert_allclose(np.asarray(st.inner.p)[0], want)
    assert float(st.inner.value) == pytest.approx(0.9)


def _expected(seq):
    beta, succ, fail, out = 0.0, 0, 0, []
    for s in seq:
        succ, fail = (succ + 1, 0) if s else (0, fail + 1)
        if succ >= 3:
            beta, succ = (0.0 if beta / 2 < 0.25 else beta / 2), 0
        if fail >= 2:
            beta, fail = (0.25 if beta == 0 else min(2 * beta, 2.0)), 0
        out.append(beta)
    return out


def test_trust_region_crafted_sequence_exact():
    tr = TrustRegion(jnp.float32(0.0), jnp.int32(0), jnp.int32(0))
    seq = [False] * 9 + [True] * 3 + [True, False, True, True, True] + [True] * 9
    got = []
    for success in seq:
        tr = trust_region_step(tr, jnp.array(success), 0.25, 2.0, 3, 2)
        got.append(float(tr.beta))
    assert got == [0, 0.25, 0.25, 0.5, 0.5, 1, 1, 2, 2,  # doubling every 2nd failure, capped at 2
                   2, 2, 1,  # the 3rd success halves
                   1, 1, 1, 1, 0.5,  # a failure restarts the success count
                   0.5, 0.5, 0.25, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0]  # halving below beta_min gives 0, 0 stays
    assert got == _expected(seq)


def test_anasod_bo_trust_region_moves_only_after_the_initial_design(monkeypatch):
    space = get_space("nb201")
    s = make_strategy("anasod-bo", space, 12, n_init=4, failure_tolerance=1, n_candidates=50, gp_steps=2)
    st = s.init(jax.random.key(0))
    ask, tell = jax.jit(s.ask), jax.jit(s.tell)
    betas = []
    for i in range(8):
        archs, st = ask(st, jax.random.key(i))
        st = tell(st, archs, jnp.array([90.0 - i], jnp.float32))  # every value worse: failures only
        betas.append(float(st.inner.region.beta))
    assert betas == [0, 0, 0, 0, 0.25, 0.5, 1.0, 2.0]


@pytest.mark.parametrize("name", ANASOD)
def test_vmapped_seeds_equal_single_runs(name):
    bench = get_benchmark("nb201/cifar10")
    s = make_strategy(name, bench.space, 14, **TINY.get(name, {}))
    together = run_tabular(s, bench, 3, seed0=5)
    for i in range(3):
        alone = run_tabular(s, bench, 1, seed0=5 + i)
        np.testing.assert_array_equal(together.rows[i], alone.rows[0])
        np.testing.assert_array_equal(together.values[i], alone.values[0])


@pytest.mark.parametrize("name", ANASOD)
@pytest.mark.parametrize("space_name", ["darts", "nbgraph", "nb101"])
def test_every_anasod_strategy_runs_on_every_op_set_space(name, space_name):
    space = get_space(space_name)
    s = make_strategy(name, space, 8, **TINY.get(name, {}))

    def objective(archs):  # larger when more slots hold the first op (a smooth function of the encoding)
        return 90.0 + 5.0 * s.encode(archs)[:, :, 0].mean(-1)

    @jax.jit
    def run(key):
        def step(st, k):
            archs, st = s.ask(st, k)
            v = objective(archs)
            return s.tell(st, archs, v), v

        return jax.lax.scan(step, s.init(key), jax.random.split(key, s.n_steps))

    st, v = run(jax.random.key(0))
    assert np.isfinite(np.asarray(v)).all() and int(st.history.count) == 8


def test_anasod_ls_climbs_encodings_then_architectures():
    space = get_space("nb201")
    s = make_strategy("anasod-ls", space, 200)
    target = jnp.array([0, 2, 3, 1, 0])  # the encoding with the best value

    def value(archs):
        c = jax.vmap(lambda a: opdist.counts(a, space))(archs)
        return -jnp.abs(c - target).sum(-1).astype(jnp.float32)

    st = s.init(jax.random.key(1))
    ask, tell = jax.jit(s.ask), jax.jit(s.tell)
    phases, props = [], []
    for i in range(200):
        archs, st = ask(st, jax.random.key(100 + i))
        phases.append(bool(st.inner.on_encodings))
        props.append(np.asarray(opdist.counts(jax.tree.map(lambda x: x[0], archs), space)))
        st = tell(st, archs, value(archs))
    first_arch = phases.index(False)
    # phase 1 reached the optimum encoding; the first architecture of phase 2 is drawn from it
    np.testing.assert_array_equal(props[first_arch], np.asarray(target))
    # every phase-1 query after the start is a grid neighbour of an encoding evaluated before
    for j in range(1, first_arch):
        assert any(np.abs(props[j] - props[i]).sum() == 2 for i in range(j)), j


# ----- quality on NB201 against random search's exact expectation ---------------------------------------
RS_REGRET_300 = 0.465  # mean test regret of random search's best-by-validation architecture at 300 queries


def test_biased_rs_beats_random_search_expectation_over_50_seeds():
    s = search("nb201/cifar10", "anasod-biased-rs", 300, seeds=50).summary
    assert s["final_regret_mean"] + s["final_regret_se"] < RS_REGRET_300, s["final_regret_mean"]


@pytest.mark.slow
def test_anasod_bo_beats_random_search_300_expectation_at_150_queries_over_30_seeds():
    s = search("nb201/cifar10", "anasod-bo", 150, seeds=30).summary
    assert s["final_regret_mean"] + s["final_regret_se"] < RS_REGRET_300, s["final_regret_mean"]


# ----- names, options and bad input ------------------------------------------------------------------
def test_names_and_options_are_listed(capsys):
    from jnas.cli import main

    main(["list"])
    out = capsys.readouterr().out
    for name in ANASOD:
        assert name in out
    assert "beta_max" in out and "n_candidates" in out and "sampling" in out


@pytest.mark.parametrize("name, opts, message", [
    ("anasod-biased-rs", {"beta_max": 0}, "--set beta_max: got 0.0, expected a number > 0"),
    ("anasod-bo", {"beta_max": -1}, "--set beta_max: got -1.0, expected a number > 0"),
    ("anasod-bo", {"n_candidates": 0}, "--set n_candidates: got 0, expected an integer >= 1"),
    ("anasod-nep", {"n_candidates": 0}, "--set n_candidates: got 0, expected an integer >= 1"),
    ("anasod-bo", {"beta_min": 4.0}, "--set beta_min: got 4.0, expected at most beta_max=2.0"),
    ("anasod-bo", {"sampling": "uniform"}, "--set sampling: got 'uniform', expected counts or categorical"),
    ("anasod-bo", {"mirror_steps": 5}, "--set mirror_steps: has no effect unless acq_optimizer=mirror"),
    ("anasod-bo", {"batch_rule": "believer"}, "--set batch_rule: has no effect unless batch_size > 1"),
    ("anasod-nep", {"batch_rule": "top"}, "--set batch_rule: unknown option for strategy 'anasod-nep'"),
    ("anasod-ls", {"beta_max": 1}, "--set beta_max: unknown option for strategy 'anasod-ls'"),
])
def test_bad_options_are_one_line_errors(name, opts, message):
    with pytest.raises(JnasError) as e:
        make_strategy(name, get_space("nb201"), 20, **opts)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ANASOD)
def test_a_space_without_a_fixed_op_set_is_refused(name):
    with pytest.raises(JnasError, match=f"{name}: space 'convnet' has no fixed op set .*expected one of .*nb201"):
        make_strategy(name, get_space("convnet"), 20)


def test_log_error_target_needs_a_percent_accuracy():
    with pytest.raises(JnasError, match="--set target: log-error needs an accuracy in percent, but metric "
                                        "'edgegpu_latency' is in 'ms'"):
        search("nb201/cifar10", "anasod-bo", 20, metric="edgegpu_latency")
    s = search("nb201/cifar10", "anasod-bo", 12, metric="edgegpu_latency",
               options={"target": "value", "n_init": 4, "n_candidates": 200}).summary
    assert np.isfinite(s["final_test_mean"])


def test_scoring_the_grid_once_picks_what_scoring_every_draw_picks():
    space = get_space("nb201")
    grid = make_strategy("anasod-bo", space, 40, n_init=10, n_candidates=5000)
    every = make_strategy("anasod-bo", space, 40, n_init=10, n_candidates=5000)
    every._grid = None  # score all 5,000 rounded draws
    st = grid.init(jax.random.key(0))
    ask, tell = jax.jit(grid.ask), jax.jit(grid.tell)
    for i in range(14):
        archs, st = ask(st, jax.random.key(i))
        st = tell(st, archs, 80.0 + 10 * grid.encode(archs)[:, 0, 3] - 5 * grid.encode(archs)[:, 0, 0])
    key = jax.random.key(99)
    picked = [np.asarray(opdist.counts(jax.tree.map(lambda x: x[0], jax.jit(s.ask)(st, key)[0]), space))
              for s in (grid, every)]
    np.testing.assert_array_equal(picked[0], picked[1])
    feats, points, present = grid._pool(jax.random.key(7), st.inner)
    assert present is not None and 1 < int(present.sum()) <= 210
    _, drawn, none = every._pool(jax.random.key(7), st.inner)
    assert none is None and {tuple(r) for r in np.asarray(drawn)[:, 0]} == {
        tuple(r) for r in np.asarray(points)[np.asarray(present), 0]}


def test_path_bo_sees_the_path_encoding_and_refuses_spaces_without_one():
    s = make_strategy("bo", get_space("nb201"), 20, encoding="path")
    one = jax.tree.map(lambda x: x[None], get_space("nb201").template())
    assert s._encode(one).shape == (1, 84) and make_strategy("bo", get_space("nb201"), 20)._encode(one).shape[1] == 30
    with pytest.raises(JnasError, match="--set encoding: got 'path', expected onehot for space 'convnet'"):
        make_strategy("bo", get_space("convnet"), 20, encoding="path")
