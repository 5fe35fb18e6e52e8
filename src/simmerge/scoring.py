"""Score a checkpoint with lm-eval on the skills' task YAMLs, and normalise merge scores by their parents.

The committed task YAMLs hold no data paths; :func:`materialize_tasks` copies them into a scratch folder and
fills in the absolute path of each task's local JSONL. :func:`score_checkpoint` runs lm-eval in-process (2–3×
cheaper than the CLI, research/operator-spread-smollm2.md §2), offline, without lm-eval's response cache, with
fixed seeds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from simmerge.device import resolve_device, set_threads

log = logging.getLogger(__name__)

TASK_PREFIX = "simmerge_"
PRIMARY_METRIC = {"generate_until": "exact_match", "multiple_choice": "acc"}
SEED = 0

# ----------------------------------------------------------------------------------------------------------
# Task YAMLs


class _Tagged(str):
    """A scalar with a YAML tag lm-eval understands (``!function``), kept verbatim through load and dump."""

    tag: str = ""

    def __new__(cls, value: str, tag: str) -> _Tagged:
        obj = super().__new__(cls, value)
        obj.tag = tag
        return obj


class _TaskLoader(yaml.SafeLoader):
    """Safe loader that keeps unknown tags (lm-eval's ``!function utils.fn``) as tagged strings."""


def _construct_tagged(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return _Tagged(loader.construct_scalar(node), "!" + tag_suffix)
    raise yaml.constructor.ConstructorError(
        None, None, f"unsupported tag !{tag_suffix} on a non-scalar", node.start_mark
    )


_TaskLoader.add_multi_constructor("!", _construct_tagged)


class _TaskDumper(yaml.SafeDumper):
    """Safe dumper that writes :class:`_Tagged` strings back with their tag."""


def _represent_tagged(dumper: yaml.SafeDumper, value: _Tagged) -> yaml.Node:
    return dumper.represent_scalar(value.tag, str(value))


_TaskDumper.add_representer(_Tagged, _represent_tagged)


class TaskYamlError(ValueError):
    """A task YAML lm-eval cannot use; the message names the file, the problem and the fix."""


_TASK_YAML_FIX = "fix the file (config/tasks/README.md describes the fields) or restore it with git"


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML parse error as one line: what is wrong and where (1-based line and column)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"{err.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(err).replace("\n", " ")


def load_task_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read one lm-eval task YAML without resolving its ``include`` or ``!function`` entries.

    Parameters
    ----------
    path : path
        The YAML file.

    Returns
    -------
    dict
        Its top-level mapping; ``!function`` values come back as strings that :func:`dump_task_yaml` re-tags.

    Raises
    ------
    TaskYamlError
        If the file is not valid YAML (the message gives the line and column), uses a tag the safe loader
        refuses (``!!python/...``), or does not hold a mapping.
    """
    with open(path, encoding="utf-8") as handle:
        try:
            cfg = yaml.load(handle, Loader=_TaskLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as err:
            raise TaskYamlError(
                f"task YAML {path}: is not valid YAML: {_yaml_problem(err)}. {_TASK_YAML_FIX}"
            ) from None
    if not isinstance(cfg, dict):
        raise TaskYamlError(
            f"task YAML {path}: holds a {type(cfg).__name__}, not a mapping of lm-eval fields. {_TASK_YAML_FIX}"
        )
    return cfg


def dump_task_yaml(cfg: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write a task YAML read by :func:`load_task_yaml`, keeping its key order and tags."""
    text = yaml.dump(dict(cfg), Dumper=_TaskDumper, sort_keys=False, allow_unicode=True, width=1000)
    Path(path).write_text(text, encoding="utf-8")


def _resolved_cfg(path: Path) -> dict[str, Any]:
    """A task YAML merged with its ``include`` chain (local keys win), as lm-eval resolves it."""
    cfg = load_task_yaml(path)
    includes = cfg.pop("include", None)
    merged: dict[str, Any] = {}
    for include in includes if isinstance(includes, list) else [includes] if includes else []:
        if not (path.parent / include).is_file():
            raise TaskYamlError(
                f"task YAML {path}: include {include!r} names no file in {path.parent}. {_TASK_YAML_FIX}"
            )
        merged.update(_resolved_cfg(path.parent / include))
    merged.update(cfg)
    return merged


def _function_problems(cfg: Mapping[str, Any], folder: Path) -> list[str]:
    """``!function module.name`` values whose module file or function is missing, read without importing it."""
    import ast

    problems = []
    values = [
        *cfg.values(),
        *(entry.get("metric") for entry in cfg.get("metric_list") or [] if isinstance(entry, dict)),
    ]
    for value in values:
        if not (isinstance(value, _Tagged) and value.tag == "!function"):
            continue
        module, _, function = str(value).rpartition(".")
        source = folder / f"{module.replace('.', '/')}.py"
        if not source.is_file():
            problems.append(f"!function {value} needs {source}, which does not exist")
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        if not any(isinstance(node, ast.FunctionDef) and node.name == function for node in tree.body):
            problems.append(f"!function {value}: {source} defines no function {function!r}")
    return problems


def check_task_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Check that a task YAML resolves to a task SimMerge can score, before any model is loaded.

    Parameters
    ----------
    path : path
        A ``simmerge_<skill>.yaml``.

    Returns
    -------
    dict
        The resolved configuration (its ``include`` chain merged in).

    Raises
    ------
    TaskYamlError
        Naming the file: invalid YAML, an ``include`` or ``!function`` that names nothing, an ``output_type``
        SimMerge has no primary metric for, a missing prompt/target field, or a primary metric not in
        ``metric_list``.
    """
    path = Path(path)
    cfg = _resolved_cfg(path)
    output_type = cfg.get("output_type")
    problems = []
    primary = PRIMARY_METRIC.get(output_type)
    if primary is None:
        problems.append(f"output_type is {output_type!r}; SimMerge scores {', '.join(PRIMARY_METRIC)}")
    missing = [key for key in ("doc_to_text", "doc_to_target") if key not in cfg]
    if missing:
        problems.append(f"{' and '.join(missing)} missing")
    metrics = [entry.get("metric") for entry in cfg.get("metric_list") or [] if isinstance(entry, dict)]
    if primary is not None and primary not in metrics:
        problems.append(f"metric_list lacks {primary!r}, the primary metric of {output_type}")
    problems += _function_problems(cfg, path.parent)
    if problems:
        raise TaskYamlError(f"task YAML {path}: {'; '.join(problems)}. {_TASK_YAML_FIX}")
    return cfg


def task_name(skill: str) -> str:
    """lm-eval task name of a skill: ``"n2w_fr"`` → ``"simmerge_n2w_fr"``."""
    return TASK_PREFIX + skill


def skill_name(task: str) -> str:
    """Skill name of an lm-eval task: ``"simmerge_n2w_fr"`` → ``"n2w_fr"`` (other names are kept)."""
    return task.removeprefix(TASK_PREFIX)


def _task_files(root: Path) -> dict[str, Path]:
    """Map each ``task:`` name declared by a ``*.yaml`` under ``root`` to its file."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.yaml")):
        if "__pycache__" in path.parts:
            continue
        # An unreadable file raises instead of being skipped: skipping it would report its task as missing.
        name = load_task_yaml(path).get("task")
        if isinstance(name, str):
            if name in found:
                raise ValueError(f"task {name!r} is declared twice: {found[name]} and {path}")
            found[name] = path
    return found


