"""Reading a prepared dataset into memory: ``load_split`` (``uint8 [N, H, W, C]`` images, ``int32 [N]`` labels).

Every dataset is read the same way, ``tfds.data_source(...)`` with
``download=False``, without TensorFlow. Array datasets are written on first
use (``jnas.train.data_prepare``). Part of ``jnas.train.data`` (see its docstring).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import registered as tfds_registered

from jnas.errors import JnasError, bad_argument
from jnas.train.data_prepare import _prepare_npz
from jnas.train.data_store import (
    ARRAYS_VERSION,
    SPLITS,
    _default_dir,
    _not_prepared,
    _npz_source,
    _tfds_builder,
    _unknown_dataset,
)


def _data_source(name: str, split: str, data_dir):
    """``tfds.data_source`` with TFDS's failures turned into one-line ``JnasError``s."""
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except tfds_registered.DatasetNotFoundError:
        raise _unknown_dataset(name, data_dir) from None
    except (NotImplementedError, ValueError, FileNotFoundError, AssertionError) as e:
        # TFDS reports an unprepared dataset as "file format tfrecord has no random
        # access", so look at the builder to say what is actually wrong.
        builder = _tfds_builder(name, data_dir)
        if not builder.is_prepared():
            raise _not_prepared(name, builder) from None
        known = list(builder.info.splits)
        if "[" not in split and split not in known:
            raise bad_argument("split", split, f"one of {known}") from None
        raise JnasError(f"cannot read dataset {name!r} split {split!r} from {builder.data_dir}: {e}") from None


def _to_arrays(source, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Read every record of a TFDS data source into (uint8 [N,H,W,C], int32 [N])."""
    keys = source.dataset_info.supervised_keys or ("image", "label")
    if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
        raise JnasError(f"dataset {name!r} is not an image-classification dataset (supervised keys {keys!r})")
    image_key, label_key = keys
    n = len(source)
    if n == 0:
        raise JnasError(f"dataset {name!r}: the requested split is empty")
    first = np.asarray(source[0][image_key])
    if first.dtype != np.uint8 or first.ndim != 3:
        raise JnasError(f"dataset {name!r}: images are {first.dtype}{list(first.shape)}, expected uint8 [H, W, C]")
    images = np.empty((n, *first.shape), np.uint8)
    labels = np.empty((n,), np.int32)
    # One record at a time: `__getitems__` is barely faster here, and
    # tfds.testing.mock_data (4.9.10) only mocks `__getitem__` correctly.
    for i in range(n):
        example = source[i]
        image = np.asarray(example[image_key])
        if image.shape != first.shape:
            raise JnasError(
                f"dataset {name!r}: images differ in shape ({first.shape}, {image.shape}); resize them first"
            )
        images[i] = image
        labels[i] = example[label_key]
    return images, labels


def load_split(name: str, split: str, *, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split into memory: (images uint8 [N, H, W, C], labels int32 [N]).

    ``name``: ``cifar10_subset`` (``$JNAS_DATA_DIR/cifar10_subset.npz``: 4,800
    train / 850 test real CIFAR-10 images), a path to an ``.npz`` with
    ``x_train``/``y_train``/``x_test``/``y_test``, an array dataset written by
    :func:`prepare_arrays`, or any TFDS image-classification dataset prepared in
    ``array_record`` format (``cifar10``, ``cifar100``, ...; see :func:`prepare`).
    Array datasets are written on first use (and rewritten when their source
    changes). ``split``: ``"train"`` or ``"test"`` (a TFDS dataset also takes its
    other splits and TFDS slices such as ``"train[:90%]"``). ``data_dir``: the
    TFDS folder; default :func:`tfds_cache_dir` for array datasets and TFDS's
    default for TFDS datasets. Never downloads anything.
    """
    if not isinstance(name, str) or not name:
        raise bad_argument("name", name, "a dataset name, e.g. 'cifar10' or 'cifar10_subset'")
    if not isinstance(split, str) or not split:
        raise bad_argument("split", split, "a split name, e.g. 'train' or 'test'")
    path = _npz_source(name)
    if path is not None:
        if split not in SPLITS:
            raise bad_argument("split", split, f"one of {list(SPLITS)}")
        ds_name, root, _ = _prepare_npz(path, data_dir)
        # An explicit version makes TFDS read the files even if a builder of that name is registered.
        source = _data_source(f"{ds_name}:{ARRAYS_VERSION}", split, os.fspath(root))
        return _to_arrays(source, name)
    data_dir = os.fspath(data_dir) if data_dir is not None else _default_dir(name)
    return _to_arrays(_data_source(name, split, data_dir), name)
