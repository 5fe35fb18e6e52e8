"""Per-job cost split of merge jobs from their records and Snakemake benchmark files."""

from __future__ import annotations

import math

import pytest

from simmerge.core.io import write_json
from simmerge.core.layout import RunLayout
from simmerge.evaluate.costs import cost_summary, decision_costs, merge_costs


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


def finished_run(layout, experts, tasks):
    """Benchmarks of every probe pass, sketch, summary, pair and the fit; the merge jobs of pair (x, y)."""
    for name in experts:
        # a model summary: two probe passes, a sketch and gathering them, 10 s in all
        bench(layout.benchmark("probe_pass", name, tasks[0]), 4.0)
        bench(layout.benchmark("probe_pass", name, tasks[1]), 3.0)
        bench(layout.benchmark("weight_sketch", name), 2.5)
        bench(layout.benchmark("probe_features", name), 0.5)
    for a in experts:
        for b in experts:
            if a != b:
                bench(layout.benchmark("pair_features", layout.pair(a, b)), 1.0)
    bench(layout.benchmark("predictor", "fit"), 3.0)
    return [
        make_job(layout, "x", "y", "ties", merge_s=30.0, eval_s=20.0, job_s=60.0),
        make_job(layout, "x", "y", "slerp", merge_s=1.0, eval_s=20.0, job_s=25.0),
        make_job(layout, "y", "x", "slerp", merge_s=1.0, eval_s=20.0, job_s=25.0),
    ]


def test_decision_cost_shares_probe_passes_and_the_fit_among_pairs(tmp_path):
    layout = RunLayout(tmp_path)
    experts, tasks = ["x", "y", "z"], ["t1", "t2"]
    records = finished_run(layout, experts, tasks)
    table = decision_costs(layout, experts, tasks, records).set_index("pair")
    # (10 + 10) / 2 pairs per expert + 2 orders x 1 s + 3 s / 3 pairs
    assert table.loc["x|y", "simmerge_s"] == pytest.approx(10.0 + 2.0 + 1.0)
    assert table.loc["x|y", "merge_evaluate_s"] == pytest.approx(110.0)
    assert table.loc["x|y", "ratio"] == pytest.approx(110.0 / 13.0)
    assert math.isnan(table.loc["y|z", "merge_evaluate_s"])


def test_decision_costs_count_only_the_runs_own_jobs(tmp_path):
    layout = RunLayout(tmp_path)
    experts, tasks = ["x", "y", "z"], ["t1", "t2"]
    records = finished_run(layout, experts, tasks)
    # left in the folder by an earlier config: an operator since removed, and a task since removed
    make_job(layout, "x", "y", "linear", merge_s=500.0, eval_s=500.0, job_s=1000.0)
    make_job(layout, "y", "z", "linear", merge_s=500.0, eval_s=500.0, job_s=1000.0)
    for name in experts:
        bench(layout.benchmark("probe_pass", name, "gone_task"), 100.0)
    table = decision_costs(layout, experts, tasks, records).set_index("pair")
    assert table.loc["x|y", "merge_evaluate_s"] == pytest.approx(110.0)
    assert table.loc["x|y", "simmerge_s"] == pytest.approx(13.0)
    assert math.isnan(table.loc["y|z", "merge_evaluate_s"])


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
