"""NB101, DARTS and LaNAS-ConvNet networks built from architecture arrays.

Building and running a network on CPU is dominated by XLA compiles (one per
distinct initialiser / op shape), so each space gets one real network, run in
both modes, and many random architectures are checked *abstractly*
(``nnx.eval_shape``: shapes and parameter counts, nothing compiled).
"""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import nnx

from jnas.errors import JnasError
from jnas.models import build_network
from jnas.models import convnet as convnet_net
from jnas.models import darts as darts_net
from jnas.models import nb101 as nb101_net
from jnas.models.cost import count_params, describe
from jnas.models.ops import DropPath
from jnas.spaces.convnet import CONVNET, CONVNET_SMALL
from jnas.spaces.darts import DARTS
from jnas.spaces.nb101 import NB101

# DARTS V2, the cell of the DARTS paper's CIFAR-10 result (genotypes.py of the DARTS repository).
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
# DARTS's train.py logs "param size = 3.349342MB" for DARTS V2 (36 channels, 20 cells, 10 classes);
# its counter skips the auxiliary head. The paper rounds this to 3.3M.
DARTS_V2_PARAMS = 3_349_342


def _aux_head_params(c: int, num_classes: int = 10) -> int:
    """DARTS's auxiliary head on ``c`` channels: 1x1 conv c->128 + BN, 2x2 conv 128->768 + BN, linear."""
    return c * 128 + 2 * 128 + 4 * 128 * 768 + 2 * 768 + 768 * num_classes + num_classes


def _rngs(seed):
    """Rngs on RBG keys: initialisers built on them compile ~3x faster than on threefry keys (CPU)."""
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _images(n=2, size=16, seed=0):
    return jax.random.normal(jax.random.key(seed), (n, size, size, 3))


def _abstract(space, arch, *, size=16, num_classes=10, **options):
    """``(model, output)`` of ``arch`` built and run on ``[2, size, size, 3]`` with shapes only."""
    model = nnx.eval_shape(lambda: build_network(space, arch, num_classes=num_classes, rngs=nnx.Rngs(0), **options))
    x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
    return model, nnx.eval_shape(lambda m, x: m(x), model, x)


@pytest.fixture(scope="module")
def nb101_archs():
    """Random valid NB101 cells; the first prunes to 6 vertices, 3 of which feed the output."""
    sample = jax.jit(NB101.sample)  # one compile for all keys
    return [sample(jax.random.key(k)) for k in (3, 11, 12, 13, 14)]


@pytest.fixture(scope="module")
def darts_v2_small():
    """DARTS V2 at 8 channels, 5 cells, with the auxiliary head (shared: building and compiling is slow)."""
    return build_network("darts", DARTS.from_string(DARTS_V2), num_classes=10, rngs=_rngs(0), channels=8,
                         layers=5, auxiliary=True)


# ----- NB101 ------------------------------------------------------------------------------------

def _nb101_rows() -> pd.DataFrame:
    """The unique cells of the NB101 subset with their published parameter counts."""
    path = Path(os.environ["JNAS_DATA_DIR"]) / "nb101_naslib_subset500.csv.gz"
    rows = pd.read_csv(path, dtype={"raw_adjacency_7x7": str, "adjacency": str})
    return rows.drop_duplicates(["adjacency", "ops"]).reset_index(drop=True)


def _nb101_arch(row):
    adj = np.array([int(c) for c in row.raw_adjacency_7x7], np.uint8).reshape(7, 7)
    return NB101.from_spec(adj, row.raw_ops.split(","))


def _check_nb101_params(rows) -> tuple[int, list]:
    """(number of cells whose ``count_params`` equals the published count, the misses)."""
    misses = []
    for row in rows.itertuples():
        # Abstract build: shapes only, no initialiser runs or compiles (the count is all we need).
        model = nnx.eval_shape(lambda arch=_nb101_arch(row): nb101_net.build(arch, num_classes=10, rngs=nnx.Rngs(0)))
        published = round(row.params * 1e6)  # millions with 6 decimals: an exact count
        if count_params(model) != published:
            misses.append((row.adjacency, row.ops, count_params(model), published))
    return len(rows) - len(misses), misses


