"""One-call searches on tabular benchmarks: ``search("nb201/cifar10", "re", 300, seeds=100)``.

With ``out=`` the search writes its result folder as it goes (see
``jnas.runs.folder``): finished chunks of seeds survive an interrupt, and
rerunning the same call completes the rest with the result an uninterrupted
run gives.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jnas.benchmarks import get_benchmark
from jnas.benchmarks.base import TabularBenchmark
from jnas.benchmarks.protocol import Evaluator
from jnas.errors import Interrupted, JnasError, MachineFault, check_int, first_line, is_machine_fault
from jnas.runs.folder import ResultFolder
from jnas.runs.results import FRONT_FILE, SearchResult, load_result, metric_name, summarise
from jnas.runs.runner import is_multi, objective_keys, run_tabular
from jnas.strategies import get_strategy, make_strategy, names
from jnas.strategies.base import Strategy


@dataclasses.dataclass
class SearchPlan:
    """A validated search, ready to run: everything that decides its result is in ``spec``."""

    benchmark: TabularBenchmark  # or any evaluator of jnas.benchmarks.protocol (e.g. TrainingEvaluator)
    strategy: Strategy
    metric_key: tuple  # (metric, fidelity); multi-objective: a tuple of them (jnas.runs.runner.objective_keys)
    seeds: int
    seed0: int
    prng: str
    float64: bool
    chunk: int
    allow_test_metric: bool
    #: how a training search's evaluations run (``jnas.runs.backends``): ``workers``/``ray_address`` (Ray; both
    #: ``None``: this process), ``mode`` (``sync``/``async``), ``retries`` per evaluation, ``eval_timeout`` (s)
    evaluation: dict = dataclasses.field(default_factory=dict)

    @property
    def multi_objective(self) -> bool:
        return is_multi(self.metric_key)

    @property
    def spec(self) -> dict:
        """The JSON identity of the run (what a result folder compares on a rerun)."""
        if self.benchmark.traceable:
            head = {"kind": "tabular-search", "benchmark": self.benchmark.name}
            tail = {"float64": self.float64, "chunk": self.chunk}  # chunking fixes which seeds share a compiled call
        else:
            head = {"kind": "loop-search", "evaluator": _evaluator_identity(self.benchmark)}
            tail = {}
            if self.evaluation.get("mode") == "async":  # the order results are told in depends on the worker count
                tail = {"mode": "async", "window": self.evaluation["window"]}
        return {
            **head,
            "strategy": self.strategy.name,
            "options": self.strategy.settings(),
            "budget": int(self.strategy.budget),
            "seeds": self.seeds,
            "seed0": self.seed0,
            "prng": self.prng,
            "search_metric": ",".join(metric_name(k) for k in objective_keys(self.metric_key)),
            **({"objectives": [metric_name(k) for k in self.metric_key]} if self.multi_objective else {}),
            **tail,
            "allow_test_metric": self.allow_test_metric,
        }


def _evaluator_identity(evaluator) -> dict:
    """What decides an evaluator's answers (its ``describe()`` without running counts)."""
    info = dict(evaluator.describe()) if hasattr(evaluator, "describe") else {"name": evaluator.name}
    for volatile in ("evaluated", "failed"):
        info.pop(volatile, None)
    return info


def default_chunk(seeds: int) -> int:
    """Seeds per compiled call: about ten calls per run (one seed each below ten seeds), for progress and resume."""
    return max(1, math.ceil(seeds / 10))


