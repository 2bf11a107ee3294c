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

See ``docs/data.md``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import types
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.core import registered as tfds_registered
from tensorflow_datasets.core.utils import tqdm_utils

from jnas import paths
from jnas.errors import JnasError, bad_argument

ARRAYS_VERSION = "1.0.0"
"""TFDS version under which array datasets are written."""

SPLITS = ("train", "test")
"""Splits an array dataset has (a TFDS dataset may have more)."""

LOCAL_DATASETS = {"cifar10_subset": "cifar10_subset.npz"}
"""Array datasets known by name: name -> file in ``$JNAS_DATA_DIR``."""

# Per-channel mean/std of the training set in pixel/255 units, as used by
# NAS-Bench-201 (Dong & Yang, ICLR 2020): CIFAR-10 mean [125.3, 123.0, 113.9]/255,
# std [63.0, 62.1, 66.7]/255; CIFAR-100 mean [129.3, 124.1, 112.4]/255,
# std [68.2, 65.4, 70.4]/255.
_PUBLISHED_STATS = {
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "cifar100": ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
}

_PREPARE_EXTRA = 'pip install "jnas[prepare]"'
_FINGERPRINT = re.compile(r"jnas arrays sha256:([0-9a-f]{64})")


# ----------------------------------------------------------------------------- paths


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


# ----------------------------------------------------------------------------- writing array datasets


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
        lambda ns: ns.update(name=name, __module__=__name__),
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
        f"on a machine with internet: {_PREPARE_EXTRA} && python -c "
        f"\"from jnas.train.data import prepare; prepare('{name}')\" (see docs/data.md)"
    )


def _random_access(builder) -> bool:
    formats = {builder.info.file_format, *builder.info.alternative_file_formats}
    return bool(formats & file_adapters.FileFormat.with_random_access())


def _default_dir(name: str) -> str | None:
    """TFDS's own default folder for TFDS datasets, the jnas cache for anything else."""
    return None if _is_tfds_builder(name) else tfds_cache_dir()


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
            f"preparing TFDS dataset {name!r} needs TensorFlow, which is not installed: run {_PREPARE_EXTRA} "
            "on a machine with internet, prepare there, then copy the folder (see docs/data.md)"
        )
    builder.download_and_prepare(file_format="array_record")
    return str(builder.data_dir)


# ----------------------------------------------------------------------------- reading


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


# ----------------------------------------------------------------------------- statistics


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


# ----------------------------------------------------------------------------- batching


def epoch_batches(
    key: jax.Array, n: int, batch_size: int, *, shuffle: bool = True, drop_last: bool = True
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Example indices for one epoch, batch by batch; deterministic given ``key``.

    The epoch's order is ``jax.random.permutation(key, n)`` (``arange(n)`` when
    ``shuffle=False``); each index appears at most once.

    * ``drop_last=True``: returns ``idx int32 [n // batch_size, batch_size]``; the
      last ``n % batch_size`` indices of the order are left out.
    * ``drop_last=False``: returns ``(idx, mask)``, ``idx int32 [ceil(n / batch_size),
      batch_size]`` and ``mask bool`` of the same shape. Every index appears exactly
      once where ``mask`` is True; the padding at the end of the last batch
      (``mask`` False) repeats the order from its start, so gathering with
      ``idx`` stays in range and the batch shape stays fixed.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise bad_argument("n", n, "a positive number of examples")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise bad_argument("batch_size", batch_size, "a positive integer")
    n, batch_size = int(n), int(batch_size)
    if drop_last and n < batch_size:
        raise bad_argument("batch_size", batch_size, f"at most n={n} when drop_last=True (else no batch)")
    order = np.asarray(jax.random.permutation(key, n)) if shuffle else np.arange(n)
    order = order.astype(np.int32)
    if drop_last:
        n_batches = n // batch_size
        return order[: n_batches * batch_size].reshape(n_batches, batch_size)
    n_batches = -(-n // batch_size)
    idx = np.resize(order, n_batches * batch_size).reshape(n_batches, batch_size)  # pads by cycling
    mask = (np.arange(n_batches * batch_size) < n).reshape(n_batches, batch_size)
    return idx, mask
