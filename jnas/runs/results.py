"""Result files of a search: ``summary.json`` and ``trajectory.npz``.

``trajectory.npz`` holds, per seed and query (arrays ``[seeds, budget]``):
``index`` — the benchmark's published index of the queried architecture
(NB201 official index; NAS-Bench-Graph row in key order), ``value`` — its
search-metric value (NaN = failed), ``best_search`` — best-so-far search
metric, ``best_test`` — test value of that best-so-far architecture (ties:
the first queried).

A multi-fidelity run (``hyperband``, ``bohb``) makes ``queries`` queries
(its ``budget`` counts full evaluations' worth of cost) and adds
``fidelity`` (epochs of each query) and ``cost`` (cumulative epochs); its
best-so-far curves count only queries at the top fidelity (``NaN`` before
the first), so its result is the test value of the best architecture *by
the search metric at the top fidelity*. ``summary.json`` gains
``queries``, ``cost_used`` (epochs per seed), ``max_fidelity`` and
``rung_fidelities``; every run whose search metric has a fidelity records
``cost_used`` (queries × epochs), so ``jnas compare --x cost`` puts
single- and multi-fidelity runs on one axis.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
import zlib
from pathlib import Path

import jax
import numpy as np

from jnas.benchmarks.base import TabularBenchmark
from jnas.errors import JnasError, is_int, is_number
from jnas.runs.runner import RunRecord
from jnas.runs.trajectory import best_so_far, mean_se, samples_to_hit

SUMMARY_KEYS = (
    "benchmark", "strategy", "budget", "seeds", "search_metric", "final_test_mean", "final_test_se",
    "final_regret_mean", "final_regret_se", "found_optimum_fraction", "samples_to_optimum_mean", "wall_seconds",
)


@dataclasses.dataclass
class SearchResult:
    """A finished search: per-query arrays plus the summary numbers."""

    summary: dict
    trajectory: dict[str, np.ndarray]
    origin: str = "computed"  # "read" when a finished result folder was read back instead of rerun
    fronts: list | None = None  # multi-objective runs: each seed's final Pareto set (``front.json``)

    @property
    def multi_objective(self) -> bool:
        return "objectives" in self.summary

    def save(self, out: str | Path) -> Path:
        """Write ``summary.json`` and ``trajectory.npz`` (and ``front.json``) into folder ``out``.

        Each file is written whole or not at all (``jnas.runs.folder.write_atomic``), ``trajectory.npz``
        last: a kill or a full disk never leaves a folder that looks finished but is not.
        """
        from jnas.runs.folder import write_atomic

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        then = "; nothing half-written is left: free some space and rerun the same command"

        def text(data: str):
            return lambda f: f.write(data.encode())

        if self.fronts is not None:  # first: a folder with summary.json and trajectory.npz counts as finished
            write_atomic(out / FRONT_FILE, text(json.dumps({"seeds": self.fronts}, indent=1) + "\n"), then)
        write_atomic(out / "summary.json", text(json.dumps(self.summary, indent=2) + "\n"), then)
        write_atomic(out / "trajectory.npz", lambda f: np.savez_compressed(f, **self.trajectory), then)
        return out


def summarise(
    record: RunRecord,
    benchmark: TabularBenchmark,
    strategy,
    metric_key,
    extra: dict | None = None,
) -> SearchResult:
    """Best-so-far curves, test regret and samples-to-optimum of a tabular run."""
    test_col = benchmark.column(*benchmark.test_metric)
    search_col = benchmark.column(*metric_key)
    rows = record.rows
    top = at_top_fidelity(record.fidelity, metric_key)
    best_val, best_row = best_so_far(rows, np.where(top, record.values, np.nan),
                                     benchmark.metrics[metric_key].higher_is_better)
    safe = np.clip(best_row, 0, None)
    best_test = np.where(best_row >= 0, test_col[safe], np.nan)
    hit = top & (rows >= 0) & (search_col[np.clip(rows, 0, None)] == benchmark.metrics[metric_key].optimum)
    summary = summary_of(benchmark, strategy, metric_key, best_test[:, -1], hit, record.wall_seconds,
                         np.isnan(record.values), {**cost_summary(strategy, metric_key), **(extra or {})})
    trajectory = {
        "index": benchmark.official(rows).astype(np.int64),
        "value": record.values.astype(np.float64),
        "best_search": best_val,
        "best_test": best_test,
        **fidelity_arrays(strategy, record.fidelity),
    }
    return SearchResult(summary, trajectory)


def at_top_fidelity(fidelity: np.ndarray | None, metric_key) -> np.ndarray | bool:
    """``bool[S, B]``: the queries that count for the result (those at the search metric's fidelity);
    ``True`` for a single-fidelity run (``fidelity`` None)."""
    return True if fidelity is None else np.asarray(fidelity) == metric_key[1]


def cost_summary(strategy, metric_key) -> dict:
    """Summary keys on cost in epochs: a multi-fidelity run's schedule, or ``queries × fidelity``."""
    if strategy.multi_fidelity:
        return {"queries": int(strategy.n_queries), "cost_used": float(np.sum(strategy.query_cost)),
                "cost_unit": "epochs", "max_fidelity": int(strategy.top_fidelity),
                "rung_fidelities": [int(f) for f in strategy.rung_fidelities]}
    fid = metric_key[1] if not isinstance(metric_key[0], (tuple, list)) else None
    if fid is None:
        return {}
    return {"cost_used": float(strategy.budget * fid), "cost_unit": "epochs", "max_fidelity": int(fid)}


def fidelity_arrays(strategy, fidelity: np.ndarray | None) -> dict:
    """Trajectory arrays of a multi-fidelity run: ``fidelity`` and cumulative ``cost`` (epochs), ``[S, B]``."""
    if fidelity is None:
        return {}
    cost = np.broadcast_to(np.cumsum(strategy.query_cost), fidelity.shape)
    return {"fidelity": np.asarray(fidelity, np.int64), "cost": cost.astype(np.float64)}


def summary_of(evaluator, strategy, metric_key, final_test: np.ndarray, hit: np.ndarray | None,
               wall_seconds: float, failed: np.ndarray, extra: dict | None = None) -> dict:
    """The ``summary.json`` dict of a search, tabular or journaled.

    ``final_test``: ``float[seeds]`` test value of each seed's final best
    architecture; ``hit``: ``bool[seeds, budget]`` queries that reached the
    search metric's optimum, or ``None`` where no optimum is known;
    ``failed``: ``bool[seeds, budget]`` failed evaluations. Regret needs a
    known test optimum, samples-to-optimum a known search optimum: without
    them those keys are ``None``. ``extra`` is merged last.
    """
    info = evaluator.metrics[metric_key]
    test_key = evaluator.test_metric
    test_info = evaluator.metrics.get(test_key)
    test_mean, test_se = mean_se(final_test)
    test_opt = None if test_info is None else test_info.optimum
    regret_mean = regret_se = found = to_opt = None
    if test_opt is not None and np.isfinite(test_opt):
        regret = test_opt - final_test if test_info.higher_is_better else final_test - test_opt
        regret_mean, regret_se = mean_se(regret)
    if hit is not None:
        found, to_opt = float(hit.any(axis=1).mean()), float(samples_to_hit(hit).mean())
    summary = {
        "benchmark": evaluator.name,
        "strategy": strategy.name,
        "budget": int(strategy.budget),
        "seeds": int(final_test.shape[0]),
        "search_metric": metric_name(metric_key),
        "test_metric": metric_name(test_key),
        "final_test_mean": test_mean,
        "final_test_se": test_se,
        "final_regret_mean": regret_mean,
        "final_regret_se": regret_se,
        "found_optimum_fraction": found,
        "samples_to_optimum_mean": to_opt,
        "wall_seconds": float(wall_seconds),
        "search_optimum": info.optimum,
        "test_optimum": test_opt,
        "failed_fraction": float(np.mean(failed)),
        "options": strategy.settings(),
        "space": evaluator.space.name,
        "device": str(jax.devices()[0].platform),
    }
    summary.update(extra or {})
    for k in SUMMARY_KEYS:
        if k not in _OPTIONAL_NUMBER_KEYS and summary.get(k) is None:
            raise JnasError(f"internal: summary key {k!r} is missing")
    return summary


def metric_name(key) -> str:
    """``valid_acc@200`` for ``("valid_acc", 200)``; the bare name without a fidelity."""
    metric, fid = key
    return metric if fid is None else f"{metric}@{fid}"


# What ``load_result`` checks before anything reads a result folder: summary keys and their types.
_TEXT_KEYS = ("benchmark", "strategy", "search_metric", "test_metric")
_COUNT_KEYS = ("budget", "seeds")
_NUMBER_KEYS = ("final_test_mean", "final_test_se", "wall_seconds")
# null where the optimum is unknown (a training search): no regret, no samples-to-optimum
_OPTIONAL_NUMBER_KEYS = ("final_regret_mean", "final_regret_se", "found_optimum_fraction", "samples_to_optimum_mean")
TRAJECTORY_KEYS = ("index", "value", "best_search", "best_test")
# a multi-objective run (summary key "objectives"; jnas.runs.multiobjective)
MO_TRAJECTORY_KEYS = ("index", "values", "hypervolume", "hv_regret", "test_hypervolume")
_MO_NUMBER_KEYS = ("final_hypervolume_mean", "final_hv_regret_mean", "final_hv_regret_se", "wall_seconds")
# a multi-objective training run (summary "true_front": false): no table, so no regret and no test metric
MO_LOOP_TRAJECTORY_KEYS = ("index", "values", "hypervolume")
_MO_LOOP_NUMBER_KEYS = ("final_hypervolume_mean", "final_hypervolume_se", "wall_seconds")
_MO_LOOP_NULL_KEYS = ("final_hv_regret_mean", "final_hv_regret_se", "test_metric")
FRONT_FILE = "front.json"


def load_result(folder: str | Path) -> SearchResult:
    """Read a result folder written by ``SearchResult.save``.

    A damaged or incomplete folder (invalid JSON, a missing or mistyped
    summary key, an unreadable ``trajectory.npz``, a missing array, arrays
    not shaped ``[seeds, budget]``) raises one ``JnasError`` naming the file.
    A multi-objective run by training (``"true_front": false``;
    ``jnas.runs.multiobjective.summarise_loop_multi``) must have null regret
    and test metric and holds ``MO_LOOP_TRAJECTORY_KEYS``; any other run must
    have numbers there.
    """
    folder = Path(folder)
    s, t = folder / "summary.json", folder / "trajectory.npz"
    if not s.is_file() or not t.is_file():
        raise JnasError(f"DIR: {str(folder)!r} is not a jnas result folder (expected summary.json and trajectory.npz)")
    summary = _read_summary(s)
    multi = "objectives" in summary
    names = TRAJECTORY_KEYS
    if multi:
        names = MO_TRAJECTORY_KEYS if summary.get("true_front", True) else MO_LOOP_TRAJECTORY_KEYS
    traj = _read_trajectory(t, names)
    shape = (summary["seeds"], summary.get("queries", summary["budget"]))
    for k in names:
        want = shape + ((len(summary["objectives"]),) if multi and k == "values" else ())
        if traj[k].shape != want:
            what = "[seeds, budget, objectives]" if len(want) == 3 else "[seeds, budget]"
            raise JnasError(f"{t}: array {k!r} has shape {traj[k].shape}, but summary.json says "
                            f"{what} = {list(want)}; the two files are not from the same run")
    fronts = _read_fronts(folder / FRONT_FILE, summary["seeds"]) if multi else None
    return SearchResult(summary, traj, fronts=fronts)


def _read_fronts(path: Path, seeds: int) -> list:
    try:
        fronts = json.loads(path.read_text(encoding="utf-8"))["seeds"]
    except FileNotFoundError:
        raise JnasError(f"{path}: missing (a multi-objective result folder holds its fronts there); "
                        "rerun the search that wrote it") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise JnasError(f"{path}: unreadable ({type(e).__name__}); rerun the search that wrote it") from None
    if not isinstance(fronts, list) or len(fronts) != seeds:
        raise JnasError(f"{path}: expected one front per seed ({seeds}); rerun the search that wrote it")
    return fronts


def _read_summary(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise JnasError(f"{path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError:
        raise JnasError(f"{path}: invalid JSON (not UTF-8 text); rerun the search that wrote it") from None
    try:
        summary = json.loads(text)
    except json.JSONDecodeError as e:
        raise JnasError(f"{path}: invalid JSON ({e}); rerun the search that wrote it") from None
    if not isinstance(summary, dict):
        raise JnasError(f"{path}: expected a JSON object, got {type(summary).__name__}; rerun the search that wrote it")
    multi = "objectives" in summary
    if multi and not (isinstance(summary["objectives"], list) and len(summary["objectives"]) >= 2
                      and all(isinstance(o, str) for o in summary["objectives"])):
        raise JnasError(f"{path}: key 'objectives' is {summary['objectives']!r}, expected a list of two or more "
                        "metric names")
    # only a multi-objective run without a table (training) has no true front, hence null regret
    true_front = summary.get("true_front", True)  # folders of table runs written before the key existed: True
    if multi and not isinstance(true_front, bool):
        raise JnasError(f"{path}: key 'true_front' is {true_front!r}, expected true or false")
    no_front = multi and not true_front
    if no_front:
        kinds = ((_MO_LOOP_NUMBER_KEYS, is_number, "a number"),
                 (_MO_LOOP_NULL_KEYS, lambda v: v is None, "null (no true front: a run without a table)"))
    elif multi:
        kinds = ((_MO_NUMBER_KEYS, is_number, "a number"),)
    else:
        kinds = ((_NUMBER_KEYS, is_number, "a number"),
                 (_OPTIONAL_NUMBER_KEYS, lambda v: v is None or is_number(v), "a number or null"))
    text_keys = tuple(k for k in _TEXT_KEYS if not (no_front and k in _MO_LOOP_NULL_KEYS))
    for keys, ok, expected in (
        (text_keys, lambda v: isinstance(v, str), "a string"),
        (_COUNT_KEYS, lambda v: is_int(v) and v >= 1, "a positive integer"),
        *kinds,
    ):
        for k in keys:
            if k not in summary:
                raise JnasError(f"{path}: missing key {k!r}; rerun the search that wrote it")
            if not ok(summary[k]):
                raise JnasError(f"{path}: key {k!r} is {summary[k]!r}, expected {expected}")
    return summary


def _read_trajectory(path: Path, names=TRAJECTORY_KEYS) -> dict[str, np.ndarray]:
    # A damaged .npz fails in np.load or only when an array is decompressed, with any of these.
    try:
        z = np.load(path)
        if not isinstance(z, np.lib.npyio.NpzFile):  # a bare .npy array or a pickle under this name
            raise ValueError("not an .npz archive")
        with z:
            traj = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        why = " ".join(f"{type(e).__name__}: {e}".split())  # one line, whatever numpy or zipfile said
        raise JnasError(f"{path}: truncated or corrupt ({why}); rerun the search that wrote it") from None
    missing = [k for k in names if k not in traj]
    if missing:
        raise JnasError(f"{path}: missing array {missing[0]!r} (expected {', '.join(names)}); "
                        "rerun the search that wrote it")
    return traj
