"""The model-summary file (``features/models/<name>.npz``) and its parts: format, writing, reading.

A summary holds per-task functional arrays of one probe pass (:mod:`simmerge.features.probe_pass`) and the weight
sketch (:mod:`simmerge.features.sketch`) under one JSON ``meta``; ``docs/model-summary-format.md`` describes the
layout. Files are written uncompressed with fixed member timestamps, so equal inputs give equal bytes, and are
read without ever unpickling. :func:`assemble_summary` (rule ``probe_features``) joins the parts;
:func:`load_summary` reads a summary back and checks it.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

import numpy as np

from simmerge.core.io import atomic_path

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


MB = 1_000_000
"""Bytes per MB in the ``*_max_mb`` budgets."""


# A fixed member timestamp (the zip epoch) so the same arrays always give the same bytes.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


RESERVED_TASKS = frozenset({"meta", "sketch"})


FUNCTIONAL_KEYS = (
    "lengths",
    "token_ids",
    "topk_ids",
    "topk_logp",
    "hidden",
    "hidden_norm",
    "attention",
    "attention_norm",
)
"""Keys every task has (``t/<key>``); ``logp`` is added when the task's log-probs are stored in full."""


SKETCH_KEYS = (
    "names",
    "layer",
    "numel",
    "tau_norm",
    "theta_norm",
    "base_norm",
    "tau_dot_base",
    "tau_threshold",
    "offsets",
    "coords",
    "tau",
)
"""Keys of the structural part (``sketch/<key>``), written by :func:`simmerge.features.sketch.weight_sketch`."""


META_FIELDS = (
    "format_version",
    "name",
    "tasks",
    "num_layers",
    "num_heads",
    "hidden_size",
    "vocab_size",
    "top_k",
    "logprobs",
    "hidden",
    "attention",
    "projection_seed",
    "probe_sha256",
    "sketch",
)


class SummaryFormatError(ValueError):
    """A model summary file does not follow ``docs/model-summary-format.md``."""


