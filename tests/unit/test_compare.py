"""Tests of simmerge.evaluate.compare: what each grouped fold trains on, what it reports, and the guards that
would catch a leak.

The labels are random but structured like a run's: five experts, two tasks, two symmetric operators and one
order-sensitive one, a feature that carries the winner and one that carries nothing.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from simmerge.core.config import PREDICTOR_FAMILIES
from simmerge.evaluate import compare as compare_module
from simmerge.evaluate.compare import compare
from simmerge.evaluate.predictor import HeldOutCheckpointSplit
from simmerge.evaluate.selection import ORDER_RULES

EXPERTS = [f"e{i}" for i in range(5)]
TASKS = ["t1", "t2"]
OPERATORS = ["linear", "ties", "slerp"]
FEATURES = ["signal", "noise"]


def labels(seed: int = 0, *, experts: list[str] = EXPERTS, shuffle: bool = False) -> pd.DataFrame:
    """linear wins where the pair's ``signal`` is positive, ties elsewhere; slerp scores 0.45 ± its anchor's bias."""
    rng = np.random.default_rng(seed)
    signal = {pair: rng.uniform(-1, 1) for pair in itertools.combinations(experts, 2)}
    bias = dict(zip(experts, rng.uniform(-0.05, 0.05, len(experts)), strict=True))
    rows = []
    for a, b in itertools.permutations(experts, 2):
        x = signal[tuple(sorted((a, b)))]
        for task in TASKS:
            noise = rng.normal()
            for operator in OPERATORS:
                score = {"linear": 0.5 + 0.4 * x, "ties": 0.5 - 0.4 * x, "slerp": 0.45 + bias[a]}[operator]
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "task": task,
                        "operator": operator,
                        "order_sensitive": operator == "slerp",
                        "normalised": score,
                        "stderr": 0.001,
                        "parent_score_a": 1.0,
                        "parent_score_b": 1.0,
                        "merge_score": score,
                        "merge_score_stderr": 0.001,
                        "signal": x,
                        "noise": noise,
                    }
                )
    table = pd.DataFrame(rows)
    if shuffle:
        # permute whole merges (pair × operator × anchor) among themselves, keeping a merge's tasks together
        keys = table[["a", "b", "operator"]].drop_duplicates().reset_index(drop=True)
        source = keys.iloc[rng.permutation(len(keys))].reset_index(drop=True)
        scores = table.set_index(["a", "b", "operator", "task"])["normalised"]
        mapping = {
            (*key, task): scores[(*other, task)]
            for key, other in zip(keys.itertuples(index=False), source.itertuples(index=False), strict=True)
            for task in TASKS
        }
        shuffled = [mapping[(r.a, r.b, r.operator, r.task)] for r in table.itertuples()]
        table["normalised"] = table["merge_score"] = shuffled
    return table


def run(table: pd.DataFrame, protocol: str, families=("ridge", "per_operator_ridge"), **options):
    return compare(
        table, FEATURES, OPERATORS, protocol=protocol, seed=0, families=list(families), n_boot=200, **options
    )


@pytest.fixture(scope="module")
def by_checkpoint():
    """The held-out checkpoint comparison of :func:`labels`, with the family chosen between two."""
    return run(labels(), "checkpoint")


def involves(frame: pd.DataFrame, expert: str) -> pd.Series:
    return (frame["a"] == expert) | (frame["b"] == expert)


def pair_of(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(["|".join(sorted(p)) for p in zip(frame["a"], frame["b"], strict=True)], index=frame.index)


def test_each_held_out_checkpoint_is_tested_on_all_its_rows_and_trained_on_none(by_checkpoint):
    table = labels()
    _, candidates, folds, _, _ = by_checkpoint
    folds = folds.set_index("fold")
    assert list(folds.index) == EXPERTS
    for expert in EXPERTS:
        assert folds.loc[expert, "test_rows"] == involves(table, expert).sum()
        assert folds.loc[expert, "train_rows"] == (~involves(table, expert)).sum()
        # every test unit of the fold is a pair of the held-out checkpoint: the 4 others, each once
        tested = candidates.loc[candidates["fold"] == expert, "unit"].unique()
        assert sorted(tested) == sorted("|".join(sorted((expert, other))) for other in EXPERTS if other != expert)
        assert folds.loc[expert, "units"] == len(tested) == 4


def test_five_experts_make_ten_units_each_counted_once(by_checkpoint):
    units, _, _, summary, _ = by_checkpoint
    # each of the 10 pairs is tested in the folds of both its experts, and is one unit scored on their mean
    assert len(units) == units["unit"].nunique() == 10
    assert (units["folds"] == 2).all()
    assert units.set_index("unit").loc["e0|e3", "fold"] == "e0; e3"
    assert (summary["units"], summary["clusters"]) == (10, 10)
    assert summary["win"] + summary["tie"] + summary["loss"] == 10
    assert summary["simmerge"] == pytest.approx(units["simmerge"].mean())
    assert summary["difference"] == pytest.approx((units["simmerge"] - units["best_fixed"]).mean())


def test_task_units_are_pair_and_task_resampled_by_pair():
    units, _, _, summary, _ = run(labels(), "task_seen_pairs", families=["per_operator_ridge"])
    assert len(units) == 20 and set(units["pair"]) == set(pair_of(labels()))
    assert (summary["units"], summary["clusters"]) == (20, 10)
    assert summary["title"] == "new task for already-merged pairs"


def test_a_held_out_checkpoints_own_scores_do_not_reach_its_fold(by_checkpoint):
    # What a fold learns (family, model, best fixed policy) comes from its training rows only, so changing every
    # score of e0 leaves e0's predictions as they were, and changes the folds that train on e0.
    table = labels()
    changed = table.copy()
    with_e0 = involves(changed, "e0")
    flipped = np.where(changed.loc[with_e0, "operator"] == "ties", 0.99, 0.01)
    changed.loc[with_e0, "normalised"] = changed.loc[with_e0, "merge_score"] = flipped
    _, before, folds_before, _, _ = by_checkpoint
    _, after, folds_after, _, _ = run(changed, "checkpoint")
    mine_before, mine_after = before[before["fold"] == "e0"], after[after["fold"] == "e0"]
    np.testing.assert_array_equal(mine_before["predicted"], mine_after["predicted"])
    assert mine_before["family"].tolist() == mine_after["family"].tolist()
    assert (folds_before.set_index("fold").loc["e0", ["family", "best_fixed_policy"]]).equals(
        folds_after.set_index("fold").loc["e0", ["family", "best_fixed_policy"]]
    )
    assert not np.array_equal(mine_before["actual"], mine_after["actual"])  # it is scored on the new scores
    others_before, others_after = before[before["fold"] == "e1"], after[after["fold"] == "e1"]
    assert not np.allclose(others_before["predicted"], others_after["predicted"])


def test_near_duplicates_leave_training_together():
    table = labels()
    groups = {"e0": "e0+e1", "e1": "e0+e1"}
    units, candidates, folds, summary, _ = run(table, "checkpoint", families=["ridge"], checkpoint_groups=groups)
    folds = folds.set_index("fold")
    assert list(folds.index) == ["e0+e1", "e2", "e3", "e4"]
    grouped = involves(table, "e0") | involves(table, "e1")
    assert folds.loc["e0+e1", "test_rows"] == grouped.sum()
    assert folds.loc["e0+e1", "train_rows"] == (~grouped).sum()  # no pair of e1 trains the fold of e0
    assert units.set_index("unit").loc["e0|e1", "folds"] == 1  # within the group: tested once, with the group
    assert len(units) == 10 and summary["groups"] == ["e0+e1"]


def test_cold_start_never_trains_on_a_test_pair_or_the_held_out_task(monkeypatch):
    table = labels()
    seen = []
    real = compare_module.SimMergePredictor.fit

    def recording_fit(self, X, y, groups=None):  # noqa: N803
        seen.append(X.index)
        return real(self, X, y, groups)

    monkeypatch.setattr(compare_module.SimMergePredictor, "fit", recording_fit)
    units, candidates, folds, summary, _ = run(table, "cold_start", families=["ridge"])
    assert summary["title"] == "new checkpoint on a new task (cold start)"
    assert len(folds) == len(EXPERTS) * len(TASKS) == len(seen)
    for fold in folds.itertuples():
        expert, task = fold.fold.split("@")
        test = table[involves(table, expert) & (table["task"] == task)]
        train = table[~involves(table, expert) & (table["task"] != task)]
        assert (fold.test_rows, fold.train_rows) == (len(test), len(train))
        # the fold's training pairs share no pair with its test pairs, on any task
        assert not set(pair_of(train)) & set(pair_of(test))
    # a pair × task unit is tested with each of its experts: 10 pairs × 2 tasks, each once
    assert len(units) == 20 and (units["folds"] == 2).all() and summary["clusters"] == 10


def test_the_best_fixed_policy_is_chosen_without_the_test_fold():
    # every pair has linear 0.6 / ties 0.5, except the pairs of e0, where ties scores 0.99: over all data ties is
    # the best fixed operator, but a fold that holds out e0 must pick linear from its training pairs alone
    table = labels()
    table["normalised"] = np.where(table["operator"] == "linear", 0.6, 0.5)
    table.loc[involves(table, "e0") & (table["operator"] == "ties"), "normalised"] = 0.99
    table["merge_score"] = table["normalised"]
    units, _, folds, summary, _ = run(table, "checkpoint", families=["ridge"])
    assert folds.set_index("fold").loc["e0", "best_fixed_policy"] == "linear"
    assert folds.set_index("fold").loc["e1", "best_fixed_policy"] == "ties"
    # in hindsight (on the test units themselves) ties is best
    assert summary["best_fixed_hindsight_policy"] == "ties"


def test_the_summary_reports_the_protocol_each_fixed_operators_and_policys_mean():
    table = labels()
    units, _, folds, summary, _ = run(table, "checkpoint", families=["ridge"])
    assert summary["protocol"] == "checkpoint"
    # Each unit's score of a fixed operator, averaged over units (an order-sensitive one over both orders).
    expected = table.assign(unit=pair_of(table)).groupby(["unit", "operator"])["merge_score"].mean()
    expected = expected.groupby("operator").mean()
    assert summary["fixed_operators"] == {name: pytest.approx(expected[name]) for name in OPERATORS}
    assert summary["fixed_policies"]["linear"] == pytest.approx(expected["linear"])
    assert summary["fixed_policies"]["slerp/random"] == pytest.approx(expected["slerp"])
    assert set(summary["fixed_policies"]) == {"linear", "ties", *(f"slerp/{rule}" for rule in ORDER_RULES)}
    assert set(folds["family"]) == {"ridge"}


def test_a_fold_chooses_its_family_among_the_given_ones_and_the_family_table_is_nested(by_checkpoint):
    _, candidates, folds, summary, _ = by_checkpoint
    assert set(folds["family"]) <= {"ridge", "per_operator_ridge"}
    assert (candidates.groupby("fold")["family"].nunique() == 1).all()
    # ridge cannot make the winner depend on the signal; a ridge per operator can, and the inner CV sees it
    assert (folds["family"] == "per_operator_ridge").all()
    table = {row["family"]: row for row in summary["families"]}
    assert list(table) == ["ridge", "per_operator_ridge", "chosen per fold by inner CV (nested)"]
    assert table["chosen per fold by inner CV (nested)"]["simmerge"] == pytest.approx(summary["simmerge"])
    assert table["per_operator_ridge"]["simmerge"] > table["ridge"]["simmerge"]


def test_held_out_importances_rank_the_signal_over_the_noise():
    _, _, _, _, importances = run(labels(), "checkpoint", families=["per_operator_ridge"], importance_repeats=3)
    ranked = importances.set_index("input")
    assert set(ranked.index) == {*FEATURES, "operator"} and (ranked["folds"] == 5).all()
    assert ranked.loc["signal", "importance"] > 0.1 > ranked.loc["noise", "importance"]
    assert run(labels(), "checkpoint", families=["ridge"])[4].empty


def test_family_choice_sees_only_the_training_rows(monkeypatch):
    table = labels()
    seen = []
    real = compare_module.inner_family

    def recording(rows, *args, **kwargs):
        seen.append(set(zip(rows["a"], rows["b"], rows["task"], rows["operator"], strict=True)))
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(compare_module, "inner_family", recording)
    _, _, folds, _, _ = run(table, "checkpoint", families=["ridge", "per_operator_ridge"])
    assert len(seen) == len(folds) == len(EXPERTS)
    for expert, rows in zip(folds["fold"], seen, strict=True):
        assert rows and all(expert not in (a, b) for a, b, _, _ in rows)


def test_an_unknown_protocol_is_refused_naming_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown protocol 'pair'; choose from checkpoint, task_seen_pairs, cold_start"
    ):
        compare(labels(), FEATURES, OPERATORS, protocol="pair", seed=0)


# ---- guards that bite: no signal in, no gain out; and a leak would show ------------------------------------


class LeakyCheckpointSplit(HeldOutCheckpointSplit):
    """Leave one checkpoint out, but train on every row: the test fold leaks into training."""

    def split(self, X=None, y=None, groups=None):  # noqa: N803
        for train, test in super().split(X, y, groups):
            yield np.sort(np.concatenate([train, test])), test


def shuffled_comparison(family: str, *, leak: bool, monkeypatch) -> dict:
    if leak:
        real = compare_module.protocol_split
        monkeypatch.setattr(
            compare_module, "protocol_split", lambda *a, **k: (LeakyCheckpointSplit(), real(*a, **k)[1])
        )
    table = labels(seed=1, experts=[f"e{i}" for i in range(7)], shuffle=True)
    return run(table, "checkpoint", families=[family])[3]


@pytest.mark.parametrize("family", PREDICTOR_FAMILIES)
def test_shuffled_labels_give_no_significant_gain_for_any_family(family, monkeypatch):
    summary = shuffled_comparison(family, leak=False, monkeypatch=monkeypatch)
    assert summary["difference_lo"] <= 0.0, summary["difference"]


@pytest.mark.parametrize("family", ["forest", "hgb"])
def test_a_test_fold_leaked_into_training_shows_as_a_gain_on_shuffled_labels(family, monkeypatch):
    # the guard above would fail if the splits leaked: a high-capacity family memorises the leaked test rows
    summary = shuffled_comparison(family, leak=True, monkeypatch=monkeypatch)
    assert summary["difference_lo"] > 0.0 and summary["gap_closure"] > 0.5


def label_items(table: pd.DataFrame, *, n_items: int = 40, shared: bool, scale: float = 0.3, seed: int = 0):
    """Per-item outcomes whose mean is each row's label: the label plus zero-mean item noise, the same noise for
    every operator of a pair and task (``shared``: items that all merges find hard) or drawn per row."""
    rng = np.random.default_rng(seed)
    noise_of: dict = {}
    frames = []
    for row in table.itertuples():
        key = (*sorted((row.a, row.b)), row.task) if shared else (row.a, row.b, row.task, row.operator)
        if key not in noise_of:
            noise = rng.normal(0, scale, n_items)
            noise_of[key] = noise - noise.mean()
        values = row.normalised + noise_of[key]
        frames.append(
            pd.DataFrame(
                {
                    "a": row.a,
                    "b": row.b,
                    "task": row.task,
                    "operator": row.operator,
                    "subtask": row.task,
                    "doc_id": range(n_items),
                    "value": values,
                    "likelihood": values,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_items_shared_by_every_merge_separate_what_the_unpaired_errors_tie():
    table = labels(3).assign(stderr=0.3, merge_score_stderr=0.3)  # wide unpaired errors
    unpaired = run(table, "checkpoint")[3]
    paired = run(table, "checkpoint", items=label_items(table, shared=True))[3]
    assert unpaired["item_resampling"] == 0 and paired["item_resampling"] == 1
    # the same differences, paired on items every merge of a pair finds equally hard, separate
    assert paired["tie"] < unpaired["tie"] and paired["win"] + paired["loss"] > unpaired["win"] + unpaired["loss"]
    assert paired["simmerge"] == pytest.approx(unpaired["simmerge"])  # the scores themselves do not change


def test_resampling_items_as_well_as_pairs_widens_the_interval_when_items_are_noisy():
    table = labels(4)
    one_level = run(table, "checkpoint")[3]
    two_level = run(table, "checkpoint", items=label_items(table, shared=False, scale=0.5))[3]
    width = {name: s["difference_hi"] - s["difference_lo"] for name, s in (("one", one_level), ("two", two_level))}
    assert width["two"] > width["one"]
    assert two_level["difference"] == pytest.approx(one_level["difference"])


def test_the_comparison_reports_both_targets_and_whether_their_choices_agree():
    table = labels(5)
    table["likelihood_normalised"] = table["normalised"]
    units, _, _, summary, _ = run(table, "checkpoint", items=label_items(table, shared=True))
    targets = summary["targets"]
    assert summary["target"] == "metric" and set(targets) >= {"metric", "likelihood"}
    # the same numbers under both targets: the same choices
    assert targets["same_choice"] == 1.0 and targets["same_oracle"] == 1.0
    assert targets["likelihood"]["simmerge"] == pytest.approx(targets["metric"]["simmerge"])
    assert "items" not in units
