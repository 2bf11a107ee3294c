"""Multi-fidelity search: Hyperband's brackets, BOHB's model, fidelities through both runners, result files."""

import json

import numpy as np
import pytest
from flax import nnx
from test_training_evaluator import CFG, DATA, VALID, TinyNet
from test_training_search import Counting

from jnas.benchmarks import get_benchmark
from jnas.benchmarks.training import TrainingEvaluator
from jnas.errors import JnasError
from jnas.runs import search
from jnas.runs.journal import JOURNAL
from jnas.runs.results import load_result
from jnas.runs.runner import run_loop
from jnas.spaces import get_space
from jnas.strategies import make_strategy
from jnas.strategies.hyperband import brackets, schedule, snap

NB201 = get_space("nb201")


def test_brackets_match_hyperband_for_r81_eta3():
    """Li et al. (2018), Table 1: R = 81, η = 3 gives five brackets of 81, 34, 15, 8 and 5 configurations."""
    got = brackets(1, 81, 3, tuple(range(1, 82)))
    assert [[n for n, _ in b] for b in got] == [[81, 27, 9, 3, 1], [34, 11, 3, 1], [15, 5, 1], [8, 2], [5]]
    assert [[f for _, f in b] for b in got] == [[1, 3, 9, 27, 81], [3, 9, 27, 81], [9, 27, 81], [27, 81], [81]]


def test_brackets_of_nagos_budgets():
    """NAGO: budgets 30/60/120 epochs with η = 2 (the default min_fidelity is max/η²)."""
    assert brackets(30, 120, 2, tuple(range(1, 121))) == [[(4, 30), (2, 60), (1, 120)], [(3, 60), (1, 120)],
                                                          [(3, 120)]]


def test_rungs_snap_to_a_tables_fidelities_and_merge():
    assert snap(22.2, (12, 200)) == 12 and snap(199.9, (12, 200)) == 12 and snap(5, (12, 200)) == 12
    # 22.2 and 66.7 epochs both snap to 12: one rung of 9 whose best goes to 200
    assert brackets(200 / 9, 200, 3, (12, 200)) == [[(9, 12), (1, 200)], [(5, 12), (1, 200)], [(3, 200)]]


def test_schedule_spends_the_budget_and_promotes_from_the_rung_below():
    b = brackets(200 / 9, 200, 3, (12, 200))
    s = schedule(b, 10 * 200)
    assert s.cost.sum() <= 2000 < schedule(b, 10 * 200 + 200).cost.sum()
    # cycle: 9 x 12, 1 x 200, 5 x 12, 1 x 200, 3 x 200 = 1168 epochs, then the next bracket's rung 0 ...
    assert s.fidelity[:19].tolist() == [12] * 9 + [200] + [12] * 5 + [200] * 4
    assert s.new[:19].tolist() == [True] * 9 + [False] + [True] * 5 + [False] + [True] * 3
    assert (s.prev_start[9], s.prev_len[9], s.rank[9]) == (0, 9, 0)
    assert (s.prev_start[15], s.prev_len[15]) == (10, 5)


@pytest.fixture(scope="module")
def hb_run():
    return search("nb201/cifar10", "hyperband", 20, seeds=3)


def test_hyperband_promotes_the_best_of_each_rung(hb_run):
    st = make_strategy("hyperband", NB201, 20, fidelities=(12, 200))
    s = st.schedule
    idx, val = hb_run.trajectory["index"], hb_run.trajectory["value"]
    bench = get_benchmark("nb201/cifar10")
    promoted = np.flatnonzero(~s.new)
    assert len(promoted) >= 3
    for seed in range(3):
        for q in promoted:
            lo, n = s.prev_start[q], s.prev_len[q]
            below = val[seed, lo : lo + n]
            want = idx[seed, lo + np.argsort(-below, kind="stable")[s.rank[q]]]
            assert idx[seed, q] == want
            # the promoted cell is measured at 200 epochs: the table's 200-epoch value, not its 12-epoch one
            row = int(np.flatnonzero(bench.official_index == idx[seed, q])[0]) if bench.official_index is not None \
                else int(idx[seed, q])
            assert val[seed, q] == pytest.approx(bench.column("valid_acc", s.fidelity[q])[row], abs=1e-4)


