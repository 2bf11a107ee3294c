"""Comparing result folders: a table and median best-so-far curves with interquartile bands."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from jnas.errors import JnasError
from jnas.runs.results import SearchResult, load_result
from jnas.runs.trajectory import mean_se

COLUMNS = (
    ("benchmark", "benchmark", "{}"),
    ("strategy", "strategy", "{}"),
    ("budget", "budget", "{}"),
    ("seeds", "seeds", "{}"),
    ("test acc %", None, None),
    ("regret pp", None, None),
    ("found opt", "found_optimum_fraction", "{:.2f}"),
    ("samples to opt", "samples_to_optimum_mean", "{:.1f}"),
    ("wall s", "wall_seconds", "{:.2f}"),
)


MO_COLUMNS = (
    ("benchmark", "benchmark", "{}"),
    ("strategy", "strategy", "{}"),
    ("budget", "budget", "{}"),
    ("seeds", "seeds", "{}"),
    ("objectives", None, None),
    ("hypervolume", None, None),
    ("hv regret", None, None),
    ("test hv", None, None),
    ("wall s", "wall_seconds", "{:.2f}"),
)


def _kind(results: list[SearchResult]) -> bool:
    """Whether the results are multi-objective; a mix of both kinds is refused, and so is a mix of
    multi-objective runs on a table (with a true front) and by training (without one)."""
    multi = {r.multi_objective for r in results}
    if len(multi) > 1:
        raise JnasError("DIR: the folders mix single- and multi-objective runs; compare each kind on its own")
    if multi == {True} and len({_has_true_front(r) for r in results}) > 1:
        raise JnasError("DIR: the folders mix multi-objective runs on a table (true front) and by training (no "
                        "true front); their hypervolumes are not on one scale: compare each kind on its own")
    return multi == {True}


def _has_true_front(result: SearchResult) -> bool:
    """Whether a multi-objective run knows its true front (a table run), not a training run's own range."""
    return result.summary.get("true_front", True)


def _no_true_front(results: list[SearchResult]) -> bool:
    """Whether the results are multi-objective runs without a true front (training; ``_kind`` checks the mix)."""
    return _kind(results) and not _has_true_front(results[0])


def shared_hypervolumes(results: list[SearchResult]) -> tuple[list[np.ndarray], str]:
    """Runs without a true front, on one scale: per run ``float[seeds]`` final normalised hypervolume of each
    seed's evaluations, with the ideal and reference point (``jnas.runs.multiobjective.run_bounds``) of the
    evaluations of *all* the runs, and a line saying so. Runs of different objectives keep their own scale."""
    from jnas.metrics import pareto
    from jnas.runs.multiobjective import run_bounds

    own = [r.trajectory["hypervolume"][:, -1] for r in results]
    if len(results) == 1:
        return own, ("hypervolume: normalised by the ideal and reference point of the run's own evaluations "
                     "(no true front)")
    if len({(tuple(r.summary["objectives"]), tuple(r.summary["directions"])) for r in results}) > 1:
        return own, ("hypervolume: each run normalised by its own evaluations (no true front; the objectives "
                     "differ): not on one scale")
    signs = np.array([1.0 if d == "max" else -1.0 for d in results[0].summary["directions"]])
    ys = [r.trajectory["values"] * signs for r in results]
    lo, hi = run_bounds(np.concatenate([y.reshape(-1, y.shape[-1]) for y in ys]))
    out = []
    for y in ys:
        ok = np.isfinite(y).all(axis=2)
        out.append(np.array([float(pareto.normalised_hypervolume(np.where(ok[s, :, None], y[s], 0.0), lo, hi,
                                                                 ok[s])) for s in range(y.shape[0])]))
    return out, (f"hypervolume: normalised by the ideal and reference point of all {len(results)} runs' "
                 "evaluations (no true front; jnas.runs.multiobjective.run_bounds)")


def _mean_se(s: dict, key: str, digits: int) -> str:
    return f"{s[key + '_mean']:.{digits}f} ± {s[key + '_se']:.{digits}f}"


