"""Parallel and distributed evaluation (``jnas.runs.backends``, ``jnas.runs.loop``): sync and async modes, retries,
faults, resume; the Ray tests share one local Ray runtime of 2 CPUs."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from parallel_fakes import TableByCalls, evaluations

from jnas.benchmarks import get_benchmark
from jnas.errors import Interrupted, JnasError
from jnas.runs.backends import LocalBackend, Outcome, evaluate_record
from jnas.runs.journal import Journal
from jnas.runs.loop import run_journaled
from jnas.runs.search import plan_search, search
from jnas.strategies import get_strategy, make_strategy, names
from jnas.strategies.base import Strategy


@pytest.fixture(scope="module")
def nb201():
    return get_benchmark("nb201/cifar10")


class ShuffledBackend(LocalBackend):
    """In-process backend with ``workers`` slots that finishes a random one of the running jobs each time: the
    completion order of a parallel run, reproducibly."""

    name = "shuffled"

    def __init__(self, evaluator, workers: int = 3, seed: int = 0, order: str = "random"):
        super().__init__(evaluator)
        self.workers, self.rng, self.order = workers, np.random.default_rng(seed), order

    def wait(self):
        if not self._queue:
            return []
        running = self._queue[: self.workers]
        i = len(running) - 1 if self.order == "lifo" else int(self.rng.integers(len(running)))
        job = self._queue.pop(i)
        rec, seconds = evaluate_record(self.evaluator, job.arch, job.fidelity)
        return [Outcome(job, rec, "here", os.getpid(), seconds)]


class FirstUnseen(Strategy):
    """Asks the lowest-index architecture not told yet: without pending points, every running ask is the same."""

    name = "first-unseen"
    tracks_queried = True
    repeats = False

    def _ask(self, state, key):
        told = state.history.queried
        i = jnp.argmin(told).astype(jnp.int32)
        return jax.tree.map(lambda x: x[None], self.space.from_index(i)), state.inner


def _values(result):
    return np.asarray(result.trajectory["value"])


# ----------------------------------------------------------------------------- sync and async, in this process
def test_sync_results_do_not_depend_on_the_backend_or_completion_order(nb201, tmp_path):
    ev = TableByCalls(nb201, tmp_path)
    opts = {"batch_size": 3, "population_size": 6, "sample_size": 2}
    strat = make_strategy("re", nb201.space, 15, **opts)
    local = run_journaled(strat, ev, 2, nb201.search_metric)
    shuffled = run_journaled(strat, ev, 2, nb201.search_metric, backend=ShuffledBackend(ev, workers=4, seed=3))
    np.testing.assert_array_equal(local.values, shuffled.values)
    assert (local.texts == shuffled.texts).all()


def test_async_pending_points_are_not_asked_again(nb201, tmp_path):
    ev = TableByCalls(nb201, tmp_path)
    strat = FirstUnseen(nb201.space, 12)
    rec = run_journaled(strat, ev, 2, nb201.search_metric, backend=ShuffledBackend(ev, workers=3, order="lifo"),
                        mode="async")
    for s in range(2):
        idx = [int(nb201.space.index(jax.tree.map(jnp.asarray, a))) for a in rec.archs[s]]
        assert sorted(idx) == list(range(12)), idx  # each running ask saw the others as told: no repeat, no gap
    assert np.isfinite(rec.values).all()


def test_async_resume_repeats_no_finished_evaluation(nb201, tmp_path):
    ev = TableByCalls(nb201, tmp_path / "log")
    (tmp_path / "log").mkdir()
    strat = make_strategy("re", nb201.space, 14, population_size=4, sample_size=2)
    journal = Journal(tmp_path / "journal.jsonl")

    def stop_after(k):
        def progress(info):
            if info["done"] - info["resumed"] >= k:
                raise KeyboardInterrupt
        return progress

    with pytest.raises(KeyboardInterrupt):
        run_journaled(strat, ev, 2, nb201.search_metric, journal=journal, backend=ShuffledBackend(ev, 3, seed=5),
                      mode="async", progress=stop_after(9))
    first = journal.load()
    assert len(first) == 9
    before = len(evaluations(tmp_path / "log"))
    resumed = run_journaled(strat, ev, 2, nb201.search_metric, journal=journal,
                            backend=ShuffledBackend(ev, 3, seed=5), mode="async")
    assert resumed.resumed == 9
    # every journaled evaluation was answered from the journal (the evaluator may still answer a repeated
    # architecture from this session's cache, so count at most the rest)
    assert len(evaluations(tmp_path / "log")) - before <= 2 * 14 - 9
    assert np.isfinite(resumed.values).all() and len(journal.load()) == 28
    for (s, q), entry in first.items():  # the replay asked every journaled query again, the same architecture
        assert resumed.texts[s, q] == entry["arch"] and resumed.values[s, q] == entry["metrics"]["valid_acc"]


def test_async_journal_of_another_window_is_refused(nb201, tmp_path):
    ev = TableByCalls(nb201, tmp_path)
    strat = make_strategy("rs", nb201.space, 10)
    journal = Journal(tmp_path / "journal.jsonl")
    run_journaled(strat, ev, 1, nb201.search_metric, journal=journal, backend=ShuffledBackend(ev, 4, seed=1),
                  mode="async")
    lines = journal.path.read_text().splitlines()
    journal.path.write_text("\n".join(lines[:6]) + "\n")
    with pytest.raises(JnasError, match="different run"):
        run_journaled(strat, ev, 1, nb201.search_metric, journal=journal, backend=ShuffledBackend(ev, 2, seed=1),
                      mode="async")


def test_retries_then_failure_and_the_search_goes_on(nb201, tmp_path):
    strat = make_strategy("rs", nb201.space, 8)
    probe = run_journaled(strat, TableByCalls(nb201, tmp_path), 1, nb201.search_metric)
    bad, nan = probe.texts[0, 2], probe.texts[0, 5]
    (tmp_path / "evaluations.log").unlink()
    ev = TableByCalls(nb201, tmp_path, raise_on=[bad], nan_on=[nan])
    journal = Journal(tmp_path / "journal.jsonl")
    rec = run_journaled(strat, ev, 1, nb201.search_metric, journal=journal, retries=2)
    assert rec.failed[0].tolist() == [q in (2, 5) for q in range(8)]
    entries = journal.load()
    assert entries[(0, 2)]["attempt"] == 3 and entries[(0, 2)]["earlier_attempts"][0].startswith("RuntimeError")
    assert "diverged" in entries[(0, 5)]["reason"] and entries[(0, 5)]["attempt"] == 3
    assert evaluations(tmp_path).count(bad) == 3 and evaluations(tmp_path).count(nan) == 3
    assert entries[(0, 0)]["attempt"] == 1 and entries[(0, 0)]["pid"] == os.getpid()


# ----------------------------------------------------------------------------- bad input
def test_bad_evaluation_options_are_one_line_errors(nb201, tmp_path):
    ev = TableByCalls(nb201, tmp_path)

    def plan(strategy="rs", options=None, **evaluation):
        return plan_search(ev, strategy, 10, options=options, evaluation=evaluation)

    cases = [
        (dict(workers=0), "--workers: got 0"),
        (dict(retries=-1), "--retries: got -1"),
        (dict(eval_timeout=5), "--eval-timeout: a time limit per evaluation needs the Ray backend"),
        (dict(workers=2, eval_timeout=-1), "--eval-timeout: got -1"),
        (dict(mode="async"), "--mode async: with one evaluation at a time"),
        (dict(mode="parallel"), "--mode: got 'parallel'"),
        (dict(ray_address="auto", mode="async"), "--mode async: give --workers N"),
        (dict(typo=1), "evaluation: unknown key 'typo'"),
    ]
    for evaluation, message in cases:
        with pytest.raises(JnasError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
            plan(**evaluation)
        assert "\n" not in str(e.value)
    with pytest.raises(JnasError, match="strategy 'ls' cannot ask while evaluations are running"):
        plan("ls", workers=2, mode="async")
    with pytest.raises(JnasError, match="batch_size=3"):
        plan("bo", {"batch_size": 3}, workers=2, mode="async")
    with pytest.raises(JnasError, match="--workers: applies to searches that train"):
        plan_search(nb201, "rs", 10, evaluation={"workers": 2})


def test_cli_refuses_workers_on_a_table(tmp_path, capsys):
    from jnas.cli import main

    rc = main(["search", "--benchmark", "nb201/cifar10", "--strategy", "rs", "--budget", "5",
               "--out", str(tmp_path / "r"), "--workers", "2"])
    assert rc != 0
    assert "--workers: applies to searches that train" in capsys.readouterr().err


def test_batched_rs_and_re(nb201):
    rs1 = make_strategy("rs", nb201.space, 12)
    rs4 = make_strategy("rs", nb201.space, 12, batch_size=4)
    key = jax.random.key(0)
    st1, st4 = rs1.init(key), rs4.init(key)
    a4, _ = rs4.ask(st4, key)
    firsts = []
    for _ in range(4):
        a, st1_ = rs1.ask(st1, key)
        firsts.append(int(nb201.space.index(jax.tree.map(lambda x: x[0], a))))
        st1 = rs1.tell(st1_, a, jnp.zeros(1))
    assert [int(nb201.space.index(jax.tree.map(lambda x, i=i: x[i], a4))) for i in range(4)] == firsts
    with pytest.raises(JnasError, match="--set batch_size: got 11, expected at most population_size=10"):
        make_strategy("re", nb201.space, 50, population_size=10, sample_size=3, batch_size=11)
    re3 = make_strategy("re", nb201.space, 30, population_size=4, sample_size=2, batch_size=3)
    st = re3.init(key)
    for t in range(3):
        a, st = re3.ask(st, jax.random.key(t))
        st = re3.tell(st, a, jnp.arange(3.0) + 10 * t)
    # 9 children told into a population of 4: the last 4 told are the members, with their values
    np.testing.assert_array_equal(np.sort(np.asarray(st.inner.fit)), [12.0, 20.0, 21.0, 22.0])


@pytest.mark.slow
def test_asynchronous_flag_is_true_only_where_ask_leaves_the_state_alone(nb201):
    for name in names():
        cls = get_strategy(name)
        if cls.objectives == "multi" or cls.multi_fidelity or not cls.asynchronous:
            continue
        s = make_strategy(name, nb201.space, 30)
        st = s.init(jax.random.key(0))
        for t in range(8):
            a, st2 = s.ask(st, jax.random.key(t + 1))
            for x, y in zip(jax.tree.leaves(st.inner), jax.tree.leaves(st2.inner)):
                assert np.array_equal(np.asarray(x), np.asarray(y)), f"{name}: ask changed its state"
            st = s.tell(st2, a, jnp.asarray(np.random.default_rng(t).random(s.batch_size)))


# ----------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    import parallel_fakes
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(parallel_fakes)  # the workers cannot import the tests folder
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
                                                    "intra_op_parallelism_threads=1"}})
    yield ray
    ray.shutdown()


def test_ray_sync_equals_local_and_records_where_it_ran(ray_runtime, nb201, tmp_path):
    opts = {"batch_size": 3, "population_size": 6, "sample_size": 2}
    local = search(TableByCalls(nb201, tmp_path), "re", 12, seeds=2, options=opts, out=tmp_path / "local")
    from jnas.runs.backends import RayBackend

    backend = RayBackend(TableByCalls(nb201, tmp_path), workers=2)
    assert backend.ready() >= 0 and len(backend._idle) == 2 and not backend._starting
    backend.close()
    ray = search(TableByCalls(nb201, tmp_path), "re", 12, seeds=2, options=opts, out=tmp_path / "ray", workers=2)
    np.testing.assert_array_equal(_values(local), _values(ray))
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert (summary["backend"], summary["workers"], summary["mode"], summary["retries"]) == ("ray", 2, "sync", 2)
    assert json.loads((tmp_path / "local" / "summary.json").read_text())["backend"] == "local"
    entries = Journal(tmp_path / "ray" / "journal.jsonl").load().values()
    assert all(e["node"] and e["pid"] and e["pid"] != os.getpid() and e["attempt"] == 1 for e in entries)


def test_ray_faults_are_retried_then_recorded(ray_runtime, nb201, tmp_path):
    probe = search(TableByCalls(nb201, tmp_path), "rs", 10, options={"batch_size": 5})
    texts = probe.trajectory["arch"][0]
    (tmp_path / "evaluations.log").unlink()
    ev = TableByCalls(nb201, tmp_path, raise_on=[texts[1]], nan_on=[texts[2]], hang_on=[texts[3]], hang_seconds=60,
                      kill_once=[texts[6]])
    victim = tmp_path / "victim.pid"

    def killer():
        for _ in range(600):
            if victim.exists() and victim.read_text():
                time.sleep(0.5)
                os.kill(int(victim.read_text()), signal.SIGKILL)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    res = search(ev, "rs", 10, options={"batch_size": 5}, out=tmp_path / "run", workers=2, retries=1,
                 eval_timeout=10)
    thread.join(1)
    e = Journal(tmp_path / "run" / "journal.jsonl").load()
    assert [e[(0, q)]["status"] for q in range(10)] == ["ok", "failed", "failed", "failed"] + ["ok"] * 6
    assert e[(0, 1)]["reason"].startswith("RuntimeError: injected failure") and e[(0, 1)]["attempt"] == 2
    assert "diverged" in e[(0, 2)]["reason"] and e[(0, 2)]["attempt"] == 2
    assert e[(0, 3)]["reason"] == "timed out after 10 s" and e[(0, 3)]["earlier_attempts"] == ["timed out after 10 s"]
    assert e[(0, 6)]["attempt"] == 2 and e[(0, 6)]["earlier_attempts"][0].startswith("worker lost"), e[(0, 6)]
    assert np.isfinite(_values(res)[0, [0, 4, 5, 6, 7, 8, 9]]).all()
    assert res.summary["evaluations_failed"] == 3 and res.summary["retried_evaluations"] == 4


def test_ray_driver_interrupt_then_rerun_loses_and_repeats_nothing(ray_runtime, nb201, tmp_path):
    ev = TableByCalls(nb201, tmp_path, sleep=0.2)
    opts = {"batch_size": 4}
    calls = {"n": 0}

    def progress(info):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="rerun the same command"):
        search(ev, "rs", 12, seeds=2, options=opts, out=tmp_path / "run", workers=2, progress=progress)
    journaled = {k: v["arch"] for k, v in Journal(tmp_path / "run" / "journal.jsonl").load().items()}
    assert len(journaled) == 6
    first = len(evaluations(tmp_path))
    res = search(ev, "rs", 12, seeds=2, options=opts, out=tmp_path / "run", workers=2)
    again = evaluations(tmp_path)[first:]
    assert not set(journaled.values()) & set(again)  # nothing finished was evaluated again
    assert res.summary["resumed_evaluations"] == 6
    local = search(TableByCalls(nb201, tmp_path), "rs", 12, seeds=2, options=opts)
    np.testing.assert_array_equal(_values(res), _values(local))


def test_ray_async_runs_and_resumes(ray_runtime, nb201, tmp_path):
    ev = TableByCalls(nb201, tmp_path)
    res = search(ev, "re", 10, seeds=1, options={"population_size": 4, "sample_size": 2}, out=tmp_path / "a",
                 workers=2, mode="async")
    assert np.isfinite(_values(res)).all()
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["mode"] == "async" and summary["backend"] == "ray"
    spec = json.loads((tmp_path / "a" / "run.json").read_text())
    assert (spec["mode"], spec["window"]) == ("async", 2)
    with pytest.raises(JnasError, match="different run|--overwrite"):  # another window is another run
        search(ev, "re", 10, seeds=1, options={"population_size": 4, "sample_size": 2}, out=tmp_path / "a",
               workers=1, mode="async")


def test_an_evaluator_the_workers_cannot_load_stops_the_search(ray_runtime, nb201, tmp_path, monkeypatch):
    import importlib
    import sys

    (tmp_path / "elsewhere_only.py").write_text(
        "class Far:\n"
        "    traceable = False\n"
        "    def __init__(self, bench):\n"
        "        self.bench, self.space, self.name = bench, bench.space, 'far'\n"
        "        self.metrics, self.search_metric, self.test_metric = bench.metrics, bench.search_metric, "
        "bench.test_metric\n"
        "    def __getattr__(self, name):\n"
        "        if name.startswith('__'): raise AttributeError(name)\n"
        "        return getattr(self.__dict__['bench'], name)\n"
        "    def __getstate__(self): return dict(self.__dict__)\n"
        "    def __setstate__(self, s): self.__dict__.update(s)\n"
        "    def evaluate(self, arch, fidelity=None): return self.bench.evaluate(arch, fidelity)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    far = importlib.import_module("elsewhere_only").Far(nb201)  # importable here, not in the workers
    try:
        with pytest.raises(JnasError, match="Ray workers cannot run this search's evaluations") as e:
            search(far, "rs", 4, out=tmp_path / "run", workers=2)
        assert "\n" not in str(e.value)
        assert not (tmp_path / "run" / "journal.jsonl").exists() or not (tmp_path / "run" / "journal.jsonl").read_text()
    finally:
        sys.modules.pop("elsewhere_only", None)


def test_ray_missing_is_a_one_line_error(nb201, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(JnasError, match=r"the Ray backend needs ray: pip install 'jnas\[ray\]'"):
        plan_search(TableByCalls(nb201, tmp_path), "rs", 4, evaluation={"workers": 2})


class _DiskFull(TableByCalls):
    def evaluate(self, arch, fidelity=None):
        import errno

        if len(evaluations(self.log_dir)) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().evaluate(arch, fidelity)


def test_a_full_disk_stops_the_search_instead_of_failing_networks(nb201, tmp_path):
    ev = _DiskFull(nb201, tmp_path)
    from jnas.errors import MachineFault

    with pytest.raises(MachineFault, match=r"OSError: \[Errno 28\] No space left on device: the search stopped .*"
                                           r"3 of 8 evaluations are in") as e:
        search(ev, "rs", 8, out=tmp_path / "run")
    assert "\n" not in str(e.value)
    entries = Journal(tmp_path / "run" / "journal.jsonl").load()
    assert len(entries) == 3 and all(e["status"] == "ok" for e in entries.values())


def test_a_checkpoint_of_another_run_is_not_a_failed_network(tmp_path):
    from jnas.benchmarks.training import TrainingEvaluator
    from jnas.errors import MachineFault
    from jnas.train.loop import CheckpointMismatch
    from jnas.train.optim import TrainConfig

    assert issubclass(CheckpointMismatch, MachineFault)
    rng = np.random.default_rng(0)
    data = ((rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8), rng.integers(0, 2, 64)),
            (rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8), rng.integers(0, 2, 16)))

    def builder(*args, **kwargs):
        raise CheckpointMismatch(tmp_path, ["arch"])

    ev = TrainingEvaluator("nb201", data, config=TrainConfig(epochs=1, batch_size=16, eval_batch_size=16,
                                                             warmup_epochs=0), builder=builder, valid_size=16)
    arch = ev.space.from_index(3)
    with pytest.raises(CheckpointMismatch):
        ev.evaluate(arch)
    with pytest.raises(CheckpointMismatch):
        evaluate_record(ev, arch, None)
