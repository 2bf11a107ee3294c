"""PNAS on the DARTS/NASNet cell (space ``darts-blocks``): blocks are nodes, cells grow 1 -> 4 blocks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jnas.errors import JnasError
from jnas.models import build_network
from jnas.runs import search
from jnas.spaces import darts as D
from jnas.spaces import get_space
from jnas.spaces.darts_blocks import CELLS_BY_BLOCKS, blocks, with_blocks
from jnas.strategies import make_strategy
from jnas.strategies.pnas import cell_edits, darts_expansions

SPACE = get_space("darts-blocks")


def cut(arch, b):
    """``arch`` with ``b`` blocks in the normal cell copied to both cells (a tied cell)."""
    a = jnp.asarray(arch)
    return with_blocks(jnp.stack([a[0], a[0]]), jnp.array([b, b])).astype(jnp.int8)


@pytest.fixture(scope="module")
def full():
    return get_space("darts").sample(jax.random.key(7))


@pytest.fixture(scope="module")
def expand():
    return jax.jit(lambda a: darts_expansions(a, True))


def test_the_space_counts_cells_by_blocks_and_keeps_absent_nodes_trailing(full):
    assert CELLS_BY_BLOCKS == (49, 49 * 3 * 49, 49 * 3 * 49 * 6 * 49, 1_037_664_180)
    assert SPACE.size == sum(CELLS_BY_BLOCKS) ** 2
    assert bool(SPACE.is_valid(full)) and int(blocks(full)[0]) == 4  # a 4-block cell is a DARTS cell
    two = cut(full, 2)
    assert bool(SPACE.is_valid(two)) and not bool(get_space("darts").is_valid(two))
    gap = np.asarray(full).copy()
    gap[0, 2:4] = [[0, 0], [1, 0]]  # node 3 absent, node 4 present: not trailing
    assert not bool(SPACE.is_valid(gap))
    half = np.asarray(two).copy()
    half[0, 5] = [2, 4]  # one edge of an absent node set
    assert not bool(SPACE.is_valid(half))
    assert not bool(SPACE.is_valid(with_blocks(full, jnp.array([0, 4]))))  # a cell has at least one block
    text = SPACE.to_string(two)
    assert "normal_concat=[2, 3]" in text and text.count("(") == 1 + 2 * 4  # Genotype( + 4 edges per cell
    np.testing.assert_array_equal(np.asarray(SPACE.from_string(text)), np.asarray(two))
    with pytest.raises(JnasError, match=r"normal_concat must be \[2, 3\]"):
        SPACE.from_string(text.replace("normal_concat=[2, 3]", "normal_concat=[2, 3, 4, 5]"))
    tokens = SPACE.to_decisions(two)
    np.testing.assert_array_equal(np.asarray(SPACE.from_decisions(tokens)), np.asarray(two))
    nbrs, mask = SPACE.neighbours(two)
    ok = np.asarray(mask)
    # edits of present nodes only, per cell: 4 edges x 6 other ops, and node 3's edges each to its free input
    assert ok.sum() == 2 * (4 * 6 + 2)
    assert np.all(np.asarray(blocks(nbrs))[ok] == 2)
    assert np.all(np.asarray(jax.vmap(SPACE.is_valid)(nbrs))[ok])


@pytest.mark.parametrize("b", [1, 2, 3])
def test_every_expansion_is_a_valid_cell_with_one_more_block_and_all_are_there(full, expand, b):
    arch = cut(full, b)
    cells, valid = expand(arch)
    cells, valid = np.asarray(cells), np.asarray(valid)
    grown = cells[valid]
    assert len(grown) == math.comb(b + 2, 2) * 7 * 7  # 147, 294, 490: an input pair among b + 2 nodes, two ops
    assert np.all(np.asarray(jax.vmap(SPACE.is_valid)(grown)))
    assert np.all(np.asarray(blocks(grown)) == b + 1)
    np.testing.assert_array_equal(grown[:, 0], grown[:, 1])  # tied: the reduction cell is the normal cell
    np.testing.assert_array_equal(grown[:, :, : 2 * b], np.broadcast_to(np.asarray(arch)[:, : 2 * b],
                                                                       grown[:, :, : 2 * b].shape))
    new = {tuple(c[0, 2 * b: 2 * b + 2].ravel()) for c in grown}  # the added node: (in, op), (in, op)
    want = {(i, oa, j, ob) for j in range(b + 2) for i in range(j) for oa in range(1, 8) for ob in range(1, 8)}
    assert new == want  # every way to add block b + 1, each once


def test_a_full_cell_has_no_expansion_and_its_edits_keep_four_blocks(full, expand):
    _, valid = expand(cut(full, 4))
    assert not np.asarray(valid).any()
    cells, ok = cell_edits(jnp.asarray(full)[0])
    cells, ok = np.asarray(cells)[np.asarray(ok)], np.asarray(ok)
    assert ok.sum() == 8 * 6 + sum(max(0, (e // 2 + 2) - 2) for e in range(8))  # 6 other ops; other inputs
    arch = np.stack([cells, cells], 1)
    assert np.all(np.asarray(jax.vmap(SPACE.is_valid)(arch))) and np.all(np.asarray(blocks(arch)) == 4)


def test_untied_expansions_are_every_pair_of_cell_expansions(full):
    arch = with_blocks(full, jnp.array([1, 2])).astype(jnp.int8)
    cells, valid = jax.jit(lambda a: darts_expansions(a, False))(arch)
    grown = np.asarray(cells)[np.asarray(valid)]
    assert len(grown) == (3 * 49) * (6 * 49)
    assert np.all(np.asarray(blocks(grown)) == [2, 3])
    assert np.all(np.asarray(jax.vmap(SPACE.is_valid)(grown)))
    assert len({g.tobytes() for g in grown}) == len(grown)


def fake_value(arch) -> float:
    """A cheap deterministic score of an architecture: more blocks and larger op ids score higher."""
    a = np.asarray(arch).astype(np.float64)
    return float(np.asarray(blocks(arch)).sum() + 0.01 * (a[..., 1] * (1 + a[..., 0])).sum())


class FakeEvaluator:
    """A deterministic function of the architecture behind the untraceable evaluator protocol (the journaled
    loop, as a training search takes), with no training."""

    traceable = False
    name = "fake/darts-blocks"
    search_metric = test_metric = ("score", None)
    fidelities = (None,)

    def __init__(self, space_name="darts-blocks"):
        from jnas.benchmarks.base import MetricInfo

        self.space = get_space(space_name)
        self.metrics = {("score", None): MetricInfo("score", None, "a fake score", "", True, None, None, None)}
        self.evaluated = []

    def describe(self):
        return {"name": self.name, "space": self.space.name}

    def resolve(self, metric=None, fidelity=None):
        return "score", None

    def cost(self, fidelity=None):
        return 0.0

    def uses_test_data(self, key):
        return False

    def evaluate(self, arch, fidelity=None):
        self.evaluated.append(np.asarray(arch))
        return {"arch": self.space.to_string(arch), "status": "ok", "reason": None, "score": fake_value(arch),
                "wall_seconds": 0.0}

    def query(self, archs, metric=None, fidelity=None):
        return np.array([self.evaluate(a)["score"] for a in archs])

    def test_value(self, arch):
        return fake_value(arch)

    def index_of(self, arch):
        return -1


TINY_MODEL = {"members": 2, "layers": 1, "width": 8, "steps": 20}


def edits(a, b) -> int:
    """Changed fields between two cells ``int[8, 2]``, each node's two edges matched as an unordered pair."""
    a, b = np.asarray(a).reshape(4, 2, 2), np.asarray(b).reshape(4, 2, 2)
    return int(np.minimum((a != b).sum((1, 2)), (a != b[:, ::-1]).sum((1, 2))).sum())