def plan_search(
    benchmark: str,
    strategy: str,
    budget: int,
    seeds: int = 1,
    metric: str | None = None,
    fidelity: int | None = None,
    options: dict | None = None,
    seed0: int = 0,
    prng: str = "hash",
    float64: bool = False,
    chunk: int | None = None,
    allow_test_metric: bool = False,
    objectives=None,
    evaluation: dict | None = None,
) -> SearchPlan:
    """Check every argument of a search (one-line ``JnasError`` on the first bad one) without running it.

    ``objectives`` (two or more metric names, e.g. ``"valid_acc@200,edgegpu_latency"``)
    makes it a multi-objective search; it excludes ``metric``/``fidelity``.
    ``evaluation``: how a training search's evaluations run (``check_evaluation``).
    """
    from jnas.prng import get_impl

    check_int("seeds", seeds, 1, expected="a positive integer")
    check_int("seed0", seed0, 0, expected="a non-negative integer")
    if chunk is not None:
        check_int("chunk", chunk, 1, expected="a positive integer or None")
    get_impl(prng)
    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    if not isinstance(bench, Evaluator):
        raise JnasError(f"benchmark: got {type(benchmark).__name__}, expected a benchmark name or an evaluator "
                        "(e.g. jnas.benchmarks.training.TrainingEvaluator)")
    cls = get_strategy(strategy) if isinstance(strategy, str) else type(strategy)
    if objectives is not None:
        plan = _plan_multi(bench, cls, strategy, budget, seeds, metric, fidelity, options, seed0, prng, float64,
                           chunk, allow_test_metric, objectives)
        plan.evaluation = check_evaluation(bench, plan.strategy, evaluation)
        return plan
    if cls.objectives == "multi":
        raise JnasError(f"objectives: strategy {cls.name!r} is multi-objective; give two or more objectives "
                        "(--objectives valid_acc@200,edgegpu_latency; see jnas list --metrics)")
    key = bench.resolve(metric, fidelity)
    if bench.uses_test_data(key) and not allow_test_metric:
        raise JnasError(
            f"metric: {metric_name(key)!r} is test data of {bench.name}; searches never look at test data unless "
            "--allow-test-metric (allow_test_metric=True) is given"
        )
    # budget <= space size is the strategy's own check (jnas.strategies.base.Strategy.repeats)
    fids = {"fidelities": offered_fidelities(bench, key, cls.name)} if cls.multi_fidelity else {}
    strat = make_strategy(strategy, bench.space, budget, **fids, **(options or {}))
    strat.check_metric(bench.metrics[key])
    chunk = min(chunk or seeds, seeds)
    return SearchPlan(bench, strat, key, seeds, seed0, prng, bool(float64), chunk, bool(allow_test_metric),
                      check_evaluation(bench, strat, evaluation))


#: ``evaluation`` keys of a search, with their defaults
EVALUATION_DEFAULTS = {"workers": None, "ray_address": None, "mode": "sync", "retries": None, "eval_timeout": None}
#: retries per failed evaluation when none are given: none in this process, two on Ray (a lost worker is transient)
DEFAULT_RETRIES = {"local": 0, "ray": 2}


