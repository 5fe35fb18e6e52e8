"""Run one mergekit merge of an expert pair in-process, offline, and record how it went.

:func:`merge_pair` is the merge half of the ``merge_score`` rule: it turns an
:class:`~simmerge.merges.operators.Operator` and an ordered pair into mergekit's YAML, runs
``mergekit.merge.run_merge`` on exactly that text, checks that the merged weights are finite, and returns a record.
A merge that mergekit refuses at run time or that yields NaN/Inf weights is data, not a crash: the record says
``"failed"`` with the error, and the caller gives the merge its documented failure score. Mistakes of the caller
(missing input directories, a non-empty output directory, CUDA requested where there is none), running out of memory
and running out of disk space still raise, so that Snakemake reports them or retries the job with more resources
instead of recording a wrong label."""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from simmerge.catalog.manifest import check_finite, check_remote_code, checkpoints_sha256
from simmerge.core.device import resolve_device, set_threads
from simmerge.core.io import atomic_dir, scratch_directory
from simmerge.core.provenance import provenance
from simmerge.core.runtime import offline_hub
from simmerge.merges.items import join_items
from simmerge.merges.operators import Operator
from simmerge.merges.scoring import normalise_scores, score_checkpoint

log = logging.getLogger(__name__)

CONFIG_NAME = "mergekit_config.yml"

# The files mergekit's own tokenizer copy takes from the donor model (mergekit/merge.py, _copy_tokenizer).
TOKENIZER_FILES = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer.model",
    "added_tokens.json",
    "merges.txt",
    "vocab.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)


class DiskFullError(OSError):
    """The file system ran out of space (or quota) while a merge was written; the message says where and what to do."""


# errno values of a full file system; safetensors' Rust writer reports them as text, so the text is matched too.
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXT = tuple(os.strerror(code) for code in _DISK_FULL_ERRNOS) + ("StorageFull", "QuotaExceeded")


def is_disk_full(error: BaseException) -> bool:
    """Whether an exception, or one it was raised from, is a full disk or an exhausted quota."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(current) for text in _DISK_FULL_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False


def config_yaml(config: dict[str, Any]) -> str:
    """The YAML text of a mergekit config mapping: ``yaml.safe_dump`` with sorted keys, block style."""
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False, allow_unicode=True)


def merge_pair(
    operator: Operator,
    a_dir: str | os.PathLike,
    b_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    seed: int,
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Merge the ordered pair (a, b) with one operator into ``out_dir`` and check the result.

    Runs ``mergekit.merge.run_merge`` in this process on the YAML of
    :meth:`Operator.to_mergekit_config <simmerge.merges.operators.Operator.to_mergekit_config>` (absolute local paths,
    float32 arithmetic) with the hub switched off, then :func:`simmerge.catalog.manifest.check_finite` on the output.
    The output gets the catalog base's tokenizer files (mergekit copies them from its ``base_model`` or first
    model, which for linear and slerp is an expert). The YAML text is written to ``out_dir/mergekit_config.yml``
    and returned in the record, so the caller can store it next to the scores.

    Parameters
    ----------
    operator : Operator
        The merge operator.
    a_dir, b_dir : path-like
        Checkpoints of the anchor a and of the other model b.
    base_dir : path-like
        The catalog base (its tokenizer goes into the output; the merge reads it when the operator uses it).
    out_dir : path-like
        Where the merged checkpoint goes: a new or empty directory, normally the job's temporary directory.
        After a failed merge it holds no weight files, only the YAML.
    seed : int
        Merge seed. Randomised operators (``operator.randomised``: DARE, DELLA) run with
        ``MergeOptions.random_seed = seed``; the others with 0, so a seed change does not touch them.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; where mergekit does the tensor arithmetic.
    threads : int, optional
        CPU threads for torch (None: leave torch's setting).
    trust_remote_code : bool
        Let mergekit run modelling code shipped with the checkpoints (``MergeOptions.trust_remote_code``): true
        only when every merged catalog entry sets it.

    Returns
    -------
    dict
        ``operator``, ``method``, ``order_sensitive``, ``randomised``, ``seed`` (None for a deterministic
        operator), ``device``, ``config_yaml`` (the exact text mergekit ran), ``wall_seconds`` (merge and
        finiteness check), ``peak_rss_mb`` (peak resident memory of this process so far, Linux ``ru_maxrss``),
        ``peak_gpu_mb`` (CUDA only, else None), ``mergekit_version``, ``trust_remote_code``, ``status`` (``"ok"``
        or ``"failed"``) and ``error`` (``"ExceptionType: message"`` or None).

    Raises
    ------
    FileNotFoundError
        If an input directory or its ``config.json`` is missing.
    FileExistsError
        If ``out_dir`` exists and is not empty.
    ValueError
        If :meth:`~simmerge.merges.operators.Operator.to_mergekit_config` refuses the paths, or ``threads`` < 1.
    RuntimeError
        If CUDA is requested but not available.
    MemoryError, torch.OutOfMemoryError
        Out of memory is a resource limit, not a property of the merge: it propagates.
    simmerge.catalog.manifest.PreflightError
        If an input needs its own modelling code and ``trust_remote_code`` is false.
    DiskFullError
        The disk or quota filled up while the merge was written; as for memory, it propagates.
    """
    for role, path in (("a_dir", a_dir), ("b_dir", b_dir)):
        if not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"{role} {str(path)!r} is not a checkpoint directory (no config.json)")
    config = operator.to_mergekit_config(a_dir, b_dir, base_dir, seed=seed)
    record = {
        "operator": operator.name,
        "method": operator.method,
        "order_sensitive": operator.order_sensitive,
        "randomised": operator.randomised,
        "seed": seed if operator.randomised else None,
    }
    merged = run_merge_config(
        config,
        base_dir,
        out_dir,
        seed=seed if operator.randomised else 0,
        # the directory names are the catalog names, so messages say which pair this merge was
        label=f"{operator.name} of {Path(a_dir).name} + {Path(b_dir).name}",
        device=device,
        threads=threads,
        trust_remote_code=trust_remote_code,
    )
    return {**record, **merged}