def test_the_search_grows_one_block_per_step_from_the_previous_beam(tmp_path):
    ev = FakeEvaluator()
    res = search(evaluator=ev, strategy="pnas", budget=24, seeds=1, options={"batch_size": 4, **TINY_MODEL},
                 out=tmp_path / "r")
    assert res.summary["budget"] == 24
    rounds = np.stack(ev.evaluated).reshape(6, 4, 2, 8, 2)
    seen = set()
    for t, archs in enumerate(rounds):
        assert np.all(np.asarray(blocks(archs)) == min(t + 1, 4)), t
        assert np.all(np.asarray(jax.vmap(SPACE.is_valid)(archs)))
        np.testing.assert_array_equal(archs[:, 0], archs[:, 1])  # tied cells
        for a in archs:
            assert a.tobytes() not in seen
            seen.add(a.tobytes())
        if 1 <= t <= 3:  # each adds one block to a cell of the previous round (its beam: all 4 of them)
            prev = rounds[t - 1]
            assert all(any(np.array_equal(a[:, : 2 * t], p[:, : 2 * t]) for p in prev) for a in archs)
        if t >= 4:  # full size: one edit of a full cell told before
            full = [a for a in rounds[: t].reshape(-1, 2, 8, 2) if int(blocks(a)[0]) == 4]
            assert all(any(edits(a[0], f[0]) == 1 for f in full) for a in archs)


