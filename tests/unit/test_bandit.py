"""The contextual bandit on synthetic streams with a known best arm, and arms that arrive mid-stream."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from simmerge.online.bandit import Arrival, World, regret_summary, replay

FEATURES = ["signal", "noise"]


def synthetic_labels(rewards, n_experts: int = 8, seed: int = 0) -> pd.DataFrame:
    """Ordered pairs of ``n_experts`` on two tasks; ``rewards(signal)`` gives every operator's reward."""
    rng = np.random.default_rng(seed)
    experts = [f"e{i}" for i in range(n_experts)]
    rows = []
    for a, b in itertools.permutations(experts, 2):
        for task in ("t1", "t2"):
            signal, noise = rng.uniform(-1, 1), rng.normal()
            for operator, reward in rewards(signal).items():
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "task": task,
                        "operator": operator,
                        "normalised": reward,
                        "signal": signal,
                        "noise": noise,
                    }
                )
    return pd.DataFrame(rows)


def contextual(signal: float) -> dict[str, float]:
    """linear wins when the signal is positive, ties when it is negative; slerp is never best."""
    return {"linear": 0.5 + 0.4 * signal, "ties": 0.5 - 0.4 * signal, "slerp": 0.3}


def test_bandit_learns_the_context_and_beats_random():
    labels = synthetic_labels(contextual)
    table = replay(labels, FEATURES, arrivals=[Arrival(0.0, checkpoints=("e6", "e7"))], rounds=150, seeds=[0, 1])
    summary = regret_summary(table).set_index("policy")
    assert summary.at["oracle", "cumulative_regret"] == 0
    # random pays about 0.3 per round against an oracle that reads the sign; the bandit a small fraction of it
    assert summary.at["bandit", "cumulative_regret"] < 0.25 * summary.at["random", "cumulative_regret"]
    # a context-free policy cannot read the sign: the best fixed operator is right half of the time
    assert summary.at["bandit", "cumulative_regret"] < 0.5 * summary.at["best_fixed", "cumulative_regret"]
    signal = labels.drop_duplicates(["a", "b", "task"]).set_index(["a", "b", "task"])["signal"]
    late = table[(table["policy"] == "bandit") & (table["round"] >= 75)]
    best = ["linear" if signal[key] > 0 else "ties" for key in zip(late["a"], late["b"], late["task"], strict=True)]
    assert (late["arm"].to_numpy() == np.array(best)).mean() > 0.9


def test_an_arm_that_arrives_mid_stream_is_explored_and_wins_when_best():
    labels = synthetic_labels(lambda signal: {"linear": 0.5, "ties": 0.4, "della": 0.9})
    table = replay(labels, FEATURES, arrivals=[Arrival(0.5, operators=("della",))], rounds=120, seeds=[0, 1, 2])
    bandit = table[table["policy"] == "bandit"]
    assert not (bandit[bandit["round"] < 60]["arm"] == "della").any()  # not there before it arrives
    after = bandit[bandit["round"] >= 60]
    first_try = after[after["arm"] == "della"].groupby("seed")["round"].min()
    assert len(first_try) == 3 and (first_try < 63).all()  # explored as soon as it is there
    assert (after[after["round"] >= 70]["arm"] == "della").mean() > 0.9  # and, being best, it wins
    frozen = table[table["policy"] == "offline_frozen"]
    assert not (frozen["arm"] == "della").any()  # the offline predictor cannot choose what it never saw
    summary = regret_summary(table).set_index("policy")
    assert summary.at["bandit", "cumulative_regret"] < summary.at["offline_frozen", "cumulative_regret"]


def test_checkpoints_and_tasks_arrive_on_schedule():
    labels = synthetic_labels(contextual, n_experts=4)
    arrivals = [Arrival(0.5, checkpoints=("e3",), tasks=("t2",))]
    world = World(labels, FEATURES, arrivals)
    assert world.available(0.0)["checkpoints"] == {"e0", "e1", "e2"}
    assert world.available(0.49)["tasks"] == {"t1"} and world.available(0.5)["tasks"] == {"t1", "t2"}
    table = replay(labels, FEATURES, arrivals=arrivals, rounds=40, seeds=[3])
    early = table[table["round"] < 20]
    assert not ((early["a"] == "e3") | (early["b"] == "e3") | (early["task"] == "t2")).any()
    late = table[table["round"] >= 20]
    assert ((late["a"] == "e3") | (late["b"] == "e3")).any() and (late["task"] == "t2").any()
    with pytest.raises(ValueError, match=r"operators \['ghost'\] are not in the labels"):
        World(labels, FEATURES, [Arrival(0.2, operators=("ghost",))])


def test_replay_is_reproducible_from_its_seeds():
    labels = synthetic_labels(contextual, n_experts=5)
    arrivals = [Arrival(0.3, operators=("slerp",))]
    first = replay(labels, FEATURES, arrivals=arrivals, rounds=30, seeds=[5, 6])
    second = replay(labels, FEATURES, arrivals=arrivals, rounds=30, seeds=[5, 6])
    pd.testing.assert_frame_equal(first, second)
