"""Selection methods: one interface for every way of choosing a pair's merge, found through an entry-point group.

A method is **fitted** on the training folds' label rows (other pairs' features and labels) and then **chooses**,
for each held-out unit (an unordered expert pair), one candidate: ``(operator, anchor)``, the anchor empty for a
symmetric operator. To decide, it may merge and score candidates on the unit's *search* items through
:meth:`Decision.evaluate`, which counts what that costs; every choice is then scored on the other half of the
unit's items (:func:`simmerge.evaluate.search.split_items`), which no method sees. The oracle alone reads that half
(:attr:`SelectionMethod.reads_held_out_items`): it is reported as the bound it is, not as a method.

SimMerge, SimMerge + k, the best fixed policy, random choice, successive halving, the label-free choice (the
merge that drifts least from its parents on their unlabelled probes) and the oracle are the built-in
methods, registered by this package under the entry-point group :data:`ENTRY_POINT_GROUP`. A researcher's own
method is a class in their own package::

    # pyproject.toml of my_package
    [project.entry-points."simmerge.selection_methods"]
    my_method = "my_package.selection:MyMethod"

    # config
    predictor:
      methods:
        - {name: my_method, params: {alpha: 0.5}}   # params: keyword arguments of MyMethod(...)

and it is compared on the same folds, items and intervals as SimMerge, in the same table (rule ``search``).
See ``docs/selection-methods.md``.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from simmerge.evaluate.labels import MERGE_OUTCOME_COLUMNS
from simmerge.evaluate.paired import UnitItems, anchors_of_rows, task_mean
from simmerge.evaluate.search import Spent, simmerge_plus_k, split_items, successive_halving
from simmerge.evaluate.selection import ORDER_RULES, rule_anchors

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "simmerge.selection_methods"

Candidate = tuple[str, str]


@dataclass(frozen=True)
class Training:
    """What a method may learn from in one fold: the training pairs' label rows, outcomes included.

    Attributes
    ----------
    rows : pandas.DataFrame
        Label rows of the training pairs (:data:`simmerge.evaluate.labels.LABEL_COLUMNS` and the features).
    feature_columns, operators : tuple of str
        The predictor's inputs and the operator grid.
    families : tuple of str
        The model families SimMerge's inner cross-validation chooses from.
    checkpoint_groups : mapping
        Each checkpoint's hold-out group (near-duplicates), for a method's own inner cross-validation.
    seed : int
        The run's predictor seed.
    """

    rows: pd.DataFrame
    feature_columns: tuple[str, ...]
    operators: tuple[str, ...]
    families: tuple[str, ...]
    checkpoint_groups: Mapping[str, str]
    seed: int
    _shared: dict = field(default_factory=dict, repr=False, compare=False)

    def simmerge_predictor(self):
        """SimMerge's predictor on these rows (family by grouped inner CV, as the comparison fits it), fitted once
        per fold and shared by every method that asks."""
        if "simmerge" not in self._shared:
            from simmerge.evaluate.predictor import OPERATOR, TARGET, SimMergePredictor, inner_family

            family = inner_family(
                self.rows,
                self.feature_columns,
                self.operators,
                seed=self.seed,
                families=self.families,
                checkpoint_groups=self.checkpoint_groups,
            )
            model = SimMergePredictor(family=family, operators=self.operators, random_state=self.seed)
            model.fit(self.rows[[*self.feature_columns, OPERATOR]], self.rows[TARGET])
            self._shared["simmerge"] = model
        return self._shared["simmerge"]


class Decision:
    """One unit to choose a merge for.

    Attributes
    ----------
    unit : str
        The unordered pair ``a|b``.
    rows : pandas.DataFrame
        Its label rows without :data:`MERGE_OUTCOME_COLUMNS`: both orders, every task and operator, with the
        features and the parents' own scores (what is known before merging).
    candidates : list of (operator, anchor)
        What it may choose, in grid order.
    search_items : int
        Items of the search half, the most :meth:`evaluate` scores a candidate on.
    seed : int
        A seed for the method's own randomness in this unit (from the run's seed and the unit).
    """

    def __init__(
        self,
        unit: str,
        rows: pd.DataFrame,
        items: UnitItems,
        search: np.ndarray,
        evaluation: np.ndarray,
        *,
        seed: int,
        reveal_held_out: bool = False,
        merge_rows: pd.DataFrame | None = None,
    ):
        self.unit = unit
        self.rows = rows.drop(columns=[c for c in MERGE_OUTCOME_COLUMNS if c in rows]).reset_index(drop=True)
        self.candidates: list[Candidate] = list(items.vectors)
        self.search_items = len(search)
        self.seed = seed
        self._items, self._search, self._evaluation = items, search, evaluation
        self._reveal = reveal_held_out
        self._merges = _merges_per_candidate(rows)
        self._scored: dict[Candidate, int] = {}
        self._drift = _drift_per_candidate(rows if merge_rows is None else merge_rows)
        self._probed: set[Candidate] = set()

    def evaluate(self, candidate: Candidate, n_items: int | None = None) -> float:
        """Merge ``candidate`` (once) and score it on the first ``n_items`` search items (default: all of them).

        Charged: the candidate's merges the first time (one per seed of a randomised operator, whose label is
        their mean) and each search item it has not been scored on yet, once per merge.
        """
        self._check(candidate)
        n = self.search_items if n_items is None else max(1, min(int(n_items), self.search_items))
        self._scored[candidate] = max(n, self._scored.get(candidate, 0))
        return float(self._items.vectors[candidate][self._search[:n]].mean())

    def probe(self, candidate: Candidate) -> float:
        """Merge ``candidate`` (its first seed) and pass it over its parents' home-task probes: its mean
        ``KL(parent ‖ merge)`` (:func:`simmerge.merges.drift.parent_drift`; lower: closer to its parents). No label
        is read. Charged: one merge, unless :meth:`evaluate` merged it already, and a probe pass per home task."""
        self._check(candidate)
        value, passes = self._drift.get(candidate, (math.nan, 0))
        if math.isnan(value):
            raise ValueError(
                f"unit {self.unit}: no parent drift was measured for {candidate!r}; the run's merges need "
                "merges.parent_drift: true (re-runs the merge jobs)"
            )
        self._probed.add(candidate)
        return value

    def held_out_score(self, candidate: Candidate) -> float:
        """The candidate's score on the held-out half: only a method that declares it reads those items (the
        oracle) may ask."""
        if not self._reveal:
            raise PermissionError(
                f"unit {self.unit}: a method that reads the held-out items must set reads_held_out_items = True; "
                "it is then reported as a bound, not as a method"
            )
        return held_out_score(self._items, self._evaluation, candidate)

    @property
    def spent(self) -> Spent:
        """Merges made, items scored and probe passes run so far by :meth:`evaluate` and :meth:`probe`."""
        merges = sum(self._merges.get(candidate[0], 1) for candidate in self._scored)
        merges += sum(1 for candidate in self._probed if candidate not in self._scored)
        items = sum(self._merges.get(candidate[0], 1) * n for candidate, n in self._scored.items())
        passes = sum(self._drift[candidate][1] for candidate in self._probed)
        return Spent(merges=merges, items=items, probe_passes=passes)

    def _check(self, candidate: Candidate) -> None:
        if candidate not in self._items.vectors:
            raise KeyError(f"unit {self.unit}: {candidate!r} is not a candidate; choose from {self.candidates}")


def _merges_per_candidate(rows: pd.DataFrame) -> dict[str, int]:
    """Merges behind one candidate's label, per operator: its seeds (1 for a deterministic operator)."""
    if "n_seeds" not in rows:
        return {}
    seeds = rows.groupby("operator", sort=False)["n_seeds"].max()
    return {operator: max(1, int(n)) if not math.isnan(n) else 1 for operator, n in seeds.items()}


