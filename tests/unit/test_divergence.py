"""Tests of simmerge.features.divergence: known-answer KL and JS, the top-k bound, segment cosines and thirds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic_summaries import log_softmax, truncate_topk

from simmerge.features.divergence import depth_thirds, js_exact, js_topk, kl_exact, kl_topk, segment_cosines

LN2 = math.log(2)


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


def test_segment_cosines_and_layer_thirds():
    x = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]])  # [G=1, M=3, D=2]
    y = np.array([[[1.0, 0.0], [0.0, -1.0], [1.0, 1.0]]])
    # Segment 0 = rows 0-1: <x,y> = 1 - 1 = 0; segment 1 = row 2: parallel.
    np.testing.assert_allclose(segment_cosines(x, y, np.array([0, 2])), [[0.0, 1.0]], atol=1e-15)
    assert np.isnan(segment_cosines(x, 0 * y, np.array([0, 2]))).all()
    assert np.bincount(depth_thirds(30)).tolist() == [10, 10, 10]
    assert depth_thirds(3).tolist() == [0, 1, 2]
    assert np.bincount(depth_thirds(7), minlength=3).tolist() == [2, 3, 2]
