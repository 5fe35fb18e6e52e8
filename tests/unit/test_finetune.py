"""Tests of simmerge.catalog.finetune (and the small simmerge.core.device) on a tiny randomly initialised Llama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_llm import make_tiny_checkpoint, write_rows
from tiny_tasks import GENERATE_TEMPLATE

from simmerge.catalog.finetune import IGNORE_INDEX, collate, encode_example, example_order, finetune
from simmerge.core.device import resolve_device, set_threads

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven"]


def number_rows() -> list[dict]:
    return [
        {"id": f"n{i}", "entity": str(i), "prompt": f"{i} in words:", "answer": word} for i, word in enumerate(NUMBERS)
    ]


# torch's thread count changes float results in the last bits; these tests compare runs
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


# -- device --------------------------------------------------------------------------------------------------


def test_resolve_device_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_resolve_device_cuda_without_cuda_says_so():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")


def test_resolve_device_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_set_threads():
    set_threads(2)
    assert torch.get_num_threads() == 2
    set_threads(None)
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError):
        set_threads(0)


# -- tokenisation and batching -------------------------------------------------------------------------------


def test_encode_example_boundary_is_exact(tokenizer):
    example, truncated = encode_example(tokenizer, "3 in words:", "three")
    prompt_ids = tokenizer("3 in words:")["input_ids"]
    answer_ids = tokenizer(" three\n", add_special_tokens=False)["input_ids"]
    assert not truncated
    assert prompt_ids[0] == tokenizer.bos_token_id
    assert list(example.input_ids) == prompt_ids + answer_ids
    assert list(example.labels) == [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    assert tokenizer.decode(example.input_ids, skip_special_tokens=True) == "3 in words: three\n"


def test_encode_example_uses_the_tasks_target_delimiter(tokenizer):
    """An lm-eval task whose prompt ends where its answer starts (target_delimiter "") trains on that text."""
    example, _ = encode_example(tokenizer, "Q: 3 =", "three", delimiter="")
    assert tokenizer.decode(example.input_ids, skip_special_tokens=True) == "Q: 3 =three\n"
    answer_ids = tokenizer("three\n", add_special_tokens=False)["input_ids"]
    assert list(example.labels[-len(answer_ids) :]) == answer_ids


def test_encode_example_loss_on_all_and_truncation(tokenizer):
    example, truncated = encode_example(tokenizer, "3 in words:", "three", loss_on="all", max_length=5)
    assert truncated
    assert len(example.input_ids) == 5
    assert example.labels == example.input_ids
    with pytest.raises(ValueError, match="loss_on"):
        encode_example(tokenizer, "a", "b", loss_on="prompt")


def test_collate_masks_prompt_and_padding(tokenizer):
    short, _ = encode_example(tokenizer, "1:", "one")
    long, _ = encode_example(tokenizer, "12 in words:", "twelve")
    batch = collate([short, long], pad_id=tokenizer.pad_token_id)
    n_prompt = [len(tokenizer("1:")["input_ids"]), len(tokenizer("12 in words:")["input_ids"])]
    lengths = [len(short.input_ids), len(long.input_ids)]
    assert batch["input_ids"].shape == (2, max(lengths))
    for row in range(2):
        labels, ids, mask = batch["labels"][row], batch["input_ids"][row], batch["attention_mask"][row]
        ignored = labels == IGNORE_INDEX
        # -100 exactly on the prompt and on the padding, real ids everywhere else
        expected = torch.ones_like(ignored)
        expected[n_prompt[row] : lengths[row]] = False
        assert torch.equal(ignored, expected)
        assert torch.equal(labels[~ignored], ids[~ignored])
        assert mask.tolist() == [1] * lengths[row] + [0] * (max(lengths) - lengths[row])
        assert (ids[lengths[row] :] == tokenizer.pad_token_id).all()


def test_example_order_reshuffles_each_epoch():
    order = example_order(5, 12, seed=3)
    assert len(order) == 12
    assert sorted(order[:5]) == sorted(order[5:10]) == list(range(5))
    assert order[:5] != order[5:10]
    assert order == example_order(5, 12, seed=3)
    assert order != example_order(5, 12, seed=4)
    with pytest.raises(ValueError):
        example_order(0, 3, seed=0)


# -- training ------------------------------------------------------------------------------------------------


def test_finetune_is_deterministic_and_lowers_loss(tiny, tmp_path):
    train = write_rows(tmp_path / "train.jsonl", number_rows())
    kwargs = dict(steps=30, batch_size=4, lr=1e-2, warmup_steps=5, seed=7, device="cpu")
    first = finetune(tiny, [train], tmp_path / "a", **kwargs)
    second = finetune(tiny, [train], tmp_path / "b", **kwargs)
    bytes_a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert bytes_a == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert bytes_a != (tiny / "model.safetensors").read_bytes()
    assert first["final_loss"] == second["final_loss"]
    assert first["mean_loss_last10"] < first["first_loss"]
    assert first["n_examples"] == 8 and first["steps"] == 30 and first["tokens_seen"] > 0
    json.dumps(first)  # the record goes into a JSON manifest
    assert (tmp_path / "a" / "tokenizer.json").is_file()
    # the atomic write leaves no temporary sibling behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "train.jsonl"]

    other_seed = finetune(tiny, [train], tmp_path / "c", **{**kwargs, "seed": 8})
    assert (tmp_path / "c" / "model.safetensors").read_bytes() != bytes_a
    assert other_seed["final_loss"] != first["final_loss"]


def test_finetune_draws_from_every_file(tiny, tmp_path):
    rows = number_rows()
    files = [write_rows(tmp_path / "a.jsonl", rows[:2]), write_rows(tmp_path / "b.jsonl", rows[2:])]
    record = finetune(tiny, files, tmp_path / "out", steps=2, batch_size=8, lr=1e-3, seed=0, loss_on="all")
    assert record["n_examples"] == 8
    assert record["epochs"] == 2.0
    assert record["train_files"] == [str(f) for f in files]


def test_finetune_errors_name_the_problem(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        finetune(tiny, [tmp_path / "missing.jsonl"], tmp_path / "out", steps=1, batch_size=1, lr=1e-3, seed=0)
    bad = write_rows(tmp_path / "bad.jsonl", [{"id": "x", "question": "?"}])
    with pytest.raises(ValueError, match="'prompt' and 'answer'"):
        finetune(tiny, [bad], tmp_path / "out", steps=1, batch_size=1, lr=1e-3, seed=0)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def numbers_expert(tiny, tmp_path_factory) -> tuple[Path, Path, Path]:
    """The tiny model fine-tuned on number words: (expert, task folder, data file)."""
    folder = tmp_path_factory.mktemp("numbers")
    tasks = folder / "tasks"
    tasks.mkdir()
    (tasks / "_generate_template_yaml").write_text(GENERATE_TEMPLATE)
    (tasks / "simmerge_numbers.yaml").write_text("task: simmerge_numbers\ninclude: _generate_template_yaml\n")
    train = write_rows(folder / "train.jsonl", number_rows())
    finetune(tiny, [train], folder / "expert", steps=100, batch_size=8, lr=1e-2, warmup_steps=5, seed=0)
    return folder / "expert", tasks, train


def test_finetune_then_exact_match_rises(tiny, numbers_expert):
    from simmerge.merges.scoring import score_checkpoint

    expert, tasks, train = numbers_expert
    before = score_checkpoint(tiny, tasks, {"numbers": train}, batch_size=8, device="cpu", exact_match="generate")
    after = score_checkpoint(expert, tasks, {"numbers": train}, batch_size=8, device="cpu", exact_match="generate")
    assert before["tasks"]["numbers"]["score"] == 0.0
    assert after["tasks"]["numbers"]["score"] >= 0.75


def test_one_pass_exact_match_equals_generation_item_by_item(tiny, numbers_expert):
    from simmerge.merges.scoring import score_checkpoint

    expert, tasks, train = numbers_expert
    for model in (tiny, expert):
        scored = {
            mode: score_checkpoint(model, tasks, {"numbers": train}, batch_size=8, device="cpu", exact_match=mode)
            for mode in ("one_pass", "generate")
        }
        one_pass, generated = (scored[mode]["items"]["numbers"] for mode in ("one_pass", "generate"))
        assert one_pass["item_id"].tolist() == generated["item_id"].tolist()
        assert one_pass["prompt_hash"].tolist() == generated["prompt_hash"].tolist()  # the same prompts
        assert one_pass["score"].tolist() == generated["score"].tolist()
        assert scored["one_pass"]["tasks"]["numbers"]["score"] == scored["generate"]["tasks"]["numbers"]["score"]
    assert one_pass["score"].mean() >= 0.75  # the expert's items: most of them right, so agreement means something
