"""`jnas train` into a folder that holds checkpoints: the same run resumes, any other run is refused."""

import json

import numpy as np
import pytest
from helpers import two_class_images

from jnas.cli import main

A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
B = A.replace("skip_connect~0", "avg_pool_3x3~0")  # another network with exactly the same parameters


@pytest.fixture
def argv(tmp_path, monkeypatch):
    """``jnas train`` arguments of a tiny NB201 run on 64 8x8 images; ``argv(arch, *extra)``."""
    monkeypatch.setenv("JNAS_TFDS_DIR", str(tmp_path / "tfds"))
    for name, seed in (("a.npz", 0), ("b.npz", 10)):
        (xa, ya), (xb, yb) = two_class_images(64, seed), two_class_images(32, seed + 1)
        np.savez(tmp_path / name, x_train=xa, y_train=ya, x_test=xb, y_test=yb)

    def make(arch, *extra):
        return ["train", "--space", "nb201", "--arch", arch, "--data", str(tmp_path / "a.npz"), "--epochs", "1",
                "--out", str(tmp_path / "run"), "--model", "channels=4", "--model", "cells_per_stage=1",
                "--config", "batch_size=16", "--no-progress", *extra]

    return make


def _refused(capsys, args) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("jnas: error: --out ") and "holds a checkpoint of a different run (" in err
    assert err.endswith("; use another --out or delete it")
    return err


def test_other_run_is_refused_same_run_resumes(argv, tmp_path, capsys):
    assert main(argv(A)) == 0
    capsys.readouterr()
    result = tmp_path / "run" / "result.json"
    before = result.read_text()

    err = _refused(capsys, argv(B))  # same parameter tree: would resume silently and report A's accuracy as B's
    assert f"(arch: {A!r} (checkpoint) vs {B!r} (now))" in err
    err = _refused(capsys, argv(A, "--model", "channels=8"))
    assert "(model_options.channels: 4 (checkpoint) vs 8 (now))" in err
    err = _refused(capsys, argv(A, "--data", str(tmp_path / "b.npz")))
    assert f"(data: {str(tmp_path / 'a.npz')!r} (checkpoint) vs {str(tmp_path / 'b.npz')!r} (now))" in err
    assert result.read_text() == before  # nothing overwritten

    assert main(argv(A)) == 0  # the same arguments resume the finished run
    assert "resumed after epoch 1" in capsys.readouterr().out
    r = json.loads(result.read_text())
    assert r["arch"] == A and r["resumed_from"] == 1
    assert r["history"] == json.loads(before)["history"]


def test_ctrl_c_during_training_says_what_is_kept(argv, tmp_path, capsys, monkeypatch):
    import jnas.runs.training as training

    real = training.train_architecture

    def interrupted_after_one_epoch(*a, on_epoch=None, **k):
        def stop(rec):
            on_epoch(rec)
            raise KeyboardInterrupt

        return real(*a, on_epoch=stop, **k)

    args = argv(A)
    args[args.index("--epochs") + 1] = "2"
    monkeypatch.setattr(training, "train_architecture", interrupted_after_one_epoch)
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted: training nb201 for 2 epochs: epochs 1..1 are checkpointed" in err[0], err
    monkeypatch.setattr(training, "train_architecture", real)
    assert main(args) == 0
    assert json.loads((tmp_path / "run" / "result.json").read_text())["resumed_from"] == 1
