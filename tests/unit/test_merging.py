"""merge_pair on tiny Llamas: known answers per operator, order and seed behaviour, and failed merges as data."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from mergekit.config import MergeConfiguration
from safetensors.torch import load_file, save_file

from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.core.config import AVAILABLE_OPERATORS, DEFAULT_OPERATORS
from simmerge.merges.merging import CONFIG_NAME, DiskFullError, merge_pair
from simmerge.merges.operators import Operator, default_operators, documented_operators, load_operators

WEIGHTS = "model.safetensors"
REPO = Path(__file__).resolve().parents[2]


def make_expert(base: Path, out: Path, *, seed: int, scale: float = 0.02) -> Path:
    """A fake fine-tune: the base's tensors plus seeded Gaussian noise, with the base's config and tokenizer."""
    shutil.copytree(base, out, ignore=shutil.ignore_patterns("*.safetensors"))
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        name: tensor + scale * torch.randn(tensor.shape, generator=generator)
        for name, tensor in load_file(base / WEIGHTS).items()
    }
    save_file(tensors, out / WEIGHTS, metadata={"format": "pt"})
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("merging")
    base = root / "base"
    build_tiny_checkpoint(base, seed=0)
    return {
        "base": base,
        "a": make_expert(base, root / "expert_a", seed=1),
        "b": make_expert(base, root / "expert_b", seed=2),
    }


@pytest.fixture(scope="module")
def ops():
    return load_operators(list(documented_operators()))


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(Path(ckpt).glob("*.safetensors")):
        tensors.update(load_file(path))
    return tensors


def merged(tiny, tmp_path, operator: Operator, a="a", b="b", *, seed=0, out="out") -> dict[str, torch.Tensor]:
    record = merge_pair(operator, tiny[a], tiny[b], tiny["base"], tmp_path / out, seed=seed, device="cpu")
    assert record["status"] == "ok", record["error"]
    return weights(tmp_path / out)


def one(entry: dict) -> Operator:
    return next(iter(load_operators([entry]).values()))


# --------------------------------------------------------------------------------------------------------------
# Known answers


def test_linear_half_half_is_the_average(tiny, tmp_path, ops):
    a, b = weights(tiny["a"]), weights(tiny["b"])
    out = merged(tiny, tmp_path, ops["linear"])
    assert set(out) == set(a)
    for name in a:
        torch.testing.assert_close(out[name], (a[name] + b[name]) / 2, rtol=0, atol=1e-6)


def test_task_arithmetic_weight_one_adds_both_task_vectors(tiny, tmp_path, ops):
    base, a, b = weights(tiny["base"]), weights(tiny["a"]), weights(tiny["b"])
    out = merged(tiny, tmp_path, ops["ta_w100"])
    for name in base:
        expected = base[name] + (a[name] - base[name]) + (b[name] - base[name])
        torch.testing.assert_close(out[name], expected, rtol=0, atol=1e-6)


def test_task_arithmetic_half_half_equals_linear(tiny, tmp_path, ops):
    # base + 0.5 tau_a + 0.5 tau_b = (a + b) / 2
    ta_half = one({"name": "ta_w050", "method": "task_arithmetic", "model_parameters": {"weight": 0.5}})
    ta = merged(tiny, tmp_path, ta_half, out="ta")
    linear = merged(tiny, tmp_path, ops["linear"], out="linear")
    for name in linear:
        torch.testing.assert_close(ta[name], linear[name], rtol=0, atol=1e-6)


def test_slerp_at_zero_gives_the_anchor(tiny, tmp_path):
    slerp0 = one({"name": "slerp_t0", "method": "slerp", "parameters": {"t": 0.0}})
    for anchor, other in (("a", "b"), ("b", "a")):
        out = merged(tiny, tmp_path, slerp0, anchor, other, out=f"{anchor}{other}")
        expected = weights(tiny[anchor])
        for name in expected:
            torch.testing.assert_close(out[name], expected[name], rtol=0, atol=1e-6)


def test_nuslerp_weights_move_toward_the_heavier_model(tiny, tmp_path, ops):
    base, a, b = weights(tiny["base"]), weights(tiny["a"]), weights(tiny["b"])
    out = merged(tiny, tmp_path, ops["nuslerp_w70"])
    name = "model.layers.0.mlp.down_proj.weight"
    tau = (out[name] - base[name]).flatten()
    tau_a, tau_b = (a[name] - base[name]).flatten(), (b[name] - base[name]).flatten()
    # nearly orthogonal noise task vectors: SLERP at t = 0.3 keeps ~sin(0.7 pi/2) of a and ~sin(0.3 pi/2) of b
    coef_a = torch.dot(tau, tau_a) / torch.dot(tau_a, tau_a)
    coef_b = torch.dot(tau, tau_b) / torch.dot(tau_b, tau_b)
    assert 0.8 < coef_a < 0.95 and 0.4 < coef_b < 0.55


# --------------------------------------------------------------------------------------------------------------
# Order and seeds


def test_symmetric_operator_gives_identical_tensors_for_both_orders(tiny, tmp_path, ops):
    for name in ("linear", "dare_ties_d50"):
        ab = merged(tiny, tmp_path, ops[name], "a", "b", seed=3, out=f"{name}_ab")
        ba = merged(tiny, tmp_path, ops[name], "b", "a", seed=3, out=f"{name}_ba")
        assert all(torch.equal(ab[key], ba[key]) for key in ab), name


def test_randomised_operator_is_deterministic_per_seed(tiny, tmp_path, ops):
    first = merged(tiny, tmp_path, ops["dare_ties_d50"], seed=0, out="s0")
    again = merged(tiny, tmp_path, ops["dare_ties_d50"], seed=0, out="s0_again")
    other = merged(tiny, tmp_path, ops["dare_ties_d50"], seed=1, out="s1")
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_seed_does_not_touch_deterministic_operators(tiny, tmp_path, ops):
    record = merge_pair(ops["ties_d50"], tiny["a"], tiny["b"], tiny["base"], tmp_path / "s7", seed=7, device="cpu")
    assert record["seed"] is None
    seven, zero = weights(tmp_path / "s7"), merged(tiny, tmp_path, ops["ties_d50"], seed=0, out="s0")
    assert all(torch.equal(seven[key], zero[key]) for key in zero)


def test_merge_leaves_the_callers_rng_alone(tiny, tmp_path, ops):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    merged(tiny, tmp_path, ops["dare_linear_d50"], seed=5)
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------------------------------------------
# Every default operator, and the record


@pytest.mark.parametrize("name", [entry["name"] for entry in (*DEFAULT_OPERATORS, *AVAILABLE_OPERATORS)])
def test_every_documented_operator_merges_the_tiny_pair(name, tiny, tmp_path, ops):
    out = tmp_path / "out"
    record = merge_pair(ops[name], tiny["a"], tiny["b"], tiny["base"], out, seed=0, device="cpu", threads=1)
    assert record["status"] == "ok", record["error"]
    assert record["error"] is None
    assert record["operator"] == name and record["method"] == ops[name].method
    assert record["wall_seconds"] > 0 and record["peak_rss_mb"] > 0
    # the stored YAML is exactly what ran, and mergekit accepts it
    text = (out / CONFIG_NAME).read_text(encoding="utf-8")
    assert text == record["config_yaml"]
    config = yaml.safe_load(text)
    assert config == ops[name].to_mergekit_config(tiny["a"], tiny["b"], tiny["base"], seed=0)
    MergeConfiguration.model_validate(config)
    assert text == yaml.safe_dump(config, sort_keys=True)
    # a complete checkpoint with the base's tokenizer and finite weights
    out_weights, base_weights = weights(out), weights(tiny["base"])
    assert {k: v.shape for k, v in out_weights.items()} == {k: v.shape for k, v in base_weights.items()}
    assert all(torch.isfinite(v).all() for v in out_weights.values())
    for file in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (out / file).is_file(), file
    assert (out / "tokenizer.json").read_bytes() == (tiny["base"] / "tokenizer.json").read_bytes()


def test_a_mixup_merge_is_the_linear_merge_at_its_seeds_beta_drawn_ratio(tiny, tmp_path, ops):
    mixup = ops["mixup_a05"]
    ratios = [mixup.mixup_weight(seed) for seed in range(3)]
    assert len(set(ratios)) == 3 and all(0 < r < 1 for r in ratios)
    got = merged(tiny, tmp_path, mixup, seed=1, out="mixup")
    linear = one(
        {
            "name": "lin",
            "method": "linear",
            "anchor_parameters": {"weight": ratios[1]},
            "other_parameters": {"weight": 1 - ratios[1]},
        }
    )
    # the symmetric Mixup lists the pair in canonical (path) order: a is first here
    assert str(tiny["a"]) < str(tiny["b"])
    expected = merged(tiny, tmp_path, linear, out="linear")
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-6)
    # another seed, another ratio, other weights
    other = merged(tiny, tmp_path, mixup, seed=2, out="mixup2")
    assert any(not torch.equal(other[name], got[name]) for name in got)


# --------------------------------------------------------------------------------------------------------------
# Failures: recorded, not raised; caller mistakes raise


def test_non_finite_merge_is_a_failed_record(tiny, tmp_path):
    # linear normalises by the weight sum: 1 + (-1) = 0 divides every tensor by zero
    broken = one(
        {
            "name": "lin_zero_sum",
            "method": "linear",
            "anchor_parameters": {"weight": 1.0},
            "other_parameters": {"weight": -1.0},
        }
    )
    record = merge_pair(broken, tiny["a"], tiny["b"], tiny["base"], tmp_path / "out", seed=0, device="cpu")
    assert record["status"] == "failed"
    assert "non-finite" in record["error"]
    assert not list((tmp_path / "out").glob("*.safetensors"))
    assert (tmp_path / "out" / CONFIG_NAME).read_text(encoding="utf-8") == record["config_yaml"]


def test_nan_in_an_expert_is_a_failed_record(tiny, tmp_path, ops):
    bad = make_expert(tiny["base"], tmp_path / "bad", seed=9)
    tensors = load_file(bad / WEIGHTS)
    tensors["model.norm.weight"][0] = float("nan")
    save_file(tensors, bad / WEIGHTS, metadata={"format": "pt"})
    record = merge_pair(ops["ta_w100"], tiny["a"], bad, tiny["base"], tmp_path / "out", seed=0, device="cpu")
    assert record["status"] == "failed"
    assert "model.norm.weight" in record["error"]


def test_mergekit_error_is_a_failed_record(tiny, tmp_path):
    # Bypass load-time validation to reach mergekit's own per-tensor check (density ± epsilon inside (0, 1)).
    della = Operator.model_construct(
        name="della_bad",
        method="della",
        parameters={},
        model_parameters={"weight": 1.0, "density": 0.5, "epsilon": 0.6},
        anchor_parameters={},
        other_parameters={},
        order_sensitive=False,
        randomised=True,
        uses_base=True,
        description="",
        reference_url=None,
    )
    record = merge_pair(della, tiny["a"], tiny["b"], tiny["base"], tmp_path / "out", seed=0, device="cpu")
    assert record["status"] == "failed"
    assert "Epsilon must be chosen" in record["error"]


def test_caller_mistakes_raise(tiny, tmp_path, ops):
    with pytest.raises(FileNotFoundError, match="b_dir"):
        merge_pair(ops["linear"], tiny["a"], tmp_path / "missing", tiny["base"], tmp_path / "out", seed=0)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        merge_pair(ops["linear"], tiny["a"], tiny["b"], tiny["base"], busy, seed=0)


# --------------------------------------------------------------------------------------------------------------
# merge_score: merge, score with lm-eval, normalise by the better parent


@pytest.fixture(scope="module")
def scored(tiny, tmp_path_factory):
    """Eval data of two skills and the experts' lm-eval records, as the expert_scores rule writes them."""
    from simmerge.catalog.skills import write_skill_data
    from simmerge.merges.scoring import score_checkpoint

    root = tmp_path_factory.mktemp("merge_score")
    data = {}
    for skill in ("n2w_fr", "rhyme_mc"):
        write_skill_data(skill, root / skill, seed=0, n_train=4, n_eval=4, n_probe=2)
        data[skill] = str(root / skill / "eval.jsonl")
    task_dir = Path(__file__).resolve().parents[2] / "config" / "tasks"
    parents = tuple(score_checkpoint(tiny[name], task_dir, data, batch_size=4, device="cpu") for name in ("a", "b"))
    return {"data": data, "task_dir": task_dir, "parents": parents}


