"""The honest comparison: grouped cross-validation of SimMerge against fixed policies, the oracle and random choice.

For each outer fold (:data:`simmerge.core.config.PROTOCOLS`: a held-out checkpoint group, a held-out task, or
both) everything SimMerge uses is learned from the training rows only: the model family (inner grouped CV on the
training rows), the fitted model, and the "best fixed policy" baseline (operator and order rule). The test rows are
touched once, to score the choices. A unit tested in several folds (a pair, in the folds of each of its experts) is
scored once, on the mean over those folds (:func:`simmerge.evaluate.selection.combine_folds`), and the bootstrap
resamples expert pairs, so units that share a merge are not counted as independent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from simmerge.core.config import PREDICTOR_FAMILIES, PROTOCOL_TITLES, PROTOCOLS
from simmerge.evaluate.labels import TARGETS, retarget
from simmerge.evaluate.paired import unit_items
from simmerge.evaluate.predictor import (
    OPERATOR,
    TARGET,
    SimMergePredictor,
    inner_family,
    per_task_units,
    protocol_split,
    training_rows,
)
from simmerge.evaluate.selection import (
    best_policy,
    candidate_table,
    combine_folds,
    evaluate_units,
    fixed_operator_scores,
    policy_scores,
    rule_anchors,
    summarise,
    units_of_rows,
)


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
    checkpoint_groups: Mapping[str, str] | None = None,
    importance_repeats: int = 0,
    items: pd.DataFrame | None = None,
    target: str = "metric",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """Run one evaluation protocol, under the label target and — when the labels have it — under the other one.

    Parameters
    ----------
    labels : pandas.DataFrame
        The labels table.
    feature_columns, operators : sequence of str
        Predictor inputs and the operator grid.
    protocol : {"checkpoint", "task_seen_pairs", "cold_start"}
        Held-out checkpoint groups (units: unordered pairs), held-out tasks for pairs merged on other tasks, or
        held-out task and checkpoint group together (units: pair × task).
    seed : int
        Seed of the models and of the bootstrap.
    z : float
        Tie band in combined standard errors.
    families : sequence of str
        Model families the inner CV chooses from.
    n_boot : int
        Bootstrap resamples for the 95% intervals.
    checkpoint_groups : mapping of str to str, optional
        Each checkpoint's hold-out group (:attr:`simmerge.run.Catalog.holdout_groups`): near-duplicates leave a
        training fold together.
    importance_repeats : int
        Permutation repeats of the held-out feature importances (0: none).
    items : pandas.DataFrame, optional
        The label items: ties, SimMerge − best fixed and top-1 within noise are then decided on paired
        differences over each unit's items, and the intervals resample pairs and items (two levels).
    target : {"metric", "likelihood"}
        What SimMerge learns and is scored on (:func:`simmerge.evaluate.labels.retarget`). The summary's
        ``targets`` holds the headline numbers under both targets and how often the choices agree.

    Returns
    -------
    (units, candidates, folds, summary, importances)
        ``units``: one row per test unit (:func:`simmerge.evaluate.selection.combine_folds`, with
        ``best_fixed_hindsight``); ``candidates``: every test candidate of every fold with its out-of-fold
        prediction and actual score (:func:`simmerge.evaluate.selection.candidate_table` plus ``fold`` and
        ``family``); ``folds``: one row per fold (held-out name, family, best fixed policy, mean scores, and the
        training/test row counts); ``summary``: :func:`simmerge.evaluate.selection.summarise` plus ``protocol``,
        ``title``, the hold-out ``groups``, the best policy in hindsight, the mean score of every fixed operator
        (random order) and fixed policy, and ``families``: each family's choices scored on the same outer folds
        next to the choice made by inner CV (nested); ``importances``: permutation importance (drop in R²) of each
        input on the held-out rows, averaged over folds (empty with ``importance_repeats=0``).
    """
    options = {
        "protocol": protocol,
        "seed": seed,
        "z": z,
        "families": families,
        "n_boot": n_boot,
        "checkpoint_groups": checkpoint_groups,
    }
    targets = [
        target,
        *(
            other
            for other in TARGETS
            if other != target and items is not None and labels.get(TARGETS[other], pd.Series()).notna().any()
        ),
    ]
    runs = {}
    for name in targets:
        target_labels, target_items = retarget(labels, items, name) if items is not None else (labels, None)
        runs[name] = _compare_target(
            target_labels,
            target_items,
            feature_columns,
            operators,
            importance_repeats=importance_repeats if name == target else 0,
            **options,
        )
    units, candidates, folds, summary, importances = runs[target]
    summary["target"] = target
    summary["targets"] = _across_targets(runs, target)
    return units.drop(columns=["items"], errors="ignore"), candidates, folds, summary, importances


def _compare_target(
    labels: pd.DataFrame,
    items: pd.DataFrame | None,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    protocol: str,
    seed: int,
    z: float,
    families: Sequence[str],
    n_boot: int,
    checkpoint_groups: Mapping[str, str] | None,
    importance_repeats: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """:func:`compare` under one target (the labels already :func:`~simmerge.evaluate.labels.retarget`-ed)."""
    rows = training_rows(labels)
    splitter, groups = protocol_split(protocol, rows, checkpoint_groups)
    per_task = per_task_units(protocol)
    by_unit = unit_items(rows, items, units_of_rows(rows, per_task=per_task)) if items is not None else None
    columns = [*feature_columns, OPERATOR]
    fold_units, candidate_tables, fold_rows, importance_tables = [], [], [], []
    family_units: dict[str, list[pd.DataFrame]] = {family: [] for family in families}
    folds = zip(splitter.held_out(groups=groups), splitter.split(rows, groups=groups), strict=True)
    for held_out, (train, test) in folds:
        train_rows, test_rows = rows.iloc[train].reset_index(drop=True), rows.iloc[test].reset_index(drop=True)
        if train_rows[TARGET].nunique() < 2:
            continue
        best_fixed = best_policy(
            policy_scores(candidate_table(train_rows, per_task=per_task), rule_anchors(train_rows, per_task=per_task))
        )
        anchors = rule_anchors(test_rows, per_task=per_task)
        family = inner_family(
            train_rows,
            feature_columns,
            operators,
            protocol=protocol,
            seed=seed,
            families=families,
            checkpoint_groups=checkpoint_groups,
        )
        for candidate_family in families:
            model = SimMergePredictor(family=candidate_family, operators=operators, random_state=seed)
            model.fit(train_rows[columns], train_rows[TARGET])
            candidates = candidate_table(
                test_rows.assign(predicted=model.predict(test_rows[columns])), per_task=per_task
            )
            units = evaluate_units(candidates, anchors, best_fixed, z=z, items=by_unit).assign(
                fold=held_out, family=candidate_family
            )
            family_units[candidate_family].append(units)
            if candidate_family != family:
                continue
            fold_units.append(units)
            candidate_tables.append(candidates.assign(fold=held_out, family=family))
            if importance_repeats:
                importance_tables.append(_held_out_importances(model, test_rows, columns, importance_repeats, seed))
            fold_rows.append(
                {
                    "fold": held_out,
                    "family": family,
                    "best_fixed_policy": best_fixed,
                    "train_rows": len(train_rows),
                    "test_rows": len(test_rows),
                    "units": len(units),
                    **{method: units[method].mean() for method in ("simmerge", "best_fixed", "oracle", "random")},
                }
            )
    units = combine_folds(pd.concat(fold_units, ignore_index=True), z=z) if fold_units else pd.DataFrame()
    summary: dict[str, Any] = {
        "protocol": protocol,
        "title": PROTOCOL_TITLES[protocol],
        "groups": sorted(set((checkpoint_groups or {}).values()) - set(checkpoint_groups or {})),
    }
    if not units.empty:
        tested = rows[pd.Series(units_of_rows(rows, per_task=per_task)).isin(units["unit"]).to_numpy()]
        all_candidates = candidate_table(tested, per_task=per_task)
        policies = policy_scores(all_candidates, rule_anchors(tested, per_task=per_task))
        hindsight = best_policy(policies)
        units["best_fixed_hindsight"] = units["unit"].map(policies[hindsight])
        summary["best_fixed_hindsight_policy"] = hindsight
        summary["fixed_operators"] = _means(fixed_operator_scores(all_candidates), operators)
        summary["fixed_policies"] = _means(policies, list(policies.columns))
    summary.update(summarise(units, n_boot=n_boot, seed=seed, z=z))
    summary["families"] = _family_table(family_units, units, z=z)
    candidates = pd.concat(candidate_tables, ignore_index=True) if candidate_tables else pd.DataFrame()
    importances = _mean_importances(importance_tables)
    return units, candidates, pd.DataFrame(fold_rows), summary, importances


# What the summary's ``targets`` reports under each target.
_TARGET_KEYS = ("simmerge", "best_fixed", "oracle", "difference", "difference_lo", "difference_hi", "gap_closure")
_TARGET_KEYS += ("gap_closure_lo", "gap_closure_hi", "top1", "top1_tied", "top1_tied_chance", "win", "tie", "loss")


def _across_targets(runs: Mapping[str, tuple], target: str) -> dict[str, Any]:
    """The headline under each target, and whether the choices made under one hold under the other.

    ``same_choice``: the share of units (tested under both) where SimMerge chose the same candidate;
    ``same_oracle``: the same for the oracle's candidate; ``separated``: units whose SimMerge − best fixed is a
    win or loss rather than a tie.
    """
    out: dict[str, Any] = {}
    for name, (units, _, _, summary, _) in runs.items():
        out[name] = {key: summary.get(key) for key in _TARGET_KEYS}
        out[name]["separated"] = float((units["vs_best_fixed"].isin(["win", "loss"])).sum()) if len(units) else 0.0
    if len(runs) == 2:
        (other,) = (name for name in runs if name != target)
        first, second = runs[target][0], runs[other][0]
        if len(first) and len(second):
            joined = first.merge(second, on="unit", suffixes=("", "_other"))
            out["same_choice"] = float((joined["chosen"] == joined["chosen_other"]).mean())
            out["same_oracle"] = float((joined["oracle_choice"] == joined["oracle_choice_other"]).mean())
            out["units_compared"] = float(len(joined))
    return out


def _family_table(family_units: Mapping[str, list[pd.DataFrame]], selected: pd.DataFrame, *, z: float) -> list[dict]:
    """Each family's choices on the outer folds, and the inner-CV choice (nested) as the last row.

    The families' rows are each an honest estimate of one fixed family; the best of them is not (it is chosen
    on the test folds), which is why the nested row is the one the headline reports.
    """
    table = []
    for family, tables in family_units.items():
        if not tables:
            continue
        units = combine_folds(pd.concat(tables, ignore_index=True), z=z)
        table.append(_family_row(family, units))
    if not selected.empty:
        table.append(_family_row("chosen per fold by inner CV (nested)", selected))
    return table


def _family_row(name: str, units: pd.DataFrame) -> dict[str, Any]:
    return {
        "family": name,
        "simmerge": float(units["simmerge"].mean()),
        "difference": float(units["difference"].mean()),
        "top1": float(units["top1"].mean()),
        "spearman": float(units["spearman"].mean()),
    }


def _held_out_importances(
    model: SimMergePredictor, test_rows: pd.DataFrame, columns: Sequence[str], repeats: int, seed: int
) -> pd.DataFrame:
    from sklearn.inspection import permutation_importance  # deferred: only when importances are asked for

    result = permutation_importance(
        model, test_rows[list(columns)], test_rows[TARGET], n_repeats=repeats, random_state=seed, n_jobs=1
    )
    return pd.DataFrame({"input": list(columns), "importance": result.importances_mean, "rows": len(test_rows)})


def _mean_importances(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Importances averaged over folds, weighted by their held-out rows, with the spread over folds."""
    if not tables:
        return pd.DataFrame(columns=["input", "importance", "sd_over_folds", "folds"])
    frame = pd.concat(tables, ignore_index=True)
    weighted = frame.assign(weighted=frame["importance"] * frame["rows"]).groupby("input", sort=False)
    table = pd.DataFrame(
        {
            "importance": weighted["weighted"].sum() / weighted["rows"].sum(),
            "sd_over_folds": weighted["importance"].std(ddof=0),
            "folds": weighted.size(),
        }
    ).reset_index()
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def _means(scores: pd.DataFrame, names: Sequence[str]) -> dict[str, float]:
    means = scores.mean(axis=0)
    return {name: float(means[name]) for name in names if name in means}


__all__ = ["PROTOCOLS", "compare"]
