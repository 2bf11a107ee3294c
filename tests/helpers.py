"""Shared test scaffolding: fast real networks and a tiny two-class image set."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def real_weights(make, seed=0):
    """``make()`` with weights drawn by numpy (no XLA compilation of initialisers: fast)."""
    graphdef, state = nnx.split(nnx.eval_shape(make))
    rng = np.random.default_rng(seed)

    def fill(path, a):
        name = jax.tree_util.keystr(path)
        if "['var']" in name:
            return jnp.ones(a.shape, a.dtype)
        if "['mean']" in name:
            return jnp.zeros(a.shape, a.dtype)
        if "['scale']" in name:
            return jnp.asarray(1 + 0.1 * rng.normal(size=a.shape), a.dtype)
        fan_in = max(1, int(np.prod(a.shape[:-1])))
        return jnp.asarray(rng.normal(size=a.shape) / np.sqrt(fan_in), a.dtype)

    return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, state))


def apply_jit(module, x):
    """``module(x)`` through one jit (compiles one program instead of one per op)."""
    graphdef, state = nnx.split(module)
    return jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)


def two_class_images(n, seed, size=8):
    """Two classes told apart by brightness (85 vs 170) under Gaussian noise of std 40."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int32)
    base = np.where(y == 1, 170.0, 85.0)[:, None, None, None]
    x = np.clip(base + rng.normal(0.0, 40.0, (n, size, size, 3)), 0, 255).astype(np.uint8)
    return x, y


def tiny_image_npz(folder) -> str:
    """Write 48 learnable 8×8 images of 3 classes (brightness bands) to ``folder/tiny.npz``, the first 16 also
    as the test split; returns the path (a `--data` value)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 48)
    x = (rng.integers(0, 60, (48, 8, 8, 3)) + 60 * y[:, None, None, None]).astype(np.uint8)
    path = folder / "tiny.npz"
    np.savez(path, x_train=x, y_train=y.astype(np.int32), x_test=x[:16], y_test=y[:16].astype(np.int32))
    return str(path)
