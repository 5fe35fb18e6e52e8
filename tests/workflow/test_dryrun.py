"""Dry-runs: the job list a catalog implies, and what a config change re-runs."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake_runner import (
    ANCHORED,
    aggregates,
    dry_run_counts,
    dry_run_jobs,
    load_config,
    pretend_complete,
    run_snakemake,
    write_config,
)

from simmerge.core.layout import RunLayout


def test_smoke_dry_run_job_counts(workflow_dir):
    counts = dry_run_counts(workflow_dir, "--configfile", "config/smoke.yaml")
    smoke = load_config("smoke.yaml")
    n_tasks = len(smoke["tasks"])
    n_lm_eval_tasks = sum(spec.get("kind", "builtin") != "builtin" for spec in smoke["tasks"].values())
    n_experts = len(smoke["catalog"]["experts"])
    assert n_lm_eval_tasks == 2
    assert counts == {
        "skill_data": n_tasks - n_lm_eval_tasks,
        # an lm-eval task's documents are drawn by lm-eval (registry arc_easy, the user's word_lengths)
        "task_data": n_lm_eval_tasks,
        "tiny_checkpoint": 1,
        # the gate every costly job waits for: the tiny base and the task data checked (rules/common.smk)
        "preflight": 1,
        "finetune_expert": n_experts,
        "expert_scores": (n_experts + 1) * n_tasks,
        "expert_scores_table": 1,
        "probe_pass": (n_experts + 1) * n_tasks,
        "weight_sketch": n_experts + 1,
        "probe_features": n_experts + 1,
        "pair_features": n_experts * (n_experts - 1),
        "merge_score": n_merges(smoke["merges"]["operators"], n_experts),
        # CMA-ES per unordered pair (predictor.cma_search); not re-run by other pairs' new labels (ancient input)
        "cma_search": n_experts * (n_experts - 1) // 2,
        **AGGREGATES,
        "all": 1,
    }


AGGREGATES = aggregates(load_config("smoke.yaml"))


def test_the_report_stage_is_in_no_partial_target(workflow_dir):
    """report.html and the results page read every stage's results: `all` builds them (their jobs are among the
    label aggregates counted above), no `all_<stage>` target does, not even all of them together."""
    snakefile = (workflow_dir / "Snakefile").read_text(encoding="utf-8")
    partial = re.findall(r"^rule (all_\w+):", snakefile, flags=re.MULTILINE)
    assert {"all_catalog", "all_labels", "all_bandit"} <= set(partial)
    counts = dry_run_counts(workflow_dir, *partial, "--configfile", "config/smoke.yaml")
    assert counts["merge_score"] > 0 and counts["bandit_replay"] == 1
    assert "report" not in counts and "results_page" not in counts


def n_merges(operators: list[dict], n_experts: int) -> int:
    """Symmetric operators once per unordered pair, anchored ones once per ordered pair."""
    anchored = sum(op["method"] in ANCHORED for op in operators)
    return (len(operators) - anchored) * n_experts * (n_experts - 1) // 2 + anchored * n_experts * (n_experts - 1)


def test_default_dry_run_job_counts(workflow_dir):
    counts = dry_run_counts(workflow_dir)
    default = load_config("config.yaml")
    n_experts = len(default["catalog"]["experts"])
    n_tasks = len(default["tasks"])
    from simmerge.core.config import DEFAULT_OPERATORS

    assert counts == {
        "skill_data": n_tasks,
        "convert_gguf": 1,
        "preflight": 1,
        "finetune_expert": n_experts,
        "expert_scores": (n_experts + 1) * n_tasks,
        "expert_scores_table": 1,
        "probe_pass": (n_experts + 1) * n_tasks,
        "weight_sketch": n_experts + 1,
        "probe_features": n_experts + 1,
        "pair_features": n_experts * (n_experts - 1),
        "merge_score": n_merges([dict(op) for op in DEFAULT_OPERATORS], n_experts),
        **aggregates(default),
        "all": 1,
    }


def test_the_large_catalog_is_ten_experts_over_seven_skills_and_45_pairs(workflow_dir):
    large = load_config("large.yaml")
    n_experts, n_tasks = len(large["catalog"]["experts"]), len(large["tasks"])
    assert (n_experts, n_tasks, n_experts * (n_experts - 1) // 2) == (10, 7, 45)
    from simmerge.core.config import DEFAULT_OPERATORS

    counts = dry_run_counts(workflow_dir, "--configfile", "config/large.yaml")
    assert counts["finetune_expert"] == 10 and counts["skill_data"] == 7
    assert counts["expert_scores"] == counts["probe_pass"] == 11 * 7
    assert counts["pair_features"] == 90
    assert counts["merge_score"] == n_merges([dict(op) for op in DEFAULT_OPERATORS], 10) == 9 * 45 + 3 * 90


def test_the_disjoint_catalog_shares_no_home_task_with_the_default_one(workflow_dir):
    default, disjoint = load_config("config.yaml"), load_config("disjoint.yaml")

    def homes(config):
        return {task for expert in config["catalog"]["experts"] for task in expert["tasks"]}

    assert not homes(default) & homes(disjoint) and homes(disjoint) == set(disjoint["tasks"])
    counts = dry_run_counts(workflow_dir, "--configfile", "config/disjoint.yaml")
    assert counts["finetune_expert"] == 5 and counts["pair_features"] == 20
    from simmerge.core.config import DEFAULT_OPERATORS

    assert counts["merge_score"] == n_merges([dict(op) for op in DEFAULT_OPERATORS], 5)


def test_a_transfer_from_another_finished_run_is_one_job_of_the_compare_stage(workflow_dir):
    other = workflow_dir / "results" / "other"
    for name in ("predictor/model.skops", "predictor/cv.json", "labels.parquet"):
        (other / name).parent.mkdir(parents=True, exist_ok=True)
        (other / name).write_bytes(b"")
    config = load_config("smoke.yaml")
    config.setdefault("predictor", {})["transfer_from"] = ["results/other"]
    path = write_config(workflow_dir, "transfer.yaml", config)
    counts = dry_run_counts(workflow_dir, "all_compare", "--configfile", path)
    assert counts["transfer"] == 1 and counts["compare"] == 3
    (other / "labels.parquet").unlink()
    result = run_snakemake(workflow_dir, "-n", "--configfile", path, check=False)
    assert result.returncode != 0
    assert "predictor.transfer_from" in result.stderr and "has no labels.parquet" in result.stderr


def test_an_export_of_a_finished_run_stands_for_it_until_its_tables_change(workflow_dir):
    from simmerge.core.export import export_run

    other = workflow_dir / "results" / "other"
    for name in ("predictor/model.skops", "predictor/cv.json", "labels.parquet"):
        (other / name).parent.mkdir(parents=True, exist_ok=True)
        (other / name).write_bytes(b"")
    export_run(other, workflow_dir / "exports" / "other")
    config = load_config("smoke.yaml")
    config.setdefault("predictor", {})["transfer_from"] = ["exports/other"]
    path = write_config(workflow_dir, "transfer_export.yaml", config)
    assert dry_run_counts(workflow_dir, "all_compare", "--configfile", path)["transfer"] == 1
    (workflow_dir / "exports" / "other" / "labels.parquet").write_bytes(b"edited")
    result = run_snakemake(workflow_dir, "-n", "--configfile", path, check=False)
    assert result.returncode != 0
    assert "is an export whose labels.parquet (changed)" in result.stderr


def test_local_source_gets_a_local_checkpoint_job(workflow_dir, tmp_path):
    config = load_config("smoke.yaml")
    expert_dir = tmp_path / "my_expert"
    expert_dir.mkdir()
    config["catalog"]["experts"].append(
        {"name": "mine", "tasks": ["n2w_fr"], "source": {"kind": "local", "path": str(expert_dir)}}
    )
    path = write_config(workflow_dir, "with_local.yaml", config)
    counts = dry_run_counts(workflow_dir, "--configfile", path)
    assert counts["local_checkpoint"] == 1
    assert counts["expert_scores"] == (len(config["catalog"]["experts"]) + 1) * len(config["tasks"])


def test_bad_config_fails_at_parse_time_naming_the_field(workflow_dir):
    config = load_config("smoke.yaml")
    broken = copy.deepcopy(config)
    broken["catalog"]["experts"][0]["name"] = "bad name!"
    path = write_config(workflow_dir, "broken.yaml", broken)
    result = run_snakemake(workflow_dir, "--dry-run", "--configfile", path, check=False)
    assert result.returncode != 0
    assert "bad name!" in result.stdout + result.stderr


def test_wrong_type_in_a_source_fails_at_parse_time_naming_the_field_and_value(workflow_dir):
    config = load_config("smoke.yaml")
    config["catalog"]["experts"][0]["source"]["train"]["steps"] = "ten"
    path = write_config(workflow_dir, "wrong_type.yaml", config)
    result = run_snakemake(workflow_dir, "--dry-run", "--configfile", path, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "catalog.experts.0.source.finetune.train.steps: Input should be a valid integer" in output, output
    assert "(got 'ten')" in output


def test_malformed_task_yaml_fails_at_parse_time_naming_the_file(workflow_dir):
    broken = workflow_dir / "config" / "tasks" / "simmerge_n2w_fr.yaml"
    broken.write_text(broken.read_text(encoding="utf-8") + "metadata: {version: [\n", encoding="utf-8")
    result = run_snakemake(workflow_dir, "--dry-run", "--configfile", "config/smoke.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "task YAML config/tasks/simmerge_n2w_fr.yaml: is not valid YAML" in output, output
    assert "finetune_expert" not in output  # failed before any job was planned


def test_lint_is_clean(workflow_dir):
    result = run_snakemake(workflow_dir, "--lint", "--configfile", "config/smoke.yaml", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def with_extra_expert(config: dict) -> dict:
    config = copy.deepcopy(config)
    config["catalog"]["experts"].append(
        {"name": "fr2", "tasks": ["n2w_fr"], "source": {"kind": "finetune", "train": {"steps": 5, "seed": 9}}}
    )
    return config


def one_experts_jobs(config: dict, checkpoint_rule: str) -> dict[str, int]:
    """The jobs of the last expert of ``config`` when every other job is done: its checkpoint, the gate (rewritten in
    seconds; the costly jobs read it through ancient(), so nothing else follows from it), its probe passes, sketch,
    summary and scores, its pair features and merges with each other expert, and the aggregates."""
    n_others = len(config["catalog"]["experts"]) - 1
    n_tasks = len(config["tasks"])
    operators = config["merges"]["operators"]
    return {
        checkpoint_rule: 1,
        "preflight": 1,
        "probe_pass": n_tasks,
        "weight_sketch": 1,
        "probe_features": 1,
        "pair_features": 2 * n_others,
        "expert_scores": n_tasks,
        "expert_scores_table": 1,
        "merge_score": n_merges(operators, n_others + 1) - n_merges(operators, n_others),
        # its pairs' CMA-ES searches; the other pairs' searches read the new labels through ancient()
        **({"cma_search": n_others} if config.get("predictor", {}).get("cma_search", {}).get("enabled") else {}),
        **AGGREGATES,
        "all": 1,
    }


def test_adding_an_expert_reruns_only_its_own_jobs_and_the_aggregates(completed_smoke_dir):
    assert dry_run_counts(completed_smoke_dir, "--configfile", "config/smoke.yaml") == {}
    config = with_extra_expert(load_config("smoke.yaml"))
    path = write_config(completed_smoke_dir, "plus_one.yaml", config)
    assert dry_run_counts(completed_smoke_dir, "--configfile", path) == one_experts_jobs(config, "finetune_expert")


def write_lock(workflow_dir: Path, name: str, commit: str) -> None:
    entry = {"repo_id": "org/model", "revision": "main", "commit": commit, "resolved_from": "hub", "locked_at": "-"}
    lock = {"version": 1, "checkpoints": {"hub": entry}}
    (workflow_dir / "config" / name).write_text(yaml.safe_dump(lock), encoding="utf-8")


def test_moving_a_lock_refetches_that_checkpoint_and_reruns_only_what_is_built_from_it(workflow_dir):
    config = load_config("smoke.yaml")
    hub = {"name": "hub", "tasks": ["n2w_fr"], "source": {"kind": "hf", "repo_id": "org/model", "revision": "main"}}
    config["catalog"]["experts"].append(hub)
    path = write_config(workflow_dir, "hub.yaml", config)
    write_lock(workflow_dir, "hub.lock.yaml", "a" * 40)
    pretend_complete(workflow_dir, "--configfile", path)
    assert dry_run_counts(workflow_dir, "--configfile", path) == {}
    write_lock(workflow_dir, "hub.lock.yaml", "b" * 40)  # `simmerge lock` found main moved
    assert dry_run_counts(workflow_dir, "--configfile", path) == one_experts_jobs(config, "fetch_checkpoint")


def test_adding_a_local_expert_reruns_the_preflight_gate_and_no_other_experts_jobs(completed_smoke_dir, tmp_path):
    """A checkpoint checked before the costly jobs (here `local`) joins the gate's inputs: the gate re-runs, and
    every costly job reads it through ancient(), so only the new expert's own jobs and the aggregates follow."""
    config = load_config("smoke.yaml")
    (tmp_path / "mine").mkdir()
    config["catalog"]["experts"].append(
        {"name": "mine", "tasks": ["n2w_fr"], "source": {"kind": "local", "path": str(tmp_path / "mine")}}
    )
    path = write_config(completed_smoke_dir, "plus_local.yaml", config)
    assert dry_run_counts(completed_smoke_dir, "--configfile", path) == one_experts_jobs(config, "local_checkpoint")


