"""simmerge.evaluate.transfer on synthetic runs whose labels follow a known rule: a predictor trained on one run
transfers to another run with the same rule, and a run whose rule is flipped is caught."""

from __future__ import annotations

import pandas as pd
import pytest
from test_compare import FEATURES, OPERATORS, labels

from simmerge.evaluate.predictor import OPERATOR, SimMergePredictor, training_rows
from simmerge.evaluate.transfer import transfer, transfer_table

TARGET_EXPERTS = [f"f{i}" for i in range(5)]


def fitted(source: pd.DataFrame, family: str = "per_operator_ridge") -> SimMergePredictor:
    rows = training_rows(source)
    model = SimMergePredictor(family=family, operators=OPERATORS, random_state=0)
    return model.fit(rows[[*FEATURES, OPERATOR]], rows["normalised"])


def flipped(table: pd.DataFrame) -> pd.DataFrame:
    """The same pairs with linear's and ties' scores swapped: ties now wins where the signal is positive."""
    swap = {"linear": "ties", "ties": "linear"}
    scores = table.set_index(["a", "b", "task", "operator"])["normalised"]
    new = [scores[(r.a, r.b, r.task, swap.get(r.operator, r.operator))] for r in table.itertuples()]
    return table.assign(normalised=new, merge_score=new)


def test_a_predictor_transfers_to_a_catalog_with_the_same_rule():
    source, target = labels(0), labels(1, experts=TARGET_EXPERTS)
    units, summary = transfer(fitted(source), source, target, n_boot=200)
    assert len(units) == 10 and set(units["pair"]) <= {f"f{i}|f{j}" for i in range(5) for j in range(5)}
    numbers = summary["source"]
    assert numbers["top1"] == 1.0 and numbers["gap_closure"] == pytest.approx(1.0)
    assert numbers["win"] + numbers["tie"] == 10 and numbers["loss"] == 0
    # both baselines: the source's best fixed policy and the target's in hindsight, each with its numbers
    table = transfer_table(summary).set_index("baseline")
    assert list(table["policy"]) == [summary["policies"]["source"], summary["policies"]["hindsight"]]
    assert (units["best_fixed_hindsight"] >= units["best_fixed"] - 1e-12).all()


def test_a_catalog_whose_rule_flips_is_caught():
    source = labels(0)
    units, summary = transfer(fitted(source), source, flipped(labels(1, experts=TARGET_EXPERTS)), n_boot=200)
    numbers = summary["source"]
    # the predictor picks the operator that now loses wherever the signal decides
    assert numbers["top1"] == 0.0
    assert numbers["simmerge"] < numbers["best_fixed"] and numbers["gap_closure"] < 0
    assert numbers["difference_hi"] < 0 and numbers["loss"] > 0


def test_operators_the_predictor_never_saw_are_left_out_and_named():
    source = labels(0)
    target = labels(1, experts=TARGET_EXPERTS)
    target = pd.concat([target, target[target["operator"] == "ties"].assign(operator="dare")], ignore_index=True)
    _, summary = transfer(fitted(source), source, target, n_boot=50)
    assert summary["operators"] == OPERATORS and summary["operators_unseen_by_predictor"] == ["dare"]
    with pytest.raises(ValueError, match="lack 1 feature.*'noise'"):
        transfer(fitted(source), source, target.drop(columns=["noise"]), n_boot=50)
