"""The honest comparison: grouped cross-validation of SimMerge against fixed operators, the oracle and random choice.

For each outer fold (a held-out checkpoint, or a held-out task) everything SimMerge uses is learned from the
training rows only: the model family (inner grouped CV on the training rows), the fitted model, and the "best
fixed operator" baseline. The test rows are touched once, to score the choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simmerge.core.config import PREDICTOR_FAMILIES, PROTOCOLS
from simmerge.evaluate.predictor import (
    OPERATOR,
    TARGET,
    SimMergePredictor,
    choose_family,
    protocol_split,
    training_rows,
)
from simmerge.evaluate.selection import best_fixed_operator, candidate_table, evaluate_units, summarise


def compare(
    labels: pd.DataFrame,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    protocol: str,
    seed: int,
    z: float = 1.0,
    families: Sequence[str] = PREDICTOR_FAMILIES,
    n_boot: int = 1000,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Run one evaluation protocol.

    Parameters
    ----------
    labels : pandas.DataFrame
        The labels table.
    feature_columns, operators : sequence of str
        Predictor inputs and the operator grid.
    protocol : {"checkpoint", "task"}
        Leave-one-checkpoint-out (units: unordered pairs) or leave-one-task-out (units: pair × task).
    seed : int
        Seed of the models and of the bootstrap.
    z : float
        Tie band in combined standard errors.
    families : sequence of str
        Model families the inner CV chooses from.
    n_boot : int
        Bootstrap resamples for the 95% intervals.

    Returns
    -------
    (units, candidates, folds, summary)
        ``units``: one row per test unit (:func:`simmerge.evaluate.selection.evaluate_units` plus ``fold`` and
        ``family``); ``candidates``: every test candidate with its out-of-fold prediction and actual score
        (:func:`simmerge.evaluate.selection.candidate_table` plus ``fold`` and ``family``); ``folds``: one row per
        fold (held-out name, family, best fixed operator, mean scores, and the training/test row counts);
        ``summary``: :func:`simmerge.evaluate.selection.summarise` of all units plus
        ``protocol`` and the mean score of every fixed operator.
    """
    rows = training_rows(labels)
    splitter, groups = protocol_split(protocol, rows)
    per_task = protocol == "task"
    columns = [*feature_columns, OPERATOR]
    unit_tables, candidate_tables, fold_rows = [], [], []
    folds = zip(splitter.held_out(groups=groups), splitter.split(rows, groups=groups), strict=True)
    for held_out, (train, test) in folds:
        train_rows, test_rows = rows.iloc[train].reset_index(drop=True), rows.iloc[test].reset_index(drop=True)
        if train_rows[TARGET].nunique() < 2:
            continue
        family = _inner_family(train_rows, feature_columns, operators, protocol, seed, families)
        model = SimMergePredictor(family=family, operators=operators, random_state=seed)
        model.fit(train_rows[columns], train_rows[TARGET])
        predicted = test_rows.assign(predicted=model.predict(test_rows[columns]))
        train_candidates = candidate_table(train_rows.assign(predicted=np.nan), per_task=per_task)
        best_fixed = best_fixed_operator(train_candidates)
        candidates = candidate_table(predicted, per_task=per_task)
        units = evaluate_units(candidates, best_fixed, z=z)
        candidate_tables.append(candidates.assign(fold=held_out, family=family))
        units.insert(0, "fold", held_out)
        units.insert(1, "family", family)
        unit_tables.append(units)
        fold_rows.append(
            {
                "fold": held_out,
                "family": family,
                "best_fixed_operator": best_fixed,
                "train_rows": len(train_rows),
                "test_rows": len(test_rows),
                "units": len(units),
                "simmerge": units["simmerge"].mean(),
                "best_fixed": units["best_fixed"].mean(),
                "oracle": units["oracle"].mean(),
                "random": units["random"].mean(),
            }
        )
    units = pd.concat(unit_tables, ignore_index=True) if unit_tables else pd.DataFrame()
    summary: dict[str, Any] = {"protocol": protocol, **summarise(units, n_boot=n_boot, seed=seed)}
    if not units.empty:
        fixed = candidate_table(rows.assign(predicted=np.nan), per_task=per_task)
        means = fixed.groupby(["unit", "operator"])["actual"].mean().unstack("operator").mean(axis=0)
        summary["fixed_operators"] = {name: float(means[name]) for name in operators if name in means}
    candidates = pd.concat(candidate_tables, ignore_index=True) if candidate_tables else pd.DataFrame()
    return units, candidates, pd.DataFrame(fold_rows), summary


def _inner_family(
    rows: pd.DataFrame,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    protocol: str,
    seed: int,
    families: Sequence[str],
) -> str:
    """The family chosen by grouped CV inside the training rows (the first one when there is a single family)."""
    if len(families) == 1:
        return families[0]
    family, _ = choose_family(rows, feature_columns, operators, seed=seed, families=families, protocol=protocol)
    return family


__all__ = ["PROTOCOLS", "compare"]
