"""Multi-objective search by training (NAGO's MOBO objectives): validation accuracy and activation memory.

Tiny networks on 8x8 images (``test_training_evaluator``'s data and config): ``wide_builder`` makes the
width depend on the architecture, so memory differs between architectures and the front is not one point;
first edge ``none`` -> NaN loss, ``skip_connect`` -> crash (failed trainings, as ``tiny_builder``).
"""

import json

import numpy as np
import pytest
from flax import nnx
from test_training_evaluator import CFG, DATA, tiny_builder

from jnas.benchmarks.training import TrainingEvaluator
from jnas.cli import main
from jnas.errors import Interrupted, JnasError
from jnas.models.cost import activation_bytes_per_image
from jnas.runs import search
from jnas.runs.journal import JOURNAL
from jnas.runs.results import load_result
from jnas.spaces import get_space

NB201 = get_space("nb201")
OBJ = "valid_acc,memory"
BUDGET = 6
TINY = {"rs": {}, "mobo": {"batch_size": 2, "n_init": 4, "bnn_samples": 2, "bnn_burnin": 4, "bnn_map_steps": 4,
                           "bnn_thinning": 1}}


class WideNet(nnx.Module):
    """conv 3x3 (``width`` channels) -> BatchNorm -> ReLU -> global mean -> dense."""

    def __init__(self, width, *, num_classes, rngs):
        self.conv = nnx.Conv(3, width, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(width, rngs=rngs)
        self.fc = nnx.Linear(width, num_classes, rngs=rngs)

    def __call__(self, x):
        return self.fc(nnx.relu(self.bn(self.conv(x))).mean(axis=(1, 2)))


def wide_builder(space, arch, *, num_classes, rngs):
    """4 channels when the second edge's op id is even and the first edge is a healthy op, else ``tiny_builder``
    (8 channels, sharing its compilation, or its failures): two compiled shapes, two memories."""
    a = np.asarray(arch)
    if int(a[1]) % 2 or int(a[0]) in (0, 1):
        return tiny_builder(space, arch, num_classes=num_classes, rngs=rngs)
    return WideNet(4, num_classes=num_classes, rngs=rngs)


def memory_of(text):
    """MB per image of ``wide_builder``'s network of ``text`` (8x8x3 images)."""
    model = wide_builder("nb201", NB201.from_string(text), num_classes=2, rngs=nnx.Rngs(0))
    return activation_bytes_per_image(model, (8, 8, 3)) / 1e6


class Counting(TrainingEvaluator):
    """Records every training it starts: (arch, epochs, test)."""

    def __init__(self):
        super().__init__("nb201", DATA, config=CFG, builder=wide_builder, valid_size=16)
        self.trained = []

    def _run(self, arch, text, epochs, test):
        self.trained.append((text, epochs, test))
        return super()._run(arch, text, epochs, test)


def run(out, strategy="rs", evaluator=None, progress=None):
    return search(evaluator=evaluator or Counting(), strategy=strategy, budget=BUDGET, seeds=1, objectives=OBJ,
                  options=TINY[strategy], out=out, progress=progress)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mo_training")
    return {name: (root / name, run(root / name, name)) for name in ("rs", "mobo")}


def dominated(y):
    """``bool[n]``: rows of ``y float[n, M]`` (maximised; NaN rows never count) dominated by another row."""
    ok = np.isfinite(y).all(axis=1)
    return np.array([ok[i] and any(ok[j] and np.all(y[j] >= y[i]) and np.any(y[j] > y[i]) for j in range(len(y)))
                     for i in range(len(y))])


@pytest.mark.parametrize("name", ["rs", "mobo"])
def test_fronts_of_accuracy_and_memory_are_written_and_read_back(runs, name):
    out, res = runs[name]
    s, t = res.summary, res.trajectory
    assert s["objectives"] == ["valid_acc@2", "memory@2"] and s["directions"] == ["max", "min"]
    assert s["true_front"] is False and s["final_hv_regret_mean"] is None and s["test_metric"] is None
    assert s["search_uses_test_data"] is False and "no test counterpart" in s["test_measured"]
    assert t["values"].shape == (1, BUDGET, 2) and t["hypervolume"].shape == (1, BUDGET)
    assert np.all(np.diff(t["hypervolume"], axis=1) >= 0) and 0 <= s["final_hypervolume_mean"] <= 1
    back = load_result(out)
    assert back.summary == s and back.fronts == res.fronts
    np.testing.assert_array_equal(back.trajectory["values"], t["values"])
    # memory: the network's activation bytes per image in MB, NaN exactly where the training failed
    entries = [json.loads(x) for x in (out / JOURNAL).read_text().splitlines()]
    assert [e["query"] for e in entries] == list(range(BUDGET))
    for e, (acc, mem) in zip(entries, t["values"][0]):
        assert (e["status"] == "ok") == np.isfinite(mem) == np.isfinite(acc)
        if e["status"] == "ok":
            assert mem > 0 and mem == e["metrics"]["memory"] == pytest.approx(memory_of(e["arch"]), rel=1e-12)
        else:
            assert e["metrics"]["memory"] is None
    # the front is exactly the non-dominated evaluations, each architecture once
    y = t["values"][0] * np.array([1.0, -1.0])
    on = np.isfinite(y).all(axis=1) & ~dominated(y)
    front = res.fronts[0]
    assert {m["arch"] for m in front} == set(t["arch"][0][on]) and len(front) == len({m["arch"] for m in front})
    for m in front:
        assert m["search"] == list(t["values"][0, m["query"]]) and "test" not in m


def test_rs_finds_a_front_of_several_widths(runs):
    _, res = runs["rs"]
    mem = res.trajectory["values"][0, :, 1]
    assert len(set(mem[np.isfinite(mem)])) == 2  # both widths were trained: memory is not one value
    assert res.summary["evaluations_failed"] == int(np.isnan(mem).sum()) > 0  # failed trainings: NaN memory


def test_hypervolume_is_normalised_by_the_run_s_ideal_and_reference_point(runs):
    _, res = runs["rs"]
    y = res.trajectory["values"][0] * np.array([1.0, -1.0])
    ok = np.isfinite(y).all(axis=1)
    worst, best = y[ok].min(axis=0), y[ok].max(axis=0)
    lo = worst - 0.1 * (best - worst)  # the reference: 10% of the range below the worst value
    area, top = 0.0, 0.0  # area dominated by the normalised points above the origin: sweep x from the right
    for x, h in sorted(((y[ok] - lo) / (best - lo)).tolist(), reverse=True):
        if h > top:
            area, top = area + x * (h - top), h
    assert area > 0 and res.summary["final_hypervolume_mean"] == pytest.approx(area, rel=1e-5)
    norm = res.summary["normalisation"]
    np.testing.assert_allclose(norm["ideal"], best * [1, -1])
    np.testing.assert_allclose(norm["reference"], lo * [1, -1])


def test_an_interrupted_run_resumes_from_its_journal_without_retraining(runs, tmp_path):
    _, whole = runs["rs"]
    first = Counting()

    def stop_after_3(info):
        if info["done"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=r"3 of 6 evaluations are in .*journal.jsonl"):
        run(tmp_path / "cut", evaluator=first, progress=stop_after_3)
    done_before = {json.loads(x)["arch"] for x in (tmp_path / "cut" / JOURNAL).read_text().splitlines()}
    second = Counting()
    cut = run(tmp_path / "cut", evaluator=second)
    entries = [json.loads(x) for x in (tmp_path / "cut" / JOURNAL).read_text().splitlines()]
    assert len(entries) == BUDGET and cut.summary["resumed_evaluations"] == 3
    later = {e["arch"] for e in entries[3:]} - done_before
    assert sorted(a for a, _, test in second.trained) == sorted(later) and not any(t for *_, t in second.trained)
    for k, v in whole.trajectory.items():
        np.testing.assert_array_equal(cut.trajectory[k], v, err_msg=k)
    skip = {"wall_seconds", "resumed_evaluations"}
    assert {k: v for k, v in cut.summary.items() if k not in skip} == {
        k: v for k, v in whole.summary.items() if k not in skip}
    assert cut.fronts == whole.fronts
    third = Counting()
    assert run(tmp_path / "cut", evaluator=third).origin == "read" and third.trained == []


@pytest.mark.parametrize("objectives, needle", [
    ("test_acc,memory", r"^objectives: 'test_acc@2' is test data of train/nb201/arrays"),
    ("valid_acc", r"^objectives: got one objective"),
    ("valid_acc,latency", r"^objectives: 'latency': metric: got 'latency'"),
    ("valid_acc,valid_acc@2", r"^objectives: 'valid_acc@2' is given twice"),
    ("valid_acc@1,memory", r"^objectives: 'valid_acc@1': train/nb201/arrays measures valid_acc only at fidelity 2"),
])
def test_bad_objectives_are_one_line_errors(objectives, needle):
    ev = Counting()
    with pytest.raises(JnasError, match=needle) as e:
        search(evaluator=ev, strategy="rs", budget=BUDGET, objectives=objectives)
    assert "\n" not in str(e.value) and ev.trained == []
    with pytest.raises(JnasError, match=r"^objectives: strategy 're' optimises one objective"):
        search(evaluator=ev, strategy="re", budget=BUDGET, objectives=OBJ)


def test_compare_tables_and_draws_fronts_and_refuses_a_table_run(runs, tmp_path, capsys):
    (rs, _), (mobo, _) = runs["rs"], runs["mobo"]
    png = tmp_path / "fronts.png"
    assert main(["compare", str(rs), str(mobo), "--plot", str(png)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "hv regret" in lines[0] and all(" - " in x for x in lines[2:4])
    assert lines[-1].startswith("hypervolume: normalised by the ideal and reference point of all 2 runs'")
    assert png.stat().st_size > 1000
    table_run = tmp_path / "table"
    search("nbgraph/cora", "rs", 10, objectives="valid_acc,latency", out=table_run)
    assert main(["compare", str(rs), str(table_run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mix multi-objective runs on a table (true front) and by training" in err[0]


def test_null_regret_is_read_back_only_without_a_true_front(runs, tmp_path):
    import shutil

    out, _ = runs["rs"]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "true_front": True}))
    with pytest.raises(JnasError, match="key '(test_metric|final_hv_regret_mean)' is None, expected a (string|number)"):
        load_result(copy)
    (copy / "summary.json").write_text(json.dumps({**summary, "final_hv_regret_mean": 0.5}))
    with pytest.raises(JnasError, match="key 'final_hv_regret_mean' is 0.5, expected null"):
        load_result(copy)


def test_mobo_searches_a_generator_space_through_its_relaxation(tmp_path):
    """NAGO's MOBO over generator hyperparameters: ``nago`` has no categorical decisions, so mobo's surrogates
    read its box relaxation (``unit_vector``); tiny stand-in networks whose width follows the configuration."""

    def builder(space, arch, *, num_classes, rngs, seed=0, **options):
        return WideNet(4 if int(np.asarray(arch)[0]) % 2 else 8, num_classes=num_classes, rngs=rngs)

    ev = TrainingEvaluator("nago", DATA, config=CFG, builder=builder, valid_size=16)
    r = search(evaluator=ev, strategy="mobo", budget=BUDGET, objectives=OBJ, options=TINY["mobo"],
               out=tmp_path / "m")
    vals = r.trajectory["values"][0]
    assert vals.shape == (BUDGET, 2) and np.isfinite(vals).all()
    assert len(set(r.trajectory["arch"][0].tolist())) > 1 and r.summary["space"] == "nago"
    assert load_result(tmp_path / "m").fronts[0]
