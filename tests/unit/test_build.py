"""The catalog-stage builders: each publishes a checkpoint with its manifest, or fails before publishing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_llm import add_custom_code

from simmerge.catalog.build import (
    checkpoint_dir,
    finetune_checkpoint,
    local_checkpoint,
    tiny_checkpoint,
    trusts_remote_code,
)
from simmerge.catalog.manifest import PreflightError
from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.core.io import read_json, write_jsonl

TINY = {"kind": "tiny", "hidden_size": 32, "num_layers": 2, "num_heads": 4, "seed": None, "pretrain": None}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A published tiny base: results/<run>/checkpoints/base/ with its manifest."""
    out = tmp_path_factory.mktemp("results") / "checkpoints" / "base"
    tiny_checkpoint("base", TINY, out, seed=3)
    return out / "manifest.json"


@pytest.fixture
def train_file(tmp_path) -> str:
    rows = [{"id": f"t-{i}", "entity": str(i), "prompt": f"{i} doubled:", "answer": str(2 * i)} for i in range(12)]
    path = tmp_path / "train.jsonl"
    write_jsonl(rows, path)
    return str(path)


def test_tiny_base_manifest_records_source_and_files(base):
    manifest = read_json(base)
    assert manifest["name"] == "base"
    assert manifest["source"]["kind"] == "tiny" and manifest["source"]["seed"] == 3
    assert manifest["hidden_size"] == 32 and manifest["num_hidden_layers"] == 2
    assert "model.safetensors" in manifest["files"]
    assert checkpoint_dir(base) == base.parent.resolve()
    # nothing half-built is left beside the published directory
    assert [p.name for p in base.parent.parent.iterdir()] == ["base"]


def test_tiny_pretraining_changes_the_weights(tmp_path, train_file):
    plain, trained = tmp_path / "plain", tmp_path / "trained"
    tiny_checkpoint("plain", TINY, plain, seed=3)
    spec = {**TINY, "pretrain": {"steps": 3, "batch_size": 4, "lr": 1e-2, "warmup_steps": 0, "seed": None}}
    manifest = tiny_checkpoint("trained", spec, trained, seed=3, train_files=[train_file])
    assert manifest["source"]["pretrain_stats"]["steps"] == 3
    assert sorted(p.name for p in trained.iterdir()) == sorted(p.name for p in plain.iterdir())
    weights = load_file(trained / "model.safetensors")
    reference = load_file(plain / "model.safetensors")
    assert any(not torch.equal(weights[k], reference[k]) for k in weights)


