"""Weight sketches of task vectors, and the structural pair features estimated from them.

A checkpoint's task vector is ``tau = theta - theta_base``, tensor by tensor. Comparing two experts
structurally (cosine of their task vectors, sign agreement, overlap of their largest coordinates) would need
both full checkpoints and the base in memory for every pair. Instead, :func:`weight_sketch` streams one
checkpoint and the base once and stores

* exact per-tensor scalars: ``||tau||``, ``||theta||``, ``||theta_base||``, ``<tau, theta_base>`` and the
  magnitude threshold of the tensor's top ``top_fraction`` of ``|tau|``;
* ``tau`` at a few sampled coordinates per tensor. The sample depends only on the tensor's name and size and
  the sketch seed, so every checkpoint of a run samples the same coordinates and two sketches can be
  compared coordinate by coordinate.

:func:`structural_features` then estimates every structural pair feature from two sketches alone, and
:func:`structural_features_exact` computes the same features over all coordinates (for tests and for
measuring the sketch's error). The layout of the arrays is the "Structural part" of
``docs/model-summary-format.md``.

Estimators
----------
For a tensor with ``n`` coordinates of which ``m`` are sampled uniformly without replacement (set ``S``):

* ``<tau_a, tau_b>`` is estimated by the *ratio* estimator
  ``||tau_a|| ||tau_b|| * sum_S(a_i b_i) / sqrt(sum_S(a_i^2) sum_S(b_i^2))``: the sample cosine times the
  exact norms. It is consistent but not unbiased; it is exact whenever ``tau_b = c * tau_a`` (identical,
  scaled or negated task vectors) and keeps every cosine in ``[-1, 1]``. Task vectors are heavy tailed, and
  the same large coordinates drive the numerator and the denominator, so their errors largely cancel. The
  unbiased ``n/m * sum_S(a_i b_i)`` is available as ``estimator="unbiased"``.
* Coordinate-count statistics (sign agreement, top-mask overlap) are ratio estimates too: each sampled
  coordinate counts ``n/m`` (the coordinates it stands for), summed over tensors, numerator over
  denominator.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Literal

import numpy as np

from simmerge.catalog.manifest import read_safetensors_header, weight_files

logger = logging.getLogger(__name__)

# Keys of the arrays weight_sketch returns, in the order of the contract table.
SKETCH_KEYS = (
    "sketch/names",
    "sketch/layer",
    "sketch/numel",
    "sketch/tau_norm",
    "sketch/theta_norm",
    "sketch/base_norm",
    "sketch/tau_dot_base",
    "sketch/tau_threshold",
    "sketch/offsets",
    "sketch/coords",
    "sketch/tau",
)

# Names of the features structural_features and structural_features_exact return, in a fixed order.
FEATURE_NAMES = (
    "tv_cos",
    "tv_cos_layer_mean",
    "tv_cos_layer_min",
    "tv_cos_early",
    "tv_cos_mid",
    "tv_cos_late",
    "tv_norm_ratio",
    "tv_rel_norm_a",
    "tv_rel_norm_b",
    "sign_agree",
    "sign_agree_top",
    "top_jaccard",
    "weight_cos",
    "weight_dist_rel",
)

# Every tensor gets at least this many samples (or all its coordinates). The proportional share of a norm
# weight in a 134M model is under one coordinate, and one sample turns that tensor's sample cosine into +-1.
# In the SmolLM2 experts such tensors hold under 0.1% of ||tau||^2, so the floor changes nothing there
# (measured); it costs ~2% more samples and guards fine-tunes concentrated in norms or biases.
MIN_SAMPLES_PER_TENSOR = 64

# Tensors are reduced in float64 in slices of this many elements, so float64 copies stay small.
_CHUNK = 1 << 22

_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}

# A transformer block: "layers.12.", "h.3.", "blocks.0.", "layer.7." (BERT), "block.2." (T5).
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?:\.|$)")

Sketch = Mapping[str, np.ndarray]


def layer_index(name: str) -> int:
    """Transformer block index of a tensor name, or -1 outside the blocks.

    The index is the first integer segment right after a ``layers``, ``layer``, ``h``, ``blocks`` or
    ``block`` segment: ``model.layers.12.mlp.up_proj.weight`` → 12, ``transformer.h.3.attn.c_attn.weight``
    → 3, ``model.embed_tokens.weight`` → -1.
    """
    match = _LAYER_RE.search(name)
    return int(match.group(1)) if match else -1


def sample_size(numel: int, total_numel: int, size: int) -> int:
    """Coordinates sampled from a tensor: ``min(numel, max(64, round(size * numel / total_numel)))``.

    Rounding is half up. The floor of :data:`MIN_SAMPLES_PER_TENSOR` keeps tiny tensors (norm weights,
    biases) estimable; it adds at most ``64 * T`` coordinates to ``size``.
    """
    share = math.floor(size * numel / total_numel + 0.5)
    return min(numel, max(MIN_SAMPLES_PER_TENSOR, share))


def sample_coords(name: str, numel: int, m: int, *, seed: int) -> np.ndarray:
    """The ``m`` sorted flat indices sampled from tensor ``name``, the same for every checkpoint of a run.

    The generator is seeded from the sha256 of ``(seed, name, numel)`` (never Python's ``hash``, which is
    salted per process), and draws without replacement with ``numpy.random.Generator.choice``.
    """
    if m >= numel:
        return np.arange(numel, dtype=np.int64)
    digest = hashlib.sha256(f"simmerge-sketch/v1\0{seed}\0{name}\0{numel}".encode()).digest()
    rng = np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest, "little")))
    coords = rng.choice(numel, size=m, replace=False, shuffle=False)
    return np.sort(coords).astype(np.int64)


def top_k(numel: int, top_fraction: float) -> int:
    """Size of a tensor's top fraction: ``round(top_fraction * numel)`` (half up), between 1 and ``numel``."""
    return min(numel, max(1, math.floor(top_fraction * numel + 0.5)))


