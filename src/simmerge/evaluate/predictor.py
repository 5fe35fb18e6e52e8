"""The SimMerge predictor: (pair features on task t, operator) → normalised score of the merge on t.

:class:`SimMergePredictor` is a scikit-learn regressor. Every model family is a pipeline that imputes and
standardises the features and one-hot encodes the operator inside the pipeline, so cross-validation never leaks
scaling statistics from a test fold. The family is chosen by grouped cross-validation (:func:`choose_family`,
over :class:`HeldOutCheckpointSplit` or :class:`HeldOutTaskSplit`) on how well its choices score, not only on its
squared error: what SimMerge is judged on is the merge it picks. Fitted predictors are saved with skops (no
pickle) together with the library versions, and :func:`load_predictor` refuses a file whose features, operators
or versions do not match the caller's.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import BaseCrossValidator, cross_validate
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from simmerge.core.config import PREDICTOR_FAMILIES, PROTOCOLS
from simmerge.core.io import atomic_path
from simmerge.evaluate.selection import candidate_table, choose

log = logging.getLogger(__name__)

TARGET = "normalised"
OPERATOR = "operator"
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


def _pipeline(family: str, feature_columns: Sequence[str], operators: Sequence[str], random_state: Any) -> Pipeline:
    """An unfitted pipeline of one model family over ``feature_columns`` + the operator column.

    Features: median imputation (features that are undefined on a catalog, e.g. mid-layer ones of a 2-layer
    model, become constant), then standardisation. Operator: one-hot over the given operator list (an operator
    outside it is all zeros).
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
                [OPERATOR],
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
                    max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=5, random_state=random_state
                ),
            )
        )
    elif family == "forest":
        steps.append(
            ("model", RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=random_state, n_jobs=1))
        )
    elif family == "mlp":
        steps.append(
            ("model", MLPRegressor(hidden_layer_sizes=(64,), alpha=1e-2, max_iter=3000, random_state=random_state))
        )
    else:
        raise ValueError(f"unknown predictor family {family!r}; choose from {', '.join(PREDICTOR_FAMILIES)}")
    return Pipeline(steps)


# --------------------------------------------------------------------------------------------------------------
# Grouped splits


