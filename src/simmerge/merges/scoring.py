"""Score a checkpoint with lm-eval, normalise merge scores by their parents, and read score files.

:func:`score_checkpoint` runs lm-eval in-process (2–3x cheaper than its CLI, measured on the SmolLM2 experts),
offline, without lm-eval's response cache, with fixed seeds, on the task YAMLs :mod:`simmerge.merges.tasks`
materialises.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from simmerge.catalog.harness import read_task_record, task_manager, task_request
from simmerge.core.device import resolve_device, resolve_dtype, set_threads
from simmerge.core.io import read_json
from simmerge.core.layout import RunLayout
from simmerge.core.provenance import provenance
from simmerge.core.runtime import offline_hub
from simmerge.merges.items import item_table
from simmerge.merges.tasks import (
    SCORED_PRIMARY_METRIC,
    materialize_tasks,
    resolved_task_cfg,
    skill_name,
    task_files,
)

log = logging.getLogger(__name__)


SEED = 0


def _number(value: Any) -> float | None:
    """A finite float, or None for NaN, infinities and lm-eval's ``"N/A"``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_task_result(
    task: str,
    results: Mapping[str, Any],
    *,
    yaml_cfg: Mapping[str, Any] | None = None,
    primary: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Turn one task's entry of lm-eval's results into the SimMerge scores record.

    Parameters
    ----------
    task : str
        lm-eval task name.
    results : mapping
        The dict returned by ``lm_eval.simple_evaluate``.
    yaml_cfg : mapping, optional
        The task's resolved YAML, used when lm-eval does not report a version or output type.
    primary : (str, str), optional
        The (metric, filter) the score is; default: the output type's primary metric, first filter. A group's
        entry is its aggregate over the scored items of its members, as lm-eval computes it.

    Returns
    -------
    dict
        ``metrics`` and ``stderr`` keyed by metric name without the filter suffix (a metric given by a second
        filter is keyed ``"metric,filter"``), ``filters`` (metric key → filter name), ``output_type``,
        ``primary_metric``, ``score``, ``n`` and ``version``.
    """
    raw = results["results"][task]
    metrics: dict[str, float | None] = {}
    stderr: dict[str, float | None] = {}
    filters: dict[str, str] = {}
    for key, value in raw.items():
        if "," not in key:
            continue  # alias, sample_len and other bookkeeping
        metric, filter_name = key.split(",", 1)
        if metric.endswith("_stderr"):
            continue
        out_key = metric if metric not in filters else f"{metric},{filter_name}"
        metrics[out_key] = _number(value)
        stderr[out_key] = _number(raw.get(f"{metric}_stderr,{filter_name}"))
        filters[out_key] = filter_name

    configs = results.get("configs", {})
    members = [task] if task in configs else sorted(results.get("group_subtasks", {}).get(task, []))
    output_types = {configs.get(member, {}).get("output_type") for member in members} - {None}
    output_type = output_types.pop() if len(output_types) == 1 else (yaml_cfg or {}).get("output_type")
    if primary is not None:
        metric, filter_name = primary
        key = next((k for k, f in filters.items() if k.split(",")[0] == metric and f == filter_name), None)
        if key is None:
            raise ValueError(f"task {task}: lm-eval reported no {metric},{filter_name} (metrics {sorted(metrics)})")
    else:
        key = SCORED_PRIMARY_METRIC.get(output_type)
        if key is None or key not in metrics:
            raise ValueError(
                f"task {task}: cannot pick a primary metric (output_type {output_type!r}, "
                f"metrics {sorted(metrics)}); SimMerge expects exact_match for generate_until and acc for "
                "multiple_choice"
            )
    version = results.get("versions", {}).get(task)
    if version is None:
        version = ((yaml_cfg or {}).get("metadata") or {}).get("version")
    n_samples = results.get("n-samples", {})
    counts = [n_samples.get(member, {}).get("effective") for member in members]
    return {
        "metrics": metrics,
        "stderr": stderr,
        "filters": filters,
        "output_type": output_type,
        "primary_metric": key,
        "score": metrics[key],
        "n": sum(counts) if counts and None not in counts else None,
        "version": version,
    }


def score_checkpoint(
    ckpt_dir: str | os.PathLike,
    task_dir: str | os.PathLike,
    data_files: Mapping[str, str | os.PathLike],
    *,
    batch_size: int = 16,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    max_gen_toks: int | None = None,
    name: str | None = None,
    trust_remote_code: bool = False,
    exact_match: str = "one_pass",
    dtype: str = "auto",
) -> dict[str, Any]:
    """Score one checkpoint on some skills with lm-eval, in-process and offline.

    Runs ``lm_eval.simple_evaluate`` on an ``HFLM`` (fp32 on CPU, see ``dtype``) over the tasks of
    :func:`materialize_tasks`, with no response cache (a cache shared between checkpoints would hand one model's
    answers to another) and every seed fixed at 0, so the same checkpoint and data give the same scores.
    lm-eval's logged samples become the per-item outcomes (:func:`simmerge.merges.items.item_table`).

    Parameters
    ----------
    ckpt_dir : path
        Hugging Face checkpoint (model + tokenizer).
    task_dir : path
        Folder of task YAMLs (``config/tasks``).
    data_files : mapping of str to path
        Skill name → JSONL to score on (the skill's ``eval.jsonl``).
    batch_size : int
        lm-eval batch size.
    limit : int, optional
        Score only the first ``limit`` items of each task (for tests).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads : int, optional
        CPU threads for torch.
    max_gen_toks : int, optional
        Override the generation length of every generative task.
    name : str, optional
        Name recorded as ``checkpoint``; defaults to the folder name of ``ckpt_dir``.
    trust_remote_code : bool
        Let transformers run modelling code shipped with the checkpoint (its catalog entry's setting).
    exact_match : str
        How built-in generative skills decide exact match: ``"one_pass"`` or ``"generate"``
        (:data:`simmerge.merges.tasks.EXACT_MATCH_MODES`).
    dtype : str
        Weights dtype (:func:`simmerge.core.device.resolve_dtype`: ``"auto"`` is bfloat16 on CUDA, float32 on
        CPU); the one used is recorded as ``dtype``.

    Returns
    -------
    dict
        ``items``: task → its per-item outcomes (a DataFrame, not JSON: the caller writes it as Parquet and
        pops it), then JSON-able: ``checkpoint``, ``exact_match``, ``dtype``, ``tasks`` (skill → record of
        :func:`parse_task_result`: ``metrics``, ``stderr``, ``filters``, ``output_type``, ``primary_metric``,
        ``score``, ``n``, ``version``),
        ``lm_eval_version``, ``wall_seconds``, ``load_seconds`` (building the ``HFLM``: model and tokenizer
        load), ``limit``, ``device``, ``provenance`` (:func:`simmerge.core.provenance.provenance`).

    Raises
    ------
    FileNotFoundError
        If the checkpoint, a task YAML or a data file is missing.
    """
    started = time.perf_counter()
    ckpt_dir = Path(ckpt_dir).expanduser().resolve()
    if not (ckpt_dir / "config.json").is_file():
        raise FileNotFoundError(f"checkpoint not found (no config.json): {ckpt_dir}")
    set_threads(threads)
    torch_device = resolve_device(device)
    weights_dtype = resolve_dtype(dtype, torch_device)

    harness = {task: read_task_record(Path(path).parent) for task, path in data_files.items()}
    builtin = {task: path for task, path in data_files.items() if harness[task] is None}
    with offline_hub(), tempfile.TemporaryDirectory(prefix="simmerge-tasks-") as scratch:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        include = Path(scratch) / "tasks"
        tasks = (
            materialize_tasks(task_dir, builtin, include, cache_dir=Path(scratch) / "datasets", exact_match=exact_match)
            if builtin
            else []
        )
        declared = task_files(include) if builtin else {}
        yaml_cfgs = {task: resolved_task_cfg(declared[task]) for task in tasks}

        loading = time.perf_counter()
        lm = HFLM(
            pretrained=str(ckpt_dir),
            batch_size=batch_size,
            dtype=weights_dtype,
            device=str(torch_device),
            trust_remote_code=trust_remote_code,
        )
        load_seconds = time.perf_counter() - loading
        settings = {
            "model": lm,
            "limit": limit,
            "use_cache": None,
            "log_samples": True,
            "gen_kwargs": {"max_gen_toks": max_gen_toks} if max_gen_toks is not None else None,
            "random_seed": SEED,
            "numpy_random_seed": SEED,
            "torch_random_seed": SEED,
            "fewshot_random_seed": SEED,
        }
        scores, items = {}, {}
        if tasks:
            manager = TaskManager(include_path=str(include), include_defaults=False)
            results = _evaluated(lm_eval.simple_evaluate(tasks=tasks, task_manager=manager, **settings))
            for task in tasks:
                skill = skill_name(task)
                scores[skill] = parse_task_result(task, results, yaml_cfg=yaml_cfgs[task])
                items[skill] = task_items(skill, [task], results, scores[skill], lm)
        for task, record in harness.items():
            if record is not None:
                scores[task], items[task] = score_harness_task(task, record, settings, Path(scratch) / "datasets")
        scores = {task: scores[task] for task in data_files}
        items = {task: items[task] for task in data_files}
        del lm, settings
    wall_seconds = time.perf_counter() - started
    log.info(
        "scored %s in %.1fs: %s",
        ckpt_dir.name,
        wall_seconds,
        ", ".join(f"{skill} {rec['primary_metric']}={rec['score']}" for skill, rec in scores.items()),
    )
    return {
        "items": items,
        "checkpoint": name or ckpt_dir.name,
        "exact_match": exact_match,
        "dtype": weights_dtype,
        "tasks": scores,
        "lm_eval_version": _lm_eval_version(),
        "wall_seconds": wall_seconds,
        "load_seconds": load_seconds,
        "limit": limit,
        "device": str(torch_device),
        "provenance": provenance(),
    }


def _evaluated(results: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if results is None:
        raise RuntimeError("lm-eval returned no results")
    return results


def task_items(task: str, leaves: Sequence[str], results: Mapping[str, Any], record: Mapping[str, Any], lm: Any) -> Any:
    """The per-item outcomes of one task of an lm-eval run (:func:`simmerge.merges.items.item_table`).

    ``leaves`` are the lm-eval tasks whose samples make up ``task`` (its own name, or a group's members); the
    metric columns are keyed as ``record`` (:func:`parse_task_result`) keys them.
    """
    logged = results.get("samples") or {}
    leaves = [leaf for leaf in leaves if leaf in logged]
    metric_keys = {f"{key.split(',')[0]},{filter_name}": key for key, filter_name in record["filters"].items()}
    return item_table(
        task,
        {leaf: logged[leaf] for leaf in leaves},
        {leaf: results["configs"][leaf]["output_type"] for leaf in leaves},
        metric_keys=metric_keys,
        primary=record["primary_metric"],
        primary_filter=record["filters"][record["primary_metric"]],
        # lm-eval splits context and continuation this way before scoring them
        continuation_tokens=lambda context, continuation: len(lm._encode_pair(context, continuation)[1]),
    )


def score_harness_task(
    name: str, record: Mapping[str, Any], settings: Mapping[str, Any], datasets_cache: str | os.PathLike
) -> tuple[dict[str, Any], Any]:
    """Score one harness task (its ``task.json``, :mod:`simmerge.catalog.harness`) on its drawn documents.

    One ``simple_evaluate`` call per task, since few-shot and chat settings are per call; the documents are
    selected by index through ``samples`` (``settings['limit']``, for tests, then keeps the first of them). A local
    copy of the dataset is prepared in ``datasets_cache`` (:func:`simmerge.catalog.harness.task_request`).
    Returns the task's score record and its per-item outcomes, under the config entry's ``name``.
    """
    # deferred: lm-eval is slow to import
    import lm_eval

    samples = {name: indices for name, indices in record["samples"].items() if indices}
    if settings.get("limit") is not None:
        samples = {name: indices[: settings["limit"]] for name, indices in samples.items()}
    results = _evaluated(
        lm_eval.simple_evaluate(
            tasks=[task_request(record, datasets_cache)],
            task_manager=task_manager(record),
            samples=samples,
            num_fewshot=record["num_fewshot"],
            apply_chat_template=record["apply_chat_template"],
            fewshot_as_multiturn=record["fewshot_as_multiturn"],
            **{**settings, "limit": None, "fewshot_random_seed": record["fewshot_seed"]},
        )
    )
    scored = parse_task_result(record["task"], results, primary=(record["metric"], record["filter"]))
    leaves = [record["task"], *results.get("group_subtasks", {}).get(record["task"], [])]
    return scored, task_items(name, leaves, results, scored, settings["model"])


def _lm_eval_version() -> str:
    return version("lm_eval")


def normalise_scores(
    merge_scores: Mapping[str, float | None], parent_scores: Sequence[Mapping[str, float | None]]
) -> dict[str, float | None]:
    """Divide a merge's metric on each task by the better parent's metric on that task.

    Rule for degenerate tasks: when the better parent scores 0 (or no parent has a score for the task), the
    ratio is undefined and the task maps to ``None``; the caller records it and leaves it out of the mean.
    A merge score of ``None`` also gives ``None``.

    Parameters
    ----------
    merge_scores : mapping of str to float
        Task → the merge's primary metric.
    parent_scores : sequence of mapping of str to float
        One mapping per parent, task → that parent's primary metric.

    Returns
    -------
    dict of str to float or None
        Task → normalised score (above 1 when the merge beats both parents).

    Raises
    ------
    ValueError
        If no parent is given or a score is negative.

    Examples
    --------
    >>> normalise_scores({"a": 0.3, "b": 0.5}, [{"a": 0.6, "b": 0.0}, {"a": 0.2, "b": 0.0}])
    {'a': 0.5, 'b': None}
    """
    if not parent_scores:
        raise ValueError("normalise_scores needs at least one parent")
    out: dict[str, float | None] = {}
    for task, score in merge_scores.items():
        parents = [p[task] for p in parent_scores if p.get(task) is not None]
        if any(value < 0 for value in parents) or (score is not None and score < 0):
            raise ValueError(f"task {task}: scores must be non-negative, got merge {score}, parents {parents}")
        best = max(parents, default=None)
        if score is None or not best:
            out[task] = None
        else:
            out[task] = score / best
    return out


def read_scores(paths: Iterable[str | os.PathLike]) -> dict[str, dict[str, Any]]:
    """Checkpoint → its score record over every task, from per-task ``scores/experts/<name>/<task>.json`` files.

    The workflow scores each checkpoint one task per job (a new task re-scores nothing else); this joins a
    checkpoint's records into one: ``tasks`` holds every task found, ``wall_seconds`` and ``load_seconds`` are
    summed. Checkpoints keep the order of their first file.

    Raises
    ------
    ValueError
        If two files score the same checkpoint on the same task, or disagree on ``limit`` (a half-updated run);
        the message names both files.
    """

    joined: dict[str, dict[str, Any]] = {}
    source: dict[tuple[str, str], str] = {}
    for path in paths:
        record = read_json(path)
        name = record["checkpoint"]
        into = joined.setdefault(name, {**record, "tasks": {}, "wall_seconds": 0.0, "load_seconds": 0.0, "files": []})
        if record.get("limit") != into.get("limit"):
            raise ValueError(
                f"{path} scores {name!r} with limit {record.get('limit')!r}, {into['files'][0]} with "
                f"{into.get('limit')!r}: rerun rule expert_scores for {name!r}"
            )
        for task, value in record["tasks"].items():
            if (name, task) in source:
                raise ValueError(f"{path} and {source[name, task]} both score {name!r} on task {task!r}")
            source[name, task] = str(path)
            into["tasks"][task] = value
        into["wall_seconds"] += record.get("wall_seconds", 0.0)
        into["load_seconds"] += record.get("load_seconds", 0.0)
        into["files"].append(str(path))
    return joined


def read_checkpoint_scores(layout: RunLayout, name: str) -> dict[str, Any]:
    """Every score the run holds for checkpoint ``name``, joined into one record (:func:`read_scores`).

    Raises
    ------
    FileNotFoundError
        If the run holds no score of ``name``; the message says which rule makes them.
    """
    paths = layout.glob(layout.expert_scores(name, "*"))
    if not paths:
        raise FileNotFoundError(f"{layout.root} holds no expert score of {name!r}: run `snakemake all_catalog` first")
    return read_scores(paths)[name]
