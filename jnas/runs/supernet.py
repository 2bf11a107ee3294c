"""A one-shot search, end to end: what ``jnas supernet`` runs.

``run_supernet`` checks every argument, loads the training split, builds the
supernet of the space with the method's initial architecture parameters,
runs ``jnas.train.oneshot.search_supernet`` with a checkpoint per epoch in
``out/checkpoints`` (a rerun of the same command resumes; a different run in
that folder is refused) and writes ``out/result.json``:

* ``derived_arch``: the final derived architecture in the space's notation;
* ``history``: per epoch the weight-half (``train_*``) and architecture-half
  (``val_*``) losses and accuracies, the derived architecture
  (``derived_arch``), the architecture parameters (``arch``: logits, or
  ANASOD-DNAS's distribution) and, for NB201, the derived cell's looked-up
  CIFAR-10 test accuracy (``nb201_cifar10_test_acc``) and its share of
  ``skip_connect``/``none`` edges;
* ``nb201_test_acc`` (NB201 only): dataset → the final cell's 200-epoch
  test accuracy in the NAS-Bench-201 table, for ``cifar10``, ``cifar100``
  and ``imagenet16-120``.

``load_supernet_run(out)`` rebuilds the trained supernet of a finished run
as a ``jnas.benchmarks.supernet.SupernetEvaluator`` (inherited weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from jnas.errors import JnasError, bad_argument, check_int

#: the NB201 tables a derived cell is looked up in
NB201_DATASETS = ("cifar10", "cifar100", "imagenet16-120")
RESULT_FILE = "result.json"


def check_supernet_args(space: str, method: str, epochs, method_options: dict | None = None,
                        model_options: dict | None = None, config_overrides: dict | None = None, seed: int = 0):
    """``(method, config)`` after checking everything that needs no data (one-line errors naming the flag)."""
    from jnas.models.supernet import SPACES, check_supernet_options
    from jnas.train.oneshot import search_config
    from jnas.train.oneshot_methods import make_method

    if space not in SPACES:
        raise JnasError(f"--space: got {space!r}, expected one of {', '.join(SPACES)} (the spaces with a supernet)")
    m = make_method(method, space, **dict(method_options or {}))
    epochs = check_int("--epochs", epochs, 1, expected="a positive integer")
    network = check_supernet_options(space, dict(model_options or {}))
    if m.warmup_epochs >= epochs:
        raise JnasError(f"--set warmup_epochs: got {m.warmup_epochs}, expected fewer than the {epochs} epochs of "
                        f"the search{' stage' if len(m.stage_plan()) > 1 else ''} (the architecture would never "
                        f"be trained)")
    k = m.structure().get("partial_channels", 1)
    if network["channels"] % k:
        raise JnasError(f"--set partial_channels: got {k}, expected a divisor of the supernet's "
                        f"{network['channels']} channels (--model channels)")
    overrides = dict(config_overrides or {})
    for key, flag in (("seed", "--seed"), ("epochs", "--epochs")):
        if key in overrides:
            raise JnasError(f"--config {key}: set it with {flag}, not --config")
    config = search_config(epochs, seed, overrides, method=m)
    plan = m.stage_plan()
    if len(plan) > 1:
        for k in plan[0]:
            if k in (model_options or {}):
                raise JnasError(f"--model {k}: method {m.name} sets it per stage; use --set depths=... instead")
    return m, config


def _load_train(data: str, data_dir):
    from jnas.train.data import dataset_stats, load_split

    if not isinstance(data, str) or not data:
        raise bad_argument("--data", data, "a dataset name, e.g. cifar10_subset")
    try:
        train = load_split(data, "train", data_dir=data_dir)
        mean, std = dataset_stats(data, data_dir=data_dir)
    except JnasError as e:
        raise JnasError(f"--data: {e}") from None
    return train, mean, std


def _identity(space: str, data: str, model_options: dict, num_classes: int, method=None, tag=None) -> dict:
    """What a checkpoint folder's run is: resuming it with anything else is refused."""
    from jnas.models.supernet import NETWORK_OPTIONS

    if data.endswith(".npz"):
        data = str(Path(data).expanduser().resolve())
    out = {"space": space, "data": data, "num_classes": num_classes,
           "model_options": {**NETWORK_OPTIONS[space], **model_options}, **(tag or {})}
    structure = {} if method is None else method.structure()
    if structure:
        out["structure"] = {k: np.asarray(v).astype(int).tolist() for k, v in structure.items()}
    return out


