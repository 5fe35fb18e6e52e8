"""Workflow tests run Snakemake in a copy of the repository, so results/ and .snakemake/ stay out of the tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake_runner import copy_workflow, run_snakemake


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    """A fresh copy of the workflow to run Snakemake in."""
    return copy_workflow(tmp_path / "wf")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """A finished local run of the whole smoke workflow, shared by the smoke tests and the SLURM test (which compares
    its results with this run's instead of paying for a second local run). Under pytest-xdist those tests are one
    unit of work (tests/conftest.py), so that one worker makes the run once."""
    root = copy_workflow(tmp_path_factory.mktemp("smoke") / "wf")
    # 8 min 46 s alone on 2 cores, 15 min beside the SLURM run (test_slurm.py); the bound only stops a hang
    run_snakemake(root, "all", "--configfile", "config/smoke.yaml", timeout=1800)
    return root
