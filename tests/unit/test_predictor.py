"""The predictor, its grouped splits and the family choice on synthetic labels whose right answers are known."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from simmerge.core.config import PREDICTOR_FAMILIES
from simmerge.evaluate.predictor import (
    HeldOutCheckpointSplit,
    HeldOutTaskAndCheckpointSplit,
    HeldOutTaskSplit,
    SelectedScorer,
    SimMergePredictor,
    choose_family,
    cv_predictions,
    fit_predictor,
    load_predictor,
    protocol_split,
    save_predictor,
    training_rows,
)

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


def inputs(labels: pd.DataFrame) -> pd.DataFrame:
    return labels[[*FEATURES, "operator"]]


def test_each_family_fits_and_predicts():
    labels = synthetic_labels(5)
    for family in PREDICTOR_FAMILIES:
        model = SimMergePredictor(family=family, operators=OPERATORS, random_state=0)
        assert model.fit(inputs(labels), labels["normalised"]) is model
        assert model.predict(inputs(labels)).shape == (len(labels),)
    with pytest.raises(ValueError, match="unknown predictor family"):
        SimMergePredictor(family="svm").fit(inputs(labels), labels["normalised"])


# The generic checks fit on numeric arrays; the predictor takes a DataFrame with an operator column and refuses
# anything else with a TypeError, so every check that fits (or expects a ValueError for bad data, which the
# TypeError pre-empts) fails for that reason alone. They run as strict expected failures: a check that starts to
# pass fails this test, so the list cannot go stale. What they test is covered on DataFrames below
# (test_estimator_contract_on_dataframes). The checks that do not fit (cloning, repr, tags, get_params/set_params,
# nothing set in __init__, unfitted predict raises NotFittedError, default-constructible) pass.
NEEDS_A_DATAFRAME = "fits on a numeric array; the predictor takes a DataFrame with an 'operator' column"
CHECKS_THAT_FIT_ON_ARRAYS = (
    "check_complex_data",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimator_sparse_tag",
    "check_estimators_dtypes",
    "check_estimators_empty_data_messages",
    "check_estimators_fit_returns_self",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit1d",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
    "check_regressor_data_not_an_array",
    "check_regressors_int",
    "check_regressors_no_decision_function",
    "check_regressors_train",
    "check_requires_y_none",
    "check_supervised_y_2d",
    "check_supervised_y_no_nan",
)


@parametrize_with_checks(
    [SimMergePredictor(family="ridge", random_state=0)],
    expected_failed_checks=lambda estimator: dict.fromkeys(CHECKS_THAT_FIT_ON_ARRAYS, NEEDS_A_DATAFRAME),
    xfail_strict=True,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_estimator_contract_on_dataframes():
    labels = synthetic_labels(4)
    X, y = inputs(labels), labels["normalised"].to_numpy()  # noqa: N806 - scikit-learn's names
    predictor = SimMergePredictor(family="hgb", operators=OPERATORS, random_state=0)
    with pytest.raises(NotFittedError):
        predictor.predict(X)
    params = predictor.get_params()
    state = dict(vars(predictor.fit(X, y, groups=labels[["a", "b"]])))
    assert predictor.get_params() == params  # fit leaves the parameters as given
    assert {"model_", "fold_models_", "operators_", "n_features_in_", "feature_names_in_"} <= set(vars(predictor))
    assert predictor.n_features_in_ == 4 and list(predictor.feature_names_in_) == [*FEATURES, "operator"]
    assert len(predictor.fold_models_) == 4  # one per held-out checkpoint
    predicted = predictor.predict(X)
    assert vars(predictor).keys() == state.keys()  # predict sets nothing
    assert np.array_equal(predictor.predict(X.iloc[::-1]), predicted[::-1])  # row order and subsets invariant
    assert np.array_equal(predictor.predict(X.iloc[:7]), predicted[:7])
    assert np.array_equal(clone(predictor).fit(X, y).predict(X), predicted)  # fitting is idempotent
    assert not hasattr(clone(predictor), "model_") and clone(predictor).get_params() == params
    # a second fit forgets the first: other operators, no fold models
    linear = labels["operator"] == "linear"
    predictor.set_params(operators=None).fit(X[linear], y[linear])
    assert predictor.operators_ == ["linear"] and predictor.fold_models_ == []
    with pytest.raises(ValueError, match="feature names"):
        predictor.predict(X[["operator", *FEATURES]])
    with pytest.raises(TypeError, match="DataFrame"):
        predictor.fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match="no 'operator' column"):
        predictor.fit(X[FEATURES], y)


def test_operators_default_to_the_sorted_training_operators():
    labels = synthetic_labels(3)
    predictor = SimMergePredictor(family="ridge").fit(inputs(labels), labels["normalised"])
    assert predictor.operators_ == sorted(OPERATORS)


def test_checkpoint_split_holds_out_every_pair_of_the_checkpoint():
    labels = synthetic_labels(5)
    splitter, groups = HeldOutCheckpointSplit(), labels[["a", "b"]]
    held_out = splitter.held_out(groups=groups)
    assert held_out == [f"e{i}" for i in range(5)] and splitter.get_n_splits(groups=groups) == 5
    train, test = dict(zip(held_out, splitter.split(labels, groups=groups), strict=True))["e2"]
    with_e2 = ((labels["a"] == "e2") | (labels["b"] == "e2")).to_numpy()
    assert with_e2[test].all() and not with_e2[train].any() and len(train) + len(test) == len(labels)
    # two checkpoints: each fold would test every row and train on none, so there is no fold
    pair = labels[labels["a"].isin(["e0", "e1"]) & labels["b"].isin(["e0", "e1"])]
    assert splitter.get_n_splits(groups=pair[["a", "b"]]) == 0
    with pytest.raises(ValueError, match="needs the groups"):
        next(splitter.split(labels))


def test_task_split_holds_out_each_task():
    labels = synthetic_labels(3)
    splitter = HeldOutTaskSplit()
    assert splitter.held_out(groups=labels["task"]) == ["t1", "t2"]
    for task, (train, test) in zip(["t1", "t2"], splitter.split(labels, groups=labels["task"]), strict=True):
        assert (labels["task"].iloc[test] == task).all() and (labels["task"].iloc[train] != task).all()
    assert splitter.get_n_splits(groups=labels.loc[labels["task"] == "t1", "task"]) == 0


def test_a_row_tested_in_two_checkpoint_folds_gets_the_mean_of_both_folds_predictions():
    rows = training_rows(synthetic_labels(4))
    predicted = cv_predictions(rows, "ridge", FEATURES, OPERATORS, seed=0)
    # (e0, e1) is tested when e0 and when e1 is held out: one decision, from both models that never saw it
    pair = (rows["a"] == "e0") & (rows["b"] == "e1")
    folds = []
    for held_out in ("e0", "e1"):
        train = (rows["a"] != held_out) & (rows["b"] != held_out)
        model = SimMergePredictor(family="ridge", operators=OPERATORS, random_state=0)
        folds.append(model.fit(inputs(rows[train]), rows.loc[train, "normalised"]).predict(inputs(rows[pair])))
    np.testing.assert_allclose(predicted[pair].to_numpy(), np.mean(folds, axis=0))


def test_near_duplicates_are_one_fold_and_a_cold_start_fold_trains_on_no_test_pair():
    labels = synthetic_labels(4)
    splitter, groups = protocol_split("checkpoint", labels, {"e0": "e0+e1", "e1": "e0+e1"})
    assert splitter.held_out(groups=groups) == ["e0+e1", "e2", "e3"]
    splitter, groups = protocol_split("cold_start", labels, {})
    assert isinstance(splitter, HeldOutTaskAndCheckpointSplit)
    assert splitter.held_out(groups=groups)[:2] == ["e0@t1", "e1@t1"]
    for train, test in splitter.split(labels, groups=groups):
        test_pairs = set(zip(labels["a"].iloc[test], labels["b"].iloc[test], strict=True))
        assert not test_pairs & set(zip(labels["a"].iloc[train], labels["b"].iloc[train], strict=True))
        assert not set(labels["task"].iloc[test]) & set(labels["task"].iloc[train])
        assert len(train) + len(test) < len(labels)  # the test pairs' other tasks and the task's other pairs sit out


def test_family_choice_prefers_a_model_that_can_express_the_interaction():
    rows = training_rows(synthetic_labels(6))
    family, table = choose_family(rows, FEATURES, OPERATORS, seed=0, families=["ridge", "per_operator_ridge"])
    # plain ridge adds the operator as an offset and cannot flip the winner with the signal
    assert family == "per_operator_ridge"
    scores = table.set_index("family")["selected_score"]
    assert scores["per_operator_ridge"] > scores["ridge"]


def test_with_nothing_to_cross_validate_the_first_family_is_chosen():
    # one task: leaving it out leaves nothing to train on, so no family has an out-of-fold prediction
    rows = training_rows(synthetic_labels(4)).query("task == 't1'").reset_index(drop=True)
    family, table = choose_family(
        rows, FEATURES, OPERATORS, seed=0, families=["ridge", "hgb"], protocol="task_seen_pairs"
    )
    assert family == "ridge" and table[["selected_score", "rmse", "spearman"]].isna().all().all()


def test_grid_search_over_families_with_the_selected_score_scorer():
    rows = training_rows(synthetic_labels(6))
    search = GridSearchCV(
        SimMergePredictor(operators=OPERATORS, random_state=0),
        {"family": ["ridge", "per_operator_ridge"]},
        cv=HeldOutCheckpointSplit(),
        scoring=SelectedScorer(rows),
    )
    search.fit(inputs(rows), rows["normalised"], groups=rows[["a", "b"]])
    assert search.best_params_ == {"family": "per_operator_ridge"}
    assert search.best_estimator_.operators_ == OPERATORS


def test_predictor_round_trips_through_skops_and_refuses_a_mismatch(tmp_path):
    rows = training_rows(synthetic_labels(5))
    predictor = fit_predictor(rows, FEATURES, OPERATORS, family="hgb", seed=0)
    assert len(predictor.fold_models_) == 5  # one per held-out checkpoint
    path = tmp_path / "model.skops"
    save_predictor(predictor, path)
    loaded = load_predictor(path, feature_columns=FEATURES, operators=OPERATORS)
    assert isinstance(loaded, SimMergePredictor) and loaded.get_params() == predictor.get_params()
    before, after = predictor.predict(inputs(rows), return_std=True), loaded.predict(inputs(rows), return_std=True)
    assert np.array_equal(before[0], after[0])
    assert np.array_equal(before[1], after[1]) and (after[1] >= 0).all()
    assert b"pickle" not in path.read_bytes()[:2]  # a zip archive, not a pickle stream
    with pytest.raises(ValueError, match="features differ"):
        load_predictor(path, feature_columns=[*FEATURES, "extra"], operators=OPERATORS)
    with pytest.raises(ValueError, match="operators differ"):
        load_predictor(path, feature_columns=FEATURES, operators=["linear"])
    with pytest.raises(ValueError, match="not in the predictor's training grid"):
        loaded.predict(inputs(rows.assign(operator="della")))
    # a file of trusted types that holds no estimator (the layout of an earlier version) is refused
    sio.dump({"family": "hgb", "model": predictor.model_, "fold_models": [], "meta": "{}"}, path)
    with pytest.raises(ValueError, match="holds no SimMergePredictor"):
        load_predictor(path)


def test_select_ranks_one_pairs_candidates_with_each_order_of_an_order_sensitive_operator():
    labels = synthetic_labels(6)
    predictor = fit_predictor(training_rows(labels), FEATURES, OPERATORS, family="per_operator_ridge", seed=0)
    for sign, best in ((1, "linear"), (-1, "ties")):
        # the pair with the most positive (negative) signal: linear (ties) is its best operator
        signal = labels["signal"] * sign
        a, b = labels.loc[signal.idxmax(), ["a", "b"]]
        rows = labels[labels["a"].isin([a, b]) & labels["b"].isin([a, b])]
        anchor = rows["a"].where(rows["order_sensitive"], "")
        candidates = predictor.select(inputs(rows), anchor=anchor)
        assert candidates.iloc[0]["operator"] == best and candidates.iloc[0]["anchor"] == ""
        assert sorted(zip(candidates["operator"], candidates["anchor"], strict=True)) == sorted(
            [("linear", ""), ("ties", ""), ("slerp", a), ("slerp", b)]
        )
        assert candidates["predicted"].is_monotonic_decreasing and (candidates["uncertainty"] >= 0).all()