def run_merge_score(operator, tiny, scored, b="b", **kwargs):
    from simmerge.merges.merging import merge_score

    kwargs.setdefault("seeds", [0])
    return merge_score(
        operator,
        tiny["a"],
        tiny[b] if b in tiny else b,
        tiny["base"],
        parent_scores=scored["parents"],
        task_dir=scored["task_dir"],
        data_files=scored["data"],
        batch_size=4,
        device="cpu",
        **kwargs,
    )


def test_merge_and_expert_score_records_carry_provenance_and_the_merged_weights(tiny, scored, ops, tmp_path):
    from simmerge.catalog.manifest import write_manifest
    from simmerge.core.provenance import provenance

    # local sources: the manifests are written beside, not into, the shared tiny checkpoints
    manifests = {
        name: write_manifest(tiny[name], name=name, source={"kind": "local"}, path=tmp_path / f"{name}.json")
        for name in ("a", "b", "base")
    }
    record = run_merge_score(
        ops["linear"], tiny, scored, manifests=[tmp_path / f"{n}.json" for n in ("a", "b", "base")]
    )
    assert record["checkpoints_sha256"] == {name: manifest["weights_sha256"] for name, manifest in manifests.items()}
    assert len(set(record["checkpoints_sha256"].values())) == 3
    assert record["provenance"] == provenance()
    assert all(parent["provenance"] == provenance() for parent in scored["parents"])
    assert "provenance" not in record["runs"][0]