NEW_TASKS = {
    "skill_data": ("element_symbol", {"n_train": 20, "n_eval": 12, "n_probe": 6}),
    "task_data": (
        "arc_challenge",
        {"kind": "lmeval", "dataset_path": "config/smoke_data/ai2_arc", "n_eval": 4, "n_probe": 2},
    ),
}


def test_moving_a_datasets_lock_redraws_that_tasks_data_and_rescores_it_and_no_merge(workflow_dir):
    """gsm8k read from the Hub at its locked commit: a new commit is a new task as far as the run is concerned."""
    smoke = load_config("smoke.yaml")
    config = copy.deepcopy(smoke)
    config["tasks"]["gsm8k"] = {"kind": "lmeval", "n_eval": 4, "n_probe": 2}
    path = write_config(workflow_dir, "hub_data.yaml", config)

    def lock(commit: str) -> None:
        entry = {"revision": "main", "commit": commit, "resolved_from": "hub", "locked_at": "-", "tasks": ["gsm8k"]}
        lock = {"version": 1, "checkpoints": {}, "datasets": {"openai/gsm8k": entry}}
        (workflow_dir / "config" / "hub_data.lock.yaml").write_text(yaml.safe_dump(lock), encoding="utf-8")

    lock("a" * 40)
    pretend_complete(workflow_dir, "--configfile", path)
    assert dry_run_counts(workflow_dir, "--configfile", path) == {}
    lock("b" * 40)
    assert dry_run_counts(workflow_dir, "--configfile", path) == one_tasks_jobs(smoke, "task_data")