class _HeldOutSplit(BaseCrossValidator):
    """Hold out one group of rows per fold, in the order the groups first appear.

    A fold trains on the rows its :meth:`_folds` names (by default every row it does not test); a fold with nothing
    to test or nothing to train on is left out.
    """

    # Request ``groups`` for split under scikit-learn's metadata routing, as its own group splitters do.
    __metadata_request__split = {"groups": True}

    def _folds(self, groups) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Yield ``(held-out name, test mask, train mask)`` per fold."""
        raise NotImplementedError

    def _kept_folds(self, groups) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        if groups is None:
            raise ValueError(f"{type(self).__name__} needs the groups of the rows (the 'groups' argument)")
        for name, test, train in self._folds(groups):
            if test.any() and train.any():
                yield name, test, train

    def split(self, X=None, y=None, groups=None):  # noqa: N803 - scikit-learn's argument names
        """Yield ``(train indices, test indices)`` per fold."""
        for _, test, train in self._kept_folds(groups):
            yield np.flatnonzero(train), np.flatnonzero(test)

    def _iter_test_masks(self, X=None, y=None, groups=None):  # noqa: N803
        for _, test, _ in self._kept_folds(groups):
            yield test

    def get_n_splits(self, X=None, y=None, groups=None):  # noqa: N803
        """Number of folds: groups whose rows leave something to train on."""
        return sum(1 for _ in self._kept_folds(groups))

    def held_out(self, X=None, y=None, groups=None) -> list[str]:  # noqa: N803
        """The held-out group of each fold, in the order :meth:`split` yields the folds."""
        return [name for name, _, _ in self._kept_folds(groups)]


def _touches(pairs: np.ndarray, name) -> np.ndarray:
    return (pairs[:, 0] == name) | (pairs[:, 1] == name)


class HeldOutCheckpointSplit(_HeldOutSplit):
    """Leave one checkpoint (or group of near-duplicate checkpoints) out: every row that touches it is tested,
    every other row trains.

    ``groups`` is the ``(n_samples, 2)`` array of each row's two checkpoints (the ``a`` and ``b`` columns of
    the labels), or of their hold-out groups (:func:`protocol_split`). Names are held out in the order they first
    appear in the first column, then in the second; a row is in the test folds of both its names.
    """

    def _folds(self, groups) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        pairs = np.asarray(groups)
        for name in dict.fromkeys([*pairs[:, 0], *pairs[:, 1]]):
            test = _touches(pairs, name)
            yield str(name), test, ~test


class HeldOutTaskSplit(_HeldOutSplit):
    """Leave one task out: every row of the held-out task is tested; the same pairs' rows on other tasks train.

    ``groups`` is each row's task; tasks are held out in the order they first appear.
    """

    def _folds(self, groups) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        tasks = np.asarray(groups)
        for task in dict.fromkeys(tasks):
            yield str(task), tasks == task, tasks != task


class HeldOutTaskAndCheckpointSplit(_HeldOutSplit):
    """Cold start: hold out one task and one checkpoint (group) together.

    A fold tests the rows of the held-out task whose pair touches the held-out checkpoint, and trains on the rows
    of the other tasks whose pair does not touch it: no merge of a test pair is in training, on any task, and
    nothing of the task is. ``groups`` is the ``(n_samples, 3)`` array of each row's two checkpoints (or their
    hold-out groups) and its task; folds run over tasks in order of first appearance, then checkpoints as in
    :class:`HeldOutCheckpointSplit`. A row is tested in the folds of both its checkpoints.
    """

    def _folds(self, groups) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        columns = np.asarray(groups)
        pairs, tasks = columns[:, :2], columns[:, 2]
        for task in dict.fromkeys(tasks):
            for name in dict.fromkeys([*pairs[:, 0], *pairs[:, 1]]):
                touches = _touches(pairs, name)
                yield f"{name}@{task}", touches & (tasks == task), ~touches & (tasks != task)


SPLITTERS: dict[str, type[_HeldOutSplit]] = {
    "checkpoint": HeldOutCheckpointSplit,
    "task_seen_pairs": HeldOutTaskSplit,
    "cold_start": HeldOutTaskAndCheckpointSplit,
}


def protocol_split(
    protocol: str, rows: pd.DataFrame, checkpoint_groups: Mapping[str, str] | None = None
) -> tuple[_HeldOutSplit, Any]:
    """The splitter of an evaluation protocol and the ``groups`` it splits the label ``rows`` by.

    ``checkpoint_groups`` maps a checkpoint to its hold-out group (near-duplicates leave together); a checkpoint
    not in it is its own group.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    group = dict(checkpoint_groups or {})
    pairs = np.column_stack([rows[column].map(lambda name: group.get(name, name)) for column in ("a", "b")])
    if protocol == "checkpoint":
        return HeldOutCheckpointSplit(), pairs
    if protocol == "task_seen_pairs":
        return HeldOutTaskSplit(), rows["task"].to_numpy()
    return HeldOutTaskAndCheckpointSplit(), np.column_stack([pairs, rows["task"].to_numpy()])


def training_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """Label rows with a defined target (a task whose better parent scores 0 has no normalised score)."""
    return labels[labels[TARGET].notna()].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------------
# The estimator