def table(results: list[SearchResult], labels: list[str] | None = None) -> str:
    """A fixed-width text table of the summaries (mean ± standard error).

    ``labels`` (e.g. ``folder_labels``) open each row in a ``run`` column when two results share a
    strategy name (``bo`` and ``bo`` with ``encoding=path``), so the rows can be told apart.
    Multi-objective runs get their own columns: normalised hypervolume, hypervolume regret and the
    test hypervolume of the same queries. Runs without a true front (training) show ``-`` for the last
    two, their hypervolumes on the scale of all the compared runs' evaluations (``shared_hypervolumes``),
    and a last line saying how they were normalised.
    """
    multi = _kind(results)
    columns = MO_COLUMNS if multi else COLUMNS
    named = labels is not None and len({r.summary["strategy"] for r in results}) < len(results)
    shared, note = shared_hypervolumes(results) if _no_true_front(results) else (None, None)
    rows = []
    for i, r in enumerate(results):
        s = r.summary
        row = [labels[i]] if named else []
        for head, key, fmt in columns:
            if head == "objectives":
                row.append(",".join(s["objectives"]))
            elif head == "hypervolume" and shared is not None:
                m, se = mean_se(shared[i])
                row.append(f"{m:.4f} ± {se:.4f}")
            elif head == "hypervolume":
                row.append(_mean_se(s, "final_hypervolume", 4))
            elif head == "hv regret":  # null without a true front (training)
                row.append("-" if s["final_hv_regret_mean"] is None else _mean_se(s, "final_hv_regret", 4))
            elif head == "test hv":
                known = s.get("final_test_hypervolume_mean") is not None
                row.append(_mean_se(s, "final_test_hypervolume", 4) if known else "-")
            elif head == "test acc %":
                row.append(f"{s['final_test_mean']:.2f} ± {s['final_test_se']:.2f}")
            elif head == "regret pp":
                known = s["final_regret_mean"] is not None
                row.append(f"{s['final_regret_mean']:.3f} ± {s['final_regret_se']:.3f}" if known else "-")
            else:
                row.append("-" if s[key] is None else fmt.format(s[key]))  # None: optimum unknown (training)
        rows.append(row)
    heads = (["run"] if named else []) + [c[0] for c in columns]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(heads), line(["-" * w for w in widths])] + [line(r) for r in rows]
                     + ([note] if note else []))


# What must match for runs to be compared on one scale: (summary key, words for messages).
COMPARED = (("benchmark", "benchmark"), ("search_metric", "search metric"), ("test_metric", "test metric"))
BAND = "median over seeds; band: 25–75th percentile"


def _differing(results: list[SearchResult]) -> dict[str, list[str]]:
    """``{summary key: distinct values in run order}`` for the ``COMPARED`` keys that differ between runs."""
    out = {}
    for key, _ in COMPARED:
        values = list(dict.fromkeys(str(r.summary[key]) for r in results))
        if len(values) > 1:
            out[key] = values
    return out


def mismatch_warning(results: list[SearchResult]) -> str | None:
    """One line naming what differs (benchmark, search or test metric) between runs; ``None`` if nothing does.

    Refuses (``JnasError``) a mix of single- and multi-objective runs, which share no scale at all.
    """
    _kind(results)
    diff = _differing(results)
    if not diff:
        return None
    words = dict(COMPARED)
    parts = [f"{words[k]} ({', '.join(v)})" for k, v in diff.items()]
    return f"runs differ in {'; '.join(parts)}: their numbers are not on one scale"


def folder_labels(folders) -> list[str]:
    """Legend labels for result folders: their names, or the paths as given when two names clash."""
    names = [Path(f).name or str(f) for f in folders]
    return names if len(set(names)) == len(names) else [str(f) for f in folders]


def check_writable_plot(path: str | Path) -> Path:
    """Fail with one line unless a figure can be written to ``path``; returns it as a ``Path``.

    Checks the format (from the suffix), that no part of the path is an
    existing file, and that the file, or the nearest existing folder it would
    be created in, is writable. Creates nothing; call it before a long search.
    """
    from matplotlib.figure import Figure

    path = Path(path)
    try:
        if path.is_dir():
            raise JnasError(f"--plot: {str(path)!r} is a folder, expected a file such as {str(path / 'curves.png')!r}")
        formats = sorted(Figure().canvas.get_supported_filetypes())
        if path.suffix[1:].lower() not in formats:
            raise JnasError(f"--plot: {str(path)!r} does not end in an image suffix; expected one of "
                            f"{', '.join(formats)}")
        if path.exists():
            open(path, "ab").close()  # opening to append writes nothing
            return path
        folder = next(p for p in path.parents if p.exists())
        if not folder.is_dir():
            raise JnasError(f"--plot: {str(folder)!r} is a file, so {str(path)!r} cannot be created under it")
        try:
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as e:
            raise JnasError(f"--plot: cannot create files in {str(folder)!r} ({e.strerror or e}), "
                            f"so not {str(path)!r}") from None
    except OSError as e:
        raise JnasError(f"--plot: cannot write {str(path)!r} ({e.strerror or e})") from None
    return path


X_AXES = ("queries", "cost")


def default_x(results: list[SearchResult]) -> str:
    """``cost`` when a multi-fidelity run is among ``results`` (its queries are not full evaluations), else
    ``queries``."""
    return "cost" if any("queries" in r.summary for r in results) else "queries"


