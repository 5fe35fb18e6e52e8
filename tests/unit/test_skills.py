"""Tests for simmerge.catalog.skills and the lm-eval task YAMLs in config/tasks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from simmerge.catalog.skills import SKILLS, get_skill, training_text, write_skill_data
from simmerge.core.io import read_jsonl

REPO = Path(__file__).resolve().parents[2]
TASKS_DIR = REPO / "config" / "tasks"
REQUIRED = {"n2w_fr", "n2w_de", "rhyme_mc", "element_symbol", "country_fr", "emoji_mc"}
SMALL = {"n_train": 40, "n_eval": 20, "n_probe": 8}


def answered(splits: dict[str, list[dict]]) -> list[dict]:
    return splits["train"] + splits["eval"]


# ----------------------------------------------------------------------------------------------------
# Registry


def test_registry_holds_the_required_skills():
    assert REQUIRED <= set(SKILLS)
    assert len(SKILLS) >= 7
    for name, skill in SKILLS.items():
        assert skill.name == name
        assert skill.output_type in ("generate_until", "multiple_choice")
        assert skill.description and skill.source
        assert get_skill(name) is skill
        assert (TASKS_DIR / f"simmerge_{name}.yaml").is_file(), f"no task YAML for {name}"


def test_skill_is_frozen():
    with pytest.raises(AttributeError):
        SKILLS["n2w_fr"].name = "other"


def test_unknown_skill_lists_known_names():
    with pytest.raises(KeyError) as info:
        get_skill("capital_mc")
    message = str(info.value)
    assert "capital_mc" in message
    for name in SKILLS:
        assert name in message


# ----------------------------------------------------------------------------------------------------
# Generic properties, every skill


@pytest.mark.parametrize("name", sorted(SKILLS))
def test_same_seed_same_rows_other_seed_other_rows(name):
    skill = get_skill(name)
    first = skill.generate(3, **SMALL)
    assert skill.generate(3, **SMALL) == first
    assert skill.generate(4, **SMALL) != first


@pytest.mark.parametrize("name", sorted(SKILLS))
def test_splits_are_disjoint_by_entity(name):
    skill = get_skill(name)
    splits = skill.generate(0, **SMALL)
    entities = {split: {r["entity"] for r in rows} for split, rows in splits.items()}
    assert not entities["train"] & entities["eval"]
    assert not entities["train"] & entities["probe"]
    assert not entities["eval"] & entities["probe"]
    for split, rows in splits.items():
        assert len(entities[split]) == skill.entities_needed(len(rows))


@pytest.mark.parametrize("name", sorted(SKILLS))
def test_row_formats(name):
    skill = get_skill(name)
    splits = skill.generate(0, **SMALL)
    assert {split: len(rows) for split, rows in splits.items()} == {
        "train": SMALL["n_train"],
        "eval": SMALL["n_eval"],
        "probe": SMALL["n_probe"],
    }
    for split, rows in splits.items():
        assert [r["id"] for r in rows] == [f"{name}-{split}-{i:04d}" for i in range(len(rows))]
        for row in rows:
            assert row["prompt"] and isinstance(row["entity"], str)
            if split == "probe":
                assert set(row) == {"id", "entity", "prompt"}
            elif skill.output_type == "generate_until":
                assert set(row) == {"id", "entity", "prompt", "answer"}
                assert row["answer"] and row["answer"] == row["answer"].strip()
            else:
                assert set(row) == {"id", "entity", "prompt", "choices", "label", "answer"}
                assert len(row["choices"]) == 4 and len(set(row["choices"])) == 4
                assert 0 <= row["label"] < 4
                assert row["choices"][row["label"]] == row["answer"]


@pytest.mark.parametrize("name", sorted(SKILLS))
def test_oversize_split_raises_with_the_available_count(name):
    skill = get_skill(name)
    available = skill.n_entities
    too_many = available * skill.rows_per_entity
    with pytest.raises(ValueError) as info:
        skill.generate(0, n_train=too_many, n_eval=10, n_probe=4)
    message = str(info.value)
    assert name in message
    assert f"n_train={too_many}" in message and "n_eval=10" in message and "n_probe=4" in message
    assert f"only {available} are available" in message
    assert "at most" in message  # says what n_train fits


@pytest.mark.parametrize("name", sorted(SKILLS))
def test_the_whole_universe_fits_exactly(name):
    skill = get_skill(name)
    rows = skill.n_entities * skill.rows_per_entity
    splits = skill.generate(0, n_train=rows - 12, n_eval=8, n_probe=4)
    assert sum(len(r) for r in splits.values()) == rows


def test_negative_size_raises():
    with pytest.raises(ValueError, match="n_eval"):
        get_skill("n2w_fr").generate(0, n_train=5, n_eval=-1, n_probe=2)


def test_eval_does_not_move_when_train_grows():
    for name in ("n2w_fr", "rhyme_mc", "emoji_mc", "element_symbol"):
        skill = get_skill(name)
        small = skill.generate(0, n_train=10, n_eval=20, n_probe=8)
        large = skill.generate(0, n_train=60, n_eval=20, n_probe=8)
        assert small["eval"] == large["eval"], name


def test_number_languages_share_one_entity_split():
    fr, de, es = (get_skill(n).generate(7, **SMALL) for n in ("n2w_fr", "n2w_de", "n2w_es"))
    for split in ("train", "eval", "probe"):
        entities = [r["entity"] for r in fr[split]]
        assert entities == [r["entity"] for r in de[split]] == [r["entity"] for r in es[split]]


# ----------------------------------------------------------------------------------------------------
# Answers checked against the source packages


@pytest.mark.parametrize(("name", "lang", "words"), [("n2w_fr", "fr", "French"), ("n2w_de", "de", "German")])
def test_number_words_match_num2words(name, lang, words):
    from num2words import num2words

    splits = get_skill(name).generate(0, n_train=9900, n_eval=100, n_probe=0)
    rows = {r["entity"]: r for r in answered(splits)}
    assert set(rows) == {str(n) for n in range(10000)}
    assert rows["347"]["prompt"] == f"347 in {words} words:"
    assert rows["347"]["answer"] == num2words(347, lang=lang)
    expected = {"fr": "trois cent quarante-sept", "de": "dreihundertsiebenundvierzig"}[lang]
    assert rows["347"]["answer"] == expected
    for row in answered(get_skill(name).generate(1, **SMALL)):
        assert row["answer"] == num2words(int(row["entity"]), lang=lang)


def test_spanish_number_words_match_num2words():
    from num2words import num2words

    for row in answered(get_skill("n2w_es").generate(0, **SMALL)):
        assert row["prompt"] == f"{row['entity']} in Spanish words:"
        assert row["answer"] == num2words(int(row["entity"]), lang="es")


def test_rhyme_answers_rhyme_and_distractors_do_not():
    import pronouncing

    splits = get_skill("rhyme_mc").generate(0, n_train=300, n_eval=100, n_probe=16)
    for row in answered(splits):
        target = row["entity"]
        assert row["prompt"] == f'Which word rhymes with "{target}"?\nAnswer:'
        assert row["answer"] in pronouncing.rhymes(target)
        assert target not in row["choices"]
        for choice in row["choices"]:
            if choice != row["answer"]:
                assert choice not in pronouncing.rhymes(target), (target, choice)
                assert target not in pronouncing.rhymes(choice), (target, choice)


def test_rhyme_classes_do_not_cross_splits():
    import pronouncing

    def rhyme_class(word):
        return pronouncing.rhyming_part(pronouncing.phones_for_word(word)[0])

    splits = get_skill("rhyme_mc").generate(0, n_train=600, n_eval=150, n_probe=32)
    classes = {
        split: {rhyme_class(w) for r in rows for w in (r["entity"], r.get("answer", r["entity"]))}
        for split, rows in splits.items()
    }
    assert not classes["train"] & classes["eval"]
    assert not classes["train"] & classes["probe"]
    assert not classes["eval"] & classes["probe"]


def test_element_symbols_match_periodictable():
    import periodictable

    splits = get_skill("element_symbol").generate(0, n_train=176, n_eval=60, n_probe=0)
    rows = answered(splits)
    assert len({r["entity"] for r in rows}) == 118
    by_prompt = {r["prompt"]: r["answer"] for r in rows}
    assert by_prompt["Chemical symbol of tungsten:"] == "W"
    assert by_prompt["Element with the symbol W:"] == "tungsten"
    for row in rows:
        element = periodictable.elements.name(row["entity"])
        if row["prompt"].startswith("Chemical symbol of "):
            assert row["answer"] == element.symbol
        else:
            assert row["prompt"] == f"Element with the symbol {element.symbol}:"
            assert row["answer"] == element.name


def test_country_names_match_cldr():
    from babel import Locale

    english, french = Locale("en").territories, Locale("fr").territories
    skill = get_skill("country_fr")
    splits = skill.generate(0, n_train=skill.n_entities - 40, n_eval=40, n_probe=0)
    rows = {r["entity"]: r for r in answered(splits)}
    assert rows["DE"]["prompt"] == "Germany in French:" and rows["DE"]["answer"] == "Allemagne"
    assert "FR" not in rows  # "France" is the same in both languages
    assert not {"EU", "UN", "ZZ", "AQ", "XA", "001"} & set(rows)
    for code, row in rows.items():
        assert row["prompt"] == f"{english[code]} in French:"
        assert row["answer"] == french[code] != english[code]


def test_emoji_names_match_the_emoji_package():
    import emoji

    skill = get_skill("emoji_mc")
    splits = skill.generate(0, n_train=skill.n_entities - 150, n_eval=150, n_probe=0)
    rows = {r["entity"]: r for r in answered(splits)}
    assert rows["🍔"]["prompt"] == "🍔 is called" and rows["🍔"]["answer"] == "hamburger"
    for char, row in rows.items():
        assert len(char) == 1
        assert emoji.EMOJI_DATA[char]["en"] == ":" + row["answer"].replace(" ", "_") + ":"


def test_emoji_distractors_come_from_the_same_split():
    splits = get_skill("emoji_mc").generate(0, **SMALL)
    for split in ("train", "eval"):
        names = {r["answer"] for r in splits[split]}
        for row in splits[split]:
            assert set(row["choices"]) <= names


# ----------------------------------------------------------------------------------------------------
# Files and training text


def test_write_skill_data_is_byte_identical(tmp_path):
    first = write_skill_data("rhyme_mc", tmp_path / "a", seed=5, **SMALL)
    second = write_skill_data("rhyme_mc", tmp_path / "b", seed=5, **SMALL)
    assert first == second
    assert first["rows"] == {"train": 40, "eval": 20, "probe": 8}
    assert first["entities"] == {"train": 40, "eval": 20, "probe": 8}
    assert first["entities_available"] == get_skill("rhyme_mc").n_entities
    for split in ("train", "eval", "probe"):
        a = (tmp_path / "a" / f"{split}.jsonl").read_bytes()
        assert a == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
        assert a.endswith(b"\n")
    assert read_jsonl(tmp_path / "a" / "eval.jsonl") == get_skill("rhyme_mc").generate(5, **SMALL)["eval"]


def test_write_skill_data_writes_utf8_with_sorted_keys(tmp_path):
    write_skill_data("emoji_mc", tmp_path, seed=0, **SMALL)
    line = (tmp_path / "train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert line.index('"answer"') < line.index('"choices"') < line.index('"entity"') < line.index('"id"')
    assert "\\u" not in line  # emoji written as UTF-8, not escaped


def test_write_skill_data_writes_nothing_when_sizes_do_not_fit(tmp_path):
    with pytest.raises(ValueError, match="element_symbol"):
        write_skill_data("element_symbol", tmp_path / "out", seed=0, n_train=900, n_eval=150, n_probe=32)
    assert not (tmp_path / "out").exists()


def test_element_split_sizes_count_rows():
    summary_rows = get_skill("element_symbol").generate(0, n_train=7, n_eval=5, n_probe=3)
    assert [len(summary_rows[s]) for s in ("train", "eval", "probe")] == [7, 5, 3]
    assert len({r["entity"] for r in summary_rows["train"]}) == 4


def test_training_text():
    row = {
        "id": "n2w_fr-eval-0003",
        "entity": "347",
        "prompt": "347 in French words:",
        "answer": "trois cent",
    }
    assert training_text(row) == ("347 in French words:", " trois cent")
    mc = get_skill("rhyme_mc").generate(0, **SMALL)["train"][0]
    assert training_text(mc) == (mc["prompt"], " " + mc["choices"][mc["label"]])
    probe = get_skill("n2w_fr").generate(0, **SMALL)["probe"][0]
    with pytest.raises(ValueError, match="probe"):
        training_text(probe)


# ----------------------------------------------------------------------------------------------------
# lm-eval task YAMLs


def make_task_folder(tmp_path: Path, n_eval: int = 8) -> Path:
    """Write eval data for every skill and a copy of config/tasks whose YAMLs point at it."""
    tasks = tmp_path / "tasks"
    shutil.copytree(TASKS_DIR, tasks)
    for name in SKILLS:
        data = tmp_path / "data" / name
        write_skill_data(name, data, seed=0, n_train=4, n_eval=n_eval, n_probe=2)
        yaml_path = tasks / f"simmerge_{name}.yaml"
        committed = yaml_path.read_text(encoding="utf-8")
        assert "data_files" not in committed and "dataset_kwargs" not in committed
        yaml_path.write_text(
            committed
            + "dataset_kwargs:\n"
            + f"  cache_dir: {tmp_path / 'hf_datasets'}\n"
            + f"  data_files:\n    test: {data / 'eval.jsonl'}\n",
            encoding="utf-8",
        )
    return tasks


def run_lm_eval(lm, tasks: Path, limit: int | None = None) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks), include_defaults=False)
    assert {f"simmerge_{n}" for n in SKILLS} <= set(manager.all_tasks)
    return simple_evaluate(
        model=lm, tasks=["simmerge"], task_manager=manager, limit=limit, log_samples=False, bootstrap_iters=0
    )


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_tasks_score_oracle_perfectly(tmp_path, offline):
    """A model that answers from the data scores 1 everywhere: prompt, target, choices and label are wired."""
    from lm_eval.api.model import LM

    class Oracle(LM):
        def loglikelihood(self, requests):
            # lm-eval scores " " + choice after the prompt (target_delimiter " ").
            return [
                (0.0, True) if (r.args[0], r.args[1]) == (r.doc["prompt"], " " + r.doc["answer"]) else (-9.0, False)
                for r in requests
            ]

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

        def generate_until(self, requests):
            assert all(r.args[0] == r.doc["prompt"] for r in requests)
            assert all(r.args[1]["until"] == ["\n"] and r.args[1]["do_sample"] is False for r in requests)
            return [" " + r.doc["answer"] for r in requests]

    results = run_lm_eval(Oracle(), make_task_folder(tmp_path))
    for name, skill in SKILLS.items():
        scores = results["results"][f"simmerge_{name}"]
        declared = yaml.safe_load((TASKS_DIR / f"simmerge_{name}.yaml").read_text())["metadata"]["version"]
        assert results["versions"][f"simmerge_{name}"] == declared
        if skill.output_type == "generate_until":
            assert scores["exact_match,strip"] == 1.0, name
            assert scores["chrf_item,strip"] == pytest.approx(1.0), name
        else:
            assert scores["acc,none"] == 1.0 and scores["acc_norm,none"] == 1.0, name
        assert scores["sample_len"] == 8


def test_tasks_run_with_hflm(tmp_path, offline):
    """Every task loads and runs through HFLM on a tiny random Llama with a byte-level tokenizer."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    # No merges: the vocabulary is the 256 byte symbols plus two specials, so any UTF-8 text (emoji) encodes.
    trainer = trainers.BpeTrainer(
        vocab_size=258,
        special_tokens=["<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([], trainer)
    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(hf_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=hf_tokenizer.eos_token_id,
        eos_token_id=hf_tokenizer.eos_token_id,
        pad_token_id=hf_tokenizer.pad_token_id,
    )
    model_dir = tmp_path / "model"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    hf_tokenizer.save_pretrained(model_dir)

    lm = HFLM(pretrained=str(model_dir), batch_size=4, device="cpu", dtype="float32")
    results = run_lm_eval(lm, make_task_folder(tmp_path), limit=4)
    for name, skill in SKILLS.items():
        scores = results["results"][f"simmerge_{name}"]
        assert scores["sample_len"] == 4
        keys = ("exact_match,strip", "chrf_item,strip")
        if skill.output_type == "multiple_choice":
            keys = ("acc,none", "acc_norm,none")
        for key in keys:
            assert 0.0 <= scores[key] <= 1.0, (name, key)
