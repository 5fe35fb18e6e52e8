"""A job that SLURM gives a GPU uses it: the package code each GPU rule's script runs asks resolve_device("auto"),
which is CUDA when torch sees a GPU, and no workflow script pins a device.

The GPU rules are the ones the SLURM profile gives a GPU. Each is run here on a node where torch sees a GPU, up to
the moment it asks for its device, on stand-in inputs that pass its checks; asking stops the job there, so no
model is loaded.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from shipped_configs import read_config
from synthetic_summaries import Synth
from test_compare import label_items as compare_label_items
from test_compare import labels as compare_labels

import simmerge
import simmerge.multiway.execution
from simmerge.catalog.build import finetune_checkpoint, tiny_checkpoint
from simmerge.core.device import resolve_device
from simmerge.core.io import write_json
from simmerge.evaluate.methods import cma_search_record
from simmerge.features.probe_pass import probe_task
from simmerge.merges.merging import merge_score
from simmerge.merges.scoring import score_checkpoint
from simmerge.multiway.execution import merge_node, plan_set, score_node
from simmerge.multiway.planning import operator_specs
from simmerge.run import load

REPO = Path(__file__).resolve().parents[2]
# Every module of the package, imported now: one first imported while resolve_device is patched would keep the
# stand-in after the test.
PACKAGE_MODULES = [info.name for info in pkgutil.walk_packages(simmerge.__path__, "simmerge.")]
for _name in PACKAGE_MODULES:
    importlib.import_module(_name)
OPERATORS = load(read_config("smoke.yaml"), workdir=REPO).operators
TRAIN = {"steps": 1, "batch_size": 1, "lr": 1e-3, "seed": 0}


class DeviceAsked(Exception):
    """Raised where a job asks for its device: everything after it (model loads, merges, lm-eval) is not run."""


@pytest.fixture
def gpu_node(monkeypatch) -> list[tuple[str, torch.device]]:
    """torch sees a GPU; every request for a device is recorded with what it resolves to, then stops the job."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    requests = []

    def ask(requested="auto"):
        requests.append((requested, resolve_device(requested)))
        raise DeviceAsked

    # Patched wherever the package looks it up: in the modules that import it by name, and in simmerge.core.device
    # for the ones that import it when called.
    for name in PACKAGE_MODULES:
        if vars(sys.modules[name]).get("resolve_device") is resolve_device:
            monkeypatch.setattr(sys.modules[name], "resolve_device", ask)
    return requests


# ------------------------------------------------------------------------------------------------------------------
# Stand-in inputs: each passes the checks its job makes before it asks for a device


def checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    return folder


def published(folder: Path) -> Path:
    """A catalog checkpoint: its directory and its manifest; returns the manifest."""
    write_json({"name": folder.name, "source": {"kind": "tiny"}, "files": {}}, checkpoint(folder) / "manifest.json")
    return folder / "manifest.json"


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def train_file(folder: Path) -> Path:
    return jsonl(folder / "train.jsonl", [{"prompt": f"{i} doubled:", "answer": str(2 * i)} for i in range(4)])


def run_probe_pass(tmp: Path, monkeypatch) -> None:
    probes = jsonl(tmp / "probe.jsonl", [{"id": "p0", "prompt": "Chile:"}])
    probe_task(checkpoint(tmp / "m"), "alpha", probes, tmp / "alpha.npz", spec={}, seed=0)


def run_expert_scores(tmp: Path, monkeypatch) -> None:
    score_checkpoint(checkpoint(tmp / "m"), tmp / "tasks", {"alpha": tmp / "eval.jsonl"})


def run_merge_score(tmp: Path, monkeypatch) -> None:
    parents = {"tasks": {"alpha": {"score": 0.5}}}
    merge_score(
        OPERATORS["linear"],
        checkpoint(tmp / "a"),
        checkpoint(tmp / "b"),
        checkpoint(tmp / "base"),
        parent_scores=(parents, parents),
        task_dir=tmp / "tasks",
        data_files={"alpha": tmp / "eval.jsonl"},
        seeds=[0],
        scratch_dir=tmp,
    )


def run_cma_search(tmp: Path, monkeypatch) -> None:
    spec = load(read_config("smoke.yaml"), workdir=REPO).config.predictor.cma_search
    table = compare_labels(0)
    data_files = {}
    for task in sorted(table["task"].unique()):
        data_files[task] = tmp / task / "eval.jsonl"
        data_files[task].parent.mkdir()
        jsonl(data_files[task], [{"prompt": "Chile:", "answer": "Santiago"}, {"prompt": "Peru:", "answer": "Lima"}])
    cma_search_record(
        table,
        compare_label_items(table, n_items=2, shared=True),
        "e0",
        "e1",
        genome=spec.model_dump(include={"method", "parameters", "model_parameters", "genes"}),
        split_seed=0,
        a_dir=checkpoint(tmp / "a"),
        b_dir=checkpoint(tmp / "b"),
        base_dir=checkpoint(tmp / "base"),
        task_dir=tmp / "tasks",
        data_files=data_files,
        budget=spec.budget,
        popsize=spec.popsize,
        sigma0=spec.sigma0,
        seed=0,
        scratch_dir=tmp,
    )


def run_multiway_node(tmp: Path, monkeypatch) -> None:
    node = {"expression": "linear(a, b)", "operator": operator_specs(OPERATORS)["linear"]}
    inputs = [checkpoint(tmp / "a"), checkpoint(tmp / "b")]
    merge_node(node, inputs, checkpoint(tmp / "base"), tmp / "merged", merge_seed=0)


