"""Per-job cost split of merge jobs from their records and Snakemake benchmark files."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from simmerge.core.io import write_json
from simmerge.core.layout import RunLayout
from simmerge.evaluate.costs import DECISION_COLUMNS, break_even, cost_summary, decision_costs, merge_costs


def make_job(layout, a, b, operator, *, merge_s, eval_s, job_s=None, runs=1):
    """Write a merge_score record (and its benchmark when ``job_s`` is given); return the record's path."""
    record = {
        "a": a,
        "b": b,
        "operator": operator,
        "method": "ties",
        "wall_seconds": merge_s,
        "eval_seconds": eval_s,
        "peak_rss_mb": 100.0,
        "runs": [{}] * runs,
    }
    path = layout.merge_record(a, b, operator)
    write_json(record, path)
    if job_s is not None:
        bench = layout.benchmark("merge_score", layout.pair(a, b), operator)
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text(f"s\th:m:s\tmax_rss\n{job_s}\t0:00:10\t2048.5\n")
    return path


def test_overhead_is_job_time_minus_merge_and_scoring(tmp_path):
    layout = RunLayout(tmp_path)
    records = [
        make_job(layout, "x", "y", "ties", merge_s=3.0, eval_s=5.0, job_s=10.5, runs=3),
        make_job(layout, "x", "z", "ties", merge_s=1.0, eval_s=2.0),
    ]
    costs = merge_costs(layout, records).set_index(["a", "b"])
    assert costs.loc[("x", "y"), "overhead_s"] == pytest.approx(2.5)
    assert costs.loc[("x", "y"), "peak_rss_mb"] == 2048.5 and costs.loc[("x", "y"), "n_merges"] == 3
    assert math.isnan(costs.loc[("x", "z"), "job_s"]) and costs.loc[("x", "z"), "peak_rss_mb"] == 100.0


def test_summary_means_per_operator_and_sums_in_the_total_row(tmp_path):
    layout = RunLayout(tmp_path)
    make_job(layout, "x", "y", "ties", merge_s=3.0, eval_s=5.0, job_s=10.0)
    make_job(layout, "x", "z", "ties", merge_s=1.0, eval_s=3.0, job_s=6.0)
    make_job(layout, "x", "y", "linear", merge_s=0.5, eval_s=4.0, job_s=6.5)
    every_record = layout.glob(layout.merge_record("*", "*", "*"))
    assert len(every_record) == 3
    table = cost_summary(merge_costs(layout, every_record)).set_index("operator")
    assert table.loc["ties", "jobs"] == 2 and table.loc["ties", "merge_s"] == pytest.approx(2.0)
    assert table.loc["ties", "overhead_s"] == pytest.approx(2.0)
    assert table.loc["all", "jobs"] == 3 and table.loc["all", "job_s"] == pytest.approx(22.5)
    assert table.loc["all", "overhead_s"] == pytest.approx(22.5 - 4.5 - 12.0)


