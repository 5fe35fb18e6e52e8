"""simmerge export: a finished run's portable tables stand in for the run folder — a transfer from the export gives
what a transfer from the run gives — and an export whose tables changed afterwards, or a run that is not finished,
is refused by name before anything is written."""

from __future__ import annotations

import json
import time
import zipfile

import pandas as pd
import pytest
from test_compare import labels
from test_transfer import TARGET_EXPERTS, fitted

from simmerge.cli import main
from simmerge.core.config import ConfigError
from simmerge.core.export import MANIFEST, export_run, verify_export
from simmerge.core.io import sha256_file, write_json, write_table
from simmerge.core.layout import RunLayout
from simmerge.core.provenance import describe, provenance
from simmerge.evaluate.predictor import save_predictor
from simmerge.features.definitions import feature_names
from simmerge.plan import parameter_count, reference_seconds


def finished_run(root, seed: int = 0, experts=None) -> RunLayout:
    """A run folder with what a finished run has for its readers: labels, a fitted predictor, its CV choice."""
    layout = RunLayout(root)
    table = labels(seed) if experts is None else labels(seed, experts=experts)
    write_table(table, layout.labels_parquet)
    save_predictor(fitted(table), layout.predictor_model)
    write_json({"family": "per_operator_ridge"}, layout.predictor_cv)
    write_table(pd.DataFrame({"protocol": ["checkpoint"], "difference": [0.01]}), layout.compare_summary)
    return layout


def with_plan_inputs(run: RunLayout) -> RunLayout:
    """Two jobs' Snakemake benchmarks and a checkpoint manifest: what ``simmerge plan --reference`` reads."""
    for path, seconds in (
        (run.benchmark("merge_score", "a__b", "linear"), 41.5),
        (run.benchmark("finetune_expert", "a"), 270.0),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:00\t900.0\n")
    run.checkpoint_manifest("a").parent.mkdir(parents=True, exist_ok=True)
    write_json({"name": "a", "parameter_count": 134515008}, run.checkpoint_manifest("a"))
    return run


def test_the_export_copies_the_tables_with_their_hashes_and_leaves_the_rest(tmp_path):
    run = finished_run(tmp_path / "results" / "source")
    (run.root / "merges" / "a__b").mkdir(parents=True)
    (run.root / "merges" / "a__b" / "linear.items.parquet").write_bytes(b"not a portable table")
    (run.root / "checkpoints" / "a" / "model.safetensors").parent.mkdir(parents=True)
    (run.root / "checkpoints" / "a" / "model.safetensors").write_bytes(b"weights stay behind")
    with_plan_inputs(run)
    config = tmp_path / "source.yaml"
    config.write_text("run_name: source\n")
    manifest = export_run(run.root, tmp_path / "export", config=config)
    copied = {p.relative_to(tmp_path / "export").as_posix() for p in (tmp_path / "export").rglob("*") if p.is_file()}
    assert copied == {
        "labels.parquet",
        "predictor/model.skops",
        "predictor/cv.json",
        "compare/summary.csv",
        "benchmarks/merge_score/a__b/linear.tsv",
        "benchmarks/finetune_expert/a.tsv",
        "checkpoints/a/manifest.json",
        "config.yaml",
        MANIFEST,
    }
    assert manifest["run"] == "source" and manifest["config"] == "config.yaml"
    for relative, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(tmp_path / "export" / relative)
        assert entry["bytes"] == (tmp_path / "export" / relative).stat().st_size
    assert json.loads((tmp_path / "export" / MANIFEST).read_text()) == manifest
    # the skops predictor is copied entry by entry, deflated (a forest is stored uncompressed: ten times the bytes)
    with (
        zipfile.ZipFile(run.predictor_model) as original,
        zipfile.ZipFile(tmp_path / "export" / "predictor/model.skops") as copy,
    ):
        assert {e.compress_type for e in copy.infolist()} == {zipfile.ZIP_DEFLATED}
        assert {e.filename: copy.read(e) for e in copy.infolist()} == {
            e.filename: original.read(e) for e in original.infolist()
        }
    assert verify_export(tmp_path / "export") == []
    # the same run exported again (past zip's 2-second timestamp resolution) gives the same bytes
    time.sleep(2.1)
    again = export_run(run.root, tmp_path / "again", config=config)
    assert {k: v["sha256"] for k, v in again["files"].items()} == {k: v["sha256"] for k, v in manifest["files"].items()}


def test_a_transfer_from_the_export_equals_one_from_the_run(tmp_path, capsys):
    source = finished_run(tmp_path / "source")
    target = finished_run(tmp_path / "target", seed=1, experts=TARGET_EXPERTS)
    export_run(source.root, tmp_path / "exported" / "source")
    runs = {"run": source.root, "export": tmp_path / "exported" / "source"}
    for name, folder in runs.items():
        out = tmp_path / "transfers" / name
        assert (
            main(["transfer", "--from", str(folder), "--to", str(target.root), "-o", str(out), "--n-boot", "50"]) == 0
        )
    capsys.readouterr()
    outs = [tmp_path / "transfers" / name for name in runs]
    pd.testing.assert_frame_equal(*(pd.read_csv(folder / "units.csv") for folder in outs))
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in outs]
    for summary in summaries:
        summary.pop("source_run")
    assert summaries[0] == summaries[1]


