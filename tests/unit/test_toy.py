"""Tests of simmerge.catalog.toy: the tiny smoke-test Llama and its byte-level tokenizer."""

from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from simmerge.catalog.toy import build_byte_tokenizer, build_tiny_checkpoint
from simmerge.core.io import sha256_file

TEXTS = [
    "347 in French words: trois cent quarante-sept",
    "Allemagne",
    "🍔 is called hamburger",
    "Ça coûte 12,50 € — très cher!\n\tnaïve  spacing ",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "tiny"
    build_tiny_checkpoint(out, seed=0)
    return out


def test_writes_a_standard_hf_directory(tiny):
    names = {p.name for p in tiny.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "tokenizer_config.json" in names
    config = json.loads((tiny / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["hidden_size"] == 64
    assert config["num_hidden_layers"] == 2
    assert config["num_attention_heads"] == 4
    assert config["num_key_value_heads"] == 4
    assert config["intermediate_size"] == 256
    assert config["vocab_size"] == 259
    assert config["tie_word_embeddings"] is False
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (0, 1, 2)


def test_weights_are_float32_and_untied(tiny):
    with safe_open(tiny / "model.safetensors", framework="pt") as handle:
        keys = set(handle.keys())
        dtypes = {handle.get_slice(k).get_dtype() for k in keys}
    assert dtypes == {"F32"}
    assert {"lm_head.weight", "model.embed_tokens.weight"} <= keys


def test_same_seed_gives_byte_identical_weights(tiny, tmp_path):
    build_tiny_checkpoint(tmp_path / "again", seed=0)
    build_tiny_checkpoint(tmp_path / "other", seed=1)
    reference = sha256_file(tiny / "model.safetensors")
    assert sha256_file(tmp_path / "again" / "model.safetensors") == reference
    assert sha256_file(tmp_path / "other" / "model.safetensors") != reference


def test_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_checkpoint(tmp_path / "m", seed=7)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_round_trips_any_utf8(tiny, text):
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    ids = tokenizer(text)["input_ids"]
    assert len(ids) == len(text.encode("utf-8"))  # one token per byte, no BOS/EOS added
    assert tokenizer.decode(ids) == text


def test_tokenizer_ids_are_byte_plus_three_and_specials_are_set(tiny):
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    assert tokenizer("A\n")["input_ids"] == [ord("A") + 3, ord("\n") + 3]
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1, 2)
    assert len(tokenizer) == 259
    assert tokenizer.decode([0, ord("x") + 3, 1], skip_special_tokens=True) == "x"


def test_byte_tokenizer_is_deterministic():
    assert build_byte_tokenizer().get_vocab() == build_byte_tokenizer().get_vocab()


def test_model_loads_and_generates(tiny):
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.dtype == torch.float32
    batch = tokenizer(["Allemagne", "🍔"], return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)
    assert isinstance(tokenizer.decode(out[0]), str)


def test_grouped_query_attention_and_custom_sizes(tmp_path):
    build_tiny_checkpoint(
        tmp_path / "gqa",
        seed=3,
        hidden_size=32,
        num_layers=1,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=48,
    )
    config = json.loads((tmp_path / "gqa" / "config.json").read_text())
    assert (config["hidden_size"], config["num_key_value_heads"], config["intermediate_size"]) == (32, 2, 48)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "gqa")
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (16, 32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_size": 30, "num_heads": 4}, "hidden_size=30 must be divisible by num_heads=4"),
        ({"num_heads": 4, "num_kv_heads": 3}, "num_heads=4 must be divisible by num_kv_heads=3"),
    ],
)
def test_rejects_inconsistent_head_counts(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_tiny_checkpoint(tmp_path / "bad", seed=0, **kwargs)
    assert not (tmp_path / "bad").exists()


def test_build_is_fast(tmp_path):
    start = time.perf_counter()
    build_tiny_checkpoint(tmp_path / "fast", seed=0)
    assert time.perf_counter() - start < 2.0
