"""Cholesky factorisation and triangular solves that stay safe under ``vmap`` on XLA:CPU.

Why this module exists: on the CPU backend, jaxlib's LAPACK kernels
(``potrf``, ``trsm``) split a *batched* call across XLA's intra-op thread
pool and block the calling pool worker until the pieces finish. When two
independent batched factorisations or solves are ready at once — which
happens whenever seeds are vmapped through a GP fit — each occupies a
worker and waits for pieces that no free worker can run. On the 2-core CI
machine the process then sits at 0 % CPU forever (measured with jax 0.10.2:
two independent ``vmap(cholesky)`` calls over a batch of 3 or more
150 × 150 matrices inside a ``scan`` hang every time; a batch of 1 or 2, or
a single batched call, does not; ``--xla_cpu_multi_thread_eigen=false``
does not help).

The functions here compute the same results, but on CPU a batch of
matrices goes through ``lax.map`` (``jnas.batching``): every LAPACK call
sees one matrix and runs inline on its worker, never waiting on the pool;
this costs nothing measurable (ten 150 × 150 factorisations and inverses
per step: 0.23 ms looped vs 0.21 ms batched). Other platforms keep the
native batched kernels. The batching is intercepted with ``custom_vmap``,
so it also applies when the batch comes from an enclosing ``vmap`` (seeds,
restarts, hyperparameter samples). Derivatives are defined by
``custom_jvp`` with the usual formulas, written with the native kernels
(tangent computations are not on the search loops' path).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular as _native_solve

from jnas.batching import map_batched, sequential_vmap

__all__ = ["cholesky", "solve_triangular", "cho_solve"]


# ---------------------------------------------------------------- Cholesky


_chol2 = sequential_vmap(jnp.linalg.cholesky)


@jax.custom_jvp
def _chol(a):
    return _chol2(a)


@_chol.defjvp
def _chol_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    low = _chol(a)
    da = (da + da.T) / 2  # the factorisation reads a symmetric matrix
    # dL = L·Φ(L⁻¹ dA L⁻ᵀ), Φ: the lower triangle with the diagonal halved
    tmp = _native_solve(low, _native_solve(low, da, lower=True).T, lower=True)
    phi = jnp.tril(tmp) - jnp.diag(jnp.diagonal(tmp)) / 2
    return low, low @ phi


def cholesky(a: jax.Array) -> jax.Array:
    """Lower Cholesky factor of symmetric positive-definite ``a`` (float[..., n, n]).

    Like ``jnp.linalg.cholesky`` (NaNs where ``a`` is not positive definite),
    safe to batch on CPU (module docstring).
    """
    a = jnp.asarray(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"cholesky: expected a square matrix or a batch of them, got shape {a.shape}")
    f = _chol
    for _ in range(a.ndim - 2):
        f = jax.vmap(f)
    return f(a)


# ---------------------------------------------------------------- triangular solves


@functools.lru_cache(maxsize=None)
def _solver(lower: bool, trans: int):
    """``solve(a[n, n], b[n] or b[n, k])`` for one (lower, trans) setting, batch-safe and differentiable."""
    native = functools.partial(_native_solve, lower=lower, trans=trans)
    solve2 = jax.custom_batching.custom_vmap(native)

    @solve2.def_vmap
    def solve2_vmap(axis_size, in_batched, a, b):
        if not in_batched[0]:
            # one matrix, many right-hand sides: the native rule folds the batch into columns (one LAPACK call)
            return jax.vmap(native, in_axes=(None, 0))(a, b), True
        return map_batched(solve2, native, axis_size, in_batched, (a, b))

    @jax.custom_jvp
    def solve(a, b):
        return solve2(a, b)

    @solve.defjvp
    def solve_jvp(primals, tangents):
        (a, b), (da, db) = primals, tangents
        x = solve(a, b)
        da = jnp.tril(da) if lower else jnp.triu(da)  # only the triangle is read
        op_da = da.T if trans else da
        rhs = db - (op_da @ x)
        return x, native(a, rhs)

    return solve


def solve_triangular(a: jax.Array, b: jax.Array, lower: bool = False, trans: int = 0) -> jax.Array:
    """``x`` with ``op(a) x = b``, ``a`` triangular (float[..., n, n]), ``b`` float[..., n] or [..., n, k].

    ``op`` is the identity (``trans=0``) or the transpose (``trans=1``); only
    the ``lower`` (or upper) triangle of ``a`` is read. Leading batch
    dimensions must match between ``a`` and ``b``. Same results as
    ``jax.scipy.linalg.solve_triangular``, safe to batch on CPU.
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    if trans not in (0, 1):
        raise ValueError(f"solve_triangular: trans must be 0 or 1, got {trans!r}")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"solve_triangular: expected a square matrix or a batch of them, got shape {a.shape}")
    batch = a.shape[:-2]
    if b.shape[: len(batch)] != batch or b.ndim not in (a.ndim - 1, a.ndim) or b.shape[len(batch)] != a.shape[-1]:
        raise ValueError(f"solve_triangular: b of shape {b.shape} does not match a of shape {a.shape}")
    f = _solver(bool(lower), int(trans))
    for _ in batch:
        f = jax.vmap(f)
    return f(a, b)


def cho_solve(chol: jax.Array, b: jax.Array) -> jax.Array:
    """``x`` with ``(L Lᵀ) x = b`` from the lower factor ``chol`` (float[..., n, n]); shapes as ``solve_triangular``."""
    return solve_triangular(chol, solve_triangular(chol, b, lower=True), lower=True, trans=1)
