"""The NAS-Bench-201 network: shapes, cell semantics, errors, and the published params / FLOPs."""

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import nnx
from helpers import apply_jit as _apply
from helpers import real_weights as _real

from jnas.benchmarks.datadir import data_file
from jnas.errors import JnasError
from jnas.models import build_network, cost, nb201, ops
from jnas.spaces.nb201 import NB201, OPS

NONE, SKIP, CONV1, CONV3, POOL = range(5)
#: dataset -> (classes, input shape) as in NAS-Bench-201
DATASETS = {"cifar10": (10, (32, 32, 3)), "cifar100": (100, (32, 32, 3)), "ImageNet16-120": (120, (16, 16, 3))}


def _images(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _small(arch, num_classes=10):
    """A narrow, shallow NB201 network with real weights (eval mode)."""
    m = _real(
        lambda: nb201.build(np.asarray(arch), num_classes=num_classes, rngs=nnx.Rngs(0), channels=4, cells_per_stage=1)
    )
    m.eval()
    return m


# ----- shapes and semantics ---------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["cifar10", "ImageNet16-120"])
def test_forward_of_a_small_network(dataset):
    classes, shape = DATASETS[dataset]
    arch = np.array([CONV3, SKIP, POOL, CONV1, NONE, CONV3], np.int8)
    logits = _apply(_small(arch, classes), _images((2, *shape)))
    assert logits.shape == (2, classes) and bool(jnp.all(jnp.isfinite(logits)))
    assert not np.allclose(logits[0], logits[1], atol=1e-4)  # depends on the image


def test_full_size_network_shapes():
    arch = jnp.asarray([CONV3, SKIP, POOL, CONV1, NONE, CONV3], jnp.int8)  # device arrays work too
    full = nnx.eval_shape(lambda: nb201.build(arch, num_classes=100, rngs=nnx.Rngs(0)))
    assert len(full.layers) == 3 * 5 + 2
    assert isinstance(full.layers[5], ops.ResidualReduction) and isinstance(full.layers[11], ops.ResidualReduction)
    widths = [layer.edges[3].conv.in_features for layer in full.layers if isinstance(layer, nb201.Cell)]
    assert widths == [16] * 5 + [32] * 5 + [64] * 5
    graphdef, state = nnx.split(full)
    for shape in [(32, 32, 3), (16, 16, 3)]:
        x = jax.ShapeDtypeStruct((3, *shape), jnp.float32)
        out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, x)
        assert out.shape == (3, 100)


def test_registry_builds_nb201():
    arch = NB201.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    m = nnx.eval_shape(lambda: build_network("nb201", arch, num_classes=10, rngs=nnx.Rngs(0)))
    assert isinstance(m, nb201.NB201Network)
    assert cost.count_params(m) == 809_576 - 120 * 64 - 120 + 64 * 10 + 10  # the table's IN16-120 row, 10 classes


def _cell(arch, c=3):
    cell = _real(lambda: nb201.Cell(np.asarray(arch), c, rngs=nnx.Rngs(0)))
    cell.eval()
    return cell


