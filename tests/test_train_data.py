"""Data layer of training: TFDS array_record datasets without TensorFlow, sampling, augmentation.

Nothing here downloads: every TFDS call gets a ``tmp_path`` data_dir, and the
tests that touch ``prepare`` for TFDS's own datasets make any download fail loudly.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jnas.errors import JnasError
from jnas.train import augment, data, data_prepare

MEAN = np.array([0.49, 0.48, 0.45], np.float32)
STD = np.array([0.25, 0.24, 0.26], np.float32)


def _random_splits(seed, shape=(5, 6, 3), n_train=13, n_test=4):
    rng = np.random.default_rng(seed)
    return {
        "train": (rng.integers(0, 256, (n_train, *shape), dtype=np.uint8), rng.integers(0, 7, n_train)),
        "test": (rng.integers(0, 256, (n_test, *shape), dtype=np.uint8), rng.integers(0, 7, n_test)),
    }


@pytest.fixture
def no_download(monkeypatch):
    """Make any TFDS download_and_prepare of a registered dataset fail instead of hanging offline."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"test tried to download {self.name}")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", refuse)


# ----------------------------------------------------------------------------- array datasets


def test_arrays_builder_round_trips_exactly_through_data_source(tmp_path):
    splits = _random_splits(0)
    splits["train"][1][3] = 1_000_000  # a large class id must survive (int64 storage)
    folder = data.prepare_arrays("rand_arrays", splits, data_dir=tmp_path)
    assert Path(folder) == tmp_path / "rand_arrays" / data.ARRAYS_VERSION
    for split, (x, y) in splits.items():
        source = tfds.data_source("rand_arrays", split=split, data_dir=str(tmp_path), download=False)
        assert len(source) == len(x)
        for i in range(len(x)):  # record i is row i (no TFDS shuffling)
            np.testing.assert_array_equal(source[i]["image"], x[i])
            assert source[i]["label"] == y[i]
        images, labels = data.load_split("rand_arrays", split, data_dir=tmp_path)
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        np.testing.assert_array_equal(images, x)
        np.testing.assert_array_equal(labels, y)


def test_prepare_arrays_is_a_no_op_when_current_and_replaces_a_stale_copy(tmp_path):
    first, second = _random_splits(1), _random_splits(2, n_train=9)
    folder = Path(data.prepare_arrays("same_name", first, data_dir=tmp_path))
    record = folder / "same_name-train.array_record-00000-of-00001"
    stamp = record.stat().st_mtime_ns
    data.prepare_arrays("same_name", first, data_dir=tmp_path)
    assert record.stat().st_mtime_ns == stamp  # not rewritten
    data.prepare_arrays("same_name", second, data_dir=tmp_path)
    images, labels = data.load_split("same_name", "train", data_dir=tmp_path)
    np.testing.assert_array_equal(images, second["train"][0])
    np.testing.assert_array_equal(labels, second["train"][1])


def test_npz_path_is_an_array_dataset_and_is_rewritten_when_the_file_changes(tmp_path):
    path = tmp_path / "My Data-1.npz"
    cache = tmp_path / "tfds"
    for seed in (3, 4):  # second round: same file name, new content
        splits = _random_splits(seed, shape=(4, 4, 1))
        np.savez(path, **{f"{a}_{s}": splits[s][i] for s in ("train", "test") for i, a in enumerate("xy")})
        for split in ("train", "test"):
            images, labels = data.load_split(str(path), split, data_dir=cache)
            np.testing.assert_array_equal(images, splits[split][0])
            np.testing.assert_array_equal(labels, splits[split][1])
    assert (cache / "my_data_1" / data.ARRAYS_VERSION / "dataset_info.json").is_file()
    with pytest.raises(JnasError, match="split"):
        data.load_split(str(path), "validation", data_dir=cache)
    np.savez(tmp_path / "partial.npz", x_train=splits["train"][0], y_train=splits["train"][1])
    with pytest.raises(JnasError, match="missing arrays"):
        data.prepare(str(tmp_path / "partial.npz"), data_dir=cache)
    with pytest.raises(JnasError, match="name"):
        data.prepare(str(tmp_path / "absent.npz"), data_dir=cache)


