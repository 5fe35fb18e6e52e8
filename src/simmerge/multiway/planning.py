"""Multi-way merges: a merge tree of 2-way merges chosen from 2-way predictions, and the baselines it is judged by.

A **model** of a merge tree is an expert's name or a :class:`Merge` of two or more models with one operator. The
SimMerge planner grows a chain: it starts from the pair, operator and order with the best predicted score on the
set's target tasks, then repeatedly merges the current model with the remaining candidate whose best operator is
predicted to help most, until no addition is predicted to improve the target score or the chain holds
``max_size`` experts. Features between the intermediate merge and a candidate come from a probe pass on the
intermediate (:func:`plan_merge`'s ``materialise``), never from an evaluation.

The predictor is the 2-way one, unchanged: it predicts a merge's score on task t *normalised by its better
parent*. The planner therefore carries an estimated absolute score per target task along the chain: experts start
from their measured scores, and a merge of X and c is estimated at ``predicted(X, c, t) × max(est(X, t), est(c,
t))``. The **target score** of a model is the mean over the target tasks of its (estimated or measured) score
divided by the best candidate expert's measured score on that task — the multi-way form of "normalised by the
better parent", so a target score of 1 means every task is kept at the level of its best expert.

This module is pure: trees, the planner, the baselines and the summary of a set; executing them (merges, probe
passes, scoring) is :mod:`simmerge.multiway.execution`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import pandas as pd

from simmerge.evaluate.paired import paired_difference
from simmerge.merges.operators import Operator

log = logging.getLogger(__name__)


MODEL_STOCK = "model_stock"
"""The all-at-once baseline that exists only for three or more models (mergekit refuses it for a pair)."""


@dataclass(frozen=True)
class Merge:
    """One merge in a tree: ``operator`` applied to ``inputs`` (the anchor first for an order-sensitive one)."""

    operator: str
    inputs: tuple[Model, ...]

    def __post_init__(self) -> None:
        if len(self.inputs) < 2:
            raise ValueError(f"a merge needs two or more inputs, got {len(self.inputs)}")
        names = [name for child in self.inputs for name in _experts(child)]
        overlap = sorted({name for name in names if names.count(name) > 1})
        if overlap:
            raise ValueError(f"{', '.join(overlap)} would enter the merge twice")


Model = Union[str, Merge]  # noqa: UP007 - a forward reference in a dataclass field needs the string form


def merge(operator: str, inputs: Sequence[Model], *, order_sensitive: bool) -> Merge:
    """A :class:`Merge` in canonical form: a symmetric operator's inputs sorted, so equal merges compare equal."""
    inputs = tuple(inputs)
    if not order_sensitive:
        inputs = tuple(sorted(inputs, key=expression))
    return Merge(operator, inputs)


def expression(model: Model) -> str:
    """Readable text of a tree: ``ties_d50(de, nuslerp_w70(fr, rhyme))``."""
    if isinstance(model, str):
        return model
    return f"{model.operator}({', '.join(expression(child) for child in model.inputs)})"


def members(model: Model) -> tuple[str, ...]:
    """The experts of a tree, sorted."""
    return tuple(sorted(_experts(model)))


def _experts(model: Model) -> list[str]:
    return [model] if isinstance(model, str) else [name for child in model.inputs for name in _experts(child)]


def merges_in(model: Model) -> list[Merge]:
    """Every merge of a tree, children before parents."""
    if isinstance(model, str):
        return []
    return [node for child in model.inputs for node in merges_in(child)] + [model]


def to_json(model: Model) -> Any:
    """JSON form: a name, or ``{"operator": ..., "inputs": [...]}``."""
    if isinstance(model, str):
        return model
    return {"operator": model.operator, "inputs": [to_json(child) for child in model.inputs]}


def from_json(value: Any) -> Model:
    """Inverse of :func:`to_json`."""
    if isinstance(value, str):
        return value
    return Merge(value["operator"], tuple(from_json(child) for child in value["inputs"]))


