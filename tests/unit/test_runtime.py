"""Runtime settings: read from the whole config, in no rule's params (tests/workflow/test_dryrun.py checks that
changing them re-runs nothing)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from simmerge.core.config import MergeSpec, ScoringSpec, parse_config
from simmerge.core.runtime import RUNTIME_KEYS, RuntimeSettings, runtime_settings

SMOKE = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "smoke.yaml").read_text(encoding="utf-8"))


def test_a_raw_config_and_its_parsed_model_give_the_same_settings():
    config = copy.deepcopy(SMOKE)
    config["scoring"]["batch_size"] = 3
    config["merges"]["scratch_dir"] = "/elsewhere"
    assert runtime_settings(config) == runtime_settings(parse_config(config)) == RuntimeSettings(3, "/elsewhere")


def test_left_out_settings_take_the_model_defaults():
    config = {key: value for key, value in SMOKE.items() if key not in {"scoring", "merges"}}
    assert runtime_settings(config) == RuntimeSettings(batch_size=16, scratch_dir=None)


def test_the_runtime_keys_are_fields_of_their_blocks():
    # rules/common.smk leaves exactly these out of the params it dumps from the blocks
    assert RUNTIME_KEYS["scoring"] <= set(ScoringSpec.model_fields)
    assert RUNTIME_KEYS["merges"] <= set(MergeSpec.model_fields)
