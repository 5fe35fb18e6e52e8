"""Tests of simmerge.evaluate.labels: the labels table joins each ordered pair's features with its merges' scores."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simmerge.core.io import read_json, write_json, write_table
from simmerge.core.provenance import provenance
from simmerge.evaluate.labels import LABEL_COLUMNS, labels_table, seed_noise_note
from simmerge.evaluate.paired import label_seed_variance

# Feature values that name their pair and task, so a row shows which feature row it was joined with.
FEATURE = {("a", "b"): 10.0, ("b", "a"): 20.0, ("a", "c"): 30.0}
TASK_OFFSET = {"t1": 0.1, "t2": 0.2}


def write_features(folder, a, b, tasks=("t1", "t2")):
    """``features/pairs/<a>__<b>.parquet``: one row per task, two features."""
    path = folder / f"{a}__{b}.parquet"
    rows = [{"a": a, "b": b, "task": t, "f_pair": FEATURE[(a, b)] + TASK_OFFSET[t], "f_const": 1.0} for t in tasks]
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def write_record(folder, a, b, operator, *, tasks, status="ok", seeds=None, order_sensitive=False):
    """``merges/<a>__<b>/<operator>.json`` as merge_score writes it; task scores and parent scores are given."""
    path = folder / f"{a}__{b}" / f"{operator}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "a": a,
        "b": b,
        "operator": operator,
        "method": operator,
        "order_sensitive": order_sensitive,
        "randomised": seeds is not None,
        "status": status,
        "seeds": seeds,
        "score": float(np.mean([entry["normalised"] for entry in tasks.values()])),
        "score_stderr": 0.05,
        "wall_seconds": 12.3,  # run-dependent: must not reach the labels
        "tasks": tasks,
    }
    write_json(record, path)
    return path


def scored(metric, normalised, parents, *, stderr=0.1, seed_sd=None):
    return {"metric": metric, "stderr": stderr, "seed_sd": seed_sd, "normalised": normalised, "parent_scores": parents}


@pytest.fixture
def run(tmp_path):
    """Features of both orders of (a, b); linear (symmetric, one record for both orders) and slerp (one per order)."""
    features = [write_features(tmp_path, "a", "b"), write_features(tmp_path, "b", "a")]
    merges = [
        write_record(
            tmp_path,
            "a",
            "b",
            "linear",
            tasks={"t1": scored(0.6, 0.75, [0.8, 0.4]), "t2": scored(0.3, 0.5, [0.2, 0.6])},
        ),
        write_record(
            tmp_path, "a", "b", "slerp", tasks={"t2": scored(0.5, 0.9, [0.2, 0.6])}, order_sensitive=True, seeds=[7, 8]
        ),
        write_record(
            tmp_path, "b", "a", "slerp", tasks={"t2": scored(0.1, 0.1, [0.6, 0.2])}, order_sensitive=True, seeds=[7, 8]
        ),
    ]
    grid = [
        {"a": "a", "b": "b", "operator": "linear", "merged": ["a", "b"]},
        {"a": "a", "b": "b", "operator": "slerp", "merged": ["a", "b"]},
        {"a": "b", "b": "a", "operator": "linear", "merged": ["a", "b"]},
        {"a": "b", "b": "a", "operator": "slerp", "merged": ["b", "a"]},
    ]
    return features, merges, grid


def test_one_row_per_grid_entry_and_scored_task_in_grid_order(run):
    table = labels_table(*run)[0]
    assert list(table.columns) == [*LABEL_COLUMNS, "f_pair", "f_const"]
    keys = list(zip(table["a"], table["b"], table["operator"], table["task"], strict=True))
    assert keys == [
        ("a", "b", "linear", "t1"),
        ("a", "b", "linear", "t2"),
        ("a", "b", "slerp", "t2"),  # slerp was scored on t2 only: no t1 row
        ("b", "a", "linear", "t1"),
        ("b", "a", "linear", "t2"),
        ("b", "a", "slerp", "t2"),
    ]
    assert "wall_seconds" not in table


def test_a_symmetric_merge_serves_both_orders_with_the_parents_in_the_labelled_order(run):
    table = labels_table(*run)[0].set_index(["a", "b", "operator", "task"])
    ab, ba = table.loc[("a", "b", "linear", "t1")], table.loc[("b", "a", "linear", "t1")]
    assert (ab["merged_a"], ab["merged_b"]) == (ba["merged_a"], ba["merged_b"]) == ("a", "b")
    assert ab["metric"] == ba["metric"] == 0.6 and ab["normalised"] == ba["normalised"] == 0.75
    # the record lists parent scores in the merged order (a, b): the row of (b, a) swaps them
    assert (ab["parent_score_a"], ab["parent_score_b"]) == (0.8, 0.4)
    assert (ba["parent_score_a"], ba["parent_score_b"]) == (0.4, 0.8)
    # each order keeps its own pair features
    assert ab["f_pair"] == pytest.approx(10.1) and ba["f_pair"] == pytest.approx(20.1)
    assert ab["merge_score"] == ba["merge_score"] == pytest.approx((0.75 + 0.5) / 2)


def test_an_order_sensitive_merge_has_a_record_per_order_and_counts_its_seeds(run):
    table = labels_table(*run)[0].set_index(["a", "b", "operator", "task"])
    ab, ba = table.loc[("a", "b", "slerp", "t2")], table.loc[("b", "a", "slerp", "t2")]
    assert (ba["merged_a"], ba["merged_b"]) == ("b", "a")
    assert (ab["normalised"], ba["normalised"]) == (0.9, 0.1)
    assert (ba["parent_score_a"], ba["parent_score_b"]) == (0.6, 0.2)
    assert ab["order_sensitive"] and ab["randomised"] and ab["method"] == "slerp"
    assert ab["n_seeds"] == 2 and table.loc[("a", "b", "linear", "t1"), "n_seeds"] == 1


def test_scores_are_floats_even_when_a_failed_merge_has_none(tmp_path):
    features = [write_features(tmp_path, "a", "b")]
    failed = {"t1": scored(None, 0.0, [0.8, 0.4], stderr=None)}
    merges = [write_record(tmp_path, "a", "b", "ties", tasks=failed, status="failed")]
    table = labels_table(features, merges, [{"a": "a", "b": "b", "operator": "ties", "merged": ["a", "b"]}])[0]
    row = table.iloc[0]
    assert row["status"] == "failed" and row["normalised"] == 0.0
    assert math.isnan(row["metric"]) and math.isnan(row["stderr"]) and math.isnan(row["seed_sd"])
    numeric = LABEL_COLUMNS[LABEL_COLUMNS.index("metric") : LABEL_COLUMNS.index("n_seeds")]
    assert (table[numeric].dtypes == "float64").all()


def test_the_same_inputs_give_the_same_table(run):
    pd.testing.assert_frame_equal(labels_table(*run)[0], labels_table(*run)[0], check_exact=True)


def test_provenance_does_not_reach_the_labels_so_they_stay_byte_identical(run, tmp_path):
    """Records of another commit, CPU and parent weights give the same labels file, byte for byte."""
    features, merges, grid = run
    write_table(labels_table(features, merges, grid)[0], tmp_path / "before.parquet")
    for number, path in enumerate(merges):
        elsewhere = {**provenance(), "commit": str(number) * 40, "cpu": f"CPU {number}", "cpu_flags": ["avx512f"]}
        write_json({**read_json(path), "provenance": elsewhere, "checkpoints_sha256": {"a": str(number)}}, path)
    table = labels_table(features, merges, grid)[0]
    assert not [column for column in table if "provenance" in column or "sha256" in column]
    write_table(table, tmp_path / "after.parquet")
    assert (tmp_path / "after.parquet").read_bytes() == (tmp_path / "before.parquet").read_bytes()


def test_a_missing_record_or_feature_row_is_named(run, tmp_path):
    features, merges, grid = run
    with pytest.raises(KeyError, match=r"no merge record for operator 'ties' on \(a, b\)"):
        labels_table(features, merges, [*grid, {"a": "a", "b": "b", "operator": "ties", "merged": ["a", "b"]}])
    with pytest.raises(KeyError, match=r"no pair features for \(b, a\)"):
        labels_table(features[:1], merges, grid)
    only_t1 = tmp_path / "only_t1"
    only_t1.mkdir()
    with pytest.raises(KeyError, match=r"pair features of \(a, b\) have no row for task 't2'"):
        labels_table([write_features(only_t1, "a", "b", tasks=("t1",))], merges, grid[:1])


def write_items(path, scores, likelihoods, *, task, seeds=None):
    """A per-item outcomes file with the given item scores (one run, or one block per seed)."""
    blocks = seeds or [None]
    rows = [
        {"seed": seed, "task": task, "subtask": task, "doc_id": i, "score": s, "likelihood": lk}
        for seed, (run_scores, run_likelihoods) in zip(blocks, zip(scores, likelihoods, strict=True), strict=True)
        for i, (s, lk) in enumerate(zip(run_scores, run_likelihoods, strict=True))
    ]
    write_table(pd.DataFrame(rows), path)
    return path


def test_label_items_average_to_the_label_and_normalise_the_likelihood_by_the_better_parent(tmp_path):
    features = [write_features(tmp_path, "a", "b", tasks=("t1",)), write_features(tmp_path, "b", "a", tasks=("t1",))]
    # two seeds on 4 items: metric 0.5 and 0.25, parents 0.5 / 1.0 -> normalised (0.5 + 0.25) / 2
    record = write_record(tmp_path, "a", "b", "dare", tasks={"t1": scored(0.375, 0.375, [0.5, 1.0])}, seeds=[1, 2])
    data = read_json(record)
    data["runs"] = [{"seed": 1, "status": "ok"}, {"seed": 2, "status": "ok"}]
    write_json(data, record)
    write_items(
        tmp_path / "a__b" / "dare.items.parquet",
        [[1, 1, 0, 0], [1, 0, 0, 0]],
        [[0.4, 0.4, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2]],
        task="t1",
        seeds=[1, 2],
    )
    experts = []
    for name, score, likelihood in (("a", [1, 0, 1, 0], 0.2), ("b", [1, 1, 1, 1], 0.5)):
        (tmp_path / name).mkdir()
        experts.append(write_items(tmp_path / name / "t1.items.parquet", [score], [[likelihood] * 4], task="t1"))
    grid = [
        {"a": "a", "b": "b", "operator": "dare", "merged": ["a", "b"]},
        {"a": "b", "b": "a", "operator": "dare", "merged": ["a", "b"]},
    ]
    table, items = labels_table(features, [record], grid, experts)
    row = table.set_index(["a", "b"]).loc[("a", "b")]
    assert row["normalised"] == pytest.approx(0.375)
    assert row["likelihood"] == pytest.approx(0.25)  # mean over seeds of the merge's mean continuous score
    assert (row["likelihood_parent_a"], row["likelihood_parent_b"]) == pytest.approx((0.2, 0.5))
    assert row["likelihood_normalised"] == pytest.approx(0.25 / 0.5)
    ab = items[(items["a"] == "a") & (items["b"] == "b")]
    assert ab["value"].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])  # per item: mean over seeds / 1.0
    assert ab["value"].mean() == pytest.approx(row["normalised"])
    assert ab["likelihood"].mean() == pytest.approx(row["likelihood_normalised"])
    assert len(items) == 8  # both orders of the symmetric record


def test_a_failed_merge_scores_the_failure_score_on_every_parent_item(tmp_path):
    features = [write_features(tmp_path, "a", "b", tasks=("t1",))]
    record = write_record(tmp_path, "a", "b", "ties", tasks={"t1": scored(None, 0.0, [0.5, 1.0])}, status="failed")
    write_items(tmp_path / "a__b" / "ties.items.parquet", [[]], [[]], task="t1")
    experts = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        experts.append(write_items(tmp_path / name / "t1.items.parquet", [[1, 0, 1]], [[0.3] * 3], task="t1"))
    _, items = labels_table(
        features, [record], [{"a": "a", "b": "b", "operator": "ties", "merged": ["a", "b"]}], experts
    )
    assert items["value"].tolist() == [0.0, 0.0, 0.0] and items["likelihood"].tolist() == [0.0, 0.0, 0.0]


def test_a_one_seed_label_gets_its_operators_seed_spread_pooled_over_the_pairs_merged_with_several(tmp_path):
    # merges.repeat_pairs: dare is merged with three seeds on (a, b), with one on (a, c)
    features = [write_features(tmp_path, *pair) for pair in [("a", "b"), ("b", "a"), ("a", "c")]]
    repeated = {
        "t1": scored(0.6, 0.75, [0.8, 0.4], seed_sd=0.08),  # relative seed variance (0.08 / 0.8)² = 0.01
        "t2": scored(0.3, 0.5, [0.2, 0.6], seed_sd=0.12),  # (0.12 / 0.6)² = 0.04
    }
    once = {"t1": scored(0.5, 0.625, [0.8, 0.5]), "t2": scored(0.2, 0.5, [0.2, 0.4])}
    merges = [
        write_record(tmp_path, "a", "b", "dare", tasks=repeated, seeds=[7, 8, 9]),
        write_record(tmp_path, "a", "c", "dare", tasks=once, seeds=[7]),
        write_record(tmp_path, "a", "c", "linear", tasks=once),
    ]
    grid = [
        {"a": "a", "b": "b", "operator": "dare", "merged": ["a", "b"]},
        {"a": "b", "b": "a", "operator": "dare", "merged": ["a", "b"]},  # the same merge: pooled once
        {"a": "a", "b": "c", "operator": "dare", "merged": ["a", "c"]},
        {"a": "a", "b": "c", "operator": "linear", "merged": ["a", "c"]},
    ]
    table = labels_table(features, merges, grid)[0]
    by = table.set_index(["a", "b", "operator", "task"]).sort_index()
    pooled = (0.01 + 0.04) / 2
    assert not by.loc[("a", "b", "dare"), "seed_sd_pooled"].any()
    assert list(by.loc[("a", "b", "dare"), "seed_sd"]) == [0.08, 0.12]  # measured: kept
    single = by.loc[("a", "c", "dare")]
    assert single["seed_sd_pooled"].all()
    assert single.loc["t1", "seed_sd"] == pytest.approx(pooled**0.5 * 0.8)  # × its own better parent
    assert single.loc["t2", "seed_sd"] == pytest.approx(pooled**0.5 * 0.4)
    assert single["merge_score_stderr"].tolist() == pytest.approx([(0.05**2 + pooled / 2) ** 0.5] * 2)
    # a deterministic operator has no seed noise
    assert by.loc[("a", "c", "linear"), "seed_sd"].isna().all()
    assert not by.loc[("a", "c", "linear"), "seed_sd_pooled"].any()
    # the paired rule adds to the one-seed label the pooled variance of a mean over its two tasks
    frame = table.assign(unit=table["a"] + "|" + table["b"], anchor="")
    variance = label_seed_variance(frame).set_index(["unit", "operator"])["seed_variance"]
    assert variance[("a|c", "dare")] == pytest.approx(pooled / 2)
    assert variance[("a|b", "dare")] == pytest.approx((0.01 / 3 + 0.04 / 3) / 4)
    assert variance[("a|c", "linear")] == 0.0
    assert seed_noise_note(table) == (
        "Seed noise of the randomised operators (dare): 4 label(s) on 1 pair(s) merged with 3 seeds measure it; "
        "2 label(s) of one seed on 1 pair(s) carry the spread pooled per operator over them (seed sd over the "
        "better parent: dare 0.158)."
    )


def test_an_operator_never_merged_with_several_seeds_keeps_its_seed_noise_unmeasured(tmp_path):
    features = [write_features(tmp_path, "a", "c")]
    once = {"t1": scored(0.5, 0.625, [0.8, 0.5])}
    merges = [write_record(tmp_path, "a", "c", "dare", tasks=once, seeds=[7])]
    table = labels_table(features, merges, [{"a": "a", "b": "c", "operator": "dare", "merged": ["a", "c"]}])[0]
    assert math.isnan(table["seed_sd"].iloc[0]) and not table["seed_sd_pooled"].iloc[0]
    assert table["merge_score_stderr"].iloc[0] == 0.05
    assert (
        seed_noise_note(table)
        == "Seed noise of the randomised operators (dare): not measured, every merge has one seed."
    )
