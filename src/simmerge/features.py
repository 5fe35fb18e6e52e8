"""Pair features: how similar two checkpoints are, from their probe-pass summaries alone.

Rule ``pair_features`` calls :func:`pair_features` on the ``features/models/<name>.npz`` files of ``a``, ``b`` and
the base (``docs/model-summary-format.md``) and writes one row per task: the feature vector ``x(a, b, t)`` of the
ordered pair. No model is loaded, so a pair costs the same whatever the model size; only the stored arrays are
read.

Every feature is a pure function of the three summaries, registered by decorator (STYLE.md §2, §5)::

    @feature("js_mean", kind="functional", doc="Mean over positions of the Jensen–Shannon divergence ...")
    def js_mean(pair: PairTask) -> float: ...

Functions that naturally give several statistics register them together with :func:`feature_group`. The
registered names *are* the parquet columns; :func:`feature_names` lists them by kind (functional, drift,
structural), and within a kind in registration (source) order. ``docs/features.md`` is generated from the
registry by :func:`write_feature_doc`.

Estimators
----------
*Next-token divergences.* When both models stored the full distribution of a task (``logp``), KL and JS are
exact (:func:`kl_exact`, :func:`js_exact`). Otherwise they are the exact divergences of two distributions
rebuilt from the two top-k lists (:func:`kl_topk`, :func:`js_topk`): see :func:`kl_topk` for the definition and
the measured error (mean KL biased low by under 10% when the top-k lists hold >= 95% of the mass).

*Cosines of hidden states and attention maps.* Each probe's states (or maps) are flattened and compared per
layer (and head); the cosine's denominators are the norms of the same stored vectors as its numerator. In
projected mode this self-normalised estimate is far more accurate than dividing the projected inner product
by the exact norms (``hidden_norm``, ``attention_norm``): for cosines near 1, the regime of fine-tunes of one
base, the projection errors of numerator and denominator cancel (measured standard deviation 0.004 against
0.026 at cosine 0.9, and 0.0004 against 0.024 at 0.99, with D = 256). It also gives exactly 1 for identical
models and stays in ``[-1, 1]``. In full mode the two denominators differ only by fp16 rounding.
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from simmerge.io import write_text

FeatureKind = Literal["functional", "drift", "structural"]
KINDS: tuple[FeatureKind, ...] = ("functional", "drift", "structural")
"""Feature kinds, in the order their columns appear."""

ID_COLUMNS = ("a", "b", "task")
"""Leading columns of a pair-features table, before the features."""

QUANTILES = {"median": 0.5, "p10": 0.10, "p25": 0.25, "p75": 0.75, "p90": 0.90}
"""Quantiles of the per-position KL kept besides the mean (linear interpolation, numpy's default)."""

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# Per-row chunk of the exact [N, V] divergences, so float64 copies stay near 64 MB at V = 50k.
_EXACT_CHUNK = 128
# A top-k list whose probabilities sum to 1 (float32 rounding, or k = V) leaves no residual; a tiny floor keeps
# the "rest" cells of both models positive, so the logs stay finite and contribute ~0.
_RESIDUAL_FLOOR = 1e-12
# Filled probabilities may take at most this share of a model's residual, so the rest bucket keeps some mass.
_FILL_CAP = 0.5


# ----------------------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Feature:
    """One registered feature: a parquet column of the pair-features table.

    Attributes
    ----------
    name : str
        Column name (snake_case).
    kind : {"functional", "drift", "structural"}
        Probe-based similarity of a and b, drift of each from the base, or weight-based.
    definition : str
        One or two sentences saying exactly what the value is (rendered in ``docs/features.md``).
    group : str
        Qualified name of the function that computes it (several features may share one).
    """

    name: str
    kind: FeatureKind
    definition: str
    group: str


@dataclass(frozen=True)
class _Group:
    """A registered function and the names it returns (one name: it returns a float)."""

    function: Callable[[Any], Any]
    names: tuple[str, ...]
    single: bool


class FeatureRegistry:
    """Registered features, in the order of :data:`KINDS`, then registration order.

    A name is registered once: registering it again raises, whatever the function. Looking up an unknown name
    raises a ``KeyError`` that lists the known ones.

    Examples
    --------
    >>> registry = FeatureRegistry()
    >>> @registry.feature("answer", kind="functional", doc="Always 42.")
    ... def answer(pair):
    ...     return 42.0
    >>> registry.names()
    ['answer']
    """

    def __init__(self) -> None:
        self._features: dict[str, Feature] = {}
        self._groups: list[_Group] = []

    # -- registration ------------------------------------------------------------------------------------

    def feature(self, name: str, *, kind: FeatureKind, doc: str) -> Callable[[Callable], Callable]:
        """Decorator registering a function ``f(pair: PairTask) -> float`` as the feature ``name``.

        Parameters
        ----------
        name : str
            Column name: lower snake_case, not ``a``, ``b`` or ``task``, not yet registered.
        kind : {"functional", "drift", "structural"}
        doc : str
            The feature's definition.

        Raises
        ------
        ValueError
            If the name is invalid or taken, the kind unknown, or the definition empty.
        TypeError
            If the function does not take exactly one required argument (the :class:`PairTask`).
        """
        return self._decorator({name: doc}, kind=kind, single=True)

    def feature_group(self, docs: Mapping[str, str], *, kind: FeatureKind) -> Callable[[Callable], Callable]:
        """Decorator registering ``f(pair: PairTask) -> Mapping[str, float]`` as several features.

        The function is called once per (pair, task) and must return exactly the names of ``docs``.

        Parameters
        ----------
        docs : mapping of str to str
            Feature name → definition, in column order.
        kind : {"functional", "drift", "structural"}

        Raises
        ------
        ValueError, TypeError
            As :meth:`feature`, for any of the names.
        """
        return self._decorator(dict(docs), kind=kind, single=False)

    def _decorator(self, docs: dict[str, str], *, kind: FeatureKind, single: bool) -> Callable[[Callable], Callable]:
        if kind not in KINDS:
            raise ValueError(f"feature kind must be one of {', '.join(KINDS)}; got {kind!r}")
        if not docs:
            raise ValueError("a feature group needs at least one name")
        for name, definition in docs.items():
            if not isinstance(name, str) or not _NAME_RE.match(name) or name in ID_COLUMNS:
                raise ValueError(
                    f"feature name {name!r} must be lower snake_case and not one of {', '.join(ID_COLUMNS)}"
                )
            if name in self._features:
                raise ValueError(f"feature {name!r} is already registered (by {self._features[name].group})")
            if not definition or not definition.strip():
                raise ValueError(f"feature {name!r} needs a definition (doc=...)")

        def register(function: Callable) -> Callable:
            _check_signature(function)
            group = f"{function.__module__}.{function.__qualname__}"
            # Check every name again at decoration time and only then insert, so a failure registers nothing.
            taken = [name for name in docs if name in self._features]
            if taken:
                raise ValueError(f"feature {taken[0]!r} is already registered (by {self._features[taken[0]].group})")
            for name, definition in docs.items():
                self._features[name] = Feature(name, kind, " ".join(definition.split()), group)
            self._groups.append(_Group(function, tuple(docs), single))
            return function

        return register

    # -- lookup ------------------------------------------------------------------------------------------

    def get(self, name: str) -> Feature:
        """The feature called ``name``.

        Raises
        ------
        KeyError
            If no such feature is registered; the message lists the registered names.
        """
        try:
            return self._features[name]
        except KeyError:
            raise KeyError(f"unknown feature {name!r}; known features: {', '.join(self.names())}") from None

    def names(self, kind: FeatureKind | None = None) -> list[str]:
        """Registered names (all, or of one kind), in column order: by kind as in :data:`KINDS`, then
        registration order."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"feature kind must be one of {', '.join(KINDS)}; got {kind!r}")
        kinds = KINDS if kind is None else (kind,)
        return [f.name for k in kinds for f in self._features.values() if f.kind == k]

    def table(self) -> list[dict[str, str]]:
        """``[{"name", "kind", "definition"}]`` in column order."""
        return [
            {"name": f.name, "kind": f.kind, "definition": f.definition}
            for f in (self._features[n] for n in self.names())
        ]

    def __contains__(self, name: object) -> bool:
        return name in self._features

    def __iter__(self) -> Iterator[Feature]:
        return (self._features[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._features)

    # -- evaluation --------------------------------------------------------------------------------------

    def compute(self, pair: PairTask) -> dict[str, float]:
        """Every registered feature of one (pair, task), as float64-valued Python floats in column order.

        Raises
        ------
        ValueError
            If a group function returns other names than it registered.
        """
        values: dict[str, float] = {}
        for group in self._groups:
            result = group.function(pair)
            if group.single:
                result = {group.names[0]: result}
            if set(result) != set(group.names):
                raise ValueError(
                    f"{group.function.__qualname__} returned {sorted(result)} but registered {sorted(group.names)}"
                )
            values.update({name: float(np.float64(result[name])) for name in group.names})
        return {name: values[name] for name in self.names()}


def _check_signature(function: Callable) -> None:
    """Fail at decoration time, as mergekit does, when a feature function cannot take the pair."""
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        raise TypeError(f"feature function {function!r} has no inspectable signature") from None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(positional) < 1 or len(required) != 1 or required[0] is not positional[0]:
        raise TypeError(
            f"feature function {function.__qualname__} must take exactly one required argument, "
            "the PairTask (e.g. `def f(pair: PairTask) -> float`)"
        )


REGISTRY = FeatureRegistry()
"""The features of :func:`pair_features`."""

feature = REGISTRY.feature
feature_group = REGISTRY.feature_group


def feature_names(kind: FeatureKind | None = None) -> list[str]:
    """Column names of the features (all, or of one kind), in column order (see :meth:`FeatureRegistry.names`)."""
    return REGISTRY.names(kind)


def feature_table() -> list[dict[str, str]]:
    """``[{"name", "kind", "definition"}]`` of every registered feature, in column order."""
    return REGISTRY.table()


def get_feature(name: str) -> Feature:
    """The registered feature ``name``; ``KeyError`` listing the known names if there is none."""
    return REGISTRY.get(name)


# ----------------------------------------------------------------------------------------------------------
# Next-token divergences


def kl_exact(logp_p: np.ndarray, logp_q: np.ndarray) -> np.ndarray:
    """Exact ``KL(p || q)`` per position from full log-distributions.

    Parameters
    ----------
    logp_p, logp_q : numpy.ndarray
        ``[N, V]`` natural-log probabilities (each row a log-softmax).

    Returns
    -------
    numpy.ndarray
        ``[N]`` float64, ``sum_v p(v) (log p(v) - log q(v))``, with ``0 log 0 = 0`` (inf where ``q(v) = 0 <
        p(v)``).
    """
    _check_same_shape(logp_p, logp_q)
    out = np.empty(len(logp_p), dtype=np.float64)
    for start in range(0, len(logp_p), _EXACT_CHUNK):
        lp = np.asarray(logp_p[start : start + _EXACT_CHUNK], dtype=np.float64)
        lq = np.asarray(logp_q[start : start + _EXACT_CHUNK], dtype=np.float64)
        p = np.exp(lp)
        with np.errstate(invalid="ignore"):
            out[start : start + len(lp)] = np.where(p > 0, p * (lp - lq), 0.0).sum(axis=1)
    return out


def js_exact(logp_p: np.ndarray, logp_q: np.ndarray) -> np.ndarray:
    """Exact Jensen–Shannon divergence per position, natural log, in ``[0, ln 2]``.

    ``JS = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2``.

    Parameters
    ----------
    logp_p, logp_q : numpy.ndarray
        ``[N, V]`` log-probabilities.

    Returns
    -------
    numpy.ndarray
        ``[N]`` float64, clipped to ``[0, ln 2]`` (rounding can leave it a few ulps outside).
    """
    _check_same_shape(logp_p, logp_q)
    out = np.empty(len(logp_p), dtype=np.float64)
    for start in range(0, len(logp_p), _EXACT_CHUNK):
        lp = np.asarray(logp_p[start : start + _EXACT_CHUNK], dtype=np.float64)
        lq = np.asarray(logp_q[start : start + _EXACT_CHUNK], dtype=np.float64)
        out[start : start + len(lp)] = _js_terms(np.exp(lp), np.exp(lq), lp, lq)
    return np.clip(out, 0.0, math.log(2))


def _js_terms(p: np.ndarray, q: np.ndarray, lp: np.ndarray, lq: np.ndarray) -> np.ndarray:
    """Row sums of the JS integrand; ``lp``/``lq`` are the logs of ``p``/``q`` (-inf where 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        lm = np.logaddexp(lp, lq) - math.log(2)
        left = np.where(p > 0, p * (lp - lm), 0.0)
        right = np.where(q > 0, q * (lq - lm), 0.0)
    return 0.5 * (left + right).sum(axis=1)


@dataclass(frozen=True)
class TopkCells:
    """Two models' next-token distributions rebuilt on common cells from their top-k lists.

    Built by :func:`topk_cells` (definition in :func:`kl_topk`). Columns: ``k_p`` cells for ``p``'s top-k
    tokens; ``k_q`` cells for the tokens only in ``q``'s top-k (zero in both where a token is in both lists);
    ``k_p`` cells splitting the rest of the vocabulary like the shared tokens (zero outside the shared
    tokens); one more rest cell, used only when the lists share no token.

    Attributes
    ----------
    p, q : numpy.ndarray
        ``[N, 2 k_p + k_q + 1]`` float64 cell masses of the two models; each row sums to 1.
    """

    p: np.ndarray
    q: np.ndarray


def topk_cells(
    ids_p: np.ndarray, logp_p: np.ndarray, ids_q: np.ndarray, logp_q: np.ndarray, vocab_size: int
) -> TopkCells:
    """Rebuild two next-token distributions on common cells from their top-k lists (see :func:`kl_topk`).

    Parameters
    ----------
    ids_p, logp_p : numpy.ndarray
        ``[N, k_p]`` top-k token ids and log-probabilities of ``p`` (log-softmax over the full vocabulary).
    ids_q, logp_q : numpy.ndarray
        ``[N, k_q]`` the same for ``q``.
    vocab_size : int
        ``V``, the size of the full vocabulary.

    Returns
    -------
    TopkCells
    """
    ids_p, ids_q = np.asarray(ids_p, dtype=np.int64), np.asarray(ids_q, dtype=np.int64)
    if ids_p.shape != np.shape(logp_p) or ids_q.shape != np.shape(logp_q) or len(ids_p) != len(ids_q):
        raise ValueError(
            f"top-k arrays disagree in shape: ids {ids_p.shape} / {ids_q.shape}, "
            f"log-probs {np.shape(logp_p)} / {np.shape(logp_q)}"
        )
    p = np.exp(np.asarray(logp_p, dtype=np.float64))
    q = np.exp(np.asarray(logp_q, dtype=np.float64))
    k_p, k_q = ids_p.shape[1], ids_q.shape[1]
    r_p = np.maximum(1.0 - p.sum(axis=1), _RESIDUAL_FLOOR)
    r_q = np.maximum(1.0 - q.sum(axis=1), _RESIDUAL_FLOOR)

    q_at_p, p_in_q = _lookup(ids_p, ids_q, q)  # q's known probability of each of p's top-k tokens
    _, q_in_p = _lookup(ids_q, ids_p, p)

    # A token in p's top-k but not q's has q-probability in [0, tau_q] (q's k-th probability), and the
    # average over q's V - k unseen tokens is u_q = r_q / (V - k_q). Models that share a base rank tokens
    # alike, so the best guess is p's own probability, kept inside what q's list allows.
    fill_q = np.where(p_in_q, 0.0, _clip_fill(p, r_q, q.min(axis=1), vocab_size - k_q))
    fill_p = np.where(q_in_p, 0.0, _clip_fill(q, r_p, p.min(axis=1), vocab_size - k_p))
    fill_q = _cap_fill(fill_q, r_q)
    fill_p = _cap_fill(fill_p, r_p)
    rest_p = r_p - fill_p.sum(axis=1)
    rest_q = r_q - fill_q.sum(axis=1)

    # One rest bucket would hide how the models differ among the unseen tokens (by the chain rule the exact
    # KL is the bucket's KL plus rest_p * KL(p|rest || q|rest)). Split each model's rest mass like its
    # distribution on the tokens both lists share, i.e. assume the models differ in the tail as they do in
    # the shared head (exact for a log-linear perturbation of the logits).
    shared_p = np.where(p_in_q, p, 0.0)
    shared_q = np.where(p_in_q, q_at_p, 0.0)
    total_p, total_q = shared_p.sum(axis=1), shared_q.sum(axis=1)
    has_shared = (total_p > 0) & (total_q > 0)
    split_p = shared_p * (rest_p / np.where(has_shared, total_p, 1.0))[:, None] * has_shared[:, None]
    split_q = shared_q * (rest_q / np.where(has_shared, total_q, 1.0))[:, None] * has_shared[:, None]
    lone_p, lone_q = np.where(has_shared, 0.0, rest_p), np.where(has_shared, 0.0, rest_q)

    cells_p = np.concatenate([p, fill_p, split_p, lone_p[:, None]], axis=1)
    cells_q = np.concatenate(
        [np.where(p_in_q, q_at_p, fill_q), np.where(q_in_p, 0.0, q), split_q, lone_q[:, None]], axis=1
    )
    return TopkCells(p=cells_p, q=cells_q)


def kl_topk(
    ids_p: np.ndarray, logp_p: np.ndarray, ids_q: np.ndarray, logp_q: np.ndarray, vocab_size: int
) -> np.ndarray:
    """Estimate ``KL(p || q)`` per position from the two models' top-k lists.

    Definition. For each position let ``S_p``, ``S_q`` be the two top-k sets, ``I = S_p ∩ S_q``,
    ``r = 1 - sum_S p`` each model's residual mass, ``tau`` its k-th probability and ``u = r / (V - k)`` the
    mean probability of its unseen tokens. Each model gets a mass on every token of ``S_p ∪ S_q``:

    1. known: its own top-k probabilities;
    2. filled: a token only in the other model's list gets ``clip(other's probability, u, tau)``; if a model's
       fills exceed half of its residual they are scaled down to half, so that mass remains for the rest;

    and its rest mass ``rest = r - fills`` is spread over ``|I|`` tail cells in proportion to its own
    probabilities on ``I`` (one tail cell if ``I`` is empty). The estimate is the exact KL of the two
    distributions so built (:func:`topk_cells`). Equivalently: the KL over ``S_p ∪ S_q`` plus one rest bucket,
    plus ``rest_p KL(p|I || q|I)``, the chain-rule term of the bucket with the tail's conditional divergence
    taken equal to that of the shared head.

    Properties and error. It is the KL of two distributions, so ``>= 0``; identical lists give exactly 0; where
    both lists cover a token its term is exact, so all error comes from the filled and tail cells, i.e. from at
    most ``r_p + r_q`` of probability mass. Measured against :func:`kl_exact` on Gaussian logits
    (``b = a + noise``, 200 positions, ``k = 64``; ``tests/unit/test_features.py``), the relative error of the
    mean over positions is

    * under 10% when the models' top-k lists hold >= 95% of the mass on average (measured 0.1–8% at
      ``V = 500``, 1–7% at ``V = 5000``, exact KL 0.003–3.4 nats),
    * under 25% when they hold >= 75% and the exact KL is under 1 nat (measured 3–14%);

    the estimate is biased low, by up to ~32% for flat distributions (top-k mass ~0.45) and up to ~55% when
    the top-k holds ~10% of the mass. A uniform fill ``u`` instead of the clipped copy overestimates
    near-identical models by 75–200% (a token swapped across the k-th rank gets a probability ~1000× too
    small), which is why it is not used.

    Parameters
    ----------
    ids_p, logp_p : numpy.ndarray
        ``[N, k_p]`` top-k ids (most likely first) and log-probabilities of ``p``.
    ids_q, logp_q : numpy.ndarray
        ``[N, k_q]`` the same for ``q``.
    vocab_size : int
        ``V``.

    Returns
    -------
    numpy.ndarray
        ``[N]`` float64, ``>= 0``.
    """
    cells = topk_cells(ids_p, logp_p, ids_q, logp_q, vocab_size)
    return _cell_kl(cells.p, cells.q)


def js_topk(
    ids_p: np.ndarray, logp_p: np.ndarray, ids_q: np.ndarray, logp_q: np.ndarray, vocab_size: int
) -> np.ndarray:
    """Estimate the Jensen–Shannon divergence per position from two top-k lists.

    The exact JS of the two distributions that :func:`kl_topk` builds (:func:`topk_cells`), so it is symmetric,
    exactly 0 for identical lists and in ``[0, ln 2]``. Measured on the cases of :func:`kl_topk`, the mean over
    positions is biased low by at most 4% at top-k mass >= 95% and 15% at >= 75%.

    Returns
    -------
    numpy.ndarray
        ``[N]`` float64.
    """
    cells = topk_cells(ids_p, logp_p, ids_q, logp_q, vocab_size)
    return _cell_js(cells.p, cells.q)


def _lookup(ids_x: np.ndarray, ids_y: np.ndarray, prob_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every entry of ``ids_x``, whether its row of ``ids_y`` holds the same id, and ``prob_y`` there.

    Rows are matched by offsetting ids by ``row * M``, so one sort and one ``searchsorted`` do all rows.
    """
    n = len(ids_x)
    if n == 0:
        return np.zeros(ids_x.shape), np.zeros(ids_x.shape, dtype=bool)
    span = int(max(ids_x.max(), ids_y.max())) + 1
    offsets = np.arange(n, dtype=np.int64)[:, None] * span
    keys_y = (ids_y + offsets).ravel()
    order = np.argsort(keys_y, kind="stable")
    sorted_y = keys_y[order]
    keys_x = (ids_x + offsets).ravel()
    pos = np.minimum(np.searchsorted(sorted_y, keys_x), len(sorted_y) - 1)
    found = sorted_y[pos] == keys_x
    values = np.where(found, prob_y.ravel()[order][pos], 0.0)
    return values.reshape(ids_x.shape), found.reshape(ids_x.shape)


def _clip_fill(other: np.ndarray, residual: np.ndarray, tau: np.ndarray, unseen: int) -> np.ndarray:
    """``clip(other, u, tau)`` row-wise, with ``u = residual / unseen`` (0 when every token is in the list)."""
    mean_unseen = residual / unseen if unseen > 0 else np.zeros_like(residual)
    return np.minimum(np.maximum(other, mean_unseen[:, None]), tau[:, None])


def _cap_fill(fill: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Scale a row's fills down to ``_FILL_CAP * residual`` when they exceed it."""
    total = fill.sum(axis=1)
    limit = _FILL_CAP * residual
    scale = np.where(total > limit, limit / np.where(total > 0, total, 1.0), 1.0)
    return fill * scale[:, None]


def _cell_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q)), 0.0)
    return np.maximum(terms.sum(axis=1), 0.0)


