"""NAS-Bench-201 tables: published facts, index mapping, metric metadata, jittable queries."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
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
    assert c100.metrics[("valid_acc", 200)].coverage == 1104
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
    from jnas.benchmarks import nb201

    monkeypatch.setenv("JNAS_DATA_DIR", str(tmp_path))
    with pytest.raises(JnasError, match="jnas data fetch nb201"):
        nb201.load("cifar10")
