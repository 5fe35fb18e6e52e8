"""The `simmerge` command line: config checks and the per-rule subcommands."""

from __future__ import annotations

from pathlib import Path

import yaml

from simmerge.cli import main
from simmerge.core.io import read_json

REPO = Path(__file__).resolve().parents[2]


def test_check_lists_the_catalog(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["check", "config/smoke.yaml"]) == 0
    out = capsys.readouterr().out
    assert "run 'smoke', base 'tiny'" in out
    assert "fr" in out and "finetune" in out


def test_check_reports_a_bad_config_with_exit_code_2(tmp_path, capsys):
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    config["catalog"]["experts"][0]["tasks"] = ["nope"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint 'fr'" in err and "'nope'" in err


def test_check_lists_where_each_task_comes_from(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["check", "config/smoke.yaml"]) == 0
    assert (
        "tasks: n2w_fr, arc_easy (lm-eval arc_easy), word_lengths (yaml config/smoke_data/word_lengths)"
        in capsys.readouterr().out
    )


def lm_eval_task_problem(tmp_path, capsys, name: str, spec: dict) -> str:
    """`simmerge check` on the smoke config with one more task: exit code 2 and its one-line message."""
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    config["tasks"][name] = spec
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_check_names_an_unknown_lm_eval_task_and_the_closest_it_knows(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    err = lm_eval_task_problem(tmp_path, capsys, "hellaswg", {"kind": "lmeval"})
    assert "tasks.hellaswg: no task or group 'hellaswg' in lm-eval's registry" in err
    assert "closest: hellaswag" in err


def test_check_names_a_dataset_path_or_a_task_folder_that_does_not_exist(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    err = lm_eval_task_problem(tmp_path, capsys, "arc_challenge", {"kind": "lmeval", "dataset_path": "data/nowhere"})
    assert f"tasks.arc_challenge.dataset_path: {REPO / 'data/nowhere'} does not exist" in err
    err = lm_eval_task_problem(tmp_path, capsys, "mine", {"kind": "yaml", "path": "evals/mine"})
    assert f"tasks.mine.path: {REPO / 'evals/mine'} does not exist" in err


def test_check_refuses_data_overrides_on_a_group(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    err = lm_eval_task_problem(
        tmp_path, capsys, "mmlu", {"kind": "lmeval", "dataset_path": "config/smoke_data/ai2_arc"}
    )
    assert "tasks.mmlu: 'mmlu' is a group of several datasets" in err


def test_schema_subcommand_writes_the_committed_schema(tmp_path):
    out = tmp_path / "schema.yaml"
    assert main(["schema", "-o", str(out)]) == 0
    assert out.read_text() == (REPO / "config/schema/config.schema.yaml").read_text()


def test_tiny_checkpoint_subcommand_writes_a_manifest(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["tiny-checkpoint", "--name", "t", "--seed", "1", "--hidden-size", "32", "-o", str(out)]) == 0
    assert read_json(out / "manifest.json")["hidden_size"] == 32


def test_fetch_checkpoint_offline_without_cache_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    # the hub client reads these once, at import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code = main(["fetch-checkpoint", "org/model", "0" * 40, "--name", "m", "-o", str(tmp_path / "m")])
    assert code == 2
    assert "org/model" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
