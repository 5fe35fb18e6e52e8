"""Workflow tests run Snakemake in a copy of the repository, so results/ and .snakemake/ stay out of the tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from snakemake_runner import copy_workflow, pretend_complete, run_snakemake


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    """A fresh copy of the workflow to run Snakemake in."""
    return copy_workflow(tmp_path / "wf")


@pytest.fixture(scope="session")
def completed_smoke_template(tmp_path_factory) -> Path:
    """The workflow with every output of the smoke config pretended complete (:func:`pretend_complete`, three
    Snakemake calls), made once per test worker for the tests of what a config change re-runs."""
    root = copy_workflow(tmp_path_factory.mktemp("completed_smoke") / "wf")
    pretend_complete(root, "--configfile", "config/smoke.yaml")
    return root


@pytest.fixture
def completed_smoke_dir(completed_smoke_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of that workflow for one test to change: its outputs' modification times and Snakemake's
    records of the jobs (.snakemake/) are copied with it, so it is as complete as the template."""
    root = tmp_path / "wf"
    shutil.copytree(completed_smoke_template, root, symlinks=True)
    return root


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """A finished local run of the whole smoke workflow, shared by the smoke tests and the SLURM test (which compares
    its results with this run's instead of paying for a second local run). Under pytest-xdist those tests are one
    unit of work (tests/conftest.py), so that one worker makes the run once."""
    root = copy_workflow(tmp_path_factory.mktemp("smoke") / "wf")
    # 8 min 46 s alone on 2 cores, 15 min beside the SLURM run (test_slurm.py); the bound only stops a hang
    run_snakemake(root, "all", "--configfile", "config/smoke.yaml", timeout=1800)
    return root
