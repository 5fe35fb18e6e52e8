"""The run layout: one definition of every path under results/<run_name>/ (checked against the rules'
declared outputs by tests/workflow/test_dryrun.py)."""

from __future__ import annotations

import inspect
from pathlib import Path

from simmerge.core.layout import RunLayout

LAYOUT = RunLayout.of_run("smoke")


def path_methods() -> dict[str, list[str]]:
    """Every method of RunLayout that names a path, with its parameters (names of the run's entities)."""
    methods = {}
    for name, member in inspect.getmembers(RunLayout, inspect.isfunction):
        if name.startswith("_") or name in {"glob", "pair", "of_run", "log", "benchmark"}:
            continue
        methods[name] = list(inspect.signature(member).parameters)[1:]
    return methods


def test_a_run_lives_under_results_and_its_name():
    assert LAYOUT.root == Path("results/smoke")
    assert LAYOUT.merge_record("fr", "de", "ties") == Path("results/smoke/merges/fr__de/ties.json")
    assert LAYOUT.log("merge_score", LAYOUT.pair("fr", "de"), "ties") == Path(
        "results/smoke/logs/merge_score/fr__de/ties.log"
    )
    assert LAYOUT.benchmark("predictor", "fit") == Path("results/smoke/benchmarks/predictor/fit.tsv")


def test_a_wildcard_pattern_filled_in_is_the_concrete_path():
    # what makes `layout.merge_record("{a}", "{b}", "{op}")` a valid Snakemake pattern for the same files
    for name, parameters in path_methods().items():
        method = getattr(LAYOUT, name)
        values = {parameter: f"value_of_{parameter}" for parameter in parameters}
        pattern = str(method(*(f"{{{parameter}}}" for parameter in parameters)))
        assert pattern.format(**values) == str(method(*values.values())), name
    pattern = str(LAYOUT.benchmark("merge_score", LAYOUT.pair("{a}", "{b}"), "{op}"))
    assert pattern.format(a="x", b="y", op="o") == str(LAYOUT.benchmark("merge_score", LAYOUT.pair("x", "y"), "o"))


def test_every_artifact_has_its_own_path_under_the_run():
    paths = [getattr(LAYOUT, name) for name in dir(RunLayout) if isinstance(getattr(RunLayout, name), property)]
    paths += [getattr(LAYOUT, name)(*(["x"] * len(params))) for name, params in path_methods().items()]
    assert all(path.is_relative_to(LAYOUT.root) and path != LAYOUT.root for path in paths)
    assert len(set(paths)) == len(paths)


def test_glob_finds_exactly_the_files_of_a_star_pattern(tmp_path):
    layout = RunLayout(tmp_path / "run")
    for path in (
        layout.merge_record("fr", "de", "ties"),
        layout.merge_record("de", "fr", "slerp"),
        layout.merge_config("fr", "de", "ties"),
        layout.merged_checkpoint("fr", "de", "ties") / "config.json",
        layout.expert_scores("fr", "n2w_fr"),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert layout.glob(layout.merge_record("*", "*", "*")) == [
        layout.merge_record("de", "fr", "slerp"),
        layout.merge_record("fr", "de", "ties"),
    ]
    assert layout.glob(layout.expert_scores("fr", "*")) == [layout.expert_scores("fr", "n2w_fr")]
    assert layout.glob(layout.expert_scores("de", "*")) == []