class SimMergePredictor(RegressorMixin, BaseEstimator):
    """Predict a merge's normalised score on a task from the pair's features and the operator.

    Parameters
    ----------
    family : {"ridge", "per_operator_ridge", "hgb", "forest", "mlp"}, default="hgb"
        The model family (:data:`simmerge.core.config.PREDICTOR_FAMILIES`): ridge regression, ridge with
        feature × operator interactions, histogram gradient boosting, random forest, or an MLP.
    operators : sequence of str or None, default=None
        The operator grid, in the order of the operator one-hot. None: the operators in the training rows,
        sorted. A training row of another operator is one-hot encoded as all zeros; :meth:`predict` refuses one.
    random_state : int, RandomState instance or None, default=None
        Seed of the randomised families (hgb, forest, mlp), passed to the model as given.

    Attributes
    ----------
    model_ : sklearn.pipeline.Pipeline
        The family's pipeline fitted on every row.
    fold_models_ : list of sklearn.pipeline.Pipeline
        One pipeline per held-out checkpoint (:class:`HeldOutCheckpointSplit`) when ``fit`` was given the
        rows' checkpoints; their spread is :meth:`predict`'s ``return_std``. Empty otherwise.
    operators_ : list of str
        The operator grid the model was fitted with.
    n_features_in_ : int
        Number of input columns, the operator column included.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The input columns: the features, in the order the model sees them, and ``operator``.

    Examples
    --------
    >>> predictor = SimMergePredictor(family="ridge", random_state=0).fit(X, y, groups=labels[["a", "b"]])
    >>> predicted, spread = predictor.predict(X_new, return_std=True)
    """

    def __init__(self, family: str = "hgb", operators: Sequence[str] | None = None, random_state: Any = None):
        self.family = family
        self.operators = operators
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # the pipeline imputes missing features
        tags.input_tags.categorical = True  # the operator column
        tags.input_tags.string = True
        return tags

    def fit(self, X: pd.DataFrame, y, groups=None) -> SimMergePredictor:  # noqa: N803 - scikit-learn's names
        """Fit the family on every row, and one model per held-out checkpoint when ``groups`` is given.

        Parameters
        ----------
        X : pandas.DataFrame of shape (n_samples, n_features)
            The features and an ``operator`` column.
        y : array-like of shape (n_samples,)
            Normalised scores.
        groups : array-like of shape (n_samples, 2), optional
            Each row's two checkpoints, for the fold models behind the uncertainty.

        Returns
        -------
        SimMergePredictor
            The fitted predictor.
        """
        _check_frame(X)
        validate_data(self, X, reset=True, skip_check_array=True)
        y = np.asarray(y)
        self.operators_ = (
            sorted(map(str, X[OPERATOR].unique())) if self.operators is None else list(map(str, self.operators))
        )
        features = [column for column in X.columns if column != OPERATOR]
        model = _pipeline(self.family, features, self.operators_, self.random_state)
        self.model_ = clone(model).fit(X, y)
        self.fold_models_ = []
        if groups is not None:
            for train, _ in HeldOutCheckpointSplit().split(X, y, groups):
                self.fold_models_.append(clone(model).fit(X.iloc[train], y[train]))
        return self

    def predict(self, X: pd.DataFrame, return_std: bool = False):  # noqa: N803
        """Predicted normalised scores, and optionally their spread over the fold models.

        Parameters
        ----------
        X : pandas.DataFrame
            The columns the predictor was fitted on (:attr:`feature_names_in_`), in that order.
        return_std : bool, default=False
            Also return the standard deviation of the fold models' predictions (NaN with fewer than two).

        Returns
        -------
        ndarray of shape (n_samples,), or a tuple of two such arrays when ``return_std`` is true

        Raises
        ------
        ValueError
            If ``X`` has other columns than the fitted ones, or an operator outside :attr:`operators_`.
        """
        check_is_fitted(self)
        _check_frame(X)
        validate_data(self, X, reset=False, skip_check_array=True)
        unknown = sorted(set(X[OPERATOR]) - set(self.operators_))
        if unknown:
            raise ValueError(
                f"operators {unknown} were not in the predictor's training grid ({', '.join(self.operators_)}); "
                "refit the predictor with them"
            )
        predicted = self.model_.predict(X)
        if not return_std:
            return predicted
        spread = (
            np.std([model.predict(X) for model in self.fold_models_], axis=0)
            if len(self.fold_models_) > 1
            else np.full(len(X), np.nan)
        )
        return predicted, spread

    def select(self, X: pd.DataFrame, anchor: Sequence[str]) -> pd.DataFrame:
        """The candidates of one merge decision, best first: the first row is the operator (and order) to use.

        Parameters
        ----------
        X : pandas.DataFrame
            The input rows of one expert pair: every operator, both orders, each task of interest.
        anchor : sequence of str
            Per row, the model an order-sensitive operator keeps first (the row's ``a``), or ``""`` for a
            symmetric operator, whose rows of both orders make one candidate.

        Returns
        -------
        pandas.DataFrame
            One row per candidate, ranked by prediction (ties: operators in order of first appearance):
            ``operator``, ``anchor``, ``predicted`` (mean over the candidate's rows) and ``uncertainty``
            (mean spread over the fold models).
        """
        predicted, spread = self.predict(X, return_std=True)
        rows = pd.DataFrame(
            {"operator": X[OPERATOR].to_numpy(), "anchor": list(anchor), "predicted": predicted, "uncertainty": spread}
        )
        candidates = []
        for operator in dict.fromkeys(rows["operator"]):
            own = rows[rows["operator"] == operator]
            for name in dict.fromkeys(own["anchor"]):
                chosen = own[own["anchor"] == name]
                candidates.append(
                    {
                        "operator": operator,
                        "anchor": name,
                        "predicted": float(chosen["predicted"].mean()),
                        "uncertainty": float(chosen["uncertainty"].mean()),
                    }
                )
        ranked = pd.DataFrame(candidates).sort_values("predicted", ascending=False, kind="stable")
        return ranked.reset_index(drop=True)


