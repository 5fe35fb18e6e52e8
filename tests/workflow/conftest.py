"""Workflow tests run Snakemake in a copy of the repository, so results/ and .snakemake/ stay out of the tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from snakemake_runner import COPIED, REPO


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    """A fresh copy of the workflow (not of results/) to run Snakemake in."""
    root = tmp_path / "wf"
    root.mkdir()
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy2(source, root / name)
    return root
