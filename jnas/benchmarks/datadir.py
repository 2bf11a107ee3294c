"""Where benchmark tables live: ``$JNAS_DATA_DIR``, else a per-user cache folder.

:data:`FILES` lists every file jnas reads from that folder, with what it is
for and how to get it; :func:`status_lines` reports them (``jnas data status``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jnas.errors import JnasError
from jnas.paths import data_dir, data_dir_and_origin


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One file jnas reads from the data folder.

    name: file name inside the data folder.
    what: what it holds and what uses it.
    get: how to obtain it: a shell command when ``command`` is true, else words.
    optional: jnas works without it (only what ``what`` names needs it); not counted as missing.
    """

    name: str
    what: str
    get: str
    command: bool = True
    optional: bool = False


NB201_FETCH = "jnas data fetch nb201"
FILES: tuple[DataFile, ...] = (
    DataFile("nb201_accuracies.csv.gz", "NAS-Bench-201 accuracies (nb201/*)", NB201_FETCH),
    DataFile("nb201_hw_nas_bench.csv.gz", "HW-NAS-Bench latency and energy (nb201/*)", NB201_FETCH),
    DataFile(
        "nb201_zero_cost_proxies.csv.gz",
        "NAS-Bench-Suite-Zero params and FLOPs (nb201/*; optional, needed only for the params/flops metrics)",
        "copy it into the data folder from a machine that has it (`jnas data fetch nb201` does not rebuild it)",
        command=False, optional=True,
    ),
    DataFile(
        "cifar10_subset.npz", "CIFAR-10 subset (jnas train --data cifar10_subset)",
        "copy it into the data folder from a machine that has it, or train on full CIFAR-10: "
        "`jnas data prepare cifar10` (needs internet and jnas[prepare]), then --data cifar10",
        command=False,
    ),
)
_BY_NAME = {f.name: f for f in FILES}


def how_to_get(name: str, hint: str | None = None) -> str:
    """Advice, in words, for obtaining data file ``name`` (``hint``: a command that does it)."""
    if hint is not None:
        return f"run `{hint}`"
    known = _BY_NAME.get(name)
    if known is None:
        return "copy it there"
    return f"run `{known.get}`" if known.command else known.get


def data_file(name: str, fetch_hint: str | None = None) -> Path:
    """Path of data file ``name``; a clear ``JnasError`` if it is missing.

    ``fetch_hint`` is the command that obtains it, e.g. ``"jnas data fetch nb201"``;
    by default the advice of its :data:`FILES` entry.
    """
    path = data_dir() / name
    if not path.is_file():
        raise JnasError(
            f"benchmark data file {name!r} not found in {path.parent} "
            f"(set JNAS_DATA_DIR to the folder holding it, or {how_to_get(name, fetch_hint)})"
        )
    return path


def status_lines() -> tuple[list[str], int]:
    """The report of ``jnas data status`` as lines, and the number of missing items (optional files not counted)."""
    from jnas.benchmarks import nbgraph

    folder, origin = data_dir_and_origin()
    state = "" if folder.is_dir() else (", not a folder" if folder.exists() else ", does not exist yet")
    lines = [f"data folder: {folder} ({origin}{state})"]
    missing: dict[str, list[str]] = {}  # advice -> file names
    n_optional = 0
    width = max(len(f.name) for f in FILES)
    for f in FILES:
        path = folder / f.name
        if path.is_file():
            lines.append(f"found    {f.name:<{width}}  {f.what}: {path} ({path.stat().st_size:,} bytes)")
        else:
            lines.append(f"missing  {f.name:<{width}}  {f.what}")
            missing.setdefault(f"run `{f.get}`" if f.command else f.get, []).append(
                f"{f.name} (optional)" if f.optional else f.name
            )
            n_optional += f.optional
    graph = nbgraph.package_status()
    what = f"{'nas-bench-graph':<{width}}  NAS-Bench-Graph tables (nbgraph/*)"
    if graph.missing:
        lines.append(f"missing  {what}: {graph.problem}")
        missing.setdefault(f"run `pip install {nbgraph.PACKAGE}=={nbgraph.PACKAGE_VERSION}`", []).append(
            "NAS-Bench-Graph"
        )
    else:
        other = "" if graph.version == nbgraph.PACKAGE_VERSION else f"; jnas is tested with {nbgraph.PACKAGE_VERSION}"
        lines.append(f"found    {what}: {len(graph.found)} datasets in {graph.folder} (package {graph.version}{other})")
    lines.append("")
    lines += [f"to get {', '.join(names)}: {how}" for how, names in missing.items()] or ["nothing missing"]
    return lines, sum(len(v) for v in missing.values()) - n_optional
