"""Predictor, selection and the comparison protocol on synthetic labels whose right answers are known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from simmerge.evaluate.compare import compare
from simmerge.evaluate.predictor import (
    build_model,
    checkpoint_folds,
    choose_family,
    fit_predictor,
    load_predictor,
    save_predictor,
    training_rows,
)
from simmerge.evaluate.selection import candidate_table, choose, evaluate_units, summarise

OPERATORS = ["linear", "ties", "slerp"]
FEATURES = ["signal", "noise1", "noise2"]


def synthetic_labels(n_experts: int = 7, *, seed: int = 0, shuffle: bool = False) -> pd.DataFrame:
    """Each unordered pair has a feature ``signal`` in (-1, 1): linear wins when it is positive, ties otherwise.

    slerp (order-sensitive) is a constant 0.45 in either order; two noise features carry nothing.
    """
    rng = np.random.default_rng(seed)
    experts = [f"e{i}" for i in range(n_experts)]
    signal = {pair: rng.uniform(-1, 1) for pair in itertools.combinations(experts, 2)}
    rows = []
    for a, b in itertools.permutations(experts, 2):
        x = signal[tuple(sorted((a, b), key=experts.index))]
        for task in ("t1", "t2"):
            noise = rng.normal(size=2)
            for operator in OPERATORS:
                score = {"linear": 0.5 + 0.4 * x, "ties": 0.5 - 0.4 * x, "slerp": 0.45}[operator]
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "task": task,
                        "operator": operator,
                        "order_sensitive": operator == "slerp",
                        "normalised": score,
                        "stderr": 0.001,
                        "parent_score_a": 1.0,
                        "parent_score_b": 1.0,
                        "merge_score": score,
                        "merge_score_stderr": 0.001,
                        "signal": x,
                        "noise1": noise[0],
                        "noise2": noise[1],
                    }
                )
    labels = pd.DataFrame(rows)
    if shuffle:
        # permute whole merges (pair x operator), keeping each merge's tasks together
        keys = labels[["a", "b", "operator"]].drop_duplicates().reset_index(drop=True)
        permuted = keys.assign(new=rng.permutation(len(keys)))
        score_of = labels.drop_duplicates(["a", "b", "operator"]).reset_index(drop=True)["merge_score"]
        mapping = {(r.a, r.b, r.operator): float(score_of[r.new]) for r in permuted.itertuples()}
        scores = [mapping[(r.a, r.b, r.operator)] for r in labels.itertuples()]
        labels["normalised"] = labels["merge_score"] = scores
    return labels


def test_each_family_fits_and_predicts():
    labels = synthetic_labels(5)
    for family in ("ridge", "per_operator_ridge", "hgb", "forest", "mlp"):
        model = build_model(family, FEATURES, OPERATORS, seed=0).fit(
            labels[[*FEATURES, "operator"]], labels["normalised"]
        )
        assert model.predict(labels[[*FEATURES, "operator"]]).shape == (len(labels),)
    with pytest.raises(ValueError, match="unknown predictor family"):
        build_model("svm", FEATURES, OPERATORS, seed=0)


def test_checkpoint_folds_hold_out_every_pair_of_the_checkpoint():
    labels = synthetic_labels(5)
    folds = dict(checkpoint_folds(labels))
    assert sorted(folds) == [f"e{i}" for i in range(5)]
    test = folds["e2"]
    assert ((labels["a"] == "e2") | (labels["b"] == "e2"))[test].all()
    assert not ((labels["a"] == "e2") | (labels["b"] == "e2"))[~test].any()


def test_candidates_merge_symmetric_orders_and_keep_ordered_ones_apart():
    labels = synthetic_labels(3).assign(predicted=lambda t: t["normalised"])
    candidates = candidate_table(labels)
    unit = candidates[candidates["unit"] == "e0|e1"]
    assert sorted(zip(unit["operator"], unit["anchor"], strict=True)) == [
        ("linear", ""),
        ("slerp", "e0"),
        ("slerp", "e1"),
        ("ties", ""),
    ]
    per_task = candidate_table(labels, per_task=True)
    assert set(per_task["unit"]) == {f"{p}@{t}" for p in ("e0|e1", "e0|e2", "e1|e2") for t in ("t1", "t2")}


def test_a_perfect_predictor_matches_the_oracle():
    labels = synthetic_labels(4).assign(predicted=lambda t: t["normalised"])
    units = evaluate_units(candidate_table(labels), "linear")
    assert (units["regret"] == 0).all() and units["top1"].all() and units["top1_tied"].all()
    summary = summarise(units, n_boot=200)
    assert summary["gap_closure"] == pytest.approx(1.0)
    assert summary["oracle"] == pytest.approx(summary["simmerge"])
    assert summary["gap_closure_lo"] <= 1.0 <= summary["gap_closure_hi"] + 1e-12


def test_random_is_the_mean_over_operators_with_order_at_random():
    labels = synthetic_labels(3).assign(predicted=0.0)
    units = evaluate_units(candidate_table(labels), "linear").set_index("unit")
    x = labels[(labels["a"] == "e0") & (labels["b"] == "e1")]["signal"].iloc[0]
    assert units.loc["e0|e1", "random"] == pytest.approx(((0.5 + 0.4 * x) + (0.5 - 0.4 * x) + 0.45) / 3)


def test_family_choice_prefers_a_model_that_can_express_the_interaction():
    rows = training_rows(synthetic_labels(6))
    family, table = choose_family(rows, FEATURES, OPERATORS, seed=0, families=["ridge", "per_operator_ridge"])
    # plain ridge adds the operator as an offset and cannot flip the winner with the signal
    assert family == "per_operator_ridge"
    scores = table.set_index("family")["selected_score"]
    assert scores["per_operator_ridge"] > scores["ridge"]


def test_compare_selects_correctly_on_held_out_checkpoints():
    units, candidates, folds, summary = compare(
        synthetic_labels(7),
        FEATURES,
        OPERATORS,
        protocol="checkpoint",
        seed=0,
        families=["per_operator_ridge", "ridge"],
    )
    assert len(folds) == 7 and set(units["fold"]) == {f"e{i}" for i in range(7)}
    # every unordered pair is tested exactly once per held-out member: 2 folds x 21 pairs, 4 candidates each
    assert len(candidates) == 2 * 21 * 4 and candidates["predicted"].notna().all()
    assert summary["top1_tied"] >= 0.9
    assert summary["gap_closure"] > 0.8
    assert summary["win"] > summary["loss"]


def test_shuffled_labels_drive_gap_closure_to_nothing():
    _, _, _, summary = compare(
        synthetic_labels(7, shuffle=True),
        FEATURES,
        OPERATORS,
        protocol="checkpoint",
        seed=0,
        families=["per_operator_ridge", "ridge"],
    )
    assert summary["gap_closure"] < 0.25


def test_best_fixed_operator_is_chosen_without_the_test_fold():
    # every pair has linear 0.6 / ties 0.5, except the pairs of e0, where ties scores 0.99: over all data ties is
    # the best fixed operator, but a fold that holds out e0 must pick linear from its training pairs alone
    labels = synthetic_labels(4)
    labels["normalised"] = np.where(labels["operator"] == "linear", 0.6, 0.5)
    with_e0 = (labels["a"] == "e0") | (labels["b"] == "e0")
    labels.loc[with_e0 & (labels["operator"] == "ties"), "normalised"] = 0.99
    labels["merge_score"] = labels["normalised"]
    _, _, folds, _ = compare(labels, FEATURES, OPERATORS, protocol="checkpoint", seed=0, families=["ridge"])
    assert folds.set_index("fold").loc["e0", "best_fixed_operator"] == "linear"
    assert folds.set_index("fold").loc["e1", "best_fixed_operator"] == "ties"


def test_leave_one_task_out_scores_pair_task_units():
    units, candidates, folds, summary = compare(
        synthetic_labels(5), FEATURES, OPERATORS, protocol="task", seed=0, families=["per_operator_ridge"]
    )
    assert set(folds["fold"]) == {"t1", "t2"}
    assert units["unit"].str.endswith(("@t1", "@t2")).all()
    assert summary["protocol"] == "task" and summary["gap_closure"] > 0.8


def test_predictor_round_trips_through_skops_and_refuses_a_mismatch(tmp_path):
    rows = training_rows(synthetic_labels(5))
    predictor = fit_predictor(rows, FEATURES, OPERATORS, family="hgb", seed=0)
    path = tmp_path / "model.skops"
    save_predictor(predictor, path)
    loaded = load_predictor(path, feature_columns=FEATURES, operators=OPERATORS)
    before, after = predictor.predict(rows), loaded.predict(rows)
    assert np.array_equal(before["predicted"], after["predicted"])
    assert np.array_equal(before["uncertainty"], after["uncertainty"]) and (after["uncertainty"] >= 0).all()
    assert b"pickle" not in path.read_bytes()[:2]  # a zip archive, not a pickle stream
    with pytest.raises(ValueError, match="features differ"):
        load_predictor(path, feature_columns=[*FEATURES, "extra"], operators=OPERATORS)
    with pytest.raises(ValueError, match="operators differ"):
        load_predictor(path, feature_columns=FEATURES, operators=["linear"])
    with pytest.raises(ValueError, match="not in the predictor's training grid"):
        loaded.predict(rows.assign(operator="della"))


def test_choice_per_unit_is_the_argmax_of_predictions():
    labels = synthetic_labels(3).assign(predicted=lambda t: np.where(t["operator"] == "slerp", 1.0, 0.0))
    chosen = choose(candidate_table(labels))
    assert (chosen["operator"] == "slerp").all() and len(chosen) == 3
    assert not math.isnan(chosen["predicted"].iloc[0])


def test_summary_of_no_units_has_every_key():
    from simmerge.evaluate.selection import SUMMARY_KEYS

    empty = summarise(pd.DataFrame())
    assert empty["units"] == 0 and all(math.isnan(empty[key]) for key in SUMMARY_KEYS)
    full = summarise(evaluate_units(candidate_table(synthetic_labels(3).assign(predicted=0.0)), "linear"), n_boot=100)
    assert set(SUMMARY_KEYS) <= set(full)
