"""End-to-end tests of simmerge.catalog.hub against a pre-populated Hugging Face cache, in offline mode.

The cache is laid out exactly as huggingface_hub writes it: ``blobs/`` named by the LFS sha256 (large
files) or the git blob sha1 (small files), ``snapshots/<commit>/`` of relative symlinks to the blobs,
``refs/<branch>`` holding the commit, and ``trees/<commit>.json`` with the tree listing.
``snapshot_download`` itself runs, unmocked, with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import huggingface_hub.constants
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from simmerge.catalog.hub import DEFAULT_PATTERNS, CheckpointSourceError, fetch_checkpoint, is_commit_sha
from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.core.io import sha256_file

REPO_ID = "simmerge-test/tiny-llama"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OLD_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
LFS_SUFFIXES = (".safetensors", ".bin")


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def add_to_cache(cache: Path, repo_id: str, commit: str, files: dict[str, bytes], refs: tuple[str, ...] = ()) -> Path:
    """Cache ``files`` as the hub client would for ``repo_id`` at ``commit``; return the snapshot folder."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    tree = {}
    for name, data in files.items():
        if name.endswith(LFS_SUFFIXES):
            lfs_sha256 = hashlib.sha256(data).hexdigest()
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{lfs_sha256}\nsize {len(data)}\n"
            blob_name = lfs_sha256
            tree[name] = {
                "size": len(data),
                "blob_id": _git_blob_sha1(pointer.encode()),
                "lfs_sha256": lfs_sha256,
                "lfs_size": len(data),
            }
        else:
            blob_name = _git_blob_sha1(data)
            tree[name] = {"size": len(data), "blob_id": blob_name}
        blob = storage / "blobs" / blob_name
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "trees").mkdir(parents=True, exist_ok=True)
    listing = {"format_version": 1, "files": {k: tree[k] for k in sorted(tree)}}
    (storage / "trees" / f"{commit}.json").write_text(json.dumps(listing, indent=1))
    for ref in refs:
        (storage / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)  # the hub client writes no trailing newline
    return snapshot


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, bytes]:
    src = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_checkpoint(src, seed=0)
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    files["README.md"] = b"# tiny\n"  # not in the allow patterns: must not be copied
    files[".gitattributes"] = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    return files


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def cache(tmp_path, tiny_files) -> Path:
    cache = tmp_path / "hf_cache"
    add_to_cache(cache, REPO_ID, COMMIT, tiny_files, refs=("main",))
    # An older commit with other weights, reachable only through a tag.
    old = dict(tiny_files, **{"model.safetensors": tiny_files["model.safetensors"][:-4] + b"\0\0\0\0"})
    add_to_cache(cache, REPO_ID, OLD_COMMIT, old, refs=("v0.1",))
    return cache


def test_is_commit_sha():
    assert is_commit_sha(COMMIT)
    assert not is_commit_sha("main")
    assert not is_commit_sha(COMMIT.upper())
    assert not is_commit_sha(COMMIT[:7])


def test_fetch_by_pinned_commit_copies_real_files_that_load(offline, cache, tiny_files, tmp_path):
    out = tmp_path / "ckpt"
    provenance = fetch_checkpoint(REPO_ID, COMMIT, out, cache_dir=cache)

    expected_files = sorted(name for name in tiny_files if name not in ("README.md", ".gitattributes"))
    assert provenance == {
        "kind": "hf",
        "repo_id": REPO_ID,
        "revision": COMMIT,
        "resolved_sha": COMMIT,
        "pinned": True,
        "files": expected_files,
    }
    assert sorted(p.name for p in out.iterdir()) == expected_files
    for name in expected_files:
        assert not (out / name).is_symlink()
        assert (out / name).read_bytes() == tiny_files[name]

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.decode(tokenizer("Allemagne")["input_ids"]) == "Allemagne"


def test_branch_resolves_to_its_commit_and_is_recorded(offline, cache, tmp_path, caplog):
    provenance = fetch_checkpoint(REPO_ID, "main", tmp_path / "ckpt", cache_dir=cache)
    assert provenance["revision"] == "main"
    assert provenance["resolved_sha"] == COMMIT
    assert provenance["pinned"] is False
    assert "not a commit sha" in caplog.text


def test_tag_resolves_to_the_older_commit(offline, cache, tmp_path):
    provenance = fetch_checkpoint(REPO_ID, "v0.1", tmp_path / "old", cache_dir=cache)
    assert provenance["resolved_sha"] == OLD_COMMIT
    fetch_checkpoint(REPO_ID, COMMIT, tmp_path / "new", cache_dir=cache)
    assert sha256_file(tmp_path / "old" / "model.safetensors") != sha256_file(tmp_path / "new" / "model.safetensors")