def _cell_js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        js = _js_terms(p, q, np.log(p), np.log(q))
    return np.clip(js, 0.0, math.log(2))


def _check_same_shape(x: np.ndarray, y: np.ndarray) -> None:
    if np.shape(x) != np.shape(y) or np.ndim(x) != 2:
        raise ValueError(
            f"expected two [N, V] log-distributions of the same shape, got {np.shape(x)} and {np.shape(y)}"
        )


# ----------------------------------------------------------------------------------------------------------
# Cosines of hidden states and attention maps


def segment_cosines(x: np.ndarray, y: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cosine of the flattened segments of two arrays, per leading index.

    Parameters
    ----------
    x, y : numpy.ndarray
        ``[G, M, ...]`` (any float dtype; reduced in float64).
    starts : numpy.ndarray
        ``[P]`` increasing start of each segment along axis 1 (the first is 0; each segment non-empty).

    Returns
    -------
    numpy.ndarray
        ``[G, P]`` float64: ``<vec x_s, vec y_s> / (||vec x_s|| ||vec y_s||)`` per segment ``s``, clipped to
        ``[-1, 1]``, NaN where a segment is all zero in either array.
    """
    if x.shape != y.shape:
        raise ValueError(f"cannot compare arrays of shapes {x.shape} and {y.shape}")
    out = np.empty((x.shape[0], len(starts)), dtype=np.float64)
    for g in range(x.shape[0]):
        # One leading index at a time keeps the float64 copies small (one layer, or one layer and head).
        xg = np.asarray(x[g], dtype=np.float64).reshape(x.shape[1], -1)
        yg = np.asarray(y[g], dtype=np.float64).reshape(y.shape[1], -1)
        xy = np.add.reduceat((xg * yg).sum(axis=1), starts)
        xx = np.add.reduceat((xg * xg).sum(axis=1), starts)
        yy = np.add.reduceat((yg * yg).sum(axis=1), starts)
        denom = np.sqrt(xx * yy)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[g] = np.where(denom > 0, xy / np.where(denom > 0, denom, 1.0), np.nan)
    return np.clip(out, -1.0, 1.0)


def depth_thirds(num_layers: int) -> np.ndarray:
    """Third (0 early, 1 mid, 2 late) of each of ``num_layers`` layers, by rank.

    Layer of rank ``r`` (0-based) is in third ``floor(3 (r + 1/2) / L)``: 30 layers split 10/10/10, like the
    blocks of the structural features (:func:`simmerge.sketch.structural_features`). With fewer than 3 layers
    some thirds are empty and their summaries NaN.
    """
    ranks = np.arange(num_layers)
    return (3 * (2 * ranks + 1)) // (2 * max(num_layers, 1))


def _layer_summary(per_layer: np.ndarray, prefix: str) -> dict[str, float]:
    """Mean, min and the early/mid/late means of a per-layer curve (NaN for an empty third)."""
    thirds = depth_thirds(len(per_layer))
    summary = {f"{prefix}_mean": float(np.mean(per_layer)), f"{prefix}_min": float(np.min(per_layer))}
    for index, label in enumerate(("early", "mid", "late")):
        chosen = per_layer[thirds == index]
        summary[f"{prefix}_{label}"] = float(np.mean(chosen)) if chosen.size else math.nan
    return summary


# ----------------------------------------------------------------------------------------------------------
# Summaries and one (pair, task)


class Summary(Protocol):
    """What features need of a model summary (:class:`simmerge.probes.ModelSummary` provides it)."""

    @property
    def meta(self) -> Mapping[str, Any]: ...

    def functional(self, task: str) -> Mapping[str, np.ndarray]: ...

    @property
    def sketch(self) -> Mapping[str, np.ndarray]: ...


def as_summary(summary: Summary | str | os.PathLike) -> Summary:
    """A loaded summary as is, or :func:`simmerge.probes.load_summary` of a path."""
    if isinstance(summary, str | os.PathLike):
        from simmerge.probes import load_summary

        return load_summary(Path(summary))
    return summary


@dataclass(frozen=True)
class TaskArrays:
    """One model's functional arrays for one task, with the layout facts from its meta.

    Attributes
    ----------
    model, task : str
        Catalog name and task.
    arrays : mapping of str to numpy.ndarray
        ``summary.functional(task)``: ``lengths``, ``token_ids``, ``topk_ids``, ``topk_logp``, ``hidden``,
        ``hidden_norm``, ``attention``, ``attention_norm`` and, in full mode, ``logp``.
    meta : mapping
        The model's meta.
    """

    model: str
    task: str
    arrays: Mapping[str, np.ndarray]
    meta: Mapping[str, Any]

    @classmethod
    def from_summary(cls, summary: Summary, task: str) -> TaskArrays:
        meta = summary.meta
        if task not in meta["tasks"]:
            raise ValueError(
                f"model {meta['name']!r} has no probe summary for task {task!r} (it has {', '.join(meta['tasks'])})"
            )
        return cls(model=meta["name"], task=task, arrays=summary.functional(task), meta=meta)

    @property
    def full_logprobs(self) -> bool:
        return self.meta["logprobs"][self.task] == "full" and "logp" in self.arrays

    def layout(self, what: str) -> dict[str, Any]:
        """``meta[what][task]`` (``what`` is ``"hidden"`` or ``"attention"``), with the projection seed when
        projected (two projections are comparable only under the same matrix)."""
        layout = dict(self.meta[what][self.task])
        if layout.get("mode") == "projected":
            layout["projection_seed"] = self.meta["projection_seed"]
        return layout

    @property
    def starts(self) -> np.ndarray:
        """Start of each probe's positions in the ``[N, ...]`` arrays."""
        lengths = np.asarray(self.arrays["lengths"], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(lengths)[:-1]])


