"""One search for both worlds: strategies drive real training through the journaled Python loop.

Tiny networks (``tiny_builder``: first edge ``none`` -> NaN loss, ``skip_connect`` -> crash) keep it fast.
"""

import json

import numpy as np
import pytest
from test_training_evaluator import CFG, DATA, tiny_builder

from jnas.benchmarks.training import TrainingEvaluator
from jnas.errors import Interrupted, JnasError
from jnas.runs import search
from jnas.runs.journal import JOURNAL
from jnas.spaces import get_space

NB201 = get_space("nb201")

OPTIONS = {"population_size": 3, "sample_size": 2}
BUDGET = 8


class Counting(TrainingEvaluator):
    """Records every training it starts: (arch, epochs, test)."""

    def __init__(self, **kw):
        super().__init__("nb201", DATA, config=CFG, builder=tiny_builder, valid_size=16, **kw)
        self.trained = []

    def _run(self, arch, text, epochs, test):
        self.trained.append((text, epochs, test))
        return super()._run(arch, text, epochs, test)


def run(out, evaluator=None, progress=None):
    return search(evaluator=evaluator or Counting(), strategy="re", budget=BUDGET, seeds=2, options=OPTIONS,
                  out=out, progress=progress)


def test_killed_search_resumes_without_retraining_and_equals_an_uninterrupted_run(tmp_path):
    whole_ev = Counting()
    whole = run(tmp_path / "whole", whole_ev)

    first = Counting()

    def stop_after_5(info):
        if info["done"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=r"kept|5 of 16 evaluations are in .*journal.jsonl; rerun"):
        run(tmp_path / "cut", first, stop_after_5)
    assert not (tmp_path / "cut" / "summary.json").exists()
    lines = (tmp_path / "cut" / JOURNAL).read_text().splitlines()
    assert len(lines) == 5
    done_before = {(json.loads(x)["seed"], json.loads(x)["query"]) for x in lines}

    second = Counting()  # a new process: nothing cached in memory
    cut = run(tmp_path / "cut", second)
    entries = [json.loads(x) for x in (tmp_path / "cut" / JOURNAL).read_text().splitlines()]
    assert len(entries) == 2 * BUDGET
    later = {e["arch"] for e in entries if (e["seed"], e["query"]) not in done_before}
    # only the evaluations the journal did not hold were trained (each architecture once)
    assert sorted(t for t, _, test in second.trained if not test) == sorted(later)
    assert cut.summary["resumed_evaluations"] == 5 and whole.summary["resumed_evaluations"] == 0
    for k, v in whole.trajectory.items():
        np.testing.assert_array_equal(cut.trajectory[k], v, err_msg=k)
    skip = {"wall_seconds", "resumed_evaluations"}
    assert {k: v for k, v in cut.summary.items() if k not in skip} == {
        k: v for k, v in whole.summary.items() if k not in skip}

    # a finished run rerun is a no-op that reads the result back
    third = Counting()
    again = run(tmp_path / "cut", third)
    assert third.trained == [] and again.origin == "read"
    assert again.summary == cut.summary


def test_failed_trainings_are_recorded_and_the_search_goes_on(tmp_path):
    ev = Counting()
    res = run(tmp_path / "r", ev)
    entries = [json.loads(x) for x in (tmp_path / "r" / JOURNAL).read_text().splitlines()]
    assert len(entries) == 2 * BUDGET
    first_op = [e["arch"].split("~")[0].strip("|") for e in entries]
    bad = [op in ("none", "skip_connect") for op in first_op]
    assert any(bad) and not all(bad), first_op  # the fixed keys draw both kinds
    for e, b in zip(entries, bad):
        assert (e["status"] == "failed") == b and (e["reason"] is not None) == b
        assert (e["metrics"].get("valid_acc") is None) == b
    assert res.summary["evaluations_failed"] == sum(bad)
    assert np.isnan(res.trajectory["value"]).sum() == sum(bad)
    assert np.isfinite(res.trajectory["best_test"][:, -1]).all()  # the search went on and found working networks


def test_search_never_looks_at_test_data_and_measures_it_after(tmp_path):
    ev = Counting()
    res = run(tmp_path / "r", ev)
    n_search = 2 * BUDGET
    during = ev.trained[: len({t for t, _, test in ev.trained if not test})]
    assert not any(test for *_, test in during)
    for line in (tmp_path / "r" / JOURNAL).read_text().splitlines():
        assert not any(m.startswith("test") for m in json.loads(line)["metrics"])
    after = [t for t, _, test in ev.trained if test]
    best = {res.trajectory["arch"][s, q] for s in range(2) for q in range(BUDGET)
            if res.trajectory["value"][s, q] == res.trajectory["best_search"][s, q]}
    assert set(after) <= best and len(after) == res.summary["test_measured_after_search"] > 0
    assert res.summary["search_metric"] == "valid_acc@2" and res.summary["search_uses_test_data"] is False
    assert len(ev.history) <= n_search


def test_a_training_search_without_validation_refuses_the_test_metric():
    ev = TrainingEvaluator("nb201", DATA, config=CFG, builder=tiny_builder, valid_size=0)
    with pytest.raises(JnasError, match="test data"):
        search(evaluator=ev, strategy="rs", budget=2)


