"""The labels table: what SimMerge learns from — pair features joined with the merged score of each operator."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from simmerge.core.io import read_json

LABEL_COLUMNS = [
    "a",
    "b",
    "task",
    "operator",
    "method",
    "order_sensitive",
    "randomised",
    "merged_a",
    "merged_b",
    "status",
    "metric",
    "stderr",
    "seed_sd",
    "parent_score_a",
    "parent_score_b",
    "normalised",
    "merge_score",
    "merge_score_stderr",
    "n_seeds",
]
# Columns that are numbers even when every value is missing (a failed merge has no metric).
NUMERIC_LABEL_COLUMNS = LABEL_COLUMNS[LABEL_COLUMNS.index("metric") : LABEL_COLUMNS.index("n_seeds")]


def labels_table(
    feature_files: Sequence[str | os.PathLike],
    merge_files: Sequence[str | os.PathLike],
    grid: Sequence[Mapping[str, Any]],
) -> pd.DataFrame:
    """One row per (ordered pair a, b; task; operator): the pair's features on the task and the merge's score.

    Parameters
    ----------
    feature_files : sequence of path
        ``features/pairs/<a>__<b>.parquet`` of every ordered pair.
    merge_files : sequence of path
        ``merges/<a>__<b>/<operator>.json`` records of ``merge_score``.
    grid : sequence of mapping
        ``{"a", "b", "operator", "merged": [a', b']}`` per (ordered pair, operator), in the order the rows should
        follow; ``merged`` names the record that serves the pair (the canonical pair for a symmetric operator).

    Returns
    -------
    pandas.DataFrame
        :data:`LABEL_COLUMNS` then every feature column, rows in grid order and the record's task order. Only
        the tasks a merge was scored on appear; run-dependent values (wall time, memory) are left out, so the
        same config gives byte-identical labels.

    Raises
    ------
    KeyError
        When a grid entry has no merge record or no feature row for a scored task, naming it.
    """
    features: dict[tuple[str, str], pd.DataFrame] = {}
    for path in feature_files:
        table = pd.read_parquet(path)
        features[(table["a"].iloc[0], table["b"].iloc[0])] = table.set_index("task")
    records: dict[tuple[str, str, str], dict] = {}
    for path in merge_files:
        record = read_json(path)
        records[(record["a"], record["b"], record["operator"])] = record
    rows = []
    for entry in grid:
        a, b, operator = entry["a"], entry["b"], entry["operator"]
        merged_a, merged_b = entry["merged"]
        key = (merged_a, merged_b, operator)
        if key not in records:
            raise KeyError(f"no merge record for operator {operator!r} on ({merged_a}, {merged_b})")
        if (a, b) not in features:
            raise KeyError(f"no pair features for ({a}, {b})")
        record = records[key]
        pair_features = features[(a, b)]
        for task, scored in record["tasks"].items():
            if task not in pair_features.index:
                raise KeyError(f"pair features of ({a}, {b}) have no row for task {task!r}")
            # parent scores follow the merged pair's order; report them in the labelled pair's order
            parents = dict(zip((merged_a, merged_b), scored.get("parent_scores") or (None, None), strict=True))
            row = {
                "a": a,
                "b": b,
                "task": task,
                "operator": operator,
                "method": record.get("method"),
                "order_sensitive": bool(record.get("order_sensitive")),
                "randomised": bool(record.get("randomised")),
                "merged_a": merged_a,
                "merged_b": merged_b,
                "status": record["status"],
                "metric": scored.get("metric"),
                "stderr": scored.get("stderr"),
                "seed_sd": scored.get("seed_sd"),
                "parent_score_a": parents[a],
                "parent_score_b": parents[b],
                "normalised": scored.get("normalised"),
                "merge_score": record.get("score"),
                "merge_score_stderr": record.get("score_stderr"),
                "n_seeds": len(record.get("seeds") or [None]),
            }
            row.update(pair_features.loc[task].drop(["a", "b"]).to_dict())
            rows.append(row)
    table = pd.DataFrame(rows)
    feature_columns = [c for c in table.columns if c not in LABEL_COLUMNS]
    for column in NUMERIC_LABEL_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    return table[LABEL_COLUMNS + feature_columns]