def test_results_count_cost_and_only_top_fidelity_queries(hb_run, tmp_path):
    t, sm = hb_run.trajectory, hb_run.summary
    q = sm["queries"]
    assert t["fidelity"].shape == t["value"].shape == (3, q)
    assert sm["cost_used"] == t["cost"][0, -1] <= 20 * 200 and sm["rung_fidelities"] == [12, 200]
    assert np.all(np.diff(t["cost"], axis=1) == t["fidelity"][:, 1:])
    first_top = int(np.argmax(t["fidelity"][0] == 200))
    assert np.isnan(t["best_search"][:, :first_top]).all()  # 12-epoch values never count as the result
    top_vals = np.where(t["fidelity"] == 200, t["value"], -np.inf)
    np.testing.assert_allclose(t["best_search"][:, -1], top_vals.max(axis=1))
    hb_run.save(tmp_path)
    back = load_result(tmp_path)
    np.testing.assert_array_equal(back.trajectory["cost"], t["cost"])
    rs = search("nb201/cifar10", "rs", 20, seeds=1)
    assert rs.summary["cost_used"] == 20 * 200 and "queries" not in rs.summary


def test_bohb_ends_below_random_search_at_equal_cost():
    """The issue's check: on nb201/cifar10, BOHB's mean test regret at 150 full evaluations' worth of epochs
    is below random search's with the same budget, over 20 seeds."""
    bohb = search("nb201/cifar10", "bohb", 150, seeds=20)
    rs = search("nb201/cifar10", "rs", 150, seeds=20)
    assert bohb.summary["cost_used"] <= rs.summary["cost_used"]
    b, r = bohb.summary, rs.summary
    assert b["final_regret_mean"] + b["final_regret_se"] < r["final_regret_mean"] - r["final_regret_se"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("nb201/cifar100", "hyperband", 50), r"valid_acc@200 of nb201/cifar100 covers only"),
        (("nbgraph/cora", "bohb", 50), r"needs a search metric measured at several fidelities"),
        (("nb201/cifar10", "hyperband", 1), r"budget: got 1, expected at least 2 full evaluations"),
        (("nb201/cifar10", "hyperband", 50, {"eta": 1}), r"--set eta: got 1, expected an integer >= 2"),
        (("nb201/cifar10", "bohb", 50, {"min_fidelity": 5}), r"expected at least the lowest fidelity .*\(12\)"),
        (("nb201/cifar10", "bohb", 50, {"min_fidelity": 200}), r"expected less than the search metric's fidelity"),
        (("nb201/cifar10", "hyperband", 50, {"min_fidelity": 50}), r"expected a fidelity the evaluator offers"),
        (("nb201/cifar10", "bohb", 50, {"gama": 0.2}), r"--set gama: unknown option"),
    ],
)
def test_bad_multi_fidelity_input_is_one_line(args, message):
    bench, strat, budget, *opts = args
    with pytest.raises(JnasError, match=message) as e:
        search(bench, strat, budget, options=opts[0] if opts else None)
    assert "\n" not in str(e.value)


def test_a_low_search_fidelity_leaves_nothing_to_halve():
    with pytest.raises(JnasError, match=r"got valid_acc@12 of nb201/cifar10, give --fidelity 200"):
        search("nb201/cifar10", "hyperband", 20, fidelity=12)
    with pytest.raises(JnasError, match=r"valid_acc@200 of nb201/cifar100 covers only"):
        search("nb201/cifar100", "hyperband", 20, fidelity=200)


