"""Hugging Face revisions locked to commits: what ``simmerge lock CONFIG`` writes and the workflow reads.

A catalog may name an ``hf`` checkpoint by branch or tag (``main``, ``v1.0``: what model cards show). A branch moves,
so the workflow never fetches one: ``simmerge lock my.yaml`` resolves every such revision to the commit it points at
and writes ``my.lock.yaml`` beside the config (what was asked, the commit, where it was resolved, when). The workflow
fetches the locked commit, and refuses a branch or tag the lock file does not hold, or holds for another repository
or revision, naming the command to run. A 40-hex commit in the config needs no lock.

Resolution asks the Hub, or, in offline mode (``HF_HUB_OFFLINE=1``), the ``refs/`` of the local hub cache.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from simmerge.catalog.hub import CheckpointSourceError, is_commit_sha
from simmerge.core.config import ConfigError, RunConfig, yaml_problem
from simmerge.core.io import write_text

LOCK_VERSION = 1


def lock_file_of(config_path: str | Path) -> Path:
    """The lock file of a config: ``my.yaml`` → ``my.lock.yaml`` in the same folder."""
    path = Path(config_path)
    return path.with_name(f"{path.stem}.lock.yaml")


def resolve_commit(repo_id: str, revision: str, *, cache_dir: str | Path | None = None) -> tuple[str, str]:
    """The commit a model repository's revision points at, and where that was read (``hub`` or ``cache``).

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
        ref = cache / f"models--{repo_id.replace('/', '--')}" / "refs" / revision
        if not ref.is_file():
            raise CheckpointSourceError(
                f"{repo_id}@{revision}: offline (HF_HUB_OFFLINE=1) and the hub cache {cache} has no ref {revision!r} "
                "for it; lock where the Hub is reachable, or download the revision into the cache first"
            )
        return ref.read_text(encoding="utf-8").strip(), "cache"
    try:
        info = huggingface_hub.HfApi().model_info(repo_id, revision=revision)
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as error:
        raise CheckpointSourceError(f"{repo_id}@{revision}: cannot resolve it on the Hub: {error}") from None
    return info.sha, "hub"


def lock_catalog(config: RunConfig, *, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """The lock of every ``hf`` checkpoint of a config whose revision is a branch or tag."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    locked = {}
    for entry in (config.catalog.base, *config.catalog.experts):
        source = entry.source
        if source.kind != "hf" or is_commit_sha(source.revision):
            continue
        commit, where = resolve_commit(source.repo_id, source.revision, cache_dir=cache_dir)
        locked[entry.name] = {
            "repo_id": source.repo_id,
            "revision": source.revision,
            "commit": commit,
            "resolved_from": where,
            "locked_at": now,
        }
    return {"version": LOCK_VERSION, "checkpoints": locked}


def write_lock(lock: Mapping[str, Any], path: str | Path, config_path: str | Path) -> None:
    header = (
        f"# Written by `simmerge lock {config_path}`: the commit each branch or tag of the config's hf checkpoints\n"
        "# pointed at. The workflow fetches these commits; run the command again to move them.\n"
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


def locked_commits(config: RunConfig, lock_path: str | Path | None, config_path: str) -> dict[str, str]:
    """Checkpoint → the commit the workflow fetches, for every ``hf`` entry.

    Parameters
    ----------
    config : RunConfig
    lock_path : path, optional
        The config's lock file (it may not exist); None: the config has no file, so nothing is locked.
    config_path : str
        The config as named in messages (the command to run names it).

    Raises
    ------
    ConfigError
        Naming the entry and the command to run: a branch or tag without a lock, or a lock written for another
        repository or revision than the config now asks for.
    """
    commits, unlocked, stale = {}, [], []
    lock = read_lock(lock_path) if lock_path is not None else None
    entries = (lock or {}).get("checkpoints", {})
    for entry in (config.catalog.base, *config.catalog.experts):
        source = entry.source
        if source.kind != "hf":
            continue
        if is_commit_sha(source.revision):
            commits[entry.name] = source.revision
            continue
        held = entries.get(entry.name)
        if held is None:
            unlocked.append(f"{entry.name!r} ({source.repo_id}@{source.revision})")
        elif (held.get("repo_id"), held.get("revision")) != (source.repo_id, source.revision):
            stale.append(
                f"checkpoint {entry.name!r}: {lock_path} locks {held.get('repo_id')}@{held.get('revision')} but the "
                f"config asks for {source.repo_id}@{source.revision}"
            )
        elif not is_commit_sha(str(held.get("commit", ""))):
            stale.append(f"checkpoint {entry.name!r}: {lock_path} holds no commit for it")
        else:
            commits[entry.name] = held["commit"]
    problems = list(stale)
    if unlocked:
        where = f"{lock_path} does not lock" if lock_path is not None else "no lock file locks"
        problems.append(
            f"{'checkpoint' if len(unlocked) == 1 else 'checkpoints'} {', '.join(unlocked)}: a branch or tag that "
            f"{where} to a commit"
        )
    if problems:
        again = " again" if lock is not None else ""
        raise ConfigError(f"{'; '.join(problems)}; run `simmerge lock {config_path}`{again}")
    return commits