def test_nb101_vertex_channels_split_like_nb101():
    # 0 -> 1 -> 2 -> out, 0 -> 3 -> out, 1 -> out: vertices 1, 2, 3 feed the output (k = 3).
    m = np.zeros((5, 5), int)
    for i, j in [(0, 1), (1, 2), (2, 4), (0, 3), (3, 4), (1, 4)]:
        m[i, j] = 1
    assert nb101_net.vertex_channels(64, 128, m) == [64, 43, 43, 42, 128]
    # 0 -> 1 -> 2 -> out, 1 -> 3 -> out: vertex 1 does not feed the output, takes max(succ) = 65.
    m = np.zeros((5, 5), int)
    for i, j in [(0, 1), (1, 2), (1, 3), (2, 4), (3, 4)]:
        m[i, j] = 1
    assert nb101_net.vertex_channels(32, 129, m) == [32, 65, 65, 64, 129]


def test_nb101_forward_shapes_and_modes(nb101_archs):
    arch = nb101_archs[0]
    x = _images(size=8)
    model = nb101_net.build(arch, num_classes=5, rngs=_rngs(0), stem_channels=8, stacks=2, cells_per_stack=1)
    assert len(model.cells) == 2
    y = model(x)
    assert y.shape == (2, 5) and bool(jnp.all(jnp.isfinite(y)))
    model.eval()
    y_eval = model(x)
    assert y_eval.shape == (2, 5) and not np.allclose(y, y_eval)  # running statistics differ from batch ones
    # The cell output has the cell's channel count whatever the split: 11 over 3 feeders is 4 + 4 + 3, and
    # vertex 1 (4 channels) feeds vertex 4 (3 channels) through a truncation.
    matrix, ops = nb101_net.cell_spec(arch)
    assert nb101_net.vertex_channels(6, 11, matrix) == [6, 4, 4, 3, 3, 11]
    cell = nnx.eval_shape(lambda: nb101_net.NB101Cell(matrix, ops, 6, 11, rngs=nnx.Rngs(0)))
    assert nnx.eval_shape(lambda c, x: c(x), cell, jnp.ones((1, 4, 4, 6))).shape == (1, 4, 4, 11)


def test_nb101_random_archs_abstract(nb101_archs):
    for arch in nb101_archs:
        model, y = _abstract("nb101", arch, size=16, stem_channels=16, stacks=3, cells_per_stack=2)
        assert y.shape == (2, 10) and len(model.cells) == 6
        assert model.head.in_features == 64  # channels double per stack: 16, 32, 64


def test_nb101_input_output_only_cell_is_a_projection():
    # Only the input->output edge survives pruning (vertex 1 has no input): the cell is a 1x1 projection.
    arch = NB101.from_string("adj=0000001/0010000/0000000/0000000/0000000/0000000/0000000;"
                             "ops=input,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,conv1x1-bn-relu,maxpool3x3,output")
    assert nb101_net.cell_spec(arch)[1] == ["input", "output"]
    model = nnx.eval_shape(lambda: nb101_net.build(arch, num_classes=10, rngs=nnx.Rngs(0)))
    # NB101's smallest network: stem + 9 projections + dense (0.882570M in NAS-Bench-101).
    stem = 27 * 128 + 256
    projections = 3 * (128 * 128 + 256) + (128 * 256 + 512) + 2 * (256 * 256 + 512)
    projections += (256 * 512 + 1024) + 2 * (512 * 512 + 1024)
    assert count_params(model) == stem + projections + 512 * 10 + 10 == 882_570


def test_nb101_params_match_published_subset():
    rows = _nb101_rows()
    # A fixed spread of 6 cells over the published sizes (0.88M .. 30.7M).
    rows = rows.sort_values("params").iloc[np.linspace(0, len(rows) - 1, 6).astype(int)]
    matched, misses = _check_nb101_params(rows)
    assert not misses, misses


@pytest.mark.slow
def test_nb101_params_match_published_all_unique_cells():
    rows = _nb101_rows()
    matched, misses = _check_nb101_params(rows)
    assert len(rows) == 301 and not misses, f"{matched}/{len(rows)} match; misses {misses[:5]}"


