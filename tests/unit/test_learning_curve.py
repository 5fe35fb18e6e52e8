"""simmerge.evaluate.learning_curve on synthetic labels whose winner follows a known rule (tests/unit/test_compare.py):
no test checkpoint's pair is ever in training, and more labelled pairs close more of the gap."""

from __future__ import annotations

import pytest
from test_compare import FEATURES, OPERATORS, labels

from simmerge.evaluate.learning_curve import break_even, curve_splits, curve_summary, learning_curve

EXPERTS = [f"e{i}" for i in range(7)]


def test_no_test_checkpoints_pair_is_in_the_training_pool_and_near_duplicates_leave_together():
    groups = {"e0": "e0+e1", "e1": "e0+e1"}
    for test, pool, units in curve_splits(EXPERTS, groups, test_groups=2, repeats=30, seed=1):
        assert not any(a in test or b in test for a, b in pool)
        assert ("e0" in test) == ("e1" in test)  # a group is held out whole
        assert len(pool) == len({frozenset(p) for p in pool}) == (7 - len(test)) * (6 - len(test)) // 2
        assert all(any(name in unit.split("|") for name in test) for unit in units)
    with pytest.raises(ValueError, match="too few to train on"):
        curve_splits(EXPERTS[:3], {}, test_groups=2, repeats=1, seed=0)


def test_more_labelled_pairs_close_more_of_the_gap_until_simmerge_beats_the_best_fixed_policy():
    table = labels(0, experts=EXPERTS)
    curve = learning_curve(table, FEATURES, OPERATORS, sizes=[1, 3, 15], test_groups=1, repeats=12, seed=0)
    assert set(curve["n_pairs"]) == {1, 3, 15} and (curve["units"] == 6).all()
    summary = curve_summary(curve).set_index("n_pairs")
    # the rule is linear in one feature: 15 pairs learn it, one pair cannot tell which operator the sign favours
    assert summary.loc[15, "gap_closure"] > 0.95 and summary.loc[15, "top1"] > 0.95
    assert summary.loc[1, "gap_closure"] < summary.loc[15, "gap_closure"]
    assert summary.loc[15, "beats_best_fixed"] and summary.loc[15, "difference_lo"] > 0
    assert break_even(curve_summary(curve)) in {1, 3, 15}
    assert break_even(summary.reset_index().assign(beats_best_fixed=False)) is None


def test_a_size_that_few_repeats_reach_is_shown_but_never_called_a_break_even():
    table = labels(0, experts=EXPERTS)
    curve = learning_curve(table, FEATURES, OPERATORS, sizes=[1, 15], test_groups=1, repeats=8, seed=0)
    # keep 15 pairs in only 3 of the 8 repeats, as when most held-out draws leave a pool smaller than the size
    sparse = curve[(curve["n_pairs"] == 1) | curve["repeat"].isin([0, 1, 2])]
    summary = curve_summary(sparse).set_index("n_pairs")
    assert summary.loc[15, "repeats"] == 3 and not summary.loc[15, "supported"] and summary.loc[1, "supported"]
    assert summary.loc[15, "beats_best_fixed"]
    assert break_even(summary.reset_index().assign(beats_best_fixed=[False, True])) is None
    assert break_even(curve_summary(curve).assign(beats_best_fixed=[False, True])) == 15
