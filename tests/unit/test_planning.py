"""The multi-way planner on synthetic predictors whose best subset, order and operators are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simmerge.multiway.planning import (
    Merge,
    all_at_once,
    chain,
    exhaustive,
    expression,
    from_json,
    members,
    merge,
    merge_count,
    node_id,
    plan_merge,
    random_chain,
    random_subset,
    reference_scores,
    target_score,
    to_json,
)

TASKS = ["ta", "tb", "tc", "td"]
# Each expert is perfect on its home task and useless elsewhere, so every reference score is 1.
SCORES = {name: {t: float(t == f"t{name}") for t in TASKS} for name in "abcd"}


def synthetic(value):
    """A predictor giving ``value(merged experts, operator, anchor experts)`` on every task."""

    def predict(first, second):
        union = frozenset(members(first)) | frozenset(members(second))
        return pd.DataFrame(
            [
                {
                    "task": t,
                    "operator": op,
                    "predicted": value(union, op, frozenset(members(first))),
                    "uncertainty": 0.01,
                }
                for t in TASKS
                for op in ("good", "bad", "anchored")
            ]
        )

    return predict


OPERATORS = {"good": False, "bad": False, "anchored": True}


def interfering_d(union, op, anchor):
    """'good' keeps 90 % of every parent unless d (which interferes with everyone) is in the merge."""
    if op == "good":
        return 0.3 if "d" in union else 0.9
    return 0.5 if op == "bad" else 0.2


def test_planner_finds_the_subset_that_excludes_the_interfering_expert():
    built = []
    plan = plan_merge("abcd", TASKS, SCORES, OPERATORS, synthetic(interfering_d), built.append, max_size=4)
    assert members(plan.model) == ("a", "b", "c")
    assert {node.operator for node in [plan.model, *plan.model.inputs] if isinstance(node, Merge)} == {"good"}
    # (a, b) ties with (a, c) and (b, c) at 0.45; the tie goes to the first by text, then c joins: 3 × 0.81... / 4
    assert expression(plan.model) == "good(c, good(a, b))"
    assert plan.objective == pytest.approx((0.81 + 0.81 + 0.9 + 0) / 4)
    # Both the pair and the triple were probed before being extended; the triple's extension (adding d) lost.
    assert built == [merge("good", ("a", "b"), order_sensitive=False), plan.model]
    assert plan.materialised == ["good(a, b)", "good(c, good(a, b))"]
    assert [s["model"] for s in plan.steps] == ["good(a, b)", "good(c, good(a, b))"]
    assert plan.steps[1]["from"] == "good(a, b)"
    # Every prediction used is recorded: 6 pairs × 4 operator-orders at step 0, 2 additions × 4 at step 1, 1 × 4 at 2.
    per_task = plan.predictions.groupby(["step", "state", "addition", "operator", "anchor"]).size()
    assert (per_task == len(TASKS)).all()
    assert plan.predictions.groupby("step").size().div(len(TASKS)).to_dict() == {0: 24, 1: 8, 2: 4}


def test_an_order_sensitive_operator_keeps_the_anchor_it_was_predicted_for():
    def anchored_by_a(union, op, anchor):
        return 0.95 if op == "anchored" and "a" in anchor and "d" not in union else 0.1

    plan = plan_merge("abcd", TASKS, SCORES, OPERATORS, synthetic(anchored_by_a), lambda m: None, max_size=4)
    assert members(plan.model) == ("a", "b", "c")
    node = plan.model
    while isinstance(node, Merge):
        assert node.operator == "anchored"
        assert "a" in members(node.inputs[0]), f"{expression(node)} lost a as the anchor"
        node = node.inputs[0]
    assert node == "a"


def test_stopping_rule_min_gain_and_max_size():
    stop_early = plan_merge(
        "abcd", TASKS, SCORES, OPERATORS, synthetic(interfering_d), lambda m: None, max_size=4, min_gain=0.5
    )
    assert expression(stop_early.model) == "good(a, b)"
    capped = plan_merge("abcd", TASKS, SCORES, OPERATORS, synthetic(interfering_d), lambda m: None, max_size=2)
    assert expression(capped.model) == "good(a, b)"
    assert capped.materialised == []  # a chain at max_size is never probed: nothing would be added to it


def test_beam_search_escapes_the_greedy_trap():
    tasks = ["ta", "tb", "tc"]
    scores = {name: {t: float(t == f"t{name}") for t in tasks} for name in "abc"}

    def trap(union, op, anchor):
        if op != "good":
            return 0.0
        if len(union) == 2:
            return 0.9 if union == {"a", "b"} else 0.8
        return 0.5 if anchor == {"a", "b"} or union - anchor == {"a", "b"} else 0.95

    def predict(first, second):
        table = synthetic(trap)(first, second)
        return table[table["task"].isin(tasks)]

    greedy = plan_merge("abc", tasks, scores, OPERATORS, predict, lambda m: None, max_size=3)
    assert expression(greedy.model) == "good(a, b)"
    assert greedy.objective == pytest.approx(0.6)
    beam = plan_merge("abc", tasks, scores, OPERATORS, predict, lambda m: None, max_size=3, beam_width=2)
    assert members(beam.model) == ("a", "b", "c")
    assert beam.objective == pytest.approx((0.76 + 0.95 + 0.76) / 3)


def test_planner_refuses_bad_arguments_and_incomplete_predictions():
    with pytest.raises(ValueError, match="max_size must be between 2"):
        plan_merge("abc", TASKS, SCORES, OPERATORS, synthetic(interfering_d), lambda m: None, max_size=4)
    with pytest.raises(ValueError, match="two or more distinct"):
        plan_merge("aa", TASKS, SCORES, OPERATORS, synthetic(interfering_d), lambda m: None, max_size=2)

    def no_bad(first, second):
        table = synthetic(interfering_d)(first, second)
        return table[table["operator"] != "bad"]

    with pytest.raises(ValueError, match=r"gave no prediction for \[\('ta', 'bad'\)"):
        plan_merge("abcd", TASKS, SCORES, OPERATORS, no_bad, lambda m: None, max_size=4)
    with pytest.raises(ValueError, match="scores above 0 on any target task"):
        reference_scores(SCORES, ["a", "b"], ["tc", "td"])
    assert reference_scores(SCORES, ["a", "b"], ["ta", "tc"]) == {"ta": 1.0}


def test_trees_are_canonical_and_round_trip():
    left = merge("good", ("b", "a"), order_sensitive=False)
    assert left == merge("good", ("a", "b"), order_sensitive=False)
    assert merge("anchored", ("b", "a"), order_sensitive=True) != merge("anchored", ("a", "b"), order_sensitive=True)
    tree = merge("anchored", (left, "c"), order_sensitive=True)
    assert from_json(to_json(tree)) == tree
    assert expression(tree) == "anchored(good(a, b), c)"
    assert members(tree) == ("a", "b", "c")
    with pytest.raises(ValueError, match="a would enter the merge twice"):
        merge("good", (left, "a"), order_sensitive=False)


def test_node_ids_address_content():
    specs = {"good": {"method": "ties", "density": 0.5}, "anchored": {"method": "slerp", "t": 0.3}}
    tree = merge("anchored", (merge("good", ("a", "b"), order_sensitive=False), "c"), order_sensitive=True)
    same = merge("anchored", (merge("good", ("b", "a"), order_sensitive=False), "c"), order_sensitive=True)
    assert node_id(tree, specs, 0) == node_id(same, specs, 0)
    assert node_id(tree, specs, 0) != node_id(tree, specs, 1)
    changed = {**specs, "good": {"method": "ties", "density": 0.2}}
    assert node_id(tree, specs, 0) != node_id(tree, changed, 0)
    with pytest.raises(KeyError, match="operator 'good'"):
        node_id(tree, {"anchored": specs["anchored"]}, 0)


def test_baselines():
    assert expression(chain(["c", "a", "b"], "good", order_sensitive=False)) == "good(b, good(a, c))"
    assert expression(chain(["c", "a", "b"], "anchored", order_sensitive=True)) == "anchored(anchored(c, a), b)"
    assert expression(all_at_once(["c", "a", "b"], "model_stock")) == "model_stock(a, b, c)"
    shuffled = random_chain("abcd", "good", order_sensitive=False, seed=3)
    assert members(shuffled) == ("a", "b", "c", "d")
    assert shuffled == random_chain("abcd", "good", order_sensitive=False, seed=3)
    sizes = {len(members(random_subset("abcd", "good", order_sensitive=False, max_size=3, seed=s))) for s in range(40)}
    assert sizes == {2, 3}


def test_exhaustive_oracle_counts():
    symmetric = exhaustive("abc", {"good": False}, max_size=3)
    # 3 pairs + 3 triples (which pair is merged first; the order inside a symmetric merge does not matter)
    assert len(symmetric) == 6
    assert merge_count(symmetric) == 6
    ordered = exhaustive("abc", {"anchored": True}, max_size=3)
    assert len(ordered) == 6 + 6
    both = exhaustive("abc", {"good": False, "anchored": True}, max_size=2)
    assert len(both) == 3 + 6
    assert target_score({"ta": 0.5, "tb": 1.0}, {"ta": 1.0, "tb": 2.0}) == pytest.approx(0.5)


def test_a_failed_node_scores_the_failure_score_on_every_target_task_without_scoring(tmp_path):
    from simmerge.merges.merging import FAILED_MERGE_SCORE
    from simmerge.multiway.execution import score_node

    failed = {"expression": "ties(a, b)", "status": "failed", "error": "ValueError: no"}
    record = score_node(tmp_path / "none", failed, {"ta": 0.5, "tb": 1.0}, task_dir=tmp_path, data_files={})
    assert record["status"] == "failed" and record["error"] == "ValueError: no"
    assert record["target_score"] == FAILED_MERGE_SCORE and record["eval_seconds"] == 0.0
    assert {task: entry["normalised"] for task, entry in record["tasks"].items()} == {"ta": 0.0, "tb": 0.0}
    assert all(entry["metric"] is None for entry in record["tasks"].values())


def test_a_set_summary_pairs_every_approach_with_simmerge_on_the_same_items():
    from simmerge.multiway.planning import summarise_set

    def node_items(scores):
        return pd.DataFrame({"task": "t", "subtask": "t", "doc_id": range(len(scores)), "score": scores})

    recipes = {
        "nodes": {
            "n1": {"inputs": ["a", "b"], "operator": {"name": "linear"}},
            "n2": {"inputs": ["a", "b"], "operator": {"name": "ties"}},
        },
        "approaches": {"simmerge": ["n1"], "all:ties": ["n2"]},
        "candidates": ["a", "b"],
    }
    scores = {"n1": {"target_score": 0.8, "status": "ok"}, "n2": {"target_score": 0.4, "status": "ok"}}
    plan = {"materialised": [], "predicted_objective": 0.7, "uncertainty": 0.1}
    items = {
        "n1": node_items([0.5, 0.5, 0.5, 0.5]),  # 0.4 of reference 0.5 -> 0.8
        "n2": node_items([0.5, 0.5, 0.0, 0.0]),
        "a": node_items([0.5, 0.5, 0.5, 0.5]),
        "b": node_items([0.0, 0.0, 0.0, 0.0]),
    }
    table = summarise_set(recipes, scores, plan, {"a": {"t": 0.5}, "b": {"t": 0.0}}, {"t": 0.5}, items)
    by = table.set_index("approach")
    assert by.loc["simmerge", "vs_simmerge"] == 0 and by.loc["simmerge", "vs_simmerge_se"] == 0
    assert by.loc["all:ties", "vs_simmerge"] == pytest.approx(-0.5)
    assert by.loc["all:ties", "vs_simmerge_se"] == pytest.approx(np.std([0, 0, 1, 1], ddof=1) / 2)
    assert by.loc["best_expert", "vs_simmerge"] == pytest.approx(0.0)
    assert "identity" not in table
