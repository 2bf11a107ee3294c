"""REINFORCE (``jnas.strategies.reinforce``): the gradient, the controller's log-probabilities, learning a
crafted table, a search through the normal path, and option errors."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from jnas.benchmarks import get_benchmark
from jnas.cli import main
from jnas.errors import JnasError
from jnas.runs import load_result, search
from jnas.runs.runner import run_loop, run_tabular
from jnas.spaces import get_space
from jnas.strategies import make_strategy, names
from jnas.strategies.reinforce import DEFAULT_LR, Controller, rollout, surrogate_loss


def _controller(cards, kind, seed=0):
    """``(graphdef, params)`` of a controller with random (non-uniform) parameters."""
    graphdef, params = nnx.split(Controller(cards, kind, 8, rngs=nnx.Rngs(seed)))
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return graphdef, jax.tree.unflatten(treedef, [0.5 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


def _all_tokens(cards):
    return jnp.asarray(list(itertools.product(*[range(c) for c in cards])), jnp.int32)


def _log_probs(graphdef, params, tokens, live_fn=None):
    model = nnx.merge(graphdef, params)
    return jax.vmap(lambda t: rollout(model, None, t, live_fn)[1])(tokens)


# ----- 1. the REINFORCE gradient --------------------------------------------------------------------
@pytest.mark.parametrize("kind, cards", [("softmax", (2,)), ("lstm", (2,)), ("lstm", (2, 3))])
def test_reinforce_gradient_is_the_gradient_of_the_expected_reward(kind, cards):
    """E_a[∇ surrogate(a)] over every action, weighted by its probability, equals −∇ E[R] by finite differences."""
    graphdef, params = _controller(cards, kind)
    acts = _all_tokens(cards)  # two actions (one decision of 2), or 6 sequences for the autoregressive case
    reward = jnp.asarray(np.random.default_rng(1).normal(3.0, 2.0, len(acts)), jnp.float32)

    @jax.jit
    def expected_reward(p):
        return jnp.sum(jnp.exp(_log_probs(graphdef, p, acts)) * reward)

    prob = jnp.exp(_log_probs(graphdef, params, acts))
    np.testing.assert_allclose(float(prob.sum()), 1.0, rtol=1e-6)
    assert float(prob.min()) > 0.02  # a policy far from degenerate, so every action counts
    # the surrogate's mean over a "batch" of every action, each weighted by len(acts) · p(a): the exact expectation
    g = jax.grad(lambda p: surrogate_loss(graphdef, p, acts, len(acts) * prob * reward))(params)
    flat_g, _ = ravel_pytree(g)
    flat_p, unravel = ravel_pytree(params)
    eps = 1e-2
    rng = np.random.default_rng(2)
    for _ in range(3):  # central differences along random directions
        v = jnp.asarray(rng.normal(size=flat_p.shape), jnp.float32)
        v = v / jnp.linalg.norm(v)
        fd = (expected_reward(unravel(flat_p + eps * v)) - expected_reward(unravel(flat_p - eps * v))) / (2 * eps)
        assert float(-flat_g @ v) == pytest.approx(float(fd), rel=2e-3, abs=1e-4)
    if kind == "softmax":  # every coordinate
        for i in range(flat_p.shape[0]):
            e = jnp.zeros_like(flat_p).at[i].set(eps)
            fd = (expected_reward(unravel(flat_p + e)) - expected_reward(unravel(flat_p - e))) / (2 * eps)
            assert float(-flat_g[i]) == pytest.approx(float(fd), rel=2e-3, abs=1e-4)
    # the gradient's direction raises the expected reward
    step = unravel(flat_p - 0.1 * flat_g)
    assert float(expected_reward(step)) > float(expected_reward(params))


# ----- 2. log-probabilities ----------------------------------------------------------------------------
@pytest.mark.parametrize("space_name, kind", [("nb201-3", "lstm"), ("nb201-3", "softmax"), ("nbgraph-proteins", "lstm"),
                                              ("convnet-small", "lstm"), ("darts", "lstm")])
def test_log_probabilities_of_samples_match_a_rescore(space_name, kind):
    space = get_space(space_name)
    s = make_strategy("reinforce", space, 40, controller=kind, batch_size=4)
    params = s.init_params(jax.random.key(3))
    if kind == "softmax":  # zeros at init: make it non-uniform
        params = jax.tree.map(lambda x: jax.random.normal(jax.random.key(4), x.shape), params)
    toks, logp, ent = jax.jit(jax.vmap(lambda k: s.sample(params, k)))(jax.random.split(jax.random.key(5), 64))
    logp2, ent2 = jax.jit(jax.vmap(lambda t: s.score(params, t)))(toks)
    np.testing.assert_allclose(np.asarray(logp2), np.asarray(logp), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ent2), np.asarray(ent), rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(logp) < 0) and np.all(np.asarray(ent) > 0)
    cards = s.cards
    assert np.all((np.asarray(toks) >= 0) & (np.asarray(toks) < cards))
    if space.decisions.conditional:  # dead decisions are 0 and count for nothing
        live = np.asarray(jax.vmap(space.live_decisions)(toks))
        assert not live.all() and np.all(np.asarray(toks)[~live] == 0)
    if space_name in ("nb201-3", "convnet-small"):
        # every token vector (dead decisions at 0) is one member: the members' probabilities sum to 1
        all_toks = jax.vmap(space.to_decisions)(space.enumerate())
        assert len(np.unique(np.asarray(all_toks), axis=0)) == space.size
        total = jnp.exp(jax.jit(jax.vmap(lambda t: s.score(params, t)[0]))(all_toks)).sum()
        assert float(total) == pytest.approx(1.0, abs=1e-4)


def test_samples_follow_the_controllers_probabilities():
    """Empirical frequencies of 20,000 draws on a 2 × 3 toy match exp(log p) of the re-score."""
    graphdef, params = _controller((2, 3), "lstm", seed=7)
    model = nnx.merge(graphdef, params)
    toks, _, _ = jax.jit(jax.vmap(lambda k: rollout(model, k)))(jax.random.split(jax.random.key(0), 20000))
    acts = _all_tokens((2, 3))
    p = np.exp(np.asarray(_log_probs(graphdef, params, acts)))
    freq = np.array([(np.asarray(toks) == np.asarray(a)).all(axis=1).mean() for a in acts])
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p.max() / 20000))


# ----- 3. learning a crafted table --------------------------------------------------------------------
def _crafted_values(space):
    """A table on nb201-3 (729 cells): 10 per edge matching a target cell plus a tie-breaking term < 1, so
    the target is the unique optimum and no other cell is within 9 of it."""
    target = jnp.asarray([2, 0, 1, 1, 2, 0], jnp.int8)
    noise = jnp.asarray(np.random.default_rng(0).random(space.size), jnp.float32)
    cells = space.enumerate()
    table = 10.0 * (cells == target).sum(axis=1) + noise
    return target, table


@pytest.mark.parametrize("kind, steps", [("lstm", 300), ("softmax", 400)])
def test_controller_learns_the_optimum_of_a_crafted_table(kind, steps):
    space = get_space("nb201-3")
    target, table = _crafted_values(space)
    bs = 4
    s = make_strategy("reinforce", space, steps * bs, controller=kind, batch_size=bs)  # default lr

    def step(state, k):
        archs, state = s.ask(state, k)
        vals = table[jax.vmap(space.index)(archs)]
        return s.tell(state, archs, vals), jax.vmap(space.index)(archs)

    @jax.jit
    def run(key):
        k0, k1 = jax.random.split(key)
        return jax.lax.scan(step, s.init(k0), jax.random.split(k1, steps))

    state, rows = run(jax.random.key(0))
    rows = np.asarray(rows)
    best = int(space.index(target))
    assert (rows[:5] == best).mean() < 0.2  # it starts near uniform (1 / 729)
    assert (rows[-25:] == best).mean() >= 0.95, (rows[-25:] == best).mean()
    # the policy itself, sampled afresh
    toks, _, _ = jax.vmap(lambda k: s.sample(state.inner.params, k))(jax.random.split(jax.random.key(9), 200))
    assert (np.asarray(toks) == np.asarray(target)).all(axis=1).mean() >= 0.95


# ----- 4. the normal search path ----------------------------------------------------------------------
def test_search_on_nb201_writes_result_files(tmp_path):
    out = tmp_path / "rl"
    res = search("nb201/cifar10", "reinforce", 30, seeds=2, out=out)
    for f in ("run.json", "summary.json", "trajectory.npz"):
        assert (out / f).is_file(), f
    s = json.loads((out / "summary.json").read_text())
    assert s["strategy"] == "reinforce" and s["seeds"] == 2 and s["budget"] == 30
    assert s["options"]["controller"] == "lstm" and s["options"]["batch_size"] == 1
    assert np.isfinite(s["final_test_mean"]) and s["final_regret_mean"] >= 0
    back = load_result(out)
    assert back.trajectory["index"].shape == (2, 30) and (back.trajectory["index"] >= 0).all()
    np.testing.assert_array_equal(back.trajectory["index"], res.trajectory["index"])
    # the two seeds search differently; the same seed searches the same way (softmax via the CLI)
    assert not np.array_equal(res.trajectory["index"][0], res.trajectory["index"][1])
    cli = tmp_path / "cli"
    assert main(["search", "--benchmark", "nb201/cifar10", "--strategy", "reinforce", "--budget", "30", "--seeds", "2",
                 "--set", "controller=softmax", "--set", "batch_size=3", "--out", str(cli), "--no-progress"]) == 0
    again = search("nb201/cifar10", "reinforce", 30, seeds=2, options={"controller": "softmax", "batch_size": 3})
    np.testing.assert_array_equal(load_result(cli).trajectory["index"], again.trajectory["index"])


def test_the_python_loop_runner_gives_the_scans_result():
    bench = get_benchmark("nb201/cifar10")
    s = make_strategy("reinforce", bench.space, 12, batch_size=3)
    scan = run_tabular(s, bench, 2, seed0=5)
    metric = bench.search_metric

    def evaluate(archs):
        return np.asarray(bench.query_rows(bench.rows(archs), metric))

    loop = run_loop(s, evaluate, 2, row_of=lambda a: bench.rows(a), seed0=5)
    np.testing.assert_array_equal(loop.rows, scan.rows)
    np.testing.assert_allclose(loop.values, scan.values)


def test_listed_with_its_options(capsys):
    assert "reinforce" in names()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for opt in ("controller=lstm", "hidden=64", "lr=0.0", "baseline_decay=0.9", "entropy=", "on_failure=worst",
                "batch_size=1"):
        assert f"reinforce --set {opt}" in out, opt


def test_learning_rate_zero_is_the_controllers_tuned_default():
    space = get_space("nb201")
    assert make_strategy("reinforce", space, 30).settings()["lr"] == DEFAULT_LR["lstm"] == 0.001
    assert make_strategy("reinforce", space, 30, controller="softmax").settings()["lr"] == DEFAULT_LR["softmax"]
    assert make_strategy("reinforce", space, 30, controller="softmax", lr=0.02).settings()["lr"] == 0.02


def test_failures_count_as_the_worst_value_or_are_skipped():
    space = get_space("nb201-3")
    vals = jnp.asarray([5.0, jnp.nan, 1.0])
    for policy in ("worst", "skip"):
        s = make_strategy("reinforce", space, 30, controller="softmax", batch_size=3, on_failure=policy)
        st = s.init(jax.random.key(0))
        archs, st = jax.jit(s.ask)(st, jax.random.key(1))
        st = jax.jit(s.tell)(st, archs, vals)
        mean = 7 / 3 if policy == "worst" else 3.0  # worst: NaN counts as 1.0, the worst value told
        assert float(st.inner.num) == pytest.approx((1 - s.baseline_decay) * mean)
        assert np.all(np.isfinite(np.asarray(ravel_pytree(st.inner.params)[0])))
    s = make_strategy("reinforce", space, 30, controller="softmax", batch_size=2, on_failure="skip")  # all failed
    st = s.init(jax.random.key(0))
    archs, st1 = jax.jit(s.ask)(st, jax.random.key(1))
    st2 = jax.jit(s.tell)(st1, archs, jnp.full(2, jnp.nan))
    assert float(st2.inner.den) == 0.0
    np.testing.assert_array_equal(ravel_pytree(st2.inner.params)[0],
                                  ravel_pytree(st1.inner.params)[0])


# ----- 5. bad options ----------------------------------------------------------------------------------
@pytest.mark.parametrize("opts, message", [
    ({"controller": "gru"}, "--set controller: got 'gru', expected one of lstm, softmax"),
    ({"lr": -0.01}, "--set lr: got -0.01, expected a number >= 0 (0: the controller's default)"),
    ({"lr": "fast"}, "--set lr: got 'fast', expected a number >= 0"),
    ({"baseline_decay": 1.0}, "--set baseline_decay: got 1.0, expected a number in [0, 1)"),
    ({"entropy": -0.1}, "--set entropy: got -0.1, expected a number >= 0"),
    ({"hidden": 0}, "--set hidden: got 0, expected an integer >= 1"),
    ({"batch_size": 0}, "--set batch_size: got 0, expected an integer >= 1"),
    ({"on_failure": "-inf"}, "--set on_failure: got '-inf', expected one of worst, skip"),
    ({"controller": "softmax", "hidden": 32}, "--set hidden: has no effect unless controller=lstm"),
    ({"temperature": 2}, "--set temperature: unknown option for strategy 'reinforce'"),
])
def test_bad_options_give_one_line_errors(opts, message):
    with pytest.raises(JnasError) as e:
        make_strategy("reinforce", get_space("nb201"), 30, **opts)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_spaces_without_decisions_are_refused_naming_the_space(tmp_path, capsys):
    for name in ("nb101", "nago"):
        with pytest.raises(JnasError) as e:
            make_strategy("reinforce", get_space(name), 30)
        msg = str(e.value)
        assert msg.startswith(f"space: got {name!r}, which does not define categorical decisions") and "\n" not in msg
    assert main(["search", "--benchmark", "nb201/cifar10", "--strategy", "reinforce", "--budget", "30",
                 "--set", "lr=-1", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--set lr: got -1.0, expected a number >= 0" in err[0]