def fit_predictor(
    rows: pd.DataFrame, feature_columns: Sequence[str], operators: Sequence[str], *, family: str, seed: int
) -> SimMergePredictor:
    """Fit ``family`` on label rows, with one fold model per held-out checkpoint for the uncertainty."""
    predictor = SimMergePredictor(family=family, operators=operators, random_state=seed)
    return predictor.fit(rows[[*feature_columns, OPERATOR]], rows[TARGET], groups=rows[["a", "b"]])


def _check_frame(X) -> None:  # noqa: N803
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"SimMergePredictor takes a pandas DataFrame of features and an {OPERATOR!r} column, not {type(X).__name__}"
        )
    if OPERATOR not in X.columns:
        raise ValueError(f"X has no {OPERATOR!r} column; the predictor needs the operator of every row")


# --------------------------------------------------------------------------------------------------------------
# Family choice


def selected_score(rows: pd.DataFrame, predicted, *, per_task: bool = False) -> float:
    """Mean actual score of the candidate with the highest prediction in each unit (NaN without units).

    Units and actual scores as in :func:`simmerge.evaluate.selection.candidate_table`: unordered pairs and
    their merge scores, or (``per_task``) pair × task and the normalised score.
    """
    if rows.empty:  # e.g. no fold left anything to train on, so no row has an out-of-fold prediction
        return np.nan
    chosen = choose(candidate_table(rows.assign(predicted=predicted), per_task=per_task))
    return float(chosen["actual"].mean()) if len(chosen) else np.nan


class SelectedScorer:
    """A scikit-learn scorer ``scorer(estimator, X, y)``: :func:`selected_score` of the estimator's choices on X.

    Parameters
    ----------
    rows : pandas.DataFrame
        The label rows behind X, with a unique index; X keeps their index (as the row subsets of
        :func:`sklearn.model_selection.cross_validate` and :class:`~sklearn.model_selection.GridSearchCV` do).
    per_task : bool
        Units per pair and task (leave-one-task-out) instead of per pair.
    """

    def __init__(self, rows: pd.DataFrame, *, per_task: bool = False):
        self.rows = rows
        self.per_task = per_task

    def __call__(self, estimator, X, y=None) -> float:  # noqa: N803
        return selected_score(self.rows.loc[X.index], estimator.predict(X), per_task=self.per_task)


def per_task_units(protocol: str) -> bool:
    """Whether a protocol decides per pair and task (the task protocols) rather than per pair."""
    return protocol != "checkpoint"


