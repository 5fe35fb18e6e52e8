"""From per-row predictions to merge choices, and how those choices compare with fixed operators and the oracle.

A **unit** is what one decision is made for: an unordered expert pair (leave-one-checkpoint-out), or an unordered
pair on one task (leave-one-task-out). Its **candidates** are the operators, with both orders as separate
candidates for an order-sensitive operator. A symmetric operator's merge serves both orders, so its prediction
is the mean over both orders' feature rows. A candidate's actual score is the merge's mean normalised score
(per-task normalised score for a task unit), with its standard error for tie handling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from simmerge.evaluate import stats


def unit_of(a: str, b: str) -> str:
    """The unordered pair ``a|b`` with the names sorted, so both orders share one unit."""
    first, second = sorted((a, b))
    return f"{first}|{second}"


def candidate_table(rows: pd.DataFrame, *, per_task: bool = False) -> pd.DataFrame:
    """Group label rows with a ``predicted`` column into candidates per unit.

    Parameters
    ----------
    rows : pandas.DataFrame
        Label rows (``a``, ``b``, ``task``, ``operator``, ``order_sensitive``, ``normalised``, ``stderr``,
        ``parent_score_a``, ``parent_score_b``, ``merge_score``, ``merge_score_stderr``), optionally with
        ``predicted`` and ``uncertainty``.
    per_task : bool
        One unit per (unordered pair, task) instead of per unordered pair.

    Returns
    -------
    pandas.DataFrame
        One row per candidate: ``unit``, ``operator``, ``anchor`` (the first model of an order-sensitive
        candidate; empty for a symmetric one), ``predicted``, ``uncertainty``, ``actual``, ``actual_stderr``.
    """
    frame = rows.assign(unit=[unit_of(a, b) for a, b in zip(rows["a"], rows["b"], strict=True)])
    if per_task:
        frame["unit"] = frame["unit"] + "@" + frame["task"]
        best_parent = frame[["parent_score_a", "parent_score_b"]].max(axis=1)
        frame["actual"] = frame["normalised"]
        frame["actual_stderr"] = frame["stderr"] / best_parent.where(best_parent > 0)
    else:
        frame["actual"] = frame["merge_score"]
        frame["actual_stderr"] = frame["merge_score_stderr"]
    frame["anchor"] = np.where(frame["order_sensitive"].astype(bool), frame["a"], "")
    for column in ("predicted", "uncertainty"):  # absent when only the actual scores are of interest
        if column not in frame:
            frame[column] = np.nan
    grouped = frame.groupby(["unit", "operator", "anchor"], sort=False)
    table = grouped.agg(
        predicted=("predicted", "mean"),
        uncertainty=("uncertainty", "mean"),
        actual=("actual", "mean"),
        actual_stderr=("actual_stderr", "mean"),
    ).reset_index()
    return table.dropna(subset=["actual"]).reset_index(drop=True)


def choose(candidates: pd.DataFrame) -> pd.DataFrame:
    """The candidate with the highest prediction in each unit (ties: the first in table order)."""
    if candidates.empty:
        return candidates
    index = candidates.groupby("unit", sort=False)["predicted"].idxmax()
    return candidates.loc[index].reset_index(drop=True)


def fixed_operator_scores(candidates: pd.DataFrame) -> pd.DataFrame:
    """Actual score of always using one operator, per unit; an order-sensitive one in a random order (mean)."""
    return candidates.groupby(["unit", "operator"], sort=False)["actual"].mean().unstack("operator")


def best_fixed_operator(candidates: pd.DataFrame) -> str:
    """The operator with the highest mean actual score over the given (training) units.

    :func:`simmerge.evaluate.stats.best_fixed_operator` over the operators in table order (exact ties: the first).
    """
    return stats.best_fixed_operator(fixed_operator_scores(candidates).mean(axis=0))


def evaluate_units(candidates: pd.DataFrame, best_fixed: Mapping[str, str] | str, *, z: float = 1.0) -> pd.DataFrame:
    """Per unit: SimMerge's choice against the best fixed operator, the oracle and random choice.

    Parameters
    ----------
    candidates : pandas.DataFrame
        :func:`candidate_table` of the test units (with out-of-fold predictions).
    best_fixed : str or mapping
        The best fixed operator chosen on the training folds, for every unit or per unit.
    z : float
        Tie band: scores within ``z`` combined standard errors count as tied
        (:func:`simmerge.evaluate.stats.within_noise`).

    Returns
    -------
    pandas.DataFrame
        ``unit``, ``chosen`` (``operator`` or ``operator@anchor``), ``simmerge``, ``best_fixed_operator``,
        ``best_fixed``, ``oracle_choice``, ``oracle``, ``random`` (expected score of a uniformly random operator,
        order at random), ``regret`` (oracle − SimMerge), ``top1`` (the choice is the oracle's candidate),
        ``top1_tied`` (within noise of the oracle), ``vs_best_fixed`` (``win`` / ``tie`` / ``loss``, ties within
        noise) and ``spearman`` (predicted vs actual over the unit's candidates).
    """
    fixed = fixed_operator_scores(candidates)
    rows = []
    for unit, group in candidates.groupby("unit", sort=False):
        group = group.reset_index(drop=True)
        chosen = group.loc[group["predicted"].idxmax()]
        oracle = group.loc[group["actual"].idxmax()]
        operator = best_fixed[unit] if isinstance(best_fixed, Mapping) else best_fixed
        fixed_rows = group[group["operator"] == operator]
        fixed_score = float(fixed.loc[unit, operator]) if operator in fixed.columns else math.nan
        fixed_se = float(fixed_rows["actual_stderr"].mean()) if len(fixed_rows) else math.nan
        difference = chosen["actual"] - fixed_score
        if stats.within_noise(difference, chosen["actual_stderr"], fixed_se, z=z):
            versus = "tie"
        else:
            versus = "win" if difference > 0 else "loss"
        rows.append(
            {
                "unit": unit,
                "chosen": _label(chosen),
                "simmerge": float(chosen["actual"]),
                "best_fixed_operator": operator,
                "best_fixed": fixed_score,
                "oracle_choice": _label(oracle),
                "oracle": float(oracle["actual"]),
                "random": float(fixed.loc[unit].mean()),
                "regret": float(oracle["actual"] - chosen["actual"]),
                "top1": bool(chosen["actual"] == oracle["actual"]),
                "top1_tied": stats.within_noise(
                    oracle["actual"] - chosen["actual"], oracle["actual_stderr"], chosen["actual_stderr"], z=z
                ),
                "vs_best_fixed": versus,
                "spearman": float(group["predicted"].corr(group["actual"], method="spearman"))
                if group["actual"].nunique() > 1 and group["predicted"].nunique() > 1
                else math.nan,
                "uncertainty": float(chosen["uncertainty"]),
            }
        )
    return pd.DataFrame(rows)


METHODS = ("simmerge", "best_fixed", "oracle", "random")
_MEANS = (*METHODS, "regret", "top1", "top1_tied", "gap_closure")
SUMMARY_KEYS = (
    *(f"{name}{suffix}" for name in _MEANS for suffix in ("", "_lo", "_hi")),
    "spearman",
    "win",
    "tie",
    "loss",
)


def summarise(units: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Means over units with bootstrap 95% intervals (resampling units), and the derived metrics.

    ``gap_closure`` = (SimMerge − best fixed) ÷ (oracle − best fixed) on the means; NaN when the oracle does not
    beat the best fixed operator (nothing to close).
    """
    if units.empty:
        return {"units": 0.0, **{key: math.nan for key in SUMMARY_KEYS}}
    rng = np.random.default_rng(seed)
    values = {
        "simmerge": units["simmerge"].to_numpy(float),
        "best_fixed": units["best_fixed"].to_numpy(float),
        "oracle": units["oracle"].to_numpy(float),
        "random": units["random"].to_numpy(float),
        "regret": units["regret"].to_numpy(float),
        "top1": units["top1"].to_numpy(float),
        "top1_tied": units["top1_tied"].to_numpy(float),
    }
    out: dict[str, float] = {"units": float(len(units))}
    draws = rng.integers(0, len(units), size=(n_boot, len(units)))
    for name, array in values.items():
        out[name] = float(np.nanmean(array))
        boot = np.nanmean(array[draws], axis=1)
        out[f"{name}_lo"], out[f"{name}_hi"] = (float(q) for q in np.nanpercentile(boot, [2.5, 97.5]))
    closure = _gap_closure(values["simmerge"], values["best_fixed"], values["oracle"])
    out["gap_closure"] = closure
    boot_closure = [_gap_closure(values["simmerge"][d], values["best_fixed"][d], values["oracle"][d]) for d in draws]
    finite = [value for value in boot_closure if math.isfinite(value)]
    out["gap_closure_lo"], out["gap_closure_hi"] = (
        (float(q) for q in np.percentile(finite, [2.5, 97.5])) if finite else (math.nan, math.nan)
    )
    out["spearman"] = float(units["spearman"].mean())
    for outcome in ("win", "tie", "loss"):
        out[outcome] = float((units["vs_best_fixed"] == outcome).sum())
    return out


def _gap_closure(simmerge: np.ndarray, best_fixed: np.ndarray, oracle: np.ndarray) -> float:
    headroom = np.nanmean(oracle) - np.nanmean(best_fixed)
    if not headroom > 1e-12:
        return math.nan
    return float((np.nanmean(simmerge) - np.nanmean(best_fixed)) / headroom)


def _label(candidate: pd.Series) -> str:
    return f"{candidate['operator']}@{candidate['anchor']}" if candidate["anchor"] else str(candidate["operator"])


__all__ = [
    "METHODS",
    "SUMMARY_KEYS",
    "best_fixed_operator",
    "candidate_table",
    "choose",
    "evaluate_units",
    "fixed_operator_scores",
    "summarise",
    "unit_of",
]
