"""Where a journaled search's evaluations run: in this process, or as Ray tasks on local or remote workers.

A backend takes ``Job``s (one architecture at one fidelity, with its place in
the run) and hands back ``Outcome``s as they finish, in whatever order they
finish. It knows nothing of strategies or journals: ``jnas.runs.loop`` asks,
submits, journals every outcome before the next ask, and decides retries.

* ``LocalBackend``: one evaluation at a time, in this process (the default).
* ``RayBackend``: each evaluation is a Ray task (``ray`` is the ``jnas[ray]``
  extra), run by a pool of Ray actors, one per worker, each holding one copy
  of the evaluator. ``workers=N`` alone starts a local Ray runtime with
  ``N`` CPUs on this machine; ``address="auto"`` or ``"host:port"`` joins a
  running cluster, whose GPUs (or CPUs) all take work unless ``workers``
  caps how many run at once. A worker takes one GPU where the cluster has
  GPUs, else one CPU. Each evaluation's record comes back with the worker's
  node id and process id.

Faults a backend turns into a failed ``Outcome`` (with its reason) instead of
an exception: the evaluator raising, a worker process dying mid-task, a task
past ``timeout`` seconds (Ray: its worker is killed and replaced). A machine
fault (``jnas.errors.is_machine_fault``: a full disk, a checkpoint folder of
another run) is raised instead, here or from a worker: it says nothing about
the architecture, and the search stops.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Any

from jnas.errors import JnasError, bad_argument, first_line, is_machine_fault


@dataclasses.dataclass
class Job:
    """One evaluation to run: ``arch`` (a NumPy pytree) at ``fidelity`` (epochs or ``None``)."""

    seed: int
    query: int
    arch: Any
    text: str  # the architecture's string form
    fidelity: int | None
    attempt: int = 1  # 1 for the first try, +1 for every retry


@dataclasses.dataclass
class Outcome:
    """What became of a ``Job``: the evaluator's record (``status``, ``reason``, metric values) and where it ran."""

    job: Job
    record: dict
    node: str  # node id (Ray) or host name (local)
    pid: int | None  # process id of the worker (None: the task never started or its worker died)
    wall_seconds: float  # the evaluation's own time where it ran (a lost or timed-out task: until it was given up)

    @property
    def ok(self) -> bool:
        return self.record.get("status", "ok") == "ok"


def evaluate_record(evaluator, arch, fidelity) -> tuple[dict, float]:
    """``(record, seconds)`` of ``evaluator.evaluate(arch, fidelity)``; an exception becomes ``status: failed``
    with its reason, except a machine fault (``jnas.errors.is_machine_fault``: a full disk, a checkpoint
    folder of another run), which is raised: it says nothing about the architecture."""
    t0 = time.perf_counter()
    try:
        rec = dict(evaluator.evaluate(arch, fidelity))
    except Exception as e:  # noqa: BLE001 — a crashed evaluation is data for the search, not the end of it
        if is_machine_fault(e):  # ...unless the machine is at fault (a full disk): then the search stops
            raise
        rec = {"status": "failed", "reason": first_line(e)}
    return rec, time.perf_counter() - t0


class LocalBackend:
    """Evaluations one at a time in this process, in submission order."""

    name = "local"
    workers = 1

    def __init__(self, evaluator, timeout: float | None = None):
        if timeout is not None:
            raise JnasError("--eval-timeout: a time limit per evaluation needs the Ray backend (--workers N or "
                            "--ray-address ADDRESS): an evaluation in this process cannot be stopped safely")
        self.evaluator = evaluator
        self._queue: list[Job] = []
        self._host = socket.gethostname()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    @property
    def outstanding(self) -> int:
        return len(self._queue)

    def wait(self) -> list[Outcome]:
        """Run the oldest submitted job and return its outcome."""
        if not self._queue:
            return []
        job = self._queue.pop(0)
        rec, seconds = evaluate_record(self.evaluator, job.arch, job.fidelity)
        return [Outcome(job, rec, self._host, os.getpid(), seconds)]

    def describe(self) -> dict:
        return {"backend": self.name, "workers": 1}

    def close(self) -> None:
        self._queue.clear()


class _Worker:
    """A Ray actor that holds one copy of the evaluator and runs evaluations one at a time."""

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def ready(self) -> int:
        return os.getpid()

    def evaluate(self, arch, fidelity):
        import ray

        rec, seconds = evaluate_record(self.evaluator, arch, fidelity)
        return rec, seconds, ray.get_runtime_context().get_node_id(), os.getpid()


