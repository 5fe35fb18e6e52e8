"""Tasks defined by lm-eval: a task or group of its registry by name, or the user's own task YAMLs.

A harness task is scored by lm-eval's own definition of it (its dataset, prompts, few-shot sampler, filters and
metrics). What SimMerge adds is the choice of documents, made once per task by rule ``task_data`` and written to
the task's data folder like a built-in skill's: ``eval.jsonl`` lists the scored test documents by index (lm-eval
selects them through ``samples``; ``limit`` would take the first N), ``probe.jsonl`` holds probe prompts built by
lm-eval's prompt construction from documents that are never scored, ``train.jsonl`` prompt/answer rows of the
training split for ``finetune`` sources, and ``task.json`` everything a scoring job needs to rebuild the task.

Names are checked when the workflow is parsed, against lm-eval's registry index. Building that index reads every
YAML lm-eval ships (~15 s), so it is built once per lm-eval installation and kept in the user cache
(``$SIMMERGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/simmerge``, else ``~/.cache/simmerge``).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.util
import json
import logging
import os
import random
import tempfile
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from simmerge.core.config import ConfigError, HarnessTaskSpec, YamlTaskSpec, resolve_path
from simmerge.core.io import write_json, write_jsonl
from simmerge.core.runtime import offline_hub
from simmerge.core.task_yaml import load_task_yaml

log = logging.getLogger(__name__)

CACHE_ENV = "SIMMERGE_CACHE_DIR"

# Metrics that can be negative (Matthews correlation): a ratio to the better parent would flip its sign.
SIGNED_METRICS = frozenset({"mcc"})

# ``datasets`` builders that read local files named in ``dataset_kwargs.data_files``: a dataset_path, not a folder.
FILE_BUILDERS = frozenset({"json", "csv", "parquet", "text", "arrow"})

# Version of the cached registry index's entries (format 2 added each task's dataset).
INDEX_FORMAT = 2

NORMALISATION = (
    "SimMerge divides a merge's score by its better parent's, which needs a metric where higher is better and 0 "
    "is the floor (accuracy, exact match, F1)"
)


# ---- the registry ---------------------------------------------------------------------------------------------


def _cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simmerge"


def _lm_eval_tasks_dir() -> Path:
    """lm-eval's task folder, found without importing lm_eval (seconds, at every parse of the workflow)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "lm-eval is not installed: an lmeval task needs it (pip install -c envs/constraints.txt -e .)"
        )
    return Path(spec.submodule_search_locations[0]) / "tasks"


