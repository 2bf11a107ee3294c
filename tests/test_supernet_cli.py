"""`jnas supernet` end to end on a tiny `.npz` dataset: result file, resume, NB201 look-ups, bad input,
the derived DARTS genotype as a `jnas train` architecture, and the trained supernet as an evaluator."""

import json

import jax
import numpy as np
import pytest
from helpers import tiny_image_npz

from jnas.benchmarks import get_benchmark
from jnas.cli import main
from jnas.errors import JnasError
from jnas.models.supernet import derive_argmax, edge_weight_shape
from jnas.runs import search
from jnas.runs.supernet import load_supernet_run, run_supernet
from jnas.runs.training import parse_arch
from jnas.spaces import get_space

TINY = ["--model", "channels=2", "--model", "cells_per_stage=1", "--config", "batch_size=8",
        "--config", "eval_batch_size=16", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_image_npz(tmp_path_factory.mktemp("data"))


def cli(args, capsys):
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("runs") / "s"
    rc = main(["supernet", "--space", "nb201", "--method", "darts", "--data", data, "--epochs", "2",
               "--out", str(out), *TINY])
    assert rc == 0
    return out


def test_result_file_has_the_derived_cell_history_and_its_table_accuracies(finished):
    rec = json.loads((finished / "result.json").read_text())
    space = get_space("nb201")
    arch = space.from_string(rec["derived_arch"])
    assert space.to_string(arch) == rec["derived_arch"]
    assert [h["epoch"] for h in rec["history"]] == [1, 2]
    for h in rec["history"]:
        for k in ("train_loss", "val_loss", "train_acc", "val_acc", "derived_arch", "arch", "nb201_cifar10_test_acc"):
            assert k in h, k
        assert np.asarray(h["arch"]).shape == edge_weight_shape("nb201")
        assert 0 <= h["op_share"]["skip_connect"] <= 1
    assert rec["history"][-1]["derived_arch"] == rec["derived_arch"]
    assert set(rec["nb201_test_acc"]) == {"cifar10", "cifar100", "imagenet16-120"}
    for dataset, value in rec["nb201_test_acc"].items():
        b = get_benchmark(f"nb201/{dataset}")
        row = int(b.rows(jax.tree.map(lambda a: a[None], arch))[0])
        assert value == pytest.approx(float(b.column(*b.test_metric)[row]), abs=1e-5)
    # the derived cell is what the final architecture parameters say (arg-max per edge)
    assert np.array_equal(np.argmax(np.asarray(rec["arch"]), -1), np.asarray(arch))


def test_rerun_of_a_finished_search_reads_it_back_and_a_different_run_is_refused(finished, data, capsys):
    before = (finished / "result.json").read_text()
    rc, out, _ = cli(["supernet", "--space", "nb201", "--method", "darts", "--data", data, "--epochs", "2",
                      "--out", str(finished), *TINY], capsys)
    assert rc == 0 and "resumed after epoch 2" in out
    assert json.loads((finished / "result.json").read_text())["derived_arch"] == json.loads(before)["derived_arch"]
    rc, _, err = cli(["supernet", "--space", "nb201", "--method", "gdas", "--data", data, "--epochs", "2",
                      "--out", str(finished), *TINY], capsys)
    assert rc == 2 and "different run" in err and "method" in err and err.count("\n") == 1
    assert json.loads((finished / "result.json").read_text())["history"] == json.loads(before)["history"]


@pytest.mark.slow  # three compiles; tests/test_oneshot.py checks the same of search_supernet in the fast tier
def test_interrupted_search_resumes_and_ends_like_an_uninterrupted_one(data, tmp_path):
    kw = dict(data=data, epochs=3, seed=1, model_options={"channels": 2, "cells_per_stage": 1},
              config_overrides={"batch_size": 8, "eval_batch_size": 16})
    whole = run_supernet("nb201", "gdas", out=tmp_path / "whole", **kw)

    def stop(rec):
        if rec["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_supernet("nb201", "gdas", out=tmp_path / "cut", on_epoch=stop, **kw)
    assert not (tmp_path / "cut" / "result.json").exists()
    cut = run_supernet("nb201", "gdas", out=tmp_path / "cut", **kw)
    assert cut["resumed_from"] == 2
    assert cut["arch"] == whole["arch"] and cut["derived_arch"] == whole["derived_arch"]
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in whole["history"]]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in cut["history"]] == strip