def bench(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t100.0\n")
    return path


EXPERTS, TASKS = ["x", "y", "z"], ["t1", "t2"]


def finished_run(layout, *, ties_s=60.0, slerp_s=25.0):
    """Benchmarks of a finished run: base ``b0`` and experts x, y, z on two tasks, the fit, and every pair's merge
    jobs (``ties`` symmetric, once under the sorted order; ``slerp`` in both orders); returns the merge records."""
    # a model summary: two probe passes, a sketch and gathering them, 10 s for an expert and 6 s for the base
    for name, seconds in {"b0": (2.0, 2.0, 1.5, 0.5), **{e: (4.0, 3.0, 2.5, 0.5) for e in EXPERTS}}.items():
        bench(layout.benchmark("probe_pass", name, TASKS[0]), seconds[0])
        bench(layout.benchmark("probe_pass", name, TASKS[1]), seconds[1])
        bench(layout.benchmark("weight_sketch", name), seconds[2])
        bench(layout.benchmark("probe_features", name), seconds[3])
    records = []
    for i, a in enumerate(EXPERTS):
        for b in EXPERTS[i + 1 :]:
            bench(layout.benchmark("pair_features", layout.pair(a, b)), 1.0)
            bench(layout.benchmark("pair_features", layout.pair(b, a)), 1.0)
            records += [
                make_job(layout, a, b, "ties", merge_s=1.0, eval_s=1.0, job_s=ties_s),
                make_job(layout, a, b, "slerp", merge_s=1.0, eval_s=1.0, job_s=slerp_s),
                make_job(layout, b, a, "slerp", merge_s=1.0, eval_s=1.0, job_s=slerp_s),
            ]
    bench(layout.benchmark("predictor", "fit"), 3.0)
    return records


def units_table(layout, chosen, **extra):
    """``compare/checkpoint/units.csv`` with the given ``unit`` → ``chosen`` rows (and any other columns)."""
    path = layout.comparison_units("checkpoint")
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(chosen, columns=["unit", "chosen"]).assign(fold="x", **extra).to_csv(path, index=False)
    return path


def test_simmerge_counts_the_base_summary_and_the_merge_it_chose(tmp_path):
    layout = RunLayout(tmp_path)
    records = finished_run(layout)
    units = units_table(layout, [("x|y", "slerp@y"), ("x|z", "ties")], simmerge=[0.5, 0.6])
    table = decision_costs(layout, "b0", EXPERTS, TASKS, records, units).set_index("pair")
    assert list(table.reset_index().columns) == DECISION_COLUMNS
    # (10 + 10) / 2 pairs per expert, plus the base's 6 s / 3 pairs
    assert table["summaries_s"].tolist() == pytest.approx([12.0] * 3)
    assert table["pair_features_s"].tolist() == [2.0] * 3 and table["predict_s"].tolist() == [1.0] * 3
    # x|y chose slerp anchored on y: the job merges (y, x); x|z chose the symmetric ties, merged once as (x, z)
    assert table.loc["x|y", "chosen"] == "slerp@y" and table.loc["x|y", "chosen_merge_s"] == 25.0
    assert table.loc["x|z", "chosen_merge_s"] == 60.0
    assert table.loc["x|y", "simmerge_s"] == pytest.approx(12.0 + 2.0 + 1.0 + 25.0)
    assert table.loc["x|y", "merge_evaluate_s"] == pytest.approx(110.0)
    assert table.loc["x|y", "ratio"] == pytest.approx(110.0 / 40.0)
    # a pair no fold tested: the mean of its merge jobs stands in for the one SimMerge would pick
    assert pd.isna(table.loc["y|z", "chosen"]) and table.loc["y|z", "chosen_merge_s"] == pytest.approx(110.0 / 3)


def test_several_choices_for_a_unit_average_their_merge_jobs(tmp_path):
    layout = RunLayout(tmp_path)
    records = finished_run(layout)
    # two folds' choices joined in one cell, and a unit on two rows
    units = units_table(layout, [("x|y", "ties; slerp@x"), ("y|z", "slerp@z"), ("y|z", "ties")])
    table = decision_costs(layout, "b0", EXPERTS, TASKS, records, units).set_index("pair")
    assert table.loc["x|y", "chosen_merge_s"] == pytest.approx((60.0 + 25.0) / 2)
    assert table.loc["y|z", "chosen"] == "slerp@z; ties"
    assert table.loc["y|z", "chosen_merge_s"] == pytest.approx((25.0 + 60.0) / 2)


def test_a_chosen_merge_without_its_record_is_an_error(tmp_path):
    layout = RunLayout(tmp_path)
    records = finished_run(layout)
    with pytest.raises(KeyError, match=r"x\|y.*linear"):
        decision_costs(layout, "b0", EXPERTS, TASKS, records, units_table(layout, [("x|y", "linear")]))


def test_decision_costs_count_only_the_runs_own_jobs(tmp_path):
    layout = RunLayout(tmp_path)
    records = finished_run(layout)
    # left in the folder by an earlier config: an operator since removed, and a task since removed
    make_job(layout, "x", "y", "linear", merge_s=500.0, eval_s=500.0, job_s=1000.0)
    for name in ("b0", *EXPERTS):
        bench(layout.benchmark("probe_pass", name, "gone_task"), 100.0)
    units = units_table(layout, [("x|y", "slerp@y")])
    table = decision_costs(layout, "b0", EXPERTS, TASKS, records, units).set_index("pair")
    assert table.loc["x|y", "merge_evaluate_s"] == pytest.approx(110.0)
    assert table.loc["x|y", "simmerge_s"] == pytest.approx(40.0)
    assert break_even(layout, "b0", EXPERTS, TASKS, records, table)["merge_grid_s"] == pytest.approx(330.0)


def test_break_even_pays_back_the_labels(tmp_path):
    layout = RunLayout(tmp_path)
    records = finished_run(layout)
    units = units_table(layout, [("x|y", "slerp@y"), ("x|z", "ties")])
    decisions = decision_costs(layout, "b0", EXPERTS, TASKS, records, units)
    totals = break_even(layout, "b0", EXPERTS, TASKS, records, decisions)
    # 3 pairs x 110 s of merge jobs, 3 x 10 s + 6 s of summaries, 6 ordered pairs' features, the 3 s fit
    parts = {"merge_grid_s": 330.0, "summaries_s": 36.0, "pair_features_s": 6.0, "fit_s": 3.0}
    assert {key: totals[key] for key in parts} == pytest.approx(parts)
    assert totals["labels_s"] == pytest.approx(375.0)
    marginal = (40.0 + 75.0 + (15.0 + 110.0 / 3)) / 3
    assert totals["marginal_s"] == pytest.approx(marginal) and totals["grid_s"] == pytest.approx(110.0)
    k = totals["break_even"]
    assert k == pytest.approx(375.0 / (110.0 - marginal))
    # past k* new decisions SimMerge is cheaper, before it merge-and-evaluate is
    assert 375.0 + math.ceil(k) * marginal < math.ceil(k) * 110.0
    assert 375.0 + math.floor(k) * marginal > math.floor(k) * 110.0


def test_no_break_even_when_simmerge_costs_as_much_as_the_grid(tmp_path):
    layout = RunLayout(tmp_path)
    # merges so cheap that the summaries alone cost more than a pair's whole grid
    records = finished_run(layout, ties_s=1.0, slerp_s=1.0)
    decisions = decision_costs(layout, "b0", EXPERTS, TASKS, records, units_table(layout, [("x|y", "ties")]))
    totals = break_even(layout, "b0", EXPERTS, TASKS, records, decisions)
    assert totals["marginal_s"] >= totals["grid_s"] and totals["break_even"] is None


def test_rule_seconds_sum_each_rules_jobs_in_stage_order(tmp_path):
    from simmerge.evaluate.costs import rule_seconds

    layout = RunLayout(tmp_path)
    files = {
        "probe_pass": [bench(layout.benchmark("probe_pass", "m", f"t{i}"), s) for i, s in enumerate((4.0, 6.0))],
        "skill_data": [bench(layout.benchmark("skill_data", "t1"), 1.5)],
    }
    stages = {"skill_data": "catalog", "finetune_expert": "catalog", "probe_pass": "features"}
    table = rule_seconds(files, stages)
    assert list(table["rule"]) == ["skill_data", "probe_pass"]  # stage order; a rule without jobs has no row
    probe = table.set_index("rule").loc["probe_pass"].to_dict()
    assert probe == {"stage": "features", "jobs": 2, "total_s": 10.0, "mean_s": 5.0, "max_s": 6.0, "peak_rss_mb": 100.0}


def test_a_method_pays_the_feature_share_of_the_decisions_that_read_the_features():
    from simmerge.evaluate.costs import method_budgets

    summary = pd.DataFrame(
        {
            "method": ["simmerge", "best_fixed", "random"],
            # best_fixed read the features (a norm order rule) in one of its four folds' decisions
            "reads_features": [1.0, 0.25, 0.0],
            "merges": [1.0, 1.0, 1.0],
            "items": [0.0, 0.0, 0.0],
            "probe_passes": [0.0, 0.0, 0.0],
            "score": [0.8, 0.7, 0.6],
            "bound": [False, False, False],
        }
    )
    decisions = pd.DataFrame({"summaries_s": [30.0, 50.0], "pair_features_s": [4.0, 4.0], "predict_s": [2.0, 2.0]})
    budgets = method_budgets(summary, decisions, {"merge_s": 20.0, "item_s": 0.1, "probe_s": 1.0}).set_index("method")
    assert budgets["features_s"].to_dict() == {"simmerge": 46.0, "best_fixed": 11.5, "random": 0.0}
    assert budgets["seconds"].to_dict() == {"simmerge": 66.0, "best_fixed": 31.5, "random": 20.0}
