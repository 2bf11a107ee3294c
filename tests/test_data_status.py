"""``jnas data status``: what is found, where, which folder and why, how to get the rest."""

import importlib.metadata

from jnas.benchmarks.datadir import status_lines
from jnas.cli import main


def _status(capsys):
    assert main(["data", "status"]) == 0  # missing files are reported, not an error
    out, err = capsys.readouterr()
    assert err == ""
    return out.splitlines()


def test_status_with_some_files_present(tmp_path, monkeypatch, capsys):
    (tmp_path / "nb201_accuracies.csv.gz").write_bytes(b"x" * 1234)
    (tmp_path / "cifar10_subset.npz").write_bytes(b"y")
    monkeypatch.setenv("JNAS_DATA_DIR", str(tmp_path))
    lines = _status(capsys)
    assert lines[0] == f"data folder: {tmp_path} (set by $JNAS_DATA_DIR)"
    body = [" ".join(line.split()) for line in lines]
    assert body[1] == (f"found nb201_accuracies.csv.gz NAS-Bench-201 accuracies (nb201/*): "
                       f"{tmp_path / 'nb201_accuracies.csv.gz'} (1,234 bytes)")
    assert body[2] == "missing nb201_hw_nas_bench.csv.gz HW-NAS-Bench latency and energy (nb201/*)"
    assert body[3] == ("missing nb201_zero_cost_proxies.csv.gz NAS-Bench-Suite-Zero params and FLOPs "
                       "(nb201/*; optional, needed only for the params/flops metrics)")
    assert body[4].startswith(f"found cifar10_subset.npz CIFAR-10 subset (jnas train --data cifar10_subset): "
                              f"{tmp_path / 'cifar10_subset.npz'} (1 bytes)")
    assert body[5].startswith("found nas-bench-graph NAS-Bench-Graph tables (nbgraph/*): 9 datasets in ")
    assert body[5].endswith("nas_bench_graph/light (package 1.4.0)")
    assert lines[6:] == [
        "",
        "to get nb201_hw_nas_bench.csv.gz: run `jnas data fetch nb201`",
        "to get nb201_zero_cost_proxies.csv.gz (optional): copy it into the data folder from a machine that has it "
        "(`jnas data fetch nb201` does not rebuild it)",
    ]
    assert status_lines()[1] == 1  # the optional cost table is not counted as missing


def test_status_after_a_fetch_only_lacks_optional_and_training_files(tmp_path, monkeypatch, capsys):
    for name in ("nb201_accuracies.csv.gz", "nb201_hw_nas_bench.csv.gz"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setenv("JNAS_DATA_DIR", str(tmp_path))
    lines = _status(capsys)
    assert [line.split()[:2] for line in lines[1:4]] == [
        ["found", "nb201_accuracies.csv.gz"], ["found", "nb201_hw_nas_bench.csv.gz"],
        ["missing", "nb201_zero_cost_proxies.csv.gz"]]
    assert lines[3].endswith("(nb201/*; optional, needed only for the params/flops metrics)")
    assert lines[7].startswith("to get nb201_zero_cost_proxies.csv.gz (optional): copy it into the data folder")
    assert not any(line.startswith(("to get nb201_accuracies", "to get nb201_hw")) for line in lines)
    assert status_lines()[1] == 1  # cifar10_subset.npz only


def test_status_in_the_user_cache_with_nothing_there(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("JNAS_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lines = _status(capsys)
    folder = tmp_path / "jnas"
    assert lines[0] == f"data folder: {folder} (the user cache; $JNAS_DATA_DIR is not set, does not exist yet)"
    assert [line.split()[0] for line in lines[1:6]] == ["missing"] * 4 + ["found"]
    assert "to get nb201_accuracies.csv.gz, nb201_hw_nas_bench.csv.gz: run `jnas data fetch nb201`" in lines
    advice = next(line for line in lines if line.startswith("to get cifar10_subset.npz: "))
    assert "`jnas data prepare cifar10`" in advice


def test_status_without_the_nas_bench_graph_package(tmp_path, monkeypatch, capsys):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setenv("JNAS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    lines = _status(capsys)
    assert " ".join(lines[5].split()) == (
        "missing nas-bench-graph NAS-Bench-Graph tables (nbgraph/*): package nas-bench-graph is not installed")
    assert lines[-1] == "to get NAS-Bench-Graph: run `pip install nas-bench-graph==1.4.0`"
