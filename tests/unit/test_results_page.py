"""The results page: built from a run's own files, every number from the file it names."""

from __future__ import annotations

import datetime
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from simmerge.core.io import write_json, write_table, write_text
from simmerge.core.provenance import UNKNOWN, provenance, weights_sha256
from simmerge.report.results_page import machine_facts, results_page

SUMMARY = {
    "protocol": "checkpoint",
    "groups": ["x+z"],
    "units": 4.0,
    "clusters": 4.0,
    "difference": 0.126,
    "difference_lo": 0.02,
    "difference_hi": 0.25,
    "simmerge": 0.766,
    "simmerge_lo": 0.654,
    "simmerge_hi": 0.861,
    "best_fixed": 0.64,
    "best_fixed_lo": 0.53,
    "best_fixed_hi": 0.736,
    "oracle": 0.813,
    "oracle_lo": 0.723,
    "oracle_hi": 0.893,
    "random": 0.649,
    "random_lo": 0.6,
    "random_hi": 0.7,
    "gap_closure": 0.73,
    "gap_closure_lo": 0.58,
    "gap_closure_hi": 0.86,
    "top1": 0.35,
    "top1_lo": 0.1,
    "top1_hi": 0.6,
    "top1_tied": 0.75,
    "top1_tied_lo": 0.5,
    "top1_tied_hi": 1.0,
    "regret": 0.047,
    "regret_lo": 0.01,
    "regret_hi": 0.09,
    "spearman": 0.43,
    "spearman_lo": 0.2,
    "spearman_hi": 0.6,
    "top1_chance": 0.3,
    "top1_tied_chance": 0.45,
    "operator_gain": 0.1,
    "operator_gain_lo": 0.0,
    "operator_gain_hi": 0.2,
    "order_gain": 0.026,
    "order_gain_lo": -0.01,
    "order_gain_hi": 0.06,
    "best_fixed_hindsight_policy": "ties",
    "win": 3.0,
    "tie": 1.0,
    "loss": 0.0,
    "fixed_operators": {"linear": 0.5, "ties": 0.64},
    "fixed_policies": {"linear": 0.5, "ties": 0.64},
    "families": [
        {"family": "ridge", "simmerge": 0.766},
        {"family": "chosen per fold by inner CV (nested)", "simmerge": 0.766},
    ],
}
# A protocol that left no test units: every statistic is NaN.
EMPTY = {
    "protocol": "task_seen_pairs",
    "units": 0.0,
    "clusters": 0.0,
    **{
        key: math.nan for key, value in SUMMARY.items() if isinstance(value, float) and key not in ("units", "clusters")
    },
}
STAGES = {"tiny_checkpoint": "catalog", "probe_pass": "features", "pair_features": "features", "merge_score": "merges"}


def bench(run: Path, rule: str, key: str, seconds: float, rss: float = 100.0) -> str:
    path = run / "benchmarks" / rule / f"{key}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:01\t{rss}\n")
    return str(path)


def merge_record(run: Path, a: str, b: str, operator: str, *, merge_s: float, eval_s: float) -> str:
    record = {
        "a": a,
        "b": b,
        "operator": operator,
        "method": operator,
        "wall_seconds": merge_s,
        "eval_seconds": eval_s,
        "load_seconds": 1.0,
        "peak_rss_mb": 100.0,
        "runs": [{}],
        "tasks": {"t1": {"n": 100}, "t2": {"n": 100}},
        "parent_drift": {"kl": {a: 0.1, b: 0.2}, "mean": 0.15, "probe_passes": 2, "seconds": 2.0},
    }
    path = run / "merges" / f"{a}__{b}" / f"{operator}.json"
    write_json(record, path)
    return str(path)


