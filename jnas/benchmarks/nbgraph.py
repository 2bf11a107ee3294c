"""NAS-Bench-Graph tabular benchmarks (``nbgraph/<dataset>``).

Values come from the pinned ``nas-bench-graph`` package's light tables
(``nas_bench_graph/light/<dataset>.bench``: a pickle of ``key -> {'valid_perf',
'perf', 'latency', 'para'}``). They ship with the package, so no download or
``JNAS_DATA_DIR`` is involved. Rows follow the space's canonical order
(ascending key); ``official`` maps rows back to the package's keys.

Metrics (no fidelity):

* ``valid_acc`` / ``test_acc``: validation / test performance in percent
  (accuracy; ROC-AUC for ``proteins``).
* ``latency``: inference latency in seconds (lower is better).
* ``params``: trainable parameters in millions (lower is better).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.resources
import pickle

import numpy as np

from jnas.benchmarks.base import TabularBenchmark
from jnas.errors import JnasError
from jnas.spaces.nbgraph import NBGRAPH, NBGRAPH_PROTEINS

DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv", "proteins")
PACKAGE, PACKAGE_VERSION = "nas-bench-graph", "1.4.0"
#: our column -> (upstream field, scale)
_FIELDS = {
    "valid_acc": ("valid_perf", 100.0),
    "test_acc": ("perf", 100.0),
    "latency": ("latency", 1.0),
    "params": ("para", 1.0),
}


def read_table(dataset: str) -> dict:
    """The package's raw light table of ``dataset`` (``key -> dict``), unpickled."""
    if dataset not in DATASETS:
        raise JnasError(f"dataset: got {dataset!r}, expected one of {', '.join(DATASETS)}")
    try:
        path = importlib.resources.files("nas_bench_graph") / "light" / f"{dataset}.bench"
        # A trusted file from a pinned dependency, not user input.
        return pickle.loads(path.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise JnasError(f"dataset: {dataset!r} needs the package {PACKAGE}=={PACKAGE_VERSION} ({e})") from None


@dataclasses.dataclass(frozen=True)
class PackageStatus:
    """Where the installed package keeps its tables (``jnas data status``).

    version: installed version, or ``None``; folder: its ``light`` folder, or ``None``;
    found / missing: datasets whose table file is / is not there; problem: what is wrong, in words.
    """

    version: str | None
    folder: str | None
    found: tuple[str, ...]
    missing: tuple[str, ...]
    problem: str = ""


def package_status() -> PackageStatus:
    """Which NAS-Bench-Graph tables the installed package ships (reads no table)."""
    try:
        version = importlib.metadata.version(PACKAGE)
        folder = importlib.resources.files("nas_bench_graph") / "light"
    except (ModuleNotFoundError, importlib.metadata.PackageNotFoundError):
        return PackageStatus(None, None, (), DATASETS, f"package {PACKAGE} is not installed")
    found = tuple(d for d in DATASETS if (folder / f"{d}.bench").is_file())
    missing = tuple(d for d in DATASETS if d not in found)
    problem = f"package {PACKAGE} {version} lacks the tables of {', '.join(missing)}" if missing else ""
    return PackageStatus(version, str(folder), found, missing, problem)


def load(dataset: str) -> TabularBenchmark:
    """The NAS-Bench-Graph benchmark on ``dataset`` (one of ``DATASETS``)."""
    table = read_table(dataset)
    space = NBGRAPH_PROTEINS if dataset == "proteins" else NBGRAPH
    keys = space.keys
    if len(table) != len(keys) or not all(int(k) in table for k in keys):
        raise JnasError(f"dataset: {dataset!r} table keys do not match the {space.name} space ({len(table)} keys)")
    records = [table[int(k)] for k in keys]
    columns = {
        (name, None): np.fromiter((r[field] for r in records), np.float64, len(records)) * scale
        for name, (field, scale) in _FIELDS.items()
    }
    perf = "ROC-AUC" if dataset == "proteins" else "accuracy"
    descriptions = {
        "valid_acc": (f"validation {perf}", "%", True),
        "test_acc": (f"test {perf}", "%", True),
        "latency": ("inference latency", "s", False),
        "params": ("trainable parameters", "M", False),
    }
    return TabularBenchmark(
        name=f"nbgraph/{dataset}",
        space=space,
        columns=columns,
        descriptions=descriptions,
        row_of=space.index,
        search_metric=("valid_acc", None),
        test_metric=("test_acc", None),
        official_index=keys,
    )
