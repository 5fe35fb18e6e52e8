"""Tests of simmerge.catalog.manifest: manifests and the pre-flight checks, with known answers for every error."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_llm import CUSTOM_AUTO_MAP, add_custom_code

from simmerge.catalog.manifest import (
    PreflightError,
    check_compatible,
    check_config_matches_tensors,
    check_finite,
    check_remote_code,
    check_tokenizer,
    checkpoints_sha256,
    inspect_checkpoint,
    read_safetensors_header,
    read_vocabulary,
    tokenizer_fingerprint,
    write_manifest,
)
from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.core.io import sha256_file
from simmerge.core.provenance import provenance, weights_sha256

# Parameters of the default tiny Llama: embeddings and head 259 x 64 each, per layer 4 x 64 x 64 attention
# + 3 x 64 x 256 MLP + 2 x 64 norms, plus the final norm.
TINY_PARAMS = 2 * 259 * 64 + 2 * (4 * 64 * 64 + 3 * 64 * 256 + 2 * 64) + 64


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("manifest") / "base"
    build_tiny_checkpoint(out, seed=0)
    return out


@pytest.fixture
def ckpt(base_dir, tmp_path):
    """A private copy of the tiny checkpoint, free to break."""
    return shutil.copytree(base_dir, tmp_path / "n2w_fr")


def test_inspect_reads_the_facts_without_loading(ckpt):
    facts = inspect_checkpoint(ckpt, name="n2w_fr")
    tensors, tokenizer = facts.pop("tensors"), facts.pop("tokenizer")
    assert facts == {
        "name": "n2w_fr",
        "architecture": "LlamaForCausalLM",
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 259,
        "dtype": "float32",
        "tensor_dtypes": {"float32": 21},
        "tie_word_embeddings": False,
        "parameter_count": TINY_PARAMS,
        "weight_files": ["model.safetensors"],
    }
    assert len(tensors) == 21 and list(tensors) == sorted(tensors)
    assert tensors["model.embed_tokens.weight"] == ["float32", [259, 64]]
    assert tensors["model.layers.0.mlp.up_proj.weight"] == ["float32", [256, 64]]
    assert sum(math.prod(shape) for _, shape in tensors.values()) == TINY_PARAMS
    assert tokenizer == {"file": "tokenizer.json", "vocab_size": 259, "sha256": tokenizer["sha256"]}
    assert not (ckpt / "manifest.json").exists()


def test_parameter_count_matches_the_model(ckpt):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt)
    assert inspect_checkpoint(ckpt, name="x")["parameter_count"] == sum(p.numel() for p in model.parameters())


def test_write_manifest_hashes_every_file_and_is_deterministic(ckpt):
    source = {"kind": "toy", "seed": 0, "parent": None}
    manifest = write_manifest(ckpt, name="n2w_fr", source=source)
    first = (ckpt / "manifest.json").read_bytes()
    assert json.loads(first) == manifest
    assert manifest["source"] == source
    assert manifest["manifest_version"] == 2
    files = {p.name for p in ckpt.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == files
    weights = ckpt / "model.safetensors"
    assert manifest["files"]["model.safetensors"] == {
        "sha256": sha256_file(weights),
        "bytes": weights.stat().st_size,
    }
    assert manifest["parameter_count"] == TINY_PARAMS
    assert manifest["weights_sha256"] == weights_sha256({**manifest, "weights_sha256": None})
    assert manifest["provenance"] == provenance()
    # A second write (now with manifest.json present) gives the same bytes: no timestamps, manifest excluded.
    write_manifest(ckpt, name="n2w_fr", source=dict(source))
    assert (ckpt / "manifest.json").read_bytes() == first
    assert list(json.loads(first)) == sorted(json.loads(first))


def test_the_weights_digest_changes_with_the_weights_only_and_records_cite_it_by_name(ckpt, tmp_path):
    first = write_manifest(ckpt, name="a", source={"kind": "toy"}, path=tmp_path / "a.json")
    (ckpt / "README.md").write_text("not a weight\n")
    assert write_manifest(ckpt, name="a", source={"kind": "toy"})["weights_sha256"] == first["weights_sha256"]
    tensors = load_file(ckpt / "model.safetensors")
    save_file({k: v + 1 for k, v in tensors.items()}, ckpt / "model.safetensors", metadata={"format": "pt"})
    rebuilt = write_manifest(ckpt, name="a", source={"kind": "toy"})
    assert rebuilt["weights_sha256"] != first["weights_sha256"]
    assert checkpoints_sha256(tmp_path / "a.json", ckpt / "manifest.json") == {"a": rebuilt["weights_sha256"]}
    write_manifest(ckpt, name="b", source={"kind": "toy"})
    assert checkpoints_sha256(tmp_path / "a.json", ckpt / "manifest.json") == {
        "a": first["weights_sha256"],
        "b": rebuilt["weights_sha256"],
    }


def test_sharded_checkpoint_counts_the_indexed_shards(ckpt):
    tensors = load_file(ckpt / "model.safetensors")
    names = sorted(tensors)
    half = len(names) // 2
    shards = {
        "model-00001-of-00002.safetensors": names[:half],
        "model-00002-of-00002.safetensors": names[half:],
    }
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, ckpt / shard, metadata={"format": "pt"})
    (ckpt / "model.safetensors").unlink()
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    facts = inspect_checkpoint(ckpt, name="sharded")
    assert facts["parameter_count"] == TINY_PARAMS
    assert facts["weight_files"] == sorted(shards)
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(PreflightError, match=r"names shard\(s\) that are missing: model-00002-of-00002"):
        inspect_checkpoint(ckpt, name="sharded")


def test_dtype_and_tying_fall_back_to_the_tensors(ckpt):
    config = json.loads((ckpt / "config.json").read_text())
    del config["dtype"], config["tie_word_embeddings"]
    (ckpt / "config.json").write_text(json.dumps(config))
    facts = inspect_checkpoint(ckpt, name="x")
    assert facts["dtype"] == "float32"
    assert facts["tie_word_embeddings"] is False  # lm_head.weight is stored


def test_gpt2_style_config_keys_are_understood(ckpt):
    config = json.loads((ckpt / "config.json").read_text())
    for old, new in (
        ("hidden_size", "n_embd"),
        ("num_hidden_layers", "n_layer"),
        ("num_attention_heads", "n_head"),
    ):
        config[new] = config.pop(old)
    (ckpt / "config.json").write_text(json.dumps(config))
    facts = inspect_checkpoint(ckpt, name="x")
    assert (facts["hidden_size"], facts["num_hidden_layers"], facts["num_attention_heads"]) == (64, 2, 4)


def _message(ckpt, name="n2w_fr"):
    with pytest.raises(PreflightError) as info:
        inspect_checkpoint(ckpt, name=name)
    return str(info.value)


def test_missing_directory(tmp_path):
    path = tmp_path / "nowhere"
    assert _message(path) == (
        f"checkpoint 'n2w_fr' ({path}): directory: does not exist. "
        "build or fetch the checkpoint first, or fix its path in the catalog"
    )


def test_missing_config(ckpt):
    (ckpt / "config.json").unlink()
    assert _message(ckpt) == (
        f"checkpoint 'n2w_fr' ({ckpt / 'config.json'}): config.json: is missing. "
        "a Hugging Face checkpoint needs its config.json; rebuild or re-fetch the checkpoint"
    )


def test_unparsable_config(ckpt):
    (ckpt / "config.json").write_text('{"architectures": ["LlamaForCausalLM"],')
    message = _message(ckpt)
    assert message.startswith(f"checkpoint 'n2w_fr' ({ckpt / 'config.json'}): config.json: is not valid JSON (")
    assert message.endswith("). rebuild or re-fetch the checkpoint")


def test_config_without_architectures(ckpt):
    config = json.loads((ckpt / "config.json").read_text())
    del config["architectures"]
    (ckpt / "config.json").write_text(json.dumps(config))
    assert _message(ckpt) == (
        f"checkpoint 'n2w_fr' ({ckpt / 'config.json'}): architectures: is None, expected a list like "
        "['LlamaForCausalLM']. mergekit picks its architecture from this key; add it to config.json"
    )


def test_no_weights(ckpt):
    (ckpt / "model.safetensors").unlink()
    assert _message(ckpt) == (
        f"checkpoint 'n2w_fr' ({ckpt}): weights: no *.safetensors file. "
        "the checkpoint is incomplete; rebuild or re-fetch it"
    )


def test_pickle_only_checkpoint_is_refused(ckpt):
    (ckpt / "model.safetensors").rename(ckpt / "pytorch_model.bin")
    (ckpt / "training_args.pt").write_bytes(b"\x80\x04")
    message = _message(ckpt)
    assert message.startswith(
        f"checkpoint 'n2w_fr' ({ckpt}): weights: no *.safetensors file, only pickle weights "
        "(pytorch_model.bin, training_args.pt). pickle checkpoints are refused; convert to safetensors"
    )


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (lambda raw: raw[:5], "file is 5 bytes, too short for a header"),
        (lambda raw: (10**12).to_bytes(8, "little") + raw[8:], "header length 1000000000000 does not fit a"),
        (lambda raw: raw[:8] + b"#" + raw[9:], "header is not valid JSON"),
        (lambda raw: raw[: len(raw) // 2], "lies outside the"),
    ],
    ids=["truncated-prefix", "huge-length", "not-json", "truncated-data"],
)
def test_corrupt_safetensors_header(ckpt, corrupt, problem):
    weights = ckpt / "model.safetensors"
    weights.write_bytes(corrupt(weights.read_bytes()))
    message = _message(ckpt)
    assert message.startswith(f"checkpoint 'n2w_fr' ({weights}): safetensors header: ")
    assert problem in message
    assert message.endswith("the file is corrupt or truncated; rebuild or re-fetch the checkpoint")


def test_header_reader_agrees_with_safetensors(ckpt):
    header = read_safetensors_header(ckpt / "model.safetensors")
    tensors = load_file(ckpt / "model.safetensors")
    assert {k: list(v.shape) for k, v in tensors.items()} == {k: v["shape"] for k, v in header.items()}
    assert {v["dtype"] for v in header.values()} == {"F32"}


def test_compatible_checkpoints_pass(base_dir, tmp_path):
    build_tiny_checkpoint(tmp_path / "expert", seed=1)
    base = inspect_checkpoint(base_dir, name="base")
    check_compatible(inspect_checkpoint(tmp_path / "expert", name="expert"), base, name="expert")


def test_incompatible_hidden_size_names_expert_field_values_and_fix(ckpt, tmp_path):
    build_tiny_checkpoint(tmp_path / "wide", seed=1, hidden_size=32)
    base = write_manifest(ckpt, name="base", source={"kind": "toy"})
    expert = inspect_checkpoint(tmp_path / "wide", name="rhyme_mc")
    with pytest.raises(PreflightError) as info:
        check_compatible(expert, base, name="rhyme_mc")
    assert str(info.value) == (
        "checkpoint 'rhyme_mc': hidden_size is 32 but the base 'base' has 64. Every expert must share the "
        "base's architecture; remove 'rhyme_mc' from catalog.experts or point it at a checkpoint "
        "fine-tuned from 'base'."
    )


def test_incompatible_lists_every_differing_field():
    base = {"name": "base", "architecture": "LlamaForCausalLM", "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "vocab_size": 259}  # fmt: skip
    expert = dict(base, architecture="MistralForCausalLM", num_hidden_layers=3, vocab_size=300)
    with pytest.raises(PreflightError) as info:
        check_compatible(expert, base, name="x")
    message = str(info.value)
    assert "architecture is 'MistralForCausalLM' but the base 'base' has 'LlamaForCausalLM'" in message
    assert "num_hidden_layers is 3 but the base 'base' has 2" in message
    assert "vocab_size is 300 but the base 'base' has 259" in message
    assert "hidden_size" not in message


def test_finite_checkpoint_passes(ckpt):
    check_finite(ckpt, name="n2w_fr")


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_tensor_is_named(ckpt, bad_value):
    weights = ckpt / "model.safetensors"
    tensors = load_file(weights)
    tensors["model.layers.1.mlp.up_proj.weight"][3, 5] = bad_value
    tensors["model.layers.1.mlp.down_proj.weight"][0, 0] = bad_value  # sorts first: reported
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(PreflightError) as info:
        check_finite(ckpt, name="n2w_fr")
    n_nan, n_inf = (1, 0) if torch.isnan(torch.tensor(bad_value)) else (0, 1)
    assert str(info.value) == (
        f"checkpoint 'n2w_fr' ({weights}): tensor 'model.layers.1.mlp.down_proj.weight': holds 1 "
        f"non-finite values ({n_nan} NaN, {n_inf} Inf). the checkpoint is broken (diverged training or a "
        "bad conversion); rebuild it or remove it from the catalog"
    )


def test_check_finite_refuses_pickle_only(ckpt):
    (ckpt / "model.safetensors").rename(ckpt / "pytorch_model.bin")
    with pytest.raises(PreflightError, match=re.escape("pickle checkpoints are refused")):
        check_finite(ckpt, name="n2w_fr")


def test_native_checkpoint_needs_no_custom_code(ckpt):
    assert check_remote_code(ckpt, name="n2w_fr", trust_remote_code=False) == []


def test_custom_code_checkpoint_is_refused_naming_the_classes_and_the_fix(ckpt):
    add_custom_code(ckpt)
    with pytest.raises(PreflightError) as info:
        check_remote_code(ckpt, name="n2w_fr", trust_remote_code=False)
    message = str(info.value)
    assert message.startswith(
        f"checkpoint 'n2w_fr' ({ckpt / 'config.json'}): trust_remote_code: loading this checkpoint would run "
        "Python code shipped with it: auto_map names custom classes ("
    )
    for key, value in CUSTOM_AUTO_MAP.items():
        assert f"{key} -> {value}" in message
    assert "model_type 'simmerge_custom' is not a transformers model type" in message
    assert "architectures ['SimmergeCustomForCausalLM'] are not transformers classes" in message
    assert "Set `trust_remote_code: true` in the source of catalog entry 'n2w_fr'" in message


def test_trusted_custom_code_checkpoint_passes_with_a_warning(ckpt, caplog):
    add_custom_code(ckpt)
    reasons = check_remote_code(ckpt, name="n2w_fr", trust_remote_code=True)
    assert len(reasons) == 3
    assert "runs its own modelling code" in caplog.text


def test_unknown_model_type_alone_needs_custom_code(ckpt):
    # No auto_map, but transformers has no class for this type: it could only load with the repository's code.
    config = json.loads((ckpt / "config.json").read_text())
    config["model_type"] = "brand_new_arch"
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(PreflightError, match="model_type 'brand_new_arch' is not a transformers model type"):
        check_remote_code(ckpt, name="x", trust_remote_code=False)


def _facts(ckpt, name):
    return inspect_checkpoint(ckpt, name=name)


def _edit_tensors(ckpt, edit):
    weights = ckpt / "model.safetensors"
    tensors = load_file(weights)
    edit(tensors)
    save_file(tensors, weights, metadata={"format": "pt"})


FIX = (
    "Every expert must share the base's architecture; remove 'x' from catalog.experts or point it at a checkpoint "
    "fine-tuned from 'base'."
)


def test_a_shape_mismatch_in_one_tensor_is_named(base_dir, ckpt):
    _edit_tensors(ckpt, lambda t: t.update({"model.layers.1.mlp.up_proj.weight": torch.zeros(128, 64)}))
    with pytest.raises(PreflightError) as info:
        check_compatible(_facts(ckpt, "x"), _facts(base_dir, "base"), name="x")
    assert str(info.value) == (
        "checkpoint 'x': 1 of 21 tensors differ from the base 'base': model.layers.1.mlp.up_proj.weight: shape "
        f"[128, 64] vs [256, 64] in the base. {FIX}"
    )
    # the same checkpoint on its own: its config.json describes other shapes than its weights
    with pytest.raises(PreflightError, match=re.escape("1 of 21 tensors of the model config.json describes")):
        check_config_matches_tensors(ckpt, _facts(ckpt, "x"), name="x")


def test_a_missing_tensor_is_named(base_dir, ckpt):
    _edit_tensors(ckpt, lambda t: t.pop("model.layers.0.self_attn.k_proj.weight"))
    with pytest.raises(PreflightError) as info:
        check_compatible(_facts(ckpt, "x"), _facts(base_dir, "base"), name="x")
    assert str(info.value) == (
        "checkpoint 'x': 1 of 21 tensors differ from the base 'base': model.layers.0.self_attn.k_proj.weight: "
        f"missing (the base has [64, 64]). {FIX}"
    )


def test_a_float_dtype_may_differ_with_a_warning_an_integer_one_may_not(base_dir, ckpt, caplog):
    _edit_tensors(ckpt, lambda t: t.update({k: v.to(torch.bfloat16) for k, v in t.items()}))
    with caplog.at_level("WARNING"):
        check_compatible(_facts(ckpt, "x"), _facts(base_dir, "base"), name="x")
    assert "21 tensors have another floating-point dtype than the base 'base' (21 bfloat16 vs float32)" in caplog.text
    _edit_tensors(ckpt, lambda t: t.update({"model.norm.weight": torch.zeros(64, dtype=torch.int8)}))
    with pytest.raises(PreflightError, match=re.escape("model.norm.weight: dtype int8 vs float32 in the base")):
        check_compatible(_facts(ckpt, "x"), _facts(base_dir, "base"), name="x")


def test_tied_embeddings_must_match_the_base(base_dir, ckpt):
    _edit_tensors(ckpt, lambda t: t.pop("lm_head.weight"))
    config = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    config["tie_word_embeddings"] = True
    (ckpt / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(PreflightError) as info:
        check_compatible(_facts(ckpt, "x"), _facts(base_dir, "base"), name="x")
    assert str(info.value) == f"checkpoint 'x': tie_word_embeddings is True but the base 'base' has False. {FIX}"
    check_config_matches_tensors(ckpt, _facts(ckpt, "x"), name="x")  # consistent on its own: tied, no lm_head


def test_an_old_base_manifest_without_tensors_is_compared_on_its_fields(base_dir, ckpt, caplog):
    _edit_tensors(ckpt, lambda t: t.pop("model.norm.weight"))
    old = {k: v for k, v in _facts(base_dir, "base").items() if k not in ("tensors", "tokenizer")}
    with caplog.at_level("WARNING"):
        check_compatible(_facts(ckpt, "x"), old, name="x")
        check_tokenizer(_facts(ckpt, "x"), old, name="x")
    assert "the manifest of 'base' records no tensors" in caplog.text
    assert "the manifest of 'base' records no tokenizer" in caplog.text


def test_matching_checkpoints_pass_every_check(base_dir, tmp_path):
    build_tiny_checkpoint(tmp_path / "expert", seed=1)
    expert, base = _facts(tmp_path / "expert", "expert"), _facts(base_dir, "base")
    check_config_matches_tensors(tmp_path / "expert", expert, name="expert")
    check_compatible(expert, base, name="expert")
    check_tokenizer(expert, base, name="expert", expert_dir=tmp_path / "expert", base_dir=base_dir)
    assert expert["tokenizer"] == base["tokenizer"]


def test_the_tokenizer_fingerprint_is_the_vocabulary_not_the_file(ckpt):
    before = tokenizer_fingerprint(ckpt)
    tokenizer = json.loads((ckpt / "tokenizer.json").read_text(encoding="utf-8"))
    (ckpt / "tokenizer.json").write_text(json.dumps(tokenizer, indent=4, sort_keys=True), encoding="utf-8")
    assert tokenizer_fingerprint(ckpt) == before
    vocab = {**tokenizer["model"]["vocab"], **{t["content"]: t["id"] for t in tokenizer["added_tokens"]}}
    assert read_vocabulary(ckpt) == ("tokenizer.json", vocab)
    # a slow tokenizer's vocab.json gives the same digest; a sentencepiece model is digested as a file
    (ckpt / "tokenizer.json").unlink()
    (ckpt / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    assert tokenizer_fingerprint(ckpt) == {**before, "file": "vocab.json"}
    (ckpt / "vocab.json").unlink()
    (ckpt / "tokenizer.model").write_bytes(b"\x0a\x03abc")
    assert tokenizer_fingerprint(ckpt) == {
        "file": "tokenizer.model",
        "vocab_size": None,
        "sha256": sha256_file(ckpt / "tokenizer.model"),
    }
    (ckpt / "tokenizer.model").unlink()
    assert tokenizer_fingerprint(ckpt) is None


def test_an_expert_without_a_tokenizer_is_refused(base_dir, ckpt):
    (ckpt / "tokenizer.json").unlink()
    with pytest.raises(PreflightError) as info:
        check_tokenizer(_facts(ckpt, "x"), _facts(base_dir, "base"), name="x")
    assert str(info.value).startswith(
        "checkpoint 'x': tokenizer differs from the base 'base': no tokenizer files vs 259 tokens in the base. "
    )


def test_manifest_size_grows_by_the_tensor_list_only(ckpt):
    manifest = write_manifest(ckpt, name="n2w_fr", source={"kind": "toy"})
    # about 70 bytes a tensor: ~20 KB for SmolLM2-135M's 272 tensors
    assert len(json.dumps(manifest["tensors"], indent=2)) < 21 * 120
