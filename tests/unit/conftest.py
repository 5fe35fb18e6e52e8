"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch CPU thread, and give the caller's setting back afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def hub_and_datasets_offline(monkeypatch, tmp_path):
    """The Hub unreachable (as in every job) and datasets' Arrow cache in the test's folder rather than ~/.cache
    (``datasets.config.HF_DATASETS_CACHE`` is read per load, not at import)."""
    import datasets.config

    from simmerge.core.runtime import offline_hub

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")
    with offline_hub():
        yield
