"""Atomic writes: nothing half-written is ever at the final path, and files get the usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from simmerge.io import atomic_dir, atomic_path, read_json, write_json


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_directory_build_keeps_the_previous_one(tmp_path):
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "old").write_text("kept")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new").write_text("half")
            raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json({"b": 1, "a": 2}, tmp_path / "x.json")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert (tmp_path / "x.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert read_json(tmp_path / "x.json") == {"a": 2, "b": 1}