def x_values(results: list[SearchResult], x: str) -> list[np.ndarray]:
    """Per run, the x of each query: its number (``queries``) or the cumulative cost in full evaluations
    (``cost``: epochs over the top fidelity's); a one-line ``JnasError`` where a run records no cost or the
    runs' full evaluations differ."""
    if x not in X_AXES:
        raise JnasError(f"--x: got {x!r}, expected one of {', '.join(X_AXES)}")
    n = [r.trajectory["best_test"].shape[1] for r in results]
    if x == "queries":
        return [np.arange(1, k + 1, dtype=np.float64) for k in n]
    tops = []
    for r in results:
        if r.summary.get("max_fidelity") is None:
            raise JnasError(f"--x cost: run {r.summary['strategy']} on {r.summary['benchmark']} records no cost "
                            f"(its search metric {r.summary['search_metric']} has no fidelity in epochs)")
        tops.append(r.summary["max_fidelity"])
    if len(set(tops)) > 1:
        raise JnasError(f"--x cost: the runs' full evaluations differ ({', '.join(map(str, tops))} epochs); "
                        "their costs are not on one scale")
    out = []
    for r, k in zip(results, n):
        if "cost" in r.trajectory:  # multi-fidelity: the schedule is the same for every seed
            out.append(r.trajectory["cost"][0] / tops[0])
        else:
            out.append(np.arange(1, k + 1, dtype=np.float64))
    return out


def draw(results: list[SearchResult], ax, labels: list[str] | None = None, x: str | None = None) -> None:
    """Median best-so-far test value per query with interquartile bands, log x, onto matplotlib ``ax``.

    ``x``: ``queries`` or ``cost`` (cumulative epochs in full evaluations, which puts multi-fidelity runs
    beside single-fidelity ones; default ``default_x``). Axis and legend say what is drawn; a benchmark,
    search or test metric that differs between runs is named per run in the legend and in the title.
    """
    if not results:
        raise JnasError("plot: got no results, expected at least one")
    if labels is not None and len(labels) != len(results):
        raise JnasError(f"labels: got {len(labels)} for {len(results)} results, expected one per result")
    if _no_true_front(results):
        return draw_fronts(results, ax, labels)
    if _kind(results):
        return draw_regret(results, ax, labels)
    x = x or default_x(results)
    xs = x_values(results, x)
    diff = _differing(results)
    labels = list(labels or [r.summary["strategy"] for r in results])
    for i, r in enumerate(results):
        own = [str(r.summary[k]) for k in ("benchmark",) if k in diff]
        if "search_metric" in diff or "test_metric" in diff:
            own.append(f"{r.summary['test_metric']} of best-by-{r.summary['search_metric']}")
        if own:
            labels[i] += f" ({', '.join(own)})"
    for r, label, xr in zip(results, labels, xs):
        y = r.trajectory["best_test"]
        with warnings.catch_warnings():  # queries before any seed has a finite value are gaps, not noise
            warnings.simplefilter("ignore", RuntimeWarning)
            q1, median, q3 = np.nanpercentile(y, [25, 50, 75], axis=0)
        (ln,) = ax.plot(xr, median, label=label, drawstyle="steps-post")
        ax.fill_between(xr, q1, q3, color=ln.get_color(), alpha=0.2, linewidth=0, step="post")
    ax.set_xscale("log")
    if x == "cost":
        ax.set_xlabel(f"cost (full evaluations of {results[0].summary['max_fidelity']} epochs)")
    else:
        ax.set_xlabel("queries")
    s = results[0].summary
    test = "test metric (per run)" if "test_metric" in diff else s["test_metric"]
    search = "search metric (per run)" if "search_metric" in diff else s["search_metric"]
    unit = " (%)" if all("acc" in r.summary["test_metric"] for r in results) else ""
    ax.set_ylabel(f"{test} of best-by-{search} so far{unit}")
    title = ", ".join(dict.fromkeys(r.summary["benchmark"] for r in results))
    if diff:
        title += f"; runs differ in {' and '.join(w for k, w in COMPARED if k in diff)}"
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title=BAND)