def check_task_yamls(task_dir: str | os.PathLike, skills: Sequence[str]) -> dict[str, Path]:
    """Find and check the task YAML of every skill: run at workflow parse time and again before scoring.

    Parameters
    ----------
    task_dir : path
        Folder of task YAMLs (``config/tasks``).
    skills : sequence of str
        Skill names (``"n2w_fr"``); each needs a YAML declaring ``task: simmerge_<skill>``.

    Returns
    -------
    dict
        Skill → its YAML file.

    Raises
    ------
    FileNotFoundError
        If the folder is missing or no YAML declares a skill's task (the message lists the tasks found).
    TaskYamlError
        If any YAML of the folder is unreadable, or a skill's YAML fails :func:`check_task_yaml`.
    """
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise FileNotFoundError(f"task folder not found: {task_dir}")
    declared = _task_files(task_dir)
    found = {}
    for skill in skills:
        name = task_name(skill)
        if name not in declared:
            raise FileNotFoundError(
                f"no task YAML in {task_dir} declares 'task: {name}' (for skill {skill!r}); "
                f"tasks found: {', '.join(sorted(declared)) or 'none'}"
            )
        check_task_yaml(declared[name])
        found[skill] = declared[name]
    return found


def materialize_tasks(
    task_dir: str | os.PathLike,
    data_files: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Copy the task YAMLs and point each requested task at its local JSONL.

    Every file of ``task_dir`` (templates, ``utils.py``) is copied into ``out_dir``; then the YAML declaring
    ``task: simmerge_<skill>`` for each skill in ``data_files`` gets
    ``dataset_kwargs: {data_files: {test: <absolute path>}}`` (other ``dataset_kwargs`` entries are kept).

    Parameters
    ----------
    task_dir : path
        Folder of committed task YAMLs (``config/tasks``).
    data_files : mapping of str to path
        Skill name (``"n2w_fr"``, not the task name) → the JSONL to score on.
    out_dir : path
        Scratch folder for the copies; created if missing.
    cache_dir : path, optional
        If given, also set ``dataset_kwargs.cache_dir`` so the ``datasets`` Arrow cache of these files lives
        there instead of the shared user cache.

    Returns
    -------
    list of str
        The lm-eval task names, in the order of ``data_files``.

    Raises
    ------
    FileNotFoundError
        If ``task_dir``, a task's YAML or a data file is missing; the message names the task and the path.
    TaskYamlError
        If a task YAML is malformed (see :func:`check_task_yamls`); the message names the committed file.
    """
    task_dir = Path(task_dir)
    out_dir = Path(out_dir)
    if not data_files:
        raise ValueError("data_files is empty: no task to score")
    # Checked on the committed files, so that messages name them rather than the scratch copies.
    check_task_yamls(task_dir, list(data_files))
    shutil.copytree(task_dir, out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    declared = _task_files(out_dir)

    names = []
    for skill, data_file in data_files.items():
        name = task_name(skill)
        data_path = Path(data_file).expanduser().resolve()
        if not data_path.is_file():
            raise FileNotFoundError(f"data file for task {name} not found: {data_path}")
        yaml_path = declared[name]
        cfg = load_task_yaml(yaml_path)
        kwargs = dict(cfg.get("dataset_kwargs") or {})
        kwargs["data_files"] = {"test": str(data_path)}
        if cache_dir is not None:
            kwargs["cache_dir"] = str(Path(cache_dir).resolve())
        cfg["dataset_kwargs"] = kwargs
        dump_task_yaml(cfg, yaml_path)
        names.append(name)
    return names


# ----------------------------------------------------------------------------------------------------------
# Scoring


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Make huggingface_hub, datasets and transformers treat the hub as unreachable inside the block.

    Both libraries copy ``HF_HUB_OFFLINE`` into module constants at import, so setting the environment is not
    enough once they are imported; the constants are patched too and restored afterwards.
    """
    import datasets.config
    import huggingface_hub.constants

    saved_env = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    patched = [
        (huggingface_hub.constants, "HF_HUB_OFFLINE"),
        (datasets.config, "HF_HUB_OFFLINE"),
        (datasets.config, "HF_DATASETS_OFFLINE"),
    ]
    saved_attrs = [(module, attr, getattr(module, attr)) for module, attr in patched if hasattr(module, attr)]
    os.environ.update({key: "1" for key in saved_env})
    for module, attr, _ in saved_attrs:
        setattr(module, attr, True)
    try:
        yield
    finally:
        for module, attr, value in saved_attrs:
            setattr(module, attr, value)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _number(value: Any) -> float | None:
    """A finite float, or None for NaN, infinities and lm-eval's ``"N/A"``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_task_result(
    task: str, results: Mapping[str, Any], *, yaml_cfg: Mapping[str, Any] | None = None
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

    config = results.get("configs", {}).get(task, {})
    output_type = config.get("output_type") or (yaml_cfg or {}).get("output_type")
    primary = PRIMARY_METRIC.get(output_type)
    if primary is None or primary not in metrics:
        raise ValueError(
            f"task {task}: cannot pick a primary metric (output_type {output_type!r}, "
            f"metrics {sorted(metrics)}); SimMerge expects exact_match for generate_until and acc for "
            "multiple_choice"
        )
    version = results.get("versions", {}).get(task)
    if version is None:
        version = ((yaml_cfg or {}).get("metadata") or {}).get("version")
    n_samples = results.get("n-samples", {}).get(task, {})
    return {
        "metrics": metrics,
        "stderr": stderr,
        "filters": filters,
        "output_type": output_type,
        "primary_metric": primary,
        "score": metrics[primary],
        "n": n_samples.get("effective"),
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
) -> dict[str, Any]:
    """Score one checkpoint on some skills with lm-eval, in-process and offline.

    Runs ``lm_eval.simple_evaluate`` on an ``HFLM`` in fp32 over the tasks of :func:`materialize_tasks`, with
    no response cache (a cache shared between checkpoints would hand one model's answers to another), no
    logged samples, and every seed fixed at 0, so the same checkpoint and data give the same scores.

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

    Returns
    -------
    dict
        JSON-able: ``checkpoint``, ``tasks`` (skill → record of :func:`parse_task_result`: ``metrics``,
        ``stderr``, ``filters``, ``output_type``, ``primary_metric``, ``score``, ``n``, ``version``),
        ``lm_eval_version``, ``wall_seconds``, ``load_seconds`` (building the ``HFLM``: model and tokenizer
        load), ``limit``, ``device``.

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

    with offline_hub(), tempfile.TemporaryDirectory(prefix="simmerge-tasks-") as scratch:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        include = Path(scratch) / "tasks"
        tasks = materialize_tasks(task_dir, data_files, include, cache_dir=Path(scratch) / "datasets")
        declared = _task_files(include)
        yaml_cfgs = {task: _resolved_cfg(declared[task]) for task in tasks}

        loading = time.perf_counter()
        lm = HFLM(
            pretrained=str(ckpt_dir),
            batch_size=batch_size,
            dtype="float32",
            device=str(torch_device),
            trust_remote_code=trust_remote_code,
        )
        load_seconds = time.perf_counter() - loading
        manager = TaskManager(include_path=str(include), include_defaults=False)
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=tasks,
            task_manager=manager,
            limit=limit,
            use_cache=None,
            log_samples=False,
            gen_kwargs={"max_gen_toks": max_gen_toks} if max_gen_toks is not None else None,
            random_seed=SEED,
            numpy_random_seed=SEED,
            torch_random_seed=SEED,
            fewshot_random_seed=SEED,
        )
        del lm
    if results is None:
        raise RuntimeError("lm-eval returned no results")

    scores = {skill_name(task): parse_task_result(task, results, yaml_cfg=yaml_cfgs[task]) for task in tasks}
    wall_seconds = time.perf_counter() - started
    log.info(
        "scored %s in %.1fs: %s",
        ckpt_dir.name,
        wall_seconds,
        ", ".join(f"{skill} {rec['primary_metric']}={rec['score']}" for skill, rec in scores.items()),
    )
    return {
        "checkpoint": name or ckpt_dir.name,
        "tasks": scores,
        "lm_eval_version": _lm_eval_version(),
        "wall_seconds": wall_seconds,
        "load_seconds": load_seconds,
        "limit": limit,
        "device": str(torch_device),
    }


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


# ----------------------------------------------------------------------------------------------------------
# Normalisation


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
    from simmerge.io import read_json

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


def expert_score_path(run: str | os.PathLike, name: str, task: str) -> Path:
    """Where the workflow writes the score of checkpoint ``name`` on ``task`` (rule ``expert_scores``)."""
    return Path(run) / "scores" / "experts" / name / f"{task}.json"


def read_checkpoint_scores(run: str | os.PathLike, name: str) -> dict[str, Any]:
    """Every score the run holds for checkpoint ``name``, joined into one record (:func:`read_scores`).

    Raises
    ------
    FileNotFoundError
        If the run holds no score of ``name``; the message says which rule makes them.
    """
    paths = sorted((Path(run) / "scores" / "experts" / name).glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"{run} holds no expert score of {name!r}: run `snakemake all_catalog` first")
    return read_scores(paths)[name]


# ----------------------------------------------------------------------------------------------------------
# Tables


def expert_table(score_files: Sequence[str | os.PathLike], home_tasks: Mapping[str, Sequence[str]]):
    """Checkpoint × task table of primary scores from ``scores/experts/<name>/<task>.json`` files.

    Parameters
    ----------
    score_files : sequence of path
        Score JSONs written by the ``expert_scores`` rule, the base's first.
    home_tasks : mapping of str to sequence of str
        Checkpoint name → its home tasks (empty for the base).

    Returns
    -------
    pandas.DataFrame
        One row per checkpoint: ``checkpoint``, ``home_tasks``, one column per task (primary metric), one
        ``<task>_stderr`` column per task, ``home_score`` (mean over home tasks) and ``home_gain`` (home score
        minus the first row's — the base's — score on the same tasks). A row whose home gain is not positive
        is logged as a warning: that expert did not learn its skill.
    """
    import pandas as pd

    records = list(read_scores(score_files).values())
    tasks = sorted({task for record in records for task in record["tasks"]})
    base = records[0]
    rows = []
    for record in records:
        name = record["checkpoint"]
        home = list(home_tasks.get(name, []))
        row: dict[str, Any] = {"checkpoint": name, "home_tasks": ",".join(home)}
        for task in tasks:
            entry = record["tasks"].get(task)
            row[task] = entry["score"] if entry else None
            row[f"{task}_stderr"] = entry["stderr"].get(entry["primary_metric"]) if entry else None
        if home:
            row["home_score"] = sum(record["tasks"][t]["score"] for t in home) / len(home)
            base_home = sum(base["tasks"][t]["score"] for t in home) / len(home)
            row["home_gain"] = row["home_score"] - base_home
            if row["home_gain"] <= 0:
                log.warning("expert %r does not beat the base on its home task(s) %s", name, home)
        else:
            row["home_score"] = row["home_gain"] = None
        rows.append(row)
    return pd.DataFrame(
        rows,
        columns=[
            "checkpoint",
            "home_tasks",
            *tasks,
            *(f"{t}_stderr" for t in tasks),
            "home_score",
            "home_gain",
        ],
    )


def markdown_table(table) -> str:
    """The primary-score columns of :func:`expert_table` as a Markdown table (3 decimals, home cells bold)."""
    tasks = [
        c
        for c in table.columns
        if c not in {"checkpoint", "home_tasks", "home_score", "home_gain"} and not c.endswith("_stderr")
    ]
    lines = ["| checkpoint | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for row in table.to_dict("records"):
        home = set(filter(None, row["home_tasks"].split(",")))
        cells = []
        for task in tasks:
            value = row[task]
            text = "–" if value is None or value != value else f"{value:.3f}"
            cells.append(f"**{text}**" if task in home else text)
        lines.append(f"| {row['checkpoint']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
