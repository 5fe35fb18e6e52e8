"""profiles/slurm: what it asks SLURM for, how `make slurm-profile` installs it, and how the SLURM test adapts it."""

from __future__ import annotations

import os
import re
import subprocess

import yaml
from local_slurm import (
    LOCAL_CLUSTER_DROPPED_RESOURCES,
    LOCAL_CLUSTER_MEM_MB,
    LOCAL_CLUSTER_SETTINGS,
    PROFILE,
    local_cluster_profile,
)
from snakemake_runner import REPO, run_snakemake

# Rules whose jobs put a model on the GPU: probe passes, lm-eval scoring (merge_score scores its merge), the
# multi-way planner (merges and probe passes) and fine-tuning.
GPU_RULES = {
    "probe_pass",
    "expert_scores",
    "merge_score",
    "cma_search",
    "multiway_score",
    "multiway_plan",
    "finetune_expert",
}
# Rules that hold whole checkpoints in memory while they merge.
MERGE_RULES = {"merge_score", "cma_search", "multiway_node"}


def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text(encoding="utf-8"))


def workflow_rules() -> set[str]:
    return {
        match.group(1)
        for path in (REPO / "rules").glob("*.smk")
        for match in re.finditer(r"^(?:rule|checkpoint)\s+(\w+)\s*:", path.read_text(encoding="utf-8"), re.M)
    }


def test_every_rule_the_profile_sizes_is_a_rule_of_the_workflow():
    # A misspelt rule name in set-resources is silently ignored by Snakemake: the job would get the defaults.
    assert set(profile()["set-resources"]) <= workflow_rules()
    assert GPU_RULES | MERGE_RULES <= workflow_rules()


def test_gpu_rules_ask_for_one_gpu_on_the_gpu_partition_and_no_other_job_does():
    config = profile()
    defaults, per_rule = config["default-resources"], config["set-resources"]
    assert "gpu" not in defaults and "gres" not in defaults
    for rule, resources in per_rule.items():
        if rule in GPU_RULES:
            assert resources["gpu"] == 1, rule
            assert resources["slurm_partition"] != defaults["slurm_partition"], rule
        else:
            assert "gpu" not in resources and "gres" not in resources, rule
    assert GPU_RULES <= set(per_rule)


def test_merge_rules_get_more_time_and_their_memory_from_the_checkpoint_size():
    from simmerge.catalog.sizing import RULE_SIZING

    config = profile()
    defaults, per_rule = config["default-resources"], config["set-resources"]
    for rule in MERGE_RULES:
        assert per_rule[rule]["runtime"] > defaults["runtime"], rule
    # a profile's mem_mb or disk_mb would override the rule's own, sized from its manifests
    for rule in RULE_SIZING:
        assert "mem_mb" not in per_rule.get(rule, {}) and "disk_mb" not in per_rule.get(rule, {}), rule


def flatten(mapping: dict, prefix: tuple = ()) -> dict[tuple, object]:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, (*prefix, key)))
        else:
            flat[(*prefix, key)] = value
    return flat


def test_the_local_cluster_profile_changes_only_the_listed_keys():
    real = flatten(profile())
    local = flatten(local_cluster_profile(profile()))
    changed = {key for key in real.keys() | local.keys() if real.get(key) != local.get(key)}
    settings = {(name,) for name in LOCAL_CLUSTER_SETTINGS}
    dropped = {key for key in real if key[-1] in LOCAL_CLUSTER_DROPPED_RESOURCES}
    memory = {key for key in real if key[-1] == "mem_mb"}
    assert changed == settings | dropped | memory
    assert all(local[key] == LOCAL_CLUSTER_MEM_MB for key in memory)
    # The settings are what a cluster without accounting needs, so the real profile must not already carry them.
    assert not settings & real.keys()
    # Executor, job count, runtimes and the rule list are the real profile's.
    assert local[("executor",)] == "slurm"
    assert {key[1] for key in local if key[0] == "set-resources"} == {
        key[1] for key in real if key[0] == "set-resources"
    }


def dry_run_resources(output: str) -> dict[str, list[str]]:
    """Rule -> the ``resources:`` line of each of its jobs in a dry-run's output."""
    found: dict[str, list[str]] = {}
    rule = None
    for line in output.splitlines():
        if match := re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", line):
            rule = match.group(1)
        elif rule and line.strip().startswith("resources:"):
            found.setdefault(rule, []).append(line.strip())
    return found


def test_make_slurm_profile_installs_the_profile_snakemake_finds_by_name(workflow_dir, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    installed = tmp_path / "config" / "snakemake" / "slurm" / "config.yaml"
    subprocess.run(["make", "-s", "slurm-profile"], cwd=REPO, env={**os.environ, **env}, check=True, timeout=60)
    assert installed.read_text() == PROFILE.read_text()

    # Snakemake's own lookup of `--profile slurm`: the jobs carry the profile's resources.
    result = run_snakemake(
        workflow_dir, "--profile", "slurm", "--dry-run", "all_labels", "--configfile", "config/smoke.yaml", env=env
    )
    resources = dry_run_resources(result.stdout)
    # memory and scratch from simmerge.catalog.sizing: no manifest exists before the run, so the rule's extra alone
    assert resources["merge_score"] and all(
        "gpu=1" in line and "slurm_partition=gpu" in line and "mem_mb=2000," in line and "disk_mb=1000," in line
        for line in resources["merge_score"]
    )
    assert resources["weight_sketch"] and all(
        "gpu=" not in line and "slurm_partition=cpu" in line and "mem_mb=1000," in line
        for line in resources["weight_sketch"]
    )

    # A profile the user has edited is never overwritten.
    installed.write_text(installed.read_text().replace("your_account", "lab42"))
    refused = subprocess.run(
        ["make", "-s", "slurm-profile"], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "not overwriting" in refused.stderr
    assert "lab42" in installed.read_text()
