"""Benchmark: parallel evaluation of a training search on Ray against the in-process loop.

Two measurements, same machine, same run:

1. A 16-evaluation batch of tiny trainings (NB201 networks, ``--channels``
   channels, one cell per stage, ``--images`` CIFAR-10-subset images, one
   epoch; 16 distinct architectures, so each one compiles its own program) as
   one ``rs`` step (``batch_size`` 16) through ``jnas.runs.loop.run_journaled``:
   in this process, then on a local Ray runtime with 1 and with 2 workers.
   Reported: wall seconds and the speed-up over the in-process loop (at most
   the number of cores).
2. Ray's overhead per evaluation: 200 table look-ups of NAS-Bench-201 (no
   training; a few milliseconds of eager JAX each) in this process and on Ray
   with 1 and 2 workers, in batches of 50; with one worker the work is done
   one at a time as in process, so the difference per evaluation is what Ray
   costs (scheduling, serialisation, the driver's round trip).

Ray's start (runtime and worker processes) is timed separately and not
counted in either figure. ``python bench/parallel_eval.py [--out FILE]``;
the record goes to ``bench/results/parallel_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import summary as machine_summary  # noqa: E402


class TableByCalls:
    """A NAS-Bench-201 table answered one architecture at a time (the untraceable evaluator protocol)."""

    traceable = False

    def __init__(self, bench):
        self._bench = bench
        self.name = f"calls/{bench.name}"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["_bench"], name)

    def __getstate__(self):
        return dict(self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(state)

    def evaluate(self, arch, fidelity=None):
        return self._bench.evaluate(arch, fidelity)


def _run(strategy, evaluator, metric_key, backend):
    from jnas.runs.loop import run_journaled

    t0 = time.perf_counter()
    rec = run_journaled(strategy, evaluator, 1, metric_key, backend=backend)
    return time.perf_counter() - t0, rec


def _ray_backend(evaluator, workers):
    from jnas.runs.backends import RayBackend

    t0 = time.perf_counter()
    backend = RayBackend(evaluator, workers=workers)
    backend.ready()  # workers up before the clock starts
    return backend, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--images", type=int, default=512, help="training images of each tiny training")
    p.add_argument("--batch", type=int, default=16, help="trainings in the batch")
    p.add_argument("--lookups", type=int, default=200, help="table look-ups for the per-evaluation overhead")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "parallel_eval.json"))
    args = p.parse_args(argv)

    import jax
    import numpy as np
    import ray

    from jnas.benchmarks import get_benchmark
    from jnas.benchmarks.training import TrainingEvaluator
    from jnas.runs.backends import LocalBackend
    from jnas.strategies import make_strategy
    from jnas.train.data import load_split

    x, y = load_split("cifar10_subset", "train")
    xt, yt = load_split("cifar10_subset", "test")
    data = ((x[: args.images], y[: args.images]), (xt[:256], yt[:256]))
    config = dict(epochs=1, batch_size=64, eval_batch_size=128, warmup_epochs=0)
    from jnas.train.optim import TrainConfig

    ev = TrainingEvaluator("nb201", data, config=TrainConfig(**config), valid_size=128,
                           model_options={"channels": args.channels, "cells_per_stage": 1})
    strategy = make_strategy("rs", ev.space, args.batch, batch_size=args.batch)
    key = ev.search_metric
    record = {"bench": "parallel_eval", "date": time.strftime("%Y-%m-%d"), "machine": machine_summary(),
              "cores": os.cpu_count(), "versions": {"jax": jax.__version__, "ray": ray.__version__},
              "command": "python bench/parallel_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "trainings": {"batch": args.batch, "channels": args.channels, "cells_per_stage": 1,
                            "train_images": args.images - 128, "epochs": 1}}

    print(f"{args.batch} tiny trainings in this process ...", flush=True)
    local_s, local = _run(strategy, ev, key, LocalBackend(ev))
    print(f"  {local_s:.1f} s", flush=True)
    rows = {"local": {"workers": 1, "seconds": local_s}}
    for workers in (1, 2):
        backend, start = _ray_backend(ev, workers)
        print(f"{args.batch} tiny trainings on Ray, {workers} worker(s) (start {start:.1f} s) ...", flush=True)
        seconds, rec = _run(strategy, ev, key, backend)
        backend.close()
        same = bool(np.allclose(rec.values, local.values, equal_nan=True))
        rows[f"ray{workers}"] = {"workers": workers, "seconds": seconds, "start_seconds": start,
                                 "speedup_vs_local": local_s / seconds, "same_values_as_local": same}
        print(f"  {seconds:.1f} s: {local_s / seconds:.2f}x the in-process loop; same values: {same}", flush=True)
    record["batch"] = rows

    table = TableByCalls(get_benchmark("nb201/cifar10"))
    look = make_strategy("rs", table.space, args.lookups, batch_size=50)
    local_s, _ = _run(look, table, table.search_metric, LocalBackend(table))
    over = {"lookups": args.lookups, "local_seconds": local_s, "local_ms_per_evaluation": 1e3 * local_s / args.lookups}
    for workers in (1, 2):
        backend, start = _ray_backend(table, workers)
        ray_s, _ = _run(look, table, table.search_metric, backend)
        backend.close()
        over[f"ray{workers}_seconds"] = ray_s
        over[f"ray{workers}_ms_per_evaluation"] = 1e3 * ray_s / args.lookups
        print(f"{args.lookups} look-ups on Ray, {workers} worker(s): {1e3 * ray_s / args.lookups:.2f} ms each "
              f"(in process {1e3 * local_s / args.lookups:.2f} ms)", flush=True)
    # one worker does the same work one at a time: what it adds per evaluation is Ray's round trip
    over["ray_overhead_ms_per_evaluation"] = 1e3 * (over["ray1_seconds"] - local_s) / args.lookups
    per = over["ray_overhead_ms_per_evaluation"]
    print(f"Ray's overhead per evaluation (1 worker against in process): {per:.2f} ms", flush=True)
    record["overhead"] = over
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
