"""Comparing result folders: a table and mean best-so-far curves with IQR bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jnas.runs.results import SearchResult, load_result

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


def table(results: list[SearchResult]) -> str:
    """A fixed-width text table of the summaries (mean ± standard error)."""
    rows = []
    for r in results:
        s = r.summary
        row = []
        for head, key, fmt in COLUMNS:
            if head == "test acc %":
                row.append(f"{s['final_test_mean']:.2f} ± {s['final_test_se']:.2f}")
            elif head == "regret pp":
                row.append(f"{s['final_regret_mean']:.3f} ± {s['final_regret_se']:.3f}")
            else:
                row.append(fmt.format(s[key]))
        rows.append(row)
    heads = [c[0] for c in COLUMNS]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(heads), line(["-" * w for w in widths])] + [line(r) for r in rows])


def plot(results: list[SearchResult], path: str | Path, labels: list[str] | None = None) -> Path:
    """Mean best-so-far test accuracy per query with interquartile bands, log x; saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or [f"{r.summary['strategy']} ({r.summary['benchmark']})" for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r, label in zip(results, labels):
        y = r.trajectory["best_test"]
        x = np.arange(1, y.shape[1] + 1)
        mean = np.nanmean(y, axis=0)
        q1, q3 = np.nanpercentile(y, [25, 75], axis=0)
        (ln,) = ax.plot(x, mean, label=label)
        ax.fill_between(x, q1, q3, color=ln.get_color(), alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("queries")
    s = results[0].summary
    ax.set_ylabel(f"test accuracy of best-by-{s['search_metric']} (%)")
    ax.set_title(", ".join(sorted({r.summary["benchmark"] for r in results})))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def load_all(folders) -> list[SearchResult]:
    """Load several result folders."""
    return [load_result(f) for f in folders]
