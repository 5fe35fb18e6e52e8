"""Label rows with chosen merge scores, in the shape of the labels table, shared by the evaluation tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd


def label_rows(
    scores: Mapping[str, Mapping[str, float | Mapping[str, float]]],
    *,
    tasks: Sequence[str] = ("t1",),
    stderr: float = 0.001,
) -> pd.DataFrame:
    """Rows of both orders of every unordered pair, on every task, with the given merge scores.

    Parameters
    ----------
    scores : mapping
        Unit ``"a|b"`` → operator → score. A symmetric operator has one score, which serves both orders; an
        order-sensitive one maps each anchor (the first model of the ordered pair) to its own score.
    tasks : sequence of str
        Every merge scores the same on each task (its normalised score is its merge score; parents score 1).
    stderr : float
        Standard error of every score, small enough that distinct scores are never within noise.
    """
    rows = []
    for unit, by_operator in scores.items():
        first, second = unit.split("|")
        for a, b in ((first, second), (second, first)):
            for operator, score in by_operator.items():
                sensitive = isinstance(score, Mapping)
                value = score[a] if sensitive else score
                rows += [
                    {
                        "a": a,
                        "b": b,
                        "task": task,
                        "operator": operator,
                        "order_sensitive": sensitive,
                        "normalised": value,
                        "stderr": stderr,
                        "parent_score_a": 1.0,
                        "parent_score_b": 1.0,
                        "merge_score": value,
                        "merge_score_stderr": stderr,
                    }
                    for task in tasks
                ]
    return pd.DataFrame(rows)
