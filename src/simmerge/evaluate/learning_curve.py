"""How many labelled pairs SimMerge needs: gap closure and top-1 against the number of training pairs.

Each repeat draws a test set of checkpoint groups (near-duplicates leave together, as in the comparison); the test
units are the unordered pairs that touch a test group, and the training pool is the pairs among the other
checkpoints only, so no test checkpoint's pair is ever in training. For each size ``n``, ``n`` pairs of that pool
are drawn (nested: the first ``n`` of one seeded order), their labels train the predictor (one family, fitted as
the comparison fits it) and choose the best fixed policy; the test units are scored as in the comparison
(:func:`simmerge.evaluate.selection.evaluate_units`, paired over items when the labels have them). A point of the
curve is the mean over repeats of the per-repeat means; its interval is the 2.5–97.5 % percentile of those
per-repeat means (the spread over draws of test checkpoints and training pairs, not a bootstrap of the items).
The break-even is the smallest ``n`` whose interval of SimMerge − best fixed lies above 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from simmerge.evaluate.paired import unit_items
from simmerge.evaluate.predictor import OPERATOR, TARGET, SimMergePredictor, training_rows
from simmerge.evaluate.selection import (
    best_policy,
    candidate_table,
    evaluate_units,
    policy_scores,
    rule_anchors,
    unit_of,
    units_of_rows,
)

CURVE_METRICS = ("simmerge", "best_fixed", "oracle", "difference", "top1", "top1_tied")


def curve_splits(
    experts: Sequence[str],
    groups: Mapping[str, str],
    *,
    test_groups: int,
    repeats: int,
    seed: int,
) -> list[tuple[list[str], list[tuple[str, str]], list[str]]]:
    """Per repeat: the test checkpoints, the training pool (unordered pairs among the others, seeded order) and
    the test units (unordered pairs touching a test checkpoint).

    Raises
    ------
    ValueError
        If fewer than ``test_groups + 2`` groups exist (the pool needs two checkpoints outside the test).
    """
    names = list(dict.fromkeys(groups.get(name, name) for name in experts))
    if len(names) < test_groups + 2:
        raise ValueError(f"{len(names)} checkpoint groups: holding out {test_groups} leaves too few to train on")
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(repeats):
        held = set(rng.choice(names, size=test_groups, replace=False).tolist())
        test = [name for name in experts if groups.get(name, name) in held]
        train = [name for name in experts if name not in test]
        pool = [(a, b) for i, a in enumerate(train) for b in train[i + 1 :]]
        pool = [pool[index] for index in rng.permutation(len(pool))]
        units = sorted({unit_of(a, b) for a in test for b in experts if a != b})
        splits.append((test, pool, units))
    return splits


def learning_curve(
    labels: pd.DataFrame,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    sizes: Sequence[int],
    groups: Mapping[str, str] | None = None,
    test_groups: int = 1,
    repeats: int = 20,
    family: str = "per_operator_ridge",
    items: pd.DataFrame | None = None,
    z: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """The learning curve of one predictor family over numbers of labelled training pairs.

    Returns
    -------
    pandas.DataFrame
        One row per (repeat, size): ``repeat``, ``n_pairs`` (training pairs used; a size larger than the pool is
        capped at it), ``test`` (held-out checkpoints), ``units`` and the test units' means of
        :data:`CURVE_METRICS`.
    """
    rows = training_rows(labels)
    experts = list(dict.fromkeys([*rows["a"], *rows["b"]]))
    row_units = np.asarray(units_of_rows(rows))
    by_unit = unit_items(rows, items, list(row_units)) if items is not None else None
    columns = [*feature_columns, OPERATOR]
    out = []
    for repeat, (test, pool, units) in enumerate(
        curve_splits(experts, groups or {}, test_groups=test_groups, repeats=repeats, seed=seed)
    ):
        test_rows = rows[np.isin(row_units, units)].reset_index(drop=True)
        anchors = rule_anchors(test_rows)
        used: set[int] = set()
        for size in sizes:
            chosen = {unit_of(a, b) for a, b in pool[:size]}
            if len(chosen) in used:  # a size beyond the pool repeats the whole pool
                continue
            used.add(len(chosen))
            train_rows = rows[np.isin(row_units, list(chosen))].reset_index(drop=True)
            if train_rows.empty or train_rows[TARGET].nunique() < 2:
                continue
            model = SimMergePredictor(family=family, operators=list(operators), random_state=seed)
            model.fit(train_rows[columns], train_rows[TARGET])
            candidates = candidate_table(test_rows.assign(predicted=model.predict(test_rows[columns])))
            fixed = best_policy(policy_scores(candidate_table(train_rows), rule_anchors(train_rows)))
            scored = evaluate_units(candidates, anchors, fixed, z=z, items=by_unit)
            out.append(
                {
                    "repeat": repeat,
                    "n_pairs": len(chosen),
                    "test": "+".join(test),
                    "units": len(scored),
                    **{metric: float(scored[metric].mean()) for metric in CURVE_METRICS},
                }
            )
    return pd.DataFrame(out)


def curve_summary(curve: pd.DataFrame) -> pd.DataFrame:
    """Per number of training pairs: repeats, mean and 95 % percentile interval over repeats of each metric,
    gap closure on the means, whether SimMerge − best fixed is above 0 over the interval, and ``supported``:
    whether at least half of the curve's repeats reached that size (a size beyond most repeats' training pool
    rests on the few draws whose pool was large, which are not the same population)."""
    drawn = curve["repeat"].nunique()
    rows = []
    for n_pairs, group in curve.groupby("n_pairs", sort=True):
        row: dict[str, float] = {"n_pairs": n_pairs, "repeats": len(group), "supported": 2 * len(group) >= drawn}
        for metric in CURVE_METRICS:
            values = group[metric].dropna().to_numpy(float)
            row[metric] = float(values.mean()) if len(values) else math.nan
            lo, hi = np.percentile(values, [2.5, 97.5]) if len(values) else (math.nan, math.nan)
            row[f"{metric}_lo"], row[f"{metric}_hi"] = float(lo), float(hi)
        gain = row["oracle"] - row["best_fixed"]
        row["gap_closure"] = (row["simmerge"] - row["best_fixed"]) / gain if gain > 0 else math.nan
        row["beats_best_fixed"] = bool(row["difference_lo"] > 0)
        rows.append(row)
    return pd.DataFrame(rows)


def break_even(summary: pd.DataFrame) -> int | None:
    """The smallest number of labelled pairs from which SimMerge beats the best fixed policy (interval above 0 at
    that size and every larger one), among the sizes that at least half of the repeats reached; None if it never
    does."""
    beats = summary[summary["supported"]].sort_values("n_pairs")
    for index in range(len(beats)):
        if beats["beats_best_fixed"].iloc[index:].all():
            return int(beats["n_pairs"].iloc[index])
    return None


__all__ = ["CURVE_METRICS", "break_even", "curve_splits", "curve_summary", "learning_curve"]
