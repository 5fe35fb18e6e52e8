"""simmerge.features.scale: which features carry the model's scale, the feature set without them, and the audit that
measures how far each feature moves between two catalogs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_compare import labels
from test_transfer import TARGET_EXPERTS

from simmerge.evaluate.transfer import refit_predictor, transfer
from simmerge.features.definitions import feature_names
from simmerge.features.scale import (
    MODEL_SCALED,
    dimensionless_features,
    feature_set,
    ranked_features,
    scale_audit,
    transfer_inputs,
)


def test_the_model_scaled_features_are_the_kl_divergences_in_nats():
    kl = [name for name in feature_names() if "kl" in name and name != "drift_ratio"]
    assert set(MODEL_SCALED) == set(kl) and len(MODEL_SCALED) == 14  # 6 + 6 position statistics, 2 drifts
    kept = dimensionless_features()
    assert not set(kept) & set(MODEL_SCALED) and len(kept) + len(MODEL_SCALED) == len(feature_names())
    assert {"js_mean", "top1_agree", "drift_ratio", "tv_cos", "tv_norm_ratio"} <= set(kept)
    assert feature_set("all") == feature_set("ranked") == feature_names() and feature_set("dimensionless") == kept
    with pytest.raises(ValueError, match="dimensionless, ranked"):
        feature_set("bounded")


def test_the_audit_flags_a_feature_whose_scale_moves_and_not_one_that_stays():
    rng = np.random.default_rng(0)

    def run(kl_scale):
        n = 40
        return pd.DataFrame(
            {
                "a": [f"x{i}" for i in range(n)],
                "b": "y",
                "task": "t",
                "kl_ab_mean": kl_scale * rng.uniform(0.5, 1.5, n),
                "tv_cos": rng.uniform(0.2, 0.6, n),
            }
        )

    audit = scale_audit({"small": run(1.0), "large": run(12.0)}).set_index("feature")
    assert list(audit.index) == ["kl_ab_mean", "tv_cos"]
    assert audit.loc["kl_ab_mean", "moves"] and audit.loc["kl_ab_mean", "median_ratio"] == pytest.approx(12, rel=0.3)
    assert audit.loc["kl_ab_mean", "overlap"] == 0 and audit.loc["kl_ab_mean", "model_scaled"]
    assert not audit.loc["tv_cos", "moves"] and audit.loc["tv_cos", "overlap"] > 0.5
    assert {"small_median", "large_iqr"} <= set(audit.columns)


def test_a_refit_on_a_feature_subset_keeps_the_family_and_transfers_the_rule():
    source = labels(0)
    model = refit_predictor(source, ["signal"], family="per_operator_ridge", seed=0)
    assert list(model.feature_names_in_) == ["signal", "operator"] and model.family == "per_operator_ridge"
    _, summary = transfer(model, source, labels(1, experts=TARGET_EXPERTS), n_boot=100)
    assert summary["source"]["top1"] == 1.0
    with pytest.raises(ValueError, match="lack feature 'tv_cos'"):
        refit_predictor(source, ["signal", "tv_cos"], family="ridge", seed=0)


def test_ranked_features_are_within_run_percentiles_shared_by_a_pair_tasks_operators_and_move_no_more():
    named = {"signal": "tv_cos", "noise": "js_mean"}  # registered names, so that the feature set finds them
    small = labels(0).rename(columns=named)
    large = labels(1, experts=TARGET_EXPERTS).rename(columns=named)
    large = large.assign(tv_cos=large["tv_cos"] * 40 + 7)  # another catalog's scale
    assert scale_audit({"small": small, "large": large}, ["tv_cos"])["moves"].iloc[0]
    ranked_small, ranked_large, columns = transfer_inputs(small, large, "ranked")
    assert columns == ["js_mean", "tv_cos"]  # the registered features both runs have, in column order
    for table in (ranked_small, ranked_large):
        assert table["tv_cos"].between(0, 1).all() and table["tv_cos"].max() > 0.9  # ties share an average rank
        # every operator's row of one ordered pair and task has its pair-task's rank
        assert table.groupby(["a", "b", "task"])["tv_cos"].nunique().eq(1).all()
    assert list(ranked_small.columns) == list(small.columns) and len(ranked_small) == len(small)
    assert not scale_audit({"small": ranked_small, "large": ranked_large}, ["tv_cos"])["moves"].iloc[0]
    # ranks keep the order within a run: a rule on the feature is a rule on its rank
    order = small.drop_duplicates(["a", "b", "task"]).sort_values("tv_cos")
    assert ranked_features(order, ["tv_cos"])["tv_cos"].is_monotonic_increasing
    assert transfer_inputs(small, large, "all")[2] == feature_names()
