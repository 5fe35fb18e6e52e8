"""Tests of simmerge.merges.tables: the expert-scores table and its Markdown form."""

from __future__ import annotations

import json
import logging
import math

import pandas as pd
import pytest

from simmerge.merges.tables import expert_table, markdown_table, score_cells


def score_record(folder, name, task, score):
    """An ``expert_scores`` record of one checkpoint on one task (primary metric ``acc``, stderr 0.1)."""
    path = folder / name / f"{task}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"score": score, "primary_metric": "acc", "stderr": {"acc": 0.1}}
    record = {"checkpoint": name, "tasks": {task: entry}, "wall_seconds": 2.0, "load_seconds": 0.5, "limit": None}
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


@pytest.fixture
def score_files(tmp_path):
    """The base (first), expert ``x`` (home task t2, better than the base there) and ``y`` scored on t1 only."""
    return [
        score_record(tmp_path, "base", "t1", 0.1),
        score_record(tmp_path, "x", "t1", 0.5),
        score_record(tmp_path, "base", "t2", 0.2),
        score_record(tmp_path, "x", "t2", 0.7),
        score_record(tmp_path, "y", "t1", 0.05),
    ]


def test_expert_table_gives_scores_and_the_home_gain_over_the_base(score_files):
    table = expert_table(score_files, {"base": [], "x": ["t2"], "y": ["t1"]})
    columns = ["checkpoint", "home_tasks", "t1", "t2", "t1_stderr", "t2_stderr", "home_score", "home_gain"]
    assert list(table.columns) == columns
    table = table.set_index("checkpoint")
    assert table.loc["x", "t1"] == 0.5 and table.loc["x", "home_gain"] == pytest.approx(0.5)
    assert table.loc["x", "home_score"] == 0.7 and table.loc["x", "t2_stderr"] == 0.1
    assert table.loc["y", "home_gain"] == pytest.approx(-0.05)
    assert table.loc["base", "home_tasks"] == "" and math.isnan(table.loc["base", "home_score"])
    assert math.isnan(table.loc["y", "t2"])  # never scored there


def test_an_expert_that_does_not_beat_the_base_at_home_is_logged(score_files, caplog):
    with caplog.at_level(logging.WARNING, logger="simmerge.merges.tables"):
        expert_table(score_files, {"base": [], "x": ["t2"], "y": ["t1"]})
    warned = [record.getMessage() for record in caplog.records]
    assert warned == ["expert 'y' does not beat the base on its home task(s) ['t1']"]


def test_markdown_table_bolds_home_cells_and_marks_missing_ones(score_files):
    text = markdown_table(expert_table(score_files, {"base": [], "x": ["t2"], "y": ["t1"]}))
    assert text == (
        "| checkpoint | t1 | t2 |\n"
        "|---|---:|---:|\n"
        "| base | 0.100 | 0.200 |\n"
        "| x | 0.500 | **0.700** |\n"
        "| y | **0.050** | – |\n"
    )


def test_expert_markdown_is_the_same_from_the_table_and_from_its_csv(tmp_path):
    paths = [score_record(tmp_path, "base", "t1", 0.1), score_record(tmp_path, "x", "t1", 0.5)]
    paths += [score_record(tmp_path, "base", "t2", 0.2), score_record(tmp_path, "x", "t2", 0.75)]
    table = expert_table(paths, {"base": [], "x": ["t2"]})
    (tmp_path / "experts.csv").write_text(table.to_csv(index=False), encoding="utf-8")
    text = markdown_table(table)
    assert text == ("| checkpoint | t1 | t2 |\n|---|---:|---:|\n| base | 0.100 | 0.200 |\n| x | 0.500 | **0.750** |\n")
    assert markdown_table(pd.read_csv(tmp_path / "experts.csv")) == text
    cells = score_cells(pd.read_csv(tmp_path / "experts.csv"), emphasis=("<b>", "</b>"))
    assert cells.to_dict("records")[1] == {"checkpoint": "x", "t1": "0.500", "t2": "<b>0.750</b>"}
