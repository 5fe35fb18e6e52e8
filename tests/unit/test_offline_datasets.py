"""lm-eval 0.4.13 loads and scores the offline fixtures of tests/offline_datasets.py, with the hub unreachable.

Registry tasks (``arc_easy``, ``gsm8k``) are loaded from lm-eval's own YAMLs, unchanged, over a local copy of their
dataset (``dataset_path`` override) or over hand-laid caches of the hub repository (no override).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from offline_datasets import (
    FAKE_REVISION,
    gsm8k_final_answer,
    gsm8k_rows,
    write_ai2_arc,
    write_datasets_cache,
    write_gsm8k,
    write_hub_cache,
    write_user_task,
)
from tiny_llm import make_tiny_checkpoint

# torch's thread count changes float results in the last bits; these tests compare runs
pytestmark = pytest.mark.usefixtures("one_torch_thread", "hub_and_datasets_offline")

SEED = 1234


def lm_eval_tasks_dir(name: str) -> str:
    import lm_eval.tasks

    return str(Path(lm_eval.tasks.__file__).parent / name)


@pytest.fixture(scope="module")
def arc_copy(tmp_path_factory) -> Path:
    return write_ai2_arc(tmp_path_factory.mktemp("arc") / "ai2_arc", n_train=6, n_validation=3, n_test=6)


@pytest.fixture(scope="module")
def gsm8k_copy(tmp_path_factory) -> Path:
    return write_gsm8k(tmp_path_factory.mktemp("gsm8k") / "gsm8k", n_train=4, n_test=4)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from lm_eval.models.huggingface import HFLM

    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "base")
    return HFLM(pretrained=str(ckpt), batch_size=8, dtype="float32", device="cpu")


def registry_spec(include: str, name: str, **overrides) -> dict:
    """The registry task ``name`` as a full inline config, with ``overrides`` on top.

    lm-eval 0.4.13 does not merge a dict spec into the registered task of that name: ``TaskManager.load`` builds a
    dict with a ``task`` key as a new inline task (``TaskIndex.entry_from_config``), so ``{"task": "arc_easy",
    "dataset_path": ...}`` alone loses the registry YAML. The YAML (with its ``include``s) is merged here instead.
    """
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = TaskManager(include_path=include, include_defaults=False).task_index[name]
    return {**load_yaml(entry.yaml_path, resolve_func=True), **overrides}


def load(include: str, spec: dict | str):
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include, include_defaults=False)
    return manager, manager.load([spec])["tasks"]


def evaluate(lm, manager, tasks, **kwargs) -> dict:
    import lm_eval

    kwargs.setdefault("log_samples", False)
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        bootstrap_iters=0,
        random_seed=SEED,
        numpy_random_seed=SEED,
        torch_random_seed=SEED,
        fewshot_random_seed=SEED,
        **kwargs,
    )


# -- the writers --------------------------------------------------------------------------------------------------


def test_writers_are_deterministic_and_use_the_real_layouts(tmp_path):
    import pyarrow.parquet as pq

    first = write_ai2_arc(tmp_path / "a", seed=3)
    second = write_ai2_arc(tmp_path / "b", seed=3)
    files = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert files == [
        "ARC-Challenge/test-00000-of-00001.parquet",
        "ARC-Challenge/train-00000-of-00001.parquet",
        "ARC-Challenge/validation-00000-of-00001.parquet",
        "ARC-Easy/test-00000-of-00001.parquet",
        "ARC-Easy/train-00000-of-00001.parquet",
        "ARC-Easy/validation-00000-of-00001.parquet",
        "README.md",
    ]
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    table = pq.read_table(first / "ARC-Easy/test-00000-of-00001.parquet")
    assert table.column_names == ["id", "question", "choices", "answerKey"]
    assert (
        str(table.schema.field("choices").type) == "struct<text: list<element: string>, label: list<element: string>>"
    )
    other_seed = write_ai2_arc(tmp_path / "c", seed=4) / "ARC-Easy/test-00000-of-00001.parquet"
    assert pq.read_table(other_seed).to_pylist() != table.to_pylist()

    gsm = write_gsm8k(tmp_path / "g", n_train=2, n_test=3)
    assert sorted(p.relative_to(gsm).as_posix() for p in gsm.rglob("*.parquet")) == [
        "main/test-00000-of-00001.parquet",
        "main/train-00000-of-00001.parquet",
        "socratic/test-00000-of-00001.parquet",
        "socratic/train-00000-of-00001.parquet",
    ]
    rows = pq.read_table(gsm / "main/test-00000-of-00001.parquet").to_pylist()
    assert len(rows) == 3 and all(row["answer"].splitlines()[-1].startswith("#### ") for row in rows)


def test_the_local_copies_load_with_datasets_by_config(tmp_path):
    import datasets

    # the card's `configs` block is what makes the config names and splits; no builder script, no network
    arc = write_ai2_arc(tmp_path / "copy", n_test=3, n_challenge=(1, 1, 2))
    assert sorted(datasets.get_dataset_config_names(str(arc))) == ["ARC-Challenge", "ARC-Easy"]
    challenge = datasets.load_dataset(str(arc), "ARC-Challenge")
    assert {split: len(challenge[split]) for split in challenge} == {"train": 1, "validation": 1, "test": 2}
    assert challenge["test"].features["choices"]["label"].feature.dtype == "string"


# -- arc_easy from lm-eval's registry ----------------------------------------------------------------------------


def check_arc_easy_docs(task, n_test: int, n_train: int) -> None:
    docs = list(task.test_docs())
    assert len(docs) == n_test and len(list(task.training_docs())) == n_train
    doc = docs[0]
    assert task.doc_to_text(doc) == f"Question: {doc['question']}\nAnswer:"
    assert doc["question"].startswith("What is ") and " plus " in doc["question"]
    assert task.doc_to_choice(doc) == doc["choices"]["text"]
    assert task.doc_to_target(doc) == "ABCD".index(doc["answerKey"])
    a, b = (int(word.rstrip("?")) for word in doc["question"].split()[2::2])
    assert task.doc_to_choice(doc)[task.doc_to_target(doc)] == str(a + b)


def test_registry_arc_easy_loads_over_the_local_copy(arc_copy):
    arc = lm_eval_tasks_dir("arc")
    _, tasks = load(arc, registry_spec(arc, "arc_easy", dataset_path=str(arc_copy)))
    assert list(tasks) == ["arc_easy"]
    task = tasks["arc_easy"]
    assert task.config.dataset_name == "ARC-Easy"  # kept from the registry YAML
    check_arc_easy_docs(task, n_test=6, n_train=6)
    _, tasks = load(arc, registry_spec(arc, "arc_challenge", dataset_path=str(arc_copy)))  # arc_easy.yaml included
    assert tasks["arc_challenge"].config.dataset_name == "ARC-Challenge"
    assert tasks["arc_challenge"].doc_to_text(tasks["arc_challenge"].test_docs()[0]).startswith("Question: What is ")


def test_a_bare_dict_spec_does_not_inherit_the_registry_task(arc_copy):
    """lm-eval 0.4.13: ``{"task": "arc_easy", "dataset_path": ...}`` is a new inline task, not an override."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=lm_eval_tasks_dir("arc"), include_defaults=False)
    with pytest.raises(ValueError, match="Config name is missing"):  # no dataset_name: the YAML was not merged
        manager.load([{"task": "arc_easy", "dataset_path": str(arc_copy)}])


