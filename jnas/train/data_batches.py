"""Batching: the example indices of one epoch, batch by batch.

Part of ``jnas.train.data`` (see its docstring).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from jnas.errors import bad_argument, check_int


class EpochBatches(NamedTuple):
    """One epoch's batches: ``idx int32 [n_batches, batch_size]`` example indices and ``mask bool`` of that shape.

    ``mask`` is False only on the padding of a last, partial batch
    (``drop_last=False``); gather with ``idx`` and weight by ``mask``.
    Unpacks as ``idx, mask = epoch_batches(...)``.
    """

    idx: np.ndarray
    mask: np.ndarray


def epoch_batches(
    key: jax.Array, n: int, batch_size: int, *, shuffle: bool = True, drop_last: bool = True
) -> EpochBatches:
    """Example indices for one epoch, batch by batch; deterministic given ``key``.

    The epoch's order is ``jax.random.permutation(key, n)`` (``arange(n)`` when
    ``shuffle=False``); each index appears at most once where ``mask`` is True.
    Returns ``EpochBatches(idx, mask)`` in both cases:

    * ``drop_last=True``: ``idx int32 [n // batch_size, batch_size]``, ``mask``
      all True; the last ``n % batch_size`` indices of the order are left out.
    * ``drop_last=False``: ``idx int32 [ceil(n / batch_size), batch_size]``.
      Every index appears exactly once where ``mask`` is True; the padding at
      the end of the last batch (``mask`` False) repeats the order from its
      start, so gathering with ``idx`` stays in range and the batch shape
      stays fixed.
    """
    n = check_int("n", n, 1, expected="a positive number of examples")
    batch_size = check_int("batch_size", batch_size, 1, expected="a positive integer")
    if drop_last and n < batch_size:
        raise bad_argument("batch_size", batch_size, f"at most n={n} when drop_last=True (else no batch)")
    order = np.asarray(jax.random.permutation(key, n)) if shuffle else np.arange(n)
    order = order.astype(np.int32)
    if drop_last:
        n_batches = n // batch_size
        idx = order[: n_batches * batch_size].reshape(n_batches, batch_size)
        return EpochBatches(idx, np.ones(idx.shape, bool))
    n_batches = -(-n // batch_size)
    idx = np.resize(order, n_batches * batch_size).reshape(n_batches, batch_size)  # pads by cycling
    mask = (np.arange(n_batches * batch_size) < n).reshape(n_batches, batch_size)
    return EpochBatches(idx, mask)


__all__ = ["EpochBatches", "epoch_batches"]
