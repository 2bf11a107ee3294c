"""A trained supernet as an evaluator: architectures scored with inherited weights.

Weight-sharing NAS ranks architectures by how well the supernet does with
each one's ops switched on and the rest off (the one-hot edge weights of
``jnas.models.supernet.arch_weights``), with no training of its own. This is
that ranking behind the evaluator protocol (``jnas.benchmarks.protocol``),
so any strategy can search on it: ``valid_acc`` / ``valid_loss`` are
measured on the architecture half of the training data the supernet's
search validated on (never trained on by the weights), ``test_acc`` /
``test_loss`` on the test split, only when asked. BatchNorm uses the
statistics of each evaluation batch (the supernet's running averages belong
to the mixture, not to one architecture). Nothing is trained, so a query
costs 0 epochs; a repeated query is answered from a cache.

Build one from a finished ``jnas supernet`` run with
``jnas.runs.supernet.load_supernet_run(out)``.

A space whose architectures a supernet of another space can score names
that space in ``supernet_space``: ``darts-blocks`` (PNAS's cells of 1 to 4
nodes) on a ``darts`` supernet, ``evaluator.for_space("darts-blocks")``.
An absent node's two edges then get one-hot ``none`` weights: the node is a
zero map in the supernet's fixed four-node concat (its channels stay, at
zero), whereas the training evaluator builds the narrower network that
concatenates the present nodes alone.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from jnas.benchmarks.protocol import unbatch
from jnas.errors import JnasError, bad_argument, first_line

# metric -> (description, unit, higher_is_better)
METRICS = {
    "valid_acc": ("accuracy with inherited supernet weights on the architecture half of the training data", "%",
                  True),
    "valid_loss": ("cross-entropy with inherited supernet weights on the architecture half", "nats", False),
    "test_acc": ("accuracy with inherited supernet weights on the test split", "%", True),
    "test_loss": ("cross-entropy with inherited supernet weights on the test split", "nats", False),
}


class SupernetEvaluator:
    """Score architectures of ``space`` with the weights of a trained supernet (see the module docstring).

    ``model``: the supernet module (its structure); ``state``: its trained
    ``jnas.train.oneshot.SupernetState``; ``valid_data``/``test_data``:
    ``(uint8 [N,H,W,C], int [N])``; ``mean``/``std``: the pixel statistics
    the search normalised with; ``method``/``config``: the search's method
    and ``TrainConfig`` (``eval_batch_size``, ``bf16``).
    """

    traceable = False
    search_metric = ("valid_acc", None)
    test_metric = ("test_acc", None)

    def __init__(self, space, model, state, *, valid_data, test_data=None, mean, std, method, config, mesh=None,
                 name: str | None = None):
        from jnas.spaces import get_space
        from jnas.train.loop import _check_data
        from jnas.train.oneshot import _graphdef, make_arch_eval
        from jnas.train.sharding import make_mesh

        self.space = get_space(space) if isinstance(space, str) else space
        _check_space(self.space, method.space)
        self.name = name or f"supernet/{self.space.name}"
        self.method, self.config = method, config
        self.mesh = make_mesh() if mesh is None else mesh
        self._state = state
        self._data = {"valid": _check_data(valid_data, "valid_data"),
                      "test": None if test_data is None else _check_data(test_data, "test_data")}
        graphdef = _graphdef(model, train=True, bf16=config.bf16)
        self._eval = make_arch_eval(graphdef, method, config, mean=mean, std=std, mesh=self.mesh)
        self.fingerprint = _fingerprint(state)
        self._cache: dict[str, dict] = {}
        self.history: list[dict] = []
        self.failures: list[dict] = []

    # ----- evaluator protocol ----------------------------------------------------
    @property
    def metrics(self) -> dict:
        from jnas.benchmarks.base import MetricInfo

        return {(m, None): MetricInfo(m, None, d, u, h, None, None, None) for m, (d, u, h) in METRICS.items()
                if self._data["test"] is not None or not m.startswith("test_")}

    @property
    def fidelities(self) -> tuple:
        return (None,)

    def cost(self, fidelity: int | None = None) -> float:
        """Training epochs one query costs: none (inherited weights)."""
        self.resolve(None, fidelity)
        return 0.0

    def resolve(self, metric: str | None = None, fidelity: int | None = None) -> tuple[str, None]:
        metric = self.search_metric[0] if metric is None else metric
        if (metric, None) not in self.metrics:
            raise JnasError(f"metric: got {metric!r} for {self.name}, expected one of "
                            f"{', '.join(m for m, _ in self.metrics)}")
        if fidelity is not None:
            raise bad_argument("fidelity", fidelity, "None (a supernet evaluation has no fidelity)")
        return metric, None

    def uses_test_data(self, key) -> bool:
        return key[0].startswith("test_")

    def query(self, archs, metric: str | None = None, fidelity: int | None = None) -> np.ndarray:
        """``float64 [B]`` values of the batch ``archs`` (leading axis); failures are NaN."""
        metric, _ = self.resolve(metric, fidelity)
        test = self.uses_test_data((metric, None))
        return np.array([self.evaluate(a, test=test)[metric] for a in self._unbatch(archs)], np.float64)

    def evaluate(self, arch, fidelity: int | None = None, *, test: bool = False) -> dict:
        """One architecture's record: ``arch`` (string), ``status``, ``reason``, the metrics, ``wall_seconds``."""
        self.resolve(None, fidelity)
        arch = jax.tree.map(np.asarray, arch)
        try:
            text = self.space.to_string(arch)
        except Exception:  # noqa: BLE001 — an arch we cannot name is still a recorded failure
            text = repr(jax.tree.map(lambda a: a.tolist(), arch))
        cached = self._cache.get(text)
        if cached is not None and (not test or cached["test_measured"] or cached["status"] == "failed"):
            return cached
        record = self._run(arch, text, test)
        self._cache[text] = record
        if cached is not None:
            self.history[self.history.index(cached)] = record
        else:
            self.history.append(record)
            if record["status"] == "failed":
                self.failures.append({"arch": text, "reason": record["reason"]})
        return record

    def test_value(self, arch) -> float:
        return float(self.evaluate(arch, test=True)["test_acc"])

    def for_space(self, space) -> SupernetEvaluator:
        """This supernet scoring the architectures of ``space`` (a name or a ``Space``): its own space, or one
        that names it in ``supernet_space`` (``darts-blocks`` on a ``darts`` supernet). A copy with its own
        cache and history; the weights and data are shared."""
        from jnas.spaces import get_space

        sp = get_space(space) if isinstance(space, str) else space
        _check_space(sp, self.method.space)
        ev = object.__new__(type(self))
        ev.__dict__.update(self.__dict__)
        ev.space = sp
        ev.name = self.name.replace(f"supernet/{self.space.name}/", f"supernet/{sp.name}/", 1)
        if ev.name == self.name and sp is not self.space:
            ev.name = f"{self.name} ({sp.name})"
        ev._cache, ev.history, ev.failures = {}, [], []
        return ev

    def index_of(self, arch) -> int:
        if not self.space.enumerable:
            return -1
        return int(self.space.index(jax.tree.map(jnp.asarray, arch)))

    def describe(self) -> dict:
        return {"name": self.name, "space": self.space.name, "method": self.method.name,
                "weights_sha1": self.fingerprint, "eval_batch_size": self.config.eval_batch_size,
                "valid_size": len(self._data["valid"][1]),
                "test_size": None if self._data["test"] is None else len(self._data["test"][1]),
                "search_metric": list(self.search_metric), "evaluated": len(self.history),
                "failed": len(self.failures)}

    # ----- internals ---------------------------------------------------------------
    def _unbatch(self, archs) -> list:
        return unbatch(self.space, archs)

    def _run(self, arch, text: str, test: bool) -> dict:
        from jnas.models.supernet import arch_weights
        from jnas.train.oneshot import evaluate_weights

        nan = math.nan
        record = {"arch": text, "status": "failed", "reason": None, "test_measured": test,
                  **{m: nan for m in METRICS}, "wall_seconds": nan}
        t0 = time.perf_counter()
        try:
            if not bool(self.space.is_valid(arch)):
                raise JnasError(f"not a valid {self.space.name} architecture")
            weights = arch_weights(self.method.space, arch)
            pruned = self.method.op_mask is not None and bool(np.any((np.asarray(weights) > 0) & ~self.method.op_mask))
            if pruned:
                raise JnasError(f"uses an op that {self.method.name} pruned from this supernet's edges")
            for part in ("valid", "test") if test else ("valid",):
                loss, acc = evaluate_weights(self._eval, self._state, weights, self._data[part],
                                             self.config.eval_batch_size, self.mesh)
                if not (math.isfinite(loss) and math.isfinite(acc)):
                    raise JnasError(f"non-finite {part} loss {loss}")
                record[f"{part}_loss"], record[f"{part}_acc"] = loss, acc
        except Exception as e:  # noqa: BLE001 — a failed evaluation is data for the search
            record["reason"] = first_line(e)
            for m in METRICS:
                record[m] = nan
            return record
        record.update(status="ok", wall_seconds=time.perf_counter() - t0)
        return record

    def __repr__(self) -> str:
        return f"<supernet evaluator {self.name} ({len(self.history)} evaluated, {len(self.failures)} failed)>"


def _check_space(space, supernet_space: str) -> None:
    """Refuse a space whose architectures a supernet of ``supernet_space`` cannot score (one line)."""
    if space.name != supernet_space and getattr(space, "supernet_space", None) != supernet_space:
        raise bad_argument("space", space.name, f"{supernet_space}, the space of the supernet, or a variant of it "
                           "(darts-blocks on a darts supernet)")


def _fingerprint(state) -> str:
    """sha1 of every array of the supernet state: a resumed search refuses a different supernet's journal."""
    import hashlib

    h = hashlib.sha1()
    for leaf in jax.tree.leaves(state):
        a = np.asarray(leaf)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


__all__ = ["METRICS", "SupernetEvaluator"]
