"""The lm-eval task YAMLs of the built-in skills: load and check them, and materialise them for a run.

The committed task YAMLs hold no data paths; :func:`materialize_tasks` copies them into a scratch folder and
fills in the absolute path of each task's local JSONL. :func:`check_task_yamls` runs when the workflow is parsed
and again before lm-eval loads a model, so a malformed file names itself before any scoring.
"""

from __future__ import annotations

import ast
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simmerge.core.task_yaml import TASK_YAML_FIX, TaskYamlError, _Tagged, dump_task_yaml, load_task_yaml

TASK_PREFIX = "simmerge_"


PRIMARY_METRIC = {"generate_until": "exact_match", "multiple_choice": "acc"}


def resolved_task_cfg(path: Path) -> dict[str, Any]:
    """A task YAML merged with its ``include`` chain (local keys win), as lm-eval resolves it."""
    cfg = load_task_yaml(path)
    includes = cfg.pop("include", None)
    merged: dict[str, Any] = {}
    for include in includes if isinstance(includes, list) else [includes] if includes else []:
        if not isinstance(include, str) or not (path.parent / include).is_file():
            raise TaskYamlError(
                f"task YAML {path}: include {include!r} names no file in {path.parent}. {TASK_YAML_FIX}"
            )
        merged.update(resolved_task_cfg(path.parent / include))
    merged.update(cfg)
    return merged


def _functions(cfg: Mapping[str, Any]) -> list[str]:
    """The ``!function module.name`` values of a resolved task config (top-level fields and metrics)."""
    values = [
        *cfg.values(),
        *(entry.get("metric") for entry in cfg.get("metric_list") or [] if isinstance(entry, dict)),
    ]
    return [str(value) for value in values if isinstance(value, _Tagged) and value.tag == "!function"]


def _function_source(value: str, folder: Path) -> Path:
    """The Python file lm-eval loads a ``!function module.name`` from: ``module.py`` beside the YAML."""
    module = value.rpartition(".")[0]
    return folder / f"{module.replace('.', '/')}.py"


def _function_problems(cfg: Mapping[str, Any], folder: Path) -> list[str]:
    """``!function module.name`` values whose module file or function is missing, read without importing it."""

    problems = []
    for value in _functions(cfg):
        function = value.rpartition(".")[2]
        source = _function_source(value, folder)
        if not source.is_file():
            problems.append(f"!function {value} needs {source}, which does not exist")
            continue
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        except SyntaxError as err:
            problems.append(f"!function {value}: {source} is not valid Python: {err.msg} (line {err.lineno})")
            continue
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
    cfg = resolved_task_cfg(path)
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
        raise TaskYamlError(f"task YAML {path}: {'; '.join(problems)}. {TASK_YAML_FIX}")
    return cfg


def _include_chain(path: Path) -> list[Path]:
    """A task YAML and every file its ``include`` entries name, recursively (as :func:`resolved_task_cfg`)."""
    includes = load_task_yaml(path).get("include")
    chain = [path]
    for include in includes if isinstance(includes, list) else [includes] if includes else []:
        chain += _include_chain(path.parent / include)
    return chain


def task_definition_files(task_dir: str | os.PathLike, skills: Sequence[str]) -> list[Path]:
    """The files that define how ``skills`` are scored: each skill's YAML, the templates it includes and the
    modules of its ``!function`` entries.

    A scoring job's result depends on these files and on no other file of the folder, so the workflow declares
    exactly them as the job's inputs: editing a template re-scores the tasks that include it, editing
    ``utils.py`` the tasks whose metrics it defines.

    Parameters
    ----------
    task_dir : path
        Folder of task YAMLs (``config/tasks``).
    skills : sequence of str
        Skill names (``"n2w_fr"``).

    Returns
    -------
    list of Path
        Sorted, each file once, as paths under ``task_dir``.

    Raises
    ------
    FileNotFoundError, TaskYamlError
        As :func:`check_task_yamls`, which runs first.
    """
    files: set[Path] = set()
    for path in check_task_yamls(task_dir, skills).values():
        files.update(_include_chain(path))
        files.update(_function_source(value, path.parent) for value in _functions(resolved_task_cfg(path)))
    return sorted(files)


def task_name(skill: str) -> str:
    """lm-eval task name of a skill: ``"n2w_fr"`` → ``"simmerge_n2w_fr"``."""
    return TASK_PREFIX + skill


def skill_name(task: str) -> str:
    """Skill name of an lm-eval task: ``"simmerge_n2w_fr"`` → ``"n2w_fr"`` (other names are kept)."""
    return task.removeprefix(TASK_PREFIX)


def task_files(root: Path) -> dict[str, Path]:
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
    declared = task_files(task_dir)
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
    declared = task_files(out_dir)

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
