"""Tests of simmerge.merges.tasks: task YAMLs checked, materialised with absolute data paths, dumped back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tiny_tasks import write_task_data, write_task_dir

from simmerge.core.config import ConfigError
from simmerge.merges.tasks import (
    TaskYamlError,
    _Tagged,
    check_task_yaml,
    check_task_yamls,
    dump_task_yaml,
    load_task_yaml,
    materialize_tasks,
    resolved_task_cfg,
)


@pytest.fixture
def task_dir(tmp_path) -> Path:
    return write_task_dir(tmp_path / "tasks")


@pytest.fixture
def data_files(tmp_path) -> dict[str, Path]:
    return write_task_data(tmp_path)


def test_one_pass_materialises_a_loglikelihood_request_of_answer_and_stop(task_dir, data_files, tmp_path):
    out = tmp_path / "materialised"
    materialize_tasks(task_dir, data_files, out)
    words, pick = (resolved_task_cfg(out / f"simmerge_{name}.yaml") for name in ("words", "pick"))
    assert words["output_type"] == "loglikelihood"
    # the exact text greedy decoding must produce: delimiter, answer, stop (lm-eval keeps the trailing newline)
    assert words["doc_to_target"] == " {{answer}}\n"
    assert words["process_results"] == "simmerge_one_pass.one_pass_exact_match"
    assert [m["metric"] for m in words["metric_list"]] == ["exact_match", "gold_loglik"]
    assert (out / "simmerge_one_pass.py").is_file()
    assert pick["output_type"] == "multiple_choice"  # multiple choice is one pass already


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("generation_kwargs:\n  until: ['\\n', '.']\n  do_sample: false\n", "not one string"),
        ("generation_kwargs:\n  until: ['\\n']\n  do_sample: true\n", "it samples"),
    ],
)
def test_one_pass_refuses_a_task_that_does_not_decode_greedily_to_one_stop(
    override, problem, task_dir, data_files, tmp_path
):
    (task_dir / "simmerge_words.yaml").write_text(f"task: simmerge_words\ninclude: _generate_template_yaml\n{override}")
    with pytest.raises(TaskYamlError, match=problem) as info:
        materialize_tasks(task_dir, data_files, tmp_path / "out")
    assert str(task_dir / "simmerge_words.yaml") in str(info.value)
    assert "scoring.exact_match: generate" in str(info.value)


def test_materialize_tasks_writes_absolute_paths(task_dir, data_files, tmp_path, monkeypatch):
    (task_dir / "simmerge_other.yaml").write_text("task: simmerge_other\ninclude: _generate_template_yaml\n")
    (task_dir / "utils.py").write_text("def process_docs(ds):\n    return ds\n")
    (task_dir / "simmerge_words.yaml").write_text(
        "task: simmerge_words\ninclude: _generate_template_yaml\n"
        "process_docs: !function utils.process_docs\ndataset_kwargs:\n  keep_in_memory: true\n"
    )
    monkeypatch.chdir(tmp_path)
    relative = {"words": Path("words.jsonl"), "pick": Path("pick.jsonl")}
    out = tmp_path / "materialised"

    names = materialize_tasks(task_dir, relative, out, exact_match="generate")

    assert names == ["simmerge_words", "simmerge_pick"]
    assert {p.name for p in out.iterdir()} == {p.name for p in task_dir.iterdir()}
    words = load_task_yaml(out / "simmerge_words.yaml")
    test_file = words["dataset_kwargs"]["data_files"]["test"]
    assert Path(test_file).is_absolute() and Path(test_file) == data_files["words"].resolve()
    assert words["dataset_kwargs"]["keep_in_memory"] is True
    assert words["include"] == "_generate_template_yaml"
    assert "!function utils.process_docs" in (out / "simmerge_words.yaml").read_text().replace("'", "")
    assert load_task_yaml(out / "simmerge_pick.yaml")["dataset_kwargs"]["data_files"]["test"] == str(
        data_files["pick"].resolve()
    )
    assert "dataset_kwargs" not in load_task_yaml(out / "simmerge_other.yaml")
    # the committed YAMLs are left untouched
    assert "data_files" not in (task_dir / "simmerge_pick.yaml").read_text()


def test_materialize_tasks_missing_yaml_names_the_task(task_dir, data_files, tmp_path):
    with pytest.raises(FileNotFoundError, match="simmerge_nope") as err:
        materialize_tasks(task_dir, {"nope": data_files["words"]}, tmp_path / "out")
    assert "simmerge_pick" in str(err.value)  # lists what exists


def test_materialize_tasks_missing_data_names_task_and_file(task_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"simmerge_words.*absent\.jsonl"):
        materialize_tasks(task_dir, {"words": tmp_path / "absent.jsonl"}, tmp_path / "out")


def test_materialize_tasks_missing_folder(tmp_path, data_files):
    with pytest.raises(FileNotFoundError, match="task folder"):
        materialize_tasks(tmp_path / "none", data_files, tmp_path / "out")


def test_yaml_syntax_error_gives_the_line(task_dir):
    (task_dir / "simmerge_words.yaml").write_text("task: simmerge_words\ninclude: [_generate_template_yaml\n")
    with pytest.raises(TaskYamlError, match=r"\(line 3, column 1\)"):
        load_task_yaml(task_dir / "simmerge_words.yaml")


def test_a_tasks_definition_files_are_its_yaml_its_templates_and_its_function_modules(task_dir):
    from simmerge.merges.tasks import task_definition_files

    # an include chain (words -> extra -> generate template) whose middle link names a function of utils.py
    (task_dir / "utils.py").write_text("def process_docs(ds):\n    return ds\n")
    (task_dir / "_words_extra_yaml").write_text(
        "include: _generate_template_yaml\nprocess_docs: !function utils.process_docs\n"
    )
    (task_dir / "simmerge_words.yaml").write_text("task: simmerge_words\ninclude: _words_extra_yaml\n")
    words = [task_dir / name for name in ("_generate_template_yaml", "_words_extra_yaml", "simmerge_words.yaml")]
    assert task_definition_files(task_dir, ["words"]) == sorted([*words, task_dir / "utils.py"])
    pick = [task_dir / "_mc_template_yaml", task_dir / "simmerge_pick.yaml"]
    assert task_definition_files(task_dir, ["pick"]) == pick
    assert task_definition_files(task_dir, ["pick", "words"]) == sorted(
        {*task_definition_files(task_dir, ["pick"]), *task_definition_files(task_dir, ["words"])}
    )


def test_shipped_task_yamls_pass_the_check():
    shipped = Path(__file__).resolve().parents[2] / "config" / "tasks"
    skills = [path.stem.removeprefix("simmerge_") for path in shipped.glob("simmerge_*.yaml")]
    assert set(check_task_yamls(shipped, skills)) == set(skills) and len(skills) >= 6


def test_task_yaml_round_trip_keeps_function_tag(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("task: t\nprocess_docs: !function utils.process_docs\n")
    dump_task_yaml(load_task_yaml(path), tmp_path / "u.yaml")
    node = yaml.compose((tmp_path / "u.yaml").read_text())
    tags = {key.value: value.tag for key, value in node.value}
    assert tags["process_docs"] == "!function"


def test_a_function_module_that_does_not_parse_or_a_non_utf8_yaml_is_a_task_yaml_error(task_dir):
    assert issubclass(TaskYamlError, ConfigError)  # `simmerge` reports it as a config mistake, exit code 2
    yaml_path = task_dir / "simmerge_words.yaml"
    cfg = load_task_yaml(yaml_path)
    (task_dir / "broken.py").write_text("def f(:\n", encoding="utf-8")
    cfg["process_docs"] = _Tagged("broken.f", "!function")
    dump_task_yaml(cfg, yaml_path)
    with pytest.raises(TaskYamlError, match=r"!function broken.f: .*broken.py is not valid Python: .* \(line 1\)"):
        check_task_yaml(yaml_path)
    yaml_path.write_bytes(b"task: caf\xe9\n")
    with pytest.raises(TaskYamlError, match=r"is not UTF-8 text \(invalid continuation byte at byte 9\)"):
        load_task_yaml(yaml_path)