def test_bf16_search_runs_and_keeps_the_distribution_on_the_simplex(data, tmp_path):
    from jnas.train import checkpoint as ckpt

    rec = run_supernet("nb201", "anasod-dnas", data=data, epochs=1, out=tmp_path / "bf16",
                       model_options={"channels": 2, "cells_per_stage": 1},
                       config_overrides={"batch_size": 8, "eval_batch_size": 16, "bf16": True},
                       method_options={"derive_samples": 2})
    h = rec["history"][0]
    assert np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) and rec["config"]["bf16"] is True
    assert np.sum(rec["arch"]) == pytest.approx(1.0, abs=1e-6)  # the distribution stays on the simplex
    assert ckpt.read_meta(tmp_path / "bf16" / "checkpoints")["config"]["bf16"] is True


@pytest.mark.parametrize("args, flag", [
    (["--method", "dart"], "--method"),
    (["--space", "nb101"], "--space"),
    (["--epochs", "0"], "--epochs"),
    (["--data", "no_such_dataset"], "--data"),
    (["--set", "tau_min=1"], "--set tau_min"),  # darts has no temperature
    (["--method", "gdas", "--set", "tau_min=20"], "--set tau_min"),  # above tau_max
    (["--method", "anasod-dnas", "--set", "derive_samples=2.5"], "--set derive_samples"),
    (["--model", "layers=3"], "--model"),  # a DARTS option on NB201
    (["--model", "channels=0"], "--model channels"),
    (["--config", "epochs=3"], "--config epochs"),
    (["--config", "lr=-1"], "TrainConfig.lr"),
    (["--config", "label_smoothing=0.1"], "--config label_smoothing"),  # the search would ignore it
    (["--config", "eval_every=2"], "--config eval_every"),
])
def test_bad_input_is_one_line_naming_the_argument(args, flag, tmp_path, capsys, data):
    base = {"--space": "nb201", "--method": "darts", "--data": data, "--epochs": "1"}
    for i in range(0, len(args), 2):
        if args[i] in base:
            base[args[i]] = args[i + 1]
    extra = [a for i in range(0, len(args), 2) if args[i] not in base for a in args[i:i + 2]]
    argv = ["supernet", *[x for kv in base.items() for x in kv], "--out", str(tmp_path / "o"), "--no-progress",
            *extra]
    rc, _, err = cli(argv, capsys)
    assert rc == 2, err
    assert err.startswith("jnas: error: ") and err.count("\n") == 1, err
    assert flag in err, err
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_corrupt_checkpoint_folder_is_a_one_line_error_and_nothing_is_deleted(finished, data, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(finished, bad)
    meta = next((bad / "checkpoints" / "2" / "meta").glob("metadata"))
    meta.write_text("not json")
    rc, _, err = cli(["supernet", "--space", "nb201", "--method", "darts", "--data", data, "--epochs", "2",
                      "--out", str(bad), *TINY], capsys)
    assert rc == 2 and "--out" in err and "unreadable" in err and err.count("\n") == 1, err
    assert meta.read_text() == "not json" and (bad / "result.json").exists()


def test_a_derived_darts_genotype_is_a_train_architecture():
    space = get_space("darts")
    rng = np.random.default_rng(3)
    for _ in range(5):
        arch = derive_argmax("darts", rng.random(edge_weight_shape("darts")))
        text = space.to_string(arch)
        _, parsed = parse_arch("darts", text)  # what `jnas train --space darts --arch TEXT` reads first
        assert np.array_equal(np.asarray(parsed), arch)
        assert bool(space.is_valid(parsed))


def test_trained_supernet_is_an_evaluator_a_strategy_can_search(finished, tmp_path):
    ev = load_supernet_run(finished)
    space = get_space("nb201")
    rec = json.loads((finished / "result.json").read_text())
    archs = jax.vmap(space.sample)(jax.random.split(jax.random.key(0), 3))
    values = ev.query(archs)
    assert values.shape == (3,) and np.all((values >= 0) & (values <= 100))
    assert ev.query(jax.tree.map(lambda a: a[:1], archs))[0] == values[0]
    assert len(ev.history) == 3  # the repeated query came from the cache
    # one-hot inherited weights differ from the mixture: two different cells get different losses
    losses = {ev.evaluate(jax.tree.map(lambda a, i=i: a[i], archs))["valid_loss"] for i in range(3)}
    assert len(losses) > 1
    derived = space.from_string(rec["derived_arch"])
    assert np.isfinite(ev.test_value(derived))
    res = search(evaluator=ev, strategy="rs", budget=4, seeds=1, out=tmp_path / "rs")
    assert res.summary["budget"] == 4
    with pytest.raises(JnasError, match="fidelity"):
        ev.query(archs, fidelity=3)


DARTS_METHOD_ARGS = {
    "darts": [], "anasod-dnas": [],
    "pc-darts": ["--set", "partial_channels=2", "--set", "warmup_epochs=0"],
    "pdarts": ["--set", "depths=2,3", "--set", "keep_ops=3", "--set", "skip_dropout=0.2,0.4",
               "--set", "warmup_epochs=0"],
}
ARCH_SHAPE = {"darts": (2, 14, 8), "anasod-dnas": (2, 7), "pc-darts": (2, 14, 9), "pdarts": (2, 14, 8)}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(DARTS_METHOD_ARGS))
def test_darts_space_search_derives_a_genotype_train_accepts(method, data, tmp_path, capsys):
    out = tmp_path / method
    layers = [] if method == "pdarts" else ["--model", "layers=2"]
    rc, _, err = cli(["supernet", "--space", "darts", "--method", method, "--data", data, "--epochs", "1",
                      "--out", str(out), "--model", "channels=2", *layers, "--config", "batch_size=8",
                      "--config", "eval_batch_size=16", "--no-progress", *DARTS_METHOD_ARGS[method]], capsys)
    assert rc == 0, err
    rec = json.loads((out / "result.json").read_text())
    space, arch = parse_arch("darts", rec["derived_arch"])
    assert bool(space.is_valid(arch)) and "nb201_test_acc" not in rec
    assert np.asarray(rec["arch"]).shape == ARCH_SHAPE[method]
    if method == "pdarts":
        assert [s["model_options"]["layers"] for s in rec["stages"]] == [2, 3]
        assert (np.asarray(rec["stages"][1]["op_mask"]).sum(-1) == 3).all()