def draw_regret(results: list[SearchResult], ax, labels: list[str] | None = None) -> None:
    """Multi-objective runs: median hypervolume regret per query with interquartile bands, log-log axes."""
    diff = _differing(results)
    if diff:
        raise JnasError(f"DIR: multi-objective runs differ in {', '.join(diff)}; their hypervolumes are not on "
                        "one scale")
    labels = list(labels or [r.summary["strategy"] for r in results])
    for r, label in zip(results, labels):
        y = r.trajectory["hv_regret"]
        x = np.arange(1, y.shape[1] + 1)
        q1, median, q3 = np.percentile(y, [25, 50, 75], axis=0)
        (ln,) = ax.plot(x, median, label=label)
        ax.fill_between(x, q1, q3, color=ln.get_color(), alpha=0.2, linewidth=0)
    s = results[0].summary
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("queries")
    ax.set_ylabel("hypervolume regret (normalised objectives)")
    ax.set_title(f"{s['benchmark']}: {' vs '.join(s['objectives'])}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title=BAND)


def draw_fronts(results: list[SearchResult], ax, labels: list[str] | None = None) -> None:
    """Multi-objective runs without a true front (training): every seed's final front of each run, first
    objective against the second (e.g. validation accuracy against memory), one colour per run."""
    diff = _differing(results)
    if "search_metric" in diff:
        raise JnasError(f"DIR: multi-objective runs differ in their objectives ({', '.join(diff['search_metric'])}); "
                        "their fronts are not on one plane")
    labels = list(labels or [r.summary["strategy"] for r in results])
    for r, label in zip(results, labels):
        color = None
        for seed, front in enumerate(r.fronts):
            pts = np.array([m["search"] for m in front], np.float64).reshape(-1, len(r.summary["objectives"]))
            pts = pts[np.argsort(pts[:, 0])] if len(pts) else pts
            n = len(r.fronts)
            name = (f"{label}: fronts of {n} seeds" if n > 1 else f"{label}: front") if seed == 0 else None
            (ln,) = ax.plot(pts[:, 0], pts[:, 1], "o-", ms=4, lw=0.8, alpha=0.8, color=color, label=name)
            color = ln.get_color()
    s = results[0].summary
    units = s.get("units") or [""] * len(s["objectives"])
    for set_label, j in ((ax.set_xlabel, 0), (ax.set_ylabel, 1)):
        unit = f", {units[j]}" if units[j] else ""
        set_label(f"{s['objectives'][j]} ({s['directions'][j]}{unit})")
    title = ", ".join(dict.fromkeys(r.summary["benchmark"] for r in results))
    ax.set_title(f"{title}: final fronts (no true front)")
    ax.grid(True, alpha=0.3)
    ax.legend()


def draw_front(result: SearchResult, ax, seed: int = 0, label: str | None = None) -> None:
    """Seed ``seed``'s final front (its search objectives) against the table's true front (first two objectives)."""
    from jnas.benchmarks import get_benchmark
    from jnas.runs.multiobjective import parse_objectives, table_front

    s = result.summary
    bench = get_benchmark(s["benchmark"])
    keys = parse_objectives(bench, s["objectives"], allow_test_metric=True)
    truth = table_front(bench, keys)
    signs = np.array([1.0 if d == "max" else -1.0 for d in s["directions"]])
    true_pts = truth["front"] * signs  # back to the metrics' own units
    order = np.argsort(true_pts[:, 0])
    ax.plot(true_pts[order, 0], true_pts[order, 1], "k.-", ms=3, lw=0.8, label="true front (table)")
    pts = np.array([m["search"] for m in result.fronts[seed]])
    if len(pts):
        ax.plot(pts[:, 0], pts[:, 1], "o", mfc="none", label=f"{label or s['strategy']}: seed {seed}'s front")
    ax.set_xlabel(s["objectives"][0])
    ax.set_ylabel(s["objectives"][1])
    ax.set_title(f"{s['benchmark']}: final front after {s['budget']} queries")
    ax.grid(True, alpha=0.3)
    ax.legend()


def plot(results: list[SearchResult], path: str | Path, labels: list[str] | None = None,
         x: str | None = None) -> Path:
    """``draw`` the runs (``x``: ``queries`` or ``cost``) and save the figure to ``path`` (format from its
    suffix); returns the path.

    Multi-objective runs: hypervolume-regret curves, and beside them the first run's seed-0 front
    against the true front; without a true front (training runs): the runs' final fronts (``draw_fronts``).
    """
    from matplotlib.figure import Figure

    path = check_writable_plot(path)
    if x is not None and x not in X_AXES:
        raise JnasError(f"--x: got {x!r}, expected one of {', '.join(X_AXES)}")
    if x == "cost" and _kind(results):
        raise JnasError("--x cost: multi-objective runs are drawn against queries")
    if x == "cost" or not _kind(results):
        x_values(results, x or default_x(results))  # refuse before drawing anything
    if _no_true_front(results):
        fig = Figure(figsize=(7, 4.5))
        draw_fronts(results, fig.subplots(), labels)
    elif _kind(results):
        fig = Figure(figsize=(12, 4.5))
        left, right = fig.subplots(1, 2)
        draw(results, left, labels)
        draw_front(results[0], right, label=None if labels is None else labels[0])
    else:
        fig = Figure(figsize=(7, 4.5))
        draw(results, fig.subplots(), labels, x)
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    except OSError as e:
        raise JnasError(f"--plot: cannot write {str(path)!r} ({e.strerror or e})") from None
    return path


def load_all(folders) -> list[SearchResult]:
    """Load several result folders."""
    return [load_result(f) for f in folders]
