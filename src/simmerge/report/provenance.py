"""The provenance section of the report and the results page: which code, CPU and libraries made a run's records.

:func:`read_provenance` reads the records of a run folder (checkpoint manifests, expert scores, model summaries,
merge records) and hands them to :func:`simmerge.core.provenance.mixed_provenance`; :func:`provenance_table` gives
one row per distinct provenance with its number of records of each kind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from simmerge.core.io import read_json, read_table_record
from simmerge.core.layout import MANIFEST_NAME
from simmerge.core.provenance import ProvenanceCheck, mixed_provenance
from simmerge.features.summary import read_meta


def _record(path: Path) -> dict[str, Any]:
    if path.suffix == ".parquet":
        return read_table_record(path) or {"provenance": None}
    if path.suffix != ".npz":
        return read_json(path)
    meta = read_meta(path)
    if "provenance" not in meta:
        return {"provenance": None}
    # a model summary is made by one probe pass per task and one weight sketch, each with its own provenance
    return {"provenance": {**meta["provenance"], "sketch": meta["sketch"].get("provenance")}}


def read_provenance(run_dir: str | os.PathLike, paths: Sequence[str | os.PathLike]) -> ProvenanceCheck:
    """Check the provenance of a run's records.

    Parameters
    ----------
    run_dir : path
        ``results/<run_name>``; records are labelled by their path relative to it, so their kind is the folder
        under it (``checkpoints``, ``scores``, ``features``, ``merges``).
    paths : sequence of path
        Record files: ``manifest.json`` files (also the current manifests that cited weights are checked
        against), JSON records with a ``provenance`` key, ``features/models/<name>.npz`` summaries and Parquet
        tables with a record in their metadata (pair features).

    Returns
    -------
    ProvenanceCheck
        As :func:`simmerge.core.provenance.mixed_provenance`.
    """
    run = Path(run_dir).resolve()
    records, manifests = {}, {}
    for path in map(Path, paths):
        absolute = path.resolve()
        label = (absolute.relative_to(run) if absolute.is_relative_to(run) else path).as_posix()
        records[label] = _record(path)
        if path.name == MANIFEST_NAME:
            manifests[records[label]["name"]] = records[label]
    return mixed_provenance(records, manifests)


def provenance_table(check: ProvenanceCheck) -> pd.DataFrame:
    """One row per distinct provenance: ``provenance`` (one line), ``records``, then one count column per kind."""
    kinds = sorted({kind for group in check.groups for kind in group.kinds})
    return pd.DataFrame(
        [
            {
                "provenance": group.description,
                "records": group.count,
                **{kind: group.kinds.get(kind, 0) for kind in kinds},
            }
            for group in check.groups
        ],
        columns=["provenance", "records", *kinds],
    )


def stale_table(check: ProvenanceCheck) -> pd.DataFrame:
    """One row per record whose cited checkpoint weights differ from the current manifest."""
    return pd.DataFrame(
        [
            {
                "record": entry.record,
                "checkpoint": entry.checkpoint,
                "cited weights": entry.recorded[:12],
                "current weights": (entry.current or "no manifest")[:12],
            }
            for entry in check.stale
        ],
        columns=["record", "checkpoint", "cited weights", "current weights"],
    )


def provenance_summary(check: ProvenanceCheck) -> str:
    """The sentence under the section heading: all consistent, or how many problems follow."""
    total = sum(group.count for group in check.groups)
    if not check.warnings:
        return f"The run's {total} record(s) share one provenance and cite the current weights of their checkpoints."
    return f"Warning: the {total} records of this run are not consistent ({len(check.warnings)} problem(s) below)."