def check_evaluation(bench, strategy, evaluation: dict | None) -> dict:
    """``evaluation`` (``EVALUATION_DEFAULTS`` keys) checked against the evaluator and strategy, with the
    backend (``local``/``ray``), the retries in force and, for ``async``, its window (evaluations running per
    seed: the worker count)."""
    from jnas.runs.loop import check_mode

    ev = dict(evaluation or {})
    for k in ev:
        if k not in EVALUATION_DEFAULTS:
            raise JnasError(f"evaluation: unknown key {k!r}; expected {', '.join(EVALUATION_DEFAULTS)}")
    ev = {**EVALUATION_DEFAULTS, **{k: v for k, v in ev.items() if v is not None}}
    given = [k for k, d in EVALUATION_DEFAULTS.items() if ev[k] != d]
    flag = {"workers": "--workers", "ray_address": "--ray-address", "mode": "--mode", "retries": "--retries",
            "eval_timeout": "--eval-timeout"}
    if bench.traceable:
        if given:
            raise JnasError(f"{flag[given[0]]}: applies to searches that train (--evaluator train); a table "
                            "search is one compiled scan on this process's devices")
        return {}
    if ev["workers"] is not None:
        check_int("--workers", ev["workers"], 1, expected="a positive integer")
    if ev["ray_address"] is not None and (not isinstance(ev["ray_address"], str) or not ev["ray_address"].strip()):
        raise JnasError(f"--ray-address: got {ev['ray_address']!r}, expected auto or host:port")
    backend = "local" if ev["workers"] is None and ev["ray_address"] is None else "ray"
    if backend == "ray":
        from jnas.runs.backends import import_ray

        import_ray()  # a missing extra is a one-line error now, not after the search has been set up
    if ev["retries"] is not None:
        check_int("--retries", ev["retries"], 0, expected="a non-negative integer")
    if ev["eval_timeout"] is not None:
        if not isinstance(ev["eval_timeout"], (int, float)) or isinstance(ev["eval_timeout"], bool) \
                or not ev["eval_timeout"] > 0:
            raise JnasError(f"--eval-timeout: got {ev['eval_timeout']!r}, expected a positive number of seconds")
        if backend == "local":
            raise JnasError("--eval-timeout: a time limit per evaluation needs the Ray backend (--workers N or "
                            "--ray-address ADDRESS): an evaluation in this process cannot be stopped safely")
    check_mode(ev["mode"], strategy)
    if ev["mode"] == "async" and backend == "local":
        raise JnasError("--mode async: with one evaluation at a time there is nothing to overlap; give --workers N "
                        "or --ray-address ADDRESS")
    if ev["mode"] == "async" and ev["workers"] is None:
        raise JnasError("--mode async: give --workers N as well (how many evaluations run at once: part of an "
                        "async run's identity) when joining a cluster with --ray-address")
    out = {**ev, "backend": backend, "retries": DEFAULT_RETRIES[backend] if ev["retries"] is None else ev["retries"]}
    if ev["mode"] == "async":
        out["window"] = ev["workers"]
    return out


def _plan_multi(bench, cls, strategy, budget, seeds, metric, fidelity, options, seed0, prng, float64, chunk,
                allow_test_metric, objectives) -> SearchPlan:
    from jnas.runs.multiobjective import parse_objectives

    if metric is not None or fidelity is not None:
        raise JnasError("objectives: give --objectives or --metric/--fidelity, not both (each objective names "
                        "its own fidelity, e.g. valid_acc@200)")
    table = isinstance(bench, TabularBenchmark)
    if not table:
        from jnas.benchmarks.training import TrainingEvaluator  # only here: it imports flax

        if not isinstance(bench, TrainingEvaluator):
            raise JnasError(f"objectives: a multi-objective search needs a table benchmark (its true front) or a "
                            f"training evaluator, got {bench.name!r}")
    if cls.objectives == "single":
        multi = ", ".join(n for n in names() if get_strategy(n).objectives != "single")
        raise JnasError(f"objectives: strategy {cls.name!r} optimises one objective; multi-objective strategies: "
                        f"{multi}")
    keys = parse_objectives(bench, objectives, allow_test_metric)
    # a training evaluator measures every objective of a network (its memory too): nothing is known beforehand
    known = known_objectives(bench, keys) if table else {}
    strat = make_strategy(strategy, bench.space, budget, n_objectives=len(keys), known_objectives=known,
                          **(options or {}))
    chunk = min(chunk or seeds, seeds)
    return SearchPlan(bench, strat, keys, seeds, seed0, prng, bool(float64), chunk, bool(allow_test_metric))


