"""``nb201-3``: NAS-Bench-201 over none / skip_connect / nor_conv_3x3, added through the space path only.

The space lives in ``jnas.spaces.nb201``, its network is NB201's (through the
models registry), its table is a view of NB201's (``nb201-3/<dataset>``);
every encoding and strategy works from the space's own description.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import benchmarks, models, spaces
from jnas.benchmarks import get_benchmark
from jnas.errors import JnasError
from jnas.runs import run_loop, search
from jnas.spaces import get_space
from jnas.strategies import make_strategy
from jnas.strategies.features import FAMILIES, feature_map
from jnas.strategies.tpe import decision_cardinalities

OPS3 = ("none", "skip_connect", "nor_conv_3x3")


@pytest.fixture(scope="module")
def space():
    return get_space("nb201-3")


def test_registered_in_every_registry(space):
    assert "nb201-3" in spaces.names() and "nb201-3" in models.names()
    assert {f"nb201-3/{d}" for d in benchmarks.NB201_DATASETS} <= set(benchmarks.names())
    assert "nb201-3" in FAMILIES
    assert space.ops == OPS3 and space.size == 3**6 == 729 and space.enumerable
    np.testing.assert_array_equal(decision_cardinalities(space), [3] * 6)
    assert not space.generated and get_space("nago").generated
    assert models.GENERATED == {"nago", "rnag"}


def test_cells_are_nb201_cells_with_official_strings(space):
    full = get_space("nb201")
    cells = np.asarray(space.enumerate())
    mapped = np.asarray(space.to_nb201(cells))
    assert set(np.unique(mapped)) == {full.ops.index(o) for o in OPS3}
    assert len(np.unique(np.asarray(full.index(mapped)))) == 729
    for a, f in zip(cells[::37], mapped[::37]):
        text = space.to_string(a)
        assert text == full.to_string(f)
        np.testing.assert_array_equal(np.asarray(space.from_string(text)), a)
    with pytest.raises(JnasError, match="arch: bad edge 'nor_conv_1x1~0'.*none, skip_connect, nor_conv_3x3"):
        space.from_string("|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    with pytest.raises(JnasError, match="^ops:"):
        type(space)("bad", ("none", "conv7x7"))


def test_the_network_is_the_nb201_network_of_the_same_cell(space):
    from flax import nnx

    from jnas.models.cost import count_params

    a = space.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|skip_connect~1|nor_conv_3x3~2|")
    opts = {"channels": 4, "cells_per_stage": 1}
    assert models.network_options("nb201-3") == models.network_options("nb201")
    net = models.build_network("nb201-3", a, num_classes=10, rngs=nnx.Rngs(0), **opts)
    ref = models.build_network("nb201", space.to_nb201(a), num_classes=10, rngs=nnx.Rngs(0), **opts)
    assert count_params(net) == count_params(ref) > 0
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    net.eval()
    ref.eval()
    np.testing.assert_array_equal(np.asarray(net(x)), np.asarray(ref(x)))
    with pytest.raises(JnasError, match=r"^arch: got \[0, 0, 0, 0, 0, 3\], expected a concrete member of space"):
        models.build_network("nb201-3", jnp.array([0, 0, 0, 0, 0, 3], jnp.int8), num_classes=10, rngs=nnx.Rngs(0))


def test_relaxation_is_the_one_hot_of_its_decisions(space):
    fm = feature_map(space)
    assert fm.dim == 18 and list(fm.block_sum) == [1.0] * 6
    cells = space.enumerate()[::11]
    x = jax.vmap(fm.encode)(cells)
    np.testing.assert_array_equal(np.asarray(x).reshape(-1, 6, 3).argmax(-1), np.asarray(cells))
    back = jax.vmap(fm.decode)(jax.random.split(jax.random.key(0), cells.shape[0]), x)
    np.testing.assert_array_equal(np.asarray(back), np.asarray(cells))


@pytest.mark.parametrize(
    "strategy, options",
    [
        ("re", {"population_size": 8, "sample_size": 3}),
        ("tpe", {}),
        ("lanas", {}),
        ("mcts", {}),
        ("bananas", {}),
        ("pbnas", {"sampler": "ml", "gcn_steps": 5, "n_candidates": 8, "ml_steps": 2}),
        ("pbnas", {"sampler": "evolutionary", "gcn_steps": 5, "n_candidates": 8}),
    ],
)
def test_strategies_search_the_view(space, strategy, options):
    view = get_benchmark("nb201-3/cifar10")
    res = search("nb201-3/cifar10", strategy, 24, seeds=2, options=options)
    idx = res.trajectory["index"]
    assert idx.shape == (2, 24)
    official = set(view.official(np.arange(view.n_rows)).tolist())
    assert set(idx.ravel().tolist()) <= official  # every query is a cell of the view (an NB201 arch_index)
    if strategy != "re":
        assert all(len(np.unique(r)) == 24 for r in idx)  # these never repeat a query
    assert np.isfinite(res.trajectory["value"]).all()


def test_tpe_walks_conditional_decisions_of_convnet():
    """ConvNet's layer decisions are dead past the depth: TPE counts and scores only live ones."""
    sp = get_space("convnet-small")
    assert sp.decisions.conditional
    s = make_strategy("tpe", sp, 40, n_init=8)

    def evaluate(archs):  # deeper and wider is better
        a = np.asarray(archs).astype(np.int64)
        return (a[:, 0] + a[:, 1::2].sum(1)).astype(np.float64)

    rec = run_loop(s, evaluate, 1, row_of=jax.vmap(sp.index))
    assert len(np.unique(rec.rows[0])) == 40
    assert rec.values[0, 20:].mean() > rec.values[0, :8].mean()
