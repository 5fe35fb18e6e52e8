"""Hub datasets locked to commits: found from lm-eval's index, locked by `simmerge lock`, checked at every load.

Offline, with hand-laid caches (tests/offline_datasets.py): the hub cache's ``refs/main`` is what `simmerge lock`
resolves, and the datasets Arrow cache — keyed by the repository's commit, as an online load leaves it — is what a
job reads.
"""

from __future__ import annotations

from pathlib import Path

import datasets.config
import huggingface_hub.constants
import pytest
import yaml
from offline_datasets import FAKE_REVISION, write_datasets_cache, write_gsm8k, write_hub_cache

from simmerge.catalog.harness import (
    DatasetRevisionError,
    hub_datasets,
    load_tasks,
    prefetch_task,
    scoring_spec,
)
from simmerge.catalog.lock import read_lock
from simmerge.cli import main
from simmerge.core.config import parse_task_spec
from simmerge.run import check_file

REPO = Path(__file__).resolve().parents[2]
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def spec(**raw):
    return parse_task_spec({"kind": "lmeval", **raw})


def test_a_tasks_hub_datasets_are_read_from_lm_evals_index_without_loading_data():
    assert hub_datasets("gsm8k", spec(), REPO) == {"openai/gsm8k": {"revision": "main", "configs": ["main"]}}
    # a group: one repository, one config per member subject
    stem = hub_datasets("stem", spec(task="mmlu_stem"), REPO)
    assert list(stem) == ["cais/mmlu"] and stem["cais/mmlu"]["revision"] == "main"
    assert {"abstract_algebra", "college_physics"} <= set(stem["cais/mmlu"]["configs"])
    # a local copy reads no Hub repository; a revision in dataset_kwargs is the one read
    assert hub_datasets("arc_easy", spec(dataset_path="config/smoke_data/ai2_arc"), REPO) == {}
    pinned = hub_datasets("gsm8k", spec(dataset_kwargs={"revision": OTHER}), REPO)
    assert pinned["openai/gsm8k"]["revision"] == OTHER


@pytest.fixture
def gsm8k_config(tmp_path, monkeypatch) -> Path:
    """The smoke config plus lm-eval's gsm8k read from the Hub, whose ``main`` the hub cache holds at FAKE_REVISION."""
    write_hub_cache(tmp_path / "hub", "openai/gsm8k", write_gsm8k(tmp_path / "copy", n_train=4, n_test=4))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(REPO)
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["tasks"]["gsm8k"] = {"kind": "lmeval", "n_eval": 2, "n_probe": 1, "n_train": 2}
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_hub_dataset_on_a_branch_is_refused_until_locked_then_read_at_the_commit(gsm8k_config, capsys):
    assert main(["check", str(gsm8k_config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "dataset of task 'gsm8k' (openai/gsm8k@main)" in err and f"run `simmerge lock {gsm8k_config}`" in err

    assert main(["lock", str(gsm8k_config)]) == 0
    assert f"dataset openai/gsm8k@main -> {FAKE_REVISION} (cache)" in capsys.readouterr().out
    locked = read_lock(gsm8k_config.with_name("my.lock.yaml"))["datasets"]
    assert locked["openai/gsm8k"]["commit"] == FAKE_REVISION and locked["openai/gsm8k"]["tasks"] == ["gsm8k"]
    assert check_file(gsm8k_config, workdir=REPO).dataset_commits == {"gsm8k": {"openai/gsm8k": FAKE_REVISION}}

    # a commit in the config needs no lock
    config = yaml.safe_load(gsm8k_config.read_text())
    config["tasks"]["gsm8k"]["dataset_kwargs"] = {"revision": OTHER}
    gsm8k_config.with_name("my.lock.yaml").unlink()
    gsm8k_config.write_text(yaml.safe_dump(config, sort_keys=False))
    assert check_file(gsm8k_config, workdir=REPO).dataset_commits == {"gsm8k": {"openai/gsm8k": OTHER}}


@pytest.mark.usefixtures("hub_and_datasets_offline")
def test_a_job_refuses_a_dataset_the_cache_holds_at_another_commit(tmp_path):
    write_datasets_cache(
        datasets.config.HF_DATASETS_CACHE, "openai/gsm8k", write_gsm8k(tmp_path / "copy", 4, 4), configs=["main"]
    )
    locked = scoring_spec("gsm8k", spec(), REPO, dataset_commits={"openai/gsm8k": FAKE_REVISION})
    tasks, _ = load_tasks(locked, workdir=REPO)
    assert len(tasks["gsm8k"].test_docs()) == 4
    assert prefetch_task(locked) == {
        "task": "gsm8k",
        "dataset_commits": {"openai/gsm8k": FAKE_REVISION},
        "downloaded": False,
    }

    moved = scoring_spec("gsm8k", spec(), REPO, dataset_commits={"openai/gsm8k": OTHER})
    with pytest.raises(DatasetRevisionError) as error:
        load_tasks(moved, workdir=REPO)
    assert str(error.value) == (
        f"lm-eval task gsm8k: the datasets cache holds openai/gsm8k at {FAKE_REVISION}, the lock says {OTHER}; "
        "run `snakemake prefetch --configfile <config>` where the Hub is reachable"
    )
