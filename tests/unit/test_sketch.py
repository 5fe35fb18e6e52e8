"""Tests of simmerge.features.sketch: task-vector sketches and the structural pair features.

Known answers on tiny Llamas whose experts are the base plus seeded, heavy-tailed task vectors. The
tolerance test states the sketch's accuracy: with 20% of the coordinates sampled, every sketched feature is
within 0.05 of the exact one (cosines, fractions, Jaccard), and the features built from exact norms only
(``tv_norm_ratio``, ``tv_rel_norm_*``) agree to 1e-9.
"""

from __future__ import annotations

import math
import shutil
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.features.sketch import (
    FEATURE_NAMES,
    MIN_SAMPLES_PER_TENSOR,
    SKETCH_KEYS,
    layer_index,
    sample_size,
    structural_features,
    structural_features_exact,
    tau_dot,
    weight_sketch,
)

TOP = 0.2
SEED = 7
TOL = 0.05


def _heavy_noise(shape, seed: int) -> torch.Tensor:
    """A Gaussian scale mixture: heavy tailed, like real task vectors."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen) * torch.exp(0.75 * torch.randn(shape, generator=gen))


def _write_expert(base_dir, out_dir, tensors: dict[str, torch.Tensor]):
    """A copy of the base directory with other weights."""
    shutil.copytree(base_dir, out_dir)
    save_file({k: v.contiguous() for k, v in tensors.items()}, out_dir / "model.safetensors", metadata={"format": "pt"})
    return out_dir


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Base, two experts sharing half their task vector, and experts with tau_b = -tau_a and 2 tau_a."""
    root = tmp_path_factory.mktemp("sketch")
    base_dir = root / "base"
    build_tiny_checkpoint(base_dir, seed=0, num_layers=3)
    base = load_file(base_dir / "model.safetensors")
    common, spec_a, spec_b = {}, {}, {}
    for i, (name, w) in enumerate(sorted(base.items())):
        common[name] = 1e-3 * _heavy_noise(w.shape, 3 * i)
        spec_a[name] = 1e-3 * _heavy_noise(w.shape, 3 * i + 1)
        spec_b[name] = 1e-3 * _heavy_noise(w.shape, 3 * i + 2)
    a = {k: base[k] + common[k] + spec_a[k] for k in base}
    tau_a = {k: a[k] - base[k] for k in base}
    dirs = {
        "base": base_dir,
        "a": _write_expert(base_dir, root / "a", a),
        "b": _write_expert(base_dir, root / "b", {k: base[k] + common[k] + spec_b[k] for k in base}),
        "neg": _write_expert(base_dir, root / "neg", {k: base[k] - tau_a[k] for k in base}),
        "double": _write_expert(base_dir, root / "double", {k: base[k] + 2 * tau_a[k] for k in base}),
    }
    total = sum(w.numel() for w in base.values())
    size = total // 5  # 20% of the coordinates
    sketches = {
        key: weight_sketch(path, base_dir, size=size, seed=SEED, top_fraction=TOP) for key, path in dirs.items()
    }
    return {"dirs": dirs, "sketches": sketches, "size": size, "total": total, "base": base}


def test_sketch_has_the_contract_keys_and_dtypes(ckpts):
    s = ckpts["sketches"]["a"]
    assert tuple(s) == SKETCH_KEYS
    t = len(s["sketch/names"])
    assert t == len(ckpts["base"])
    assert list(s["sketch/names"]) == sorted(ckpts["base"])
    assert s["sketch/layer"].dtype == np.int32 and s["sketch/layer"].shape == (t,)
    assert s["sketch/numel"].dtype == np.int64
    for key in ("tau_norm", "theta_norm", "base_norm", "tau_dot_base", "tau_threshold"):
        assert s[f"sketch/{key}"].dtype == np.float64 and s[f"sketch/{key}"].shape == (t,)
    offsets = s["sketch/offsets"]
    assert offsets.dtype == np.int64 and offsets.shape == (t + 1,) and offsets[0] == 0
    assert s["sketch/coords"].dtype == np.int64 and s["sketch/coords"].shape == (offsets[-1],)
    assert s["sketch/tau"].dtype == np.float32 and s["sketch/tau"].shape == (offsets[-1],)
    assert set(s["sketch/layer"].tolist()) == {-1, 0, 1, 2}


