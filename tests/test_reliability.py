"""Faults a run survives: kills at any point, a full disk at any write, torn or damaged files, bad input.

Each test here backs a row of ``docs/reliability.md``. The searches are small table searches (NAS-Bench-Graph
``cora``), run through the compiled scan or, for the journaled loop that training searches use, through
``TableLoop``: the same table answered one architecture at a time (``traceable = False``).
"""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import jnas.runs.folder as folder_mod
import jnas.runs.journal as journal_mod
from jnas.benchmarks import get_benchmark
from jnas.cli import main
from jnas.errors import JnasError
from jnas.runs import load_result, search
from jnas.runs.folder import write_atomic
from jnas.runs.journal import JOURNAL, Journal

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
TABLE = ["search", "--benchmark", "nbgraph/cora", "--strategy", "re", "--budget", "30", "--seeds", "3",
         "--set", "population_size=6", "--set", "sample_size=3", "--no-progress"]


def one_line(capsys, *needles) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and all(n in err[0] for n in needles), err
    return err[0]


def stray_temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def same_result(a, b):
    for k, v in a.trajectory.items():
        np.testing.assert_array_equal(b.trajectory[k], v, err_msg=k)


@pytest.fixture(scope="module")
def whole_table(tmp_path_factory):
    """The uninterrupted run of ``TABLE``: what every resumed run must equal (its ``folder`` attribute: where)."""
    out = tmp_path_factory.mktemp("whole") / "r"
    assert main([*TABLE, "--out", str(out)]) == 0
    res = load_result(out)
    res.folder = out
    return res


# ----- a full disk: every atomic write can fail ---------------------------------------------------


