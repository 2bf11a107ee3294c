"""A cheap counter-based PRNG for simulated searches, usable through ``jax.random``.

Tabular NAS runs spend their time drawing a handful of random integers per
query for thousands of seeds at once. On CPU, JAX's default threefry
generator dominates both the run time and the compile time of such scans
(each call site inlines twenty rounds of mixing). ``HASH`` is a
``jax.random`` implementation whose keys are ``uint32[2]`` and whose words
are two rounds of a 32-bit avalanche hash over (counter, key, domain tag):
a counter-based design like threefry or Philox, with fewer rounds. It is
meant for search simulation, not cryptography; ``tests/test_prng.py`` checks
uniformity, stream independence and key derivation.

Use it like any implementation: ``jax.random.key(seed, impl=jnas.prng.HASH)``.
``get_impl("threefry")`` selects JAX's default instead.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.extend.random import define_prng_impl

from jnas.errors import JnasError

_GOLDEN = 0x9E3779B9
# domain tags keep split keys, bits and 64-bit halves on separate streams
_TAG_SEED_A, _TAG_SEED_B = 0x243F6A88, 0x85A308D3
_TAG_SPLIT_A, _TAG_SPLIT_B = 0x13198A2E, 0x03707344
_TAG_BITS, _TAG_BITS_HI = 0xA4093822, 0x299F31D0
_TAG_FOLD = 0xEC4E6C89


def hash32(x):
    """Avalanche mixer on ``uint32`` arrays (xor-shift / multiply; products wrap)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _words(key, shape, tag: int):
    n = math.prod(shape)
    c = jnp.arange(n, dtype=jnp.uint32).reshape(shape)
    x = hash32((c * jnp.uint32(_GOLDEN)) ^ key[0] ^ jnp.uint32(tag))
    return hash32(x + key[1])


def _seed(seed):
    s = jnp.asarray(seed).astype(jnp.uint32)
    return jnp.stack([hash32(s ^ jnp.uint32(_TAG_SEED_A)), hash32(hash32(s) + jnp.uint32(_TAG_SEED_B))])


def _split(key, shape):
    n = math.prod(shape)
    a = _words(key, (n,), _TAG_SPLIT_A)
    b = _words(key, (n,), _TAG_SPLIT_B)
    return jnp.stack([a, hash32(b ^ a)], axis=-1).reshape(*shape, 2)


def _random_bits(key, bit_width, shape):
    w = _words(key, shape, _TAG_BITS)
    if bit_width == 32:
        return w
    if bit_width == 16:
        return (w >> 16).astype(jnp.uint16)
    if bit_width == 8:
        return (w >> 24).astype(jnp.uint8)
    hi = _words(key, shape, _TAG_BITS_HI)
    return (hi.astype(jnp.uint64) << 32) | w.astype(jnp.uint64)


def _fold_in(key, data):
    d = jnp.asarray(data).astype(jnp.uint32)
    return jnp.stack([hash32(key[0] ^ hash32(d ^ jnp.uint32(_TAG_FOLD))), hash32(key[1] + hash32(d))])


HASH = define_prng_impl(
    key_shape=(2,), seed=_seed, split=_split, random_bits=_random_bits, fold_in=_fold_in, name="jnas_hash"
)

IMPLS = {"hash": HASH, "threefry": "threefry2x32"}


def get_impl(name: str):
    """The PRNG implementation called ``name`` (``hash`` or ``threefry``)."""
    if name not in IMPLS:
        raise JnasError(f"prng: got {name!r}, expected one of {', '.join(IMPLS)}")
    return IMPLS[name]
