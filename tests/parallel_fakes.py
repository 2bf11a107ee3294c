"""Evaluators for the parallel-evaluation tests: a NAS-Bench-201 table answered one architecture at a time
(``traceable = False``, so a search goes through the journaled loop and its backends), with faults on demand.

Every evaluation appends a line to ``log_dir/evaluations.log`` (``pid arch``), so a test sees across processes
(Ray workers) how many evaluations really ran. Faults, by architecture string: ``raise_on`` raises,
``nan_on`` returns a NaN metric with ``status: failed``, ``hang_on`` sleeps ``hang_seconds``, and
``kill_once`` writes the worker's pid to ``log_dir/victim.pid`` and sleeps until the test kills it (the next
attempt finds the pid file and evaluates normally).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class TableByCalls:
    """``benchmark`` (a ``TabularBenchmark``) behind the untraceable evaluator protocol."""

    traceable = False

    def __init__(self, benchmark, log_dir, raise_on=(), nan_on=(), hang_on=(), hang_seconds=60.0, kill_once=(),
                 sleep=0.0):
        self._bench = benchmark
        self.log_dir = str(log_dir)
        self.raise_on, self.nan_on, self.hang_on = set(raise_on), set(nan_on), set(hang_on)
        self.kill_once, self.hang_seconds, self.sleep = set(kill_once), hang_seconds, sleep
        self.name = f"calls/{benchmark.name}"

    def __getattr__(self, name):  # everything else is the table's (space, metrics, resolve, test_value, ...)
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["_bench"], name)

    def __getstate__(self):
        return dict(self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(state)

    def describe(self) -> dict:
        return {**self._bench.describe(), "name": self.name}

    def evaluate(self, arch, fidelity=None) -> dict:
        text = self._bench.space.to_string(arch)
        log = Path(self.log_dir)
        with open(log / "evaluations.log", "a") as f:
            f.write(f"{os.getpid()} {text}\n")
        if self.sleep:
            time.sleep(self.sleep)
        if text in self.kill_once and not (log / "victim.pid").exists():
            (log / "victim.pid").write_text(str(os.getpid()))
            time.sleep(120)
        if text in self.hang_on:
            time.sleep(self.hang_seconds)
        if text in self.raise_on:
            raise RuntimeError(f"injected failure on {text}")
        rec = self._bench.evaluate(arch, fidelity)
        if text in self.nan_on:
            rec = {**rec, "status": "failed", "reason": "diverged: loss is nan",
                   **{k: float("nan") for k in rec if k not in ("status", "reason", "wall_seconds")}}
        return rec


def evaluations(log_dir) -> list[str]:
    """The architecture strings evaluated so far (one per evaluation, in the order they started)."""
    p = Path(log_dir) / "evaluations.log"
    return [line.split(" ", 1)[1] for line in p.read_text().splitlines()] if p.exists() else []