def one_tasks_jobs(smoke: dict, data_rule: str) -> dict[str, int]:
    """The jobs of one new (or re-drawn) task when every other job is done."""
    n_models = len(smoke["catalog"]["experts"]) + 1
    n_experts = n_models - 1
    return {
        data_rule: 1,
        "preflight": 1,
        "probe_pass": n_models,
        "expert_scores": n_models,
        "probe_features": n_models,
        "pair_features": n_experts * (n_experts - 1),
        "expert_scores_table": 1,
        **AGGREGATES,
        "all": 1,
    }


@pytest.mark.parametrize("data_rule", list(NEW_TASKS))
def test_adding_a_task_runs_its_probe_passes_and_scores_and_reruns_no_merge(completed_smoke_dir, data_rule):
    """A built-in skill or an lm-eval registry task: the same jobs, only the rule drawing its data differs."""
    smoke = load_config("smoke.yaml")
    config = copy.deepcopy(smoke)
    name, spec = NEW_TASKS[data_rule]
    config["tasks"][name] = spec
    path = write_config(completed_smoke_dir, "plus_task.yaml", config)
    # The expensive work of a new task: its data, one probe pass and one lm-eval run per checkpoint. No
    # checkpoint is re-trained, no existing probe pass or score and no merge re-runs (no expert has the task
    # as its home task). Re-gathered: each model summary and pair's feature table (seconds each, they now hold
    # the new task) and what reads the labels.
    # The pre-flight gate re-runs for the new task's data; every costly job reads it through ancient(), so its
    # newer record re-runs none of the existing ones.
    assert dry_run_counts(completed_smoke_dir, "--configfile", path) == one_tasks_jobs(smoke, data_rule)