def cv_predictions(
    rows: pd.DataFrame,
    family: str,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    seed: int,
    protocol: str = "checkpoint",
    checkpoint_groups: Mapping[str, str] | None = None,
) -> pd.Series:
    """Out-of-fold predictions of one family under a grouped protocol; NaN where no fold tested the row.

    A row in two test folds (a pair is tested with each of its checkpoints) gets the mean of both folds'
    predictions: one decision per pair, from models that never saw it. Each fold's selected score
    (:class:`SelectedScorer`) goes to the log.
    """
    X = rows[[*feature_columns, OPERATOR]]  # noqa: N806 - scikit-learn's names
    splitter, groups = protocol_split(protocol, rows, checkpoint_groups)
    predicted = pd.Series(np.nan, index=rows.index)
    if splitter.get_n_splits(groups=groups) == 0:
        return predicted
    result = cross_validate(
        SimMergePredictor(family=family, operators=operators, random_state=seed),
        X,
        rows[TARGET],
        groups=groups,
        cv=splitter,
        scoring=SelectedScorer(rows, per_task=per_task_units(protocol)),
        return_estimator=True,
        return_indices=True,
        error_score="raise",
    )
    log.info("%s, protocol %s: selected score per fold %s", family, protocol, np.round(result["test_score"], 4))
    sums, counts = np.zeros(len(rows)), np.zeros(len(rows))
    for estimator, test in zip(result["estimator"], result["indices"]["test"], strict=True):
        sums[test] += estimator.predict(X.iloc[test])
        counts[test] += 1
    tested = counts > 0
    predicted.iloc[np.flatnonzero(tested)] = sums[tested] / counts[tested]
    return predicted


def choose_family(
    rows: pd.DataFrame,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    seed: int,
    families: Sequence[str] = PREDICTOR_FAMILIES,
    protocol: str = "checkpoint",
    checkpoint_groups: Mapping[str, str] | None = None,
) -> tuple[str, pd.DataFrame]:
    """Pick the family whose grouped-CV choices score best (ties: lower RMSE, then list order).

    ``protocol`` names the grouping (:func:`protocol_split`, with ``checkpoint_groups`` holding near-duplicates
    out together): choices per unordered pair (held-out checkpoints) or per pair and task (the task protocols).
    The scores pool the out-of-fold predictions of all folds (:func:`cv_predictions`) rather than averaging
    per-fold scores, so a fold with few units weighs no more than its units. The chosen family's score is the
    best of several, so it is optimistic; :func:`simmerge.evaluate.compare.compare` measures the choice itself
    one level out (nested).

    Returns
    -------
    (str, pandas.DataFrame)
        The chosen family and one row per family: ``family``, ``selected_score`` (:func:`selected_score` of
        the out-of-fold predictions), ``rmse`` and ``spearman`` of those predictions.
    """
    scores = []
    for family in families:
        predicted = cv_predictions(
            rows,
            family,
            feature_columns,
            operators,
            seed=seed,
            protocol=protocol,
            checkpoint_groups=checkpoint_groups,
        )
        valid = predicted.notna()
        residual = predicted[valid] - rows.loc[valid, TARGET]
        scores.append(
            {
                "family": family,
                "selected_score": selected_score(rows.loc[valid], predicted[valid], per_task=per_task_units(protocol)),
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
# Saving and loading


# The types a fitted predictor of any family holds beyond skops' default trusted set (measured with
# skops.io.get_untrusted_types on each family). Only these are trusted on load: trusting whole packages
# (sklearn.*, numpy.*, builtins.*) would also trust any callable in them that a crafted file names, such as
# builtins.eval.
def inner_family(
    rows: pd.DataFrame,
    feature_columns: Sequence[str],
    operators: Sequence[str],
    *,
    protocol: str = "checkpoint",
    seed: int,
    families: Sequence[str],
    checkpoint_groups: Mapping[str, str] | None = None,
) -> str:
    """The family grouped CV chooses inside the training rows (:func:`choose_family`); the only one when there is
    a single family (nothing to choose, nothing fitted)."""
    if len(families) == 1:
        return families[0]
    family, _ = choose_family(
        rows,
        feature_columns,
        operators,
        seed=seed,
        families=families,
        protocol=protocol,
        checkpoint_groups=checkpoint_groups,
    )
    return family


TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        f"{OperatorInteractions.__module__}.{OperatorInteractions.__qualname__}",
        f"{SimMergePredictor.__module__}.{SimMergePredictor.__qualname__}",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.tree._tree.Tree",
    }
)


