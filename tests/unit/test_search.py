"""simmerge.evaluate.search on objectives with a known optimum: each search finds it within its budget and never
spends more; SimMerge + k is SimMerge at k = 1 and the oracle at k = every candidate."""

from __future__ import annotations

import numpy as np
import pytest

from simmerge.evaluate.search import (
    cma_maximise,
    simmerge_plus_k,
    split_items,
    successive_halving,
)

# 16 candidates; candidate i is right on a fraction 0.1 + 0.05 i of the items, spread evenly (a golden-ratio
# sequence), so every prefix of its items scores close to that: the last candidate is best on any prefix
SPREAD = (np.arange(400) * (np.sqrt(5) - 1) / 2) % 1
ITEMS = {i: (SPREAD < 0.1 + 0.05 * i).astype(float) for i in range(16)}


def test_successive_halving_finds_the_best_candidate_and_counts_each_item_once():
    calls = []

    def score(candidate, n):
        calls.append((candidate, n))
        return ITEMS[candidate][:n].mean()

    choice, spent = successive_halving(list(ITEMS), score, start_items=25, max_items=400)
    assert choice == 15
    # 16 x 25, 8 x 50, 4 x 100, 2 x 200, 1 x 400 items; each round scores only its new items
    assert spent.merges == 16 and spent.items == 16 * 25 + 8 * 25 + 4 * 50 + 2 * 100 + 1 * 200
    assert max(n for _, n in calls) <= 400
    # the budget caps the items: 8 x 50 at most once it is reached
    _, capped = successive_halving(list(ITEMS), score, start_items=25, max_items=50)
    assert capped.items == 16 * 25 + 8 * 25
    with pytest.raises(ValueError):
        successive_halving([], score, start_items=1, max_items=1)


def test_simmerge_plus_k_is_simmerge_at_k_1_and_the_oracle_at_every_candidate():
    ranked = [3, 15, 7, 0]  # a predictor that puts the best candidate second

    def score(candidate):
        return ITEMS[candidate].mean()

    assert simmerge_plus_k(ranked, score, k=0, n_items=400) == (3, simmerge_plus_k(ranked, score, k=0, n_items=400)[1])
    assert simmerge_plus_k(ranked, score, k=0, n_items=400)[1].items == 0
    assert simmerge_plus_k(ranked, score, k=1, n_items=400)[0] == 3
    choice, spent = simmerge_plus_k(ranked, score, k=2, n_items=400)
    assert choice == 15 and (spent.merges, spent.items) == (2, 800)
    assert simmerge_plus_k(ranked, score, k=len(ranked), n_items=400)[0] == max(ranked, key=score)


def test_cma_es_finds_a_known_optimum_and_never_exceeds_its_budget():
    optimum = np.array([0.3, 0.7])
    evaluated = []

    def objective(x):
        evaluated.append(x)
        return -float(np.sum((x - optimum) ** 2))

    generations = cma_maximise(objective, [0.5, 0.5], sigma0=0.2, bounds=([0, 0], [1, 1]), budget=100, seed=1)
    final = generations[-1]
    assert final.evaluations == len(evaluated) <= 100
    assert np.allclose(final.best_x, optimum, atol=0.05) and final.best_value > -0.005
    assert all((0 <= x).all() and (x <= 1).all() for x in evaluated)
    assert [g.best_value for g in generations] == sorted(g.best_value for g in generations)
    few = cma_maximise(objective, [0.5, 0.5], sigma0=0.2, bounds=([0, 0], [1, 1]), budget=7, seed=1, popsize=3)
    assert [g.evaluations for g in few] == [3, 6]


def test_cma_es_is_reproducible_from_any_seed_including_zero_and_leaves_numpy_alone():
    def objective(x):
        return -float(np.sum((x - 0.25) ** 2))

    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    runs = [
        [g.best_x for g in cma_maximise(objective, [0.5, 0.5], sigma0=0.3, bounds=([0, 0], [1, 1]), budget=12, seed=0)]
        for _ in range(2)
    ]
    assert all(np.array_equal(x, y) for x, y in zip(*runs, strict=True))
    assert np.array_equal(np.random.get_state()[1], before)
    other = cma_maximise(objective, [0.5, 0.5], sigma0=0.3, bounds=([0, 0], [1, 1]), budget=12, seed=1)
    assert not np.array_equal(other[0].best_x, runs[0][0])


def test_search_and_evaluation_items_are_disjoint_halves_of_each_task():
    tasks = np.repeat([0, 1], [40, 20])
    search, evaluation = split_items(tasks, np.random.default_rng(3))
    assert not set(search) & set(evaluation) and len(search) + len(evaluation) == 60
    assert (np.bincount(tasks[search]) == [20, 10]).all()
