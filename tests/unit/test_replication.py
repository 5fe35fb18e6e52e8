"""Replication of labels between two runs: known-answer differences, noise ratio, oracle changes, the CLI."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from simmerge.cli import main
from simmerge.core.layout import RunLayout
from simmerge.evaluate.replication import compare_labels, expert_scores_of, label_stderr, summary_markdown

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
