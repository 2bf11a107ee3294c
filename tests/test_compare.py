"""jnas compare / list and the quickstart notebook: damaged folders, plot paths, honest labels."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jnas import benchmarks
from jnas.cli import main
from jnas.errors import JnasError
from jnas.runs import load_result, search
from jnas.runs.compare import BAND, check_writable_plot, draw, plot

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three small result folders: rs and re on cora, rs on citeseer."""
    root = tmp_path_factory.mktemp("runs")
    search("nbgraph/cora", "rs", 20, seeds=3).save(root / "rs")
    search("nbgraph/cora", "re", 20, seeds=3).save(root / "re")
    search("nbgraph/citeseer", "rs", 20, seeds=3).save(root / "citeseer")
    return root


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jnas: error: "), err
    return err[0]


def _edit_summary(folder, change):
    s = json.loads((folder / "summary.json").read_text())
    change(s)
    (folder / "summary.json").write_text(json.dumps(s))


def _drop_array(folder, name):
    with np.load(folder / "trajectory.npz") as z:
        arrays = {k: z[k] for k in z.files if k != name}
    np.savez_compressed(folder / "trajectory.npz", **arrays)


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zero_middle(path):
    data = bytearray(path.read_bytes())
    data[300:340] = bytes(40)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, file, needle",
    [
        (lambda d: (d / "summary.json").write_text('{"benchmark": '), "summary.json", "invalid JSON"),
        (lambda d: (d / "summary.json").write_bytes(b"\xff\xfe\x00"), "summary.json", "invalid JSON"),
        (lambda d: (d / "summary.json").write_text("[1, 2]"), "summary.json", "expected a JSON object"),
        (lambda d: _edit_summary(d, lambda s: s.pop("final_test_mean")), "summary.json",
         "missing key 'final_test_mean'"),
        (lambda d: _edit_summary(d, lambda s: s.pop("test_metric")), "summary.json", "missing key 'test_metric'"),
        (lambda d: _edit_summary(d, lambda s: s.update(seeds="3")), "summary.json",
         "key 'seeds' is '3', expected a positive integer"),
        (lambda d: _cut_in_half(d / "trajectory.npz"), "trajectory.npz", "truncated or corrupt"),
        (lambda d: _zero_middle(d / "trajectory.npz"), "trajectory.npz", "truncated or corrupt"),
        (lambda d: (d / "trajectory.npz").write_bytes(b""), "trajectory.npz", "truncated or corrupt"),
        (lambda d: np.save(d / "trajectory.npz", np.zeros(3)) or (d / "trajectory.npz.npy").rename(
            d / "trajectory.npz"), "trajectory.npz", "not an .npz archive"),
        (lambda d: _drop_array(d, "best_test"), "trajectory.npz", "missing array 'best_test'"),
        (lambda d: _edit_summary(d, lambda s: s.update(seeds=5)), "trajectory.npz",
         "has shape (3, 20), but summary.json says [seeds, budget] = [5, 20]"),
    ],
    ids=["bad-json", "not-utf8", "json-list", "no-key", "no-test-metric", "mistyped-key", "npz-cut-in-half",
         "npz-zeroed-bytes", "npz-empty", "npy-not-npz", "no-array", "shape-mismatch"],
)
def test_damaged_result_folder_is_one_line_naming_the_file(runs, tmp_path, capsys, damage, file, needle):
    bad = tmp_path / "bad"
    shutil.copytree(runs / "rs", bad)
    damage(bad)
    assert main(["compare", str(runs / "rs"), str(bad)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"jnas: error: {bad / file}: ") and needle in line, line
    with pytest.raises(JnasError, match=re.escape(needle)):
        load_result(bad)


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda t: (t / "notes.txt").write_text("x") and t / "notes.txt" / "curves.png",
         "notes.txt' is a file, so"),
        (lambda t: (t / "notes.txt").write_text("x") and t / "notes.txt" / "sub" / "curves.png",
         "notes.txt' is a file, so"),
        (lambda t: t, "is a folder, expected a file such as"),
        (lambda t: t / "curves", "does not end in an image suffix"),
        (lambda t: t / "curves.xyz", "does not end in an image suffix"),
        (lambda t: Path("/proc/jnas-test/curves.png"), "cannot create files in '/proc'"),
    ],
    ids=["below-a-file", "deep-below-a-file", "a-folder", "no-suffix", "unknown-suffix", "unwritable"],
)
def test_bad_plot_path_is_one_line_before_anything_is_read(runs, tmp_path, capsys, make, needle):
    target = make(tmp_path)
    assert main(["compare", str(runs / "rs"), "--plot", str(target)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("jnas: error: --plot: ") and needle in line, line
    assert capsys.readouterr().out == ""  # failed before the table
    with pytest.raises(JnasError, match=re.escape(needle)):
        check_writable_plot(target)


def test_plot_path_check_creates_nothing_and_plot_creates_folders(runs, tmp_path):
    target = tmp_path / "new" / "deeper" / "curves.png"
    assert check_writable_plot(target) == target
    assert list(tmp_path.iterdir()) == []
    assert plot([load_result(runs / "rs")], target).stat().st_size > 1000


def test_mixed_runs_warn_on_one_line_naming_what_differs(runs, tmp_path, capsys):
    assert main(["compare", str(runs / "rs"), str(runs / "re")]) == 0
    assert capsys.readouterr().err == ""
    assert main(["compare", str(runs / "rs"), str(runs / "citeseer")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["jnas: warning: runs differ in benchmark (nbgraph/cora, nbgraph/citeseer): "
                   "their numbers are not on one scale"]
    other = tmp_path / "other"
    shutil.copytree(runs / "re", other)
    _edit_summary(other, lambda s: s.update(search_metric="valid_acc@12", test_metric="test_acc@12"))
    assert main(["compare", str(runs / "rs"), str(other), "--plot", str(tmp_path / "c.png")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == ("jnas: warning: runs differ in search metric (valid_acc, valid_acc@12); "
                      "test metric (test_acc, test_acc@12): their numbers are not on one scale")
    assert (tmp_path / "c.png").stat().st_size > 1000


def _axes():
    from matplotlib.figure import Figure

    return Figure().subplots()


def test_figure_says_median_and_band_and_names_what_differs_per_run(runs):
    rs, re_, cs = (load_result(runs / n) for n in ("rs", "re", "citeseer"))
    ax = _axes()
    draw([rs, re_], ax)
    legend = ax.get_legend()
    assert legend.get_title().get_text() == BAND == "median over seeds; band: 25–75th percentile"
    assert [t.get_text() for t in legend.get_texts()] == ["rs", "re"]
    assert ax.get_ylabel() == "test_acc of best-by-valid_acc so far (%)"
    assert ax.get_title() == "nbgraph/cora"
    # the line is the median over seeds, not the mean
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), np.median(rs.trajectory["best_test"], axis=0))

    rs.summary["search_metric"] = "valid_acc@12"
    ax = _axes()
    draw([rs, re_, cs], ax, labels=["a", "b", "c"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "a (nbgraph/cora, test_acc of best-by-valid_acc@12)",
        "b (nbgraph/cora, test_acc of best-by-valid_acc)",
        "c (nbgraph/citeseer, test_acc of best-by-valid_acc)",
    ]
    assert ax.get_ylabel() == "test_acc of best-by-search metric (per run) so far (%)"
    assert ax.get_title() == "nbgraph/cora, nbgraph/citeseer; runs differ in benchmark and search metric"


def test_compare_labels_clashing_folder_names_by_path(runs, tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("jnas.runs.compare.plot", lambda results, path, labels, x=None: seen.setdefault("l", labels))
    shutil.copytree(runs / "rs", tmp_path / "x" / "rs")
    assert main(["compare", str(runs / "rs"), str(tmp_path / "x" / "rs"), "--plot", str(tmp_path / "c.png")]) == 0
    assert seen["l"] == [str(runs / "rs"), str(tmp_path / "x" / "rs")]


def test_table_names_the_runs_when_two_share_a_strategy(runs, capsys):
    assert main(["compare", str(runs / "rs"), str(runs / "citeseer"), str(runs / "re")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["run", "benchmark"]
    assert [ln.split()[0] for ln in lines[2:]] == ["rs", "citeseer", "re"]
    assert main(["compare", str(runs / "rs"), str(runs / "re")]) == 0
    assert capsys.readouterr().out.split()[0] == "benchmark"  # distinct strategies: no run column


def test_compare_help_describes_the_figure(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "median over seeds, band: 25-75th percentile" in out and "mean" not in out


def test_list_metrics_prints_no_none_fidelity_and_no_empty_unit(capsys, monkeypatch):
    monkeypatch.setattr(benchmarks, "names", lambda: ["nb201/cifar10", "nbgraph/cora"])
    assert main(["list", "--metrics"]) == 0
    out = capsys.readouterr().out
    assert "nb201/cifar10 (search default valid_acc@200)" in out
    assert "nbgraph/cora (search default valid_acc)" in out
    assert "@None" not in out and "[]" not in out
    assert "  eyeriss_arithmetic_intensity: HW-NAS-Bench eyeriss arithmetic intensity coverage 15625/15625" in out
    assert "  test_acc: test accuracy [%] coverage" in out


def _install_cell():
    """The quickstart's parameters cell followed by its install cell, up to the first import of jax."""
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    install = "".join(code[1]["source"])
    assert "\nimport jax" in install
    return "".join(code[0]["source"]) + "\n" + install.split("\nimport jax")[0]


def _run_install_cell(source, cwd, monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda argv, check: calls.append(argv))
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no GPU here: EXTRAS="auto" installs no extra
    monkeypatch.delenv("TPU_ACCELERATOR_TYPE", raising=False)
    monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
    monkeypatch.chdir(cwd)
    exec(compile(source, "install-cell", "exec"), {})
    return calls


def test_notebook_install_cell_installs_this_checkout_by_default(monkeypatch):
    source = _install_cell()
    assert 'REPO_URL = ""' in source.splitlines() and "INSTALL = True" in source.splitlines()
    (argv,) = _run_install_cell(source, NOTEBOOK.parent, monkeypatch)
    assert argv[1:] == ["-m", "pip", "install", "-q", "-e", str(NOTEBOOK.parent.parent.resolve())]


def test_notebook_install_cell_repo_url_and_no_checkout(tmp_path, monkeypatch):
    source = _install_cell()
    url = re.sub(r'^REPO_URL = ""', 'REPO_URL = "https://github.com/someone/jnas.git"', source, flags=re.M)
    assert url != source
    (argv,) = _run_install_cell(url, tmp_path, monkeypatch)
    assert argv[-1] == "jnas @ git+https://github.com/someone/jnas.git"
    with pytest.raises(RuntimeError, match="is not the notebooks/ folder of a jnas checkout: set REPO_URL"):
        _run_install_cell(source, tmp_path, monkeypatch)


def test_draw_refuses_labels_that_do_not_match_the_runs(runs):
    rs = load_result(runs / "rs")
    with pytest.raises(JnasError, match="labels: got 1 for 2 results"):
        draw([rs, rs], _axes(), labels=["only one"])
    with pytest.raises(JnasError, match="got no results"):
        draw([], _axes())
