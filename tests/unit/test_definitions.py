"""Tests of simmerge.features.definitions: the registered feature set, its order and lookup, and the helpers."""

from __future__ import annotations

import math

import pytest

from simmerge.features.definitions import drift_ratio, feature_names, feature_table, get_feature
from simmerge.features.registry import KINDS


def test_registry_order_kinds_and_lookup():
    names = feature_names()
    assert len(names) == len(set(names))
    kinds = [get_feature(n).kind for n in names]
    assert kinds == sorted(kinds, key=KINDS.index)  # grouped by kind, in KINDS order
    assert names[:2] == ["kl_ab_mean", "kl_ab_median"]
    assert {"js_mean", "top1_agree", "hidden_cos_late", "attn_cos_min", "drift_ratio", "tv_cos"} <= set(names)
    assert [row["name"] for row in feature_table()] == names
    assert feature_names("structural")[0] == "tv_cos"
    with pytest.raises(KeyError, match=r"unknown feature 'kl_mean'; known features: kl_ab_mean, kl_ab_median"):
        get_feature("kl_mean")


def test_drift_ratio_is_nan_safe():
    assert drift_ratio(0.2, 0.1) == pytest.approx(2.0)
    assert drift_ratio(0.0, 0.0) == 1.0
    assert math.isnan(drift_ratio(0.3, 0.0))