def test_a_method_refuses_a_space_it_does_not_support():
    from jnas.train.oneshot_methods import Darts

    class OnlyNB201(Darts):
        name = "only-nb201"
        spaces = ("nb201",)

    OnlyNB201("nb201")
    with pytest.raises(JnasError, match=r"^--space: got 'darts', expected one of nb201 \(the spaces method only-nb201"):
        OnlyNB201("darts")


def test_list_names_the_one_shot_methods_and_their_options(capsys):
    rc, out, _ = cli(["list"], capsys)
    methods = "darts, darts2, gdas, snas, pc-darts, pdarts, anasod-dnas, enas"
    assert rc == 0 and f"one-shot methods (jnas supernet): {methods}" in out
    assert "snas --set tau_max=1.0" in out and "resource_lambda=0.0" in out
    assert "gdas --set tau_max=10.0" in out and "supernet nb201 --model channels=16" in out
    assert "enas --set controller=lstm" in out and "enas --set derive_examples=1024" in out


def test_search_cli_runs_a_strategy_on_a_trained_supernet(finished, tmp_path, capsys):
    out = tmp_path / "re"
    rc, _, err = cli(["search", "--evaluator", "supernet", "--supernet", str(finished), "--strategy", "re",
                      "--budget", "4", "--set", "population_size=2", "--set", "sample_size=1", "--out", str(out),
                      "--no-progress"], capsys)
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["budget"] == 4 and summary["benchmark"].startswith("supernet/nb201/darts")
    for argv, needle in ((["--supernet", str(finished), "--benchmark", "nb201/cifar10"], "--supernet: applies only"),
                         (["--evaluator", "supernet"], "--supernet: missing"),
                         (["--evaluator", "supernet", "--supernet", str(tmp_path)], "supernet run"),
                         (["--evaluator", "supernet", "--supernet", str(finished), "--epochs", "3"], "--epochs")):
        rc, _, err = cli(["search", "--strategy", "rs", "--budget", "2", "--out", str(tmp_path / "x"), *argv], capsys)
        assert rc == 2 and needle in err and err.count("\n") == 1, err
