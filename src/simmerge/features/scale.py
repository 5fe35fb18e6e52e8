"""Which features carry the model's scale, and feature sets for predictors that move between catalogs.

A predictor trained on one catalog reads the same feature columns on another (``simmerge transfer``). By their
units, most features look dimensionless — cosines, sign agreement and Jaccard overlaps, the share of probe positions
whose top token agrees, Jensen–Shannon divergence (bounded by ln 2), ratios of norms and of drifts, norms relative
to the base's — and the Kullback–Leibler features in nats do not (:data:`MODEL_SCALED`): KL grows with the vocabulary
and with how sharp the models are. :func:`scale_audit` measures instead of assuming: between the tiny smoke catalog
and the SmolLM2 default catalog the KL medians stayed within 1.2-1.7x (two tail percentiles moved), while hidden-
state and weight cosines, relative task-vector norms and weight distances moved by up to 33x, since those catalogs
differ in depth, width and how hard their experts were trained (docs/feature-scale.md). So three feature sets
(``predictor.transfer_features``, ``simmerge transfer --features``):

- ``all``: the source's fitted predictor as it is;
- ``dimensionless``: its family fitted again without the KL features in nats (what the units suggest);
- ``ranked``: every feature replaced by its percentile rank among the run's own pairs and tasks, in the source
  (for fitting) and in the target (for choosing) — scale-free by construction, whatever moves, at the price of
  absolute levels; it reads no label of either run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from simmerge.features.definitions import feature_names, get_feature


def model_scaled(name: str) -> bool:
    """Whether a feature is a KL divergence in nats (its scale depends on the model's vocabulary and sharpness)."""
    return name.startswith(("kl_", "drift_kl_"))


MODEL_SCALED = tuple(name for name in feature_names() if model_scaled(name))

FEATURE_SETS = ("all", "dimensionless", "ranked")


def dimensionless_features() -> list[str]:
    """Every registered feature but the model-scaled ones, in column order."""
    return [name for name in feature_names() if not model_scaled(name)]


def feature_set(name: str) -> list[str]:
    """The columns of a named feature set (:data:`FEATURE_SETS`); ``ranked`` keeps every column, transformed by
    :func:`ranked_features`."""
    if name in ("all", "ranked"):
        return feature_names()
    if name == "dimensionless":
        return dimensionless_features()
    raise ValueError(f"unknown feature set {name!r}; choose from {', '.join(FEATURE_SETS)}")


def ranked_features(labels: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The labels with each feature column replaced by its percentile rank (in (0, 1], ties averaged) among the
    run's distinct (ordered pair, task) rows: every operator's row of a pair and task gets the same rank."""
    keys = ["a", "b", "task"]
    distinct = labels.drop_duplicates(keys)[[*keys, *columns]]
    ranks = distinct[keys].assign(**{column: distinct[column].rank(method="average", pct=True) for column in columns})
    return labels.drop(columns=list(columns)).merge(ranks, on=keys, how="left")[labels.columns]


def transfer_inputs(
    source: pd.DataFrame, target: pd.DataFrame, name: str
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Both runs' labels and the feature columns a transferred predictor is fitted and applied on, for a named
    feature set (:data:`FEATURE_SETS`); ``ranked`` ranks each run's features among its own rows."""
    columns = feature_set(name)
    if name == "ranked":
        present = [column for column in columns if column in source and column in target]
        return ranked_features(source, present), ranked_features(target, present), present
    return source, target, columns


def scale_audit(runs: Mapping[str, pd.DataFrame], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """How each feature's distribution differs between runs (their labels tables, one row per pair and task).

    Parameters
    ----------
    runs : mapping of str to pandas.DataFrame
        Run name → its labels (or pair features); each ordered pair and task counted once.
    columns : sequence of str, optional
        Features to audit (default: every registered one present in all runs).

    Returns
    -------
    pandas.DataFrame
        One row per feature: ``feature``, ``kind``, ``model_scaled`` (:func:`model_scaled`), per run
        ``<run>_median`` and ``<run>_iqr``; ``median_ratio`` (largest over smallest absolute median across runs;
        inf when one is 0 and another is not), ``overlap`` (the share of the runs' pooled interquartile span
        that every run's interquartile range covers: 0 when two runs' middle halves do not meet) and ``moves``
        (``median_ratio`` above 3 or no overlap: the feature's scale moved between catalogs).
    """
    tables = {
        name: table.drop_duplicates(["a", "b", "task"]) if {"a", "b", "task"} <= set(table) else table
        for name, table in runs.items()
    }
    if columns is None:
        columns = [name for name in feature_names() if all(name in table for table in tables.values())]
    rows = []
    for column in columns:
        row = {"feature": column, "kind": get_feature(column).kind, "model_scaled": model_scaled(column)}
        medians, quartiles = [], []
        for name, table in tables.items():
            values = pd.to_numeric(table[column], errors="coerce").dropna().to_numpy(float)
            q1, median, q3 = np.percentile(values, [25, 50, 75]) if len(values) else (np.nan,) * 3
            row[f"{name}_median"], row[f"{name}_iqr"] = median, q3 - q1
            medians.append(abs(median))
            quartiles.append((q1, q3))
        low, high = min(medians), max(medians)
        row["median_ratio"] = (
            (high / low if low > 0 else (np.inf if high > 0 else 1.0)) if not np.isnan(low) else np.nan
        )
        inner = max(q[0] for q in quartiles), min(q[1] for q in quartiles)
        outer = min(q[0] for q in quartiles), max(q[1] for q in quartiles)
        span = outer[1] - outer[0]
        row["overlap"] = max(0.0, inner[1] - inner[0]) / span if span > 0 else 1.0
        row["moves"] = bool(row["median_ratio"] > 3 or row["overlap"] == 0)
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = [
    "FEATURE_SETS",
    "MODEL_SCALED",
    "dimensionless_features",
    "feature_set",
    "model_scaled",
    "ranked_features",
    "scale_audit",
    "transfer_inputs",
]