def node_id(model: Merge, specs: Mapping[str, Mapping[str, Any]], seed: int) -> str:
    """Content address of a merge: a hash of its operators' full definitions, its experts and the merge seed.

    Equal ids mean equal merges, so a cached intermediate serves every chain that contains it, and changing an
    operator's parameters gives new ids instead of reusing a stale merge.
    """
    payload = json.dumps({"tree": _spec_tree(model, specs), "seed": seed}, sort_keys=True)
    return "m" + hashlib.sha256(payload.encode()).hexdigest()[:12]


def _spec_tree(model: Model, specs: Mapping[str, Mapping[str, Any]]) -> Any:
    if isinstance(model, str):
        return model
    if model.operator not in specs:
        raise KeyError(f"operator {model.operator!r} of {expression(model)} has no definition")
    return {"operator": dict(specs[model.operator]), "inputs": [_spec_tree(child, specs) for child in model.inputs]}


def target_score(scores: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """Mean over the target tasks of ``scores[t] / reference[t]`` (reference: the best candidate expert's score)."""
    return sum(scores[task] / reference[task] for task in reference) / len(reference)


def reference_scores(
    expert_scores: Mapping[str, Mapping[str, float]], candidates: Sequence[str], tasks: Sequence[str]
) -> dict[str, float]:
    """The best candidate expert's measured score on every target task where it is above zero.

    A task no candidate scores on has nothing for a merge to keep and no ratio to normalise by; it is left out
    (as a 2-way label is when both parents score 0), with a warning.

    Raises
    ------
    ValueError
        If no candidate scores above zero on any target task.
    """
    best = {task: max(expert_scores[name][task] for name in candidates) for task in tasks}
    reference = {task: value for task, value in best.items() if value > 0}
    dropped = [task for task in tasks if task not in reference]
    if not reference:
        raise ValueError(
            f"no candidate of {', '.join(candidates)} scores above 0 on any target task ({', '.join(tasks)}); "
            "choose target tasks the candidates can do"
        )
    if dropped:
        log.warning("no candidate scores above 0 on %s: left out of the target score", ", ".join(dropped))
    return reference


PredictFn = Callable[[Model, Model], pd.DataFrame]
"""(first, second) → one row per target task and operator: ``task``, ``operator``, ``predicted`` (normalised
score of the merge with ``first`` as the anchor of an order-sensitive operator) and ``uncertainty``."""


@dataclass(frozen=True)
class State:
    """A model the planner holds: its tree, estimated per-task scores, target score and mean uncertainty."""

    model: Model
    scores: Mapping[str, float]
    objective: float
    uncertainty: float
    parent: str | None = None  # the chain this state grew from (None for the first pair)


@dataclass
class Plan:
    """The planner's answer and everything it predicted on the way."""

    model: Merge
    objective: float
    uncertainty: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)
    materialised: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": to_json(self.model),
            "expression": expression(self.model),
            "members": list(members(self.model)),
            "predicted_objective": self.objective,
            "uncertainty": self.uncertainty,
            "steps": self.steps,
            "materialised": self.materialised,
        }