def test_cache_dir_defaults_to_hf_hub_cache(offline, cache, tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    provenance = fetch_checkpoint(REPO_ID, COMMIT, tmp_path / "ckpt")
    assert provenance["resolved_sha"] == COMMIT


UNKNOWN = "1111111111111111111111111111111111111111"


@pytest.mark.parametrize(
    ("repo_id", "revision", "state"),
    [
        (
            REPO_ID,
            UNKNOWN,
            f"commit {UNKNOWN} is not in the cache .* \\(cached commits: {COMMIT}, {OLD_COMMIT}\\)",
        ),
        (
            REPO_ID,
            "no-such-branch",
            "has no ref 'no-such-branch' \\(cached refs: main, v0.1; cached commits: ",
        ),
        ("simmerge-test/not-cached", COMMIT, "the cache .*hf_cache holds no copy of this repository"),
    ],
)
def test_unknown_revision_or_repo_offline_is_a_clear_error(offline, cache, tmp_path, repo_id, revision, state):
    out = tmp_path / "ckpt"
    with pytest.raises(CheckpointSourceError) as info:
        fetch_checkpoint(repo_id, revision, out, cache_dir=cache)
    message = str(info.value)
    assert message.startswith(
        f"repository {repo_id!r} at revision {revision!r} cannot be read from the local Hugging Face cache "
        "and the Hub cannot be reached (offline mode or no network): "
    )
    assert re.search(state, message), message
    assert "snakemake prefetch --configfile CONFIG" in message
    assert "HF_HOME" in message
    assert not out.exists()


def test_incomplete_snapshot_is_a_clear_error(offline, cache, tmp_path):
    snapshot = cache / ("models--" + REPO_ID.replace("/", "--")) / "snapshots" / COMMIT
    (snapshot / "tokenizer.json").unlink()
    for revision in (COMMIT, "main"):
        with pytest.raises(
            CheckpointSourceError,
            match=rf"the cached snapshot of commit {COMMIT} is incomplete \(missing: tokenizer\.json\)",
        ):
            fetch_checkpoint(REPO_ID, revision, tmp_path / "ckpt", cache_dir=cache)


def test_pickle_only_repository_is_refused(offline, tmp_path, tiny_files):
    cache = tmp_path / "hf_cache"
    files = {name: data for name, data in tiny_files.items() if not name.endswith(".safetensors")}
    files["pytorch_model.bin"] = b"PK\x03\x04 not really a pickle"
    add_to_cache(cache, "simmerge-test/bin-only", COMMIT, files, refs=("main",))
    out = tmp_path / "ckpt"
    with pytest.raises(CheckpointSourceError) as info:
        fetch_checkpoint("simmerge-test/bin-only", "main", out, cache_dir=cache)
    message = str(info.value)
    assert f"(commit {COMMIT}) has no *.safetensors files" in message
    assert "pickle weights only (pytorch_model.bin)" in message
    assert "no pickle loading" in message
    assert not out.exists()


def test_invalid_repo_id_is_a_clear_error(offline, cache, tmp_path):
    with pytest.raises(CheckpointSourceError, match="invalid repo id 'not a/valid//id'"):
        fetch_checkpoint("not a/valid//id", COMMIT, tmp_path / "ckpt", cache_dir=cache)


def test_default_patterns_take_weights_config_and_tokenizer_only():
    assert "*.safetensors" in DEFAULT_PATTERNS
    assert not any(p.endswith((".bin", ".pt")) for p in DEFAULT_PATTERNS)


@pytest.mark.parametrize("trusted", [False, True])
def test_repository_code_is_fetched_only_for_a_trusted_entry(offline, tmp_path, tiny_files, monkeypatch, trusted):
    from simmerge.catalog.build import fetch_hf_checkpoint

    cache = tmp_path / "hf_cache"
    add_to_cache(cache, "simmerge-test/with-code", COMMIT, {**tiny_files, "modeling_x.py": b"raise SystemExit\n"})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    source = {"kind": "hf", "repo_id": "simmerge-test/with-code", "revision": COMMIT, "trust_remote_code": trusted}
    manifest = fetch_hf_checkpoint("coder", source, tmp_path / "ckpt", base_manifest=None)
    assert ("modeling_x.py" in manifest["files"]) is trusted
    assert (tmp_path / "ckpt" / "modeling_x.py").is_file() is trusted


def test_prefetch_of_a_cached_commit_downloads_nothing(offline, cache):
    from simmerge.catalog.hub import prefetch_checkpoint

    record = prefetch_checkpoint(REPO_ID, COMMIT, cache_dir=cache)
    assert record["downloaded"] is False and Path(record["snapshot"]).name == COMMIT


def test_prefetch_of_a_missing_commit_offline_says_where_to_run_it(offline, cache):
    from simmerge.catalog.hub import prefetch_checkpoint

    with pytest.raises(CheckpointSourceError, match="not in the hub cache, and the download failed") as error:
        prefetch_checkpoint(REPO_ID, "2" * 40, cache_dir=cache)
    assert "run the prefetch where the Hub is reachable" in str(error.value)


def test_an_offline_fetch_of_an_uncached_revision_names_the_prefetch(offline, cache, tmp_path):
    with pytest.raises(CheckpointSourceError, match=r"snakemake prefetch --configfile CONFIG"):
        fetch_checkpoint(REPO_ID, "2" * 40, tmp_path / "out", cache_dir=cache)
