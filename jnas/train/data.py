"""Image-classification data: TFDS ``array_record`` datasets read without TensorFlow.

Every dataset is read the same way, ``tfds.data_source(...)`` with
``download=False``, and loaded into memory as ``uint8 [N, H, W, C]`` images and
``int32 [N]`` labels. Two kinds of dataset feed that path:

* **TFDS's own datasets** (``cifar10``, ``cifar100``, ...). They must be
  prepared once in ``array_record`` format (:func:`prepare`, which needs
  TensorFlow: ``pip install "jnas[prepare]"``); reading them needs only
  ``tensorflow-datasets``.
* **Array datasets**: in-memory arrays or a ``.npz`` file with ``x_train``,
  ``y_train``, ``x_test``, ``y_test`` (``cifar10_subset`` is
  ``$JNAS_DATA_DIR/cifar10_subset.npz``). A builder of ours writes them as a
  TFDS dataset (``Tensor(uint8)`` image + ``Tensor(int64)`` label) into the jnas
  TFDS cache, ``$JNAS_TFDS_DIR`` (default ``~/.cache/jnas/tfds``), without
  TensorFlow, on first use; they are rewritten when their source changes.

This module gathers the public names; each job lives in its own module:

* ``jnas.train.data_store``: dataset names, the jnas TFDS cache, TFDS builders behind a name;
* ``jnas.train.data_prepare``: ``prepare``, ``prepare_arrays``, ``arrays_builder``;
* ``jnas.train.data_read``: ``load_split``;
* ``jnas.train.data_stats``: ``dataset_stats``;
* ``jnas.train.data_batches``: ``epoch_batches`` (``EpochBatches``).

See ``docs/data.md``.
"""

from __future__ import annotations

from jnas.train.data_batches import EpochBatches, epoch_batches
from jnas.train.data_prepare import arrays_builder, prepare, prepare_arrays
from jnas.train.data_read import load_split
from jnas.train.data_stats import dataset_stats
from jnas.train.data_store import ARRAYS_VERSION, LOCAL_DATASETS, PREPARE_EXTRA, SPLITS, tfds_cache_dir

__all__ = ["ARRAYS_VERSION", "LOCAL_DATASETS", "PREPARE_EXTRA", "SPLITS", "EpochBatches", "arrays_builder",
           "dataset_stats", "epoch_batches", "load_split", "prepare", "prepare_arrays", "tfds_cache_dir"]
