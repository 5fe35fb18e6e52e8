"""A bad catalog fails in its cheap checks: no scoring, training, probing or merging job starts before every
checkpoint whose source exists before the run has passed its pre-flight (rule `preflight`, rules/common.smk)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from snakemake_runner import load_config, run_snakemake, write_config

from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.core.layout import RunLayout

# The jobs a bad catalog must never reach: each costs minutes to hours on a real catalog.
COSTLY = {"expert_scores", "finetune_expert", "probe_pass", "weight_sketch", "merge_score", "multiway_plan"}


def nan_expert(path: Path, source: dict) -> Path:
    """A local expert of the base's architecture whose weights hold a NaN."""
    build_tiny_checkpoint(
        path, seed=11, hidden_size=source["hidden_size"], num_layers=source["num_layers"], num_heads=source["num_heads"]
    )
    weights = path / "model.safetensors"
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first].clone()
    tensors[first].view(-1)[0] = torch.nan
    save_file(tensors, weights, metadata={"format": "pt"})
    return path


def catalog_with_a_bad_expert(tmp_path: Path) -> dict:
    """The smoke catalog, made cheaper, with a good fine-tuned expert and a `local` one whose weights hold a NaN."""
    config = copy.deepcopy(load_config("smoke.yaml"))
    for task in config["tasks"].values():
        task["n_train"] = 20
    base = config["catalog"]["base"]["source"]
    base["pretrain"] = {**base["pretrain"], "steps": 2}
    good = config["catalog"]["experts"][0]
    broken = nan_expert(tmp_path / "broken", base)
    config["catalog"]["experts"] = [
        good,
        {"name": "broken", "tasks": ["n2w_fr"], "source": {"kind": "local", "path": str(broken)}},
    ]
    config["multiway"]["sets"] = []
    return config


# about a minute on 2 busy cores (Snakemake's start, the task data, a 2-step tiny base)
@pytest.mark.slow
def test_a_bad_expert_fails_before_any_costly_job_starts(workflow_dir, tmp_path):
    config = catalog_with_a_bad_expert(tmp_path)
    path = write_config(workflow_dir, "bad_expert.yaml", config)
    result = run_snakemake(workflow_dir, "all", "--keep-going", "--configfile", path, check=False, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    layout = RunLayout.of_run(config["run_name"])
    # the jobs Snakemake started: the cheap ones only (the task data, the base, the bad expert's check)
    started = set(re.findall(r"^(?:local)?rule (\w+):$", output, flags=re.MULTILINE))
    assert started == {"skill_data", "task_data", "tiny_checkpoint", "local_checkpoint"}, output
    finished = {p.name for p in (workflow_dir / layout.root / "benchmarks").iterdir()}
    assert finished == {"skill_data", "task_data", "tiny_checkpoint"} and not finished & COSTLY
    assert not (workflow_dir / layout.preflight).exists()
    # the failed job is the bad expert's, and its log says what is wrong with which checkpoint
    assert "rule local_checkpoint" in output and "model=broken" in output, output
    log = (workflow_dir / layout.log("local_checkpoint", "broken")).read_text(encoding="utf-8")
    assert "broken" in log and "NaN" in log, log