def _tensor_table(ckpt_dir: Path) -> dict[str, tuple[Path, list[int]]]:
    """Floating-point tensor name → (file, shape), from the safetensors headers alone."""
    table = {}
    for path in weight_files(ckpt_dir, name=ckpt_dir.name):
        for tensor, info in read_safetensors_header(path, name=ckpt_dir.name).items():
            if info["dtype"] in _FLOAT_DTYPES:
                table[tensor] = (path, info["shape"])
    return table


def _shared_tensors(dirs: list[Path]) -> tuple[list[str], dict[str, int], list[dict[str, tuple[Path, list[int]]]]]:
    """Sorted tensor names every checkpoint holds, their sizes, and each checkpoint's table.

    Raises a ValueError naming the first tensor that one checkpoint lacks or shapes differently.
    """
    tables = [_tensor_table(d) for d in dirs]
    names = sorted(set().union(*tables))
    where = " and ".join(str(d) for d in dirs)
    for name in names:
        lacking = [str(d) for d, t in zip(dirs, tables, strict=True) if name not in t]
        if lacking:
            hint = (
                " (one checkpoint ties lm_head to the embeddings and the other does not; save both the same way)"
                if name.endswith("lm_head.weight")
                else ""
            )
            raise ValueError(
                f"tensor {name!r} is missing from {', '.join(lacking)}; every floating-point tensor must be in "
                f"all of {where} to compare them{hint}"
            )
        shapes = {tuple(t[name][1]) for t in tables}
        if len(shapes) > 1:
            raise ValueError(f"tensor {name!r} has different shapes {sorted(shapes)} in {where}")
    if not names:
        raise ValueError(f"no floating-point tensors in {where}")
    numel = {name: math.prod(tables[0][name][1]) for name in names}
    return names, numel, tables


def _stream(shared: tuple[list[str], dict[str, int], list[dict]]) -> Iterator[tuple[str, int, list]]:
    """Yield ``(name, numel, [tensor per checkpoint])`` of :func:`_shared_tensors`'s result, sorted by name.

    Tensors come float32, flat and read-only, one name at a time; the caller drops its references before
    the next.
    """
    # deferred: the many pair-features jobs import this module and never need torch
    import torch
    from safetensors import safe_open

    names, numel, tables = shared
    with ExitStack() as stack:
        handles: dict[Path, object] = {}
        for table in tables:
            for path, _ in table.values():
                if path not in handles:
                    handles[path] = stack.enter_context(safe_open(path, framework="pt"))
        for name in names:
            # get_tensor returns a view of a copy-on-write memory map, shared by every get_tensor of the
            # same name and kept while the file is open: callers must never write to these tensors (a
            # write would alias two checkpoints read from one file and pin a private copy of the page).
            tensors = [handles[t[name][0]].get_tensor(name).reshape(-1).to(torch.float32) for t in tables]
            yield name, numel[name], tensors
            del tensors  # before the next name is loaded, so only one set is ever in memory


