"""Multi-objective metrics: fronts, non-dominated sorting and hypervolume against brute force, pymoo and NB201."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jnas.errors import JnasError
from jnas.metrics import (
    dominates,
    domination_matrix,
    hypervolume,
    hypervolume_regret,
    hypervolume_trajectory,
    non_dominated_sort,
    normalise,
    normalised_hypervolume,
    pareto,
    pareto_mask,
)

# ----------------------------------------------------------------------------- brute-force references


def brute_ranks(Y, valid):
    """Front ranks by peeling in plain Python (invalid rows: n)."""
    n = len(Y)
    dom = lambda a, b: all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))
    rank = [n] * n
    left = {i for i in range(n) if valid[i]}
    k = 0
    while left:
        front = {j for j in left if not any(dom(Y[i], Y[j]) for i in left)}
        for j in front:
            rank[j] = k
        left -= front
        k += 1
    return np.array(rank)


def brute_front(Y):
    """Non-dominated rows of a finite ``float[n, m]`` by numpy pairwise checks (``O(n^2)``: small ``n`` only)."""
    ge = np.all(Y[:, None, :] >= Y[None], axis=2)
    gt = np.any(Y[:, None, :] > Y[None], axis=2)
    return ~np.any(ge & gt, axis=0)


def assert_is_front(Y, front):
    """``front`` is exactly the non-dominated rows of a finite ``Y``, checked pairwise against the front rows.

    Enough for a whole table in ``O(n * |front|)``: dominance is transitive, so a front point dominated by
    some point off the front would also be dominated by the front point that dominates that one.
    """
    F = Y[front]
    dom = np.all(F[:, None, :] >= Y[None], axis=2) & np.any(F[:, None, :] > Y[None], axis=2)  # [front, n]
    assert not dom[:, front].any(), "a front point is dominated by another"
    assert dom.any(axis=0)[~front].all(), "a point off the front is dominated by no front point"


def cell_volume(Y, valid, ref):
    """Hypervolume of small integer points by counting the unit cells of the grid that some box covers."""
    Y = np.asarray(Y)[np.asarray(valid)]
    ref = np.asarray(ref)
    if len(Y) == 0:
        return 0
    top = Y.max(axis=0)
    count = 0
    for c in itertools.product(*(range(int(r), int(t)) for r, t in zip(ref, top))):
        count += bool(np.any(np.all(Y >= np.asarray(c) + 1, axis=1)))
    return count


def random_points(rng, n, m, high, p_mask=0.2, p_nan=0.05):
    Y = rng.integers(0, high, size=(n, m)).astype(np.float32)
    Y[rng.random(n) < p_nan, rng.integers(0, m)] = np.nan
    mask = rng.random(n) >= p_mask
    return Y, mask


def valid_rows(Y, mask):
    return mask & np.all(np.isfinite(Y), axis=1)


# ----------------------------------------------------------------------------- hand-computed examples


def test_dominates_is_strict_and_broadcasts():
    assert bool(dominates(jnp.array([2.0, 2.0]), jnp.array([1.0, 2.0])))
    assert not bool(dominates(jnp.array([2.0, 2.0]), jnp.array([2.0, 2.0])))  # duplicates: neither
    assert not bool(dominates(jnp.array([3.0, 1.0]), jnp.array([1.0, 3.0])))
    a = jnp.array([[1.0, 1.0], [2.0, 1.0], [0.0, 5.0]])
    assert dominates(a, jnp.array([1.0, 1.0])).tolist() == [False, True, False]


def test_hand_front_and_hypervolume_2d():
    # front (1,3),(2,2),(3,1); (1,1) dominated; (2,2) twice; (-1,5) non-dominated but left of the reference
    Y = np.array([[1, 3], [2, 2], [3, 1], [1, 1], [2, 2], [-1, 5]], np.float32)
    assert float(hypervolume(Y[:3], [0.0, 0.0])) == 6.0
    assert float(hypervolume(Y, 0.0)) == 6.0
    assert float(hypervolume(Y, [0.5, 0.5])) == pytest.approx(2.5 * 0.5 + 1.5 * 1 + 0.5 * 1)
    assert pareto_mask(Y).tolist() == [True, True, True, False, True, True]
    assert non_dominated_sort(Y).tolist() == [0, 0, 0, 1, 0, 0]
    D = np.asarray(domination_matrix(Y))
    assert D[1, 3] and D[4, 3] and not D[1, 4] and not D[4, 1] and not D.diagonal().any()
    mask = np.array([True, False, True, True, True, False])
    assert non_dominated_sort(Y, mask).tolist() == [0, 6, 0, 1, 0, 6]
    assert float(hypervolume(Y, 0.0, mask)) == 6.0  # the masked copy of (2,2) has its duplicate
    assert float(hypervolume(Y, 0.0, np.array([1, 0, 1, 1, 0, 1], bool))) == 5.0
    assert float(hypervolume(Y[:0], 0.0)) == 0.0


def test_hand_front_and_hypervolume_3d():
    # slabs along z: (2,3] only (1,1,3): 1; (1,2] adds (2,2,2): 4; (0,1] all four: 3+2+1 = 6
    Y = np.array([[3, 1, 1], [1, 3, 1], [1, 1, 3], [2, 2, 2],
                  [1, 1, 1], [2, 2, 2], [-1, 5, 5], [np.inf, 9, 9]], np.float32)
    assert float(hypervolume(Y, [0, 0, 0])) == 11.0
    assert cell_volume(Y[:6], np.ones(6, bool), [0, 0, 0]) == 11
    assert pareto_mask(Y).tolist() == [True, True, True, True, False, True, True, False]
    assert non_dominated_sort(Y).tolist() == [0, 0, 0, 0, 1, 0, 0, 8]
    # the reference point cuts every box: (2,0,0) -> only x in (2,3] of (3,1,1) counts
    assert float(hypervolume(Y, [2, 0, 0])) == 1.0


def test_normalise_maps_flat_objectives_to_zero():
    Y = np.array([[1.0, 5.0], [3.0, 5.0]])
    Z = np.asarray(normalise(Y, [1.0, 5.0], [3.0, 5.0]))
    assert Z.tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert float(normalised_hypervolume(np.array([[1.0, 2.0]]), [0.0, 0.0], [2.0, 4.0])) == 0.25
    assert pareto.REFERENCE == 0.0


# ----------------------------------------------------------------------------- sorting and fronts


@pytest.mark.parametrize("m", [1, 2, 3])
def test_non_dominated_sort_matches_brute_force(m):
    rng = np.random.default_rng(10 + m)
    for _ in range(4):
        Y, mask = random_points(rng, 40, m, high=5)  # few values: many ties and duplicates
        got = np.asarray(non_dominated_sort(Y, mask))
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, brute_ranks(Y.tolist(), valid_rows(Y, mask)))
        np.testing.assert_array_equal(np.asarray(pareto_mask(Y, mask)), got == 0)


@settings(max_examples=40)
@given(st.integers(2, 3), st.lists(st.integers(0, 3), min_size=36, max_size=36), st.lists(st.booleans(), min_size=12,
                                                                                          max_size=12))
def test_pareto_mask_is_rank_zero_property(m, values, mask):
    Y = np.array(values[:12 * m], np.float32).reshape(12, m)
    mask = np.array(mask)
    ranks = np.asarray(non_dominated_sort(Y, mask))
    front = np.asarray(pareto_mask(Y, mask))
    np.testing.assert_array_equal(front, ranks == 0)
    np.testing.assert_array_equal(ranks, brute_ranks(Y.tolist(), mask))


@pytest.mark.parametrize("m", [2, 3])
def test_pareto_mask_on_thousands_of_tied_points(m):
    rng = np.random.default_rng(3)
    n = 3001  # not a multiple of the chunk
    assert n % pareto.CHUNK
    Y, mask = random_points(rng, n, m, high=40)
    front = np.asarray(pareto_mask(Y, mask))
    np.testing.assert_array_equal(front, np.asarray(non_dominated_sort(Y, mask)) == 0)
    valid = valid_rows(Y, mask)
    ref = np.zeros(n, bool)
    ref[valid] = brute_front(Y[valid])
    np.testing.assert_array_equal(front, ref)
    assert front.sum() >= 2


def test_sort_path_and_chunked_path_agree_in_2d():
    rng = np.random.default_rng(4)
    Y, mask = random_points(rng, 1100, 2, high=60)
    Y, valid = pareto._points(Y, mask)
    np.testing.assert_array_equal(np.asarray(pareto._front_2d(Y, valid)),
                                  np.asarray(pareto._front_chunked(Y, valid, 256)))


# ----------------------------------------------------------------------------- hypervolume


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_counts_grid_cells(m):
    rng = np.random.default_rng(20 + m)
    for _ in range(6):
        Y, mask = random_points(rng, 15, m, high=7)
        ref = rng.integers(0, 3, size=m).astype(np.float32)
        want = cell_volume(Y, valid_rows(Y, mask), ref)
        assert float(hypervolume(Y, ref, mask)) == want


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_matches_pymoo(m):
    pytest.importorskip("pymoo")
    from pymoo.indicators.hv import HV

    rng = np.random.default_rng(30 + m)
    for shape in ("sphere", "uniform"):
        for _ in range(3):
            Y = rng.random((60, m))
            if shape == "sphere":  # a real front: every point non-dominated
                Y = np.abs(rng.normal(size=(60, m)))
                Y /= np.linalg.norm(Y, axis=1, keepdims=True)
            ref = rng.uniform(-0.2, 0.3, size=m)
            want = HV(ref_point=-ref)(-Y)
            got = float(hypervolume(Y.astype(np.float32), ref.astype(np.float32)))
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_jit_and_vmap_over_seeds_match_per_seed_calls():
    rng = np.random.default_rng(5)
    S, n = 4, 30
    Y = rng.random((S, n, 3)).astype(np.float32)
    mask = rng.random((S, n)) > 0.2
    lo, hi = np.zeros(3, np.float32), np.ones(3, np.float32)

    def everything(y, k):
        return (non_dominated_sort(y, k), pareto_mask(y, k), pareto_mask(y[:, :2], k),
                hypervolume(y, lo, k), hypervolume(y[:, :2], lo[:2], k),
                hypervolume_trajectory(y[:, :2], lo[:2], hi[:2], k), hypervolume_regret(y, y[:5], lo, hi, k))

    batched = jax.jit(jax.vmap(everything))(Y, mask)
    for s in range(S):
        single = everything(Y[s], mask[s])
        for b, one in zip(batched, single):
            np.testing.assert_allclose(np.asarray(b[s]), np.asarray(one), rtol=1e-6, atol=1e-7)

    # and inside a scan, as a strategy would call it
    def step(carry, y):
        return carry + jnp.sum(non_dominated_sort(y) == 0), hypervolume(y, lo)

    total, hvs = jax.jit(lambda ys: jax.lax.scan(step, 0, ys))(Y)
    assert int(total) == sum(int(np.asarray(pareto_mask(y)).sum()) for y in Y)
    np.testing.assert_allclose(np.asarray(hvs), [float(hypervolume(y, lo)) for y in Y], rtol=1e-6)


@pytest.mark.parametrize("m,n", [(2, 200), (3, 40)])
def test_hypervolume_trajectory_is_the_prefix_hypervolume(m, n):
    rng = np.random.default_rng(6)
    Y = rng.normal(size=(n, m)).astype(np.float32)
    mask = rng.random(n) > 0.1
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    traj = np.asarray(hypervolume_trajectory(Y, lo, hi, mask))
    assert traj.shape == (n,)
    assert np.all(np.diff(traj) >= 0)
    assert traj[-1] == pytest.approx(float(normalised_hypervolume(Y, lo, hi, mask)), rel=1e-6)
    for t in (0, n // 3, n // 2):
        want = float(normalised_hypervolume(Y, lo, hi, mask & (np.arange(n) <= t)))
        assert traj[t] == pytest.approx(want, rel=1e-6, abs=1e-7)
    assert 0 < traj[-1] <= 1


# ----------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    Y2 = np.ones((3, 2))
    with pytest.raises(JnasError, match=r"^Y:.*expected 2 or 3"):
        hypervolume(np.ones((3, 4)), np.zeros(4))
    with pytest.raises(JnasError, match=r"^Y:"):
        hypervolume_trajectory(np.ones((3, 1)), 0.0, 1.0)
    with pytest.raises(JnasError, match=r"^ref:"):
        hypervolume(Y2, np.zeros(3))
    for f in (pareto_mask, non_dominated_sort, domination_matrix):
        with pytest.raises(JnasError, match=r"^Y:"):
            f(np.ones(3))
    with pytest.raises(JnasError, match=r"^Y:"):
        hypervolume(np.ones((2, 3, 2)), 0.0)
    with pytest.raises(JnasError, match=r"^mask:"):
        pareto_mask(Y2, np.ones(4, bool))
    with pytest.raises(JnasError, match=r"^lo:"):
        normalise(Y2, np.zeros(3), np.ones(2))
    with pytest.raises(JnasError, match=r"^true_front:"):
        hypervolume_regret(Y2, np.ones((2, 3)), 0.0, 1.0)
    with pytest.raises(JnasError, match=r"^a, b:"):
        dominates(np.ones(2), np.ones(3))


# ----------------------------------------------------------------------------- the NAS-Bench-201 table


@pytest.fixture(scope="module")
def c10():
    from jnas.benchmarks import get_benchmark

    return get_benchmark("nb201/cifar10")


def test_nb201_accuracy_latency_front(c10):
    assert not c10.metrics[("edgegpu_latency", None)].higher_is_better
    Y = np.stack([c10.column("valid_acc", 200), -c10.column("edgegpu_latency")], axis=1)
    assert Y.shape == (15625, 2) and np.isfinite(Y).all()
    front = np.asarray(pareto_mask(Y))
    assert_is_front(Y, front)
    assert 2 <= front.sum() < 200

    lo, hi = Y.min(axis=0), Y.max(axis=0)
    F = Y[front]
    assert abs(float(hypervolume_regret(F, F, lo, hi))) < 1e-6
    assert abs(float(hypervolume_regret(Y, F, lo, hi))) < 1e-6
    rows = np.random.default_rng(0).choice(len(Y), 150, replace=False)
    regret = float(hypervolume_regret(Y[rows], F, lo, hi))
    assert 0 < regret < 1
    assert 0 < float(normalised_hypervolume(F, lo, hi)) <= 1


def test_nb201_three_objective_front_uses_the_chunked_path(c10):
    Y = np.stack([c10.column("valid_acc", 200), -c10.column("edgegpu_latency"),
                  -c10.column("edgegpu_energy")], axis=1)
    front = np.asarray(pareto_mask(Y))
    assert_is_front(Y, front)
