"""Tests of simmerge.core.provenance and simmerge.report.provenance: what every record says about who made it, and
the check that finds a results folder whose records mix code versions, CPUs, libraries or rebuilt checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simmerge.core.io import write_json
from simmerge.core.provenance import (
    LIBRARIES,
    UNKNOWN,
    code_state,
    mixed_provenance,
    parse_cpuinfo,
    provenance,
    weights_sha256,
)
from simmerge.features.summary import write_archive
from simmerge.report.provenance import provenance_table, read_provenance

SRC = Path(__file__).resolve().parents[2] / "src"
# this machine and libraries, from a clean checkout of one commit: the tests must not depend on the tree they run in
CLEAN = {**provenance(), "commit": "0" * 40, "dirty": False}

# --------------------------------------------------------------------------------------------------------------
# provenance()


def test_provenance_has_every_field_and_is_json():
    p = provenance()
    assert set(p) == {"simmerge", "commit", "dirty", "machine", "cpu", "cpu_flags", "python", "libraries"}
    assert p["simmerge"] and p["cpu"] and p["python"].count(".") == 2
    assert list(p["libraries"]) == list(LIBRARIES)
    assert p["libraries"]["numpy"] == np.__version__
    assert json.loads(json.dumps(p)) == p


def test_provenance_is_cached_but_callers_get_their_own_copy():
    first = provenance()
    first["libraries"]["numpy"] = "0"
    first["cpu_flags"].append("avx512f")
    assert provenance()["libraries"]["numpy"] == np.__version__
    assert provenance() == provenance() and provenance() is not provenance()


def test_provenance_imports_no_heavy_library():
    code = (
        "import sys; from simmerge.core.provenance import provenance; provenance(); "
        "print(sorted(m for m in ('torch', 'transformers', 'mergekit', 'lm_eval', 'sklearn', 'pandas') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_cpu_model_and_numeric_flags_are_read_from_cpuinfo():
    x86 = (
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile ht\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu\n"
    )
    assert parse_cpuinfo(x86) == (
        "Intel(R) Xeon(R) Platinum 8480+",
        ["amx_bf16", "amx_tile", "avx", "avx2", "avx512_bf16", "avx512f", "fma"],
    )
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes sve sve2 bf16 i8mm\n"
    assert parse_cpuinfo(arm) == (None, ["asimd", "bf16", "i8mm", "sve", "sve2"])
    assert parse_cpuinfo("") == (None, [])


# --------------------------------------------------------------------------------------------------------------
# code_state: a checkout's commit and whether the code that shapes numbers differs from it


def git(root: Path, *args: str) -> str:
    command = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    root = tmp_path / "repo"
    package = root / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    (root / "README.md").write_text("hello\n")
    (root / ".gitignore").write_text("results/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root, package


def test_a_clean_checkout_gives_its_commit(checkout):
    root, package = checkout
    assert code_state(package) == (git(root, "rev-parse", "HEAD"), False)


@pytest.mark.parametrize(
    ("change", "dirty"),
    [
        (lambda root: (root / "src" / "pkg" / "__init__.py").write_text("x = 2\n"), True),
        (lambda root: (root / "src" / "pkg" / "new.py").write_text("y = 1\n"), True),  # untracked code counts
        (lambda root: (root / "README.md").write_text("changed\n"), False),  # no number depends on it
        (lambda root: (root / "results").mkdir() or (root / "results" / "x.json").write_text("{}"), False),
    ],
    ids=["tracked-code", "untracked-code", "readme", "results"],
)
def test_dirty_means_the_code_differs_from_the_commit(checkout, change, dirty):
    root, package = checkout
    change(root)
    assert code_state(package) == (git(root, "rev-parse", "HEAD"), dirty)


def test_a_package_outside_a_checkout_or_untracked_in_one_has_no_commit(checkout, tmp_path):
    root, _ = checkout
    loose = tmp_path / "site-packages" / "pkg"
    loose.mkdir(parents=True)
    (loose / "__init__.py").write_text("")
    assert code_state(loose) == (None, None)
    # e.g. a wheel installed into a .venv inside the checkout: in the git tree, but not its code
    venv = root / ".venv" / "pkg"
    venv.mkdir(parents=True)
    (venv / "__init__.py").write_text("")
    assert code_state(venv) == (None, None)


def test_this_package_reports_the_commit_of_its_own_checkout():
    commit, dirty = code_state(SRC / "simmerge")
    head = subprocess.run(["git", "-C", str(SRC), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert commit == (head.stdout.strip() if head.returncode == 0 else None)
    assert isinstance(dirty, bool) or commit is None


# --------------------------------------------------------------------------------------------------------------
# weights_sha256


def manifest(name: str, weights: str = "w", *, legacy: bool = False) -> dict:
    record = {
        "name": name,
        "weight_files": ["model-1.safetensors", "model-2.safetensors"],
        "files": {
            "config.json": {"sha256": "c" * 64, "bytes": 10},
            "model-1.safetensors": {"sha256": weights * 64, "bytes": 10},
            "model-2.safetensors": {"sha256": "2" * 64, "bytes": 10},
        },
    }
    if not legacy:
        record["weights_sha256"] = weights_sha256(record)
        record["provenance"] = CLEAN
    return record


def test_weights_digest_covers_the_weights_only_and_legacy_manifests_give_the_same_value():
    fresh = manifest("a")
    assert weights_sha256(manifest("a", legacy=True)) == fresh["weights_sha256"]
    assert weights_sha256(manifest("a", "x", legacy=True)) != fresh["weights_sha256"]
    other_config = manifest("a", legacy=True)
    other_config["files"]["config.json"]["sha256"] = "d" * 64
    assert weights_sha256(other_config) == fresh["weights_sha256"]


# --------------------------------------------------------------------------------------------------------------
# mixed_provenance


def other(**changes) -> dict:
    return {**CLEAN, **changes}


def merge(a: str, b: str, cited: dict, prov: dict | None) -> dict:
    record = {"a": a, "b": b, "operator": "linear", "checkpoints_sha256": cited}
    if prov is not None:
        record["provenance"] = prov
    return record


def test_one_setup_and_current_weights_give_one_group_and_no_warning():
    manifests = {name: manifest(name, weights) for name, weights in (("base", "0"), ("a", "1"), ("b", "2"))}
    cited = {name: m["weights_sha256"] for name, m in manifests.items()}
    records = {f"checkpoints/{name}/manifest.json": m for name, m in manifests.items()}
    records["merges/a__b/linear.json"] = merge("a", "b", cited, CLEAN)
    records["scores/experts/a/t1.json"] = {"checkpoint": "a", "provenance": CLEAN}
    check = mixed_provenance(records, manifests)
    assert check.warnings == [] and check.stale == []
    assert len(check.groups) == 1
    assert check.groups[0].kinds == {"checkpoints": 3, "merges": 1, "scores": 1}


def test_two_commits_two_cpus_a_rebuilt_parent_and_legacy_records_are_all_flagged():
    manifests = {name: manifest(name, weights) for name, weights in (("base", "0"), ("a", "1"), ("b", "2"))}
    cited = {name: m["weights_sha256"] for name, m in manifests.items()}
    rebuilt = {**cited, "b": manifest("b", "9")["weights_sha256"]}  # b's weights when this merge was made
    records = {f"checkpoints/{name}/manifest.json": m for name, m in manifests.items()}
    records |= {
        "merges/a__b/linear.json": merge("a", "b", cited, other(commit="1" * 40)),
        "merges/a__b/ties.json": merge("a", "b", rebuilt, other(commit="2" * 40)),
        "merges/b__a/slerp.json": merge("b", "a", cited, other(commit="1" * 40, cpu="Other CPU", cpu_flags=["avx2"])),
        "scores/experts/a/t1.json": {"checkpoint": "a"},  # written before provenance was recorded
        "merges/a__b/dare.json": {"a": "a", "b": "b", "operator": "dare"},
    }
    check = mixed_provenance(records, manifests)
    by_text = {group.description: group for group in check.groups}
    assert by_text[UNKNOWN].kinds == {"merges": 1, "scores": 1}
    assert check.groups[-1].provenance is None  # unknown last
    assert sum(group.count for group in check.groups) == len(records)
    assert [(s.record, s.checkpoint, s.current) for s in check.stale] == [
        ("merges/a__b/ties.json", "b", manifests["b"]["weights_sha256"])
    ]
    text = "\n".join(check.warnings)
    assert "2 record(s) carry no provenance" in text
    assert "3 code versions (commit: 000000000000 vs 111111111111 vs 222222222222)" in text
    assert "CPUs (cpu: " in text and "Other CPU" in text and "cpu_flags: " in text
    assert "library versions (" not in text and "uncommitted" not in text  # libraries agree, trees are clean
    assert "1 record(s) were computed from checkpoint weights that the current manifests no longer cite" in text
    assert "(rebuilt or removed since: b)" in text


def test_library_versions_are_compared_one_by_one_and_a_missing_parent_manifest_is_stale():
    newer = other(libraries={**CLEAN["libraries"], "torch": "99.0"})
    records = {
        "merges/a__b/linear.json": merge("a", "b", {"a": "f" * 64}, CLEAN),
        "merges/a__b/ties.json": merge("a", "b", {}, newer),
    }
    check = mixed_provenance(records, {})
    assert any(f"torch: {CLEAN['libraries']['torch']} vs 99.0" in w for w in check.warnings)
    assert not any("numpy:" in w for w in check.warnings)
    assert [(s.checkpoint, s.current) for s in check.stale] == [("a", None)]


def test_a_summary_counts_each_distinct_part_once():
    parts = {"t1": CLEAN, "t2": CLEAN, "sketch": other(commit="3" * 40)}
    check = mixed_provenance({"features/models/a.npz": {"provenance": parts}})
    assert sorted(group.count for group in check.groups) == [1, 1]
    assert any("code versions" in w for w in check.warnings)


# --------------------------------------------------------------------------------------------------------------
# read_provenance: the report's reader of a run folder


def test_read_provenance_reads_manifests_records_and_summaries_of_a_run(tmp_path):
    run = tmp_path / "results" / "run"
    paths = []
    for name, weights in (("base", "0"), ("a", "1"), ("b", "2")):
        paths.append(run / "checkpoints" / name / "manifest.json")
        write_json(manifest(name, weights), paths[-1])
    cited = {name: manifest(name, w)["weights_sha256"] for name, w in (("base", "0"), ("a", "1"), ("b", "9"))}
    paths.append(run / "merges" / "a__b" / "linear.json")
    write_json(merge("a", "b", cited, CLEAN), paths[-1])
    sketch = {"size": 1, "seed": 0, "top_fraction": 0.1, "provenance": CLEAN}
    paths.append(run / "features" / "models" / "a.npz")
    write_archive(paths[-1], {"provenance": {"t1": CLEAN}, "sketch": sketch}, {"x": np.zeros(2)})
    paths.append(run / "features" / "models" / "b.npz")
    write_archive(paths[-1], {"sketch": {"size": 1}}, {"x": np.zeros(2)})  # a summary of before
    check = read_provenance(run, paths)
    assert [s.record for s in check.stale] == ["merges/a__b/linear.json"]
    table = provenance_table(check)
    assert list(table.columns) == ["provenance", "records", "checkpoints", "features", "merges"]
    assert table.to_dict("records")[-1] == {
        "provenance": UNKNOWN,
        "records": 1,
        "checkpoints": 0,
        "features": 1,
        "merges": 0,
    }
    assert table["records"].tolist() == [5, 1]
