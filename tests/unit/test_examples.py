"""The example catalogs of config/examples/: locked, checked and planned offline, as a user does on a login node.

The Hub is unreachable here, so the hub cache is laid out as huggingface_hub writes it: each repository's ``main``
ref points at a made-up commit, and the base's snapshot holds one safetensors file whose header gives the plan its
parameter count. `simmerge lock` then resolves every branch offline, and `simmerge check` and `simmerge plan` run
on the locked config as they would on a cluster's login node.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
import yaml
from safetensors.torch import save_file
from test_hub import add_to_cache

from simmerge.catalog.lock import hub_dataset_sources, read_lock
from simmerge.cli import main
from simmerge.core.config import parse_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "config" / "examples").glob("*.yaml"))


def test_there_are_example_catalogs_of_hub_checkpoints():
    assert len(EXAMPLES) >= 2
    for path in EXAMPLES:
        entries = [(c := yaml.safe_load(path.read_text()))["catalog"]["base"], *c["catalog"]["experts"]]
        assert {entry["source"]["kind"] for entry in entries} == {"hf"}, path.name
        assert {spec["kind"] for spec in c["tasks"].values()} == {"lmeval"}, path.name


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_an_example_locks_checks_and_plans_offline(example, tmp_path, monkeypatch, capsys):
    config = yaml.safe_load(example.read_text())
    cache = tmp_path / "hub"
    base = config["catalog"]["base"]["source"]["repo_id"]
    weights = tmp_path / "weights.safetensors"
    save_file({"embed.weight": torch.zeros(12, 4), "lm_head.weight": torch.zeros(12, 4)}, weights)
    commits = {}
    for entry in [config["catalog"]["base"], *config["catalog"]["experts"]]:
        repo_id = entry["source"]["repo_id"]
        commits[entry["name"]] = hashlib.sha1(repo_id.encode()).hexdigest()
        files = {"config.json": b"{}"}
        if repo_id == base:
            files["model.safetensors"] = weights.read_bytes()
        add_to_cache(cache, repo_id, commits[entry["name"]], files, refs=("main",))
    datasets = {}
    for repositories in hub_dataset_sources(parse_config(config), REPO).values():
        for repo_id in repositories:
            datasets[repo_id] = hashlib.sha1(repo_id.encode()).hexdigest()
            ref = cache / f"datasets--{repo_id.replace('/', '--')}" / "refs" / "main"
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(datasets[repo_id])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(REPO)
    copy = shutil.copy(example, tmp_path / example.name)

    assert main(["check", str(copy)]) == 2  # every revision is a branch: nothing runs before `simmerge lock`
    assert f"run `simmerge lock {copy}`" in capsys.readouterr().err
    assert main(["lock", str(copy)]) == 0
    locked = read_lock(tmp_path / f"{example.stem}.lock.yaml")
    assert {name: entry["commit"] for name, entry in locked["checkpoints"].items()} == commits
    # every task's Hub dataset too (gsm8k, IFEval, MMLU, ...), each once however many tasks read it
    assert {repo_id: entry["commit"] for repo_id, entry in locked["datasets"].items()} == datasets
    assert {"openai/gsm8k", "google/IFEval"} <= set(datasets)
    capsys.readouterr()
    assert main(["check", str(copy)]) == 0
    assert main(["plan", str(copy)]) == 0
    plan = capsys.readouterr().out
    assert "Model size: 96 parameters, from" in plan and "(hub cache)" in plan
    assert "fetch_checkpoint" in plan and "merge_score" in plan
