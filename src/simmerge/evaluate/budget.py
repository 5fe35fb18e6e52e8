"""What a smaller label budget would do to the labels, simulated from a finished run's per-item outcomes.

A run's labels cost items per task × merges (seeds of the randomised operators included) × operators. Each of
the three can be cut, and each cut makes the labels noisier or coarser. Rather than guess, the run's own per-item
outcomes are re-used: a budget keeps a seeded subset of each task's scored items (the same items for every model,
as a smaller ``n_eval`` would draw), the first ``n_seeds`` seeds of each randomised operator and a subset of the
operators, rebuilds every label as the pipeline does (per item: the score over the better parent's metric on the
kept items, averaged over the kept seeds; per label: the mean over its tasks) and ranks the operators of each
pair with the same paired rule as ``ranking/summary.md`` (:func:`simmerge.evaluate.ranking.best_per_pair`).

A randomised operator's seed spread cannot be measured from one seed: a one-seed budget is charged the spread
measured on all of the run's seeds, over one seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simmerge.core.layout import RunLayout
from simmerge.evaluate.ranking import best_per_pair
from simmerge.merges.items import read_items
from simmerge.merges.merging import FAILED_MERGE_SCORE

ITEM_KEY = ["subtask", "doc_id"]


@dataclass(frozen=True)
class Budget:
    """One label budget: the fraction of each task's items kept, the seeds per randomised operator, the operators
    (None: all of the run's)."""

    name: str
    fraction: float = 1.0
    n_seeds: int | None = None
    operators: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RunOutcomes:
    """A finished run's labels and the per-item outcomes behind them."""

    labels: pd.DataFrame
    merge_items: dict[tuple[str, str, str], pd.DataFrame]  # (merged_a, merged_b, operator) → items
    parent_items: dict[tuple[str, str], pd.DataFrame]  # (checkpoint, task) → items


def read_run_outcomes(run_dir: str | Path, labels: pd.DataFrame | None = None) -> RunOutcomes:
    """The labels of ``results/<run>`` (or the ``labels`` given) and the per-item files of every merge and parent
    they were built from."""
    layout = RunLayout(Path(run_dir))
    labels = pd.read_parquet(layout.labels_parquet) if labels is None else labels
    merged = labels[["merged_a", "merged_b", "operator"]].drop_duplicates().itertuples(index=False)
    merge_items = {(a, b, op): read_items(layout.merge_items(a, b, op)) for a, b, op in merged}
    parents = {(name, task) for _, row in labels.iterrows() for name in (row["a"], row["b"]) for task in [row["task"]]}
    parent_items = {(name, task): read_items(layout.expert_items(name, task)) for name, task in sorted(parents)}
    return RunOutcomes(labels=labels, merge_items=merge_items, parent_items=parent_items)


def kept_items(parent_items: Mapping[tuple[str, str], pd.DataFrame], fraction: float, seed: int) -> dict:
    """task → the (subtask, doc_id) rows a budget keeps: a seeded subset of the task's scored items, at least one."""
    rng = np.random.default_rng(seed)
    keys = {}
    for (_, task), table in sorted(parent_items.items()):
        if task in keys:
            continue
        rows = table[ITEM_KEY].drop_duplicates().reset_index(drop=True)
        n = max(1, round(fraction * len(rows)))
        keys[task] = rows.iloc[np.sort(rng.choice(len(rows), size=n, replace=False))].reset_index(drop=True)
    return keys


def budget_labels(outcomes: RunOutcomes, budget: Budget, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pair scores and label items a budget would have given.

    Parameters
    ----------
    outcomes : RunOutcomes
        The run's labels table (:func:`simmerge.evaluate.labels.labels_table`), each merge's per-item outcomes
        (``<record>.items.parquet``, a ``seed`` column for a randomised operator) and each parent's
        (``scores/experts/<name>/<task>.items.parquet``).
    budget : Budget
    seed : int
        Seed of the item subset.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        Per (a, b, operator): ``status``, ``merge_score``, ``merge_score_stderr`` (items and seeds),
        ``seed_variance`` — what :func:`simmerge.evaluate.ranking.best_per_pair` takes; and the label items
        (``a``, ``b``, ``task``, ``operator``, ``subtask``, ``doc_id``, ``value``).
    """
    labels, merge_items, parent_items = outcomes.labels, outcomes.merge_items, outcomes.parent_items
    keys = kept_items(parent_items, budget.fraction, seed)
    rows = labels if budget.operators is None else labels[labels["operator"].isin(budget.operators)]
    parent_metric = {
        (name, task): float(keys[task].merge(table, on=ITEM_KEY, how="left")["score"].mean())
        for (name, task), table in parent_items.items()
    }
    scores, items = [], []
    for (a, b, operator), label in rows.groupby(["a", "b", "operator"], sort=False):
        merged = (label["merged_a"].iloc[0], label["merged_b"].iloc[0], operator)
        runs = merge_items[merged]
        seeds = sorted(runs["seed"].dropna().unique()) if "seed" in runs and runs["seed"].notna().any() else [None]
        kept_seeds = seeds[: budget.n_seeds] if budget.n_seeds is not None else seeds
        failed = label["status"].iloc[0] != "ok"
        task_means, item_variances, extra = [], [], 0.0
        for task_row in label.itertuples():
            task = task_row.task
            best = max(parent_metric[(a, task)], parent_metric[(b, task)])
            task_items = runs[runs["task"] == task] if len(runs) else runs
            per_seed = []
            for run_seed in kept_seeds:
                if failed:
                    per_seed.append(np.full(len(keys[task]), FAILED_MERGE_SCORE))
                    continue
                run = task_items if run_seed is None else task_items[task_items["seed"] == run_seed]
                scored = keys[task].merge(run, on=ITEM_KEY, how="left", validate="1:1")["score"].to_numpy(float)
                per_seed.append(scored / best if best else np.full(len(scored), np.nan))
            value = np.mean(per_seed, axis=0)
            task_means.append(float(np.mean(value)))
            item_variances.append(float(np.var(value, ddof=1)) / len(value) if len(value) > 1 else 0.0)
            items.append(keys[task].assign(a=a, b=b, task=task, operator=operator, value=value))
            if pd.notna(task_row.seed_sd) and best:
                # the spread measured on all of the run's seeds, over the budget's number of seeds (also one)
                extra += (float(task_row.seed_sd) / best) ** 2 / len(kept_seeds)
        n_tasks = len(task_means)
        variance = (sum(item_variances) + extra) / n_tasks**2
        scores.append(
            {
                "a": a,
                "b": b,
                "operator": operator,
                "status": label["status"].iloc[0],
                "merge_score": float(np.mean(task_means)),
                "merge_score_stderr": math.sqrt(variance),
                "seed_variance": extra / n_tasks**2,
            }
        )
    columns = ["a", "b", "task", "operator", *ITEM_KEY, "value"]
    return pd.DataFrame(scores), pd.concat(items, ignore_index=True)[columns]


def separation(
    outcomes: RunOutcomes,
    budgets: Sequence[Budget],
    *,
    z: float = 1.0,
    draws: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """How well each budget's labels separate the operators of each pair, against the full budget's.

    Returns
    -------
    pandas.DataFrame
        One row per budget: ``budget``, ``fraction``, ``n_seeds``, ``n_operators``; means over ``draws`` item
        subsets (one draw when every item is kept) of ``pairs`` (ordered pairs with a defined label),
        ``separated`` (pairs whose best operator beats the runner-up by more than ``z`` paired standard errors),
        ``separated_unpaired`` (the same under the unpaired rule), ``median_tied`` (operators within noise of the
        best, paired), ``same_best`` (pairs whose best operator is the full budget's) and ``best_in_full_tie``
        (pairs whose best is tied with the full budget's best under the full budget's paired rule);
        ``separated_sd`` the spread of ``separated`` over the draws.
    """
    full_scores, full_items = budget_labels(outcomes, Budget("full"))
    full = best_per_pair(full_scores, full_items, z=z).set_index(["a", "b"])
    rows = []
    for budget in budgets:
        results = []
        n_draws = draws if budget.fraction < 1 else 1
        for draw in range(n_draws):
            scores, items = budget_labels(outcomes, budget, seed=seed + draw)
            best = best_per_pair(scores, items, z=z)
            # a pair whose parents both score 0 on the kept items has no defined label, and no best
            best = best.set_index(["a", "b"]) if len(best) else full.iloc[:0]
            reference = full.loc[best.index]
            results.append(
                {
                    "separated": int((best["gap_z"] > z).sum()),
                    "separated_unpaired": int((best["gap_z_unpaired"] > z).sum()),
                    "median_tied": float(best["n_tied"].median()),
                    "same_best": int((best["best"] == reference["best"]).sum()),
                    "best_in_full_tie": int(
                        sum(op in tied.split(";") for op, tied in zip(best["best"], reference["tied"], strict=True))
                    ),
                    "pairs": len(best),
                }
            )
        frame = pd.DataFrame(results)
        rows.append(
            {
                "budget": budget.name,
                "fraction": budget.fraction,
                "n_seeds": budget.n_seeds,
                "n_operators": len(budget.operators) if budget.operators else outcomes.labels["operator"].nunique(),
                **{column: float(frame[column].mean()) for column in frame.columns},
                "separated_sd": float(frame["separated"].std(ddof=1)) if len(frame) > 1 else 0.0,
            }
        )
    return pd.DataFrame(rows)


__all__ = ["Budget", "RunOutcomes", "budget_labels", "kept_items", "read_run_outcomes", "separation"]
