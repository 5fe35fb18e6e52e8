"""The probe pass: each task's unlabeled probe prompts teacher-forced through a checkpoint once.

:func:`probe_pass` keeps what the functional features of the SimMerge paper need (next-token log-probs, hidden
states, attention maps, all per non-padding position). Its entry points write the parts of a model summary
(:mod:`simmerge.features.summary`): :func:`probe_task` one task's pass (rule ``probe_pass``),
:func:`sketch_checkpoint` the weight sketch (rule ``weight_sketch``); :func:`summarise_checkpoint` writes the
whole summary in one process, byte-identical to the assembled parts, for callers that summarise a checkpoint on
the spot (``simmerge recommend``, multi-way intermediates).

Arrays that would be too large are shrunk per task, chosen from MB budgets: log-probs to the top ``k``, hidden
states and attention maps to a shared Gaussian random projection (Johnson–Lindenstrauss sketch). The projection
matrices depend only on the run seed, what is projected and its width, so every checkpoint of a run uses the
same ones and inner products between two models' sketches estimate the exact ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simmerge.core.config import FeatureSpec
from simmerge.core.device import resolve_device, resolve_dtype, set_threads
from simmerge.core.io import read_jsonl, sha256_file
from simmerge.core.provenance import provenance
from simmerge.features.sketch import weight_sketch
from simmerge.features.summary import FUNCTIONAL_KEYS, MB, RESERVED_TASKS, write_archive, write_summary

log = logging.getLogger(__name__)


FP16_MAX = float(np.finfo(np.float16).max)


def read_probes(task: str, path: str | os.PathLike) -> list[str]:
    """Read the prompts of one task's ``probe.jsonl``.

    Parameters
    ----------
    task : str
        Task name, used in error messages.
    path : path
        JSONL file with one ``{"id", "entity", "prompt"}`` object per line.

    Returns
    -------
    list of str
        The prompts, in file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file holds no probe, a line is not JSON, or a row has no string ``prompt``.
    """
    path = Path(path)
    # probe.jsonl is written by rule skill_data from tasks.<task>.n_probe; regenerating it is the fix in every case
    regenerate = f"regenerate it: snakemake --forcerun skill_data (tasks.{task}.n_probe sets how many probes)"
    if not path.is_file():
        raise FileNotFoundError(f"task {task!r}: probe file not found: {path}; {regenerate}")
    prompts = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"task {task!r}: line {number} of probe file {path} is not JSON: {err}; {regenerate}"
                ) from None
            prompt = row.get("prompt") if isinstance(row, dict) else None
            if not isinstance(prompt, str):
                raise ValueError(
                    f"task {task!r}: line {number} of probe file {path} has no string 'prompt'; {regenerate}"
                )
            prompts.append(prompt)
    if not prompts:
        raise ValueError(f"task {task!r}: probe file {path} holds no probes; {regenerate}")
    return prompts


def probe_source(path: str | os.PathLike) -> dict[str, Any]:
    """Where a task's probes come from, for the summary's metadata: the split(s) of their documents, the document
    ids and the sha256 of the prompts as the model reads them (rows written by rule ``skill_data`` or
    ``task_data``; a built-in skill's probes are a generated ``probe`` split)."""
    rows = read_jsonl(path)
    prompts = "\x1e".join(row["prompt"] for row in rows)
    return {
        "splits": sorted({row.get("split", "probe") for row in rows}),
        "documents": [row.get("id") for row in rows],
        "prompt_sha256": hashlib.sha256(prompts.encode()).hexdigest(),
    }


def projection_matrix(purpose: str, width: int, dim: int, seed: int) -> np.ndarray:
    """The shared Gaussian projection of ``width``-dimensional vectors to ``dim`` dimensions.

    Entries are independent N(0, 1/dim), so for any ``x, y``, ``<x R, y R>`` is an unbiased estimate of
    ``<x, y>`` with standard deviation ``sqrt((|x|^2 |y|^2 + <x, y>^2) / dim) <= sqrt(2 / dim) |x| |y|``.
    The generator is seeded from ``seed``, ``purpose`` and ``width`` through SHA-256 (never Python's salted
    ``hash``), so the matrix is the same in every process and for every checkpoint of a run.

    Parameters
    ----------
    purpose : str
        What is projected (``"hidden"`` or ``"attention"``); different purposes get independent matrices.
    width : int
        Input dimension (rows of the matrix).
    dim : int
        Output dimension ``D``.
    seed : int
        The run seed (``meta.projection_seed``); any integer, negative included.

    Returns
    -------
    numpy.ndarray
        ``[width, dim]`` float32.
    """
    if width < 1 or dim < 1:
        raise ValueError(f"projection needs width >= 1 and dim >= 1, got width={width}, dim={dim}")
    # "simmerge.probes" was this module's name when the seed was defined; it is part of the seed, so renaming it
    # would change every projection and every summary.
    digest = hashlib.sha256(f"simmerge.probes/{purpose}/{width}/{dim}/{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    return (rng.standard_normal((width, dim)) / math.sqrt(dim)).astype(np.float32)


def choose_modes(
    *,
    n_positions: int,
    lengths: Sequence[int],
    num_layers: int,
    num_heads: int,
    hidden_size: int,
    vocab_size: int,
    full_vocab_max_mb: float,
    hidden_max_mb: float,
    attention_max_mb: float,
    projection_dim: int,
) -> dict[str, Any]:
    """Pick how one task's arrays are stored, from their sizes and the MB budgets.

    An array is stored in full when it fits in its budget, or when the projection would be no smaller
    (then projecting only loses precision).

    Returns
    -------
    dict
        ``logprobs``: ``"full"`` or ``"topk"``; ``hidden`` and ``attention``: ``{"mode", "dim"}``, where
        ``dim`` is ``D`` when projected, ``hidden_size`` for full hidden states and ``None`` for full
        attention maps (their flattened width varies per probe).
    """
    logp_bytes = 4 * n_positions * vocab_size
    hidden_full = 2 * (num_layers + 1) * n_positions * hidden_size
    hidden_proj = 2 * (num_layers + 1) * n_positions * projection_dim
    tri = sum(n * (n + 1) // 2 for n in lengths)
    attention_full = 2 * num_layers * num_heads * tri
    attention_proj = 2 * num_layers * num_heads * len(lengths) * projection_dim
    hidden_is_full = hidden_full <= hidden_max_mb * MB or hidden_full <= hidden_proj
    attention_is_full = attention_full <= attention_max_mb * MB or attention_full <= attention_proj
    return {
        "logprobs": "full" if logp_bytes <= full_vocab_max_mb * MB else "topk",
        "hidden": {"mode": "full", "dim": hidden_size}
        if hidden_is_full
        else {"mode": "projected", "dim": projection_dim},
        "attention": {"mode": "full", "dim": None}
        if attention_is_full
        else {"mode": "projected", "dim": projection_dim},
    }


def _encode(tokenizer: Any, prompt: str, max_length: int) -> list[int]:
    """Token ids of a prompt as lm-eval 0.4 encodes a context, cut to ``max_length`` from the right.

    lm-eval keeps the tokenizer's default special tokens, except when the text already starts with BOS.
    """
    bos = tokenizer.bos_token
    kwargs = {"add_special_tokens": False} if bos and prompt.startswith(bos) else {}
    return list(tokenizer(prompt, **kwargs)["input_ids"])[:max_length]


class _Projector:
    """Shared projection matrices on the compute device, built once per (purpose, width) in a pass."""

    def __init__(self, seed: int, dim: int, device: Any) -> None:
        self.seed = seed
        self.dim = dim
        self.device = device
        self._cache: dict[tuple[str, int], Any] = {}

    def __call__(self, purpose: str, x: Any) -> Any:
        # deferred: torch takes seconds to import, and importers such as multiway.execution often do not probe
        import torch

        key = (purpose, x.shape[-1])
        if key not in self._cache:
            matrix = projection_matrix(purpose, x.shape[-1], self.dim, self.seed)
            self._cache[key] = torch.from_numpy(matrix).to(self.device)
        return x @ self._cache[key]


def _to_fp16(x: Any, what: str) -> np.ndarray:
    """Cast to fp16 on the CPU, clipping (with a warning) values beyond the fp16 range instead of storing inf."""
    x = x.detach().float().cpu()
    over = int((x.abs() > FP16_MAX).sum())
    if over:
        log.warning("%s: %d values exceed the fp16 range and are clipped to ±%g", what, over, FP16_MAX)
        x = x.clamp(-FP16_MAX, FP16_MAX)
    return x.half().numpy()


def _tril_flat(n: int, device: Any) -> Any:
    """Flat row-major indices of the lower triangle (diagonal included) of an ``[n, n]`` map."""
    import torch

    rows, cols = torch.tril_indices(n, n, device=device)
    return rows * n + cols


def _summarise_batch(
    out: Any,
    lengths: Sequence[int],
    *,
    top_k: int,
    modes: Mapping[str, Any],
    project: _Projector,
    task: str,
) -> dict[str, list[np.ndarray]]:
    """Per-probe arrays of one forward pass, real positions only (padding never enters any number)."""
    import torch

    hidden_states = torch.stack(out.hidden_states)  # [L+1, B, T, hidden]
    attentions = torch.stack(out.attentions)  # [L, B, H, T, T]
    parts: dict[str, list[np.ndarray]] = {key: [] for key in FUNCTIONAL_KEYS if key not in ("lengths", "token_ids")}
    parts["logp"] = []
    for i, n in enumerate(lengths):
        logp = torch.log_softmax(out.logits[i, :n].float(), dim=-1)
        values, ids = torch.topk(logp, top_k, dim=-1, sorted=True)
        parts["topk_ids"].append(ids.cpu().numpy().astype(np.int32))
        parts["topk_logp"].append(values.cpu().numpy().astype(np.float32))
        if modes["logprobs"] == "full":
            parts["logp"].append(logp.cpu().numpy().astype(np.float32))

        hidden = hidden_states[:, i, :n].float()  # [L+1, n, hidden]
        parts["hidden_norm"].append(torch.linalg.vector_norm(hidden.double(), dim=(1, 2)).float().cpu().numpy())
        if modes["hidden"]["mode"] == "projected":
            hidden = project("hidden", hidden)
        parts["hidden"].append(_to_fp16(hidden, f"task {task!r} hidden states"))

        maps = attentions[:, i, :, :n, :n].float().reshape(attentions.shape[0], attentions.shape[2], n * n)
        tri = maps[..., _tril_flat(n, maps.device)]  # [L, H, n(n+1)/2]
        parts["attention_norm"].append(torch.linalg.vector_norm(tri.double(), dim=-1).float().cpu().numpy())
        if modes["attention"]["mode"] == "projected":
            tri = project("attention", tri)
        parts["attention"].append(_to_fp16(tri, f"task {task!r} attention maps"))
    return parts


def probe_pass(
    ckpt_dir: str | os.PathLike,
    probe_files: Mapping[str, str | os.PathLike],
    *,
    top_k: int,
    full_vocab_max_mb: float,
    hidden_max_mb: float,
    attention_max_mb: float,
    projection_dim: int,
    projection_seed: int,
    batch_size: int,
    max_length: int,
    dtype: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Teacher-force every task's probes through a checkpoint and keep the functional summary.

    Each prompt is tokenised as lm-eval encodes a context (the tokenizer's special tokens, no chat template)
    and cut to ``max_length`` tokens. Probes go through the model in file order, ``batch_size`` at a time,
    right-padded with an attention mask, in one forward pass per batch (fp32 unless ``dtype`` says otherwise; the
    stored arrays are float32 either way) with eager attention (so that
    attention probabilities are returned) under ``torch.inference_mode()``. Only non-padding positions are
    kept; with right padding and a causal mask, a probe's numbers do not depend on the probes it is batched
    with (up to floating-point reassociation).

    Parameters
    ----------
    ckpt_dir : path
        Hugging Face checkpoint (model and tokenizer).
    probe_files : mapping of str to path
        Task name → its ``probe.jsonl``, in config order.
    top_k : int
        Next-token log-probs kept per position (capped at the vocabulary size).
    full_vocab_max_mb, hidden_max_mb, attention_max_mb : float
        Per-task budgets (MB = 10^6 bytes): an array is stored in full when it fits (see :func:`choose_modes`).
    projection_dim : int
        ``D`` of the random projections used when an array does not fit.
    projection_seed : int
        Seed of the shared projections (the run seed), see :func:`projection_matrix`.
    batch_size : int
        Probes per forward pass.
    max_length : int
        Probe tokens kept.
    dtype : str
        Weights dtype (:func:`simmerge.core.device.resolve_dtype`: ``"auto"`` is bfloat16 on CUDA, float32 on CPU);
        recorded in ``meta["dtype"]``.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` (:func:`simmerge.core.device.resolve_device`).
    threads : int, optional
        CPU threads for torch.
    trust_remote_code : bool
        Let transformers run modelling code shipped with the checkpoint (its catalog entry's setting).

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        ``<task>/<key>`` for each task and each key of the contract's functional part.
    meta : dict
        ``num_layers``, ``num_heads``, ``hidden_size``, ``vocab_size``, ``top_k``, ``logprobs``, ``hidden``,
        ``attention``, ``projection_seed``, ``probe_sha256``, ``provenance`` (task →
        :func:`simmerge.core.provenance.provenance`, per task like ``probe_sha256``: a summary assembled from
        parts of several jobs keeps each part's).

    Raises
    ------
    FileNotFoundError
        If a probe file or the checkpoint is missing (probe files are checked before anything is loaded).
    ValueError
        If a probe file is empty or malformed, a task name is reserved, or a prompt encodes to no token.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    if not probe_files:
        raise ValueError("probe_files is empty: no task to probe")
    if top_k < 1 or batch_size < 1 or max_length < 1 or projection_dim < 1:
        raise ValueError(
            f"top_k, batch_size, max_length and projection_dim must be >= 1, got {top_k}, {batch_size}, "
            f"{max_length}, {projection_dim}"
        )
    for task in probe_files:
        if task in RESERVED_TASKS or "/" in task:
            raise ValueError(f"task name {task!r} cannot be used: it would collide with the summary's keys")
    prompts = {task: read_probes(task, path) for task, path in probe_files.items()}
    probe_sha256 = {task: sha256_file(path) for task, path in probe_files.items()}

    ckpt_dir = Path(ckpt_dir).expanduser()
    if not (ckpt_dir / "config.json").is_file():
        raise FileNotFoundError(f"checkpoint not found (no config.json): {ckpt_dir}")
    set_threads(threads)
    torch_device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(ckpt_dir, trust_remote_code=trust_remote_code)
    encoded: dict[str, list[list[int]]] = {}
    for task, texts in prompts.items():
        encoded[task] = [_encode(tokenizer, text, max_length) for text in texts]
        for number, ids in enumerate(encoded[task], start=1):
            if not ids:
                raise ValueError(f"task {task!r}: probe {number} of {probe_files[task]} encodes to no token")
    pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)

    weights_dtype = resolve_dtype(dtype, torch_device)
    model = AutoModelForCausalLM.from_pretrained(
        ckpt_dir,
        dtype=getattr(torch, weights_dtype),
        attn_implementation="eager",
        trust_remote_code=trust_remote_code,
    )
    model.to(torch_device).eval()
    config = model.config.get_text_config()
    shape = {
        "num_layers": int(config.num_hidden_layers),
        "num_heads": int(config.num_attention_heads),
        "hidden_size": int(config.hidden_size),
        "vocab_size": int(config.vocab_size),
    }
    k = min(int(top_k), shape["vocab_size"])
    project = _Projector(projection_seed, projection_dim, torch_device)
    log.info(
        "probing %s on %s: %d tasks, %d probes, batch size %d, max length %d",
        ckpt_dir,
        torch_device,
        len(encoded),
        sum(len(v) for v in encoded.values()),
        batch_size,
        max_length,
    )

    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {**shape, "top_k": k, "logprobs": {}, "hidden": {}, "attention": {}}
    n_batches = 0
    for task, sequences in encoded.items():
        task_started = time.perf_counter()
        lengths = [len(ids) for ids in sequences]
        modes = choose_modes(
            n_positions=sum(lengths),
            lengths=lengths,
            full_vocab_max_mb=full_vocab_max_mb,
            hidden_max_mb=hidden_max_mb,
            attention_max_mb=attention_max_mb,
            projection_dim=projection_dim,
            **shape,
        )
        for field in ("logprobs", "hidden", "attention"):
            meta[field][task] = modes[field]
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size]
            batch_lengths = lengths[start : start + batch_size]
            width = max(batch_lengths)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, ids in enumerate(batch):
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, : len(ids)] = 1
            with torch.inference_mode():
                out = model(
                    input_ids=input_ids.to(torch_device),
                    attention_mask=attention_mask.to(torch_device),
                    output_hidden_states=True,
                    output_attentions=True,
                    use_cache=False,
                )
                if len(out.hidden_states) != shape["num_layers"] + 1 or len(out.attentions) != shape["num_layers"]:
                    raise RuntimeError(
                        f"{ckpt_dir}: the model returned {len(out.hidden_states)} hidden states and "
                        f"{len(out.attentions)} attention maps for {shape['num_layers']} layers"
                    )
                batch_parts = _summarise_batch(out, batch_lengths, top_k=k, modes=modes, project=project, task=task)
            for key, values in batch_parts.items():
                parts.setdefault(key, []).extend(values)
            n_batches += 1
            log.debug("task %s: batch %d (%d probes, width %d)", task, n_batches, len(batch), width)

        arrays[f"{task}/lengths"] = np.asarray(lengths, dtype=np.int32)
        arrays[f"{task}/token_ids"] = np.asarray([i for ids in sequences for i in ids], dtype=np.int32)
        arrays[f"{task}/topk_ids"] = np.concatenate(parts["topk_ids"])
        arrays[f"{task}/topk_logp"] = np.concatenate(parts["topk_logp"])
        if modes["logprobs"] == "full":
            arrays[f"{task}/logp"] = np.concatenate(parts["logp"])
        arrays[f"{task}/hidden"] = np.concatenate(parts["hidden"], axis=1)
        arrays[f"{task}/hidden_norm"] = np.stack(parts["hidden_norm"], axis=1)
        arrays[f"{task}/attention"] = np.concatenate(parts["attention"], axis=2)
        arrays[f"{task}/attention_norm"] = np.stack(parts["attention_norm"], axis=2)
        log.info(
            "task %s: %d probes, %d positions, logprobs %s, hidden %s (D=%d), attention %s, %.1fs",
            task,
            len(lengths),
            sum(lengths),
            modes["logprobs"],
            modes["hidden"]["mode"],
            modes["hidden"]["dim"],
            modes["attention"]["mode"],
            time.perf_counter() - task_started,
        )
    del model
    meta["projection_seed"] = int(projection_seed)
    meta["dtype"] = weights_dtype
    meta["probe_sha256"] = probe_sha256
    meta["probe_source"] = {task: probe_source(path) for task, path in probe_files.items()}
    meta["provenance"] = {task: provenance() for task in probe_sha256}
    log.info("probe pass of %s: %d batches in %.1fs", ckpt_dir.name, n_batches, time.perf_counter() - started)
    return arrays, meta


def _feature_spec(spec: Mapping[str, Any] | Any) -> Any:
    if isinstance(spec, FeatureSpec):
        return spec
    return FeatureSpec.model_validate(dict(spec))


def _pass_options(spec: Any) -> dict[str, Any]:
    """The ``features`` fields a probe pass depends on (the sketch's fields are not among them)."""
    return {
        "top_k": spec.top_k,
        "full_vocab_max_mb": spec.full_vocab_max_mb,
        "hidden_max_mb": spec.hidden_max_mb,
        "attention_max_mb": spec.attention_max_mb,
        "projection_dim": spec.projection_dim,
        "batch_size": spec.batch_size,
        "max_length": spec.max_length,
        "dtype": spec.dtype,
    }


def configured_probe_pass(
    ckpt_dir: str | os.PathLike,
    probe_files: Mapping[str, str | os.PathLike],
    *,
    spec: Mapping[str, Any] | Any,
    seed: int,
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """:func:`probe_pass` with the run's ``features`` settings (``spec``) and its seed as the projection seed: the
    pass every checkpoint's summary, and every merge's parent drift, is made with."""
    return probe_pass(
        ckpt_dir,
        probe_files,
        **_pass_options(_feature_spec(spec)),
        projection_seed=seed,
        device=device,
        threads=threads,
        trust_remote_code=trust_remote_code,
    )


def _sketch(ckpt_dir: str | os.PathLike, base_dir: str | os.PathLike, spec: Any, seed: int, name: str):
    started = time.perf_counter()
    sketch = weight_sketch(ckpt_dir, base_dir, size=spec.sketch_size, seed=seed, top_fraction=spec.top_fraction)
    wrong = sorted(key for key in sketch if not key.startswith("sketch/"))
    if wrong:
        raise ValueError(f"weight_sketch returned keys outside 'sketch/': {', '.join(wrong)}")
    log.info("weight sketch of %s: %d arrays in %.1fs", name, len(sketch), time.perf_counter() - started)
    meta = {"size": spec.sketch_size, "seed": seed, "top_fraction": spec.top_fraction, "provenance": provenance()}
    return {key: sketch[key] for key in sorted(sketch)}, meta


def summarise_checkpoint(
    ckpt_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    probe_files: Mapping[str, str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    name: str,
    spec: Mapping[str, Any],
    seed: int,
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Write ``features/models/<name>.npz`` in one process: the probe pass and the weight sketch of a checkpoint.

    The workflow builds the same file from parts (:func:`probe_task`, :func:`sketch_checkpoint`,
    :func:`assemble_summary`) so that a new task costs one probe pass per checkpoint; this function is for
    callers that summarise a checkpoint on the spot (``simmerge recommend``, multi-way intermediates). Both ways
    give byte-identical files.

    Parameters
    ----------
    ckpt_dir : path
        The checkpoint to summarise.
    base_dir : path
        The base checkpoint its task vector is taken against (the base itself gives ``tau = 0``).
    probe_files : mapping of str to path
        Task name → ``probe.jsonl``, in config order.
    out_path : path
        The ``.npz`` to write (atomically).
    name : str
        Catalog name recorded in ``meta``.
    spec : mapping or FeatureSpec
        The ``features`` section of the config (:class:`simmerge.core.config.FeatureSpec` fields; missing ones take
        their defaults).
    seed : int
        Run seed: seeds both the shared projections and the sketch's coordinate sampling.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads : int, optional
        CPU threads for torch.
    trust_remote_code : bool
        As :func:`probe_pass`.

    Returns
    -------
    dict
        The ``meta`` record written to the file.

    Raises
    ------
    FileNotFoundError, ValueError
        From :func:`probe_pass` (missing or empty probe file, missing checkpoint) or an invalid ``spec``.

    Examples
    --------
    >>> summarise_checkpoint("ckpt/a", "ckpt/base", {"n2w_fr": "data/n2w_fr/probe.jsonl"}, "a.npz",
    ...                name="a", spec={}, seed=0)  # doctest: +SKIP
    """
    spec = _feature_spec(spec)
    arrays, pass_meta = configured_probe_pass(
        ckpt_dir, probe_files, spec=spec, seed=seed, device=device, threads=threads, trust_remote_code=trust_remote_code
    )
    sketch, sketch_meta = _sketch(ckpt_dir, base_dir, spec, seed, name)
    return write_summary(
        out_path,
        name=name,
        tasks=list(probe_files),
        pass_meta=pass_meta,
        arrays=arrays,
        sketch_meta=sketch_meta,
        sketch=sketch,
    )


def probe_task(
    ckpt_dir: str | os.PathLike,
    task: str,
    probe_file: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    spec: Mapping[str, Any],
    seed: int,
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Write one task's probe pass of one checkpoint (rule ``probe_pass``), for :func:`assemble_summary`.

    Returns the pass's ``meta`` (shape, ``top_k``, this task's modes and probe sha256, ``projection_seed``).
    Raises as :func:`probe_pass` does, before any model is loaded when the probe file is missing or empty.
    """
    arrays, meta = configured_probe_pass(
        ckpt_dir,
        {task: probe_file},
        spec=spec,
        seed=seed,
        device=device,
        threads=threads,
        trust_remote_code=trust_remote_code,
    )
    write_archive(out_path, meta, arrays)
    return meta


def sketch_checkpoint(
    ckpt_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    name: str,
    spec: Mapping[str, Any],
    seed: int,
    threads: int | None = None,
) -> dict[str, Any]:
    """Write the weight sketch of one checkpoint against the base (rule ``weight_sketch``); returns its meta.

    ``threads`` fixes torch's CPU threads: the sketch's float64 norms are sums whose last bits depend on how a
    reduction is split between threads, so the rule sets it for byte-identical files wherever the job runs.
    """

    set_threads(threads)
    sketch, meta = _sketch(ckpt_dir, base_dir, _feature_spec(spec), seed, name)
    write_archive(out_path, meta, sketch)
    return meta
