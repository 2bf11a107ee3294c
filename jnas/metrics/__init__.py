"""Metrics over search outcomes: sample-efficiency gain (dB), expected trials to a target, rank correlation,
Pareto fronts and hypervolume."""

from __future__ import annotations

from jnas.metrics.gain import GainSplit, expected_trials, expected_trials_curve, gain_db, gain_split
from jnas.metrics.pareto import (
    REFERENCE,
    dominates,
    domination_matrix,
    hypervolume,
    hypervolume_regret,
    hypervolume_trajectory,
    non_dominated_sort,
    normalise,
    normalised_hypervolume,
    pareto_mask,
)
from jnas.metrics.ranking import average_ranks, kendall_tau, spearman

__all__ = [
    "REFERENCE",
    "GainSplit",
    "average_ranks",
    "dominates",
    "domination_matrix",
    "expected_trials",
    "expected_trials_curve",
    "gain_db",
    "gain_split",
    "hypervolume",
    "hypervolume_regret",
    "hypervolume_trajectory",
    "kendall_tau",
    "non_dominated_sort",
    "normalise",
    "normalised_hypervolume",
    "pareto_mask",
    "spearman",
]
