"""`simmerge lock`: hf branches and tags locked to commits beside the config, read back by every parse-time check.

Resolution runs, unmocked, against a hub cache laid out as huggingface_hub writes it (refs/<branch> → commit), in
offline mode.
"""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import yaml
from test_hub import add_to_cache

from simmerge.catalog.lock import lock_file_of, read_lock
from simmerge.cli import main
from simmerge.run import check_file

REPO = Path(__file__).resolve().parents[2]
MAIN = "0123456789abcdef0123456789abcdef01234567"
TAGGED = "fedcba9876543210fedcba9876543210fedcba98"
PINNED = "1111111111111111111111111111111111111111"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    add_to_cache(cache, "org/math", MAIN, {"config.json": b"{}"}, refs=("main",))
    add_to_cache(cache, "org/math", TAGGED, {"config.json": b"{ }"}, refs=("v1.0",))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def catalog_config(tmp_path: Path, **revisions: str) -> Path:
    """The smoke config with hf experts at these revisions (name → revision), written as my.yaml."""
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    for name, revision in revisions.items():
        config["catalog"]["experts"].append(
            {"name": name, "tasks": ["n2w_fr"], "source": {"kind": "hf", "repo_id": "org/math", "revision": revision}}
        )
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_lock_resolves_branches_and_tags_beside_the_config_and_check_reads_the_commits(
    hub_cache, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(REPO)
    config = catalog_config(tmp_path, latest="main", release="v1.0", pinned=PINNED)
    assert main(["lock", str(config)]) == 0
    assert "latest" in capsys.readouterr().out
    lock = read_lock(tmp_path / "my.lock.yaml")
    assert lock_file_of(config) == tmp_path / "my.lock.yaml"
    # a commit in the config needs no lock; each branch or tag is locked with where it was read
    assert {name: entry["commit"] for name, entry in lock["checkpoints"].items()} == {"latest": MAIN, "release": TAGGED}
    assert {entry["resolved_from"] for entry in lock["checkpoints"].values()} == {"cache"}
    assert check_file(config, workdir=REPO).commits == {"latest": MAIN, "release": TAGGED, "pinned": PINNED}


def test_an_unlocked_branch_is_refused_naming_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    config = catalog_config(tmp_path, latest="main")
    assert main(["check", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert (
        f"no lock file ({tmp_path / 'my.lock.yaml'}) locks the branch or tag of checkpoint 'latest' (org/math@main)"
        in err
    )
    assert f"run `simmerge lock {config}`" in err


def test_a_lock_written_for_another_revision_is_refused(hub_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    config = catalog_config(tmp_path, latest="main")
    assert main(["lock", str(config)]) == 0
    config.write_text(config.read_text().replace("revision: main", "revision: v1.0"))
    capsys.readouterr()
    assert main(["check", str(config)]) == 2
    err = capsys.readouterr().err
    assert "locks org/math@main but the config asks for org/math@v1.0" in err


def test_locking_offline_a_ref_the_cache_does_not_hold_is_one_line(hub_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    config = catalog_config(tmp_path, latest="dev")
    assert main(["lock", str(config)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model org/math@dev: offline (HF_HUB_OFFLINE=1)" in err and "no ref 'dev'" in err
    assert not (tmp_path / "my.lock.yaml").exists()
