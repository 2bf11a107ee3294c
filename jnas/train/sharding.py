"""Data parallelism with ``jax.sharding``: a 1-d device mesh with a ``data`` axis.

Batches are split along their leading axis over the ``data`` axis; parameters,
BatchNorm statistics and optimizer state are replicated. Under ``jax.jit`` the
compiler inserts the cross-device reductions, so a sharded step computes the
same global-batch loss, gradients and BatchNorm statistics as one device does.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jnas.errors import bad_argument

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A mesh over ``devices`` (default: all local devices) with one axis, ``data``."""
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise bad_argument("devices", devices, "at least one device")
    return Mesh(np.array(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the ``data`` axis, other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def n_data(mesh: Mesh) -> int:
    """Number of devices along the ``data`` axis."""
    return mesh.shape[DATA_AXIS]


def check_divisible(mesh: Mesh, size: int, name: str) -> None:
    """Raise a one-line error unless batch ``size`` splits evenly over the mesh."""
    n = n_data(mesh)
    if size % n:
        raise bad_argument(name, size, f"a multiple of the number of devices ({n})")


def shard_batch(mesh: Mesh, *arrays):
    """Put host arrays on the mesh, split along their leading axis (one array or a tuple)."""
    sharding = batch_sharding(mesh)
    out = tuple(jax.device_put(a, sharding) for a in arrays)
    return out[0] if len(out) == 1 else out


def replicate(mesh: Mesh, tree):
    """Copy every array of ``tree`` to all devices of the mesh."""
    return jax.device_put(tree, replicated(mesh))


__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "check_divisible",
    "make_mesh",
    "n_data",
    "replicate",
    "replicated",
    "shard_batch",
]
