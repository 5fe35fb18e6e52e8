"""Workflow tests run Snakemake in a copy of the repository, so results/ and .snakemake/ stay out of the tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake_runner import copy_workflow


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    """A fresh copy of the workflow to run Snakemake in."""
    return copy_workflow(tmp_path / "wf")