def _drift_per_candidate(rows: pd.DataFrame) -> dict[Candidate, tuple[float, int]]:
    """Each candidate's parent drift (the same on every row of its merge) and the probe passes it took: one per
    task the merge was scored on (its parents' home tasks under ``merges.tasks: home``; an upper bound under
    ``all``)."""
    if "parent_drift" not in rows:
        return {}
    frame = rows.assign(candidate=candidate_of_rows(rows))
    grouped = frame.groupby("candidate", sort=False)
    return {
        candidate: (float(drift), int(tasks))
        for candidate, drift, tasks in zip(
            grouped.size().index, grouped["parent_drift"].mean(), grouped["task"].nunique(), strict=True
        )
    }


def held_out_score(items: UnitItems, evaluation: np.ndarray, candidate: Candidate) -> float:
    """A candidate's score on the held-out items: the mean over tasks of its per-task item means."""
    return task_mean(items.vectors[candidate][evaluation], items.tasks[evaluation])


class SelectionMethod:
    """The interface: :meth:`fit` on a fold's training pairs, then :meth:`choose` for each held-out unit.

    A method's keyword arguments are its config ``params``. What it spends is what it asks
    :meth:`Decision.evaluate` for; a method that merges nothing but its choice spends one merge.
    """

    reads_held_out_items: ClassVar[bool] = False
    # whether its decisions read the similarity features (probe passes, weight sketches) and so pay for them; read
    # after fit, so that a method may set it from what it learned
    reads_features: bool = True

    def fit(self, training: Training) -> None:
        """Learn from the training pairs (default: nothing to learn)."""

    def choose(self, decision: Decision) -> Candidate:
        raise NotImplementedError


