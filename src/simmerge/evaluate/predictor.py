"""The SimMerge predictor: (pair features on task t, operator) → normalised score of the merge on t.

Every model family is a scikit-learn pipeline that imputes and standardises the features and one-hot encodes the
operator inside the pipeline, so cross-validation never leaks scaling statistics from a test fold. The family is
chosen by grouped cross-validation (:func:`choose_family`) on how well its choices score, not only on its
squared error: what SimMerge is judged on is the merge it picks. Fitted predictors are saved with skops (no pickle)
together with the feature list, the operator list and the library versions, and :func:`load_predictor` refuses a
file whose lists or versions do not match the caller's.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

log = logging.getLogger(__name__)

TARGET = "normalised"
FAMILIES = ("ridge", "per_operator_ridge", "hgb", "forest", "mlp")
# Versions that must match between the process that saved a predictor and the one that loads it.
VERSIONED_PACKAGES = ("scikit-learn", "skops", "numpy")


class OperatorInteractions(TransformerMixin, BaseEstimator):
    """Append features × one-hot(operator) products: a linear model on them is one linear model per operator.

    Input: the preprocessed matrix whose last ``n_operators`` columns are the operator one-hot.
    """

    def __init__(self, n_operators: int = 1):
        self.n_operators = n_operators

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's argument names
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):  # noqa: N803
        X = np.asarray(X, dtype=float)
        features, onehot = X[:, : -self.n_operators], X[:, -self.n_operators :]
        products = (features[:, :, None] * onehot[:, None, :]).reshape(len(X), -1)
        return np.hstack([X, products])


# The types a fitted predictor of any family holds beyond skops' default trusted set (measured with
# skops.io.get_untrusted_types on each family). Only these are trusted on load: trusting whole packages
# (sklearn.*, numpy.*, builtins.*) would also trust any callable in them that a crafted file names, such as
# builtins.eval.
TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        f"{OperatorInteractions.__module__}.{OperatorInteractions.__qualname__}",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.tree._tree.Tree",
    }
)


def build_model(family: str, feature_columns: Sequence[str], operators: Sequence[str], *, seed: int) -> Pipeline:
    """An unfitted pipeline of one model family over ``feature_columns`` + the ``operator`` column.

    Features: median imputation (features that are undefined on a catalog, e.g. mid-layer ones of a 2-layer
    model, become constant), then standardisation. Operator: one-hot over the given operator list (an operator
    unseen in training is all zeros).
    """
    numeric = Pipeline(
        [("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("scale", StandardScaler())]
    )
    prepare = ColumnTransformer(
        [
            ("features", numeric, list(feature_columns)),
            (
                "operator",
                OneHotEncoder(categories=[list(operators)], handle_unknown="ignore", sparse_output=False),
                ["operator"],
            ),
        ],
        sparse_threshold=0.0,
    )
    alphas = np.logspace(-3, 3, 13)
    steps: list[tuple[str, Any]] = [("prepare", prepare)]
    if family == "ridge":
        steps.append(("model", RidgeCV(alphas=alphas)))
    elif family == "per_operator_ridge":
        steps += [("interact", OperatorInteractions(len(operators))), ("model", RidgeCV(alphas=alphas))]
    elif family == "hgb":
        steps.append(
            (
                "model",
                HistGradientBoostingRegressor(
                    max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=5, random_state=seed
                ),
            )
        )
    elif family == "forest":
        steps.append(
            ("model", RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1))
        )
    elif family == "mlp":
        steps.append(("model", MLPRegressor(hidden_layer_sizes=(64,), alpha=1e-2, max_iter=3000, random_state=seed)))
    else:
        raise ValueError(f"unknown predictor family {family!r}; choose from {', '.join(FAMILIES)}")
    return Pipeline(steps)


def training_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """Label rows with a defined target (a task whose better parent scores 0 has no normalised score)."""
    return labels[labels[TARGET].notna()].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# Grouped folds


def checkpoint_folds(labels: pd.DataFrame) -> Iterator[tuple[str, np.ndarray]]:
    """Leave-one-checkpoint-out: every ordered pair that contains the held-out expert is in the test fold."""
    experts = list(dict.fromkeys([*labels["a"], *labels["b"]]))
    for expert in experts:
        yield expert, ((labels["a"] == expert) | (labels["b"] == expert)).to_numpy()


def task_folds(labels: pd.DataFrame) -> Iterator[tuple[str, np.ndarray]]:
    """Leave-one-task-out: every row of the held-out task is in the test fold."""
    for task in dict.fromkeys(labels["task"]):
        yield task, (labels["task"] == task).to_numpy()


FOLDS: dict[str, Callable[[pd.DataFrame], Iterator[tuple[str, np.ndarray]]]] = {
    "checkpoint": checkpoint_folds,
    "task": task_folds,
}


# --------------------------------------------------------------------------------------------------------------
# Family choice


def cv_predictions(
    rows: pd.DataFrame,
    family: str,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    seed: int,
    protocol: str = "checkpoint",
) -> pd.Series:
    """Out-of-fold predictions of one family under a grouped protocol; NaN where a fold had nothing to train on."""
    predicted = pd.Series(np.nan, index=rows.index)
    for _, test in FOLDS[protocol](rows):
        train = ~test
        if not train.any() or not test.any():
            continue
        model = build_model(family, feature_columns, operators, seed=seed)
        model.fit(rows.loc[train, [*feature_columns, "operator"]], rows.loc[train, TARGET])
        predicted[test] = model.predict(rows.loc[test, [*feature_columns, "operator"]])
    return predicted


def choose_family(
    rows: pd.DataFrame,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    seed: int,
    families: Sequence[str] = FAMILIES,
    protocol: str = "checkpoint",
) -> tuple[str, pd.DataFrame]:
    """Pick the family whose grouped-CV choices score best (ties: lower RMSE, then list order).

    ``protocol`` names the grouping (:data:`FOLDS`): held-out checkpoints (choices per unordered pair) or
    held-out tasks (choices per pair and task).

    Returns
    -------
    (str, pandas.DataFrame)
        The chosen family and one row per family: ``family``, ``selected_score`` (mean actual score of the
        candidates it would choose per unordered pair), ``rmse`` and ``spearman`` of its out-of-fold predictions.
    """
    from simmerge.evaluate.selection import candidate_table, choose

    scores = []
    for family in families:
        predicted = cv_predictions(rows, family, feature_columns, operators, seed=seed, protocol=protocol)
        valid = predicted.notna()
        residual = predicted[valid] - rows.loc[valid, TARGET]
        candidates = candidate_table(rows.loc[valid].assign(predicted=predicted[valid]), per_task=protocol == "task")
        chosen = choose(candidates)
        scores.append(
            {
                "family": family,
                "selected_score": float(chosen["actual"].mean()) if len(chosen) else np.nan,
                "rmse": float(np.sqrt(np.mean(residual**2))) if len(residual) else np.nan,
                "spearman": float(pd.Series(predicted[valid]).corr(rows.loc[valid, TARGET], method="spearman"))
                if valid.sum() > 2
                else np.nan,
            }
        )
    table = pd.DataFrame(scores)
    ranked = table.assign(order=range(len(table))).sort_values(
        ["selected_score", "rmse", "order"], ascending=[False, True, True], na_position="last"
    )
    return str(ranked.iloc[0]["family"]), table


# --------------------------------------------------------------------------------------------------------------
# The fitted predictor


@dataclass
class Predictor:
    """A fitted model, the fold models that give its uncertainty, and what it was fitted on."""

    family: str
    model: Pipeline
    fold_models: list[Pipeline]
    feature_columns: list[str]
    operators: list[str]
    versions: dict[str, str] = field(default_factory=dict)

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        """``predicted`` (the full model) and ``uncertainty`` (standard deviation over the fold models)."""
        missing = [c for c in [*self.feature_columns, "operator"] if c not in rows.columns]
        if missing:
            raise KeyError(f"rows lack the predictor's columns: {', '.join(missing)}")
        unknown = sorted(set(rows["operator"]) - set(self.operators))
        if unknown:
            raise ValueError(
                f"operators {unknown} were not in the predictor's training grid ({', '.join(self.operators)}); "
                "refit the predictor with them"
            )
        X = rows[[*self.feature_columns, "operator"]]  # noqa: N806
        predicted = self.model.predict(X)
        spread = (
            np.std([model.predict(X) for model in self.fold_models], axis=0)
            if len(self.fold_models) > 1
            else np.full(len(rows), np.nan)
        )
        return pd.DataFrame({"predicted": predicted, "uncertainty": spread}, index=rows.index)


def fit_predictor(
    rows: pd.DataFrame,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    family: str,
    seed: int,
) -> Predictor:
    """Fit ``family`` on every row, plus one model per leave-one-checkpoint-out fold for the uncertainty."""
    columns = [*feature_columns, "operator"]
    model = build_model(family, feature_columns, operators, seed=seed).fit(rows[columns], rows[TARGET])
    fold_models = []
    for _, test in checkpoint_folds(rows):
        if (~test).any():
            fold = build_model(family, feature_columns, operators, seed=seed)
            fold_models.append(fold.fit(rows.loc[~test, columns], rows.loc[~test, TARGET]))
    return Predictor(family, model, fold_models, list(feature_columns), list(operators), library_versions())


def library_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in VERSIONED_PACKAGES}


def save_predictor(predictor: Predictor, path: str | os.PathLike) -> None:
    """Write the predictor as a skops file (atomically); its lists and versions go in the same file."""
    import skops.io as sio

    from simmerge.core.io import atomic_path

    payload = {
        "family": predictor.family,
        "model": predictor.model,
        "fold_models": predictor.fold_models,
        "meta": json.dumps(
            {
                "feature_columns": predictor.feature_columns,
                "operators": predictor.operators,
                "versions": predictor.versions,
            }
        ),
    }
    with atomic_path(path) as tmp:
        sio.dump(payload, tmp)


def load_predictor(
    path: str | os.PathLike,
    *,
    feature_columns: Sequence[str] | None = None,
    operators: Sequence[str] | None = None,
) -> Predictor:
    """Load a skops predictor, trusting only the types it is made of; refuse a mismatch with a clear message.

    Raises
    ------
    ValueError
        If the file holds a type outside :data:`TRUSTED_TYPES` (checked before anything is loaded), was fitted
        on other features or operators than the caller expects, or with other versions of scikit-learn / skops /
        numpy than the ones installed (a skops file is not portable across them).
    """
    import skops.io as sio

    path = Path(path)
    untrusted = sio.get_untrusted_types(file=path)
    unexpected = sorted(set(untrusted) - TRUSTED_TYPES)
    if unexpected:
        raise ValueError(
            f"{path}: refusing to load types that a SimMerge predictor does not contain: {unexpected}; refit the "
            "predictor (rule predictor) rather than loading a file from elsewhere"
        )
    payload = sio.load(path, trusted=list(untrusted))
    meta = json.loads(payload["meta"])
    problems = []
    if feature_columns is not None and list(feature_columns) != meta["feature_columns"]:
        problems.append(
            f"features differ (file: {len(meta['feature_columns'])}, expected: {len(feature_columns)}; first "
            f"difference: {_first_difference(meta['feature_columns'], list(feature_columns))})"
        )
    if operators is not None and list(operators) != meta["operators"]:
        problems.append(f"operators differ (file: {meta['operators']}, expected: {list(operators)})")
    installed = library_versions()
    for name, version in meta["versions"].items():
        if installed.get(name) != version:
            problems.append(f"{name} {version} in the file, {installed.get(name)} installed")
    if problems:
        raise ValueError(f"{path}: predictor does not match this run: " + "; ".join(problems) + "; refit it")
    return Predictor(
        payload["family"],
        payload["model"],
        list(payload["fold_models"]),
        meta["feature_columns"],
        meta["operators"],
        meta["versions"],
    )


def _first_difference(left: Sequence[str], right: Sequence[str]) -> str:
    for index, (x, y) in enumerate(zip(left, right, strict=False)):
        if x != y:
            return f"position {index}: {x!r} vs {y!r}"
    return f"lengths {len(left)} vs {len(right)}"


__all__ = [
    "FAMILIES",
    "OperatorInteractions",
    "Predictor",
    "TRUSTED_TYPES",
    "build_model",
    "checkpoint_folds",
    "choose_family",
    "cv_predictions",
    "fit_predictor",
    "load_predictor",
    "save_predictor",
    "task_folds",
    "training_rows",
]