@pytest.fixture
def run(tmp_path: Path) -> dict:
    """The files of a small finished run: a base and two experts, one pair, two operators."""
    run = tmp_path / "results" / "tiny"
    experts = run / "scores" / "experts.csv"
    write_table(
        pd.DataFrame(
            {
                "checkpoint": ["base", "x", "y"],
                "home_tasks": ["", "t1", "t2"],
                "t1": [0.1, 0.64, 0.0],
                "t2": [0.2, 0.1, 0.15],
                "t1_stderr": [0.01] * 3,
                "t2_stderr": [0.01] * 3,
                "home_score": [None, 0.64, 0.15],
                "home_gain": [None, 0.54, -0.05],
            }
        ),
        experts,
    )
    ranking = run / "ranking" / "summary.md"
    write_text("Ordered pairs: 2. No operator is best on 70% or more of the pairs.\n", ranking)
    cv = run / "predictor" / "cv.json"
    write_json(
        {
            "family": "ridge",
            "protocol": "checkpoint",
            "rows": 8,
            "features": ["f1", "f2", "f3"],
            "operators": ["linear", "ties"],
            "families": [
                {"family": "ridge", "rmse": 0.1234, "selected_score": 0.8766, "spearman": 0.5},
                {"family": "hgb", "rmse": 0.2, "selected_score": 0.7, "spearman": 0.1},
            ],
        },
        cv,
    )
    summaries = [run / "compare" / "checkpoint" / "summary.json", run / "compare" / "task_seen_pairs" / "summary.json"]
    write_json(SUMMARY, summaries[0])
    write_json(EMPTY, summaries[1])
    units = run / "compare" / "checkpoint" / "units.csv"
    write_table(pd.DataFrame({"fold": ["x"], "unit": ["x|y"], "chosen": ["linear"], "simmerge": [0.7]}), units)
    records = [
        merge_record(run, "x", "y", "ties", merge_s=30.0, eval_s=20.0),
        merge_record(run, "x", "y", "linear", merge_s=1.0, eval_s=20.0),
    ]
    benchmarks = {
        "tiny_checkpoint": [bench(run, "tiny_checkpoint", "base", 60.0)],
        "probe_pass": [bench(run, "probe_pass", f"{m}/t1", 5.0) for m in ("base", "x", "y")],
        "pair_features": [bench(run, "pair_features", "x__y", 1.0), bench(run, "pair_features", "y__x", 1.0)],
        "merge_score": [
            bench(run, "merge_score", "x__y/ties", 60.0, rss=3000.0),
            bench(run, "merge_score", "x__y/linear", 25.0),
        ],
    }
    # the rest of SimMerge's decision cost, read from the run's layout: sketches, summaries and the fit take 0 s here
    for name in ("base", "x", "y"):
        bench(run, "weight_sketch", name, 0.0)
        bench(run, "probe_features", name, 0.0)
    bench(run, "predictor", "fit", 0.0)
    multiway = run / "multiway" / "summary.csv"
    write_table(
        pd.DataFrame({"set": ["trio"], "approach": ["simmerge"], "model": ["linear(x, y)"], "target_score": [0.504]}),
        multiway,
    )
    bandit = run / "bandit" / "summary.csv"
    write_table(
        pd.DataFrame(
            {
                "policy": ["bandit", "random"],
                "cumulative_regret": [8.1, 53.0],
                "cumulative_regret_sd": [1.3, 5.0],
                "mean_reward": [0.731, 0.581],
                "mean_reward_sd": [0.01, 0.02],
                "seeds": [5, 5],
            }
        ),
        bandit,
    )
    return {
        "run_dir": run,
        "facts": {"run": "tiny", "seed": 7, "base": "base", "operators": "linear, ties"},
        "tasks": ["t1"],
        "machine": {"CPU": "Test CPU 9000", "cores": "2"},
        "experts": experts,
        "ranking": ranking,
        "cv": cv,
        "summaries": summaries,
        "units": units,
        "records": records,
        "benchmarks": benchmarks,
        "stages": STAGES,
        "multiway": multiway,
        "bandit": bandit,
        "generated_on": datetime.date(2026, 12, 1),
    }


def table_rows(page: str, after: str) -> dict[str, list[str]]:
    """The first Markdown table after the line starting with ``after``: its first cell → the other cells."""
    lines = page.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    rows = {}
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        # a pipe escaped inside a cell (an unordered pair x\|y) does not split it
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        if not set(cells[0]) <= set(":-"):
            rows[cells[0]] = cells[1:]
    return rows


