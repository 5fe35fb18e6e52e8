"""lm-eval tasks as SimMerge tasks: registry names and user YAMLs drawn, checked and scored offline, for real.

The data are generated in the real layouts (tests/offline_datasets.py) and read through lm-eval's own registry YAMLs;
every score comes from lm-eval on a tiny model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from offline_datasets import write_ai2_arc, write_datasets_cache, write_gsm8k, write_user_task
from tiny_llm import make_tiny_checkpoint

from simmerge.catalog.harness import (
    choose_metric,
    load_tasks,
    scoring_spec,
    task_problems,
    write_harness_task_data,
)
from simmerge.core.config import ConfigError, LmevalTaskSpec, YamlTaskSpec
from simmerge.core.io import read_jsonl
from simmerge.merges.scoring import score_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread", "hub_and_datasets_offline")


@pytest.fixture(scope="module")
def arc_copy(tmp_path_factory) -> Path:
    return write_ai2_arc(tmp_path_factory.mktemp("arc") / "ai2_arc", n_train=20, n_validation=4, n_test=16)


@pytest.fixture(scope="module")
def gsm8k_copy(tmp_path_factory) -> Path:
    return write_gsm8k(tmp_path_factory.mktemp("gsm8k") / "gsm8k", n_train=6, n_test=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "base")


def arc_spec(copy: Path, **fields) -> LmevalTaskSpec:
    return LmevalTaskSpec(kind="lmeval", dataset_path=str(copy), **{"n_eval": 6, "n_probe": 3, "n_train": 5, **fields})


def test_arc_easy_is_drawn_by_lm_evals_own_prompts_from_disjoint_documents(arc_copy, tmp_path):
    record = write_harness_task_data("arc_easy", arc_spec(arc_copy), tmp_path, seed=3, trained_by=["arc"])
    rows = {split: read_jsonl(tmp_path / f"{split}.jsonl") for split in ("eval", "probe", "train")}

    assert record["task"] == "arc_easy" and record["metric"] == "acc" and record["filter"] == "none"
    scored = record["samples"]["arc_easy"]
    assert len(scored) == 6 and scored == sorted(scored) and len(set(scored)) == 6
    assert [row["doc_index"] for row in rows["eval"]] == scored
    # probes come from the training split, never from the scored test split
    meta = record["tasks"]["arc_easy"]
    assert meta["probe_split"] == "train" and meta["scored_split"] == "test" and len(meta["probe_doc_ids"]) == 3
    assert all(row["split"] == "train" for row in rows["probe"])
    # the prompt is lm-eval's doc_to_text of arc_easy; a training row's answer is the gold choice's text
    tasks, _ = load_tasks(scoring_spec("arc_easy", arc_spec(arc_copy)))
    task = tasks["arc_easy"]
    test_docs, train_docs = list(task.test_docs()), list(task.training_docs())
    first = test_docs[scored[0]]
    assert rows["eval"][0]["prompt"] == f"Question: {first['question']}\nAnswer:"
    train_row = rows["train"][0]
    doc = train_docs[train_row["doc_index"]]
    assert train_row["answer"] == doc["choices"]["text"][doc["choices"]["label"].index(doc["answerKey"])]
    assert len(rows["train"]) == 5


def test_the_same_seed_draws_the_same_documents_and_another_seed_others(arc_copy, tmp_path):
    first = write_harness_task_data("arc_easy", arc_spec(arc_copy), tmp_path / "a", seed=3)
    again = write_harness_task_data("arc_easy", arc_spec(arc_copy), tmp_path / "b", seed=3)
    other = write_harness_task_data("arc_easy", arc_spec(arc_copy), tmp_path / "c", seed=4)
    assert (tmp_path / "a" / "eval.jsonl").read_bytes() == (tmp_path / "b" / "eval.jsonl").read_bytes()
    assert first["samples"] == again["samples"] != other["samples"]


def test_scoring_selects_exactly_the_drawn_documents(arc_copy, tiny, tmp_path):
    """The score is lm-eval's accuracy over the drawn documents and no others: equal to scoring them directly."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    data = tmp_path / "data" / "arc_easy"
    record = write_harness_task_data("arc_easy", arc_spec(arc_copy), data, seed=3)
    scores = score_checkpoint(tiny, "config/tasks", {"arc_easy": data / "eval.jsonl"}, batch_size=4)
    arc = scores["tasks"]["arc_easy"]
    assert arc["n"] == 6 and arc["primary_metric"] == "acc" and set(arc["metrics"]) == {"acc", "acc_norm"}

    lm = HFLM(pretrained=str(tiny), batch_size=4, dtype="float32", device="cpu")
    tasks, _ = load_tasks(record)
    direct = lm_eval.simple_evaluate(
        model=lm, tasks=list(tasks.values()), samples=record["samples"], log_samples=True, random_seed=0
    )
    assert [sample["doc_id"] for sample in direct["samples"]["arc_easy"]] == record["samples"]["arc_easy"]
    expected = sum(sample["acc"] for sample in direct["samples"]["arc_easy"]) / 6
    assert arc["score"] == pytest.approx(expected)


