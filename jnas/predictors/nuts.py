"""NUTS inside ``jit``: NumPyro's functional HMC/NUTS kernel run by one ``lax.scan``.

Shared by the fully Bayesian GP (``jnas.predictors.gp``: hyperparameter
samples) and the Bayesian neural network (``jnas.predictors.bnn``: weight
samples), so both refit inside a strategy's ``lax.scan``.
"""

from __future__ import annotations

import jax


def nuts_sample(
    key,
    potential_fn,
    init_z,
    num_warmup: int,
    num_samples: int,
    max_tree_depth: int = 10,
    target_accept_prob: float = 0.8,
):
    """Draw ``num_samples`` NUTS samples of ``exp(-potential_fn(z))`` after ``num_warmup`` adaptation steps.

    NumPyro's functional HMC/NUTS kernel (step size by dual averaging, diagonal
    mass matrix by Welford windows) run by one ``lax.scan``: jittable with the
    counts static. ``init_z`` is any pytree; the result has the same structure
    with a leading axis ``num_samples``.
    """
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.hmc import hmc

    # one flat vector instead of a pytree: NumPyro's integrator maps over leaves, so a flat state
    # compiles several times faster
    flat, unravel = ravel_pytree(init_z)
    init_kernel, sample_kernel = hmc(lambda f: potential_fn(unravel(f)), algo="NUTS")
    state = init_kernel(
        flat, num_warmup, rng_key=key, max_tree_depth=max_tree_depth, target_accept_prob=target_accept_prob
    )

    def step(s, _):
        s = sample_kernel(s)
        return s, s.z

    # a single scan (warmup draws kept, then dropped) compiles the kernel once
    _, zs = jax.lax.scan(step, state, None, length=num_warmup + num_samples)
    return jax.vmap(unravel)(zs[num_warmup:])


__all__ = ["nuts_sample"]