def test_changing_the_sketch_size_reruns_no_probe_pass(completed_smoke_dir):
    config = load_config("smoke.yaml")
    config["features"] = {**config.get("features", {}), "sketch_size": 150}
    path = write_config(completed_smoke_dir, "sketch.yaml", config)
    n_models = len(config["catalog"]["experts"]) + 1
    assert dry_run_counts(completed_smoke_dir, "--configfile", path) == {
        "weight_sketch": n_models,
        "probe_features": n_models,
        "pair_features": (n_models - 1) * (n_models - 2),
        **AGGREGATES,
        "all": 1,
    }


def test_labels_target_merges_each_symmetric_pair_once_and_ordered_ones_twice(workflow_dir):
    smoke = load_config("smoke.yaml")
    n = len(smoke["catalog"]["experts"])
    operators = smoke["merges"]["operators"]
    anchored = [op for op in operators if op["method"] in ANCHORED]
    assert len(anchored) == 1 and len(operators) == 3
    counts = dry_run_counts(workflow_dir, "all_labels", "--configfile", "config/smoke.yaml")
    assert counts["merge_score"] == 2 * n * (n - 1) // 2 + 1 * n * (n - 1) == n_merges(operators, n)
    assert counts["labels"] == 1


def test_keep_merged_declares_the_merged_checkpoints_as_outputs(workflow_dir):
    config = load_config("smoke.yaml")
    config["merges"]["keep_merged"] = True
    path = write_config(workflow_dir, "keep.yaml", config)
    kept = [
        line.split("\t")[0]
        for line in run_snakemake(workflow_dir, "--summary", "all_labels", "--configfile", path).stdout.splitlines()
        if line.split("\t")[0].endswith(".merged")
    ]
    merges = dry_run_counts(workflow_dir, "all_labels", "--configfile", path)["merge_score"]
    assert len(kept) == merges
    assert "results/smoke/merges/arc__fr/linear.merged" in kept