def test_the_page_says_where_it_comes_from_and_that_it_is_generated(run):
    page = results_page(**run)
    assert page.splitlines()[0] == "# Results of the run `tiny`"
    header = (
        f"Generated by `snakemake results_page` from {run['run_dir'].as_posix()}/ on 2026-12-01; do not edit by hand."
    )
    assert header in page
    assert table_rows(page, "## What was run")["seed"][0] == "7"
    assert "Test CPU 9000" in page
    for source in ("scores/experts.csv", "ranking/summary.md", "predictor/cv.json", "compare/checkpoint/summary.json"):
        assert f"`{source}`" in page, source


def test_the_page_holds_the_runs_numbers(run):
    page = results_page(**run)
    # expert scores, the home task in bold, and who beats the base
    assert "| x | **0.640** | 0.100 |" in page
    assert "x +0.540, y -0.050. 1 of 2 experts beat the base" in page
    # the ranking summary as the run wrote it
    assert "No operator is best on 70% or more of the pairs." in page
    # the predictor's cross-validation
    assert "**ridge**, fitted on 8 label rows with 3 features and 2 operators" in page
    assert table_rows(page, "Family chosen")["ridge"] == ["0.123", "0.877", "0.500"]
    # the comparison: intervals, gap closure, win/tie/loss, number of units; a protocol without units has none
    comparison = table_rows(page, "## SimMerge against")
    cells = comparison["new checkpoint (held-out checkpoint groups)"]
    assert cells[:7] == [
        "4 (4)",
        "0.766 [0.654, 0.861]",
        "0.640 [0.530, 0.736]",
        "0.126 [0.020, 0.250]",
        "0.813 [0.723, 0.893]",
        "0.649 [0.600, 0.700]",
        "0.730 [0.580, 0.860]",
    ]
    assert cells[7:9] == ["0.350 [0.100, 0.600] (0.30)", "0.750 [0.500, 1.000] (0.45)"]
    assert cells[-1] == "3/1/0" and cells[-2] == "0.430 [0.200, 0.600]"
    assert comparison["new task for already-merged pairs"] == ["0 (0)"] + ["–"] * 11
    assert "hold-out groups: x+z;" in page
    assert table_rows(page, "Where the gain comes from")["new checkpoint (held-out checkpoint groups)"][:3] == [
        "0.100 [0.000, 0.200]",
        "0.026 [-0.010, 0.060]",
        "ties",
    ]
    assert "| new checkpoint (held-out checkpoint groups) | chosen per fold by inner CV (nested) | 0.766 |" in page
    # the bandit and multi-way tables
    assert "8.10 ± 1.30" in page and "0.581 ± 0.020" in page
    assert "linear(x, y)" in page and "0.504" in page


def test_costs_and_run_time_come_from_the_benchmark_files(run):
    page = results_page(**run)
    # SimMerge for {x, y}: the base's, x's and y's probe pass (5 s each, one pair), both orders' pair features (1 s
    # each) and the linear merge it chose (25 s); merge-and-evaluate: both merge jobs (60 + 25 s)
    decisions = table_rows(page, "Marginal cost of one new decision")
    assert decisions["x|y"] == ["linear", "15.0", "2.0", "0.0", "25.0", "42.0", "85.0", "2.0"]
    assert "All pairs: SimMerge 42 s, merge-and-evaluate 85 s (merge-and-evaluate ÷ SimMerge: 2.0)." in page
    assert "`compare/checkpoint/units.csv`" in page and "the machine that ran the jobs" in page
    # the labels: the merge grid (85 s), three summaries (15 s), two pair features (2 s); paid back after
    # k* = 102 ÷ (85 − 42) = 2.4 new decisions
    assert "The labels cost 102 s" in page and "k* = 102 ÷ (85.0 − 42.0) = 2.4: from decision 3 on." in page
    # merge jobs by operator: overhead = job − merge − scoring (60 − 30 − 20)
    merges = table_rows(page, "### Merge jobs by operator")
    assert merges["ties"][:6] == ["1", "1", "30.0", "20.0", "1.0", "10.0"]
    assert merges["all"][-2:] == ["85.0", "3000.0"]
    # per stage: catalog 60 s (1 job), features 15 + 2 s (5 jobs), merges 85 s (2 jobs); 162 s in all
    assert "All stages: 162 job-seconds (2 min 42 s)." in page
    stages = table_rows(page, "All stages")
    assert stages["catalog"] == ["1", "60", "1 min 00 s"]
    assert stages["features"] == ["5", "17", "17 s"]
    assert stages["merges"] == ["2", "85", "1 min 25 s"]
    rules = table_rows(page, "Per rule")
    assert rules["merges"] == ["merge_score", "2", "85.0", "42.5", "60.0", "3000.0"]


