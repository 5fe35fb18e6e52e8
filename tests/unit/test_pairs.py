"""Tests of simmerge.features.pairs: the registry, known-answer divergences and cosines, the top-k KL bound, checks.

Summaries are built here as plain arrays written to contract-conforming ``.npz`` files
(docs/model-summary-format.md), so these tests do not depend on a probe pass.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simmerge.features.definitions import drift_ratio, feature, feature_names, feature_table, get_feature
from simmerge.features.divergence import depth_thirds, js_exact, js_topk, kl_exact, kl_topk, segment_cosines
from simmerge.features.pairs import feature_doc, pair_features
from simmerge.features.probe_pass import projection_matrix
from simmerge.features.registry import KINDS, FeatureRegistry
from simmerge.features.summary import load_summary

REPO = Path(__file__).resolve().parents[2]
LN2 = math.log(2)

# ----------------------------------------------------------------------------------------------------------
# Contract-conforming synthetic summaries


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def truncate_topk(logp: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k ids (most likely first) and log-probs of full log-distributions, as the probe pass stores them."""
    ids = np.argsort(-logp, axis=-1, kind="stable")[:, :k]
    return ids.astype(np.int32), np.take_along_axis(logp, ids, axis=-1).astype(np.float32)


def _tril(n: int) -> np.ndarray:
    rows, cols = np.tril_indices(n)
    return rows * n + cols


def write_summary(path: Path, meta: dict, tasks: dict[str, dict[str, np.ndarray]], sketch: dict) -> Path:
    """Write a model summary: ``meta`` JSON, ``<task>/<key>`` arrays and ``sketch/<key>`` arrays."""
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True))}
    for task, task_arrays in tasks.items():
        arrays.update({f"{task}/{key}": value for key, value in task_arrays.items()})
    arrays.update({f"sketch/{key}": value for key, value in sketch.items()})
    np.savez(path, **arrays)
    return path