def test_adding_an_operator_reruns_only_its_merges_and_the_aggregates(workflow_dir):
    smoke = load_config("smoke.yaml")
    pretend_complete(workflow_dir, "all", "all_labels", "--configfile", "config/smoke.yaml")
    config = copy.deepcopy(smoke)
    config["merges"]["operators"].append(
        {"name": "ta_w075", "method": "task_arithmetic", "model_parameters": {"weight": 0.75}}
    )
    path = write_config(workflow_dir, "plus_operator.yaml", config)
    n = len(smoke["catalog"]["experts"])
    assert dry_run_counts(workflow_dir, "all", "all_labels", "--configfile", path) == {
        "merge_score": n * (n - 1) // 2,
        **AGGREGATES,
        "all_labels": 1,
        "all": 1,
    }
    config = copy.deepcopy(smoke)
    config["merges"]["tie_z"] = 2.0
    path = write_config(workflow_dir, "tie_z.yaml", config)
    assert dry_run_counts(workflow_dir, "all", "all_labels", "--configfile", path) == {
        "operator_ranking": 1,
        "compare": 3,
        "compare_summary": 1,
        "report": 1,
        "results_page": 1,
        "all_labels": 1,
        "all": 1,
    }


def test_multiway_changes_rerun_only_their_own_stage(completed_smoke_dir):
    smoke = load_config("smoke.yaml")
    added = copy.deepcopy(smoke)
    added["multiway"]["sets"].append({"name": "pair", "checkpoints": ["fr", "arc"]})
    path = write_config(completed_smoke_dir, "plus_set.yaml", added)
    # the new set is planned; the existing set's plan, recipes and summary stay; the table and the report stage
    # (report, results page) gather both
    assert dry_run_counts(completed_smoke_dir, "--configfile", path) == {
        "multiway_plan": 1,
        "multiway_recipes": 1,
        "multiway_summary": 1,
        "multiway_table": 1,
        "report": 1,
        "results_page": 1,
        "all": 1,
    }
    oracle = copy.deepcopy(smoke)
    oracle["multiway"]["oracle_operators"] = ["linear", "ties_d50"]
    path = write_config(completed_smoke_dir, "oracle.yaml", oracle)
    # baselines change, the plan (the expensive probe merges) does not
    assert dry_run_counts(completed_smoke_dir, "--configfile", path) == {
        "multiway_recipes": 1,
        "multiway_summary": 1,
        "multiway_table": 1,
        "report": 1,
        "results_page": 1,
        "all": 1,
    }


