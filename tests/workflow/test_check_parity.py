"""`simmerge check` and the workflow's parse run one check (simmerge.run.check): fed the same bad config, both
refuse it with the same `error:` line, and neither prints a traceback.

Where Snakemake reads the file itself (a --configfile, before the Snakefile runs) its own message is what the user
sees; those cases assert that message, so a Snakemake upgrade that changes it shows up here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from snakemake_runner import load_config, run_snakemake, write_config

from simmerge.cli import main


def error_line(output: str) -> str:
    """The first `error:` line of an output, with the lines of its list of problems."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  - ")), len(lines))
    return "\n".join(lines[start:end])


def check_output(workflow_dir: Path, config: str, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(workflow_dir)
    code = main(["check", config])
    captured = capsys.readouterr()
    return code, captured.err


def with_unknown_task(root: Path) -> str:
    config = load_config("smoke.yaml")
    config["tasks"]["xyz"] = {"n_train": 10, "n_eval": 2, "n_probe": 2}
    return write_config(root, "unknown_task.yaml", config)


def with_wrong_type(root: Path) -> str:
    config = load_config("smoke.yaml")
    config["catalog"]["base"]["source"]["hidden_size"] = "sixty"
    return write_config(root, "wrong_type.yaml", config)


def with_unknown_method(root: Path) -> str:
    config = load_config("smoke.yaml")
    config["merges"]["operators"][0]["method"] = "linaer"
    return write_config(root, "unknown_method.yaml", config)


def with_task_yaml_syntax_error(root: Path) -> str:
    broken = root / "config" / "tasks" / "simmerge_n2w_fr.yaml"
    broken.write_text(broken.read_text(encoding="utf-8") + "metadata: {version: [\n", encoding="utf-8")
    return "config/smoke.yaml"


def with_function_module_syntax_error(root: Path) -> str:
    utils = root / "config" / "tasks" / "utils.py"
    utils.write_text(utils.read_text(encoding="utf-8") + "\ndef broken(:\n", encoding="utf-8")
    return "config/smoke.yaml"


def with_task_folder_missing_a_template(root: Path) -> str:
    (root / "config" / "tasks" / "_generate_template_yaml").unlink()
    return "config/smoke.yaml"


def with_unknown_expert_in_multiway(root: Path) -> str:
    config = load_config("smoke.yaml")
    config["multiway"]["sets"][0]["checkpoints"][0] = "nobody"
    return write_config(root, "unknown_member.yaml", config)


# how to break the workflow's copy (returning the --configfile to give), and what the `error:` line says
CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "unknown task": (
        with_unknown_task,
        "error: no task YAML in config/tasks declares 'task: simmerge_xyz' (for skill 'xyz'); tasks found:",
    ),
    "pydantic type error": (
        with_wrong_type,
        "catalog.base.source.tiny.hidden_size: Input should be a valid integer",
    ),
    "unknown operator method": (with_unknown_method, "'linaer'"),
    "task YAML syntax error": (
        with_task_yaml_syntax_error,
        "error: task YAML config/tasks/simmerge_n2w_fr.yaml: is not valid YAML: expected the node content, "
        "but found '<stream end>' (line 7, column 1)",
    ),
    "!function module syntax error": (
        with_function_module_syntax_error,
        "config/tasks/utils.py is not valid Python: invalid syntax (line",
    ),
    "included template missing": (
        with_task_folder_missing_a_template,
        "include '_generate_template_yaml' names no file in config/tasks",
    ),
    "multiway member not an expert": (with_unknown_expert_in_multiway, "['nobody'] are not experts"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_and_the_workflow_refuse_a_bad_config_with_the_same_line(case, workflow_dir, capsys, monkeypatch):
    breaks, expected = CASES[case]
    config = breaks(workflow_dir)
    code, check_err = check_output(workflow_dir, config, capsys, monkeypatch)
    result = run_snakemake(workflow_dir, "--dry-run", "--configfile", config, check=False)
    workflow_out = result.stdout + result.stderr
    assert code == 2 and result.returncode != 0
    assert expected in error_line(check_err), check_err
    assert error_line(workflow_out) == error_line(check_err), workflow_out
    assert "Traceback" not in workflow_out and "  File " not in workflow_out, workflow_out


def test_a_yaml_syntax_error_in_the_default_config_names_its_line_in_both(workflow_dir, capsys, monkeypatch):
    default = workflow_dir / "config" / "config.yaml"
    default.write_text(default.read_text(encoding="utf-8") + "oops: [\n", encoding="utf-8")
    lines = default.read_text(encoding="utf-8").count("\n") + 1
    code, check_err = check_output(workflow_dir, "config/config.yaml", capsys, monkeypatch)
    result = run_snakemake(workflow_dir, "--dry-run", check=False)
    expected = (
        "error: config file config/config.yaml is not valid YAML: expected the node content, "
        f"but found '<stream end>' (line {lines}, column 1)"
    )
    assert code == 2 and result.returncode != 0
    assert error_line(check_err) == expected
    assert error_line(result.stdout + result.stderr) == expected


def test_a_missing_default_config_is_one_line_in_both(workflow_dir, capsys, monkeypatch):
    (workflow_dir / "config" / "config.yaml").unlink()
    code, check_err = check_output(workflow_dir, "config/config.yaml", capsys, monkeypatch)
    result = run_snakemake(workflow_dir, "--dry-run", check=False)
    expected = "error: config file config/config.yaml not found; give the path of an existing YAML file"
    assert code == 2 and result.returncode != 0
    assert error_line(check_err) == expected
    assert error_line(result.stdout + result.stderr) == expected


def test_a_configfile_with_a_yaml_syntax_error_is_snakemakes_message_and_check_names_the_line(
    workflow_dir, capsys, monkeypatch
):
    """Snakemake reads a --configfile before the Snakefile runs; its message names no file, line or column."""
    (workflow_dir / "bad.yaml").write_text("run_name: x\ncatalog: [\n", encoding="utf-8")
    code, check_err = check_output(workflow_dir, "bad.yaml", capsys, monkeypatch)
    result = run_snakemake(workflow_dir, "--dry-run", "--configfile", "bad.yaml", check=False)
    assert code == 2 and result.returncode != 0
    assert error_line(check_err) == (
        "error: config file bad.yaml is not valid YAML: expected the node content, but found '<stream end>' "
        "(line 3, column 1)"
    )
    assert "Config file is not valid JSON or YAML" in result.stdout + result.stderr, result.stdout


def test_a_missing_configfile_is_snakemakes_traceback_and_one_line_in_check(workflow_dir, capsys, monkeypatch):
    """Snakemake opens a --configfile outside its own try (snakemake/common/configfile.py): a raw traceback."""
    code, check_err = check_output(workflow_dir, "nope.yaml", capsys, monkeypatch)
    result = run_snakemake(workflow_dir, "--dry-run", "--configfile", "nope.yaml", check=False)
    assert code == 2 and result.returncode != 0
    assert error_line(check_err) == "error: config file nope.yaml not found; give the path of an existing YAML file"
    output = result.stdout + result.stderr
    assert "FileNotFoundError: [Errno 2] No such file or directory: 'nope.yaml'" in output, output
