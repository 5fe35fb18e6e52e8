"""Atomic writes: nothing half-written is ever at the final path, and files get the usual permissions."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pandas as pd
import pytest

from simmerge.core.io import (
    atomic_dir,
    atomic_path,
    markdown_table,
    read_json,
    read_table_record,
    scratch_directory,
    write_json,
    write_table,
    write_text,
)


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


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_writers_leftovers_are_removed_by_the_next_writer(tmp_path):
    host = socket.gethostname()
    dead, alive = dead_pid(), os.getpid()
    half_written = tmp_path / f".labels.csv.{host}-{dead}-abc.tmp"
    half_written.write_text("half")
    in_progress = tmp_path / f".labels.csv.{host}-{alive}-xyz.tmp"
    in_progress.write_text("still being written")
    other_node = tmp_path / f".labels.csv.othernode-{dead}-abc.tmp"
    other_node.write_text("another host's")
    write_text("a,b\n", tmp_path / "labels.csv")
    assert not half_written.exists()
    assert in_progress.exists() and other_node.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["labels.csv"]


def test_scratch_directories_of_killed_merges_are_removed(tmp_path):
    host = socket.gethostname()
    stale = tmp_path / f"simmerge-merge-{host}-{dead_pid()}-q1"
    (stale / "merged").mkdir(parents=True)
    (stale / "merged" / "model.safetensors").write_bytes(b"\0" * 64)
    unrelated = tmp_path / "simmerge-plan-x"
    unrelated.mkdir()
    with scratch_directory("simmerge-merge-", tmp_path) as scratch:
        assert scratch.name.startswith(f"simmerge-merge-{host}-{os.getpid()}-")
        assert not stale.exists()
    assert not scratch.exists() and unrelated.exists()


def test_a_pipe_inside_a_markdown_cell_is_escaped():
    text = markdown_table(pd.DataFrame({"pair": ["a|b"], "seconds": ["1.0"]}), ["left", "right"])
    assert text.splitlines()[2] == r"| a\|b | 1.0 |"


def test_a_tables_record_lives_in_its_parquet_metadata_outside_the_data(tmp_path):
    table = pd.DataFrame({"a": ["x", "y"], "value": [0.5, 1.0]})
    write_table(table, tmp_path / "plain.parquet")
    write_table(table, tmp_path / "with.parquet", record={"provenance": {"git_commit": "abc"}})
    assert read_table_record(tmp_path / "with.parquet") == {"provenance": {"git_commit": "abc"}}
    assert read_table_record(tmp_path / "plain.parquet") is None
    read_back = pd.read_parquet(tmp_path / "with.parquet")
    pd.testing.assert_frame_equal(read_back, pd.read_parquet(tmp_path / "plain.parquet"))
    assert read_back.attrs == {}  # nothing of the record reaches a table built from it (the labels)
