"""Hugging Face revisions locked to commits: what ``simmerge lock CONFIG`` writes and the workflow reads.

A catalog may name an ``hf`` checkpoint by branch or tag (``main``, ``v1.0``: what model cards show), and an lm-eval
task reads its Hub dataset at a branch (``main``, unless its YAML's ``dataset_kwargs.revision`` says otherwise).
A branch moves, so the workflow never reads one: ``simmerge lock my.yaml`` resolves every such revision to the
commit it points at and writes ``my.lock.yaml`` beside the config (what was asked, the commit, where it was
resolved, when). The workflow fetches the locked checkpoint commits, prefetches the datasets at their locked
commits and checks that every job read those (:func:`simmerge.catalog.harness.check_dataset_commits`); it refuses
a branch or tag the lock file does not hold, or holds for another repository or revision, naming the command to
run. A 40-hex commit in the config or the task YAML needs no lock.

Resolution asks the Hub, or, in offline mode (``HF_HUB_OFFLINE=1``), the ``refs/`` of the local hub cache.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simmerge.catalog import harness
from simmerge.catalog.hub import CheckpointSourceError, is_commit_sha
from simmerge.core.config import ConfigError, RunConfig, yaml_problem
from simmerge.core.io import write_text

LOCK_VERSION = 1


def lock_file_of(config_path: str | Path) -> Path:
    """The lock file of a config: ``my.yaml`` → ``my.lock.yaml`` in the same folder."""
    path = Path(config_path)
    return path.with_name(f"{path.stem}.lock.yaml")


def resolve_commit(
    repo_id: str, revision: str, *, repo_type: str = "model", cache_dir: str | Path | None = None
) -> tuple[str, str]:
    """The commit a model or dataset repository's revision points at, and where that was read (``hub``/``cache``).

    Raises
    ------
    CheckpointSourceError
        If the repository or revision does not exist, or (offline) the cache holds no such ref.
    """
    # deferred: huggingface_hub reads its offline flag at import; only locking needs it
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        cache = Path(cache_dir or huggingface_hub.constants.HF_HUB_CACHE)
        ref = cache / f"{repo_type}s--{repo_id.replace('/', '--')}" / "refs" / revision
        if not ref.is_file():
            raise CheckpointSourceError(
                f"{repo_type} {repo_id}@{revision}: offline (HF_HUB_OFFLINE=1) and the hub cache {cache} has no ref "
                f"{revision!r} for it; lock where the Hub is reachable, or download the revision into the cache first"
            )
        return ref.read_text(encoding="utf-8").strip(), "cache"
    try:
        api = huggingface_hub.HfApi()
        info = (api.dataset_info if repo_type == "dataset" else api.model_info)(repo_id, revision=revision)
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as error:
        raise CheckpointSourceError(
            f"{repo_type} {repo_id}@{revision}: cannot resolve it on the Hub: {error}"
        ) from None
    return info.sha, "hub"


def hub_dataset_sources(config: RunConfig, workdir: str | Path = ".") -> dict[str, dict[str, dict[str, Any]]]:
    """task → Hub dataset repository → ``{"revision", "configs"}``, of every harness task of a config that reads
    its data through the Hugging Face caches (:func:`simmerge.catalog.harness.hub_datasets`)."""
    found = {}
    for task, spec in config.tasks.items():
        if spec.kind != "builtin" and (datasets := harness.hub_datasets(task, spec, workdir)):
            found[task] = datasets
    return found


def lock_catalog(
    config: RunConfig, *, workdir: str | Path = ".", cache_dir: str | Path | None = None
) -> dict[str, Any]:
    """The lock of every ``hf`` checkpoint and every Hub dataset of a config whose revision is a branch or tag."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    checkpoints = {}
    for entry in (config.catalog.base, *config.catalog.experts):
        source = entry.source
        if source.kind != "hf" or is_commit_sha(source.revision):
            continue
        commit, where = resolve_commit(source.repo_id, source.revision, cache_dir=cache_dir)
        checkpoints[entry.name] = {
            "repo_id": source.repo_id,
            "revision": source.revision,
            "commit": commit,
            "resolved_from": where,
            "locked_at": now,
        }
    datasets: dict[str, dict[str, Any]] = {}
    for task, repositories in hub_dataset_sources(config, workdir).items():
        for repo_id, asked in repositories.items():
            if is_commit_sha(asked["revision"]):
                continue
            if repo_id not in datasets:
                commit, where = resolve_commit(repo_id, asked["revision"], repo_type="dataset", cache_dir=cache_dir)
                datasets[repo_id] = {
                    "revision": asked["revision"],
                    "commit": commit,
                    "resolved_from": where,
                    "locked_at": now,
                    "tasks": [],
                }
            datasets[repo_id]["tasks"].append(task)
    return {"version": LOCK_VERSION, "checkpoints": checkpoints, "datasets": datasets}