def kl_per_position(p: TaskArrays, q: TaskArrays) -> np.ndarray:
    """``KL(p || q)`` per position: exact when both stored full distributions, else :func:`kl_topk`."""
    if p.full_logprobs and q.full_logprobs:
        return kl_exact(p.arrays["logp"], q.arrays["logp"])
    return kl_topk(
        p.arrays["topk_ids"], p.arrays["topk_logp"], q.arrays["topk_ids"], q.arrays["topk_logp"], _vocab(p, q)
    )


def js_per_position(p: TaskArrays, q: TaskArrays) -> np.ndarray:
    """JS divergence per position: exact when both stored full distributions, else :func:`js_topk`."""
    if p.full_logprobs and q.full_logprobs:
        return js_exact(p.arrays["logp"], q.arrays["logp"])
    return js_topk(
        p.arrays["topk_ids"], p.arrays["topk_logp"], q.arrays["topk_ids"], q.arrays["topk_logp"], _vocab(p, q)
    )


def _vocab(p: TaskArrays, q: TaskArrays) -> int:
    return int(max(p.meta["vocab_size"], q.meta["vocab_size"]))


class PairSummaries:
    """The three summaries of an ordered pair, and what is shared by all its tasks (the structural features).

    Parameters
    ----------
    a, b, base : Summary
        Loaded summaries of the two experts and their base.
    top_fraction : float
        Passed to :func:`simmerge.sketch.structural_features`.
    """

    def __init__(self, a: Summary, b: Summary, base: Summary, *, top_fraction: float) -> None:
        self.a = a
        self.b = b
        self.base = base
        self.top_fraction = top_fraction

    @cached_property
    def structural(self) -> dict[str, float]:
        """:func:`simmerge.sketch.structural_features` of ``a`` and ``b``, checked against the registry."""
        from simmerge.sketch import structural_features

        values = structural_features(
            _prefixed_sketch(self.a.sketch), _prefixed_sketch(self.b.sketch), top_fraction=self.top_fraction
        )
        registered = set(REGISTRY.names("structural"))
        missing, extra = sorted(registered - set(values)), sorted(set(values) - registered)
        if missing or extra:
            raise ValueError(
                "simmerge.sketch.structural_features and the feature registry disagree: "
                f"not returned {missing}, not registered {extra}; register every structural feature in "
                "simmerge.features"
            )
        return values


