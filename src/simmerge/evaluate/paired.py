"""Paired statistics: two models scored on the same items are compared by their per-item differences.

The standard error of a difference of two scores on the same items is ``sqrt(Var(d) / n)`` with ``d_i = x_i − y_i``
(Miller 2024, "Adding Error Bars to Evals"), i.e. ``sqrt(se_x² + se_y² − 2 cov(x, y) / n)``: smaller than the
unpaired ``sqrt(se_x² + se_y²)`` whenever the two models get the same items right, which merges of one pair do.
This module is the one place such differences are computed: the operator ranking's tie rule
(:mod:`simmerge.evaluate.ranking`), the comparison's top-1 within noise and SimMerge vs the best fixed policy
(:mod:`simmerge.evaluate.selection`), and the two-level bootstrap of the comparison.

A label is a mean over tasks of per-task means over items (:mod:`simmerge.evaluate.labels`), so the difference of
two labels of one pair is ``(1/T) Σ_t mean_i d_ti`` and its variance ``(1/T²) Σ_t Var_t(d) / n_t``: items are
paired within a task and tasks are independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

ITEM_KEY = ["task", "subtask", "doc_id"]


@dataclass(frozen=True)
class PairedDifference:
    """The difference of two labels on the same items.

    Attributes
    ----------
    difference : float
        ``x − y`` (mean over tasks of the per-task mean differences).
    stderr : float
        Its paired standard error (plus the seed variance of randomised operators, when given).
    unpaired_stderr : float
        The standard error the two scores' own errors give when treated as independent.
    correlation : float
        Item-level correlation of ``x`` and ``y`` (centred per task; NaN when either is constant).
    n : int
        Items behind the difference.
    """

    difference: float
    stderr: float
    unpaired_stderr: float
    correlation: float
    n: int


def _variance_of_mean(values: np.ndarray) -> float:
    """``Var(values) / n`` with the n − 1 sample variance; 0 for a single item."""
    return float(np.var(values, ddof=1) / len(values)) if len(values) > 1 else 0.0


def paired_difference(
    x: pd.DataFrame,
    y: pd.DataFrame,
    *,
    value: str = "value",
    extra_variance: float = 0.0,
) -> PairedDifference:
    """Paired difference of two labels, from their per-item outcomes.

    Parameters
    ----------
    x, y : pandas.DataFrame
        Per-item outcomes of each label: ``task``, ``subtask``, ``doc_id`` and the ``value`` column, on the same
        items (the rows are matched on those keys).
    value : str
        The outcome column (``value``: the normalised metric; ``likelihood``: the continuous score).
    extra_variance : float
        Variance added to both standard errors (the seed variance of randomised operators' labels).

    Raises
    ------
    ValueError
        If the two do not cover the same items, or a value is missing.
    """
    joined = x[[*ITEM_KEY, value]].merge(y[[*ITEM_KEY, value]], on=ITEM_KEY, suffixes=("_x", "_y"), validate="1:1")
    if len(joined) != len(x) or len(joined) != len(y):
        raise ValueError(f"the two labels cover different items ({len(x)} and {len(y)}, {len(joined)} shared)")
    if joined[[f"{value}_x", f"{value}_y"]].isna().any().any():
        raise ValueError(f"missing {value} in the per-item outcomes")
    tasks = joined.groupby("task", sort=False)
    n_tasks = tasks.ngroups
    difference = paired = unpaired = 0.0
    centred = []
    for _, group in tasks:
        xs, ys = group[f"{value}_x"].to_numpy(float), group[f"{value}_y"].to_numpy(float)
        difference += float(np.mean(xs - ys)) / n_tasks
        paired += _variance_of_mean(xs - ys) / n_tasks**2
        unpaired += (_variance_of_mean(xs) + _variance_of_mean(ys)) / n_tasks**2
        centred.append((xs - xs.mean(), ys - ys.mean()))
    cx, cy = (np.concatenate(part) for part in zip(*centred, strict=True))
    norm = math.sqrt(float(cx @ cx) * float(cy @ cy))
    return PairedDifference(
        difference=difference,
        stderr=math.sqrt(paired + extra_variance),
        unpaired_stderr=math.sqrt(unpaired + extra_variance),
        correlation=float(cx @ cy) / norm if norm > 0 else math.nan,
        n=len(joined),
    )


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test of two 0/1 outcomes on the same items: ``only_x`` items only x gets right, ``only_y``
    only y; ``p_value`` is the two-sided exact binomial test of ``only_x`` against ``only_x + only_y`` at 1/2."""

    only_x: int
    only_y: int
    p_value: float


def mcnemar(x: np.ndarray | pd.Series, y: np.ndarray | pd.Series) -> McNemar:
    """McNemar's exact test on paired 0/1 outcomes.

    Raises
    ------
    ValueError
        If the arrays differ in length or hold anything but 0 and 1.

    Examples
    --------
    >>> mcnemar([1, 1, 1, 0, 0], [0, 0, 0, 0, 1])
    McNemar(only_x=3, only_y=1, p_value=0.625)
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape:
        raise ValueError(f"paired outcomes must have the same length, got {len(xs)} and {len(ys)}")
    if not (np.isin(xs, (0.0, 1.0)).all() and np.isin(ys, (0.0, 1.0)).all()):
        raise ValueError("McNemar's test takes 0/1 outcomes")
    only_x, only_y = int(((xs == 1) & (ys == 0)).sum()), int(((xs == 0) & (ys == 1)).sum())
    discordant = only_x + only_y
    # the binomial at 1/2 is symmetric: two-sided = twice the smaller tail
    tail = sum(math.comb(discordant, k) for k in range(min(only_x, only_y) + 1)) / 2**discordant
    p_value = min(1.0, 2 * tail)
    return McNemar(only_x=only_x, only_y=only_y, p_value=p_value)


def seed_variance(seed_sd: float | None, n_seeds: int, best_parent: float | None) -> float:
    """The variance a label's seed spread adds to its mean: ``(seed_sd / best_parent)² / n_seeds`` (0 without one)."""
    if seed_sd is None or not best_parent or n_seeds < 2 or math.isnan(seed_sd):
        return 0.0
    return (seed_sd / best_parent) ** 2 / n_seeds


def item_bootstrap_means(matrix: np.ndarray, *, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of several models' scores on the same items, resampling items once for all of them.

    Parameters
    ----------
    matrix : ndarray of shape (n_models, n_items)
        Per-item outcomes of each model, columns aligned on the items.
    n_boot : int
        Draws.
    rng : numpy.random.Generator
        Source of the item draws.

    Returns
    -------
    ndarray of shape (n_boot, n_models)
        Each draw's mean per model; the models share every draw's items, so differences stay paired.
    """
    n_items = matrix.shape[1]
    counts = np.stack([np.bincount(rng.integers(0, n_items, n_items), minlength=n_items) for _ in range(n_boot)])
    return counts @ matrix.T / n_items


__all__ = [
    "ITEM_KEY",
    "McNemar",
    "PairedDifference",
    "item_bootstrap_means",
    "mcnemar",
    "paired_difference",
    "seed_variance",
]
