"""Pick the torch device and thread count, so the same code runs on a CPU runner and on a GPU."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
# Weight dtypes of scoring and probe passes; "auto": bfloat16 on CUDA, float32 on CPU (where bfloat16 is only faster
# with AVX-512 BF16 / AMX, and moves scores: benchmarks/dtype_cpu.py measures it on the machine at hand).
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(requested: str = "auto") -> torch.device:
    """Turn a device request into a :class:`torch.device`.

    Parameters
    ----------
    requested : str
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or an indexed CUDA device such as
        ``"cuda:1"``.

    Returns
    -------
    torch.device
        The device to put models and tensors on.

    Raises
    ------
    ValueError
        If ``requested`` is not one of the accepted names.
    RuntimeError
        If CUDA is requested but not available.
    """
    # deferred: torch takes seconds to import, and every stage module that imports this one would pay for it
    import torch

    name = str(requested).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {requested!r} was requested but CUDA is not available (torch {torch.__version__}, "
                f"built with CUDA {torch.version.cuda}); use device 'auto' or 'cpu'"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {requested!r} was requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return device
    raise ValueError(f"unknown device {requested!r}; expected one of {', '.join(DEVICES)} or 'cuda:N'")


def resolve_dtype(requested: str, device: torch.device | str) -> str:
    """The dtype name a model is loaded in: ``requested``, or for ``"auto"`` bfloat16 on CUDA and float32 on CPU.

    Raises
    ------
    ValueError
        If ``requested`` is not one of :data:`DTYPES`.

    Examples
    --------
    >>> resolve_dtype("auto", "cpu"), resolve_dtype("auto", "cuda:0"), resolve_dtype("bfloat16", "cpu")
    ('float32', 'bfloat16', 'bfloat16')
    """
    if requested not in DTYPES:
        raise ValueError(f"unknown dtype {requested!r}; expected one of {', '.join(DTYPES)}")
    if requested != "auto":
        return requested
    return "bfloat16" if str(device).startswith("cuda") else "float32"


def set_threads(threads: int | None) -> None:
    """Set the number of intra-op CPU threads torch uses.

    Parameters
    ----------
    threads : int or None
        Number of threads (at least 1); ``None`` leaves torch's setting unchanged.

    Raises
    ------
    ValueError
        If ``threads`` is smaller than 1.
    """
    if threads is None:
        return
    if int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(int(threads))
    log.debug("torch uses %d intra-op threads", torch.get_num_threads())
