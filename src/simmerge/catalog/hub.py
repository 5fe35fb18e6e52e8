"""Fetch a checkpoint from the Hugging Face Hub (or a populated local cache) at a recorded revision.

Revision policy: a 40-hex commit sha is the reproducible way to name a checkpoint, and the catalog should use
one. A branch or tag (``"main"``, ``"v1.0"``) is accepted too, because that is what most model cards show,
but it is resolved to the commit it points at *now*, that commit is recorded in the provenance
(``resolved_sha``), and a warning is logged; ``pinned`` in the provenance says which case applied.

Only safetensors weights are fetched: a repository that holds only pickle weights (``*.bin``, ``*.pt``) is
refused, because unpickling a downloaded file can run arbitrary code.

Offline use: with ``HF_HUB_OFFLINE=1`` the hub client answers from the cache only (``HF_HOME`` or
``cache_dir``). A commit sha is looked up in ``snapshots/``, a branch or tag in ``refs/``.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

from simmerge.core.io import atomic_dir

logger = logging.getLogger(__name__)

DEFAULT_PATTERNS: tuple[str, ...] = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "chat_template.jinja",
)

# A repository's own modelling code (config.json ``auto_map``): fetched only for a catalog entry that sets
# ``trust_remote_code``, since code that is on disk is one import away from running.
REMOTE_CODE_PATTERNS: tuple[str, ...] = ("*.py",)

# Weight files that need pickle to load; never fetched, only named in the refusal message.
PICKLE_PATTERNS: tuple[str, ...] = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")

COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


class CheckpointSourceError(RuntimeError):
    """A checkpoint could not be fetched from its declared source (repo, revision, cache)."""


def is_commit_sha(revision: str) -> bool:
    """Return whether ``revision`` is a full 40-hex git commit sha (an immutable revision)."""
    return bool(COMMIT_SHA.fullmatch(revision))


def fetch_checkpoint(
    repo_id: str,
    revision: str,
    out_dir: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    allow_patterns: tuple[str, ...] | list[str] = DEFAULT_PATTERNS,
) -> dict[str, Any]:
    """Download a model repository at a revision and copy its safetensors checkpoint into ``out_dir``.

    Files are fetched with :func:`huggingface_hub.snapshot_download` into the hub cache, then *copied*
    (not symlinked) into ``out_dir``, so the checkpoint directory stays valid if the cache is pruned.
    ``out_dir`` is written atomically.

    Parameters
    ----------
    repo_id : str
        Repository id, ``"org/name"``.
    revision : str
        A 40-hex commit sha (preferred) or a branch/tag name, which is resolved and recorded (see the module
        docstring).
    out_dir : path-like
        Checkpoint directory to create; replaced if it exists.
    cache_dir : path-like, optional
        Hub cache folder; defaults to the hub client's (``$HF_HOME/hub``).
    allow_patterns : sequence of str
        Glob patterns of the files to fetch; the default takes weights, config and tokenizer files only. Pickle
        weights (:data:`PICKLE_PATTERNS`) and Python files (:data:`REMOTE_CODE_PATTERNS`) are never fetched
        unless one of those exact patterns is listed here.

    Returns
    -------
    dict
        Provenance: ``kind`` ("hf"), ``repo_id``, ``revision`` (as requested), ``resolved_sha`` (the commit
        the files came from), ``pinned`` (whether ``revision`` was a commit sha) and ``files`` (sorted
        relative paths copied into ``out_dir``).

    Raises
    ------
    CheckpointSourceError
        If the repository or revision does not exist, is gated, is not in the cache while offline, if the
        cached snapshot is incomplete, or if the repository holds no safetensors weights.

    Examples
    --------
    >>> fetch_checkpoint("HuggingFaceTB/SmolLM2-135M", "93efa2f097d58c2a74874c7e644dbc9b0cee75a2",
    ...                  "results/checkpoints/base")  # doctest: +SKIP
    """
    # deferred: huggingface_hub is slow to import and only a download needs it
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"repository {repo_id!r} at revision {revision!r}"
    remedy = (
        "Check the repo id and revision on the Hub, then fill the cache where the Hub is reachable (`snakemake "
        "prefetch --configfile CONFIG`, e.g. on a login node), or set HF_HOME (or cache_dir) to a Hugging Face cache "
        "that already holds this revision."
    )
    pinned = is_commit_sha(revision)
    if not pinned:
        logger.warning(
            "revision %r of %s is a branch or tag, not a commit sha: the resolved commit is recorded, but "
            "a later run may resolve it differently; pin the commit sha in the catalog",
            revision,
            repo_id,
        )
    # Broad patterns such as tokenizer* or vocab.* would also match code or pickles (tokenizer_x.py, vocab.pkl):
    # those are excluded unless a pattern asks for them by name.
    ignore_patterns = [p for p in (*PICKLE_PATTERNS, *REMOTE_CODE_PATTERNS) if p not in allow_patterns]
    logger.info("fetching %s", where)
    try:
        snapshot = snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=list(allow_patterns),
            ignore_patterns=ignore_patterns,
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except HFValidationError as err:
        raise CheckpointSourceError(f"invalid repo id {repo_id!r}: {err}") from err
    except GatedRepoError as err:
        raise CheckpointSourceError(
            f"{where} is gated: accept its licence on the Hub and log in (HF_TOKEN). {err}"
        ) from err
    except RepositoryNotFoundError as err:
        raise CheckpointSourceError(f"{where}: repository not found (or private). {remedy}") from err
    except RevisionNotFoundError as err:
        raise CheckpointSourceError(f"{where}: revision not found in the repository. {remedy}") from err
    except LocalEntryNotFoundError as err:  # includes IncompleteSnapshotError
        state = _cache_state(repo_id, revision, cache_dir, allow_patterns)
        raise CheckpointSourceError(
            f"{where} cannot be read from the local Hugging Face cache and the Hub cannot be reached "
            f"(offline mode or no network): {state}. {remedy}"
        ) from err

    snapshot_path = Path(snapshot)
    resolved_sha = snapshot_path.name
    files = sorted(
        p.relative_to(snapshot_path).as_posix()
        for p in snapshot_path.rglob("*")
        if p.is_file()
        and _matches(p.relative_to(snapshot_path).as_posix(), allow_patterns)
        and not _matches(p.relative_to(snapshot_path).as_posix(), ignore_patterns)
    )
    if not any(f.endswith(".safetensors") for f in files):
        pickles = _pickle_files(snapshot_path, repo_id, resolved_sha, cache_dir)
        found = f"it holds pickle weights only ({', '.join(pickles)})" if pickles else "it holds no weights"
        raise CheckpointSourceError(
            f"{where} (commit {resolved_sha}) has no *.safetensors files: {found}. Pickle checkpoints are "
            "refused (no pickle loading); use a revision or repository that ships safetensors, or convert "
            "the weights to safetensors yourself and point the catalog at the converted checkpoint."
        )
    if not pinned:
        logger.warning("revision %r of %s resolved to commit %s", revision, repo_id, resolved_sha)

    with atomic_dir(out_dir) as tmp:
        for name in files:
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            # copyfile follows the snapshot symlink to its blob, so out_dir holds real files.
            shutil.copyfile(snapshot_path / name, target)
    logger.info("copied %d files of %s (commit %s) to %s", len(files), repo_id, resolved_sha, out_dir)
    return {
        "kind": "hf",
        "repo_id": repo_id,
        "revision": revision,
        "resolved_sha": resolved_sha,
        "pinned": pinned,
        "files": files,
    }


def _matches(path: str, patterns: tuple[str, ...] | list[str]) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in patterns)


def _pickle_files(snapshot_path: Path, repo_id: str, commit: str, cache_dir: str | os.PathLike | None) -> list[str]:
    """Name the pickle weight files of a snapshot, from the cached tree listing or the snapshot itself."""
    names = {p.relative_to(snapshot_path).as_posix() for p in snapshot_path.rglob("*") if p.is_file()}
    try:
        from huggingface_hub import get_cached_repo_tree

        names |= {
            entry.path
            for entry in get_cached_repo_tree(
                repo_id, revision=commit, cache_dir=None if cache_dir is None else str(cache_dir)
            )
        }
    except Exception as err:  # best effort: the listing only improves the error message
        logger.debug("no cached tree listing for %s@%s: %s", repo_id, commit, err)
    return sorted(name for name in names if _matches(name, PICKLE_PATTERNS))


def _cache_state(
    repo_id: str, revision: str, cache_dir: str | os.PathLike | None, patterns: tuple[str, ...] | list[str]
) -> str:
    """Say what the local cache holds for a repo and revision, to explain a failed offline fetch."""
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE if cache_dir is None else cache_dir).expanduser()
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    if not storage.is_dir():
        return f"the cache {cache} holds no copy of this repository"
    refs = sorted(p.relative_to(storage / "refs").as_posix() for p in (storage / "refs").rglob("*") if p.is_file())
    snapshots = storage / "snapshots"
    commits = sorted(p.name for p in snapshots.iterdir()) if snapshots.is_dir() else []
    if is_commit_sha(revision):
        commit = revision
    elif (storage / "refs" / revision).is_file():
        commit = (storage / "refs" / revision).read_text().strip()
    else:
        return (
            f"the cache {storage} has no ref {revision!r} (cached refs: {', '.join(refs) or 'none'}; "
            f"cached commits: {', '.join(commits) or 'none'})"
        )
    if commit not in commits:
        return f"commit {commit} is not in the cache {storage} (cached commits: {', '.join(commits) or 'none'})"
    tree_file = storage / "trees" / f"{commit}.json"
    try:
        listed = json.loads(tree_file.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError):
        return f"the cached snapshot of commit {commit} is incomplete or unreadable"
    missing = sorted(name for name in listed if _matches(name, patterns) and not (snapshots / commit / name).is_file())
    return f"the cached snapshot of commit {commit} is incomplete (missing: {', '.join(missing) or 'unknown'})"


def prefetch_checkpoint(
    repo_id: str,
    commit: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    allow_patterns: tuple[str, ...] | list[str] = DEFAULT_PATTERNS,
) -> dict[str, Any]:
    """Put a model repository's files at a commit into the Hugging Face hub cache, downloading only what is missing.

    The cache is read first with the hub unreachable: a revision already there costs no request at all. The
    files are the ones :func:`fetch_checkpoint` later copies (same patterns, pickles and code left out).

    Returns
    -------
    dict
        ``repo_id``, ``commit``, ``downloaded`` (False: everything was in the cache) and ``snapshot`` (its folder).

    Raises
    ------
    CheckpointSourceError
        If the files are not cached and the Hub cannot be reached or refuses them.
    """
    # deferred: huggingface_hub is slow to import and only a download needs it
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    ignore_patterns = [p for p in (*PICKLE_PATTERNS, *REMOTE_CODE_PATTERNS) if p not in allow_patterns]
    options = {
        "revision": commit,
        "allow_patterns": list(allow_patterns),
        "ignore_patterns": ignore_patterns,
        "cache_dir": None if cache_dir is None else str(cache_dir),
    }
    try:
        return {
            "repo_id": repo_id,
            "commit": commit,
            "downloaded": False,
            "snapshot": snapshot_download(repo_id, local_files_only=True, **options),
        }
    except LocalEntryNotFoundError:
        pass
    logger.info("downloading %s at %s into the hub cache", repo_id, commit)
    try:
        snapshot = snapshot_download(repo_id, **options)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
        raise CheckpointSourceError(
            f"repository {repo_id!r} at {commit}: not in the hub cache, and the download failed ({err}); run the "
            "prefetch where the Hub is reachable"
        ) from None
    return {"repo_id": repo_id, "commit": commit, "downloaded": True, "snapshot": snapshot}


def safetensors_parameter_count(path: str | os.PathLike) -> int:
    """Parameters of one safetensors file, from its JSON header only (8-byte length, then the header)."""
    with Path(path).open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
    return sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")


def hub_parameter_count(
    repo_id: str, commit: str, *, cache_dir: str | os.PathLike | None = None
) -> tuple[int, str] | None:
    """A repository's parameter count at a commit, without downloading its weights, and where it was read.

    The hub cache's snapshot first (after a prefetch: the headers of its safetensors files), else, when the Hub is
    reachable, the headers the Hub reads for its safetensors metadata (a few kB per file).

    Returns
    -------
    tuple or None
        ``(parameters, "hub cache" | "Hub safetensors headers")``; None when neither can say (offline and not
        cached, no safetensors, or the Hub refuses).
    """
    # deferred: huggingface_hub is slow to import and only a plan of an hf catalog needs it
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, NotASafetensorsRepoError, OfflineModeIsEnabled

    cache = Path(huggingface_hub.constants.HF_HUB_CACHE if cache_dir is None else cache_dir).expanduser()
    snapshot = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / commit
    files = sorted(snapshot.glob("*.safetensors"))
    if files:
        return sum(safetensors_parameter_count(path) for path in files), "hub cache"
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return None
    try:
        metadata = huggingface_hub.get_safetensors_metadata(repo_id, revision=commit)
    except (HfHubHTTPError, NotASafetensorsRepoError, OfflineModeIsEnabled, OSError) as error:
        logger.warning("%s@%s: no parameter count from the Hub (%s)", repo_id, commit, error)
        return None
    return sum(metadata.parameter_count.values()), "Hub safetensors headers"