def write_lock(lock: Mapping[str, Any], path: str | Path, config_path: str | Path) -> None:
    header = (
        f"# Written by `simmerge lock {config_path}`: the commit each branch or tag of the config's hf checkpoints\n"
        "# and Hub datasets pointed at. The workflow reads these commits; run the command again to move them.\n"
    )
    write_text(header + yaml.safe_dump(dict(lock), sort_keys=False), path)


def read_lock(path: str | Path) -> dict[str, Any] | None:
    """A lock file's contents; None when there is none.

    Raises
    ------
    ConfigError
        If the file is not a lock file this version writes.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        lock = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(
            f"lock file {path} is not valid YAML: {yaml_problem(error)}; delete it and lock again"
        ) from None
    if (
        not isinstance(lock, dict)
        or lock.get("version") != LOCK_VERSION
        or not isinstance(lock.get("checkpoints"), dict)
    ):
        raise ConfigError(f"lock file {path} is not a version-{LOCK_VERSION} lock file; delete it and lock again")
    return lock


@dataclass(frozen=True)
class LockedCommits:
    """The commits a run reads: per ``hf`` checkpoint, and per harness task, per Hub dataset repository."""

    checkpoints: dict[str, str]
    datasets: dict[str, dict[str, str]]


def locked_commits(
    config: RunConfig, lock_path: str | Path | None, config_path: str, workdir: str | Path = "."
) -> LockedCommits:
    """The commit of every ``hf`` checkpoint and Hub dataset of a config: its own 40-hex revision, else the lock's.

    Parameters
    ----------
    config : RunConfig
    lock_path : path, optional
        The config's lock file (it may not exist); None: the config has no file, so nothing is locked.
    config_path : str
        The config as named in messages (the command to run names it).
    workdir : path
        The workflow directory (a task's local dataset folder is taken from it).

    Raises
    ------
    ConfigError
        Naming the entry and the command to run: a branch or tag without a lock, or a lock written for another
        repository or revision than the config now asks for.
    """
    lock = read_lock(lock_path) if lock_path is not None else None
    unlocked: list[str] = []
    stale: list[str] = []

    def commit_of(what: str, repo_id: str, revision: str, held: Mapping[str, Any] | None) -> str | None:
        if is_commit_sha(revision):
            return revision
        if held is None:
            unlocked.append(f"{what} ({repo_id}@{revision})")
        elif (held.get("repo_id", repo_id), held.get("revision")) != (repo_id, revision):
            stale.append(
                f"{what}: {lock_path} locks {held.get('repo_id', repo_id)}@{held.get('revision')} but the config "
                f"asks for {repo_id}@{revision}"
            )
        elif not is_commit_sha(str(held.get("commit", ""))):
            stale.append(f"{what}: {lock_path} holds no commit for it")
        else:
            return held["commit"]
        return None

    checkpoints = {}
    for entry in (config.catalog.base, *config.catalog.experts):
        if entry.source.kind == "hf":
            held = (lock or {}).get("checkpoints", {}).get(entry.name)
            commit = commit_of(f"checkpoint {entry.name!r}", entry.source.repo_id, entry.source.revision, held)
            if commit is not None:
                checkpoints[entry.name] = commit
    datasets: dict[str, dict[str, str]] = {}
    for task, repositories in hub_dataset_sources(config, workdir).items():
        for repo_id, asked in repositories.items():
            held = (lock or {}).get("datasets", {}).get(repo_id)
            commit = commit_of(f"dataset of task {task!r}", repo_id, asked["revision"], held)
            if commit is not None:
                datasets.setdefault(task, {})[repo_id] = commit
    problems = list(dict.fromkeys(stale))
    if unlocked:
        named = ", ".join(dict.fromkeys(unlocked))
        if lock is not None:
            problems.append(f"{lock_path} locks no commit for the branch or tag of {named}")
        else:
            problems.append(f"no lock file ({lock_path or 'none for this config'}) locks the branch or tag of {named}")
    if problems:
        again = " again" if lock is not None else ""
        raise ConfigError(f"{'; '.join(problems)}; run `simmerge lock {config_path}`{again}")
    return LockedCommits(checkpoints=checkpoints, datasets=datasets)