def test_merge_score_normalises_by_the_better_parent(tiny, scored, ops):
    record = run_merge_score(ops["linear"], tiny, scored)
    assert record["status"] == "ok" and record["operator"] == "linear"
    assert record["seeds"] is None and len(record["runs"]) == 1
    assert yaml.safe_load(record["config_yaml"])["merge_method"] == "linear"
    for task, entry in record["tasks"].items():
        best = max(parent["tasks"][task]["score"] for parent in scored["parents"])
        assert entry["parent_scores"] == [parent["tasks"][task]["score"] for parent in scored["parents"]]
        assert entry["n"] == 4
        if best > 0:
            assert entry["normalised"] == pytest.approx(entry["metric"] / best)
        else:
            assert entry["normalised"] is None
    defined = [e["normalised"] for e in record["tasks"].values() if e["normalised"] is not None]
    assert record["score"] == (pytest.approx(sum(defined) / len(defined)) if defined else None)
    assert record["score_stderr"] >= 0


def test_deterministic_operator_is_merged_once_whatever_the_seeds(tiny, scored, ops):
    record = run_merge_score(ops["ta_w100"], tiny, scored, seeds=[0, 1, 2])
    assert record["seeds"] is None and [run["seed"] for run in record["runs"]] == [None]


def test_randomised_operator_label_is_the_mean_over_seeds(tiny, scored):
    # density 0.2 makes DARE's random drop large enough to change the tiny pair's outputs between seeds
    dare = one({"name": "dare_d20", "method": "dare_linear", "model_parameters": {"weight": 1.0, "density": 0.2}})
    record = run_merge_score(dare, tiny, scored, seeds=[5, 6, 7])
    assert record["seeds"] == [5, 6, 7]
    assert [run["seed"] for run in record["runs"]] == [5, 6, 7]
    for task, entry in record["tasks"].items():
        metrics = [run["tasks"][task]["metric"] for run in record["runs"]]
        assert entry["metric"] == pytest.approx(sum(metrics) / 3)
        mean = sum(metrics) / 3
        assert entry["seed_sd"] == pytest.approx((sum((m - mean) ** 2 for m in metrics) / 2) ** 0.5)
    run_scores = [run["score"] for run in record["runs"]]
    if None not in run_scores:
        assert record["score"] == pytest.approx(sum(run_scores) / 3)
    # the same seeds give the same label
    again = run_merge_score(dare, tiny, scored, seeds=[5, 6, 7])
    assert [run["tasks"] for run in again["runs"]] == [run["tasks"] for run in record["runs"]]


