"""The labels table: what SimMerge learns from — pair features joined with the merged score of each operator — and
the per-item outcomes behind each label, for paired comparisons (:mod:`simmerge.evaluate.paired`).

Two targets come from the same forward passes: ``normalised`` (the task metric over the better parent's) and
``likelihood_normalised`` (the mean per-item continuous score, :func:`simmerge.merges.items.gold_likelihood`, over
the better parent's; missing where the task's requests give none, e.g. generation).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from simmerge.core.io import read_json
from simmerge.merges.items import items_path, read_items
from simmerge.merges.merging import FAILED_MERGE_SCORE

# The label targets a predictor can learn (``labels.target``): column of the labels table and of the label items.
TARGETS = {"metric": "normalised", "likelihood": "likelihood_normalised"}
ITEM_TARGETS = {"metric": "value", "likelihood": "likelihood"}

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
    "seed_sd_pooled",
    "likelihood",
    "likelihood_parent_a",
    "likelihood_parent_b",
    "likelihood_normalised",
    "parent_drift",
]
# The columns measured on a merged model: a selection method deciding for a pair does not see them
# (simmerge.evaluate.methods.Decision).
MERGE_OUTCOME_COLUMNS = (
    "status",
    "metric",
    "stderr",
    "seed_sd",
    "seed_sd_pooled",
    "normalised",
    "merge_score",
    "merge_score_stderr",
    "likelihood",
    "likelihood_normalised",
    "parent_drift",
)
# Columns that are numbers even when every value is missing (a failed merge has no metric).
NUMERIC_LABEL_COLUMNS = [
    *LABEL_COLUMNS[LABEL_COLUMNS.index("metric") : LABEL_COLUMNS.index("n_seeds")],
    *LABEL_COLUMNS[LABEL_COLUMNS.index("likelihood") :],
]
LABEL_ITEM_COLUMNS = ["a", "b", "task", "operator", "subtask", "doc_id", "value", "likelihood"]


def labels_table(
    feature_files: Sequence[str | os.PathLike],
    merge_files: Sequence[str | os.PathLike],
    grid: Sequence[Mapping[str, Any]],
    expert_item_files: Sequence[str | os.PathLike] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (ordered pair a, b; task; operator): the pair's features on the task and the merge's score; and
    the per-item outcomes behind every row.

    Parameters
    ----------
    feature_files : sequence of path
        ``features/pairs/<a>__<b>.parquet`` of every ordered pair.
    merge_files : sequence of path
        ``merges/<a>__<b>/<operator>.json`` records of ``merge_score``.
    grid : sequence of mapping
        ``{"a", "b", "operator", "merged": [a', b']}`` per (ordered pair, operator), in the order the rows should
        follow; ``merged`` names the record that serves the pair (the canonical pair for a symmetric operator).
    expert_item_files : sequence of path
        ``scores/experts/<name>/<task>.items.parquet`` of both parents of every pair on each task it is merged
        on: the parents' continuous scores normalise ``likelihood``, and their items are the items of a failed
        merge. Without them (labels of records from before per-item outcomes) every item column is empty.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The labels: :data:`LABEL_COLUMNS` then every feature column, rows in grid order and the record's task
        order. Only the tasks a merge was scored on appear; run-dependent values (wall time, memory) are left
        out, so the same config gives byte-identical labels. The label items (:data:`LABEL_ITEM_COLUMNS`): per
        label row and scored item, ``value`` (the item's primary metric over the better parent's task metric,
        averaged over seeds, a failed run counting :data:`~simmerge.merges.merging.FAILED_MERGE_SCORE`) and
        ``likelihood`` (the item's continuous score over the better parent's mean, likewise); the mean of
        ``value`` over a row's items is its ``normalised``.

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
    merge_items: dict[tuple[str, str, str], pd.DataFrame] = {}
    for path in merge_files:
        record = read_json(path)
        key = (record["a"], record["b"], record["operator"])
        records[key] = record
        if expert_item_files:
            merge_items[key] = read_items(items_path(path))
    parent_items = {}
    for path in expert_item_files:
        table = read_items(path)
        parent_items[(path_checkpoint(path), table["task"].iloc[0] if len(table) else None)] = table
    rows, item_rows = [], []
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
                "parent_drift": (record.get("parent_drift") or {}).get("mean"),
            }
            if expert_item_files:
                items, likelihoods = _label_items(record, merge_items[key], task, parent_items, (a, b))
                row.update(likelihoods)
                item_rows.append(items.assign(a=a, b=b, task=task, operator=operator))
            row.update(pair_features.loc[task].drop(["a", "b"]).to_dict())
            rows.append(row)
    table = pd.DataFrame(rows)
    feature_columns = [c for c in table.columns if c not in LABEL_COLUMNS]
    for column in NUMERIC_LABEL_COLUMNS:
        table[column] = pd.to_numeric(table.get(column), errors="coerce").astype("float64")
    table = pool_seed_spread(table)
    items = pd.concat(item_rows, ignore_index=True) if item_rows else pd.DataFrame(columns=LABEL_ITEM_COLUMNS)
    return table[LABEL_COLUMNS + feature_columns], items[LABEL_ITEM_COLUMNS].reset_index(drop=True)


def pool_seed_spread(table: pd.DataFrame) -> pd.DataFrame:
    """Give the labels of a randomised operator merged with one seed the seed spread of its labels merged with
    several (``merges.repeat_pairs``).

    One merge cannot show how far another seed would move its score, yet that spread is part of the label's noise.
    Per operator, the seed variance relative to the better parent, ``(seed_sd / best parent)²``, is averaged over
    its labels with two or more seeds (each merge and task once); a one-seed label of that operator gets
    ``seed_sd`` = that root mean square × its own better parent and ``seed_sd_pooled`` true, and its
    ``merge_score_stderr`` gains the seed variance of a mean over its ``T`` tasks (the pooled variance / ``T``).
    An operator with no label of several seeds keeps ``seed_sd`` missing: its seed noise is not measured.
    """
    table = table.assign(seed_sd_pooled=False)
    if table.empty:
        return table
    best = table[["parent_score_a", "parent_score_b"]].max(axis=1)
    relative = (table["seed_sd"] / best.where(best > 0)) ** 2
    merge = ["merged_a", "merged_b", "operator", "task"]
    measured = table["randomised"] & (table["n_seeds"] >= 2) & relative.notna()
    pooled = (
        table.loc[measured, merge].assign(relative=relative[measured]).drop_duplicates(merge)
        .groupby("operator")["relative"].mean()
    )  # fmt: skip
    single = table["randomised"] & (table["n_seeds"] == 1) & table["metric"].notna() & best.gt(0)
    single &= table["operator"].isin(pooled.index)
    if not single.any():
        return table
    variance = table.loc[single, "operator"].map(pooled)
    table.loc[single, "seed_sd"] = variance.pow(0.5) * best[single]
    table.loc[single, "seed_sd_pooled"] = True
    tasks = table[single].groupby(["merged_a", "merged_b", "operator"])["task"].transform("nunique")
    table.loc[single, "merge_score_stderr"] = (table.loc[single, "merge_score_stderr"] ** 2 + variance / tasks) ** 0.5
    return table


def seed_noise_note(labels: pd.DataFrame) -> str | None:
    """How the labels count the seed noise of randomised operators, for the ranking summary (None without one)."""
    if "randomised" not in labels:
        return None
    randomised = labels[labels["randomised"].astype(bool)]
    if randomised.empty:
        return None
    repeated = randomised[randomised["n_seeds"] >= 2]
    pooled = (
        randomised[randomised["seed_sd_pooled"].astype(bool)] if "seed_sd_pooled" in randomised else repeated.iloc[:0]
    )
    unmeasured = randomised[randomised["seed_sd"].isna() & randomised["metric"].notna()]
    operators = ", ".join(sorted(randomised["operator"].unique()))
    if repeated.empty:
        return f"Seed noise of the randomised operators ({operators}): not measured, every merge has one seed."
    parts = [
        f"Seed noise of the randomised operators ({operators}): {len(repeated)} label(s) on {_pairs(repeated)} "
        f"pair(s) merged with {int(randomised['n_seeds'].max())} seeds measure it"
    ]
    if len(pooled):
        best = pooled[["parent_score_a", "parent_score_b"]].max(axis=1)
        spread = (pooled["seed_sd"] / best).groupby(pooled["operator"]).first()
        parts.append(
            f"{len(pooled)} label(s) of one seed on {_pairs(pooled)} pair(s) carry the spread pooled per operator over "
            "them (seed sd over the better parent: " + ", ".join(f"{op} {sd:.3f}" for op, sd in spread.items()) + ")"
        )
    if len(unmeasured):
        parts.append(f"{len(unmeasured)} label(s) of one seed have no measured seed noise (no pair with several seeds)")
    return "; ".join(parts) + "."


def _pairs(rows: pd.DataFrame) -> int:
    """Unordered pairs among label rows."""
    return len({frozenset(pair) for pair in zip(rows["merged_a"], rows["merged_b"], strict=True)})


def path_checkpoint(path: str | os.PathLike) -> str:
    """The checkpoint an expert items file belongs to: ``scores/experts/<name>/<task>.items.parquet`` → name."""
    return os.path.basename(os.path.dirname(os.fspath(path)))


def _label_items(
    record: Mapping[str, Any],
    runs_items: pd.DataFrame,
    task: str,
    parent_items: Mapping[tuple[str, str], pd.DataFrame],
    pair: tuple[str, str],
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-item normalised outcomes of one (merge record, task), and its likelihood label columns."""
    parents = {name: parent_items.get((name, task)) for name in pair}
    missing = [name for name, table in parents.items() if table is None]
    if missing:
        raise KeyError(f"no per-item outcomes of {', '.join(missing)} on task {task!r} (expert items)")
    keys = parents[pair[0]][["subtask", "doc_id"]]
    parent_likelihood = {name: float(table["likelihood"].mean()) for name, table in parents.items()}
    best_likelihood = max((v for v in parent_likelihood.values() if not math.isnan(v)), default=math.nan)
    best_metric = max((p for p in record["tasks"][task].get("parent_scores") or [] if p is not None), default=None)
    task_items = runs_items[runs_items["task"] == task] if len(runs_items) else runs_items
    seeds = [run.get("seed") for run in record.get("runs", [{"seed": None, "status": record["status"]}])]
    statuses = [run.get("status") for run in record.get("runs", [{"status": record["status"]}])]
    values, likelihoods = [], []
    for seed, status in zip(seeds, statuses, strict=True):
        if status != "ok":
            values.append(np.full(len(keys), FAILED_MERGE_SCORE))
            likelihoods.append(np.full(len(keys), FAILED_MERGE_SCORE))
            continue
        run = task_items if seed is None else task_items[task_items["seed"] == seed]
        run = keys.merge(run, on=["subtask", "doc_id"], how="left", validate="1:1")
        if run["score"].isna().any():
            raise KeyError(f"the merge of {record['operator']} on {pair} (seed {seed}) lacks items of task {task!r}")
        values.append(run["score"].to_numpy() / best_metric if best_metric else np.full(len(keys), np.nan))
        likelihoods.append(
            run["likelihood"].to_numpy() / best_likelihood if best_likelihood else np.full(len(keys), np.nan)
        )
    items = keys.assign(value=np.mean(values, axis=0), likelihood=np.mean(likelihoods, axis=0))
    mean_likelihood = float(items["likelihood"].mean()) if len(items) else math.nan
    merged_likelihood = [
        float(run_items["likelihood"].mean())
        for seed, status in zip(seeds, statuses, strict=True)
        if status == "ok"
        for run_items in [task_items if seed is None else task_items[task_items["seed"] == seed]]
    ]
    return items, {
        "likelihood": float(np.mean(merged_likelihood)) if merged_likelihood else math.nan,
        "likelihood_parent_a": parent_likelihood[pair[0]],
        "likelihood_parent_b": parent_likelihood[pair[1]],
        "likelihood_normalised": mean_likelihood,
    }