def test_optional_sections_appear_only_with_their_files(run):
    page = results_page(**{**run, "multiway": None, "bandit": None})
    assert "## Multi-way merges" not in page and "## Online" not in page
    full = results_page(**run)
    assert "## Multi-way merges" in full and "## Online" in full


def test_only_the_given_merge_records_count(run):
    # a record of an operator the run no longer has, left in the folder: not among the rule's inputs, not counted
    merge_record(run["run_dir"], "x", "y", "removed", merge_s=500.0, eval_s=500.0)
    bench(run["run_dir"], "merge_score", "x__y/removed", 1000.0)
    page = results_page(**run)
    assert "removed" not in page
    assert "merge-and-evaluate 85 s" in page and "The labels cost 102 s" in page


def test_records_without_provenance_are_counted_as_unknown_with_a_warning(run):
    page = results_page(**run)
    assert page.index("## What was run") < page.index("## Provenance") < page.index("## Expert scores")
    rows = table_rows(page, "## Provenance")
    assert rows == {"provenance": ["records", "merges"], UNKNOWN: ["2", "2"]}  # the two merge records
    assert "> **Warning:** 2 record(s) carry no provenance" in page


def test_the_provenance_section_reads_manifests_with_the_merge_records(run):
    folder = run["run_dir"]
    clean = {**provenance(), "commit": "0" * 40, "dirty": False}
    manifests, digests = [], {}
    for name in ("base", "x", "y"):
        manifest = {"name": name, "weight_files": ["m.safetensors"], "files": {"m.safetensors": {"sha256": name}}}
        digests[name] = weights_sha256(manifest)
        manifests.append(folder / "checkpoints" / name / "manifest.json")
        write_json({**manifest, "weights_sha256": digests[name], "provenance": clean}, manifests[-1])
    cited = {"x": digests["x"], "y": "0" * 64}  # y was rebuilt after these merges
    for path in run["records"]:
        write_json({**json.loads(Path(path).read_text()), "provenance": clean, "checkpoints_sha256": cited}, path)
    page = results_page(**run, provenance=manifests)
    rows = table_rows(page, "## Provenance")
    assert rows.pop("provenance") == ["records", "checkpoints", "merges"]
    assert len(rows) == 1 and next(iter(rows.values())) == ["5", "3", "2"]
    assert "> **Warning:** 2 record(s) were computed from checkpoint weights" in page
    assert table_rows(page, "> **Warning:** 2 record(s) were") == {
        "record": ["checkpoint", "cited weights", "current weights"],
        **{f"merges/x__y/{op}.json": ["y", "000000000000", digests["y"][:12]] for op in ("ties", "linear")},
    }


def test_machine_facts_name_the_cpu_and_torch():
    facts = machine_facts()
    assert facts["CPU"] and facts["cores"].split()[0].isdigit()
    assert facts["torch"].split(",")[0] == torch.__version__


def test_the_page_says_which_devices_the_jobs_used_and_when_no_gpu_path_ran(run):
    page = results_page(**run)
    assert "No record of this run says which device its jobs used." in page  # the fixture's records do not say
    for path in run["records"]:
        write_json({**json.loads(Path(path).read_text()), "device": "cpu", "dtype": "float32"}, path)
    page = results_page(**run)
    assert "Devices of the scoring and merge jobs, from their records: cpu with float32 weights (2 records)." in page
    assert "No job of this run used a GPU, so the CUDA paths" in page
    write_json(
        {**json.loads(Path(run["records"][0]).read_text()), "device": "cuda:0", "dtype": "bfloat16"}, run["records"][0]
    )
    page = results_page(**run)
    assert "cpu with float32 weights (1 record), cuda:0 with bfloat16 weights (1 record)." in page
    assert "No job of this run used a GPU" not in page


