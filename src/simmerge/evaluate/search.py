"""Merge-and-evaluate searches with their budget counted, and SimMerge + k, against SimMerge's zero evaluations.

Three ways to choose a pair's merge when evaluations are allowed:

- :func:`successive_halving` (the multi-fidelity search of "Fine, I'll Merge It Myself"): merge every candidate,
  score each on a few items, keep the better half, double the items, until one is left or the items run out;
- :func:`simmerge_plus_k`: merge and score SimMerge's ``k`` best-predicted candidates, keep the best;
- :func:`cma_maximise`: CMA-ES (the ``cma`` package, as mergekit-evolve uses it) over a merge's continuous
  parameters, each evaluation one merge scored on the items.

Each reports what it spent: merges and items scored. :func:`search_units` runs the first two on a finished run's
per-item outcomes, where scoring a candidate on an item means reading the outcome its merge already has. The items
of every unit are split in two (seeded, per task): searches spend the *search* half, and every choice — SimMerge's,
each search's, the oracle's — is scored on the other half, so no search is scored on the items it chose with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simmerge.evaluate.paired import UnitItems, unit_items
from simmerge.evaluate.predictor import training_rows
from simmerge.evaluate.selection import units_of_rows


@dataclass(frozen=True)
class Spent:
    """What a choice cost: merges made and items scored (summed over candidates)."""

    merges: int
    items: int


def successive_halving(
    candidates: Sequence[Hashable],
    score: Callable[[Hashable, int], float],
    *,
    start_items: int,
    max_items: int,
    keep: float = 0.5,
) -> tuple[Hashable, Spent]:
    """Multi-fidelity search over a candidate grid.

    Parameters
    ----------
    candidates : sequence
        Every candidate is merged once.
    score : callable
        ``score(candidate, n)``: the candidate's score on its first ``n`` items (larger is better).
    start_items, max_items : int
        Items of the first round, and the most any candidate is scored on; each round doubles the items.
    keep : float
        Fraction of the candidates kept after each round (at least one).

    Returns
    -------
    (choice, Spent)
        The best candidate of the last round; items count each candidate's items once (a later round scores only
        the items it adds).
    """
    if not candidates:
        raise ValueError("no candidates to search")
    if not 0 < keep < 1 or start_items < 1 or max_items < 1:
        raise ValueError("keep must be in (0, 1) and the item counts positive")
    alive = list(candidates)
    scored = dict.fromkeys(alive, 0)
    n = min(start_items, max_items)
    items = 0
    while True:
        for candidate in alive:
            items += n - scored[candidate]
            scored[candidate] = n
        ranked = sorted(alive, key=lambda candidate: -score(candidate, n))  # stable: ties keep grid order
        if len(alive) == 1 or n >= max_items:
            return ranked[0], Spent(merges=len(candidates), items=items)
        alive = ranked[: max(1, math.ceil(len(alive) * keep))]
        n = min(2 * n, max_items)


def simmerge_plus_k(
    ranked: Sequence[Hashable], score: Callable[[Hashable], float], *, k: int, n_items: int
) -> tuple[Hashable, Spent]:
    """Merge and score the first ``k`` of SimMerge's ranking on ``n_items`` items each and keep the best; ``k = 0``
    is SimMerge alone (its first choice, merged once, nothing scored)."""
    if not ranked:
        raise ValueError("no candidates to choose from")
    if k <= 0:
        return ranked[0], Spent(merges=1, items=0)
    checked = list(ranked[:k])
    return max(checked, key=lambda candidate: score(candidate)), Spent(
        merges=len(checked), items=len(checked) * n_items
    )


def cma_maximise(
    objective: Callable[[np.ndarray], float],
    x0: Sequence[float],
    *,
    sigma0: float,
    bounds: tuple[Sequence[float], Sequence[float]],
    budget: int,
    seed: int,
) -> tuple[np.ndarray, float, int]:
    """Maximise ``objective`` with CMA-ES inside ``bounds`` using at most ``budget`` evaluations.

    A generation is evaluated only when the whole population fits in what is left of the budget, so the budget is
    never exceeded.

    Returns
    -------
    (best_x, best_value, evaluations)
    """
    import cma  # deferred: only a CMA-ES search needs it

    options = {"bounds": [list(bounds[0]), list(bounds[1])], "seed": seed, "verbose": -9, "maxfevals": budget}
    strategy = cma.CMAEvolutionStrategy(list(x0), sigma0, options)
    best_x, best_value, evaluations = np.asarray(x0, float), -math.inf, 0
    while not strategy.stop() and evaluations + strategy.popsize <= budget:
        xs = strategy.ask()
        values = [objective(np.asarray(x)) for x in xs]
        evaluations += len(xs)
        strategy.tell(xs, [-value for value in values])
        top = int(np.argmax(values))
        if values[top] > best_value:
            best_x, best_value = np.asarray(xs[top], float), float(values[top])
    return best_x, best_value, evaluations


def split_items(tasks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Item indices of the search half and the evaluation half, half of each task's items each (the search half
    in a random order that interleaves tasks, so its first ``n`` items sample every task)."""
    search, evaluation = [], []
    for code in np.unique(tasks):
        indices = rng.permutation(np.flatnonzero(tasks == code))
        half = len(indices) // 2
        search.append(indices[:half])
        evaluation.append(indices[half:])
    return rng.permutation(np.concatenate(search)), np.concatenate(evaluation)