class _FullDiskFile:
    """A file that takes half of the first write, then fails with ENOSPC (as a disk that fills up does)."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(bytes(data)[: max(1, len(data) // 2)])
        self._f.flush()
        raise ENOSPC

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def fill_disk_at_write(monkeypatch, n: int):
    """Make the ``n``-th file ``write_atomic`` opens (0-based) hit a full disk; returns the count of opens."""
    opened = [0]

    def fake_open(path, mode="r", *a, **k):
        f = open(path, mode, *a, **k)
        opened[0] += 1
        return _FullDiskFile(f) if opened[0] - 1 == n else f

    monkeypatch.setattr(folder_mod, "open", fake_open, raising=False)
    return opened


def test_write_atomic_leaves_the_old_file_or_none_never_half_of_one(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old")
    fill_disk_at_write(monkeypatch, 0)
    with pytest.raises(JnasError) as e:
        write_atomic(target, lambda f: f.write(b"new and longer"), "; then this")
    assert str(e.value) == f"cannot write {target} (No space left on device); then this"
    assert target.read_text() == "old" and stray_temp_files(tmp_path) == []
    monkeypatch.undo()

    def interrupted(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "new.json", interrupted)
    assert not (tmp_path / "new.json").exists() and stray_temp_files(tmp_path) == []


# writes of TABLE into a fresh folder: run.json, the three chunks (one seed each), summary.json, trajectory.npz
@pytest.mark.parametrize("n", range(6), ids=["run.json", "chunk0", "chunk1", "chunk2", "summary", "trajectory"])
def test_disk_full_at_any_write_of_a_table_search_is_one_line_and_the_rerun_finishes_it(
        n, whole_table, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    opened = fill_disk_at_write(monkeypatch, n)
    assert main([*TABLE, "--out", str(out)]) == 2
    one_line(capsys, "jnas: error: cannot write ", "(No space left on device)")
    assert opened[0] == n + 1  # it stopped at the failed write
    assert stray_temp_files(out) == []  # no half file anywhere
    assert not ((out / "summary.json").is_file() and (out / "trajectory.npz").is_file())  # never looks finished
    if n:  # what was written before the disk filled up is whole
        assert json.loads((out / "run.json").read_text())["strategy"] == "re"
        assert len(list((out / "partial").glob("chunk_*.npz"))) == min(n - 1, 3)
    monkeypatch.undo()
    assert main([*TABLE, "--out", str(out)]) == 0
    res = load_result(out)
    same_result(whole_table, res)
    assert res.summary["resumed_seeds"] == min(max(n - 1, 0), 3)


def test_disk_full_while_drawing_the_plot_is_one_line(whole_table, tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    def full(self, path, *a, **k):
        raise ENOSPC

    monkeypatch.setattr(Figure, "savefig", full)
    plot = tmp_path / "c.png"
    assert main(["compare", str(whole_table.folder), "--plot", str(plot)]) == 2
    one_line(capsys, f"jnas: error: --plot: cannot write {str(plot)!r} (No space left on device)")


class _FullDiskOs:
    """``os`` for ``jnas.runs.journal``: the ``fail_at``-th write takes half its bytes, then fails with ENOSPC."""

    def __init__(self, fail_at: int):
        self.writes, self.fail_at = 0, fail_at

    def write(self, fd, data):
        self.writes += 1
        if self.writes - 1 == self.fail_at:
            os.write(fd, bytes(data)[: len(data) // 2])
            raise ENOSPC
        return os.write(fd, data)

    def __getattr__(self, name):
        return getattr(os, name)


def test_disk_full_while_journaling_keeps_every_earlier_line_and_leaves_no_half_line(tmp_path, monkeypatch):
    j = Journal(tmp_path / JOURNAL)
    for q in range(3):
        j.append({"seed": 0, "query": q, "arch": f"a{q}", "metrics": {"acc": 1.0}})
    before = j.path.read_bytes()
    monkeypatch.setattr(journal_mod, "os", _FullDiskOs(0))
    with pytest.raises(JnasError) as e:
        j.append({"seed": 0, "query": 3, "arch": "a3", "metrics": {"acc": 1.0}})
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"cannot write {j.path} (No space left on device)")
    assert "rerun the same command to resume" in msg
    assert j.path.read_bytes() == before
    monkeypatch.undo()
    assert sorted(j.load()) == [(0, 0), (0, 1), (0, 2)]


# ----- the journaled loop (training searches) ---------------------------------------------------------


class TableLoop:
    """``nbgraph/cora`` behind the untraceable evaluator protocol: a search takes the journaled Python loop, as a
    training search does, in a fraction of the time. ``evaluated`` lists the architectures it really evaluated."""

    traceable = False

    def __init__(self):
        self._bench = get_benchmark("nbgraph/cora")
        self.name = "loop/nbgraph/cora"
        self.evaluated = []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["_bench"], name)

    def describe(self) -> dict:
        return {**self._bench.describe(), "name": self.name}

    def evaluate(self, arch, fidelity=None) -> dict:
        self.evaluated.append(self._bench.space.to_string(arch))
        return self._bench.evaluate(arch, fidelity)


LOOP_BUDGET = 10


def loop_search(out, evaluator=None):
    return search(evaluator=evaluator or TableLoop(), strategy="re", budget=LOOP_BUDGET, seeds=2,
                  options={"population_size": 4, "sample_size": 2}, out=out)


@pytest.fixture(scope="module")
def whole_loop(tmp_path_factory):
    out = tmp_path_factory.mktemp("loop") / "r"
    return out, loop_search(out)


def unfinished_copy(whole_dir: Path, dest: Path, journal: bytes) -> Path:
    """``dest``: the run folder of ``whole_dir`` as a killed run left it, with journal bytes ``journal``."""
    dest.mkdir(parents=True)
    (dest / "run.json").write_bytes((whole_dir / "run.json").read_bytes())
    (dest / JOURNAL).write_bytes(journal)
    return dest


def test_a_loop_search_killed_mid_line_drops_the_torn_line_and_resumes_to_the_same_result(whole_loop, tmp_path):
    whole_dir, whole = whole_loop
    lines = (whole_dir / JOURNAL).read_bytes().splitlines(keepends=True)
    cut = unfinished_copy(whole_dir, tmp_path / "cut", b"".join(lines[:7]) + lines[7][:40])
    ev = TableLoop()
    res = loop_search(cut, ev)
    same_result(whole, res)
    assert res.summary["resumed_evaluations"] == 7
    assert len(ev.evaluated) <= 2 * LOOP_BUDGET - 7  # nothing journaled was evaluated again
    entries = [json.loads(x) for x in (cut / JOURNAL).read_text().splitlines()]  # every line whole again
    assert sorted((e["seed"], e["query"]) for e in entries) == [(s, q) for s in range(2) for q in range(LOOP_BUDGET)]


def test_journal_torn_last_line_vs_damaged_middle_line(tmp_path):
    j = Journal(tmp_path / JOURNAL)
    whole = [json.dumps({"seed": 0, "query": q, "arch": f"a{q}"}).encode() + b"\n" for q in range(3)]
    j.path.write_bytes(b"".join(whole) + b'{"seed": 0, "query": 3, "ar')  # killed while writing line 4
    assert sorted(j.load()) == [(0, 0), (0, 1), (0, 2)]
    assert j.path.read_bytes() == b"".join(whole)  # the torn line is cut off, in place

    damaged = whole[0] + b'{"seed": 0, "qu#ry": 1}\n' + whole[2]
    j.path.write_bytes(damaged)
    with pytest.raises(JnasError) as e:
        j.load()
    assert str(e.value) == f"{j.path}: line 2 is damaged; rerun with --overwrite to start afresh"
    assert j.path.read_bytes() == damaged  # nothing is changed


def test_a_whole_last_entry_without_its_newline_is_kept_and_the_next_entry_starts_a_line(tmp_path):
    j = Journal(tmp_path / JOURNAL)
    j.path.write_bytes(json.dumps({"seed": 0, "query": 0, "arch": "a0"}).encode())  # killed before the newline
    assert sorted(j.load()) == [(0, 0)]
    j.append({"seed": 0, "query": 1, "arch": "a1"})
    assert sorted(j.load()) == [(0, 0), (0, 1)]


def test_disk_full_during_a_loop_search_stops_it_in_one_line_and_the_rerun_finishes_it(whole_loop, tmp_path,
                                                                                        monkeypatch):
    whole_dir, whole = whole_loop
    out = tmp_path / "r"
    monkeypatch.setattr(journal_mod, "os", _FullDiskOs(6))
    with pytest.raises(JnasError, match=r"^cannot write .*journal.jsonl \(No space left on device\)") as e:
        loop_search(out)
    assert "\n" not in str(e.value)
    monkeypatch.undo()
    assert len((out / JOURNAL).read_bytes().splitlines()) == 6 and (out / JOURNAL).read_bytes().endswith(b"\n")
    res = loop_search(out)
    same_result(whole, res)
    assert res.summary["resumed_evaluations"] == 6


def test_a_journal_that_does_not_match_its_run_is_refused_and_kept(whole_loop, tmp_path):
    whole_dir, _ = whole_loop
    entries = [json.loads(x) for x in (whole_dir / JOURNAL).read_text().splitlines()]
    first = entries[0]
    other = next(e["arch"] for e in entries if e["arch"] != first["arch"])
    first["arch"] = other
    journal = "".join(json.dumps(e) + "\n" for e in [first, *entries[1:5]]).encode()
    cut = unfinished_copy(whole_dir, tmp_path / "cut", journal)
    with pytest.raises(JnasError) as e:
        loop_search(cut)
    msg = str(e.value)
    assert "\n" not in msg and f"seed {first['seed']} query {first['query']} recorded {other!r}" in msg
    assert "it is the journal of a different run (use another folder or --overwrite)" in msg
    assert (cut / JOURNAL).read_bytes() == journal


def test_a_damaged_result_file_of_a_finished_loop_search_is_one_line_and_the_journal_rebuilds_it(whole_loop,
                                                                                                  tmp_path):
    whole_dir, whole = whole_loop
    out = tmp_path / "r"
    out.mkdir()
    for name in ("run.json", JOURNAL, "summary.json", "trajectory.npz"):
        (out / name).write_bytes((whole_dir / name).read_bytes())
    (out / "trajectory.npz").write_bytes((whole_dir / "trajectory.npz").read_bytes()[:100])  # damaged afterwards
    with pytest.raises(JnasError, match=r"trajectory.npz: truncated or corrupt \(BadZipFile: .*\); "
                                        r"delete summary.json and trajectory.npz in .* and rerun"):
        loop_search(out)
    for name in ("summary.json", "trajectory.npz"):  # the workaround: drop the result files, keep the journal
        (out / name).unlink()
    ev = TableLoop()
    res = loop_search(out, ev)
    same_result(whole, res)
    assert ev.evaluated == [] and res.summary["resumed_evaluations"] == 2 * LOOP_BUDGET


def test_missing_table_values_are_failed_evaluations_and_the_table_search_goes_on():
    # nb201/cifar100 has valid_acc@200 for 1,104 of 15,625 cells: most queries find no value (NaN)
    res = search("nb201/cifar100", "re", 40, seeds=2, fidelity=200)
    value = res.trajectory["value"]
    assert res.summary["failed_fraction"] == np.isnan(value).mean() > 0.5
    assert np.isfinite(res.trajectory["best_test"][:, -1]).all()  # the values there still drove each search


# ----- kills of a table search ------------------------------------------------------------------------

_KILLED_SCRIPT = """
import sys, time
from jnas.runs import search
def slow(n, note=None):
    time.sleep(0.4)
