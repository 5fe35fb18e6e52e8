"""Per-item outcomes of a scoring run: one row per scored document, from lm-eval's own logged samples.

Two models scored on the same documents are compared item by item (:mod:`simmerge.evaluate.paired`), which is
why every scoring job (experts, 2-way merges, multi-way nodes, the live bandit) stores this table beside its record
as ``<record>.items.parquet``. A row holds the document's index in the scored split (``doc_id``) and, for a
built-in skill, its id in ``eval.jsonl`` (``item_id``); lm-eval's prompt, document and target hashes, so that two
tables can be checked to cover the same items; every metric the task reports, keyed as in the score record
(:func:`simmerge.merges.scoring.parse_task_result`: ``metric`` for the first filter that reports it,
``metric,filter`` for another); ``score``, the record's primary metric for the item; and, from the same forward
passes, a continuous score ``likelihood`` (:func:`gold_likelihood`). The mean of a metric column is the record's
metric.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simmerge.core.io import write_table

# What names one item across models: two models scored on the same task are compared item by item on it.
ITEM_KEY = ["task", "subtask", "doc_id"]
ITEM_COLUMNS = ["task", "subtask", "doc_id", "item_id", "prompt_hash", "doc_hash", "target_hash"]
OUTCOME_COLUMNS = ["score", "likelihood", "gold_loglik", "gold_tokens", "output"]


def _loglik(response: Any) -> float:
    """The log-likelihood of one loglikelihood response (lm-eval gives ``(ll, is_greedy)`` or ``[ll, is_greedy]``)."""
    return float(response[0])


def gold_likelihood(
    output_type: str,
    sample: Mapping[str, Any],
    continuation_tokens: Callable[[str, str], int] | None = None,
) -> tuple[float, float, float]:
    """The gold answer's log-likelihood, its token count and a continuous 0–1 score of one logged sample.

    - ``multiple_choice``: the probability of the gold choice among the choices (softmax of the choices'
      log-likelihoods, the ones ``acc`` compares); the count is NaN.
    - ``loglikelihood`` (exact match decided in one pass, :mod:`simmerge.merges.tasks`): the per-token probability
      of the gold continuation, stop sequence included, ``exp(ll / tokens)``; ``tokens`` from
      ``continuation_tokens(context, continuation)`` (the model's tokenizer, as lm-eval splits the pair).
    - generation: no forward pass over the gold answer, so every value is NaN.

    Returns
    -------
    (float, float, float)
        ``gold_loglik``, ``gold_tokens`` and ``likelihood``.
    """
    nan = math.nan
    if output_type == "multiple_choice":
        lls = [_loglik(response) for response in sample["filtered_resps"]]
        target = sample["target"]
        gold = target[0] if isinstance(target, list) else int(target)
        top = max(lls)
        total = sum(math.exp(ll - top) for ll in lls)
        return lls[gold], nan, math.exp(lls[gold] - top) / total
    if output_type == "loglikelihood":
        ll = _loglik(sample["filtered_resps"][0])
        if continuation_tokens is None:
            return ll, nan, nan
        context, continuation = sample["arguments"][0][:2]
        tokens = continuation_tokens(context, continuation)
        return ll, float(tokens), math.exp(ll / tokens) if tokens else nan
    return nan, nan, nan


def item_table(
    task: str,
    samples: Mapping[str, Sequence[Mapping[str, Any]]],
    output_types: Mapping[str, str],
    *,
    metric_keys: Mapping[str, str],
    primary: str,
    primary_filter: str,
    continuation_tokens: Callable[[str, str], int] | None = None,
) -> pd.DataFrame:
    """The per-item outcomes of one task of an lm-eval run (``log_samples=True``).

    Parameters
    ----------
    task : str
        The task's name in SimMerge (a built-in skill, or the config entry of a harness task).
    samples : mapping of str to sequence of dict
        lm-eval's ``results["samples"]`` restricted to this task's leaf tasks (one leaf unless it is a group):
        leaf → one logged sample per (document, filter).
    output_types : mapping of str to str
        Leaf → its ``output_type``.
    metric_keys : mapping of str to str
        ``"metric,filter"`` → the key the score record uses for it (:func:`simmerge.merges.scoring.parse_task_result`'s
        ``filters``, inverted).
    primary : str
        The record's primary metric key; its per-item values become ``score``.
    primary_filter : str
        The filter whose samples give ``output`` and the likelihood.
    continuation_tokens : callable, optional
        ``(context, continuation) → number of tokens`` of the continuation, for one-pass exact match.

    Returns
    -------
    pandas.DataFrame
        One row per document, ordered by (``subtask``, ``doc_id``).
    """
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for leaf, logged in samples.items():
        for sample in logged:
            key = (leaf, int(sample["doc_id"]))
            doc = sample.get("doc") or {}
            row = rows.setdefault(
                key,
                {
                    "task": task,
                    "subtask": leaf,
                    "doc_id": key[1],
                    "item_id": str(doc["id"]) if isinstance(doc, Mapping) and "id" in doc else None,
                    "prompt_hash": sample.get("prompt_hash"),
                    "doc_hash": sample.get("doc_hash"),
                    "target_hash": sample.get("target_hash"),
                },
            )
            filter_name = sample["filter"]
            for metric in sample.get("metrics", []):
                column = metric_keys.get(f"{metric},{filter_name}")
                if column is not None:
                    row[column] = _float(sample.get(metric))
            if filter_name == primary_filter:
                output_type = output_types[leaf]
                row["gold_loglik"], row["gold_tokens"], row["likelihood"] = gold_likelihood(
                    output_type, sample, continuation_tokens
                )
                response = sample["filtered_resps"][0] if sample["filtered_resps"] else None
                row["output"] = response if output_type == "generate_until" and isinstance(response, str) else None
    table = pd.DataFrame([rows[key] for key in sorted(rows)])
    if table.empty:
        return pd.DataFrame(columns=[*ITEM_COLUMNS, *OUTCOME_COLUMNS])
    table["score"] = table[primary]
    metric_columns = [c for c in table.columns if c not in ITEM_COLUMNS and c not in OUTCOME_COLUMNS]
    for column in ["likelihood", "gold_loglik", "gold_tokens", "output"]:
        if column not in table:
            table[column] = None
    for column in [*metric_columns, "score", "likelihood", "gold_loglik", "gold_tokens"]:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("float64")
    return table[[*ITEM_COLUMNS, *metric_columns, *OUTCOME_COLUMNS]]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def items_path(record_path: str | os.PathLike) -> Path:
    """Where the per-item outcomes of a score record live: ``<record stem>.items.parquet`` beside it."""
    path = Path(record_path)
    return path.with_name(f"{path.stem}.items.parquet")


def join_items(tables: Mapping[str, pd.DataFrame], **columns: Any) -> pd.DataFrame:
    """Stack the per-task tables of one scoring run, adding constant ``columns`` (e.g. ``seed``) in front."""
    parts = [table for table in tables.values() if len(table)]
    joined = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*ITEM_COLUMNS, *OUTCOME_COLUMNS])
    for offset, (name, value) in enumerate(columns.items()):
        joined.insert(offset, name, value)
    return joined


def write_items(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write per-item outcomes as Parquet, atomically (:func:`simmerge.core.io.write_table`)."""
    write_table(table, path)


def read_items(path: str | os.PathLike) -> pd.DataFrame:
    """Read per-item outcomes; the message names the record whose items are missing and the rule that makes them."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the per-item outcomes of {path.name.removesuffix('.items.parquet')} were not "
            "written (a record from before per-item outcomes); rerun the job that made the record beside it"
        )
    return pd.read_parquet(path)


__all__ = [
    "ITEM_COLUMNS",
    "OUTCOME_COLUMNS",
    "gold_likelihood",
    "item_table",
    "items_path",
    "join_items",
    "read_items",
    "write_items",
]