def offered_fidelities(bench, key, strategy: str) -> tuple[int, ...]:
    """The fidelities (epochs) of search metric ``key`` up to its own, for a multi-fidelity strategy; a one-line
    ``JnasError`` where the evaluator has no such fidelities or a table lacks values at one of them."""
    metric, top = key
    where = f"{metric_name(key)} of {bench.name}"
    if top is None:
        raise JnasError(f"strategy: {strategy} needs a search metric measured at several fidelities (epochs); "
                        f"{where} has none")
    if isinstance(bench, TabularBenchmark):
        every = tuple(sorted(f for m, f in bench.metrics if m == metric and f is not None))
        n = bench.space.size if bench.space.enumerable else bench.n_rows
        for f in every:
            cov = bench.metrics[(metric, f)].coverage
            if cov < n and (f <= top or len(every) > 1 and top == every[0]):
                raise JnasError(
                    f"strategy: {strategy} needs {metric} at every fidelity for every architecture, but "
                    f"{metric}@{f} of {bench.name} covers only {cov:,} of {n:,}; multi-fidelity search there would "
                    f"promote architectures the table cannot answer")
        fids = tuple(f for f in every if f <= top)
        if len(fids) < 2 and len(every) > 1:
            raise JnasError(f"strategy: {strategy} needs the search metric at its top fidelity (a full evaluation); "
                            f"got {where}, give --fidelity {every[-1]}")
    else:  # training: any number of epochs from the evaluator's lowest
        fids = tuple(range(min(bench.fidelities), top + 1))
    if len(fids) < 2:
        raise JnasError(f"strategy: {strategy} needs a search metric measured at several fidelities (epochs); "
                        f"{where} has only {top}")
    return fids


def known_objectives(bench, keys) -> dict:
    """``{position: float32[space.size]}`` of the objectives counted from the architecture (maximised, by
    space index; NaN where a member of the space is not in the table)."""
    known = {}
    space = bench.space
    if not space.enumerable:
        return known
    for j, key in enumerate(keys):
        if bench.is_computed(key):
            rows = np.asarray(bench.rows(space.enumerate()))
            col = bench.column(*key) * (1.0 if bench.metrics[key].higher_is_better else -1.0)
            known[j] = np.where(rows >= 0, col[np.clip(rows, 0, None)], np.nan).astype(np.float32)
    return known


#: the arrays of a saved chunk of seeds (a chunk file without them is recomputed)
CHUNK_ARRAYS = ("rows", "values", "seconds")


def _read_back(folder: ResultFolder) -> SearchResult:
    """The finished result of the same run, instead of running it again."""
    try:
        result = load_result(folder.path)
    except JnasError as e:  # rerunning alone would find the folder finished again and say the same
        raise JnasError(f"{str(e).split('; rerun the search')[0]}; delete summary.json and trajectory.npz in "
                        f"{folder.path} and rerun the same command (a table search recomputes them, a training "
                        "search rebuilds them from its journal), or rerun it with --overwrite") from None
    result.origin = "read"
    return result


def run_plan(plan: SearchPlan, out: str | Path | None = None, overwrite: bool = False, progress=None) -> SearchResult:
    """Run a planned search; with ``out``, through its result folder (resume, refuse a different run).

    A finished folder of the same run is read back, not recomputed. Ctrl-C
    raises ``jnas.errors.Interrupted`` saying how many seeds were kept.
    """
    if not plan.benchmark.traceable:
        return _run_loop_plan(plan, out, overwrite, progress)
    extra_files = (FRONT_FILE,) if plan.multi_objective else ()
    folder = None if out is None else ResultFolder(out, plan.spec, extra_files=extra_files)
    done, on_chunk = {}, None
    if folder is not None:
        if folder.open(overwrite) == "done":
            return _read_back(folder)
        n_chunks = math.ceil(plan.seeds / plan.chunk)
        chunks = folder.load_chunks(n_chunks, CHUNK_ARRAYS)
        done = {c: (a["rows"], a["values"], float(a["seconds"])) for c, a in chunks.items()}
        on_chunk = lambda c, r, v, dt: folder.save_chunk(  # noqa: E731
            c, {"rows": r, "values": v, "seconds": np.float64(dt)}
        )
    resumed = min(len(done) * plan.chunk, plan.seeds)
    kept = [resumed]

    def track(n, note=None):
        kept[0] = n
        if progress:
            progress(n, note)

    dtype = jnp.float64 if plan.float64 else jnp.float32
    try:
        record = run_tabular(
            plan.strategy, plan.benchmark, plan.seeds, plan.metric_key, seed0=plan.seed0, prng=plan.prng,
            dtype=dtype, chunk=plan.chunk, progress=track, done=done, on_chunk=on_chunk,
        )
    except KeyboardInterrupt:
        where = "nothing kept (no --out)" if folder is None else (
            f"kept {kept[0]} of {plan.seeds} seeds in {folder.path}; rerun the same command to finish"
        )
        raise Interrupted(f"interrupted: {plan.strategy.name} on {plan.benchmark.name}: {where}") from None
    extra = {
        "seed0": plan.seed0, "prng": plan.prng, "chunk": plan.chunk,
        "search_uses_test_data": any(plan.benchmark.uses_test_data(k) for k in objective_keys(plan.metric_key)),
        "resumed_seeds": resumed,
        "devices": int(record.devices),  # local devices the seeds were sharded over (jnas.runs.runner.seed_mesh)
    }
    if plan.multi_objective:
        from jnas.runs.multiobjective import summarise_multi

        result = summarise_multi(record, plan.benchmark, plan.strategy, plan.metric_key, extra=extra)
    else:
        result = summarise(record, plan.benchmark, plan.strategy, plan.metric_key, extra=extra)
    if folder is not None:
        folder.finish(result.save)
    return result


