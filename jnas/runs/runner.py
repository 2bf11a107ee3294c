"""Running a strategy against a benchmark.

Two runners give the same results for the same keys:

* ``run_tabular`` — strategy and benchmark are both jittable: one
  ``lax.scan`` over queries, ``vmap`` over seeds, one compiled call.
* ``run_loop`` — any evaluator (a Python callable, e.g. real training): the
  same jitted ``ask``/``tell`` driven batch by batch from Python; failed
  evaluations (exceptions, NaN) are recorded as NaN and the search goes on.

Keys: seed ``i`` uses ``jax.random.key(seed0 + i, impl)``, split into an
init key and one key per step, identically in both runners. The default
implementation is ``jnas.prng.HASH`` (cheap on CPU); ``prng="threefry"``
selects JAX's default generator.

Auxiliary output: ``run_tabular(..., aux=fn)`` (and ``make_scan_fn``) calls
``fn(step)`` inside the scan at every step with a ``ScanStep`` (the state
before ``ask``, the step key, the asked batch, the state ``ask`` returned,
the table rows and the measured values) and returns its pytree outputs
stacked per step, ``[seeds, steps, ...]``, in ``RunRecord.aux``: a study or a
test reads what each step saw without re-implementing the loop. Without
``aux`` the compiled program is the one it always was.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jnas.benchmarks.base import TabularBenchmark
from jnas.errors import JnasError, bad_argument
from jnas.prng import get_impl
from jnas.strategies.base import Strategy


@dataclasses.dataclass
class RunRecord:
    """Raw outcome of a run: per seed and query, the table row and the search value."""

    rows: np.ndarray  # int[S, B] queried rows (-1 = not in the table)
    values: np.ndarray  # float[S, B] (multi-objective: [S, B, M]) search-metric values as measured (NaN = failure)
    wall_seconds: float
    aux: Any = None  # outputs of ``run_tabular``'s ``aux`` hook, leaves [S, steps, ...] (None without a hook)
    fidelity: np.ndarray | None = None  # int[S, B]: each query's fidelity (multi-fidelity strategies), else None
    devices: int = 1  # devices the seeds were sharded over


class ScanStep(NamedTuple):
    """One step of the compiled search, as ``make_scan_fn``'s ``aux`` hook sees it."""

    state: Any  # strategy state before ``ask``
    key: jax.Array  # the key this step passed to ``ask``
    archs: Any  # the batch ``ask`` returned (leading axis batch_size)
    asked: Any  # the state ``ask`` returned, which ``tell`` receives
    rows: jax.Array  # int32[batch_size] table rows of ``archs`` (-1 = not in the table)
    values: jax.Array  # float[batch_size] search-metric values as measured (before the sign ``tell`` sees)


def seed_keys(seeds: int, seed0: int = 0, prng: str = "hash") -> jax.Array:
    """One typed PRNG key per seed: ``key(seed0 + i, impl=prng)``."""
    impl = get_impl(prng)
    return jax.vmap(lambda s: jax.random.key(s, impl=impl))(jnp.arange(seed0, seed0 + seeds))


def _n_steps(strategy: Strategy) -> int:
    return strategy.n_steps


def query_fidelities(strategy: Strategy, seeds: int) -> np.ndarray | None:
    """``int[seeds, n_queries]``: the fidelity of every query of a multi-fidelity strategy (its schedule is
    fixed before the run), else ``None``."""
    if not strategy.multi_fidelity:
        return None
    return np.broadcast_to(np.asarray(strategy.schedule.fidelity, np.int64), (seeds, strategy.n_queries)).copy()


def _split(key, n_steps):
    k_init, k_steps = jax.random.split(key)
    return k_init, jax.random.split(k_steps, n_steps)


def is_multi(metric_key) -> bool:
    """Whether ``metric_key`` is a tuple of objective keys rather than one ``(metric, fidelity)``."""
    return len(metric_key) > 0 and isinstance(metric_key[0], (tuple, list))


def objective_keys(metric_key) -> tuple:
    """The ``(metric, fidelity)`` keys of a search: one, or every objective of a multi-objective search."""
    return tuple(tuple(k) for k in metric_key) if is_multi(metric_key) else (tuple(metric_key),)


def seed_mesh(devices: int | None = None):
    """A 1-D ``Mesh`` over the first ``devices`` local devices (default: all) with axis ``seeds``."""
    from jax.sharding import Mesh

    local = jax.local_devices()
    n = len(local) if devices is None else devices
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(local):
        raise bad_argument("devices", devices, f"an integer in [1, {len(local)}] (the local devices) or None")
    return Mesh(np.array(local[:n]), ("seeds",))