def test_cell_sums_incoming_edges():
    x = _images((2, 6, 6, 3))
    # all skips: n1 = x, n2 = x + n1, n3 = x + n1 + n2 = 4x
    np.testing.assert_allclose(_apply(_cell([SKIP] * 6), x), 4 * x, rtol=1e-6)
    # only edge 0->3: the cell is that op
    np.testing.assert_allclose(_apply(_cell([NONE, NONE, NONE, SKIP, NONE, NONE]), x), x)
    pooled = _apply(ops.Pool("avg"), x)
    np.testing.assert_allclose(_apply(_cell([NONE, NONE, NONE, POOL, NONE, NONE]), x), pooled, rtol=1e-6)
    # a path 0->1->3 through a conv: n3 = conv(x)
    cell = _cell([CONV1, NONE, NONE, NONE, SKIP, NONE])
    graphdef, state = nnx.split(cell)
    direct = jax.jit(lambda s, x: nnx.merge(graphdef, s).edges[0](x))(state, x)
    np.testing.assert_allclose(_apply(cell, x), direct, rtol=1e-5, atol=1e-6)
    # nothing reaches node 3: zeros
    assert not np.any(np.asarray(_apply(_cell([CONV3, SKIP, CONV1, NONE, NONE, NONE]), x)))
    # edge modules follow the op ids
    kinds = [
        type(e) for e in nnx.eval_shape(lambda: nb201.Cell(np.arange(5).tolist() + [3], 4, rngs=nnx.Rngs(0))).edges
    ]
    assert kinds == [ops.Zero, ops.Identity, ops.ReLUConvBN, ops.ReLUConvBN, ops.Pool, ops.ReLUConvBN]


def test_disconnected_cell_makes_the_output_input_independent():
    x1, x2 = _images((2, 16, 16, 3), 1), _images((2, 16, 16, 3), 2)
    dead = _small([CONV3, CONV3, CONV3, NONE, NONE, NONE])
    y = _apply(dead, jnp.concatenate([x1, x2]))
    np.testing.assert_allclose(y[:2], y[2:], rtol=1e-5, atol=1e-6)
    # (test_forward_shapes checks that a connected cell's logits do depend on the image)


def test_mode_switch_reaches_every_batchnorm():
    m = nnx.eval_shape(lambda: nb201.build(np.full(6, CONV3), num_classes=10, rngs=nnx.Rngs(0), cells_per_stage=1))
    bns = [mod for _, mod in nnx.iter_graph(m) if isinstance(mod, nnx.BatchNorm)]
    assert len(bns) == 1 + 2 * 2 + 3 * 6 + 1  # stem, 2 reductions x 2, 3 cells x 6 convs, head
    m.eval()
    assert all(bn.use_running_average for bn in bns)
    m.train()
    assert not any(bn.use_running_average for bn in bns)


@pytest.mark.parametrize(
    "bad",
    [[5, 0, 0, 0, 0, 0], [-1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0], np.zeros((2, 6), np.int8), np.zeros(6, np.float32), "x"],
)
def test_invalid_arch_is_a_clear_error(bad):
    with pytest.raises(JnasError, match="^arch: "):
        nb201.build(bad, num_classes=10, rngs=nnx.Rngs(0))


def test_invalid_options_are_clear_errors():
    arch = np.zeros(6, np.int8)
    for kwargs, name in [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 10, "channels": "16"}, "channels"),
        ({"num_classes": 10, "cells_per_stage": 0}, "cells_per_stage"),
    ]:
        with pytest.raises(JnasError, match=f"^{name}: "):
            nb201.build(arch, rngs=nnx.Rngs(0), **kwargs)
    with pytest.raises(JnasError, match="^archs: "):
        nb201.params_and_flops(np.array([[0, 0, 0, 0, 0, 7]]), num_classes=10)
    with pytest.raises(JnasError, match="^input_shape: "):
        nb201.op_costs(num_classes=10, input_shape=(30, 30, 3))


def test_activation_bytes_positive_and_growing_with_channels():
    arch = np.array([CONV3, SKIP, POOL, CONV1, NONE, CONV3])
    sizes = [
        cost.activation_bytes_per_image(
            nnx.eval_shape(
                lambda c=c: nb201.build(arch, num_classes=10, rngs=nnx.Rngs(0), channels=c, cells_per_stage=1)
            )
        )
        for c in (4, 8)
    ]
    assert 0 < sizes[0] < sizes[1]


