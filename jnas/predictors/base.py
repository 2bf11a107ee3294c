"""The predictor protocol shared by every surrogate.

``params = p.fit(key, X, y, mask=None)``; ``mean, var = p.predict(params, X)``.

* ``X`` is a pytree of arrays with a leading axis of ``n`` architectures:
  a float feature matrix ``float[n, d]`` for vector encodings, or graph
  tensors ``(A float[n, v, v], X float[n, v, f], node_mask bool[n, v])``
  for the GCN.
* ``y`` is ``float[n]``; higher is better.
* ``mask`` (``bool[n]``, default all True) marks which rows are real
  observations: strategies keep observations in fixed-capacity buffers so
  that fitting is jittable inside a ``lax.scan``; masked rows must not
  influence the fit.
* ``predict`` returns the predictive mean and variance, ``float[m]`` each
  (variance 0 for point predictors). It is vmappable over candidates and
  ``score_in_chunks`` streams any number of candidates through one compiled
  function.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


class Predictor:
    """Base class: ``fit`` and ``predict`` are pure and jittable (the predictor object is static)."""

    name: str = ""

    def fit(self, key: jax.Array, X, y: jax.Array, mask: jax.Array | None = None):
        raise NotImplementedError

    def predict(self, params, X) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other) -> bool:
        return self is other


def full_mask(y: jax.Array, mask: jax.Array | None) -> jax.Array:
    """``mask`` or all-True of ``y``'s length."""
    return jnp.ones(y.shape[0], bool) if mask is None else mask


def check_targets(n: int, y, mask) -> tuple[jax.Array, jax.Array]:
    """Validate ``y`` (``float[n]``) and ``mask`` (``bool[n]`` or None) for ``n`` inputs; returns both as arrays."""
    from jnas.errors import bad_argument

    y = jnp.asarray(y)
    if y.shape != (n,):
        raise bad_argument("y", y.shape, f"a float[{n}] vector, one target per row of X")
    mask = full_mask(y, None if mask is None else jnp.asarray(mask))
    if mask.shape != y.shape:
        raise bad_argument("mask", mask.shape, f"a bool[{n}] vector like y")
    return y, mask


def score_in_chunks(predict, params, X, chunk: int = 4096) -> tuple[jax.Array, jax.Array]:
    """Predict for any number of candidates in fixed-size chunks with one compiled function.

    ``predict(params, X_chunk) -> (mean, var)``; ``X`` is a pytree with leading
    axis ``n``. The last chunk is padded (by repeating row 0) and trimmed, so
    every chunk has the same shape and compiles once; chunks run under
    ``lax.map`` (no Python loop per chunk). The whole call is jitted with
    ``predict`` and ``chunk`` static and cached per input shape, so an eager
    call compiles once (pass the same ``predict`` object, e.g. a predictor's
    bound ``predict``, to reuse it: a new lambda per call compiles anew).

    Called eagerly on a machine with several local devices (GPUs, TPU
    cores), each chunk's rows are sharded over all of them (the chunk is
    rounded up to a multiple of the device count), so scoring a whole space
    uses every device; traced inside another jitted function it leaves
    placement to the caller.
    """
    mesh = None
    traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((params, X)))
    if not traced and len(jax.local_devices()) > 1:
        from jax.sharding import Mesh

        mesh = Mesh(jax.local_devices(), ("rows",))
        chunk = -(-chunk // mesh.size) * mesh.size
    try:
        hash(predict)
    except TypeError:  # cannot be a static argument: run it traced but uncached
        return _chunked(predict, chunk, params, X, mesh)
    return _chunked_jit(predict, chunk, params, X, mesh)


def _chunked(predict, chunk: int, params, X, mesh=None) -> tuple[jax.Array, jax.Array]:
    """``score_in_chunks``'s body: pad to whole chunks, ``lax.map`` over them (rows sharded over ``mesh``), trim."""
    n = jax.tree.leaves(X)[0].shape[0]
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n

    def padded(x):
        if pad:
            x = jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)])
        x = x.reshape((n_chunks, chunk) + x.shape[1:])
        if mesh is not None:
            from jax.sharding import NamedSharding, PartitionSpec

            x = jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec(None, "rows")))
        return x

    mean, var = jax.lax.map(lambda xc: predict(params, xc), jax.tree.map(padded, X))
    return mean.reshape(-1)[:n], var.reshape(-1)[:n]


_chunked_jit = jax.jit(_chunked, static_argnums=(0, 1, 4))
