"""CMA-ES over real merges (simmerge.merges.cma) on tiny Llamas, and its rows in the methods comparison."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from test_merging import make_expert
from tiny_tasks import write_task_data, write_task_dir

from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.core.config import CmaSearchSpec
from simmerge.evaluate.methods import search_record_units, split_digest
from simmerge.evaluate.paired import UnitItems
from simmerge.merges.cma import (
    Genome,
    best_parent_metrics,
    cma_merge_search,
    normalised_items,
    subset_data_files,
    task_mean_on,
)
from simmerge.merges.merging import merge_pair
from simmerge.merges.scoring import score_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cma")
    base = root / "base"
    build_tiny_checkpoint(base, seed=0)
    return {
        "base": base,
        "a": make_expert(base, root / "expert_a", seed=1, scale=0.05),
        "b": make_expert(base, root / "expert_b", seed=2, scale=0.05),
    }


@pytest.fixture
def tasks(tmp_path):
    return write_task_dir(tmp_path / "tasks"), write_task_data(tmp_path)


def genome(**overrides) -> Genome:
    return Genome(CmaSearchSpec(**overrides).model_dump(include={"method", "parameters", "model_parameters", "genes"}))


def all_keys(data_files) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"task": task, "subtask": f"simmerge_{task}", "doc_id": i}
            for task, path in data_files.items()
            for i in range(len(path.read_text().splitlines()))
        ]
    )


def test_the_genome_puts_each_gene_in_its_place_and_maps_the_unit_cube_onto_its_range():
    default = genome()
    assert default.start() == pytest.approx([1.0 / 1.5, 1.0 / 1.5, 0.4 / 0.9])
    assert default.values([0.0, 1.0, 2.0]) == [0.0, 1.5, 1.0]  # outside the cube: clipped
    operator = default.operator([0.5, 0.2, 0.0])
    assert operator.method == "ties" and operator.parameters == {"normalize": False}
    assert operator.anchor_parameters == {"weight": 0.75} and operator.other_parameters == {"weight": 0.3}
    assert operator.model_parameters == {"density": 0.1} and operator.order_sensitive
    assert default.parameters([0.5, 0.2, 0.0]) == {"weight@anchor": 0.75, "weight@other": 0.3, "density@both": 0.1}
    lam = genome(
        method="task_arithmetic",
        parameters={},
        genes=[
            {"key": "weight", "model": "both", "low": 0.2, "high": 1.2},
            {"key": "lambda", "model": "global", "low": 0.5, "high": 1.5},
        ],
    ).operator([0.5, 1.0])
    assert lam.model_parameters == {"weight": 0.7} and lam.parameters == {"lambda": 1.5} and not lam.order_sensitive


def test_a_gene_mergekit_refuses_fails_when_the_operator_is_built():
    with pytest.raises(ValueError, match="density"):
        genome(
            genes=[{"key": "density", "model": "both", "low": 0.5, "high": 3.0}, *CmaSearchSpec().genes[:1]]
        ).operator([1.0, 0.5])


def test_the_spec_refuses_a_gene_twice_a_reversed_range_and_a_population_over_budget():
    with pytest.raises(ValueError, match="listed twice"):
        CmaSearchSpec(genes=[{"key": "weight", "model": "both", "low": 0, "high": 1}] * 2)
    with pytest.raises(ValueError, match="must be below high"):
        CmaSearchSpec(genes=[{"key": "weight", "model": "anchor", "low": 1, "high": 0}] * 2)
    with pytest.raises(ValueError, match="exceeds budget"):
        CmaSearchSpec(budget=3, popsize=4)


def test_scoring_the_cut_data_gives_the_full_runs_outcomes_of_those_items(tiny, tasks, tmp_path):
    task_dir, data_files = tasks
    full = score_checkpoint(tiny["a"], task_dir, data_files, device="cpu", threads=1)
    keys = all_keys(data_files)
    chosen = keys.iloc[[7, 1, 4, 10]].reset_index(drop=True)  # both tasks, out of order
    files, doc_ids = subset_data_files(data_files, chosen, tmp_path / "cut")
    assert doc_ids == {"pick": {"simmerge_pick": [1, 4]}, "words": {"simmerge_words": [1, 4]}}
    cut = score_checkpoint(tiny["a"], task_dir, files, device="cpu", threads=1)
    best = {"words": 0.5, "pick": 0.25}
    expected = normalised_items(full["items"], best, {})
    got = normalised_items(cut["items"], best, doc_ids)
    assert len(got) == 4
    merged = chosen.merge(got, on=["task", "subtask", "doc_id"]).merge(
        expected, on=["task", "subtask", "doc_id"], suffixes=("", "_full")
    )
    assert np.array_equal(merged["value"], merged["value_full"])
    assert task_mean_on(chosen, got) == pytest.approx(
        np.mean([merged.loc[merged["task"] == t, "value"].mean() for t in ("pick", "words")])
    )


def test_a_search_never_exceeds_its_budget_and_its_held_out_scores_are_those_of_its_merges(tiny, tasks, tmp_path):
    task_dir, data_files = tasks
    keys = all_keys(data_files)
    search = keys[keys["doc_id"] % 2 == 0].reset_index(drop=True)
    held_out = keys[keys["doc_id"] % 2 == 1].reset_index(drop=True)
    best = {"words": 0.5, "pick": 0.5}
    space = genome(
        method="task_arithmetic",
        parameters={},
        genes=[
            {"key": "weight", "model": "anchor", "low": 0.0, "high": 1.5},
            {"key": "weight", "model": "other", "low": 0.0, "high": 1.5},
        ],
    )
    settings = {
        "search_keys": search,
        "held_out_keys": held_out,
        "best_parent": best,
        "task_dir": task_dir,
        "data_files": data_files,
        "budget": 5,
        "popsize": 2,
        "sigma0": 0.3,
        "seed": 0,
        "device": "cpu",
        "threads": 1,
        "scratch_dir": tmp_path,
    }
    record = cma_merge_search(space, tiny["a"], tiny["b"], tiny["base"], **settings)
    assert len(record["evaluations"]) == 4 and [g["evaluations"] for g in record["generations"]] == [2, 4]
    assert record["search_items"] == len(search) and record["held_out_items"] == len(held_out)
    assert record["generations"][-1]["search_score"] == max(e["search_score"] for e in record["evaluations"])
    # the held-out score is the merge's own, scored again from scratch on every item
    final = record["generations"][-1]
    x = next(e["x"] for e in record["evaluations"] if e["parameters"] == final["parameters"])
    merge_pair(space.operator(x), tiny["a"], tiny["b"], tiny["base"], tmp_path / "again", seed=0, device="cpu")
    scored = score_checkpoint(tmp_path / "again", task_dir, data_files, device="cpu", threads=1)
    assert final["held_out_score"] == task_mean_on(held_out, normalised_items(scored["items"], best, {}))
    assert not list(tmp_path.glob("simmerge-cma-*"))  # every merge removed
    again = cma_merge_search(space, tiny["a"], tiny["b"], tiny["base"], **settings)
    assert [e["x"] for e in again["evaluations"]] == [e["x"] for e in record["evaluations"]]
    fewer = cma_merge_search(space, tiny["a"], tiny["b"], tiny["base"], **{**settings, "budget": 3}, items=3)
    assert len(fewer["evaluations"]) == 2 and fewer["search_items"] == 3


def test_best_parent_metrics_take_the_better_parent_per_task_in_either_order():
    labels = pd.DataFrame(
        {
            "a": ["x", "y", "x"],
            "b": ["y", "x", "z"],
            "task": ["t1", "t2", "t1"],
            "parent_score_a": [0.4, 0.9, 0.1],
            "parent_score_b": [0.6, 0.2, 0.1],
        }
    )
    assert best_parent_metrics(labels, "y", "x") == {"t1": 0.6, "t2": 0.9}
    with pytest.raises(KeyError, match="no label rows"):
        best_parent_metrics(labels, "y", "z")


def test_search_records_become_method_rows_at_every_budget_with_what_each_pair_spent():
    tasks = np.array([0, 0, 1, 1])
    items = {
        "p|q": UnitItems(tasks, {("linear", ""): np.array([0.0, 1.0, 0.0, 1.0])}, {}),
        "p|r": UnitItems(tasks, {("linear", ""): np.array([0.0, 0.0, 1.0, 1.0])}, {}),
    }
    halves = {unit: (np.array([0, 2]), np.array([1, 3])) for unit in items}

    def generation(n, score):
        return {"evaluations": n, "parameters": {"weight@both": n / 10}, "held_out_score": score}

    records = [
        {"unit": "p|q", "search_items": 2, "generations": [generation(2, 0.2), generation(4, 0.6)]},
        {"unit": "p|r", "search_items": 2, "generations": [generation(2, 0.9)]},  # converged after one generation
    ]
    records = [
        {**record, "split_digest": split_digest(items[record["unit"]], halves[record["unit"]])} for record in records
    ]
    rows = search_record_units(records, items, halves)
    assert list(rows["method"]) == ["cma_es (2 evals)", "cma_es (4 evals)"] * 2
    by = rows.set_index(["unit", "method"])
    assert by.loc[("p|q", "cma_es (4 evals)"), "score"] == 0.6
    assert by.loc[("p|q", "cma_es (4 evals)"), "regret"] == pytest.approx(1.0 - 0.6)
    assert by.loc[("p|r", "cma_es (4 evals)"), "merges"] == 2 and by.loc[("p|r", "cma_es (4 evals)"), "items"] == 4
    assert by.loc[("p|r", "cma_es (4 evals)"), "regret"] == pytest.approx(0.5 - 0.9)  # off the grid, above it
    assert math.isnan(by.loc[("p|q", "cma_es (2 evals)"), "candidates"])


def test_a_cma_search_whose_genes_leave_mergekits_range_is_refused_when_the_workflow_is_parsed():
    from shipped_configs import expect_config_error, read_config

    raw = read_config("smoke.yaml")
    raw["predictor"] = {
        "cma_search": {
            "enabled": True,
            "genes": [
                {"key": "weight", "model": "both", "low": 0.0, "high": 1.0},
                {"key": "density", "model": "both", "low": 0.5, "high": 1.5},
            ],
        }
    }
    expect_config_error(raw, "predictor.cma_search: at", "'density@both': 1.5", "narrow the genes' [low, high]")


def test_a_search_record_made_on_other_items_is_refused_naming_it():
    tasks = np.array([0, 0, 1, 1])
    items = {"p|q": UnitItems(tasks, {("linear", ""): np.array([0.0, 1.0, 0.0, 1.0])}, {})}
    made_on = (np.array([0, 2]), np.array([1, 3]))
    record = {
        "unit": "p|q",
        "path": "search/cma/p__q.json",
        "search_items": 2,
        "generations": [{"evaluations": 2, "parameters": {"weight@both": 0.5}, "held_out_score": 0.5}],
        "split_digest": split_digest(items["p|q"], made_on),
    }
    assert len(search_record_units([record], items, {"p|q": made_on})) == 1
    with pytest.raises(ValueError, match=r"search/cma/p__q.json\) was made on other search and held-out items"):
        search_record_units([record], items, {"p|q": (np.array([1, 2]), np.array([0, 3]))})
