"""Keyed pseudo-random permutations of ``[0, n)`` in O(1) memory.

A balanced Feistel network on ``2 * half`` bits (``2**(2*half) >= n``) with a
32-bit integer-hash round function is a bijection of its domain for any round
keys; cycle-walking (re-encrypting until the value falls below ``n``)
restricts it to a bijection of ``[0, n)``. ``permute(round_keys, t)`` for
``t = 0, 1, ...`` therefore enumerates distinct elements: sampling without
replacement at O(1) cost per draw, with nothing stored but the keys.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jnas.prng import hash32

ROUNDS = 6


def round_keys(key: jax.Array) -> jax.Array:
    """``uint32[ROUNDS]`` round keys drawn from a JAX key."""
    return jax.random.bits(key, (ROUNDS,), jnp.uint32)


def _half_bits(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 2)) / 2))


def _encrypt(keys, x, half: int):
    mask = jnp.uint32((1 << half) - 1)
    left, right = x >> half, x & mask
    for i in range(ROUNDS):
        left, right = right, left ^ (hash32(right ^ keys[i]) & mask)
    return (left << half) | right


def permute(keys: jax.Array, t: jax.Array, n: int) -> jax.Array:
    """Element ``t`` of the keyed permutation of ``[0, n)`` (``int32``; ``0 <= t < n``)."""
    half = _half_bits(n)
    x = _encrypt(keys, jnp.asarray(t, jnp.uint32), half)
    x = jax.lax.while_loop(lambda v: v >= n, lambda v: _encrypt(keys, v, half), x)
    return x.astype(jnp.int32)