def test_a_journal_of_a_different_run_is_refused(tmp_path):
    run(tmp_path / "r")
    spec = json.loads((tmp_path / "r" / "run.json").read_text())
    (tmp_path / "r" / "summary.json").unlink()  # make it look unfinished
    with pytest.raises(JnasError, match="holds a different run"):
        search(evaluator=Counting(), strategy="re", budget=BUDGET + 1, seeds=2, options=OPTIONS, out=tmp_path / "r")
    assert json.loads((tmp_path / "r" / "run.json").read_text()) == spec


def test_validation_split_never_overlaps_the_test_set():
    from jnas.train.data import load_split
    from jnas.train.optim import TrainConfig

    ev = TrainingEvaluator("nb201", "cifar10_subset", config=TrainConfig(epochs=1))
    train, valid, test = ev._train_data, ev._valid_data, ev._test_data
    n_all = len(load_split("cifar10_subset", "train")[1])
    assert len(valid[1]) == round(0.1 * n_all) and len(train[1]) + len(valid[1]) == n_all
    key = lambda x: {img.tobytes() for img in x}  # noqa: E731
    assert not key(valid[0]) & key(test[0])
    assert not key(valid[0]) & key(train[0])


def test_the_test_metric_after_the_search_reuses_each_run_s_checkpoint(tmp_path):
    epochs = []
    ev = Counting(checkpoint_dir=tmp_path / "ckpt", on_epoch=lambda text, rec: epochs.append(text))
    res = run(tmp_path / "r", ev)
    assert res.summary["test_measured_after_search"] > 0
    trained = {t for t, _, test in ev.trained if not test}
    broken = {t for t in trained if t.split("~")[0].strip("|") in ("none", "skip_connect")}
    assert len(epochs) == (len(trained) - len(broken)) * CFG.epochs
    # the test runs trained no epoch: they resumed the finished checkpoints and evaluated the test set
    fresh = TrainingEvaluator("nb201", DATA, config=CFG, builder=tiny_builder, valid_size=16)
    best = res.trajectory["arch"][0, np.argmax(np.nan_to_num(res.trajectory["value"][0], nan=-1))]
    assert fresh.evaluate(NB201.from_string(best), test=True)["test_acc"] == res.trajectory["best_test"][0, -1]


# ----- the command line -------------------------------------------------------------------------------

ARCH_FLAGS = ["--evaluator", "train", "--space", "nb201", "--data", "cifar10_subset", "--epochs", "1",
              "--model", "channels=4", "--model", "cells_per_stage=1", "--config", "batch_size=256",
              "--strategy", "rs", "--budget", "2", "--no-progress"]


@pytest.mark.parametrize("extra, needle", [
    (["--fidelity", "2"], "--fidelity: got 2, expected 1..1"),
    (["--model", "chanels=4"], "unknown network option 'chanels'"),
    (["--benchmark", "nb201/cifar10"], "--benchmark: a training search takes --space"),
    (["--float64"], "--float64: applies only to table searches"),
    (["--valid-size", "lots"], "--valid-size: got 'lots'"),
    (["--config", "seed=3"], "--config seed: set it with --train-seed"),
])
def test_bad_training_search_flags_are_one_line_errors(extra, needle, tmp_path, capsys):
    from jnas.cli import main

    assert main(["search", *ARCH_FLAGS, *extra, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "x" / "journal.jsonl").exists()


def test_training_flags_without_the_training_evaluator_are_refused(tmp_path, capsys):
    from jnas.cli import main

    assert main(["search", "--benchmark", "nbgraph/cora", "--strategy", "rs", "--budget", "5", "--epochs", "3",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--epochs: applies only with --evaluator train" in capsys.readouterr().err


def test_jnas_search_trains_real_networks_and_a_rerun_reads_the_result_back(tmp_path, capsys):
    from jnas.cli import main

    out = tmp_path / "t"
    assert main(["search", *ARCH_FLAGS, "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "train/nb201/cifar10_subset" in cap.out and f"wrote {out}/summary.json" in cap.err
    s = json.loads((out / "summary.json").read_text())
    assert s["search_metric"] == "valid_acc@1" and s["test_metric"] == "test_acc@1"
    assert s["budget"] == 2 and s["resumed_evaluations"] == 0 and s["final_regret_mean"] is None
    assert 0 < s["final_test_mean"] <= 100
    journal = [json.loads(x) for x in (out / JOURNAL).read_text().splitlines()]
    assert [e["query"] for e in journal] == [0, 1] and all(e["status"] == "ok" for e in journal)
    spec = json.loads((out / "run.json").read_text())
    assert spec["evaluator"]["model_options"] == {"channels": 4, "cells_per_stage": 1}
    assert spec["evaluator"]["valid_size"] == 480  # 10% of the 4,800 training images
    assert main(["search", *ARCH_FLAGS, "--out", str(out)]) == 0
    assert "already complete" in capsys.readouterr().err
    assert main(["compare", str(out)]) == 0
    assert "train/nb201/cifar10_subset" in capsys.readouterr().out
