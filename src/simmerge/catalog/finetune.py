"""Full fine-tuning of a causal LM on prompt → answer rows: how the built-in experts are made.

The recipe is the one the built-in experts were measured with: fp32, AdamW, linear warm-up then
linear decay to 0, gradient clipping, loss on the answer tokens only, text ``"{prompt} {answer}\\n"`` with no
chat template.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from simmerge.core.device import resolve_device, set_threads
from simmerge.core.io import atomic_dir, read_jsonl

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
LOG_EVERY = 10

LossOn = Literal["answer", "all"]


@dataclass(frozen=True)
class Example:
    """One tokenised training example.

    Attributes
    ----------
    input_ids : tuple of int
        Prompt ids (with BOS if the tokenizer adds one) followed by completion ids.
    labels : tuple of int
        Same length as ``input_ids``; ``-100`` where no loss is taken.
    """

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]


def completion_text(answer: str, delimiter: str = " ") -> str:
    """Return the completion the model learns after a prompt: ``delimiter + answer + "\\n"``.

    The delimiter is the one lm-eval puts between context and continuation (a task's ``target_delimiter``, " " by
    default), so the model learns the text it is scored on.
    """
    return f"{delimiter}{answer}\n"


def encode_example(
    tokenizer: Any,
    prompt: str,
    answer: str,
    *,
    max_length: int = 64,
    loss_on: LossOn = "answer",
    delimiter: str = " ",
) -> tuple[Example, bool]:
    """Tokenise one prompt → answer pair.

    The prompt and the completion are tokenised separately and their ids concatenated, so the boundary
    between them is exact: the prompt keeps the tokenizer's special tokens (BOS where it adds one), the
    completion gets none. This matches how lm-eval feeds a context and scores or generates its continuation.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase
        The checkpoint's tokenizer.
    prompt, answer : str
        One data row's prompt and answer.
    max_length : int
        Sequences longer than this are cut from the right.
    loss_on : {"answer", "all"}
        ``"answer"``: labels are ``-100`` on the prompt; ``"all"``: every token is a label (plain LM loss).
    delimiter : str
        What separates prompt and answer (:func:`completion_text`).

    Returns
    -------
    example : Example
        The ids and labels.
    truncated : bool
        Whether the sequence was cut to ``max_length``.
    """
    prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    answer_ids = list(tokenizer(completion_text(answer, delimiter), add_special_tokens=False)["input_ids"])
    input_ids = prompt_ids + answer_ids
    if loss_on == "answer":
        labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    elif loss_on == "all":
        labels = list(input_ids)
    else:
        raise ValueError(f"loss_on must be 'answer' or 'all', got {loss_on!r}")
    truncated = len(input_ids) > max_length
    return Example(tuple(input_ids[:max_length]), tuple(labels[:max_length])), truncated


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch of examples.

    Parameters
    ----------
    examples : sequence of Example
        The batch.
    pad_id : int
        Id written into padding positions of ``input_ids``.

    Returns
    -------
    dict of str to torch.Tensor
        ``input_ids``, ``attention_mask`` (1 on real tokens) and ``labels`` (``-100`` on padding and, with
        ``loss_on="answer"``, on the prompt), each of shape ``(batch, longest example)``.
    """
    width = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids, dtype=torch.long)
        attention_mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def example_order(n_examples: int, n_draws: int, seed: int) -> list[int]:
    """Indices of the examples to draw, epoch after epoch, reshuffled each epoch.

    Parameters
    ----------
    n_examples : int
        Size of the pool (the concatenation of all train files).
    n_draws : int
        How many indices to return (steps × batch size).
    seed : int
        Seed of the shuffle; the same seed gives the same order on every platform.

    Returns
    -------
    list of int
        ``n_draws`` indices; every index appears once per epoch.
    """
    if n_examples < 1:
        raise ValueError("no training examples")
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < n_draws:
        epoch = list(range(n_examples))
        rng.shuffle(epoch)
        order.extend(epoch)
    return order[:n_draws]


