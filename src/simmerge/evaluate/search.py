"""Merge-and-evaluate searches with their budget counted, and SimMerge + k, against SimMerge's zero evaluations.

Three ways to choose a pair's merge when evaluations are allowed:

- :func:`successive_halving` (the multi-fidelity search of "Fine, I'll Merge It Myself"): merge every candidate,
  score each on a few items, keep the better half, double the items, until one is left or the items run out;
- :func:`simmerge_plus_k`: merge and score SimMerge's ``k`` best-predicted candidates, keep the best;
- :func:`cma_maximise`: CMA-ES (the ``cma`` package, as mergekit-evolve uses it) over a merge's continuous
  parameters, each evaluation one merge scored on the items.

Each reports what it spent: merges and items scored. The selection methods of :mod:`simmerge.evaluate.methods`
run the first two on a finished run's per-item outcomes, where scoring a candidate on an item means reading the
outcome its merge already has: :func:`split_items` splits every pair's items in two (seeded, per task), searches
spend the *search* half, and every choice is scored on the other half, so no search is scored on the items it
chose with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spent:
    """What a choice cost: merges made, items scored and probe passes run (summed over candidates)."""

    merges: int
    items: int
    probe_passes: int = 0


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


@dataclass(frozen=True)
class CmaGeneration:
    """The state of a CMA-ES search after one whole generation."""

    evaluations: int
    best_x: np.ndarray
    best_value: float


def cma_maximise(
    objective: Callable[[np.ndarray], float],
    x0: Sequence[float],
    *,
    sigma0: float,
    bounds: tuple[Sequence[float], Sequence[float]],
    budget: int,
    seed: int,
    popsize: int | None = None,
) -> list[CmaGeneration]:
    """Maximise ``objective`` with CMA-ES inside ``bounds`` using at most ``budget`` evaluations.

    A generation is evaluated only when the whole population fits in what is left of the budget, so the budget is
    never exceeded; a plateau of equal values does not end the search early. The search is reproducible from
    ``seed`` (any integer: ``cma`` itself would read 0 as "seed from the clock") and leaves NumPy's global random
    state as it found it (``cma`` draws from it).

    Returns
    -------
    list of CmaGeneration
        The best point so far after each generation, in order; the last is the search's answer. Empty when not
        one generation fits in the budget.
    """
    import cma  # deferred: only a CMA-ES search needs it

    options = {
        "bounds": [list(bounds[0]), list(bounds[1])],
        "seed": seed % (2**31 - 2) + 1,
        "verbose": -9,
        "maxfevals": budget,
        # merges are scored on discrete metrics over few items, so a generation of equal scores is common: it
        # widens the search instead of ending it, and only the budget (or a collapsed step size) ends it
        "tolflatfitness": budget,
        "tolfun": 0,
        "tolfunhist": 0,
    }
    if popsize is not None:
        options["popsize"] = popsize
    state = np.random.get_state()
    try:
        strategy = cma.CMAEvolutionStrategy(list(x0), sigma0, options)
        best_x, best_value, evaluations = np.asarray(x0, float), -math.inf, 0
        generations: list[CmaGeneration] = []
        while not strategy.stop() and evaluations + strategy.popsize <= budget:
            xs = strategy.ask()
            values = [objective(np.asarray(x)) for x in xs]
            evaluations += len(xs)
            strategy.tell(xs, [-value for value in values])
            top = int(np.argmax(values))
            if values[top] > best_value:
                best_x, best_value = np.asarray(xs[top], float), float(values[top])
            generations.append(CmaGeneration(evaluations, best_x, best_value))
    finally:
        np.random.set_state(state)
    return generations


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


__all__ = [
    "CmaGeneration",
    "Spent",
    "cma_maximise",
    "simmerge_plus_k",
    "split_items",
    "successive_halving",
]
