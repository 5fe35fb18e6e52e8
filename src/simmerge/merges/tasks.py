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
from simmerge.merges import one_pass

TASK_PREFIX = "simmerge_"


PRIMARY_METRIC = {"generate_until": "exact_match", "multiple_choice": "acc"}
# What lm-eval runs: a generative skill scored by one-pass exact match is a loglikelihood task (:func:`one_pass_cfg`).
SCORED_PRIMARY_METRIC = {**PRIMARY_METRIC, "loglikelihood": "exact_match"}

# How exact match of a generative built-in skill is decided (``scoring.exact_match``): ``one_pass`` — one
# teacher-forced pass over prompt + gold answer + stop sequence, correct when every token is the argmax
# (:func:`one_pass_cfg`); ``generate`` — greedy decoding, as the skill's YAML says.
EXACT_MATCH_MODES = ("one_pass", "generate")
# The module lm-eval loads one-pass results from, written beside the materialised YAMLs.
ONE_PASS_MODULE = "simmerge_one_pass"


def one_pass_cfg(cfg: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The overrides that turn a greedy ``generate_until`` skill into one-pass exact match.

    The request becomes a loglikelihood request of ``target_delimiter + doc_to_target + stop`` — the exact text
    greedy decoding has to produce before it stops — scored by :func:`simmerge.merges.one_pass.one_pass_exact_match`
    (copied beside the YAML as ``simmerge_one_pass.py``; lm-eval's
    ``is_greedy``: every continuation token is the argmax), so one forward pass replaces a decoding loop and
    gives the gold answer's log-likelihood too. It equals generation exact match except where decoding reaches
    the same text through other tokens, or differs only in case (generation's ``exact_match`` ignores case,
    this does not): agreement is measured, not assumed (``benchmarks/one_pass_agreement.py``).

    Raises
    ------
    TaskYamlError
        If the skill does not decode greedily to a single stop string with a template target; the message
        names the file and says to score it with ``scoring.exact_match: generate``.
    """
    generation = cfg.get("generation_kwargs") or {}
    until = generation.get("until")
    target, delimiter = cfg.get("doc_to_target"), cfg.get("target_delimiter", " ")
    problems = []
    if generation.get("do_sample"):
        problems.append("it samples (do_sample: true)")
    if not (isinstance(until, list) and len(until) == 1 and isinstance(until[0], str) and until[0]):
        problems.append(f"its stop sequence is {until!r}, not one string")
    if not isinstance(target, str) or isinstance(target, _Tagged) or not isinstance(delimiter, str):
        problems.append("its doc_to_target is not a template string")
    if problems:
        raise TaskYamlError(
            f"task YAML {path}: one-pass exact match needs greedy decoding to one stop string, but "
            f"{' and '.join(problems)}; set scoring.exact_match: generate in the config to score it by generation"
        )
    return {
        "output_type": "loglikelihood",
        "doc_to_target": f"{delimiter}{target}{until[0]}",
        "process_results": _Tagged(f"{ONE_PASS_MODULE}.one_pass_exact_match", "!function"),
        "metric_list": [
            {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True},
            {"metric": "gold_loglik", "aggregation": "mean", "higher_is_better": True},
        ],
        "filter_list": [{"name": "none", "filter": [{"function": "take_first"}]}],
        "generation_kwargs": None,
    }


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
    exact_match: str = "one_pass",
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
    exact_match : str
        ``"one_pass"``: generative skills get the overrides of :func:`one_pass_cfg`; ``"generate"``: they decode.

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
    if exact_match not in EXACT_MATCH_MODES:
        raise ValueError(f"exact_match is {exact_match!r}; it is one of {', '.join(EXACT_MATCH_MODES)}")
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
        if exact_match == "one_pass":
            resolved = resolved_task_cfg(yaml_path)
            if resolved.get("output_type") == "generate_until":
                cfg.update(one_pass_cfg(resolved, Path(task_dir) / yaml_path.relative_to(out_dir)))
                # lm-eval loads a !function from a file beside the YAML
                shutil.copyfile(Path(one_pass.__file__), yaml_path.parent / f"{ONE_PASS_MODULE}.py")
        dump_task_yaml(cfg, yaml_path)
        names.append(name)
    return names