search("nbgraph/cora", "re", 30, seeds=6, chunk=1, options={"population_size": 6, "sample_size": 3},
       out=sys.argv[1], progress=slow)
"""


def test_a_sigkilled_table_search_resumes_to_the_uninterrupted_result(tmp_path):
    out = tmp_path / "cut"
    env = {**os.environ, "JNAS_NO_COMPILE_CACHE": "1"}
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_SCRIPT, str(out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "partial").glob("chunk_*.npz"))) < 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no chunk written in 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (out / "summary.json").exists()
    kept = len(list((out / "partial").glob("chunk_*.npz")))
    args = dict(seeds=6, chunk=1, options={"population_size": 6, "sample_size": 3})
    res = search("nbgraph/cora", "re", 30, out=out, **args)
    assert res.summary["resumed_seeds"] == kept >= 2
    same_result(search("nbgraph/cora", "re", 30, **args), res)
    assert stray_temp_files(out) == [] and not (out / "partial").exists()


def killed_table_folder(out: Path, monkeypatch, capsys) -> Path:
    """``out`` as ``TABLE`` leaves it when stopped after two of its three chunks: ``run.json``, ``partial/``
    with two real chunk files (a full disk at the third write stops it there)."""
    fill_disk_at_write(monkeypatch, 3)
    assert main([*TABLE, "--out", str(out)]) == 2
    monkeypatch.undo()
    capsys.readouterr()
    assert sorted(f.name for f in (out / "partial").iterdir()) == ["chunk_000000.npz", "chunk_000001.npz"]
    return out


@pytest.mark.parametrize("state, resumed", [
    ("stray temp files", 2),  # killed while writing a chunk and run.json: hidden .NAME.PID.tmp files
    ("summary without trajectory", 2),  # killed between the two final files
    ("damaged chunk", 1),  # a chunk file cut short (copied, or a disk without atomic rename)
    ("chunk without its arrays", 1),  # a whole archive that lacks rows/values/seconds (edited by hand)
    ("run.json only", 0),  # killed before the first chunk
])
def test_every_folder_a_killed_table_search_leaves_is_resumed_to_the_same_result(
        state, resumed, whole_table, tmp_path, capsys, monkeypatch):
    out = killed_table_folder(tmp_path / "r", monkeypatch, capsys)
    partial = out / "partial"
    if state == "stray temp files":
        (partial / ".chunk_000002.npz.4242.tmp").write_bytes(b"PK\x03\x04 half")
        (out / ".run.json.4242.tmp").write_bytes(b'{"kind": ')
    elif state == "summary without trajectory":
        (out / "summary.json").write_bytes((whole_table.folder / "summary.json").read_bytes())
    elif state == "damaged chunk":
        f = partial / "chunk_000001.npz"
        f.write_bytes(f.read_bytes()[:50])
    elif state == "chunk without its arrays":
        with open(partial / "chunk_000001.npz", "wb") as f:
            np.savez(f, something_else=np.zeros(3))
    elif state == "run.json only":
        for f in partial.iterdir():
            f.unlink()
    assert main([*TABLE, "--out", str(out)]) == 0
    res = load_result(out)
    same_result(whole_table, res)
    assert res.summary["resumed_seeds"] == resumed
    assert not partial.exists()
    if state == "stray temp files":
        assert stray_temp_files(out) == [out / ".run.json.4242.tmp"]  # harmless; --overwrite removes it
        assert main([*TABLE, "--out", str(out), "--overwrite"]) == 0
        assert stray_temp_files(out) == []


@pytest.mark.parametrize("text", ['{"kind": "tabular-sea', "[1, 2]", "\xff\xfe"])
def test_a_corrupt_run_json_is_one_line_and_overwrite_starts_afresh(text, whole_table, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "run.json").write_text(text, encoding="latin-1")
    assert main([*TABLE, "--out", str(out)]) == 2
    one_line(capsys, f"jnas: error: --out: '{out / 'run.json'}' is corrupt; rerun with --overwrite to start afresh")
    assert (out / "run.json").read_text(encoding="latin-1") == text
    assert main([*TABLE, "--out", str(out), "--overwrite"]) == 0
    same_result(whole_table, load_result(out))


# ----- supernet and training checkpoints ----------------------------------------------------------------


def _tiny_checkpoint(directory, epoch):
    import jax
    import jax.numpy as jnp

    from jnas.train import checkpoint as ckpt

    ckpt.save(directory, epoch, state={"w": jnp.full((3,), float(epoch))}, opt_state={"m": jnp.zeros(2)},
              key=jax.random.key(epoch), history=[{"epoch": e} for e in range(1, epoch + 1)], meta={"run": "x"})


def _restore(directory):
    import jax
    import jax.numpy as jnp

    from jnas.train import checkpoint as ckpt

    return ckpt.restore(directory, state={"w": jnp.zeros(3)}, opt_state={"m": jnp.zeros(2)}, key=jax.random.key(0))


def test_a_checkpoint_cut_short_by_a_kill_is_ignored_and_the_run_resumes_from_the_one_before(tmp_path):
    from jnas.train import checkpoint as ckpt

    d = tmp_path / "checkpoints"
    _tiny_checkpoint(d, 1)
    _tiny_checkpoint(d, 2)
    torn = d / "3.orbax-checkpoint-tmp"  # what orbax leaves when killed before it renames the finished save
    (torn / "arrays.orbax-checkpoint-tmp").mkdir(parents=True)
    (torn / "arrays.orbax-checkpoint-tmp" / "manifest.ocdbt").write_bytes(b"half")
    assert ckpt.latest_epoch(d) == 2
    c = _restore(d)
    assert c.epoch == 2 and float(c.state["w"][0]) == 2.0
    _tiny_checkpoint(d, 3)  # the resumed run writes epoch 3 over the torn one
    assert ckpt.latest_epoch(d) == 3 and _restore(d).epoch == 3


def test_disk_full_while_checkpointing_is_one_line_and_keeps_the_checkpoints_before(tmp_path, monkeypatch):
    import orbax.checkpoint as ocp

    from jnas.train import checkpoint as ckpt

    d = tmp_path / "checkpoints"
    _tiny_checkpoint(d, 1)

    def full(self, *a, **k):  # orbax reports tensorstore's ENOSPC as a ValueError
        raise ValueError('RESOURCE_EXHAUSTED: Error writing "state.w/0": Failed to write 6976 bytes to file 17: '
                         "No space left on device [os_error_code='28']")

    monkeypatch.setattr(ocp.CheckpointManager, "save", full)
    with pytest.raises(JnasError) as e:
        _tiny_checkpoint(d, 2)
    assert str(e.value) == (f"checkpoint_dir: cannot write the checkpoint of epoch 2 in {d} (No space left on "
                            "device); the checkpoints before it are kept: free some space and rerun the same command "
                            "to resume")

    def other(self, *a, **k):
        raise RuntimeError("something else")

    monkeypatch.setattr(ocp.CheckpointManager, "save", other)
    with pytest.raises(RuntimeError, match="something else"):  # only a full disk is turned into the one line
        _tiny_checkpoint(d, 2)
    monkeypatch.undo()
    assert ckpt.latest_epoch(d) == 1 and _restore(d).epoch == 1


def test_ctrl_c_in_a_supernet_search_says_which_epochs_are_checkpointed(tmp_path, capsys, monkeypatch):
    import jnas.runs.supernet as supernet

    def interrupted(*a, on_epoch=None, **k):
        on_epoch({"epoch": 1, "train_loss": 1.0, "train_acc": 50.0, "val_loss": 1.0, "val_acc": 50.0,
                  "seconds": 0.1, "derived_arch": "|none~0|"})
        raise KeyboardInterrupt

    monkeypatch.setattr(supernet, "run_supernet", interrupted)
    out = tmp_path / "s"
    assert main(["supernet", "--space", "nb201", "--method", "darts", "--epochs", "3", "--out", str(out),
                 "--no-progress"]) == 130
    one_line(capsys, f"jnas: interrupted: darts on nb201: epochs 1..1 are checkpointed in {out / 'checkpoints'}; "
                     "rerun the same command to resume")


# ----- bad input from the command line ------------------------------------------------------------------

CORA = ["search", "--benchmark", "nbgraph/cora", "--strategy", "re", "--no-progress"]


@pytest.mark.parametrize("extra, needle", [
    (["--budget", "0"], "--budget: got 0, expected a positive integer"),
    (["--budget", "-5"], "--budget: got -5, expected a positive integer"),
    (["--budget", "10", "--seeds", "0"], "--seeds: got 0, expected a positive integer"),
    (["--budget", "10", "--seed0", "-1"], "seed0: got -1, expected a non-negative integer"),
    (["--budget", "10", "--prng", "foo"], "prng: got 'foo', expected one of hash, threefry"),
    (["--budget", "10", "--set", "populaton_size=5"],
     "--set populaton_size: unknown option for strategy 're'; valid options: population_size, sample_size"),
    (["--budget", "10", "--set", "population_size=abc"], "--set population_size: got 'abc', expected an integer >= 2"),
    (["--budget", "10", "--model", "channels=8"], "--model: applies only with --evaluator train"),
    (["--budget", "10", "--fidelity", "7"], "fidelity: got 7 for metric"),
    (["--budget", "10", "--benchmark", "nb201"], "unknown benchmark 'nb201'; valid: "),
])
def test_out_of_range_and_unknown_options_are_one_line_and_create_nothing(extra, needle, tmp_path, capsys):
    out = tmp_path / "x"
    assert main([*CORA, *extra, "--out", str(out)]) == 2  # a second --benchmark replaces cora
    one_line(capsys, "jnas: error: ", needle)
    assert not out.exists()


def test_a_malformed_number_is_argparse_s_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([*CORA, "--budget", "20x", "--out", "x"])
    assert e.value.code == 2
    assert "jnas search: error: argument --budget: invalid int value: '20x'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["query", "--benchmark", "nb201/cifar10", "--arch", "garbage"],
     "arch: got 'garbage', expected an NB201 string like"),
    (["query", "--benchmark", "nb201/cifar10", "--arch", ""], "arch: got '', expected an NB201 string like"),
    (["query", "--benchmark", "nb201/cifar10", "--arch",
      "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~5|"],
     "arch: bad edge 'nor_conv_1x1~5'"),
    (["query", "--benchmark", "nbgraph/cora", "--arch", "x"], "arch: got 'x', expected a string like 'link="),
    (["train", "--space", "nb201", "--arch", "|nor_conv_3x3~0|", "--epochs", "1", "--out", "t"],
     "arch: got '|nor_conv_3x3~0|', expected an NB201 string like"),
])
def test_malformed_architecture_strings_are_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    one_line(capsys, "jnas: error: ", needle)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_data_folder_is_one_line_saying_how_to_get_the_tables(tmp_path, capsys, monkeypatch):
    get_benchmark.cache_clear()  # tables loaded by other tests must not answer
    try:
        monkeypatch.setenv("JNAS_DATA_DIR", str(tmp_path / "no" / "such" / "folder"))
        out = tmp_path / "x"
        assert main(["search", "--benchmark", "nb201/cifar10", "--strategy", "rs", "--budget", "5", "--no-progress",
                     "--out", str(out)]) == 2
        one_line(capsys, "jnas: error: benchmark data file 'nb201_accuracies.csv.gz' not found in "
                         f"{tmp_path / 'no' / 'such' / 'folder'} (set JNAS_DATA_DIR to the folder holding it, or run "
                         "`jnas data fetch nb201`)")
        assert not out.exists()
    finally:
        get_benchmark.cache_clear()

