"""Preparing datasets once so they can be read offline, in TFDS ``array_record`` format.

* Array datasets (in-memory arrays, ``.npz`` files, ``cifar10_subset``): a
  builder of ours writes them as a TFDS dataset (``Tensor(uint8)`` image +
  ``Tensor(int64)`` label) without TensorFlow, and rewrites them when their
  source changes (a sha256 fingerprint in the dataset description).
* TFDS's own datasets: downloaded and prepared by their TFDS builder, which
  needs TensorFlow (``pip install "jnas[prepare]"``) and internet, once.

Part of ``jnas.train.data`` (see its docstring).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import types
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.core.utils import tqdm_utils

from jnas.errors import JnasError, bad_argument
from jnas.train.data_store import (
    ARRAYS_VERSION,
    PREPARE_EXTRA,
    SPLITS,
    _default_dir,
    _npz_dataset_name,
    _npz_source,
    _tfds_builder,
    tfds_cache_dir,
)

_FINGERPRINT = re.compile(r"jnas arrays sha256:([0-9a-f]{64})")


# ----------------------------------------------------------------------------- array datasets


def _check_splits(splits) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Validate ``{split: (x uint8 [N,H,W,C], y int [N])}``; return it with int64 labels."""
    if not isinstance(splits, Mapping) or not splits:
        raise bad_argument("splits", type(splits).__name__, "a non-empty dict {split: (images, labels)}")
    out, shape = {}, None
    for split, pair in splits.items():
        if not isinstance(split, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", split):
            raise bad_argument("splits", split, "split names in snake case, e.g. 'train'")
        x, y = (np.asarray(a) for a in pair)
        if x.dtype != np.uint8 or x.ndim != 4:
            raise bad_argument(f"splits[{split!r}] images", f"{x.dtype}{list(x.shape)}", "uint8 [N, H, W, C]")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise bad_argument(f"splits[{split!r}] labels", f"{y.dtype}{list(y.shape)}", f"integers [{len(x)}]")
        if len(x) == 0:
            raise bad_argument(f"splits[{split!r}]", "0 examples", "at least one example")
        if y.min() < 0 or y.max() > np.iinfo(np.int32).max:
            raise bad_argument(f"splits[{split!r}] labels", f"range [{y.min()}, {y.max()}]", "class ids >= 0")
        if shape is not None and x.shape[1:] != shape:
            raise bad_argument(f"splits[{split!r}] images", list(x.shape[1:]), f"the same [H, W, C] as {list(shape)}")
        shape = x.shape[1:]
        out[split] = (x, y.astype(np.int64))
    return out


def _arrays_fingerprint(splits: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> str:
    h = hashlib.sha256()
    for split in sorted(splits):
        x, y = splits[split]
        h.update(f"{split}:{x.shape}:{y.shape}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
        h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()


def _file_fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _ArraysBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Writes in-memory ``{split: (images, labels)}`` as a TFDS dataset (no TensorFlow needed).

    Subclassed per dataset name by :func:`arrays_builder`; never registered with
    TFDS, so reading goes through the generic files-only path of ``tfds.data_source``.
    """

    VERSION = tfds.core.Version(ARRAYS_VERSION)

    def __init__(self, *, splits, fingerprint: str, **kwargs):
        self._splits = splits
        self._fingerprint = fingerprint
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        x, _ = next(iter(self._splits.values()))
        features = tfds.features.FeaturesDict(
            {
                "image": tfds.features.Tensor(shape=x.shape[1:], dtype=np.uint8),
                "label": tfds.features.Tensor(shape=(), dtype=np.int64),
            }
        )
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"In-memory image arrays written by jnas (jnas arrays sha256:{self._fingerprint}).",
            features=features,
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # keep the arrays' order: record i is row i
        )

    # Local arrays: nothing is downloaded, so TFDS's "Downloading and preparing dataset Unknown size"
    # and "... downloaded and prepared" lines (printed to stdout) would only mislead.
    def _log_download_bytes(self) -> None:
        pass

    def _log_download_done(self) -> None:
        pass

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(split) for split in self._splits}

    def _generate_examples(self, split):
        x, y = self._splits[split]
        for i in range(len(x)):
            yield i, {"image": x[i], "label": y[i]}


def arrays_builder(
    name: str,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    data_dir: str | os.PathLike,
    fingerprint: str | None = None,
) -> tfds.core.DatasetBuilder:
    """A TFDS builder that writes ``splits`` as dataset ``name`` (version ``ARRAYS_VERSION``).

    ``splits`` maps split names to ``(images uint8 [N, H, W, C], labels int [N])``.
    ``fingerprint`` (default: sha256 of the arrays) is stored in the dataset's
    description so a later call can tell whether the written copy is current.
    Call ``.download_and_prepare(file_format="array_record")`` on the result, or
    use :func:`prepare_arrays`.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise bad_argument("name", name, "a snake-case dataset name, e.g. 'my_images'")
    checked = _check_splits(splits)
    fingerprint = fingerprint or _arrays_fingerprint(checked)
    cls = types.new_class(
        "ArraysBuilder_" + name,
        (_ArraysBuilder,),
        {"skip_registration": True},
        # the public module (as before the split): the written dataset_info.json records it
        lambda ns: ns.update(name=name, __module__="jnas.train.data"),
    )
    return cls(splits=checked, fingerprint=fingerprint, data_dir=os.fspath(data_dir))


def _written_fingerprint(version_dir: Path) -> str | None:
    """Fingerprint of the array dataset in ``version_dir``; None if absent, '' if not ours."""
    info = version_dir / "dataset_info.json"
    if not info.is_file():
        return None
    match = _FINGERPRINT.search(json.loads(info.read_text()).get("description", ""))
    return match.group(1) if match else ""


def _write_arrays(name, root: Path, fingerprint: str, get_splits) -> str:
    """Write array dataset ``name`` under ``root`` unless the copy there has ``fingerprint``."""
    version_dir = root / name / ARRAYS_VERSION
    written = _written_fingerprint(version_dir)
    if written == fingerprint:
        return str(version_dir)
    if written == "":
        raise JnasError(
            f"{version_dir} holds a dataset that jnas did not write; pass another data_dir or remove that folder"
        )
    if written is not None:  # stale copy of an older source
        shutil.rmtree(version_dir)
    builder = arrays_builder(name, get_splits(), data_dir=root, fingerprint=fingerprint)
    with _no_tfds_progress_bars():  # a second or two of local writing: no "Generating splits" bars
        builder.download_and_prepare(file_format="array_record")
    return str(version_dir)


@contextlib.contextmanager
def _no_tfds_progress_bars():
    """Turn TFDS's progress bars off inside the block and back to what they were after it."""
    was = getattr(tqdm_utils, "_active", True)
    tfds.display_progress_bar(False)
    try:
        yield
    finally:
        tfds.display_progress_bar(was)


def prepare_arrays(
    name: str,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    data_dir: str | os.PathLike | None = None,
) -> str:
    """Write in-memory arrays as TFDS dataset ``name``; return its folder.

    ``splits``: ``{split: (images uint8 [N, H, W, C], labels int [N])}``.
    ``data_dir`` defaults to :func:`tfds_cache_dir`. A no-op when the same arrays
    were written before; a different copy under the same name is replaced.
    Read it back with ``load_split(name, split, data_dir=data_dir)``.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise bad_argument("name", name, "a snake-case dataset name, e.g. 'my_images'")
    checked = _check_splits(splits)
    root = Path(data_dir if data_dir is not None else tfds_cache_dir())
    return _write_arrays(name, root, _arrays_fingerprint(checked), lambda: checked)


def _npz_splits(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        missing = [k for s in SPLITS for k in (f"x_{s}", f"y_{s}") if k not in z.files]
        if missing:
            raise JnasError(
                f"{path}: missing arrays {missing}; an array dataset needs x_train, y_train, x_test, y_test"
            )
        return {s: (z[f"x_{s}"], z[f"y_{s}"]) for s in SPLITS}


def _prepare_npz(path: Path, data_dir) -> tuple[str, Path, str]:
    """Write the ``.npz`` at ``path`` unless current; return (dataset name, root, folder)."""
    name = _npz_dataset_name(path)
    root = Path(data_dir if data_dir is not None else tfds_cache_dir())
    folder = _write_arrays(name, root, _file_fingerprint(path), lambda: _npz_splits(path))
    return name, root, folder


# ----------------------------------------------------------------------------- TFDS datasets


def _has_tensorflow() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def _random_access(builder) -> bool:
    formats = {builder.info.file_format, *builder.info.alternative_file_formats}
    return bool(formats & file_adapters.FileFormat.with_random_access())


def prepare(name: str, *, data_dir: str | os.PathLike | None = None) -> str:
    """Prepare dataset ``name`` once so :func:`load_split` can read it offline; return its folder.

    * ``cifar10_subset`` or a path to an ``.npz`` (``x_train``, ``y_train``,
      ``x_test``, ``y_test``): written by our array builder into ``data_dir``
      (default :func:`tfds_cache_dir`); no TensorFlow or network needed.
    * A TFDS dataset (``cifar10``, ``cifar100``, ...): downloaded and prepared by
      its TFDS builder as ``array_record`` into ``data_dir`` (default: TFDS's,
      ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``). This needs internet and
      TensorFlow (``pip install "jnas[prepare]"``); already prepared data is
      returned as is.
    """
    if not isinstance(name, str) or not name:
        raise bad_argument("name", name, "a dataset name, e.g. 'cifar10' or 'cifar10_subset'")
    path = _npz_source(name)
    if path is not None:
        return _prepare_npz(path, data_dir)[2]
    data_dir = os.fspath(data_dir) if data_dir is not None else _default_dir(name)
    builder = _tfds_builder(name, data_dir)
    if builder.is_prepared():
        fmt = builder.info.file_format
        if not _random_access(builder):
            raise JnasError(
                f"dataset {name!r} is prepared in {builder.data_dir} as {getattr(fmt, 'value', fmt)}, "
                "which has no random access; remove that folder (or pick another data_dir) and prepare again"
            )
        return str(builder.data_dir)
    if not _has_tensorflow():
        raise JnasError(
            f"preparing TFDS dataset {name!r} needs TensorFlow, which is not installed: run {PREPARE_EXTRA} "
            "on a machine with internet, prepare there, then copy the folder (see docs/data.md)"
        )
    builder.download_and_prepare(file_format="array_record")
    return str(builder.data_dir)