def test_the_search_section_shows_each_method_and_the_items_a_search_needs_to_match_simmerge(run, tmp_path):
    assert "## Selection methods" not in results_page(**run)
    path = tmp_path / "search" / "summary.csv"
    names = ["simmerge", "simmerge_plus_k", "simmerge_plus_k", "successive_halving", "label_free", "oracle"]
    write_table(
        pd.DataFrame(
            {
                "method": ["simmerge", "k=1", "k=2", "successive_halving (budget=0.5)", "label_free", "oracle"],
                "name": names,
                "pairs": [10] * 6,
                "bound": [False, False, False, False, False, True],
                "reads_features": [True, True, True, False, False, False],
                "score": [0.90, 0.90, 0.95, 0.91, 0.85, 0.97],
                "regret": [0.10, 0.10, 0.05, 0.09, 0.15, 0.0],
                "merges": [1.0, 1.0, 2.0, 2.0, 4.0, 1.0],
                "items": [0.0, 150.0, 300.0, 300.0, 0.0, 0.0],
                "probe_passes": [0.0, 0.0, 0.0, 0.0, 8.0, 0.0],
            }
        ),
        path,
    )
    page = results_page(**{**run, "search": path})
    assert "## Selection methods at a counted budget" in page
    assert "| successive_halving (budget=0.5) |" in page and "| oracle (bound) |" in page
    assert "simmerge_plus_k: 150 items per pair; successive_halving: 300 items per pair" in page
    # priced with the run's two merge jobs: (30 + 1 + 10 - 2) + (1 + 1 + 4 - 2) s over 2 merges (their 2 s of probing
    # taken out), (19 + 19) s over 400 items, 4 s over 4 probe passes; SimMerge's features per pair: the experts'
    # probe passes (5 + 5 s, one pair each), the base's (5 s), 2 s of pair features
    assert (
        "21.5 s per merge (merging, loading the merged model, job start-up), 0.095 s per item scored and 1.00 s per "
        "probe pass of a merge" in page
    )
    budgets = table_rows(page, "### Every approach on the same axes")
    assert budgets["simmerge"][:8] == ["1.0", "0.0", "0.0", "17.0", "21.5", "0.0", "0.0", "38.5"]
    assert budgets["simmerge"][8] == "0.900"  # the held-out score keeps its three decimals
    assert budgets["successive_halving (budget=0.5)"][:8] == [
        "2.0",
        "300.0",
        "0.0",
        "0.0",
        "43.0",
        "28.5",
        "0.0",
        "71.5",
    ]
    assert budgets["label_free"][:8] == ["4.0", "0.0", "8.0", "0.0", "86.0", "0.0", "8.0", "94.0"]
    assert budgets["k=2"][7] == "88.5"  # 17 + 43 + 28.5: the features and two merges scored on 300 items
    # k=1 evaluates SimMerge's own choice: the cheapest search to match it; k=2 scores best
    assert (
        "The cheapest search that matches SimMerge's held-out score (0.900) is k=1 (held-out score 0.900): 53 s per "
        "decision against SimMerge's 38 s (1.4×); the strongest search is k=2 (held-out score 0.950): 88 s per "
        "decision against SimMerge's 38 s (2.3×)." in page
    )


def test_the_transfer_section_shows_both_baselines_of_each_source_run(run, tmp_path):
    from test_transfer import TARGET_EXPERTS, fitted, labels

    from simmerge.evaluate.transfer import transfer

    source = labels(0)
    _, summary = transfer(fitted(source), source, labels(1, experts=TARGET_EXPERTS), n_boot=100)
    path = tmp_path / "transfer" / "from_other" / "summary.json"
    write_json({"source_run": "other", **summary}, path)
    page = results_page(**{**run, "transfers": [path]})
    assert "## Transfer from other runs" in page and "From `other` (3 shared operators):" in page
    assert "| best fixed policy of the source run |" in page and "| best fixed policy of the target run |" in page
    assert "## Transfer" not in results_page(**run)