def run_multiway_plan(tmp: Path, monkeypatch) -> None:
    # A predictor that predicts every merge keeps its parents' scores: the planner merges the best pair to extend it.
    class Flat:
        feature_names_in_ = ["operator"]

        def predict(self, X: pd.DataFrame, return_std: bool = False):  # noqa: N803 - scikit-learn's names
            return ([1.0] * len(X), [0.0] * len(X)) if return_std else [1.0] * len(X)

    monkeypatch.setattr(simmerge.multiway.execution, "load_predictor", lambda path, **checks: Flat())
    synth, names = Synth(), ["base", "a", "b", "c"]
    summaries = {name: synth.model(tmp, name, seed=seed, scale=0.5 * seed) for seed, name in enumerate(names)}
    plan_set(
        names[1:],
        list(synth.tasks),
        max_size=3,
        beam_width=1,
        min_gain=0.0,
        operators=OPERATORS,
        predictor_path=tmp / "model.skops",
        checkpoints={name: checkpoint(tmp / "checkpoints" / name) for name in names},
        summaries=summaries,
        base="base",
        expert_scores={name: dict.fromkeys(synth.tasks, 0.5) for name in names[1:]},
        probe_files={},
        feature_spec={"top_fraction": 0.2},
        seed=0,
        merge_seed=0,
        probes_dir=tmp / "probes",
        scratch_dir=tmp,
    )


def run_multiway_score(tmp: Path, monkeypatch) -> None:
    record = {"expression": "linear(a, b)", "status": "ok"}
    score_node(checkpoint(tmp / "m"), record, {"alpha": 1.0}, task_dir=tmp / "tasks", data_files={"alpha": tmp})


def run_finetune_expert(tmp: Path, monkeypatch) -> None:
    parent = published(tmp / "checkpoints" / "base")
    finetune_checkpoint(
        "fr", TRAIN, tmp / "out", parent_manifest=parent, base_manifest=parent, train_files=[train_file(tmp)]
    )


def run_tiny_checkpoint(tmp: Path, monkeypatch) -> None:
    source = {"kind": "tiny", "hidden_size": 8, "num_layers": 1, "num_heads": 2, "pretrain": TRAIN}
    tiny_checkpoint("base", source, tmp / "out", seed=0, train_files=[train_file(tmp)])


# rule -> (the package function its script calls, a run of that function up to its device request). The GPU rules
# of the SLURM profile, plus the CPU rules whose jobs would use a GPU where there is one (a multi-way node's merge,
# the built-in base's pre-training).
ENTRY_POINTS: dict[str, tuple[Callable, Callable[[Path, pytest.MonkeyPatch], None]]] = {
    "probe_pass": (probe_task, run_probe_pass),
    "expert_scores": (score_checkpoint, run_expert_scores),
    "merge_score": (merge_score, run_merge_score),
    "cma_search": (cma_search_record, run_cma_search),
    "multiway_node": (merge_node, run_multiway_node),
    "multiway_plan": (plan_set, run_multiway_plan),
    "multiway_score": (score_node, run_multiway_score),
    "finetune_expert": (finetune_checkpoint, run_finetune_expert),
    "tiny_checkpoint": (tiny_checkpoint, run_tiny_checkpoint),
}


def gpu_rules() -> set[str]:
    """The rules the SLURM profile gives a GPU."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text(encoding="utf-8"))
    return {rule for rule, resources in profile["set-resources"].items() if resources.get("gpu")}


# "rule <name>:" (or "checkpoint <name>:"), then its directives up to `script:` and the script's path
RULE_SCRIPT = re.compile(
    r'^(?:rule|checkpoint) (\w+):\n(?:(?!^(?:rule|checkpoint) ).*\n)*?    script:\n\s+"([^"]+)"', re.M
)


def rule_scripts() -> dict[str, Path]:
    """Rule name -> the workflow script it runs, from the rules' ``script:`` directives."""
    scripts = {}
    for path in (REPO / "rules").glob("*.smk"):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(
            r'^(?:rule|checkpoint) (\w+):\n(?:(?!^(?:rule|checkpoint) ).*\n)*?    script:\n\s+"([^"]+)"', text, re.M
        ):
            scripts[match.group(1)] = (path.parent / match.group(2)).resolve()
    return scripts


def test_every_gpu_rule_has_its_device_request_checked():
    assert gpu_rules(), "the SLURM profile gives no rule a GPU"
    assert not gpu_rules() - set(ENTRY_POINTS), "add the rule's package entry point to ENTRY_POINTS"


@pytest.mark.parametrize("rule", sorted(ENTRY_POINTS))
def test_the_rule_script_calls_the_checked_entry_point(rule):
    function, _ = ENTRY_POINTS[rule]
    tree = ast.parse(rule_scripts()[rule].read_text(encoding="utf-8"))
    imported = {
        (node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert (function.__module__, function.__name__) in imported and function.__name__ in called


@pytest.mark.parametrize("rule", sorted(ENTRY_POINTS))
def test_the_rule_job_asks_for_the_auto_device_and_gets_the_gpu(rule, gpu_node, tmp_path, monkeypatch):
    _, run = ENTRY_POINTS[rule]
    with pytest.raises(DeviceAsked):
        run(tmp_path, monkeypatch)
    assert gpu_node == [("auto", torch.device("cuda"))]


def test_workflow_scripts_leave_the_device_to_the_package():
    # A script passing device="cpu" would keep a job on the CPU on a node where SLURM gave it a GPU.
    pinned = [path.name for path in (REPO / "workflow_scripts").glob("*.py") if "device" in path.read_text()]
    assert not pinned


def test_auto_is_cuda_when_torch_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_native_threads_caps_the_openmp_and_blas_pools_for_the_block():
    import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP runtime
    from threadpoolctl import threadpool_info

    from simmerge.core.runtime import native_threads

    with native_threads(1):
        assert {pool["num_threads"] for pool in threadpool_info()} == {1}
