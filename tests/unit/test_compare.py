"""Tests of simmerge.evaluate.compare: what each grouped fold trains on, and what it reports.

The labels are random but structured like a run's: five experts, two tasks, two symmetric operators and one
order-sensitive one, a feature that carries the winner and one that carries nothing.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from simmerge.evaluate.compare import compare

EXPERTS = [f"e{i}" for i in range(5)]
TASKS = ["t1", "t2"]
OPERATORS = ["linear", "ties", "slerp"]
FEATURES = ["signal", "noise"]


def labels(seed: int = 0) -> pd.DataFrame:
    """linear wins where the pair's ``signal`` is positive, ties elsewhere; slerp scores 0.45 ± its anchor's bias."""
    rng = np.random.default_rng(seed)
    signal = {pair: rng.uniform(-1, 1) for pair in itertools.combinations(EXPERTS, 2)}
    bias = dict(zip(EXPERTS, rng.uniform(-0.05, 0.05, len(EXPERTS)), strict=True))
    rows = []
    for a, b in itertools.permutations(EXPERTS, 2):
        x = signal[tuple(sorted((a, b)))]
        for task in TASKS:
            noise = rng.normal()
            for operator in OPERATORS:
                score = {"linear": 0.5 + 0.4 * x, "ties": 0.5 - 0.4 * x, "slerp": 0.45 + bias[a]}[operator]
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
                        "noise": noise,
                    }
                )
    return pd.DataFrame(rows)


def run(table: pd.DataFrame, protocol: str, families=("ridge", "per_operator_ridge")):
    return compare(table, FEATURES, OPERATORS, protocol=protocol, seed=0, families=list(families), n_boot=100)


@pytest.fixture(scope="module")
def by_checkpoint():
    """The leave-one-checkpoint-out comparison of :func:`labels`, with the family chosen between two."""
    return run(labels(), "checkpoint")


def involves(frame: pd.DataFrame, expert: str) -> pd.Series:
    return (frame["a"] == expert) | (frame["b"] == expert)


def test_each_held_out_checkpoint_is_tested_on_all_its_rows_and_trained_on_none(by_checkpoint):
    table = labels()
    units, candidates, folds, _ = by_checkpoint
    folds = folds.set_index("fold")
    assert list(folds.index) == EXPERTS
    for expert in EXPERTS:
        assert folds.loc[expert, "test_rows"] == involves(table, expert).sum()
        assert folds.loc[expert, "train_rows"] == (~involves(table, expert)).sum()
        # every test unit of the fold is a pair of the held-out checkpoint: the 4 others, each once
        tested = units.loc[units["fold"] == expert, "unit"]
        assert sorted(tested) == sorted("|".join(sorted((expert, other))) for other in EXPERTS if other != expert)
        assert folds.loc[expert, "units"] == len(tested) == 4
        assert set(candidates.loc[candidates["fold"] == expert, "unit"]) == set(tested)


def test_a_held_out_checkpoints_own_scores_do_not_reach_its_fold(by_checkpoint):
    # What a fold learns (family, model, best fixed operator) comes from its training rows only, so changing every
    # score of e0 leaves e0's predictions as they were, and changes the folds that train on e0.
    table = labels()
    changed = table.copy()
    with_e0 = involves(changed, "e0")
    flipped = np.where(changed.loc[with_e0, "operator"] == "ties", 0.99, 0.01)
    changed.loc[with_e0, "normalised"] = changed.loc[with_e0, "merge_score"] = flipped
    _, before, folds_before, _ = by_checkpoint
    _, after, folds_after, _ = run(changed, "checkpoint")
    mine_before, mine_after = before[before["fold"] == "e0"], after[after["fold"] == "e0"]
    np.testing.assert_array_equal(mine_before["predicted"], mine_after["predicted"])
    assert mine_before["family"].tolist() == mine_after["family"].tolist()
    assert (folds_before.set_index("fold").loc["e0", ["family", "best_fixed_operator"]]).equals(
        folds_after.set_index("fold").loc["e0", ["family", "best_fixed_operator"]]
    )
    assert not np.array_equal(mine_before["actual"], mine_after["actual"])  # it is scored on the new scores
    others_before, others_after = before[before["fold"] == "e1"], after[after["fold"] == "e1"]
    assert not np.allclose(others_before["predicted"], others_after["predicted"])


def test_a_held_out_task_is_tested_on_its_own_rows_and_its_scores_do_not_reach_its_fold():
    table = labels()
    units, before, folds, summary = run(table, "task")
    assert summary["protocol"] == "task"
    folds = folds.set_index("fold")
    assert list(folds.index) == TASKS
    for task in TASKS:
        assert folds.loc[task, "test_rows"] == (table["task"] == task).sum()
        assert folds.loc[task, "train_rows"] == (table["task"] != task).sum()
        assert units.loc[units["fold"] == task, "unit"].str.endswith(f"@{task}").all()
        assert folds.loc[task, "units"] == 10  # every unordered pair on that task
    changed = table.copy()
    on_t1 = changed["task"] == "t1"
    changed.loc[on_t1, "normalised"] = changed.loc[on_t1, "normalised"][::-1].to_numpy()
    _, after, _, _ = run(changed, "task")
    np.testing.assert_array_equal(
        before.loc[before["fold"] == "t1", "predicted"], after.loc[after["fold"] == "t1", "predicted"]
    )


def test_the_summary_reports_the_protocol_and_each_fixed_operators_mean():
    table = labels()
    units, _, folds, summary = run(table, "checkpoint", families=["ridge"])
    assert summary["protocol"] == "checkpoint"
    assert summary["units"] == len(units) == 5 * 4
    # Each unit's score of a fixed operator, averaged over units (an order-sensitive one over both orders).
    pairs = table.assign(unit=["|".join(sorted(p)) for p in zip(table["a"], table["b"], strict=True)])
    expected = pairs.groupby(["unit", "operator"])["merge_score"].mean().groupby("operator").mean()
    assert summary["fixed_operators"] == {name: pytest.approx(expected[name]) for name in OPERATORS}
    assert set(units["family"]) == set(folds["family"]) == {"ridge"}
    # the summary's means are over every fold's units
    assert summary["simmerge"] == pytest.approx(units["simmerge"].mean())
    assert summary["oracle"] == pytest.approx(units["oracle"].mean())


def test_a_fold_chooses_its_family_among_the_given_ones(by_checkpoint):
    _, candidates, folds, _ = by_checkpoint
    assert set(folds["family"]) <= {"ridge", "per_operator_ridge"}
    assert (candidates.groupby("fold")["family"].nunique() == 1).all()
    # ridge cannot make the winner depend on the signal; a ridge per operator can, and the inner CV sees it
    assert (folds["family"] == "per_operator_ridge").all()


def test_an_unknown_protocol_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown protocol 'pair'; choose from checkpoint, task"):
        compare(labels(), FEATURES, OPERATORS, protocol="pair", seed=0)
