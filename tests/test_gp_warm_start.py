"""ML-II warm starts: the unconstrained hyperparameters round-trip, a warm fit starts where it is told, and
`bo` carries its previous fit from one step to the next."""

import jax
import jax.numpy as jnp
import numpy as np

from jnas.benchmarks import get_benchmark
from jnas.predictors.gp import GP
from jnas.strategies import make_strategy


def _data(n=24, d=3, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    X = jax.random.uniform(k1, (n, d))
    y = jnp.sin(6 * X[:, 0]) + 0.5 * X[:, 1] + 0.05 * jax.random.normal(k2, (n,))
    return X, y


def test_unconstrained_inverts_the_box_map():
    gp = GP(ard=True)
    X, y = _data()
    for seed in range(3):
        v = jax.random.uniform(jax.random.key(seed), (gp.n_hyperparameters(3),), minval=-5, maxval=5)
        ls, os, nz = gp._unpack(v, 3)
        params = gp.condition(X, y, ls, os, nz)
        np.testing.assert_allclose(gp.unconstrained(params), v, atol=2e-3)


def test_warm_start_begins_at_init_and_never_ends_below_it():
    X, y = _data()
    long = GP(restarts=4, steps=300)
    best = long.fit(jax.random.key(0), X, y)
    v_best = long.unconstrained(best)
    short = GP(restarts=1, steps=1)
    lml = jax.jit(lambda p: short.log_marginal_likelihood(X, y, p.lengthscale[0], p.outputscale[0], p.noise[0]))
    cold = short.fit(jax.random.key(1), X, y)
    warm = short.fit(jax.random.key(1), X, y, init=v_best)
    assert float(lml(warm)) >= float(lml(best)) - 1e-3  # starts at the optimum, keeps the best point seen
    assert float(lml(warm)) > float(lml(cold)) + 1.0  # one step from the box centre is far from it


def test_bo_carries_its_fit_to_the_next_step():
    bench = get_benchmark("nb201/cifar10")
    bo = make_strategy("bo", bench.space, 16, n_init=4)
    state = bo.init(jax.random.key(0))
    assert not np.any(np.asarray(state.inner))  # the box centre
    key = jax.random.key(1)
    seen = []
    for _ in range(7):
        k_ask, key = jax.random.split(key)
        archs, state = bo.ask(state, k_ask)
        seen.append(np.asarray(state.inner))
        values = bench.query(archs)
        state = bo.tell(state, archs, values)
    # initial design: nothing carried; model phase: each step's warm start is the previous fit
    assert all(not np.any(v) for v in seen[:4])
    assert all(np.any(v) for v in seen[4:]) and not np.array_equal(seen[4], seen[5])
