"""BOHB's KDE model (``jnas.strategies.kde``): normalisation, masking, bandwidths, sampling, proposals, splits."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.strategies.kde import bandwidths, log_density, propose, sample, split_good_bad


def _points(rng, n, card):
    """``float32[n, D]``: uniform continuous coordinates, uniform codes, zeros for constants."""
    cols = [rng.uniform(size=n) if c == 0 else rng.integers(0, max(c, 1), size=n) for c in card]
    return np.stack(cols, 1).astype(np.float32)


def _trapezoid(y, x):
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_categorical_density_sums_to_one(seed):
    rng = np.random.default_rng(seed)
    card = np.array([3, 1, 4], np.int32)
    points = _points(rng, 7, card)
    mask = jnp.asarray(rng.uniform(size=7) < 0.7).at[0].set(True)
    bw = jnp.asarray([rng.uniform(0.01, 2 / 3), 1e-3, rng.uniform(0.01, 3 / 4)], jnp.float32)
    grid = np.array([(a, 0, b) for a, b in itertools.product(range(3), range(4))], np.float32)
    dens = np.exp(np.asarray(log_density(jnp.asarray(grid), jnp.asarray(points), mask, bw, card)))
    assert dens.sum() == pytest.approx(1.0, abs=1e-5)
    # the kernel itself: one row, one categorical coordinate → 1 − bw on the code, bw / (c − 1) elsewhere
    one = np.exp(np.asarray(log_density(jnp.arange(4.0)[:, None], jnp.array([[2.0]]), jnp.array([True]),
                                        jnp.array([0.3]), np.array([4], np.int32))))
    np.testing.assert_allclose(one, [0.1, 0.1, 0.7, 0.1], rtol=1e-5)


@pytest.mark.parametrize("bw", [0.02, 0.1, 0.5])
def test_continuous_density_integrates_to_one_near_boundaries(bw):
    card = np.array([0, 3], np.int32)
    points = jnp.array([[0.0, 0], [0.005, 1], [0.5, 2], [0.99, 0], [1.0, 2]], jnp.float32)
    mask = jnp.ones(5, bool)
    grid = np.linspace(0.0, 1.0, 20001, dtype=np.float32)
    total = 0.0
    for code in range(3):
        x = jnp.stack([jnp.asarray(grid), jnp.full(grid.shape, float(code))], 1)
        dens = np.exp(np.asarray(log_density(x, points, mask, jnp.array([bw, 0.4]), card), np.float64))
        total += _trapezoid(dens, grid.astype(np.float64))
    assert total == pytest.approx(1.0, abs=2e-3)
    # one point on the boundary: an untruncated Gaussian would put only half its mass in [0, 1]
    x = jnp.asarray(grid)[:, None]
    dens = np.exp(np.asarray(log_density(x, jnp.array([[0.0]]), jnp.array([True]), jnp.array([bw]),
                                         np.array([0], np.int32)), np.float64))
    assert _trapezoid(dens, grid.astype(np.float64)) == pytest.approx(1.0, abs=2e-3)


def test_masked_out_rows_have_no_effect():
    rng = np.random.default_rng(3)
    card = np.array([0, 5, 1, 0], np.int32)
    points = _points(rng, 10, card)
    mask = np.zeros(10, bool)
    mask[[1, 4, 5, 8]] = True
    other = points.copy()
    other[~mask] = _points(np.random.default_rng(4), 6, card)
    x = jnp.asarray(_points(rng, 6, card))
    bw1, bw2 = bandwidths(jnp.asarray(points), mask, card), bandwidths(jnp.asarray(other), mask, card)
    np.testing.assert_array_equal(bw1, bw2)
    np.testing.assert_allclose(log_density(x, jnp.asarray(points), mask, bw1, card),
                               log_density(x, jnp.asarray(other), mask, bw1, card), rtol=1e-6)
    # ... while the masked rows do matter (the comparison above is not vacuous)
    moved = points.copy()
    moved[1] = other[0]
    assert not np.allclose(log_density(x, jnp.asarray(moved), mask, bw1, card),
                           log_density(x, jnp.asarray(points), mask, bw1, card))


def test_bandwidths_match_normal_reference_and_clip():
    rng = np.random.default_rng(5)
    card = np.array([0, 0, 6, 3], np.int32)
    points = _points(rng, 12, card)
    mask = rng.uniform(size=12) < 0.8
    sel = points[mask].astype(np.float64)
    want = 1.06 * sel.std(0) * mask.sum() ** (-1 / (4 + 4))
    want = np.maximum(want, 1e-3)
    want[2:] = np.minimum(want[2:], (card[2:] - 1) / card[2:])
    np.testing.assert_allclose(bandwidths(jnp.asarray(points), mask, card), want, rtol=1e-5)
    # categorical upper clip: codes {0, 2} of 3 → raw 1.06 · 1 · 2^(-1/5) ≈ 0.92 > 2/3
    pts = jnp.array([[0.0], [2.0]])
    assert float(bandwidths(pts, jnp.array([True, True]), np.array([3], np.int32))[0]) == pytest.approx(2 / 3)
    # lower clip: n = 1 and n = 0 give min_bandwidth; so does a constant coordinate
    card2 = np.array([0, 4, 1], np.int32)
    pts2 = jnp.asarray(_points(rng, 4, card2))
    for m in (np.array([0, 0, 1, 0], bool), np.zeros(4, bool)):
        np.testing.assert_allclose(bandwidths(pts2, m, card2, min_bandwidth=0.05), 0.05)
    assert float(bandwidths(pts2, np.ones(4, bool), card2, min_bandwidth=0.05)[2]) == pytest.approx(0.05)


def test_sample_in_range_and_tiny_bandwidth_reproduces_rows():
    rng = np.random.default_rng(6)
    card = np.array([0, 4, 1, 0], np.int32)
    points = _points(rng, 8, card)
    points[0, 0], points[1, 3] = 0.0, 1.0  # rows on the boundary
    mask = np.array([1, 1, 0, 1, 0, 1, 0, 0], bool)
    points[~mask] = 0.5  # non-members are never sampled: their continuous values appear in no draw
    pts = jnp.asarray(points)
    x = np.asarray(sample(jax.random.key(0), 500, pts, mask, jnp.array([0.3, 0.9, 1e-3, 0.3]), card))
    assert x.shape == (500, 4) and x.dtype == np.float32
    assert (x[:, [0, 3]] >= 0).all() and (x[:, [0, 3]] <= 1).all()
    assert set(np.unique(x[:, 1])) == {0.0, 1.0, 2.0, 3.0}  # b = 1: all codes, none out of range
    assert (x[:, 2] == 0).all()
    x = np.asarray(sample(jax.random.key(1), 500, pts, mask, jnp.full(4, 1e-6), card))
    members = points[mask]
    dist = np.abs(x[:, None, :] - members[None]).max(-1)  # [500, members]
    nearest = dist.argmin(1)
    assert (dist.min(1) < 5e-3).all()
    np.testing.assert_array_equal(x[:, 1], members[nearest, 1])  # categorical: the row's code exactly
    assert len(np.unique(nearest)) == len(members)  # every member row gets picked


def test_sample_categorical_keep_probability():
    card = np.array([5], np.int32)
    pts, mask = jnp.array([[3.0]]), jnp.array([True])
    x = np.asarray(sample(jax.random.key(2), 20000, pts, mask, jnp.array([0.1]), card))[:, 0]
    # b = 3 · 0.1 = 0.3: keep 0.7, plus 0.3 / 5 from the uniform redraw
    assert np.mean(x == 3) == pytest.approx(0.7 + 0.3 / 5, abs=0.015)
    assert np.mean(x == 0) == pytest.approx(0.3 / 5, abs=0.01)


def test_split_good_bad_sizes_overlap_and_failures():
    values = jnp.array([0.3, -jnp.inf, 0.9, 0.1, 0.5, 0.7, 0.2, 0.0, 0.8, 0.6], jnp.float32)
    mask = jnp.ones(10, bool)
    good, bad = split_good_bad(values, mask, 0.15, n_min=2)  # n_good = max(2, 2) = 2, n_bad = 8
    np.testing.assert_array_equal(np.flatnonzero(good), [2, 8])
    assert int(bad.sum()) == 8 and not (good & bad).any() and bool(bad[1])
    # 0.15 · 40 = 6 exactly (a float32 product rounds up to 7)
    g40, b40 = split_good_bad(jnp.arange(40.0), jnp.ones(40, bool), 0.15, n_min=2)
    assert int(g40.sum()) == 6 and int(b40.sum()) == 34
    # small n: n = 3 < 2 · n_min → both sets hold n_min = 2 rows and overlap; masked-out rows are never chosen
    m3 = jnp.array([1, 0, 1, 0, 0, 0, 0, 0, 1, 0], bool)
    good, bad = split_good_bad(values, m3, 0.15, n_min=2)
    np.testing.assert_array_equal(np.flatnonzero(good), [2, 8])
    np.testing.assert_array_equal(np.flatnonzero(bad), [0, 8])
    # n < n_min: every member is in both sets
    m1 = jnp.zeros(10, bool).at[4].set(True)
    good, bad = split_good_bad(values, m1, 0.15, n_min=3)
    np.testing.assert_array_equal(good, m1)
    np.testing.assert_array_equal(bad, m1)
    # ties keep row order (earlier = better); -inf failures are the worst
    tied = jnp.array([1.0, 1.0, 1.0, -jnp.inf, -jnp.inf, 0.0], jnp.float32)
    good, bad = split_good_bad(tied, jnp.ones(6, bool), 0.3, n_min=1)
    np.testing.assert_array_equal(np.flatnonzero(good), [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(bad), [2, 3, 4, 5])


def test_split_under_jit_with_traced_count():
    split = jax.jit(lambda v, m: split_good_bad(v, m, 0.15, n_min=2))
    values = jnp.arange(20.0)
    for n in (0, 1, 3, 4, 13, 20):
        good, bad = split(values, jnp.arange(20) < n)
        n_good = max(2, int(np.ceil(0.15 * n))) if n else 0
        assert int(good.sum()) == min(n, n_good)
        assert int(bad.sum()) == min(n, max(2, n - n_good))
        assert (np.flatnonzero(good) >= n - int(good.sum())).all()  # the largest values


def _toy(card, f, seed=0, n=40):
    rng = np.random.default_rng(seed)
    points = _points(rng, n, card)
    values = jnp.asarray(f(points[:, 0]), jnp.float32)
    good, bad = split_good_bad(values, jnp.ones(n, bool), 0.15, n_min=len(card) + 1)
    fn = jax.jit(jax.vmap(lambda k: propose(k, 64, jnp.asarray(points), good, bad, card)))
    best, score = fn(jax.random.split(jax.random.key(seed), 200))
    return np.asarray(best)[:, 0], np.asarray(score)


def test_propose_continuous_toy_concentrates_on_optimum():
    best, score = _toy(np.array([0], np.int32), lambda x: -((x - 0.8) ** 2))
    assert ((best >= 0) & (best <= 1)).all() and np.isfinite(score).all()
    assert abs(best.mean() - 0.8) < 0.08  # uniform proposals: mean 0.5
    assert np.abs(best - 0.8).mean() < 0.1  # uniform proposals: ≈ 0.34
    assert np.mean(np.abs(best - 0.8) < 0.15) > 0.9


def test_propose_categorical_toy_picks_best_value():
    best, score = _toy(np.array([10], np.int32), lambda x: -((x - 7.0) ** 2))
    assert np.isin(best, np.arange(10)).all() and np.isfinite(score).all()
    # with this seed the good set's mode is 7 (a good set with more 8s than 7s would rightly favour 8)
    assert np.mean(best == 7) > 0.8  # uniform: 0.1
    assert np.isin(best, [6, 7, 8]).all()


def test_jit_and_vmap_agree_with_eager():
    rng = np.random.default_rng(7)
    card = np.array([0, 3, 1], np.int32)
    points = jnp.asarray(_points(rng, 9, card))
    masks = jnp.asarray(rng.uniform(size=(4, 9)) < 0.6).at[:, 0].set(True)
    x = jnp.asarray(_points(rng, 5, card))
    bw = bandwidths(points, masks[0], card)
    np.testing.assert_allclose(jax.jit(lambda p, m: bandwidths(p, m, card))(points, masks[0]), bw, rtol=1e-6)
    ld_one = jax.jit(lambda m: log_density(x, points, m, bandwidths(points, m, card), card))
    ld = jax.vmap(ld_one)(masks)
    assert ld.shape == (4, 5)
    for i in range(4):
        np.testing.assert_allclose(ld[i], ld_one(masks[i]), rtol=1e-5)
    key = jax.random.key(8)
    s = jax.jit(lambda k, m, b: sample(k, 6, points, m, b, card))(key, masks[0], bw)
    np.testing.assert_allclose(s, sample(key, 6, points, masks[0], bw, card), rtol=1e-6)
    best, score = jax.jit(lambda k, g, b: propose(k, 16, points, g, b, card))(key, masks[0], masks[1])
    best_e, score_e = propose(key, 16, points, masks[0], masks[1], card)
    np.testing.assert_allclose(best, best_e, rtol=1e-6)
    assert float(score) == pytest.approx(float(score_e), rel=1e-5)
    # the score is log l − log g under the unwidened bandwidths (the factor only widens the proposal)
    lg = [log_density(best_e[None], points, m, bandwidths(points, m, card), card)[0] for m in masks[:2]]
    assert float(score_e) == pytest.approx(float(lg[0] - lg[1]), rel=1e-5, abs=1e-5)