def test_nb101_invalid_arch_raises(nb101_archs):
    adj, ops = (np.asarray(a) for a in nb101_archs[0])
    bad_op = ops.copy()
    bad_op[0] = 0  # vertex 0 must be the input
    wrapped = ops.astype(np.int64)
    wrapped[2] = 255  # must not wrap around to -1 (pruned)
    lower = adj.copy()
    lower[3, 1] = 1  # not upper-triangular
    for bad in ((np.zeros_like(adj), ops), (adj, bad_op), (adj, wrapped), (lower, ops), (adj.astype(float), ops), adj):
        with pytest.raises(JnasError, match="^arch"):
            nb101_net.build(bad, num_classes=10, rngs=nnx.Rngs(0))
    with pytest.raises(JnasError, match="^stacks"):
        nb101_net.build((adj, ops), num_classes=10, rngs=nnx.Rngs(0), stacks=0)
    with pytest.raises(JnasError, match="^stem_channels"):  # 3 vertices feed the output: 2 channels cannot split
        nb101_net.build((adj, ops), num_classes=10, rngs=nnx.Rngs(0), stem_channels=2)


# ----- DARTS ------------------------------------------------------------------------------------

def test_darts_random_archs_abstract():
    for seed in range(2):
        arch = DARTS.sample(jax.random.key(seed))
        model, (logits, aux) = _abstract("darts", arch, channels=4, layers=3, auxiliary=True)
        assert isinstance(model, darts_net.DartsNetwork)
        assert logits.shape == (2, 10) and aux.shape == (2, 10)
        # Reductions at cells 1 and 2 of 3, channels 4 -> 8 -> 16: the output has 4 * 16 channels, and the
        # auxiliary head reads the last cell.
        assert model.reductions == (1, 2) and model.aux_after == 2
        assert model.classifier.in_features == 4 * 16
        assert count_params(model.auxiliary) == _aux_head_params(4 * 16)


def test_darts_forward_and_auxiliary_head_only_in_train_mode(darts_v2_small):
    model, x = darts_v2_small, _images(size=16)
    model.train()
    logits, aux = model(x)
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    assert bool(jnp.all(jnp.isfinite(logits))) and not np.allclose(logits, aux)
    model.eval()
    y = model(x)
    assert y.shape == (2, 10) and bool(jnp.all(jnp.isfinite(y)))
    model.train()
    view = nnx.view(model, deterministic=True, use_running_average=True)
    np.testing.assert_array_equal(view(x), y)
    assert isinstance(model(x), tuple)  # the view left the model in training mode
    # The cost tools trace the inference view: logits only, the head's parameters still counted.
    info = describe(model, (16, 16, 3))
    assert info["params"] == count_params(model) and info["flops"] > 0


def test_darts_drop_path_only_in_train_mode(darts_v2_small):
    model, x = darts_v2_small, _images(size=16)
    # Identity (stride-1 skip) edges are never dropped: DARTS V2 keeps 6 dropped edges in each of its 3 normal
    # cells (2 skips) and 5 in each of its 2 reduction cells (3 skips from node 2).
    drops = [m for _, m in nnx.iter_modules(model) if isinstance(m, DropPath)]
    assert len(drops) == 3 * 6 + 2 * 5
    model.train()
    model.set_drop_path_rate(0.5)
    # Training mode: every call draws new masks, so two calls on the same batch differ.
    a, b = model(x)[0], model(x)[0]
    assert not np.allclose(a, b)
    # Without drop-path, training mode is deterministic (BN uses batch statistics).
    model.set_drop_path_rate(0.0)
    c, d = model(x)[0], model(x)[0]
    np.testing.assert_array_equal(c, d)
    # Eval mode ignores the rate: same output with rate 0.5 and rate 0.
    model.eval()
    e = model(x)
    model.set_drop_path_rate(0.5)
    np.testing.assert_array_equal(model(x), e)
    np.testing.assert_array_equal(model(x), e)
    model.set_drop_path_rate(0.0)
    with pytest.raises(JnasError, match="^rate"):
        model.set_drop_path_rate(1.0)


def test_darts_invalid_arch_raises():
    arch = np.asarray(DARTS.sample(jax.random.key(0)))
    none_op = arch.copy()
    none_op[0, 0, 1] = 0  # 'none' is not in the discrete space
    unsorted = arch.copy()
    unsorted[1, 0, 0], unsorted[1, 1, 0] = 1, 0
    wrapped = arch.astype(np.int64)
    wrapped[0, 0, 1] += 256  # must not wrap around to a valid op
    for bad in (none_op, unsorted, wrapped, arch[0], arch.astype(np.float32), "DARTS_V2"):
        with pytest.raises(JnasError, match="^arch"):
            darts_net.build(bad, num_classes=10, rngs=nnx.Rngs(0), channels=8, layers=5)
    with pytest.raises(JnasError, match="^drop_path_rate"):
        darts_net.build(arch, num_classes=10, rngs=nnx.Rngs(0), channels=8, layers=5, drop_path_rate=1.5)
    with pytest.raises(JnasError, match="^layers"):
        darts_net.build(arch, num_classes=10, rngs=nnx.Rngs(0), channels=8, layers=0)


