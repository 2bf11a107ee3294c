"""Batched image augmentation for CIFAR-style training: pure, jitted functions of a key.

All functions take images ``[B, H, W, C]`` (channels last) and draw one random
choice per image from ``key``; the same key gives the same output. They compose
under ``jax.jit`` and ``jax.vmap`` (e.g. over a leading device or seed axis).

The training pipeline, :func:`augment_batch`, runs in this order, the standard
one for CIFAR (DARTS, NAS-Bench-201, DeVries & Taylor 2017):

1. :func:`random_crop` on the ``uint8`` pixels: zero padding is black;
2. :func:`random_flip` (horizontal);
3. :func:`normalize` to ``float32`` ``(x / 255 - mean) / std``;
4. :func:`cutout` last, on normalized values, so a cut-out pixel is ``0.0``
   in normalized space, i.e. the dataset's mean colour.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jnas.errors import bad_argument, check_int


def _check_images(name: str, x, *, uint8: bool = False) -> None:
    if x.ndim != 4:
        raise bad_argument(name, f"{x.dtype}{list(x.shape)}", "images [B, H, W, C]")
    if uint8 and x.dtype != jnp.uint8:
        raise bad_argument(name, f"{x.dtype}{list(x.shape)}", "uint8 pixels [B, H, W, C]")


def _uniform_ints(key: jax.Array, shape: tuple[int, ...], high) -> jax.Array:
    """int32 uniform on ``[0, high)`` (``high`` broadcasts against ``shape``).

    One PRNG draw, where ``jax.random.randint`` splits the key and draws twice:
    each threefry call adds noticeably to XLA compile time on CPU (this halved
    ``augment_batch``'s). ``u`` takes 2**23 evenly spaced values, so the bias is
    of order ``high / 2**23``, irrelevant for pixel positions.
    """
    high = jnp.asarray(high, jnp.int32)
    ints = jnp.floor(jax.random.uniform(key, shape) * high).astype(jnp.int32)
    return jnp.minimum(ints, high - 1)  # float rounding can reach `high`


@functools.partial(jax.jit, static_argnames=("pad",))
def random_crop(key: jax.Array, x: jax.Array, pad: int = 4) -> jax.Array:
    """Zero-pad ``pad`` pixels on each side of H and W, then crop back to ``[H, W]``.

    Each image gets its own offset ``(dy, dx)``, uniform over ``{0, ..., 2 * pad}``
    squared, taken in the padded image; ``(pad, pad)`` is the identity and
    ``pad=0`` returns ``x`` unchanged. ``x``: ``[B, H, W, C]``, any dtype; the
    output has the same shape and dtype.
    """
    _check_images("x", x)
    pad = check_int("pad", pad, 0, expected="an integer >= 0 (pixels)")
    if pad == 0:
        return x
    b, h, w, c = x.shape
    offsets = _uniform_ints(key, (b, 2), 2 * pad + 1)
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (h, w, c))
    return jax.vmap(crop)(padded, offsets)


@jax.jit
def random_flip(key: jax.Array, x: jax.Array) -> jax.Array:
    """Mirror each image left-right with probability 1/2. ``x``: ``[B, H, W, C]``, any dtype."""
    _check_images("x", x)
    flip = jax.random.bernoulli(key, 0.5, (x.shape[0],))
    return jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)


@functools.partial(jax.jit, static_argnames=("size",))
def cutout(key: jax.Array, x: jax.Array, size: int) -> jax.Array:
    """Set one ``size`` x ``size`` square per image to zero (all channels), as in DeVries & Taylor (2017).

    The square's centre ``(cy, cx)`` is uniform over the image's pixels; it covers
    rows ``[cy - size // 2, cy - size // 2 + size)`` and the same for columns,
    clipped at the border, so near the edge fewer pixels are cut. ``size=0``
    returns ``x`` unchanged. ``x``: ``[B, H, W, C]``, any dtype. In
    :func:`augment_batch` it runs on normalized values: zero is the mean colour.
    """
    _check_images("x", x)
    size = check_int("size", size, 0, expected="an integer >= 0 (pixels)")
    if size == 0:
        return x
    b, h, w, _ = x.shape
    centre = _uniform_ints(key, (b, 2), (h, w))
    top, left = centre[:, :1] - size // 2, centre[:, 1:] - size // 2  # [B, 1] each
    rows, cols = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
    in_rows = (rows >= top) & (rows < top + size)  # [B, H]
    in_cols = (cols >= left) & (cols < left + size)  # [B, W]
    cut = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    return jnp.where(cut, jnp.zeros((), x.dtype), x)


def _stat(name: str, value, channels: int) -> jax.Array:
    value = jnp.asarray(value, jnp.float32)
    if value.shape not in ((), (channels,)):
        raise bad_argument(name, list(value.shape), f"a scalar or [{channels}] (one value per channel)")
    return value


@jax.jit
def normalize(x: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """``float32 (x / 255 - mean) / std``.

    ``x``: ``uint8 [B, H, W, C]``; ``mean``, ``std``: ``[C]`` (or scalars) in pixel/255 units.
    """
    _check_images("x", x, uint8=True)
    mean, std = _stat("mean", mean, x.shape[-1]), _stat("std", std, x.shape[-1])
    return (x.astype(jnp.float32) / 255.0 - mean) / std


@functools.partial(jax.jit, static_argnames=("crop_pad", "flip", "cutout_size"))
def augment_batch(
    key: jax.Array,
    x: jax.Array,
    *,
    mean: jax.Array,
    std: jax.Array,
    crop_pad: int = 4,
    flip: bool = True,
    cutout_size: int = 0,
) -> jax.Array:
    """Training view of a batch: crop, flip, normalize, then cutout (see the module docstring).

    ``x``: ``uint8 [B, H, W, C]``; ``mean``/``std``: ``[C]`` in pixel/255 units
    (e.g. from ``jnas.train.data.dataset_stats``). ``crop_pad=0``, ``flip=False``
    and ``cutout_size=0`` switch the steps off. Returns ``float32 [B, H, W, C]``.
    """
    _check_images("x", x, uint8=True)
    k_crop, k_flip, k_cut = jax.random.split(key, 3)
    x = random_crop(k_crop, x, pad=crop_pad)
    if flip:
        x = random_flip(k_flip, x)
    x = normalize(x, mean, std)
    return cutout(k_cut, x, size=cutout_size)


@jax.jit
def eval_batch(x: jax.Array, *, mean: jax.Array, std: jax.Array) -> jax.Array:
    """Evaluation view of a batch: :func:`normalize` only. ``uint8 [B, H, W, C]`` -> ``float32``."""
    return normalize(x, mean, std)