def test_sample_allocation_is_proportional_sorted_and_in_range(ckpts):
    s = ckpts["sketches"]["a"]
    numel, offsets, coords = s["sketch/numel"], s["sketch/offsets"], s["sketch/coords"]
    m = np.diff(offsets)
    expected = [sample_size(int(n), ckpts["total"], ckpts["size"]) for n in numel]
    assert m.tolist() == expected
    assert all(min(int(n), MIN_SAMPLES_PER_TENSOR) <= k <= n for k, n in zip(m, numel, strict=True))
    assert abs(offsets[-1] - ckpts["size"]) < MIN_SAMPLES_PER_TENSOR * len(numel)
    for t in range(len(numel)):
        idx = coords[offsets[t] : offsets[t + 1]]
        assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < numel[t]


def test_sampled_tau_and_exact_norms_match_the_weights(ckpts):
    s, base = ckpts["sketches"]["a"], ckpts["base"]
    theta = load_file(ckpts["dirs"]["a"] / "model.safetensors")
    offsets = s["sketch/offsets"]
    for t, name in enumerate(s["sketch/names"]):
        tau = (theta[name] - base[name]).reshape(-1)
        idx = torch.from_numpy(s["sketch/coords"][offsets[t] : offsets[t + 1]])
        np.testing.assert_array_equal(s["sketch/tau"][offsets[t] : offsets[t + 1]], tau[idx].numpy())
        assert s["sketch/tau_norm"][t] == pytest.approx(float(tau.double().norm()), rel=1e-9)
        assert s["sketch/theta_norm"][t] == pytest.approx(float(theta[name].double().norm()), rel=1e-9)
        assert s["sketch/base_norm"][t] == pytest.approx(float(base[name].double().norm()), rel=1e-9)
        dot = float(tau.double() @ base[name].reshape(-1).double())
        assert s["sketch/tau_dot_base"][t] == pytest.approx(dot, rel=1e-9, abs=1e-12)
        mag = tau.abs()
        k = round(TOP * tau.numel())
        threshold = s["sketch/tau_threshold"][t]
        assert threshold == float(torch.sort(mag, descending=True).values[k - 1])
        assert int((mag >= threshold).sum()) >= k


def test_layer_index():
    assert layer_index("model.layers.12.mlp.up_proj.weight") == 12
    assert layer_index("transformer.h.3.attn.c_attn.weight") == 3
    assert layer_index("encoder.layer.7.output.dense.bias") == 7
    assert layer_index("blocks.0.norm.weight") == 0
    assert layer_index("model.embed_tokens.weight") == -1
    assert layer_index("model.norm.weight") == -1
    assert layer_index("lm_head.weight") == -1
    assert layer_index("model.hidden_layers_2.weight") == -1


