"""simmerge.evaluate.budget: labels rebuilt from per-item outcomes under a smaller budget, on constructed outcomes
whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simmerge.evaluate.budget import Budget, RunOutcomes, budget_labels, kept_items, separation

N = 40
KEY = {"subtask": "t", "doc_id": np.arange(N)}


def items(scores, seed=None) -> pd.DataFrame:
    return pd.DataFrame({"task": "t", **KEY, "score": np.asarray(scores, float), "seed": seed})


def outcomes() -> RunOutcomes:
    """Parents x (0.5 on t) and y (0.25); operator `good` gets every item x gets right plus 3 more, `same` is
    x, `noisy` (randomised, 3 seeds) is x on seed 0 and x with 4 items flipped on seeds 1 and 2."""
    x = np.array([1.0] * 20 + [0.0] * 20)
    y = np.array([1.0] * 10 + [0.0] * 30)
    good = x.copy()
    good[20:23] = 1.0
    flipped = x.copy()
    flipped[[0, 1, 20, 21]] = 1 - flipped[[0, 1, 20, 21]]
    noisy = pd.concat([items(x, 0), items(flipped, 1), items(flipped, 2)], ignore_index=True)
    seed_sd = float(np.std([x.mean(), flipped.mean(), flipped.mean()], ddof=1))
    labels = pd.DataFrame(
        [
            {
                "a": "x",
                "b": "y",
                "task": "t",
                "operator": op,
                "merged_a": "x",
                "merged_b": "y",
                "status": "ok",
                "seed_sd": sd,
            }
            for op, sd in (("good", np.nan), ("same", np.nan), ("noisy", seed_sd))
        ]
    )
    return RunOutcomes(
        labels=labels,
        merge_items={("x", "y", "good"): items(good), ("x", "y", "same"): items(x), ("x", "y", "noisy"): noisy},
        parent_items={("x", "t"): items(x), ("y", "t"): items(y)},
    )


def test_the_full_budget_rebuilds_each_label_from_its_items():
    scores, label_items = budget_labels(outcomes(), Budget("full"))
    score = scores.set_index("operator")["merge_score"]
    assert score["good"] == pytest.approx(23 / 40 / 0.5)  # normalised by the better parent, x
    assert score["same"] == pytest.approx(1.0)
    assert score["noisy"] == pytest.approx(np.mean([20 / 40, 20 / 40, 20 / 40]) / 0.5)  # two flips each way
    assert len(label_items) == 3 * N
    # `same` has no seed spread; `noisy`'s is its seed sd over the better parent, over 3 seeds
    variance = scores.set_index("operator")["seed_variance"]
    assert variance["same"] == 0.0 and variance["noisy"] == pytest.approx(0.0)  # flips cancel: equal means


def test_a_budget_keeps_a_seeded_subset_of_items_and_its_first_seeds():
    kept = kept_items(outcomes().parent_items, 0.25, seed=3)
    assert len(kept["t"]) == 10 and kept["t"].equals(kept_items(outcomes().parent_items, 0.25, seed=3)["t"])
    assert not kept["t"].equals(kept_items(outcomes().parent_items, 0.25, seed=4)["t"])
    scores, label_items = budget_labels(outcomes(), Budget("one seed", n_seeds=1, operators=("same", "noisy")))
    assert set(scores["operator"]) == {"same", "noisy"}
    # seed 0 of `noisy` is x itself: the same label as `same`, item for item
    noisy = label_items[label_items["operator"] == "noisy"]["value"].to_numpy()
    assert np.array_equal(noisy, label_items[label_items["operator"] == "same"]["value"].to_numpy())


def test_separation_counts_a_pair_that_separates_under_the_paired_rule_only():
    table = separation(outcomes(), [Budget("full"), Budget("a tenth", 0.1)], z=1.0, draws=4).set_index("budget")
    full = table.loc["full"]
    # good − same: +1/0.5 on 3 of 40 items, 0 elsewhere. Paired SE = sd(differences)/sqrt(40) = 0.084, z = 1.78;
    # unpaired SE = sqrt(0.158² + 0.158²) = 0.224, z = 0.67: separated under the paired rule only
    assert (full["pairs"], full["separated"], full["separated_unpaired"], full["same_best"]) == (1, 1, 0, 1)
    assert full["median_tied"] == 1 and full["separated_sd"] == 0
    # 4 items hold at most one of the 3 differing items in each of these draws: z ≤ 1, never separated
    assert (table.loc["a tenth", "pairs"], table.loc["a tenth", "separated"]) == (1, 0)