def candidate_of_rows(rows: pd.DataFrame) -> list[Candidate]:
    """Each label row's candidate: (operator, its anchor)."""
    return [
        (str(operator), str(anchor)) for operator, anchor in zip(rows["operator"], anchors_of_rows(rows), strict=True)
    ]


def predicted_ranking(decision: Decision, predicted: Sequence[float]) -> list[Candidate]:
    """The unit's candidates by a per-row prediction, best first: a candidate's prediction is the mean over its
    rows (tasks, and both orders of a symmetric operator), as in the comparison; ties keep grid order."""
    means = (
        pd.DataFrame({"candidate": candidate_of_rows(decision.rows), "predicted": np.asarray(predicted, float)})
        .groupby("candidate", sort=False)["predicted"]
        .mean()
    )
    known = [candidate for candidate in decision.candidates if candidate in means.index]
    return sorted(known, key=lambda candidate: -means[candidate])


class SimMerge(SelectionMethod):
    """SimMerge: the candidate its predictor scores highest; no evaluation."""

    def fit(self, training: Training) -> None:
        self._model = training.simmerge_predictor()
        self._columns = [*training.feature_columns, "operator"]

    def ranking(self, decision: Decision) -> list[Candidate]:
        return predicted_ranking(decision, self._model.predict(decision.rows[self._columns]))

    def choose(self, decision: Decision) -> Candidate:
        return self.ranking(decision)[0]


class SimMergePlusK(SimMerge):
    """SimMerge + k: merge and score SimMerge's ``k`` best-predicted candidates on the search items, keep the best."""

    def __init__(self, k: int = 1):
        if k < 1:
            raise ValueError(f"k must be at least 1 (got {k}); k = 0 is SimMerge itself")
        self.k = int(k)

    def choose(self, decision: Decision) -> Candidate:
        choice, _ = simmerge_plus_k(self.ranking(decision), decision.evaluate, k=self.k, n_items=0)
        return choice


class SuccessiveHalving(SelectionMethod):
    """Successive halving over the whole grid: every candidate merged, scored on ``start_items`` search items, the
    better half kept, the items doubled, up to ``budget`` (a fraction of the search items) per candidate."""

    reads_features = False

    def __init__(self, budget: float = 1.0, start_items: int = 4):
        if not 0 < budget <= 1 or start_items < 1:
            raise ValueError(f"budget must be in (0, 1] and start_items positive (got {budget}, {start_items})")
        self.budget, self.start_items = float(budget), int(start_items)

    def choose(self, decision: Decision) -> Candidate:
        limit = max(1, round(self.budget * decision.search_items))
        choice, _ = successive_halving(
            decision.candidates, decision.evaluate, start_items=min(self.start_items, limit), max_items=limit
        )
        return choice


class BestFixed(SelectionMethod):
    """The best fixed policy of the training pairs: one operator, and for an order-sensitive one an order rule
    (:data:`simmerge.evaluate.selection.ORDER_RULES`); where the rule cannot tell the experts apart, a seeded coin
    picks the anchor. Its decisions read the similarity features only when its order rule does (the norm rules)."""

    def fit(self, training: Training) -> None:
        from simmerge.evaluate.selection import FEATURE_ORDER_RULES, best_policy, candidate_table, policy_scores

        self.policy = best_policy(policy_scores(candidate_table(training.rows), rule_anchors(training.rows)))
        self.reads_features = self.policy.partition("/")[2] in FEATURE_ORDER_RULES

    def choose(self, decision: Decision) -> Candidate:
        operator, _, rule = self.policy.partition("/")
        if not rule:
            return operator, ""
        anchor = rule_anchors(decision.rows).iloc[0][rule] if rule in ORDER_RULES else ""
        if not anchor:
            anchor = str(np.random.default_rng(decision.seed).choice(decision.unit.split("|")))
        return operator, anchor