def make_scan_fn(strategy: Strategy, benchmark: TabularBenchmark, metric_key, dtype=jnp.float32,
                 aux: Callable[[ScanStep], Any] | None = None, mesh=None) -> Callable:
    """Jitted ``(keys[S]) -> (rows int32[S, B], values float[S, B])`` running every seed to the budget.

    ``mesh`` (``seed_mesh``): shard the seeds over its devices (``S`` a
    multiple of the device count); every seed's search runs on one device,
    with the same result as unsharded. ``None``: one device.

    ``metric_key``: one ``(metric, fidelity)``, or a tuple of them for a
    multi-objective search (``objective_keys``): values are then
    ``float[S, B, M]`` as measured, and the strategy is told each objective
    with its sign (every objective maximised).
    With ``aux``, ``fn(keys) -> (rows, values, aux_out)``: ``aux(ScanStep)`` is
    traced into the scan and its outputs come back stacked, ``[S, steps, ...]``.
    """
    keys = objective_keys(metric_key)
    signs = [1.0 if benchmark.metrics[k].higher_is_better else -1.0 for k in keys]
    multi = is_multi(metric_key)
    n_steps = _n_steps(strategy)
    n_queries = strategy.n_queries
    if strategy.multi_fidelity:  # every fidelity the schedule uses, of the search metric
        rung_keys = [(metric_key[0], f) for f in strategy.rung_fidelities]
        rung_fids = jnp.asarray(strategy.rung_fidelities)

    def measure(rows, asked):
        if strategy.multi_fidelity:
            cols = jnp.stack([benchmark.query_rows(rows, k, dtype) for k in rung_keys], axis=-1)
            at = jnp.searchsorted(rung_fids, strategy.fidelity_of(asked))
            return jnp.take_along_axis(cols, at[:, None], axis=-1)[:, 0], signs[0]
        if not multi:
            return benchmark.query_rows(rows, metric_key, dtype), signs[0]
        vals = jnp.stack([benchmark.query_rows(rows, k, dtype) for k in keys], axis=-1)
        return vals, jnp.asarray(signs, vals.dtype)

    def one_seed(key):
        k_init, k_steps = _split(key, n_steps)

        def step(state, k):
            archs, asked = strategy.ask(state, k)
            rows = benchmark.rows(archs)
            vals, sign = measure(rows, asked)
            told = strategy.tell(asked, archs, sign * vals)
            if aux is None:
                return told, (rows, vals)
            # the hook runs after the step (a barrier orders them): independent of the strategy's own
            # work, it would otherwise run beside it; two batched LAPACK calls at once deadlocked XLA:CPU
            # before jnas.linalg, and the order keeps any such hook from meeting the strategy's own
            step_view, told = jax.lax.optimization_barrier((ScanStep(state, k, archs, asked, rows, vals), told))
            return told, (rows, vals, aux(step_view))

        _, (rows, vals, *extra) = jax.lax.scan(step, strategy.init(k_init), k_steps)
        out = rows.reshape(-1)[:n_queries], vals.reshape(-1, *vals.shape[2:])[:n_queries]
        return out if aux is None else (*out, extra[0])

    if mesh is None or mesh.size == 1:
        return jax.jit(jax.vmap(one_seed))
    from jax.sharding import NamedSharding, PartitionSpec

    by_seed = NamedSharding(mesh, PartitionSpec("seeds"))
    return jax.jit(jax.vmap(one_seed), in_shardings=by_seed, out_shardings=by_seed)


