"""BO and BANANAS on NAS-Bench-201: both must beat random search at 150 queries over 20 seeds."""

import numpy as np
import pytest

from jnas.errors import JnasError
from jnas.runs import search

SEEDS = 20


@pytest.fixture(scope="module")
def rs():
    return search("nb201/cifar10", "rs", 150, seeds=SEEDS).summary


def _beats(a, b):
    diff = a["final_regret_mean"] - b["final_regret_mean"]
    return diff > 2 * np.hypot(a["final_regret_se"], b["final_regret_se"]), (a["final_regret_mean"],
                                                                             b["final_regret_mean"])


def test_bananas_beats_random_search(rs):
    # cheaper nets than the paper's 10x20 x 200 steps keep the test fast; the method is the same
    res = search("nb201/cifar10", "bananas", 150, seeds=SEEDS, options={"layers": 3, "steps": 100}).summary
    ok, detail = _beats(rs, res)
    assert ok, detail
    # never re-queries
    traj = search("nb201/cifar10", "bananas", 60, seeds=2, options={"layers": 2, "steps": 20}).trajectory["index"]
    assert all(len(np.unique(r)) == 60 for r in traj)


@pytest.mark.slow
def test_bo_beats_random_search(rs):
    # scoring the whole space (15,625 GP predictive variances) at every step makes this a long test
    res = search("nb201/cifar10", "bo", 150, seeds=SEEDS, options={"gp_steps": 10, "gp_restarts": 1}).summary
    ok, detail = _beats(rs, res)
    assert ok, detail


def test_bo_never_requeries_and_improves_on_its_initial_design():
    res = search("nb201/cifar10", "bo", 30, seeds=3, options={"gp_steps": 5, "gp_restarts": 1, "n_init": 10})
    idx = res.trajectory["index"]
    assert all(len(np.unique(r)) == 30 for r in idx)
    bs = res.trajectory["best_search"]
    assert np.all(bs[:, -1] >= bs[:, 9]) and np.mean(bs[:, -1] > bs[:, 9]) > 0.5


def test_bo_rejects_bad_options():
    with pytest.raises(JnasError, match="--set acquisition: got 'xx'"):
        search("nb201/cifar10", "bo", 20, options={"acquisition": "xx"})