def plan_merge(
    candidates: Sequence[str],
    tasks: Sequence[str],
    expert_scores: Mapping[str, Mapping[str, float]],
    operators: Mapping[str, bool],
    predict: PredictFn,
    materialise: Callable[[Merge], None],
    *,
    max_size: int,
    beam_width: int = 1,
    min_gain: float = 0.0,
) -> Plan:
    """Choose the subset, order and operators of a multi-way merge from 2-way predictions.

    Parameters
    ----------
    candidates : sequence of str
        Expert names the merge may use (at least two).
    tasks : sequence of str
        Target tasks: the estimated target score is averaged over them.
    expert_scores : mapping
        Expert → task → measured score (the catalog's expert scores).
    operators : mapping of str to bool
        Operator name → order-sensitive.
    predict : callable
        See :data:`PredictFn`.
    materialise : callable
        Called once for every intermediate merge before it is extended, so that ``predict`` can use its probe
        pass (merge + probe; no evaluation).
    max_size : int
        Largest number of experts in the merge (2 ≤ max_size ≤ len(candidates)).
    beam_width : int
        States kept per step (1: greedy).
    min_gain : float
        An addition must raise the estimated target score by more than this to be made.

    Returns
    -------
    Plan
        The best state that stopped (no addition predicted to help, or ``max_size`` reached), its steps (per
        step: the state extended, the chosen addition and the estimate before/after) and every prediction used.
    """
    if len(set(candidates)) != len(candidates) or len(candidates) < 2:
        raise ValueError(f"candidates must be two or more distinct experts, got {list(candidates)}")
    if not 2 <= max_size <= len(candidates):
        raise ValueError(f"max_size must be between 2 and the number of candidates ({len(candidates)}), got {max_size}")
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}")
    reference = reference_scores(expert_scores, candidates, tasks)
    tasks = list(reference)
    planner = _Planner(tasks, reference, operators, predict)
    steps: list[dict[str, Any]] = []
    materialised: list[str] = []
    experts = {name: State(name, {t: expert_scores[name][t] for t in tasks}, float("nan"), 0.0) for name in candidates}
    pairs = itertools.combinations(experts.values(), 2)
    frontier = _top([s for first, second in pairs for s in planner.extensions(first, second, step=0)], beam_width)
    steps.extend(_step_record(0, state) for state in frontier)
    finished: list[State] = []
    step = 0
    while frontier:
        step += 1
        grown: list[State] = []
        for state in frontier:
            held = set(members(state.model))
            if len(held) >= max_size:
                finished.append(state)
                continue
            materialise(state.model)
            materialised.append(expression(state.model))
            additions = [
                extension
                for name in candidates
                if name not in held
                for extension in planner.extensions(state, experts[name], step=step)
            ]
            improving = [s for s in additions if s.objective > state.objective + min_gain]
            if not improving:
                finished.append(state)
                continue
            grown.extend(improving)
        frontier = _top(grown, beam_width)
        steps.extend(_step_record(step, state) for state in frontier)
    best = _top(finished, 1)[0]
    return Plan(
        best.model,
        best.objective,
        best.uncertainty,
        steps=steps,
        predictions=pd.DataFrame(planner.records),
        materialised=materialised,
    )


class _Planner:
    """Predictions for extending one state by one model, with their records."""

    def __init__(self, tasks, reference, operators, predict) -> None:
        self.tasks = list(tasks)
        self.reference = reference
        self.operators = operators
        self.predict = predict
        self.cache: dict[tuple[str, str], pd.DataFrame] = {}
        self.records: list[dict[str, Any]] = []

    def _predicted(self, first: Model, second: Model) -> pd.DataFrame:
        key = (expression(first), expression(second))
        if key not in self.cache:
            table = self.predict(first, second)
            given = set(zip(table["task"], table["operator"], strict=True))
            missing = {(t, o) for t in self.tasks for o in self.operators} - given
            if missing:
                raise ValueError(f"predict({key[0]}, {key[1]}) gave no prediction for {sorted(missing)[:3]} ...")
            self.cache[key] = table.set_index(["operator", "task"]).sort_index()
        return self.cache[key]

    def extensions(self, state: State, other: State, *, step: int) -> list[State]:
        """Every operator (and order, where it matters) merging ``state`` with ``other``."""
        forward = self._predicted(state.model, other.model)
        backward = self._predicted(other.model, state.model)
        found = []
        for operator, order_sensitive in self.operators.items():
            orders = [(state, other, forward), (other, state, backward)] if order_sensitive else [(state, other, None)]
            for first, second, table in orders:
                if table is None:  # a symmetric operator serves both orders: mean of both predictions
                    rows = (forward.loc[operator] + backward.loc[operator]) / 2
                else:
                    rows = table.loc[operator]
                scores = {
                    t: float(rows.at[t, "predicted"]) * max(first.scores[t], second.scores[t]) for t in self.tasks
                }
                model = merge(operator, (first.model, second.model), order_sensitive=order_sensitive)
                objective = target_score(scores, self.reference)
                uncertainty = float(rows["uncertainty"].reindex(self.tasks).mean())
                for t in self.tasks:
                    self.records.append(
                        {
                            "step": step,
                            "state": expression(state.model),
                            "addition": expression(other.model),
                            "operator": operator,
                            "anchor": expression(first.model) if order_sensitive else "",
                            "task": t,
                            "predicted_normalised": float(rows.at[t, "predicted"]),
                            "uncertainty": float(rows.at[t, "uncertainty"]),
                            "estimated_score": scores[t],
                            "objective": objective,
                        }
                    )
                parent = None if isinstance(state.model, str) else expression(state.model)
                found.append(State(model, scores, objective, uncertainty, parent))
        return found