def test_registry_arc_easy_loads_from_hand_laid_caches_offline(arc_copy, tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants
    from huggingface_hub import hf_hub_download

    hub_cache, datasets_cache = tmp_path / "hub", tmp_path / "datasets"
    snapshot = write_hub_cache(hub_cache, "allenai/ai2_arc", arc_copy)
    assert snapshot == hub_cache / "datasets--allenai--ai2_arc" / "snapshots" / FAKE_REVISION
    assert (hub_cache / "datasets--allenai--ai2_arc" / "refs" / "main").read_text() == FAKE_REVISION
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", datasets_cache)

    # huggingface_hub resolves the hand-laid hub cache offline ...
    readme = hf_hub_download("allenai/ai2_arc", "ARC-Easy/test-00000-of-00001.parquet", repo_type="dataset")
    assert Path(readme).read_bytes() == (arc_copy / "ARC-Easy/test-00000-of-00001.parquet").read_bytes()
    # ... but datasets, offline, never looks at it: it only reloads a dataset it prepared before
    with pytest.raises(ConnectionError, match="allenai/ai2_arc"):
        load(lm_eval_tasks_dir("arc"), "arc_easy")

    prepared = write_datasets_cache(datasets_cache, "allenai/ai2_arc", arc_copy)
    assert sorted(p.relative_to(datasets_cache).as_posix() for p in prepared) == [
        f"allenai___ai2_arc/ARC-Challenge/0.0.0/{FAKE_REVISION}",
        f"allenai___ai2_arc/ARC-Easy/0.0.0/{FAKE_REVISION}",
    ]
    _, tasks = load(lm_eval_tasks_dir("arc"), "arc_easy")  # the registry task, no override
    assert tasks["arc_easy"].config.dataset_path == "allenai/ai2_arc"
    check_arc_easy_docs(tasks["arc_easy"], n_test=6, n_train=6)
    _, tasks = load(lm_eval_tasks_dir("arc"), "arc_challenge")
    assert len(list(tasks["arc_challenge"].test_docs())) == 5
    assert " times " in tasks["arc_challenge"].test_docs()[0]["question"]


def test_registry_gsm8k_loads_from_the_datasets_cache_offline(gsm8k_copy, tmp_path, monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    (prepared,) = write_datasets_cache(tmp_path / "datasets", "openai/gsm8k", gsm8k_copy, configs=["main"])
    assert prepared == tmp_path / "datasets" / "openai___gsm8k" / "main" / "0.0.0" / FAKE_REVISION
    assert sorted(p.name for p in prepared.iterdir()) == ["dataset_info.json", "gsm8k-test.arrow", "gsm8k-train.arrow"]
    _, tasks = load(lm_eval_tasks_dir("gsm8k"), "gsm8k")
    task = tasks["gsm8k"]
    assert task.config.dataset_path == "openai/gsm8k" and task.config.num_fewshot == 5
    assert [doc["answer"] for doc in task.test_docs()] == [row["answer"] for row in gsm8k_rows("test", 4)]

    # or, datasets' default cache elsewhere, through the cache_dir that lm-eval passes on from dataset_kwargs
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty")
    gsm8k = lm_eval_tasks_dir("gsm8k")
    with pytest.raises(ConnectionError):
        load(gsm8k, "gsm8k")
    _, tasks = load(gsm8k, registry_spec(gsm8k, "gsm8k", dataset_kwargs={"cache_dir": str(tmp_path / "datasets")}))
    assert len(tasks["gsm8k"].test_docs()) == 4


def test_samples_selects_exactly_those_arc_docs(arc_copy, tiny_lm):
    from lm_eval.tasks import TaskManager

    arc = lm_eval_tasks_dir("arc")
    manager = TaskManager(include_path=arc, include_defaults=False)
    spec = registry_spec(arc, "arc_easy", dataset_path=str(arc_copy), num_fewshot=1)
    results = evaluate(tiny_lm, manager, [spec], samples={"arc_easy": [1, 3, 4]}, log_samples=True)
    assert results["n-samples"]["arc_easy"] == {"original": 6, "effective": 3}
    logged = results["samples"]["arc_easy"]
    assert [sample["doc_id"] for sample in logged] == [1, 3, 4]
    docs = write_ai2_arc_docs(arc_copy)
    assert [sample["doc"]["id"] for sample in logged] == [docs[i]["id"] for i in (1, 3, 4)]
    assert all(len(sample["resps"]) == 4 for sample in logged)  # one loglikelihood per choice
    assert set(results["results"]["arc_easy"]) >= {"acc,none", "acc_norm,none", "acc_stderr,none"}
    # the one-shot example comes from the train split, never from the scored docs
    train_questions = {row["question"] for row in write_ai2_arc_docs(arc_copy, "train")}
    for sample in logged:
        context, continuation = sample["arguments"][0]
        shot, scored = context.split("\n\n")
        assert scored == f"Question: {sample['doc']['question']}\nAnswer:" and continuation.startswith(" ")
        assert shot.split("\n")[0].removeprefix("Question: ") in train_questions


def write_ai2_arc_docs(arc_copy: Path, split: str = "test") -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(arc_copy / f"ARC-Easy/{split}-00000-of-00001.parquet").to_pylist()


def test_samples_order_is_the_dataset_order(arc_copy):
    """lm-eval iterates the selected docs in dataset order and labels the k-th with ``samples[k]``: pass them sorted."""
    arc = lm_eval_tasks_dir("arc")
    _, tasks = load(arc, registry_spec(arc, "arc_easy", dataset_path=str(arc_copy)))
    docs = write_ai2_arc_docs(arc_copy)
    picked = [doc["id"] for _, doc in tasks["arc_easy"].doc_iterator(samples=[4, 1])]
    assert picked == [docs[1]["id"], docs[4]["id"]]


# -- gsm8k from lm-eval's registry -------------------------------------------------------------------------------


def test_registry_gsm8k_over_the_local_copy_extracts_the_final_answer(gsm8k_copy):
    gsm8k = lm_eval_tasks_dir("gsm8k")
    _, tasks = load(gsm8k, registry_spec(gsm8k, "gsm8k", dataset_path=str(gsm8k_copy), num_fewshot=0))
    task = tasks["gsm8k"]
    doc = task.test_docs()[0]
    assert task.doc_to_text(doc) == f"Question: {doc['question']}\nAnswer:"
    assert task.doc_to_target(doc) == doc["answer"]

    task.build_all_requests(limit=None, samples=[0, 2], rank=0, world_size=1)
    assert sorted(inst.doc_id for inst in task.instances) == [0, 1]  # positions in the selection, not indices
    for inst in task.instances:  # a model that works the problem out and ends as GSM8K does
        inst.resps = [f" Some steps.\n#### {gsm8k_final_answer(inst.doc['answer'])}\n"]
    task.apply_filters()
    for inst in task.instances:
        final = gsm8k_final_answer(inst.doc["answer"])
        assert inst.filtered_resps == {"strict-match": final, "flexible-extract": final}
        scores = task.process_results(inst.doc, [inst.filtered_resps["strict-match"]])
        assert scores == {"exact_match": 1.0}


def test_simple_evaluate_gsm8k_reports_both_filters(gsm8k_copy, tiny_lm):
    from lm_eval.tasks import TaskManager

    gsm8k = lm_eval_tasks_dir("gsm8k")
    manager = TaskManager(include_path=gsm8k, include_defaults=False)
    spec = registry_spec(gsm8k, "gsm8k", dataset_path=str(gsm8k_copy), num_fewshot=0)
    results = evaluate(tiny_lm, manager, [spec], samples={"gsm8k": [0, 2]}, gen_kwargs={"max_gen_toks": 4})
    assert results["n-samples"]["gsm8k"] == {"original": 4, "effective": 2}
    metrics = results["results"]["gsm8k"]
    assert {"exact_match,strict-match", "exact_match,flexible-extract"} <= set(metrics)
    assert 0.0 <= metrics["exact_match,strict-match"] <= 1.0
    assert results["configs"]["gsm8k"]["num_fewshot"] == 0


# -- a user's own task folder ------------------------------------------------------------------------------------


def test_user_task_folder_loads_and_reports_its_function_metric(tmp_path, tiny_lm, monkeypatch):
    folder = write_user_task(tmp_path / "my_tasks", n_test=5, n_train=3)
    monkeypatch.chdir(tmp_path / "my_tasks" / "..")  # data_files are absolute: the working directory does not matter
    manager, tasks = load(str(folder), "word_lengths")
    task = tasks["word_lengths"]
    doc = task.test_docs()[0]
    assert task.doc_to_text(doc) == f'How many letters are in the word "{doc["word"]}"?\nAnswer:'
    assert task.doc_to_target(doc) == str(len(doc["word"]))
    assert len(list(task.training_docs())) == 3
    # the !function metric, called per document with references=[gold], predictions=[output]
    assert task.process_results(doc, [f" {len(doc['word'])} letters"])["length_match"] == 1.0
    assert task.process_results(doc, [" 99"])["length_match"] == 0.0

    results = evaluate(
        tiny_lm,
        manager,
        [registry_spec(str(folder), "word_lengths", num_fewshot=1)],
        samples={"word_lengths": [0, 1, 4]},
        log_samples=True,
    )
    metrics = results["results"]["word_lengths"]
    assert {"length_match,none", "exact_match,none", "length_match_stderr,none"} <= set(metrics)
    assert results["higher_is_better"]["word_lengths"]["length_match"] is True
    assert results["n-samples"]["word_lengths"] == {"original": 5, "effective": 3}
    logged = results["samples"]["word_lengths"]
    assert [sample["doc_id"] for sample in logged] == [0, 1, 4]
    assert all({"length_match", "exact_match"} <= set(sample["metrics"]) for sample in logged)
    context, gen_kwargs = logged[0]["arguments"][0]
    assert context.count("How many letters") == 2 and gen_kwargs["max_gen_toks"] == 6  # one shot; the YAML's kwargs


def test_the_committed_smoke_data_are_what_the_generator_writes(tmp_path):
    """config/smoke_data (the smoke run's arc_easy copy and user task) is regenerated, never edited by hand."""
    from offline_datasets import write_smoke_data

    def files_under(root: Path) -> list[Path]:
        # a scoring job importing the task's utils.py may leave a __pycache__ beside it
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)

    committed = Path(__file__).resolve().parents[2] / "config" / "smoke_data"
    fresh = tmp_path / "config" / "smoke_data"
    write_smoke_data(fresh, tmp_path)
    assert files_under(committed) == files_under(fresh)
    for name in files_under(committed):
        assert (committed / name).read_bytes() == (fresh / name).read_bytes(), name