@pytest.mark.slow
def test_darts_v2_has_the_published_parameter_count():
    arch = DARTS.from_string(DARTS_V2)
    model = build_network("darts", arch, num_classes=10, rngs=_rngs(0), channels=36, layers=20, auxiliary=True)
    assert count_params(model) - count_params(model.auxiliary) == DARTS_V2_PARAMS
    # The head reads cell 13, whose output has 4 * 144 channels; the paper's 3.3M is the count without it.
    assert count_params(model.auxiliary) == _aux_head_params(576) == 476_426
    assert round(DARTS_V2_PARAMS / 1e6, 1) == 3.3


# ----- ConvNet ----------------------------------------------------------------------------------

def _convnet_params(layers, num_classes):
    """Conv kernels (no bias) + BN scale and shift per layer, then the linear head with bias."""
    c, total = 3, 0
    for ch, k in layers:
        total += k * k * c * ch + 2 * ch
        c = ch
    return total + c * num_classes + num_classes


@pytest.mark.parametrize("space", [CONVNET, CONVNET_SMALL], ids=lambda s: s.name)
def test_convnet_forward_and_params(space):
    arch = space.from_string("64-3,32-5,32-3")  # a short one for the real network: fewer shapes to compile
    model = build_network(space.name, arch, num_classes=7, rngs=_rngs(0))
    x = _images(size=8)
    y = model(x)
    assert y.shape == (2, 7) and bool(jnp.all(jnp.isfinite(y)))
    model.eval()
    assert model(x).shape == (2, 7)
    assert count_params(model) == _convnet_params(convnet_net.layers_of(arch, space), 7)
    for seed in range(3, 9):  # more random archs, abstractly
        arch = space.sample(jax.random.key(seed))
        model, y = _abstract(space.name, arch, size=8, num_classes=7)
        layers = convnet_net.layers_of(arch, space)
        assert y.shape == (2, 7) and len(model.layers) == len(layers) == int(arch[0])
        assert count_params(model) == _convnet_params(layers, 7)


def test_convnet_layers_follow_the_string_form():
    arch = CONVNET.from_string("32-3,96-5,64-3")
    model, y = _abstract("convnet", arch, size=32)
    assert [layer.conv.kernel.shape for layer in model.layers] == [(3, 3, 3, 32), (5, 5, 32, 96), (3, 3, 96, 64)]
    assert y.shape == (2, 10)


def test_convnet_invalid_arch_raises():
    arch = np.asarray(CONVNET.from_string("32-3,64-5"))
    dirty = arch.copy()
    dirty[-1] = 1  # fields of unused layers must be zero
    with pytest.raises(JnasError, match="^arch"):
        convnet_net.build(dirty, num_classes=10, rngs=nnx.Rngs(0))
    with pytest.raises(JnasError, match="^arch"):  # a convnet array is the wrong length for convnet-small
        build_network("convnet-small", arch, num_classes=10, rngs=nnx.Rngs(0))
    wide = np.asarray(CONVNET_SMALL.from_string("32-3")).copy()
    wide[1] = 2  # channel index 2 (96) exists only in the full space
    with pytest.raises(JnasError, match="^arch"):
        build_network("convnet-small", wide, num_classes=10, rngs=nnx.Rngs(0))
    with pytest.raises(JnasError, match="^space"):
        convnet_net.build(arch, num_classes=10, rngs=nnx.Rngs(0), space="vgg")
    with pytest.raises(JnasError, match="^num_classes"):
        convnet_net.build(arch, num_classes=0, rngs=nnx.Rngs(0))

    def build_traced(a):  # networks are built from concrete arrays, outside jit/vmap
        convnet_net.build(a, num_classes=10, rngs=nnx.Rngs(0))
        return a

    with pytest.raises(JnasError, match="untraced"):
        jax.jit(build_traced)(arch)
