"""Tests of simmerge.features.pairs: known-answer pair features, the table layout, the consistency checks, the doc.

Summaries are synthetic (:mod:`synthetic_summaries`), so these tests do not depend on a probe pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_summaries import Synth

from simmerge.features.definitions import feature_names
from simmerge.features.pairs import feature_doc, pair_features
from simmerge.features.summary import load_summary

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def synth() -> Synth:
    return Synth()


@pytest.fixture
def trio(tmp_path, synth) -> tuple[Path, Path, Path]:
    return (
        synth.model(tmp_path, "ex-a", seed=1, scale=0.5),
        synth.model(tmp_path, "ex-b", seed=2, scale=0.8),
        synth.model(tmp_path, "base", seed=0, scale=0.0),
    )


FUNCTIONAL_ONE = ["top1_agree", "hidden_cos_mean", "hidden_cos_min", "hidden_cos_early", "hidden_cos_mid"]
FUNCTIONAL_ONE += ["hidden_cos_late", "attn_cos_mean", "attn_cos_min", "attn_cos_early", "attn_cos_mid"]
FUNCTIONAL_ONE += ["attn_cos_late"]

# ----------------------------------------------------------------------------------------------------------
# Known answers


@pytest.mark.parametrize(
    "layout",
    [
        {"logprobs": "full"},
        {"logprobs": "topk", "hidden_dim": 16, "attention_dim": 8},
    ],
    ids=["full", "topk-projected"],
)
def test_identical_models_give_zero_divergence_and_unit_cosines(tmp_path, layout):
    synth = Synth(**layout)
    a = synth.model(tmp_path, "ex-a", seed=1, scale=0.5)
    base = synth.model(tmp_path, "base", seed=0, scale=0.0)
    table = pair_features(a, a, base, top_fraction=0.2)
    assert list(table["task"]) == ["t1", "t2"]
    kl = [c for c in table.columns if c.startswith(("kl_ab_", "kl_ba_"))]
    assert len(kl) == 12
    assert (table[kl] == 0).all().all()
    assert table["js_mean"].abs().max() < 1e-12
    np.testing.assert_allclose(table[FUNCTIONAL_ONE], 1.0, rtol=0, atol=1e-12)
    assert (table["drift_kl_a"] == table["drift_kl_b"]).all() and (table["drift_kl_a"] > 0).all()
    assert (table["drift_ratio"] == 1.0).all()
    np.testing.assert_allclose(table[["tv_cos", "weight_cos", "sign_agree", "top_jaccard"]], 1.0, atol=1e-9)


def test_kl_is_asymmetric_and_swapping_the_pair_swaps_the_columns(trio):
    a, b, base = trio
    ab = pair_features(a, b, base, top_fraction=0.2)
    ba = pair_features(b, a, base, top_fraction=0.2)
    assert (ab["a"] == "ex-a").all() and (ba["a"] == "ex-b").all()
    assert not np.allclose(ab["kl_ab_mean"], ab["kl_ba_mean"], rtol=1e-3)
    for stat in ("mean", "median", "p10", "p25", "p75", "p90"):
        np.testing.assert_allclose(ab[f"kl_ab_{stat}"], ba[f"kl_ba_{stat}"], rtol=1e-12)
        np.testing.assert_allclose(ab[f"kl_ba_{stat}"], ba[f"kl_ab_{stat}"], rtol=1e-12)
    np.testing.assert_allclose(ab["drift_kl_a"], ba["drift_kl_b"], rtol=1e-12)
    np.testing.assert_allclose(ab["drift_ratio"], 1 / ba["drift_ratio"], rtol=1e-12)
    symmetric = ["js_mean", *FUNCTIONAL_ONE, "tv_cos", "sign_agree", "top_jaccard", "weight_cos"]
    np.testing.assert_allclose(ab[symmetric], ba[symmetric], rtol=1e-12)


def test_table_layout_is_deterministic_and_accepts_loaded_summaries(trio):
    a, b, base = trio
    table = pair_features(a, b, base, top_fraction=0.2)
    assert list(table.columns) == ["a", "b", "task", *feature_names()]
    assert all(table[name].dtype == np.float64 for name in feature_names())
    assert table[feature_names("functional") + feature_names("drift")].notna().all().all()
    # Structural features do not depend on the task.
    assert (table[feature_names("structural")].nunique(dropna=False) == 1).all()
    loaded = pair_features(load_summary(a), load_summary(b), load_summary(base), top_fraction=0.2)
    pd.testing.assert_frame_equal(table, loaded, check_exact=True)
    # Different models: divergences positive, cosines below 1.
    assert (table["kl_ab_mean"] > 0).all() and (table["hidden_cos_mean"] < 1).all()
    assert (table["attn_cos_mean"] < 1).all() and (table["top1_agree"] <= 1).all()


def test_projected_cosines_track_the_full_ones(tmp_path):
    full, projected = Synth(hidden_size=96), Synth(hidden_size=96, hidden_dim=64, attention_dim=16)
    tables = []
    for synth, sub in ((full, "full"), (projected, "proj")):
        (tmp_path / sub).mkdir()
        a = synth.model(tmp_path / sub, "ex-a", seed=1, scale=0.5)
        b = synth.model(tmp_path / sub, "ex-b", seed=2, scale=0.5)
        base = synth.model(tmp_path / sub, "base", seed=0, scale=0.0)
        tables.append(pair_features(a, b, base, top_fraction=0.2))
    np.testing.assert_allclose(tables[0]["hidden_cos_mean"], tables[1]["hidden_cos_mean"], atol=0.02)
    np.testing.assert_allclose(tables[0]["attn_cos_mean"], tables[1]["attn_cos_mean"], atol=0.05)


def test_hidden_cosine_leaves_out_the_embedding_layer(tmp_path, synth):
    a = synth.model(tmp_path, "ex-a", seed=1, scale=0.5)
    hidden = {t: synth.task_arrays(t, 1, 0.5)["hidden"].copy() for t in synth.tasks}
    for h in hidden.values():
        h[0] = -h[0]  # embeddings opposite, every block identical
    b = synth.model(tmp_path, "ex-b", seed=1, scale=0.5, arrays={t: {"hidden": h} for t, h in hidden.items()})
    base = synth.model(tmp_path, "base", seed=0, scale=0.0)
    table = pair_features(a, b, base, top_fraction=0.2)
    np.testing.assert_allclose(table["hidden_cos_min"], 1.0, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Checks


def test_different_probe_tokens_raise_naming_the_task(tmp_path, synth):
    a = synth.model(tmp_path, "ex-a", seed=1, scale=0.5)
    tokens = synth.base["t2"]["token_ids"].copy()
    tokens[3] += 1
    b = synth.model(tmp_path, "ex-b", seed=2, scale=0.5, arrays={"t2": {"token_ids": tokens}})
    base = synth.model(tmp_path, "base", seed=0, scale=0.0)
    with pytest.raises(ValueError, match=r"task 't2'.*'ex-a' and 'ex-b' saw different probe tokens"):
        pair_features(a, b, base, top_fraction=0.2)
    with pytest.raises(ValueError, match=r"task 't2'.*'ex-b' and 'base' saw different probe tokens"):
        pair_features(b, b, base, top_fraction=0.2)


def test_projected_and_full_hidden_states_do_not_mix(tmp_path):
    full, projected = Synth(), Synth(hidden_dim=16)
    a = full.model(tmp_path, "ex-a", seed=1, scale=0.5)
    b = projected.model(tmp_path, "ex-b", seed=2, scale=0.5)
    base = full.model(tmp_path, "base", seed=0, scale=0.0)
    with pytest.raises(ValueError, match=r"task 't1': hidden of 'ex-a' is stored as .*'full'.*'projected'"):
        pair_features(a, b, base, top_fraction=0.2)
    c = Synth(hidden_dim=8).model(tmp_path, "ex-c", seed=3, scale=0.5)
    with pytest.raises(ValueError, match=r"task 't1': hidden of 'ex-b'.*'dim': 16.*'dim': 8"):
        pair_features(b, c, base, top_fraction=0.2)


def test_attention_layouts_and_projection_seeds_must_match(tmp_path):
    synth = Synth(attention_dim=8)
    a = synth.model(tmp_path, "ex-a", seed=1, scale=0.5)
    b = synth.model(tmp_path, "ex-b", seed=2, scale=0.5, meta={"projection_seed": 7})
    base = synth.model(tmp_path, "base", seed=0, scale=0.0)
    with pytest.raises(ValueError, match=r"task 't1': attention .*projection_seed"):
        pair_features(a, b, base, top_fraction=0.2)


def test_top_fraction_must_match_the_sketches(trio):
    with pytest.raises(ValueError, match=r"top_fraction=0.3, but the sketch of 'ex-a' drew its top sets at 0.2"):
        pair_features(*trio, top_fraction=0.3)


def test_architecture_mismatch_raises(tmp_path, synth):
    a = synth.model(tmp_path, "ex-a", seed=1, scale=0.5)
    b = Synth(vocab_size=60).model(tmp_path, "ex-b", seed=2, scale=0.5)
    base = synth.model(tmp_path, "base", seed=0, scale=0.0)
    with pytest.raises(ValueError, match="differ in vocab_size"):
        pair_features(a, b, base, top_fraction=0.2)


# ----------------------------------------------------------------------------------------------------------
# The generated feature documentation


def test_feature_doc_is_committed():
    committed = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    assert committed == feature_doc(), "regenerate with: python -c 'from simmerge.features.pairs import " + (
        'write_feature_doc; write_feature_doc("docs/features.md")\''
    )
    for name in feature_names():
        assert f"| `{name}` |" in committed