def test_changing_a_bandit_setting_reruns_only_the_replay_and_the_report(completed_smoke_dir):
    config = load_config("smoke.yaml")
    config["bandit"]["alpha"] = 0.5
    path = write_config(completed_smoke_dir, "alpha.yaml", config)
    assert dry_run_counts(completed_smoke_dir, "--configfile", path) == {
        "bandit_replay": 1,
        "report": 1,
        "results_page": 1,
        "all": 1,
    }


def test_runtime_settings_rerun_nothing(completed_smoke_dir, tmp_path):
    # how a job runs changes no result: no merge, plan or score is re-run (simmerge.core.runtime)
    config = load_config("smoke.yaml")
    config["merges"]["scratch_dir"] = str(tmp_path / "elsewhere")
    path = write_config(completed_smoke_dir, "scratch.yaml", config)
    assert dry_run_counts(completed_smoke_dir, "--configfile", path) == {}
    config["scoring"]["batch_size"] = 4
    path = write_config(completed_smoke_dir, "batch4.yaml", config)
    assert dry_run_counts(completed_smoke_dir, "--configfile", path) == {}
    assert (
        dry_run_counts(completed_smoke_dir, "--configfile", path, "--set-threads", "merge_score=2", "expert_scores=1")
        == {}
    )


# What each partial target builds: its stage and what the stage needs, nothing after it (the report is `all`'s).
CATALOG_JOBS = {"skill_data", "task_data", "tiny_checkpoint", "preflight", "finetune_expert"}
FEATURE_JOBS = CATALOG_JOBS | {"probe_pass", "weight_sketch", "probe_features", "pair_features"}
LABEL_JOBS = FEATURE_JOBS | {"expert_scores", "merge_score", "labels"}
TARGET_JOBS = {
    "all_catalog": CATALOG_JOBS | {"expert_scores", "expert_scores_table"},
    "all_features": FEATURE_JOBS,
    "all_labels": LABEL_JOBS | {"operator_ranking"},
    "all_predictor": LABEL_JOBS | {"predictor"},
    "all_compare": LABEL_JOBS | {"compare", "compare_summary", "cma_search", "search"},
    "all_multiway": LABEL_JOBS
    | {"predictor", "multiway_plan", "multiway_recipes", "multiway_summary", "multiway_table"},
    "all_bandit": LABEL_JOBS | {"bandit_replay"},
}


