"""Which features carry the model's scale, and a feature set that does not: for predictors that move between catalogs.

A predictor trained on one catalog reads the same feature columns on another (``simmerge transfer``). Most features
are dimensionless by construction — cosines, sign agreement and Jaccard overlaps in [−1, 1] or [0, 1], the
fraction of probe positions whose top token agrees, Jensen–Shannon divergence (bounded by ln 2), ratios of norms
and of drifts, norms relative to the base's. The Kullback–Leibler features are not: KL in nats between two
next-token distributions grows with the vocabulary and with how sharp the models are, so the same relation between
two experts gives other numbers on another model family or size. :data:`MODEL_SCALED` names them;
:func:`transfer_safe_features` is every other feature, the set ``predictor.transfer_features: transfer_safe``
fits a transferred predictor on. :func:`scale_audit` measures, on two or more runs' labels, how far each feature's
distribution moves between catalogs, so that the split is checked, not assumed (``benchmarks/feature_scale.py``
writes ``docs/feature-scale.md``).
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

FEATURE_SETS = ("all", "transfer_safe")


def transfer_safe_features() -> list[str]:
    """Every registered feature but the model-scaled ones, in column order."""
    return [name for name in feature_names() if not model_scaled(name)]


def feature_set(name: str) -> list[str]:
    """The columns of a named feature set (:data:`FEATURE_SETS`)."""
    if name == "all":
        return feature_names()
    if name == "transfer_safe":
        return transfer_safe_features()
    raise ValueError(f"unknown feature set {name!r}; choose from {', '.join(FEATURE_SETS)}")


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


__all__ = ["FEATURE_SETS", "MODEL_SCALED", "feature_set", "model_scaled", "scale_audit", "transfer_safe_features"]