def _stage_keys(key, stage: int):
    """``(model, architecture, search)`` keys of a stage (stage 0: those of a one-stage run)."""
    import jax

    keys = jax.random.split(key, 3)
    return tuple(keys) if stage == 0 else tuple(jax.random.fold_in(k, stage) for k in keys)


def _checkpoint_dir(out: Path, stage: int, staged: bool) -> Path:
    return out / "checkpoints" / f"stage{stage + 1}" if staged else out / "checkpoints"


class NB201Lookup:
    """Test accuracies of NB201 cells in the NAS-Bench-201 tables (loaded on first use)."""

    def __init__(self):
        self._benches: dict | None = None
        self.error: str | None = None

    def _load(self):
        if self._benches is None and self.error is None:
            from jnas.benchmarks import get_benchmark

            try:
                self._benches = {d: get_benchmark(f"nb201/{d}") for d in NB201_DATASETS}
            except JnasError as e:
                self.error = str(e)
        return self._benches

    def test_acc(self, arch, datasets=NB201_DATASETS) -> dict | None:
        """``{dataset: 200-epoch test accuracy %}`` of the cell ``arch`` (``None`` when the tables are missing)."""
        import jax.numpy as jnp

        benches = self._load()
        if benches is None:
            return None
        out = {}
        for d in datasets:
            b = benches[d]
            row = int(b.rows(jnp.asarray(arch)[None])[0])
            value = float(b.column(*b.test_metric)[row]) if row >= 0 else float("nan")
            out[d] = round(value, 6) if value == value else None  # float32 tables: 65.2, not 65.19999992
        return out


def op_shares(space: str, arch) -> dict:
    """Share of the derived cell's edges that are ``skip_connect`` and ``none`` (NB201; DARTS: skip only)."""
    from jnas.models.supernet import op_names

    names = op_names(space)
    ops = np.asarray(arch) if space == "nb201" else np.asarray(arch)[..., 1]
    ops = ops.reshape(-1)
    out = {"skip_connect": float(np.mean(ops == names.index("skip_connect")))}
    if space == "nb201":
        out["none"] = float(np.mean(ops == names.index("none")))
    return out


