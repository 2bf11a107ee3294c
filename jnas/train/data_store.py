"""Where datasets live: dataset names, the jnas TFDS cache and the TFDS builders behind a name.

A name is an array dataset (``cifar10_subset``, a path to an ``.npz``, or one
written by ``jnas.train.data_prepare.prepare_arrays``) or a TFDS dataset
(``cifar10``, ...). Array datasets are written into the jnas TFDS cache,
``$JNAS_TFDS_DIR`` (default ``~/.cache/jnas/tfds``); TFDS datasets stay in
TFDS's own folder. Part of ``jnas.train.data`` (see its docstring).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import tensorflow_datasets as tfds
from tensorflow_datasets.core import registered as tfds_registered

from jnas import paths
from jnas.errors import JnasError, bad_argument

ARRAYS_VERSION = "1.0.0"
"""TFDS version under which array datasets are written."""

SPLITS = ("train", "test")
"""Splits an array dataset has (a TFDS dataset may have more)."""

LOCAL_DATASETS = {"cifar10_subset": "cifar10_subset.npz"}
"""Array datasets known by name: name -> file in ``$JNAS_DATA_DIR``."""

PREPARE_EXTRA = 'pip install "jnas[prepare]"'
"""The install command that brings TensorFlow for preparing TFDS datasets."""


def tfds_cache_dir() -> str:
    """Where array datasets are written: ``$JNAS_TFDS_DIR``, else ``~/.cache/jnas/tfds``."""
    env = os.environ.get("JNAS_TFDS_DIR")
    return str(Path(env).expanduser() if env else paths.user_cache() / "tfds")


def _base_name(name: str) -> str:
    """``'cifar10/config:3.0.2'`` -> ``'cifar10'``."""
    return name.split(":", 1)[0].split("/", 1)[0]


def _is_tfds_builder(name: str) -> bool:
    try:
        tfds.builder_cls(_base_name(name))
    except tfds_registered.DatasetNotFoundError:
        return False
    return True


def _npz_source(name: str) -> Path | None:
    """The ``.npz`` file behind ``name``, or None when ``name`` is not an array dataset file."""
    if name in LOCAL_DATASETS:
        path = paths.data_dir() / LOCAL_DATASETS[name]
        if not path.is_file():
            raise JnasError(
                f"dataset {name!r} needs {LOCAL_DATASETS[name]} in {path.parent} "
                "(set JNAS_DATA_DIR to the folder holding it)"
            )
        return path
    if name.endswith(".npz"):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise bad_argument("name", name, "an existing .npz file")
        return path
    return None


def _npz_dataset_name(path: Path) -> str:
    """TFDS-valid dataset name for an ``.npz`` file: its stem in snake case."""
    if path.stem in LOCAL_DATASETS and path.name == LOCAL_DATASETS[path.stem]:
        return path.stem
    name = re.sub(r"[^a-z0-9]+", "_", path.stem.lower()).strip("_")
    return name if re.match(r"[a-z]", name) else f"npz_{name}"


def _tfds_builder(name: str, data_dir) -> tfds.core.DatasetBuilder:
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds_registered.DatasetNotFoundError:
        raise _unknown_dataset(name, data_dir) from None


def _unknown_dataset(name: str, data_dir) -> JnasError:
    where = data_dir if data_dir is not None else tfds_cache_dir()
    return JnasError(
        f"unknown dataset {name!r}: not a TFDS dataset, not a .npz file and not prepared in {where} "
        f"(local datasets: {', '.join(LOCAL_DATASETS)})"
    )


def _not_prepared(name: str, builder) -> JnasError:
    return JnasError(
        f"dataset {name!r} is not prepared in {builder.data_dir} (array_record format); prepare it once "
        f"on a machine with internet: {PREPARE_EXTRA} && python -c "
        f"\"from jnas.train.data import prepare; prepare('{name}')\" (see docs/data.md)"
    )


def _default_dir(name: str) -> str | None:
    """TFDS's own default folder for TFDS datasets, the jnas cache for anything else."""
    return None if _is_tfds_builder(name) else tfds_cache_dir()
