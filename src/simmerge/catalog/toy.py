"""A tiny randomly initialised Llama with a byte-level tokenizer, for unit tests and smoke runs.

The model is far too small to learn anything useful; it exists so that every stage of the workflow
(fetch, probe, merge, score) can run on a laptop CPU in seconds, on a checkpoint laid out exactly like a
real Hugging Face one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from simmerge.core.io import atomic_dir

logger = logging.getLogger(__name__)

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN)


def build_byte_tokenizer(model_max_length: int = 256):
    """Build a byte-level tokenizer that covers any UTF-8 text with 256 byte tokens.

    Ids 0, 1 and 2 are ``<s>``, ``</s>`` and ``<pad>``; byte ``b`` has id ``b + 3`` (written in the GPT-2
    byte-to-unicode alphabet). There are no merges, so every byte is one token and encoding is a pure
    function of the text. Like SmolLM2's tokenizer, it adds no BOS/EOS token when encoding.

    Parameters
    ----------
    model_max_length : int
        Longest input the tokenizer reports (the model's ``max_position_embeddings``).

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        The tokenizer, with ``bos_token``, ``eos_token`` and ``pad_token`` set.
    """
    # deferred: transformers and torch take seconds to import and only building the toy needs them
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    # The alphabet comes back as an unordered list; sort by the byte each character stands for so that
    # token ids are stable across tokenizers versions.
    byte_chars = sorted(alphabet, key=_byte_of_char)
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for char in byte_chars:
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def _byte_of_char(char: str) -> int:
    """Invert GPT-2's bytes_to_unicode for one character of the ByteLevel alphabet."""
    code = ord(char)
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    if code in printable:
        return code
    # Non-printable bytes were shifted to 256 + n, in increasing byte order.
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def build_tiny_checkpoint(
    out_dir: str | os.PathLike,
    *,
    seed: int,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 256,
) -> None:
    """Write a randomly initialised ``LlamaForCausalLM`` as a standard Hugging Face directory.

    The directory holds ``config.json``, ``generation_config.json``, ``model.safetensors`` (float32) and
    the tokenizer files of :func:`build_byte_tokenizer`. The same arguments give a byte-identical
    ``model.safetensors``. The directory is written atomically: it appears complete or not at all.

    Parameters
    ----------
    out_dir : path-like
        Directory to create; replaced if it exists.
    seed : int
        Seed of the weight initialisation. The global torch RNG state is left untouched.
    hidden_size, num_layers, num_heads : int
        Model width, depth and number of attention heads.
    num_kv_heads : int, optional
        Key/value heads (grouped-query attention); defaults to ``num_heads``.
    intermediate_size : int, optional
        MLP width; defaults to ``4 * hidden_size``.
    max_position_embeddings : int
        Longest sequence the rotary embedding is configured for.

    Raises
    ------
    ValueError
        If ``hidden_size`` is not divisible by ``num_heads`` or ``num_heads`` by ``num_kv_heads``.

    Examples
    --------
    >>> build_tiny_checkpoint("results/checkpoints/toy_base", seed=0)  # doctest: +SKIP
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    intermediate_size = 4 * hidden_size if intermediate_size is None else intermediate_size
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}")
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads={num_heads} must be divisible by num_kv_heads={num_kv_heads}")

    tokenizer = build_byte_tokenizer(model_max_length=max_position_embeddings)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    config.architectures = ["LlamaForCausalLM"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    n_params = sum(p.numel() for p in model.parameters())
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    logger.info("wrote tiny Llama (%d parameters, seed %d) to %s", n_params, seed, Path(out_dir))
