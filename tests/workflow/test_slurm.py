"""The smoke workflow on a real SLURM cluster: Snakemake's SLURM executor with profiles/slurm (adapted to a one-node
cluster by the short list of overrides in local_slurm.py) submits every job with sbatch, and what it makes equals
the local smoke run's: data, checkpoints, features, merge records, labels and expert scores.

The cluster runs the smoke catalog without its last expert (one expert pair): every rule up to the labels still
runs as a SLURM job, at about half the jobs. The plugin checks job states at a growing interval while none finishes,
so the run is bound by queue latency, not compute, and it is the longest piece of the test suite."""

from __future__ import annotations

import collections
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from local_slurm import (
    ClusterUnavailable,
    cannot_host_a_cluster,
    local_cluster,
    slurm_jobs_by_rule,
    write_local_cluster_profile,
)
from snakemake_runner import (
    background_snakemake,
    copy_workflow,
    dry_run_counts,
    load_config,
    wait_for_snakemake,
    write_config,
)

from simmerge.core.io import read_json, sha256_file

# Skipped up front, before the local smoke run the comparison needs is paid for.
NO_CLUSTER_REASON = cannot_host_a_cluster()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(NO_CLUSTER_REASON is not None, reason=str(NO_CLUSTER_REASON))]

SMOKE = load_config("smoke.yaml")
# The smoke catalog less its last expert, whose only multi-way set goes with it. The base, the task data and the other
# experts are the smoke run's: their seeds and inputs do not depend on the dropped expert.
CLUSTER_CONFIG = {
    **{key: value for key, value in SMOKE.items() if key != "multiway"},
    "catalog": {**SMOKE["catalog"], "experts": SMOKE["catalog"]["experts"][:-1]},
}
EXPERTS = [expert["name"] for expert in CLUSTER_CONFIG["catalog"]["experts"]]
# Every stage up to the labels: data, the tiny base, fine-tuning, probe passes, expert scores, pair features, the
# merge grid (mergekit + lm-eval) and the labels table.
TARGET = ("all_labels", "--configfile", "config/cluster.yaml")
# The gathers and tables of TARGET that the Snakefile runs in Snakemake's own process (its `localrules`).
LOCAL_RULES = {"skill_data", "task_data", "preflight", "probe_features", "pair_features", "labels", "operator_ranking"}
# Hard limit on the SLURM run, which shares the cores with the local smoke run (measured: 10 min 19 s beside it, 15
# min for both); past it Snakemake is killed with SIGKILL.
RUN_TIMEOUT_S = 1800


@dataclass(frozen=True)
class SlurmRun:
    root: Path
    expected_jobs: dict[str, int]  # rule -> jobs, from a dry-run of the same target
    slurm_jobs: dict[str, collections.Counter]  # rule -> final SLURM states of its jobs, from squeue
    local_jobs: collections.Counter  # rule -> jobs Snakemake ran itself ("localrule" in its log)


@pytest.fixture(scope="module")
def slurm_cluster():
    try:
        with local_cluster():
            yield
    except ClusterUnavailable as err:
        pytest.skip(f"no local SLURM cluster: {err}")


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory, request) -> SlurmRun:
    base = tmp_path_factory.mktemp("slurm")
    root = copy_workflow(base / "wf")
    write_config(root, "cluster.yaml", CLUSTER_CONFIG)
    profile = write_local_cluster_profile(base / "profile")
    expected = dry_run_counts(root, *TARGET)
    log = base / "snakemake.log"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with background_snakemake(root, *TARGET, "--profile", str(profile), log=log) as process:
        # A SLURM job of the smoke catalog waits on the queue and the status checks longer than it computes, so the
        # local smoke run it is compared with (session-scoped: made here unless a test before made it) runs meanwhile.
        request.getfixturevalue("smoke_run")
        output = wait_for_snakemake(process, log, deadline)
    local = collections.Counter(re.findall(r"^localrule (\w+):", output, flags=re.MULTILINE))
    return SlurmRun(root, expected, slurm_jobs_by_rule(), local)


def results(root: Path) -> Path:
    return root / "results" / SMOKE["run_name"]


def test_every_job_ran_as_a_completed_slurm_job_or_as_a_declared_local_one(slurm_run):
    # The target rule only collects inputs: Snakemake finishes it itself, without a job.
    expected = {rule: n for rule, n in slurm_run.expected_jobs.items() if rule != TARGET[0]}
    assert expected["merge_score"] > 0 and expected["expert_scores"] > 0
    local = {rule: n for rule, n in slurm_run.local_jobs.items() if rule != TARGET[0]}
    assert local == {rule: expected[rule] for rule in LOCAL_RULES}
    submitted = {rule: sum(states.values()) for rule, states in slurm_run.slurm_jobs.items()}
    assert submitted == {rule: n for rule, n in expected.items() if rule not in LOCAL_RULES}
    not_completed = {rule: states for rule, states in slurm_run.slurm_jobs.items() if set(states) != {"COMPLETED"}}
    assert not not_completed


def test_every_artifact_is_byte_identical_to_the_local_runs(slurm_run, smoke_run):
    """A second run from nothing, on other processes and in another folder, gives the same bytes: data, weights,
    probe passes and model summaries, pair features, and the merges' scores and labels of its pair (the
    reproducibility check of everything up to the labels; tests/workflow/test_smoke.py re-runs what comes after)."""
    slurm, local = results(slurm_run.root), results(smoke_run)
    compared = 0
    for folder in ("data", "features"):
        for path in (p for p in sorted((slurm / folder).rglob("*")) if p.is_file()):
            relative = path.relative_to(slurm)
            assert sha256_file(path) == sha256_file(local / relative), relative
            compared += 1
    for manifest in sorted((slurm / "checkpoints").glob("*/manifest.json")):
        relative = manifest.relative_to(slurm)
        assert read_json(manifest)["files"] == read_json(local / relative)["files"], relative  # sha256 per file
        compared += 1
    for record in sorted((slurm / "merges").rglob("*.json")):
        relative = record.relative_to(slurm)
        assert read_json(record)["tasks"] == read_json(local / relative)["tasks"], relative
        compared += 1
    assert compared > 30  # 11 data files, 17 feature files, 3 manifests, 4 merge records on the cluster's catalog
    # the labels of the cluster's pair are the local run's rows of that pair, to the last bit
    labels = pd.read_parquet(slurm / "labels.parquet")
    assert set(labels["a"]) == set(EXPERTS)
    keys = ["a", "b", "task", "operator"]
    local_rows = pd.read_parquet(local / "labels.parquet")
    local_rows = local_rows[local_rows["a"].isin(EXPERTS) & local_rows["b"].isin(EXPERTS)]
    pd.testing.assert_frame_equal(
        labels.sort_values(keys).reset_index(drop=True), local_rows.sort_values(keys).reset_index(drop=True)
    )


def test_expert_scores_equal_the_local_runs(slurm_run, smoke_run):
    # all_labels scores each expert on the tasks of its merges (its own and its partners' home tasks)
    folder = results(slurm_run.root) / "scores" / "experts"
    scored = sorted(str(path.relative_to(folder)) for path in folder.rglob("*.json"))
    experts = CLUSTER_CONFIG["catalog"]["experts"]
    home = sorted({task for expert in experts for task in expert["tasks"]})
    assert scored == sorted(f"{expert['name']}/{task}.json" for expert in experts for task in home)
    for name in scored:
        on_slurm = read_json(folder / name)
        local = read_json(results(smoke_run) / "scores" / "experts" / name)
        assert on_slurm["tasks"] == local["tasks"], name
