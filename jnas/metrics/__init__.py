"""Metrics over search outcomes: sample-efficiency gain (dB), expected trials to a target, rank correlation."""

from __future__ import annotations

from jnas.metrics.gain import GainSplit, expected_trials, expected_trials_curve, gain_db, gain_split
from jnas.metrics.ranking import kendall_tau

__all__ = ["GainSplit", "expected_trials", "expected_trials_curve", "gain_db", "gain_split", "kendall_tau"]
