"""The shipped configs and how a bad one is expected to fail, shared by the config and run tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simmerge.core.config import ConfigError
from simmerge.run import load

REPO = Path(__file__).resolve().parents[2]


def read_config(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text(encoding="utf-8"))


def expect_config_error(raw: dict, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(raw, workdir=REPO)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message
