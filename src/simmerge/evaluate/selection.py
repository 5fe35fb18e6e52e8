"""From per-row predictions to merge choices, and how those choices compare with fixed policies and the oracle.

A **unit** is what one decision is made for: an unordered expert pair (held-out checkpoints), or an unordered pair
on one task (held-out tasks). Its **candidates** are the operators, with both orders as separate candidates for an
order-sensitive operator. A symmetric operator's merge serves both orders, so its prediction is the mean over both
orders' feature rows. A candidate's actual score is the merge's mean normalised score (per-task normalised score
for a task unit), with its standard error for tie handling.

The baseline is a **fixed policy** a user could apply without labels: one operator, and for an order-sensitive
operator an **order rule** (:data:`ORDER_RULES`) that names the anchor from what is known before any merge — the
experts' task-vector norms or their own scores. SimMerge chooses operator and order per unit; the fixed policy is
learned once on the training folds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from simmerge.evaluate import stats
from simmerge.evaluate.paired import UnitItems, anchors_of_rows, difference_of

# How a fixed policy orders an order-sensitive merge (anchor = the model the merge keeps first):
ORDER_RULES = {
    "random": "either order with equal chance (the mean of both orders' scores)",
    "larger_norm": "anchor on the expert with the larger task vector ‖θ − θ_base‖",
    "smaller_norm": "anchor on the expert with the smaller task vector",
    "better_parent": "anchor on the expert that scores higher itself on the unit's task(s)",
}
# The per-row columns each order rule reads: (column of a, column of b), and whether the larger value anchors.
_RULE_COLUMNS = {
    "larger_norm": (("tv_rel_norm_a", "tv_rel_norm_b"), True),
    "smaller_norm": (("tv_rel_norm_a", "tv_rel_norm_b"), False),
    "better_parent": (("parent_score_a", "parent_score_b"), True),
}
# The order rules that read a similarity feature (the weight sketches' task-vector norms); better_parent reads the
# experts' own scores, which the catalog holds for every expert (every label is normalised by them).
FEATURE_ORDER_RULES = frozenset({"larger_norm", "smaller_norm"})


def unit_of(a: str, b: str) -> str:
    """The unordered pair ``a|b`` with the names sorted, so both orders share one unit."""
    first, second = sorted((a, b))
    return f"{first}|{second}"


def pair_of(unit: str) -> str:
    """The expert pair of a unit (``a|b@task`` → ``a|b``): the cluster of the bootstrap."""
    return unit.split("@", 1)[0]


def units_of_rows(rows: pd.DataFrame, *, per_task: bool = False) -> list[str]:
    """The unit of each label row: its unordered pair, and with ``per_task`` its task (``a|b@task``)."""
    units = [unit_of(a, b) for a, b in zip(rows["a"], rows["b"], strict=True)]
    if per_task:
        units = [f"{unit}@{task}" for unit, task in zip(units, rows["task"], strict=True)]
    return units


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
    frame = rows.assign(unit=units_of_rows(rows, per_task=per_task))
    if per_task:
        best_parent = frame[["parent_score_a", "parent_score_b"]].max(axis=1)
        frame["actual"] = frame["normalised"]
        frame["actual_stderr"] = frame["stderr"] / best_parent.where(best_parent > 0)
    else:
        frame["actual"] = frame["merge_score"]
        frame["actual_stderr"] = frame["merge_score_stderr"]
    frame["anchor"] = anchors_of_rows(frame)
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


def rule_anchors(rows: pd.DataFrame, *, per_task: bool = False) -> pd.DataFrame:
    """The anchor each order rule picks in each unit, from label rows (what a user knows before merging).

    Parameters
    ----------
    rows : pandas.DataFrame
        Label rows as for :func:`candidate_table`; the norm rules read ``tv_rel_norm_a`` / ``tv_rel_norm_b``
        when the rows have them.
    per_task : bool
        Units per pair and task.

    Returns
    -------
    pandas.DataFrame
        Index: unit; one column per rule of :data:`ORDER_RULES`: the anchor's name, or ``""`` where the rule
        cannot tell the two experts apart (``random`` always; a missing or equal value) and so falls back to a
        random order.
    """
    units = units_of_rows(rows, per_task=per_task)
    anchors = pd.DataFrame(index=pd.Index(list(dict.fromkeys(units)), name="unit"))
    anchors["random"] = ""
    for rule, ((column_a, column_b), larger) in _RULE_COLUMNS.items():
        if column_a not in rows or column_b not in rows:
            anchors[rule] = ""
            continue
        sides = pd.concat(
            [
                pd.DataFrame({"unit": units, "expert": rows["a"].to_numpy(), "value": rows[column_a].to_numpy()}),
                pd.DataFrame({"unit": units, "expert": rows["b"].to_numpy(), "value": rows[column_b].to_numpy()}),
            ]
        )
        means = sides.astype({"value": float}).groupby(["unit", "expert"], sort=False)["value"].mean()
        chosen = {}
        for unit, values in means.groupby(level="unit", sort=False):
            values = values.droplevel("unit").dropna()
            if len(values) == 2 and values.iloc[0] != values.iloc[1]:
                chosen[unit] = str(values.idxmax() if larger else values.idxmin())
        anchors[rule] = [chosen.get(unit, "") for unit in anchors.index]
    return anchors


def policy_of(operator: str, rule: str | None) -> str:
    """The name of a fixed policy: ``operator`` (symmetric) or ``operator/rule`` (order-sensitive)."""
    return operator if rule is None else f"{operator}/{rule}"


def rule_of(policy: str) -> str | None:
    """The order rule of a fixed policy (None for a symmetric operator)."""
    return policy.split("/", 1)[1] if "/" in policy else None


def policy_scores(candidates: pd.DataFrame, anchors: pd.DataFrame) -> pd.DataFrame:
    """Actual score of every fixed policy in every unit.

    Parameters
    ----------
    candidates : pandas.DataFrame
        :func:`candidate_table`.
    anchors : pandas.DataFrame
        :func:`rule_anchors` of the same rows.

    Returns
    -------
    pandas.DataFrame
        Index: unit (in candidate order); columns: policies (:func:`policy_of`), the operators in candidate
        order, each order-sensitive one once per rule of :data:`ORDER_RULES`. A rule whose anchor is ``""`` in a
        unit scores the mean of both orders there.
    """
    units = list(dict.fromkeys(candidates["unit"]))
    columns: dict[str, pd.Series] = {}
    for operator, own in candidates.groupby("operator", sort=False):
        by_anchor = own.pivot_table(index="unit", columns="anchor", values="actual", aggfunc="mean")
        if (own["anchor"] == "").all():
            columns[policy_of(operator, None)] = by_anchor[""].reindex(units)
            continue
        random_order = by_anchor.mean(axis=1)
        for rule in ORDER_RULES:
            picked = anchors[rule].reindex(units).fillna("")
            columns[policy_of(operator, rule)] = pd.Series(
                [
                    by_anchor.at[unit, anchor] if anchor and anchor in by_anchor.columns else random_order.get(unit)
                    for unit, anchor in picked.items()
                ],
                index=units,
                dtype=float,
            )
    return pd.DataFrame(columns, index=pd.Index(units, name="unit"))


def best_policy(scores: pd.DataFrame) -> str:
    """The fixed policy with the highest mean over the given units (exact ties: the first column)."""
    return stats.best_fixed_operator(scores.mean(axis=0))


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
    """The operator with the highest mean actual score over the given units, in a random order.

    :func:`simmerge.evaluate.stats.best_fixed_operator` over the operators in table order (exact ties: the first).
    The multi-way plans use it; the comparison's baseline is :func:`best_policy`, which also orders the merge.
    """
    return stats.best_fixed_operator(fixed_operator_scores(candidates).mean(axis=0))


# What the two-level bootstrap resamples items of, per unit: the scores of these choices on the unit's items.
ITEM_SERIES = ("simmerge", "best_fixed", "operator_only", "oracle", "random")


def evaluate_units(
    candidates: pd.DataFrame,
    anchors: pd.DataFrame,
    best_fixed: Mapping[str, str] | str,
    *,
    z: float = 1.0,
    items: Mapping[str, UnitItems] | None = None,
) -> pd.DataFrame:
    """Per unit of one fold: SimMerge's choice against the best fixed policy, the oracle and random choice.

    Parameters
    ----------
    candidates : pandas.DataFrame
        :func:`candidate_table` of the test units (with out-of-fold predictions).
    anchors : pandas.DataFrame
        :func:`rule_anchors` of the test rows.
    best_fixed : str or mapping
        The best fixed policy (:func:`best_policy` on the training folds), for every unit or per unit.
    z : float
        Tie band: scores within ``z`` standard errors of their difference count as tied
        (:func:`simmerge.evaluate.stats.within_noise`).
    items : mapping of str to UnitItems, optional
        The per-item outcomes of each unit's candidates (:func:`simmerge.evaluate.paired.unit_items`). A unit
        that has them is judged by paired standard errors of the differences on its items, and carries the item
        vectors of its choices for the two-level bootstrap; a unit without them by the candidates' own standard
        errors combined as if independent.

    Returns
    -------
    pandas.DataFrame
        ``unit``, ``pair`` (its cluster), ``chosen`` (``operator`` or ``operator@anchor``), ``simmerge``,
        ``best_fixed_policy``, ``best_fixed``, ``operator_only`` (SimMerge's operator in the fixed policy's order
        rule: the gain of choosing the operator alone), ``oracle_choice``, ``oracle``, ``random`` (expected score
        of a uniformly random operator, order at random), ``regret`` (oracle − SimMerge), ``difference``
        (SimMerge − best fixed) and ``difference_se``, ``top1`` (the choice is the oracle's candidate),
        ``top1_tied`` (within noise of the oracle), ``top1_chance`` and ``top1_tied_chance`` (what a uniformly
        random candidate scores on those two), ``vs_best_fixed`` (``win`` / ``tie`` / ``loss``, ties within noise),
        ``spearman`` (predicted vs actual over the unit's candidates), ``uncertainty``, ``candidates``,
        ``paired`` (whether the unit's ties were decided on its items) and ``items`` (for a paired unit: its task
        codes and the item vectors of :data:`ITEM_SERIES`; None otherwise — not for writing to a table).
    """
    fixed = fixed_operator_scores(candidates)
    policies = policy_scores(candidates, anchors)
    rows = []
    for unit, group in candidates.groupby("unit", sort=False):
        group = group.reset_index(drop=True)
        chosen = group.loc[group["predicted"].idxmax()]
        oracle = group.loc[group["actual"].idxmax()]
        policy = best_fixed[unit] if isinstance(best_fixed, Mapping) else best_fixed
        fixed_score = float(policies.at[unit, policy]) if policy in policies.columns else math.nan
        chosen_rule = None if not chosen["anchor"] else (rule_of(policy) or "random")
        operator_only = policies.at[unit, policy_of(chosen["operator"], chosen_rule)]
        difference = float(chosen["actual"] - fixed_score)
        unit_items = (items or {}).get(unit)
        if unit_items is not None and all(key in unit_items.vectors for key in _keys(group)):
            vector, variance = _policy_vector(unit_items, policy, anchors, unit)
            chosen_key, oracle_key = _key(chosen), _key(oracle)
            difference_se = difference_of(
                unit_items.vectors[chosen_key],
                vector,
                unit_items.tasks,
                unit_items.seed_variance[chosen_key] + variance,
            ).stderr
            oracle_se = {key: unit_items.difference(oracle_key, key).stderr for key in _keys(group)}
            tied_with_oracle = [
                stats.within_noise(oracle["actual"] - actual, oracle_se[key], None, z=z)
                for actual, key in zip(group["actual"], _keys(group), strict=True)
            ]
            top1_tied = tied_with_oracle[int(chosen.name)]
            series = {
                "simmerge": unit_items.vectors[chosen_key],
                "best_fixed": vector,
                "operator_only": _policy_vector(unit_items, policy_of(chosen["operator"], chosen_rule), anchors, unit)[
                    0
                ],
                "oracle": unit_items.vectors[oracle_key],
                "random": np.mean(
                    [
                        np.mean([unit_items.vectors[key] for key in _keys(own)], axis=0)
                        for _, own in group.groupby("operator", sort=False)
                    ],
                    axis=0,
                ),
            }
            unit_series = {"tasks": unit_items.tasks, "series": np.stack([series[name] for name in ITEM_SERIES])}
        else:
            fixed_se = float(group.loc[group["operator"] == _operator_of(policy), "actual_stderr"].mean())
            difference_se = stats.combined_stderr(chosen["actual_stderr"], fixed_se)
            tied_with_oracle = [
                stats.within_noise(oracle["actual"] - actual, oracle["actual_stderr"], stderr, z=z)
                for actual, stderr in zip(group["actual"], group["actual_stderr"], strict=True)
            ]
            top1_tied = stats.within_noise(
                oracle["actual"] - chosen["actual"], oracle["actual_stderr"], chosen["actual_stderr"], z=z
            )
            unit_series = None
        rows.append(
            {
                "unit": unit,
                "pair": pair_of(unit),
                "chosen": _label(chosen),
                "simmerge": float(chosen["actual"]),
                "best_fixed_policy": policy,
                "best_fixed": fixed_score,
                "operator_only": float(operator_only),
                "oracle_choice": _label(oracle),
                "oracle": float(oracle["actual"]),
                "random": float(fixed.loc[unit].mean()),
                "regret": float(oracle["actual"] - chosen["actual"]),
                "difference": difference,
                "difference_se": difference_se,
                "top1": float(chosen["actual"] == oracle["actual"]),
                "top1_tied": float(top1_tied),
                "top1_chance": float((group["actual"] == oracle["actual"]).mean()),
                "top1_tied_chance": float(np.mean(tied_with_oracle)),
                "vs_best_fixed": _versus(difference, difference_se, z),
                "spearman": float(group["predicted"].corr(group["actual"], method="spearman"))
                if group["actual"].nunique() > 1 and group["predicted"].nunique() > 1
                else math.nan,
                "uncertainty": float(chosen["uncertainty"]),
                "candidates": len(group),
                "paired": unit_series is not None,
                "items": unit_series,
            }
        )
    return pd.DataFrame(rows)


def _key(candidate: pd.Series) -> tuple[str, str]:
    return str(candidate["operator"]), str(candidate["anchor"])


def _keys(group: pd.DataFrame) -> list[tuple[str, str]]:
    return [(str(o), str(a)) for o, a in zip(group["operator"], group["anchor"], strict=True)]


def _policy_vector(items: UnitItems, policy: str, anchors: pd.DataFrame, unit: str) -> tuple[np.ndarray, float]:
    """The item vector of a fixed policy in a unit, and its seed variance; a random order is both orders' mean."""
    operator, rule = _operator_of(policy), rule_of(policy)
    if rule is None:
        return items.vectors[(operator, "")], items.seed_variance[(operator, "")]
    anchor = anchors.at[unit, rule] if unit in anchors.index else ""
    if anchor and (operator, anchor) in items.vectors:
        return items.vectors[(operator, anchor)], items.seed_variance[(operator, anchor)]
    both = [key for key in items.vectors if key[0] == operator]
    return (
        np.mean([items.vectors[key] for key in both], axis=0),
        float(np.mean([items.seed_variance[key] for key in both])),
    )


# Per-unit numbers that are averaged over the folds that test a unit.
_FOLD_MEANS = (
    "simmerge",
    "best_fixed",
    "operator_only",
    "oracle",
    "random",
    "regret",
    "difference",
    "difference_se",
    "top1",
    "top1_tied",
    "top1_chance",
    "top1_tied_chance",
    "spearman",
    "uncertainty",
)


def combine_folds(fold_units: pd.DataFrame, *, z: float = 1.0) -> pd.DataFrame:
    """One row per unit from the per-fold rows of :func:`evaluate_units` (with ``fold`` and ``family`` columns).

    A pair is tested in the fold of each of its two experts' groups (held-out checkpoints): both are honest
    decisions for it, made by models that never saw it, so the unit scores their mean — one unit, counted once
    in every mean, interval and win/tie/loss count. Numbers are averaged over the unit's folds, ``top1`` becomes
    the fraction of them whose choice was the oracle's; the labels (``fold``, ``family``, ``chosen``,
    ``best_fixed_policy``) join the distinct values with ``"; "``; ``vs_best_fixed`` is decided again on the mean
    difference and ``folds`` counts the folds.
    """
    if fold_units.empty:
        return fold_units
    grouped = fold_units.groupby("unit", sort=False)
    units = grouped[list(_FOLD_MEANS)].mean()
    for column in ("pair", "oracle_choice", "candidates"):
        units[column] = grouped[column].first()
    for column in ("fold", "family", "chosen", "best_fixed_policy"):
        units[column] = grouped[column].agg(lambda values: "; ".join(dict.fromkeys(map(str, values))))
    units["folds"] = grouped.size()
    units["paired"] = grouped["paired"].all() if "paired" in fold_units else False
    units["items"] = grouped["items"].agg(_mean_series) if "items" in fold_units else None
    units["vs_best_fixed"] = [
        _versus(difference, se, z) for difference, se in zip(units["difference"], units["difference_se"], strict=True)
    ]
    order = ["fold", "family", "pair", "chosen", "simmerge", "best_fixed_policy", "best_fixed", "operator_only"]
    order += ["oracle_choice", "oracle", "random", "regret", "difference", "difference_se", "top1", "top1_tied"]
    order += ["top1_chance", "top1_tied_chance", "vs_best_fixed", "spearman", "uncertainty", "candidates", "folds"]
    return units[[*order, "paired", "items"]].reset_index()


def _mean_series(values: pd.Series) -> dict | None:
    """The item series of one unit over its folds (the same items): their mean; None if a fold has none."""
    if any(value is None for value in values):
        return None
    values = list(values)
    return {"tasks": values[0]["tasks"], "series": np.mean([value["series"] for value in values], axis=0)}


METHODS = ("simmerge", "best_fixed", "oracle", "random")
# Means over units, each with a 95% cluster-bootstrap interval (``<name>_lo``, ``<name>_hi``).
MEAN_METRICS = (
    *METHODS,
    "best_fixed_hindsight",
    "regret",
    "difference",
    "hindsight_difference",
    "operator_gain",
    "order_gain",
    "top1",
    "top1_tied",
    "top1_chance",
    "top1_tied_chance",
    "spearman",
)
SUMMARY_KEYS = (
    "units",
    "clusters",
    *(f"{name}{suffix}" for name in (*MEAN_METRICS, "gap_closure") for suffix in ("", "_lo", "_hi")),
    "gap_closure_nan_draws",
    "spearman_nan_draws",
    "item_resampling",
    "win",
    "tie",
    "loss",
)


def summarise(units: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, z: float = 1.0) -> dict[str, float]:
    """Means over units with 95% intervals from a bootstrap that resamples clusters (expert pairs), and the
    derived metrics.

    ``difference`` = SimMerge − best fixed policy, paired within each unit; ``hindsight_difference`` the same
    against the best policy in hindsight (``best_fixed_hindsight``, when the units have it); ``operator_gain`` =
    SimMerge's operators in the baseline's order rule − best fixed, ``order_gain`` = SimMerge − that (the two add
    up to ``difference``). ``gap_closure`` = (SimMerge − best fixed) ÷ (oracle − best fixed) on the means; NaN when
    the oracle does not beat the best fixed policy (nothing to close). Bootstrap draws where a statistic is
    undefined are counted (``*_nan_draws``) and left out of its interval. Win/tie/loss count expert pairs: a pair
    scored on several tasks is decided on its mean difference against its mean standard error (tie band ``z``).
    """
    if units.empty:
        return {key: (0.0 if key in {"units", "clusters"} else math.nan) for key in SUMMARY_KEYS}
    per_unit = (*METHODS, "regret", "difference", "spearman", "top1", "top1_tied", "top1_chance", "top1_tied_chance")
    values = {name: units[name].to_numpy(float) for name in per_unit}
    values["operator_gain"] = (units["operator_only"] - units["best_fixed"]).to_numpy(float)
    values["order_gain"] = (units["simmerge"] - units["operator_only"]).to_numpy(float)
    hindsight = units["best_fixed_hindsight"] if "best_fixed_hindsight" in units else pd.Series(np.nan, units.index)
    values["best_fixed_hindsight"] = hindsight.to_numpy(float)
    values["hindsight_difference"] = (units["simmerge"] - hindsight).to_numpy(float)
    clusters = units["pair"].to_numpy(str)
    resampled = _item_draws(units, n_boot=n_boot, seed=seed)
    if resampled is not None:  # two levels: every draw also resamples each unit's items
        for name, derived in {
            **{name: resampled[name] for name in ("simmerge", "best_fixed", "oracle", "random")},
            "regret": resampled["oracle"] - resampled["simmerge"],
            "difference": resampled["simmerge"] - resampled["best_fixed"],
            "operator_gain": resampled["operator_only"] - resampled["best_fixed"],
            "order_gain": resampled["simmerge"] - resampled["operator_only"],
        }.items():
            values[name] = derived
    draws = stats.cluster_bootstrap(values, clusters, n_boot=n_boot, seed=seed)
    out: dict[str, float] = {"units": float(len(units)), "clusters": float(len(set(clusters)))}
    out["item_resampling"] = float(resampled is not None)
    for name in MEAN_METRICS:
        point = values[name] if values[name].ndim == 1 else _point(units, name)
        present = point[~np.isnan(point)]
        out[name] = float(present.mean()) if len(present) else math.nan
        out[f"{name}_lo"], out[f"{name}_hi"], nan_draws = stats.percentile_interval(draws[name])
        if name == "spearman":
            out["spearman_nan_draws"] = float(nan_draws)
    out["gap_closure"] = _gap_closure(out["simmerge"], out["best_fixed"], out["oracle"])
    closure = np.array(
        [_gap_closure(s, b, o) for s, b, o in zip(draws["simmerge"], draws["best_fixed"], draws["oracle"], strict=True)]
    )
    out["gap_closure_lo"], out["gap_closure_hi"], nan_draws = stats.percentile_interval(closure)
    out["gap_closure_nan_draws"] = float(nan_draws)
    pairs = units.groupby("pair", sort=False)[["difference", "difference_se"]].mean()
    versus = [_versus(d, se, z) for d, se in zip(pairs["difference"], pairs["difference_se"], strict=True)]
    for outcome in ("win", "tie", "loss"):
        out[outcome] = float(versus.count(outcome))
    return out


def _point(units: pd.DataFrame, name: str) -> np.ndarray:
    """The per-unit value of a metric as measured (the two-level bootstrap only widens its interval)."""
    derived = {
        "operator_gain": units["operator_only"] - units["best_fixed"],
        "order_gain": units["simmerge"] - units["operator_only"],
    }
    return (derived[name] if name in derived else units[name]).to_numpy(float)


def _item_draws(units: pd.DataFrame, *, n_boot: int, seed: int) -> dict[str, np.ndarray] | None:
    """Each unit's :data:`ITEM_SERIES` scores under ``n_boot`` resamples of its items: name → (n_boot, n_units).

    Items are resampled within each task, the same draw for all of a unit's series (so differences stay paired);
    the unit's score in a draw is the mean over tasks of the resampled task means. None unless every unit has
    its items (then the comparison stays one-level, over clusters only).
    """
    if "items" not in units or units["items"].isna().any():
        return None
    rng = np.random.default_rng([seed, 1])
    out = np.empty((len(ITEM_SERIES), n_boot, len(units)))
    for column, entry in enumerate(units["items"]):
        tasks, series = entry["tasks"], entry["series"]
        per_task = []
        for code in np.unique(tasks):
            block = series[:, tasks == code]
            draws = rng.integers(0, block.shape[1], size=(n_boot, block.shape[1]))
            per_task.append(block[:, draws].mean(axis=2))  # (series, n_boot)
        out[:, :, column] = np.mean(per_task, axis=0)
    return {name: out[index] for index, name in enumerate(ITEM_SERIES)}


def _gap_closure(simmerge: float, best_fixed: float, oracle: float) -> float:
    headroom = oracle - best_fixed
    if not headroom > 1e-12:
        return math.nan
    return float((simmerge - best_fixed) / headroom)


def _versus(difference: float, stderr: float, z: float) -> str:
    if math.isnan(difference):  # the baseline has no score on this unit (a failed merge)
        return "n/a"
    if stats.within_noise(difference, stderr, None, z=z):
        return "tie"
    return "win" if difference > 0 else "loss"


def _operator_of(policy: str) -> str:
    return policy.split("/", 1)[0]


def _label(candidate: pd.Series) -> str:
    return f"{candidate['operator']}@{candidate['anchor']}" if candidate["anchor"] else str(candidate["operator"])


__all__ = [
    "MEAN_METRICS",
    "METHODS",
    "ORDER_RULES",
    "SUMMARY_KEYS",
    "best_fixed_operator",
    "best_policy",
    "candidate_table",
    "choose",
    "combine_folds",
    "evaluate_units",
    "fixed_operator_scores",
    "pair_of",
    "policy_of",
    "policy_scores",
    "rule_anchors",
    "rule_of",
    "summarise",
    "unit_of",
    "units_of_rows",
]
