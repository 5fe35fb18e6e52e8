"""Tests of simmerge.features.probe_pass: the per-checkpoint probe pass and the model summary file."""

from __future__ import annotations

import json
import math
import sys
import types

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from simmerge.catalog.toy import build_tiny_checkpoint
from simmerge.core.io import sha256_file
from simmerge.features.probe_pass import (
    choose_modes,
    probe_pass,
    probe_task,
    projection_matrix,
    sketch_checkpoint,
    summarise_checkpoint,
)
from simmerge.features.summary import FUNCTIONAL_KEYS, SKETCH_KEYS, SummaryFormatError, assemble_summary, load_summary

HIDDEN = 32
LAYERS = 2
HEADS = 4
VOCAB = 259  # byte tokenizer: 3 specials + 256 bytes
MAX_LENGTH = 24
PROMPTS = {
    "alpha": [
        "Belarus in French:",
        "abcd",
        "A much longer prompt that the probe pass has to cut at max_length tokens",
        "Chile:",
        "1205 in German words:",
    ],
    "beta": ["🚣 is called", "Element with the symbol Sc:", "xyzw"],
}
FULL = dict(
    top_k=5,
    full_vocab_max_mb=100,
    hidden_max_mb=100,
    attention_max_mb=100,
    projection_dim=8,
    projection_seed=7,
    batch_size=4,
    max_length=MAX_LENGTH,
    device="cpu",
    threads=1,
)
SMALL = {**FULL, "full_vocab_max_mb": 0, "hidden_max_mb": 0, "attention_max_mb": 0}
SPEC = {
    "top_k": 5,
    "full_vocab_max_mb": 100,
    "hidden_max_mb": 0,
    "attention_max_mb": 0,
    "projection_dim": 8,
    "sketch_size": 100,
    "top_fraction": 0.2,
    "batch_size": 4,
    "max_length": MAX_LENGTH,
}


def write_probes(folder, prompts_by_task):
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for task, prompts in prompts_by_task.items():
        path = folder / f"{task}.jsonl"
        rows = [{"id": f"{task}-probe-{i:04d}", "entity": str(i), "prompt": p} for i, p in enumerate(prompts)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        files[task] = path
    return files


def fake_weight_sketch(ckpt_dir, base_dir, *, size, seed, top_fraction):
    """Contract-shaped sketch arrays, so probe_features can be tested without simmerge.features.sketch."""
    return {
        "sketch/names": np.array(["lm_head.weight", "model.layers.0.mlp.up_proj.weight"]),
        "sketch/layer": np.array([-1, 0], dtype=np.int32),
        "sketch/numel": np.array([10, 20], dtype=np.int64),
        "sketch/tau_norm": np.array([0.0, 1.0]),
        "sketch/theta_norm": np.array([1.0, 2.0]),
        "sketch/base_norm": np.array([1.0, 2.0]),
        "sketch/tau_dot_base": np.array([0.0, 0.5]),
        "sketch/tau_threshold": np.array([0.0, 0.1]),
        "sketch/offsets": np.array([0, 1, 3], dtype=np.int64),
        "sketch/coords": np.array([4, 2, 9], dtype=np.int64),
        "sketch/tau": np.array([0.0, 0.25, -0.5], dtype=np.float32),
    }


@pytest.fixture()
def fake_sketch(monkeypatch):
    module = types.ModuleType("simmerge.features.sketch")
    module.weight_sketch = fake_weight_sketch
    monkeypatch.setitem(sys.modules, "simmerge.features.sketch", module)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe_ckpts")
    for seed in (0, 1):
        build_tiny_checkpoint(root / f"m{seed}", seed=seed, hidden_size=HIDDEN, num_layers=LAYERS, num_heads=HEADS)
    return root / "m0", root / "m1"


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory):
    return write_probes(tmp_path_factory.mktemp("probes"), PROMPTS)


@pytest.fixture(scope="module")
def full_pass(ckpts, probe_files):
    return probe_pass(ckpts[0], probe_files, **FULL)


@pytest.fixture(scope="module")
def small_pass(ckpts, probe_files):
    return probe_pass(ckpts[0], probe_files, **SMALL)