def _run_loop_plan(plan: SearchPlan, out, overwrite: bool, progress) -> SearchResult:
    """An untraceable evaluator (training): the Python loop, journaled in ``out``."""
    from jnas.runs.backends import make_backend
    from jnas.runs.journal import JOURNAL, Journal
    from jnas.runs.loop import run_journaled, summarise_loop

    folder = journal = None
    if out is not None:
        extra_files = (JOURNAL, "checkpoints", *((FRONT_FILE,) if plan.multi_objective else ()))
        folder = ResultFolder(out, plan.spec, extra_files=extra_files)
        if folder.open(overwrite) == "done":
            return _read_back(folder)
        journal = Journal(folder.path / JOURNAL)
    kept = [0]

    def track(info):
        kept[0] = info["done"]
        if progress:
            progress(info)

    ev = plan.evaluation or check_evaluation(plan.benchmark, plan.strategy, None)
    backend = make_backend(plan.benchmark, ev["workers"], ev["ray_address"], ev["eval_timeout"])
    try:
        record = run_journaled(plan.strategy, plan.benchmark, plan.seeds, plan.metric_key, seed0=plan.seed0,
                               prng=plan.prng, journal=journal, progress=track, backend=backend,
                               retries=ev["retries"], mode=ev["mode"])
    except KeyboardInterrupt:
        total = plan.seeds * plan.strategy.n_queries
        where = "nothing kept (no --out)" if folder is None else (
            f"{kept[0]} of {total} evaluations are in {folder.path / JOURNAL}; rerun the same command to finish"
        )
        raise Interrupted(f"interrupted: {plan.strategy.name} on {plan.benchmark.name}: {where}") from None
    except Exception as e:
        if not is_machine_fault(e):
            raise
        total = plan.seeds * plan.strategy.n_queries
        kept_where = "nothing is kept (no --out)" if folder is None else (
            f"{kept[0]} of {total} evaluations are in {folder.path / JOURNAL}; rerun the same command once it is "
            "fixed")
        raise MachineFault(f"{first_line(e)}: the search stopped (the machine, not the architecture, is at "
                           f"fault); {kept_where}") from None
    finally:
        backend.close()
    extra = {"seed0": plan.seed0, "prng": plan.prng,
             "search_uses_test_data": any(plan.benchmark.uses_test_data(k) for k in objective_keys(plan.metric_key)),
             **backend.describe(), "mode": ev["mode"], "retries": ev["retries"],
             **({"eval_timeout": ev["eval_timeout"]} if ev["eval_timeout"] is not None else {}),
             "retried_evaluations": int((record.attempts > 1).sum())}
    if plan.multi_objective:
        from jnas.runs.multiobjective import summarise_loop_multi

        result = summarise_loop_multi(record, plan.benchmark, plan.strategy, plan.metric_key, extra=extra)
    else:
        result = summarise_loop(record, plan.benchmark, plan.strategy, plan.metric_key, extra=extra)
    if folder is not None:
        result.save(folder.path)
    return result


