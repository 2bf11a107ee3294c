"""One architecture, built or trained: what ``jnas describe`` and ``jnas train`` run.

``describe_architecture`` builds the network (no training step is compiled;
only the weight initialisers run) and counts its parameters, FLOPs and
activation bytes per image by tracing one forward pass. ``train_architecture`` builds it for
real, trains it on a dataset and writes ``result.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from jnas.errors import JnasError, bad_argument

#: (input shape, classes) of the datasets the NB201 table and the tools know
DATASETS = {
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "imagenet16-120": ((16, 16, 3), 120),
}


def parse_arch(space_name: str, text: str):
    """The array of ``text`` in ``space_name``'s string notation (one-line error if malformed)."""
    from jnas.spaces import get_space

    space = get_space(space_name)
    try:
        arch = space.from_string(text)
    except JnasError:
        raise
    except Exception as e:  # a parser's own exception, e.g. from ast on a DARTS genotype
        raise bad_argument("arch", text, f"a {space_name} architecture string ({e})") from None
    return space, arch


def check_model_options(space_name: str, options: dict | None) -> None:
    """One-line ``JnasError`` for a network option ``space_name``'s builder does not take or a value of the
    wrong type (``jnas.models.check_network_options``); cheap, so callers check before loading data."""
    from jnas.models import check_network_options

    check_network_options(space_name, dict(options or {}))


def _model_options(space_name: str, seed: int, input_shape, options: dict | None, data: str) -> dict:
    """The options ``build_network`` gets: the user's, checked, plus what the data and seed fix.

    Networks of generator spaces (``Space.generated``: ``nago``/``rnag``) also
    get the generator ``seed`` and the image shape; a builder with an
    ``in_channels`` option gets the images' channel count (a different value
    given by the user is an error, not a crash later).
    """
    from jnas.models import check_network_options, network_options
    from jnas.spaces import get_space

    options = dict(options or {})
    check_network_options(space_name, options)
    if get_space(space_name).generated:
        options.setdefault("seed", seed)
        options.setdefault("input_shape", tuple(input_shape))
    channels = int(input_shape[-1])
    if "in_channels" in network_options(space_name):
        given = options.setdefault("in_channels", channels)
        if given != channels:
            raise bad_argument("in_channels", given, f"{channels}, the channel count of the {data} images")
    return options


def _identity(space_name: str, arch_text: str, data: str, opts: dict) -> dict:
    """What a checkpoint of ``train_architecture`` must match to be resumed: space, canonical
    architecture, data (an ``.npz`` as its absolute path) and every network option (defaults included)."""
    from jnas.models import network_options

    if data.endswith(".npz"):
        data = str(Path(data).expanduser().resolve())
    effective = {k: v for k, v in network_options(space_name).items() if v is not None} | opts
    effective = json.loads(json.dumps(effective, default=lambda v: v.tolist() if hasattr(v, "tolist") else repr(v)))
    return {"space": space_name, "arch": arch_text, "data": data, "model_options": effective}


def describe_architecture(space_name: str, text: str, *, dataset: str = "cifar10", seed: int = 0,
                          options: dict | None = None) -> dict:
    """``{"params", "flops", "activation_bytes_per_image", ...}`` of the network of ``text``.

    ``params`` is the raw count of trainable parameters (``nnx.Param``),
    ``flops`` the forward FLOPs per image (convention in ``jnas.models.cost``),
    ``activation_bytes_per_image`` the bytes of every intermediate array of one
    forward pass. ``dataset`` fixes the input shape and the classifier width.
    ``seed`` is the generator seed of ``nago``/``rnag`` networks (ignored elsewhere).
    """
    import jax
    from flax import nnx

    from jnas.models import build_network
    from jnas.models.cost import describe

    if dataset not in DATASETS:
        raise bad_argument("dataset", dataset, f"one of {', '.join(DATASETS)}")
    shape, classes = DATASETS[dataset]
    space, arch = parse_arch(space_name, text)
    opts = _model_options(space_name, seed, shape, options, dataset)
    # Real weights from an RBG key: its initialisers compile ~3x faster than threefry's on CPU, and an
    # abstract build (nnx.eval_shape) slows down quadratically with the network's size in flax 0.12.
    rngs = nnx.Rngs(jax.random.key(0, impl="rbg"))
    model = build_network(space_name, arch, num_classes=classes, rngs=rngs, **opts)
    out = {"space": space_name, "arch": space.to_string(arch), "dataset": dataset, "input_shape": list(shape),
           "num_classes": classes}
    out.update(describe(model, shape))
    return out