def run_supernet(space: str, method: str, *, data: str, epochs: int, out, seed: int = 0,
                 method_options: dict | None = None, model_options: dict | None = None,
                 config_overrides: dict | None = None, data_dir=None, mesh=None,
                 on_epoch: Callable[[dict], None] | None = None,
                 on_step: Callable[[int, int, dict], None] | None = None) -> dict:
    """Run a one-shot search and write ``out/result.json`` (see the module docstring); returns the record.

    ``on_epoch(record)`` gets each history record (with ``derived_arch`` and,
    for NB201, ``nb201_cifar10_test_acc``); ``on_step(i, n, metrics)`` each step.
    """
    import time

    import jax
    from flax import nnx

    from jnas.models.supernet import build_supernet, op_names
    from jnas.spaces import get_space
    from jnas.train.loop import CheckpointMismatch
    from jnas.train.oneshot import search_supernet

    m, config = check_supernet_args(space, method, epochs, method_options, model_options, config_overrides, seed)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise bad_argument("--out", str(out), "a folder (this is a file)")
    model_options = dict(model_options or {})
    train, mean, std = _load_train(data, data_dir)
    num_classes = int(train[1].max()) + 1
    space_obj = get_space(space)
    key = jax.random.key(seed)
    lookup = NB201Lookup() if space == "nb201" else None
    plan = m.stage_plan()
    staged = len(plan) > 1

    def annotate(rec: dict) -> dict:
        arch = np.asarray(rec["derived"], np.int8)
        rec["derived_arch"] = space_obj.to_string(arch)
        rec["op_share"] = op_shares(space, arch)
        if lookup is not None:
            acc = lookup.test_acc(arch, ("cifar10",))
            rec["nb201_cifar10_test_acc"] = None if acc is None else acc["cifar10"]
        return rec

    out.mkdir(parents=True, exist_ok=True)
    history, stages, build_seconds, wall, previous = [], [], 0.0, 0.0, None
    sm = m
    for stage, stage_options in enumerate(plan):
        if stage > 0:
            sm = sm.next_stage(previous)
        k_model, k_arch, k_search = _stage_keys(key, stage)
        options = {**model_options, **stage_options}
        t0 = time.perf_counter()
        model = build_supernet(space, sm.init_arch(k_arch), num_classes=num_classes, rngs=nnx.Rngs(k_model),
                               **options, **sm.structure())
        build_seconds += time.perf_counter() - t0
        tag = {"stage": stage + 1} if staged else {}

        def epoch_done(rec: dict, tag=tag) -> None:
            if on_epoch is not None:
                on_epoch(annotate({**rec, **tag}))

        try:
            result = search_supernet(model, sm, train, config, key=k_search, space_obj=space_obj, mesh=mesh,
                                     checkpoint_dir=_checkpoint_dir(out, stage, staged),
                                     identity=_identity(space, data, options, num_classes, sm, tag),
                                     mean=mean, std=std, on_epoch=epoch_done, on_step=on_step)
        except CheckpointMismatch:
            raise
        except JnasError as e:
            if str(e).startswith("checkpoint_dir: "):  # the user gave --out, not a checkpoint folder
                raise JnasError(f"--out: {str(e)[len('checkpoint_dir: '):]}") from None
            raise
        history += [annotate({**r, **tag}) for r in result.history]
        wall += result.wall_seconds
        previous = result.arch
        if staged:
            entry = {"stage": stage + 1, "model_options": _identity(space, data, options, num_classes)["model_options"],
                     "op_mask": None if sm.op_mask is None else np.asarray(sm.op_mask).astype(int).tolist(),
                     "epochs_run": len(result.history), "derived_arch": space_obj.to_string(result.derived),
                     "arch": result.arch.tolist()}
            if result.history[-1].get("early_stop"):
                entry["stopped_at_epoch"] = int(result.history[-1]["epoch"])
            stages.append(entry)
    last_options = options
    record = {
        "space": space,
        "method": m.name,
        "method_options": m.settings(),
        "data": data,
        "seed": seed,
        "num_classes": num_classes,
        "train_size": int(len(train[1])),
        "epochs": config.epochs,
        "derived_arch": space_obj.to_string(result.derived),
        "op_names": list(op_names(space)),
        "arch": result.arch.tolist(),
        "wall_seconds": wall,
        "build_seconds": build_seconds,
        "resumed_from": result.resumed_from,
        "config": config.to_dict(),
        "model_options": _identity(space, data, last_options, num_classes)["model_options"],
        "devices": [str(d) for d in jax.local_devices()],
        "history": history,
    }
    if staged:
        record["stages"] = stages
    if result.history and result.history[-1].get("early_stop"):
        record["stopped_at_epoch"] = int(result.history[-1]["epoch"])
        record["early_stop"] = result.history[-1]["early_stop"]
    if lookup is not None:
        record["nb201_test_acc"] = lookup.test_acc(result.derived)
        if lookup.error:
            record["nb201_lookup_error"] = lookup.error
    from jnas.runs.folder import write_atomic

    text = (json.dumps(record, indent=2, default=float) + "\n").encode()
    write_atomic(out / RESULT_FILE, lambda f: f.write(text),
                 "; every epoch is checkpointed: free some space and rerun the same command to write it")
    return record