def _prefixed_sketch(sketch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sketch arrays keyed ``sketch/<key>``, as :func:`simmerge.sketch.structural_features` reads them.

    ``ModelSummary.sketch`` drops the prefix; ``structural_features`` indexes with it; accept either.
    """
    return {key if key.startswith("sketch/") else f"sketch/{key}": value for key, value in sketch.items()}


class PairTask:
    """Everything a feature function sees: one task's arrays of ``a``, ``b`` and the base.

    The per-position divergences and per-layer cosines are computed on first use and cached, so the
    features that summarise them share one computation.

    Parameters
    ----------
    task : str
    a, b, base : TaskArrays
    pair : PairSummaries
        The whole summaries (for task-independent features).

    Raises
    ------
    ValueError
        If the three models did not see the same probe tokens on the task.
    """

    def __init__(self, task: str, a: TaskArrays, b: TaskArrays, base: TaskArrays, pair: PairSummaries) -> None:
        self.task = task
        self.a = a
        self.b = b
        self.base = base
        self.pair = pair
        for other in (b, base):
            _check_same_tokens(task, a, other)

    @cached_property
    def kl_ab(self) -> np.ndarray:
        """``[N]`` KL(a || b) per position."""
        return kl_per_position(self.a, self.b)

    @cached_property
    def kl_ba(self) -> np.ndarray:
        """``[N]`` KL(b || a) per position."""
        return kl_per_position(self.b, self.a)

    @cached_property
    def kl_a_base(self) -> np.ndarray:
        """``[N]`` KL(a || base) per position."""
        return kl_per_position(self.a, self.base)

    @cached_property
    def kl_b_base(self) -> np.ndarray:
        """``[N]`` KL(b || base) per position."""
        return kl_per_position(self.b, self.base)

    @cached_property
    def hidden_cos_layers(self) -> np.ndarray:
        """``[L]`` cosine of flattened hidden states per layer 1..L, averaged over probes."""
        _check_same_layout(self.task, "hidden", self.a, self.b)
        ha, hb = self.a.arrays["hidden"], self.b.arrays["hidden"]
        # Layer 0 is the embedding output: a lookup table, not a computation on the probe.
        return segment_cosines(ha[1:], hb[1:], self.a.starts).mean(axis=1)

    @cached_property
    def attn_cos_layers(self) -> np.ndarray:
        """``[L]`` cosine of flattened attention maps per layer, averaged over heads and probes."""
        _check_same_layout(self.task, "attention", self.a, self.b)
        xa, xb = self.a.arrays["attention"], self.b.arrays["attention"]
        num_layers, num_heads, width = xa.shape
        lengths = np.asarray(self.a.arrays["lengths"], dtype=np.int64)
        if self.a.layout("attention")["mode"] == "projected":
            dim = self.a.layout("attention")["dim"]
            # Projected: each probe's map became a D-vector; segment s is row s of [P, D].
            xa = xa.reshape(num_layers * num_heads, len(lengths), dim)
            xb = xb.reshape(num_layers * num_heads, len(lengths), dim)
            starts = np.arange(len(lengths))
        else:
            # Full: each probe's lower triangle, len (len + 1) / 2 entries, concatenated.
            sizes = lengths * (lengths + 1) // 2
            if sizes.sum() != width:
                raise ValueError(
                    f"task {self.task!r}: attention of {self.a.model!r} has width {width}, but its probe lengths "
                    f"imply {int(sizes.sum())}"
                )
            xa = xa.reshape(num_layers * num_heads, width)
            xb = xb.reshape(num_layers * num_heads, width)
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        cos = segment_cosines(xa, xb, starts).reshape(num_layers, num_heads, len(lengths))
        return cos.mean(axis=(1, 2))


def _check_same_tokens(task: str, x: TaskArrays, y: TaskArrays) -> None:
    """Raise unless two models' summaries of a task cover the same probe tokens."""
    same_lengths = np.array_equal(x.arrays["lengths"], y.arrays["lengths"])
    if not (same_lengths and np.array_equal(x.arrays["token_ids"], y.arrays["token_ids"])):
        what = "probe lengths" if not same_lengths else "probe tokens"
        raise ValueError(
            f"task {task!r}: models {x.model!r} and {y.model!r} saw different {what}; their probe passes "
            "used different probe files, tokenizers or max_length (rerun probe_features with one config)"
        )
    if len(x.arrays["lengths"]) == 0 or np.any(np.asarray(x.arrays["lengths"]) <= 0):
        raise ValueError(f"task {task!r}: every probe of {x.model!r} needs at least one position")


def _check_same_layout(task: str, what: str, x: TaskArrays, y: TaskArrays) -> None:
    """Raise unless two models stored a task's hidden states or attention maps the same way."""
    lx, ly = x.layout(what), y.layout(what)
    if lx != ly:
        raise ValueError(
            f"task {task!r}: {what} of {x.model!r} is stored as {lx} but that of {y.model!r} as {ly}; "
            "cosines need the same mode, dimension and projection seed (rerun probe_features with one config)"
        )
    if x.arrays[what].shape != y.arrays[what].shape:
        raise ValueError(
            f"task {task!r}: {what} arrays of {x.model!r} and {y.model!r} differ in shape "
            f"({x.arrays[what].shape} vs {y.arrays[what].shape})"
        )


# ----------------------------------------------------------------------------------------------------------
# Functional features

_STAT_WORDS = {
    "median": "median",
    "p10": "10th percentile",
    "p25": "25th percentile",
    "p75": "75th percentile",
    "p90": "90th percentile",
}


def _position_stats(values: np.ndarray, prefix: str) -> dict[str, float]:
    stats = {f"{prefix}_mean": float(np.mean(values))}
    stats.update({f"{prefix}_{label}": float(np.quantile(values, q)) for label, q in QUANTILES.items()})
    return stats


def _kl_docs(prefix: str, direction: str) -> dict[str, str]:
    where = (
        "over all probe positions of the task (exact from full distributions, else the top-k estimator of "
        "simmerge.features.kl_topk), nats"
    )
    docs = {f"{prefix}_mean": f"Mean of the next-token {direction} per position, {where}."}
    docs.update(
        {
            f"{prefix}_{label}": f"{word.capitalize()} of the per-position {direction}."
            for label, word in _STAT_WORDS.items()
        }
    )
    return docs


@feature_group(_kl_docs("kl_ab", "KL(a‖b)"), kind="functional")
def kl_ab_stats(pair: PairTask) -> dict[str, float]:
    return _position_stats(pair.kl_ab, "kl_ab")


@feature_group(_kl_docs("kl_ba", "KL(b‖a)"), kind="functional")
def kl_ba_stats(pair: PairTask) -> dict[str, float]:
    return _position_stats(pair.kl_ba, "kl_ba")


@feature(
    "js_mean",
    kind="functional",
    doc="Mean over positions of the Jensen–Shannon divergence of a's and b's next-token distributions "
    "(natural log, in [0, ln 2]; exact from full distributions, else of the distributions kl_topk rebuilds).",
)
def js_mean(pair: PairTask) -> float:
    return float(np.mean(js_per_position(pair.a, pair.b)))


@feature(
    "top1_agree",
    kind="functional",
    doc="Fraction of positions where a's and b's most likely next tokens are the same.",
)
def top1_agree(pair: PairTask) -> float:
    return float(np.mean(pair.a.arrays["topk_ids"][:, 0] == pair.b.arrays["topk_ids"][:, 0]))


def _cos_docs(prefix: str, what: str, layers: str, per_layer: str) -> dict[str, str]:
    return {
        f"{prefix}_mean": f"Mean over {layers} of the {what} cosine of a and b. Per layer: {per_layer}.",
        f"{prefix}_min": f"Minimum over {layers} of the per-layer {what} cosine.",
        f"{prefix}_early": f"Mean of the per-layer {what} cosine over the first third of {layers}.",
        f"{prefix}_mid": f"Mean of the per-layer {what} cosine over the middle third of {layers}.",
        f"{prefix}_late": f"Mean of the per-layer {what} cosine over the last third of {layers}.",
    }


@feature_group(
    _cos_docs(
        "hidden_cos",
        "hidden-state",
        "layers 1..L",
        "the mean over probes of the cosine of the probe's flattened [tokens × width] hidden states; layer 0, "
        "the embedding output, is left out",
    ),
    kind="functional",
)
def hidden_cos(pair: PairTask) -> dict[str, float]:
    return _layer_summary(pair.hidden_cos_layers, "hidden_cos")


@feature_group(
    _cos_docs(
        "attn_cos",
        "attention-map",
        "the L layers",
        "the mean over heads and probes of the cosine of the probe's flattened causal attention map (lower triangle)",
    ),
    kind="functional",
)
def attn_cos(pair: PairTask) -> dict[str, float]:
    return _layer_summary(pair.attn_cos_layers, "attn_cos")


@feature_group(
    {
        "drift_kl_a": "Mean over positions of KL(a‖base) of the next-token distributions (estimated as kl_ab).",
        "drift_kl_b": "Mean over positions of KL(b‖base).",
        "drift_ratio": "drift_kl_a / drift_kl_b: 1 when both are 0, NaN when only drift_kl_b is 0 (an "
        "undefined ratio is missing, not infinite).",
    },
    kind="drift",
)
def drift(pair: PairTask) -> dict[str, float]:
    drift_a, drift_b = float(np.mean(pair.kl_a_base)), float(np.mean(pair.kl_b_base))
    return {"drift_kl_a": drift_a, "drift_kl_b": drift_b, "drift_ratio": drift_ratio(drift_a, drift_b)}


def drift_ratio(drift_a: float, drift_b: float) -> float:
    """``drift_a / drift_b``; 1.0 when both are 0 (equal drift), NaN when only ``drift_b`` is 0.

    NaN rather than inf because the predictors treat NaN as missing and reject inf.
    """
    if drift_b > 0:
        return drift_a / drift_b
    return 1.0 if drift_a == 0 else math.nan


# ----------------------------------------------------------------------------------------------------------
# Structural features: thin wrappers over simmerge.sketch.structural_features, one entry per name.

STRUCTURAL_DEFINITIONS = {
    "tv_cos": "Cosine of the task vectors τ_a = θ_a − θ_base and τ_b over all tensors (from the weight sketches).",
    "tv_cos_layer_mean": "Mean over transformer blocks of the block's task-vector cosine.",
    "tv_cos_layer_min": "Minimum over transformer blocks of the block's task-vector cosine.",
    "tv_cos_early": "Mean task-vector cosine over the first third of the blocks.",
    "tv_cos_mid": "Mean task-vector cosine over the middle third of the blocks.",
    "tv_cos_late": "Mean task-vector cosine over the last third of the blocks.",
    "tv_norm_ratio": "‖τ_a‖ / ‖τ_b‖ (exact).",
    "tv_rel_norm_a": "‖τ_a‖ / ‖θ_base‖ (exact).",
    "tv_rel_norm_b": "‖τ_b‖ / ‖θ_base‖ (exact).",
    "sign_agree": "Fraction of coordinates, among those non-zero in both τ_a and τ_b, whose signs agree.",
    "sign_agree_top": "sign_agree restricted to coordinates in either model's top top_fraction of |τ| (per tensor).",
    "top_jaccard": "Jaccard overlap of the two models' per-tensor top top_fraction |τ| coordinate sets.",
    "weight_cos": "Cosine of the full weights θ_a and θ_b (only <τ_a, τ_b> is estimated).",
    "weight_dist_rel": "‖θ_a − θ_b‖ / ‖θ_base‖.",
}
"""Definitions of the structural features; the values come from :func:`simmerge.sketch.structural_features`."""


def _structural_getter(name: str) -> Callable[[PairTask], float]:
    def get(pair: PairTask) -> float:
        return pair.pair.structural[name]

    get.__qualname__ = f"structural[{name}]"
    get.__module__ = __name__
    return get


for _name, _definition in STRUCTURAL_DEFINITIONS.items():
    feature(_name, kind="structural", doc=_definition)(_structural_getter(_name))


# ----------------------------------------------------------------------------------------------------------
# The table


def pair_features(
    summary_a: Summary | str | os.PathLike,
    summary_b: Summary | str | os.PathLike,
    summary_base: Summary | str | os.PathLike,
    *,
    top_fraction: float,
) -> pd.DataFrame:
    """The feature table of the ordered pair (a, b): one row per task.

    Parameters
    ----------
    summary_a, summary_b, summary_base : Summary or path
        Model summaries (``features/models/<name>.npz``) of the two experts and their base, as paths or loaded
        with :func:`simmerge.probes.load_summary`.
    top_fraction : float
        Top-magnitude fraction of the structural mask and sign features.

    Returns
    -------
    pandas.DataFrame
        Columns ``a``, ``b``, ``task``, then :func:`feature_names` in order, float64. Rows follow ``a``'s task
        order. Structural features do not depend on the task and repeat on every row.

    Raises
    ------
    ValueError
        If the models' architectures or tasks differ, a task's probe tokens differ between any two of the
        three models (the message names the task), or a and b stored hidden states or attention maps in
        different modes, dimensions or projections.

    Examples
    --------
    >>> table = pair_features("a.npz", "b.npz", "base.npz", top_fraction=0.2)  # doctest: +SKIP
    >>> table.loc[0, ["task", "kl_ab_mean", "hidden_cos_mean", "tv_cos"]]  # doctest: +SKIP
    """
    a, b, base = as_summary(summary_a), as_summary(summary_b), as_summary(summary_base)
    _check_same_architecture(a, b, base)
    _check_top_fraction(top_fraction, a, b)
    pair = PairSummaries(a, b, base, top_fraction=top_fraction)
    rows = []
    for task in a.meta["tasks"]:
        arrays = [TaskArrays.from_summary(s, task) for s in (a, b, base)]
        values = REGISTRY.compute(PairTask(task, *arrays, pair))
        rows.append({"a": a.meta["name"], "b": b.meta["name"], "task": task, **values})
    names = REGISTRY.names()
    table = pd.DataFrame(rows, columns=[*ID_COLUMNS, *names])
    return table.astype(dict.fromkeys(names, "float64"))


def _check_top_fraction(top_fraction: float, *summaries: Summary) -> None:
    """The sketches' top sets were drawn at their pass's ``top_fraction``; a different one would be ignored."""
    for summary in summaries:
        drawn = summary.meta["sketch"]["top_fraction"]
        if not math.isclose(drawn, top_fraction, rel_tol=1e-9):
            raise ValueError(
                f"top_fraction={top_fraction}, but the sketch of {summary.meta['name']!r} drew its top sets at "
                f"{drawn}; rerun probe_features with features.top_fraction={top_fraction}"
            )


def _check_same_architecture(*summaries: Summary) -> None:
    first = summaries[0].meta
    for other in summaries[1:]:
        meta = other.meta
        for key in ("num_layers", "num_heads", "hidden_size", "vocab_size"):
            if meta[key] != first[key]:
                raise ValueError(
                    f"models {first['name']!r} and {meta['name']!r} differ in {key} ({first[key]} vs {meta[key]}); "
                    "pair features compare checkpoints of one architecture"
                )
        if set(meta["tasks"]) != set(first["tasks"]):
            raise ValueError(
                f"models {first['name']!r} and {meta['name']!r} were probed on different tasks "
                f"({', '.join(first['tasks'])} vs {', '.join(meta['tasks'])})"
            )


# ----------------------------------------------------------------------------------------------------------
# Documentation

_DOC_HEADER = """\
# Pair features

<!-- Generated by simmerge.features.write_feature_doc from the feature registry; do not edit by hand. -->

Rule `pair_features` writes `features/pairs/<a>__<b>.parquet`: one row per task for the ordered pair (a, b), with
columns `a`, `b`, `task`, then the features below in this order (float64). Functional features come from the
probe passes of a and b, drift features from those of a, b and the base, structural features from the weight
sketches (the same on every row). Definitions of the estimators: `simmerge.features` (top-k KL: `kl_topk`) and
`simmerge.sketch`.

Notes:

- Positions are the non-padding tokens of all probes of the task; statistics over positions pool them.
- KL and JS are exact when both models stored full next-token distributions. Otherwise they are the exact
  divergences of two distributions rebuilt from the top-k lists (`kl_topk`): a token missing from one list gets
  the other model's probability clipped to the range the list allows, and the remaining mass is spread like the
  tokens both lists share. Measured error of the mean: under 10% when the top-k holds at least 95% of the mass,
  under 25% at 75% (biased low).
- Cosines flatten each probe's states (`[tokens × width]`) or causal attention map (lower triangle) and divide
  by the norms of the same stored vectors, so projected (Johnson–Lindenstrauss) summaries give accurate
  cosines near 1. Layers are split into thirds by rank `r` of `L`: third `floor(3 (r + 1/2) / L)`.
"""


def feature_doc() -> str:
    """The Markdown of ``docs/features.md``: a header and the name → kind → definition table."""
    lines = [_DOC_HEADER, "| name | kind | definition |", "|---|---|---|"]
    for row in feature_table():
        definition = row["definition"].replace("|", "\\|")
        lines.append(f"| `{row['name']}` | {row['kind']} | {definition} |")
    return "\n".join(lines) + "\n"


def write_feature_doc(path: str | os.PathLike) -> None:
    """Write :func:`feature_doc` to ``path`` atomically (``docs/features.md`` in the repository)."""
    write_text(feature_doc(), path)


FEATURE_TABLE: Sequence[Mapping[str, str]] = tuple(feature_table())
"""The registered features at import time (see :func:`feature_table`)."""

__all__ = [
    "FEATURE_TABLE",
    "KINDS",
    "QUANTILES",
    "REGISTRY",
    "STRUCTURAL_DEFINITIONS",
    "Feature",
    "FeatureRegistry",
    "PairSummaries",
    "PairTask",
    "Summary",
    "TaskArrays",
    "TopkCells",
    "depth_thirds",
    "drift_ratio",
    "feature",
    "feature_doc",
    "feature_group",
    "feature_names",
    "feature_table",
    "get_feature",
    "js_exact",
    "js_per_position",
    "js_topk",
    "kl_exact",
    "kl_per_position",
    "kl_topk",
    "as_summary",
    "pair_features",
    "segment_cosines",
    "topk_cells",
    "write_feature_doc",
]