def test_keep_dir_holds_the_merged_checkpoint(tiny, scored, ops, tmp_path):
    kept = tmp_path / "kept" / "linear.merged"
    record = run_merge_score(ops["linear"], tiny, scored, keep_dir=kept)
    assert record["status"] == "ok"
    assert (kept / "config.json").is_file() and (kept / CONFIG_NAME).read_text() == record["config_yaml"]
    expected = merged(tiny, tmp_path, ops["linear"])
    assert weights(kept).keys() == expected.keys()
    assert all(torch.equal(weights(kept)[name], tensor) for name, tensor in expected.items())


def test_merge_score_records_a_merge_of_a_nan_expert_as_failed_without_scoring_it(tiny, scored, ops, tmp_path):
    import simmerge.merges.merging as merging

    bad = make_expert(tiny["base"], tmp_path / "nan_expert", seed=11)
    tensors = load_file(bad / WEIGHTS)
    tensors["model.layers.0.mlp.up_proj.weight"][3, 5] = float("nan")
    save_file(tensors, bad / WEIGHTS, metadata={"format": "pt"})
    record = run_merge_score(ops["ties_d50"], tiny, scored, b=bad)
    assert record["status"] == "failed" and "model.layers.0.mlp.up_proj.weight" in record["error"]
    assert record["eval_seconds"] == 0.0 and record["runs"][0]["status"] == "failed"
    assert record["score"] == merging.FAILED_MERGE_SCORE and record["score_stderr"] == 0.0
    assert all(entry["normalised"] == merging.FAILED_MERGE_SCORE for entry in record["tasks"].values())
    assert all(entry["metric"] is None for entry in record["tasks"].values())


