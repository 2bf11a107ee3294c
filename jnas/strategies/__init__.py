"""Search strategies: pure ask/tell state machines built from one kit (see ``base.py``, ``history.py``)."""

from __future__ import annotations

from jnas.errors import unknown_name
from jnas.strategies.anasod import AnasodBiasedRS, AnasodRS
from jnas.strategies.anasod_bo import AnasodBO, AnasodNEP
from jnas.strategies.anasod_ls import AnasodLS
from jnas.strategies.bananas import Bananas
from jnas.strategies.base import FAILURE_POLICIES, Option, State, Strategy, batch_option, failure_option
from jnas.strategies.bo import BayesianOptimisation
from jnas.strategies.bohb import BOHB
from jnas.strategies.evolution import RegularizedEvolution
from jnas.strategies.history import History, arch_hash
from jnas.strategies.hyperband import Hyperband
from jnas.strategies.lanas import LaNAS, RegressionTree
from jnas.strategies.local_search import LocalSearch
from jnas.strategies.mcts import MCTS
from jnas.strategies.mobo import MOBO
from jnas.strategies.nsga2 import NSGA2
from jnas.strategies.pbnas import PredictorBasedNAS
from jnas.strategies.pnas import PNAS
from jnas.strategies.random_search import RandomSearch
from jnas.strategies.reinforce import Reinforce
from jnas.strategies.tpe import TPE

_REGISTRY: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        RandomSearch, RegularizedEvolution, LocalSearch, TPE, Bananas, BayesianOptimisation,
        LaNAS, RegressionTree, MCTS, PredictorBasedNAS, AnasodRS, AnasodBiasedRS, AnasodBO, AnasodNEP, AnasodLS,
        NSGA2, MOBO, Hyperband, BOHB, Reinforce, PNAS,
    )
}


def names() -> list[str]:
    """Registered strategy names."""
    return sorted(_REGISTRY)


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class registered under ``name``."""
    if name not in _REGISTRY:
        raise unknown_name("strategy", name, _REGISTRY)
    return _REGISTRY[name]


def make_strategy(name: str, space, budget: int, **options) -> Strategy:
    """Instantiate strategy ``name`` on ``space`` with a query ``budget`` and options."""
    return get_strategy(name)(space, budget, **options)


__all__ = [
    "FAILURE_POLICIES", "History", "Option", "State", "Strategy", "arch_hash", "batch_option", "failure_option",
    "get_strategy", "make_strategy", "names",
]