def _top(states: Sequence[State], width: int) -> list[State]:
    """The ``width`` best states by target score, one per tree; ties broken by the tree's text."""
    unique = {expression(s.model): s for s in states}
    ordered = sorted(unique.values(), key=lambda s: (-s.objective, expression(s.model)))
    return ordered[:width]


def _step_record(step: int, state: State) -> dict[str, Any]:
    return {
        "step": step,
        "from": state.parent,
        "model": expression(state.model),
        "members": list(members(state.model)),
        "predicted_objective": state.objective,
        "uncertainty": state.uncertainty,
        "estimated_scores": dict(state.scores),
    }


def chain(order: Sequence[str], operator: str, *, order_sensitive: bool) -> Model:
    """Merge the experts one by one in ``order`` with one operator; the chain so far is the anchor."""
    model: Model = order[0]
    for name in order[1:]:
        model = merge(operator, (model, name), order_sensitive=order_sensitive)
    return model


def all_at_once(candidates: Sequence[str], operator: str) -> Merge:
    """One mergekit merge of every candidate (a symmetric operator, or model_stock)."""
    return merge(operator, candidates, order_sensitive=False)


def random_chain(candidates: Sequence[str], operator: str, *, order_sensitive: bool, seed: int) -> Model:
    """Every candidate, chained in a random order with one operator."""
    order = list(candidates)
    random.Random(seed).shuffle(order)
    return chain(order, operator, order_sensitive=order_sensitive)


def random_subset(
    candidates: Sequence[str], operator: str, *, order_sensitive: bool, max_size: int, seed: int
) -> Model:
    """A random subset (size uniform in 2..max_size) chained in a random order with one operator."""
    rng = random.Random(seed)
    size = rng.randint(2, max_size)
    order = rng.sample(list(candidates), size)
    return chain(order, operator, order_sensitive=order_sensitive)


def exhaustive(candidates: Sequence[str], operators: Mapping[str, bool], *, max_size: int) -> list[Model]:
    """Every subset of two or more candidates, in every order, with every sequence of ``operators`` (deduplicated).

    The count grows as |S|! × |O|^(|S|−1) per subset S, so this is the oracle for small sets only.
    """
    found: dict[str, Model] = {}
    for size in range(2, max_size + 1):
        for order in itertools.permutations(sorted(candidates), size):
            for sequence in itertools.product(list(operators), repeat=size - 1):
                model: Model = order[0]
                for name, operator in zip(order[1:], sequence, strict=True):
                    model = merge(operator, (model, name), order_sensitive=operators[operator])
                found.setdefault(expression(model), model)
    return [found[key] for key in sorted(found)]


def merge_count(models: Iterable[Model]) -> int:
    """Distinct merges needed to build all ``models`` (shared intermediates counted once)."""
    return len({expression(node) for model in models for node in merges_in(model)})


SIMMERGE = "simmerge"


ORACLE = "oracle"


CHAIN_RANDOM_ORDER = "chain_random_order"


RANDOM_SUBSET = "random_subset"


ALL_AT_ONCE = "all:"  # prefix of the all-at-once approaches: "all:ties_d50", "all:model_stock"