class LabelFree(SelectionMethod):
    """The label-free choice: every candidate merged and passed over its parents' home-task probes, the one that
    stays closest to its parents kept (least ``KL(parent ‖ merge)``, :mod:`simmerge.merges.drift`); no
    evaluation, no training labels."""

    reads_features = False

    def choose(self, decision: Decision) -> Candidate:
        return min(decision.candidates, key=decision.probe)


class RandomChoice(SelectionMethod):
    """A candidate drawn uniformly at random (seeded per unit): one draw, not the expectation the comparison's
    ``random`` column reports."""

    reads_features = False

    def choose(self, decision: Decision) -> Candidate:
        return decision.candidates[int(np.random.default_rng(decision.seed).integers(len(decision.candidates)))]


class Oracle(SelectionMethod):
    """The candidate that scores best on the held-out items: the bound every method is measured against."""

    reads_features = False
    reads_held_out_items = True

    def choose(self, decision: Decision) -> Candidate:
        return max(decision.candidates, key=decision.held_out_score)


# --------------------------------------------------------------------------------------------------------------
# Discovery and the comparison


@dataclass(frozen=True)
class MethodEntry:
    """A configured method: its label in the tables, its entry-point name and its keyword arguments."""

    label: str
    name: str
    params: Mapping[str, Any]

    def make(self) -> SelectionMethod:
        return load_method_class(self.name)(**self.params)


