"""The strategy kit (jnas.strategies.base / history): history, budget check, batch_size aliases, on_failure."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.errors import JnasError
from jnas.runs import search
from jnas.runs.runner import run_tabular
from jnas.spaces import get_space
from jnas.strategies import get_strategy, make_strategy, names
from jnas.strategies.base import FAILURE_POLICIES, State, Strategy, batch_option, failure_option, fill_failures
from jnas.strategies.history import arch_hash

BENCH = "nbgraph/proteins"  # 2,021 architectures: small enough to enumerate, score and exhaust quickly
TINY = {  # options that keep every registered strategy's scan to seconds
    "bo": {"gp_steps": 2, "gp_restarts": 1, "n_init": 3},
    "bananas": {"batch_size": 2, "layers": 2, "steps": 5, "n_candidates": 10, "n_parents": 2},
    "pbnas": {"gcn_steps": 3, "n_init": 2, "k": 2},
    "lanas": {"n_init": 3, "n_select": 2},
    "rt": {"n_init": 3, "n_select": 2},
    "tpe": {"n_init": 3},
    "nsga2": {"population_size": 2},
    "mobo": {"batch_size": 2, "n_init": 2, "bnn_samples": 2, "bnn_burnin": 4, "bnn_map_steps": 4},
    "pnas": {"batch_size": 2, "members": 2, "layers": 1, "width": 8, "steps": 5},
}
NB201_ONLY = ("pnas",)  # strategies that need cells with a `none` op (blocks): their tiny scan runs on nb201
KIT = ("rs", "re", "ls", "bo", "bananas", "mcts")  # the strategies built on _init/_ask/_tell


@pytest.fixture(scope="module")
def bench():
    return get_benchmark(BENCH)


class Probe(Strategy):
    """A test strategy: uniform samples in batches of 3, keeping everything it is told."""

    name = "probe"
    keeps_history = True
    tracks_queried = True
    options = (batch_option(3, aliases=("q",)), failure_option("-inf"))

    def _ask(self, state, key):
        return self.space.sample_batch(key, self.batch_size), state.inner


def _drive(strategy, values_of, steps, key=0):
    """Run ask/tell under one jitted lax.scan; return the final state and everything told."""

    def step(state, k):
        archs, state = strategy.ask(state, k)
        vals = values_of(k, archs)
        return strategy.tell(state, archs, vals), (archs, vals)

    @jax.jit
    def run(key):
        k_init, k_steps = jax.random.split(key)
        return jax.lax.scan(step, strategy.init(k_init), jax.random.split(k_steps, steps))

    return run(jax.random.key(key))


def _noisy(k, archs):
    """Values in [0, 1) with about a third failed (NaN)."""
    n = jax.tree.leaves(archs)[0].shape[0]
    u = jax.random.uniform(jax.random.fold_in(k, 1), (n,))
    return jnp.where(jax.random.uniform(jax.random.fold_in(k, 2), (n,)) < 0.3, jnp.nan, u)


# ----- the history -------------------------------------------------------------------------
@pytest.mark.parametrize("space_name", ["nbgraph-proteins", "nb101"])
def test_history_records_exactly_what_was_told(space_name):
    space = get_space(space_name)
    s = Probe(space, 10)  # 4 steps of 3: capacity 12, the last 2 rows are told beyond the budget
    assert (s.n_steps, s.capacity) == (4, 12)
    state, (archs, vals) = _drive(s, _noisy, s.n_steps)
    h = state.history
    told = jax.tree.map(lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), archs)
    vals = np.asarray(vals).reshape(-1)
    assert int(h.count) == 12 and np.isnan(vals).any()
    for a, b in zip(jax.tree.leaves(h.archs), jax.tree.leaves(told)):
        np.testing.assert_array_equal(np.asarray(a), b)
    np.testing.assert_array_equal(np.asarray(h.values), vals)  # NaN stays NaN: exactly what was told
    ok = vals[np.isfinite(vals)]
    assert float(h.best) == ok.max() and float(h.worst) == ok.min()
    if space.enumerable:
        idx = np.asarray(jax.vmap(space.index)(told))
        assert set(np.flatnonzero(np.asarray(h.queried))) == set(idx.tolist())
        assert h.hashes.shape == (0,)
    else:
        np.testing.assert_array_equal(np.asarray(h.hashes), np.asarray(jax.vmap(arch_hash)(told)))
        assert h.queried.shape == (0,)
    # membership: every told architecture is seen, fresh samples (almost surely) are not
    assert bool(s.seen(state, told).all())
    if not space.enumerable:
        assert not bool(s.seen(state, space.sample_batch(jax.random.key(99), 8)).any())


@pytest.mark.parametrize("name", KIT)
def test_every_kit_strategy_can_record_its_whole_history_without_changing_its_run(bench, name):
    space = bench.space
    plain = make_strategy(name, space, 12, **TINY.get(name, {}))
    kept = make_strategy(name, space, 12, **TINY.get(name, {}))
    kept.keeps_history = True  # a study can ask any kit strategy to keep everything it was told
    steps = plain.n_steps

    def values_of(k, archs):
        v = bench.query_rows(bench.rows(archs), bench.search_metric)
        return jnp.where(jax.random.uniform(k, v.shape) < 0.2, jnp.nan, v)

    s2, (a2, v2) = _drive(kept, values_of, steps)
    if not plain.keeps_history:  # keeping the history changes nothing else
        s1, (a1, _) = _drive(plain, values_of, steps)
        for x, y in zip(jax.tree.leaves(a1), jax.tree.leaves(a2)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        assert int(s1.history.count) == plain.capacity
    h = s2.history
    flat = jax.tree.map(lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), a2)
    for a, b in zip(jax.tree.leaves(h.archs), jax.tree.leaves(flat)):
        np.testing.assert_array_equal(np.asarray(a), b)
    np.testing.assert_array_equal(np.asarray(h.values), np.asarray(v2).reshape(-1))
    assert int(h.count) == plain.capacity


def test_history_keeps_only_what_the_strategy_asks_for(bench):
    rs = make_strategy("rs", bench.space, 10)
    h = rs.init(jax.random.key(0)).history
    assert h.values.shape == (0,) and h.queried.shape == (0,) and h.hashes.shape == (0,)
    bo = make_strategy("bo", bench.space, 10, batch_size=3)
    h = bo.init(jax.random.key(0)).history
    assert h.values.shape == (12,) and h.queried.shape == (bench.space.size,)


def test_arch_hash_is_deterministic_and_separates_architectures():
    space = get_space("darts")
    archs = space.sample_batch(jax.random.key(0), 512)
    h = np.asarray(jax.jit(jax.vmap(arch_hash))(archs))
    np.testing.assert_array_equal(h, np.asarray(jax.vmap(arch_hash)(archs)))
    assert len(np.unique(h)) == 512


# ----- budget <= space size, once ----------------------------------------------------------------
def test_budget_above_the_space_size_is_refused_once_with_one_message(bench, monkeypatch):
    n = bench.space.size
    never = [k for k in names() if not get_strategy(k).repeats]
    assert set(never) >= {"rs", "bo", "bananas", "mcts"}
    for name in never:
        cls = get_strategy(name)
        monkeypatch.setattr(cls, "setup", lambda self: pytest.fail("setup ran before the budget check"))
        where, space = (("nb201/cifar10", get_benchmark("nb201/cifar10").space) if name in NB201_ONLY
                        else (BENCH, bench.space))
        m = space.size
        expected = (f"budget: got {m + 1}, expected at most {m} "
                    f"(the size of space {space.name!r}; {name} never repeats an architecture)")
        with pytest.raises(JnasError) as e:
            make_strategy(name, space, m + 1)
        assert str(e.value) == expected
        with pytest.raises(JnasError) as e:  # the search refuses with the very same message
            search(where, name, m + 1)
        assert str(e.value) == expected
        monkeypatch.undo()
    # a strategy that may repeat takes any budget
    for name in ("re", "ls"):
        assert make_strategy(name, bench.space, n + 1).budget == n + 1


# ----- batch_size and its aliases -------------------------------------------------------------
@pytest.mark.parametrize("name, alias", [("bo", "q"), ("bananas", "per_iteration")])
def test_batch_size_aliases(bench, name, alias):
    s = make_strategy(name, bench.space, 12, **{alias: 3})
    assert s.batch_size == 3 and getattr(s, alias) == 3
    assert s.settings()["batch_size"] == 3 and alias not in s.settings()
    assert (s.n_steps, s.capacity) == (4, 12)
    with pytest.raises(JnasError, match=f"--set batch_size: the same option as {alias} .*not both"):
        make_strategy(name, bench.space, 12, **{alias: 3, "batch_size": 3})
    with pytest.raises(JnasError, match=f"--set {alias}: got 0, expected an integer >= 1"):
        make_strategy(name, bench.space, 12, **{alias: 0})
    with pytest.raises(JnasError, match=rf"valid options: .*batch_size \(alias {alias}\)"):
        make_strategy(name, bench.space, 12, batch=3)


def test_ask_must_return_batch_size_architectures(bench):
    class Wrong(Probe):
        def _ask(self, state, key):
            return self.space.sample_batch(key, 2), state.inner

    s = Wrong(bench.space, 6)
    with pytest.raises(ValueError, match="expected batch_size=3"):
        s.ask(s.init(jax.random.key(0)), jax.random.key(1))


# ----- on_failure ------------------------------------------------------------------------------
def test_fill_failures_policies():
    v = jnp.array([0.5, jnp.nan, -jnp.inf, 2.0])
    np.testing.assert_array_equal(fill_failures("-inf", v, jnp.array(0.25)), [0.5, -np.inf, -np.inf, 2.0])
    np.testing.assert_array_equal(fill_failures("worst", v, jnp.array(0.25)), [0.5, 0.25, 0.25, 2.0])
    np.testing.assert_array_equal(fill_failures("worst", v, jnp.array(jnp.inf)), [0.5, 0, 0, 2.0])  # none yet
    assert set(FAILURE_POLICIES) == {"-inf", "worst"}


def test_on_failure_defaults_and_choices(bench):
    defaults = {"re": "-inf", "ls": "-inf", "bo": "-inf", "bananas": "-inf", "mcts": "worst"}
    for name, d in defaults.items():
        assert make_strategy(name, bench.space, 10).settings()["on_failure"] == d
    with pytest.raises(JnasError, match="--set on_failure: got 'zero', expected one of -inf, worst"):
        make_strategy("re", bench.space, 10, on_failure="zero")
    with pytest.raises(JnasError, match="--set on_failure: got '-inf', expected one of worst"):
        make_strategy("mcts", bench.space, 10, on_failure="-inf")


def _tell_one(s, state, arch_index, value):
    arch = jax.tree.map(lambda x: x[None], s.space.from_index(jnp.int32(arch_index)))
    return s.tell(state, arch, jnp.array([value], jnp.float32))


@pytest.mark.parametrize("policy, failed_as", [("-inf", -np.inf), ("worst", 0.25)])
def test_on_failure_in_regularized_evolution(bench, policy, failed_as):
    s = make_strategy("re", bench.space, 10, population_size=4, sample_size=2, on_failure=policy)
    st = s.init(jax.random.key(0))
    for i, v in enumerate([0.5, 0.25, np.nan]):
        st = _tell_one(s, st, i, v)
    np.testing.assert_array_equal(np.asarray(st.inner.fit), [0.5, 0.25, failed_as, -np.inf])
    assert int(st.history.count) == 3 and float(st.history.worst) == 0.25


def test_on_failure_worst_in_mcts_counts_the_worst_value_seen(bench):
    s = make_strategy("mcts", bench.space, 10)
    st = s.init(jax.random.key(0))
    st = _tell_one(s, st, 0, np.nan)  # nothing finite seen yet: counts as 0
    st = _tell_one(s, st, 1, 0.75)
    st = _tell_one(s, st, 2, 0.5)
    st = _tell_one(s, st, 3, np.nan)  # counts as 0.5, the worst seen
    assert int(st.inner.visits[0]) == 4
    assert float(st.inner.tot[0]) == pytest.approx(0.75 + 0.5 + 0.5)
    assert float(st.history.best) == 0.75 and float(st.history.worst) == 0.5


def test_a_strategy_without_failure_option_ignores_values(bench):
    rs = make_strategy("rs", bench.space, 20)
    assert "on_failure" not in rs.settings()
    a, (archs_a, _) = _drive(rs, lambda k, archs: jnp.full((1,), jnp.nan), 20)
    b, (archs_b, _) = _drive(rs, lambda k, archs: jnp.zeros((1,)), 20)
    np.testing.assert_array_equal(np.asarray(archs_a), np.asarray(archs_b))
    assert int(a.history.count) == int(b.history.count) == 20


# ----- every registered strategy still scans ----------------------------------------------------------
@pytest.mark.parametrize("name", names())
def test_every_registered_strategy_runs_a_tiny_scan(bench, name):
    if get_strategy(name).multi_fidelity:  # needs a metric with fidelities: NB201's 12- and 200-epoch columns
        nb = get_benchmark("nb201/cifar10")
        s = make_strategy(name, nb.space, 6, fidelities=(12, 200), **TINY.get(name, {}))
        rec = run_tabular(s, nb, 2, ("valid_acc", 200), seed0=3)
        assert rec.rows.shape == rec.fidelity.shape == (2, s.n_queries) and (rec.rows >= 0).all()
        assert np.isfinite(rec.values).all() and set(rec.fidelity.ravel().tolist()) == {12, 200}
        return
    if name in NB201_ONLY:
        bench = get_benchmark("nb201/cifar10")
    multi = get_strategy(name).objectives == "multi"  # two objectives: the search metric and latency
    s = make_strategy(name, bench.space, 6, n_objectives=2 if multi else 1, **TINY.get(name, {}))
    keys = (bench.search_metric, ("latency", None)) if multi else None
    rec = run_tabular(s, bench, 2, keys, seed0=3)
    assert rec.rows.shape == (2, 6) and (rec.rows >= 0).all() and np.isfinite(rec.values).all()
    assert rec.values.shape == ((2, 6, 2) if multi else (2, 6))
    if name in KIT:
        assert isinstance(s.init(jax.random.key(0)), State)
        if not s.repeats:
            assert all(len(set(r)) == 6 for r in rec.rows.tolist())
