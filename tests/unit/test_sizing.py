"""Tests of simmerge.catalog.sizing: memory and scratch disk follow the checkpoint's size from its manifest."""

from __future__ import annotations

import json

import pytest

from simmerge.catalog.sizing import RULE_SIZING, job_resources

SMOLLM2_PARAMETERS = 134_515_008  # the default catalog's base, from its manifest
SEVEN_B_PARAMETERS = 7_241_732_096  # a Mistral-7B-sized manifest


def manifest(tmp_path, parameters: int, name: str = "m"):
    path = tmp_path / name / "manifest.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"name": name, "parameter_count": parameters}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("parameters", "rule", "memory_gb", "disk_gb"),
    [
        (SMOLLM2_PARAMETERS, "merge_score", 3.08, 1.54),
        (SMOLLM2_PARAMETERS, "expert_scores", 2.54, None),
        (SMOLLM2_PARAMETERS, "finetune_expert", 6.16, None),
        (SEVEN_B_PARAMETERS, "merge_score", 59.93, 29.97),
        (SEVEN_B_PARAMETERS, "expert_scores", 30.97, None),
        (SEVEN_B_PARAMETERS, "finetune_expert", 119.87, None),
        (SEVEN_B_PARAMETERS, "multiway_plan", 59.93, 58.93),
    ],
)
def test_memory_and_disk_follow_the_manifests_parameter_count(tmp_path, parameters, rule, memory_gb, disk_gb):
    resources = job_resources(rule, [manifest(tmp_path, parameters)])
    assert resources["mem_mb"] / 1000 == pytest.approx(memory_gb, abs=0.01)
    assert resources["disk_mb"] / 1000 == pytest.approx(disk_gb or 0.0, abs=0.01)


def test_the_largest_input_sets_the_size_and_a_missing_manifest_counts_zero(tmp_path):
    small, large = manifest(tmp_path, 1_000_000, "small"), manifest(tmp_path, SMOLLM2_PARAMETERS, "large")
    assert job_resources("probe_pass", [small, large]) == job_resources("probe_pass", [large])
    # before its inputs exist (a dry-run), a job asks for the rule's extra only; Snakemake asks again when ready
    assert job_resources("probe_pass", [tmp_path / "later" / "manifest.json"]) == {"mem_mb": 2000, "disk_mb": 0}
    touched = tmp_path / "touched" / "manifest.json"  # `snakemake --touch` leaves an empty file
    touched.parent.mkdir()
    touched.touch()
    assert job_resources("probe_pass", [touched]) == {"mem_mb": 2000, "disk_mb": 0}


def test_every_sized_rule_is_a_rule_of_the_workflow():
    from pathlib import Path

    rules = Path(__file__).resolve().parents[2] / "rules"
    declared = {
        line.split()[1].rstrip(":")
        for path in rules.glob("*.smk")
        for line in path.read_text().splitlines()
        if line.startswith(("rule ", "checkpoint "))
    }
    assert set(RULE_SIZING) <= declared
    for rule in RULE_SIZING:
        assert any(f'sized("{rule}")' in path.read_text() for path in rules.glob("*.smk")), rule
