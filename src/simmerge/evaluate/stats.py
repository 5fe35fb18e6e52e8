"""The statistics every evaluation shares: when two noisy scores are tied, which fixed operator is best, and the
bootstrap behind every interval.

A score here is a mean over scored items (and over seeds for a randomised operator), so it comes with a standard
error. :func:`within_noise` is the one tie rule of the operator ranking (:mod:`simmerge.evaluate.ranking`) and of
the comparison against fixed operators (:mod:`simmerge.evaluate.selection`); :func:`best_fixed_operator` is the one
"always use this operator" baseline of the bandit replay (:mod:`simmerge.online.bandit`) and the multi-way plans;
:func:`cluster_bootstrap` resamples the comparison's units by cluster (an expert pair scored on several tasks is one
cluster), so that units that share a merge are not counted as independent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
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


def cluster_bootstrap(
    values: Mapping[str, Sequence[float] | np.ndarray], clusters: Sequence[str], *, n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Bootstrap draws of the mean of each metric, resampling whole clusters of units with replacement.

    A draw's mean of a metric is the mean over the units of the drawn clusters (a cluster drawn twice counts
    twice) that have a value: NaN values are skipped, and a draw in which no unit has a value is NaN — the caller
    counts those draws rather than dropping them silently. With one unit per cluster this is the ordinary
    bootstrap over units. A metric given per draw and unit (shape ``(n_boot, n_units)``: each unit's value
    re-estimated in each draw, e.g. on resampled items) is the second level of a two-level bootstrap: draw ``b``
    averages the units' values of draw ``b``.

    Parameters
    ----------
    values : mapping of str to array
        Metric name → its value per unit (length ``len(clusters)``) or per draw and unit.
    clusters : sequence of str
        Each unit's cluster.
    n_boot : int
        Number of draws.
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict of str to ndarray of shape (n_boot,)
        The draws of each metric's mean.

    Examples
    --------
    >>> draws = cluster_bootstrap({"x": [1.0, 1.0, 3.0]}, ["p", "p", "q"], n_boot=200, seed=0)
    >>> sorted({round(float(mean), 3) for mean in draws["x"]})  # drawn {p, p}, {p, q} or {q, q}: 1, 5/3 or 3
    [1.0, 1.667, 3.0]
    """
    names, index = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    draws = np.random.default_rng(seed).integers(0, len(names), size=(n_boot, len(names)))
    counts = np.stack([np.bincount(row, minlength=len(names)) for row in draws]) if n_boot else np.zeros((0, 0))
    weights = counts[:, index].astype(float)  # (n_boot, n_units): how often each unit is in the draw
    out = {}
    for metric, unit_values in values.items():
        array = np.broadcast_to(np.asarray(unit_values, dtype=float), weights.shape)
        present = ~np.isnan(array)
        drawn = (weights * present).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[metric] = np.where(drawn > 0, (weights * np.where(present, array, 0.0)).sum(axis=1) / drawn, np.nan)
    return out


def percentile_interval(draws: np.ndarray) -> tuple[float, float, int]:
    """The 95% percentile interval of bootstrap draws, from the finite ones, and how many draws were NaN."""
    finite = draws[np.isfinite(draws)]
    nan_draws = int(len(draws) - len(finite))
    if not len(finite):
        return math.nan, math.nan, nan_draws
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high), nan_draws


def _square(stderr: float | None) -> float:
    return 0.0 if stderr is None or math.isnan(stderr) else float(stderr) ** 2


__all__ = ["best_fixed_operator", "cluster_bootstrap", "combined_stderr", "percentile_interval", "within_noise"]
