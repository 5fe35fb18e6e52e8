"""Tests of simmerge.plan: the work a config holds and the cost estimate from a reference run's benchmarks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from simmerge.plan import estimate, parameter_count, plan_text, reference_seconds, run_work
from simmerge.run import load

REPO = Path(__file__).resolve().parents[2]


def catalog(name: str):
    return load(yaml.safe_load((REPO / "config" / name).read_text(encoding="utf-8")), workdir=REPO)


def test_the_default_grid_holds_its_merges_seeds_and_items():
    default = catalog("config.yaml")
    work = run_work(default)
    # 10 unordered pairs: 9 symmetric operators once, 3 order-sensitive ones in both orders -> 150 jobs, 15 per pair;
    # dare_ties, dare_linear and della merge with 2 more seeds on the 3 pairs of merges.repeat_pairs
    assert len(default.repeat_pairs) == 3
    assert (work.merge_jobs, work.merges) == (150, 150 + 3 * 3 * 2)

    # fr|fr_hot is scored on n2w_fr alone, every other pair on its two home tasks of 150 items
    def pair_items(a, b):
        return 150 if {a, b} == {"fr", "fr_hot"} else 300

    repeated = sum(pair_items(a, b) for a, b in default.repeat_pairs)
    assert work.merge_items == 15 * (150 + 9 * 300) + 3 * 2 * repeated
    assert work.expert_items == 6 * (4 * 150 + 60 + 80)
    assert (work.search_merges, work.search_items) == (0, 0)  # predictor.cma_search is off


def test_a_cma_search_counts_its_evaluations_and_each_generations_best_scored_on_every_item():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["predictor"]["cma_search"] = {"enabled": True, "budget": 10, "popsize": 4}
    work = run_work(load(config, workdir=REPO))
    # 2 whole generations of 4 per pair, each generation's best merged again: 10 merges per pair; fr|fr_hot has
    # 150 items (75 searched), the other 9 pairs 300 (150 searched)
    assert work.search_merges == 10 * 10
    assert work.search_items == (8 * 75 + 2 * 150) + 9 * (8 * 150 + 2 * 300)


def test_the_estimate_scales_model_loading_rules_by_the_parameter_ratio():
    reference = pd.Series({"merge_score": 30.0, "labels": 2.0})
    table = estimate({"merge_score": 10, "labels": 1, "new_rule": 3}, reference, scale=50.0).set_index("rule")
    assert table.loc["merge_score", "estimate_s"] == 10 * 30.0 * 50.0
    assert table.loc["labels", "estimate_s"] == 2.0  # a table job does not grow with the model
    assert pd.isna(table.loc["new_rule", "estimate_s"])


def write_reference(root: Path, parameters: int) -> Path:
    run = root / "results" / "ref"
    (run / "checkpoints" / "base").mkdir(parents=True)
    (run / "checkpoints" / "base" / "manifest.json").write_text(json.dumps({"parameter_count": parameters}))
    for rule, seconds in {"merge_score": [20.0, 40.0], "labels": [2.0]}.items():
        (run / "benchmarks" / rule).mkdir(parents=True)
        for index, value in enumerate(seconds):
            (run / "benchmarks" / rule / f"{index}.tsv").write_text(f"s\th:m:s\n{value}\t0:00:00\n")
    return run


def test_the_reference_runs_benchmarks_are_the_measured_costs(tmp_path):
    run = write_reference(tmp_path, 1000)
    assert reference_seconds(run).to_dict() == {"labels": 2.0, "merge_score": 30.0}
    assert parameter_count(run) == 1000


def test_the_plan_says_what_is_measured_and_what_extrapolated(tmp_path):
    reference = write_reference(tmp_path, 134_515_008)
    counts = {"merge_score": 150, "labels": 1}
    text = plan_text("config/config.yaml", catalog("config.yaml"), counts, reference=reference, cores=2)
    assert "150 merge jobs = 168 mergekit merges" in text
    assert f"Measured: mean seconds per job of each rule in {reference}" in text
    assert "same eval sizes per job as the reference" in text
    assert f"Estimate: {(150 * 30.0 + 2.0) / 3600:.2f} CPU/GPU job-hours" in text
    no_reference = plan_text("c.yaml", catalog("smoke.yaml"), {"merge_score": 12}, reference=None, cores=2)
    assert "No estimate: give --reference" in no_reference


def test_before_a_run_the_model_size_is_read_from_a_local_bases_safetensors_headers(tmp_path):
    import torch
    from safetensors.torch import save_file

    from simmerge.plan import planned_parameter_count

    (tmp_path / "base").mkdir()
    save_file({"w": torch.zeros(3, 5)}, tmp_path / "base" / "model-00001.safetensors")
    save_file({"b": torch.zeros(7)}, tmp_path / "base" / "model-00002.safetensors")
    raw = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text(encoding="utf-8"))
    raw["catalog"]["base"]["source"] = {"kind": "local", "path": str(tmp_path / "base")}
    size, source = planned_parameter_count(load(raw, workdir=REPO), {}, tmp_path / "results" / "none")
    assert size == 3 * 5 + 7 and "safetensors headers" in source
    assert planned_parameter_count(catalog("smoke.yaml"), {}, tmp_path / "none") == (
        None,
        "not known before the run builds its checkpoints",
    )