def test_untied_cells_grow_together(tmp_path):
    ev = FakeEvaluator()
    search(evaluator=ev, strategy="pnas", budget=6, seeds=1,
           options={"batch_size": 2, "tie_cells": "false", **TINY_MODEL}, out=tmp_path / "r")
    rounds = np.stack(ev.evaluated).reshape(3, 2, 2, 8, 2)
    for t, archs in enumerate(rounds):
        assert np.all(np.asarray(blocks(archs)) == t + 1)
    assert not all(np.array_equal(a[0], a[1]) for a in rounds.reshape(-1, 2, 8, 2))


def test_bad_options_and_spaces_are_one_line_errors():
    cases = [
        (lambda: make_strategy("pnas", SPACE, 50, batch_size=50), "--set batch_size: got 50, expected at most 49"),
        (lambda: make_strategy("pnas", SPACE, 50, tie_cells="maybe"), "--set tie_cells: got 'maybe', expected true"),
        (lambda: make_strategy("pnas", get_space("nb201"), 50, tie_cells=False),
         "--set tie_cells: has no effect unless the space is darts-blocks"),
        (lambda: make_strategy("pnas", get_space("darts"), 50),
         "pnas: space 'darts' has no cells of op ids .*supported: nb201, nb201-3, darts-blocks"),
    ]
    for call, message in cases:
        with pytest.raises(JnasError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    assert make_strategy("pnas", SPACE, 50, batch_size=50, tie_cells="false").batch_size == 50
    assert "tie_cells" not in make_strategy("pnas", get_space("nb201"), 50).settings()
    assert make_strategy("pnas", SPACE, 50).settings()["tie_cells"] is True


def test_jnas_list_shows_pnas_and_its_options(capsys):
    from jnas.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for opt in ("batch_size=8", "tie_cells=True", "members=5"):
        assert f"pnas --set {opt}" in out, opt
    assert "darts-blocks" in out


def test_the_b_block_network_concatenates_only_its_blocks(full):
    arch = with_blocks(full, jnp.array([2, 3]))
    net = nnx.eval_shape(lambda: build_network("darts-blocks", arch, num_classes=5, rngs=nnx.Rngs(0), channels=2,
                                               layers=4))  # the structure, without initialising the weights
    # cells 1 and 2 are reductions (layers // 3, 2 layers // 3): 3 nodes there, 2 in the normal cells
    assert [c.n_nodes for c in net.cells] == [2, 3, 3, 2]
    assert [len(c.edges) for c in net.cells] == [4, 6, 6, 4]  # no op is built for an absent node
    assert net.classifier.in_features == 2 * 2 * 2 * 2  # last cell: 2 nodes of 2·2·2 channels
    one = with_blocks(full, jnp.array([1, 1]))
    small = build_network("darts-blocks", one, num_classes=5, rngs=nnx.Rngs(0), channels=2, layers=1)
    assert small.classifier.in_features == 1 * 2 * 2  # its one cell is a reduction: 1 node of 2·2 channels
    out = small(jnp.ones((2, 8, 8, 3)))
    assert out.shape == (2, 5) and np.all(np.isfinite(np.asarray(out)))
    with pytest.raises(JnasError, match="expected a valid DARTS architecture"):
        build_network("darts", arch, num_classes=5, rngs=nnx.Rngs(0), channels=2, layers=1)


def test_the_training_evaluator_trains_a_partial_cell():
    from jnas.benchmarks.training import TrainingEvaluator
    from jnas.train.optim import TrainConfig

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    x = (rng.integers(0, 60, (40, 8, 8, 3)) + 60 * y[:, None, None, None]).astype(np.uint8)
    ev = TrainingEvaluator("darts-blocks", ((x, y), (x[:8], y[:8])), config=TrainConfig(epochs=1, batch_size=8,
                           eval_batch_size=8), model_options={"channels": 2, "layers": 1}, valid_size=8)
    rec = ev.evaluate(with_blocks(get_space("darts").sample(jax.random.key(3)), jnp.array([1, 1])))
    assert rec["status"] == "ok", rec["reason"]
    assert rec["arch"].count("normal_concat=[2]") == 1 and 0 <= rec["valid_acc"] <= 100


def test_a_supernet_scores_partial_cells_as_zero_nodes():
    from jnas.models.supernet import arch_weights

    arch = cut(get_space("darts").sample(jax.random.key(5)), 2)
    w = np.asarray(arch_weights("darts", arch))  # [cell, 14 edges, 8 ops]
    # nodes 2 and 3: 2 edges each of their input's row hold 'none'; node 0, 1: one real op on each of 2 edges
    assert w.sum() == 2 * 8 and np.all(w.sum(-1) <= 1)
    offsets = np.concatenate([[0], np.cumsum(np.arange(D.N_NODES) + 2)])
    for node in (2, 3):
        block = w[:, offsets[node]: offsets[node + 1]]
        assert block[..., 0].sum() == 2 * 2 and block[..., 1:].sum() == 0  # two 'none' edges per cell


@pytest.fixture(scope="module")
def tiny_darts_supernet(tmp_path_factory):
    """A one-epoch DARTS supernet on 48 learnable 8×8 images (2 channels, 2 cells)."""
    from jnas.runs.supernet import run_supernet

    root = tmp_path_factory.mktemp("supernet")
    from helpers import tiny_image_npz

    run_supernet("darts", "darts", data=tiny_image_npz(root), epochs=1, out=root / "run",
                 model_options={"channels": 2, "layers": 2}, config_overrides={"batch_size": 8, "eval_batch_size": 16})
    return root / "run"


@pytest.mark.slow
def test_the_supernet_evaluator_answers_partial_cells_and_pnas_searches_on_it(tiny_darts_supernet, tmp_path, capsys):
    from jnas.cli import main
    from jnas.runs.supernet import load_supernet_run

    darts = load_supernet_run(tiny_darts_supernet)
    ev = darts.for_space("darts-blocks")
    assert ev.space is SPACE and darts.space.name == "darts" and ev.name.startswith("supernet/darts-blocks/")
    full = get_space("darts").sample(jax.random.key(1))
    for b in (1, 2, 4):
        rec = ev.evaluate(cut(full, b))
        assert rec["status"] == "ok" and 0 <= rec["valid_acc"] <= 100, rec["reason"]
    # a 4-block cell is the same network either way
    assert ev.evaluate(full)["valid_loss"] == pytest.approx(darts.evaluate(full)["valid_loss"])
    assert darts.evaluate(cut(full, 2))["status"] == "failed"  # not a darts cell
    with pytest.raises(JnasError, match="^space: got 'nb201', expected darts, the space of the supernet") as err:
        darts.for_space("nb201")
    assert "\n" not in str(err.value)
    res = search(evaluator=ev, strategy="pnas", budget=4, seeds=1, options={"batch_size": 2, **TINY_MODEL},
                 out=tmp_path / "s")
    assert res.summary["budget"] == 4
    base = ["search", "--evaluator", "supernet", "--supernet", str(tiny_darts_supernet), "--strategy", "pnas",
            "--budget", "4", "--set", "batch_size=2", "--no-progress"]
    capsys.readouterr()
    assert main([*base, "--space", "nb201", "--out", str(tmp_path / "c1")]) == 2
    err = capsys.readouterr().err.strip()
    assert "space: got 'nb201', expected darts, the space of the supernet" in err and "\n" not in err
    assert main([*base, "--space", "darts-blocks", "--out", str(tmp_path / "c2")]) == 0