def load_supernet_run(out, *, data_dir=None, mesh=None):
    """The trained supernet of the finished run in ``out`` as a ``SupernetEvaluator``.

    Rebuilds the network from ``out/result.json``, restores the weights of
    the last checkpoint and re-cuts the same architecture half of the
    training data the search validated on (the evaluator's ``valid_*``
    metrics are measured there; ``test_*`` on the test split).
    """
    import jax
    from flax import nnx

    from jnas.benchmarks.supernet import SupernetEvaluator
    from jnas.models.supernet import build_supernet
    from jnas.train import checkpoint as ckpt
    from jnas.train.data import load_split
    from jnas.train.oneshot import restore_supernet, search_config, search_halves
    from jnas.train.oneshot_methods import make_method

    out = Path(out)
    path = out / RESULT_FILE
    if not path.is_file():
        raise bad_argument("supernet run", str(out), f"a folder with a finished `jnas supernet` run ({RESULT_FILE})")
    try:
        rec = json.loads(path.read_text())
        space, method, data, seed = rec["space"], rec["method"], rec["data"], int(rec["seed"])
        opts = {k: v for k, v in rec["model_options"].items()}
    except (ValueError, KeyError, TypeError) as e:
        raise JnasError(f"supernet run: {path} is not a jnas supernet result ({type(e).__name__}: {e})") from None
    m = make_method(method, space, **rec.get("method_options", {}))
    config = search_config(rec["epochs"], seed, {k: v for k, v in rec["config"].items()
                                                  if k not in ("epochs", "seed")}, method=m)
    stages = rec.get("stages") or [None]
    if len(stages) != len(m.stage_plan()):
        raise JnasError(f"supernet run: {path} records {len(stages)} stages, method {method} runs "
                        f"{len(m.stage_plan())}")
    stage = len(stages) - 1
    # the last stage's supernet: its ops are those the earlier stages' parameters kept, stage by stage
    sm = m
    for i, entry in enumerate(stages[1:], start=1):
        sm = sm.next_stage(np.asarray(stages[i - 1]["arch"], np.float32))
        if not np.array_equal(np.asarray(entry["op_mask"], bool), sm.op_mask):
            raise JnasError(f"supernet run: {path}: the recorded op mask of stage {i + 1} is not the one its "
                            f"previous stage's parameters give")
    train, mean, std = _load_train(data, data_dir)
    test = load_split(data, "test", data_dir=data_dir)
    k_model, k_arch, k_search = _stage_keys(jax.random.key(seed), stage)
    model = build_supernet(space, sm.init_arch(k_arch), num_classes=int(rec["num_classes"]),
                           rngs=nnx.Rngs(k_model), **opts, **sm.structure())
    folder = _checkpoint_dir(out, stage, stages[-1] is not None)
    last = ckpt.latest_epoch(folder)
    stopped = rec.get("stopped_at_epoch")  # DARTS+ early stopping ends a run before its last epoch
    if last != (stopped or config.epochs):
        raise JnasError(f"supernet run: {folder} holds epoch {last}, not the run's last epoch "
                        f"{stopped or config.epochs}; rerun the search to finish it")
    state = restore_supernet(folder, model, sm, config)
    _, arch_half, _ = search_halves(train, k_search)
    return SupernetEvaluator(space, model, state, valid_data=arch_half, test_data=test, mean=mean, std=std,
                             method=sm, config=config, mesh=mesh, name=f"supernet/{space}/{method}/{data}")


__all__ = ["NB201_DATASETS", "NB201Lookup", "check_supernet_args", "load_supernet_run", "op_shares",
           "run_supernet"]