def retarget(labels: pd.DataFrame, items: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labels and label items with ``target`` in the columns every consumer reads.

    ``metric`` returns them unchanged. ``likelihood`` puts ``likelihood_normalised`` in ``normalised`` and its
    mean over a merge's tasks in ``merge_score`` (the tasks with a defined value), the items' ``likelihood`` in
    ``value``, and leaves the standard errors empty (the continuous score has only per-item errors, which the
    paired statistics take from the items); so the predictor, the ranking and the comparison run on it as they
    are.

    Raises
    ------
    ValueError
        For an unknown target, or ``likelihood`` when no label has one (e.g. every task scored by generation).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown label target {target!r}; targets: {', '.join(TARGETS)}")
    if target == "metric":
        return labels, items
    column = TARGETS[target]
    if labels[column].notna().sum() == 0:
        raise ValueError(
            f"no label has a {target} target: its tasks give no likelihood (generation; use scoring.exact_match: "
            "one_pass, or multiple choice)"
        )
    keys = ["a", "b", "operator"]
    per_merge = labels.groupby(keys, sort=False)[column].mean().rename("merge_score")
    out = labels.drop(columns=["merge_score"]).merge(per_merge, on=keys, how="left")[labels.columns]
    out = out.assign(normalised=labels[column].to_numpy(), stderr=np.nan, merge_score_stderr=np.nan, seed_sd=np.nan)
    return out, items.assign(value=items[ITEM_TARGETS[target]])