# ----- published parameters and FLOPs (NAS-Bench-Suite-Zero table) -----------------------------------
@pytest.fixture(scope="module")
def table():
    path = data_file("nb201_zero_cost_proxies.csv.gz")
    with gzip.open(path, "rt") as f:
        df = pd.read_csv(f, usecols=["arch_str", "dataset", "flops", "params"])
    index = {name: k for k, name in enumerate(OPS)}
    archs = np.array(
        [[index[t.split("~")[0]] for t in s.replace("+", "|").split("|") if t] for s in df.arch_str], np.int8
    )
    for s, a in zip(df.arch_str[:20], archs[:20]):  # the quick parse agrees with the space's
        np.testing.assert_array_equal(np.asarray(NB201.from_string(s)), a)
    return df, archs


def _torchstat_difference(num_classes, input_shape, channels=64):
    """Our FLOPs minus the table's counter's, for any NB201 network (see jnas.models.cost).

    torchstat leaves out the classifier bias and counts AdaptiveAvgPool2d(1) on
    an h x w map as C (h+1)(w+1) where we count C h w.
    """
    h, w = input_shape[0] // 4, input_shape[1] // 4
    return num_classes - channels * ((h + 1) * (w + 1) - h * w)


def test_decomposition_equals_cost_of_built_networks(table):
    df, archs = table
    rows = {"cifar10": [0, 3], "ImageNet16-120": [1], "cifar100": [0]}
    for dataset, picks in rows.items():
        classes, shape = DATASETS[dataset]
        sub = np.flatnonzero(df.dataset.values == dataset)[picks]
        params, flops = nb201.params_and_flops(archs[sub], num_classes=classes, input_shape=shape)
        for i, p, f in zip(sub, params, flops):
            net = nnx.eval_shape(lambda a=archs[i], k=classes: nb201.build(a, num_classes=k, rngs=nnx.Rngs(0)))
            assert (cost.count_params(net), cost.flops_per_image(net, shape)) == (p, f), (dataset, df.arch_str[i])


def test_every_table_row_matches(table):
    df, archs = table
    report = {}
    for dataset, (classes, shape) in DATASETS.items():
        rows = df.dataset.values == dataset
        params, flops = nb201.params_and_flops(archs[rows], num_classes=classes, input_shape=shape)
        params_ok = np.round(params / 1e6, 6) == df.params.values[rows]
        rel = np.abs(flops / 1e6 - df.flops.values[rows]) / df.flops.values[rows]
        # exact once the two documented differences of the reference counter are taken out
        exact = np.abs(flops - _torchstat_difference(classes, shape) - df.flops.values[rows] * 1e6) < 0.5
        report[dataset] = (int(rows.sum()), int(params_ok.sum()), int((rel < 0.01).sum()), int(exact.sum()))
        assert params_ok.all(), dataset
        assert rel.max() < 3e-4, dataset
        assert exact.all(), dataset
    assert report == {
        "cifar10": (9445, 9445, 9445, 9445),
        "cifar100": (725, 725, 725, 725),
        "ImageNet16-120": (9445, 9445, 9445, 9445),
    }
    print(f"\nNB201 table rows (n, params exact, FLOPs within 1%, FLOPs exact): {report}")


@pytest.mark.slow
def test_real_networks_match_the_table(table):
    """Full-size networks with drawn weights (slow on CPU): counts equal the table, forward is finite."""
    df, archs = table
    for dataset, picks in {"cifar10": [0, 2], "ImageNet16-120": [1]}.items():
        classes, shape = DATASETS[dataset]
        for i in np.flatnonzero(df.dataset.values == dataset)[picks]:
            net = nb201.build(archs[i], num_classes=classes, rngs=nnx.Rngs(0))
            assert round(cost.count_params(net) / 1e6, 6) == df.params[i]
            expected = df.flops[i] * 1e6 + _torchstat_difference(classes, shape)
            assert abs(cost.flops_per_image(net, shape) - expected) < 0.5
            net.eval()
            logits = _apply(net, _images((2, *shape)))
            assert logits.shape == (2, classes) and bool(jnp.all(jnp.isfinite(logits)))
