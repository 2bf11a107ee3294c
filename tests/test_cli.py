"""The jnas command: searches write results, bad input gives one line naming the argument."""

import json
import subprocess
import sys

import pytest

from jnas.cli import main

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_search_writes_summary_and_plot_and_compare_reads_them(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = main(["search", "--benchmark", "nbgraph/cora", "--strategy", "rs,re", "--budget", "40", "--seeds", "12",
               "--out", str(out), "--plot", str(tmp_path / "c.png"), "--set", "population_size=10"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "nbgraph/cora" in printed and "re" in printed
    s = json.loads((out / "re" / "summary.json").read_text())
    assert s["options"]["population_size"] == 10 and s["seeds"] == 12 and s["budget"] == 40
    assert (tmp_path / "c.png").stat().st_size > 1000
    rc = main(["compare", str(out / "rs"), str(out / "re"), "--plot", str(tmp_path / "d.png")])
    assert rc == 0 and "found opt" in capsys.readouterr().out


def test_query_prints_every_metric(capsys):
    assert main(["query", "--benchmark", "nb201/cifar10", "--arch", BEST]) == 0
    q = json.loads(capsys.readouterr().out)
    assert q["index"] == 6111 and q["test_acc@200"] == pytest.approx(94.3733, abs=1e-3)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["search", "--benchmark", "nb201/cifar1", "--strategy", "re", "--budget", "10", "--out", "x"],
         "unknown benchmark 'nb201/cifar1'; valid: nb201-3/cifar10, "),
        (["search", "--benchmark", "nb201/cifar10", "--strategy", "bo2", "--budget", "10", "--out", "x"],
         "unknown strategy 'bo2'; valid: "),
        (["search", "--benchmark", "nb201/cifar10", "--strategy", "rs", "--budget", "20000", "--out", "x"],
         "budget: got 20000, expected at most 15625"),
        (["search", "--benchmark", "nb201/cifar10", "--strategy", "re", "--budget", "10", "--out", "x",
          "--set", "population_size=1"], "--set population_size: got 1, expected an integer >= 2"),
        (["search", "--benchmark", "nb201/cifar10", "--strategy", "re", "--budget", "10", "--out", "x",
          "--set", "population_size"], "--set: got 'population_size', expected key=value"),
        (["search", "--benchmark", "nb201/cifar10", "--strategy", "re", "--budget", "10", "--out", "x",
          "--metric", "acc"], "metric: got 'acc'"),
        (["query", "--benchmark", "nb201/cifar10", "--arch", "|nor_conv_3x3~0|+|conv~0|"], "arch: got"),
        (["compare", "/nonexistent/run"], "is not a jnas result folder"),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert "Traceback" not in err[0]


def test_console_script_lists_everything():
    r = subprocess.run([sys.executable, "-m", "jnas.cli", "list"], capture_output=True, text=True, check=True)
    for name in ("nb201", "nbgraph", "darts", "nb101", "convnet", "rs", "re", "ls", "nbgraph/proteins"):
        assert name in r.stdout
