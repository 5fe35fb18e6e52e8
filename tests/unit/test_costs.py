"""Per-job cost split of merge jobs from their records and Snakemake benchmark files."""

from __future__ import annotations

import math

import pytest

from simmerge.core.io import write_json
from simmerge.evaluate.costs import cost_summary, merge_costs


def make_job(run, a, b, operator, *, merge_s, eval_s, job_s=None, runs=1):
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
    write_json(record, run / "merges" / f"{a}__{b}" / f"{operator}.json")
    if job_s is not None:
        bench = run / "benchmarks" / "merge_score" / f"{a}__{b}" / f"{operator}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text(f"s\th:m:s\tmax_rss\n{job_s}\t0:00:10\t2048.5\n")


def test_overhead_is_job_time_minus_merge_and_scoring(tmp_path):
    make_job(tmp_path, "x", "y", "ties", merge_s=3.0, eval_s=5.0, job_s=10.5, runs=3)
    make_job(tmp_path, "x", "z", "ties", merge_s=1.0, eval_s=2.0)
    costs = merge_costs(tmp_path).set_index(["a", "b"])
    assert costs.loc[("x", "y"), "overhead_s"] == pytest.approx(2.5)
    assert costs.loc[("x", "y"), "peak_rss_mb"] == 2048.5 and costs.loc[("x", "y"), "n_merges"] == 3
    assert math.isnan(costs.loc[("x", "z"), "job_s"]) and costs.loc[("x", "z"), "peak_rss_mb"] == 100.0


def test_summary_means_per_operator_and_sums_in_the_total_row(tmp_path):
    make_job(tmp_path, "x", "y", "ties", merge_s=3.0, eval_s=5.0, job_s=10.0)
    make_job(tmp_path, "x", "z", "ties", merge_s=1.0, eval_s=3.0, job_s=6.0)
    make_job(tmp_path, "x", "y", "linear", merge_s=0.5, eval_s=4.0, job_s=6.5)
    table = cost_summary(merge_costs(tmp_path)).set_index("operator")
    assert table.loc["ties", "jobs"] == 2 and table.loc["ties", "merge_s"] == pytest.approx(2.0)
    assert table.loc["ties", "overhead_s"] == pytest.approx(2.0)
    assert table.loc["all", "jobs"] == 3 and table.loc["all", "job_s"] == pytest.approx(22.5)
    assert table.loc["all", "overhead_s"] == pytest.approx(22.5 - 4.5 - 12.0)


def bench(run, rule, key, seconds):
    path = run / "benchmarks" / rule / f"{key}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t100.0\n")
    return path


def test_decision_cost_shares_probe_passes_and_the_fit_among_pairs(tmp_path):
    from simmerge.evaluate.costs import decision_costs

    experts = ["x", "y", "z"]
    for name in experts:
        # a model summary: two probe passes, a sketch and gathering them, 10 s in all
        bench(tmp_path, "probe_pass", f"{name}/t1", 4.0)
        bench(tmp_path, "probe_pass", f"{name}/t2", 3.0)
        bench(tmp_path, "weight_sketch", name, 2.5)
        bench(tmp_path, "probe_features", name, 0.5)
    for a in experts:
        for b in experts:
            if a != b:
                bench(tmp_path, "pair_features", f"{a}__{b}", 1.0)
    bench(tmp_path, "predictor", "fit", 3.0)
    make_job(tmp_path, "x", "y", "ties", merge_s=30.0, eval_s=20.0, job_s=60.0)
    make_job(tmp_path, "x", "y", "slerp", merge_s=1.0, eval_s=20.0, job_s=25.0)
    make_job(tmp_path, "y", "x", "slerp", merge_s=1.0, eval_s=20.0, job_s=25.0)
    table = decision_costs(tmp_path, experts).set_index("pair")
    # (10 + 10) / 2 pairs per expert + 2 orders x 1 s + 3 s / 3 pairs
    assert table.loc["x|y", "simmerge_s"] == pytest.approx(10.0 + 2.0 + 1.0)
    assert table.loc["x|y", "merge_evaluate_s"] == pytest.approx(110.0)
    assert table.loc["x|y", "ratio"] == pytest.approx(110.0 / 13.0)
    assert math.isnan(table.loc["y|z", "merge_evaluate_s"])


def test_given_files_are_the_only_ones_read(tmp_path):
    """A rule passes its declared inputs: files left in the folder by jobs the run no longer has do not count."""
    from simmerge.evaluate.costs import decision_costs

    experts = ["x", "y"]
    for name in experts:
        bench(tmp_path, "probe_pass", f"{name}/t1", 4.0)
    bench(tmp_path, "pair_features", "x__y", 1.0)
    bench(tmp_path, "pair_features", "y__x", 1.0)
    make_job(tmp_path, "x", "y", "ties", merge_s=30.0, eval_s=20.0, job_s=60.0)
    make_job(tmp_path, "x", "y", "removed", merge_s=1.0, eval_s=20.0, job_s=500.0)
    bench(tmp_path, "probe_pass", "x/removed_task", 100.0)
    folder = tmp_path / "benchmarks"
    given = {
        "probe_pass": [folder / "probe_pass" / name / "t1.tsv" for name in experts],
        "pair_features": [folder / "pair_features" / f"{pair}.tsv" for pair in ("x__y", "y__x")],
    }
    records = [tmp_path / "merges" / "x__y" / "ties.json"]
    table = decision_costs(tmp_path, experts, benchmarks=given, records=records).set_index("pair")
    # each member's 4 s probe pass serves its one pair, plus 1 s per order; no predictor fit was given
    assert table.loc["x|y", "simmerge_s"] == pytest.approx(4.0 + 4.0 + 2.0)
    assert table.loc["x|y", "merge_evaluate_s"] == pytest.approx(60.0)
    everything = decision_costs(tmp_path, experts).set_index("pair")
    assert everything.loc["x|y", "merge_evaluate_s"] == pytest.approx(560.0)


def test_rule_seconds_sum_each_rules_jobs_in_stage_order(tmp_path):
    from simmerge.evaluate.costs import rule_seconds

    files = {
        "probe_pass": [bench(tmp_path, "probe_pass", f"m/t{i}", seconds) for i, seconds in enumerate((4.0, 6.0))],
        "skill_data": [bench(tmp_path, "skill_data", "t1", 1.5)],
    }
    stages = {"skill_data": "catalog", "finetune_expert": "catalog", "probe_pass": "features"}
    table = rule_seconds(files, stages)
    assert list(table["rule"]) == ["skill_data", "probe_pass"]  # stage order; a rule without jobs has no row
    probe = table.set_index("rule").loc["probe_pass"].to_dict()
    assert probe == {"stage": "features", "jobs": 2, "total_s": 10.0, "mean_s": 5.0, "max_s": 6.0, "peak_rss_mb": 100.0}