def test_array_inputs_are_validated(tmp_path):
    x = np.zeros((3, 4, 4, 3), np.uint8)
    with pytest.raises(JnasError, match="uint8"):
        data.prepare_arrays("bad", {"train": (x.astype(np.float32), np.zeros(3, int))}, data_dir=tmp_path)
    with pytest.raises(JnasError, match="labels"):
        data.prepare_arrays("bad", {"train": (x, np.zeros(2, int))}, data_dir=tmp_path)
    with pytest.raises(JnasError, match="same"):
        data.prepare_arrays(
            "bad", {"train": (x, np.zeros(3, int)), "test": (x[:, :2], np.zeros(3, int))}, data_dir=tmp_path
        )
    with pytest.raises(JnasError, match="name"):
        data.prepare_arrays("Bad Name", {"train": (x, np.zeros(3, int))}, data_dir=tmp_path)


# ----------------------------------------------------------------------------- cifar10_subset


@pytest.fixture(scope="module")
def subset_npz():
    path = Path(os.environ["JNAS_DATA_DIR"]) / "cifar10_subset.npz"
    # missing data fails, never skips (tests/conftest.py)
    assert path.is_file(), f"cifar10_subset.npz not in JNAS_DATA_DIR={path.parent} (see shared/data/README.md §6)"
    with np.load(path) as z:
        return {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="module")
def subset_dir(subset_npz, tmp_path_factory):
    folder = tmp_path_factory.mktemp("jnas_tfds")
    data.prepare("cifar10_subset", data_dir=folder)
    return folder


def test_cifar10_subset_loads_with_the_readme_shapes_and_equals_the_npz(subset_npz, subset_dir):
    for split, n in (("train", 4800), ("test", 850)):
        images, labels = data.load_split("cifar10_subset", split, data_dir=subset_dir)
        assert images.shape == (n, 32, 32, 3) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int32
        np.testing.assert_array_equal(images, subset_npz[f"x_{split}"])
        np.testing.assert_array_equal(labels, subset_npz[f"y_{split}"])
        assert np.all(np.bincount(labels, minlength=10) == n // 10)


def test_cifar10_subset_default_cache_is_jnas_tfds_dir_and_is_reused(subset_dir, monkeypatch):
    monkeypatch.setenv("JNAS_TFDS_DIR", str(subset_dir))
    assert data.tfds_cache_dir() == str(subset_dir)
    record = subset_dir / "cifar10_subset" / data.ARRAYS_VERSION / "cifar10_subset-test.array_record-00000-of-00001"
    stamp = record.stat().st_mtime_ns
    images, _ = data.load_split("cifar10_subset", "test")
    assert images.shape == (850, 32, 32, 3)
    assert record.stat().st_mtime_ns == stamp


def test_dataset_stats(subset_npz, subset_dir, tmp_path):
    for name, mean255, std255 in (
        ("cifar10", [125.3, 123.0, 113.9], [63.0, 62.1, 66.7]),
        ("cifar100", [129.3, 124.1, 112.4], [68.2, 65.4, 70.4]),
    ):
        mean, std = data.dataset_stats(name)
        assert mean.dtype == std.dtype == np.float32 and mean.shape == (3,)
        np.testing.assert_allclose(mean * 255, mean255, rtol=1e-6)
        np.testing.assert_allclose(std * 255, std255, rtol=1e-6)
    mean, std = data.dataset_stats("cifar10_subset", data_dir=subset_dir)
    pixels = subset_npz["x_train"].reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, pixels.std(0), rtol=1e-5)
    c10_mean, c10_std = data.dataset_stats("cifar10")
    assert np.max(np.abs(mean - c10_mean)) < 0.01 and np.max(np.abs(std - c10_std)) < 0.01
    splits = _random_splits(5, shape=(3, 3, 2))
    data.prepare_arrays("two_channels", splits, data_dir=tmp_path)
    mean, std = data.dataset_stats("two_channels", data_dir=tmp_path)
    pixels = splits["train"][0].reshape(-1, 2) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, pixels.std(0), rtol=1e-5)


# ----------------------------------------------------------------------------- TFDS's own datasets


