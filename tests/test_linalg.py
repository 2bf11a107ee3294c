"""jnas.linalg and jnas.batching: same values and derivatives as JAX's own, and no thread-pool deadlock on CPU."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.linalg import solve_triangular as native_solve

from jnas import linalg
from jnas.batching import sequential_vmap


def _spd(key, shape):
    x = jax.random.normal(key, shape)
    return x @ jnp.swapaxes(x, -1, -2) + shape[-1] * jnp.eye(shape[-1])


def test_cholesky_matches_jax_for_any_batching():
    k = _spd(jax.random.key(0), (3, 4, 6, 6))
    ref = jnp.linalg.cholesky(k)
    np.testing.assert_allclose(linalg.cholesky(k), ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.vmap(linalg.cholesky))(k), ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.vmap(linalg.cholesky))(k[0]), ref[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("trans", [0, 1])
def test_solve_triangular_matches_jax(lower, trans):
    c = jnp.linalg.cholesky(_spd(jax.random.key(1), (4, 6, 6)))
    a = c if lower else jnp.swapaxes(c, -1, -2)
    b = jax.random.normal(jax.random.key(2), (4, 6, 3))

    def ref(a_, b_):
        return native_solve(a_, b_, lower=lower, trans=trans)

    np.testing.assert_allclose(linalg.solve_triangular(a, b, lower=lower, trans=trans), jax.vmap(ref)(a, b),
                               rtol=1e-5, atol=1e-5)
    # batched matrix with a shared right-hand side, and the reverse
    got = jax.vmap(lambda m: linalg.solve_triangular(m, b[0], lower=lower, trans=trans))(a)
    np.testing.assert_allclose(got, jax.vmap(lambda m: ref(m, b[0]))(a), rtol=1e-5, atol=1e-5)
    got = jax.vmap(lambda r: linalg.solve_triangular(a[0], r, lower=lower, trans=trans))(b)
    np.testing.assert_allclose(got, jax.vmap(lambda r: ref(a[0], r))(b), rtol=1e-5, atol=1e-5)
    # a vector right-hand side
    np.testing.assert_allclose(linalg.solve_triangular(a[0], b[0, :, 0], lower=lower, trans=trans),
                               ref(a[0], b[0, :, 0]), rtol=1e-5, atol=1e-5)


def test_derivatives_match_jax():
    k = _spd(jax.random.key(3), (5, 5))
    b = jax.random.normal(jax.random.key(4), (5, 2))

    def loss(chol, solve, k_, b_):
        c = chol(k_)
        return jnp.sum(solve(c, b_, lower=True) ** 2) + jnp.sum(jnp.log(jnp.diagonal(c)))

    ours = jax.grad(lambda k_, b_: loss(linalg.cholesky, linalg.solve_triangular, k_, b_), (0, 1))(k, b)
    ref = jax.grad(lambda k_, b_: loss(jnp.linalg.cholesky, native_solve, k_, b_), (0, 1))(k, b)
    for o, r in zip(ours, ref):
        np.testing.assert_allclose(o, r, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(linalg.cho_solve(jnp.linalg.cholesky(k), b), jnp.linalg.solve(k, b),
                               rtol=1e-4, atol=1e-5)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="square"):
        linalg.cholesky(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="does not match"):
        linalg.solve_triangular(jnp.eye(3), jnp.ones((4,)))
    with pytest.raises(ValueError, match="trans"):
        linalg.solve_triangular(jnp.eye(3), jnp.ones((3,)), trans=2)


def test_sequential_vmap_loops_on_cpu_and_keeps_values():
    def f(x, y):
        # a data-dependent loop: vmapped, every member would run as long as the slowest
        return jax.lax.while_loop(lambda c: c[0] < x, lambda c: (c[0] + 1.0, c[1] + y), (0.0, 0.0))[1]

    g = sequential_vmap(f)
    xs, y = jnp.arange(5.0), jnp.float32(2.0)
    np.testing.assert_allclose(jax.vmap(g, (0, None))(xs, y), jax.vmap(f, (0, None))(xs, y))
    text = str(jax.jit(jax.vmap(g, (0, None))).lower(xs, y).as_text())
    if jax.default_backend() == "cpu":
        # lax.map over the batch: an outer while loop whose body sees one member's scalar
        assert text.count("stablehlo.while") >= 2


SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp
    from jnas import linalg
    n = 120
    def one(k):
        return linalg.solve_triangular(linalg.cholesky(k), k, lower=True)
    def step(c, _):
        a, b = c
        x, y = jax.vmap(one)(a), jax.vmap(one)(b)  # two independent batched factorisations at once
        return (a + 1e-4 * x.mean(), b + 1e-4 * y.mean()), None
    a = jax.random.normal(jax.random.key(0), (8, n, n))
    a = a @ jnp.swapaxes(a, 1, 2) + n * jnp.eye(n)
    out = jax.jit(lambda c: jax.lax.scan(step, c, None, length=100)[0])((a, a + 1.0))
    print(bool(jnp.isfinite(out[0]).all()))
""")


def test_independent_batched_factorisations_do_not_deadlock():
    # jnp.linalg.cholesky in place of linalg.cholesky wedges the 2-worker intra-op pool here every time
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "True"
