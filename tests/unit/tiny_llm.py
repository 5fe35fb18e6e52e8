"""Tiny test models shared by the unit tests of fine-tuning and scoring.

Unlike ``simmerge.catalog.toy`` (whose tokenizer adds no BOS, like SmolLM2's), this tokenizer adds a BOS token, so the
tests also cover the prompt/answer boundary with special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def make_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer, hidden-32 Llama with a byte-level tokenizer (BOS added, no merges) to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


CUSTOM_CODE = """\
from transformers import LlamaConfig, LlamaForCausalLM


class SimmergeCustomConfig(LlamaConfig):
    model_type = "simmerge_custom"


class SimmergeCustomForCausalLM(LlamaForCausalLM):
    config_class = SimmergeCustomConfig
"""

CUSTOM_AUTO_MAP = {
    "AutoConfig": "custom_llama.SimmergeCustomConfig",
    "AutoModelForCausalLM": "custom_llama.SimmergeCustomForCausalLM",
}


def add_custom_code(ckpt_dir: Path) -> Path:
    """Turn a Llama checkpoint into one transformers loads only by running its own ``custom_llama.py``.

    The weights stay Llama's, so the checkpoint stays mergeable with its source; but its ``model_type`` and
    architecture are unknown to transformers and its ``config.json`` has an ``auto_map``, as a Hub repository
    with custom modelling code does.
    """
    config = json.loads((ckpt_dir / "config.json").read_text(encoding="utf-8"))
    config.update(model_type="simmerge_custom", architectures=["SimmergeCustomForCausalLM"], auto_map=CUSTOM_AUTO_MAP)
    (ckpt_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (ckpt_dir / "custom_llama.py").write_text(CUSTOM_CODE, encoding="utf-8")
    return ckpt_dir
