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

from simmerge.evaluate import selection
from simmerge.evaluate.selection import (
    SUMMARY_KEYS,
    best_fixed_operator,
    best_policy,
    candidate_table,
    choose,
    combine_folds,
    fixed_operator_scores,
    policy_scores,
    rule_anchors,
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


def evaluate_units(candidates: pd.DataFrame, best_fixed, *, z: float = 1.0, rows: pd.DataFrame | None = None):
    """:func:`selection.evaluate_units` with the order rules' anchors of ``rows`` (none given: every rule random)."""
    anchors = rule_anchors(rows) if rows is not None else pd.DataFrame(index=candidates["unit"].unique())
    for rule in selection.ORDER_RULES:
        if rule not in anchors:
            anchors[rule] = ""
    return selection.evaluate_units(candidates, anchors, best_fixed, z=z)


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
    assert units["top1"].to_dict() == {"a|b": 0.0, "a|c": 0.0, "b|c": 1.0}
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
    assert units["best_fixed_policy"].to_dict() == {"a|b": "ties", "a|c": "linear", "b|c": "ties"}
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
    assert empty["units"] == empty["clusters"] == 0
    assert all(math.isnan(empty[key]) for key in SUMMARY_KEYS if key not in {"units", "clusters"})


# ---- fixed policies: an operator and an order rule a user can apply without labels ---------------------------


def ordered_rows() -> pd.DataFrame:
    """Two pairs where slerp merged onto the better expert (a, then d) scores 0.9 and the other order 0.3.

    a has the larger task vector in a|b, d the smaller one in c|d; linear scores 0.6 everywhere."""
    rows = label_rows(
        {"a|b": {"linear": 0.6, "slerp": {"a": 0.9, "b": 0.3}}, "c|d": {"linear": 0.6, "slerp": {"c": 0.3, "d": 0.9}}}
    )
    score = {"a": 0.8, "b": 0.4, "c": 0.2, "d": 0.7}
    norm = {"a": 2.0, "b": 1.0, "c": 3.0, "d": 1.5}
    rows["parent_score_a"], rows["parent_score_b"] = rows["a"].map(score), rows["b"].map(score)
    rows["tv_rel_norm_a"], rows["tv_rel_norm_b"] = rows["a"].map(norm), rows["b"].map(norm)
    return rows


def test_each_order_rule_names_its_anchor_and_falls_back_to_random_when_it_cannot_tell():
    rows = ordered_rows()
    anchors = rule_anchors(rows)
    assert anchors.loc["a|b"].to_dict() == {"random": "", "larger_norm": "a", "smaller_norm": "b", "better_parent": "a"}
    assert anchors.loc["c|d"].to_dict() == {"random": "", "larger_norm": "c", "smaller_norm": "d", "better_parent": "d"}
    rows["parent_score_b"] = rows["parent_score_a"] = 0.5  # equal parents
    assert (rule_anchors(rows)["better_parent"] == "").all()
    assert (rule_anchors(rows.drop(columns=["tv_rel_norm_a", "tv_rel_norm_b"]))["larger_norm"] == "").all()


def test_the_best_fixed_policy_learns_the_order_rule_that_random_order_hides():
    rows = ordered_rows()
    scores = policy_scores(candidate_table(rows), rule_anchors(rows))
    assert list(scores.columns) == [
        "linear",
        "slerp/random",
        "slerp/larger_norm",
        "slerp/smaller_norm",
        "slerp/better_parent",
    ]
    assert scores.mean(axis=0).to_dict() == pytest.approx(
        {
            "linear": 0.6,
            "slerp/random": 0.6,
            "slerp/larger_norm": 0.6,
            "slerp/smaller_norm": 0.6,
            "slerp/better_parent": 0.9,
        }
    )
    assert best_fixed_operator(candidate_table(rows)) == "linear"  # in a random order slerp only ties linear
    assert best_policy(scores) == "slerp/better_parent"


def test_the_gain_over_the_best_fixed_policy_splits_into_operator_and_order():
    rows = ordered_rows()
    # SimMerge picks slerp anchored on the worse expert in a|b, and linear in c|d
    rows["predicted"] = np.where(
        (rows["operator"] == "slerp") & (rows["a"] == "b"), 1.0, np.where(rows["operator"] == "linear", 0.5, 0.0)
    )
    candidates = candidate_table(rows)
    units = evaluate_units(candidates, "linear", rows=rows).set_index("unit")
    assert units["chosen"].to_dict() == {"a|b": "slerp@b", "c|d": "linear"}
    # the baseline (linear) has no order rule, so SimMerge's operator alone is scored in a random order
    assert units["operator_only"].to_dict() == pytest.approx({"a|b": 0.6, "c|d": 0.6})
    against_ordered = evaluate_units(candidates, "slerp/better_parent", rows=rows).set_index("unit")
    assert against_ordered["best_fixed"].to_dict() == pytest.approx({"a|b": 0.9, "c|d": 0.9})
    assert against_ordered["operator_only"].to_dict() == pytest.approx({"a|b": 0.9, "c|d": 0.6})
    summary = summarise(against_ordered.reset_index(), n_boot=100)
    assert summary["operator_gain"] == pytest.approx(-0.15)  # (0 − 0.3) / 2
    assert summary["order_gain"] == pytest.approx(-0.3)  # (0.3 − 0.9) / 2
    assert summary["operator_gain"] + summary["order_gain"] == pytest.approx(summary["difference"])
    assert summary["difference"] == pytest.approx(summary["simmerge"] - summary["best_fixed"])


def test_the_chance_level_of_top1_is_what_a_random_candidate_scores():
    rows = label_rows({"a|b": {"linear": 0.50, "ties": 0.52, "della": 0.9}}, stderr=0.01)
    units = evaluate_units(candidate_table(predicted(rows)), "linear", z=2.0)
    assert units["top1_chance"].item() == pytest.approx(1 / 3)
    assert units["top1_tied_chance"].item() == pytest.approx(1 / 3)  # only della is within noise of della
    close = label_rows({"a|b": {"linear": 0.50, "ties": 0.52, "della": 0.525}}, stderr=0.01)
    units = evaluate_units(candidate_table(predicted(close)), "linear", z=2.0)
    assert units["top1_tied_chance"].item() == pytest.approx(1.0)


# ---- one unit, counted once -----------------------------------------------------------------------------------


def test_a_unit_tested_in_two_folds_is_one_unit_scored_on_the_mean_of_both_decisions():
    rows = label_rows({"a|b": {"linear": 0.9, "ties": 0.5}, "a|c": {"linear": 0.8, "ties": 0.6}})
    right = evaluate_units(candidate_table(predicted(rows)), "ties").assign(fold="a", family="ridge")
    wrong = evaluate_units(candidate_table(predicted(rows, {"linear": 0.0, "ties": 1.0})), "ties")
    wrong = wrong[wrong["unit"] == "a|b"].assign(fold="b", family="hgb")
    units = combine_folds(pd.concat([right, wrong], ignore_index=True)).set_index("unit")
    assert list(units.index) == ["a|b", "a|c"]
    assert units.loc["a|b", ["simmerge", "top1", "folds"]].tolist() == [pytest.approx(0.7), 0.5, 2]
    assert units.loc["a|b", ["chosen", "fold", "family"]].tolist() == ["linear; ties", "a; b", "ridge; hgb"]
    assert units.loc["a|b", "vs_best_fixed"] == "win"  # mean difference 0.2 against ties' 0.5
    assert units.loc["a|c", "folds"] == 1
    assert summarise(units.reset_index(), n_boot=50)["units"] == 2


def test_units_of_one_pair_are_resampled_together():
    rows = label_rows(
        {"a|b": {"linear": 0.9, "ties": 0.5}, "a|c": {"linear": 0.4, "ties": 0.6}}, tasks=("t1", "t2", "t3")
    )
    units = evaluate_units(candidate_table(predicted(rows), per_task=True), "linear")
    assert list(units["pair"]) == ["a|b"] * 3 + ["a|c"] * 3
    summary = summarise(units, n_boot=400, seed=1)
    assert (summary["units"], summary["clusters"]) == (6, 2)
    # two clusters: every draw is {a|b, a|b}, {a|b, a|c} or {a|c, a|c}, so the interval spans the two pairs' means
    assert (summary["simmerge_lo"], summary["simmerge_hi"]) == (pytest.approx(0.6), pytest.approx(0.9))
    independent = summarise(units.assign(pair=units["unit"]), n_boot=400, seed=1)
    assert independent["simmerge_hi"] - independent["simmerge_lo"] < summary["simmerge_hi"] - summary["simmerge_lo"]


def test_undefined_bootstrap_draws_are_counted_not_dropped():
    # one pair where the oracle beats the best fixed operator, one where it does not: every draw of only the
    # second leaves no gap to close
    rows = label_rows({"a|b": {"linear": 0.9, "ties": 0.5}, "a|c": {"linear": 0.8, "ties": 0.6}})
    units = evaluate_units(candidate_table(predicted(rows)), "ties")
    units.loc[units["unit"] == "a|c", ["best_fixed", "oracle", "simmerge"]] = 0.8
    summary = summarise(units, n_boot=400, seed=0)
    assert 50 < summary["gap_closure_nan_draws"] < 150  # about a quarter of the draws hold a|c twice
    assert math.isfinite(summary["gap_closure_lo"])
    assert summary["spearman_nan_draws"] == 0


def test_win_tie_loss_count_expert_pairs_not_pair_task_units():
    # a|b wins on all three tasks, a|c ties (same scores): two pairs, however many tasks each is scored on
    rows = label_rows(
        {"a|b": {"linear": 0.9, "ties": 0.5}, "a|c": {"linear": 0.6, "ties": 0.6}}, tasks=("t1", "t2", "t3")
    )
    units = evaluate_units(candidate_table(predicted(rows), per_task=True), "ties")
    assert list(units["vs_best_fixed"]) == ["win"] * 3 + ["tie"] * 3
    summary = summarise(units, n_boot=50)
    assert (summary["win"], summary["tie"], summary["loss"]) == (1, 1, 0)
