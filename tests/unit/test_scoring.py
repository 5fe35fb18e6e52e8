"""Tests of simmerge.merges.scoring: lm-eval scoring of a tiny model, result parsing, normalisation, score files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_llm import make_tiny_checkpoint
from tiny_tasks import write_task_data, write_task_dir

from simmerge.core.io import read_jsonl
from simmerge.core.runtime import offline_hub
from simmerge.merges.scoring import normalise_scores, parse_task_result, read_scores, score_checkpoint
from simmerge.merges.tasks import TaskYamlError

# torch's thread count changes float results in the last bits; these tests compare runs
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture
def task_dir(tmp_path) -> Path:
    return write_task_dir(tmp_path / "tasks")


@pytest.fixture
def data_files(tmp_path) -> dict[str, Path]:
    return write_task_data(tmp_path)


# -- score_checkpoint ----------------------------------------------------------------------------------------


MALFORMED_TASK_YAMLS = {
    "syntax": ("task: simmerge_words\ninclude: [_generate_template_yaml\n", "is not valid YAML: "),
    "not_a_mapping": ("- task: simmerge_words\n", "holds a list, not a mapping of lm-eval fields"),
    "missing_include": ("task: simmerge_words\ninclude: _gone_yaml\n", "include '_gone_yaml' names no file"),
    "output_type": (
        "task: simmerge_words\ninclude: _generate_template_yaml\noutput_type: loglikelihood\n",
        "output_type is 'loglikelihood'; SimMerge scores generate_until, multiple_choice",
    ),
    "missing_function": (
        "task: simmerge_words\ninclude: _generate_template_yaml\nprocess_docs: !function utils.process_docs\n",
        "!function utils.process_docs needs",
    ),
    "python_tag": ("task: !!python/object/apply:os.getcwd []\n", "could not determine a constructor"),
}


@pytest.mark.parametrize("case", MALFORMED_TASK_YAMLS)
def test_malformed_task_yaml_fails_before_the_model_is_loaded_naming_the_file(
    case, task_dir, data_files, tiny, monkeypatch
):
    from lm_eval.models.huggingface import HFLM

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the task YAMLs were checked")

    monkeypatch.setattr(HFLM, "__init__", refuse)
    text, problem = MALFORMED_TASK_YAMLS[case]
    broken = task_dir / "simmerge_words.yaml"
    broken.write_text(text)
    with pytest.raises(TaskYamlError) as info:
        score_checkpoint(tiny, task_dir, data_files, batch_size=2, device="cpu")
    message = str(info.value)
    assert message.startswith(f"task YAML {broken}: ")  # the committed file, not a scratch copy
    assert problem in message
    assert message.endswith("fix the file (config/tasks/README.md describes the fields) or restore it with git")


def test_score_checkpoint_structure_and_determinism(tiny, task_dir, data_files):
    options = {"batch_size": 4, "limit": 4, "device": "cpu", "name": "tiny", "exact_match": "generate"}
    first = score_checkpoint(tiny, task_dir, data_files, **options)
    second = score_checkpoint(tiny, task_dir, data_files, **options)

    assert first["tasks"] == second["tasks"]
    items = first.pop("items")
    for task, table in items.items():
        pd.testing.assert_frame_equal(table, second["items"][task])
    assert first["checkpoint"] == "tiny"
    assert first["limit"] == 4
    assert first["exact_match"] == "generate"
    assert first["lm_eval_version"].startswith("0.4")
    assert first["wall_seconds"] > 0
    assert set(first["tasks"]) == set(items) == {"words", "pick"}

    words, pick = first["tasks"]["words"], first["tasks"]["pick"]
    assert words["primary_metric"] == "exact_match" and words["output_type"] == "generate_until"
    assert pick["primary_metric"] == "acc" and pick["output_type"] == "multiple_choice"
    assert words["filters"] == {"exact_match": "strip"}
    assert set(pick["metrics"]) == {"acc"}
    for record, version in ((words, 1.0), (pick, 2.0)):
        assert record["n"] == 4
        assert record["version"] == version
        assert record["score"] == record["metrics"][record["primary_metric"]]
        assert 0.0 <= record["score"] <= 1.0
        assert set(record["stderr"]) == set(record["metrics"])
    json.dumps(first, allow_nan=False)


def test_per_item_outcomes_are_the_scored_items_and_average_to_the_record(tiny, task_dir, data_files):
    scores = score_checkpoint(tiny, task_dir, data_files, batch_size=4, device="cpu", exact_match="generate")
    ids = {task: [row["id"] for row in read_jsonl(path)] for task, path in data_files.items()}
    for task, table in scores["items"].items():
        record = scores["tasks"][task]
        assert table["item_id"].tolist() == ids[task] and table["doc_id"].tolist() == list(range(len(ids[task])))
        assert table["score"].mean() == pytest.approx(record["score"])
        for metric, value in record["metrics"].items():
            assert table[metric].mean() == pytest.approx(value)
    words, pick = scores["items"]["words"], scores["items"]["pick"]
    # generation: the output is kept, no pass over the gold answer; multiple choice: the gold choice's probability
    assert words["output"].map(type).eq(str).all() and words["likelihood"].isna().all()
    assert pick["output"].isna().all() and pick["likelihood"].between(0, 1).all()
    assert (pick["gold_loglik"] < 0).all()


def test_one_pass_scores_generative_tasks_by_a_loglikelihood_request(tiny, task_dir, data_files):
    scores = score_checkpoint(tiny, task_dir, data_files, batch_size=4, device="cpu")
    words = scores["tasks"]["words"]
    assert scores["exact_match"] == "one_pass"
    assert words["output_type"] == "loglikelihood" and words["primary_metric"] == "exact_match"
    items = scores["items"]["words"]
    assert items["score"].mean() == pytest.approx(words["score"])
    # the per-token probability of " answer\n": exp(gold log-likelihood / its token count)
    assert (items["gold_tokens"] >= 2).all()
    assert items["likelihood"].to_numpy() == pytest.approx(np.exp(items["gold_loglik"] / items["gold_tokens"]))
    assert (task_dir / "simmerge_one_pass.py").exists() is False  # materialised in scratch, never in the task folder


def test_score_checkpoint_missing_checkpoint(tmp_path, task_dir, data_files):
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        score_checkpoint(tmp_path / "nothing", task_dir, data_files)


def test_offline_hub_restores_environment(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = huggingface_hub.constants.HF_HUB_OFFLINE
    with offline_hub():
        assert os.environ["HF_HUB_OFFLINE"] == "1"
        assert huggingface_hub.constants.is_offline_mode()
    assert "HF_HUB_OFFLINE" not in os.environ
    assert huggingface_hub.constants.HF_HUB_OFFLINE == before


# -- parse_task_result ---------------------------------------------------------------------------------------


def test_parse_task_result_nan_stderr_and_two_filters():
    results = {
        "results": {
            "simmerge_x": {
                "alias": "simmerge_x",
                "exact_match,strip": 1.0,
                "exact_match_stderr,strip": float("nan"),
                "exact_match,none": 0.0,
                "exact_match_stderr,none": "N/A",
            }
        },
        "configs": {"simmerge_x": {"output_type": "generate_until"}},
        "versions": {},
        "n-samples": {"simmerge_x": {"original": 10, "effective": 1}},
    }
    record = parse_task_result("simmerge_x", results, yaml_cfg={"metadata": {"version": 3}})
    assert record["metrics"] == {"exact_match": 1.0, "exact_match,none": 0.0}
    assert record["stderr"] == {"exact_match": None, "exact_match,none": None}
    assert record["filters"] == {"exact_match": "strip", "exact_match,none": "none"}
    assert record["score"] == 1.0 and record["n"] == 1 and record["version"] == 3


def test_parse_task_result_without_primary_metric_fails():
    results = {"results": {"t": {"f1,none": 0.5}}, "configs": {"t": {"output_type": "generate_until"}}}
    with pytest.raises(ValueError, match="primary metric"):
        parse_task_result("t", results)


# -- normalise_scores ----------------------------------------------------------------------------------------


def test_normalise_scores_divides_by_better_parent():
    out = normalise_scores({"a": 0.3, "b": 0.9}, [{"a": 0.6, "b": 0.3}, {"a": 0.2, "b": 0.6}])
    assert out == {"a": pytest.approx(0.5), "b": pytest.approx(1.5)}


def test_normalise_scores_zero_or_missing_parent_gives_none():
    out = normalise_scores({"a": 0.3, "b": 0.0, "c": None, "d": 0.2}, [{"a": 0.0, "b": 0.0, "c": 0.5}])
    assert out == {"a": None, "b": None, "c": None, "d": None}
    assert normalise_scores({"a": 0.0}, [{"a": 0.4}, {"a": None}]) == {"a": 0.0}


def test_normalise_scores_rejects_bad_input():
    with pytest.raises(ValueError):
        normalise_scores({"a": 0.3}, [])
    with pytest.raises(ValueError):
        normalise_scores({"a": -0.3}, [{"a": 0.5}])
    assert math.isclose(normalise_scores({"a": 0.5}, [{"a": 0.5}])["a"], 1.0)


# -- read_scores ---------------------------------------------------------------------------------------------


def score_record(tmp_path, name, task, score, limit=None):
    path = tmp_path / name / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"score": score, "primary_metric": "acc", "stderr": {"acc": 0.1}}
    record = {"checkpoint": name, "tasks": {task: entry}, "wall_seconds": 2.0, "load_seconds": 0.5, "limit": limit}
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def test_read_scores_joins_per_task_records_per_checkpoint(tmp_path):
    paths = [score_record(tmp_path, "base", "t1", 0.1), score_record(tmp_path, "x", "t1", 0.5)]
    paths += [score_record(tmp_path, "base", "t2", 0.2), score_record(tmp_path, "x", "t2", 0.7)]
    joined = read_scores(paths)
    assert list(joined) == ["base", "x"]
    assert {task: v["score"] for task, v in joined["x"]["tasks"].items()} == {"t1": 0.5, "t2": 0.7}
    assert joined["x"]["wall_seconds"] == 4.0 and joined["x"]["load_seconds"] == 1.0


def test_read_scores_refuses_a_task_scored_twice_or_mixed_limits(tmp_path):
    first = score_record(tmp_path, "x", "t1", 0.5)
    again = score_record(tmp_path / "other", "x", "t1", 0.6)
    with pytest.raises(ValueError, match="both score 'x' on task 't1'"):
        read_scores([first, again])
    limited = score_record(tmp_path, "x", "t2", 0.6, limit=4)
    with pytest.raises(ValueError, match="t2.json scores 'x' with limit 4.*rerun rule expert_scores"):
        read_scores([first, limited])


def test_a_score_records_its_weights_dtype_and_bfloat16_scores_the_same_items(tiny, task_dir, data_files):
    float32 = score_checkpoint(tiny, task_dir, data_files, batch_size=4, device="cpu")
    bfloat16 = score_checkpoint(tiny, task_dir, data_files, batch_size=4, device="cpu", dtype="bfloat16")
    assert float32["dtype"] == "float32" and bfloat16["dtype"] == "bfloat16"  # auto on CPU is float32
    for task in data_files:
        assert bfloat16["items"][task]["prompt_hash"].tolist() == float32["items"][task]["prompt_hash"].tolist()
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        score_checkpoint(tiny, task_dir, data_files, device="cpu", dtype="fp8")
