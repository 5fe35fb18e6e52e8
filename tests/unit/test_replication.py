"""Replication of labels between two runs: known-answer differences, noise ratio, oracle changes, the CLI."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from simmerge.cli import main
from simmerge.core.layout import RunLayout
from simmerge.evaluate.replication import (
    compare_labels,
    compare_verdicts,
    expert_scores_of,
    label_stderr,
    summary_markdown,
)

OPERATORS = ("linear", "ties", "slerp")


def run_labels(scores: dict[tuple[str, str], dict[str, float]], *, stderr: float = 0.1, experts=None):
    """A labels table: two tasks per (ordered pair, operator), the label on each task equal to the merge score.

    ``experts`` gives each expert's score on every task (default x 0.5, y 0.4); the label's SE is ``stderr``.
    """
    experts = experts or {"x": 0.5, "y": 0.4}
    rows = []
    for (a, b), by_operator in scores.items():
        parents = (experts[a], experts[b])
        for operator, score in by_operator.items():
            for task in ("t1", "t2"):
                best = max(parents)
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "task": task,
                        "operator": operator,
                        "status": "ok",
                        "metric": score * best,
                        "stderr": stderr * best,
                        "parent_score_a": parents[0],
                        "parent_score_b": parents[1],
                        "normalised": score,
                        "merge_score": score,
                        "merge_score_stderr": stderr / math.sqrt(2),
                    }
                )
    return pd.DataFrame(rows)


BASE = {
    ("x", "y"): {"linear": 0.6, "ties": 0.9, "slerp": 0.3},
    ("y", "x"): {"linear": 0.6, "ties": 0.9, "slerp": 0.5},
}


def test_identical_runs_differ_by_nothing():
    table = run_labels(BASE)
    result = compare_labels(table, table)
    assert (result.labels["delta"] == 0).all()
    assert len(result.labels) == 12 and result.n_only_a == result.n_only_b == 0
    label = result.summary.set_index("quantity").loc["label"]
    assert label["mean_abs_delta"] == 0 and label["sd_delta"] == 0 and label["ratio"] == 0
    assert label["frac_outside"] == 0
    assert not result.pairs["changed"].any()
    assert result.pairs["spearman"].tolist() == [1.0, 1.0]
    assert (result.experts["delta"] == 0).all()


def test_a_known_shift_is_the_mean_difference_with_no_spread():
    a = run_labels(BASE)
    b = a.assign(normalised=a["normalised"] + 0.05, merge_score=a["merge_score"] + 0.05)
    result = compare_labels(a, b)
    label = result.summary.set_index("quantity").loc["label"]
    assert label["mean_delta"] == pytest.approx(0.05)
    assert label["mean_abs_delta"] == pytest.approx(0.05)
    assert label["sd_delta"] == pytest.approx(0.0, abs=1e-12)
    # label SE is the metric's stderr over the better parent: 0.1 in each run
    assert result.labels["se_delta"].tolist() == pytest.approx([math.sqrt(0.02)] * 12)
    assert label["rms_se"] == pytest.approx(math.sqrt(0.02))
    assert label["frac_outside"] == 0  # 0.05 < 1.96 * 0.141
    assert not result.pairs["changed"].any()


def test_the_ratio_compares_the_spread_of_differences_with_the_eval_noise():
    a = run_labels(BASE)
    shifts = [0.3, -0.3] * 6  # alternate signs: SD ~ 0.3, combined SE 0.141
    b = a.assign(normalised=a["normalised"] + shifts)
    result = compare_labels(a, b)
    label = result.summary.set_index("quantity").loc["label"]
    sd = pd.Series(shifts).std(ddof=1)
    assert label["sd_delta"] == pytest.approx(sd)
    assert label["ratio"] == pytest.approx(sd / math.sqrt(0.02))
    assert label["frac_outside"] == 1.0  # |0.3| > 1.96 * 0.141 = 0.277
    # per task: t1 gets every +0.3 and t2 every -0.3 (the rows alternate tasks), so no spread within a task
    per_task = result.summary.set_index("quantity").loc[["label · t1", "label · t2"]]
    assert per_task["n"].tolist() == [6, 6]
    assert per_task["mean_delta"].tolist() == pytest.approx([0.3, -0.3])
    assert per_task["sd_delta"].tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert compare_labels(a, b, z=3.0).summary.set_index("quantity").loc["label", "frac_outside"] == 0.0


def test_an_oracle_change_and_a_reversed_ranking_are_detected():
    a = run_labels(BASE, stderr=0.001)
    changed = {
        ("x", "y"): {"linear": 0.6, "ties": 0.3, "slerp": 0.9},  # ties → slerp
        ("y", "x"): {"linear": 0.6, "ties": 0.9, "slerp": 0.5},  # same
    }
    result = compare_labels(a, run_labels(changed, stderr=0.001))
    pairs = result.pairs.set_index(["a", "b"])
    assert pairs.loc[("x", "y"), "best_a"] == "ties" and pairs.loc[("x", "y"), "best_b"] == "slerp"
    assert pairs.loc[("x", "y"), "changed"] and pairs.loc[("x", "y"), "changed_beyond_ties"]
    assert pairs.loc[("x", "y"), "spearman"] == pytest.approx(-1.0)
    assert not pairs.loc[("y", "x"), "changed"]
    assert "Oracle changed on 1 of 2 pairs (1 beyond ties)" in summary_markdown(result)


def test_an_oracle_change_within_ties_is_not_beyond_them():
    a = run_labels({("x", "y"): {"linear": 0.60, "ties": 0.61}}, stderr=0.1)
    b = run_labels({("x", "y"): {"linear": 0.61, "ties": 0.60}}, stderr=0.1)
    pairs = compare_labels(a, b).pairs.iloc[0]
    assert pairs["changed"] and not pairs["changed_beyond_ties"]


def test_undefined_labels_and_missing_rows_are_counted_not_compared():
    a = run_labels(BASE)
    b = a.copy()
    b.loc[0, "normalised"] = math.nan  # the better parent scored 0 in B
    b = b.iloc[:-2]  # one (pair, operator) missing in B
    result = compare_labels(a, b)
    label = result.summary.set_index("quantity").loc["label"]
    assert label["n"] == 9 and label["n_undefined"] == 1
    assert result.n_only_a == 2 and result.n_only_b == 0


def test_a_difference_without_eval_noise_is_outside_unless_zero():
    a = run_labels({("x", "y"): {"linear": 0.5, "ties": 0.7}}, stderr=0.0)
    b = a.assign(normalised=[0.5, 0.5, 0.8, 0.8])
    result = compare_labels(a, b)
    assert result.labels["outside"].tolist() == [False, False, True, True]
    assert result.labels["z"].tolist() == [0.0, 0.0, math.inf, math.inf]


def test_label_stderr_scales_by_the_better_parent_and_is_undefined_at_zero():
    table = pd.DataFrame({"stderr": [0.1, 0.1], "parent_score_a": [0.5, 0.0], "parent_score_b": [0.25, 0.0]})
    assert label_stderr(table).tolist()[0] == pytest.approx(0.2)
    assert math.isnan(label_stderr(table).tolist()[1])


def test_expert_scores_differences_come_from_the_parent_scores():
    a = run_labels(BASE)
    b = run_labels(BASE, experts={"x": 0.5, "y": 0.45})
    experts = compare_labels(a, b).experts.set_index(["expert", "task"])
    assert len(experts) == 4
    assert experts.loc[("x", "t1"), "delta"] == pytest.approx(0.0)
    assert experts.loc[("y", "t2"), "delta"] == pytest.approx(0.05)


def test_a_table_giving_an_expert_two_scores_is_refused():
    mixed = run_labels(BASE)
    mixed.loc[0, "parent_score_a"] = 0.7  # x scores 0.7 here, 0.5 everywhere else: labels of two runs mixed
    with pytest.raises(ValueError, match="expert 'x' several scores on task 't1'"):
        expert_scores_of(mixed)


def test_cli_prints_the_summary_and_writes_the_rows(tmp_path, capsys):
    table = run_labels({("x", "y"): {"linear": 0.6, "ties": 0.9}})
    for name, shift in (("run_a", 0.0), ("run_b", 0.1)):
        layout = RunLayout(tmp_path / name)
        layout.root.mkdir()
        table.assign(normalised=table["normalised"] + shift).to_parquet(layout.labels_parquet)
    out = tmp_path / "rows.csv"
    assert main(["replication", str(tmp_path / "run_a"), str(tmp_path / "run_b"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "A = run_a, B = run_b" in text and "| label | 4 | 0 | 0.100 | 0.100 |" in text
    assert pd.read_csv(out)["delta"].tolist() == pytest.approx([0.1] * 4)


def test_cli_names_a_run_without_labels(tmp_path, capsys):
    assert main(["replication", str(tmp_path), str(tmp_path)]) == 2
    assert "labels.parquet is missing" in capsys.readouterr().err


def run_items(vectors: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    """Label items: per (a, b, operator) the same item vector on tasks t1 and t2 (as :func:`run_labels` repeats
    a label on both tasks)."""
    rows = [
        {"a": a, "b": b, "task": task, "operator": operator, "subtask": task, "doc_id": doc_id, "value": value}
        for (a, b, operator), vector in vectors.items()
        for task in ("t1", "t2")
        for doc_id, value in enumerate(vector)
    ]
    return pd.DataFrame(rows)


def test_the_paired_error_of_a_delta_comes_from_the_item_differences():
    a = run_labels({("x", "y"): {"linear": 0.5}})
    b = run_labels({("x", "y"): {"linear": 0.75}})
    items_a = run_items({("x", "y", "linear"): [1, 0, 1, 0]})
    items_b = run_items({("x", "y", "linear"): [1, 1, 1, 0]})  # one item more right: d = (0, 1, 0, 0)
    result = compare_labels(a, b, items_a=items_a, items_b=items_b)
    assert result.paired
    # per task: Var(d) = 0.25 (n - 1 denominator), / 4 items -> SE 0.25; Δ 0.25 is 1 paired SE
    assert result.labels["se_paired"].tolist() == pytest.approx([0.25, 0.25])
    assert result.labels["z_paired"].tolist() == pytest.approx([1.0, 1.0])
    assert result.labels["n_items"].tolist() == [4, 4]
    # the merge score averages the two tasks: variance (0.0625 + 0.0625) / 2² -> SE 0.177
    assert result.scores["se_paired"].tolist() == pytest.approx([math.sqrt(0.03125)])
    # centred per task: A (.5, -.5, .5, -.5), B (.25, .25, .25, -.75) -> 0.5 / sqrt(1 · 0.75)
    label = result.summary.set_index("quantity").loc["label"]
    assert label["item_correlation"] == pytest.approx(0.5 / math.sqrt(0.75))
    assert label["n_paired"] == 2 and label["frac_outside_paired"] == 0.0
    assert "outside 1.96 paired SE" in summary_markdown(result)
    unpaired = compare_labels(a, b, items_a=items_a)  # one run without items: unpaired only
    assert not unpaired.paired and "se_paired" not in unpaired.labels
    assert unpaired.summary.set_index("quantity").loc["label", "n_paired"] == 0


def test_with_items_the_oracles_tie_band_is_paired():
    # ties gets two more of 20 items right than linear: gap 0.1; unpaired combined SE 0.15 ties them,
    # the paired SE sqrt(Var(d) / 20) = 0.069 separates them at tie_z 1
    linear = [1.0] * 8 + [0.0] * 12
    ties = [1.0] * 10 + [0.0] * 10
    table = run_labels({("x", "y"): {"linear": 0.4, "ties": 0.5}}, stderr=0.15)
    items = run_items({("x", "y", "linear"): linear, ("x", "y", "ties"): ties})
    assert compare_labels(table, table).pairs.loc[0, "tied_a"] == "ties;linear"
    assert compare_labels(table, table, items_a=items, items_b=items).pairs.loc[0, "tied_a"] == "ties"


def verdict_summary(differences: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    """A compare/summary.csv: per protocol SimMerge − best fixed with its interval."""
    return pd.DataFrame(
        [
            {
                "protocol": protocol,
                "title": f"title of {protocol}",
                "difference": mid,
                "difference_lo": low,
                "difference_hi": high,
                "win": 3,
                "tie": 5,
                "loss": 2,
                "gap_closure": 0.5,
                "top1_tied": 0.4,
            }
            for protocol, (mid, low, high) in differences.items()
        ]
    )


def test_verdicts_classify_each_runs_interval_and_flag_a_change():
    a = verdict_summary({"checkpoint": (0.01, -0.05, 0.07), "cold_start": (-0.1, -0.19, -0.04)})
    b = verdict_summary({"checkpoint": (0.08, 0.02, 0.14), "cold_start": (-0.09, -0.15, -0.01)})
    verdicts = compare_verdicts(a, b).set_index("protocol")
    assert verdicts.loc["checkpoint", "verdict_a"] == "not distinguishable"
    assert verdicts.loc["checkpoint", "verdict_b"] == "better" and verdicts.loc["checkpoint", "verdict_changed"]
    assert verdicts.loc["cold_start", ["verdict_a", "verdict_b"]].tolist() == ["worse", "worse"]
    assert not verdicts.loc["cold_start", "verdict_changed"]


def test_cli_pairs_on_items_and_reports_the_verdicts_when_both_runs_have_them(tmp_path, capsys):
    a = run_labels({("x", "y"): {"linear": 0.5}})
    b = run_labels({("x", "y"): {"linear": 0.75}})
    items = {
        "run_a": run_items({("x", "y", "linear"): [1, 0, 1, 0]}),
        "run_b": run_items({("x", "y", "linear"): [1, 1, 1, 0]}),
    }
    summaries = {
        "run_a": verdict_summary({"checkpoint": (0.01, -0.05, 0.07)}),
        "run_b": verdict_summary({"checkpoint": (-0.08, -0.14, -0.02)}),
    }
    for name, table in (("run_a", a), ("run_b", b)):
        layout = RunLayout(tmp_path / name)
        layout.compare_summary.parent.mkdir(parents=True)
        table.to_parquet(layout.labels_parquet)
        items[name].to_parquet(layout.label_items)
        summaries[name].to_csv(layout.compare_summary, index=False)
    assert main(["replication", str(tmp_path / "run_a"), str(tmp_path / "run_b")]) == 0
    text = capsys.readouterr().out
    assert "| label | 2 | 0 | 0.250 | 0.250 | 0.000 | 0.141 | 0.00 | 0.000 | 0.250 | 0.000 | 0.58 |" in text
    assert "the verdict changed on 1 of 1 protocols" in text
    assert "| title of checkpoint | 0.010 [-0.050, 0.070] | 3/5/2 | -0.080 [-0.140, -0.020] | 3/5/2 |" in text
