"""NAS-Bench-201 tables: published facts, index mapping, metric metadata, jittable queries."""

import gzip
import os
import re
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark, nb201
from jnas.errors import JnasError
from jnas.spaces import get_space

BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def c10():
    return get_benchmark("nb201/cifar10")


def test_best_cifar10_test_accuracy_is_94_37_at_6111(c10):
    m = c10.metrics[("test_acc", 200)]
    assert m.optimum == pytest.approx(94.3733, abs=1e-3)
    assert m.optimum_row == 6111
    assert c10.official(np.array([m.optimum_row]))[0] == 6111


def test_known_strings_map_to_known_indices(c10):
    space = get_space("nb201")
    archs = jnp.stack([space.from_string(s) for s in (INDEX0, BEST_C10)])
    assert np.asarray(c10.rows(archs)).tolist() == [0, 6111]
    assert float(c10.query(archs[1:], "test_acc", 200)[0]) == pytest.approx(94.3733, abs=1e-3)


def test_every_space_index_maps_to_a_distinct_row(c10):
    space = get_space("nb201")
    rows = np.asarray(c10.rows(space.enumerate()))
    assert sorted(rows.tolist()) == list(range(15625))


def test_published_optima_of_other_datasets():
    assert get_benchmark("nb201/cifar100").metrics[("test_acc", 200)].optimum == pytest.approx(73.5133, abs=1e-3)
    assert get_benchmark("nb201/imagenet16-120").metrics[("test_acc", 200)].optimum == pytest.approx(47.3111, abs=1e-3)


def test_search_defaults_never_use_test_data():
    assert get_benchmark("nb201/cifar10").search_metric == ("valid_acc", 200)
    assert get_benchmark("nb201/cifar100").search_metric == ("valid_acc", 12)
    assert get_benchmark("nb201/imagenet16-120").search_metric == ("valid_acc", 12)


def test_coverage_and_missing_values_are_nan():
    c100 = get_benchmark("nb201/cifar100")
    assert c100.metrics[("valid_acc", 200)].coverage in (725, 1104)  # reference table / older fetch (see below)
    assert c100.metrics[("valid_acc", 12)].coverage == 15625
    c10 = get_benchmark("nb201/cifar10")
    # upstream's -1 "not measured" sentinel becomes NaN: 4,699 cells
    assert c10.metrics[("edgetpu_latency", None)].coverage == 15625 - 4699
    assert c10.metrics[("params", None)].coverage == 9445
    assert not c10.metrics[("edgegpu_latency", None)].higher_is_better
    lat = c10.column("edgegpu_latency")
    assert lat[0] == pytest.approx(5.807418537, rel=1e-6)  # HW-NAS-Bench README example


def test_query_is_jittable_and_vmappable(c10):
    space = get_space("nb201")
    archs = space.sample_batch(jax.random.key(0), 64)
    eager = c10.query(archs, "valid_acc", 200)
    jitted = jax.jit(lambda a: c10.query(a, "valid_acc", 200))(archs)
    per_arch = jax.vmap(lambda a: c10.query(a[None], "valid_acc", 200)[0])(archs)
    np.testing.assert_array_equal(eager, jitted)
    np.testing.assert_array_equal(eager, per_arch)
    col = c10.column("valid_acc", 200)
    np.testing.assert_allclose(eager, col[np.asarray(c10.rows(archs))], rtol=1e-6)


def test_unknown_metric_and_fidelity_give_clear_errors(c10):
    with pytest.raises(JnasError, match="metric: got 'acc'"):
        c10.resolve("acc")
    with pytest.raises(JnasError, match="fidelity: got 50"):
        c10.resolve("test_acc", 50)


def test_missing_data_file_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("JNAS_DATA_DIR", str(tmp_path))
    with pytest.raises(JnasError, match="jnas data fetch nb201"):
        nb201.load("cifar10")


