"""Tests of simmerge.features.probe_pass: the per-checkpoint probe pass, its modes and projections, its input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from probe_inputs import (
    HEADS,
    HIDDEN,
    LAYERS,
    MAX_LENGTH,
    PROMPTS,
    SPEC,
    VOCAB,
    build_checkpoints,
    use_fake_sketch,
    write_probes,
)
from transformers import AutoModelForCausalLM, AutoTokenizer

from simmerge.features.probe_pass import choose_modes, probe_pass, projection_matrix, summarise_checkpoint
from simmerge.features.summary import FUNCTIONAL_KEYS

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


@pytest.fixture()
def fake_sketch(monkeypatch):
    use_fake_sketch(monkeypatch)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    return build_checkpoints(tmp_path_factory.mktemp("probe_ckpts"))


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
# Input checks


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


def test_a_bfloat16_pass_records_its_dtype_and_keeps_float32_arrays_close_to_the_float32_pass(
    ckpts, probe_files, small_pass
):
    arrays, meta = probe_pass(ckpts[0], probe_files, **SMALL, dtype="bfloat16")
    assert meta["dtype"] == "bfloat16" and small_pass[1]["dtype"] == "float32"  # auto on CPU
    for key, reference in small_pass[0].items():
        assert arrays[key].dtype == reference.dtype
        if key.endswith("topk_logp"):
            # bfloat16 keeps ~3 significant digits: the same distribution up to that
            np.testing.assert_allclose(np.exp(arrays[key]), np.exp(reference), atol=0.05)
