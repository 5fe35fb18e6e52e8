"""Pair features: how similar two checkpoints are, from their probe-pass summaries alone.

Rule ``pair_features`` calls :func:`pair_features` on the ``features/models/<name>.npz`` files of ``a``, ``b`` and
the base (``docs/model-summary-format.md``) and writes one row per task: the feature vector ``x(a, b, t)`` of the
ordered pair. No model is loaded, so a pair costs the same whatever the model size; only the stored arrays are
read.

Every feature is a pure function of the three summaries, registered by decorator (as mergekit registers its merge
methods)::

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

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from simmerge.features.divergence import depth_thirds, js_exact, js_topk, kl_exact, kl_topk, segment_cosines
from simmerge.features.registry import Feature, FeatureKind, FeatureRegistry
from simmerge.features.sketch import structural_features
from simmerge.features.summary import load_summary

QUANTILES = {"median": 0.5, "p10": 0.10, "p25": 0.25, "p75": 0.75, "p90": 0.90}
"""Quantiles of the per-position KL kept besides the mean (linear interpolation, numpy's default)."""


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


def _layer_summary(per_layer: np.ndarray, prefix: str) -> dict[str, float]:
    """Mean, min and the early/mid/late means of a per-layer curve (NaN for an empty third)."""
    thirds = depth_thirds(len(per_layer))
    summary = {f"{prefix}_mean": float(np.mean(per_layer)), f"{prefix}_min": float(np.min(per_layer))}
    for index, label in enumerate(("early", "mid", "late")):
        chosen = per_layer[thirds == index]
        summary[f"{prefix}_{label}"] = float(np.mean(chosen)) if chosen.size else math.nan
    return summary


class Summary(Protocol):
    """What features need of a model summary (:class:`simmerge.features.summary.ModelSummary` provides it)."""

    @property
    def meta(self) -> Mapping[str, Any]: ...

    def functional(self, task: str) -> Mapping[str, np.ndarray]: ...

    @property
    def sketch(self) -> Mapping[str, np.ndarray]: ...


def as_summary(summary: Summary | str | os.PathLike) -> Summary:
    """A loaded summary as is, or :func:`simmerge.features.summary.load_summary` of a path."""
    if isinstance(summary, str | os.PathLike):
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
        Passed to :func:`simmerge.features.sketch.structural_features`.
    """

    def __init__(self, a: Summary, b: Summary, base: Summary, *, top_fraction: float) -> None:
        self.a = a
        self.b = b
        self.base = base
        self.top_fraction = top_fraction

    @cached_property
    def structural(self) -> dict[str, float]:
        """:func:`simmerge.features.sketch.structural_features` of ``a`` and ``b``, checked against the registry."""

        values = structural_features(
            _prefixed_sketch(self.a.sketch), _prefixed_sketch(self.b.sketch), top_fraction=self.top_fraction
        )
        registered = set(REGISTRY.names("structural"))
        missing, extra = sorted(registered - set(values)), sorted(set(values) - registered)
        if missing or extra:
            raise ValueError(
                "simmerge.features.sketch.structural_features and the feature registry disagree: "
                f"not returned {missing}, not registered {extra}; register every structural feature in "
                "simmerge.features.pairs"
            )
        return values


def _prefixed_sketch(sketch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sketch arrays keyed ``sketch/<key>``, as :func:`simmerge.features.sketch.structural_features` reads them.

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
        "simmerge.features.divergence.kl_topk), nats"
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
"""Definitions of the structural features; the values come from :func:`simmerge.features.sketch.structural_features`."""


def _structural_getter(name: str) -> Callable[[PairTask], float]:
    def get(pair: PairTask) -> float:
        return pair.pair.structural[name]

    get.__qualname__ = f"structural[{name}]"
    get.__module__ = __name__
    return get


for _name, _definition in STRUCTURAL_DEFINITIONS.items():
    feature(_name, kind="structural", doc=_definition)(_structural_getter(_name))
