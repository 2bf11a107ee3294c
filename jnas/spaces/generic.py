"""Generic parts built from a space's self-description (``jnas.spaces.base``).

- ``decision_onehot`` / ``decision_onehot_names``: one-hot of every live
  decision, concatenated in decision order (``Σ cardinality`` entries).
- ``decision_relaxation``: the same one-hot as a ``Relaxation``: one block
  per decision, each summing to 1; rounding draws each decision from its
  block's weights.
- ``categorical``, ``stochastic_round``: the random roundings relaxations use.
- ``finish_graph``: the common last step of every ``graph_tensors``.

All array functions are jittable and vmappable over architectures.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jnas.spaces.base import Relaxation


def decision_offsets(cardinality: np.ndarray) -> np.ndarray:
    """``int32[D]``: first one-hot entry of each decision."""
    card = np.asarray(cardinality, np.int64)
    return np.concatenate([[0], np.cumsum(card)[:-1]]).astype(np.int32)


def decision_onehot(space, arch, dtype=jnp.float32) -> jax.Array:
    """``dtype[Σ cardinality]``: one-hot of each decision of ``arch``, all-zero for dead decisions."""
    dec = space.decisions
    tokens = space.to_decisions(arch)
    live = space.live_decisions(tokens) if dec.conditional else jnp.ones(tokens.shape, bool)
    dim = int(np.sum(dec.cardinality))
    idx = jnp.asarray(decision_offsets(dec.cardinality)) + tokens
    return jnp.zeros((dim,), dtype).at[idx].set(live.astype(dtype))


def decision_onehot_names(space) -> tuple[str, ...]:
    """``'<decision>=<value>'`` for every entry of ``decision_onehot``."""
    dec = space.decisions
    return tuple(f"{name}={v}" for name, values in zip(dec.names, dec.values) for v in values)


def categorical(key, w, valid):
    """Index drawn with probability proportional to ``w`` over ``valid`` entries (uniform if all zero)."""
    w = jnp.where(valid, jnp.maximum(w, 0.0), 0.0)
    w = jnp.where(w.sum() > 0, w, valid.astype(w.dtype))
    return jax.random.categorical(key, jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf))


def stochastic_round(key, x, n):
    """Round fractional indices ``x`` to integers in ``[0, n)`` up with probability ``frac(x)``."""
    lo = jnp.floor(x)
    up = jax.random.uniform(key, x.shape, x.dtype) < (x - lo)
    return jnp.clip(lo + up, 0, n - 1).astype(jnp.int32)


def decision_relaxation(space) -> Relaxation:
    """One-hot decisions as a ``Relaxation``: ``dim = Σ cardinality``, one block (sum 1) per decision.

    ``encode`` is the one-hot of every decision (dead ones included, so each
    block keeps its sum); ``decode`` draws decision ``d`` from the weights of
    its block (``categorical``, one key per decision) and canonicalises.
    """
    card = np.asarray(space.decisions.cardinality, np.int64)
    n_dec, width = len(card), int(card.max())
    offsets = decision_offsets(card)
    dim = int(card.sum())
    cols = np.arange(width)
    gather = offsets[:, None] + np.minimum(cols[None, :], card[:, None] - 1)  # [D, width]
    valid = cols[None, :] < card[:, None]

    def encode(arch):
        dt = jnp.result_type(float)
        idx = jnp.asarray(offsets) + space.to_decisions(arch)
        return jnp.zeros((dim,), dt).at[idx].set(1.0)

    def decode(key, x):
        keys = jax.random.split(key, n_dec)
        tokens = jax.vmap(categorical)(keys, x[gather], jnp.asarray(valid))
        return space.canonicalize(space.from_decisions(tokens.astype(jnp.int32)))

    block = np.repeat(np.arange(n_dec), card)
    return Relaxation(dim, encode, block, np.ones(n_dec), decode)


def finish_graph(a, labels, mask, n_labels: int, alive=None):
    """Cast, cut dead (e.g. ``none``) nodes out of ``A`` (``alive`` False) and zero the padding.

    Returns ``(A float32[n, n], X float32[n, n_labels], mask bool[n])`` with
    ``X`` the one-hot of ``labels`` (``int[n]``).
    """
    if alive is not None:
        a = a * alive[:, None] * alive[None, :]
    a = a * mask[:, None] * mask[None, :]
    x = jax.nn.one_hot(labels, n_labels, dtype=jnp.float32) * mask[:, None]
    return a.astype(jnp.float32), x, mask


def none_id(ops) -> int:
    """Id of ``none`` in ``ops``, or -1 when there is none."""
    return ops.index("none") if "none" in ops else -1
