"""BO's surrogates (``--set surrogate=gp|gp-nuts|bnn|bnn-hetero``) and batch rules (``batch_method``).

Fast tier: the options parse, canonicalise and refuse contradictions; every surrogate runs a short
search on NAS-Bench-201; a BNN's picks are the arg-max of EI integrated over its posterior samples.
Slow tier: the fully Bayesian GP and the heteroscedastic BNN beat random search at 150 queries.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jnas import acquisition as acq
from jnas.benchmarks import get_benchmark
from jnas.encodings import adjacency_onehot
from jnas.errors import JnasError
from jnas.predictors.bnn import BNN
from jnas.predictors.gp import GP
from jnas.runs import run_tabular, search
from jnas.strategies import make_strategy
from jnas.strategies.bo import GP_NUTS_SAMPLES

#: random search's exact mean test regret at 150 queries on nb201/cifar10 (bench/bo.py, BENCHMARKS.md)
RS_EXACT_REGRET_150 = 0.558
#: small sample counts: these tests check the plumbing, not the surrogates' quality
SMALL = {"gp-nuts": {"gp_samples": 2, "gp_warmup": 10},
         "bnn": {"bnn_samples": 4, "bnn_burnin": 20, "bnn_thinning": 2},
         "bnn-hetero": {"bnn_samples": 4, "bnn_burnin": 20, "bnn_thinning": 2}}


@pytest.fixture(scope="module")
def space():
    return get_benchmark("nb201/cifar10").space


def test_the_default_surrogate_is_the_ml2_gp(space):
    s = make_strategy("bo", space, 20)
    assert s.surrogate == "gp" and s.gp_samples == 0
    assert isinstance(s.model, GP) and not s.model.fully_bayesian


@pytest.mark.parametrize("opts, surrogate, samples", [
    ({"surrogate": "gp-nuts"}, "gp-nuts", GP_NUTS_SAMPLES),
    ({"surrogate": "gp-nuts", "gp_samples": 4}, "gp-nuts", 4),
    ({"gp_samples": 4}, "gp-nuts", 4),  # the older spelling, reported by its surrogate's name
    ({"surrogate": "gp", "gp_samples": 4}, "gp-nuts", 4),
])
def test_the_fully_bayesian_gp_has_one_name(space, opts, surrogate, samples):
    s = make_strategy("bo", space, 20, **opts)
    assert s.settings()["surrogate"] == surrogate and s.settings()["gp_samples"] == samples
    assert s.model.fully_bayesian and s.model.num_samples == samples


@pytest.mark.parametrize("surrogate, hetero", [("bnn", False), ("bnn-hetero", True)])
def test_the_bnn_surrogates_build_the_sghmc_bnn(space, surrogate, hetero):
    s = make_strategy("bo", space, 20, surrogate=surrogate, bnn_samples=7, bnn_burnin=30, bnn_thinning=3)
    m = s.model
    assert isinstance(m, BNN) and m.heteroscedastic == hetero and m.inference == "sghmc"
    assert (m.hidden, m.num_samples, m.num_warmup, m.thinning) == ((10, 10, 10), 7, 30, 3)


@pytest.mark.parametrize("opts, message", [
    ({"surrogate": "mlp"}, "--set surrogate: got 'mlp', expected one of gp, gp-nuts, bnn, bnn-hetero"),
    ({"surrogate": "bnn", "gp_samples": 8}, "--set gp_samples: has no effect unless surrogate is gp or gp-nuts"),
    ({"surrogate": "bnn-hetero", "gp_warmup": 20}, "--set gp_warmup: has no effect unless surrogate=gp-nuts"),
    ({"surrogate": "bnn", "kernel": "rbf"}, "--set kernel: has no effect unless surrogate is gp or gp-nuts"),
    ({"surrogate": "gp-nuts", "gp_steps": 5}, "--set gp_steps: has no effect unless surrogate=gp and gp_samples=0"),
    ({"gp_samples": 4, "gp_restarts": 2}, "--set gp_restarts: has no effect unless surrogate=gp and gp_samples=0"),
    ({"bnn_samples": 5}, "--set bnn_samples: has no effect unless surrogate is bnn or bnn-hetero"),
    ({"surrogate": "gp-nuts", "bnn_burnin": 5}, "--set bnn_burnin: has no effect unless surrogate is bnn"),
    ({"surrogate": "bnn", "bnn_thinning": 0}, "--set bnn_thinning: got 0, expected an integer >= 1"),
    ({"surrogate": "bnn", "batch_size": 2, "batch_method": "kb"},
     "--set batch_rule: got 'believer', expected top or penalise with surrogate=bnn"),
    ({"batch_size": 2, "batch_method": "xx"}, "--set batch_method: got 'xx', expected one of top, believer, penalise"),
    ({"batch_size": 2, "batch_method": "kb", "batch_rule": "top"}, "--set batch_rule: the same option as batch_method"),
])
def test_bo_refuses_contradictory_surrogate_settings(space, opts, message):
    with pytest.raises(JnasError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as err:
        make_strategy("bo", space, 20, **opts)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["batch_method", "batch_rule"])
@pytest.mark.parametrize("value, rule", [("topq", "top"), ("kb", "believer"), ("lp", "penalise"),
                                         ("top", "top"), ("believer", "believer"), ("penalise", "penalise")])
def test_batch_method_names_the_batch_rules(space, name, value, rule):
    s = make_strategy("bo", space, 20, batch_size=2, **{name: value})
    assert s.batch_rule == rule and s.settings()["batch_rule"] == rule and "batch_method" not in s.settings()


@pytest.mark.parametrize("surrogate, opts", [
    ("gp-nuts", {"acquisition": "ei"}),
    ("gp-nuts", {"acquisition": "ucb", "batch_size": 2, "batch_method": "kb"}),
    ("bnn", {"acquisition": "ts"}),
    ("bnn", {"acquisition": "pi", "batch_size": 2, "batch_method": "lp"}),
    ("bnn-hetero", {"acquisition": "ei", "encoding": "path"}),
    ("bnn-hetero", {"acquisition": "ucb", "batch_size": 2, "batch_method": "topq"}),
])
def test_every_surrogate_runs_a_short_search(surrogate, opts):
    budget = 16
    res = search("nb201/cifar10", "bo", budget, seeds=2, options={"surrogate": surrogate, "n_init": 6,
                                                                   **SMALL[surrogate], **opts})
    assert res.summary["options"]["surrogate"] == surrogate
    idx = res.trajectory["index"]
    assert idx.shape == (2, budget) and all(len(np.unique(r)) == budget for r in idx)  # never re-queries
    assert np.isfinite(res.summary["final_regret_mean"])


def test_bnn_picks_are_the_argmax_of_ei_integrated_over_its_samples():
    """Every model-based pick of ``bo --set surrogate=bnn`` is the arg-max over the never-queried cells of
    the mean over posterior samples of each sample's EI, recomputed here from the step's state and key."""
    bench = get_benchmark("nb201/cifar10")
    space, n_init, budget = bench.space, 4, 8
    s = make_strategy("bo", space, budget, surrogate="bnn", n_init=n_init, **SMALL["bnn"])
    everything = space.enumerate()
    feats = jax.vmap(lambda a: adjacency_onehot(space, a))(everything)

    def acquisition(step):
        archs, values, valid = s.observations(step.state)
        k_fit = jax.random.split(step.key, 4)[1]  # the key bo's fit draws from (its split of the step key)
        params = s.model.fit(k_fit, feats[space.index(archs)], values, valid)
        means, noise = s.model.predict_samples(params, feats)
        best = jnp.max(jnp.where(valid, values, -jnp.inf))
        ei = jnp.mean(jnp.stack([acq.expected_improvement(m, v, best) for m, v in zip(means, noise)]), 0)
        ei = jnp.where(s.seen(step.state, everything), -jnp.inf, ei)
        picked = ei[space.index(jax.tree.map(lambda a: a[0], step.archs))]
        return picked, ei.max(), step.state.history.count

    picked, top, told = run_tabular(s, bench, 2, aux=acquisition).aux
    model = told >= n_init
    assert model.sum() == 2 * (budget - n_init) and np.isfinite(top[model]).all()
    np.testing.assert_allclose(picked[model], top[model], rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("surrogate", ["gp-nuts", "bnn-hetero"])
def test_bo_surrogate_beats_random_search_at_150_queries(surrogate):
    s = search("nb201/cifar10", "bo", 150, seeds=10, options={"surrogate": surrogate}).summary
    assert s["final_regret_mean"] < RS_EXACT_REGRET_150, (s["final_regret_mean"], s["final_regret_se"])