def operator_specs(operators: Mapping[str, Operator]) -> dict[str, dict[str, Any]]:
    """Full definition of every operator a tree may use (the hashed content of :func:`node_id`)."""
    specs = {name: operator.model_dump(mode="json") for name, operator in operators.items()}
    specs[MODEL_STOCK] = {"name": MODEL_STOCK, "method": "model_stock"}
    return specs


def build_recipes(
    plan: Mapping[str, Any],
    candidates: Sequence[str],
    operators: Mapping[str, Operator],
    *,
    max_size: int,
    best_fixed: str,
    all_at_once_operators: Sequence[str],
    oracle_operators: Sequence[str],
    oracle_max_candidates: int,
    seed: int,
    merge_seed: int,
) -> dict[str, Any]:
    """Every model to merge and score for one candidate set: SimMerge's plan and each baseline.

    Parameters
    ----------
    plan : mapping
        ``plan.json`` of :func:`plan_merge` (its ``model``).
    candidates, max_size
        The set.
    operators : mapping
        The run's operators.
    best_fixed : str
        The best fixed operator on the 2-way labels: chains of the random-order and random-subset baselines
        use it.
    all_at_once_operators : sequence of str
        Symmetric operators applied to all candidates in one merge (model_stock is added for ≥ 3 candidates).
    oracle_operators : sequence of str
        Operators tried at every step of the exhaustive oracle (only for ``len(candidates) <=
        oracle_max_candidates``).
    seed : int
        Seed of the random baselines.
    merge_seed : int
        ``random_seed`` of randomised merges (part of every node id).

    Returns
    -------
    dict
        ``best_fixed_operator``; ``approaches`` (name → node ids of the final models it scores); ``nodes`` (id →
        ``expression``, ``operator`` spec, ``inputs`` (expert names or node ids, anchor first)).
    """
    sensitive = {name: bool(operator.order_sensitive) for name, operator in operators.items()}
    approaches: dict[str, list[Model]] = {SIMMERGE: [from_json(plan["model"])]}
    every = list(all_at_once_operators) + ([MODEL_STOCK] if len(candidates) >= 3 else [])
    for operator in every:
        approaches[ALL_AT_ONCE + operator] = [all_at_once(candidates, operator)]
    approaches[CHAIN_RANDOM_ORDER] = [
        random_chain(candidates, best_fixed, order_sensitive=sensitive[best_fixed], seed=seed)
    ]
    approaches[RANDOM_SUBSET] = [
        random_subset(candidates, best_fixed, order_sensitive=sensitive[best_fixed], max_size=max_size, seed=seed)
    ]
    if len(candidates) <= oracle_max_candidates:
        approaches[ORACLE] = exhaustive(candidates, {o: sensitive[o] for o in oracle_operators}, max_size=max_size)
    specs = operator_specs(operators)
    nodes: dict[str, dict[str, Any]] = {}
    finals: dict[str, list[str]] = {}
    for approach, models in approaches.items():
        finals[approach] = []
        for model in models:
            if isinstance(model, str):
                raise ValueError(f"approach {approach} produced a single expert {model!r}, not a merge")
            for node in merges_in(model):
                nodes.setdefault(
                    node_id(node, specs, merge_seed),
                    {
                        "expression": expression(node),
                        "operator": specs[node.operator],
                        "inputs": [
                            child if isinstance(child, str) else node_id(child, specs, merge_seed)
                            for child in node.inputs
                        ],
                    },
                )
            finals[approach].append(node_id(model, specs, merge_seed))
    return {"best_fixed_operator": best_fixed, "candidates": list(candidates), "approaches": finals, "nodes": nodes}