def load_examples(
    tokenizer: Any, train_files: Sequence[str | os.PathLike], *, max_length: int, loss_on: LossOn
) -> tuple[list[Example], int]:
    """Read and tokenise the rows of every train file, in file order.

    Returns
    -------
    examples : list of Example
        One per row.
    n_truncated : int
        How many were cut to ``max_length``.

    Raises
    ------
    FileNotFoundError
        If a train file is missing.
    ValueError
        If a file is empty or a row lacks ``prompt`` or ``answer``.
    """
    examples: list[Example] = []
    n_truncated = 0
    for path in train_files:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"train file not found: {path}")
        rows = read_jsonl(path)
        if not rows:
            raise ValueError(f"train file {path} has no rows")
        for line, row in enumerate(rows, start=1):
            if "prompt" not in row or "answer" not in row:
                raise ValueError(f"{path} row {line} needs 'prompt' and 'answer' fields, has {sorted(row)}")
            example, truncated = encode_example(
                tokenizer,
                row["prompt"],
                str(row["answer"]),
                max_length=max_length,
                loss_on=loss_on,
                delimiter=row.get("target_delimiter", " "),
            )
            examples.append(example)
            n_truncated += truncated
        log.info("read %d rows from %s", len(rows), path)
    if n_truncated:
        log.warning(
            "%d of %d examples were longer than max_length=%d and were cut",
            n_truncated,
            len(examples),
            max_length,
        )
    return examples, n_truncated


def _pad_id(tokenizer: Any) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    # Padding positions are masked out of attention and loss, so any valid id works.
    return 0