# --------------------------------------------------------------------------------------------------------------
# A full disk while the merge is written: raised with the fix, nothing half-written kept


class _Named(dict):
    """Snakemake's named lists, as far as a workflow script reads them: attributes, ``.get`` and ``[0]``."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _disk_full_errors():
    from safetensors import SafetensorError

    # safetensors' Rust writer reports a full disk as text, not as an OSError with an errno
    rust = SafetensorError(
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
    )
    return [rust, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))]


@pytest.mark.parametrize("error", _disk_full_errors(), ids=["safetensors", "enospc", "edquot"])
def test_disk_full_during_a_merge_fails_the_job_and_keeps_only_finished_artifacts(tiny, tmp_path, monkeypatch, error):
    import runpy

    import safetensors.torch

    from simmerge.catalog.manifest import write_manifest

    results = tmp_path / "results" / "run"
    manifests = {}
    for name in ("a", "b", "base"):
        manifests[name] = results / "checkpoints" / name / "manifest.json"
        write_manifest(tiny[name], name=name, source={"kind": "local", "path": str(tiny[name])}, path=manifests[name])
    parent_scores = {}
    for name in ("a", "b"):
        parent_scores[name] = results / "scores" / "experts" / name / "n2w_fr.json"
        parent_scores[name].parent.mkdir(parents=True, exist_ok=True)
        parent_scores[name].write_text(json.dumps({"checkpoint": name, "tasks": {"n2w_fr": {"score": 0.5}}}))
    # a merge finished earlier in the same folder: must survive
    finished = results / "merges" / "a__b" / "ties_d50.json"
    finished.parent.mkdir(parents=True)
    finished.write_text('{"status": "ok"}\n')
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = _Named(
        record=str(results / "merges" / "a__b" / "linear.json"),
        config=str(results / "merges" / "a__b" / "linear.mergekit.yml"),
        merged=str(results / "merges" / "a__b" / "linear.merged"),
    )
    snakemake = SimpleNamespace(
        input=_Named(
            a=str(manifests["a"]),
            b=str(manifests["b"]),
            base=str(manifests["base"]),
            a_scores=[str(parent_scores["a"])],
            b_scores=[str(parent_scores["b"])],
            tasks=[str(REPO / "config" / "tasks" / "simmerge_n2w_fr.yaml")],
            eval=[str(tmp_path / "never_read.jsonl")],
        ),
        output=out,
        log=[str(results / "logs" / "merge_score" / "a__b" / "linear.log")],
        params=_Named(
            merge={
                "operator": default_operators()["linear"].model_dump(mode="json"),
                "seeds": [0],
                "tasks": ["n2w_fr"],
                "drift": None,  # merges.parent_drift: false
            },
            scoring={"limit": None},
        ),
        # runtime settings come from the whole config, not from params (simmerge.core.runtime)
        config={"merges": {"scratch_dir": str(scratch)}, "scoring": {"batch_size": 2}},
        wildcards=_Named(a="a", b="b", op="linear"),
        threads=1,
    )

    def full_disk(*args, **kwargs):
        raise error

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(DiskFullError) as info:
        runpy.run_path(str(REPO / "workflow_scripts" / "merge_score.py"), init_globals={"snakemake": snakemake})
    message = str(info.value)
    assert message.startswith("[Errno 28] merge 'linear of expert_a + expert_b' ran out of disk space writing ")
    assert str(scratch) in message
    assert "set merges.scratch_dir in the config to a directory with room" in message
    assert info.value.errno == errno.ENOSPC
    # nothing that looks like a result: no record, no YAML, no kept checkpoint, no scratch left behind
    assert not Path(out.record).exists() and not Path(out.config).exists() and not Path(out.merged).exists()
    assert list(scratch.iterdir()) == []
    assert sorted(p.name for p in finished.parent.iterdir()) == ["ties_d50.json"]
    assert finished.read_text() == '{"status": "ok"}\n'
    assert "ran out of disk space" in Path(snakemake.log[0]).read_text()


def test_a_merge_error_that_is_not_a_full_disk_stays_a_failed_record(tiny, tmp_path, monkeypatch, ops):
    import safetensors.torch

    def broken_writer(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(safetensors.torch, "save_file", broken_writer)
    record = merge_pair(ops["linear"], tiny["a"], tiny["b"], tiny["base"], tmp_path / "out", seed=0, device="cpu")
    assert record["status"] == "failed" and "Input/output error" in record["error"]


def test_score_merge_gives_a_failed_merge_the_failure_score_on_every_task_without_scoring(tmp_path):
    from simmerge.merges.merging import FAILED_MERGE_SCORE, score_merge

    failed = {"status": "failed", "error": "ValueError: no", "trust_remote_code": False}
    # nothing exists at these paths: a failed merge must not reach lm-eval
    scored = score_merge(
        tmp_path / "none", failed, [{"t1": 0.5}], ["t1", "t2"], task_dir=tmp_path / "tasks", data_files={}
    )
    assert scored.pop("items").empty
    assert scored == {
        "eval_seconds": 0.0,
        "load_seconds": 0.0,
        "tasks": {task: {"metric": None, "stderr": None, "normalised": FAILED_MERGE_SCORE} for task in ("t1", "t2")},
        "score": FAILED_MERGE_SCORE,
    }


def test_a_scratch_folder_without_room_for_the_merge_is_refused_before_merging(tiny, tmp_path, monkeypatch):
    import simmerge.merges.merging as merging

    def no_merge(*args, **kwargs):
        raise AssertionError("merged although the output cannot fit")

    monkeypatch.setattr(merging, "merge_pair", no_merge)
    monkeypatch.setattr(
        merging.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000)
    )
    with pytest.raises(DiskFullError) as info:
        merging.merge_score(
            default_operators()["linear"],
            tiny["a"],
            tiny["b"],
            tiny["base"],
            parent_scores=({"tasks": {"t": {"score": 0.5}}},) * 2,
            task_dir=tmp_path,
            data_files={"t": tmp_path / "never_read.jsonl"},
            seeds=[0],
            scratch_dir=tmp_path,
        )
    message = str(info.value)
    assert f"the scratch folder {tmp_path} has 0.0 MB free, but a merged checkpoint takes about" in message
    assert "Nothing was merged. Set merges.scratch_dir" in message


# --------------------------------------------------------------------------------------------------------------
# parent drift: how far a merge moved from its parents on their home-task probes (the label-free signal)


@pytest.fixture(scope="module")
def probed(tiny, tmp_path_factory):
    """Probe files of two tasks, and each expert's probe part on its home task (a: alpha, b: beta)."""
    from probe_inputs import PROMPTS, SPEC, write_probes

    from simmerge.features.probe_pass import probe_task

    root = tmp_path_factory.mktemp("drift")
    probes = write_probes(root / "probes", PROMPTS)
    parts = {}
    for name, task in (("a", "alpha"), ("b", "beta")):
        parts[name] = {task: root / f"{name}_{task}.npz"}
        probe_task(tiny[name], task, probes[task], parts[name][task], spec=SPEC, seed=3, device="cpu")
    return {"probes": probes, "parts": parts, "spec": SPEC, "seed": 3}