def search(
    benchmark=None,
    strategy: str | None = None,
    budget: int | None = None,
    seeds: int = 1,
    metric: str | None = None,
    fidelity: int | None = None,
    options: dict | None = None,
    seed0: int = 0,
    prng: str = "hash",
    float64: bool = False,
    chunk: int | None = None,
    progress=None,
    out: str | Path | None = None,
    overwrite: bool = False,
    allow_test_metric: bool = False,
    *,
    evaluator=None,
    space: str | None = None,
    objectives=None,
    workers: int | None = None,
    ray_address: str | None = None,
    mode: str = "sync",
    retries: int | None = None,
    eval_timeout: float | None = None,
) -> SearchResult:
    """Run ``seeds`` independent searches of ``strategy`` on ``benchmark`` (or ``evaluator``).

    ``benchmark`` is a registered name (``"nb201/cifar10"``) or an evaluator
    object; ``evaluator=`` says the same by keyword, e.g.
    ``search(evaluator=TrainingEvaluator("nb201", "cifar10_subset", ...), strategy="re", budget=20)``,
    and ``space=`` (optional) must then name the evaluator's space. A
    traceable evaluator (a table) runs as one compiled scan over queries,
    vmapped over seeds; any other (training) runs in a Python loop that
    journals every evaluation in ``out`` (``journal.jsonl``), so a rerun resumes.

    ``metric``/``fidelity`` choose the search metric (default: the
    benchmark's, which never looks at test data; ``fidelity`` alone applies
    to the default metric); a test metric needs ``allow_test_metric=True``
    and is recorded in the summary. ``objectives`` (e.g.
    ``"valid_acc@200,edgegpu_latency"`` or a list of names) makes it a
    multi-objective search (``mobo``, ``nsga2``, ``rs``; see
    ``jnas.runs.multiobjective`` for what it records). ``options`` are strategy options
    (``--set``). ``float64`` gathers full-precision values (requires
    ``jax.config.update("jax_enable_x64", True)``). ``chunk`` seeds run per
    compiled call (default: all); ``progress(n_done_seeds, note)`` is called
    as they finish. ``out``: write the result folder as the run goes, resume
    an interrupted run of the same arguments there, refuse a different run
    unless ``overwrite``.

    A training search's evaluations run in this process by default;
    ``workers=N`` runs them as Ray tasks on a local Ray runtime of ``N``
    CPUs, ``ray_address`` (``"auto"`` or ``"host:port"``) on a running Ray
    cluster (``jnas.runs.backends``). ``mode="sync"`` evaluates each step's
    batches (of every seed) at once and tells them together (results do not
    depend on the worker count); ``"async"`` keeps ``workers`` evaluations
    running per seed and asks anew as each finishes (``batch_size`` 1).
    ``retries``: tries again a failed evaluation (raised, NaN, worker lost,
    past ``eval_timeout`` seconds) up to this many times before it is
    recorded as a failure (default: 0 in this process, 2 on Ray).
    """
    if evaluator is not None:
        if benchmark is not None:
            raise JnasError("evaluator: give a benchmark or an evaluator, not both")
        benchmark = evaluator
    if benchmark is None or strategy is None or budget is None:
        missing = [n for n, v in (("benchmark or evaluator", benchmark), ("strategy", strategy), ("budget", budget))
                   if v is None]
        raise JnasError(f"search: missing {', '.join(missing)}")
    if space is not None and not isinstance(benchmark, str) and getattr(benchmark.space, "name", None) != space:
        raise JnasError(f"space: got {space!r}, but the evaluator searches {benchmark.space.name!r}")
    evaluation = {"workers": workers, "ray_address": ray_address, "mode": mode, "retries": retries,
                  "eval_timeout": eval_timeout}
    plan = plan_search(benchmark, strategy, budget, seeds, metric, fidelity, options, seed0, prng, float64,
                       chunk, allow_test_metric, objectives=objectives, evaluation=evaluation)
    return run_plan(plan, out, overwrite, progress)
