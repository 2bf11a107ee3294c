"""resample: n fresh networks of one generator configuration, trained and summarised (tiny NAGO nets, 8x8 images).

The configuration has 12 operations (4 cells of one 3-op node); generator seeds 0 and 1 draw the same graphs,
seed 2 another (a different parameter count), so the search's network (seed 0) and seed 1 share one compilation.
Weights are drawn by numpy (``helpers.real_weights``): compiling the initialisers would cost more than the training.
"""

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from helpers import real_weights
from test_training_evaluator import CFG, DATA, VALID, tiny_builder

from jnas.benchmarks.training import TrainingEvaluator
from jnas.errors import JnasError
from jnas.models import build_network
from jnas.runs.resample import _reseeded, resample

ARCH = np.array([4, 2, 100, 1, 50, 3, 2, 100], np.int16)
# 3x3 average pooling as the only operation (with a 1x1 conv where the channels change): half the compile time of convs
OPTIONS = {"input_shape": (8, 8, 3), "param_limit": 3e3, "op_probs": (0, 0, 0, 1, 0)}
ONE_EPOCH = CFG.replace(epochs=1)


class Spy(TrainingEvaluator):
    """A nago evaluator on tiny data recording every training: (generator seed, training seed)."""

    def __init__(self, crash_seed=None, **kw):
        self.trained = []
        self.crash_seed = crash_seed
        super().__init__("nago", DATA, config=ONE_EPOCH, model_options=OPTIONS, valid_size=VALID,
                         builder=self._build, **kw)

    def _build(self, space, arch, *, num_classes, rngs, **options):
        seed = options.get("seed", 0)
        if seed == self.crash_seed:
            raise RuntimeError("builder crashed")
        # weights drawn by numpy from the evaluator's key (no initialiser compilations: they would dominate)
        weight_seed = int(np.asarray(jax.random.key_data(rngs.params())).sum())
        return real_weights(lambda: build_network(space, arch, num_classes=num_classes, rngs=nnx.Rngs(0), **options),
                            weight_seed)

    def _run(self, arch, text, epochs, test):  # runs on the copy that trains: its own seeds
        self.trained.append((self.model_options.get("seed", 0), self.config.seed))
        return super()._run(arch, text, epochs, test)


@pytest.fixture(scope="module")
def searched():
    """An evaluator that has trained the search's network (seed 0), and a resample of 2 networks from it."""
    ev = Spy()
    own = ev.evaluate(ARCH, test=True)
    calls = []
    out = resample(ev, ARCH, 2, progress=calls.append)
    return ev, own, out, calls


def test_resample_draws_fresh_networks_and_summarises_them(searched):
    ev, own, out, calls = searched
    assert out["seeds"] == [1, 2] and out["n"] == 2 and out["epochs"] == 1 and out["failed"] == 0
    assert out["arch"] == ev.space.to_string(ARCH) and out["space"] == "nago"
    # one training per seed, its graphs and its training both seeded by it; the search's cache and history are untouched
    assert ev.trained == [(0, 0), (1, 1), (2, 2)]
    assert ev.history == [own] and len(ev._cache) == 1
    assert out["params"][0] == own["params"] != out["params"][1]  # seed 1 draws seed 0's graphs; seed 2 others
    for key in ("valid_acc", "test_acc"):
        values = np.array(out[key])
        assert np.all(np.isfinite(values)) and np.all((0 <= values) & (values <= 100))
        assert out[f"{key}_mean"] == pytest.approx(values.mean())
        assert out[f"{key}_se"] == pytest.approx(values.std(ddof=1) / math.sqrt(2))
    assert [c["done"] for c in calls] == [1, 2] and [c["seed"] for c in calls] == [1, 2]
    assert json.loads(json.dumps(out)) == out


def test_resample_is_deterministic(searched):
    _, _, out, _ = searched
    assert resample(Spy(), ARCH, 2) == out  # a fresh evaluator: trained again, same numbers


def test_failed_training_is_nan_and_counted():
    out = resample(Spy(crash_seed=2), ARCH, 2)  # seed 1 trains, seed 2's build crashes
    assert out["failed"] == 1 and out["failures"] == [{"seed": 2, "reason": "RuntimeError: builder crashed"}]
    assert math.isnan(out["test_acc"][1]) and math.isnan(out["valid_acc"][1]) and out["params"][1] is None
    assert out["test_acc_mean"] == out["test_acc"][0] and out["test_acc_se"] is None and out["valid_acc_se"] is None


def test_reseeded_copy_has_its_own_seed_cache_and_checkpoints(tmp_path):
    ev = Spy(checkpoint_dir=tmp_path)
    ev._cache[("x", 1)] = {"status": "ok"}
    copy = _reseeded(ev, 7)
    assert copy.config.seed == 7 and copy.model_options == {**OPTIONS, "seed": 7} and copy._cache == {}
    assert copy.checkpoint_dir == Path(tmp_path) / "resample" / "seed7" and copy.history is not ev.history
    assert ev.config.seed == 0 and "seed" not in ev.model_options and ev.checkpoint_dir == tmp_path
    assert len(ev._cache) == 1


def test_refusals():
    nb201 = TrainingEvaluator("nb201", DATA, config=CFG, builder=tiny_builder, valid_size=VALID)
    with pytest.raises(JnasError, match=r"^resample: space 'nb201' has one network per architecture; resampling "
                                        r"draws fresh networks from a generator[^\n]*$"):
        resample(nb201, np.zeros(6, np.int16), 2)
    ev = Spy()
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(JnasError, match=r"^n: got .*, expected an integer >= 1$"):
            resample(ev, ARCH, bad)
    with pytest.raises(JnasError, match=r"^arch: got .*, expected a valid nago configuration$"):
        resample(ev, np.array([99, 2, 100, 1, 50, 3, 2, 100], np.int16), 2)
    with pytest.raises(JnasError, match="^epochs: got 0"):
        resample(ev, ARCH, 2, epochs=0)
    with pytest.raises(JnasError, match="^seed0: got -1"):
        resample(ev, ARCH, 2, seed0=-1)
    with pytest.raises(JnasError, match="^evaluator: got 'str'"):
        resample("nago", ARCH, 2)
    assert ev.trained == []  # nothing trained
