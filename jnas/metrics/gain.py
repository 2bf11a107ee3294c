"""Sample-efficiency gain in decibels (Mauch et al., 2020, "Efficient Sampling for Predictor-Based NAS", eqs. 10–17).

Picture an urn experiment: architectures are drawn uniformly *without
replacement* from a finite set of ``K`` candidates, of which ``M`` reach the
target (here: value ``>= target`` for a maximised metric; the paper's
validation *error* ``<= J_target`` is the same with ``higher_is_better=False``).
The number of draws until the first success, ``τ``, has mean (eq. 14)::

    E[τ] = (K + 1) / (M + 1)

The gain of drawing from a candidate set ``C`` instead of the search space
``S`` is (eq. 15)::

    gain = 10 · log10(E_S[τ] / E_C[τ])   [dB]

0 dB means no benefit; 10 dB a 10× reduction of the expected number of trained
networks. When the candidates ``C`` are chosen by a predictor from a subset
``S'`` of the space (e.g. an evolutionary sample), the gain splits into the
part due to the subset and the part due to the predictor (eqs. 16–17)::

    gain_e = 10 · log10(E_S[τ]  / E_S'[τ])
    gain_p = 10 · log10(E_S'[τ] / E_C[τ])

and, since the logarithms telescope, ``gain = gain_e + gain_p`` exactly.

Everything here is host-side numpy. ``M = 0`` (no candidate reaches the
target) gives ``E[τ] = inf``; a gain between two infinite expectations is NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jnas.errors import JnasError


def _counts(name: str, x) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iuf" or np.any(~np.isfinite(a)) or np.any(a != np.round(a)) or np.any(a < 0):
        raise JnasError(f"{name}: got {x!r}, expected non-negative integer counts")
    return a.astype(np.float64)


def expected_trials(K, M) -> np.ndarray:
    """Expected uniform draws without replacement until a success: ``(K + 1) / (M + 1)`` (eq. 14).

    ``K``: number of candidates; ``M``: how many of them reach the target
    (``0 <= M <= K``); both broadcast. Returns ``float64`` of the broadcast
    shape, ``inf`` where ``M == 0``.
    """
    k, m = _counts("K", K), _counts("M", M)
    if np.any(m > k):
        raise JnasError(f"M: got {M!r}, expected at most K={K!r} (successes among the candidates)")
    with np.errstate(divide="ignore"):
        return np.where(m > 0, (k + 1) / (m + 1), np.inf)


def expected_trials_curve(values, targets, higher_is_better: bool = True) -> np.ndarray:
    """``E[τ(target)]`` for every target level, drawing uniformly without replacement from ``values``.

    ``values``: ``float[K]`` metric of each candidate (NaN = failed, never a
    success); ``targets``: ``float[T]`` levels. A candidate succeeds when
    ``value >= target`` (``<=`` with ``higher_is_better=False``). Returns
    ``float64[T]``, ``inf`` where no candidate reaches the level.
    """
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 0:
        raise JnasError("values: got an empty array, expected at least one candidate value")
    t = np.asarray(targets, np.float64)
    if np.any(np.isnan(t)):
        raise JnasError("targets: got NaN, expected finite or infinite target levels")
    ok = np.sort(v[~np.isnan(v)])  # ascending
    if higher_is_better:
        m = ok.size - np.searchsorted(ok, t, side="left")  # count of values >= t
    else:
        m = np.searchsorted(ok, t, side="right")  # count of values <= t
    return expected_trials(v.size, m)


def gain_db(tau_space, tau_candidates) -> np.ndarray:
    """Sample-efficiency gain ``10 · log10(tau_space / tau_candidates)`` in dB (eq. 15).

    ``tau_space``: ``E_S[τ]`` drawing from the search space (the baseline);
    ``tau_candidates``: ``E_C[τ]`` drawing from the candidate set. Positive
    when the candidates need fewer trials. Broadcasts; NaN when both are inf.
    """
    s, c = np.asarray(tau_space, np.float64), np.asarray(tau_candidates, np.float64)
    if np.any(s <= 0) or np.any(c <= 0):
        raise JnasError(
            f"tau: got tau_space={tau_space!r}, tau_candidates={tau_candidates!r}, expected positive expectations"
        )
    with np.errstate(invalid="ignore"):
        return 10.0 * np.log10(s / c)


class GainSplit(NamedTuple):
    """Gain of a predictor that picks candidates from a subset of the space, in dB."""

    total: np.ndarray  # 10·log10(E_S / E_C) (eq. 15) == e + p
    e: np.ndarray  # 10·log10(E_S / E_S'): due to the subset S' alone (eq. 16)
    p: np.ndarray  # 10·log10(E_S' / E_C): due to the predictor choosing C from S' (eq. 17)


def gain_split(tau_space, tau_subset, tau_candidates) -> GainSplit:
    """Split ``gain_db(tau_space, tau_candidates)`` into ``gain_e`` and ``gain_p`` (eqs. 16–17).

    ``tau_space`` = ``E_S[τ]``, ``tau_subset`` = ``E_S'[τ]`` (the subset the
    predictor scores, e.g. evolutionary sampling), ``tau_candidates`` =
    ``E_C[τ]``. ``total = e + p`` up to rounding (exactly, where finite).
    """
    return GainSplit(
        gain_db(tau_space, tau_candidates), gain_db(tau_space, tau_subset), gain_db(tau_subset, tau_candidates)
    )