@pytest.fixture(scope="module")
def direct(ckpts):
    """Unbatched reference forward passes, one probe at a time."""
    torch.set_num_threads(1)
    out = {}
    for ckpt in ckpts:
        tokenizer = AutoTokenizer.from_pretrained(ckpt)
        model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager").eval()
        runs = {}
        for task, prompts in PROMPTS.items():
            runs[task] = []
            for prompt in prompts:
                ids = tokenizer(prompt)["input_ids"][:MAX_LENGTH]
                with torch.no_grad():
                    o = model(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
                runs[task].append(
                    {
                        "ids": ids,
                        "logp": torch.log_softmax(o.logits[0], -1).numpy(),
                        "hidden": torch.stack(o.hidden_states)[:, 0].numpy(),  # [L+1, n, hidden]
                        "attention": torch.stack(o.attentions)[:, 0].numpy(),  # [L, H, n, n]
                    }
                )
        out[ckpt] = runs
    return out


def per_probe(array, lengths, axis=0):
    """Split a concatenated [.., N, ..] array back into probes."""
    return np.split(array, np.cumsum(lengths)[:-1], axis=axis)


def tri_per_probe(attention, lengths):
    return np.split(attention, np.cumsum([n * (n + 1) // 2 for n in lengths])[:-1], axis=-1)


# ----------------------------------------------------------------------------------------------------------
# Shapes, dtypes and modes


@pytest.mark.parametrize("which", ["full", "small"])
def test_shapes_and_dtypes_follow_the_contract(which, full_pass, small_pass):
    arrays, meta = full_pass if which == "full" else small_pass
    assert (meta["num_layers"], meta["num_heads"], meta["hidden_size"], meta["vocab_size"]) == (
        LAYERS,
        HEADS,
        HIDDEN,
        VOCAB,
    )
    assert meta["top_k"] == 5 and meta["projection_seed"] == 7
    for task, prompts in PROMPTS.items():
        P = len(prompts)
        lengths = arrays[f"{task}/lengths"]
        N = int(lengths.sum())
        S = sum(n * (n + 1) // 2 for n in lengths)
        assert lengths.dtype == np.int32 and lengths.shape == (P,)
        assert arrays[f"{task}/token_ids"].dtype == np.int32 and arrays[f"{task}/token_ids"].shape == (N,)
        assert arrays[f"{task}/topk_ids"].dtype == np.int32 and arrays[f"{task}/topk_ids"].shape == (N, 5)
        assert arrays[f"{task}/topk_logp"].dtype == np.float32 and arrays[f"{task}/topk_logp"].shape == (N, 5)
        assert arrays[f"{task}/hidden_norm"].dtype == np.float32
        assert arrays[f"{task}/hidden_norm"].shape == (LAYERS + 1, P)
        assert arrays[f"{task}/attention_norm"].dtype == np.float32
        assert arrays[f"{task}/attention_norm"].shape == (LAYERS, HEADS, P)
        assert arrays[f"{task}/hidden"].dtype == np.float16
        assert arrays[f"{task}/attention"].dtype == np.float16
        if which == "full":
            assert meta["logprobs"][task] == "full"
            assert meta["hidden"][task] == {"mode": "full", "dim": HIDDEN}
            assert meta["attention"][task] == {"mode": "full", "dim": None}
            assert arrays[f"{task}/logp"].dtype == np.float32 and arrays[f"{task}/logp"].shape == (N, VOCAB)
            assert arrays[f"{task}/hidden"].shape == (LAYERS + 1, N, HIDDEN)
            assert arrays[f"{task}/attention"].shape == (LAYERS, HEADS, S)
        else:
            assert meta["logprobs"][task] == "topk"
            assert meta["hidden"][task] == {"mode": "projected", "dim": 8}
            assert meta["attention"][task] == {"mode": "projected", "dim": 8}
            assert f"{task}/logp" not in arrays
            assert arrays[f"{task}/hidden"].shape == (LAYERS + 1, N, 8)
            assert arrays[f"{task}/attention"].shape == (LAYERS, HEADS, P * 8)
        assert np.isfinite(arrays[f"{task}/hidden"]).all() and np.isfinite(arrays[f"{task}/attention"]).all()
    expected = {f"{t}/{k}" for t in PROMPTS for k in FUNCTIONAL_KEYS}
    if which == "full":
        expected |= {f"{t}/logp" for t in PROMPTS}
    assert set(arrays) == expected


def test_modes_follow_the_budgets():
    shape = dict(num_layers=2, num_heads=4, hidden_size=32, vocab_size=100)
    lengths = [10, 10]
    # hidden full: 2 * 3 * 20 * 32 = 3840 bytes; logp full: 4 * 20 * 100 = 8000 bytes
    modes = choose_modes(
        n_positions=20,
        lengths=lengths,
        full_vocab_max_mb=0.008,
        hidden_max_mb=0.0038,
        attention_max_mb=0,
        projection_dim=8,
        **shape,
    )
    assert modes["logprobs"] == "full"
    assert modes["hidden"] == {"mode": "projected", "dim": 8}
    assert modes["attention"] == {"mode": "projected", "dim": 8}
    # A projection at least as wide as the input would not shrink anything: keep it exact.
    modes = choose_modes(
        n_positions=20,
        lengths=lengths,
        full_vocab_max_mb=0,
        hidden_max_mb=0,
        attention_max_mb=0,
        projection_dim=64,
        **shape,
    )
    assert modes["logprobs"] == "topk"
    assert modes["hidden"] == {"mode": "full", "dim": 32}
    assert modes["attention"] == {"mode": "full", "dim": None}


def test_token_ids_are_the_tokenizer_ids_cut_to_max_length(full_pass, ckpts):
    arrays, _ = full_pass
    tokenizer = AutoTokenizer.from_pretrained(ckpts[0])
    for task, prompts in PROMPTS.items():
        expected = [tokenizer(p)["input_ids"][:MAX_LENGTH] for p in prompts]
        assert arrays[f"{task}/lengths"].tolist() == [len(ids) for ids in expected]
        assert arrays[f"{task}/token_ids"].tolist() == [i for ids in expected for i in ids]
    assert max(arrays["alpha/lengths"]) == MAX_LENGTH


# ----------------------------------------------------------------------------------------------------------
# Values against a direct forward pass


def test_log_probs_match_the_model(full_pass, direct, ckpts):
    arrays, _ = full_pass
    for task in PROMPTS:
        lengths = arrays[f"{task}/lengths"]
        ids = per_probe(arrays[f"{task}/topk_ids"], lengths)
        values = per_probe(arrays[f"{task}/topk_logp"], lengths)
        full = per_probe(arrays[f"{task}/logp"], lengths)
        for ref, top_ids, top_logp, logp in zip(direct[ckpts[0]][task], ids, values, full, strict=True):
            np.testing.assert_allclose(top_logp, np.take_along_axis(ref["logp"], top_ids, axis=1), atol=1e-5)
            np.testing.assert_allclose(top_logp, -np.sort(-ref["logp"], axis=1)[:, :5], atol=1e-5)
            assert (np.diff(top_logp, axis=1) <= 0).all()
            np.testing.assert_allclose(logp, ref["logp"], atol=1e-5)
            np.testing.assert_allclose(np.exp(logp.astype(np.float64)).sum(axis=1), 1.0, atol=1e-5)


def test_hidden_states_and_norms_match_the_model(full_pass, direct, ckpts):
    arrays, _ = full_pass
    for task in PROMPTS:
        lengths = arrays[f"{task}/lengths"]
        hidden = per_probe(arrays[f"{task}/hidden"], lengths, axis=1)
        for p, ref in enumerate(direct[ckpts[0]][task]):
            exact = np.linalg.norm(ref["hidden"].reshape(LAYERS + 1, -1).astype(np.float64), axis=1)
            np.testing.assert_allclose(arrays[f"{task}/hidden_norm"][:, p], exact, rtol=1e-5)
            np.testing.assert_allclose(hidden[p].astype(np.float32), ref["hidden"], rtol=2e-3, atol=1e-4)


def test_attention_rows_sum_to_one_and_match_the_model(full_pass, direct, ckpts):
    arrays, _ = full_pass
    for task in PROMPTS:
        lengths = arrays[f"{task}/lengths"]
        for p, (n, tri) in enumerate(zip(lengths, tri_per_probe(arrays[f"{task}/attention"], lengths), strict=True)):
            rows, cols = np.tril_indices(n)
            ref = direct[ckpts[0]][task][p]["attention"]
            np.testing.assert_allclose(tri.astype(np.float32), ref[:, :, rows, cols], atol=1e-3)
            row_sums = np.stack([tri[..., r * (r + 1) // 2 : (r + 1) * (r + 2) // 2].sum(-1) for r in range(n)], -1)
            np.testing.assert_allclose(row_sums.astype(np.float32), 1.0, atol=5e-3)
            np.testing.assert_allclose(
                arrays[f"{task}/attention_norm"][:, :, p], np.linalg.norm(ref[:, :, rows, cols], axis=-1), rtol=1e-5
            )


def test_projected_arrays_use_the_shared_matrix_for_every_checkpoint(ckpts, probe_files, direct, small_pass):
    for ckpt, (arrays, meta) in zip(ckpts, [small_pass, probe_pass(ckpts[1], probe_files, **SMALL)], strict=True):
        assert meta["projection_seed"] == 7
        r_hidden = projection_matrix("hidden", HIDDEN, 8, 7)
        for task in PROMPTS:
            lengths = arrays[f"{task}/lengths"]
            hidden = per_probe(arrays[f"{task}/hidden"], lengths, axis=1)
            attention = np.split(arrays[f"{task}/attention"], len(lengths), axis=-1)
            for p, (n, ref) in enumerate(zip(lengths, direct[ckpt][task], strict=True)):
                np.testing.assert_allclose(hidden[p].astype(np.float32), ref["hidden"] @ r_hidden, atol=2e-3, rtol=2e-3)
                rows, cols = np.tril_indices(n)
                r_attention = projection_matrix("attention", n * (n + 1) // 2, 8, 7)
                np.testing.assert_allclose(
                    attention[p].astype(np.float32), ref["attention"][:, :, rows, cols] @ r_attention, atol=3e-3
                )
                # Norms stay exact in projected mode.
                exact = np.linalg.norm(ref["hidden"].reshape(LAYERS + 1, -1).astype(np.float64), axis=1)
                np.testing.assert_allclose(arrays[f"{task}/hidden_norm"][:, p], exact, rtol=1e-5)


def test_projection_matrix_is_seeded_and_stable():
    a = projection_matrix("hidden", 32, 8, 7)
    assert a.shape == (32, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, projection_matrix("hidden", 32, 8, 7))
    assert not np.array_equal(a, projection_matrix("hidden", 32, 8, 8))
    assert not np.array_equal(a, projection_matrix("attention", 32, 8, 7))
    assert not np.array_equal(a, projection_matrix("hidden", 33, 8, 7)[:32])
    assert projection_matrix("hidden", 4, 2, -3).shape == (4, 2)  # negative run seeds are fine
    big = projection_matrix("hidden", 200, 400, 0)
    assert abs(big.std() - 1 / math.sqrt(400)) < 0.02 / math.sqrt(400)


@pytest.mark.parametrize("positions", [1, 8])
def test_projected_inner_product_is_within_the_jl_error(positions):
    rng = np.random.default_rng(0)
    width, dim, trials = 48, 64, 300
    errors = []
    for seed in range(trials):
        # Correlated "hidden states" with a shared direction, as real ones have.
        common = rng.standard_normal(width)
        x = common + rng.standard_normal((positions, width))
        y = 0.5 * x + rng.standard_normal((positions, width))
        r = projection_matrix("hidden", width, dim, seed).astype(np.float64)
        estimate = np.sum((x @ r) * (y @ r))
        errors.append((estimate - np.sum(x * y)) / (np.linalg.norm(x) * np.linalg.norm(y)))
    errors = np.asarray(errors)
    rms = math.sqrt(np.mean(errors**2))
    assert rms < math.sqrt(2 / dim)  # the contract's stated error
    assert abs(errors.mean()) < 3 * rms / math.sqrt(trials)  # unbiased


# ----------------------------------------------------------------------------------------------------------
# Padding and batching


@pytest.mark.parametrize("kwargs", [FULL, SMALL], ids=["full", "small"])
def test_a_probe_alone_or_in_a_padded_batch_gives_the_same_arrays(kwargs, ckpts, probe_files):
    alone, meta_alone = probe_pass(ckpts[0], probe_files, **{**kwargs, "batch_size": 1})
    batched, meta_batched = probe_pass(ckpts[0], probe_files, **{**kwargs, "batch_size": 8})
    assert meta_alone == meta_batched
    assert set(alone) == set(batched)
    for key in alone:
        if alone[key].dtype.kind == "i":
            np.testing.assert_array_equal(alone[key], batched[key], err_msg=key)
        else:
            np.testing.assert_allclose(
                alone[key].astype(np.float32), batched[key].astype(np.float32), rtol=2e-3, atol=1e-4, err_msg=key
            )


# ----------------------------------------------------------------------------------------------------------
# The summary file


def test_probe_features_writes_a_loadable_summary(ckpts, probe_files, tmp_path, fake_sketch):
    out = tmp_path / "features" / "m0.npz"
    meta = summarise_checkpoint(ckpts[0], ckpts[0], probe_files, out, name="m0", spec=SPEC, seed=3, threads=1)
    with np.load(out, allow_pickle=False) as archive:
        on_disk = json.loads(str(archive["meta"]))
        assert archive["meta"].shape == () and archive["meta"].dtype.kind == "U"
        assert archive["sketch/names"].dtype.kind == "U"
    assert on_disk == meta
    assert meta["format_version"] == 1 and meta["name"] == "m0" and meta["tasks"] == ["alpha", "beta"]
    assert meta["sketch"] == {"size": 100, "seed": 3, "top_fraction": 0.2}
    assert meta["projection_seed"] == 3
    assert meta["probe_sha256"] == {task: sha256_file(path) for task, path in probe_files.items()}
    assert meta["logprobs"] == {"alpha": "full", "beta": "full"}
    assert meta["hidden"]["alpha"] == {"mode": "projected", "dim": 8}

    summary = load_summary(out)
    assert summary.tasks == ("alpha", "beta") and summary.name == "m0"
    functional = summary.functional("alpha")
    assert set(functional) == set(FUNCTIONAL_KEYS) | {"logp"}
    assert summary.offsets("alpha")[-1] == functional["token_ids"].shape[0]
    assert set(summary.sketch) == set(SKETCH_KEYS)
    assert not functional["hidden"].flags.writeable
    with pytest.raises(KeyError, match="gamma"):
        summary.functional("gamma")


def test_same_inputs_give_byte_identical_files(ckpts, probe_files, tmp_path, fake_sketch):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"]
    for path, seed in zip(paths, [3, 3, 4], strict=True):
        summarise_checkpoint(ckpts[0], ckpts[0], probe_files, path, name="m0", spec=SPEC, seed=seed, threads=1)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert sha256_file(paths[2]) != sha256_file(paths[0])


def test_parts_per_task_assemble_into_the_same_bytes_as_one_pass(ckpts, probe_files, tmp_path, fake_sketch):
    whole = tmp_path / "whole.npz"
    summarise_checkpoint(ckpts[1], ckpts[0], probe_files, whole, name="m1", spec=SPEC, seed=3, threads=1)
    parts = {}
    for task in reversed(list(probe_files)):  # passes run in any order, one job each
        parts[task] = tmp_path / "parts" / f"{task}.npz"
        probe_task(ckpts[1], task, probe_files[task], parts[task], spec=SPEC, seed=3, threads=1)
    sketch_checkpoint(ckpts[1], ckpts[0], tmp_path / "parts" / "sketch.npz", name="m1", spec=SPEC, seed=3)
    assembled = tmp_path / "assembled.npz"
    in_config_order = {task: parts[task] for task in probe_files}
    assemble_summary(in_config_order, tmp_path / "parts" / "sketch.npz", assembled, name="m1")
    assert assembled.read_bytes() == whole.read_bytes()
    assert load_summary(assembled).tasks == tuple(probe_files)


def test_parts_of_another_task_or_seed_are_refused(ckpts, probe_files, tmp_path, fake_sketch):
    alpha, beta = (tmp_path / f"{task}.npz" for task in ("alpha", "beta"))
    probe_task(ckpts[0], "alpha", probe_files["alpha"], alpha, spec=SPEC, seed=3, threads=1)
    probe_task(ckpts[0], "beta", probe_files["beta"], beta, spec=SPEC, seed=4, threads=1)
    sketch = tmp_path / "sketch.npz"
    sketch_checkpoint(ckpts[0], ckpts[0], sketch, name="m0", spec=SPEC, seed=3)
    with pytest.raises(SummaryFormatError, match="beta.npz.*not the probe part of task 'alpha'"):
        assemble_summary({"alpha": beta}, sketch, tmp_path / "out.npz", name="m0")
    with pytest.raises(SummaryFormatError, match="beta.npz and .*alpha.npz disagree on projection_seed"):
        assemble_summary({"alpha": alpha, "beta": beta}, sketch, tmp_path / "out.npz", name="m0")
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("problem", ["missing", "empty", "no_prompt", "not_json"])
def test_bad_probe_files_fail_before_any_model_is_loaded(problem, ckpts, tmp_path, monkeypatch, fake_sketch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the probe files were checked")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", refuse)
    files = write_probes(tmp_path / "probes", {"alpha": ["abc"], "beta": ["def"]})
    if problem == "missing":
        files["beta"].unlink()
        expected, error = "probe file not found", FileNotFoundError
    elif problem == "empty":
        files["beta"].write_text("\n", encoding="utf-8")
        expected, error = "holds no probes", ValueError
    elif problem == "no_prompt":
        files["beta"].write_text('{"id": "x"}\n', encoding="utf-8")
        expected, error = "no string 'prompt'", ValueError
    else:
        files["beta"].write_text('{"prompt": "cut off\n', encoding="utf-8")
        expected, error = "line 1 of probe file .* is not JSON", ValueError
    with pytest.raises(error, match=expected) as info:
        summarise_checkpoint(ckpts[0], ckpts[0], files, tmp_path / "out.npz", name="m0", spec=SPEC, seed=0)
    assert "'beta'" in str(info.value) and str(files["beta"]) in str(info.value)
    assert str(info.value).endswith(
        "regenerate it: snakemake --forcerun skill_data (tasks.beta.n_probe sets how many probes)"
    )
    assert not (tmp_path / "out.npz").exists()


def test_load_summary_names_the_file_and_what_is_missing(ckpts, probe_files, tmp_path, fake_sketch):
    good = tmp_path / "good.npz"
    summarise_checkpoint(ckpts[0], ckpts[0], probe_files, good, name="m0", spec=SPEC, seed=0, threads=1)
    with np.load(good, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}

    broken = tmp_path / "broken.npz"
    np.savez(broken, **{k: v for k, v in arrays.items() if k != "beta/hidden_norm"})
    with pytest.raises(SummaryFormatError, match="broken.npz.*beta/hidden_norm"):
        load_summary(broken)

    old = tmp_path / "old.npz"
    meta = json.loads(str(arrays["meta"]))
    np.savez(old, **{**arrays, "meta": np.array(json.dumps({**meta, "format_version": 2}))})
    with pytest.raises(SummaryFormatError, match="old.npz.*format_version 2"):
        load_summary(old)

    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        load_summary(tmp_path / "nowhere.npz")


def test_real_weight_sketch_fits_the_summary(ckpts, probe_files, tmp_path):
    sketch = pytest.importorskip("simmerge.features.sketch")
    if not hasattr(sketch, "weight_sketch"):
        pytest.skip("simmerge.features.sketch.weight_sketch is not written yet")
    out = tmp_path / "m1.npz"
    summarise_checkpoint(ckpts[1], ckpts[0], probe_files, out, name="m1", spec=SPEC, seed=0, threads=1)
    summary = load_summary(out)
    assert summary.sketch["offsets"][-1] == summary.sketch["coords"].shape[0]
