"""`jnas describe` and `jnas train`: one JSON object on stdout, real training, clear errors."""

import gzip
import io
import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from jnas.cli import main

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NAGO = "top=WS(n=4,k=2,p=0.50) mid=ER(n=1,p=0.20) bottom=WS(n=3,k=2,p=0.50)"


def _published(arch: str, dataset: str) -> pd.Series:
    path = os.path.join(os.environ["JNAS_DATA_DIR"], "nb201_zero_cost_proxies.csv.gz")
    with gzip.open(path) as f:
        t = pd.read_csv(f, usecols=["arch_str", "dataset", "params", "flops"])
    return t[(t.arch_str == arch) & (t.dataset == dataset)].iloc[0]


@pytest.mark.parametrize("dataset, table_name", [("cifar10", "cifar10"), ("imagenet16-120", "ImageNet16-120")])
def test_describe_prints_one_json_object_matching_the_published_counts(capsys, dataset, table_name):
    assert main(["describe", "--space", "nb201", "--arch", ARCH, "--dataset", dataset]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one object and nothing else on stdout
    info = json.loads(out)
    row = _published(ARCH, table_name)
    assert round(info["params"] / 1e6, 6) == pytest.approx(row.params, abs=1e-9)
    assert info["flops"] == pytest.approx(row.flops * 1e6, rel=0.01)
    assert info["activation_bytes_per_image"] > 0


@pytest.mark.parametrize(
    "space, arch, extra",
    [
        ("convnet", "64-3,32-5,96-3", []),
        ("nago", "top=WS(n=4,k=2,p=0.50) mid=ER(n=1,p=0.20) bottom=WS(n=3,k=2,p=0.50)", ["--seed", "1"]),
        ("nb101", "adj=0100001/0010000/0001000/0000100/0000010/0000001/0000000;"
                  " ops=input,conv3x3-bn-relu,conv1x1-bn-relu,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,output",
         ["--model", "stem_channels=16"]),
    ],
)
def test_describe_other_spaces(capsys, space, arch, extra):
    assert main(["describe", "--space", space, "--arch", arch, *extra]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["space"] == space and info["params"] > 0 and info["flops"] > 0


def test_describe_nago_seed_changes_the_network(capsys):
    arch = "top=WS(n=6,k=2,p=0.90) mid=ER(n=3,p=0.50) bottom=WS(n=4,k=2,p=0.90)"
    got = []
    for seed in ("1", "2"):
        assert main(["describe", "--space", "nago", "--arch", arch, "--seed", seed]) == 0
        got.append(json.loads(capsys.readouterr().out))
    assert got[0]["params"] <= 4e6 and got[1]["params"] <= 4e6
    def key(info):
        return info["flops"], info["activation_bytes_per_image"]

    assert key(got[0]) != key(got[1])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["describe", "--space", "nb201", "--arch", "|conv~0|"], "arch: "),
        (["describe", "--space", "nb201", "--arch", ARCH, "--dataset", "mnist"], "dataset: got 'mnist'"),
        (["describe", "--space", "nb202", "--arch", ARCH], "unknown space 'nb202'"),
        (["train", "--space", "nb201", "--arch", ARCH, "--epochs", "0", "--out", "x"], "--epochs: got 0"),
        (["train", "--space", "nb201", "--arch", ARCH, "--epochs", "1", "--out", "x", "--config", "lr=-1"],
         "TrainConfig.lr"),
        # a misspelt network option names itself, a close match and every valid option with its default
        (["describe", "--space", "nb201", "--arch", ARCH, "--model", "chanels=8"],
         "unknown network option 'chanels' for space 'nb201' (did you mean 'channels'?); "
         "valid: channels=16, cells_per_stage=5"),
        (["describe", "--space", "nago", "--arch", NAGO, "--model", "chanel_ratio=1"],
         "valid: seed=0, param_limit=4000000.0, input_shape=(32, 32, 3), stage_ratio, channel_ratio, op_probs"),
        (["describe", "--space", "convnet", "--arch", "64-3", "--model", "space=convnet"],
         "space: got 'convnet', expected no value: the space 'convnet' fixes it"),
        (["describe", "--space", "convnet", "--arch", "64-3", "--model", "in_channels=1"],
         "in_channels: got 1, expected 3, the channel count of the cifar10 images"),
        (["describe", "--space", "nago", "--arch", NAGO, "--model", "param_limit=big"],
         "param_limit: got 'big', expected a number (default 4000000.0)"),
        # train checks network options before it reads (or prepares) any data
        (["train", "--space", "nb201", "--arch", ARCH, "--epochs", "1", "--out", "x", "--data", "/missing.npz",
          "--model", "chanels=8"], "unknown network option 'chanels'"),
        (["train", "--space", "nb201", "--arch", ARCH, "--epochs", "1", "--out", "x", "--data", "/missing.npz",
          "--model", "channels=8.5"], "channels: got 8.5, expected an integer (default 16)"),
    ],
)
def test_bad_input_is_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal: tqdm draws its bar only there."""

    def isatty(self):
        return True


def test_train_writes_result_and_learns(tmp_path, capsys, monkeypatch):
    """A tiny NB201 network on a two-class slice of the real CIFAR-10 subset (8x8 crops) learns; the terminal
    shows one progress bar and one line per epoch."""
    with np.load(os.path.join(os.environ["JNAS_DATA_DIR"], "cifar10_subset.npz")) as z:
        arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    keep = {s: np.isin(arrays[f"y_{s}"], (0, 1)) for s in ("train", "test")}  # airplane vs automobile
    small = {f"{v}_{s}": (arrays[f"{v}_{s}"][keep[s]][:, 12:20, 12:20] if v == "x" else arrays[f"{v}_{s}"][keep[s]])
             for s in ("train", "test") for v in ("x", "y")}
    np.savez(tmp_path / "two.npz", **small)
    out = tmp_path / "run"
    argv = ["train", "--space", "nb201", "--arch", ARCH, "--data", str(tmp_path / "two.npz"), "--epochs", "3",
            "--out", str(out), "--model", "channels=4", "--model", "cells_per_stage=1", "--config", "batch_size=64",
            "--config", "crop_pad=0"]
    monkeypatch.setenv("JNAS_TFDS_DIR", str(tmp_path / "tfds"))  # a fresh TFDS copy is written from the .npz
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(argv) == 0
    printed, bar = capsys.readouterr().out, terminal.getvalue()
    # stdout: one line per epoch and the summary; nothing from TFDS about "downloading" local arrays
    assert [line.split()[:2] for line in printed.splitlines()] == [["epoch", "1"], ["epoch", "2"], ["epoch", "3"],
                                                                  ["final", "train"]]
    # stderr: one bar, each state drawn once, gone at the end; no TFDS bars
    assert [bar.count(f"{i}/3") for i in range(4)] == [1, 1, 1, 1] and "Generating" not in bar
    assert bar.rsplit("3/3", 1)[1].split("\r", 1)[1].strip() == ""  # the last draw is followed by a blank line
    r = json.loads((out / "result.json").read_text())
    assert r["epochs"] == 3 and r["num_classes"] == 2 and len(r["history"]) == 3
    assert r["config"]["batch_size"] == 64 and r["train_size"] == int(keep["train"].sum())
    assert r["history"][-1]["train_loss"] < r["history"][0]["train_loss"]
    assert r["test_acc"] > 60  # two balanced classes: chance is 50 %


def test_set_is_a_deprecated_alias_of_model_in_describe(capsys):
    assert main(["describe", "--space", "convnet", "--arch", "64-3", "--set", "in_channels=3"]) == 0
    cap = capsys.readouterr()
    assert "--set for network options is deprecated" in cap.err and json.loads(cap.out)["params"] > 0
    assert main(["describe", "--space", "convnet", "--arch", "64-3", "--set", "in_channels=3",
                 "--model", "in_channels=3"]) == 2
    assert "also given with --set" in capsys.readouterr().err
