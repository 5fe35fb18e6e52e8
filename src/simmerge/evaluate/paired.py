"""Paired statistics: two models scored on the same items are compared by their per-item differences.

The standard error of a difference of two scores on the same items is ``sqrt(Var(d) / n)`` with ``d_i = x_i − y_i``
(Miller 2024, "Adding Error Bars to Evals"), i.e. ``sqrt(se_x² + se_y² − 2 cov(x, y) / n)``: smaller than the
unpaired ``sqrt(se_x² + se_y²)`` whenever the two models get the same items right, which merges of one pair do.
This module is the one place such differences are computed: the operator ranking's tie rule
(:mod:`simmerge.evaluate.ranking`), the comparison's top-1 within noise and SimMerge vs the best fixed policy
(:mod:`simmerge.evaluate.selection`), and the two-level bootstrap of the comparison.

A label is a mean over tasks of per-task means over items (:mod:`simmerge.evaluate.labels`), so the difference of
two labels of one pair is ``(1/T) Σ_t mean_i d_ti`` and its variance ``(1/T²) Σ_t Var_t(d) / n_t``: items are
paired within a task and tasks are independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simmerge.merges.items import ITEM_KEY


@dataclass(frozen=True)
class PairedDifference:
    """The difference of two labels on the same items.

    Attributes
    ----------
    difference : float
        ``x − y`` (mean over tasks of the per-task mean differences).
    stderr : float
        Its paired standard error (plus the seed variance of randomised operators, when given).
    unpaired_stderr : float
        The standard error the two scores' own errors give when treated as independent.
    correlation : float
        Item-level correlation of ``x`` and ``y`` (centred per task; NaN when either is constant).
    n : int
        Items behind the difference.
    """

    difference: float
    stderr: float
    unpaired_stderr: float
    correlation: float
    n: int


def _variance_of_mean(values: np.ndarray) -> float:
    """``Var(values) / n`` with the n − 1 sample variance; 0 for a single item."""
    return float(np.var(values, ddof=1) / len(values)) if len(values) > 1 else 0.0


def paired_difference(
    x: pd.DataFrame,
    y: pd.DataFrame,
    *,
    value: str = "value",
    extra_variance: float = 0.0,
) -> PairedDifference:
    """Paired difference of two labels, from their per-item outcomes.

    Parameters
    ----------
    x, y : pandas.DataFrame
        Per-item outcomes of each label: ``task``, ``subtask``, ``doc_id`` and the ``value`` column, on the same
        items (the rows are matched on those keys).
    value : str
        The outcome column (``value``: the normalised metric; ``likelihood``: the continuous score).
    extra_variance : float
        Variance added to both standard errors (the seed variance of randomised operators' labels).

    A task on which either label has no value (its better parent scores 0, so the label leaves it out) is left
    out here too.

    Raises
    ------
    ValueError
        If the two do not cover the same items, or no task has values in both.
    """
    joined = x[[*ITEM_KEY, value]].merge(y[[*ITEM_KEY, value]], on=ITEM_KEY, suffixes=("_x", "_y"), validate="1:1")
    if len(joined) != len(x) or len(joined) != len(y):
        raise ValueError(f"the two labels cover different items ({len(x)} and {len(y)}, {len(joined)} shared)")
    undefined = joined.loc[joined[[f"{value}_x", f"{value}_y"]].isna().any(axis=1), "task"].unique()
    joined = joined[~joined["task"].isin(undefined)]
    if joined.empty:
        raise ValueError(f"no task has {value} for both labels")
    codes = pd.factorize(joined["task"])[0]
    return difference_of(
        joined[f"{value}_x"].to_numpy(float), joined[f"{value}_y"].to_numpy(float), codes, extra_variance
    )


def difference_of(xs: np.ndarray, ys: np.ndarray, tasks: np.ndarray, extra_variance: float = 0.0) -> PairedDifference:
    """:class:`PairedDifference` of two aligned item vectors; ``tasks`` gives each item's task (integer codes).

    The one computation behind every paired comparison: the label is the mean over tasks of the per-task item
    means, items are paired within a task, tasks are independent.
    """
    n_tasks = len(np.unique(tasks))
    difference = paired = unpaired = 0.0
    cx, cy = np.empty_like(xs), np.empty_like(ys)
    for code in np.unique(tasks):
        mask = tasks == code
        tx, ty = xs[mask], ys[mask]
        difference += float(np.mean(tx - ty)) / n_tasks
        paired += _variance_of_mean(tx - ty) / n_tasks**2
        unpaired += (_variance_of_mean(tx) + _variance_of_mean(ty)) / n_tasks**2
        cx[mask], cy[mask] = tx - tx.mean(), ty - ty.mean()
    norm = math.sqrt(float(cx @ cx) * float(cy @ cy))
    return PairedDifference(
        difference=difference,
        stderr=math.sqrt(paired + extra_variance),
        unpaired_stderr=math.sqrt(unpaired + extra_variance),
        correlation=float(cx @ cy) / norm if norm > 0 else math.nan,
        n=len(xs),
    )


@dataclass
class UnitItems:
    """The per-item outcomes of every candidate of one decision unit, on the unit's items.

    Attributes
    ----------
    tasks : ndarray of int
        Each item's task code.
    vectors : dict
        ``(operator, anchor)`` → the candidate's item vector (``anchor`` empty for a symmetric operator).
    seed_variance : dict
        ``(operator, anchor)`` → the variance its seed spread adds to its score (0 for a deterministic one).
    keys : pandas.DataFrame, optional
        Each item's ``task``, ``subtask`` and ``doc_id``, in the vectors' order (what a new merge is scored on to
        be compared item by item).
    """

    tasks: np.ndarray
    vectors: dict[tuple[str, str], np.ndarray]
    seed_variance: dict[tuple[str, str], float]
    keys: pd.DataFrame | None = None

    def score(self, vector: np.ndarray) -> float:
        """The label a vector gives: mean over tasks of the per-task item means."""
        return task_mean(vector, self.tasks)

    def difference(self, x: tuple[str, str], y: tuple[str, str]) -> PairedDifference:
        """Paired difference of two candidates (with both seed variances)."""
        extra = self.seed_variance.get(x, 0.0) + self.seed_variance.get(y, 0.0)
        return difference_of(self.vectors[x], self.vectors[y], self.tasks, extra)


def task_mean(values: np.ndarray, tasks: np.ndarray) -> float:
    """The mean over tasks of the per-task means of item values (how a label weighs its tasks)."""
    return float(np.mean([values[tasks == code].mean() for code in np.unique(tasks)]))


def anchors_of_rows(rows: pd.DataFrame) -> np.ndarray:
    """Each label row's anchor: its first model ``a`` for an order-sensitive operator, ``""`` for a symmetric one
    (whose merge serves both orders)."""
    return np.where(rows["order_sensitive"].astype(bool), rows["a"], "")


def unit_items(
    rows: pd.DataFrame, items: pd.DataFrame, units: Sequence[str], *, value: str = "value"
) -> dict[str, UnitItems]:
    """Every unit's :class:`UnitItems`, from label rows and the label items.

    Parameters
    ----------
    rows : pandas.DataFrame
        Label rows (``a``, ``b``, ``task``, ``operator``, ``order_sensitive``, ``seed_sd``, ``n_seeds``,
        ``parent_score_a``, ``parent_score_b``).
    items : pandas.DataFrame
        The label items (:func:`simmerge.evaluate.labels.labels_table`).
    units : sequence of str
        The unit of each row (:func:`simmerge.evaluate.selection.units_of_rows`).
    value : str
        The item column of the target (``value`` or ``likelihood``).

    Returns
    -------
    dict
        Unit → its items. A symmetric operator's vector is that of either order (one merge); an order-sensitive
        one has a vector per anchor. Tasks on which a candidate has no defined value (a parent scoring 0) are
        left out of the unit, as they are left out of the label.
    """
    frame = rows.assign(unit=list(units))
    frame["anchor"] = anchors_of_rows(frame)
    variance = label_seed_variance(frame)
    by_row = items.set_index(["a", "b", "task", "operator"]).sort_index()
    out: dict[str, UnitItems] = {}
    for unit, group in frame.groupby("unit", sort=False):
        parts: dict[tuple[str, str], list[pd.DataFrame]] = {}
        for row in group.drop_duplicates(["task", "operator", "anchor"]).itertuples():
            key = (row.a, row.b, row.task, row.operator)
            if key not in by_row.index:
                continue
            parts.setdefault((row.operator, row.anchor), []).append(by_row.loc[[key]].reset_index())
        if not parts:
            continue
        tables = {key: pd.concat(tables, ignore_index=True).sort_values(ITEM_KEY) for key, tables in parts.items()}
        defined = set.intersection(*(set(table.loc[table[value].notna(), "task"]) for table in tables.values()))
        vectors, task_codes, item_keys = {}, None, None
        for key, table in tables.items():
            kept = table[table["task"].isin(defined)]
            vectors[key] = kept[value].to_numpy(float)
            if task_codes is None:
                task_codes = pd.factorize(kept["task"], sort=True)[0]
                item_keys = kept[ITEM_KEY].reset_index(drop=True)
        lengths = {len(vector) for vector in vectors.values()}
        if len(lengths) != 1 or not lengths.pop():
            continue  # candidates on different items: not comparable item by item
        unit_variance = variance[variance["unit"] == unit].set_index(["operator", "anchor"])["seed_variance"]
        out[unit] = UnitItems(
            tasks=task_codes,
            vectors=vectors,
            seed_variance={key: float(unit_variance.get(key, 0.0)) for key in vectors},
            keys=item_keys,
        )
    return out


def label_seed_variance(rows: pd.DataFrame, keys: Sequence[str] = ("unit", "operator", "anchor")) -> pd.DataFrame:
    """What each candidate's seed spread adds to the variance of its label, per unit.

    Rows need the ``keys`` that name a label (default: ``unit``, ``operator``, ``anchor``), ``seed_sd``,
    ``n_seeds``, ``parent_score_a``/``_b``; a label averaging ``T`` tasks gets the tasks' :func:`seed_variance`
    summed over ``T²`` (rows of both orders of a symmetric merge count once). Without the seed columns every
    variance is 0.
    """
    keys = list(keys)
    if not {"seed_sd", "n_seeds", "parent_score_a", "parent_score_b"} <= set(rows.columns):
        return rows[keys].drop_duplicates().assign(seed_variance=0.0)
    once = rows.drop_duplicates([*keys, "task"])
    best = once[["parent_score_a", "parent_score_b"]].max(axis=1)
    variance = [
        seed_variance(sd, int(n), parent) if pd.notna(sd) else 0.0
        for sd, n, parent in zip(once["seed_sd"], once["n_seeds"], best, strict=True)
    ]
    grouped = once[keys].assign(seed_variance=variance).groupby(keys, sort=False)["seed_variance"]
    return (grouped.sum() / grouped.size() ** 2).rename("seed_variance").reset_index()


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test of two 0/1 outcomes on the same items: ``only_x`` items only x gets right, ``only_y``
    only y; ``p_value`` is the two-sided exact binomial test of ``only_x`` against ``only_x + only_y`` at 1/2."""

    only_x: int
    only_y: int
    p_value: float


def mcnemar(x: np.ndarray | pd.Series, y: np.ndarray | pd.Series) -> McNemar:
    """McNemar's exact test on paired 0/1 outcomes.

    Raises
    ------
    ValueError
        If the arrays differ in length or hold anything but 0 and 1.

    Examples
    --------
    >>> mcnemar([1, 1, 1, 0, 0], [0, 0, 0, 0, 1])
    McNemar(only_x=3, only_y=1, p_value=0.625)
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape:
        raise ValueError(f"paired outcomes must have the same length, got {len(xs)} and {len(ys)}")
    if not (np.isin(xs, (0.0, 1.0)).all() and np.isin(ys, (0.0, 1.0)).all()):
        raise ValueError("McNemar's test takes 0/1 outcomes")
    only_x, only_y = int(((xs == 1) & (ys == 0)).sum()), int(((xs == 0) & (ys == 1)).sum())
    discordant = only_x + only_y
    # the binomial at 1/2 is symmetric: two-sided = twice the smaller tail
    tail = sum(math.comb(discordant, k) for k in range(min(only_x, only_y) + 1)) / 2**discordant
    p_value = min(1.0, 2 * tail)
    return McNemar(only_x=only_x, only_y=only_y, p_value=p_value)


def label_mcnemar(x: pd.DataFrame, y: pd.DataFrame, *, value: str = "value") -> McNemar | None:
    """McNemar's test of two labels where it fits: one task, both labels' items 0 or one common positive value (a
    0/1 metric over the better parent's), matched on the item keys; None otherwise (several tasks, a continuous
    or partly-averaged metric such as a randomised operator's mean over seeds)."""
    if x["task"].nunique() != 1 or y["task"].nunique() != 1:
        return None
    joined = x[[*ITEM_KEY, value]].merge(y[[*ITEM_KEY, value]], on=ITEM_KEY, suffixes=("_x", "_y"), validate="1:1")
    levels = set(np.unique(joined[[f"{value}_x", f"{value}_y"]].to_numpy(float))) - {0.0}
    if len(joined) != len(x) or len(levels) > 1 or any(math.isnan(level) for level in levels):
        return None
    return mcnemar(joined[f"{value}_x"] > 0, joined[f"{value}_y"] > 0)


def seed_variance(seed_sd: float | None, n_seeds: int, best_parent: float | None) -> float:
    """The variance a label's seed spread adds to its mean: ``(seed_sd / best_parent)² / n_seeds`` (0 without one:
    a deterministic operator, or one seed whose spread was not pooled from other pairs)."""
    if seed_sd is None or not best_parent or math.isnan(seed_sd):
        return 0.0
    return (seed_sd / best_parent) ** 2 / n_seeds


def item_bootstrap_means(matrix: np.ndarray, *, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap means of several models' scores on the same items, resampling items once for all of them.

    Parameters
    ----------
    matrix : ndarray of shape (n_models, n_items)
        Per-item outcomes of each model, columns aligned on the items.
    n_boot : int
        Draws.
    rng : numpy.random.Generator
        Source of the item draws.

    Returns
    -------
    ndarray of shape (n_boot, n_models)
        Each draw's mean per model; the models share every draw's items, so differences stay paired.
    """
    n_items = matrix.shape[1]
    counts = np.stack([np.bincount(rng.integers(0, n_items, n_items), minlength=n_items) for _ in range(n_boot)])
    return counts @ matrix.T / n_items


__all__ = [
    "McNemar",
    "PairedDifference",
    "UnitItems",
    "anchors_of_rows",
    "difference_of",
    "item_bootstrap_means",
    "label_mcnemar",
    "label_seed_variance",
    "mcnemar",
    "paired_difference",
    "seed_variance",
    "task_mean",
    "unit_items",
]