def library_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in VERSIONED_PACKAGES}


def save_predictor(predictor: SimMergePredictor, path: str | os.PathLike) -> None:
    """Write the fitted predictor as a skops file (atomically), with the library versions in the same file."""
    import skops.io as sio  # deferred on purpose: importing it walks scikit-learn and pulls in torch (seconds)

    check_is_fitted(predictor)
    payload = {"predictor": predictor, "meta": json.dumps({"versions": library_versions()})}
    with atomic_path(path) as tmp:
        sio.dump(payload, tmp)


def load_predictor(
    path: str | os.PathLike,
    *,
    feature_columns: Sequence[str] | None = None,
    operators: Sequence[str] | None = None,
) -> SimMergePredictor:
    """Load a skops predictor, trusting only the types it is made of; refuse a mismatch with a clear message.

    Raises
    ------
    ValueError
        If the file holds a type outside :data:`TRUSTED_TYPES` (checked before anything is loaded), holds no
        :class:`SimMergePredictor`, was fitted on other features or operators than the caller expects, or with
        other versions of scikit-learn / skops / numpy than the ones installed (a skops file is not portable
        across them).
    """
    import skops.io as sio  # deferred on purpose: importing it walks scikit-learn and pulls in torch (seconds)

    path = Path(path)
    untrusted = sio.get_untrusted_types(file=path)
    unexpected = sorted(set(untrusted) - TRUSTED_TYPES)
    if unexpected:
        raise ValueError(
            f"{path}: refusing to load types that a SimMerge predictor does not contain: {unexpected}; refit the "
            "predictor (rule predictor) rather than loading a file from elsewhere"
        )
    payload = sio.load(path, trusted=list(untrusted))
    predictor = payload.get("predictor") if isinstance(payload, dict) else None
    if not isinstance(predictor, SimMergePredictor):
        raise ValueError(f"{path}: holds no SimMergePredictor (saved by another version of SimMerge?); refit it")
    problems = []
    fitted_features = [column for column in predictor.feature_names_in_ if column != OPERATOR]
    if feature_columns is not None and list(feature_columns) != fitted_features:
        problems.append(
            f"features differ (file: {len(fitted_features)}, expected: {len(feature_columns)}; first "
            f"difference: {_first_difference(fitted_features, list(feature_columns))})"
        )
    if operators is not None and list(operators) != predictor.operators_:
        problems.append(f"operators differ (file: {predictor.operators_}, expected: {list(operators)})")
    installed = library_versions()
    for name, version in json.loads(payload["meta"])["versions"].items():
        if installed.get(name) != version:
            problems.append(f"{name} {version} in the file, {installed.get(name)} installed")
    if problems:
        raise ValueError(f"{path}: predictor does not match this run: " + "; ".join(problems) + "; refit it")
    return predictor


def _first_difference(left: Sequence[str], right: Sequence[str]) -> str:
    for index, (x, y) in enumerate(zip(left, right, strict=False)):
        if x != y:
            return f"position {index}: {x!r} vs {y!r}"
    return f"lengths {len(left)} vs {len(right)}"


__all__ = [
    "HeldOutCheckpointSplit",
    "HeldOutTaskAndCheckpointSplit",
    "HeldOutTaskSplit",
    "OperatorInteractions",
    "SPLITTERS",
    "SelectedScorer",
    "SimMergePredictor",
    "TRUSTED_TYPES",
    "choose_family",
    "cv_predictions",
    "fit_predictor",
    "inner_family",
    "library_versions",
    "load_predictor",
    "per_task_units",
    "protocol_split",
    "save_predictor",
    "selected_score",
    "training_rows",
]