#: XLA:CPU flags of a CPU task: one intra-op thread, so N tasks on N cores do not fight over them
_ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def import_ray():
    """``ray``, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise JnasError("the Ray backend needs ray: pip install 'jnas[ray]'") from None
    return ray


class RayBackend:
    """Evaluations on Ray: ``workers`` local CPUs (a runtime started here) or the cluster at ``address``.

    Each worker is a Ray actor holding one copy of the evaluator (shipped
    once with ``ray.put``), so a worker's process, its imports and its
    compiled programs serve many evaluations. A worker takes one evaluation
    at a time; ``timeout`` (seconds) counts from when a ready worker starts
    it: past it the worker process is killed, replaced, and the attempt
    counted as failed. A worker that dies mid-evaluation is replaced too.
    ``gpus``: GPUs per worker (default: 1 where the cluster has GPUs, else 0).
    """

    name = "ray"

    def __init__(self, evaluator, workers: int | None = None, address: str | None = None,
                 timeout: float | None = None, gpus: float | None = None, poll: float = 0.5):
        if workers is None and address is None:
            raise JnasError("ray backend: give --workers N (a local Ray runtime) or --ray-address ADDRESS")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise bad_argument("--workers", workers, "a positive integer")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise bad_argument("--eval-timeout", timeout, "a positive number of seconds")
        ray = import_ray()
        self._ray = ray
        self.timeout = None if timeout is None else float(timeout)
        self.poll = poll
        self._started = False
        if not ray.is_initialized():
            kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if address is not None:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = workers
                kwargs["runtime_env"] = {"env_vars": {"XLA_FLAGS": _ONE_THREAD_XLA}}
            try:
                ray.init(**kwargs)
            except ConnectionError as e:
                raise JnasError(f"--ray-address {address}: cannot join a Ray cluster there ({first_line(e)})") from None
            self._started = True
        resources = ray.cluster_resources()
        has_gpu = resources.get("GPU", 0) > 0
        self.gpus = (1.0 if has_gpu else 0.0) if gpus is None else float(gpus)
        slots = max(1, int(resources.get("GPU", 1) / self.gpus if self.gpus else resources.get("CPU", 1)))
        self.workers = slots if workers is None else workers
        self.address = address
        options: dict = {"num_cpus": 1, "num_gpus": self.gpus, "max_restarts": 0, "max_task_retries": 0}
        if self.gpus == 0:
            options["runtime_env"] = {"env_vars": {"XLA_FLAGS": _ONE_THREAD_XLA}}
        self._actor_class = ray.remote(_Worker).options(**options)
        self._evaluator = ray.put(evaluator)
        self._queue: list[Job] = []  # jobs waiting for a free worker
        self._starting: dict[Any, Any] = {}  # ready() ref -> actor still starting
        self._idle: list = []  # actors ready for a job
        self._busy: dict[Any, tuple[Any, Job, float]] = {}  # evaluate() ref -> (actor, job, started at)
        for _ in range(self.workers):
            self._spawn()

    def _spawn(self) -> None:
        actor = self._actor_class.remote(self._evaluator)
        self._starting[actor.ready.remote()] = actor

    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._fill()

    def _fill(self) -> None:
        while self._queue and self._idle:
            actor, job = self._idle.pop(0), self._queue.pop(0)
            self._busy[actor.evaluate.remote(job.arch, job.fidelity)] = (actor, job, time.perf_counter())

    @property
    def outstanding(self) -> int:
        return len(self._busy) + len(self._queue)

    def wait(self) -> list[Outcome]:
        """Block until at least one evaluation finishes (or passes its time limit); their outcomes."""
        ray = self._ray
        while self.outstanding:
            refs = list(self._busy) + list(self._starting)
            ready, _ = ray.wait(refs, num_returns=1, timeout=self.poll)
            out = []
            for ref in ready:
                if ref in self._starting:
                    self._started_worker(ref)
                else:
                    out.append(self._collect(ref))
            if self.timeout is not None:
                now = time.perf_counter()
                for ref, (actor, job, t0) in list(self._busy.items()):
                    if now - t0 > self.timeout:
                        del self._busy[ref]
                        ray.kill(actor, no_restart=True)
                        self._spawn()
                        out.append(Outcome(job, {"status": "failed", "reason": f"timed out after {self.timeout:g} s"},
                                           "", None, now - t0))
            self._fill()
            if out:
                return out
        return []

    def ready(self) -> float:
        """Block until every worker has started (its process up, the evaluator loaded); seconds waited."""
        t0 = time.perf_counter()
        while self._starting:
            self._started_worker(next(iter(self._starting)))
        return time.perf_counter() - t0

    def _started_worker(self, ref) -> None:
        actor = self._starting.pop(ref)
        try:
            self._ray.get(ref)
        except self._ray.exceptions.RayActorError as e:  # cannot even start: e.g. the evaluator does not unpickle
            self.close()
            raise JnasError(f"Ray workers cannot run this search's evaluations: {first_line(e)} (is the "
                            "evaluator's code importable on every node?)") from None
        self._idle.append(actor)

    def _collect(self, ref) -> Outcome:
        ray = self._ray
        actor, job, t0 = self._busy.pop(ref)
        try:
            rec, seconds, node, pid = ray.get(ref)
            self._idle.append(actor)
        except ray.exceptions.RayActorError as e:  # the worker died (killed, out of memory) or its node was lost
            rec, node, pid = {"status": "failed", "reason": f"worker lost: {type(e).__name__}"}, "", None
            seconds = time.perf_counter() - t0
            self._spawn()
        except ray.exceptions.RayTaskError as e:  # raised outside the evaluator's own error handling
            if e.cause is not None and is_machine_fault(e.cause):  # a full disk on the worker: stop the search
                self.close()
                raise JnasError(first_line(e.cause).split(": ", 1)[-1]) from None
            rec, node, pid = {"status": "failed", "reason": first_line(e.cause if e.cause else e)}, "", None
            seconds = time.perf_counter() - t0
            self._idle.append(actor)
        return Outcome(job, dict(rec), node, pid, seconds)

    def describe(self) -> dict:
        return {"backend": self.name, "workers": self.workers,
                **({"ray_address": self.address} if self.address else {})}

    def close(self) -> None:
        for actor in [a for a, _, _ in self._busy.values()] + self._idle + list(self._starting.values()):
            self._ray.kill(actor, no_restart=True)
        self._busy.clear()
        self._idle.clear()
        self._starting.clear()
        self._queue.clear()
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_backend(evaluator, workers: int | None = None, address: str | None = None, timeout: float | None = None):
    """``RayBackend`` when ``workers`` or ``address`` is given, else ``LocalBackend``."""
    if workers is None and address is None:
        return LocalBackend(evaluator, timeout)
    return RayBackend(evaluator, workers, address, timeout)


__all__ = ["Job", "LocalBackend", "Outcome", "RayBackend", "evaluate_record", "import_ray", "make_backend"]
