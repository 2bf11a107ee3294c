"""Metrics over search outcomes: sample-efficiency gain (dB), expected trials to a target, rank correlation."""

from __future__ import annotations

from jnas.metrics.gain import GainSplit, expected_trials, expected_trials_curve, gain_db, gain_split
from jnas.metrics.ranking import average_ranks, kendall_tau, spearman

__all__ = [
    "GainSplit",
    "average_ranks",
    "expected_trials",
    "expected_trials_curve",
    "gain_db",
    "gain_split",
    "kendall_tau",
    "spearman",
]
