"""PNAS on NAS-Bench-201: cells grow one block per step, each an expansion of the previous round's beam."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.benchmarks import get_benchmark
from jnas.errors import JnasError
from jnas.strategies import make_strategy
from jnas.strategies.pnas import blocks, expansions, op_changes


@pytest.fixture(scope="module")
def nb201():
    return get_benchmark("nb201/cifar10")


def test_expansions_add_exactly_one_block_and_cover_every_way():
    arch = jnp.asarray([0, 3, 0, 0, 1, 0], jnp.int32)
    cells, valid = expansions(arch, 5)
    cells, valid = np.asarray(cells), np.asarray(valid)
    assert valid.sum() == 4 * 4  # four none edges, four ops each
    for c in cells[valid]:
        assert int(blocks(c)) == 3 and np.sum(c != np.asarray(arch)) == 1
    assert len({tuple(c) for c in cells[valid]}) == 16
    changed, ok = op_changes(arch, 5)
    for c in np.asarray(changed)[np.asarray(ok)]:
        assert int(blocks(c)) == 2 and np.sum(c != np.asarray(arch)) == 1
    assert np.asarray(ok).sum() == 2 * 3


def test_pnas_grows_the_beam_one_block_per_step(nb201):
    s = make_strategy("pnas", nb201.space, 80, batch_size=8, steps=50)
    ask, tell = jax.jit(s.ask), jax.jit(s.tell)
    state = s.init(jax.random.key(0))
    rounds = []
    for t in range(10):
        archs, state = ask(state, jax.random.key(t + 1))
        values = nb201.query(archs)
        rounds.append((np.asarray(archs), np.asarray(values)))
        state = tell(state, archs, jnp.asarray(values))
    seen = set()
    for t, (archs, _values) in enumerate(rounds):
        n = [int(blocks(a)) for a in archs]
        assert n == [min(t + 1, 6)] * 8, (t, n)
        for a in archs:
            assert tuple(a) not in seen
            seen.add(tuple(a))
        if 1 <= t <= 5:  # each is one block added to one of the previous round's 8 cells (its beam)
            prev = rounds[t - 1][0]
            assert all(any(np.sum(a != p) == 1 for p in prev) for a in archs)


def test_pnas_refuses_spaces_without_blocks_and_a_batch_too_large(nb201):
    from jnas.spaces import get_space

    with pytest.raises(JnasError, match="pnas: space 'nbgraph' has no cells of op ids with a 'none' op"):
        make_strategy("pnas", get_space("nbgraph"), 50)
    with pytest.raises(JnasError, match="--set batch_size: got 25, expected at most 24"):
        make_strategy("pnas", nb201.space, 50, batch_size=25)
