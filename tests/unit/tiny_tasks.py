"""Two tiny lm-eval tasks (one generative, one multiple choice) and their data, shared by the scoring tests."""

from __future__ import annotations

from pathlib import Path

from tiny_llm import write_rows

GENERATE_TEMPLATE = """\
dataset_path: json
output_type: generate_until
test_split: test
doc_to_text: "{{prompt}}"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  do_sample: false
  max_gen_toks: 8
filter_list:
  - name: strip
    filter:
      - function: remove_whitespace
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
metadata:
  version: 1.0
"""

MC_TEMPLATE = """\
dataset_path: json
output_type: multiple_choice
test_split: test
doc_to_text: "{{prompt}}"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
"""


def write_task_dir(tasks: Path) -> Path:
    """A task folder as ``config/tasks`` is laid out: two templates and the tasks ``words`` and ``pick``."""
    tasks.mkdir()
    (tasks / "_generate_template_yaml").write_text(GENERATE_TEMPLATE)
    (tasks / "_mc_template_yaml").write_text(MC_TEMPLATE)
    (tasks / "simmerge_words.yaml").write_text("task: simmerge_words\ninclude: _generate_template_yaml\n")
    (tasks / "simmerge_pick.yaml").write_text("task: simmerge_pick\ninclude: _mc_template_yaml\n")
    return tasks


def write_task_data(folder: Path) -> dict[str, Path]:
    """Six rows for each task: ``words.jsonl`` (number -> word) and ``pick.jsonl`` (four colours)."""
    words = ["zero", "one", "two", "three", "four", "five"]
    generative = [
        {"id": f"w{i}", "entity": str(i), "prompt": f"{i} in words:", "answer": w} for i, w in enumerate(words)
    ]
    choices = ["red", "green", "blue", "black"]
    mc = [
        {"id": f"p{i}", "entity": str(i), "prompt": f"Colour {i}?", "choices": choices, "label": i % 4}
        | {"answer": choices[i % 4]}
        for i in range(6)
    ]
    return {
        "words": write_rows(folder / "words.jsonl", generative),
        "pick": write_rows(folder / "pick.jsonl", mc),
    }