def test_finetune_expert_passes_preflight_and_records_its_parent(base, train_file, tmp_path):
    out = tmp_path / "checkpoints" / "doubler"
    train = {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_steps": 0, "seed": 5, "max_length": 32}
    manifest = finetune_checkpoint(
        "doubler", train, out, parent_manifest=str(base), base_manifest=str(base), train_files=[train_file]
    )
    assert manifest["source"]["parent"] == "base"
    assert manifest["source"]["trust_remote_code"] is False  # inherited from the parent's entry
    assert manifest["source"]["parent_sha256"] == {
        "model.safetensors": read_json(base)["files"]["model.safetensors"]["sha256"]
    }
    assert read_json(out / "manifest.json") == manifest


def test_local_checkpoint_is_recorded_without_writing_into_it(base, tmp_path):
    mine = tmp_path / "my_expert"
    build_tiny_checkpoint(mine, seed=11, hidden_size=32, num_layers=2, num_heads=4)
    before = sorted(p.name for p in mine.iterdir())
    manifest_path = tmp_path / "results" / "checkpoints" / "mine" / "manifest.json"
    local_checkpoint(
        "mine", {"kind": "local", "path": str(mine)}, manifest_path, base_manifest=str(base), workdir=tmp_path
    )
    assert sorted(p.name for p in mine.iterdir()) == before
    assert read_json(manifest_path)["source"]["path"] == str(mine)
    assert checkpoint_dir(manifest_path) == mine.resolve()


def test_local_checkpoint_with_another_hidden_size_is_refused(base, tmp_path):
    wide = tmp_path / "wide"
    build_tiny_checkpoint(wide, seed=11, hidden_size=64, num_layers=2, num_heads=4)
    manifest_path = tmp_path / "results" / "wide" / "manifest.json"
    with pytest.raises(PreflightError, match=r"checkpoint 'wide'.*hidden_size.*64.*32"):
        local_checkpoint("wide", {"kind": "local", "path": str(wide)}, manifest_path, base_manifest=str(base))
    assert not manifest_path.exists()


def test_expert_with_nan_weights_is_not_published(base, tmp_path):
    broken = tmp_path / "broken"
    build_tiny_checkpoint(broken, seed=11, hidden_size=32, num_layers=2, num_heads=4)
    tensors = load_file(broken / "model.safetensors")
    name = sorted(tensors)[0]
    tensors[name][0] = float("nan")
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    manifest_path = tmp_path / "results" / "broken" / "manifest.json"
    with pytest.raises(PreflightError, match=rf"checkpoint 'broken'.*{name}"):
        local_checkpoint("broken", {"kind": "local", "path": str(broken)}, manifest_path, base_manifest=str(base))
    assert not manifest_path.exists()


def test_missing_weights_directory_is_reported_with_the_fix(base, tmp_path):
    manifest = read_json(base)
    manifest["source"] = {"kind": "local", "path": str(tmp_path / "gone")}
    stale = tmp_path / "manifest.json"
    stale.write_text(json.dumps(manifest))
    with pytest.raises(PreflightError, match="delete the manifest to rebuild"):
        checkpoint_dir(stale)


def custom_code_checkpoint(path: Path) -> Path:
    build_tiny_checkpoint(path, seed=11, hidden_size=32, num_layers=2, num_heads=4)
    return add_custom_code(path)


@pytest.mark.parametrize("role", ["base", "expert"])
def test_custom_code_checkpoint_is_refused_unless_its_entry_trusts_it(role, base, tmp_path):
    custom = custom_code_checkpoint(tmp_path / "custom")
    manifest_path = tmp_path / "results" / "custom" / "manifest.json"
    base_manifest = str(base) if role == "expert" else None
    source = {"kind": "local", "path": str(custom), "trust_remote_code": False}
    with pytest.raises(PreflightError, match=r"checkpoint 'custom'.*trust_remote_code.*custom_llama\."):
        local_checkpoint("custom", source, manifest_path, base_manifest=base_manifest)
    assert not manifest_path.exists()


def test_trusted_custom_code_base_is_published_with_its_permission(tmp_path):
    custom = custom_code_checkpoint(tmp_path / "custom")
    manifest_path = tmp_path / "results" / "custom" / "manifest.json"
    source = {"kind": "local", "path": str(custom), "trust_remote_code": True}
    local_checkpoint("custom", source, manifest_path, base_manifest=None)
    assert trusts_remote_code(manifest_path)


def test_base_whose_config_describes_another_model_is_refused_before_its_manifest(tmp_path):
    # the tester's case: config.json copied from the base, tensors of a smaller model
    small, big = tmp_path / "small", tmp_path / "big"
    build_tiny_checkpoint(small, seed=11, hidden_size=32, num_layers=1, num_heads=4)
    build_tiny_checkpoint(big, seed=11, hidden_size=64, num_layers=2, num_heads=4)
    shutil.copy(big / "config.json", small / "config.json")
    manifest_path = tmp_path / "results" / "base" / "manifest.json"
    with pytest.raises(PreflightError) as info:
        local_checkpoint("base", {"kind": "local", "path": str(small)}, manifest_path, base_manifest=None)
    message = str(info.value)
    assert message.startswith(f"checkpoint 'base' ({small}): config.json vs weights: ")
    assert "tensors of the model config.json describes (LlamaForCausalLM) differ from the weights" in message
    assert "model.embed_tokens.weight: shape [259, 32] vs [259, 64] in config.json" in message
    assert "model.layers.0.input_layernorm.weight: shape [32] vs [64] in config.json" in message
    assert "21 of 21 tensors" in message and "; ... and 16 more." in message  # 9 of layer 1 missing
    assert "put the weights' own config.json beside them" in message
    assert not manifest_path.exists()


def test_base_with_a_nan_weight_is_refused_naming_the_tensor(tmp_path):
    broken = tmp_path / "broken"
    build_tiny_checkpoint(broken, seed=11, hidden_size=32, num_layers=2, num_heads=4)
    tensors = load_file(broken / "model.safetensors")
    tensors["model.norm.weight"][3] = float("nan")
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    manifest_path = tmp_path / "results" / "base" / "manifest.json"
    with pytest.raises(PreflightError) as info:
        local_checkpoint("base", {"kind": "local", "path": str(broken)}, manifest_path, base_manifest=None)
    assert str(info.value).startswith(
        f"checkpoint 'base' ({broken / 'model.safetensors'}): tensor 'model.norm.weight': holds 1 non-finite "
        "values (1 NaN, 0 Inf). the checkpoint is broken"
    )
    assert not manifest_path.exists()


def test_expert_with_an_extra_tensor_is_refused_naming_it(base, tmp_path):
    extra = tmp_path / "extra"
    build_tiny_checkpoint(extra, seed=11, hidden_size=32, num_layers=2, num_heads=4)
    tensors = load_file(extra / "model.safetensors")
    tensors["model.adapter.weight"] = torch.zeros(4, 32)
    save_file(tensors, extra / "model.safetensors", metadata={"format": "pt"})
    manifest_path = tmp_path / "results" / "extra" / "manifest.json"
    with pytest.raises(PreflightError) as info:
        local_checkpoint("extra", {"kind": "local", "path": str(extra)}, manifest_path, base_manifest=str(base))
    assert str(info.value) == (
        f"checkpoint 'extra': 1 of {len(tensors)} tensors differ from the base 'base': model.adapter.weight: not in "
        "the base ([4, 32]). Every expert must share the base's architecture; remove 'extra' from "
        "catalog.experts or point it at a checkpoint fine-tuned from 'base'."
    )
    assert not manifest_path.exists()


def test_expert_with_a_swapped_token_is_refused_naming_the_ids(base, tmp_path):
    swapped = tmp_path / "swapped"
    build_tiny_checkpoint(swapped, seed=11, hidden_size=32, num_layers=2, num_heads=4)
    tokenizer = json.loads((swapped / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]  # same size, two tokens trade ids
    (swapped / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    manifest_path = tmp_path / "results" / "swapped" / "manifest.json"
    with pytest.raises(PreflightError) as info:
        local_checkpoint("swapped", {"kind": "local", "path": str(swapped)}, manifest_path, base_manifest=str(base))
    a, b = vocab["b"], vocab["a"]  # the base's ids of 'a' and 'b'
    assert str(info.value) == (
        "checkpoint 'swapped': tokenizer differs from the base 'base': 259 tokens vs 259 tokens in the base; "
        f"2 ids differ, first id {a} is 'b' vs 'a', id {b} is 'a' vs 'b'. A merge uses one tokenizer, so every "
        "expert must map the same tokens to the same ids; remove 'swapped' from catalog.experts or point it at a "
        "checkpoint that kept the base's tokenizer."
    )
    assert not manifest_path.exists()


def test_an_old_base_manifest_is_completed_from_the_base_directory(base, tmp_path, caplog):
    old = read_json(base)
    for key in ("tensors", "tokenizer"):
        del old[key]
    old_path = tmp_path / "old" / "manifest.json"
    old_path.parent.mkdir()
    old_path.write_text(json.dumps(old))
    old["source"] = {**old["source"], "kind": "local", "path": str(base.parent)}
    old_path.write_text(json.dumps(old))
    extra = tmp_path / "extra"
    build_tiny_checkpoint(extra, seed=11, hidden_size=32, num_layers=2, num_heads=4)
    tensors = load_file(extra / "model.safetensors")
    tensors["model.adapter.weight"] = torch.zeros(4, 32)
    save_file(tensors, extra / "model.safetensors", metadata={"format": "pt"})
    with caplog.at_level("INFO"), pytest.raises(PreflightError, match="model.adapter.weight: not in the base"):
        local_checkpoint("extra", {"kind": "local", "path": str(extra)}, tmp_path / "m.json", base_manifest=old_path)
    assert "the manifest of the base 'base' predates tensors and tokenizers" in caplog.text