def _dot64(x, y) -> float:
    """``<x, y>`` of two flat float32 tensors, accumulated in float64 slice by slice."""
    import torch

    total = 0.0
    for start in range(0, x.numel(), _CHUNK):
        xs = x[start : start + _CHUNK].double()
        ys = xs if y is x else y[start : start + _CHUNK].double()
        total += float(torch.dot(xs, ys))
    return total


def _threshold(abs_tau, k: int) -> float:
    """The k-th largest value of a flat float32 ``|tau|`` tensor, which it reorders in place.

    numpy's in-place introselect needs no memory beyond the tensor; ``torch.kthvalue`` would copy the
    values and allocate int64 indices (three times the tensor).
    """
    values = abs_tau.numpy()
    position = values.size - k
    values.partition(position)
    return float(values[position])


def weight_sketch(
    ckpt_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    *,
    size: int,
    seed: int,
    top_fraction: float,
) -> dict[str, np.ndarray]:
    """Sketch the task vector of a checkpoint against its base, streaming one tensor at a time.

    Every floating-point tensor the two checkpoints hold is visited in sorted name order. The weights are
    read through safetensors' memory map, one tensor at a time and never written to; the memory the sketch
    owns is that tensor's ``tau`` (ranked in place for the threshold), a float64 slice and the samples.
    ``tau`` is computed in float32 (``float32(theta) - float32(theta_base)``); norms and inner products are
    accumulated in float64. For the base itself (``ckpt_dir == base_dir``) ``tau`` is zero everywhere.

    Parameters
    ----------
    ckpt_dir, base_dir : path-like
        The checkpoint and the base it was fine-tuned from (Hugging Face directories with safetensors).
    size : int
        Coordinates to sample in all, shared among tensors in proportion to their size (see
        :func:`sample_size`; at least 64 per tensor, or all of a smaller tensor).
    seed : int
        Sketch seed (the run seed); with the tensor's name and size it fixes the coordinates (see
        :func:`sample_coords`).
    top_fraction : float
        Fraction of a tensor's coordinates, by ``|tau|``, that make up its "top" set.

    Returns
    -------
    dict of str to numpy.ndarray
        The ``sketch/*`` arrays of ``docs/model-summary-format.md``. ``sketch/tau_threshold`` is the
        ``k``-th largest ``|tau|`` with ``k = round(top_fraction * numel)`` (at least 1); a coordinate is in
        the top set iff ``|tau| >= threshold`` and ``|tau| > 0``, so ties at the threshold are all in, and a
        tensor with fewer than ``k`` non-zero coordinates has exactly those in its top set (none for the
        base).

    Raises
    ------
    ValueError
        If ``size < 1``, ``top_fraction`` is not in (0, 1), or a floating-point tensor of one checkpoint is
        missing from, or shaped differently in, the other (the message names the tensor and both
        directories).
    simmerge.catalog.manifest.PreflightError
        If a directory has no safetensors weights or a header is corrupt.
    """
    import torch

    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if not 0 < top_fraction < 1:
        raise ValueError(f"top_fraction must be in (0, 1), got {top_fraction}")
    dirs = [Path(ckpt_dir), Path(base_dir)]
    shared = _shared_tensors(dirs)
    names, numel, _ = shared
    total = sum(numel.values())

    layer = np.array([layer_index(n) for n in names], dtype=np.int32)
    sizes = np.array([numel[n] for n in names], dtype=np.int64)
    stats = np.zeros((5, len(names)), dtype=np.float64)  # tau, theta, base norms; <tau, base>; threshold
    counts = np.array([sample_size(numel[n], total, size) for n in names], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    coords = np.empty(offsets[-1], dtype=np.int64)
    tau_samples = np.empty(offsets[-1], dtype=np.float32)

    for t, (name, n, (theta, base)) in enumerate(_stream(shared)):
        theta_sq, base_sq = _dot64(theta, theta), _dot64(base, base)
        tau = theta - base
        idx = sample_coords(name, n, int(counts[t]), seed=seed)
        coords[offsets[t] : offsets[t + 1]] = idx
        tau_samples[offsets[t] : offsets[t + 1]] = tau[torch.from_numpy(idx)].numpy()
        stats[0, t] = math.sqrt(_dot64(tau, tau))
        stats[1, t] = math.sqrt(theta_sq)
        stats[2, t] = math.sqrt(base_sq)
        stats[3, t] = _dot64(tau, base)
        del base
        stats[4, t] = _threshold(tau.abs_(), top_k(n, top_fraction))
        del tau, theta

    logger.info(
        "sketched %s against %s: %d tensors, %d parameters, %d sampled coordinates",
        dirs[0],
        dirs[1],
        len(names),
        total,
        offsets[-1],
    )
    return {
        "sketch/names": np.array(names, dtype=np.str_),
        "sketch/layer": layer,
        "sketch/numel": sizes,
        "sketch/tau_norm": stats[0],
        "sketch/theta_norm": stats[1],
        "sketch/base_norm": stats[2],
        "sketch/tau_dot_base": stats[3],
        "sketch/tau_threshold": stats[4],
        "sketch/offsets": offsets,
        "sketch/coords": coords,
        "sketch/tau": tau_samples,
    }


def _as_sketch(s: Sketch) -> dict[str, np.ndarray]:
    """The ``sketch/*`` arrays of a sketch given with or without the ``sketch/`` prefix.

    Accepts :func:`weight_sketch`'s dict, a loaded ``.npz`` (or ``ModelSummary.arrays``), and
    ``ModelSummary.sketch``, whose keys have no prefix.
    """
    if all(key in s for key in SKETCH_KEYS):
        return {key: np.asarray(s[key]) for key in SKETCH_KEYS}
    bare = [key.removeprefix("sketch/") for key in SKETCH_KEYS]
    if all(key in s for key in bare):
        return {key: np.asarray(s[b]) for key, b in zip(SKETCH_KEYS, bare, strict=True)}
    missing = [key for key in SKETCH_KEYS if key not in s and key.removeprefix("sketch/") not in s]
    raise ValueError(f"not a weight sketch: missing key(s) {', '.join(missing)}")


def _check_compatible(a: Sketch, b: Sketch) -> None:
    """Raise unless two sketches cover the same tensors at the same coordinates against the same base."""
    for key in ("sketch/names", "sketch/numel", "sketch/offsets", "sketch/coords"):
        if not np.array_equal(np.asarray(a[key]), np.asarray(b[key])):
            raise ValueError(
                f"the two sketches differ in {key}: they were drawn for different architectures or with a "
                "different sketch size or seed; sketch both checkpoints in the same run"
            )
    if not np.allclose(a["sketch/base_norm"], b["sketch/base_norm"], rtol=1e-6, atol=0):
        raise ValueError("the two sketches were taken against different bases (sketch/base_norm differs)")


def _sample_weights(s: Sketch) -> np.ndarray:
    """``n/m`` of each sample's tensor: the number of coordinates each sampled coordinate stands for."""
    m = np.diff(s["sketch/offsets"])
    return np.repeat(s["sketch/numel"] / m, m)


def _segment_sum(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per-tensor sums of a per-sample array (every tensor has at least one sample)."""
    return np.add.reduceat(np.asarray(x, dtype=np.float64), offsets[:-1])


def tau_dot(a: Sketch, b: Sketch, *, estimator: Literal["ratio", "unbiased"] = "ratio") -> np.ndarray:
    """Per-tensor estimates of ``<tau_a, tau_b>`` from two sketches of the same run.

    Parameters
    ----------
    a, b : mapping of str to numpy.ndarray
        Sketches of the two checkpoints, keys with or without the ``sketch/`` prefix (as
        :func:`structural_features`).
    estimator : {"ratio", "unbiased"}
        ``"ratio"``: ``||tau_a|| ||tau_b|| * sum_S(a_i b_i) / sqrt(sum_S(a_i^2) sum_S(b_i^2))``, the sample
        cosine times the exact norms (0 where either sample is all zero); exact when ``tau_b`` is a
        multiple of ``tau_a``. ``"unbiased"``: ``n/m * sum_S(a_i b_i)``.

    Returns
    -------
    numpy.ndarray
        ``[T]`` float64, in the order of ``sketch/names``.

    Raises
    ------
    ValueError
        If the sketches do not share tensors, coordinates and base, or ``estimator`` is unknown.
    """
    a, b = _as_sketch(a), _as_sketch(b)
    _check_compatible(a, b)
    offsets = a["sketch/offsets"]
    ta = np.asarray(a["sketch/tau"], dtype=np.float64)
    tb = np.asarray(b["sketch/tau"], dtype=np.float64)
    cross = _segment_sum(ta * tb, offsets)
    if estimator == "unbiased":
        return cross * a["sketch/numel"] / np.diff(offsets)
    if estimator != "ratio":
        raise ValueError(f"estimator must be 'ratio' or 'unbiased', got {estimator!r}")
    sample_norms = np.sqrt(_segment_sum(ta * ta, offsets) * _segment_sum(tb * tb, offsets))
    cos = np.divide(cross, sample_norms, out=np.zeros_like(cross), where=sample_norms > 0)
    return np.clip(cos, -1.0, 1.0) * a["sketch/tau_norm"] * b["sketch/tau_norm"]


def _ratio(num: float, den: float) -> float:
    """``num / den``, NaN when the denominator is 0 (an undefined cosine or fraction)."""
    return float(num / den) if den > 0 else math.nan


def _nan_stat(values: np.ndarray, fn) -> float:
    """``fn`` over the finite values, NaN when there are none (without numpy's all-NaN warning)."""
    finite = values[np.isfinite(values)]
    return float(fn(finite)) if finite.size else math.nan


def _features_from_parts(p: dict[str, np.ndarray]) -> dict[str, float]:
    """Every structural feature from per-tensor sums (estimated or exact); see :func:`structural_features`."""
    tau_sq_a, tau_sq_b = p["tau_sq_a"].sum(), p["tau_sq_b"].sum()
    norm_a, norm_b = math.sqrt(tau_sq_a), math.sqrt(tau_sq_b)
    base_norm = math.sqrt(p["base_sq"].sum())
    dot = p["dot"].sum()

    # Per-block cosines; a block whose task vector is zero in either model has none (NaN).
    layer = p["layer"]
    blocks = np.unique(layer[layer >= 0])
    layer_cos = np.array(
        [
            _ratio(
                p["dot"][layer == blk].sum(),
                math.sqrt(p["tau_sq_a"][layer == blk].sum() * p["tau_sq_b"][layer == blk].sum()),
            )
            for blk in blocks
        ],
        dtype=np.float64,
    )
    layer_cos = np.clip(layer_cos, -1.0, 1.0)
    # Thirds by depth: rank r of L blocks falls in third floor(3 (r + 1/2) / L), so 30 blocks split 10/10/10
    # and 3 blocks one each; with fewer than 3 blocks some thirds are empty (NaN).
    third = (3 * (2 * np.arange(len(blocks)) + 1)) // (2 * max(len(blocks), 1))

    theta_ab = (p["base_sq"] + p["tau_base_a"] + p["tau_base_b"] + p["dot"]).sum()
    dist_sq = max(0.0, tau_sq_a + tau_sq_b - 2 * dot)
    features = {
        "tv_cos": _ratio(dot, norm_a * norm_b),
        "tv_cos_layer_mean": _nan_stat(layer_cos, np.mean),
        "tv_cos_layer_min": _nan_stat(layer_cos, np.min),
        "tv_cos_early": _nan_stat(layer_cos[third == 0], np.mean),
        "tv_cos_mid": _nan_stat(layer_cos[third == 1], np.mean),
        "tv_cos_late": _nan_stat(layer_cos[third == 2], np.mean),
        "tv_norm_ratio": _ratio(norm_a, norm_b),
        "tv_rel_norm_a": _ratio(norm_a, base_norm),
        "tv_rel_norm_b": _ratio(norm_b, base_norm),
        "sign_agree": _ratio(p["sign_num"].sum(), p["sign_den"].sum()),
        "sign_agree_top": _ratio(p["top_sign_num"].sum(), p["top_sign_den"].sum()),
        "top_jaccard": _ratio(p["top_inter"].sum(), p["top_union"].sum()),
        "weight_cos": _ratio(theta_ab, math.sqrt(p["theta_sq_a"].sum() * p["theta_sq_b"].sum())),
        "weight_dist_rel": _ratio(math.sqrt(dist_sq), base_norm),
    }
    for key in ("tv_cos", "weight_cos"):
        if not math.isnan(features[key]):
            features[key] = min(1.0, max(-1.0, features[key]))
    return features


def _count_parts(ta, tb, thr_a, thr_b) -> dict[str, object]:
    """Per-coordinate indicators of the count features (numpy or torch, flat, same length)."""
    nonzero = (ta != 0) & (tb != 0)
    agree = nonzero & ((ta > 0) == (tb > 0))
    mag_a, mag_b = abs(ta), abs(tb)
    top_a = (mag_a >= thr_a) & (mag_a > 0)
    top_b = (mag_b >= thr_b) & (mag_b > 0)
    either = top_a | top_b
    return {
        "sign_num": agree,
        "sign_den": nonzero,
        "top_sign_num": agree & either,
        "top_sign_den": nonzero & either,
        "top_inter": top_a & top_b,
        "top_union": either,
    }


def structural_features(
    a: Sketch,
    b: Sketch,
    *,
    top_fraction: float | None = None,
    estimator: Literal["ratio", "unbiased"] = "ratio",
) -> dict[str, float]:
    """Estimate the structural features of an ordered pair from the two checkpoints' sketches.

    With ``tau = theta - theta_base`` and norms over all tensors:

    * ``tv_cos`` = ``sum_t <tau_a, tau_b>_t / (||tau_a|| ||tau_b||)``; ``<.,.>_t`` from :func:`tau_dot`,
      norms exact.
    * ``tv_cos_layer_mean``, ``tv_cos_layer_min``: mean and minimum over transformer blocks of the block's
      task-vector cosine (its tensors pooled); tensors outside blocks (``layer == -1``) are left out.
      ``tv_cos_early``, ``tv_cos_mid``, ``tv_cos_late``: mean over the first, middle and last third of the
      blocks (rank ``r`` of ``L`` blocks is in third ``floor(3 (r + 1/2) / L)``).
    * ``tv_norm_ratio`` = ``||tau_a|| / ||tau_b||``; ``tv_rel_norm_a``, ``tv_rel_norm_b`` =
      ``||tau|| / ||theta_base||`` (exact).
    * ``sign_agree``: among coordinates where both ``tau_a`` and ``tau_b`` are non-zero, the fraction whose
      signs agree; ``sign_agree_top``: the same, restricted to coordinates in the top set of either model.
      ``top_jaccard`` = ``|top_a ∩ top_b| / |top_a ∪ top_b|``. Each is a ratio of coordinate counts
      estimated from the samples, each sample counting ``n/m`` coordinates of its tensor; top sets use each
      model's exact per-tensor threshold and the tie rule of :func:`weight_sketch`.
    * ``weight_cos`` = ``sum_t (||theta_base||^2 + <tau_a, base> + <tau_b, base> + <tau_a, tau_b>)_t /
      (||theta_a|| ||theta_b||)``: only ``<tau_a, tau_b>`` is estimated.
    * ``weight_dist_rel`` = ``sqrt(max(0, ||tau_a||^2 + ||tau_b||^2 - 2 <tau_a, tau_b>)) / ||theta_base||``,
      i.e. ``||theta_a - theta_b|| / ||theta_base||``.

    Zero denominators give NaN: every cosine and ``tv_norm_ratio`` involving the base itself (``tau = 0``),
    sign features when no coordinate is non-zero in both models, ``top_jaccard`` when both top sets are
    empty, and a third of the blocks that is empty. Cosines are clipped to ``[-1, 1]`` (only the
    ``"unbiased"`` estimator can leave that range).

    Parameters
    ----------
    a, b : mapping of str to numpy.ndarray
        Sketches of the two checkpoints of the same run: :func:`weight_sketch`'s dict, the loaded ``.npz``
        or ``ModelSummary.sketch`` (keys with or without the ``sketch/`` prefix).
    top_fraction : float, optional
        Accepted so that callers can pass ``meta.sketch.top_fraction`` as to
        :func:`structural_features_exact`; the sketches' stored thresholds already encode it, so it is only
        range-checked.
    estimator : {"ratio", "unbiased"}
        Estimator of ``<tau_a, tau_b>`` (see :func:`tau_dot`).

    Returns
    -------
    dict of str to float
        The features of :data:`FEATURE_NAMES`, in that order.

    Raises
    ------
    ValueError
        If the sketches were not drawn with the same tensors, coordinates and base.
    """
    if top_fraction is not None and not 0 < top_fraction < 1:
        raise ValueError(f"top_fraction must be in (0, 1), got {top_fraction}")
    a, b = _as_sketch(a), _as_sketch(b)
    dot = tau_dot(a, b, estimator=estimator)
    offsets = a["sketch/offsets"]
    m = np.diff(offsets)
    ta, tb = np.asarray(a["sketch/tau"]), np.asarray(b["sketch/tau"])
    indicators = _count_parts(ta, tb, np.repeat(a["sketch/tau_threshold"], m), np.repeat(b["sketch/tau_threshold"], m))
    weights = _sample_weights(a)
    parts = {key: _segment_sum(weights * value, offsets) for key, value in indicators.items()}
    parts.update(
        layer=np.asarray(a["sketch/layer"]),
        dot=dot,
        tau_sq_a=np.square(a["sketch/tau_norm"]),
        tau_sq_b=np.square(b["sketch/tau_norm"]),
        theta_sq_a=np.square(a["sketch/theta_norm"]),
        theta_sq_b=np.square(b["sketch/theta_norm"]),
        base_sq=np.square(a["sketch/base_norm"]),
        tau_base_a=np.asarray(a["sketch/tau_dot_base"], dtype=np.float64),
        tau_base_b=np.asarray(b["sketch/tau_dot_base"], dtype=np.float64),
    )
    return _features_from_parts(parts)


def structural_features_exact(
    ckpt_a: str | os.PathLike,
    ckpt_b: str | os.PathLike,
    base_dir: str | os.PathLike,
    *,
    top_fraction: float,
) -> dict[str, float]:
    """The features of :func:`structural_features`, computed over every coordinate.

    Streams the three checkpoints one tensor at a time (owning that tensor's two task vectors, a ``|tau|``
    copy and slices), with the same float32 ``tau``, float64 accumulation, thresholds and tie rule as
    :func:`weight_sketch`. Used by the tests and to measure the sketch's error.

    Parameters
    ----------
    ckpt_a, ckpt_b, base_dir : path-like
        The ordered pair and their common base.
    top_fraction : float
        Fraction of each tensor's coordinates, by ``|tau|``, in its top set.

    Returns
    -------
    dict of str to float
        The features of :data:`FEATURE_NAMES`, in that order.

    Raises
    ------
    ValueError
        As :func:`weight_sketch`.
    """
    if not 0 < top_fraction < 1:
        raise ValueError(f"top_fraction must be in (0, 1), got {top_fraction}")
    dirs = [Path(ckpt_a), Path(ckpt_b), Path(base_dir)]
    keys = ("dot", "tau_sq_a", "tau_sq_b", "theta_sq_a", "theta_sq_b", "base_sq", "tau_base_a", "tau_base_b")
    keys += ("sign_num", "sign_den", "top_sign_num", "top_sign_den", "top_inter", "top_union")
    rows: dict[str, list[float]] = {key: [] for key in keys}
    layers = []
    for name, n, (theta_a, theta_b, base) in _stream(_shared_tensors(dirs)):
        layers.append(layer_index(name))
        rows["theta_sq_a"].append(_dot64(theta_a, theta_a))
        rows["theta_sq_b"].append(_dot64(theta_b, theta_b))
        rows["base_sq"].append(_dot64(base, base))
        tau_a, tau_b = theta_a - base, theta_b - base
        rows["dot"].append(_dot64(tau_a, tau_b))
        rows["tau_sq_a"].append(_dot64(tau_a, tau_a))
        rows["tau_sq_b"].append(_dot64(tau_b, tau_b))
        rows["tau_base_a"].append(_dot64(tau_a, base))
        rows["tau_base_b"].append(_dot64(tau_b, base))
        del base
        k = top_k(n, top_fraction)
        thr_a, thr_b = _threshold(tau_a.abs(), k), _threshold(tau_b.abs(), k)  # copies: tau is still needed
        totals = dict.fromkeys(keys[8:], 0)
        for start in range(0, n, _CHUNK):
            chunk = _count_parts(tau_a[start : start + _CHUNK], tau_b[start : start + _CHUNK], thr_a, thr_b)
            for key, mask in chunk.items():
                totals[key] += int(mask.sum())
        for key, value in totals.items():
            rows[key].append(float(value))
        del tau_a, tau_b, theta_a, theta_b
    parts = {key: np.array(values, dtype=np.float64) for key, values in rows.items()}
    parts["layer"] = np.array(layers, dtype=np.int32)
    return _features_from_parts(parts)