def test_multi_fidelity_strategy_needs_fidelities_and_the_journaled_loop():
    with pytest.raises(JnasError, match="needs the fidelities the evaluator offers"):
        make_strategy("bohb", NB201, 20)
    st = make_strategy("hyperband", NB201, 20, fidelities=(12, 200))
    with pytest.raises(JnasError, match="use jnas.runs.search"):
        run_loop(st, lambda a: np.zeros(1), 1)


def test_hyperband_trains_at_each_rungs_epochs_and_resumes_from_its_journal(tmp_path):
    """Training fidelities: every query trains for its rung's epochs (retrained, not continued), the journal
    records them, and a rerun after an interrupt trains nothing twice."""
    from jnas.errors import Interrupted

    opts = {"eta": 2, "min_fidelity": 1}

    def run(ev, out, progress=None):
        return search(evaluator=ev, strategy="hyperband", budget=3, seeds=1, options=opts, out=out,
                      progress=progress)

    whole_ev = Counting()
    whole = run(whole_ev, tmp_path / "whole")
    fids = whole.trajectory["fidelity"][0]
    assert set(fids.tolist()) == {1, 2} and whole.summary["cost_used"] == fids.sum() <= 3 * 2
    entries = [json.loads(x) for x in (tmp_path / "whole" / JOURNAL).read_text().splitlines()]
    assert [e["fidelity"] for e in entries] == fids.tolist()
    trained = [(t, e) for t, e, test in whole_ev.trained if not test]
    assert sorted(trained) == sorted({(e["arch"], e["fidelity"]) for e in entries})

    def stop_after_3(info):
        if info["done"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        run(Counting(), tmp_path / "cut", stop_after_3)
    second = Counting()
    cut = run(second, tmp_path / "cut")
    assert cut.summary["resumed_evaluations"] == 3
    for k, v in whole.trajectory.items():
        np.testing.assert_array_equal(cut.trajectory[k], v, err_msg=k)


class GeneratorEvaluator(TrainingEvaluator):
    """A search over NAGO's generator hyperparameters with tiny stand-in networks: the network's width follows the
    generator seed, so resampled networks differ; every training is recorded as (config, epochs, seed)."""

    def __init__(self):
        super().__init__("nago", DATA, config=CFG, builder=self._build, valid_size=VALID)
        self.trained = []

    def _build(self, space, arch, *, num_classes, rngs, seed=0, **options):
        return TinyNet(num_classes=num_classes, rngs=nnx.Rngs(seed))

    def _run_one(self, arch, text, epochs, test):  # every network trained, on whichever copy trains it
        self.trained.append((text, epochs, self.model_options.get("seed", 0)))
        return super()._run_one(arch, text, epochs, test)


def test_generator_search_with_bohb_runs_resumes_and_resamples(tmp_path):
    """NAGO's search end to end on tiny networks: bohb over ``nago`` with the training evaluator, killed and
    resumed from its journal with nothing trained twice, then the recommended configuration resampled."""
    from jnas.errors import Interrupted
    from jnas.runs.resample import recommended, resample_run

    def run(ev, out, progress=None):
        return search(evaluator=ev, strategy="bohb", budget=3, seeds=1, options={"eta": 2, "min_fidelity": 1},
                      out=out, progress=progress)

    whole = run(GeneratorEvaluator(), tmp_path / "whole")
    assert set(whole.trajectory["fidelity"][0].tolist()) == {1, 2} and whole.summary["space"] == "nago"

    def stop_after_2(info):
        if info["done"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        run(GeneratorEvaluator(), tmp_path / "cut", stop_after_2)
    second = GeneratorEvaluator()
    cut = run(second, tmp_path / "cut")
    assert cut.summary["resumed_evaluations"] == 2
    assert len(second.trained) == whole.summary["queries"] - 2 + 1  # the rest, and the test of the best
    for k, v in whole.trajectory.items():
        np.testing.assert_array_equal(cut.trajectory[k], v, err_msg=k)

    best = recommended(cut)[0]
    top = cut.trajectory["fidelity"][0] == 2
    assert best in set(cut.trajectory["arch"][0][top])
    ev = GeneratorEvaluator()
    recs = resample_run(cut, ev, 2, tmp_path / "cut")
    assert [(t, e, s) for t, e, s in ev.trained] == [(best, 2, 1), (best, 2, 2)]
    assert recs[0]["seeds"] == [1, 2] and recs[0]["failed"] == 0
    again = GeneratorEvaluator()
    assert resample_run(cut, again, 2, tmp_path / "cut") == recs and again.trained == []  # read back


def test_compare_draws_against_cost_and_refuses_runs_without_one(hb_run, tmp_path):
    from jnas.cli import main
    from jnas.runs.compare import default_x, plot, x_values

    rs = search("nb201/cifar10", "rs", 20, seeds=2)
    assert default_x([hb_run, rs]) == "cost" and default_x([rs]) == "queries"
    xh, xr = x_values([hb_run, rs], "cost")
    np.testing.assert_allclose(xh, hb_run.trajectory["cost"][0] / 200)
    np.testing.assert_array_equal(xr, np.arange(1, 21))
    assert plot([hb_run, rs], tmp_path / "c.png", x="cost").is_file()
    graph = search("nbgraph/cora", "rs", 5, seeds=1)
    with pytest.raises(JnasError, match=r"--x cost: run rs on nbgraph/cora records no cost"):
        plot([hb_run, graph], tmp_path / "d.png", x="cost")
    hb_run.save(tmp_path / "hb")
    assert main(["compare", str(tmp_path / "hb"), "--x", "cost"]) == 2  # --x without --plot


def test_several_networks_per_generator_configuration_are_averaged():
    """``networks=2``: each configuration trains two networks (generator seeds 0 and 1, training seeds 0 and 1)
    and records their mean; one failed network fails the configuration; a fixed-network space refuses."""
    ev = GeneratorEvaluator()
    one = ev.evaluate(np.asarray([4, 2, 100, 1, 50, 3, 2, 100], np.int16))
    second = ev.reseeded(1, 1, "net1").evaluate(np.asarray([4, 2, 100, 1, 50, 3, 2, 100], np.int16))
    both = GeneratorEvaluator()
    both.networks = 2
    rec = both.evaluate(np.asarray([4, 2, 100, 1, 50, 3, 2, 100], np.int16))
    assert [s for _, _, s in both.trained] == [0, 1] and rec["networks"] == 2
    for k in ("valid_acc", "train_loss", "memory"):
        assert rec[k] == pytest.approx((one[k] + second[k]) / 2)
    with pytest.raises(JnasError, match="networks: got 2, expected 1: space 'nb201' has one network"):
        TrainingEvaluator("nb201", DATA, config=CFG, builder=lambda *a, **k: None, networks=2)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--benchmark", "nb201/cifar10", "--strategy", "bohb", "--set", "resample=4"],
         "--set resample: not a strategy option; resampling the recommended generator configuration is --resample 4"),
        (["--benchmark", "nb201/cifar10", "--strategy", "rs", "--resample", "2"], "--resample: applies only with"),
        (["--evaluator", "train", "--space", "nb201", "--epochs", "1", "--strategy", "rs", "--resample", "2"],
         "--resample: space 'nb201' has one network per architecture"),
        (["--evaluator", "train", "--space", "nago", "--epochs", "1", "--strategy", "rs", "--resample", "0"],
         "--resample: got 0, expected a positive integer"),
        (["--evaluator", "train", "--space", "nb201", "--epochs", "1", "--strategy", "rs", "--networks", "2"],
         "networks: got 2, expected 1: space 'nb201' has one network"),
        (["--benchmark", "nb201/cifar10", "--strategy", "rs", "--networks", "2"], "--networks: applies only with"),
    ],
)
def test_generator_flags_refuse_what_they_cannot_do(argv, needle, tmp_path, capsys):
    from jnas.cli import main

    assert main(["search", *argv, "--budget", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err
