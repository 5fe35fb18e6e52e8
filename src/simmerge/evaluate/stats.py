"""The two decision rules every evaluation shares: when two noisy scores are tied, and which fixed operator is best.

A score here is a mean over scored items (and over seeds for a randomised operator), so it comes with a standard
error. :func:`within_noise` is the one tie rule of the operator ranking (:mod:`simmerge.evaluate.ranking`) and of
the comparison against fixed operators (:mod:`simmerge.evaluate.selection`); :func:`best_fixed_operator` is the one
"always use this operator" baseline of the comparison and of the bandit replay (:mod:`simmerge.online.bandit`).
"""

from __future__ import annotations

import math

import pandas as pd


def combined_stderr(*stderrs: float | None) -> float:
    """Standard error of a difference of independent scores: ``sqrt(se_1² + se_2² + ...)``.

    A missing standard error (None or NaN: a failed merge, a task no parent scores on) counts as 0.

    Examples
    --------
    >>> combined_stderr(0.3, 0.4, None)
    0.5
    """
    return math.sqrt(sum(_square(stderr) for stderr in stderrs))


def within_noise(difference: float, stderr_a: float | None, stderr_b: float | None, *, z: float) -> bool:
    """Whether two scores are tied: ``|difference| ≤ z · combined_stderr(stderr_a, stderr_b)``.

    The standard errors are unpaired, so the rule is conservative: two merges scored on the same items have a
    smaller true error of their difference. A NaN difference (a score is missing) is never tied.

    Parameters
    ----------
    difference : float
        The difference of the two scores.
    stderr_a, stderr_b : float or None
        Their standard errors (missing counts as 0).
    z : float
        Width of the tie band in combined standard errors.

    Examples
    --------
    >>> within_noise(0.05, 0.03, 0.04, z=1.0), within_noise(0.06, 0.03, 0.04, z=1.0)
    (True, False)
    """
    return bool(abs(difference) <= z * combined_stderr(stderr_a, stderr_b))


def best_fixed_operator(mean_scores: pd.Series) -> str:
    """The operator with the highest mean score: the baseline that always uses one operator.

    Tie-break: of operators with exactly the same mean, the first in ``mean_scores``' order wins (missing means
    are skipped).

    Parameters
    ----------
    mean_scores : pandas.Series
        Operator name → its mean score over the units it is chosen on (e.g. the training folds).

    Examples
    --------
    >>> best_fixed_operator(pd.Series({"slerp": 0.9, "linear": 0.9, "ties": 0.8}))
    'slerp'
    """
    return str(mean_scores.idxmax())


def _square(stderr: float | None) -> float:
    return 0.0 if stderr is None or math.isnan(stderr) else float(stderr) ** 2


__all__ = ["best_fixed_operator", "combined_stderr", "within_noise"]