def finetune(
    parent_dir: str | os.PathLike,
    train_files: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_steps: int = 10,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    seed: int,
    max_length: int = 64,
    device: str = "auto",
    threads: int | None = None,
    loss_on: LossOn = "answer",
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Fine-tune every weight of a causal LM on prompt → answer rows and save the result.

    Approach: fp32 weights, AdamW, learning rate rising linearly over ``warmup_steps`` then falling linearly
    to 0 at ``steps`` (``transformers.get_linear_schedule_with_warmup``), gradient norm clipped to
    ``max_grad_norm``. Each step takes ``batch_size`` examples from the union of ``train_files``: the
    concatenation is shuffled with ``seed`` once per epoch, so every file is represented in proportion to its
    size. Each example is ``prompt + " " + answer + "\\n"``; the loss is on the completion tokens only
    (``loss_on="answer"``) or on every token (``loss_on="all"``, used to pre-train a tiny model on the skills
    mixture).

    On CPU, the same arguments and thread count give a byte-identical ``model.safetensors``. On CUDA the
    result is only reproducible up to the nondeterminism of the GPU kernels.

    Parameters
    ----------
    parent_dir : path
        Hugging Face checkpoint to start from (model and tokenizer).
    train_files : list of path
        JSONL files with ``prompt`` and ``answer`` fields (generative and multiple-choice rows alike).
    out_dir : path
        Where the fine-tuned checkpoint goes; written through a temporary sibling, so a killed run never
        leaves a complete-looking directory. An existing directory is replaced.
    steps : int
        Number of optimizer steps.
    batch_size : int
        Examples per step.
    lr : float
        Peak learning rate.
    warmup_steps : int
        Length of the linear warm-up.
    weight_decay : float
        AdamW weight decay.
    max_grad_norm : float
        Gradient-norm clipping threshold.
    seed : int
        Seeds torch and the example order.
    max_length : int
        Longer examples are cut from the right (a warning says how many).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` (see :func:`simmerge.core.device.resolve_device`).
    threads : int or None
        CPU threads for torch; ``None`` keeps the current setting.
    loss_on : {"answer", "all"}
        Which tokens carry the loss.
    trust_remote_code : bool
        Let transformers run modelling code shipped with the parent (its catalog entry's setting).

    Returns
    -------
    dict
        JSON-able record for the checkpoint manifest: the hyper-parameters, ``final_loss``,
        ``mean_loss_last10``, ``wall_seconds``, ``steps_per_second``, ``tokens_seen`` (non-padding tokens),
        ``tokens_per_second``, ``n_examples``, ``n_truncated``, ``epochs``.

    Raises
    ------
    ValueError
        On a non-positive ``steps``/``batch_size``/``lr``, an unknown ``loss_on``, or unusable train files.

    Examples
    --------
    >>> finetune("ckpt/base", ["skills/n2w_fr/train.jsonl"], "ckpt/n2w_fr",
    ...          steps=120, batch_size=16, lr=1e-4, seed=0)  # doctest: +SKIP
    """
    # deferred: transformers takes seconds to import and only a training run needs it
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if loss_on not in ("answer", "all"):
        raise ValueError(f"loss_on must be 'answer' or 'all', got {loss_on!r}")
    if not train_files:
        raise ValueError("train_files is empty")

    started = time.perf_counter()
    set_threads(threads)
    torch_device = resolve_device(device)
    torch.manual_seed(seed)

    parent_dir = Path(parent_dir)
    tokenizer = AutoTokenizer.from_pretrained(parent_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(parent_dir, dtype=torch.float32, trust_remote_code=trust_remote_code)
    model.to(torch_device)
    model.train()

    examples, n_truncated = load_examples(tokenizer, train_files, max_length=max_length, loss_on=loss_on)
    order = example_order(len(examples), steps * batch_size, seed)
    pad_id = _pad_id(tokenizer)

    # The fused kernel is ~10x faster than the default foreach one on CPU (0.06 s vs 0.55 s a step on SmolLM2,
    # 20% of a training step), and as deterministic.
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, steps)
    log.info(
        "fine-tuning %s on %d examples from %d file(s): %d steps x %d, lr %g, loss on %s, %s, %d threads",
        parent_dir,
        len(examples),
        len(train_files),
        steps,
        batch_size,
        lr,
        loss_on,
        torch_device,
        torch.get_num_threads(),
    )

    losses: list[float] = []
    tokens_seen = 0
    train_started = time.perf_counter()
    for step in range(steps):
        batch = collate([examples[i] for i in order[step * batch_size : (step + 1) * batch_size]], pad_id)
        batch = {key: value.to(torch_device) for key, value in batch.items()}
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        losses.append(float(loss.detach()))
        tokens_seen += int(batch["attention_mask"].sum())
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"loss became {losses[-1]} at step {step + 1}; lower lr (now {lr})")
        done = step + 1
        if done % LOG_EVERY == 0 or done == steps:
            elapsed = time.perf_counter() - train_started
            log.info(
                "step %d/%d loss %.4f lr %.3g elapsed %.1fs %.0f tok/s eta %.0fs",
                done,
                steps,
                losses[-1],
                scheduler.get_last_lr()[0],
                elapsed,
                tokens_seen / elapsed,
                elapsed / done * (steps - done),
            )
    train_seconds = time.perf_counter() - train_started

    model.eval()
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    wall_seconds = time.perf_counter() - started
    log.info("saved %s (%.1fs in all, %.2f steps/s)", out_dir, wall_seconds, steps / train_seconds)

    last = losses[-LOG_EVERY:]
    return {
        "parent": str(parent_dir),
        "train_files": [str(path) for path in train_files],
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "warmup_steps": warmup_steps,
        "weight_decay": weight_decay,
        "max_grad_norm": max_grad_norm,
        "seed": seed,
        "max_length": max_length,
        "loss_on": loss_on,
        "schedule": "linear warm-up, linear decay to 0",
        "optimizer": "AdamW",
        "dtype": "float32",
        "device": str(torch_device),
        "threads": torch.get_num_threads(),
        "n_examples": len(examples),
        "n_truncated": n_truncated,
        "epochs": steps * batch_size / len(examples),
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "mean_loss_last10": sum(last) / len(last),
        "tokens_seen": tokens_seen,
        "wall_seconds": wall_seconds,
        "train_seconds": train_seconds,
        "steps_per_second": steps / train_seconds,
        "tokens_per_second": tokens_seen / train_seconds,
    }