def summarise_set(
    recipes: Mapping[str, Any],
    scores: Mapping[str, Mapping[str, Any]],
    plan: Mapping[str, Any],
    expert_scores: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, float],
    items: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per approach: its chosen model, actual target score and what it spent.

    ``merges`` counts mergekit runs (SimMerge: the planner's probe merges plus the executed chain);
    ``probe_passes`` the probe passes on intermediates; ``evaluations`` the lm-eval runs the approach needs
    to make its choice (0 for SimMerge, a fixed operator or random choice; every candidate for the oracle and
    for "best all-at-once operator", which are picked in hindsight). ``best_expert`` is the best single
    candidate, unmerged, for reference.
    """
    nodes = recipes["nodes"]

    def tree(identity: str) -> Model:
        node = nodes[identity]
        inputs = tuple(child if child not in nodes else tree(child) for child in node["inputs"])
        return Merge(node["operator"]["name"], inputs)

    def row(approach: str, identity: str, *, merges: int, probe_passes: int = 0, evaluations: int = 0) -> dict:
        model = tree(identity)
        return {
            "approach": approach,
            "identity": identity,
            "model": expression(model),
            "size": len(members(model)),
            "target_score": scores[identity]["target_score"],
            "status": scores[identity]["status"],
            "merges": merges,
            "probe_passes": probe_passes,
            "evaluations": evaluations,
        }

    rows = []
    for approach, finals in recipes["approaches"].items():
        models = [tree(identity) for identity in finals]
        if approach == SIMMERGE:
            probes = len(plan["materialised"])
            entry = row(approach, finals[0], merges=merge_count(models) + probes, probe_passes=probes)
            entry["predicted_target_score"] = plan["predicted_objective"]
            entry["uncertainty"] = plan["uncertainty"]
            rows.append(entry)
        elif approach == ORACLE:
            best = max(finals, key=lambda identity: (scores[identity]["target_score"], identity))
            rows.append(row(approach, best, merges=merge_count(models), evaluations=len(finals)))
        else:
            rows.append(row(approach, finals[0], merges=merge_count(models)))
    at_once = [r for r in rows if r["approach"].startswith(ALL_AT_ONCE)]
    if at_once:
        best = max(at_once, key=lambda r: (r["target_score"], r["approach"]))
        rows.append(
            {
                **best,
                "approach": "best_all_at_once",
                "merges": sum(r["merges"] for r in at_once),
                "evaluations": len(at_once),
            }
        )
    expert = max(recipes["candidates"], key=lambda name: (target_score(expert_scores[name], reference), name))
    rows.append(
        {
            "approach": "best_expert",
            "identity": expert,
            "model": expert,
            "size": 1,
            "target_score": target_score(expert_scores[expert], reference),
            "status": "ok",
            "merges": 0,
            "probe_passes": 0,
            "evaluations": 0,
        }
    )
    table = pd.DataFrame(rows)
    if items is not None:
        simmerge = recipes["approaches"][SIMMERGE][0]
        keys = next(t for t in items.values() if len(t))[["task", "subtask", "doc_id"]]
        normalised = {identity: _normalised_items(table, keys, reference) for identity, table in items.items()}
        differences = [paired_difference(normalised[identity], normalised[simmerge]) for identity in table["identity"]]
        table["vs_simmerge"] = [d.difference for d in differences]
        table["vs_simmerge_se"] = [d.stderr for d in differences]
    return table.drop(columns=["identity"])


def _normalised_items(items: pd.DataFrame, keys: pd.DataFrame, reference: Mapping[str, float]) -> pd.DataFrame:
    """Per-item scores over the reference score of their task (0 on every item of a node that has none)."""
    keys = keys[keys["task"].isin(list(reference))]
    if items.empty:
        return keys.assign(value=0.0)
    table = keys.merge(items[["task", "subtask", "doc_id", "score"]], on=["task", "subtask", "doc_id"], how="left")
    return table.assign(value=table["score"] / table["task"].map(reference))[["task", "subtask", "doc_id", "value"]]


__all__ = [
    "MODEL_STOCK",
    "Merge",
    "Model",
    "Plan",
    "PredictFn",
    "State",
    "all_at_once",
    "build_recipes",
    "chain",
    "exhaustive",
    "expression",
    "from_json",
    "members",
    "merge",
    "merge_count",
    "merges_in",
    "node_id",
    "operator_specs",
    "plan_merge",
    "random_chain",
    "random_subset",
    "reference_scores",
    "summarise_set",
    "target_score",
    "to_json",
]
