"""A predictor trained on one run, applied unchanged to another run's catalog (``simmerge transfer``).

The source run's fitted predictor (``predictor/model.skops``, trained on all of its labels) chooses an operator
and order for every pair of the target run from the target's own pair features; the target's labels score the
choices with the comparison's metrics (:func:`simmerge.evaluate.selection.evaluate_units`, paired on the target's
label items when it has them, one unit per unordered pair). The "best fixed" baseline is reported twice: the policy
that was best on the source's labels (what a user knows when they switch catalogs) and the target's best policy in
hindsight (an upper bound no user has). Nothing of the target's labels reaches the predictor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simmerge.evaluate.paired import unit_items
from simmerge.evaluate.predictor import OPERATOR, SimMergePredictor, load_predictor, training_rows
from simmerge.evaluate.selection import (
    best_policy,
    candidate_table,
    combine_folds,
    evaluate_units,
    policy_scores,
    rule_anchors,
    summarise,
    units_of_rows,
)

BASELINES = {"source": "best fixed policy of the source run", "hindsight": "best fixed policy of the target run"}


def source_predictor(
    model: str | os.PathLike,
    cv: str | os.PathLike,
    source_labels: pd.DataFrame,
    features: Sequence[str] | None,
    *,
    seed: int,
) -> SimMergePredictor:
    """The predictor a transfer applies: the source run's fitted one (``model``, when ``features`` is None), or the
    family its cross-validation chose (``cv``) fitted again on ``source_labels`` with these feature columns."""
    if features is None:
        return load_predictor(model)
    family = json.loads(Path(cv).read_text(encoding="utf-8"))["family"]
    return refit_predictor(source_labels, features, family=family, seed=seed)


def refit_predictor(
    source_labels: pd.DataFrame, features: Sequence[str], *, family: str, seed: int
) -> SimMergePredictor:
    """The source run's predictor fitted again on a subset of its features (e.g. the transfer-safe set of
    :mod:`simmerge.features.scale`): the same family (the one its cross-validation chose), labels and seed."""
    rows = training_rows(source_labels)
    missing = [column for column in features if column not in rows.columns]
    if missing:
        raise ValueError(f"the source run's labels lack feature {missing[0]!r} ({len(missing)} missing)")
    operators = list(dict.fromkeys(rows[OPERATOR]))
    model = SimMergePredictor(family=family, operators=operators, random_state=seed)
    return model.fit(rows[[*features, OPERATOR]], rows["normalised"])


def transfer(
    predictor: SimMergePredictor,
    source_labels: pd.DataFrame,
    target_labels: pd.DataFrame,
    *,
    target_items: pd.DataFrame | None = None,
    z: float = 1.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score a source run's predictor on a target run's pairs.

    Parameters
    ----------
    predictor : SimMergePredictor
        Fitted on the source run's labels (:func:`simmerge.evaluate.predictor.load_predictor`).
    source_labels, target_labels : pandas.DataFrame
        The two runs' labels tables; the source's only choose the source's best fixed policy.
    target_items : pandas.DataFrame, optional
        The target's label items: ties and intervals are then paired over items (two-level bootstrap).
    z, n_boot, seed
        Tie band, bootstrap resamples and their seed, as in the comparison.

    Returns
    -------
    (units, summary)
        ``units``: one row per unordered pair of the target, as the comparison's, against the source's best
        fixed policy, plus ``best_fixed_hindsight``. ``summary``: per baseline (``source``, ``hindsight``) the
        comparison's summary (:func:`simmerge.evaluate.selection.summarise`), both policies, the operators the
        target was restricted to and those it has that the predictor never saw.

    Raises
    ------
    ValueError
        If the target lacks a feature the predictor was fitted on, or shares no operator with it.
    """
    features = [column for column in predictor.feature_names_in_ if column != OPERATOR]
    missing = [column for column in features if column not in target_labels.columns]
    if missing:
        raise ValueError(
            f"the target run's labels lack {len(missing)} feature(s) the predictor was fitted on (first: "
            f"{missing[0]!r}); both runs need the same feature definitions (features.* settings and code version)"
        )
    known = list(predictor.operators_)
    unseen = sorted(set(target_labels["operator"]) - set(known))
    shared = [op for op in known if op in set(target_labels["operator"])]
    if not shared:
        raise ValueError(f"the target run shares no operator with the predictor's ({', '.join(known)})")
    target_rows = training_rows(target_labels[target_labels["operator"].isin(shared)]).reset_index(drop=True)
    source_rows = training_rows(source_labels[source_labels["operator"].isin(shared)]).reset_index(drop=True)
    predicted = predictor.predict(target_rows[[*features, OPERATOR]])
    candidates = candidate_table(target_rows.assign(predicted=predicted))
    anchors = rule_anchors(target_rows)
    by_unit = unit_items(target_rows, target_items, units_of_rows(target_rows)) if target_items is not None else None
    policies = {
        "source": best_policy(policy_scores(candidate_table(source_rows), rule_anchors(source_rows))),
        "hindsight": best_policy(policy_scores(candidate_table(target_rows), anchors)),
    }
    summary: dict[str, Any] = {
        "operators": shared,
        "operators_unseen_by_predictor": unseen,
        "policies": policies,
        "baselines": BASELINES,
    }
    results = {
        baseline: combine_folds(
            evaluate_units(candidates, anchors, policy, z=z, items=by_unit).assign(fold="transfer", family=""), z=z
        )
        for baseline, policy in policies.items()
    }
    hindsight = results["hindsight"].set_index("unit")["best_fixed"]
    for baseline, units in results.items():
        units["best_fixed_hindsight"] = units["unit"].map(hindsight)
        summary[baseline] = summarise(units, n_boot=n_boot, seed=seed, z=z)
    units = results["source"]
    return units.drop(columns=["items"], errors="ignore"), summary


def transfer_table(summary: dict[str, Any], keys: Sequence[str] = ("simmerge", "best_fixed", "oracle")) -> pd.DataFrame:
    """The headline of a transfer under each baseline, one row each: the policy, the mean scores, gap closure with
    its interval, top-1 within noise and W/T/L."""
    rows = []
    for baseline, policy in summary["policies"].items():
        numbers = summary[baseline]
        rows.append(
            {
                "baseline": BASELINES[baseline],
                "policy": policy,
                **{key: numbers.get(key) for key in keys},
                "gap_closure": numbers.get("gap_closure"),
                "gap_closure_lo": numbers.get("gap_closure_lo"),
                "gap_closure_hi": numbers.get("gap_closure_hi"),
                "top1_tied": numbers.get("top1_tied"),
                "win": numbers.get("win"),
                "tie": numbers.get("tie"),
                "loss": numbers.get("loss"),
                "units": numbers.get("units"),
            }
        )
    return pd.DataFrame(rows)


__all__ = ["refit_predictor", "BASELINES", "transfer", "transfer_table"]
