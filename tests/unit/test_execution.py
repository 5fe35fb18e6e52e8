"""Tests of simmerge.multiway.execution: what a multi-way node records when it cannot merge, and how it is scored.

mergekit and lm-eval are not run here: a node whose inputs are missing never reaches mergekit, and scoring uses a
stand-in for the lm-eval call with known scores.
"""

from __future__ import annotations

import json

import pytest

import simmerge.merges.merging
from simmerge.merges.items import join_items
from simmerge.merges.merging import FAILED_MERGE_SCORE
from simmerge.merges.operators import default_operators
from simmerge.multiway.execution import merge_node, read_expert_scores, score_node
from simmerge.multiway.planning import operator_specs

SPECS = operator_specs(default_operators())


def score_record(folder, name, scores):
    """``scores/experts/<name>/<task>.json`` records, one per task."""
    paths = []
    for task, score in scores.items():
        path = folder / name / f"{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"score": score, "primary_metric": "acc", "stderr": {"acc": 0.01}}
        path.write_text(json.dumps({"checkpoint": name, "tasks": {task: entry}, "limit": None}), encoding="utf-8")
        paths.append(path)
    return paths


def test_expert_scores_are_read_per_expert_and_task(tmp_path):
    paths = score_record(tmp_path, "fr", {"t1": 0.5, "t2": 0.25}) + score_record(tmp_path, "de", {"t1": 0.75})
    assert read_expert_scores(paths) == {"fr": {"t1": 0.5, "t2": 0.25}, "de": {"t1": 0.75}}


@pytest.mark.parametrize(("operator", "seed"), [("ties_d50", None), ("dare_ties_d50", 11)])
def test_a_node_whose_input_merge_failed_fails_without_running_mergekit(operator, seed, tmp_path):
    node = {"expression": f"{operator}({operator}(a, b), c)", "operator": SPECS[operator]}
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text("{}", encoding="utf-8")
    inputs = [tmp_path / "failed-node", tmp_path / "c"]
    record = merge_node(node, inputs, tmp_path / "base", tmp_path / "out", merge_seed=11, trust_remote_code=True)
    assert record == {
        "expression": node["expression"],
        "operator": operator,
        "seed": seed,  # only a randomised operator records its merge seed
        "status": "failed",
        "error": f"input merge failed (no checkpoint): {tmp_path / 'failed-node'}",
        "wall_seconds": 0.0,
        "trust_remote_code": True,
    }
    assert (tmp_path / "out").is_dir() and not any((tmp_path / "out").iterdir())


def test_a_failed_node_scores_the_failed_merge_score_on_every_task_without_lm_eval(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a failed merge was scored")

    monkeypatch.setattr(simmerge.merges.merging, "score_checkpoint", refuse)
    failed = {"expression": "ties_d50(a, b)", "status": "failed", "error": "input merge failed"}
    record = score_node(tmp_path, failed, {"t1": 0.5, "t2": 0.8}, task_dir=tmp_path, data_files={})
    assert record.pop("items").empty
    assert record == {
        "expression": "ties_d50(a, b)",
        "status": "failed",
        "error": "input merge failed",
        "tasks": {t: {"metric": None, "stderr": None, "normalised": FAILED_MERGE_SCORE} for t in ("t1", "t2")},
        "target_score": FAILED_MERGE_SCORE,
        "eval_seconds": 0.0,
        "exact_match": "one_pass",
    }


def test_a_node_is_normalised_by_the_best_candidates_score_on_each_target_task(tmp_path, monkeypatch):
    calls = []

    def known_scores(node_dir, task_dir, data_files, **options):
        calls.append({"node_dir": node_dir, "data_files": data_files, **options})
        tasks = {
            task: {"score": score, "primary_metric": "acc", "stderr": {"acc": 0.02}, "n": 12, "version": 1}
            for task, score in {"t1": 0.4, "t2": 0.6, "t3": 0.9}.items()
        }
        return {
            "items": {task: join_items({}) for task in tasks},
            "tasks": tasks,
            "wall_seconds": 12.34567,
            "load_seconds": 1.5,
            "lm_eval_version": "0.4.13",
            "device": "cpu",
            "dtype": "float32",
        }

    monkeypatch.setattr(simmerge.merges.merging, "score_checkpoint", known_scores)
    merged = {"expression": "linear(a, b)", "status": "ok", "trust_remote_code": True}
    reference = {"t1": 0.5, "t2": 0.8}  # t3 is no target task of the set
    record = score_node(tmp_path / "node", merged, reference, task_dir=tmp_path, data_files={"t1": "x", "t2": "y"})
    assert record["tasks"] == {
        "t1": {"metric": 0.4, "stderr": 0.02, "primary_metric": "acc", "normalised": pytest.approx(0.8)},
        "t2": {"metric": 0.6, "stderr": 0.02, "primary_metric": "acc", "normalised": pytest.approx(0.75)},
    }
    assert record["target_score"] == pytest.approx((0.8 + 0.75) / 2)
    assert record["eval_seconds"] == 12.346 and record["status"] == "ok"
    # the node is scored with the permission of the checkpoints it was merged from
    (call,) = calls
    assert call["trust_remote_code"] is True and call["data_files"] == {"t1": "x", "t2": "y"}
