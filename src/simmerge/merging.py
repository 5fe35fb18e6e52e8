"""Run one mergekit merge of an expert pair in-process, offline, and record how it went.

:func:`merge_pair` is the merge half of the ``merge_score`` rule: it turns an :class:`~simmerge.operators.Operator`
and an ordered pair into mergekit's YAML, runs ``mergekit.merge.run_merge`` on exactly that text, checks that
the merged weights are finite, and returns a record. A merge that mergekit refuses at run time or that yields
NaN/Inf weights is data, not a crash: the record says ``"failed"`` with the error, and the caller gives the
merge its documented failure score. Mistakes of the caller (missing input directories, a non-empty output
directory, CUDA requested where there is none) and running out of memory still raise, so that Snakemake
reports them or retries the job with more resources instead of recording a wrong label.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import resource
import shutil
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from simmerge.device import resolve_device, set_threads
from simmerge.operators import Operator

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
) -> dict[str, Any]:
    """Merge the ordered pair (a, b) with one operator into ``out_dir`` and check the result.

    Runs ``mergekit.merge.run_merge`` in this process on the YAML of
    :meth:`Operator.to_mergekit_config <simmerge.operators.Operator.to_mergekit_config>` (absolute local paths,
    float32 arithmetic) with the hub switched off, then :func:`simmerge.manifest.check_finite` on the output.
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

    Returns
    -------
    dict
        ``operator``, ``method``, ``order_sensitive``, ``randomised``, ``seed`` (None for a deterministic
        operator), ``device``, ``config_yaml`` (the exact text mergekit ran), ``wall_seconds`` (merge and
        finiteness check), ``peak_rss_mb`` (peak resident memory of this process so far, Linux ``ru_maxrss``),
        ``peak_gpu_mb`` (CUDA only, else None), ``mergekit_version``, ``status`` (``"ok"`` or ``"failed"``) and
        ``error`` (``"ExceptionType: message"`` or None).

    Raises
    ------
    FileNotFoundError
        If an input directory or its ``config.json`` is missing.
    FileExistsError
        If ``out_dir`` exists and is not empty.
    ValueError
        If :meth:`~simmerge.operators.Operator.to_mergekit_config` refuses the paths, or ``threads`` < 1.
    RuntimeError
        If CUDA is requested but not available.
    MemoryError, torch.OutOfMemoryError
        Out of memory is a resource limit, not a property of the merge: it propagates.
    """
    for role, path in (("a_dir", a_dir), ("b_dir", b_dir), ("base_dir", base_dir)):
        if not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"{role} {str(path)!r} is not a checkpoint directory (no config.json)")
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"out_dir {str(out)!r} is not empty; merge into a new or empty directory")
    torch_device = resolve_device(device)
    set_threads(threads)

    config = operator.to_mergekit_config(a_dir, b_dir, base_dir, seed=seed)
    text = config_yaml(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(text, encoding="utf-8")

    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from simmerge.manifest import check_finite
    from simmerge.scoring import offline_hub

    options = MergeOptions(
        device=str(torch_device),
        cuda=torch_device.type == "cuda",
        random_seed=seed if operator.randomised else 0,
        copy_tokenizer=True,
        # Catalog checkpoints are safetensors only; lazy unpickling is for pickled .bin shards.
        lazy_unpickle=False,
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
        check_finite(out, name=f"{operator.name} merge")
        _copy_tokenizer(Path(base_dir), out)
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as err:  # a merge that fails is a result: recorded, never raised
        status, error = "failed", f"{type(err).__name__}: {err}"
        log.warning("merge with operator %r failed: %s", operator.name, error)
        _remove_weights(out)
    wall = time.perf_counter() - start
    record = {
        "operator": operator.name,
        "method": operator.method,
        "order_sensitive": operator.order_sensitive,
        "randomised": operator.randomised,
        "seed": seed if operator.randomised else None,
        "device": str(torch_device),
        "config_yaml": text,
        "wall_seconds": round(wall, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated(torch_device) / 2**20, 1) if is_cuda else None,
        "mergekit_version": _mergekit_version(),
        "status": status,
        "error": error,
    }
    log.info("merge %s (%s): %s in %.1f s", operator.name, operator.method, status, wall)
    return record


@contextlib.contextmanager
def _restored_rng() -> Iterator[None]:
    """run_merge reseeds Python, NumPy and torch globally (transformers.set_seed); give the caller its state back."""
    import numpy as np
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


__all__ = ["CONFIG_NAME", "TOKENIZER_FILES", "config_yaml", "merge_pair"]


# A failed merge (mergekit error, NaN/Inf weights) produced no usable model: it keeps none of either parent's
# skill, so its normalised score is 0 on every task rather than a missing value that would drop it from the labels.
FAILED_MERGE_SCORE = 0.0


def merge_score(
    operator: Operator,
    a_dir: str | os.PathLike,
    b_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    *,
    parent_scores: tuple[dict[str, Any], dict[str, Any]],
    task_dir: str | os.PathLike,
    data_files: dict[str, str | os.PathLike],
    seed: int,
    batch_size: int = 16,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    scratch_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Merge an ordered pair with one operator, score the merge with lm-eval and normalise by the parents.

    The body of the ``merge_score`` rule. The merged weights live in a temporary directory that is deleted
    when scoring ends, so only the record is kept.

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
    seed : int
        Seed of randomised operators.
    batch_size, limit, device, threads
        As :func:`simmerge.scoring.score_checkpoint`.
    scratch_dir : path, optional
        Where the temporary merged checkpoint goes (default: the system temp dir).

    Returns
    -------
    dict
        The record of :func:`merge_pair` plus ``tasks`` (task → ``metric``, ``stderr``, ``primary_metric``,
        ``parent_scores``, ``normalised``), ``score`` (mean normalised score over the tasks with a defined
        ratio; :data:`FAILED_MERGE_SCORE` for a failed merge) and ``eval_seconds``.
    """
    import tempfile

    from simmerge.scoring import normalise_scores, score_checkpoint

    tasks = list(data_files)
    parents = [{task: record["tasks"][task]["score"] for task in tasks} for record in parent_scores]
    with tempfile.TemporaryDirectory(prefix="simmerge-merge-", dir=scratch_dir) as scratch:
        merged = Path(scratch) / "merged"
        record = merge_pair(operator, a_dir, b_dir, base_dir, merged, seed=seed, device=device, threads=threads)
        if record["status"] != "ok":
            record.update(
                tasks={task: {"metric": None, "normalised": FAILED_MERGE_SCORE} for task in tasks},
                score=FAILED_MERGE_SCORE,
                eval_seconds=0.0,
            )
            return record
        started = time.perf_counter()
        scores = score_checkpoint(
            merged, task_dir, data_files, batch_size=batch_size, limit=limit, device=device, threads=threads
        )
        eval_seconds = time.perf_counter() - started
    metrics = {task: scores["tasks"][task]["score"] for task in tasks}
    normalised = normalise_scores(metrics, parents)
    record["tasks"] = {
        task: {
            "metric": metrics[task],
            "primary_metric": scores["tasks"][task]["primary_metric"],
            "stderr": scores["tasks"][task]["stderr"].get(scores["tasks"][task]["primary_metric"]),
            "n": scores["tasks"][task]["n"],
            "version": scores["tasks"][task]["version"],
            "parent_scores": [parent[task] for parent in parents],
            "normalised": normalised[task],
        }
        for task in tasks
    }
    defined = [value for value in normalised.values() if value is not None]
    record["score"] = sum(defined) / len(defined) if defined else None
    record["eval_seconds"] = eval_seconds
    record["lm_eval_version"] = scores["lm_eval_version"]
    return record