def run_merge_config(
    config: dict[str, Any],
    base_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    seed: int,
    label: str,
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Run one mergekit YAML mapping in this process into ``out_dir`` and check the result.

    The common body of :func:`merge_pair` and of multi-way merges: writes the YAML to
    ``out_dir/mergekit_config.yml``, runs ``mergekit.merge.run_merge`` on exactly that text with the hub switched
    off (``MergeOptions.random_seed = seed``), checks the weights are finite and gives the output the catalog
    base's tokenizer. A failed merge is recorded, not raised, and leaves no weight file behind.

    Returns
    -------
    dict
        ``device``, ``config_yaml``, ``wall_seconds``, ``peak_rss_mb``, ``peak_gpu_mb``, ``mergekit_version``,
        ``trust_remote_code``, ``status`` (``"ok"`` or ``"failed"``) and ``error``.

    Raises
    ------
    DiskFullError
        When the output's file system fills up: not a property of the merge, so never recorded as a failed
        merge. The partial weights are deleted first; the message names the merge, the directory and the fix.
    """
    if not (Path(base_dir) / "config.json").is_file():
        raise FileNotFoundError(f"base_dir {str(base_dir)!r} is not a checkpoint directory (no config.json)")
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"out_dir {str(out)!r} is not empty; merge into a new or empty directory")
    if not trust_remote_code:
        # mergekit would refuse such an input only mid-merge, and that refusal would be recorded as a failed
        # merge (a wrong label): refuse it here, as a mistake of the caller.
        for path in _merge_inputs(config, base_dir):
            check_remote_code(path, name=path.name, trust_remote_code=False)
    torch_device = resolve_device(device)
    set_threads(threads)
    text = config_yaml(config)
    out.mkdir(parents=True, exist_ok=True)
    try:
        (out / CONFIG_NAME).write_text(text, encoding="utf-8")
    except OSError as err:
        if is_disk_full(err):
            raise _disk_full(label, out, base_dir, err) from err
        raise

    # deferred: torch and mergekit take seconds to import and only a merge needs them
    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from simmerge.merges import sparsification

    sparsification.install()  # mergekit's magnitude masks by selection, not a full sort: the same masks, faster
    options = MergeOptions(
        device=str(torch_device),
        cuda=torch_device.type == "cuda",
        random_seed=seed,
        copy_tokenizer=True,
        # Catalog checkpoints are safetensors only; lazy unpickling is for pickled .bin shards.
        lazy_unpickle=False,
        safe_serialization=True,  # never write a pickled .bin merge
        trust_remote_code=trust_remote_code,
        write_model_card=False,
        quiet=True,
    )
    is_cuda = torch_device.type == "cuda"
    if is_cuda:
        torch.cuda.reset_peak_memory_stats(torch_device)
    status, error = "ok", None
    start = time.perf_counter()
    try:
        # Parse the written text, not the dict, so what mergekit runs is exactly what is stored.
        merge_config = MergeConfiguration.model_validate(yaml.safe_load(text))
        with offline_hub(), _restored_rng():
            run_merge(merge_config, str(out), options=options, config_source=text)
        check_finite(out, name=f"{label} merge")
        _copy_tokenizer(Path(base_dir), out)
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as err:  # a merge that fails is a result: recorded, never raised
        if is_disk_full(err):
            _remove_weights(out)
            raise _disk_full(label, out, base_dir, err) from err
        status, error = "failed", f"{type(err).__name__}: {err}"
        log.warning("merge %r failed: %s", label, error)
        _remove_weights(out)
    wall = time.perf_counter() - start
    log.info("merge %s (%s): %s in %.1f s", label, config["merge_method"], status, wall)
    return {
        "device": str(torch_device),
        "config_yaml": text,
        "wall_seconds": round(wall, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated(torch_device) / 2**20, 1) if is_cuda else None,
        "mergekit_version": _mergekit_version(),
        "trust_remote_code": trust_remote_code,
        "status": status,
        "error": error,
    }


@contextlib.contextmanager
def _restored_rng() -> Iterator[None]:
    """run_merge reseeds Python, NumPy and torch globally (transformers.set_seed); give the caller its state back."""
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _copy_tokenizer(base_dir: Path, out: Path) -> None:
    """Give the merge the base's tokenizer files, replacing those mergekit copied from its donor model."""
    for name in TOKENIZER_FILES:
        source = base_dir / name
        if source.is_file():
            shutil.copyfile(source, out / name)


def _merge_inputs(config: dict[str, Any], base_dir: str | os.PathLike) -> list[Path]:
    """Every checkpoint directory a mergekit config reads: its models, its base_model and the catalog base."""
    paths = [entry["model"] for entry in config.get("models", [])]
    paths += [config["base_model"]] if config.get("base_model") else []
    return [Path(path) for path in dict.fromkeys([*paths, str(base_dir)])]


def _disk_full(label: str, out: Path, base_dir: str | os.PathLike, err: BaseException) -> DiskFullError:
    """The error of a merge whose output did not fit: where it was written, how much it needs, what to do."""
    free = shutil.disk_usage(out if out.exists() else out.parent).free
    return DiskFullError(
        errno.ENOSPC,
        f"merge {label!r} ran out of disk space writing {out} ({_size(free)} free there; a merge takes about "
        f"{_size(_checkpoint_bytes(base_dir))}, the size of the base). Its partial weights were deleted and no "
        "record was written. Free space on that file system, or set merges.scratch_dir in the config to a "
        f"directory with room, then rerun: finished merges are kept. ({type(err).__name__}: {err})",
    )


def _check_scratch_room(scratch: Path, needed: int, label: str) -> None:
    """Refuse a merge whose output cannot fit in the scratch folder, before anything is merged."""
    free = shutil.disk_usage(scratch).free
    if free < needed:
        raise DiskFullError(
            errno.ENOSPC,
            f"merge {label!r}: the scratch folder {scratch} has {_size(free)} free, but a merged checkpoint takes "
            f"about {_size(needed)} (the size of the parents' weights). Nothing was merged. Set merges.scratch_dir "
            "to a folder with room, or give the job a larger temporary folder (Snakemake's tmpdir resource; on "
            "SLURM, the node's local disk requested by disk_mb).",
        )


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def _remove_weights(out: Path) -> None:
    """Delete weight files of a failed merge, so nothing downstream can score a broken checkpoint."""
    for path in out.iterdir():
        if path.name.endswith((".safetensors", ".safetensors.index.json", ".bin")):
            path.unlink()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _mergekit_version() -> str | None:
    try:
        return metadata.version("mergekit")
    except metadata.PackageNotFoundError:  # pragma: no cover - mergekit is a dependency
        return None


# A failed merge (mergekit error, NaN/Inf weights) produced no usable model: it keeps none of either parent's
# skill, so its normalised score is 0 on every task rather than a missing value that would drop it from the labels.
FAILED_MERGE_SCORE = 0.0

# Where merged weights go while they are scored: a RAM-backed file system when there is one (Linux /dev/shm), so a
# merge costs no disk writes and no page-cache eviction of the catalog's checkpoints.
RAM_SCRATCH = Path("/dev/shm")


def default_scratch_dir(min_free_bytes: int = 0) -> str | None:
    """:data:`RAM_SCRATCH` when it exists and has ``min_free_bytes`` free, else None (the system temp dir)."""
    if RAM_SCRATCH.is_dir() and os.access(RAM_SCRATCH, os.W_OK):
        if shutil.disk_usage(RAM_SCRATCH).free >= min_free_bytes:
            return str(RAM_SCRATCH)
    return None


def score_merge(
    merged_dir: str | os.PathLike,
    merge_record: Mapping[str, Any],
    parents: Sequence[Mapping[str, float | None]],
    tasks: Sequence[str],
    *,
    task_dir: str | os.PathLike,
    data_files: Mapping[str, str | os.PathLike],
    batch_size: int = 16,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    exact_match: str = "one_pass",
    dtype: str = "auto",
) -> dict[str, Any]:
    """Score a merge with lm-eval and divide each task's metric by the better parent's; a failed merge scores 0.

    The one rule of 2-way labels (:func:`merge_score`: the parents are the pair) and multi-way merges
    (:func:`simmerge.multiway.execution.score_node`: one reference, the best candidate expert per task). A merge
    whose record is not ``"ok"`` is not scored: every task and the mean get :data:`FAILED_MERGE_SCORE`.

    Parameters
    ----------
    merged_dir : path-like
        The merged checkpoint.
    merge_record : mapping
        The merge's record (:func:`merge_pair`, :func:`simmerge.multiway.execution.merge_node`): its ``status``,
        and its ``trust_remote_code``, which the scoring inherits.
    parents : sequence of mapping
        Task → score of each parent, as :func:`simmerge.merges.scoring.normalise_scores` takes them.
    tasks : sequence of str
        The tasks recorded and averaged, each one in ``data_files``.
    task_dir, data_files, batch_size, limit, device, threads, exact_match, dtype
        As :func:`simmerge.merges.scoring.score_checkpoint`.

    Returns
    -------
    dict
        ``items`` (the per-item outcomes of every task in one DataFrame, :mod:`simmerge.merges.items`; empty for a
        failed merge), ``eval_seconds`` and ``load_seconds`` (lm-eval's wall time and its model load; 0 for a
        failed merge),
        ``tasks`` (task → ``metric``, ``stderr`` and ``normalised``; for a scored merge also ``primary_metric``,
        ``n`` and ``version``), ``score`` (mean normalised score over the tasks with a defined ratio; None when
        no task has one) and, for a scored merge, ``lm_eval_version`` and ``device``.
    """
    if merge_record["status"] != "ok":
        return {
            "items": join_items({}),
            "eval_seconds": 0.0,
            "load_seconds": 0.0,
            "tasks": {task: {"metric": None, "stderr": None, "normalised": FAILED_MERGE_SCORE} for task in tasks},
            "score": FAILED_MERGE_SCORE,
        }
    scores = score_checkpoint(
        merged_dir,
        task_dir,
        data_files,
        batch_size=batch_size,
        limit=limit,
        device=device,
        threads=threads,
        trust_remote_code=bool(merge_record.get("trust_remote_code", False)),
        exact_match=exact_match,
        dtype=dtype,
    )
    metrics = {task: scores["tasks"][task]["score"] for task in tasks}
    normalised = normalise_scores(metrics, parents)
    per_task = {}
    for task in tasks:
        entry = scores["tasks"][task]
        per_task[task] = {
            "metric": metrics[task],
            "stderr": entry["stderr"].get(entry["primary_metric"]),
            "normalised": normalised[task],
            "primary_metric": entry["primary_metric"],
            "n": entry["n"],
            "version": entry["version"],
        }
    defined = [value for value in normalised.values() if value is not None]
    return {
        "items": join_items({task: scores["items"][task] for task in tasks}),
        "eval_seconds": round(scores["wall_seconds"], 3),
        "load_seconds": round(scores["load_seconds"], 3),
        "tasks": per_task,
        "score": sum(defined) / len(defined) if defined else None,
        "lm_eval_version": scores["lm_eval_version"],
        "device": scores["device"],
        "dtype": scores["dtype"],
    }


def merge_score(
    operator: Operator,
    a_dir: str | os.PathLike,
    b_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    *,
    parent_scores: tuple[dict[str, Any], dict[str, Any]],
    task_dir: str | os.PathLike,
    data_files: dict[str, str | os.PathLike],
    seeds: Sequence[int],
    batch_size: int = 16,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    scratch_dir: str | os.PathLike | None = None,
    keep_dir: str | os.PathLike | None = None,
    trust_remote_code: bool = False,
    manifests: Sequence[str | os.PathLike] = (),
    exact_match: str = "one_pass",
    dtype: str = "auto",
    drift: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge an ordered pair with one operator, score the merge with lm-eval and normalise by the parents.

    The body of the ``merge_score`` rule. A deterministic operator is merged and scored once. A randomised one
    (DARE, DELLA) is merged and scored once per seed and its label is the mean over the seeds: a single DARE
    draw moved a score by 0.066 on SmolLM2 experts, as much as the gaps between operators.

    Parameters
    ----------
    operator : Operator
        The merge operator; ``a`` is the anchor of an order-sensitive one.
    a_dir, b_dir, base_dir : path
        The two experts and the catalog base.
    parent_scores : (dict, dict)
        The ``expert_scores`` records of ``a`` and ``b`` (``{"tasks": {task: {"score": ...}}}``).
    task_dir : path
        The task YAML folder (``config/tasks``).
    data_files : dict
        Task → eval JSONL of the tasks the merge is scored on (e.g. the union of both parents' home tasks).
    seeds : sequence of int
        ``random_seed`` of each repetition of a randomised operator; a deterministic operator uses only the
        first (which it ignores).
    batch_size, limit, device, threads, exact_match, dtype
        As :func:`simmerge.merges.scoring.score_checkpoint`.
    scratch_dir : path, optional
        Where merged checkpoints live while they are scored (default: :func:`default_scratch_dir`).
    keep_dir : path, optional
        Keep the merge of the first seed here (a new directory, created atomically) instead of deleting it.
    trust_remote_code : bool
        As :func:`merge_pair`; the merged checkpoint is scored with the same setting.
    manifests : sequence of path
        The manifests of the checkpoints merged (a, b and the base), whose weight digests the record cites.
    drift : mapping, optional
        Keyword arguments of :func:`simmerge.merges.drift.parent_drift` but the merged checkpoint and the device
        (``parent_parts``, ``probe_files``, ``spec``, ``seed``): the first seed's merge is also passed over its
        parents' home-task probes, before it is scored, and the record's ``parent_drift`` says how far it moved.

    Returns
    -------
    dict
        ``items``: the per-item outcomes of every run (a DataFrame with a ``seed`` column; the caller writes it
        beside the record and pops it). The record of :func:`merge_pair` for the first seed (``seed`` becomes
        ``seeds``, the list used), plus
        ``runs`` (per seed: ``seed``, ``status``, ``error``, ``wall_seconds``, ``eval_seconds``, ``score`` and
        per-task ``metric``/``stderr``/``normalised``), ``tasks`` (task → ``metric`` and ``normalised`` averaged
        over the runs, ``stderr`` (item-sampling error, mean over the runs), ``seed_sd`` (spread over seeds),
        ``primary_metric``, ``n``, ``version``, ``parent_scores``), ``score`` (mean normalised score over the
        tasks with a defined ratio), ``score_stderr`` (its standard error: item sampling plus the seed spread
        of a randomised operator), ``status``: ``"ok"``, ``"failed"`` (every run failed) or
        ``"partly_failed"``, ``checkpoints_sha256`` (catalog name → weights digest of each of ``manifests``, by
        :func:`simmerge.catalog.manifest.checkpoints_sha256`), ``provenance`` and, with ``drift``,
        ``parent_drift`` (:func:`simmerge.merges.drift.parent_drift` of the first seed's merge; None when that
        merge failed). A failed run counts
        :data:`FAILED_MERGE_SCORE` in the averages.

    Raises
    ------
    DiskFullError
        When the scratch directory (or ``keep_dir``) fills up; the scratch copy is removed on the way out, so
        only merges finished before stay on disk.
    """

    if not seeds:
        raise ValueError("seeds is empty: give at least one merge seed")
    # read first: the record must cite the weights that were merged, not those of a checkpoint rebuilt meanwhile
    cited = checkpoints_sha256(*manifests)
    seeds = list(seeds) if operator.randomised else list(seeds[:1])
    tasks = list(data_files)
    parents = [{task: record["tasks"][task]["score"] for task in tasks} for record in parent_scores]
    if scratch_dir is None:
        scratch_dir = default_scratch_dir(min_free_bytes=2 * _checkpoint_bytes(a_dir))
    _check_scratch_room(Path(scratch_dir or tempfile.gettempdir()), _checkpoint_bytes(a_dir), operator.name)
    first: dict[str, Any] = {}
    drifted: dict[str, Any] | None = None
    runs, items = [], []
    scoring_dtype = None  # a failed merge is not scored
    for index, seed in enumerate(seeds):
        with scratch_directory("simmerge-merge-", scratch_dir) as scratch:
            merged = Path(scratch) / "merged"
            record = merge_pair(
                operator,
                a_dir,
                b_dir,
                base_dir,
                merged,
                seed=seed,
                device=device,
                threads=threads,
                trust_remote_code=trust_remote_code,
            )
            if index == 0 and drift is not None and record["status"] == "ok":
                from simmerge.merges.drift import parent_drift  # deferred: only a run that measures drift needs it

                drifted = parent_drift(
                    merged, **drift, device=device, threads=threads, trust_remote_code=trust_remote_code
                )
            scored = score_merge(
                merged,
                record,
                parents,
                tasks,
                task_dir=task_dir,
                data_files=data_files,
                batch_size=batch_size,
                limit=limit,
                device=device,
                threads=threads,
                exact_match=exact_match,
                dtype=dtype,
            )
            items.append(scored.pop("items").assign(seed=seed if operator.randomised else None))
            # the merge record already says where the merge ran; a run adds what its scoring measured
            run = {
                **{key: record[key] for key in ("seed", "status", "error", "wall_seconds")},
                **{key: value for key, value in scored.items() if key not in ("device", "dtype")},
            }
            scoring_dtype = scored.get("dtype", scoring_dtype)
            if index == 0 and keep_dir is not None and record["status"] == "ok":
                try:
                    with atomic_dir(keep_dir) as kept:
                        for path in merged.iterdir():
                            shutil.move(str(path), kept / path.name)
                except OSError as err:
                    if is_disk_full(err):
                        raise _disk_full(operator.name, Path(keep_dir), base_dir, err) from err
                    raise
        runs.append(run)
        if index == 0:
            first = record
        log.info("%s seed %s: %s, score %s", operator.name, seed, run["status"], run["score"])
    summary = {key: value for key, value in first.items() if key not in {"seed", "status", "error", "wall_seconds"}}
    summary["seeds"] = seeds if operator.randomised else None
    summary["runs"] = runs
    summary.update(_aggregate(runs, tasks, parents))
    summary["wall_seconds"] = round(sum(run["wall_seconds"] for run in runs), 3)
    summary["eval_seconds"] = round(sum(run["eval_seconds"] for run in runs), 3)
    summary["load_seconds"] = round(sum(run["load_seconds"] for run in runs), 3)
    summary["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    summary["checkpoints_sha256"] = cited
    summary["provenance"] = provenance()
    summary["exact_match"] = exact_match
    summary["dtype"] = scoring_dtype
    if drift is not None:
        summary["parent_drift"] = drifted
    return {"items": pd.concat(items, ignore_index=True), **summary}


def _aggregate(runs: list[dict[str, Any]], tasks: list[str], parents: list[dict[str, Any]]) -> dict[str, Any]:
    """Average the runs of :func:`merge_score` per task; the label and its standard error."""
    ok = [run for run in runs if run["status"] == "ok"]
    status = "ok" if len(ok) == len(runs) else "failed" if not ok else "partly_failed"
    out: dict[str, Any] = {
        "status": status,
        "error": next((run["error"] for run in runs if run["error"]), None),
        "lm_eval_version": ok[0]["lm_eval_version"] if ok else None,
    }
    per_task = {}
    for task in tasks:
        metrics = [run["tasks"][task]["metric"] for run in ok]
        stderrs = [run["tasks"][task]["stderr"] for run in ok if run["tasks"][task]["stderr"] is not None]
        normalised = [run["tasks"][task]["normalised"] for run in runs]
        template = ok[0]["tasks"][task] if ok else {}
        per_task[task] = {
            "metric": _mean(metrics),
            "stderr": _mean(stderrs),
            "seed_sd": _sd(metrics),
            "normalised": None if any(value is None for value in normalised) else _mean(normalised),
            "primary_metric": template.get("primary_metric"),
            "n": template.get("n"),
            "version": template.get("version"),
            "parent_scores": [parent[task] for parent in parents],
        }
    out["tasks"] = per_task
    scores = [run["score"] for run in runs]
    out["score"] = None if any(score is None for score in scores) else _mean(scores)
    out["score_stderr"] = _score_stderr(per_task, runs)
    return out


def _score_stderr(per_task: dict[str, dict[str, Any]], runs: list[dict[str, Any]]) -> float | None:
    """Standard error of the mean normalised score.

    Item sampling: the task standard errors scaled by the better parent's metric, combined as for a mean of
    independent tasks. Seed spread (randomised operators): the variance of the per-seed scores over the number
    of seeds. A failed merge has no sampling error (its score is a fixed convention).
    """
    variances = []
    for entry in per_task.values():
        best = max((p for p in entry["parent_scores"] if p is not None), default=None)
        if entry["normalised"] is None or not best:
            continue
        if entry["stderr"] is not None:
            variances.append((entry["stderr"] / best) ** 2)
    item_variance = sum(variances) / len(variances) ** 2 if variances else 0.0
    scores = [run["score"] for run in runs if run["score"] is not None]
    seed_sd = _sd(scores)
    seed_variance = seed_sd**2 / len(scores) if seed_sd is not None else 0.0
    return round(math.sqrt(item_variance + seed_variance), 6)


# Float arithmetic on purpose, not the statistics module: statistics.mean and stdev round exactly (fractions), fmean
# sums with fsum, and all three differ from these formulas in the last bit for about one input in five (scores in
# twelfths, 2–5 seeds). These values go into merge records and labels, which must not change between versions.
def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _sd(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n − 1); None for fewer than two values."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def _checkpoint_bytes(ckpt_dir: str | os.PathLike) -> int:
    return sum(path.stat().st_size for path in Path(ckpt_dir).glob("*.safetensors"))


__all__ = [
    "CONFIG_NAME",
    "DiskFullError",
    "FAILED_MERGE_SCORE",
    "TOKENIZER_FILES",
    "config_yaml",
    "default_scratch_dir",
    "is_disk_full",
    "merge_pair",
    "merge_score",
    "score_merge",
]
