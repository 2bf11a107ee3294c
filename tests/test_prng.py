"""The hash PRNG: uniform words, independent streams, distinct derived keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas.errors import JnasError
from jnas.prng import HASH, get_impl


def _chi2_p(counts):
    from math import erf, sqrt

    counts = np.asarray(counts, float)
    exp = counts.sum() / len(counts)
    stat = ((counts - exp) ** 2 / exp).sum()
    k = len(counts) - 1
    z = ((stat / k) ** (1 / 3) - (1 - 2 / (9 * k))) / sqrt(2 / (9 * k))  # Wilson–Hilferty
    return 0.5 * (1 - erf(z / sqrt(2)))


def test_uniform_integers_pass_chi_square():
    x = np.asarray(jax.random.randint(jax.random.key(0, impl=HASH), (200_000,), 0, 100))
    p = _chi2_p(np.bincount(x, minlength=100))
    assert 1e-4 < p


def test_split_streams_are_uncorrelated_and_distinct():
    k = jax.random.key(1, impl=HASH)
    subs = jax.random.split(k, 64)
    u = np.asarray(jax.vmap(lambda s: jax.random.uniform(s, (4096,)))(subs))
    c = np.corrcoef(u)
    off = c[~np.eye(64, dtype=bool)]
    assert np.abs(off).max() < 0.08  # ~5 sigma for n=4096
    data = np.asarray(jax.random.key_data(subs))
    assert len({tuple(r) for r in data}) == 64


def test_seeds_and_fold_in_give_distinct_keys():
    seeds = np.asarray(jax.vmap(lambda s: jax.random.key_data(jax.random.key(s, impl=HASH)))(jnp.arange(10_000)))
    assert len({tuple(r) for r in seeds}) == 10_000
    k = jax.random.key(3, impl=HASH)
    folds = np.asarray(jax.vmap(lambda d: jax.random.key_data(jax.random.fold_in(k, d)))(jnp.arange(1000)))
    assert len({tuple(r) for r in folds}) == 1000


def test_same_key_same_numbers_under_jit_and_vmap():
    k = jax.random.key(7, impl=HASH)
    a = jax.random.uniform(k, (5,))
    b = jax.jit(lambda k: jax.random.uniform(k, (5,)))(k)
    np.testing.assert_array_equal(a, b)


def test_unknown_impl_is_a_clear_error():
    with pytest.raises(JnasError, match="prng: got 'mt'"):
        get_impl("mt")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 1000, 15625, 26206])
def test_feistel_permutation_is_a_bijection_of_range_n(n):
    from jnas.strategies.permutation import permute, round_keys

    for seed in (0, 1):
        keys = round_keys(jax.random.key(seed, impl=HASH))
        out = np.asarray(jax.jit(jax.vmap(lambda t, keys=keys: permute(keys, t, n)))(jnp.arange(n)))
        assert sorted(out.tolist()) == list(range(n))
