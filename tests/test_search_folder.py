"""`jnas search` never gives a silently wrong result: result folders know their run, options are never
dropped, test data is opt-in, bad paths fail before the search, and Ctrl-C keeps what finished."""

import importlib
import json

import numpy as np
import pytest

import jnas.cli
from jnas.cli import build_parser, main
from jnas.errors import JnasError
from jnas.runs import load_result, search
from jnas.strategies import names as strategy_names

CORA = ["--benchmark", "nbgraph/cora", "--budget", "30", "--no-progress"]


def one_line_error(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert "Traceback" not in err[0]
    return err[0]


def forbid_search(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the search ran")

    monkeypatch.setattr(importlib.import_module("jnas.runs.search"), "run_tabular", boom)


# ----- fidelity, metric -----------------------------------------------------------------------------


def test_fidelity_alone_applies_to_the_default_metric(tmp_path, capsys):
    res = search("nb201/cifar10", "rs", 20, seeds=2, fidelity=12)
    assert res.summary["search_metric"] == "valid_acc@12"
    assert main(["search", "--benchmark", "nb201/cifar10", "--strategy", "rs", "--budget", "20", "--fidelity", "12",
                 "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["search_metric"] == "valid_acc@12"
    with pytest.raises(JnasError, match=r"fidelity: got 5 for metric 'valid_acc', expected one of \[12, 200\]"):
        search("nb201/cifar10", "rs", 20, fidelity=5)


def test_test_metric_needs_an_explicit_flag_and_is_recorded(tmp_path, capsys, monkeypatch):
    with pytest.raises(JnasError, match="test data"):
        search("nbgraph/cora", "rs", 20, metric="test_acc")
    assert main(["search", *CORA, "--strategy", "rs", "--metric", "test_acc", "--out", str(tmp_path / "t")]) == 2
    one_line_error(capsys, "--allow-test-metric")
    assert not (tmp_path / "t" / "summary.json").exists()
    assert main(["search", *CORA, "--strategy", "rs", "--metric", "test_acc", "--allow-test-metric",
                 "--out", str(tmp_path / "t")]) == 0
    s = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert s["search_uses_test_data"] is True and s["search_metric"] == "test_acc"
    assert search("nbgraph/cora", "rs", 20).summary["search_uses_test_data"] is False


# ----- strategies and their options ---------------------------------------------------------------


def test_an_option_no_listed_strategy_knows_is_an_error(tmp_path, capsys, monkeypatch):
    forbid_search(monkeypatch)
    assert main(["search", *CORA, "--strategy", "rs,re", "--set", "popsize=10", "--out", str(tmp_path / "x")]) == 2
    one_line_error(capsys, "--set popsize: unknown option for strategies rs, re")


def test_an_option_known_to_some_strategies_applies_to_those_and_says_so(tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["search", *CORA, "--seeds", "2", "--strategy", "rs,re", "--set", "population_size=7",
                 "--set", "sample_size=3", "--out", str(out)]) == 0
    assert "--set population_size applies to re only" in capsys.readouterr().err
    assert json.loads((out / "re" / "summary.json").read_text())["options"]["population_size"] == 7
    assert json.loads((out / "rs" / "summary.json").read_text())["options"] == {"batch_size": 1}


@pytest.mark.parametrize("text", [",", "rs,", "rs,,re", "rs,rs"])
def test_malformed_strategy_lists_are_one_line_errors(text, tmp_path, capsys, monkeypatch):
    forbid_search(monkeypatch)
    assert main(["search", *CORA, "--strategy", text, "--out", str(tmp_path / "x")]) == 2
    one_line_error(capsys, "--strategy")


def test_every_strategy_is_listed_in_search_help():
    sub = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "search")[1]
    text = sub.format_help().replace("\n", " ")
    for name in strategy_names():
        assert f" {name}," in text or f" {name};" in text, name


# ----- result folders ----------------------------------------------------------------------------


def test_a_different_command_into_a_result_folder_is_refused_unless_overwrite(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "r")
    assert main(["search", *CORA, "--strategy", "rs", "--seeds", "2", "--out", out]) == 0
    first = json.loads((tmp_path / "r" / "summary.json").read_text())
    capsys.readouterr()
    assert main(["search", *CORA, "--strategy", "re", "--seeds", "2", "--out", out]) == 2
    one_line_error(capsys, "holds a different run (strategy: 'rs' there, 're' now")
    assert json.loads((tmp_path / "r" / "summary.json").read_text()) == first  # untouched
    assert main(["search", *CORA, "--strategy", "re", "--seeds", "2", "--out", out, "--overwrite"]) == 0
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["strategy"] == "re"


def test_the_same_command_on_a_finished_folder_reads_it_back(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "r")
    assert main(["search", *CORA, "--strategy", "rs", "--seeds", "2", "--out", out]) == 0
    before = capsys.readouterr().out
    forbid_search(monkeypatch)
    assert main(["search", *CORA, "--strategy", "rs", "--seeds", "2", "--out", out]) == 0
    cap = capsys.readouterr()
    assert cap.out == before and "already complete" in cap.err


def test_a_folder_with_results_of_an_unknown_run_is_refused(tmp_path, capsys, monkeypatch):
    search("nbgraph/cora", "rs", 20).save(tmp_path / "old")  # written without a run spec (older jnas)
    forbid_search(monkeypatch)
    assert main(["search", *CORA, "--strategy", "rs", "--out", str(tmp_path / "old")]) == 2
    one_line_error(capsys, "holds results of an unknown run")


def test_a_multi_strategy_run_into_a_single_result_folder_is_refused(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "r")
    assert main(["search", *CORA, "--strategy", "rs", "--out", out]) == 0
    capsys.readouterr()
    forbid_search(monkeypatch)
    assert main(["search", *CORA, "--strategy", "rs,re", "--out", out]) == 2
    one_line_error(capsys, "kind: 'tabular-search' there, 'tabular-search-group' now")


@pytest.mark.parametrize("flag", ["--out", "--plot"])
def test_unwritable_output_fails_before_the_search(flag, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    forbid_search(monkeypatch)
    bad = str(tmp_path / "file" / "below")
    argv = ["search", *CORA, "--strategy", "rs", "--out", str(tmp_path / "ok")]
    argv = argv[:-1] + [bad] if flag == "--out" else argv + ["--plot", bad + "/c.png"]
    assert main(argv) == 2
    one_line_error(capsys, flag)


# ----- progress and Ctrl-C -------------------------------------------------------------------------


def test_progress_reports_compiling_and_every_seed_below_ten_seeds():
    calls = []
    search("nbgraph/cora", "rs", 20, seeds=3, chunk=1, progress=lambda n, note=None: calls.append((n, note)))
    assert calls[0] == (0, "compiling") and [c for c in calls if c[1] is None] == [(1, None), (2, None), (3, None)]


def test_ctrl_c_keeps_finished_seeds_and_the_rerun_equals_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    argv = ["search", "--benchmark", "nbgraph/cora", "--strategy", "re", "--budget", "40", "--seeds", "25",
            "--set", "population_size=8", "--set", "sample_size=4"]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "whole")]) == 0
    capsys.readouterr()

    def interrupting_bar(total, desc, enabled):
        def update(done, note=None):
            if note is None and done >= 9:  # after three chunks of three seeds
                raise KeyboardInterrupt

        return update, lambda: None

    with monkeypatch.context() as m:
        m.setattr(jnas.cli, "_progress_bar", interrupting_bar)
        assert main([*argv, "--out", str(tmp_path / "cut")]) == 130
    line = one_line_error(capsys, "interrupted: re on nbgraph/cora: kept 9 of 25 seeds")
    assert "rerun the same command" in line
    assert not (tmp_path / "cut" / "summary.json").exists()
    assert len(list((tmp_path / "cut" / "partial").glob("chunk_*.npz"))) == 3
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "cut")]) == 0
    whole = load_result(tmp_path / "whole")
    cut = load_result(tmp_path / "cut")
    for k, v in whole.trajectory.items():
        np.testing.assert_array_equal(cut.trajectory[k], v, err_msg=k)
    assert cut.summary["resumed_seeds"] == 9 and whole.summary["resumed_seeds"] == 0
    assert not (tmp_path / "cut" / "partial").exists()
    skip = {"wall_seconds", "resumed_seeds"}
    assert {k: v for k, v in cut.summary.items() if k not in skip} == {
        k: v for k, v in whole.summary.items() if k not in skip}
