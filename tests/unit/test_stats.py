"""The shared decision rules: the tie band of noisy scores and the best fixed operator, with known answers, and the
ranking, the comparison and the bandit all deciding by them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simmerge.evaluate.ranking import best_per_pair, pair_scores
from simmerge.evaluate.selection import best_fixed_operator as best_fixed_of_candidates
from simmerge.evaluate.selection import evaluate_units, rule_anchors
from simmerge.evaluate.stats import (
    best_fixed_operator,
    cluster_bootstrap,
    combined_stderr,
    percentile_interval,
    within_noise,
)


def test_combined_stderr_is_the_root_sum_of_squares_with_missing_errors_as_zero():
    assert combined_stderr(0.3, 0.4) == pytest.approx(0.5)
    assert combined_stderr(0.3, None) == combined_stderr(0.3, math.nan) == pytest.approx(0.3)
    assert combined_stderr(None, math.nan) == 0.0


def test_within_noise_is_a_closed_band_of_z_combined_errors_on_either_side():
    assert within_noise(0.5, 0.3, 0.4, z=1.0) and within_noise(-0.5, 0.3, 0.4, z=1.0)
    assert not within_noise(0.51, 0.3, 0.4, z=1.0)
    assert within_noise(1.0, 0.3, 0.4, z=2.0)
    # without errors only an exact tie is within noise; a missing score never is
    assert within_noise(0.0, None, None, z=1.0) and not within_noise(1e-12, None, None, z=1.0)
    assert not within_noise(math.nan, 0.3, 0.4, z=1.0)


def test_best_fixed_operator_breaks_exact_ties_by_order_and_skips_missing_means():
    assert best_fixed_operator(pd.Series({"ties": 0.7, "linear": 0.9, "slerp": 0.9})) == "linear"
    assert best_fixed_operator(pd.Series({"slerp": 0.9, "linear": 0.9})) == "slerp"
    assert best_fixed_operator(pd.Series({"della": math.nan, "ties": 0.2})) == "ties"


def test_ranking_and_comparison_tie_the_same_pair_of_scores():
    # one pair, two operators 0.02 apart with errors 0.015 each: combined 0.0212, so tied at z=1, not at z=0.5
    scores = pd.DataFrame(
        {
            "a": ["x", "x"],
            "b": ["y", "y"],
            "operator": ["linear", "ties"],
            "status": ["ok", "ok"],
            "merge_score": [0.62, 0.60],
            "merge_score_stderr": [0.015, 0.015],
        }
    )
    candidates = pd.DataFrame(
        {
            "unit": ["x|y", "x|y"],
            "operator": ["linear", "ties"],
            "anchor": ["", ""],
            "predicted": [0.1, 0.9],  # SimMerge picks ties, the oracle is linear
            "uncertainty": [0.0, 0.0],
            "actual": [0.62, 0.60],
            "actual_stderr": [0.015, 0.015],
        }
    )
    for z, tied in ((1.0, True), (0.5, False)):
        ranked = best_per_pair(pair_scores(scores), z=z).iloc[0]
        assert (ranked["tied"] == "linear;ties") is tied
        unit = evaluate_units(candidates, rule_anchors(scores.assign(order_sensitive=False)), "linear", z=z).iloc[0]
        assert bool(unit["top1_tied"]) is tied
        assert unit["vs_best_fixed"] == ("tie" if tied else "loss")
    assert best_fixed_of_candidates(candidates) == "linear"


def test_the_cluster_bootstrap_draws_whole_clusters_and_skips_missing_values():
    draws = cluster_bootstrap(
        {"x": [1.0, 1.0, 3.0], "y": [math.nan, 2.0, math.nan]}, ["p", "p", "q"], n_boot=300, seed=0
    )
    # drawing {p, p}, {p, q} or {q, q}: the mean over the drawn clusters' units is 1, 5/3 or 3
    assert {round(float(value), 3) for value in draws["x"]} == {1.0, 1.667, 3.0}
    # y has a value only in cluster p: draws of q alone have no value at all
    assert set(np.round(draws["y"][np.isfinite(draws["y"])], 3)) == {2.0}
    low, high, nan_draws = percentile_interval(draws["y"])
    assert (low, high) == (2.0, 2.0) and 0 < nan_draws == np.isnan(draws["y"]).sum() < 300
    assert np.array_equal(
        cluster_bootstrap({"x": [1.0, 3.0]}, ["p", "q"], n_boot=50, seed=4)["x"],
        cluster_bootstrap({"x": [1.0, 3.0]}, ["p", "q"], n_boot=50, seed=4)["x"],
    )