def test_sparse_validation_columns_hold_for_the_reference_and_a_fetched_table():
    # cifar100 / imagenet16-120 valid_acc@200 are unions of sample files: the reference
    # table has 1,104 / 9,858 values; a fetch that skipped NASLib @22280f71 had 725 / 9,722
    # (see jnas.benchmarks.nb201). Whatever the table, the values are accuracies in percent.
    for name, coverages in (("nb201/cifar100", (725, 1104)), ("nb201/imagenet16-120", (9722, 9858))):
        b = get_benchmark(name)
        assert b.metrics[("valid_acc", 200)].coverage in coverages, name
        v = b.column("valid_acc", 200)
        v = v[np.isfinite(v)]
        assert 0 < v.min() and v.max() <= 100, name


# ----- damaged tables: one-line errors naming the file ------------------------------------------------
SHARED = Path(os.environ["JNAS_DATA_DIR"])


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A writable JNAS_DATA_DIR holding copies of the three NB201 tables."""
    for name in (nb201.ACCURACIES, nb201.HARDWARE, nb201.COSTS):
        shutil.copyfile(SHARED / name, tmp_path / name)
    monkeypatch.setenv("JNAS_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", [nb201.ACCURACIES, nb201.HARDWARE, nb201.COSTS])
def test_truncated_table_names_the_file(data_copy, name):
    path = data_copy / name
    path.write_bytes(path.read_bytes()[:5000])  # an interrupted copy
    with pytest.raises(JnasError) as e:
        nb201.load("cifar10")
    msg = str(e.value)
    assert msg.startswith(f"{path}: cannot read it (Compressed file ended before the end-of-stream marker")
    assert "the file is damaged or incomplete; replace it: " in msg and "\n" not in msg


def _rewrite(path: Path, edit) -> None:
    """Apply ``edit`` to the CSV lines of gzip table ``path``."""
    with gzip.open(path, "rt") as f:
        lines = f.read().splitlines()
    edit(lines)
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


def _set_cell(lines, line_no, column, value):
    header = lines[0].split(",")
    cells = lines[line_no - 1].split(",")
    cells[header.index(column)] = value
    lines[line_no - 1] = ",".join(cells)


@pytest.mark.parametrize("name, column", [
    (nb201.ACCURACIES, "cifar10_test_acc_200ep"),
    (nb201.HARDWARE, "edgegpu_latency"),
    (nb201.COSTS, "params"),
])
def test_non_numeric_cell_names_file_column_and_line(data_copy, name, column):
    _rewrite(data_copy / name, lambda lines: _set_cell(lines, 3, column, "9O.5"))
    with pytest.raises(JnasError) as e:
        nb201.load("cifar10")
    assert str(e.value) == f"{data_copy / name}: column {column!r}, line 3: '9O.5' is not a number"


def test_hw_table_without_a_dataset_is_an_error_not_nan(data_copy):
    # It used to give NaN for every hardware metric of cifar100 without a word.
    _rewrite(data_copy / nb201.HARDWARE, lambda lines: lines.__setitem__(slice(1, None), [
        ln for ln in lines[1:] if ",cifar100," not in ln]))
    with pytest.raises(JnasError) as e:
        nb201.load("cifar100")
    assert str(e.value) == (f"{data_copy / nb201.HARDWARE}: rows of dataset 'cifar100' must hold each of the 15625 "
                            "architectures once by arch_index; got 0 rows")


def test_duplicate_cost_rows_are_an_error(data_copy):
    _rewrite(data_copy / nb201.COSTS, lambda lines: lines.insert(2, lines[1]))
    with pytest.raises(JnasError) as e:
        nb201.load("imagenet16-120")
    assert str(e.value) == (f"{data_copy / nb201.COSTS}: rows of dataset 'ImageNet16-120' must hold some of the "
                            "architectures 0..15624, once by arch_index; got 9446 rows")


def test_rows_of_another_architecture_are_an_error(data_copy):
    def swap(lines):  # exchange the arch_str of the first two cost rows (ImageNet16-120)
        a, b = lines[1].split(","), lines[2].split(",")
        a[1], b[1] = b[1], a[1]
        lines[1], lines[2] = ",".join(a), ",".join(b)

    _rewrite(data_copy / nb201.COSTS, swap)
    with pytest.raises(JnasError, match=re.escape(
            f"{data_copy / nb201.COSTS}: arch_index 0 (ImageNet16-120) has arch_str '|nor_conv_3x3~0|")):
        nb201.load("imagenet16-120")


# ----- the cost table is optional: what `jnas data fetch nb201` leaves is enough ---------------------
def _no_costs_message(metric, folder):
    return (
        f"metric: {metric!r} of nb201/cifar10 needs the optional data file 'nb201_zero_cost_proxies.csv.gz' "
        f"(NAS-Bench-Suite-Zero params and FLOPs), which is not in {folder}; copy it into the data folder from a "
        "machine that has it (`jnas data fetch nb201` does not rebuild it), or set JNAS_DATA_DIR to a folder holding it"
    )


@pytest.fixture
def fetched_only(tmp_path, monkeypatch):
    """A JNAS_DATA_DIR as `jnas data fetch nb201` leaves it: links to the accuracy and hardware tables only."""
    for name in (nb201.ACCURACIES, nb201.HARDWARE):
        (tmp_path / name).symlink_to((SHARED / name).resolve())
    monkeypatch.setenv("JNAS_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def fresh_cache():
    """``get_benchmark``'s per-process cache, emptied before and after (it must not keep a tmp folder's tables)."""
    get_benchmark.cache_clear()
    yield
    get_benchmark.cache_clear()


def test_loads_without_the_cost_table_with_every_other_metric(c10, fetched_only):
    # It used to refuse to load at all: no command can fetch the cost table.
    b = nb201.load("cifar10")
    assert set(b.metrics) == set(c10.metrics) - {("params", None), ("flops", None)}
    for key in b.metrics:
        np.testing.assert_array_equal(b.column(*key), c10.column(*key), err_msg=str(key))
        assert b.metrics[key] == c10.metrics[key]
    assert b.search_metric == ("valid_acc", 200) and b.resolve() == ("valid_acc", 200)
    archs = jnp.stack([get_space("nb201").from_string(s) for s in (INDEX0, BEST_C10)])
    np.testing.assert_array_equal(b.query(archs), c10.query(archs))
    assert b.test_value(archs[1]) == pytest.approx(94.3733, abs=1e-3)
    assert "params" not in b.evaluate(archs[1]) and "edgegpu_latency" in b.evaluate(archs[1])
    assert [m["name"] for m in b.describe()["metrics"]] == [m for m, _ in b.metrics]


@pytest.mark.parametrize("metric", ["params", "flops"])
def test_cost_metric_without_the_cost_table_names_the_file_and_folder(fetched_only, metric):
    b = nb201.load("cifar10")
    for ask in (lambda: b.resolve(metric), lambda: b.resolve(metric, 200), lambda: b.column(metric),
                lambda: b.query(b.space.enumerate()[:2], metric)):
        with pytest.raises(JnasError) as e:
            ask()
        assert str(e.value) == _no_costs_message(metric, fetched_only)
    with pytest.raises(JnasError, match="metric: got 'acc' for nb201/cifar10, expected one of edgegpu_energy, "):
        b.resolve("acc")  # other unknown metrics keep the list of choices


def test_cli_search_without_the_cost_table(fetched_only, fresh_cache, tmp_path, capsys):
    from jnas.cli import main

    out = tmp_path / "runs"
    args = ["search", "--benchmark", "nb201/cifar10", "--strategy", "rs", "--budget", "3", "--no-progress"]
    assert main([*args, "--out", str(out / "default")]) == 0  # the search metric needs no cost table
    assert (out / "default" / "summary.json").is_file()
    capsys.readouterr()
    assert main([*args, "--out", str(out / "params"), "--metric", "params"]) == 2
    assert capsys.readouterr().err == f"jnas: error: {_no_costs_message('params', fetched_only)}\n"
    assert not (out / "params").exists()


def test_damaged_cost_table_is_still_an_error(fetched_only):
    path = fetched_only / nb201.COSTS
    path.write_bytes((SHARED / nb201.COSTS).read_bytes()[:5000])  # present but truncated: never silently dropped
    with pytest.raises(JnasError) as e:
        nb201.load("cifar10")
    assert str(e.value).startswith(f"{path}: cannot read it (Compressed file ended before the end-of-stream marker")
    assert "\n" not in str(e.value)
    path.unlink()
    path.symlink_to(fetched_only / "gone.csv.gz")  # a dangling link is there too, not absent
    with pytest.raises(JnasError, match=re.escape(f"benchmark data file {nb201.COSTS!r} not found in {fetched_only}")):
        nb201.load("cifar10")


@pytest.mark.parametrize("name", [nb201.ACCURACIES, nb201.HARDWARE])
def test_missing_accuracy_or_hardware_table_is_still_an_error(fetched_only, name):
    (fetched_only / nb201.COSTS).symlink_to((SHARED / nb201.COSTS).resolve())
    (fetched_only / name).unlink()
    with pytest.raises(JnasError) as e:
        nb201.load("cifar10")
    assert str(e.value) == (f"benchmark data file {name!r} not found in {fetched_only} (set JNAS_DATA_DIR to the "
                            "folder holding it, or run `jnas data fetch nb201`)")


# ----- the reduced-op view (nb201-3) ---------------------------------------------------------


@pytest.mark.parametrize("dataset", ["cifar10", "imagenet16-120"])
def test_reduced_op_view_is_the_nb201_rows_of_its_cells(dataset):
    full, view = get_benchmark(f"nb201/{dataset}"), get_benchmark(f"nb201-3/{dataset}")
    sub = get_space("nb201-3")
    assert view.space is sub and view.n_rows == sub.size == 729 and view.name == f"nb201-3/{dataset}"
    cells = sub.enumerate()
    rows = np.asarray(full.rows(sub.to_nb201(cells)))
    assert len(np.unique(rows)) == 729
    np.testing.assert_array_equal(np.asarray(view.rows(cells)), np.arange(729))  # rows: the space's own index
    np.testing.assert_array_equal(view.official(np.arange(729)), full.official(rows))
    assert set(view.metrics) == set(full.metrics)
    assert (view.search_metric, view.test_metric) == (full.search_metric, full.test_metric)
    for key, info in view.metrics.items():
        col = full.column(*key)[rows]
        np.testing.assert_array_equal(view.column(*key), col, err_msg=str(key))
        assert info.coverage == int(np.isfinite(col).sum())
        assert (info.description, info.unit, info.higher_is_better) == (
            full.metrics[key].description, full.metrics[key].unit, full.metrics[key].higher_is_better)
    best = view.metrics[("test_acc", 200)]
    assert best.optimum == np.nanmax(full.column("test_acc", 200)[rows]) < full.metrics[("test_acc", 200)].optimum
    arch = cells[best.optimum_row]
    assert view.index_of(arch) == full.index_of(sub.to_nb201(arch))
    assert view.test_value(arch) == best.optimum
    np.testing.assert_array_equal(np.asarray(view.query(cells[:40])), np.asarray(full.query(sub.to_nb201(cells[:40]))))


def test_reduced_op_view_rejects_cells_outside_it():
    view = get_benchmark("nb201-3/cifar10")
    assert int(view.rows(jnp.array([[0, 0, 0, 0, 0, 3]], jnp.int8))[0]) == -1  # id 3 is not an nb201-3 op
    with pytest.raises(JnasError, match="^dataset: got 'cifar1000'"):
        nb201.load_subspace("cifar1000")
    with pytest.raises(JnasError, match="^space: got 'nbgraph'"):
        nb201.load_subspace("cifar10", "nbgraph")


def test_reduced_op_view_without_the_cost_table_names_it(fetched_only, fresh_cache):
    view = get_benchmark("nb201-3/cifar10")
    assert ("params", None) not in view.metrics
    with pytest.raises(JnasError, match=r"^metric: 'params' of nb201-3/cifar10 needs the optional data file"):
        view.resolve("params")
