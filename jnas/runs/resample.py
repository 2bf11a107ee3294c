"""Resampling a generator: train ``n`` fresh networks of one configuration, report mean ± standard error.

NAGO (Ru et al., 2020) searches the hyperparameters of a stochastic network
*generator* (spaces ``nago`` and ``rnag``: ``Space.generated``), so one
configuration stands for a distribution of networks. After a search it
reports the recommended configuration by sampling several networks from it,
training each to the final schedule and giving the mean and standard error of
their test accuracy. ``resample(evaluator, arch, n)`` does that with the
``TrainingEvaluator`` the search used.

Seeds. A network of a generated space is drawn from the configuration and
the network option ``seed`` (``jnas.models.nago.build``: the graphs come from
``jax.random.key(seed)``), *not* from ``TrainConfig.seed``, which
``TrainingEvaluator`` uses only for the weight initialisation and the data
order. The search's networks are therefore all drawn with generator seed
``g = evaluator.model_options.get("seed", 0)``. Resampled network ``i``
(``i = 0 .. n-1``) uses seed ``s = seed0 + i`` for both: its graphs are drawn
with generator seed ``s`` and it is trained with ``TrainConfig.seed = s``
(as ``jnas train --seed`` does). The default ``seed0 = g + networks`` (``g + 1``
for one network per configuration) gives seeds past the search's own, so
the search's networks (generator seeds ``g .. g + networks - 1``) are never
one of them; an explicit ``seed0`` with ``seed0 <= g < seed0 + n`` includes it.

Each network is trained by a copy of the evaluator whose config and network
options carry its seed, with an empty cache of its own (a resample is never
answered from the search's cache, and adds nothing to ``evaluator.history``)
and, when the evaluator checkpoints, its own folder
``checkpoint_dir/resample/seed{s}`` (a rerun resumes, or reuses finished runs).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from jnas.errors import JnasError, bad_argument, check_int


def _reseeded(evaluator, seed: int):
    """A copy of ``evaluator`` that draws and trains its networks with ``seed``, with an empty cache."""
    return evaluator.reseeded(seed, seed, f"resample/seed{seed}")


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    """``(mean, standard error)`` of the finite ``values``; ``None`` where undefined (SE needs 2)."""
    ok = np.array([v for v in values if math.isfinite(v)], np.float64)
    if len(ok) == 0:
        return None, None
    mean = float(ok.mean())
    se = float(ok.std(ddof=1) / math.sqrt(len(ok))) if len(ok) >= 2 else None
    return mean, se


def resample(evaluator, arch, n, epochs: int | None = None, seed0: int | None = None,
             progress: Callable[[dict], None] | None = None) -> dict:
    """Train ``n`` networks drawn from the generator configuration ``arch`` and summarise them.

    ``evaluator``: the ``TrainingEvaluator`` of a generated space (``nago``,
    ``rnag``); ``arch``: a configuration (array or string form); ``n``:
    networks to draw (an integer >= 1); ``epochs``: training epochs (default
    ``config.epochs``, the final schedule); ``seed0``: first seed (default:
    the evaluator's generator seed + 1; the seeds are ``seed0 .. seed0+n-1``,
    see the module docstring); ``progress(info)`` after each network, ``info``
    has ``done``, ``total``, ``seed``, ``status``, ``valid_acc``, ``test_acc``.

    Every network is evaluated on the validation split and the test set (this
    runs after a search, so the test set may be looked at). Returns a
    JSON-ready dict: ``space``, ``arch`` (string form), ``n``, ``epochs``,
    ``seeds``, per network ``valid_acc`` / ``test_acc`` (percent; NaN for a
    failed training, and ``valid_acc`` NaN throughout without a validation
    split) and ``params`` (``None`` for a failed one), ``valid_acc_mean``,
    ``valid_acc_se``, ``test_acc_mean``, ``test_acc_se`` (over the finite
    values; SE = sample standard deviation / sqrt(count); mean ``None``
    without a value, SE ``None`` with fewer than 2), ``failed`` (count) and
    ``failures`` (``[{"seed", "reason"}]``). A failed training never raises.
    """
    from jnas.benchmarks.training import TrainingEvaluator

    if not isinstance(evaluator, TrainingEvaluator):
        raise bad_argument("evaluator", type(evaluator).__name__, "a jnas.benchmarks.training.TrainingEvaluator")
    space = evaluator.space
    if not space.generated:
        raise JnasError(f"resample: space {space.name!r} has one network per architecture; resampling draws fresh "
                        "networks from a generator (a generated space such as nago or rnag)")
    n = check_int("n", n, 1)
    if epochs is not None:
        check_int("epochs", epochs, 1, expected="None or a number of epochs >= 1")
    _, epochs = evaluator.resolve("train_acc", epochs)
    base = check_int("model_options seed", evaluator.model_options.get("seed", 0), 0,
                     expected="a non-negative integer")
    if seed0 is None:  # past the search's own networks (generator seeds base .. base + networks - 1)
        seed0 = base + evaluator.networks
    else:
        seed0 = check_int("seed0", seed0, 0, expected="None or a non-negative integer")
    if progress is not None and not callable(progress):
        raise bad_argument("progress", progress, "None or a callable progress(info)")
    if isinstance(arch, str):
        arch = space.from_string(arch)
    arch = np.asarray(arch)
    try:
        text, valid = space.to_string(arch), bool(space.is_valid(arch))
    except Exception:  # noqa: BLE001 — any malformed array is the same argument error
        text, valid = repr(arch.tolist()), False
    if not valid:
        raise bad_argument("arch", text, f"a valid {space.name} configuration")

    seeds = [seed0 + i for i in range(n)]
    valid_acc, test_acc, params, failures = [], [], [], []
    for i, s in enumerate(seeds):
        record = _reseeded(evaluator, s).evaluate(arch, epochs, test=True)
        ok = record["status"] == "ok"
        valid_acc.append(float(record["valid_acc"]) if ok else math.nan)
        test_acc.append(float(record["test_acc"]) if ok else math.nan)
        params.append(int(record["params"]) if ok and record["params"] is not None else None)
        if not ok:
            failures.append({"seed": s, "reason": record["reason"]})
        if progress is not None:
            progress({"done": i + 1, "total": n, "seed": s, "status": record["status"],
                      "valid_acc": valid_acc[-1], "test_acc": test_acc[-1]})
    valid_mean, valid_se = _stats(valid_acc)
    test_mean, test_se = _stats(test_acc)
    return {
        "space": space.name,
        "arch": text,
        "n": n,
        "epochs": epochs,
        "seeds": seeds,
        "valid_acc": valid_acc,
        "test_acc": test_acc,
        "params": params,
        "valid_acc_mean": valid_mean,
        "valid_acc_se": valid_se,
        "test_acc_mean": test_mean,
        "test_acc_se": test_se,
        "failed": len(failures),
        "failures": failures,
    }


RESAMPLE_FILE = "resample.json"


def recommended(result) -> list[str]:
    """Each seed's recommended configuration of a training search (string form): its best query by the search
    metric (at the top fidelity for a multi-fidelity run; the first of ties)."""
    t = result.trajectory
    vals = np.asarray(t["value"], np.float64)
    if "fidelity" in t:
        vals = np.where(t["fidelity"] == result.summary["max_fidelity"], vals, np.nan)
    best = np.asarray(t["best_search"])[:, -1]
    out = []
    for s in range(vals.shape[0]):
        hit = np.flatnonzero(vals[s] == best[s])
        if not len(hit):
            raise JnasError(f"resample: seed {s} of the search has no successful evaluation to resample")
        out.append(str(t["arch"][s, hit[0]]))
    return out


def resample_run(result, evaluator, n, out=None, progress=None) -> list[dict]:
    """``resample`` every seed's recommended configuration of a finished training search ``n`` times.

    With ``out`` (the search's result folder) the records are written to
    ``resample.json`` (NaN as ``null``); a file already there for the same
    configurations, ``n`` and epochs is read back instead of training again.
    """
    import json
    from pathlib import Path

    archs = recommended(result)
    path = None if out is None else Path(out) / RESAMPLE_FILE
    if path is not None and path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
        if (isinstance(old, list) and [r.get("arch") for r in old] == archs and all(
                r.get("n") == n and r.get("epochs") == evaluator.config.epochs for r in old)):
            return old
    records = [resample(evaluator, a, n, progress=progress) for a in archs]
    clean = [{k: ([None if isinstance(x, float) and not math.isfinite(x) else x for x in v]
                  if isinstance(v, list) and k in ("valid_acc", "test_acc") else v)
              for k, v in r.items()} for r in records]
    if path is not None:
        from jnas.runs.folder import write_atomic

        text = (json.dumps(clean, indent=1) + "\n").encode()
        write_atomic(path, lambda f: f.write(text), "; free some space and rerun the same command")
    return clean


__all__ = ["RESAMPLE_FILE", "recommended", "resample", "resample_run"]