def test_two_local_copies_named_alike_never_read_each_others_data(tmp_path):
    """datasets keys a local folder's prepared data by name and card, not path: each job prepares its own."""
    small = write_ai2_arc(tmp_path / "one" / "ai2_arc", n_train=4, n_validation=2, n_test=5)
    large = write_ai2_arc(tmp_path / "two" / "ai2_arc", n_train=6, n_validation=2, n_test=9, seed=1)
    first = write_harness_task_data("arc_easy", arc_spec(small, n_eval=None), tmp_path / "a", seed=0)
    second = write_harness_task_data("arc_easy", arc_spec(large, n_eval=None), tmp_path / "b", seed=0)
    assert first["tasks"]["arc_easy"]["eval_documents"] == 5
    assert second["tasks"]["arc_easy"]["eval_documents"] == 9


def test_arc_easy_unchanged_reads_a_prepared_datasets_cache_offline(arc_copy, tmp_path, monkeypatch):
    """Without dataset_path the registry task reads allenai/ai2_arc from the Hugging Face datasets cache, offline:
    what a cluster's compute node has after a login node ran load_dataset once."""
    import datasets.config

    cache = tmp_path / "prepared"
    write_datasets_cache(cache, "allenai/ai2_arc", arc_copy, configs=["ARC-Easy"])
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    spec = LmevalTaskSpec(kind="lmeval", n_eval=4, n_probe=2)
    record = write_harness_task_data("arc_easy", spec, tmp_path / "data", seed=0)
    assert record["overrides"] == {} and len(record["samples"]["arc_easy"]) == 4


def test_gsm8k_keeps_its_filters_and_its_cot_answers(gsm8k_copy, tiny, tmp_path):
    spec = LmevalTaskSpec(kind="lmeval", dataset_path=str(gsm8k_copy), num_fewshot=0, n_eval=3, n_probe=2, n_train=4)
    record = write_harness_task_data("gsm8k", spec, tmp_path / "gsm8k", seed=0)
    assert (record["metric"], record["filter"]) == ("exact_match", "strict-match")
    assert all("#### " in row["answer"] for row in read_jsonl(tmp_path / "gsm8k" / "train.jsonl"))

    flexible = spec.model_copy(update={"task": "gsm8k", "metric": "exact_match,flexible-extract"})
    other = write_harness_task_data("gsm8k_flexible", flexible, tmp_path / "flexible", seed=0)
    assert other["filter"] == "flexible-extract"

    scores = score_checkpoint(tiny, "config/tasks", {"g": tmp_path / "flexible" / "eval.jsonl"}, max_gen_toks=4)
    gsm8k = scores["tasks"]["g"]
    assert gsm8k["n"] == 3 and gsm8k["filters"][gsm8k["primary_metric"]] == "flexible-extract"
    assert gsm8k["primary_metric"] == "exact_match,flexible-extract"


def test_the_recorded_prompts_are_the_contexts_lm_eval_scores_few_shot_included(gsm8k_copy, tiny, tmp_path):
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    spec = LmevalTaskSpec(kind="lmeval", dataset_path=str(gsm8k_copy), num_fewshot=2, n_eval=4, n_probe=1)
    record = write_harness_task_data("gsm8k", spec, tmp_path, seed=5)
    lm = HFLM(pretrained=str(tiny), batch_size=4, dtype="float32", device="cpu")
    tasks, _ = load_tasks(record)
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(tasks.values()),
        samples=record["samples"],
        num_fewshot=2,
        log_samples=True,
        gen_kwargs={"max_gen_toks": 2},
        fewshot_random_seed=record["fewshot_seed"],
    )
    # lm-eval logs each document once per filter
    logged = [sample for sample in results["samples"]["gsm8k"] if sample["filter"] == "strict-match"]
    scored = [sample["arguments"][0][0] for sample in logged]
    recorded = [row["prompt"] for row in read_jsonl(tmp_path / "eval.jsonl")]
    assert scored == recorded and all(prompt.count("Question:") == 3 for prompt in recorded)