def _write_npz(handle: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays as an uncompressed ``.npz`` with fixed member timestamps, so equal inputs give equal bytes.

    ``numpy.savez`` stamps every member with the current time; this is the same archive layout without it.
    """
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE_TIME)
            info.external_attr = 0o644 << 16
            with archive.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def write_archive(out_path: str | os.PathLike, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``meta`` (as JSON) and ``arrays`` atomically, and check the file reads back as written."""
    everything = {"meta": np.array(json.dumps(meta, sort_keys=True))}
    everything.update(arrays)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as handle:
            _write_npz(handle, everything)
        with np.load(tmp, allow_pickle=False) as check:
            if sorted(check.files) != sorted(everything) or json.loads(str(check["meta"])) != meta:
                raise RuntimeError(f"{out_path}: the written archive does not read back as written")


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Only the parsed ``meta`` of a file written by :func:`write_archive`: the arrays are not read."""
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(str(archive["meta"]))


def read_archive(
    path: str | os.PathLike, *, what: str = "probe part", rule: str = "probe_pass"
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The parsed ``meta`` and every other array of a file written by :func:`write_archive` (never unpickling).

    ``what`` and ``rule`` name the kind of file and the rule that rewrites it in error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "meta" not in archive.files:
                raise SummaryFormatError(f"{path}: no 'meta' array; not a SimMerge {what}")
            try:
                meta = json.loads(str(archive["meta"]))
            except json.JSONDecodeError as err:
                raise SummaryFormatError(f"{path}: 'meta' is not JSON: {err}") from None
            arrays = {key: archive[key] for key in archive.files if key != "meta"}
    except ValueError as err:
        if isinstance(err, SummaryFormatError) or "allow_pickle" not in str(err):
            raise
        # numpy refuses an object array, which only unpickling could rebuild: the file was not written here
        raise SummaryFormatError(
            f"{path}: holds a pickled object array, which is never loaded (allow_pickle=False); "
            f"delete the file and rerun rule {rule}"
        ) from None
    return meta, arrays


def write_summary(
    out_path: str | os.PathLike,
    *,
    name: str,
    tasks: Sequence[str],
    pass_meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    sketch_meta: Mapping[str, Any],
    sketch: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    meta = {**pass_meta, "format_version": FORMAT_VERSION, "name": name, "tasks": list(tasks), "sketch": sketch_meta}
    started = time.perf_counter()
    write_archive(out_path, meta, {**arrays, **sketch})
    size_mb = Path(out_path).stat().st_size / MB
    log.info("wrote %s (%.1f MB) in %.1fs", out_path, size_mb, time.perf_counter() - started)
    return meta


# dtype: parts written before it was recorded were float32 passes (read as None, so they still agree)
_SHARED_PASS_FIELDS = ("num_layers", "num_heads", "hidden_size", "vocab_size", "top_k", "projection_seed", "dtype")


_PER_TASK_PASS_FIELDS = ("logprobs", "hidden", "attention", "probe_sha256")


def assemble_summary(
    task_parts: Mapping[str, str | os.PathLike],
    sketch_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    name: str,
) -> dict[str, Any]:
    """Write ``features/models/<name>.npz`` from per-task probe parts and the weight sketch (rule ``probe_features``).

    Parameters
    ----------
    task_parts : mapping of str to path
        Task name → the part :func:`probe_task` wrote for it, in config order.
    sketch_path : path
        The file :func:`sketch_checkpoint` wrote.
    out_path : path
        The summary to write (atomically); byte-identical to what
        :func:`simmerge.features.probe_pass.summarise_checkpoint` writes for the same checkpoint, tasks and settings.
    name : str
        Catalog name recorded in ``meta``.

    Raises
    ------
    FileNotFoundError
        If a part is missing.
    SummaryFormatError
        If a part holds another task than the one it is given for, or the parts disagree on the model's shape,
        ``top_k``, the projection seed or the dtype (parts of different runs or settings); the message names both
        files.
    """
    if not task_parts:
        raise ValueError(f"{name}: no task part to assemble")
    pass_meta: dict[str, Any] = {field: {} for field in (*_PER_TASK_PASS_FIELDS, "provenance", "probe_source")}
    arrays: dict[str, np.ndarray] = {}
    first: tuple[Path, dict[str, Any]] | None = None
    for task, path in task_parts.items():
        meta, part = read_archive(path)
        if list(meta.get("probe_sha256", {})) != [task]:
            held = ", ".join(meta.get("probe_sha256", {})) or "no task"
            raise SummaryFormatError(f"{path}: is not the probe part of task {task!r} (it holds {held})")
        if first is None:
            first = (Path(path), meta)
            pass_meta.update({field: meta.get(field) for field in _SHARED_PASS_FIELDS})
        differing = [field for field in _SHARED_PASS_FIELDS if meta.get(field) != first[1].get(field)]
        if differing:
            raise SummaryFormatError(
                f"{path} and {first[0]} disagree on {', '.join(differing)}: the parts come from different "
                "checkpoints or feature settings; delete them and rerun rule probe_pass"
            )
        for field in _PER_TASK_PASS_FIELDS:
            pass_meta[field][task] = meta[field][task]
        # parts written before provenance was recorded have none: None marks them unknown
        pass_meta["provenance"][task] = meta.get("provenance", {}).get(task)
        pass_meta["probe_source"][task] = meta.get("probe_source", {}).get(task)
        arrays.update(part)
    sketch_meta, sketch = read_archive(sketch_path, what="weight sketch", rule="weight_sketch")
    return write_summary(
        out_path,
        name=name,
        tasks=list(task_parts),
        pass_meta=pass_meta,
        arrays=arrays,
        sketch_meta=sketch_meta,
        sketch=dict(sorted(sketch.items())),
    )


@dataclass(frozen=True)
class ModelSummary:
    """Read-only view of one ``features/models/<name>.npz`` (see ``docs/model-summary-format.md``).

    Build it with :func:`load_summary`. Arrays are loaded into memory and marked read-only.

    Attributes
    ----------
    path : pathlib.Path
        The file it was read from.
    meta : mapping
        The parsed ``meta`` JSON.
    arrays : mapping of str to numpy.ndarray
        Every array of the file by its full key (``"<task>/hidden"``, ``"sketch/tau"``), ``meta`` excluded.

    Examples
    --------
    >>> s = load_summary("results/default/features/models/base.npz")  # doctest: +SKIP
    >>> f = s.functional("n2w_fr")  # doctest: +SKIP
    >>> f["topk_logp"].shape, s.sketch["tau"].dtype  # doctest: +SKIP
    """

    path: Path
    meta: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray]

    @property
    def name(self) -> str:
        """Catalog name of the checkpoint."""
        return self.meta["name"]

    @property
    def tasks(self) -> tuple[str, ...]:
        """Task names, in config order."""
        return tuple(self.meta["tasks"])

    def functional(self, task: str) -> dict[str, np.ndarray]:
        """The functional arrays of one task, keyed without the task prefix.

        Parameters
        ----------
        task : str
            One of :attr:`tasks`.

        Returns
        -------
        dict of str to numpy.ndarray
            ``lengths``, ``token_ids``, ``topk_ids``, ``topk_logp``, ``hidden``, ``hidden_norm``,
            ``attention``, ``attention_norm``, and ``logp`` when ``meta["logprobs"][task] == "full"``.

        Raises
        ------
        KeyError
            If the file has no such task.
        """
        if task not in self.tasks:
            raise KeyError(f"{self.path}: no task {task!r}; tasks: {', '.join(self.tasks)}")
        prefix = f"{task}/"
        return {key.removeprefix(prefix): value for key, value in self.arrays.items() if key.startswith(prefix)}

    def offsets(self, task: str) -> np.ndarray:
        """``[P + 1]`` int64 start of each probe's positions in the task's ``[N, ...]`` arrays (then ``N``)."""
        lengths = self.arrays[f"{task}/lengths"]
        return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])

    @property
    def sketch(self) -> dict[str, np.ndarray]:
        """The structural arrays, keyed without the ``sketch/`` prefix (``names``, ``tau``, ``offsets``, …)."""
        return {key.removeprefix("sketch/"): value for key, value in self.arrays.items() if key.startswith("sketch/")}


def _expected_keys(meta: Mapping[str, Any]) -> Iterator[str]:
    for task in meta["tasks"]:
        yield from (f"{task}/{key}" for key in FUNCTIONAL_KEYS)
        if meta["logprobs"].get(task) == "full":
            yield f"{task}/logp"
    yield from (f"sketch/{key}" for key in SKETCH_KEYS)


def load_summary(path: str | os.PathLike) -> ModelSummary:
    """Read and check a model summary written by :func:`simmerge.features.probe_pass.summarise_checkpoint`.

    Parameters
    ----------
    path : path
        A ``features/models/<name>.npz``.

    Returns
    -------
    ModelSummary
        Its meta and arrays.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    SummaryFormatError
        If ``meta`` is missing or unreadable, ``format_version`` is not 1, a field or array of the contract
        is missing, or an array needs unpickling; the message names the file and everything that is missing.
    """
    path = Path(path)
    meta, arrays = read_archive(path, what="model summary", rule="probe_features")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise SummaryFormatError(
            f"{path}: format_version {version!r}, but this code reads version {FORMAT_VERSION}; "
            "rerun rule probe_features"
        )
    missing_meta = [field for field in META_FIELDS if field not in meta]
    if missing_meta:
        raise SummaryFormatError(f"{path}: meta lacks {', '.join(missing_meta)}")
    missing = [key for key in _expected_keys(meta) if key not in arrays]
    if missing:
        raise SummaryFormatError(f"{path}: missing arrays {', '.join(missing)}")
    for value in arrays.values():
        value.flags.writeable = False
    return ModelSummary(path=path, meta=MappingProxyType(meta), arrays=MappingProxyType(arrays))
