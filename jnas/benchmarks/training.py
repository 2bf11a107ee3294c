"""A benchmark that answers queries by training: ``TrainingEvaluator(space, data, config=...)``.

It follows the protocol of the tabular benchmarks,
``query(archs, metric, fidelity) -> values``, where the fidelity is the
number of training epochs (the cosine schedule spans exactly that many, as in
NAS-Bench-201's 12- and 200-epoch tables). Each architecture is built with
``jnas.models.build_network`` and trained with ``jnas.train.loop.train``
from the same seed (``config.seed``), so a query is deterministic on CPU and
repeated queries are answered from a cache.

By default 10% of the training set (``valid_size=0.1``; a count also works)
is held out as the last examples of a fixed shuffle: networks train on the
rest, ``valid_acc`` is measured on them and is the default search metric, so
a search never looks at the test set (NAS-Bench-201 likewise searches on a
validation split). The test set is evaluated only when a test metric is
asked for (``query(..., metric="test_acc")`` or ``test_value``, which a
search calls after it has finished); with ``checkpoint_dir`` that reuses the
finished run's weights instead of training again.

Besides accuracies and loss, each record holds ``memory``: the activation
memory per image of the trained network in MB (10^6 bytes),
``jnas.models.cost.activation_bytes_per_image`` at the training images' shape
(NAGO's "memory consumption per image", lower is better). It is counted once
per trained network from one traced forward pass (no compilation, no test
data); for a generated space (``nago``) it is the sampled network's.

A run whose loss turns NaN/inf, or that raises, is a *failure*: its values are
NaN, it is listed in ``failures`` and the evaluator carries on. Everything
evaluated so far is in ``history``. ``query`` is a plain Python callable over a
batch, so the Python-loop runner drives a search with it directly:
``jnas.runs.run_loop(strategy, evaluator.query, seeds=1)``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jnas.benchmarks.protocol import unbatch
from jnas.errors import JnasError, bad_argument, check_int, first_line, is_machine_fault
from jnas.models.cost import activation_bytes_per_image
from jnas.spaces import Space, get_space
from jnas.train.loop import TrainingDiverged, pixel_stats, train
from jnas.train.optim import TrainConfig
from jnas.train.sharding import check_divisible, make_mesh

# metric -> (description, unit, higher_is_better)
METRICS = {
    "memory": ("activation memory per image of the trained network: bytes of every image-dependent array one "
               "unfused inference pass writes (jnas.models.cost.activation_bytes_per_image; NAGO's sample memory)",
               "MB", False),
    "test_acc": ("test accuracy after the last epoch (BatchNorm running averages)", "%", True),
    "valid_acc": ("accuracy on the held-out part of the training set after the last epoch", "%", True),
    "train_acc": ("training accuracy over the last epoch's augmented batches", "%", True),
    "train_loss": ("mean training loss (cross-entropy with label smoothing) over the last epoch", "nats", False),
}


class TrainingEvaluator:
    """Evaluate architectures of ``space`` by training them on ``data``.

    Parameters
    ----------
    space: search-space name (``nb201``, ``nb101``, ``darts``, ``convnet``, ...) or a ``Space``.
    data: dataset name for ``jnas.train.data.load_split`` (e.g. ``"cifar10"``,
        ``"cifar10_subset"``), or in-memory arrays
        ``((x_train uint8 [N,H,W,C], y_train int [N]), (x_test, y_test))``.
    config: training hyperparameters; ``config.epochs`` is the default fidelity.
    num_classes: classifier outputs (default: largest label + 1).
    model_options: extra keyword options of the space's network builder (e.g. ``channels``).
    data_dir: TFDS folder passed to ``load_split``.
    builder: network builder with ``build_network``'s signature (default ``jnas.models.build_network``).
    checkpoint_dir: if set, each run checkpoints into its own sub-folder and resumes from it.
    mesh: device mesh for data parallelism (default: all local devices).
    on_epoch: ``on_epoch(arch_string, epoch_record)`` after every training epoch.
    valid_size: hold out this part of the training set as a validation set: a
        fraction in (0, 1) (default 0.1) or a count of examples (0: none; then
        ``valid_acc`` is unavailable and the default metric is ``test_acc``,
        which a search refuses unless told to allow test metrics).
    networks: networks drawn per configuration of a generated space (``nago``,
        ``rnag``; default 1, as NAGO's search): network ``i`` is drawn with
        generator seed ``g + i`` (``g`` = ``model_options["seed"]``, default 0)
        and trained with ``config.seed + i``; a configuration's record holds
        the mean of their metrics (``status`` ``failed`` if any of them failed).
    """

    def __init__(
        self,
        space: str | Space,
        data,
        *,
        config: TrainConfig,
        num_classes: int | None = None,
        model_options: dict | None = None,
        data_dir=None,
        builder: Callable | None = None,
        checkpoint_dir=None,
        mesh=None,
        on_epoch: Callable[[str, dict], None] | None = None,
        valid_size: int | float = 0.1,
        networks: int = 1,
    ):
        self.space = get_space(space) if isinstance(space, str) else space
        if not isinstance(self.space, Space):
            raise bad_argument("space", space, "a space name or a jnas Space")
        self.networks = check_int("networks", networks, 1, expected="a positive integer")
        if self.networks > 1 and not self.space.generated:
            raise bad_argument("networks", networks, f"1: space {self.space.name!r} has one network per "
                               "architecture (several are drawn only from a generator such as nago or rnag)")
        if not isinstance(config, TrainConfig):
            raise bad_argument("config", type(config).__name__, "a TrainConfig")
        self.config = config
        self.model_options = dict(model_options or {})
        if builder is None:
            from jnas.models import build_network, check_network_options

            check_network_options(self.space.name, self.model_options)  # a typo fails here, not as N failed runs
            builder = build_network
        self._builder = builder
        self._train_data, self._test_data, self._mean, self._std, data_name = self._load(data, data_dir)
        self.name = f"train/{self.space.name}/{data_name}"
        n_all = len(self._train_data[1])
        if isinstance(valid_size, float) and 0.0 < valid_size < 1.0:
            valid_size = max(1, round(valid_size * n_all))
        self.valid_size = valid_size = check_int(
            "valid_size", valid_size, 0, n_all - 1,
            expected=f"a fraction in (0, 1) or an integer in [0, {n_all}) (training examples held out)",
        )
        self._valid_data = None
        if valid_size:
            # fixed split, independent of the training seed, so every run sees the same held-out images
            order = np.random.default_rng(0).permutation(n_all)
            x, y = self._train_data
            self._train_data = (x[order[:-valid_size]], y[order[:-valid_size]])
            self._valid_data = (x[order[-valid_size:]], y[order[-valid_size:]])
        labels_max = int(max(self._train_data[1].max(), self._test_data[1].max()))
        if num_classes is None:
            num_classes = labels_max + 1
        self.num_classes = check_int(
            "num_classes", num_classes, labels_max + 1, expected=f"an integer > the largest label ({labels_max})"
        )
        self.mesh = make_mesh() if mesh is None else mesh
        check_divisible(self.mesh, config.batch_size, "TrainConfig.batch_size")
        check_divisible(self.mesh, config.eval_batch_size, "TrainConfig.eval_batch_size")
        n_train = len(self._train_data[1])
        if config.batch_size > n_train:
            raise bad_argument(
                "TrainConfig.batch_size", config.batch_size, f"at most the training set size ({n_train})"
            )
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.on_epoch = on_epoch
        self.search_metric = ("valid_acc" if valid_size else "test_acc", config.epochs)
        self.test_metric = ("test_acc", config.epochs)
        self.history: list[dict] = []
        self.failures: list[dict] = []
        self._cache: dict[tuple[str, int], dict] = {}

    @staticmethod
    def _load(data, data_dir):
        if isinstance(data, str):
            from jnas.train.data import dataset_stats, load_split

            train_data = load_split(data, "train", data_dir=data_dir)
            test_data = load_split(data, "test", data_dir=data_dir)
            mean, std = dataset_stats(data, data_dir=data_dir)
            return train_data, test_data, mean, std, data
        try:
            (xt, yt), (xv, yv) = data
        except (TypeError, ValueError):
            raise bad_argument(
                "data", type(data).__name__, "a dataset name or ((x_train, y_train), (x_test, y_test))"
            ) from None
        pairs = []
        for split, (x, y) in (("train", (xt, yt)), ("test", (xv, yv))):
            x, y = np.asarray(x), np.asarray(y)
            if x.dtype != np.uint8 or x.ndim != 4 or y.ndim != 1 or len(y) != len(x) or len(y) == 0:
                raise bad_argument(
                    f"data ({split})", f"{x.dtype}{list(x.shape)}, {y.dtype}{list(y.shape)}", "uint8 [N,H,W,C], int [N]"
                )
            if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
                raise bad_argument(f"data ({split}) labels", y.dtype, "integer class ids >= 0")
            pairs.append((x, y.astype(np.int32)))
        mean, std = pixel_stats(pairs[0][0])  # of the whole training array, as dataset_stats does
        return pairs[0], pairs[1], mean, std, "arrays"

    # ----- protocol ------------------------------------------------------------
    def resolve(self, metric: str | None = None, fidelity: int | None = None) -> tuple[str, int]:
        """Normalise ``(metric, fidelity)``: default metric ``search_metric``, default fidelity ``config.epochs``."""
        metric = self.search_metric[0] if metric is None else metric
        choices = [m for m in METRICS if m != "valid_acc" or self.valid_size]
        if metric not in choices:
            hint = " (valid_acc needs valid_size > 0)" if metric == "valid_acc" else ""
            raise JnasError(f"metric: got {metric!r} for {self.name}, expected one of {', '.join(choices)}{hint}")
        epochs = self.config.epochs if fidelity is None else fidelity
        epochs = check_int("fidelity", epochs, 1, expected="None or a number of epochs >= 1")
        if self.config.warmup_epochs > epochs:
            raise bad_argument("fidelity", fidelity, f"at least config.warmup_epochs ({self.config.warmup_epochs})")
        return metric, epochs

    def query(self, archs, metric: str | None = None, fidelity: int | None = None) -> np.ndarray:
        """Train every architecture of the batch ``archs`` (leading axis) and return ``float64 [B]`` values.

        ``metric``: ``test_acc``/``train_acc``/``valid_acc`` (percent), ``train_loss`` or
        ``memory`` (MB per image) (``None``: ``search_metric``);
        ``fidelity``: training epochs (default ``config.epochs``). Failed runs give NaN.
        """
        metric, epochs = self.resolve(metric, fidelity)
        test = self.uses_test_data((metric, epochs))
        return np.array([self.evaluate(a, epochs, test=test)[metric] for a in self._unbatch(archs)], np.float64)

    def evaluate(self, arch, epochs: int | None = None, *, test: bool = False) -> dict:
        """Train one architecture for ``epochs`` (default ``config.epochs``) and return its record.

        The record has ``arch`` (string form), ``epochs``, ``status`` (``ok`` or
        ``failed``), ``reason`` (why it failed, else ``None``), ``test_acc``
        and ``test_loss`` (NaN unless ``test``: the test set is evaluated only
        when asked), ``valid_acc`` (NaN without a validation split),
        ``train_acc``, ``train_loss``, ``memory`` (activation MB per image),
        ``params`` and ``wall_seconds``; metric values are NaN for a failed
        run. A repeated call is answered from a cache; asking for ``test`` of a
        run trained without it evaluates the test set then (from the run's
        checkpoint when there is one).
        """
        _, epochs = self.resolve("train_acc", epochs)
        arch = jax.tree.map(np.asarray, arch)
        try:
            text = self.space.to_string(arch)
        except Exception:  # noqa: BLE001 — an arch we cannot even name is still a recorded failure
            text = repr(jax.tree.map(lambda a: a.tolist(), arch))
        key = (text, epochs)
        cached = self._cache.get(key)
        if cached is not None and (cached["test_measured"] or not test or cached["status"] == "failed"):
            return cached
        record = self._run(arch, text, epochs, test)
        self._cache[key] = record
        if cached is not None:  # the same run, now with its test metrics: replace, do not count twice
            self.history[self.history.index(cached)] = record
            return record
        self.history.append(record)
        if record["status"] == "failed":
            self.failures.append({"arch": text, "epochs": epochs, "reason": record["reason"]})
        return record

    # ----- evaluator protocol (jnas.benchmarks.protocol) -------------------------------
    traceable = False  # every query trains: a search runs in the Python loop

    @property
    def metrics(self) -> dict:
        """``{(metric, config.epochs): MetricInfo}``; coverage and optimum are unknown (``None``)."""
        from jnas.benchmarks.base import MetricInfo

        return {
            (m, self.config.epochs): MetricInfo(m, self.config.epochs, d, u, h, None, None, None)
            for m, (d, u, h) in METRICS.items()
            if m != "valid_acc" or self.valid_size
        }

    @property
    def fidelities(self) -> tuple:
        """Every epoch count from ``config.warmup_epochs`` (at least 1) to ``config.epochs``."""
        return tuple(range(max(1, self.config.warmup_epochs), self.config.epochs + 1))

    def cost(self, fidelity: int | None = None) -> float:
        """Training epochs one query costs."""
        return float(self.resolve(None, fidelity)[1])

    def uses_test_data(self, key) -> bool:
        """Whether metric ``key`` is measured on the test set."""
        return key[0].startswith("test_")

    def test_value(self, arch, epochs: int | None = None) -> float:
        """Test accuracy of one architecture after ``epochs`` (default ``config.epochs``); measured now."""
        return float(self.evaluate(arch, epochs, test=True)["test_acc"])

    def index_of(self, arch) -> int:
        """The space's index of ``arch`` when the space is enumerable, else -1."""
        if not self.space.enumerable:
            return -1
        return int(self.space.index(jax.tree.map(jnp.asarray, arch)))

    def describe(self) -> dict:
        """JSON-ready metadata: what the evaluator trains and what it can report."""
        return {
            "name": self.name,
            "space": self.space.name,
            "num_classes": self.num_classes,
            "config": self.config.to_dict(),
            "model_options": self.model_options,
            "train_size": len(self._train_data[1]),
            "valid_size": self.valid_size,
            "test_size": len(self._test_data[1]),
            "search_metric": list(self.search_metric),
            "metrics": {
                m: {"description": d, "unit": u, "higher_is_better": h}
                for m, (d, u, h) in METRICS.items()
                if m != "valid_acc" or self.valid_size
            },
            **({"networks": self.networks} if self.networks > 1 else {}),
            "evaluated": len(self.history),
            "failed": len(self.failures),
        }

    def reseeded(self, generator_seed: int, train_seed: int, subdir: str) -> TrainingEvaluator:
        """A copy drawing its networks with generator seed ``generator_seed`` (network option ``seed``) and
        training them with ``config.seed = train_seed``, one network per configuration, with an empty cache
        and history of its own and checkpoints under ``checkpoint_dir / subdir``."""
        ev = object.__new__(type(self))  # not copy.copy: that would go through __getstate__ (no mesh, no on_epoch)
        ev.__dict__.update(self.__dict__)
        ev.config = self.config.replace(seed=train_seed)
        ev.model_options = {**self.model_options, "seed": generator_seed}
        ev.networks = 1
        ev._cache, ev.history, ev.failures = {}, [], []
        if self.checkpoint_dir is not None:
            ev.checkpoint_dir = self.checkpoint_dir / subdir
        return ev

    # ----- internals -------------------------------------------------------------
    def _unbatch(self, archs) -> list:
        return unbatch(self.space, archs)

    def _run(self, arch, text: str, epochs: int, test: bool) -> dict:
        if self.networks == 1:
            return self._run_one(arch, text, epochs, test)
        g = self.model_options.get("seed", 0)
        runs = [self._run_one(arch, text, epochs, test)] + [
            self.reseeded(g + i, self.config.seed + i, f"net{i}")._run_one(arch, text, epochs, test)
            for i in range(1, self.networks)
        ]
        return _average(runs)

    def _run_one(self, arch, text: str, epochs: int, test: bool) -> dict:
        nan = float("nan")
        record = {
            "arch": text,
            "epochs": epochs,
            "test_measured": test,
            "status": "failed",
            "reason": None,
            "test_acc": nan,
            "valid_acc": nan,
            "train_acc": nan,
            "train_loss": nan,
            "test_loss": nan,
            "memory": nan,
            "params": None,
            "wall_seconds": nan,
        }
        config = self.config if epochs == self.config.epochs else self.config.replace(epochs=epochs)
        ckpt_dir = None
        if self.checkpoint_dir is not None:
            ckpt_dir = self.checkpoint_dir / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}-e{epochs}"
        on_epoch = None if self.on_epoch is None else (lambda rec: self.on_epoch(text, rec))
        try:
            if not bool(self.space.is_valid(arch)):
                raise JnasError(f"not a valid {self.space.name} architecture")
            model = self._builder(
                self.space.name, arch, num_classes=self.num_classes, rngs=nnx.Rngs(config.seed), **self.model_options
            )
            result = train(
                model,
                self._train_data,
                self._test_data if test else None,
                config,
                key=jax.random.key(config.seed),
                mesh=self.mesh,
                checkpoint_dir=ckpt_dir,
                on_epoch=on_epoch,
                mean=self._mean,
                std=self._std,
                valid_data=self._valid_data,
                identity={"space": self.space.name, "arch": text, "data": self.name,
                          "num_classes": self.num_classes, "valid_size": self.valid_size,
                          "model_options": self.model_options},
            )
            memory = activation_bytes_per_image(model, self._train_data[0].shape[1:]) / 1e6
        except TrainingDiverged as e:
            record["reason"] = f"diverged: {e}"
            return record
        except Exception as e:  # noqa: BLE001 — a crashed run is data for the search, not the end of it
            if is_machine_fault(e):  # a full disk or a stale checkpoint of another run: the user's to see
                raise
            record["reason"] = first_line(e)
            return record
        record.update(
            status="ok",
            test_acc=result.test_acc,
            valid_acc=result.valid_acc,
            train_acc=result.train_acc,
            train_loss=result.train_loss,
            test_loss=result.test_loss,
            memory=memory,
            params=result.params,
            wall_seconds=result.wall_seconds,
        )
        return record

    def __getstate__(self) -> dict:
        """What a copy in another process (a Ray worker) gets: the data, space, network options and schedule;
        not the device mesh (rebuilt there over that process's devices), the ``on_epoch`` callback, nor this
        process's cache and history."""
        state = dict(self.__dict__)
        state.update(mesh=None, on_epoch=None, _cache={}, history=[], failures=[])
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.mesh is None:
            self.mesh = make_mesh()

    def __repr__(self) -> str:
        return f"<training evaluator {self.name} ({len(self.history)} evaluated, {len(self.failures)} failed)>"


def _average(runs: list[dict]) -> dict:
    """One record for the networks of one configuration: metric means, summed wall time, ``failed`` (with the
    first network's reason) if any network failed."""
    out = dict(runs[0])
    bad = [(i, r) for i, r in enumerate(runs) if r["status"] != "ok"]
    if bad:
        i, r = bad[0]
        out.update({k: float("nan") for k in ("test_acc", "valid_acc", "train_acc", "train_loss", "test_loss",
                                               "memory")}, status="failed", params=None,
                   reason=f"network {i} of {len(runs)}: {r['reason']}")
    else:
        for k in ("test_acc", "valid_acc", "train_acc", "train_loss", "test_loss", "memory"):
            out[k] = float(np.mean([r[k] for r in runs]))
        out["params"] = int(round(np.mean([r["params"] for r in runs])))
    out["wall_seconds"] = float(np.nansum([r["wall_seconds"] for r in runs]))
    out["networks"] = len(runs)
    return out


__all__ = ["METRICS", "TrainingEvaluator"]