def test_a_user_task_folder_scores_on_its_function_metric(tmp_path, tiny):
    folder = write_user_task(tmp_path / "mine", n_test=10, n_train=6)
    spec = YamlTaskSpec(kind="yaml", path=str(folder), metric="length_match", n_eval=5, n_probe=2)
    assert task_problems("word_lengths", spec) == []
    write_harness_task_data("word_lengths", spec, tmp_path / "data", seed=0)
    scores = score_checkpoint(tiny, "config/tasks", {"word_lengths": tmp_path / "data" / "eval.jsonl"})
    record = scores["tasks"]["word_lengths"]
    assert record["primary_metric"] == "length_match" and record["n"] == 5
    assert set(record["metrics"]) == {"length_match", "exact_match"}


def test_a_group_is_scored_as_lm_eval_aggregates_its_members(tmp_path, tiny):
    folder = write_user_task(tmp_path / "mine", n_test=10, n_train=6)
    second = (folder / "word_lengths.yaml").read_text().replace("task: word_lengths", "task: word_lengths_b")
    (folder / "word_lengths_b.yaml").write_text(second)
    (folder / "lengths.yaml").write_text(
        "group: lengths\ntask: [word_lengths, word_lengths_b]\n"
        "aggregate_metric_list:\n  - {metric: exact_match, weight_by_size: true}\nmetadata: {version: 1}\n"
    )
    spec = YamlTaskSpec(kind="yaml", path=str(folder), task="lengths", metric="exact_match", n_eval=4, n_probe=2)
    record = write_harness_task_data("lengths", spec, tmp_path / "data", seed=0)
    assert record["group"] and set(record["samples"]) == {"word_lengths", "word_lengths_b"}
    scores = score_checkpoint(tiny, "config/tasks", {"lengths": tmp_path / "data" / "eval.jsonl"})
    assert scores["tasks"]["lengths"]["n"] == 8


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_chat_template_prompts_are_rendered_by_the_base_tokenizer_as_lm_eval_scores_them(arc_copy, tmp_path):
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    chat = make_tiny_checkpoint(tmp_path / "chat")
    tokenizer = AutoTokenizer.from_pretrained(chat)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(chat)
    spec = arc_spec(arc_copy, apply_chat_template=True, n_eval=3)
    record = write_harness_task_data("arc_easy", spec, tmp_path / "data", seed=0, tokenizer_dir=chat)
    recorded = [row["prompt"] for row in read_jsonl(tmp_path / "data" / "eval.jsonl")]
    assert all(prompt.startswith("<|user|>Question: ") and prompt.endswith("<|assistant|>") for prompt in recorded)

    lm = HFLM(pretrained=str(chat), batch_size=4, dtype="float32", device="cpu")
    tasks, _ = load_tasks(record)
    results = lm_eval.simple_evaluate(
        model=lm, tasks=list(tasks.values()), samples=record["samples"], apply_chat_template=True, log_samples=True
    )
    scored = [sample["arguments"][0][0] for sample in results["samples"]["arc_easy"]]
    assert scored == recorded


def test_without_a_chat_template_apply_chat_template_is_refused(arc_copy, tiny, tmp_path):
    with pytest.raises(ConfigError) as error:
        write_harness_task_data(
            "arc_easy", arc_spec(arc_copy, apply_chat_template=True), tmp_path, tokenizer_dir=tiny, seed=0
        )
    assert "tasks.arc_easy.apply_chat_template: the base checkpoint's tokenizer has no chat template" in one_line(error)