@pytest.mark.parametrize("target", TARGET_JOBS)
def test_a_partial_target_builds_its_stage_and_what_it_needs_only(workflow_dir, target):
    counts = dry_run_counts(workflow_dir, target, "--configfile", "config/smoke.yaml")
    assert set(counts) == TARGET_JOBS[target] | {target}


def every_rule_config(tmp_path: Path) -> dict:
    """The smoke config with one expert of each other source kind and every merged checkpoint kept, so that a
    dry-run lists a job of every rule."""
    config = load_config("smoke.yaml")
    local = tmp_path / "local_expert"
    local.mkdir()
    gguf = tmp_path / "expert.gguf"
    gguf.touch()
    config["catalog"]["experts"] += [
        {"name": "here", "tasks": ["n2w_fr"], "source": {"kind": "local", "path": str(local)}},
        {"name": "hub", "tasks": ["arc_easy"], "source": {"kind": "hf", "repo_id": "org/model", "revision": "0" * 40}},
        {"name": "quant", "tasks": ["arc_easy"], "source": {"kind": "gguf", "path": str(gguf)}},
    ]
    config["merges"]["keep_merged"] = True
    config["multiway"]["keep_merged"] = True
    return config


CHECKPOINT_RULES = ("tiny_checkpoint", "finetune_expert", "convert_gguf", "fetch_checkpoint", "local_checkpoint")


def aggregate(rule: str):
    """The log and benchmark arguments of a rule with a single job."""
    return lambda L, w: (rule, "all")


