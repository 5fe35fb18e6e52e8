"""The two-step recipe of a cluster whose compute nodes are offline: `snakemake prefetch` where the Hub is reachable
fills the Hugging Face caches, then every job reads them offline. Run for real on the smoke catalog plus an `hf`
expert served by a hub cache laid out as huggingface_hub writes it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from snakemake_runner import load_config, run_snakemake, write_config

from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.core.io import read_json
from simmerge.core.layout import RunLayout

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_hub import add_to_cache  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.slow
def test_prefetch_with_the_caches_laid_downloads_nothing_and_the_fetch_reads_the_cache_offline(workflow_dir, tmp_path):
    config = load_config("smoke.yaml")
    base = config["catalog"]["base"]["source"]
    model = tmp_path / "hub_model"
    build_tiny_checkpoint(
        model, seed=5, hidden_size=base["hidden_size"], num_layers=base["num_layers"], num_heads=base["num_heads"]
    )
    cache = tmp_path / "hub"
    add_to_cache(cache, "org/hub-expert", COMMIT, {p.name: p.read_bytes() for p in model.iterdir()}, refs=("main",))
    config["catalog"]["experts"].append(
        {"name": "hub", "tasks": ["n2w_fr"], "source": {"kind": "hf", "repo_id": "org/hub-expert", "revision": COMMIT}}
    )
    path = write_config(workflow_dir, "hub.yaml", config)
    layout = RunLayout.of_run(config["run_name"])
    # a Hub that cannot be reached: nothing may need it once the cache holds the files
    env = {"HF_HUB_CACHE": str(cache), "HF_ENDPOINT": "http://127.0.0.1:9"}

    run_snakemake(workflow_dir, "prefetch", "--configfile", path, env={**env, "HF_HUB_OFFLINE": "1"})
    record = read_json(workflow_dir / layout.prefetch_record)
    assert record["checkpoints"]["hub"]["downloaded"] is False
    assert record["checkpoints"]["hub"]["commit"] == COMMIT
    # the user task reads its local files; arc_easy has a local copy (dataset_path) and needs no prefetch
    assert record["tasks"] == {"word_lengths": {"task": "word_lengths", "dataset_commits": {}, "downloaded": False}}

    manifest = layout.checkpoint_manifest("hub")
    run_snakemake(workflow_dir, str(manifest), "--configfile", path, env=env)
    fetched = read_json(workflow_dir / manifest)
    assert fetched["source"]["resolved_sha"] == COMMIT
    assert (workflow_dir / layout.checkpoint_dir("hub") / "model.safetensors").is_file()
