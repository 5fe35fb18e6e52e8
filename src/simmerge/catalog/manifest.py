"""Checkpoint manifests and the pre-flight checks run before any merge.

A manifest (``<checkpoint>/manifest.json``) records where a checkpoint came from and what it is: its source,
a sha256 per file, the architecture facts read from ``config.json`` and the safetensors headers (every tensor's
name, dtype and shape) and a fingerprint of its tokenizer's vocabulary. The pre-flight functions read the same facts
without loading the weights and fail early, with a message naming the catalog entry, the path, the field and the
fix, instead of failing deep inside mergekit or lm-eval.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import struct
from collections import Counter
from pathlib import Path
from typing import Any

from simmerge.core.io import sha256_file, write_json
from simmerge.core.layout import MANIFEST_NAME
from simmerge.core.provenance import provenance, weights_sha256

logger = logging.getLogger(__name__)

# 2: manifests record ``tensors`` (name → [dtype, shape]) and the ``tokenizer`` fingerprint.
MANIFEST_VERSION = 2
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

# Fields every expert must share with the base; each name is a key of the inspect/manifest dict.
COMPATIBILITY_FIELDS = (
    "architecture",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
    "tie_word_embeddings",
)

# Config keys by field, in order of preference: older architectures use the GPT-2 names.
_CONFIG_ALIASES = {
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads"),
    "vocab_size": ("vocab_size",),
    "model_type": ("model_type",),
}

_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}

# A header larger than this is not a real safetensors header (the format itself caps it at 100 MB).
_MAX_HEADER_BYTES = 100_000_000


class PreflightError(ValueError):
    """A checkpoint failed a pre-flight check; the message names the entry, the field and the fix."""


def _fail(name: str, path: Path, field: str, problem: str, fix: str) -> PreflightError:
    return PreflightError(f"checkpoint {name!r} ({path}): {field}: {problem}. {fix}")


def read_safetensors_header(path: str | os.PathLike, *, name: str = "?") -> dict[str, dict[str, Any]]:
    """Parse the JSON header of a safetensors file without reading the tensor data.

    The format is an 8-byte little-endian header length, then that many bytes of JSON mapping each tensor
    name to its ``dtype``, ``shape`` and ``data_offsets`` (plus an optional ``__metadata__`` entry).

    Parameters
    ----------
    path : path-like
        The ``.safetensors`` file.
    name : str
        Catalog entry the file belongs to, used in error messages.

    Returns
    -------
    dict
        Tensor name to ``{"dtype", "shape", "data_offsets"}``; ``__metadata__`` is left out.

    Raises
    ------
    PreflightError
        If the header is truncated, not JSON, or describes tensors that do not fit in the file.
    """
    path = Path(path)
    fix = "the file is corrupt or truncated; rebuild or re-fetch the checkpoint"
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise _fail(name, path, "safetensors header", f"file is {size} bytes, too short for a header", fix)
        (length,) = struct.unpack("<Q", prefix)
        if length > min(size - 8, _MAX_HEADER_BYTES):
            raise _fail(
                name,
                path,
                "safetensors header",
                f"header length {length} does not fit a {size}-byte file",
                fix,
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(name, path, "safetensors header", f"header is not valid JSON ({err})", fix) from err
    if not isinstance(header, dict):
        raise _fail(name, path, "safetensors header", "header is not a JSON object", fix)
    header.pop("__metadata__", None)
    data_bytes = size - 8 - length
    for tensor, info in header.items():
        try:
            shape = [int(d) for d in info["shape"]]
            start, end = (int(o) for o in info["data_offsets"])
            dtype = str(info["dtype"])
        except (KeyError, TypeError, ValueError) as err:
            raise _fail(
                name, path, "safetensors header", f"tensor {tensor!r} has a malformed entry {info!r}", fix
            ) from err
        if not 0 <= start <= end <= data_bytes or any(d < 0 for d in shape):
            raise _fail(
                name,
                path,
                "safetensors header",
                f"tensor {tensor!r} (offsets {start}..{end}) lies outside the {data_bytes} data bytes",
                fix,
            )
        header[tensor] = {"dtype": dtype, "shape": shape, "data_offsets": [start, end]}
    return header


def weight_files(ckpt_dir: str | os.PathLike, *, name: str) -> list[Path]:
    """List the safetensors files that make up a checkpoint, as transformers would load them.

    With a ``model.safetensors.index.json`` the shards named in its ``weight_map`` are used; otherwise every
    top-level ``*.safetensors`` file.

    Parameters
    ----------
    ckpt_dir : path-like
        Checkpoint directory.
    name : str
        Catalog entry, used in error messages.

    Returns
    -------
    list of pathlib.Path
        Sorted weight files.

    Raises
    ------
    PreflightError
        If there is no safetensors file (naming any pickle files present), or the index is unreadable or
        names a missing shard.
    """
    ckpt_dir = Path(ckpt_dir)
    index = ckpt_dir / SAFETENSORS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise _fail(
                name,
                index,
                SAFETENSORS_INDEX,
                f"cannot read the weight_map ({err})",
                "the index is corrupt; rebuild or re-fetch the checkpoint",
            ) from err
        missing = [s for s in shards if not (ckpt_dir / s).is_file()]
        if missing:
            raise _fail(
                name,
                ckpt_dir,
                SAFETENSORS_INDEX,
                f"names shard(s) that are missing: {', '.join(missing)}",
                "the checkpoint is incomplete; rebuild or re-fetch it",
            )
        return [ckpt_dir / s for s in shards]
    files = sorted(ckpt_dir.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in ckpt_dir.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise _fail(
                name,
                ckpt_dir,
                "weights",
                f"no *.safetensors file, only pickle weights ({', '.join(pickles)})",
                "pickle checkpoints are refused; convert to safetensors (load it once in a trusted "
                "environment and save_pretrained(..., safe_serialization=True))",
            )
        raise _fail(
            name,
            ckpt_dir,
            "weights",
            "no *.safetensors file",
            "the checkpoint is incomplete; rebuild or re-fetch it",
        )
    return files


# Tokenizer files by preference: the fast tokenizer's JSON, a slow BPE tokenizer's vocabulary, a sentencepiece model.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model")


def read_vocabulary(ckpt_dir: str | os.PathLike) -> tuple[str, dict[str, int] | None] | None:
    """A checkpoint's vocabulary (token → id, added tokens included), read from its tokenizer files as JSON.

    Nothing is imported from transformers or tokenizers: ``tokenizer.json`` gives ``model.vocab`` (a token → id
    map, or Unigram's list of ``[piece, score]`` whose index is the id) plus ``added_tokens``; else ``vocab.json``
    plus ``added_tokens.json``.

    Returns
    -------
    tuple or None
        ``(file, vocabulary)``; ``("tokenizer.model", None)`` for a sentencepiece-only tokenizer (a binary
        protobuf, not parsed); None when the checkpoint has no tokenizer file.
    """
    ckpt_dir = Path(ckpt_dir)
    for file in TOKENIZER_FILES:
        path = ckpt_dir / file
        if not path.is_file():
            continue
        if file == "tokenizer.model":
            return file, None
        data = json.loads(path.read_text(encoding="utf-8"))
        if file == "tokenizer.json":
            vocab = (data.get("model") or {}).get("vocab") or {}
            if isinstance(vocab, list):  # Unigram: [[piece, score], ...], the id is the index
                vocab = {piece[0]: i for i, piece in enumerate(vocab)}
            added = {t["content"]: t["id"] for t in data.get("added_tokens") or []}
        else:
            vocab = data
            added_path = ckpt_dir / "added_tokens.json"
            added = json.loads(added_path.read_text(encoding="utf-8")) if added_path.is_file() else {}
        return file, {**{str(k): int(v) for k, v in vocab.items()}, **{str(k): int(v) for k, v in added.items()}}
    return None


def tokenizer_fingerprint(ckpt_dir: str | os.PathLike) -> dict[str, Any] | None:
    """What identifies a checkpoint's tokenizer: its file, vocabulary size and a digest of its vocabulary.

    Returns
    -------
    dict or None
        ``{"file", "vocab_size", "sha256"}``: the sha256 of the (token, id) pairs in id order (compact JSON), so
        two tokenizers with the same tokens under the same ids agree whatever their files' formatting; for a
        sentencepiece-only tokenizer the sha256 of ``tokenizer.model`` and ``vocab_size`` None. None when the
        checkpoint has no tokenizer file.
    """
    found = read_vocabulary(ckpt_dir)
    if found is None:
        return None
    file, vocab = found
    if vocab is None:
        return {"file": file, "vocab_size": None, "sha256": sha256_file(Path(ckpt_dir) / file)}
    pairs = sorted(vocab.items(), key=lambda kv: (kv[1], kv[0]))
    digest = hashlib.sha256(json.dumps(pairs, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    return {"file": file, "vocab_size": len(pairs), "sha256": digest.hexdigest()}


def _config_value(config: dict[str, Any], field: str) -> Any:
    # Multimodal configs keep the language model's sizes under text_config.
    for scope in (config, config.get("text_config") or {}):
        for key in _CONFIG_ALIASES[field]:
            if scope.get(key) is not None:
                return scope[key]
    return None


def inspect_checkpoint(ckpt_dir: str | os.PathLike, *, name: str) -> dict[str, Any]:
    """Read a checkpoint's architecture facts from ``config.json`` and its safetensors headers.

    Nothing is loaded into memory beyond the headers and nothing is written. The result holds the facts of
    a manifest (see :func:`write_manifest`) except ``source`` and ``files``.

    Parameters
    ----------
    ckpt_dir : path-like
        Checkpoint directory.
    name : str
        Catalog entry the directory belongs to (``"n2w_fr"``), used in error messages.

    Returns
    -------
    dict
        ``name``, ``architecture`` (``config.architectures[0]``), ``model_type``, ``hidden_size``,
        ``num_hidden_layers``, ``num_attention_heads``, ``vocab_size``, ``dtype`` (from the config, else the
        most common tensor dtype), ``tensor_dtypes`` (dtype → tensor count), ``tie_word_embeddings`` (from the
        config, else whether ``lm_head.weight`` is absent), ``parameter_count`` (sum over tensors of the
        product of their shape), ``weight_files``, ``tensors`` (tensor name → ``[dtype, shape]``, over every
        weight file, e.g. ``{"model.norm.weight": ["float32", [64]]}``) and ``tokenizer``
        (:func:`tokenizer_fingerprint`).

    Raises
    ------
    PreflightError
        If the directory or ``config.json`` is missing, the config is not valid JSON or has no
        ``architectures``, there is no safetensors file, or a safetensors header is corrupt.
    """
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise _fail(
            name,
            ckpt_dir,
            "directory",
            "does not exist",
            "build or fetch the checkpoint first, or fix its path in the catalog",
        )
    config_path = ckpt_dir / "config.json"
    if not config_path.is_file():
        raise _fail(
            name,
            config_path,
            "config.json",
            "is missing",
            "a Hugging Face checkpoint needs its config.json; rebuild or re-fetch the checkpoint",
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(
            name,
            config_path,
            "config.json",
            f"is not valid JSON ({err})",
            "rebuild or re-fetch the checkpoint",
        ) from err
    if not isinstance(config, dict):
        raise _fail(name, config_path, "config.json", "is not a JSON object", "rebuild or re-fetch the checkpoint")
    architectures = config.get("architectures")
    if not architectures or not isinstance(architectures, list):
        raise _fail(
            name,
            config_path,
            "architectures",
            f"is {architectures!r}, expected a list like ['LlamaForCausalLM']",
            "mergekit picks its architecture from this key; add it to config.json",
        )

    files = weight_files(ckpt_dir, name=name)
    n_params = 0
    dtypes: Counter[str] = Counter()
    tensors: dict[str, list] = {}
    for path in files:
        for tensor, info in read_safetensors_header(path, name=name).items():
            n_params += math.prod(info["shape"])
            dtype = _SAFETENSORS_DTYPES.get(info["dtype"], info["dtype"])
            dtypes[dtype] += 1
            tensors[tensor] = [dtype, info["shape"]]
    tensor_names = set(tensors)

    config_dtype = config.get("dtype") or config.get("torch_dtype")
    if config_dtype is None:
        config_dtype = min(dtypes, key=lambda d: (-dtypes[d], d)) if dtypes else None
    tie = config.get("tie_word_embeddings")
    if tie is None:
        tie = not any(t == "lm_head.weight" or t.endswith(".lm_head.weight") for t in tensor_names)
    return {
        "name": name,
        "architecture": architectures[0],
        "model_type": _config_value(config, "model_type"),
        "hidden_size": _config_value(config, "hidden_size"),
        "num_hidden_layers": _config_value(config, "num_hidden_layers"),
        "num_attention_heads": _config_value(config, "num_attention_heads"),
        "vocab_size": _config_value(config, "vocab_size"),
        "dtype": str(config_dtype) if config_dtype is not None else None,
        "tensor_dtypes": dict(sorted(dtypes.items())),
        "tie_word_embeddings": bool(tie),
        "parameter_count": n_params,
        "weight_files": [p.relative_to(ckpt_dir).as_posix() for p in files],
        "tensors": dict(sorted(tensors.items())),
        "tokenizer": tokenizer_fingerprint(ckpt_dir),
    }


def build_manifest(ckpt_dir: str | os.PathLike, *, name: str, source: dict[str, Any]) -> dict[str, Any]:
    """Inspect a checkpoint and hash its files: the manifest, without writing it.

    The manifest is deterministic: keys are sorted and it holds no timestamps or absolute paths of the
    checkpoint, so the same checkpoint and source give the same bytes (written by the same code on the same kind
    of machine: the manifest records its :func:`~simmerge.core.provenance.provenance`).

    Parameters
    ----------
    ckpt_dir : path-like
        Checkpoint directory.
    name : str
        Catalog entry of the checkpoint.
    source : dict
        Where the checkpoint came from, stored as given: e.g. ``{"kind": "hf", "repo_id", "revision",
        "resolved_sha"}``, ``{"kind": "gguf", "package", "dequantized_from", ...}`` or
        ``{"kind": "finetune", "parent", "hyperparameters"}``.

    Returns
    -------
    dict
        Every field of :func:`inspect_checkpoint`, plus ``manifest_version``, ``source``, ``files``
        (relative path → ``{"sha256", "bytes"}`` for every file but ``manifest.json``), ``weights_sha256`` (one
        digest of the weight files, :func:`~simmerge.core.provenance.weights_sha256`, by which the records made
        from this checkpoint cite it) and ``provenance``.

    Raises
    ------
    PreflightError
        As :func:`inspect_checkpoint`.
    """
    ckpt_dir = Path(ckpt_dir)
    manifest = inspect_checkpoint(ckpt_dir, name=name)
    files = {}
    for path in sorted(p for p in ckpt_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(ckpt_dir).as_posix()
        if relative == MANIFEST_NAME:
            continue
        files[relative] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest.update(manifest_version=MANIFEST_VERSION, source=source, files=files)
    manifest["weights_sha256"] = weights_sha256(manifest)
    manifest["provenance"] = provenance()
    return manifest


def write_manifest(
    ckpt_dir: str | os.PathLike,
    *,
    name: str,
    source: dict[str, Any],
    path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Build the manifest of :func:`build_manifest` and write it, by default to ``<ckpt_dir>/manifest.json``.

    ``path`` puts it elsewhere: a ``local`` checkpoint is recorded without writing into the user's directory.
    """
    manifest = build_manifest(ckpt_dir, name=name, source=source)
    write_json(manifest, Path(ckpt_dir) / MANIFEST_NAME if path is None else path)
    logger.info(
        "wrote manifest of checkpoint %r (%d files, %d parameters)",
        name,
        len(manifest["files"]),
        manifest["parameter_count"],
    )
    return manifest


def checkpoints_sha256(*manifest_paths: str | os.PathLike) -> dict[str, str]:
    """Catalog name → weights digest of each checkpoint, read from its manifest: stored as ``checkpoints_sha256`` in
    the records computed from those checkpoints, so a record whose checkpoint was rebuilt since can be found
    (:func:`simmerge.core.provenance.mixed_provenance`)."""
    manifests = [json.loads(Path(path).read_text(encoding="utf-8")) for path in manifest_paths]
    return {manifest["name"]: weights_sha256(manifest) for manifest in manifests}


def check_compatible(expert: dict[str, Any], base: dict[str, Any], *, name: str) -> None:
    """Check that an expert has the base's architecture and tensors, so the two can be merged tensor by tensor.

    First the config fields of ``COMPATIBILITY_FIELDS`` (architecture, sizes, vocabulary size, tied embeddings),
    then every tensor's name, shape and dtype (:func:`tensor_differences`): a missing or extra tensor (an
    ``lm_head.weight`` present in one but not the other is a different choice of tied embeddings) or another
    shape is refused. Floating-point dtypes may differ (a bf16 expert of an fp32 base): mergekit casts every
    tensor to the merge's dtype, so this is logged as a warning, not refused; a floating-point tensor against an
    integer one (a quantized checkpoint) is refused.

    A base manifest written before tensors were recorded (no ``tensors`` key) is compared on its config fields
    only, with a warning; :func:`simmerge.catalog.build` reads the base's headers again instead, so this happens
    only to callers passing such a manifest themselves.

    Parameters
    ----------
    expert, base : dict
        Manifests or :func:`inspect_checkpoint` results.
    name : str
        Catalog entry of the expert.

    Raises
    ------
    PreflightError
        Naming the expert, every field that differs with both values, and the fix; or naming the expert, how many
        tensors differ, the first few (name: expert vs base) and the fix.
    """
    base_name = base.get("name", "the base")
    fix = (
        f"Every expert must share the base's architecture; remove {name!r} from catalog.experts or point it at a "
        f"checkpoint fine-tuned from {base_name!r}."
    )
    diffs = [
        f"{field} is {expert.get(field)!r} but the base {base_name!r} has {base.get(field)!r}"
        for field in COMPATIBILITY_FIELDS
        if field in base and expert.get(field) != base.get(field)
    ]
    if diffs:
        raise PreflightError(f"checkpoint {name!r}: {'; '.join(diffs)}. {fix}")
    if "tensors" not in base or "tensors" not in expert:
        logger.warning(
            "checkpoint %r: the manifest of %r records no tensors (written before they were recorded): only its "
            "config fields were compared; delete that manifest to rebuild it and compare every tensor",
            name,
            base_name if "tensors" not in base else name,
        )
        return
    problems, n_checked = tensor_differences(expert["tensors"], base["tensors"], other="the base")
    if problems:
        raise PreflightError(
            f"checkpoint {name!r}: {len(problems)} of {n_checked} tensors differ from the base {base_name!r}: "
            f"{_first(problems)}. {fix}"
        )
    casts = Counter(
        (base["tensors"][t][0], info[0]) for t, info in expert["tensors"].items() if info[0] != base["tensors"][t][0]
    )
    if casts:
        logger.warning(
            "checkpoint %r: %d tensors have another floating-point dtype than the base %r (%s); mergekit casts "
            "them to the merge's dtype",
            name,
            sum(casts.values()),
            base_name,
            ", ".join(f"{n} {e} vs {b}" for (b, e), n in sorted(casts.items())),
        )


def _first(problems: list[str], n: int = 5) -> str:
    more = f"; ... and {len(problems) - n} more" if len(problems) > n else ""
    return "; ".join(problems[:n]) + more


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


def tensor_differences(
    tensors: dict[str, list], reference: dict[str, list], *, other: str, dtypes: bool = True
) -> tuple[list[str], int]:
    """Compare two ``name → [dtype, shape]`` maps: missing and extra tensors, other shapes, float vs non-float.

    Parameters
    ----------
    tensors, reference : dict
        The checkpoint's tensors and those it must match (the base's, or those its ``config.json`` implies).
    other : str
        How messages name the reference (``"the base"``, ``"config.json"``).
    dtypes : bool
        Also refuse a floating-point tensor whose reference is not floating point (or the reverse).

    Returns
    -------
    problems : list of str
        One phrase per differing tensor, in sorted name order: ``"<name>: shape [a, b] vs [c, d] in <other>"``,
        ``"<name>: missing (<other> has [c, d])"``, ``"<name>: not in <other> ([a, b])"``, or the dtypes.
    n_checked : int
        How many tensor names the two maps hold together.
    """
    problems = []
    names = sorted(set(tensors) | set(reference))
    for tensor in names:
        if tensor not in tensors:
            problems.append(f"{tensor}: missing ({other} has {reference[tensor][1]})")
        elif tensor not in reference:
            problems.append(f"{tensor}: not in {other} ({tensors[tensor][1]})")
        elif list(tensors[tensor][1]) != list(reference[tensor][1]):
            problems.append(f"{tensor}: shape {tensors[tensor][1]} vs {reference[tensor][1]} in {other}")
        elif dtypes and _is_float(tensors[tensor][0]) != _is_float(reference[tensor][0]):
            problems.append(f"{tensor}: dtype {tensors[tensor][0]} vs {reference[tensor][0]} in {other}")
    return problems, len(names)


def check_tokenizer(
    expert: dict[str, Any],
    base: dict[str, Any],
    *,
    name: str,
    expert_dir: str | os.PathLike | None = None,
    base_dir: str | os.PathLike | None = None,
) -> None:
    """Refuse an expert whose tokenizer is not the base's: the same tokens under the same ids.

    A merge runs with one tokenizer, so an expert that maps ids to other tokens (a community fine-tune that
    swapped or added tokens, even at the same vocabulary size) would be merged row by row with the wrong
    embeddings. The vocabularies are compared as token → id pairs, not as files, so a re-saved tokenizer passes.
    Two sentencepiece-only tokenizers are compared by their ``tokenizer.model`` digest; a sentencepiece-only
    tokenizer against a JSON one cannot be compared without loading it, and passes with a warning.

    Parameters
    ----------
    expert, base : dict
        Manifests or :func:`inspect_checkpoint` results.
    name : str
        Catalog entry of the expert.
    expert_dir, base_dir : path-like, optional
        The checkpoints' directories: when both are given, the message names the first differing tokens.

    Raises
    ------
    PreflightError
        Naming the expert, both vocabulary sizes, the first differing token ids with both tokens, and the fix.
    """
    base_name = base.get("name", "the base")
    if "tokenizer" not in base:
        logger.warning(
            "checkpoint %r: the manifest of %r records no tokenizer (written before it was recorded): tokenizers "
            "not compared; delete that manifest to rebuild it",
            name,
            base_name,
        )
        return
    mine, theirs = expert.get("tokenizer"), base["tokenizer"]
    if mine == theirs:
        return
    if mine and theirs and mine["file"] != theirs["file"] and "tokenizer.model" in (mine["file"], theirs["file"]):
        logger.warning(
            "checkpoint %r: tokenizer %s cannot be compared with the base's %s without loading them; not checked",
            name,
            mine["file"],
            theirs["file"],
        )
        return

    def size(fingerprint: dict | None) -> str:
        if fingerprint is None:
            return "no tokenizer files"
        return f"{fingerprint['vocab_size']} tokens" if fingerprint["vocab_size"] is not None else fingerprint["file"]

    detail = ""
    if expert_dir is not None and base_dir is not None:
        detail = _vocabulary_differences(expert_dir, base_dir)
    raise PreflightError(
        f"checkpoint {name!r}: tokenizer differs from the base {base_name!r}: {size(mine)} vs {size(theirs)} in "
        f"the base{detail}. A merge uses one tokenizer, so every expert must map the same tokens to the same ids; "
        f"remove {name!r} from catalog.experts or point it at a checkpoint that kept the base's tokenizer."
    )


def _vocabulary_differences(expert_dir: str | os.PathLike, base_dir: str | os.PathLike, n: int = 3) -> str:
    found = [read_vocabulary(expert_dir), read_vocabulary(base_dir)]
    if any(f is None or f[1] is None for f in found):
        return ""
    mine, theirs = ({i: t for t, i in f[1].items()} for f in found)
    differing = [i for i in sorted(set(mine) | set(theirs)) if mine.get(i) != theirs.get(i)]
    if not differing:
        return ""
    shown = ", ".join(f"id {i} is {mine.get(i)!r} vs {theirs.get(i)!r}" for i in differing[:n])
    return f"; {len(differing)} ids differ, first {shown}"


def check_config_matches_tensors(
    ckpt_dir: str | os.PathLike, facts: dict[str, Any], *, name: str, trust_remote_code: bool = False
) -> None:
    """Check that a checkpoint's weights are the model its ``config.json`` describes.

    The model of the config is instantiated on PyTorch's ``meta`` device (no memory, no weights: seconds even for
    7B) and its state dict's names and shapes are compared with the safetensors headers (:func:`tensor_differences`,
    shapes only: transformers casts dtypes on load). Tied weights missing from the files are expected; tensors the
    model does not use are logged, as transformers ignores them. This catches a ``config.json`` copied beside
    another model's weights, which otherwise loads with a shape error much later or silently re-initialises
    missing layers. A config that transformers cannot instantiate is logged and not checked.

    Parameters
    ----------
    ckpt_dir : path-like
        Checkpoint directory.
    facts : dict
        Its :func:`inspect_checkpoint` result (``tensors``, ``tie_word_embeddings``).
    name : str
        Catalog entry, used in error messages.
    trust_remote_code : bool
        The entry's ``source.trust_remote_code`` (a custom architecture is only instantiated when trusted).

    Raises
    ------
    PreflightError
        Naming the checkpoint, how many tensors differ from the config's model, the first few, and the fix.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    ckpt_dir = Path(ckpt_dir)
    try:
        config = AutoConfig.from_pretrained(ckpt_dir, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except Exception as err:  # noqa: BLE001 - any failure here only means the check cannot run
        logger.warning(
            "checkpoint %r: config.json not compared with the weights (%s: %s)", name, type(err).__name__, err
        )
        return
    expected = {key: ["", list(value.shape)] for key, value in model.state_dict().items()}
    present = facts["tensors"]
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    if not set(expected) & set(present) and prefix != ".":
        # a checkpoint saved from the bare base model has no "model." prefix, which transformers accepts
        expected = {key.removeprefix(prefix): value for key, value in expected.items()}
    tied = _tied_keys(model) if getattr(config, "tie_word_embeddings", False) else set()
    for key in tied:
        if key not in present:
            expected.pop(key, None)
    problems, _ = tensor_differences(present, expected, other="config.json", dtypes=False)
    unused = [p for p in problems if ": not in config.json" in p]
    problems = [p for p in problems if ": not in config.json" not in p]
    if unused:
        logger.warning(
            "checkpoint %r: %d tensors the model of config.json does not use: %s", name, len(unused), _first(unused)
        )
    if problems:
        raise _fail(
            name,
            ckpt_dir,
            "config.json vs weights",
            f"{len(problems)} of {len(expected)} tensors of the model config.json describes "
            f"({type(model).__name__}) differ from the weights: {_first(problems)}",
            "config.json and the weights come from different models; put the weights' own config.json beside "
            "them, or rebuild or re-fetch the checkpoint",
        )
    logger.info("checkpoint %r: the %d tensors match config.json (%s)", name, len(expected), type(model).__name__)


def _tied_keys(model: Any) -> set[str]:
    keys = getattr(model, "_tied_weights_keys", None) or []
    keys = set(keys.keys() if isinstance(keys, dict) else keys)
    return keys | {k for k in model.state_dict() if k.endswith("lm_head.weight")}


@functools.cache
def _transformers_architectures() -> frozenset[str]:
    """Every model class name the installed transformers maps from a config (its ``*_MAPPING_NAMES`` tables)."""
    # deferred: most stages import this module; only these checks need transformers or torch
    from transformers.models.auto import modeling_auto

    names: set[str] = set()
    for key, table in vars(modeling_auto).items():
        if key.endswith("_MAPPING_NAMES") and isinstance(table, dict):
            for value in table.values():
                names.update(value if isinstance(value, tuple | list) else [value])
    return frozenset(names)


def remote_code_reasons(config: dict[str, Any]) -> list[str]:
    """Why loading a checkpoint with this ``config.json`` would run code shipped with the checkpoint.

    transformers runs a checkpoint's own Python files when ``config.json`` has an ``auto_map`` (classes named
    ``"module.Class"`` or ``"repo--module.Class"``), and cannot load it at all without them when its
    ``model_type`` or ``architectures`` are classes it does not ship.

    Returns
    -------
    list of str
        One phrase per reason (empty: the installed transformers loads it with its own code).
    """
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    reasons = []
    auto_map = config.get("auto_map")
    if auto_map:
        if isinstance(auto_map, dict):
            classes = ", ".join(f"{key} -> {value}" for key, value in sorted(auto_map.items()))
        else:
            classes = repr(auto_map)
        reasons.append(f"auto_map names custom classes ({classes})")
    model_type = _config_value(config, "model_type")
    if model_type is not None and model_type not in CONFIG_MAPPING_NAMES:
        reasons.append(f"model_type {model_type!r} is not a transformers model type")
    architectures = config.get("architectures")
    if isinstance(architectures, list) and architectures:
        unknown = sorted(set(architectures) - _transformers_architectures())
        if unknown:
            reasons.append(f"architectures {unknown} are not transformers classes")
    return reasons


def check_remote_code(ckpt_dir: str | os.PathLike, *, name: str, trust_remote_code: bool) -> list[str]:
    """Refuse a checkpoint that needs its own modelling code unless its catalog entry allows it.

    Parameters
    ----------
    ckpt_dir : path-like
        Checkpoint directory (its ``config.json`` is read; nothing is imported from the checkpoint).
    name : str
        Catalog entry, used in error messages.
    trust_remote_code : bool
        The entry's ``source.trust_remote_code``.

    Returns
    -------
    list of str
        The reasons of :func:`remote_code_reasons` (empty when the checkpoint needs no custom code).

    Raises
    ------
    PreflightError
        If the checkpoint needs custom code and ``trust_remote_code`` is false, naming the entry, the
        ``auto_map`` classes or unknown types, and the two fixes.
    """
    config_path = Path(ckpt_dir) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(
            name, config_path, "config.json", f"cannot be read ({err})", "rebuild or re-fetch the checkpoint"
        ) from err
    reasons = remote_code_reasons(config if isinstance(config, dict) else {})
    if reasons and not trust_remote_code:
        raise _fail(
            name,
            config_path,
            "trust_remote_code",
            "loading this checkpoint would run Python code shipped with it: " + "; ".join(reasons),
            f"Set `trust_remote_code: true` in the source of catalog entry {name!r} only if you have read and "
            "trust that code, or use a checkpoint of an architecture transformers supports natively",
        )
    if reasons:
        logger.warning("checkpoint %r runs its own modelling code (trust_remote_code: true): %s", name, reasons)
    return reasons


def check_finite(ckpt_dir: str | os.PathLike, *, name: str) -> None:
    """Check that every tensor of a checkpoint is finite, streaming one tensor at a time.

    Parameters
    ----------
    ckpt_dir : path-like
        Checkpoint directory.
    name : str
        Catalog entry, used in error messages.

    Raises
    ------
    PreflightError
        Naming the checkpoint, the file and the first tensor (files and tensor names in sorted order)
        holding NaN or Inf, with the number of bad values; or as :func:`weight_files`.
    """
    import torch
    from safetensors import safe_open

    ckpt_dir = Path(ckpt_dir)
    n_tensors = 0
    for path in weight_files(ckpt_dir, name=name):
        with safe_open(path, framework="pt") as handle:
            for tensor_name in sorted(handle.keys()):
                tensor = handle.get_tensor(tensor_name)
                n_tensors += 1
                if not tensor.is_floating_point():
                    continue
                bad = ~torch.isfinite(tensor)
                if bool(bad.any()):
                    n_bad, n_nan = int(bad.sum()), int(torch.isnan(tensor).sum())
                    raise _fail(
                        name,
                        path,
                        f"tensor {tensor_name!r}",
                        f"holds {n_bad} non-finite values ({n_nan} NaN, {n_bad - n_nan} Inf)",
                        "the checkpoint is broken (diverged training or a bad conversion); rebuild it or "
                        "remove it from the catalog",
                    )
    logger.info("checkpoint %r: all %d tensors are finite", name, n_tensors)