# rule -> (its outputs, the arguments of its log and benchmark paths), from the layout and the job's wildcards
DECLARED = {
    "skill_data": (
        lambda L, w: [L.task_data(w["task"], split) for split in ("train", "eval", "probe")],
        lambda L, w: ("skill_data", w["task"]),
    ),
    "task_data": (
        lambda L, w: [
            *(L.task_data(w["task"], split) for split in ("train", "eval", "probe")),
            L.task_record(w["task"]),
        ],
        lambda L, w: ("task_data", w["task"]),
    ),
    **{
        rule: (lambda L, w: [L.checkpoint_manifest(w["model"])], lambda L, w, rule=rule: (rule, w["model"]))
        for rule in CHECKPOINT_RULES
    },
    "preflight": (lambda L, w: [L.preflight], aggregate("preflight")),
    "expert_scores": (
        lambda L, w: [L.expert_scores(w["model"], w["task"]), L.expert_items(w["model"], w["task"])],
        lambda L, w: ("expert_scores", w["model"], w["task"]),
    ),
    "expert_scores_table": (lambda L, w: [L.expert_scores_csv, L.expert_scores_md], aggregate("expert_scores_table")),
    "probe_pass": (
        lambda L, w: [L.probe_part(w["model"], w["task"])],
        lambda L, w: ("probe_pass", w["model"], w["task"]),
    ),
    "weight_sketch": (lambda L, w: [L.weight_sketch(w["model"])], lambda L, w: ("weight_sketch", w["model"])),
    "probe_features": (lambda L, w: [L.model_summary(w["model"])], lambda L, w: ("probe_features", w["model"])),
    "pair_features": (
        lambda L, w: [L.pair_features(w["a"], w["b"])],
        lambda L, w: ("pair_features", L.pair(w["a"], w["b"])),
    ),
    "merge_score": (
        lambda L, w: [
            L.merge_record(w["a"], w["b"], w["op"]),
            L.merge_items(w["a"], w["b"], w["op"]),
            L.merge_config(w["a"], w["b"], w["op"]),
            L.merged_checkpoint(w["a"], w["b"], w["op"]),
        ],
        lambda L, w: ("merge_score", L.pair(w["a"], w["b"]), w["op"]),
    ),
    "labels": (lambda L, w: [L.labels_parquet, L.label_items, L.labels_csv], aggregate("labels")),
    "operator_ranking": (
        lambda L, w: [L.ranking_best_per_pair, L.ranking_operator_wins, L.ranking_summary],
        aggregate("operator_ranking"),
    ),
    "predictor": (lambda L, w: [L.predictor_model, L.predictor_cv], lambda L, w: ("predictor", "fit")),
    "compare": (
        lambda L, w: [
            method(w["protocol"])
            for method in (
                L.comparison_units,
                L.comparison_candidates,
                L.comparison_folds,
                L.comparison_summary,
                L.comparison_importances,
            )
        ],
        lambda L, w: ("compare", w["protocol"]),
    ),
    "compare_summary": (lambda L, w: [L.compare_summary], lambda L, w: ("compare", "summary")),
    "search": (lambda L, w: [L.search_units, L.search_summary], aggregate("search")),
    "cma_search": (
        lambda L, w: [L.cma_record(w["a"], w["b"])],
        lambda L, w: ("cma_search", L.pair(w["a"], w["b"])),
    ),
    "multiway_plan": (
        lambda L, w: [
            L.multiway_plan(w["mwset"]),
            L.multiway_plan_predictions(w["mwset"]),
            L.multiway_plan_probes(w["mwset"]),
        ],
        lambda L, w: ("multiway_plan", w["mwset"]),
    ),
    "multiway_recipes": (
        lambda L, w: [L.multiway_recipes(w["mwset"])],
        lambda L, w: ("multiway_recipes", w["mwset"]),
    ),
    "multiway_node": (
        lambda L, w: [L.multiway_node_record(w["mwset"], w["node"]), L.multiway_node(w["mwset"], w["node"])],
        lambda L, w: ("multiway_node", w["mwset"], w["node"]),
    ),
    "multiway_score": (
        lambda L, w: [L.multiway_node_scores(w["mwset"], w["node"]), L.multiway_node_items(w["mwset"], w["node"])],
        lambda L, w: ("multiway_score", w["mwset"], w["node"]),
    ),
    "multiway_summary": (
        lambda L, w: [L.multiway_set_summary(w["mwset"])],
        lambda L, w: ("multiway_summary", w["mwset"]),
    ),
    "multiway_table": (lambda L, w: [L.multiway_summary], aggregate("multiway_table")),
    "bandit_replay": (lambda L, w: [L.bandit_replay, L.bandit_summary], aggregate("bandit_replay")),
    "report": (lambda L, w: [L.report], lambda L, w: ("report", "report")),
    "results_page": (lambda L, w: [L.results_page], lambda L, w: ("results_page", "all")),
}


def test_every_rules_declared_paths_are_the_layouts(workflow_dir, tmp_path):
    # The CLI, recommend and the bandit's live loop find a run's files through the same layout, so a path renamed
    # in a rule but not in the layout fails here instead of silently breaking them.
    config = every_rule_config(tmp_path)
    layout = RunLayout.of_run(config["run_name"])
    path = write_config(workflow_dir, "every_rule.yaml", config)
    # a node's merge and score are listed only once its set's recipes exist: ask for one node's scores directly
    node = layout.multiway_node_scores(config["multiway"]["sets"][0]["name"], "m0123456789ab")
    jobs = [job for job in dry_run_jobs(workflow_dir, "all", str(node), "--configfile", path) if job["rule"] != "all"]
    assert {job["rule"] for job in jobs} == set(DECLARED)
    for job in jobs:
        outputs, log_args = DECLARED[job["rule"]]
        wildcards = job["wildcards"]
        assert set(job["output"]) == {str(p) for p in outputs(layout, wildcards)}, job
        assert job["log"] == [str(layout.log(*log_args(layout, wildcards)))], job
        assert job["benchmark"] == str(layout.benchmark(*log_args(layout, wildcards))), job
