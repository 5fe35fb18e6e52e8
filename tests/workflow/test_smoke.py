"""A real run of the smoke catalog: every artifact of the catalog stage, caching, and determinism."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake_runner import (
    ANCHORED,
    aggregates,
    dry_run_counts,
    load_config,
    run_snakemake,
    write_config,
)

from simmerge.core.io import read_json, read_jsonl, sha256_file
from simmerge.merges.scoring import read_scores

pytestmark = pytest.mark.slow

SMOKE = load_config("smoke.yaml")
MODELS = [SMOKE["catalog"]["base"]["name"], *(e["name"] for e in SMOKE["catalog"]["experts"])]


def results(root: Path) -> Path:
    return root / "results" / SMOKE["run_name"]


BUILTIN_TASKS = {task: spec for task, spec in SMOKE["tasks"].items() if spec.get("kind", "builtin") == "builtin"}
LM_EVAL_TASKS = {task: spec for task, spec in SMOKE["tasks"].items() if task not in BUILTIN_TASKS}


def test_data_splits_exist_and_are_disjoint(smoke_run):
    for task, sizes in BUILTIN_TASKS.items():
        splits = {
            split: read_jsonl(results(smoke_run) / "data" / task / f"{split}.jsonl")
            for split in ("train", "eval", "probe")
        }
        assert [len(splits[s]) for s in ("train", "eval", "probe")] == [
            sizes["n_train"],
            sizes["n_eval"],
            sizes["n_probe"],
        ]
        entities = [{row["entity"] for row in rows} for rows in splits.values()]
        assert not (entities[0] & entities[1] or entities[0] & entities[2] or entities[1] & entities[2])
        assert all("answer" not in row for row in splits["probe"])


def test_lm_eval_tasks_are_scored_on_exactly_their_drawn_documents_and_probed_on_others(smoke_run):
    from simmerge.features.summary import load_summary

    assert set(LM_EVAL_TASKS) == {"arc_easy", "word_lengths"}
    summary = load_summary(results(smoke_run) / "features" / "models" / f"{MODELS[0]}.npz")
    for task, spec in LM_EVAL_TASKS.items():
        folder = results(smoke_run) / "data" / task
        record = read_json(folder / "task.json")
        rows = {split: read_jsonl(folder / f"{split}.jsonl") for split in ("train", "eval", "probe")}
        assert [len(rows[split]) for split in ("train", "eval", "probe")] == [
            spec["n_train"],
            spec["n_eval"],
            spec["n_probe"],
        ]
        assert [row["doc_index"] for row in rows["eval"]] == record["samples"][record["task"]]
        # both tasks have a training split: probes come from it, never from the scored test split
        assert {row["split"] for row in rows["probe"]} == {"train"}
        assert summary.meta["probe_source"][task]["documents"] == [row["id"] for row in rows["probe"]]
        for name in MODELS:
            scores = read_json(results(smoke_run) / "scores" / "experts" / name / f"{task}.json")["tasks"][task]
            assert scores["n"] == spec["n_eval"]
    # the registry task's first metric; the user task's own !function metric, listed first in its YAML
    assert read_json(results(smoke_run) / "data" / "arc_easy" / "task.json")["metric"] == "acc"
    assert read_json(results(smoke_run) / "data" / "word_lengths" / "task.json")["metric"] == "length_match"
    # the expert fine-tuned on the registry task trained on its training split's rows
    arc = read_json(results(smoke_run) / "checkpoints" / "arc" / "manifest.json")
    assert "arc_easy" in json.dumps(arc["source"])


def test_every_checkpoint_has_a_manifest_matching_its_files(smoke_run):
    for name in MODELS:
        folder = results(smoke_run) / "checkpoints" / name
        manifest = read_json(folder / "manifest.json")
        assert manifest["name"] == name
        assert manifest["architecture"] == "LlamaForCausalLM"
        for relative, entry in manifest["files"].items():
            assert sha256_file(folder / relative) == entry["sha256"], relative
        if name != MODELS[0]:
            assert manifest["source"]["kind"] == "finetune"
            assert manifest["source"]["parent"] == MODELS[0]


def test_every_checkpoint_is_scored_on_every_task(smoke_run):
    for name in MODELS:
        files = [results(smoke_run) / "scores" / "experts" / name / f"{task}.json" for task in SMOKE["tasks"]]
        scores = read_scores(files)[name]
        assert set(scores["tasks"]) == set(SMOKE["tasks"])
        for task, record in scores["tasks"].items():
            assert 0.0 <= record["score"] <= 1.0
            assert record["n"] == SMOKE["tasks"][task]["n_eval"]
            assert record["version"] is not None
    table = pd.read_csv(results(smoke_run) / "scores" / "experts.csv")
    assert list(table["checkpoint"]) == MODELS
    assert (results(smoke_run) / "scores" / "experts.md").read_text().startswith("| checkpoint |")


def test_the_per_item_outcomes_are_the_scored_items_and_average_to_every_record(smoke_run):
    run = results(smoke_run)
    for name in MODELS:
        for task, spec in SMOKE["tasks"].items():
            record = read_json(run / "scores" / "experts" / name / f"{task}.json")["tasks"][task]
            items = pd.read_parquet(run / "scores" / "experts" / name / f"{task}.items.parquet")
            assert len(items) == spec["n_eval"] == items["doc_id"].nunique()
            for metric, value in record["metrics"].items():
                assert items[metric].mean() == pytest.approx(value), (name, task, metric)
            if task in BUILTIN_TASKS:  # one-pass exact match and multiple choice both give a likelihood
                assert items["likelihood"].between(0, 1).all()
                assert items["item_id"].tolist() == [
                    row["id"] for row in read_jsonl(run / "data" / task / "eval.jsonl")
                ]
    for path in sorted((run / "merges").glob("*/*.json")):
        record = read_json(path)
        items = pd.read_parquet(path.with_name(f"{path.stem}.items.parquet"))
        for task, scored in record["tasks"].items():
            task_items = items[items["task"] == task]
            assert task_items["score"].mean() == pytest.approx(scored["metric"]), (path, task)
    labels = pd.read_parquet(run / "labels.parquet")
    label_items = pd.read_parquet(run / "label_items.parquet")
    means = label_items.groupby(["a", "b", "task", "operator"])["value"].mean()
    for row in labels.dropna(subset=["normalised"]).itertuples():
        assert means[(row.a, row.b, row.task, row.operator)] == pytest.approx(row.normalised)


def test_every_checkpoint_has_a_summary_and_every_ordered_pair_a_feature_row_per_task(smoke_run):
    from simmerge.features.definitions import feature_names
    from simmerge.features.summary import load_summary

    for name in MODELS:
        summary = load_summary(results(smoke_run) / "features" / "models" / f"{name}.npz")
        assert summary.name == name and list(summary.tasks) == list(SMOKE["tasks"])
    experts = MODELS[1:]
    pairs = sorted(p.name for p in (results(smoke_run) / "features" / "pairs").iterdir())
    assert pairs == sorted(f"{a}__{b}.parquet" for a in experts for b in experts if a != b)
    table = pd.read_parquet(results(smoke_run) / "features" / "pairs" / f"{experts[0]}__{experts[1]}.parquet")
    assert list(table.columns) == ["a", "b", "task", *feature_names()]
    assert list(table["task"]) == list(SMOKE["tasks"])
    assert (table["a"] == experts[0]).all() and (table["b"] == experts[1]).all()


def test_every_job_left_a_log_and_a_benchmark(smoke_run):
    rules = ("skill_data", "task_data", "tiny_checkpoint", "finetune_expert", "expert_scores", "expert_scores_table")
    for rule in (*rules, "probe_pass", "weight_sketch", "probe_features", "pair_features"):
        assert list((results(smoke_run) / "logs" / rule).iterdir()), rule
        for tsv in (results(smoke_run) / "benchmarks" / rule).rglob("*.tsv"):
            seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
            assert math.isfinite(seconds)


def test_a_finished_run_has_nothing_left_to_do(smoke_run):
    assert dry_run_counts(smoke_run, "--configfile", "config/smoke.yaml") == {}


def test_adding_an_expert_adds_only_its_own_jobs(smoke_run):
    config = load_config("smoke.yaml")
    config["catalog"]["experts"].append(
        {"name": "fr2", "tasks": ["n2w_fr"], "source": {"kind": "finetune", "train": {"steps": 5, "seed": 9}}}
    )
    path = write_config(smoke_run, "plus_one.yaml", config)
    n_experts = len(SMOKE["catalog"]["experts"])
    n_operators = len(SMOKE["merges"]["operators"])
    counts = dry_run_counts(smoke_run, "--configfile", path)
    # one anchored operator (slerp) is merged in both orders with each existing expert, the others once
    assert counts.pop("merge_score") == (n_operators - 1) * n_experts + 2 * n_experts
    n_tasks = len(SMOKE["tasks"])
    assert counts == {
        # the gate's record lists the fine-tuned experts it leaves to their fine-tune (read through ancient())
        "preflight": 1,
        "finetune_expert": 1,
        "probe_pass": n_tasks,
        "weight_sketch": 1,
        "probe_features": 1,
        "pair_features": 2 * n_experts,
        "expert_scores": n_tasks,
        "expert_scores_table": 1,
        # its pairs' CMA-ES searches (the other pairs' read the new labels through ancient())
        "cma_search": n_experts,
        # the label aggregates; the predictor changed, so the multi-way set is planned again (its merges are known
        # only after the recipes checkpoint, and the nodes whose content is unchanged keep their scores)
        **aggregates(SMOKE),
        "all": 1,
    }


def test_the_comparison_and_the_bandit_replay_rerun_to_identical_bytes(smoke_run):
    """Seeds come from the config, so a re-run gives the same bytes. Everything up to the labels (data, weights,
    probe passes, summaries, scores, pair features, labels) is re-made from nothing and compared byte for byte by
    tests/workflow/test_slurm.py (in another folder, through SLURM) and the labels again by the resume test below;
    this re-runs the stages that read the labels."""
    tables = ("compare/summary.csv", "compare/checkpoint/candidates.csv", "bandit/replay.csv")
    before = {table: sha256_file(results(smoke_run) / table) for table in tables}
    run_snakemake(smoke_run, "all", "--configfile", "config/smoke.yaml", "--forcerun", "compare", "bandit_replay")
    assert {table: sha256_file(results(smoke_run) / table) for table in tables} == before


def test_features_command_prints_the_pair(smoke_run, capsys):
    from simmerge.cli import main

    experts = MODELS[1:]
    run = str(results(smoke_run))
    assert main(["features", experts[0], experts[1], "--run", run, "--csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(table["task"]) == list(SMOKE["tasks"])
    assert main(["features", experts[0], "nobody", "--run", run]) == 2
    assert "snakemake all_features" in capsys.readouterr().err


def test_transfer_applies_a_runs_predictor_to_a_runs_pairs_and_writes_both_baselines(smoke_run, tmp_path, capsys):
    from simmerge.cli import main

    run = str(results(smoke_run))
    assert main(["transfer", "--from", run, "--to", run, "--n-boot", "50", "-o", str(tmp_path)]) == 0
    assert "best fixed policy of the source run" in capsys.readouterr().out
    units = pd.read_csv(tmp_path / "units.csv")
    labels = pd.read_parquet(results(smoke_run) / "labels.parquet")
    assert len(units) == len(labels[["a", "b"]].apply(lambda r: frozenset(r), axis=1).unique())
    summary = read_json(tmp_path / "summary.json")
    assert set(summary["policies"]) == {"source", "hindsight"} and summary["source"]["item_resampling"] == 1.0
    assert main(["transfer", "--from", str(tmp_path), "--to", run]) == 2
    assert "snakemake predictor" in capsys.readouterr().err


def test_learning_curve_of_the_smoke_run_trains_only_on_pairs_without_its_test_checkpoint(smoke_run, tmp_path, capsys):
    from simmerge.cli import main

    run = str(results(smoke_run))
    assert main(["learning-curve", "--run", run, "--sizes", "1,5", "--repeats", "3", "-o", str(tmp_path)]) == 0
    assert "break-even" in capsys.readouterr().out
    curve = pd.read_csv(tmp_path / "curve.csv")
    # 3 experts: holding one out leaves one pair to train on, and the two pairs that touch it to test
    assert set(curve["n_pairs"]) == {1} and set(curve["units"]) == {2} and len(curve) == 3
    assert set(pd.read_csv(tmp_path / "summary.csv")["repeats"]) == {3}


def test_search_baselines_spend_counted_evaluations_and_are_scored_on_held_out_items(smoke_run, tmp_path, capsys):
    from simmerge.cli import main

    # the rule's table: every default method of predictor.methods, the oracle flagged as the bound
    ruled = pd.read_csv(results(smoke_run) / "search" / "summary.csv").set_index("method")
    assert {"simmerge", "simmerge_plus_k (k=3)", "successive_halving (budget=1.0)", "best_fixed", "oracle"} <= set(
        ruled.index
    )
    assert ruled.loc["oracle", "bound"] and ruled.loc["oracle", "regret"] == 0
    # CMA-ES (predictor.cma_search: budget 4, population 2) made its own merges: one row per generation's budget,
    # on every pair, its merges and search items counted, scored on the same held-out items as the methods
    cma = SMOKE["predictor"]["cma_search"]
    records = [read_json(path) for path in sorted((results(smoke_run) / "search" / "cma").glob("*.json"))]
    assert len(records) == len(MODELS[1:]) * (len(MODELS) - 2) // 2
    for record in records:
        assert len(record["evaluations"]) <= cma["budget"]
        assert all(run["status"] == "ok" for run in record["evaluations"])
    for n in range(cma["popsize"], cma["budget"] + 1, cma["popsize"]):
        row = ruled.loc[f"cma_es ({n} evals)"]
        assert row["pairs"] == len(records) and row["merges"] == n and not row["reads_features"]
        assert row["items"] == pytest.approx(n * sum(r["search_items"] for r in records) / len(records))
    assert main(["search", "--run", str(results(smoke_run)), "--seed", str(SMOKE["seed"]), "-o", str(tmp_path)]) == 0
    assert "successive_halving matches SimMerge's held-out score at" in capsys.readouterr().out
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("method")
    assert summary.loc["simmerge", "items"] == 0 and summary.loc["simmerge", "merges"] == 1
    assert (
        summary.loc[f"cma_es ({cma['budget']} evals)", "score"] == ruled.loc[f"cma_es ({cma['budget']} evals)", "score"]
    )
    on_grid = summary[summary["name"] != "cma_es"]  # a merge off the grid may beat the grid's best
    assert (on_grid["regret"] >= 0).all()
    units = pd.read_csv(tmp_path / "units.csv")
    on_grid = units[units["name"] != "cma_es"]
    assert (on_grid["score"] <= on_grid["oracle"] + 1e-12).all()


def test_sketched_structural_features_match_exact_ones_on_the_smoke_catalog(smoke_run):
    """Stated tolerance: every sketched structural feature within 0.05 of its exact value."""
    from simmerge.features.sketch import FEATURE_NAMES, structural_features_exact

    base, a, b = MODELS[0], MODELS[1], MODELS[2]
    folder = results(smoke_run) / "checkpoints"
    exact = structural_features_exact(folder / a, folder / b, folder / base, top_fraction=0.2)
    sketched = pd.read_parquet(results(smoke_run) / "features" / "pairs" / f"{a}__{b}.parquet").iloc[0]
    for name in FEATURE_NAMES:
        if math.isnan(exact[name]):
            assert math.isnan(sketched[name]), name
        else:
            assert abs(sketched[name] - exact[name]) < 0.05, (name, sketched[name], exact[name])


def test_merge_grid_and_labels(smoke_run):
    from simmerge.evaluate.labels import LABEL_COLUMNS
    from simmerge.features.definitions import feature_names

    operators = SMOKE["merges"]["operators"]
    experts = MODELS[1:]
    order_sensitive = {"slerp_t30"}
    n_unordered = len(experts) * (len(experts) - 1) // 2
    records = sorted((results(smoke_run) / "merges").glob("*/*.json"))
    assert len(records) == sum(2 * n_unordered if op["name"] in order_sensitive else n_unordered for op in operators)
    for path in records:
        record = read_json(path)
        assert record["status"] == "ok", record["error"]
        assert path.with_suffix(".mergekit.yml").read_text() == record["config_yaml"]
        homes = {
            task for e in SMOKE["catalog"]["experts"] if e["name"] in (record["a"], record["b"]) for task in e["tasks"]
        }
        assert set(record["tasks"]) == homes
    labels = pd.read_parquet(results(smoke_run) / "labels.parquet")
    assert list(labels.columns) == LABEL_COLUMNS + feature_names()
    # every ordered pair x operator x the pair's two home tasks
    assert len(labels) == len(experts) * (len(experts) - 1) * len(operators) * 2
    symmetric = labels[labels["operator"] == "linear"].set_index(["a", "b", "task"])["metric"]
    for (a, b, task), metric in symmetric.items():
        assert symmetric[(b, a, task)] == metric


def test_operator_ranking_covers_every_ordered_pair_with_a_score(smoke_run):
    # the tiny experts score 0 on some tasks, where the normalised score is undefined and the pair has no ranking
    labels = pd.read_parquet(results(smoke_run) / "labels.parquet")
    scored = labels.dropna(subset=["merge_score"]).groupby(["a", "b"]).size()
    best = pd.read_csv(results(smoke_run) / "ranking" / "best_per_pair.csv")
    assert len(best) == len(scored) > 0
    assert (best["spread"] >= 0).all() and (best["n_tied"] >= 1).all()
    wins = pd.read_csv(results(smoke_run) / "ranking" / "operator_wins.csv")
    assert list(wins["operator"]) == [op["name"] for op in SMOKE["merges"]["operators"]]
    assert wins["best"].sum() >= len(best)
    assert "| operator | best on |" in (results(smoke_run) / "ranking" / "summary.md").read_text()


def test_merge_pair_command_reproduces_the_rules_record(smoke_run, tmp_path, monkeypatch):
    from simmerge.cli import main

    a, b = MODELS[2], MODELS[1]
    monkeypatch.chdir(smoke_run)
    out = tmp_path / "record.json"
    assert main(["merge-pair", a, b, "--operator", "slerp_t30", "--config", "config/smoke.yaml", "-o", str(out)]) == 0
    by_cli, by_rule = read_json(out), read_json(results(smoke_run) / "merges" / f"{a}__{b}" / "slerp_t30.json")
    assert by_cli["config_yaml"] == by_rule["config_yaml"]
    assert by_cli["tasks"] == by_rule["tasks"] and by_cli["score"] == by_rule["score"]
    assert main(["merge-pair", a, b, "--operator", "nope", "--config", "config/smoke.yaml"]) == 2


def test_cma_search_by_hand_makes_the_rules_record(smoke_run, tmp_path, monkeypatch, capsys):
    from simmerge.cli import main

    a, b = sorted(MODELS[1:3])
    monkeypatch.chdir(smoke_run)
    out = tmp_path / "cma.json"
    assert main(["cma-search", b, a, "--config", "config/smoke.yaml", "--threads", "1", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    by_cli, by_rule = read_json(out), read_json(results(smoke_run) / "search" / "cma" / f"{a}__{b}.json")
    assert (by_cli["a"], by_cli["b"], by_cli["split_digest"]) == (by_rule["a"], by_rule["b"], by_rule["split_digest"])
    for mine, theirs in zip(by_cli["generations"], by_rule["generations"], strict=True):
        assert mine["parameters"] == theirs["parameters"] and mine["held_out_score"] == theirs["held_out_score"]
    assert main(["cma-search", a, "nope", "--config", "config/smoke.yaml"]) == 2


def test_costs_split_every_merge_job_into_merge_scoring_and_overhead(smoke_run, capsys):
    from simmerge.cli import main
    from simmerge.core.layout import RunLayout
    from simmerge.evaluate.costs import merge_costs

    layout = RunLayout(results(smoke_run))
    costs = merge_costs(layout, layout.glob(layout.merge_record("*", "*", "*")))
    assert len(costs) == len(list((results(smoke_run) / "merges").glob("*/*.json")))
    assert (costs["merge_s"] > 0).all() and (costs["eval_s"] > 0).all()
    assert (costs["overhead_s"] > 0).all()
    assert (costs["job_s"] - costs["merge_s"] - costs["eval_s"] - costs["overhead_s"]).abs().max() < 1e-9
    assert main(["costs", "--run", str(results(smoke_run))]) == 0
    out = capsys.readouterr().out
    assert "overhead_s" in out and "linear" in out


def test_predictor_and_comparison(smoke_run):
    from simmerge.core.config import PREDICTOR_FAMILIES
    from simmerge.evaluate.predictor import load_predictor
    from simmerge.features.definitions import feature_names

    operators = [op["name"] for op in SMOKE["merges"]["operators"]]
    run = results(smoke_run)
    predictor = load_predictor(run / "predictor" / "model.skops", feature_columns=feature_names(), operators=operators)
    cv = read_json(run / "predictor" / "cv.json")
    assert cv["family"] == predictor.family and len(cv["families"]) == len(PREDICTOR_FAMILIES)
    labels = pd.read_parquet(run / "labels.parquet").dropna(subset=["normalised"])
    assert len(predictor.predict(labels[list(predictor.feature_names_in_)])) == len(labels)
    summary = pd.read_csv(run / "compare" / "summary.csv").set_index("protocol")
    assert set(summary.index) == {"checkpoint", "task_seen_pairs", "cold_start"}
    for column in ("simmerge", "best_fixed", "oracle", "random", "gap_closure", "top1", "top1_tied", "regret"):
        assert column in summary.columns
    # a task protocol may have no unit: the tiny experts score 0 on most generative tasks, which leaves a task no label
    assert summary.loc["checkpoint", "units"] > 0
    tested = summary[summary["units"] > 0]
    assert (tested["oracle"] >= tested["simmerge"] - 1e-12).all()
    assert (tested["oracle"] >= tested["best_fixed"] - 1e-12).all()


def test_recommend_writes_a_yaml_that_mergekit_accepts(smoke_run, tmp_path, monkeypatch, capsys):
    from mergekit.config import MergeConfiguration

    from simmerge.catalog.toy import build_tiny_checkpoint
    from simmerge.cli import main

    monkeypatch.chdir(smoke_run)
    a, b = MODELS[1], MODELS[2]
    out = tmp_path / "best.yml"
    assert main(["recommend", a, b, "--config", "config/smoke.yaml", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(op["name"] in printed for op in SMOKE["merges"]["operators"])
    config = yaml.safe_load(out.read_text())
    MergeConfiguration.model_validate(config)
    assert all(Path(model["model"]).is_absolute() for model in config["models"])
    # a checkpoint directory outside the catalog: pre-flight checked, probed, then predicted like an expert
    outside = results(smoke_run) / "checkpoints" / MODELS[3]
    assert main(["recommend", a, str(outside), "--config", "config/smoke.yaml", "-o", str(tmp_path / "x.yml")]) == 0
    assert (results(smoke_run) / "features" / "recommend" / f"{MODELS[3]}.npz").is_file()
    capsys.readouterr()
    # a checkpoint of another architecture gets the pre-flight error
    build_tiny_checkpoint(tmp_path / "narrow", seed=0, hidden_size=32)
    assert main(["recommend", a, str(tmp_path / "narrow"), "--config", "config/smoke.yaml"]) == 2
    assert "hidden" in capsys.readouterr().err


def test_report_is_one_self_contained_page(smoke_run):
    text = (results(smoke_run) / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("data:image/png;base64,") >= 3
    assert 'src="http' not in text and 'href="http' not in text
    headings = ("What was run", "Which operator wins where", "gap closure", "Feature importances", "Cost", "Multi-way")
    for heading in headings:
        assert heading.lower() in text.lower(), heading


def test_the_results_page_is_generated_from_the_runs_files(smoke_run):
    run = results(smoke_run)
    page = (run / "results.md").read_text(encoding="utf-8")
    assert f"Generated by `snakemake results_page` from results/{SMOKE['run_name']}/ on " in page
    assert (run / "ranking" / "summary.md").read_text(encoding="utf-8").strip() in page
    # one row per rule with its number of jobs: the merge grid's is the number of merge records
    merge_row = next(line for line in page.splitlines() if line.startswith("| merges ") and "| merge_score " in line)
    assert merge_row.split("|")[3].strip() == str(len(list((run / "merges").glob("*/*.json"))))
    for heading in ("## Expert scores", "## Predictor", "## SimMerge against", "## Cost", "## Multi-way", "## Online"):
        assert heading in page, heading


def test_snakemake_report_bundles_the_captioned_outputs(smoke_run):
    import zipfile

    run_snakemake(smoke_run, "--configfile", "config/smoke.yaml", "--report", "report.zip")
    names = zipfile.ZipFile(smoke_run / "report.zip").namelist()
    for name in ("report.html", "summary.csv", "summary.md", "labels.csv"):
        assert any(entry.endswith("/" + name) for entry in names if "/data/raw/" in entry), name


def test_a_three_way_plan_is_executed_and_compared_with_every_baseline(smoke_run):
    root = results(smoke_run) / "multiway"
    plan = read_json(root / "trio" / "plan.json")
    recipes = read_json(root / "trio" / "recipes.json")
    summary = pd.read_csv(root / "summary.csv").set_index("approach")
    operators = SMOKE["merges"]["operators"]
    symmetric = [op["name"] for op in operators if op["method"] not in ANCHORED]
    assert set(summary.index) == {
        "simmerge",
        *(f"all:{name}" for name in symmetric),
        "all:model_stock",
        "chain_random_order",
        "random_subset",
        "oracle",
        "best_all_at_once",
        "best_expert",
    }
    assert (summary["status"] == "ok").all()
    # SimMerge's row is the executed plan; it spent no evaluation to choose it
    assert summary.loc["simmerge", "model"] == plan["expression"]
    assert summary.loc["simmerge", "evaluations"] == 0
    assert summary.loc["simmerge", "probe_passes"] == len(plan["materialised"])
    # the oracle scored every subset and order with the best fixed operator: 3 pairs + 3 three-way chains
    best_fixed = recipes["best_fixed_operator"]
    assert summary.loc["oracle", "evaluations"] == (6 if best_fixed in symmetric else 12)
    assert summary.loc["oracle", "target_score"] == max(
        read_json(root / "trio" / "scores" / f"{node}.json")["target_score"] for node in recipes["approaches"]["oracle"]
    )
    # every merge ran the exact mergekit YAML recorded beside it, with one model per input of the node
    for identity, node in recipes["nodes"].items():
        record = read_json(root / "trio" / "nodes" / f"{identity}.json")
        assert record["status"] == "ok" and record["expression"] == node["expression"]
        assert len(yaml.safe_load(record["config_yaml"])["models"]) == len(node["inputs"])
        assert not (root / "trio" / "nodes" / identity).exists()  # merged weights are temporary by default
    # every prediction the planner used is on record: step 0 = 3 pairs x (symmetric + both orders of anchored)
    predictions = pd.read_csv(root / "trio" / "plan_predictions.csv")
    candidates_per_pair = len(symmetric) + 2 * (len(operators) - len(symmetric))
    assert len(predictions[predictions["step"] == 0]) == 3 * candidates_per_pair * predictions["task"].nunique()


def test_bandit_replay_reports_every_policy(smoke_run):
    from simmerge.online.bandit import POLICIES

    summary = pd.read_csv(results(smoke_run) / "bandit" / "summary.csv")
    assert list(summary["policy"]) == list(POLICIES)
    assert (summary["seeds"] == SMOKE["bandit"]["seeds"]).all()
    assert summary.set_index("policy").at["oracle", "cumulative_regret"] == 0
    replay = pd.read_csv(results(smoke_run) / "bandit" / "replay.csv")
    arrived = SMOKE["bandit"]["arrivals"][0]
    early = replay[replay["round"] < arrived["at"] * SMOKE["bandit"]["rounds"]]
    assert not early["arm"].isin(arrived["operators"]).any()


def ledger_rows(run: Path) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(run / "bandit" / "ledger.sqlite") as connection:
        return connection.execute("SELECT round, a, b, task, arm, status, reward FROM rounds ORDER BY round").fetchall()


def test_live_bandit_resumes_after_sigkill_and_picks_up_a_new_operator(smoke_run, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    simmerge = str(Path(sys.executable).with_name("simmerge"))
    runs = {name: tmp_path / name for name in ("straight", "killed")}
    for run in runs.values():
        shutil.copytree(results(smoke_run), run, ignore=shutil.ignore_patterns("bandit"))

    def live(run: Path, rounds: int, config: str = "config/smoke.yaml") -> list[str]:
        return [simmerge, "bandit", "--live", "--run", str(run), "--config", config, "--rounds", str(rounds)]

    subprocess.run(live(runs["straight"], 3), cwd=smoke_run, check=True, capture_output=True, timeout=600)
    process = subprocess.Popen(
        live(runs["killed"], 3), cwd=smoke_run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (runs["killed"] / "bandit" / "ledger.sqlite").is_file() and any(
            row[0] == 1 and row[5] == "started" for row in ledger_rows(runs["killed"])
        ):
            break
        time.sleep(0.02)
    # at once: round 1 is now inside its merge or its scoring (seconds on the tiny model)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    interrupted = ledger_rows(runs["killed"])
    assert [row[5] for row in interrupted] == ["done", "started"]
    result = subprocess.run(live(runs["killed"], 3), cwd=smoke_run, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "round 3/3" in result.stdout and "round 1/3" not in result.stdout  # round 1 is not played again
    assert ledger_rows(runs["killed"]) == ledger_rows(runs["straight"])
    assert interrupted[1][:5] == ledger_rows(runs["killed"])[1][:5]  # the killed round kept its request and arm

    config = load_config("smoke.yaml")
    config["merges"]["operators"].append(
        {"name": "ta_w100", "method": "task_arithmetic", "model_parameters": {"weight": 1.0}}
    )
    path = write_config(smoke_run, "live_plus_operator.yaml", config)
    subprocess.run(live(runs["straight"], 4, path), cwd=smoke_run, check=True, capture_output=True, timeout=600)
    # the new arm has no data: LinUCB's bonus for it is the largest, so the next round explores it
    assert ledger_rows(runs["straight"])[3][4] == "ta_w100"


def test_a_run_killed_in_a_merge_resumes_to_byte_identical_labels(smoke_run, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import time

    from snakemake_runner import SNAKEMAKE, copy_workflow

    root = copy_workflow(tmp_path / "wf")
    shutil.copytree(smoke_run / "results", root / "results")
    shutil.copytree(smoke_run / ".snakemake", root / ".snakemake", ignore=shutil.ignore_patterns("conda", "locks"))
    a, b = MODELS[1], MODELS[2]
    # the merges of one expert pair (both orders: 4 of the 12) are left to do, then the tables that read them
    for done in (f"merges/{a}__{b}", f"merges/{b}__{a}", "ranking", "labels.parquet", "labels.csv"):
        target = results(root) / done
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config = load_config("smoke.yaml")
    # where a killed merge's weights are left, to look at; moving it re-runs no finished merge
    config["merges"]["scratch_dir"] = str(scratch)
    path = write_config(root, "resume.yaml", config)
    command = [SNAKEMAKE, "--cores", "2", "all_labels", "--configfile", path]

    process = subprocess.Popen(
        command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(scratch.iterdir()):
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # Snakemake and every job it started, inside a merge
    process.wait(timeout=30)
    left = list(scratch.iterdir())
    assert left, "no merge had started within 300 s"
    records = sorted((results(root) / "merges").rglob("*.json"))
    assert len(records) < len(list((results(smoke_run) / "merges").rglob("*.json")))
    for record in records:  # whatever is at a final path is whole
        assert read_json(record)["status"] in {"ok", "failed", "partly_failed"}

    # the documented way back: a killed Snakemake leaves its lock, so unlock, then run the same command again
    run_snakemake(root, "--unlock", "all_labels", "--configfile", path)
    run_snakemake(root, "all_labels", "--configfile", path)
    for table in ("labels.csv", "labels.parquet"):
        assert (results(root) / table).read_bytes() == (results(smoke_run) / table).read_bytes(), table
    assert not any(path.exists() for path in left), "the killed merge's scratch weights are still there"
    assert not list(results(root).rglob("*.tmp")), "a half-written output was left next to the results"