def run_tabular(
    strategy: Strategy,
    benchmark: TabularBenchmark,
    seeds: int,
    metric_key=None,
    seed0: int = 0,
    prng: str = "hash",
    dtype=jnp.float32,
    chunk: int | None = None,
    progress: Callable[..., None] | None = None,
    done: dict[int, tuple[np.ndarray, np.ndarray, float]] | None = None,
    on_chunk: Callable[[int, np.ndarray, np.ndarray, float], None] | None = None,
    aux: Callable[[ScanStep], Any] | None = None,
    devices: int | None = None,
) -> RunRecord:
    """Run ``seeds`` independent searches as one compiled scan (vmapped over seeds).

    The seeds of a group are sharded over ``devices`` local devices
    (default: all of them; ``seed_mesh``), so a run uses every GPU or TPU
    core; a group is padded to a multiple of the device count with repeated
    keys, and a seed's result does not depend on the device count.

    ``chunk`` splits the seeds into groups of that size (bounding memory and
    giving progress); ``None`` runs all at once. Every group has the same
    size (the last is padded with repeated keys), so a seed's result does not
    depend on which other groups ran. ``progress(n_done_seeds, note)`` is
    called with ``note="compiling"`` before compilation and ``None`` after
    each group. ``done`` holds groups finished earlier (``{c: (rows, values,
    seconds)}``, e.g. read back after an interrupt): they are not recomputed.
    ``on_chunk(c, rows, values, seconds)`` is called as each new group finishes.
    The record's ``wall_seconds`` is the compile time plus every group's time
    (those in ``done`` included). ``aux(step)`` (see ``ScanStep``) runs inside
    the scan at every step; its outputs, stacked to ``[seeds, steps, ...]``,
    are the record's ``aux`` (every group is then computed: ``done`` must be empty).
    """
    metric_key = metric_key or benchmark.search_metric
    if aux is not None and done:
        raise bad_argument("done", sorted(done), "no finished groups when aux is given (their aux is not kept)")
    done = dict(done or {})
    extra = {}
    keys = seed_keys(seeds, seed0, prng)
    chunk = min(chunk or seeds, seeds)
    mesh = seed_mesh(devices)
    if mesh.size > chunk:  # more devices than seeds in a group: the spare ones idle
        mesh = seed_mesh(chunk)
    # each call pads its group to a multiple of the device count (repeated keys, trimmed after)
    call = math.ceil(chunk / mesh.size) * mesh.size
    n_chunks = math.ceil(seeds / chunk)
    # pad the last group with repeated keys so every call reuses one compiled program
    pad = n_chunks * chunk - seeds + call - chunk
    if pad:
        keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)])
    todo = [c for c in range(n_chunks) if c not in done]
    wall = sum(float(d[2]) for d in done.values())
    n_done = lambda: min(len(done) * chunk, seeds)  # noqa: E731
    if todo:
        if progress:
            progress(n_done(), "compiling")
        t0 = time.perf_counter()
        fn = make_scan_fn(strategy, benchmark, metric_key, dtype, aux, mesh).lower(keys[:call]).compile()
        wall += time.perf_counter() - t0
        for c in todo:
            t0 = time.perf_counter()
            r, v, *a = fn(keys[c * chunk : c * chunk + call])
            r, v = np.asarray(r)[:chunk], np.asarray(v)[:chunk]
            if a:
                extra[c] = jax.tree.map(lambda x: np.asarray(x)[:chunk], a[0])
            dt = time.perf_counter() - t0
            wall += dt
            done[c] = (r, v, dt)
            if on_chunk:
                on_chunk(c, r, v, dt)
            if progress:
                progress(n_done(), None)
    rows = np.concatenate([done[c][0] for c in range(n_chunks)])[:seeds]
    vals = np.concatenate([done[c][1] for c in range(n_chunks)])[:seeds]
    aux_out = None
    if aux is not None:
        aux_out = jax.tree.map(lambda *xs: np.concatenate(xs)[:seeds], *(extra[c] for c in range(n_chunks)))
    return RunRecord(rows, vals, wall, aux_out, query_fidelities(strategy, seeds), devices=mesh.size)


def run_loop(
    strategy: Strategy,
    evaluate: Callable,
    seeds: int,
    row_of: Callable | None = None,
    seed0: int = 0,
    prng: str = "hash",
    higher_is_better: bool = True,
    progress: Callable[[int], None] | None = None,
) -> RunRecord:
    """Drive ``strategy`` from Python, one batch at a time, for each seed in turn.

    ``evaluate(archs) -> values`` may be any Python callable over a batch of
    architectures (it may train networks); an exception or NaN marks that
    batch's evaluations as failed (NaN) and the search goes on. ``row_of``
    maps a batch to table rows for the record (default: -1). A multi-fidelity
    strategy needs ``jnas.runs.loop.run_journaled``, which passes each query's fidelity.
    """
    if strategy.multi_fidelity:
        raise JnasError(f"strategy: {strategy.name} chooses a fidelity per query, which evaluate(archs) cannot "
                        "take; use jnas.runs.search (or jnas.runs.loop.run_journaled)")
    ask = jax.jit(strategy.ask)
    tell = jax.jit(strategy.tell)
    init = jax.jit(strategy.init)
    sign = 1.0 if higher_is_better else -1.0
    n_steps = _n_steps(strategy)
    keys = seed_keys(seeds, seed0, prng)
    b = strategy.budget
    rows = np.full((seeds, n_steps * strategy.batch_size), -1, np.int64)
    vals = np.full((seeds, n_steps * strategy.batch_size), np.nan)
    t0 = time.perf_counter()
    for s in range(seeds):
        k_init, k_steps = _split(keys[s], n_steps)
        state = init(k_init)
        for t in range(n_steps):
            archs, state = ask(state, k_steps[t])
            sl = slice(t * strategy.batch_size, (t + 1) * strategy.batch_size)
            try:
                v = np.asarray(evaluate(archs), np.float64).reshape(-1)
            except Exception:  # noqa: BLE001 — a failed evaluation is data, not a crash
                v = np.full(strategy.batch_size, np.nan)
            vals[s, sl] = v
            if row_of is not None:
                rows[s, sl] = np.asarray(row_of(archs))
            state = tell(state, archs, jnp.asarray(sign * v, dtype=jnp.result_type(float)))
        if progress:
            progress(s + 1)
    return RunRecord(rows[:, :b], vals[:, :b], time.perf_counter() - t0)