def test_a_parent_has_no_drift_from_itself_and_a_merge_drifts_from_both(tiny, probed, scored, ops):
    from simmerge.merges.drift import parent_drift

    own = parent_drift(
        tiny["a"], {"a": probed["parts"]["a"]}, probed["probes"], spec=probed["spec"], seed=3, device="cpu"
    )
    assert own["kl"]["a"] == pytest.approx(0.0, abs=1e-6) and own["probe_passes"] == 1
    drift = {key: probed[key] for key in ("spec", "seed")}
    drift |= {"parent_parts": probed["parts"], "probe_files": probed["probes"]}
    record = run_merge_score(ops["dare_linear_d50"], tiny, scored, seeds=[0, 1], drift=drift)
    measured = record["parent_drift"]
    assert set(measured["kl"]) == {"a", "b"} and min(measured["kl"].values()) > 1e-4
    assert measured["mean"] == pytest.approx(np.mean(list(measured["kl"].values())))
    assert measured["probe_passes"] == 2  # each parent's home task, on the first seed's merge only
    assert "parent_drift" not in run_merge_score(ops["linear"], tiny, scored)  # none measured without drift


def test_drift_against_a_parent_that_saw_other_probes_is_refused(tiny, probed):
    from probe_inputs import PROMPTS, write_probes

    from simmerge.merges.drift import parent_drift

    other = write_probes(probed["probes"]["alpha"].parent.parent / "other", {"alpha": PROMPTS["alpha"][::-1]})
    with pytest.raises(ValueError, match="saw different probe (lengths|tokens); rerun rule probe_pass for a"):
        parent_drift(tiny["b"], {"a": probed["parts"]["a"]}, other, spec=probed["spec"], seed=3, device="cpu")
