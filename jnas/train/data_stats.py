"""Per-channel image statistics of a dataset's training split (for input normalisation).

Part of ``jnas.train.data`` (see its docstring).
"""

from __future__ import annotations

import functools
import os

import numpy as np

from jnas.train.data_read import load_split
from jnas.train.data_store import _base_name

# Per-channel mean/std of the training set in pixel/255 units, as used by
# NAS-Bench-201 (Dong & Yang, ICLR 2020): CIFAR-10 mean [125.3, 123.0, 113.9]/255,
# std [63.0, 62.1, 66.7]/255; CIFAR-100 mean [129.3, 124.1, 112.4]/255,
# std [68.2, 65.4, 70.4]/255.
_PUBLISHED_STATS = {
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "cifar100": ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
}


def dataset_stats(name: str, *, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean float32 [C], std float32 [C]) of the training images in pixel/255 units.

    CIFAR-10 and CIFAR-100 return the published values used by NAS-Bench-201;
    any other dataset (``cifar10_subset`` included) is measured on its train
    split (population std over all pixels), once per process.
    """
    base = _base_name(name) if isinstance(name, str) else name
    if base in _PUBLISHED_STATS:
        mean, std = _PUBLISHED_STATS[base]
        return np.asarray(mean, np.float32) / np.float32(255), np.asarray(std, np.float32) / np.float32(255)
    mean, std = _measured_stats(name, None if data_dir is None else os.fspath(data_dir))
    return mean.copy(), std.copy()


@functools.lru_cache(maxsize=16)
def _measured_stats(name: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    images, _ = load_split(name, "train", data_dir=data_dir)
    channels = images.shape[-1]
    total = np.zeros(channels, np.float64)
    total_sq = np.zeros(channels, np.float64)
    for start in range(0, len(images), 1024):  # chunks keep the float64 copy small
        chunk = images[start : start + 1024].reshape(-1, channels).astype(np.float64)
        total += chunk.sum(0)
        total_sq += np.square(chunk).sum(0)
    count = images.size // channels
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return (mean / 255).astype(np.float32), (std / 255).astype(np.float32)
