"""Tests of simmerge.evaluate.paired on constructed per-item outcomes whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simmerge.evaluate.paired import (
    item_bootstrap_means,
    label_mcnemar,
    mcnemar,
    paired_difference,
    seed_variance,
)


def outcomes(values, task="t1"):
    return pd.DataFrame({"task": task, "subtask": task, "doc_id": range(len(values)), "value": values})


def test_identical_models_differ_by_zero_with_zero_paired_error():
    x = outcomes([1, 0, 1, 1, 0, 0, 1, 0])
    result = paired_difference(x, x.copy())
    assert result.difference == 0 and result.stderr == 0
    assert result.unpaired_stderr > 0.2  # the unpaired rule would call a 0.2 gap noise here
    assert result.correlation == pytest.approx(1.0) and result.n == 8


def test_flipping_known_items_gives_the_exact_paired_error_and_mcnemar():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, 100).astype(float)
    y = x.copy()
    flipped_down, flipped_up = np.flatnonzero(x == 1)[:12], np.flatnonzero(x == 0)[:2]
    y[flipped_down], y[flipped_up] = 0, 1
    result = paired_difference(outcomes(x), outcomes(y))
    d = x - y  # twelve +1, two -1, 86 zeros
    assert result.difference == pytest.approx(10 / 100)
    assert result.stderr == pytest.approx(math.sqrt(np.var(d, ddof=1) / 100))
    assert result.stderr < result.unpaired_stderr
    test = mcnemar(x, y)
    assert (test.only_x, test.only_y) == (12, 2)
    assert test.p_value == pytest.approx(2 * sum(math.comb(14, k) for k in range(3)) / 2**14)  # 0.01294...


def test_a_label_difference_averages_tasks_and_adds_their_variances():
    x = pd.concat([outcomes([1.0, 1.0, 0.0, 0.0], "t1"), outcomes([0.5, 0.5], "t2")])
    y = pd.concat([outcomes([0.0, 1.0, 0.0, 0.0], "t1"), outcomes([0.5, 0.0], "t2")])
    result = paired_difference(x, y)
    d1, d2 = np.array([1.0, 0, 0, 0]), np.array([0.0, 0.5])
    assert result.difference == pytest.approx((d1.mean() + d2.mean()) / 2)
    assert result.stderr**2 == pytest.approx((np.var(d1, ddof=1) / 4 + np.var(d2, ddof=1) / 2) / 4)
    assert paired_difference(x, y, extra_variance=0.01).stderr ** 2 == pytest.approx(result.stderr**2 + 0.01)


def test_a_task_without_values_is_left_out_as_the_label_leaves_it_out():
    x = pd.concat([outcomes([1.0, 0.0], "t1"), outcomes([np.nan, np.nan], "t2")])
    y = pd.concat([outcomes([0.0, 0.0], "t1"), outcomes([np.nan, np.nan], "t2")])
    result = paired_difference(x, y)
    assert result.difference == 0.5 and result.n == 2


def test_labels_on_different_items_are_refused():
    with pytest.raises(ValueError, match="different items"):
        paired_difference(outcomes([1, 0, 1]), outcomes([1, 0]))


def test_mcnemar_refuses_non_binary_outcomes_and_counts_no_discordance_as_p_one():
    with pytest.raises(ValueError, match="0/1"):
        mcnemar([0.5, 1], [1, 1])
    assert mcnemar([1, 0], [1, 0]).p_value == 1.0


def test_seed_variance_is_the_normalised_spread_over_the_seeds():
    assert seed_variance(0.06, 3, 0.6) == pytest.approx(0.01 / 3)
    assert seed_variance(None, 1, 0.6) == 0.0


def test_item_bootstrap_draws_the_same_items_for_every_model():
    matrix = np.array([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    draws = item_bootstrap_means(matrix, n_boot=500, rng=np.random.default_rng(1))
    assert draws.shape == (500, 3)
    assert (draws[:, 0] == draws[:, 1]).all()  # identical models: identical in every draw
    assert (draws[:, 0] >= draws[:, 2]).all()  # the third is never better on any resample of the items
    assert draws[:, 0].mean() == pytest.approx(0.5, abs=0.05)


def test_mcnemar_of_labels_fits_only_single_task_binary_items():
    x, y = outcomes([2.0, 2.0, 0.0, 0.0]), outcomes([0.0, 2.0, 0.0, 0.0])  # 0/1 over a parent scoring 0.5
    assert label_mcnemar(x, y) == mcnemar([1, 1, 0, 0], [0, 1, 0, 0])
    assert label_mcnemar(outcomes([0.5, 1.0, 0.0]), outcomes([0.5, 0.0, 0.0])) is None  # a mean over seeds
    two_tasks = pd.concat([outcomes([1.0, 0.0], "t1"), outcomes([1.0, 0.0], "t2")])
    assert label_mcnemar(two_tasks, two_tasks) is None
