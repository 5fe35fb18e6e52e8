"""Tests of simmerge.features.summary: the model summary file, assembled from parts, loaded with its checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from probe_inputs import PROMPTS, SPEC, build_checkpoints, use_fake_sketch, write_probes

from simmerge.core.io import sha256_file
from simmerge.core.provenance import provenance
from simmerge.features.probe_pass import probe_task, sketch_checkpoint, summarise_checkpoint
from simmerge.features.summary import FUNCTIONAL_KEYS, SKETCH_KEYS, SummaryFormatError, assemble_summary, load_summary


@pytest.fixture()
def fake_sketch(monkeypatch):
    use_fake_sketch(monkeypatch)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("probe_ckpts"))


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory):
    return write_probes(tmp_path_factory.mktemp("probes"), PROMPTS)


def test_probe_features_writes_a_loadable_summary(ckpts, probe_files, tmp_path, fake_sketch):
    out = tmp_path / "features" / "m0.npz"
    meta = summarise_checkpoint(ckpts[0], ckpts[0], probe_files, out, name="m0", spec=SPEC, seed=3, threads=1)
    with np.load(out, allow_pickle=False) as archive:
        on_disk = json.loads(str(archive["meta"]))
        assert archive["meta"].shape == () and archive["meta"].dtype.kind == "U"
        assert archive["sketch/names"].dtype.kind == "U"
    assert on_disk == meta
    assert meta["format_version"] == 1 and meta["name"] == "m0" and meta["tasks"] == ["alpha", "beta"]
    assert meta["sketch"] == {"size": 100, "seed": 3, "top_fraction": 0.2, "provenance": provenance()}
    assert meta["provenance"] == {"alpha": provenance(), "beta": provenance()}
    assert meta["projection_seed"] == 3
    assert meta["probe_sha256"] == {task: sha256_file(path) for task, path in probe_files.items()}
    assert meta["logprobs"] == {"alpha": "full", "beta": "full"}
    assert meta["hidden"]["alpha"] == {"mode": "projected", "dim": 8}

    summary = load_summary(out)
    assert summary.tasks == ("alpha", "beta") and summary.name == "m0"
    functional = summary.functional("alpha")
    assert set(functional) == set(FUNCTIONAL_KEYS) | {"logp"}
    assert summary.offsets("alpha")[-1] == functional["token_ids"].shape[0]
    assert set(summary.sketch) == set(SKETCH_KEYS)
    assert not functional["hidden"].flags.writeable
    with pytest.raises(KeyError, match="gamma"):
        summary.functional("gamma")


def test_same_inputs_give_byte_identical_files(ckpts, probe_files, tmp_path, fake_sketch):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"]
    for path, seed in zip(paths, [3, 3, 4], strict=True):
        summarise_checkpoint(ckpts[0], ckpts[0], probe_files, path, name="m0", spec=SPEC, seed=seed, threads=1)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert sha256_file(paths[2]) != sha256_file(paths[0])


def test_parts_per_task_assemble_into_the_same_bytes_as_one_pass(ckpts, probe_files, tmp_path, fake_sketch):
    whole = tmp_path / "whole.npz"
    summarise_checkpoint(ckpts[1], ckpts[0], probe_files, whole, name="m1", spec=SPEC, seed=3, threads=1)
    parts = {}
    for task in reversed(list(probe_files)):  # passes run in any order, one job each
        parts[task] = tmp_path / "parts" / f"{task}.npz"
        probe_task(ckpts[1], task, probe_files[task], parts[task], spec=SPEC, seed=3, threads=1)
    sketch_checkpoint(ckpts[1], ckpts[0], tmp_path / "parts" / "sketch.npz", name="m1", spec=SPEC, seed=3)
    assembled = tmp_path / "assembled.npz"
    in_config_order = {task: parts[task] for task in probe_files}
    assemble_summary(in_config_order, tmp_path / "parts" / "sketch.npz", assembled, name="m1")
    assert assembled.read_bytes() == whole.read_bytes()
    assert load_summary(assembled).tasks == tuple(probe_files)


def test_a_part_written_before_provenance_was_recorded_assembles_with_none(ckpts, probe_files, tmp_path, fake_sketch):
    from simmerge.features.summary import read_archive, write_archive

    parts = {task: tmp_path / f"{task}.npz" for task in probe_files}
    for task, path in parts.items():
        probe_task(ckpts[0], task, probe_files[task], path, spec=SPEC, seed=3, threads=1)
    meta, arrays = read_archive(parts["beta"])
    del meta["provenance"]
    write_archive(parts["beta"], meta, arrays)
    sketch_checkpoint(ckpts[0], ckpts[0], tmp_path / "sketch.npz", name="m0", spec=SPEC, seed=3)
    meta = assemble_summary(parts, tmp_path / "sketch.npz", tmp_path / "m0.npz", name="m0")
    assert meta["provenance"] == {"alpha": provenance(), "beta": None}
    assert load_summary(tmp_path / "m0.npz").meta["provenance"]["beta"] is None


def test_parts_of_another_task_or_seed_are_refused(ckpts, probe_files, tmp_path, fake_sketch):
    alpha, beta = (tmp_path / f"{task}.npz" for task in ("alpha", "beta"))
    probe_task(ckpts[0], "alpha", probe_files["alpha"], alpha, spec=SPEC, seed=3, threads=1)
    probe_task(ckpts[0], "beta", probe_files["beta"], beta, spec=SPEC, seed=4, threads=1)
    sketch = tmp_path / "sketch.npz"
    sketch_checkpoint(ckpts[0], ckpts[0], sketch, name="m0", spec=SPEC, seed=3)
    with pytest.raises(SummaryFormatError, match="beta.npz.*not the probe part of task 'alpha'"):
        assemble_summary({"alpha": beta}, sketch, tmp_path / "out.npz", name="m0")
    with pytest.raises(SummaryFormatError, match="beta.npz and .*alpha.npz disagree on projection_seed"):
        assemble_summary({"alpha": alpha, "beta": beta}, sketch, tmp_path / "out.npz", name="m0")
    assert not (tmp_path / "out.npz").exists()


def test_load_summary_names_the_file_and_what_is_missing(ckpts, probe_files, tmp_path, fake_sketch):
    good = tmp_path / "good.npz"
    summarise_checkpoint(ckpts[0], ckpts[0], probe_files, good, name="m0", spec=SPEC, seed=0, threads=1)
    with np.load(good, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}

    broken = tmp_path / "broken.npz"
    np.savez(broken, **{k: v for k, v in arrays.items() if k != "beta/hidden_norm"})
    with pytest.raises(SummaryFormatError, match="broken.npz.*beta/hidden_norm"):
        load_summary(broken)

    old = tmp_path / "old.npz"
    meta = json.loads(str(arrays["meta"]))
    np.savez(old, **{**arrays, "meta": np.array(json.dumps({**meta, "format_version": 2}))})
    with pytest.raises(SummaryFormatError, match="old.npz.*format_version 2"):
        load_summary(old)

    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        load_summary(tmp_path / "nowhere.npz")


def test_real_weight_sketch_fits_the_summary(ckpts, probe_files, tmp_path):
    sketch = pytest.importorskip("simmerge.features.sketch")
    if not hasattr(sketch, "weight_sketch"):
        pytest.skip("simmerge.features.sketch.weight_sketch is not written yet")
    out = tmp_path / "m1.npz"
    summarise_checkpoint(ckpts[1], ckpts[0], probe_files, out, name="m1", spec=SPEC, seed=0, threads=1)
    summary = load_summary(out)
    assert summary.sketch["offsets"][-1] == summary.sketch["coords"].shape[0]
