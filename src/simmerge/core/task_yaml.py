"""Reading and writing lm-eval task YAMLs without running them: ``!function`` tags kept as tagged strings.

lm-eval's own loader imports the module a ``!function`` names; checks that run when the workflow is parsed (the
built-in task YAMLs, a user's task folder) read the files with this safe loader instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from simmerge.core.config import ConfigError, yaml_problem


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


class TaskYamlError(ConfigError):
    """A task YAML lm-eval cannot use; the message names the file, the problem and the fix.

    A :class:`ConfigError`: the task YAMLs are part of the run's configuration, and ``simmerge`` reports both
    the same way (one message, exit code 2)."""


# The built-in task YAMLs (config/tasks) are the files these messages are mostly about.
TASK_YAML_FIX = "fix the file (config/tasks/README.md describes the fields) or restore it with git"


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
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TaskYamlError(
            f"task YAML {path}: is not UTF-8 text ({err.reason} at byte {err.start}). {TASK_YAML_FIX}"
        ) from None
    try:
        cfg = yaml.load(text, Loader=_TaskLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise TaskYamlError(f"task YAML {path}: is not valid YAML: {yaml_problem(err)}. {TASK_YAML_FIX}") from None
    if not isinstance(cfg, dict):
        raise TaskYamlError(
            f"task YAML {path}: holds a {type(cfg).__name__}, not a mapping of lm-eval fields. {TASK_YAML_FIX}"
        )
    return cfg


def dump_task_yaml(cfg: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write a task YAML read by :func:`load_task_yaml`, keeping its key order and tags."""
    text = yaml.dump(dict(cfg), Dumper=_TaskDumper, sort_keys=False, allow_unicode=True, width=1000)
    Path(path).write_text(text, encoding="utf-8")