def search_units(
    units: Mapping[str, UnitItems],
    predicted: Mapping[str, Mapping[tuple[str, str], float]],
    *,
    ks: Sequence[int] = (0, 1, 2, 3),
    budgets: Sequence[float] = (0.125, 0.25, 0.5, 1.0),
    start_items: int = 4,
    seed: int = 0,
) -> pd.DataFrame:
    """Every unit's choice by SimMerge + k and by successive halving at several budgets, scored on held-out items.

    Parameters
    ----------
    units : mapping
        Unit → its candidates' item vectors (:func:`simmerge.evaluate.paired.unit_items`).
    predicted : mapping
        Unit → (operator, anchor) → SimMerge's out-of-fold prediction (the comparison's ``candidates.csv``).
    ks : sequence of int
        SimMerge + k variants (0: SimMerge alone).
    budgets : sequence of float
        Successive halving's most items per candidate, as fractions of the unit's search half.
    start_items : int
        Items of successive halving's first round.

    Returns
    -------
    pandas.DataFrame
        One row per (unit, method): ``unit``, ``method``, ``choice``, ``score`` (on the evaluation half),
        ``oracle`` (the best candidate on the evaluation half), ``regret``, ``merges``, ``items``, ``candidates``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for unit, unit_items_ in units.items():
        if unit not in predicted:
            continue
        search, evaluation = split_items(unit_items_.tasks, rng)
        vectors = unit_items_.vectors
        keys = [key for key in vectors if key in predicted[unit]]
        if not keys or len(search) == 0 or len(evaluation) == 0:
            continue

        def held_out(key, vectors=vectors, evaluation=evaluation, tasks=unit_items_.tasks):
            values, codes = vectors[key][evaluation], tasks[evaluation]
            return float(np.mean([values[codes == code].mean() for code in np.unique(codes)]))

        def on_search(key, n, vectors=vectors, search=search):
            return float(vectors[key][search[:n]].mean())

        oracle = max(held_out(key) for key in keys)
        ranked = sorted(keys, key=lambda key, unit=unit: -predicted[unit][key])
        choices = {}
        for k in ks:
            name = "SimMerge" if k == 0 else f"SimMerge + {k}"
            choices[name] = simmerge_plus_k(
                ranked, lambda key, search=search: on_search(key, len(search)), k=k, n_items=len(search)
            )
        for fraction in budgets:
            limit = max(1, round(fraction * len(search)))
            choices[f"successive halving ({fraction:g} of the items)"] = successive_halving(
                keys, on_search, start_items=min(start_items, limit), max_items=limit
            )
        for method, (choice, spent) in choices.items():
            score = held_out(choice)
            rows.append(
                {
                    "unit": unit,
                    "method": method,
                    "choice": "@".join(part for part in choice if part),
                    "score": score,
                    "oracle": oracle,
                    "regret": oracle - score,
                    "merges": spent.merges,
                    "items": spent.items,
                    "candidates": len(keys),
                }
            )
    return pd.DataFrame(rows)


def run_search(
    labels: pd.DataFrame, label_items: pd.DataFrame, candidates: pd.DataFrame, *, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`search_units` and :func:`search_summary` on a run's files: the labels, the label items and the
    checkpoint comparison's out-of-fold predictions (``compare/checkpoint/candidates.csv``).

    A pair is tested in the fold of each of its checkpoints; both predictions are out of fold, and SimMerge ranks
    the pair's candidates by their mean.
    """
    rows = training_rows(labels)
    units = unit_items(rows, label_items, units_of_rows(rows))
    mean = (
        candidates.assign(anchor=candidates["anchor"].fillna(""))
        .groupby(["unit", "operator", "anchor"], sort=False)["predicted"]
        .mean()
    )
    predicted: dict[str, dict[tuple[str, str], float]] = {}
    for (unit, operator, anchor), value in mean.items():
        predicted.setdefault(unit, {})[(operator, anchor)] = float(value)
    results = search_units(units, predicted, seed=seed)
    return results, search_summary(results)


def search_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per method: units, mean held-out score and regret, mean merges and items per unit; SimMerge's row first."""
    table = (
        results.groupby("method", sort=False)
        .agg(
            units=("unit", "size"),
            score=("score", "mean"),
            regret=("regret", "mean"),
            merges=("merges", "mean"),
            items=("items", "mean"),
        )
        .reset_index()
    )
    return table


def evaluations_to_match(summary: pd.DataFrame, reference: str = "SimMerge") -> dict[str, float | None]:
    """Per search family (successive halving, SimMerge + k): the fewest items per unit at which its mean held-out
    score reaches ``reference``'s; None when no budget tried does."""
    target = float(summary.loc[summary["method"] == reference, "score"].iloc[0])
    out: dict[str, float | None] = {}
    for family, prefix in (("successive halving", "successive halving"), ("SimMerge + k", "SimMerge + ")):
        rows = summary[summary["method"].str.startswith(prefix)].sort_values("items")
        reached = rows[rows["score"] >= target - 1e-12]
        out[family] = float(reached["items"].iloc[0]) if len(reached) else None
    return out


__all__ = [
    "Spent",
    "cma_maximise",
    "evaluations_to_match",
    "run_search",
    "search_summary",
    "search_units",
    "simmerge_plus_k",
    "split_items",
    "successive_halving",
]
