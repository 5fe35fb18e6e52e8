"""Tests of simmerge.evaluate.selection: candidates, choices and their scores against known answers.

Three experts a, b, c and two symmetric operators whose scores are chosen so that every number is known: linear
wins on a|b and a|c, ties wins on b|c. Over the three pairs linear averages 0.7 and ties 0.6, so linear is the
best fixed operator; the oracle averages 0.8.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from label_rows import label_rows

from simmerge.evaluate.selection import (
    SUMMARY_KEYS,
    best_fixed_operator,
    candidate_table,
    choose,
    evaluate_units,
    fixed_operator_scores,
    summarise,
    unit_of,
)

SCORES = {
    "a|b": {"linear": 0.9, "ties": 0.5},
    "a|c": {"linear": 0.8, "ties": 0.6},
    "b|c": {"linear": 0.4, "ties": 0.7},
}


def predicted(rows: pd.DataFrame, by_operator: dict[str, float] | None = None) -> pd.DataFrame:
    """The rows with a ``predicted`` column: the actual score (a perfect predictor) or a constant per operator."""
    if by_operator is None:
        return rows.assign(predicted=rows["merge_score"])
    return rows.assign(predicted=rows["operator"].map(by_operator))


def test_a_unit_is_the_unordered_pair():
    assert unit_of("b", "a") == unit_of("a", "b") == "a|b"


def test_a_symmetric_candidate_averages_both_orders_and_an_ordered_one_keeps_its_anchor():
    rows = label_rows({"a|b": {"linear": 0.5, "slerp": {"a": 0.2, "b": 0.6}}})
    rows["predicted"] = [0.1, 0.3, 0.7, 0.2]  # order (a, b): linear, slerp; then (b, a): linear, slerp
    table = candidate_table(rows).set_index(["operator", "anchor"])
    assert sorted(table.index) == [("linear", ""), ("slerp", "a"), ("slerp", "b")]
    assert table.loc[("linear", ""), "predicted"] == pytest.approx((0.1 + 0.7) / 2)
    assert table.loc[("slerp", "a"), ["predicted", "actual"]].tolist() == [0.3, 0.2]
    assert table.loc[("slerp", "b"), ["predicted", "actual"]].tolist() == [0.2, 0.6]
    assert (table["actual_stderr"] == 0.001).all()
    assert table["uncertainty"].isna().all()  # no uncertainty column in, none out


def test_per_task_candidates_score_the_normalised_score_with_its_stderr_over_the_better_parent():
    rows = label_rows({"a|b": {"linear": 0.5}}, tasks=("t1", "t2"))
    rows["parent_score_a"], rows["parent_score_b"] = 0.5, 0.25
    rows.loc[rows["task"] == "t2", "normalised"] = [0.9, 0.9]
    rows.loc[rows["task"] == "t2", "stderr"] = [0.02, 0.02]
    table = candidate_table(rows, per_task=True).set_index("unit")
    assert list(table.index) == ["a|b@t1", "a|b@t2"]
    assert table.loc["a|b@t2", "actual"] == 0.9
    assert table.loc["a|b@t2", "actual_stderr"] == pytest.approx(0.02 / 0.5)


def test_a_candidate_without_a_score_is_left_out():
    rows = label_rows({"a|b": {"linear": 0.5}, "a|c": {"linear": 0.6}}, tasks=("t1", "t2"))
    rows.loc[(rows["task"] == "t2") & rows["b"].isin(["c"]), "normalised"] = np.nan
    rows.loc[(rows["task"] == "t2") & rows["a"].isin(["c"]), "normalised"] = np.nan
    per_task = candidate_table(rows, per_task=True)
    assert list(per_task["unit"]) == ["a|b@t1", "a|b@t2", "a|c@t1"]


def test_the_best_fixed_operator_has_the_highest_mean_over_units():
    candidates = candidate_table(label_rows(SCORES))
    means = fixed_operator_scores(candidates).mean(axis=0)
    assert means.to_dict() == {"linear": pytest.approx(0.7), "ties": pytest.approx(0.6)}
    assert best_fixed_operator(candidates) == "linear"


def test_an_order_sensitive_operator_counts_as_fixed_in_a_random_order():
    candidates = candidate_table(label_rows({"a|b": {"linear": 0.5, "slerp": {"a": 0.2, "b": 0.9}}}))
    assert fixed_operator_scores(candidates).loc["a|b", "slerp"] == pytest.approx(0.55)
    assert best_fixed_operator(candidates) == "slerp"


def test_the_choice_is_the_highest_prediction_and_a_tie_goes_to_the_first_candidate():
    candidates = candidate_table(predicted(label_rows(SCORES), {"linear": 0.3, "ties": 0.4}))
    assert list(choose(candidates)["operator"]) == ["ties", "ties", "ties"]
    tied = candidate_table(predicted(label_rows(SCORES), {"linear": 0.5, "ties": 0.5}))
    assert list(choose(tied)["operator"]) == ["linear", "linear", "linear"]  # linear comes first in the table
    assert choose(tied.iloc[::-1])["operator"].tolist() == ["ties", "ties", "ties"]


def test_a_perfect_predictor_reaches_the_oracle_and_closes_the_whole_gap():
    units = evaluate_units(candidate_table(predicted(label_rows(SCORES))), "linear").set_index("unit")
    assert units["chosen"].to_dict() == {"a|b": "linear", "a|c": "linear", "b|c": "ties"}
    assert (units["chosen"] == units["oracle_choice"]).all()
    assert units["simmerge"].to_dict() == {"a|b": 0.9, "a|c": 0.8, "b|c": 0.7}
    assert units["best_fixed"].to_dict() == {"a|b": 0.9, "a|c": 0.8, "b|c": 0.4}
    assert units["random"].to_dict() == {"a|b": 0.7, "a|c": 0.7, "b|c": 0.55}
    assert (units["regret"] == 0).all() and units["top1"].all() and units["top1_tied"].all()
    assert units["vs_best_fixed"].to_dict() == {"a|b": "tie", "a|c": "tie", "b|c": "win"}
    summary = summarise(units.reset_index(), n_boot=200)
    assert summary["units"] == 3
    assert summary["simmerge"] == pytest.approx(0.8) and summary["oracle"] == pytest.approx(0.8)
    assert summary["best_fixed"] == pytest.approx(0.7) and summary["random"] == pytest.approx(0.65)
    assert summary["gap_closure"] == pytest.approx(1.0)
    assert (summary["win"], summary["tie"], summary["loss"]) == (1, 2, 0)


def test_always_choosing_the_worse_operator_opens_the_gap_the_other_way():
    candidates = candidate_table(predicted(label_rows(SCORES), {"linear": 0.0, "ties": 1.0}))
    units = evaluate_units(candidates, "linear").set_index("unit")
    assert units["vs_best_fixed"].to_dict() == {"a|b": "loss", "a|c": "loss", "b|c": "win"}
    assert units["regret"].to_dict() == {"a|b": pytest.approx(0.4), "a|c": pytest.approx(0.2), "b|c": 0.0}
    assert units["top1"].to_dict() == {"a|b": False, "a|c": False, "b|c": True}
    summary = summarise(units.reset_index(), n_boot=200)
    assert summary["simmerge"] == pytest.approx(0.6)
    assert summary["gap_closure"] == pytest.approx(-1.0)  # (0.6 − 0.7) ÷ (0.8 − 0.7)
    assert summary["top1"] == pytest.approx(1 / 3) and summary["regret"] == pytest.approx(0.2)


def test_one_operator_best_everywhere_leaves_no_gap_to_close():
    dominant = {unit: {"linear": scores["linear"], "ties": scores["linear"] - 0.3} for unit, scores in SCORES.items()}
    candidates = candidate_table(predicted(label_rows(dominant)))
    assert best_fixed_operator(candidates) == "linear"
    units = evaluate_units(candidates, best_fixed_operator(candidates))
    assert (units["chosen"] == "linear").all() and (units["oracle_choice"] == "linear").all()
    assert (units["simmerge"] == units["oracle"]).all() and (units["oracle"] == units["best_fixed"]).all()
    summary = summarise(units, n_boot=200)
    # The oracle does not beat the best fixed operator: there is no gap, and its closure is undefined.
    assert math.isnan(summary["gap_closure"]) and math.isnan(summary["gap_closure_lo"])
    assert (summary["win"], summary["tie"], summary["loss"]) == (0, 3, 0)


def test_scores_within_the_noise_band_tie():
    rows = label_rows({"a|b": {"linear": 0.50, "ties": 0.52}}, stderr=0.01)
    candidates = candidate_table(predicted(rows, {"linear": 0.0, "ties": 1.0}))
    # 0.02 apart with a combined standard error of 0.01 × √2 ≈ 0.014
    assert evaluate_units(candidates, "linear", z=2.0)["vs_best_fixed"].item() == "tie"
    assert evaluate_units(candidates, "linear", z=1.0)["vs_best_fixed"].item() == "win"
    wrong = candidate_table(predicted(rows, {"linear": 1.0, "ties": 0.0}))
    assert not evaluate_units(wrong, "ties", z=2.0)["top1"].item()
    assert evaluate_units(wrong, "ties", z=2.0)["top1_tied"].item()
    assert not evaluate_units(wrong, "ties", z=1.0)["top1_tied"].item()


def test_the_best_fixed_operator_can_be_given_per_unit():
    candidates = candidate_table(predicted(label_rows(SCORES)))
    units = evaluate_units(candidates, {"a|b": "ties", "a|c": "linear", "b|c": "ties"}).set_index("unit")
    assert units["best_fixed_operator"].to_dict() == {"a|b": "ties", "a|c": "linear", "b|c": "ties"}
    assert units["best_fixed"].to_dict() == {"a|b": 0.5, "a|c": 0.8, "b|c": 0.7}


def test_the_spearman_correlation_is_per_unit_and_undefined_for_constant_predictions():
    rows = label_rows({"a|b": {"linear": 0.9, "ties": 0.5, "della": 0.1}})
    good = evaluate_units(candidate_table(predicted(rows)), "linear")
    backwards = evaluate_units(candidate_table(predicted(rows, {"linear": 0.0, "ties": 0.5, "della": 1.0})), "linear")
    flat = evaluate_units(candidate_table(predicted(rows, {"linear": 0.5, "ties": 0.5, "della": 0.5})), "linear")
    assert good["spearman"].item() == pytest.approx(1.0)
    assert backwards["spearman"].item() == pytest.approx(-1.0)
    assert math.isnan(flat["spearman"].item())


def test_the_bootstrap_interval_brackets_the_mean_and_collapses_on_identical_units():
    units = evaluate_units(candidate_table(predicted(label_rows(SCORES))), "linear")
    summary = summarise(units, n_boot=500, seed=3)
    for name in ("simmerge", "best_fixed", "oracle", "random", "regret", "top1", "top1_tied", "gap_closure"):
        assert summary[f"{name}_lo"] <= summary[name] + 1e-12 and summary[name] <= summary[f"{name}_hi"] + 1e-12
    assert summarise(units, n_boot=500, seed=3) == summary  # seeded
    same = pd.concat([units.iloc[[0]]] * 4, ignore_index=True)
    repeated = summarise(same, n_boot=100)
    assert repeated["simmerge_lo"] == repeated["simmerge"] == repeated["simmerge_hi"] == 0.9


def test_a_summary_has_every_key_with_or_without_units():
    units = evaluate_units(candidate_table(predicted(label_rows(SCORES))), "linear")
    assert set(SUMMARY_KEYS) <= set(summarise(units, n_boot=50))
    empty = summarise(pd.DataFrame())
    assert empty["units"] == 0 and all(math.isnan(empty[key]) for key in SUMMARY_KEYS)