def test_cifar10_under_tfds_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=9):
        images, labels = data.load_split("cifar10", "train", data_dir=tmp_path)
    assert images.shape == (9, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (9,) and labels.dtype == np.int32
    assert labels.min() >= 0 and labels.max() < 10


def test_unprepared_tfds_dataset_raises_the_clear_error(tmp_path, no_download):
    with pytest.raises(JnasError, match=r"not prepared .*jnas\[prepare\].*prepare\('cifar10'\)"):
        data.load_split("cifar10", "train", data_dir=tmp_path)
    with pytest.raises(JnasError, match="unknown dataset"):
        data.load_split("no_such_dataset_xyz", "train", data_dir=tmp_path)


def test_prepare_tfds_dataset_without_tensorflow_names_the_extra(tmp_path, monkeypatch, no_download):
    if not data_prepare._has_tensorflow():  # the real check, in this environment
        with pytest.raises(JnasError, match=r'pip install "jnas\[prepare\]"'):
            data.prepare("cifar10", data_dir=tmp_path)
    monkeypatch.setattr(data_prepare, "_has_tensorflow", lambda: False)
    with pytest.raises(JnasError, match=r'needs TensorFlow.*pip install "jnas\[prepare\]"'):
        data.prepare("cifar100", data_dir=tmp_path)
    assert not any(p.suffix == ".tar" or "array_record" in p.name for p in tmp_path.rglob("*"))


class _PreparedCifar10(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Writes files shaped like a real `tfds build cifar10 --file_format=array_record` (PNG images)."""

    name = "cifar10"
    VERSION = tfds.core.Version("3.0.2")

    def __init__(self, *, arrays, **kwargs):
        self._arrays = arrays
        super().__init__(**kwargs)

    def _info(self):
        features = tfds.features.FeaturesDict(
            {
                "id": tfds.features.Text(),
                "image": tfds.features.Image(shape=(32, 32, 3)),
                "label": tfds.features.ClassLabel(num_classes=10),
            }
        )
        return tfds.core.DatasetInfo(
            builder=self, features=features, supervised_keys=("image", "label"), disable_shuffling=True
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self._arrays}

    def _generate_examples(self, split):
        from PIL import Image

        x, y = self._arrays[split]
        for i in range(len(x)):
            png = io.BytesIO()
            Image.fromarray(x[i]).save(png, format="PNG")  # PIL encodes, so no TensorFlow is needed
            yield i, {"id": f"{split}_{i}", "image": png.getvalue(), "label": int(y[i])}


def test_prepared_cifar10_is_read_through_its_registered_builder(tmp_path, monkeypatch):
    pytest.importorskip("PIL")
    arrays = _random_splits(6, shape=(32, 32, 3), n_train=6, n_test=3)
    _PreparedCifar10(arrays=arrays, data_dir=str(tmp_path)).download_and_prepare(file_format="array_record")
    assert type(tfds.builder("cifar10", data_dir=str(tmp_path))).__name__ == "Cifar10"  # the real class reads it
    for split, (x, y) in arrays.items():
        images, labels = data.load_split("cifar10", split, data_dir=tmp_path)
        np.testing.assert_array_equal(images, x)  # PNG is lossless
        np.testing.assert_array_equal(labels, y)
    with pytest.raises(JnasError, match=r"split: got 'validation', expected one of \['train', 'test'\]"):
        data.load_split("cifar10", "validation", data_dir=tmp_path)
    monkeypatch.setattr(data_prepare, "_has_tensorflow", lambda: False)  # prepared data needs neither TF nor network
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", lambda *a, **k: pytest.fail("download"))
    assert Path(data.prepare("cifar10", data_dir=tmp_path)) == tmp_path / "cifar10" / "3.0.2"


# ----------------------------------------------------------------------------- epoch_batches


def test_epoch_batches_is_a_permutation():
    # n = 100 throughout: the permutation compiles once per n.
    key = jax.random.key(0)
    batches = data.epoch_batches(key, 100, 10)
    assert isinstance(batches, data.EpochBatches)
    idx, mask = batches
    assert idx.shape == mask.shape == (10, 10) and idx.dtype == np.int32 and mask.dtype == bool and mask.all()
    np.testing.assert_array_equal(np.sort(idx.ravel()), np.arange(100))
    assert not np.array_equal(idx.ravel(), np.arange(100))
    np.testing.assert_array_equal(data.epoch_batches(key, 100, 10).idx, idx)  # same key, same epoch
    assert not np.array_equal(data.epoch_batches(jax.random.key(1), 100, 10).idx, idx)
    dropped, dropped_mask = data.epoch_batches(key, 100, 7)
    assert dropped.shape == (14, 7) and len(np.unique(dropped)) == 98 and dropped.max() < 100 and dropped_mask.all()
    np.testing.assert_array_equal(data.epoch_batches(key, 20, 5, shuffle=False).idx, np.arange(20).reshape(4, 5))


def test_epoch_batches_without_drop_last_pads_and_masks():
    batches = data.epoch_batches(jax.random.key(2), 100, 7, drop_last=False)
    assert isinstance(batches, data.EpochBatches)  # one type whatever drop_last
    idx, mask = batches
    assert idx.shape == mask.shape == (15, 7) and mask.dtype == bool
    np.testing.assert_array_equal(np.sort(idx[mask]), np.arange(100))
    assert mask[:14].all() and mask[14].sum() == 2 and mask[14, :2].all()
    np.testing.assert_array_equal(idx[14, 2:], idx.ravel()[:5])  # padding repeats the start of the order
    # the full batches are those of drop_last=True
    np.testing.assert_array_equal(idx[:14], data.epoch_batches(jax.random.key(2), 100, 7).idx)
    idx, mask = data.epoch_batches(jax.random.key(2), 3, 8, shuffle=False, drop_last=False)
    np.testing.assert_array_equal(idx, [[0, 1, 2, 0, 1, 2, 0, 1]])
    np.testing.assert_array_equal(mask, [[True] * 3 + [False] * 5])
    with pytest.raises(JnasError, match="batch_size: got 8, expected at most n=3"):
        data.epoch_batches(jax.random.key(0), 3, 8)
    with pytest.raises(JnasError, match="n: got 0, expected a positive number of examples"):
        data.epoch_batches(jax.random.key(0), 0, 8)
    with pytest.raises(JnasError, match="batch_size: got True, expected a positive integer"):
        data.epoch_batches(jax.random.key(0), 3, True)
    assert data.epoch_batches(jax.random.key(0), np.int64(4), np.int32(2)).idx.shape == (2, 2)


# ----------------------------------------------------------------------------- augmentation


def _images(seed, shape=(16, 6, 7, 3)):
    # Values 1..255: a zero can only come from padding or cutout.
    return jnp.asarray(np.random.default_rng(seed).integers(1, 256, shape, dtype=np.uint8))


def test_augment_shapes_and_dtypes():
    key, x = jax.random.key(0), _images(0)
    assert augment.random_crop(key, x, pad=2).dtype == jnp.uint8
    assert augment.random_flip(key, x).dtype == jnp.uint8
    assert augment.cutout(key, x, 3).dtype == jnp.uint8
    for out in (
        augment.normalize(x, MEAN, STD),
        augment.eval_batch(x, mean=MEAN, std=STD),
        augment.augment_batch(key, x, mean=MEAN, std=STD, cutout_size=4),
    ):
        assert out.shape == x.shape and out.dtype == jnp.float32
    np.testing.assert_allclose(augment.normalize(x, MEAN, STD), (np.asarray(x) / 255.0 - MEAN) / STD, atol=1e-6)


def test_flip_is_an_exact_mirror_per_image():
    x = _images(1, (32, 5, 6, 2))
    out = np.asarray(augment.random_flip(jax.random.key(3), x))
    xs = np.asarray(x)
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, xs)]
    kept = [np.array_equal(o, i) for o, i in zip(out, xs)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image: exactly one of the two
    assert 0 < sum(flipped) < len(xs)


def test_crop_is_the_identity_at_pad_0_and_a_shifted_window_of_the_padded_image():
    x = _images(2)
    np.testing.assert_array_equal(augment.random_crop(jax.random.key(0), x, pad=0), x)
    p, (_, h, w, _) = 2, x.shape
    out = np.asarray(augment.random_crop(jax.random.key(4), x, pad=p))
    padded = np.pad(np.asarray(x), ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = set()
    for i in range(len(x)):
        hits = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if np.array_equal(out[i], padded[i, dy : dy + h, dx : dx + w])
        ]
        assert len(hits) == 1, f"image {i}: {hits}"
        offsets.add(hits[0])
    assert len(offsets) > 3  # per-image offsets, not one shift for the batch


def test_cutout_zeroes_one_square_clipped_at_the_border():
    size, (b, h, w) = 4, (64, 8, 9)
    x = jnp.ones((b, h, w, 2), jnp.float32)
    out = np.asarray(augment.cutout(jax.random.key(5), x, size))
    clipped = full = 0
    for img in out:
        zero = img == 0
        assert np.array_equal(zero[..., 0], zero[..., 1]) and np.all(img[~zero] == 1)
        rows, cols = np.flatnonzero(zero[..., 0].any(1)), np.flatnonzero(zero[..., 0].any(0))
        assert rows.size and cols.size
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        assert zero[r0:r1, c0:c1].all() and zero[..., 0].sum() == (r1 - r0) * (c1 - c0)  # one rectangle
        for lo, hi, extent in ((r0, r1, h), (c0, c1, w)):
            assert hi - lo == size or ((lo == 0 or hi == extent) and hi - lo < size)
        if (r1 - r0, c1 - c0) == (size, size):
            full += 1
        else:
            clipped += 1
    assert full and clipped
    np.testing.assert_array_equal(augment.cutout(jax.random.key(5), x, 0), x)
    assert not np.asarray(augment.cutout(jax.random.key(5), x, 2 * max(h, w))).any()  # covers everything


def test_augment_batch_order_crop_black_then_normalize_then_cutout_to_zero():
    x = _images(3)
    key = jax.random.key(6)
    plain = augment.augment_batch(key, x, mean=MEAN, std=STD, crop_pad=0, flip=False)
    np.testing.assert_array_equal(plain, augment.normalize(x, MEAN, STD))
    cut = np.asarray(augment.augment_batch(key, x, mean=MEAN, std=STD, crop_pad=0, flip=False, cutout_size=3))
    changed = cut != np.asarray(plain)
    assert np.all(cut[changed] == 0.0)  # cutout comes last: zero in normalized space (the mean colour)
    assert all(0 < c.sum() <= 3 * 3 * 3 for c in changed)
    white = jnp.full((16, 6, 7, 3), 255, jnp.uint8)
    out = np.asarray(augment.augment_batch(key, white, mean=MEAN, std=STD, crop_pad=2))
    black, bright = -MEAN / STD, (1 - MEAN) / STD  # padding is black pixels, normalized afterwards
    is_black = np.isclose(out, black).all(-1)
    assert np.all(is_black | np.isclose(out, bright).all(-1)) and is_black.any()


def test_augment_is_deterministic_in_the_key_and_jit_vmap_compatible():
    x = _images(4)
    kw = dict(mean=MEAN, std=STD, cutout_size=4)  # as in test_augment_shapes_and_dtypes: compiled once
    a = augment.augment_batch(jax.random.key(7), x, **kw)
    np.testing.assert_array_equal(a, augment.augment_batch(jax.random.key(7), x, **kw))
    assert not np.array_equal(a, augment.augment_batch(jax.random.key(8), x, **kw))
    keys = jax.random.split(jax.random.key(9), 3)
    xs = jnp.stack([x, _images(5), _images(6)])
    batched = jax.vmap(lambda k, b: augment.augment_batch(k, b, **kw))(keys, xs)
    for i in range(3):
        np.testing.assert_allclose(batched[i], augment.augment_batch(keys[i], xs[i], **kw), rtol=1e-6)


def test_augment_rejects_bad_inputs():
    x = _images(0)
    with pytest.raises(JnasError, match="uint8"):
        augment.augment_batch(jax.random.key(0), x.astype(jnp.float32), mean=MEAN, std=STD)
    with pytest.raises(JnasError, match="mean"):
        augment.eval_batch(x, mean=MEAN[:2], std=STD)
    with pytest.raises(JnasError, match="pad"):
        augment.random_crop(jax.random.key(0), x, pad=-1)
    with pytest.raises(JnasError, match="images"):
        augment.random_flip(jax.random.key(0), x[0])
