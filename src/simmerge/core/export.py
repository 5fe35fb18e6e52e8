"""A finished run's portable tables (``simmerge export``): what another run needs of it, without its weights.

A run folder holds gigabytes of checkpoints and thousands of records; the commands that read a *finished* run —
``simmerge transfer`` (its fitted predictor and labels), ``simmerge replication`` (its labels, their items and its
verdicts), ``simmerge learning-curve`` (its labels and items) and ``simmerge plan --reference`` (its job benchmarks
and checkpoint manifests) — read a few tables only. :func:`export_run`
copies those tables into a folder with the run folder's own layout (a skops predictor deflated, its entries
unchanged), so that the export stands wherever a run folder does (``--from``, ``predictor.transfer_from``), on a
machine that never had the run, and writes :data:`MANIFEST` beside them: each file's size and SHA-256 and the run's
provenance, so a reader can check what it has and which code and CPU made it. A fitted predictor (skops) loads
only under the scikit-learn, skops and numpy versions that wrote it
(:func:`simmerge.evaluate.predictor.load_predictor` says so when they differ).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simmerge.core.config import ConfigError
from simmerge.core.io import atomic_dir, read_json, sha256_file, write_json
from simmerge.core.layout import MANIFEST_NAME, RunLayout

MANIFEST = "export.json"

# What a reader of the export needs each file for; the first three are needed by every transfer from it.
REQUIRED: dict[str, Callable[[RunLayout], Path]] = {
    "labels": lambda layout: layout.labels_parquet,
    "predictor model": lambda layout: layout.predictor_model,
    "predictor cross-validation": lambda layout: layout.predictor_cv,
}
OPTIONAL: dict[str, Callable[[RunLayout], Path]] = {
    "label items (paired statistics)": lambda layout: layout.label_items,
    "expert scores": lambda layout: layout.expert_scores_csv,
    "ranking summary": lambda layout: layout.ranking_summary,
    "best operator per pair": lambda layout: layout.ranking_best_per_pair,
    "comparison summary (verdicts)": lambda layout: layout.compare_summary,
    "held-out checkpoint groups (learning-curve)": lambda layout: layout.comparison_summary("checkpoint"),
    "selection methods": lambda layout: layout.search_summary,
    "results page": lambda layout: layout.results_page,
}
# What ``simmerge plan --reference`` reads: each rule's measured seconds per job, and the checkpoints' parameter
# count that scales them to another model size.
PLAN_INPUTS: dict[str, str] = {
    "job benchmark (simmerge plan --reference)": "benchmarks/**/*.tsv",
    "checkpoint manifest (simmerge plan --reference)": f"checkpoints/*/{MANIFEST_NAME}",
}


def export_run(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: str | os.PathLike | None = None,
    provenance: Any = None,
) -> dict[str, Any]:
    """Copy a finished run's portable tables into ``out_dir`` (replaced as a whole, only once every copy is made).

    Parameters
    ----------
    run_dir : path
        The run's results folder (``results/<run_name>``).
    out_dir : path
        The export; it gets the run folder's relative paths and :data:`MANIFEST`.
    config : path, optional
        The workflow config the run was made with, copied as ``config.yaml`` (the run folder does not keep it).
    provenance : JSON-able, optional
        Which code, CPU and libraries made the run's records (``simmerge export`` gives the groups and warnings of
        :func:`simmerge.report.provenance.read_provenance` over its merge records and checkpoint manifests).

    Returns
    -------
    dict
        The manifest: ``run`` (the run folder's name), ``files`` (relative path → ``bytes``, ``sha256``,
        ``what``), ``config`` (``config.yaml`` or None) and ``provenance`` (as given).

    Raises
    ------
    ConfigError
        Before anything is written, when the run lacks a required table (named, with the target that makes it),
        or when ``out_dir`` is the run folder itself.
    """
    source = RunLayout(run_dir)
    out_dir = Path(out_dir)
    if not source.root.is_dir():
        raise ConfigError(f"{source.root} is not a run folder; give results/<run_name> of a finished run")
    if out_dir.resolve() == source.root.resolve():
        raise ConfigError(f"{out_dir} is the run folder itself; export into another folder")
    missing = [
        f"{path.relative_to(source.root)} ({what})"
        for what, path_of in REQUIRED.items()
        if not (path := path_of(source)).is_file()
    ]
    if missing:
        raise ConfigError(
            f"{source.root} has no {', '.join(missing)}; finish the run first (`snakemake all_predictor`)"
        )
    if config is not None and not Path(config).is_file():
        raise ConfigError(f"--config {config}: no such file; give the config the run was made with")
    wanted = {
        path.relative_to(source.root).as_posix(): (path, what)
        for what, path_of in {**REQUIRED, **OPTIONAL}.items()
        if (path := path_of(source)).is_file()
    }
    for what, pattern in PLAN_INPUTS.items():
        wanted |= {path.relative_to(source.root).as_posix(): (path, what) for path in sorted(source.root.glob(pattern))}
    if config is not None:
        wanted["config.yaml"] = (Path(config), "workflow config")
    files = {}
    with atomic_dir(out_dir) as tmp:
        for relative, (path, what) in wanted.items():
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            if zipfile.is_zipfile(path):
                deflated_copy(path, tmp / relative)
            else:
                shutil.copyfile(path, tmp / relative)
            files[relative] = {
                "bytes": (tmp / relative).stat().st_size,
                "sha256": sha256_file(tmp / relative),
                "what": what,
            }
        manifest = {
            "run": source.root.name,
            "files": files,
            "config": "config.yaml" if config is not None else None,
            "provenance": provenance,
        }
        write_json(manifest, tmp / MANIFEST)
    return manifest


def deflated_copy(source: Path, target: Path) -> None:
    """Copy a zip archive (a skops predictor) entry by entry, deflated: the same entries with their own timestamps
    (so the same archive always gives the same bytes), often a tenth of the bytes (a fitted forest is stored
    uncompressed)."""
    # an entry written from its ZipInfo takes its compression from the call, not from the ZipFile's defaults
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for entry in archive.infolist():
            out.writestr(entry, archive.read(entry), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)


def verify_export(export_dir: str | os.PathLike) -> list[str]:
    """The files of an export whose size or SHA-256 no longer match its manifest, or that are gone (empty: intact,
    or not an export: a run folder has no :data:`MANIFEST` and nothing to check)."""
    export_dir = Path(export_dir)
    manifest_path = export_dir / MANIFEST
    if not manifest_path.is_file():
        return []
    changed = []
    for relative, entry in read_json(manifest_path)["files"].items():
        path = export_dir / relative
        if not path.is_file():
            changed.append(f"{relative} (missing)")
        elif path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            changed.append(f"{relative} (changed)")
    return changed


def export_problem(folder: str | os.PathLike) -> str | None:
    """What is wrong with an export whose tables changed after ``simmerge export`` wrote them (None: intact, or a
    run folder)."""
    changed = verify_export(folder)
    if not changed:
        return None
    return f"{folder} is an export whose {', '.join(changed)} since `simmerge export` wrote it; export the run again"


def check_export(folder: str | os.PathLike) -> None:
    """Refuse an export whose tables were changed after ``simmerge export`` wrote them (a run folder passes).

    Raises
    ------
    ConfigError
        Naming the changed or missing files and what to do (:func:`export_problem`).
    """
    problem = export_problem(folder)
    if problem:
        raise ConfigError(problem)