def training_config(epochs: int, seed: int = 0, overrides: dict | None = None):
    """The default ``TrainConfig`` (NB201 recipe) for ``epochs`` and ``seed``, fields replaced by ``overrides``."""
    from jnas.train.optim import TrainConfig

    return TrainConfig(epochs=epochs, seed=seed).replace(**(overrides or {}))


def train_architecture(space_name: str, text: str, *, data: str, epochs: int, out: str | Path,
                       seed: int = 0, options: dict | None = None, config_overrides: dict | None = None,
                       data_dir: str | None = None, on_epoch=None) -> dict:
    """Train the network of ``text`` on ``data`` for ``epochs`` and write ``out/result.json``.

    ``data`` is a dataset name for ``jnas.train.data.load_split``
    (``cifar10_subset`` = ``$JNAS_DATA_DIR/cifar10_subset.npz``, or a prepared
    TFDS dataset such as ``cifar10``). ``config_overrides`` replace fields of
    the default ``TrainConfig`` (the NB201 recipe). Checkpoints go to
    ``out/checkpoints``, so a rerun with the same arguments resumes; they record
    the space, architecture, data and network options, and a checkpoint of a
    different run raises ``jnas.train.loop.CheckpointMismatch``. Returns the
    record written: final train/test accuracy (percent), epochs, wall time,
    params, and the per-epoch history.
    """
    import jax
    from flax import nnx

    from jnas.models import build_network
    from jnas.train.data import load_split
    from jnas.train.loop import train

    space, arch = parse_arch(space_name, text)
    config = training_config(epochs, seed, config_overrides)
    check_model_options(space_name, options)  # before the data load, which can take a while
    train_data = load_split(data, "train", data_dir=data_dir)
    test_data = load_split(data, "test", data_dir=data_dir)
    classes = int(max(train_data[1].max(), test_data[1].max())) + 1
    opts = _model_options(space_name, seed, train_data[0].shape[1:], options, data)
    t0 = time.perf_counter()
    model = build_network(space_name, arch, num_classes=classes, rngs=nnx.Rngs(seed), **opts)
    build_seconds = time.perf_counter() - t0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = train(model, train_data, test_data, config, key=jax.random.key(seed),
                   checkpoint_dir=out / "checkpoints", on_epoch=on_epoch,
                   identity=_identity(space_name, space.to_string(arch), data, opts))
    record = {
        "space": space_name,
        "arch": space.to_string(arch),
        "data": data,
        "num_classes": classes,
        "train_size": int(len(train_data[1])),
        "test_size": int(len(test_data[1])),
        "epochs": result.epochs,
        "train_acc": result.train_acc,
        "test_acc": result.test_acc,
        "train_loss": result.train_loss,
        "test_loss": result.test_loss,
        "params": result.params,
        "wall_seconds": result.wall_seconds,
        "build_seconds": build_seconds,
        "resumed_from": result.resumed_from,
        "config": config.to_dict(),
        "model_options": {k: v for k, v in opts.items() if isinstance(v, (int, float, str, bool, list, tuple))},
        "devices": [str(d) for d in jax.local_devices()],
        "history": result.history,
    }
    from jnas.runs.folder import write_atomic

    text = (json.dumps(record, indent=2, default=float) + "\n").encode()
    write_atomic(out / "result.json", lambda f: f.write(text),
                 "; every epoch is checkpointed: free some space and rerun the same command to write it")
    return record