def test_the_command_records_which_code_and_cpu_made_the_runs_records(tmp_path, capsys):
    run = finished_run(tmp_path / "source")
    made_by = {**provenance(), "commit": "0" * 40, "dirty": False}
    write_json({"provenance": made_by, "operator": "linear"}, run.root / "merges" / "a__b" / "linear.json")
    assert main(["export", str(run.root), str(tmp_path / "export")]) == 0
    assert "wrote" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "export" / MANIFEST).read_text())
    assert manifest["provenance"] == {"groups": [{"description": describe(made_by), "records": 1}], "warnings": []}


def test_an_export_changed_after_it_was_written_is_refused_by_name(tmp_path, capsys):
    source = finished_run(tmp_path / "source")
    target = finished_run(tmp_path / "target", seed=1, experts=TARGET_EXPERTS)
    export = tmp_path / "export"
    export_run(source.root, export)
    write_table(labels(2), export / "labels.parquet")
    assert verify_export(export) == ["labels.parquet (changed)"]
    assert main(["transfer", "--from", str(export), "--to", str(target.root)]) == 2
    assert "labels.parquet (changed)" in capsys.readouterr().err
    (export / "predictor" / "cv.json").unlink()
    assert verify_export(export) == ["labels.parquet (changed)", "predictor/cv.json (missing)"]


def test_an_unfinished_run_is_refused_before_anything_is_written(tmp_path):
    run = finished_run(tmp_path / "source")
    run.predictor_model.unlink()
    with pytest.raises(ConfigError, match=r"no predictor/model.skops \(predictor model\).*snakemake all_predictor"):
        export_run(run.root, tmp_path / "export")
    assert not (tmp_path / "export").exists()
    with pytest.raises(ConfigError, match="is the run folder itself"):
        export_run(run.root, run.root)
    with pytest.raises(ConfigError, match="not a run folder"):
        export_run(tmp_path / "nowhere", tmp_path / "export")


def test_plan_reads_the_costs_and_model_size_of_an_export_as_of_its_run(tmp_path):
    run = with_plan_inputs(finished_run(tmp_path / "results" / "source"))
    export_run(run.root, tmp_path / "export")
    assert reference_seconds(tmp_path / "export").to_dict() == {"finetune_expert": 270.0, "merge_score": 41.5}
    assert reference_seconds(tmp_path / "export").equals(reference_seconds(run.root))
    assert parameter_count(tmp_path / "export") == parameter_count(run.root) == 134515008


def test_a_learning_curve_from_the_export_holds_out_the_runs_near_duplicates_together(tmp_path, capsys):
    run = finished_run(tmp_path / "source")
    table = pd.read_parquet(run.labels_parquet)
    write_table(table.assign(**dict.fromkeys(feature_names(), table["signal"])), run.labels_parquet)
    write_json({"groups": ["e0+e1"]}, run.comparison_summary("checkpoint"))
    export_run(run.root, tmp_path / "export")
    curves = []
    for folder in (run.root, tmp_path / "export"):
        out = tmp_path / "curves" / folder.name
        assert main(["learning-curve", "--run", str(folder), "--sizes", "1,3", "--repeats", "6", "-o", str(out)]) == 0
        curves.append(pd.read_csv(out / "curve.csv"))
    capsys.readouterr()
    pd.testing.assert_frame_equal(*curves)
    held_out = set(curves[0]["test"])
    assert "e0+e1" in held_out and not {"e0", "e1"} & held_out
