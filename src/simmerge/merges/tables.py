"""The expert-scores table (``scores/experts.md``): each checkpoint's score on every task, home tasks marked."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from simmerge.core import io
from simmerge.merges.scoring import read_scores

log = logging.getLogger(__name__)


def expert_table(score_files: Sequence[str | os.PathLike], home_tasks: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Checkpoint × task table of primary scores from ``scores/experts/<name>/<task>.json`` files.

    Parameters
    ----------
    score_files : sequence of path
        Score JSONs written by the ``expert_scores`` rule, the base's first.
    home_tasks : mapping of str to sequence of str
        Checkpoint name → its home tasks (empty for the base).

    Returns
    -------
    pandas.DataFrame
        One row per checkpoint: ``checkpoint``, ``home_tasks``, one column per task (primary metric), one
        ``<task>_stderr`` column per task, ``home_score`` (mean over home tasks) and ``home_gain`` (home score
        minus the first row's — the base's — score on the same tasks). A row whose home gain is not positive
        is logged as a warning: that expert did not learn its skill.
    """

    records = list(read_scores(score_files).values())
    tasks = sorted({task for record in records for task in record["tasks"]})
    base = records[0]
    rows = []
    for record in records:
        name = record["checkpoint"]
        home = list(home_tasks.get(name, []))
        row: dict[str, Any] = {"checkpoint": name, "home_tasks": ",".join(home)}
        for task in tasks:
            entry = record["tasks"].get(task)
            row[task] = entry["score"] if entry else None
            row[f"{task}_stderr"] = entry["stderr"].get(entry["primary_metric"]) if entry else None
        if home:
            row["home_score"] = sum(record["tasks"][t]["score"] for t in home) / len(home)
            base_home = sum(base["tasks"][t]["score"] for t in home) / len(home)
            row["home_gain"] = row["home_score"] - base_home
            if row["home_gain"] <= 0:
                log.warning("expert %r does not beat the base on its home task(s) %s", name, home)
        else:
            row["home_score"] = row["home_gain"] = None
        rows.append(row)
    return pd.DataFrame(
        rows,
        columns=[
            "checkpoint",
            "home_tasks",
            *tasks,
            *(f"{t}_stderr" for t in tasks),
            "home_score",
            "home_gain",
        ],
    )


def score_cells(table: pd.DataFrame, *, emphasis: tuple[str, str] = ("**", "**")) -> pd.DataFrame:
    """The primary-score columns of :func:`expert_table` as text: 3 decimals, "–" when missing, home cells marked.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`expert_table`, or ``scores/experts.csv`` read back.
    emphasis : (str, str)
        What goes before and after a home-task cell: Markdown bold, or e.g. ``("<b>", "</b>")`` for HTML.

    Returns
    -------
    pandas.DataFrame
        ``checkpoint`` and one column per task, every cell a string.
    """
    tasks = [
        c
        for c in table.columns
        if c not in {"checkpoint", "home_tasks", "home_score", "home_gain"} and not c.endswith("_stderr")
    ]
    rows = []
    for row in table.to_dict("records"):
        # the base has no home task: an empty string, or NaN once the CSV is read back
        home = set(row["home_tasks"].split(",")) if isinstance(row["home_tasks"], str) else set()
        cells = [str(row["checkpoint"])]
        for task in tasks:
            value = row[task]
            text = "–" if value is None or value != value else f"{value:.3f}"
            cells.append(f"{emphasis[0]}{text}{emphasis[1]}" if task in home else text)
        rows.append(cells)
    return pd.DataFrame(rows, columns=["checkpoint", *tasks])


def markdown_table(table: pd.DataFrame) -> str:
    """The primary-score columns of :func:`expert_table` as a Markdown table (3 decimals, home cells bold)."""
    cells = score_cells(table)
    return io.markdown_table(cells, ["left"] + ["right"] * (len(cells.columns) - 1))
