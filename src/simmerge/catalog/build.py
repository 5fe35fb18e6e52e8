"""Checkpoint builders: the jobs of the catalog stage, one per source kind.

Each writes the checkpoint directory atomically with its ``manifest.json`` and runs the pre-flight check against
the base before the directory is published.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simmerge.catalog.gguf import convert_gguf, find_packaged_file
from simmerge.catalog.hub import DEFAULT_PATTERNS, REMOTE_CODE_PATTERNS, fetch_checkpoint
from simmerge.catalog.manifest import (
    PreflightError,
    check_compatible,
    check_config_matches_tensors,
    check_finite,
    check_remote_code,
    check_tokenizer,
    inspect_checkpoint,
    write_manifest,
)
from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.core.config import resolve_path
from simmerge.core.io import atomic_dir, read_json, write_json

log = logging.getLogger(__name__)


def preflight(ckpt_dir: Path, *, name: str, source: dict, base_manifest: str | None) -> None:
    """The checks every checkpoint passes before its manifest is written, so nothing downstream loads a bad one.

    Every entry, the base included: a readable layout (config, safetensors headers), no custom modelling code
    unless its source sets ``trust_remote_code``, weights that are the model its ``config.json`` describes
    (every tensor's name and shape) and finite weights. An expert also: the base's architecture, tensors (names,
    shapes; float dtypes may differ) and tokenizer.

    A base manifest written before tensors and tokenizers were recorded is completed from the base's directory
    (headers and tokenizer files only), so an old results folder is checked fully without rebuilding the base.
    """
    trust = bool(source.get("trust_remote_code"))
    facts = inspect_checkpoint(ckpt_dir, name=name)
    check_remote_code(ckpt_dir, name=name, trust_remote_code=trust)
    check_config_matches_tensors(ckpt_dir, facts, name=name, trust_remote_code=trust)
    if base_manifest is not None:
        base = read_json(base_manifest)
        base_dir = checkpoint_dir(base_manifest)
        if "tensors" not in base or "tokenizer" not in base:
            log.info(
                "the manifest of the base %r predates tensors and tokenizers: reading them from %s",
                base["name"],
                base_dir,
            )
            base = {**base, **inspect_checkpoint(base_dir, name=base["name"])}
        check_compatible(facts, base, name=name)
        check_tokenizer(facts, base, name=name, expert_dir=ckpt_dir, base_dir=base_dir)
    check_finite(ckpt_dir, name=name)


def _publish(build_dir: Path, *, name: str, source: dict, base_manifest: str | None) -> dict:
    """Run the pre-flight checks on a freshly built checkpoint, then write its manifest."""
    preflight(build_dir, name=name, source=source, base_manifest=base_manifest)
    return write_manifest(build_dir, name=name, source=source)


def preflight_passed(
    manifests: Sequence[str | Path], task_files: Sequence[str | Path], out_path: str | Path, *, unchecked: Sequence[str]
) -> dict:
    """The gate before the costly jobs: every checkpoint built from a source that exists before the run has
    passed its pre-flight (its manifest exists) and every task's data is there and not empty.

    Expert scoring, fine-tuning, probe passes and merges all take this record as input, so none of them starts
    while a cheap check can still reject the run. ``unchecked`` names the fine-tuned experts: their pre-flight
    runs at the end of their own fine-tune, the only way to get their weights.

    Raises
    ------
    PreflightError
        A task data file is empty (the fix: regenerate it with ``snakemake --forcerun skill_data``).
    """
    for path in map(Path, task_files):
        if path.stat().st_size == 0:
            raise PreflightError(
                f"task {path.parent.name}: {path} is empty; "
                "regenerate it: snakemake --forcerun skill_data (tasks.<task>.n_* set the sizes)"
            )
    sources = {manifest["name"]: manifest["source"] for manifest in map(read_json, manifests)}
    record = {
        "checkpoints": {name: source.get("kind") for name, source in sources.items()},
        "tasks": sorted({Path(path).parent.name for path in task_files}),
        "checked_after_their_fine_tune": list(unchecked),
    }
    write_json(record, out_path)
    return record


def trusts_remote_code(manifest_path: str | Path) -> bool:
    """Whether a checkpoint's catalog entry allows its own modelling code (recorded in its manifest's source).

    Every loader of the checkpoint (probe pass, lm-eval, fine-tuning, mergekit) is given this value instead of
    relying on a library default.
    """
    return bool(read_json(manifest_path)["source"].get("trust_remote_code", False))


def convert_gguf_checkpoint(name: str, source: dict, out_dir: str | Path, workdir: str | Path = ".") -> dict:
    """Dequantize a GGUF file (on disk or shipped in a package) into ``out_dir``."""

    if source.get("path"):
        gguf_path = resolve_path(source["path"], workdir)
    else:
        gguf_path = find_packaged_file(source["package"], source["file"])
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as build_dir:
        provenance = convert_gguf(gguf_path, build_dir)
        return _publish(build_dir, name=name, source={**source, **provenance}, base_manifest=None)


def tiny_checkpoint(
    name: str, source: dict, out_dir: str | Path, *, seed: int, train_files: Sequence[str] = (), threads=None
) -> dict:
    """Make the seeded tiny Llama, optionally pre-trained briefly on the skills mixture."""

    out_dir = Path(out_dir)
    record: dict[str, Any] = {**source, "seed": seed}
    with atomic_dir(out_dir) as build_dir:
        init_dir = build_dir / "init" if source.get("pretrain") else build_dir
        build_tiny_checkpoint(
            init_dir,
            seed=seed,
            hidden_size=source["hidden_size"],
            num_layers=source["num_layers"],
            num_heads=source["num_heads"],
        )
        if source.get("pretrain"):
            spec = {**source["pretrain"], "seed": source["pretrain"].get("seed", seed) or seed}
            # deferred: fine-tuning imports torch, which the workflow's parse and the CLI's light commands skip
            from simmerge.catalog.finetune import finetune

            stats = finetune(
                init_dir,
                list(train_files),
                build_dir / "model",
                loss_on="all",
                threads=threads,
                trust_remote_code=False,  # the tiny Llama is built here from transformers' own classes
                **spec,
            )
            for path in (build_dir / "model").iterdir():
                shutil.move(str(path), build_dir / path.name)
            shutil.rmtree(build_dir / "model")
            shutil.rmtree(init_dir)
            record["pretrain_stats"] = stats
        return _publish(build_dir, name=name, source=record, base_manifest=None)


def fetch_hf_checkpoint(name: str, source: dict, out_dir: str | Path, *, base_manifest: str | None) -> dict:
    """Download a pinned Hugging Face revision (safetensors + config + tokenizer only)."""

    # The repository's Python files come only for an entry that trusts them: without trust they are never run,
    # so they need not be on disk.
    patterns = DEFAULT_PATTERNS + (REMOTE_CODE_PATTERNS if source.get("trust_remote_code") else ())
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as build_dir:
        provenance = fetch_checkpoint(source["repo_id"], source["revision"], build_dir, allow_patterns=patterns)
        return _publish(build_dir, name=name, source={**source, **provenance}, base_manifest=base_manifest)


def local_checkpoint(
    name: str,
    source: dict,
    manifest_path: str | Path,
    *,
    workdir: str | Path = ".",
    base_manifest: str | None,
) -> dict:
    """Validate an existing directory in place and record its manifest next to the other checkpoints'.

    The weights are not copied (they may be 7B checkpoints): the manifest's ``source.path`` points at them,
    and its sha256 list lets a later run notice that the directory changed.
    """
    path = resolve_path(source["path"], workdir)
    preflight(path, name=name, source=source, base_manifest=base_manifest)
    return write_manifest(path, name=name, source={**source, "path": str(path)}, path=manifest_path)


def finetune_checkpoint(
    name: str,
    train: dict,
    out_dir: str | Path,
    *,
    parent_manifest: str,
    base_manifest: str,
    train_files: Sequence[str],
    threads: int | None = None,
) -> dict:
    """Fully fine-tune the parent checkpoint on the entry's home tasks (loss on answer tokens)."""

    parent = read_json(parent_manifest)
    # A fine-tune of a custom-code parent is the same custom architecture: it inherits the parent's permission.
    trust = trusts_remote_code(parent_manifest)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as build_dir:
        # deferred: fine-tuning imports torch, which the workflow's parse and the CLI's light commands skip
        from simmerge.catalog.finetune import finetune

        stats = finetune(
            checkpoint_dir(parent_manifest),
            list(train_files),
            build_dir,
            threads=threads,
            loss_on="answer",
            trust_remote_code=trust,
            **train,
        )
        # the parent is recorded by catalog name and weight digests, not by its machine-specific path
        source = {
            **stats,
            "kind": "finetune",
            "parent": parent["name"],
            "parent_sha256": _weights_digest(parent),
            "trust_remote_code": trust,
        }
        return _publish(build_dir, name=name, source=source, base_manifest=base_manifest)


def _weights_digest(manifest: dict) -> dict[str, str]:
    return {path: entry["sha256"] for path, entry in manifest["files"].items() if path.endswith(".safetensors")}


def checkpoint_dir(manifest_path: str | Path) -> Path:
    """Where a checkpoint's weights are: in place for a ``local`` source, else beside its manifest.

    Raises
    ------
    PreflightError
        When the directory recorded for the checkpoint has gone missing.
    """
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path)
    source = manifest["source"]
    path = Path(source["path"]) if source.get("kind") == "local" else manifest_path.parent
    if not (path / "config.json").is_file():
        raise PreflightError(
            f"checkpoint {manifest['name']!r}: no config.json in {str(path)!r} (recorded by {manifest_path}); "
            "delete the manifest to rebuild the checkpoint"
        )
    return path.resolve()