def _index_entries(paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """name → ``{"kind", "yaml", "children", "dataset"}`` of lm-eval's index over ``paths`` (children: a group's
    members, a tag's tasks; dataset: a task's ``dataset_path``, ``dataset_name`` and ``dataset_kwargs.revision``)."""
    # deferred: lm-eval's index builder imports lm_eval
    from lm_eval.tasks._index import Kind, TaskIndex

    index = TaskIndex().build(list(paths))
    entries: dict[str, dict[str, Any]] = {}
    for name, entry in index.items():
        children: list[str] = []
        if entry.kind == Kind.GROUP:
            members = entry.cfg.get("task") if entry.cfg else None
            for member in members if isinstance(members, list) else [members] if members else []:
                child = member.get("task") if isinstance(member, dict) else member
                if isinstance(child, str):
                    children.append(child)
        dataset = None
        if entry.kind == Kind.TASK and entry.cfg and isinstance(entry.cfg.get("dataset_path"), str):
            kwargs = entry.cfg.get("dataset_kwargs")
            revision = kwargs.get("revision") if isinstance(kwargs, dict) else None
            dataset = {
                "path": entry.cfg["dataset_path"],
                "name": entry.cfg.get("dataset_name"),
                "revision": revision if isinstance(revision, str) else None,
            }
        entries[name] = {
            "kind": entry.kind.name.lower(),
            "yaml": str(entry.yaml_path) if entry.yaml_path else None,
            "children": children,
            "dataset": dataset,
        }
    for name, entry in index.items():
        for tag in entry.tags:
            if tag in entries:
                entries[tag]["children"].append(name)
    return entries


@functools.cache
def registry_index() -> dict[str, dict[str, Any]]:
    """lm-eval's registry (tasks, groups, tags) as name → ``{"kind", "yaml", "children", "dataset"}``, cached per
    install.

    Read once per process: a parse of the workflow checks every lm-eval task against it (~0.08 s a read)."""
    tasks_dir = _lm_eval_tasks_dir()
    # a reinstall or an added task folder (an editable lm-eval) changes the folder's mtime, and so the key
    key = hashlib.sha256(f"{tasks_dir}:{tasks_dir.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    cache = _cache_dir() / f"lm_eval-index-v{INDEX_FORMAT}-{version('lm_eval')}-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    log.info("indexing lm-eval's task registry once (cached in %s)", cache)
    entries = _index_entries([tasks_dir])
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json(entries, cache)
    return entries


def closest_names(name: str, names: Sequence[str], n: int = 5) -> list[str]:
    """Registry names that look like ``name``: close spellings first, then names that contain it."""
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    containing = sorted(other for other in names if name.lower() in other.lower() and other not in close)
    return (close + containing)[:n]


# ---- one configured task --------------------------------------------------------------------------------------


def task_name_of(key: str, spec: HarnessTaskSpec, workdir: str | Path = ".") -> str:
    """The lm-eval name of a configured task: its ``task``, else the ``task:`` of a single YAML file, else the key."""
    if spec.task is not None:
        return spec.task
    if isinstance(spec, YamlTaskSpec):
        path = resolve_path(spec.path, workdir)
        if path.is_file():
            declared = load_task_yaml(path)
            for name in (declared.get("task"), declared.get("group")):  # a group file's `task` is its member list
                if isinstance(name, str):
                    return name
    return key


def declared_names(path: Path) -> list[str]:
    """The task, group and tag names the YAMLs of a user's task file or folder declare, read without lm-eval (whose
    import costs seconds at every parse of the workflow) and without running their ``!function`` code."""
    files = [path] if path.is_file() else sorted(path.rglob("*.yaml"))
    names: set[str] = set()
    for file in files:
        declared = load_task_yaml(file)
        for key in ("group", "task", "tag"):
            value = declared.get(key)
            values = value if isinstance(value, list) and key == "tag" else [value]
            names.update(item for item in values if isinstance(item, str))
    return sorted(names)


def _entries_of(spec: HarnessTaskSpec, workdir: str | Path) -> dict[str, dict[str, Any]]:
    if isinstance(spec, YamlTaskSpec):
        path = resolve_path(spec.path, workdir)
        return _index_entries([path if path.is_dir() else path.parent])
    return registry_index()


def _folders(name: str, entries: Mapping[str, Mapping[str, Any]], seen: set[str] | None = None) -> set[str]:
    """The folders of the YAMLs that define ``name`` and, for a group or tag, each member."""
    seen = set() if seen is None else seen
    if name in seen or name not in entries:
        return set()
    seen.add(name)
    entry = entries[name]
    folders = {str(Path(entry["yaml"]).parent)} if entry["yaml"] else set()
    for child in entry["children"]:
        folders |= _folders(child, entries, seen)
    return folders


def _leaves(name: str, entries: Mapping[str, Mapping[str, Any]], seen: set[str] | None = None) -> list[str]:
    """The tasks a name stands for: itself, or a group's or tag's members, recursively, in order."""
    seen = set() if seen is None else seen
    if name in seen or name not in entries:
        return []
    seen.add(name)
    if entries[name]["kind"] in ("task", "py_task"):
        return [name]
    return [leaf for child in entries[name]["children"] for leaf in _leaves(child, entries, seen)]


def hub_datasets(key: str, spec: HarnessTaskSpec, workdir: str | Path = ".") -> dict[str, dict[str, Any]]:
    """The Hub dataset repositories a configured harness task reads through the Hugging Face caches.

    Every leaf task whose ``dataset_path`` is neither a local folder nor a file builder (``json``, ``csv``, ...)
    reads a Hub repository, at the revision its YAML's (or the config entry's) ``dataset_kwargs.revision`` names,
    else ``main``. Read from lm-eval's index, without loading any data. A group member defined inline with its own
    dataset (not a task of the registry) is not seen.

    Returns
    -------
    dict
        repository → ``{"revision", "configs"}`` (``configs``: the ``dataset_name`` each leaf reads, sorted).

    Raises
    ------
    ConfigError
        If two leaves read one repository at different revisions.
    """
    if spec.dataset_path is not None:
        return {}  # a local copy (task_problems checks that it exists) or a file builder
    entries = _entries_of(spec, workdir)
    name = task_name_of(key, spec, workdir)
    override = (spec.dataset_kwargs or {}).get("revision")
    found: dict[str, dict[str, Any]] = {}
    for leaf in _leaves(name, entries):
        dataset = entries[leaf].get("dataset")
        if not dataset or dataset["path"] in FILE_BUILDERS or resolve_path(dataset["path"], workdir).exists():
            continue
        revision = str(override or dataset["revision"] or "main")
        held = found.setdefault(dataset["path"], {"revision": revision, "configs": set()})
        if held["revision"] != revision:
            raise ConfigError(
                f"tasks.{key}: lm-eval task {leaf} reads {dataset['path']} at {revision!r} and another member at "
                f"{held['revision']!r}; one task can lock one revision of a dataset"
            )
        held["configs"].add(dataset["name"] or "")
    return {path: {"revision": held["revision"], "configs": sorted(held["configs"])} for path, held in found.items()}


def task_problems(key: str, spec: HarnessTaskSpec, workdir: str | Path = ".") -> list[str]:
    """What is wrong with one configured harness task that can be seen without loading its data.

    An lm-eval task name the registry does not know (with the closest names it does), a YAML path or folder
    that does not exist or does not declare the task, a ``dataset_path`` that does not exist, and data overrides
    on a group (each member has its own dataset).
    """
    where = f"tasks.{key}"
    if isinstance(spec, YamlTaskSpec):
        path = resolve_path(spec.path, workdir)
        if not path.exists():
            return [f"{where}.path: {path} does not exist; give the task YAML or the folder of task YAMLs"]
    name = task_name_of(key, spec, workdir)
    problems = []
    if isinstance(spec, YamlTaskSpec):
        known = declared_names(resolve_path(spec.path, workdir))
        kind = None  # a user's group is checked when its task is loaded (rule task_data)
    else:
        registry = registry_index()
        known, kind = sorted(registry), registry.get(name, {}).get("kind")
    if name not in known:
        where_known = f"in {spec.path}" if isinstance(spec, YamlTaskSpec) else "in lm-eval's registry"
        close = closest_names(name, known)
        hint = f"; closest: {', '.join(close)}" if close else ""
        field = "task" if spec.task is not None or isinstance(spec, YamlTaskSpec) else "name"
        problems.append(f"{where}: no task or group {name!r} {where_known} (the entry's {field}){hint}")
    elif kind in ("group", "tag") and (spec.dataset_path or spec.dataset_kwargs):
        problems.append(
            f"{where}: {name!r} is a {kind} of several datasets; dataset_path and dataset_kwargs apply to one "
            "task: put its members' data in the Hugging Face cache instead"
        )
    if (
        spec.dataset_path is not None
        and spec.dataset_path not in FILE_BUILDERS
        and not resolve_path(spec.dataset_path, workdir).exists()
    ):
        problems.append(
            f"{where}.dataset_path: {resolve_path(spec.dataset_path, workdir)} does not exist; give a local copy "
            "of the dataset laid out as its hub repository, or leave it out to use the Hugging Face cache"
        )
    return problems


def definition_files(spec: HarnessTaskSpec, workdir: str | Path = ".") -> list[Path]:
    """The user's files that define a ``yaml`` task (every YAML and Python file of its folder); none for a
    registry task, which lm-eval's installed version defines.

    Relative to the workflow directory when they are inside it: Snakemake re-runs a job whose set of input paths
    changed, so absolute paths would re-run the task's whole chain when the workflow folder moves.
    """
    if not isinstance(spec, YamlTaskSpec):
        return []
    path = resolve_path(spec.path, workdir)
    folder = path if path.is_dir() else path.parent
    root = Path(workdir).resolve()
    return sorted(
        file.relative_to(root) if file.is_relative_to(root) else file
        for file in folder.rglob("*")
        if file.suffix in (".yaml", ".yml", ".py") and "__pycache__" not in file.parts and file.is_file()
    )


# How a record names a folder of lm-eval's own task YAMLs: relative to lm-eval's installed task folder.
LM_EVAL_TASKS = "lm_eval:"


def _portable(path: str | Path, workdir: str | Path) -> str:
    """A path as a task record stores it: under lm-eval's task folder ``lm_eval:<rel>``, under the workflow directory
    relative to it, else absolute; so the record (and the run's data folder) is the same wherever the workflow and
    lm-eval are installed."""
    path = Path(path).resolve()
    for root, prefix in ((_lm_eval_tasks_dir().resolve(), LM_EVAL_TASKS), (Path(workdir).resolve(), "")):
        if path.is_relative_to(root):
            return prefix + str(path.relative_to(root))
    return str(path)


def local_path(stored: str, workdir: str | Path = ".") -> Path:
    """The path a record's :func:`_portable` entry names on this machine (relative ones from the workflow
    directory, every job's working directory)."""
    if stored.startswith(LM_EVAL_TASKS):
        return _lm_eval_tasks_dir() / stored.removeprefix(LM_EVAL_TASKS)
    return resolve_path(stored, workdir)


def _map_files(value: Any, convert: Any) -> Any:
    """``data_files`` (a path, a list of paths or split → paths) with ``convert`` applied to every path."""
    if isinstance(value, str):
        return convert(value)
    if isinstance(value, list):
        return [_map_files(item, convert) for item in value]
    if isinstance(value, dict):
        return {split: _map_files(item, convert) for split, item in value.items()}
    return value


def scoring_spec(
    key: str, spec: HarnessTaskSpec, workdir: str | Path = ".", dataset_commits: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What a scoring job needs to rebuild the task: lm-eval name, YAML folders and overrides, settings, and the
    commit of each Hub dataset it reads (``dataset_commits``, from the lock; :func:`check_dataset_commits`).

    Paths are stored by :func:`_portable`: taken from the workflow directory, named so that they do not depend on
    where the workflow or lm-eval is installed.
    """
    name = task_name_of(key, spec, workdir)
    entries = _entries_of(spec, workdir)
    overrides: dict[str, Any] = {}
    if spec.dataset_path is not None:
        local = spec.dataset_path not in FILE_BUILDERS
        path = _portable(resolve_path(spec.dataset_path, workdir), workdir) if local else spec.dataset_path
        overrides["dataset_path"] = path
    if spec.dataset_kwargs is not None:
        kwargs = dict(spec.dataset_kwargs)
        if "data_files" in kwargs:
            kwargs["data_files"] = _map_files(
                kwargs["data_files"], lambda file: _portable(resolve_path(file, workdir), workdir)
            )
        overrides["dataset_kwargs"] = kwargs
    return {
        "kind": spec.kind,
        "task": name,
        "yaml": _portable(entries[name]["yaml"], workdir),
        "include_path": sorted(_portable(folder, workdir) for folder in _folders(name, entries)),
        "overrides": overrides,
        "num_fewshot": spec.num_fewshot,
        "apply_chat_template": spec.apply_chat_template,
        "fewshot_as_multiturn": spec.fewshot_as_multiturn,
        "dataset_commits": dict(sorted((dataset_commits or {}).items())),
    }


def task_manager(scoring: Mapping[str, Any], workdir: str | Path = ".") -> Any:
    """An lm-eval ``TaskManager`` over the folders that define the task only: indexing lm-eval's whole registry
    would cost every scoring job ~15 s."""
    # deferred: lm-eval and datasets are slow to import
    from lm_eval.tasks import TaskManager

    return TaskManager(
        include_path=[str(local_path(folder, workdir)) for folder in scoring["include_path"]], include_defaults=False
    )


def task_request(
    scoring: Mapping[str, Any], datasets_cache: str | Path | None = None, workdir: str | Path = "."
) -> str | dict[str, Any]:
    """The task as lm-eval is asked for it: its name, or with data overrides its whole config with them on top.

    lm-eval 0.4.13 builds a dict spec ``{"task": name, ...}`` as a new inline task rather than merging it into the
    task of that name, so the task's YAML (its ``include`` chain resolved) is merged here. With data overrides, the
    ``datasets`` Arrow cache goes to ``datasets_cache``: datasets 5.2 keys a local folder's prepared data by its
    name and its card's ``configs``, not by its path or content, so two local copies named alike (``ai2_arc``) would
    otherwise read each other's data from the shared user cache.
    """
    if not scoring["overrides"]:
        return scoring["task"]
    # deferred: lm-eval is slow to import
    from lm_eval.tasks._yaml_loader import load_yaml

    overrides = dict(scoring["overrides"])
    if "dataset_path" in overrides and overrides["dataset_path"] not in FILE_BUILDERS:
        overrides["dataset_path"] = str(local_path(overrides["dataset_path"], workdir))
    if "data_files" in overrides.get("dataset_kwargs", {}):
        files = _map_files(overrides["dataset_kwargs"]["data_files"], lambda file: str(local_path(file, workdir)))
        overrides["dataset_kwargs"] = {**overrides["dataset_kwargs"], "data_files": files}
    config = {**load_yaml(local_path(scoring["yaml"], workdir), resolve_func=True, recursive=True), **overrides}
    local_data = "dataset_path" in overrides or "data_files" in overrides.get("dataset_kwargs", {})
    if datasets_cache is not None and local_data:  # a Hub dataset is read from the shared cache the prefetch filled
        config["dataset_kwargs"] = {**(config.get("dataset_kwargs") or {}), "cache_dir": str(datasets_cache)}
    return config


def load_tasks(
    scoring: Mapping[str, Any], datasets_cache: str | Path | None = None, workdir: str | Path = "."
) -> tuple[dict[str, Any], Any]:
    """Build the leaf tasks (and the group, if the name is one) of a :func:`scoring_spec` with lm-eval.

    Returns
    -------
    tuple
        (leaf task name → lm-eval ``Task``, the ``Group`` or None).
    """
    loaded = task_manager(scoring, workdir).load([task_request(scoring, datasets_cache, workdir)])
    group = loaded.get("groups", {}).get(scoring["task"])
    tasks = dict(sorted(loaded["tasks"].items()))
    check_dataset_commits(tasks, scoring.get("dataset_commits", {}))
    return tasks, group


class DatasetRevisionError(RuntimeError):
    """A task read a Hub dataset at another commit than the one the run locked."""


def dataset_commit_read(task: Any) -> str | None:
    """The commit of the Hub dataset a built lm-eval task read: the hash folder of its prepared Arrow files
    (``<repo>/<config>/<version>/<commit>/``, where datasets keys the load of a Hub repository); None when its
    data are not prepared files (an in-memory or custom dataset)."""
    for split in (getattr(task, "dataset", None) or {}).values():
        files = getattr(split, "cache_files", None)
        if files:
            return Path(files[0]["filename"]).parent.name
    return None


def check_dataset_commits(tasks: Mapping[str, Any], commits: Mapping[str, str]) -> None:
    """Check that every built task read its Hub dataset at the locked commit.

    Offline, datasets 5.2 serves a Hub dataset from the newest prepared copy in its cache, whatever revision is
    asked for; a copy prepared from another commit (an older prefetch) would be read silently.

    Raises
    ------
    DatasetRevisionError
        Naming the task, the dataset, the commit read and the one locked, and the command that fills the cache.
    """
    for name, task in tasks.items():
        path = getattr(task.config, "dataset_path", None)
        if path not in commits:
            continue
        read = dataset_commit_read(task)
        if read != commits[path]:
            raise DatasetRevisionError(
                f"lm-eval task {name}: the datasets cache holds {path} at {read or 'no prepared commit'}, the lock "
                f"says {commits[path]}; run `snakemake prefetch --configfile <config>` where the Hub is reachable"
            )


def prefetch_task(scoring: Mapping[str, Any]) -> dict[str, Any]:
    """Put an lm-eval task's datasets into the Hugging Face datasets cache, where every job reads them offline.

    A task whose data load offline at the locked commits (or over a local copy) costs no request. Otherwise each
    Hub dataset is loaded once with the hub reachable at its locked commit, as lm-eval loads it
    (``datasets.load_dataset(dataset_path, dataset_name, revision=commit)``), which leaves its prepared Arrow files
    in the cache; the task is then loaded offline and checked as a job would.

    Returns
    -------
    dict
        ``task``, ``downloaded`` (False: it loaded offline) and ``dataset_commits``.

    Raises
    ------
    DatasetRevisionError
        If, after the download, the cache still does not serve the locked commit.
    """
    commits = scoring.get("dataset_commits", {})
    record = {"task": scoring["task"], "dataset_commits": dict(commits)}
    try:
        with offline_hub():
            load_tasks(scoring)
        return {**record, "downloaded": False}
    except (OSError, DatasetRevisionError) as error:  # datasets' offline refusal is a ConnectionError
        log.info("downloading the datasets of lm-eval task %s (%s)", scoring["task"], error)
    if commits:
        # deferred: datasets is slow to import
        import datasets

        entries = _index_entries([local_path(folder) for folder in scoring["include_path"]])
        for leaf in _leaves(scoring["task"], entries):
            dataset = entries[leaf]["dataset"]
            if dataset and dataset["path"] in commits:
                datasets.load_dataset(dataset["path"], dataset["name"], revision=commits[dataset["path"]])
    else:
        load_tasks(scoring)
    with offline_hub():
        load_tasks(scoring)
    return {**record, "downloaded": True}


# ---- metrics --------------------------------------------------------------------------------------------------


def _metric_keys(task: Any) -> list[tuple[str, str]]:
    """(metric, filter) pairs a task reports, in lm-eval's order: every metric under each filter."""
    filters = [f.name for f in getattr(task, "_filters", [])] or ["none"]
    metrics = list(task.higher_is_better())
    return [(metric, filter_name) for filter_name in filters for metric in metrics]


def choose_metric(key: str, spec: HarnessTaskSpec, tasks: Mapping[str, Any]) -> tuple[str, str]:
    """The (metric, filter) labels are built from, checked against what every leaf task reports.

    Raises
    ------
    ConfigError
        If a leaf task does not report the configured metric (the message lists what it reports), the metric is
        lower-is-better or can be negative.
    """
    where = f"tasks.{key}.metric"
    first = next(iter(tasks.values()))
    reported = _metric_keys(first)
    if spec.metric is None:
        metric, filter_name = reported[0]
    else:
        metric, _, filter_name = spec.metric.partition(",")
        filter_name = filter_name or next((f for m, f in reported if m == metric), "none")
    for name, task in tasks.items():
        keys = _metric_keys(task)
        if (metric, filter_name) not in keys:
            shown = ", ".join(m if f == "none" else f"{m},{f}" for m, f in keys)
            raise ConfigError(f"{where}: task {name} does not report {metric},{filter_name}; it reports {shown}")
        if task.higher_is_better().get(metric) is False:
            raise ConfigError(
                f"{where}: {metric} of task {name} is lower-is-better; {NORMALISATION}; choose one of "
                f"{', '.join(m for m, better in task.higher_is_better().items() if better)}"
            )
    if metric in SIGNED_METRICS:
        raise ConfigError(f"{where}: {metric} can be negative; {NORMALISATION}; choose another metric")
    return metric, filter_name


# ---- documents ------------------------------------------------------------------------------------------------


def _prompt(task: Any, doc: Mapping[str, Any], num_fewshot: int, scoring: Mapping[str, Any], chat: Any) -> str:
    """The context lm-eval scores a document in: description, few-shot examples, chat template, as it builds it."""
    context = task.fewshot_context(
        doc,
        num_fewshot=num_fewshot,
        apply_chat_template=scoring["apply_chat_template"],
        fewshot_as_multiturn=scoring["fewshot_as_multiturn"],
        chat_template=chat,
        gen_prefix=task.doc_to_prefix(doc),
    )
    return context if isinstance(context, str) else context[0]


def _answer(task: Any, doc: Mapping[str, Any]) -> str:
    """The gold answer as text: the gold choice of a multiple-choice task, else ``doc_to_target``."""
    target = task.doc_to_target(doc)
    if task.OUTPUT_TYPE == "multiple_choice":
        choices = task.doc_to_choice(doc)
        gold = target[0] if isinstance(target, list) else target
        return str(choices[gold] if isinstance(gold, int) else gold)
    return str(target[0] if isinstance(target, list) else target)


def _draw(indices: Sequence[int], n: int | None, rng: random.Random) -> list[int]:
    """A seeded subset of ``indices`` (all of them when ``n`` is None or not smaller), in ascending order."""
    if n is None or n >= len(indices):
        return sorted(indices)
    return sorted(rng.sample(list(indices), n))


def _prompt_sha256(prompts: Sequence[str]) -> str:
    return hashlib.sha256("\x1e".join(prompts).encode()).hexdigest()


def write_harness_task_data(
    key: str,
    spec: HarnessTaskSpec,
    out_dir: str | Path,
    *,
    seed: int,
    workdir: str | Path = ".",
    trained_by: Sequence[str] = (),
    tokenizer_dir: str | Path | None = None,
    dataset_commits: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Draw a harness task's documents and write its ``train``/``eval``/``probe`` JSONL and ``task.json``.

    Scored documents are a seeded subset of each leaf task's evaluation split (its test split, else its
    validation split); their prompts in ``eval.jsonl`` are the contexts lm-eval scores, few-shot examples included
    (scoring seeds lm-eval's few-shot sampler with the same ``fewshot_seed`` and draws for the same documents in the
    same order). Probe prompts come from documents that are never scored: the training split, else the
    validation split when it is not the one scored, else a seeded hold-out of the evaluation split that scoring
    excludes. Every prompt is built by lm-eval (``fewshot_context``) with the task's few-shot and chat settings.

    Parameters
    ----------
    key : str
        The task's name in the config.
    spec : HarnessTaskSpec
        Its config entry.
    out_dir : path
        The task's data folder.
    seed : int
        The run seed: document draws and the few-shot sampler.
    workdir : path
        The workflow directory relative paths are taken from.
    trained_by : sequence of str
        Catalog entries that train on the task; it must then have a training split.
    tokenizer_dir : path, optional
        A checkpoint whose tokenizer's chat template renders the prompts (needed with ``apply_chat_template``).
    dataset_commits : mapping, optional
        Hub dataset → the commit the lock file holds for it; recorded in ``task.json`` and checked at every load.

    Returns
    -------
    dict
        The ``task.json`` record.

    Raises
    ------
    ConfigError
        Naming the task and field: metric (see :func:`choose_metric`), no training split for an entry that trains
        on it, no chat template.
    """
    with tempfile.TemporaryDirectory(prefix="simmerge-datasets-") as datasets_cache:
        scoring = scoring_spec(key, spec, workdir, dataset_commits)
        return _write_task_data(
            key, spec, scoring, Path(out_dir), seed, workdir, trained_by, tokenizer_dir, datasets_cache
        )


def _write_task_data(
    key: str,
    spec: HarnessTaskSpec,
    scoring: dict[str, Any],
    out_dir: Path,
    seed: int,
    workdir: str | Path,
    trained_by: Sequence[str],
    tokenizer_dir: str | Path | None,
    datasets_cache: str,
) -> dict[str, Any]:
    tasks, group = load_tasks(scoring, datasets_cache, workdir)
    metric, filter_name = choose_metric(key, spec, tasks)
    chat = _chat_template(key, spec, tokenizer_dir)
    rng = random.Random(f"{seed}:{key}")
    without_train = [name for name, task in tasks.items() if not task.has_training_docs()]
    if trained_by and without_train:
        raise ConfigError(
            f"tasks.{key}: {', '.join(trained_by)} train(s) on it (finetune source or tiny pre-training), but "
            f"lm-eval task {', '.join(without_train)} has no training split; train on another task or give the "
            "expert another source"
        )
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "eval": [], "probe": []}
    samples: dict[str, list[int]] = {}
    documents: dict[str, dict[str, Any]] = {}
    for name, task in tasks.items():
        num_fewshot = spec.num_fewshot if spec.num_fewshot is not None else task.get_config("num_fewshot") or 0
        task.set_config(key="num_fewshot", value=num_fewshot)
        task.set_fewshot_seed(seed=seed)
        eval_docs = list(task.eval_docs)
        scored_split = task.config.test_split if task.has_test_docs() else task.config.validation_split
        held_out: list[int] = []
        if task.has_training_docs():
            probe_split, probe_docs = task.config.training_split, list(task.training_docs())
        elif task.has_validation_docs() and task.config.validation_split != scored_split:
            probe_split, probe_docs = task.config.validation_split, list(task.validation_docs())
        else:
            held_out = _draw(range(len(eval_docs)), min(spec.n_probe, len(eval_docs) // 2), rng)
            probe_split, probe_docs = f"{scored_split} (held out of scoring)", [eval_docs[i] for i in held_out]
        scorable = sorted(set(range(len(eval_docs))) - set(held_out))
        scored = _draw(scorable, spec.n_eval, rng)
        probe_ids = held_out or _draw(range(len(probe_docs)), spec.n_probe, rng)
        probe_docs_by_id = dict(zip(held_out, probe_docs, strict=True)) if held_out else dict(enumerate(probe_docs))
        samples[name] = scored
        for i in scored:
            doc = eval_docs[i]
            rows["eval"].append(
                {
                    "id": f"{name}-{scored_split}-{i}",
                    "task": name,
                    "doc_index": i,
                    "prompt": _prompt(task, doc, num_fewshot, scoring, chat),
                    "answer": _answer(task, doc),
                }
            )
        probes = []
        for i in probe_ids:
            prompt = _prompt(task, probe_docs_by_id[i], num_fewshot, scoring, chat)
            probes.append(prompt)
            rows["probe"].append(
                {"id": f"{name}-probe-{i}", "task": name, "split": probe_split, "doc_index": i, "prompt": prompt}
            )
        if task.has_training_docs():
            train_docs = list(task.training_docs())
            for i in _draw(range(len(train_docs)), spec.n_train, rng):
                doc = train_docs[i]
                rows["train"].append(
                    {
                        "id": f"{name}-{task.config.training_split}-{i}",
                        "task": name,
                        "doc_index": i,
                        "prompt": _prompt(task, doc, 0, scoring, chat),
                        "answer": _answer(task, doc),
                        "target_delimiter": task.config.target_delimiter,
                    }
                )
        documents[name] = {
            "output_type": task.OUTPUT_TYPE,
            "num_fewshot": num_fewshot,
            "scored_split": scored_split,
            "eval_documents": len(eval_docs),
            "probe_split": probe_split,
            "probe_doc_ids": probe_ids,
            "probe_prompt_sha256": _prompt_sha256(probes),
            "training_split": task.config.training_split if task.has_training_docs() else None,
        }
    if not any(samples.values()):
        raise ConfigError(f"tasks.{key}: lm-eval task {scoring['task']} has no document left to score")
    for split, split_rows in rows.items():
        write_jsonl(split_rows, out_dir / f"{split}.jsonl")
    record = {
        **scoring,
        "key": key,
        "metric": metric,
        "filter": filter_name,
        "group": group is not None,
        "samples": samples,
        "tasks": documents,
        "fewshot_seed": seed,
        "lm_eval_version": version("lm_eval"),
    }
    write_json(record, out_dir / "task.json")
    return record


def _chat_template(key: str, spec: HarnessTaskSpec, tokenizer_dir: str | Path | None) -> Any:
    """A renderer of chat messages with the checkpoint's template, as lm-eval's HFLM applies it; None without."""
    if not spec.apply_chat_template:
        return None
    # deferred: transformers is slow to import
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir)) if tokenizer_dir is not None else None
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"tasks.{key}.apply_chat_template: the base checkpoint's tokenizer has no chat template; set it to false"
        )

    def render(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    return render


def read_task_record(data_dir: str | Path) -> dict[str, Any] | None:
    """The ``task.json`` of a harness task's data folder; None for a built-in skill's folder."""
    path = Path(data_dir) / "task.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