def test_a_registry_group_is_rebuilt_from_the_folders_of_its_members():
    record = scoring_spec("mmlu", LmevalTaskSpec(kind="lmeval"))
    assert record["task"] == "mmlu" and "lm_eval:mmlu/default" in record["include_path"]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_an_unknown_registry_name_lists_the_closest(tmp_path):
    problems = task_problems("arc_eazy", LmevalTaskSpec(kind="lmeval"))
    assert len(problems) == 1 and "no task or group 'arc_eazy'" in problems[0] and "closest: arc_easy" in problems[0]


def test_a_dataset_path_that_does_not_exist_is_named(tmp_path):
    spec = LmevalTaskSpec(kind="lmeval", dataset_path=str(tmp_path / "nowhere"))
    (problem,) = task_problems("arc_easy", spec)
    assert f"tasks.arc_easy.dataset_path: {tmp_path / 'nowhere'} does not exist" in problem


def test_a_metric_the_task_does_not_report_is_refused_with_what_it_reports(arc_copy, tmp_path):
    with pytest.raises(ConfigError) as error:
        write_harness_task_data("arc_easy", arc_spec(arc_copy, metric="f1"), tmp_path, seed=0)
    assert "tasks.arc_easy.metric: task arc_easy does not report f1,none; it reports acc, acc_norm" in one_line(error)
    assert not (tmp_path / "eval.jsonl").exists()


def test_a_lower_is_better_metric_is_refused_with_how_scores_are_normalised(tmp_path):
    folder = write_user_task(tmp_path / "mine", n_test=4, n_train=4)
    yaml_path = folder / "word_lengths.yaml"
    yaml_path.write_text(
        yaml_path.read_text().replace(
            "higher_is_better: true\n    ignore_case", "higher_is_better: false\n    ignore_case"
        )
    )
    spec = YamlTaskSpec(kind="yaml", path=str(folder), metric="exact_match")
    with pytest.raises(ConfigError) as error:
        write_harness_task_data("word_lengths", spec, tmp_path / "data", seed=0)
    message = one_line(error)
    assert "exact_match of task word_lengths is lower-is-better" in message
    assert "divides a merge's score by its better parent's" in message and "choose one of length_match" in message


def test_training_on_a_task_without_a_training_split_is_refused_by_name(tmp_path):
    folder = write_user_task(tmp_path / "mine", n_test=4, n_train=4)
    yaml_path = folder / "word_lengths.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("training_split: train\n", ""))
    spec = YamlTaskSpec(kind="yaml", path=str(folder))
    with pytest.raises(ConfigError) as error:
        write_harness_task_data("word_lengths", spec, tmp_path / "data", seed=0, trained_by=["words"])
    assert "tasks.word_lengths: words train(s) on it" in one_line(error)
    assert "has no training split" in str(error.value)
    # not trained on, the same task is fine: its probes are then held out of the scored test documents
    record = write_harness_task_data("word_lengths", spec, tmp_path / "data", seed=0)
    meta = record["tasks"]["word_lengths"]
    assert meta["probe_split"] == "test (held out of scoring)"
    assert not set(meta["probe_doc_ids"]) & set(record["samples"]["word_lengths"])


def test_choose_metric_defaults_to_the_first_metric_and_filter(arc_copy):
    tasks, _ = load_tasks(scoring_spec("arc_easy", arc_spec(arc_copy)))
    assert choose_metric("arc_easy", arc_spec(arc_copy), tasks) == ("acc", "none")
    assert choose_metric("arc_easy", arc_spec(arc_copy, metric="acc_norm"), tasks) == ("acc_norm", "none")


def test_the_task_record_names_paths_wherever_the_workflow_and_lm_eval_are_installed(arc_copy, tmp_path):
    """Paths under the workflow directory are stored relative to it, lm-eval's own folders relative to its install:
    a run's data folder is the same bytes in another checkout (the SLURM test compares two)."""
    spec = LmevalTaskSpec(kind="lmeval", dataset_path=arc_copy.name, n_eval=2, n_probe=1)
    records = [
        write_harness_task_data("arc_easy", spec, tmp_path / f"out{i}", seed=0, workdir=arc_copy.parent) for i in (1, 2)
    ]
    assert records[0]["overrides"]["dataset_path"] == "ai2_arc"
    assert records[0]["include_path"] == ["lm_eval:arc"] and records[0]["yaml"] == "lm_eval:arc/arc_easy.yaml"
    assert (tmp_path / "out1" / "task.json").read_bytes() == (tmp_path / "out2" / "task.json").read_bytes()