def test_identical_checkpoints(ckpts):
    a = ckpts["sketches"]["a"]
    features = structural_features(a, a, top_fraction=TOP)
    assert list(features) == list(FEATURE_NAMES)
    for key in ("tv_cos", "tv_cos_layer_mean", "tv_cos_layer_min", "tv_cos_early", "tv_cos_mid", "tv_cos_late"):
        assert features[key] == pytest.approx(1.0, abs=1e-12)
    assert features["sign_agree"] == 1.0
    assert features["sign_agree_top"] == 1.0
    assert features["top_jaccard"] == 1.0
    assert features["weight_cos"] == pytest.approx(1.0, abs=1e-9)
    assert features["weight_dist_rel"] == pytest.approx(0.0, abs=1e-6)
    assert features["tv_norm_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert features["tv_rel_norm_a"] == features["tv_rel_norm_b"] > 0
    exact = structural_features_exact(ckpts["dirs"]["a"], ckpts["dirs"]["a"], ckpts["dirs"]["base"], top_fraction=TOP)
    assert exact["tv_cos"] == pytest.approx(1.0, abs=1e-12)
    assert exact["sign_agree"] == exact["top_jaccard"] == 1.0
    assert exact["weight_dist_rel"] == pytest.approx(0.0, abs=1e-6)


def test_negated_task_vector(ckpts):
    s = ckpts["sketches"]
    features = structural_features(s["a"], s["neg"], top_fraction=TOP)
    assert features["tv_cos"] == pytest.approx(-1.0, abs=1e-6)
    assert features["tv_cos_layer_min"] == pytest.approx(-1.0, abs=1e-6)
    assert features["sign_agree"] == 0.0
    assert features["sign_agree_top"] == 0.0
    assert features["tv_norm_ratio"] == pytest.approx(1.0, abs=1e-6)
    # ||theta_a - theta_b|| = 2 ||tau_a||
    assert features["weight_dist_rel"] == pytest.approx(2 * features["tv_rel_norm_a"], rel=1e-5)
    exact = structural_features_exact(ckpts["dirs"]["a"], ckpts["dirs"]["neg"], ckpts["dirs"]["base"], top_fraction=TOP)
    assert exact["tv_cos"] == pytest.approx(-1.0, abs=1e-6)
    assert exact["sign_agree"] == exact["sign_agree_top"] == 0.0


def test_doubled_task_vector(ckpts):
    s = ckpts["sketches"]
    features = structural_features(s["a"], s["double"], top_fraction=TOP)
    assert features["tv_cos"] == pytest.approx(1.0, abs=1e-6)
    assert features["tv_norm_ratio"] == pytest.approx(0.5, rel=1e-5)
    assert features["sign_agree"] == 1.0
    assert features["top_jaccard"] == pytest.approx(1.0, abs=1e-3)  # rounding can move a tie at the threshold
    assert features["weight_dist_rel"] == pytest.approx(features["tv_rel_norm_a"], rel=1e-5)


def test_sketch_is_deterministic_and_samples_the_same_coordinates(ckpts):
    s = ckpts["sketches"]
    again = weight_sketch(ckpts["dirs"]["a"], ckpts["dirs"]["base"], size=ckpts["size"], seed=SEED, top_fraction=TOP)
    for key in SKETCH_KEYS:
        np.testing.assert_array_equal(again[key], s["a"][key])
    for other in ("b", "neg", "base"):
        np.testing.assert_array_equal(s[other]["sketch/coords"], s["a"]["sketch/coords"])
        np.testing.assert_array_equal(s[other]["sketch/offsets"], s["a"]["sketch/offsets"])
        np.testing.assert_array_equal(s[other]["sketch/base_norm"], s["a"]["sketch/base_norm"])
    reseeded = weight_sketch(ckpts["dirs"]["a"], ckpts["dirs"]["base"], size=ckpts["size"], seed=1, top_fraction=TOP)
    assert not np.array_equal(reseeded["sketch/coords"], s["a"]["sketch/coords"])
    with pytest.raises(ValueError, match="sketch/coords"):
        structural_features(reseeded, s["b"])


def test_sketched_features_are_within_the_stated_tolerance_of_exact_ones(ckpts):
    """With 20% of coordinates sampled, |sketched - exact| < 0.05 for every feature (exact-norm ones: 1e-9)."""
    dirs, s = ckpts["dirs"], ckpts["sketches"]
    for x, y in (("a", "b"), ("b", "a"), ("a", "double")):
        exact = structural_features_exact(dirs[x], dirs[y], dirs["base"], top_fraction=TOP)
        sketched = structural_features(s[x], s[y], top_fraction=TOP)
        assert list(exact) == list(sketched) == list(FEATURE_NAMES)
        for key in FEATURE_NAMES:
            assert abs(sketched[key] - exact[key]) < TOL, (x, y, key, sketched[key], exact[key])
        for key in ("tv_norm_ratio", "tv_rel_norm_a", "tv_rel_norm_b"):
            assert sketched[key] == pytest.approx(exact[key], rel=1e-9)
    # The pair is informative: half-shared task vectors, neither 0 nor 1.
    exact = structural_features_exact(dirs["a"], dirs["b"], dirs["base"], top_fraction=TOP)
    assert 0.3 < exact["tv_cos"] < 0.7
    assert 0.5 < exact["sign_agree"] < 0.9
    assert 0.1 < exact["top_jaccard"] < 0.6


def test_unbiased_estimator_agrees_with_the_ratio_estimator(ckpts):
    s = ckpts["sketches"]
    ratio = tau_dot(s["a"], s["b"])
    unbiased = tau_dot(s["a"], s["b"], estimator="unbiased")
    scale = s["a"]["sketch/tau_norm"] * s["b"]["sketch/tau_norm"]
    assert np.all(np.abs(ratio - unbiased) / scale < 0.25)
    features = structural_features(s["a"], s["b"], estimator="unbiased")
    assert abs(features["tv_cos"] - structural_features(s["a"], s["b"])["tv_cos"]) < TOL
    with pytest.raises(ValueError, match="estimator"):
        tau_dot(s["a"], s["b"], estimator="median")


def test_base_against_itself_gives_zero_task_vector_and_nan_cosines(ckpts):
    s = ckpts["sketches"]
    base = s["base"]
    assert np.all(base["sketch/tau"] == 0) and np.all(base["sketch/tau_norm"] == 0)
    assert np.all(base["sketch/tau_threshold"] == 0) and np.all(base["sketch/tau_dot_base"] == 0)
    np.testing.assert_array_equal(base["sketch/theta_norm"], base["sketch/base_norm"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN by definition, not by a 0/0 warning
        features = structural_features(s["a"], base, top_fraction=TOP)
    for key in FEATURE_NAMES:
        if key.startswith("tv_cos") or key in ("tv_norm_ratio", "sign_agree", "sign_agree_top"):
            assert math.isnan(features[key]), key
    assert features["tv_rel_norm_b"] == 0.0
    assert features["top_jaccard"] == 0.0  # a's top set is non-empty, the base's is empty
    assert features["weight_dist_rel"] == pytest.approx(features["tv_rel_norm_a"], rel=1e-9)
    assert 0.99 < features["weight_cos"] <= 1.0


def test_sparse_task_vector_tops_are_its_nonzero_coordinates(ckpts, tmp_path):
    base = ckpts["base"]
    name = "model.layers.1.mlp.up_proj.weight"
    sparse = dict(base)
    sparse[name] = base[name].clone()
    sparse[name].view(-1)[[5, 17, 123]] += torch.tensor([0.1, -0.2, 0.3])
    path = _write_expert(ckpts["dirs"]["base"], tmp_path / "sparse", sparse)
    s = weight_sketch(path, ckpts["dirs"]["base"], size=ckpts["size"], seed=SEED, top_fraction=TOP)
    assert np.all(s["sketch/tau_threshold"] == 0)  # 3 non-zero coordinates < 20% of any tensor
    exact = structural_features_exact(path, path, ckpts["dirs"]["base"], top_fraction=TOP)
    assert exact["top_jaccard"] == exact["sign_agree_top"] == exact["sign_agree"] == 1.0
    assert exact["tv_cos"] == exact["tv_cos_mid"] == pytest.approx(1.0)
    assert math.isnan(exact["tv_cos_early"]) and math.isnan(exact["tv_cos_late"])


def test_sketch_survives_an_npz_round_trip(ckpts, tmp_path):
    s = ckpts["sketches"]
    for key in ("a", "b"):
        np.savez(tmp_path / f"{key}.npz", **s[key])
    with np.load(tmp_path / "a.npz", allow_pickle=False) as a, np.load(tmp_path / "b.npz", allow_pickle=False) as b:
        loaded = structural_features(a, b)
    assert loaded == structural_features(s["a"], s["b"])
    bare = {key.removeprefix("sketch/"): value for key, value in s["a"].items()}  # as ModelSummary.sketch
    assert structural_features(bare, s["b"]) == loaded
    np.testing.assert_array_equal(tau_dot(bare, s["b"]), tau_dot(s["a"], s["b"]))


def test_missing_tensor_is_a_clear_error(ckpts, tmp_path):
    base = ckpts["base"]
    name = "model.layers.0.mlp.up_proj.weight"
    path = _write_expert(ckpts["dirs"]["base"], tmp_path / "partial", {k: v for k, v in base.items() if k != name})
    with pytest.raises(ValueError, match=name) as info:
        weight_sketch(path, ckpts["dirs"]["base"], size=1000, seed=SEED, top_fraction=TOP)
    assert str(path) in str(info.value) and str(ckpts["dirs"]["base"]) in str(info.value)
    with pytest.raises(ValueError, match=name):
        structural_features_exact(ckpts["dirs"]["a"], path, ckpts["dirs"]["base"], top_fraction=TOP)


def test_bad_arguments_are_refused(ckpts):
    dirs = ckpts["dirs"]
    with pytest.raises(ValueError, match="top_fraction"):
        weight_sketch(dirs["a"], dirs["base"], size=100, seed=0, top_fraction=1.0)
    with pytest.raises(ValueError, match="size"):
        weight_sketch(dirs["a"], dirs["base"], size=0, seed=0, top_fraction=TOP)
    with pytest.raises(ValueError, match="missing key"):
        structural_features({}, ckpts["sketches"]["a"])