class Synth:
    """A family of synthetic checkpoints: base outputs plus per-model perturbations of size ``scale``.

    Every model of one ``Synth`` sees the same probes; ``model(name, seed, scale)`` gives a perturbed model
    (``scale=0`` is the base itself).
    """

    def __init__(
        self,
        *,
        tasks=("t1", "t2"),
        lengths=(4, 5, 3),
        num_layers=3,
        num_heads=2,
        hidden_size=24,
        vocab_size=50,
        top_k=8,
        logprobs="topk",
        hidden_dim=None,
        attention_dim=None,
        seed=0,
        logit_scale=3.0,
    ):
        self.tasks = tuple(tasks)
        self.lengths = np.asarray(lengths, dtype=np.int32)
        self.L, self.H, self.W, self.V, self.k = num_layers, num_heads, hidden_size, vocab_size, top_k
        self.logprobs, self.hidden_dim, self.attention_dim = logprobs, hidden_dim, attention_dim
        self.seed = seed
        rng = np.random.default_rng(seed)
        n = int(self.lengths.sum())
        self.base = {}
        for task in self.tasks:
            self.base[task] = {
                "token_ids": rng.integers(0, vocab_size, n).astype(np.int32),
                "logits": rng.normal(0, logit_scale, (n, vocab_size)),
                "hidden": rng.normal(0, 1, (num_layers + 1, n, hidden_size)),
                "scores": [rng.normal(0, 1, (num_layers, num_heads, m, m)) for m in self.lengths],
            }
        # Weights: two blocks and an embedding, as tensor name -> base values.
        self.weights = {
            "model.embed_tokens.weight": rng.normal(0, 1, 40),
            "model.layers.0.mlp.weight": rng.normal(0, 1, 30),
            "model.layers.1.mlp.weight": rng.normal(0, 1, 30),
        }

    def task_arrays(self, task: str, seed: int, scale: float) -> dict[str, np.ndarray]:
        base = self.base[task]
        rng = np.random.default_rng([self.seed, seed, self.tasks.index(task)])
        logp = log_softmax(base["logits"] + scale * rng.normal(0, 1, base["logits"].shape))
        ids, top = truncate_topk(logp, self.k)
        hidden = base["hidden"] + scale * rng.normal(0, 1, base["hidden"].shape)
        starts = np.concatenate([[0], np.cumsum(self.lengths)])
        hidden_norm = np.stack(
            [
                [np.linalg.norm(hidden[layer, s:e]) for s, e in zip(starts[:-1], starts[1:], strict=True)]
                for layer in range(self.L + 1)
            ]
        ).astype(np.float32)
        if self.hidden_dim is not None:
            hidden = hidden @ projection_matrix("hidden", self.W, self.hidden_dim, 0)
        maps, norms = [], []
        for m, scores in zip(self.lengths, base["scores"], strict=True):
            z = scores + scale * rng.normal(0, 1, scores.shape) + np.triu(np.full((m, m), -np.inf), 1)
            tri = np.exp(log_softmax(z)).reshape(self.L, self.H, m * m)[..., _tril(m)]
            norms.append(np.linalg.norm(tri, axis=-1))
            if self.attention_dim is not None:
                tri = tri @ projection_matrix("attention", tri.shape[-1], self.attention_dim, 0)
            maps.append(tri)
        arrays = {
            "lengths": self.lengths,
            "token_ids": base["token_ids"],
            "topk_ids": ids,
            "topk_logp": top,
            "hidden": hidden.astype(np.float16),
            "hidden_norm": hidden_norm,
            "attention": np.concatenate(maps, axis=-1).astype(np.float16),
            "attention_norm": np.stack(norms, axis=-1).astype(np.float32),
        }
        if self.logprobs == "full":
            arrays["logp"] = logp.astype(np.float32)
        return arrays

    def sketch(self, seed: int, scale: float, top_fraction: float = 0.2) -> dict[str, np.ndarray]:
        """A sketch that samples every coordinate (so the structural features are exact)."""
        rng = np.random.default_rng([self.seed, seed, 99])
        names = sorted(self.weights)
        base = [self.weights[n] for n in names]
        tau = [scale * rng.normal(0, 0.1, len(b)) for b in base]
        numel = np.array([len(b) for b in base], dtype=np.int64)
        thresholds = []
        for t in tau:
            keep = min(len(t), max(1, math.floor(top_fraction * len(t) + 0.5)))
            thresholds.append(np.sort(np.abs(t))[::-1][keep - 1])
        return {
            "names": np.array(names),
            "layer": np.array([int(n.split(".")[2]) if ".layers." in n else -1 for n in names], dtype=np.int32),
            "numel": numel,
            "tau_norm": np.array([np.linalg.norm(t) for t in tau]),
            "theta_norm": np.array([np.linalg.norm(b + t) for b, t in zip(base, tau, strict=True)]),
            "base_norm": np.array([np.linalg.norm(b) for b in base]),
            "tau_dot_base": np.array([t @ b for b, t in zip(base, tau, strict=True)]),
            "tau_threshold": np.array(thresholds, dtype=np.float64),
            "offsets": np.concatenate([[0], np.cumsum(numel)]).astype(np.int64),
            "coords": np.concatenate([np.arange(n) for n in numel]).astype(np.int64),
            "tau": np.concatenate(tau).astype(np.float32),
        }

    def meta(self, name: str, **overrides) -> dict:
        layout = lambda dim: {"mode": "projected", "dim": dim} if dim is not None else None  # noqa: E731
        meta = {
            "format_version": 1,
            "name": name,
            "tasks": list(self.tasks),
            "num_layers": self.L,
            "num_heads": self.H,
            "hidden_size": self.W,
            "vocab_size": self.V,
            "top_k": self.k,
            "logprobs": dict.fromkeys(self.tasks, self.logprobs),
            "hidden": {t: layout(self.hidden_dim) or {"mode": "full", "dim": self.W} for t in self.tasks},
            "attention": {t: layout(self.attention_dim) or {"mode": "full", "dim": None} for t in self.tasks},
            "projection_seed": 0,
            "probe_sha256": dict.fromkeys(self.tasks, "0" * 64),
            "sketch": {"size": 100, "seed": 0, "top_fraction": 0.2},
        }
        meta.update(overrides)
        return meta

    def model(self, tmp_path: Path, name: str, seed: int, scale: float, **tweaks) -> Path:
        tasks = {t: self.task_arrays(t, seed, scale) for t in self.tasks}
        for task, changes in tweaks.get("arrays", {}).items():
            tasks[task].update(changes)
        meta = self.meta(name, **tweaks.get("meta", {}))
        return write_summary(tmp_path / f"{name}.npz", meta, tasks, self.sketch(seed, scale))


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


