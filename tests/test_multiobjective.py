"""Multi-objective search: --objectives through the runner, rs / nsga2 / mobo, results, fronts and errors."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.cli import main
from jnas.errors import JnasError
from jnas.metrics import pareto
from jnas.runs.multiobjective import table_front
from jnas.runs.results import load_result
from jnas.runs.search import search
from jnas.strategies.mobo import hard_penaliser, penalised_batch
from jnas.strategies.nsga2 import crowding_distance, survivors

OBJ = "valid_acc@200,edgegpu_latency"
KEYS = (("valid_acc", 200), ("edgegpu_latency", None))


@pytest.fixture(scope="module")
def nb201():
    return get_benchmark("nb201/cifar10")


# ----- results of a multi-objective search ----------------------------------------------------


@pytest.fixture(scope="module")
def nsga2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mo") / "nsga2"
    return out, search("nb201/cifar10", "nsga2", 60, seeds=3, objectives=OBJ, out=out,
                       options={"population_size": 12})


def test_result_records_objectives_hypervolume_and_fronts(nsga2_run, nb201):
    out, r = nsga2_run
    s, t = r.summary, r.trajectory
    assert s["objectives"] == ["valid_acc@200", "edgegpu_latency"] and s["directions"] == ["max", "min"]
    assert s["test_objectives"] == ["test_acc@200", "edgegpu_latency"]
    assert t["values"].shape == (3, 60, 2) and t["hv_regret"].shape == (3, 60)
    assert np.all(np.diff(t["hypervolume"], axis=1) >= -1e-7)  # a prefix never loses volume
    truth = table_front(nb201, KEYS)
    np.testing.assert_allclose(t["hv_regret"], truth["hypervolume"] - t["hypervolume"], atol=1e-12)
    assert np.all(t["hv_regret"] >= -1e-6)
    assert s["final_hv_regret_mean"] == pytest.approx(t["hv_regret"][:, -1].mean())
    # the values are the table's, the front is the seed's non-dominated set, its strings name those rows
    signs = np.array([1.0, -1.0])
    for seed, front in enumerate(r.fronts):
        y = t["values"][seed] * signs
        on = np.asarray(pareto.pareto_mask(jnp.asarray(y, jnp.float32)))
        assert {int(i) for i in t["index"][seed][on]} == {m["index"] for m in front}
        for m in front:
            arch = nb201.space.from_string(m["arch"])
            assert nb201.index_of(arch) == m["index"]
            row = int(nb201.rows(jax.tree.map(lambda x: x[None], arch))[0])
            assert m["search"] == pytest.approx([nb201.column("valid_acc", 200)[row],
                                                 nb201.column("edgegpu_latency")[row]], rel=1e-6)
            assert m["test"][0] == pytest.approx(nb201.column("test_acc", 200)[row])
    back = load_result(out)
    assert back.fronts == r.fronts and back.multi_objective
    again = search("nb201/cifar10", "nsga2", 60, seeds=3, objectives=OBJ, out=out, options={"population_size": 12})
    assert again.origin == "read"
    with pytest.raises(JnasError, match="different run"):
        search("nb201/cifar10", "nsga2", 60, seeds=3, objectives="valid_acc@200,edgegpu_energy", out=out,
               options={"population_size": 12})


def test_true_front_is_the_brute_force_front(nb201):
    truth = table_front(nb201, KEYS)
    acc, lat = nb201.column("valid_acc", 200), nb201.column("edgegpu_latency")
    order = np.lexsort((lat, -acc))  # best accuracy first, then lowest latency
    front, best_lat = set(), np.inf
    for i in order:
        if lat[i] < best_lat:
            front.add(int(i))
            best_lat = lat[i]
    # ties in both objectives are mutually non-dominated: every copy stays
    ref = {int(i) for i in np.flatnonzero(np.isin(list(zip(acc, lat)), [(acc[j], lat[j]) for j in front]).all(1))}
    assert set(truth["rows"].tolist()) == ref


# ----- strategies -----------------------------------------------------------------------------------


def test_multi_objective_history_keeps_every_objective(nb201):
    from jnas.strategies import make_strategy

    s = make_strategy("nsga2", nb201.space, 20, n_objectives=2, population_size=4)
    state = s.init(jax.random.key(0))
    archs, state = s.ask(state, jax.random.key(1))
    vals = jnp.array([[1.0, -3.0], [2.0, -5.0], [jnp.nan, jnp.nan], [0.5, -1.0]])
    state = s.tell(state, archs, vals)
    np.testing.assert_array_equal(state.history.best, [2.0, -1.0])
    np.testing.assert_array_equal(state.history.worst, [0.5, -5.0])
    assert int(state.history.count) == 4
    # the failed child is never a survivor while valid ones remain
    assert np.isfinite(np.asarray(state.inner.values)).all(axis=1).sum() == 3


def _crowding_brute(y, rank):
    n, m = y.shape
    d = np.zeros(n)
    for r in np.unique(rank):
        idx = np.flatnonzero(rank == r)
        for j in range(m):
            order = idx[np.argsort(y[idx, j], kind="stable")]
            span = y[order[-1], j] - y[order[0], j]
            d[order[0]] = d[order[-1]] = np.inf
            for a, b, c in zip(order[:-2], order[1:-1], order[2:]):
                if span > 0:
                    d[b] += (y[c, j] - y[a, j]) / span
    return d


@pytest.mark.parametrize("seed", range(4))
def test_crowding_distance_and_survivors_match_their_definition(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(30, 2 + seed % 2))  # continuous: no ties inside a front
    rank = np.asarray(pareto.non_dominated_sort(jnp.asarray(y)))
    got = np.asarray(crowding_distance(jnp.asarray(y), jnp.asarray(rank)))
    want = _crowding_brute(y, rank)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    idx, r, _ = survivors(jnp.asarray(y), 12)
    idx, r = np.asarray(idx), np.asarray(r)
    assert np.all(np.diff(r) >= 0)  # whole fronts first
    cut = r.max()
    assert set(np.flatnonzero(rank < cut)) <= set(idx.tolist())
    last = np.flatnonzero(rank == cut)
    kept = [i for i in idx if rank[i] == cut]
    # inside the last front, the most crowded-apart points survive
    assert min(want[kept]) >= max(np.delete(want, list(idx))[rank[np.delete(np.arange(30), idx)] == cut],
                                  default=-np.inf)
    assert len(kept) <= len(last)


def test_penalised_batch_is_distinct_and_pushes_picks_apart():
    # candidate 1 is a copy of the best candidate 0, candidate 2 is far away with a slightly lower score
    feats = jnp.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [0.1, 0.0]])
    score = jnp.array([10.0, 9.9, 9.0, 9.95])
    front = jnp.array([True, True, True, True])
    idx = np.asarray(penalised_batch(feats, score, front, 3, jnp.asarray(1.0)))
    assert len(set(idx.tolist())) == 3 and idx[0] == 0
    assert idx[1] == 2  # the copy and the close neighbour are penalised below the far point
    assert float(hard_penaliser(jnp.asarray(0.0), 10.0, 10.0, 1.0)) == 0.0
    # off-front candidates come only after the front
    idx = np.asarray(penalised_batch(feats, score, jnp.array([False, False, True, False]), 2, jnp.asarray(1.0)))
    assert idx[0] == 2
    # never-pickable candidates (-inf: already queried) are picked last
    idx = np.asarray(penalised_batch(feats, jnp.array([-jnp.inf, 1.0, 2.0, 3.0]), front, 3, jnp.asarray(1.0)))
    assert 0 not in idx.tolist()


def test_mobo_runs_and_its_batches_are_distinct_unqueried(nb201):
    r = search("nb201/cifar10", "mobo", 24, seeds=2, objectives=OBJ,
               options={"batch_size": 4, "n_init": 8, "bnn_samples": 4, "bnn_burnin": 20, "bnn_map_steps": 20})
    idx = r.trajectory["index"]
    for seed in range(2):
        assert len(set(idx[seed].tolist())) == 24  # no architecture queried twice
    assert r.summary["strategy"] == "mobo" and r.summary["options"]["surrogate"] == "bnn-hetero"
    assert np.isfinite(r.summary["final_hv_regret_mean"])


def test_rs_is_the_same_search_with_one_or_two_objectives():
    one = search("nbgraph/cora", "rs", 30, seeds=2)
    two = search("nbgraph/cora", "rs", 30, seeds=2, objectives="valid_acc,latency")
    np.testing.assert_array_equal(one.trajectory["index"], two.trajectory["index"])
    np.testing.assert_array_equal(one.trajectory["value"], two.trajectory["values"][..., 0])


# ----- errors ------------------------------------------------------------------------------------


def test_mobo_refuses_options_it_would_ignore():
    with pytest.raises(JnasError, match="^--set beta: has no effect unless acquisition=ucb"):
        search("nb201/cifar10", "mobo", 20, objectives=OBJ, options={"acquisition": "ei", "beta": 3.0})
    with pytest.raises(JnasError, match="^--set nsga_generations: has no effect unless the space is not enumerable"):
        search("nb201/cifar10", "mobo", 20, objectives=OBJ, options={"nsga_generations": 3})


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"strategy": "nsga2", "objectives": "valid_acc@200,latency_gpu"}, r"^objectives: 'latency_gpu': metric: got"),
        ({"strategy": "nsga2", "objectives": "valid_acc@200"}, r"^objectives: got one objective"),
        ({"strategy": "nsga2"}, r"^objectives: strategy 'nsga2' is multi-objective"),
        ({"strategy": "mobo"}, r"^objectives: strategy 'mobo' is multi-objective"),
        ({"strategy": "re", "objectives": OBJ}, r"^objectives: strategy 're' optimises one objective; "
                                                r"multi-objective strategies: mobo, nsga2, rs"),
        ({"strategy": "nsga2", "objectives": "valid_acc@200,edgetpu_latency"},
         r"^objectives: 'edgetpu_latency' has no value for 4699 of 15625"),
        ({"strategy": "nsga2", "objectives": "valid_acc@200,valid_acc@200"}, r"^objectives: 'valid_acc@200' is "
                                                                             "given twice"),
        ({"strategy": "nsga2", "objectives": "test_acc@200,edgegpu_latency"}, r"^objectives: 'test_acc@200' is test"),
        ({"strategy": "nsga2", "objectives": OBJ, "metric": "valid_acc"}, r"^objectives: give --objectives or"),
        ({"strategy": "nsga2", "objectives": "valid_acc@x,edgegpu_latency"}, r"^objectives: 'valid_acc@x' has "
                                                                             "fidelity"),
        ({"strategy": "nsga2", "objectives": "valid_acc@200,,edgegpu_latency"}, r"^objectives: got"),
    ],
)
def test_bad_objectives_are_one_line_errors(kwargs, needle):
    with pytest.raises(JnasError, match=needle):
        search("nb201/cifar10", budget=20, **kwargs)


def test_cli_multi_objective_search_compare_and_plot(tmp_path, capsys):
    out = tmp_path / "m"
    rc = main(["search", "--benchmark", "nb201/cifar10", "--strategy", "rs,nsga2", "--objectives", OBJ,
               "--budget", "40", "--seeds", "2", "--out", str(out), "--set", "population_size=8",
               "--plot", str(tmp_path / "m.png"), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "hv regret" in printed and "nsga2" in printed
    s = json.loads((out / "nsga2" / "summary.json").read_text())
    for k in ("objectives", "final_hypervolume_mean", "final_hv_regret_mean", "final_hv_regret_se"):
        assert k in s
    assert json.loads((out / "nsga2" / "front.json").read_text())["seeds"][0]
    assert (tmp_path / "m.png").stat().st_size > 1000
    assert main(["compare", str(out / "rs"), str(out / "nsga2"), "--plot", str(tmp_path / "c.png")]) == 0
    single = tmp_path / "single"
    assert main(["search", "--benchmark", "nb201/cifar10", "--strategy", "rs", "--budget", "10",
                 "--out", str(single), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", str(out / "rs"), str(single)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mix single- and multi-objective" in err[0]


# ----- the acceptance checks ------------------------------------------------------------------------


def _final_regret(strategy, seeds, **options):
    r = search("nb201/cifar10", strategy, 150, seeds=seeds, objectives=OBJ, options=options)
    return r.trajectory["hv_regret"][:, -1]


def test_nsga2_beats_multi_objective_random_search():
    rs, ga = _final_regret("rs", 20), _final_regret("nsga2", 20)
    assert ga.mean() < rs.mean(), (ga.mean(), rs.mean())


@pytest.mark.slow
def test_mobo_beats_multi_objective_random_search():
    rs, mo = _final_regret("rs", 10), _final_regret("mobo", 10)
    assert mo.mean() < rs.mean(), (mo.mean(), rs.mean())


def test_pairs_of_objectives_every_direction():
    """Every HW-NAS-Bench device column pairs with accuracy; directions follow the metric."""
    b = get_benchmark("nb201/cifar10")
    for lat in ("edgegpu_latency", "eyeriss_energy"):
        keys = (("valid_acc", 200), (lat, None))
        truth = table_front(b, keys)
        y = np.stack([b.column("valid_acc", 200), -b.column(lat)], 1)
        on = np.zeros(len(y), bool)
        on[truth["rows"]] = True
        for i, j in itertools.islice(itertools.product(np.flatnonzero(on), range(0, len(y), 97)), 4000):
            assert not (np.all(y[j] >= y[i]) and np.any(y[j] > y[i]))


def test_mobo_computes_counted_objectives_instead_of_modelling_them():
    from jnas.runs.search import plan_search

    plan = plan_search("nbgraph/cora", "mobo", 24, objectives="valid_acc,params",
                       options={"batch_size": 4, "n_init": 8, "bnn_samples": 4, "bnn_burnin": 20,
                                "bnn_map_steps": 20})
    s, bench = plan.strategy, plan.benchmark
    assert s.modelled == (0,) and set(s.known) == {1}
    rows = np.asarray(bench.rows(bench.space.enumerate()))
    np.testing.assert_allclose(np.asarray(s.known[1]), -bench.column("params")[rows], rtol=1e-6)
    # its acquisition of the counted objective is the (negated) parameter count of every architecture
    params = s._fit(jax.random.key(0), s.all_feats[:16], jnp.zeros((16, 2)), jnp.ones(16, bool))
    acq, _ = s._acquire(params, s.all_feats, jnp.zeros((16, 2)), jnp.ones(16, bool))
    np.testing.assert_array_equal(np.asarray(acq[1]), np.asarray(s.known[1]))
    from jnas.strategies import make_strategy

    with pytest.raises(JnasError, match="^objectives: every objective is counted"):
        make_strategy("mobo", bench.space, 20, n_objectives=2, known_objectives={0: s.known[1], 1: s.known[1]})
    r = search("nbgraph/cora", "mobo", 24, seeds=2, objectives="valid_acc,params",
               options={"batch_size": 4, "n_init": 8, "bnn_samples": 4, "bnn_burnin": 20, "bnn_map_steps": 20})
    assert np.isfinite(r.summary["final_hv_regret_mean"])


def test_three_objectives_end_to_end(nb201):
    r = search("nb201/cifar10", "nsga2", 24, seeds=2, objectives="valid_acc@200,edgegpu_latency,edgegpu_energy",
               options={"population_size": 8})
    t = r.trajectory
    assert t["values"].shape == (2, 24, 3)
    assert np.all(np.diff(t["hypervolume"], axis=1) >= -1e-7) and np.all(t["hv_regret"][:, -1] > 0)
    y = t["values"][0] * np.array([1.0, -1.0, -1.0])
    front = {m["index"] for m in r.fronts[0]}
    for i, yi in enumerate(y):  # every queried point off the front is dominated by one on it
        on = [j for j in range(len(y)) if int(t["index"][0, j]) in front]
        dominated = any(np.all(y[j] >= yi) and np.any(y[j] > yi) for j in on)
        assert dominated != (int(t["index"][0, i]) in front)


@pytest.mark.parametrize("name", ["nsga2", "mobo"])
def test_multi_objective_strategies_on_a_space_without_a_table(name):
    """A non-enumerable space (DARTS): mobo's pool is sampled and evolved by NSGA-II on its acquisitions."""
    from jnas.spaces import get_space
    from jnas.strategies import make_strategy

    space = get_space("darts")
    tiny = {"nsga2": {"population_size": 4},
            "mobo": {"batch_size": 4, "n_init": 4, "bnn_samples": 2, "bnn_burnin": 4, "bnn_map_steps": 4,
                     "n_candidates": 16, "nsga_generations": 2}}[name]
    s = make_strategy(name, space, 12, n_objectives=2, **tiny)

    def step(state, k):
        archs, state = s.ask(state, k)
        vals = jax.random.normal(jax.random.fold_in(k, 7), (4, 2))
        return s.tell(state, archs, vals), archs

    @jax.jit
    def run(key):
        return jax.lax.scan(step, s.init(key), jax.random.split(jax.random.fold_in(key, 1), 3))

    state, archs = run(jax.random.key(0))
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), archs)
    assert bool(jax.vmap(space.is_valid)(flat).all())
    assert int(state.history.count) == 12 and state.history.best.shape == (2,)