def registered_methods() -> dict[str, metadata.EntryPoint]:
    """Every method registered under :data:`ENTRY_POINT_GROUP` by an installed package."""
    return {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_method_class(name: str) -> type:
    registered = registered_methods()
    if name not in registered:
        known = ", ".join(sorted(registered)) or "none (is simmerge installed, e.g. `pip install -e .`?)"
        raise LookupError(
            f"selection method {name!r} is not registered under the entry-point group {ENTRY_POINT_GROUP!r}; "
            f"registered: {known}. A method of your own: add it to your package's pyproject.toml "
            f'([project.entry-points."{ENTRY_POINT_GROUP}"] {name} = "your_package.module:YourClass") and install it'
        )
    return registered[name].load()


def method_entries(specs: Sequence[Mapping[str, Any]]) -> list[MethodEntry]:
    """The configured methods (``predictor.methods``), with a default label: the name and its params."""
    entries = []
    for spec in specs:
        params = dict(spec.get("params") or {})
        shown = ", ".join(f"{key}={value}" for key, value in params.items())
        entries.append(
            MethodEntry(
                spec.get("label") or (f"{spec['name']} ({shown})" if shown else spec["name"]), spec["name"], params
            )
        )
    return entries


def method_problems(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What is wrong with the configured methods, checked before anything runs: an unregistered name, a class
    that cannot choose, params its constructor does not take or rejects, two methods with one label."""
    problems, labels = [], set()
    for index, entry in enumerate(method_entries(specs)):
        where = f"predictor.methods[{index}] ({entry.name})"
        if entry.label in labels:
            problems.append(f"{where}: label {entry.label!r} is used twice; give one of them its own `label`")
        labels.add(entry.label)
        try:
            cls = load_method_class(entry.name)
        except (LookupError, ImportError, AttributeError) as error:
            problems.append(f"{where}: {error}")
            continue
        if not callable(getattr(cls, "choose", None)):
            problems.append(f"{where}: {cls.__module__}.{cls.__qualname__} has no choose(decision) method")
            continue
        try:
            inspect.signature(cls).bind(**entry.params)
            cls(**entry.params)
        except (TypeError, ValueError) as error:
            problems.append(f"{where}: params {dict(entry.params)} are not accepted: {error}")
    return problems


def unit_seed(seed: int, unit: str) -> int:
    """A unit's seed: stable across runs and Python processes (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{unit}".encode()).digest()[:4], "little")


def item_halves(
    labels: pd.DataFrame, label_items: pd.DataFrame, seed: int
) -> tuple[pd.DataFrame, dict[str, UnitItems], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The rows the methods learn from, every unit's items, and each unit's search and held-out halves.

    The one split of the methods comparison, drawn per unit from ``seed`` and the unit's name (a checkpoint added
    to the catalog leaves the other pairs' halves as they were): a search that makes its own merges (rule
    ``cma_search``) asks for it here, so that it searches and is scored on the same halves as the methods of
    :func:`compare_methods`.
    """
    from simmerge.evaluate.paired import unit_items
    from simmerge.evaluate.predictor import training_rows
    from simmerge.evaluate.selection import units_of_rows

    rows = training_rows(labels)
    items = unit_items(rows, label_items, units_of_rows(rows))
    halves = {
        unit: split_items(items[unit].tasks, np.random.default_rng([seed, 2, unit_seed(seed, unit)])) for unit in items
    }
    return rows, items, halves


def split_digest(items: UnitItems, halves: tuple[np.ndarray, np.ndarray]) -> str:
    """A digest of a unit's search and held-out items (task, subtask, document), in order: what a search record
    was made on, checked against the comparison it joins."""
    keys = items.keys if items.keys is not None else pd.DataFrame({"item": np.arange(len(items.tasks))})
    digest = hashlib.sha256()
    for half in halves:
        digest.update(keys.iloc[half].to_csv(index=False).encode())
        digest.update(b"|")
    return digest.hexdigest()


def cma_search_record(
    labels: pd.DataFrame,
    label_items: pd.DataFrame,
    a: str,
    b: str,
    *,
    genome: Mapping[str, Any],
    split_seed: int,
    a_dir: str | os.PathLike,
    b_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    **search: Any,
) -> dict[str, Any]:
    """CMA-ES over the merge parameters of the pair (a, b) on the pair's search half of the methods comparison's
    items (:func:`item_halves` with ``split_seed``), each generation's best scored on the held-out half: the record
    of rule ``cma_search`` (and ``simmerge cma-search``), with the digest of the split it was made on.

    ``search`` holds the keyword arguments of :func:`simmerge.merges.cma.cma_merge_search` other than the genome,
    the checkpoints, the item halves and the normaliser, which come from here.
    """
    from simmerge.evaluate.selection import unit_of
    from simmerge.merges.cma import Genome, best_parent_metrics, cma_merge_search

    _, items, halves = item_halves(labels, label_items, split_seed)
    unit = unit_of(a, b)
    if unit not in items:
        raise ValueError(
            f"pair {unit}: its merges were not all scored on the same items, so the methods comparison has no "
            f"search and held-out halves for it; check the labels of ({a}, {b})"
        )
    search_half, held_out_half = halves[unit]
    keys = items[unit].keys
    record = cma_merge_search(
        Genome(genome),
        a_dir,
        b_dir,
        base_dir,
        search_keys=keys.iloc[search_half].reset_index(drop=True),
        held_out_keys=keys.iloc[held_out_half].reset_index(drop=True),
        best_parent=best_parent_metrics(labels, a, b),
        **search,
    )
    return {**record, "a": a, "b": b, "unit": unit, "split_digest": split_digest(items[unit], halves[unit])}


def compare_methods(
    labels: pd.DataFrame,
    label_items: pd.DataFrame,
    entries: Sequence[MethodEntry],
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    families: Sequence[str],
    checkpoint_groups: Mapping[str, str] | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    search_records: Sequence[Mapping[str, Any]] = (),
    skip_stale_records: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every configured method on the held-out checkpoint folds, each unit's choices scored on its held-out items.

    ``search_records`` (rule ``cma_search``) join the units through :func:`search_record_units`, on the same
    halves; a record made on other items raises, or with ``skip_stale_records`` is left out with a warning.

    The folds are the comparison's checkpoint protocol (:func:`simmerge.evaluate.predictor.protocol_split`, the
    near-duplicate groups held out together); each method is made anew and fitted per fold. A pair is tested in
    the fold of each of its experts: its score and spending are the mean over those folds.

    Returns
    -------
    (units, summary)
        ``units``: one row per (unit, fold, method) — ``unit``, ``fold``, ``method``, ``name``, ``choice``,
        ``score`` (held-out half), ``oracle``, ``regret``, ``merges``, ``items``, ``probe_passes``, ``candidates``,
        ``bound`` (reads the held-out items), ``reads_features``; ``summary``: :func:`methods_summary`.
    """
    from simmerge.evaluate.predictor import protocol_split
    from simmerge.evaluate.selection import units_of_rows

    rows, items, halves = item_halves(labels, label_items, seed)
    row_units = np.asarray(units_of_rows(rows))
    label_units = np.asarray(units_of_rows(labels))
    splitter, groups = protocol_split("checkpoint", rows, checkpoint_groups)
    records = []
    for held_out, (train, test) in zip(
        splitter.held_out(groups=groups), splitter.split(rows, groups=groups), strict=True
    ):
        training = Training(
            rows=rows.iloc[train].reset_index(drop=True),
            feature_columns=tuple(feature_columns),
            operators=tuple(operators),
            families=tuple(families),
            checkpoint_groups=dict(checkpoint_groups or {}),
            seed=seed,
        )
        test_units = [unit for unit in dict.fromkeys(row_units[test]) if unit in items]
        for entry in entries:
            method = entry.make()
            reveal = bool(getattr(method, "reads_held_out_items", False))
            if callable(getattr(method, "fit", None)):
                method.fit(training)
            reads_features = bool(getattr(method, "reads_features", True))
            for unit in test_units:
                search, evaluation = halves[unit]
                decision = Decision(
                    unit,
                    rows[row_units == unit],
                    items[unit],
                    search,
                    evaluation,
                    seed=unit_seed(seed, unit),
                    reveal_held_out=reveal,
                    merge_rows=labels[label_units == unit],
                )
                choice = tuple(method.choose(decision))
                if choice not in items[unit].vectors:
                    raise ValueError(
                        f"selection method {entry.label!r} chose {choice!r} for {unit}, which is not one of its "
                        f"candidates {decision.candidates}"
                    )
                spent = decision.spent
                if not spent.merges:  # it evaluated nothing: its one merge is the one it chose
                    spent = Spent(merges=1, items=0)
                oracle = max(held_out_score(items[unit], evaluation, key) for key in decision.candidates)
                score = held_out_score(items[unit], evaluation, choice)
                records.append(
                    {
                        "unit": unit,
                        "fold": held_out,
                        "method": entry.label,
                        "name": entry.name,
                        "choice": "@".join(part for part in choice if part),
                        "score": score,
                        "oracle": oracle,
                        "regret": oracle - score,
                        "merges": spent.merges,
                        "items": spent.items,
                        "probe_passes": spent.probe_passes,
                        "candidates": len(decision.candidates),
                        "bound": reveal,
                        "reads_features": reads_features,
                    }
                )
    units = pd.DataFrame(records)
    if search_records:
        if skip_stale_records:
            stale = [r for r in search_records if not made_on_these_items(r, items, halves)]
            for record in stale:
                log.warning("left out %s: made on other item halves than seed %s draws", record.get("path"), seed)
            search_records = [r for r in search_records if r not in stale]
        units = pd.concat([units, search_record_units(search_records, items, halves)], ignore_index=True)
    return units, methods_summary(units, n_boot=n_boot, seed=seed)


def made_on_these_items(record: Mapping[str, Any], items: Mapping[str, UnitItems], halves: Mapping[str, tuple]) -> bool:
    """Whether a search record's pair has these items and its digest is that of these halves."""
    unit = record["unit"]
    return unit in items and record.get("split_digest") == split_digest(items[unit], halves[unit])


def search_record_units(
    records: Sequence[Mapping[str, Any]], items: Mapping[str, UnitItems], halves: Mapping[str, tuple]
) -> pd.DataFrame:
    """Rows of :func:`compare_methods`'s units for searches that made their own merges (rule ``cma_search``).

    One row per pair and budget: the method ``cma_es (N evals)`` with N the evaluations after a generation, its
    choice (the best parameters so far), their held-out score and its regret against the grid's best held-out
    candidate (negative when a merge off the grid beats every grid candidate); merges are the evaluations spent,
    items those times the search items each scored. A search that stopped early (CMA-ES converged) keeps its
    last answer at the larger budgets, with what it spent. Such a search fits nothing, so its row has no fold.
    """
    budgets = sorted({int(generation["evaluations"]) for record in records for generation in record["generations"]})
    rows = []
    for record in records:
        unit = record["unit"]
        if unit not in items:
            raise KeyError(f"search record of {unit}: the pair has no items in the methods comparison")
        if not made_on_these_items(record, items, halves):
            raise ValueError(
                f"the CMA-ES search of {unit} ({record.get('path', 'its record')}) was made on other search and "
                "held-out items than this comparison's (the pair's merges were scored again, or the seed moved); "
                "delete that record to re-run it"
            )
        evaluation = halves[unit][1]
        oracle = max(held_out_score(items[unit], evaluation, key) for key in items[unit].vectors)
        for budget in budgets:
            reached = [g for g in record["generations"] if int(g["evaluations"]) <= budget]
            if not reached:
                continue
            generation = reached[-1]
            n = int(generation["evaluations"])
            rows.append(
                {
                    "unit": unit,
                    "fold": "",
                    "method": f"cma_es ({budget} evals)",
                    "name": "cma_es",
                    "choice": " ".join(f"{key}={value:g}" for key, value in generation["parameters"].items()),
                    "score": float(generation["held_out_score"]),
                    "oracle": oracle,
                    "regret": oracle - float(generation["held_out_score"]),
                    "merges": n,
                    "items": n * int(record["search_items"]),
                    "probe_passes": 0,
                    "candidates": math.nan,
                    "bound": False,
                    "reads_features": False,
                }
            )
    return pd.DataFrame(rows)


def methods_summary(
    units: pd.DataFrame, *, reference: str = "simmerge", n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Per method: pairs, held-out score and regret with 95% intervals, and the paired difference from
    ``reference`` (the first method of that entry-point name) over the same pairs, with its interval from a
    bootstrap over pairs; mean merges, items and probe passes per pair, and ``reads_features``, the share of its
    decisions that read the similarity features. A pair's numbers are the mean over its folds."""
    from simmerge.evaluate import stats

    if units.empty:
        return pd.DataFrame()
    per_pair = units.groupby(["method", "unit"], sort=False).agg(
        name=("name", "first"),
        score=("score", "mean"),
        regret=("regret", "mean"),
        merges=("merges", "mean"),
        items=("items", "mean"),
        probe_passes=("probe_passes", "mean"),
        bound=("bound", "first"),
        reads_features=("reads_features", "mean"),
    )
    methods = list(dict.fromkeys(units["method"]))
    references = [method for method in methods if per_pair.loc[method, "name"].iloc[0] == reference]
    base = per_pair.loc[references[0], "score"] if references else None
    rows = []
    for method in methods:
        own = per_pair.loc[method]
        values = {"score": own["score"].to_numpy(float), "regret": own["regret"].to_numpy(float)}
        if base is not None:
            values["difference"] = (own["score"] - base.reindex(own.index)).to_numpy(float)
        draws = stats.cluster_bootstrap(values, list(own.index), n_boot=n_boot, seed=seed)
        row = {
            "method": method,
            "name": own["name"].iloc[0],
            "pairs": len(own),
            "bound": bool(own["bound"].iloc[0]),
            "reads_features": float(own["reads_features"].mean()),
        }
        for metric, vector in values.items():
            low, high, _ = stats.percentile_interval(draws[metric])
            row |= {metric: float(np.nanmean(vector)), f"{metric}_lo": low, f"{metric}_hi": high}
        row |= {
            "merges": float(own["merges"].mean()),
            "items": float(own["items"].mean()),
            "probe_passes": float(own["probe_passes"].mean()),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def evaluations_to_match(summary: pd.DataFrame, reference: str = "simmerge") -> dict[str, float | None]:
    """Per method name with several budgets (e.g. successive halving, SimMerge + k): the fewest items per pair at
    which its mean held-out score reaches ``reference``'s; None when no budget tried does."""
    reference_rows = summary[summary["name"] == reference]
    if reference_rows.empty:
        return {}
    target = float(reference_rows["score"].iloc[0])
    out: dict[str, float | None] = {}
    for name, rows in summary[summary["name"] != reference].groupby("name", sort=False):
        if not rows["items"].gt(0).any():
            continue  # no evaluation at any setting: not a search
        rows = rows.sort_values("items")
        reached = rows[rows["score"] >= target - 1e-12]
        out[name] = float(reached["items"].iloc[0]) if len(reached) else None
    return out


__all__ = [
    "ENTRY_POINT_GROUP",
    "BestFixed",
    "Decision",
    "LabelFree",
    "MethodEntry",
    "Oracle",
    "RandomChoice",
    "SelectionMethod",
    "SimMerge",
    "SimMergePlusK",
    "SuccessiveHalving",
    "Training",
    "cma_search_record",
    "compare_methods",
    "evaluations_to_match",
    "held_out_score",
    "item_halves",
    "load_method_class",
    "made_on_these_items",
    "method_entries",
    "method_problems",
    "methods_summary",
    "registered_methods",
    "search_record_units",
    "split_digest",
]