def test_kl_and_js_on_a_four_token_vocabulary():
    # Position 0: p = (1/2, 1/4, 1/8, 1/8), q uniform.
    #   KL(p||q) = 1/2 ln 2 + 1/4 ln 1 + 2 * 1/8 ln(1/2) = ln(2) / 4          = 0.17328679513998632
    #   KL(q||p) = 1/4 (ln 1/2 + ln 1 + 2 ln 2)         = ln(2) / 4 as well
    # Position 1: p = (0.9, 0.05, 0.03, 0.02), q = (0.25, 0.25, 0.25, 0.25).
    #   KL(p||q) = sum p ln(4 p)                        = 0.9 ln 3.6 + 0.05 ln 0.2 + 0.03 ln 0.12 + 0.02 ln 0.08
    #            = 0.958246086321985
    #   KL(q||p) = sum 1/4 ln(1 / (4 p))                = 1.2436240618700958 (a different value: KL is asymmetric)
    # Position 2: p = (1, 0, 0, 0), q = (1/2, 1/4, 1/8, 1/8): KL(p||q) = ln 2, 0 ln 0 = 0.
    #   JS = 1/2 KL(p||m) + 1/2 KL(q||m), m = (3/4, 1/8, 1/16, 1/16)
    #      = 1/2 ln(4/3) + 1/2 (1/2 ln(2/3) + 1/4 ln 2 + 1/8 ln 2 + 1/8 ln 2) = 0.21576155433883565
    p = np.array([[0.5, 0.25, 0.125, 0.125], [0.9, 0.05, 0.03, 0.02], [1.0, 0.0, 0.0, 0.0]])
    q = np.array([[0.25] * 4, [0.25] * 4, [0.5, 0.25, 0.125, 0.125]])
    with np.errstate(divide="ignore"):
        lp, lq = np.log(p), np.log(q)
    np.testing.assert_allclose(kl_exact(lp, lq), [0.17328679513998632, 0.958246086321985, LN2], rtol=1e-12)
    np.testing.assert_allclose(kl_exact(lq[:2], lp[:2]), [0.17328679513998632, 1.2436240618700958], rtol=1e-12)
    assert kl_exact(lq[2:], lp[2:])[0] == np.inf
    js = js_exact(lp, lq)
    # Position 0: m = (3/8, 1/4, 3/16, 3/16); position 1: m = (0.575, 0.15, 0.14, 0.135).
    js_expected = [
        0.5 * (0.5 * math.log(0.5 / 0.375) + 0.25 * 0 + 2 * 0.125 * math.log(0.125 / 0.1875))
        + 0.5 * (0.25 * math.log(0.25 / 0.375) + 0 + 2 * 0.25 * math.log(0.25 / 0.1875)),
        0.5 * sum(x * math.log(x / ((x + 0.25) / 2)) + 0.25 * math.log(0.25 / ((x + 0.25) / 2)) for x in p[1]),
        0.21576155433883565,
    ]
    np.testing.assert_allclose(js, js_expected, rtol=1e-12)
    assert np.all((js >= 0) & (js <= LN2))
    # Disjoint supports reach the upper bound ln 2.
    np.testing.assert_allclose(js_exact(np.log([[1.0, 1e-300]]), np.log([[1e-300, 1.0]])), [LN2], rtol=1e-9)


def test_topk_estimator_is_exact_when_k_covers_the_vocabulary():
    rng = np.random.default_rng(3)
    lp, lq = log_softmax(rng.normal(0, 2, (20, 6))), log_softmax(rng.normal(0, 2, (20, 6)))
    ids_p, top_p = truncate_topk(lp, 6)
    ids_q, top_q = truncate_topk(lq, 6)
    np.testing.assert_allclose(kl_topk(ids_p, top_p, ids_q, top_q, 6), kl_exact(lp, lq), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(js_topk(ids_p, top_p, ids_q, top_q, 6), js_exact(lp, lq), rtol=1e-5, atol=1e-9)


# The stated bound of kl_topk (its docstring): relative error of the mean over positions < 10% when each model's
# top-k holds >= 95% of the mass on average, < 25% when it holds >= 75% and the exact KL is under 1 nat.
@pytest.mark.parametrize(
    ("logit_scale", "noise", "min_mass", "bound"),
    [
        (3.0, 0.1, 0.95, 0.10),
        (3.0, 0.5, 0.95, 0.10),
        (3.0, 1.0, 0.95, 0.10),
        (3.0, 3.0, 0.95, 0.10),
        (2.0, 0.1, 0.75, 0.25),
        (2.0, 0.5, 0.75, 0.25),
        (2.0, 1.0, 0.75, 0.25),
    ],
)
def test_topk_kl_within_the_stated_bound_of_the_exact_kl(logit_scale, noise, min_mass, bound):
    vocab, k, n = 500, 64, 200
    rng = np.random.default_rng(int(logit_scale * 10 + noise * 100))
    za = rng.normal(0, logit_scale, (n, vocab))
    lp, lq = log_softmax(za), log_softmax(za + rng.normal(0, noise, (n, vocab)))
    ids_p, top_p = truncate_topk(lp, k)
    ids_q, top_q = truncate_topk(lq, k)
    assert np.exp(top_p.astype(np.float64)).sum(axis=1).mean() >= min_mass
    exact_pq, exact_qp = kl_exact(lp, lq), kl_exact(lq, lp)
    if min_mass < 0.95:
        assert exact_pq.mean() < 1.0
    est_pq = kl_topk(ids_p, top_p, ids_q, top_q, vocab)
    est_qp = kl_topk(ids_q, top_q, ids_p, top_p, vocab)
    assert np.all(est_pq >= 0)
    assert abs(est_pq.mean() - exact_pq.mean()) / exact_pq.mean() < bound
    assert abs(est_qp.mean() - exact_qp.mean()) / exact_qp.mean() < bound
    # JS of the same rebuilt distributions: in range and within the same bound.
    js = js_topk(ids_p, top_p, ids_q, top_q, vocab)
    assert np.all((js >= 0) & (js <= LN2))
    assert abs(js.mean() - js_exact(lp, lq).mean()) / js_exact(lp, lq).mean() < bound


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


def test_segment_cosines_and_layer_thirds():
    x = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]])  # [G=1, M=3, D=2]
    y = np.array([[[1.0, 0.0], [0.0, -1.0], [1.0, 1.0]]])
    # Segment 0 = rows 0-1: <x,y> = 1 - 1 = 0; segment 1 = row 2: parallel.
    np.testing.assert_allclose(segment_cosines(x, y, np.array([0, 2])), [[0.0, 1.0]], atol=1e-15)
    assert np.isnan(segment_cosines(x, 0 * y, np.array([0, 2]))).all()
    assert np.bincount(depth_thirds(30)).tolist() == [10, 10, 10]
    assert depth_thirds(3).tolist() == [0, 1, 2]
    assert np.bincount(depth_thirds(7), minlength=3).tolist() == [2, 3, 2]


