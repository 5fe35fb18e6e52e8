"""A job that SLURM gives a GPU uses it: every package entry point a GPU rule runs (probe pass, lm-eval scoring,
mergekit merging, fine-tuning, multi-way planning) resolves its device with resolve_device("auto"), and no
workflow script pins a device."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from simmerge.catalog import finetune
from simmerge.core.device import resolve_device
from simmerge.features import probe_pass as probes
from simmerge.merges import merging, scoring
from simmerge.multiway import execution as multiway

REPO = Path(__file__).resolve().parents[2]
# Called by workflow_scripts/{probe_features,expert_scores,merge_score,finetune_expert,multiway_*}.py and, for the
# built-in base's pre-training, by tiny_checkpoint.py.
GPU_ENTRY_POINTS = [
    probes.summarise_checkpoint,
    scoring.score_checkpoint,
    merging.merge_pair,
    merging.run_merge_config,
    merging.merge_score,
    finetune.finetune,
    multiway.merge_node,
    multiway.plan_set,
    multiway.score_node,
]


def test_gpu_entry_points_default_to_the_auto_device():
    for function in GPU_ENTRY_POINTS:
        assert inspect.signature(function).parameters["device"].default == "auto", function.__qualname__


def test_workflow_scripts_leave_the_device_to_the_package():
    # A script passing device="cpu" would keep a job on the CPU on a node where SLURM gave it a GPU.
    pinned = [path.name for path in (REPO / "workflow_scripts").glob("*.py") if "device" in path.read_text()]
    assert not pinned


def test_auto_is_cuda_when_torch_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