def test_hidden_cosine_leaves_out_the_embedding_layer(tmp_path, synth):
    a = synth.model(tmp_path, "ex-a", seed=1, scale=0.5)
    hidden = {t: synth.task_arrays(t, 1, 0.5)["hidden"].copy() for t in synth.tasks}
    for h in hidden.values():
        h[0] = -h[0]  # embeddings opposite, every block identical
    b = synth.model(tmp_path, "ex-b", seed=1, scale=0.5, arrays={t: {"hidden": h} for t, h in hidden.items()})
    base = synth.model(tmp_path, "base", seed=0, scale=0.0)
    table = pair_features(a, b, base, top_fraction=0.2)
    np.testing.assert_allclose(table["hidden_cos_min"], 1.0, atol=1e-12)


def test_drift_ratio_is_nan_safe():
    assert drift_ratio(0.2, 0.1) == pytest.approx(2.0)
    assert drift_ratio(0.0, 0.0) == 1.0
    assert math.isnan(drift_ratio(0.3, 0.0))


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
# Registry


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


def test_registering_a_name_twice_raises_and_registers_nothing():
    before = feature_names()
    with pytest.raises(ValueError, match="'kl_ab_mean' is already registered"):
        feature("kl_ab_mean", kind="functional", doc="again")(lambda pair: 0.0)
    assert feature_names() == before

    registry = FeatureRegistry()
    registry.feature("x", kind="drift", doc="One.")(lambda pair: 1.0)
    with pytest.raises(ValueError, match="'x' is already registered"):
        registry.feature("x", kind="drift", doc="One again.")(lambda pair: 1.0)
    with pytest.raises(ValueError, match="'x' is already registered"):
        registry.feature_group({"y": "Y.", "x": "X."}, kind="functional")(lambda pair: {"x": 0.0, "y": 0.0})
    assert registry.names() == ["x"]


def test_registry_validates_at_decoration_and_at_compute():
    registry = FeatureRegistry()
    with pytest.raises(ValueError, match="kind must be one of functional, drift, structural"):
        registry.feature("x", kind="weights", doc="X.")
    with pytest.raises(ValueError, match="lower snake_case"):
        registry.feature("Bad-Name", kind="drift", doc="X.")
    with pytest.raises(ValueError, match="lower snake_case and not one of a, b, task"):
        registry.feature("task", kind="drift", doc="X.")
    with pytest.raises(ValueError, match="needs a definition"):
        registry.feature("x", kind="drift", doc=" ")
    with pytest.raises(TypeError, match="exactly one required argument"):
        registry.feature("x", kind="drift", doc="X.")(lambda pair, other: 0.0)
    registry.feature_group({"s1": "One.", "s2": "Two."}, kind="structural")(lambda pair: {"s1": 1.0})
    registry.feature("f", kind="functional", doc="F.")(lambda pair: 2)
    assert registry.names() == ["f", "s1", "s2"]  # functional before structural, whatever the order of registration
    with pytest.raises(ValueError, match=r"returned \['s1'\] but registered \['s1', 's2'\]"):
        registry.compute(None)


def test_feature_doc_is_committed():
    committed = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    assert committed == feature_doc(), "regenerate with: python -c 'from simmerge.features.pairs import " + (
        'write_feature_doc; write_feature_doc("docs/features.md")\''
    )
    for name in feature_names():
        assert f"| `{name}` |" in committed
