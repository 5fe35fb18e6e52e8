"""mergekit 0.1.5's magnitude sparsification by selection instead of a full sort: the same masks up to ties, faster.

TIES keeps each task vector's ``density`` largest magnitudes (``mergekit.sparsify.magnitude``), breadcrumbs drops
the largest ``gamma`` and the smallest ones (``magnitude_outliers``), DELLA ranks every row's magnitudes
(``della_magprune``). mergekit finds them with a full ``torch.argsort`` (``sort``) of each tensor, which runs on
one core: 37-51 s of a TIES, breadcrumbs or DELLA merge job of SmolLM2-135M went there, more than scoring the merge
(docs/merge-job-cost.md); by selection such a merge takes 18-34 s instead of 43-49 s (docs/sparsification.md).
What those masks need is a rank *window* (keep ranks ``start`` to ``stop`` of the ascending magnitudes), which
two ``torch.kthvalue`` selections and comparisons give in linear time; DELLA's ranks are the inverse of its sort
permutation, which one scatter gives instead of a second ``argsort``.

The masks are mergekit's exactly, except where several magnitudes tie at a window's edge: mergekit's unstable sort
keeps an unspecified subset of them, :func:`rank_window_mask` keeps the earliest in storage order (deterministic).
On a SmolLM2 expert's whole task vector 272 of 134.5 million elements differed at density 0.5, every one a tie at
the threshold (``benchmarks/sparsification.py`` measures it with the merge times:
docs/sparsification.md); ``tests/unit/test_sparsification.py`` checks the masks against mergekit's own functions.
:func:`install` swaps the three functions in ``mergekit.sparsify`` (its
``sparsify`` dispatches to them by name), once per process, before a merge.
"""

from __future__ import annotations

import torch

_INSTALLED: dict[str, object] = {}


def rank_window_mask(magnitudes: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Boolean mask of the elements whose ascending rank (ties: storage order) is in ``[start, stop)``.

    Parameters
    ----------
    magnitudes : torch.Tensor
        1-D values to rank.
    start, stop : int
        The window, ``0 <= start <= stop <= numel``.
    """
    n = magnitudes.numel()
    if not 0 <= start <= stop <= n:
        raise ValueError(f"rank window [{start}, {stop}) is outside [0, {n}]")
    mask = torch.zeros(n, dtype=torch.bool, device=magnitudes.device)
    if start == stop:
        return mask
    low = torch.kthvalue(magnitudes, start + 1).values  # the value at rank start
    high = torch.kthvalue(magnitudes, stop).values  # the value at rank stop - 1
    mask |= (magnitudes > low) & (magnitudes < high)
    for value in (low, high) if low != high else (low,):
        equal = torch.nonzero(magnitudes == value).reshape(-1)  # storage order
        first_rank = int((magnitudes < value).sum())  # the rank of the first of them
        keep = equal[max(0, start - first_rank) : max(0, stop - first_rank)]
        mask[keep] = True
    return mask


def _work(tensor: torch.Tensor) -> torch.Tensor:
    w = tensor.abs().reshape(-1)
    return w.float() if w.device.type == "cpu" else w


def magnitude(tensor: torch.Tensor, density: float, rescale_norm: object | None = None) -> torch.Tensor:
    """``mergekit.sparsify.magnitude``: keep the ``density`` largest magnitudes (at least one element)."""
    from mergekit.sparsify import rescaled_masked_tensor

    if density >= 1:
        return tensor
    if density <= 0 or tensor.numel() == 0:
        return torch.zeros_like(tensor)
    n = tensor.numel()
    k = max(1, int(density * n))
    mask = rank_window_mask(_work(tensor), n - k, n).to(tensor.dtype)
    return rescaled_masked_tensor(tensor, mask.reshape_as(tensor), rescale_norm)


def magnitude_outliers(
    tensor: torch.Tensor, density: float, rescale_norm: object | None = None, gamma: float = 0.01
) -> torch.Tensor:
    """``mergekit.sparsify.magnitude_outliers``: drop the ``gamma`` largest magnitudes, then the smallest ones
    down to ``density``."""
    from mergekit.sparsify import rescaled_masked_tensor

    if density >= 1:
        return tensor
    n = tensor.numel()
    target_n = int(density * n)
    n_bot = max(0, n - target_n - int(gamma * n))
    mask = rank_window_mask(_work(tensor), n_bot, n_bot + target_n).to(tensor.dtype)
    return rescaled_masked_tensor(tensor, mask.reshape_as(tensor), rescale_norm)


def della_magprune(
    tensor: torch.Tensor, density: float, epsilon: float, rescale_norm: object | None = None
) -> torch.Tensor:
    """``mergekit.sparsify.della_magprune`` with each row's ranks from one sort and a scatter (the same ranks)."""
    from mergekit.sparsify import rescaled_masked_tensor

    if density >= 1:
        return tensor
    if density <= 0:
        return torch.zeros_like(tensor)
    orig_shape = tensor.shape
    if density + epsilon >= 1 or density - epsilon <= 0:
        raise ValueError("Epsilon must be chosen such that density +/- epsilon is in (0, 1)")
    work_dtype = tensor.dtype if tensor.device.type != "cpu" or tensor.dtype == torch.bfloat16 else torch.float32
    if len(tensor.shape) < 2:
        tensor = tensor.unsqueeze(0)
    sorted_indices = torch.argsort(tensor.abs(), dim=1, descending=False)
    positions = torch.arange(1, tensor.shape[1] + 1, device=tensor.device, dtype=work_dtype)
    ranks = torch.empty(sorted_indices.shape, dtype=work_dtype, device=tensor.device)
    ranks.scatter_(1, sorted_indices, positions.expand_as(sorted_indices).contiguous())
    min_ranks = ranks.min(dim=1, keepdim=True).values
    max_ranks = ranks.max(dim=1, keepdim=True).values
    rank_norm = ((ranks - min_ranks) / (max_ranks - min_ranks)).clamp(0, 1)
    probs = (density - epsilon) + rank_norm * 2 * epsilon
    mask = torch.bernoulli(probs).to(work_dtype)
    res = rescaled_masked_tensor(tensor.to(work_dtype), mask, rescale_norm)
    return res.to(tensor.dtype).reshape(orig_shape)


REPLACED = {"magnitude": magnitude, "magnitude_outliers": magnitude_outliers, "della_magprune": della_magprune}


def install() -> None:
    """Use these functions for mergekit's sparsification in this process (idempotent)."""
    import mergekit.sparsify as module

    for name, replacement in REPLACED.items():
        current = getattr(module, name)
        if current is not replacement:
            _INSTALLED.setdefault(name, current)
            setattr(module, name, replacement)


def originals() -> dict[str, object]:
    """mergekit's own functions (what :func:`install` replaced, or the module's if nothing was)."""
    import mergekit.sparsify as module

    found = {name: _INSTALLED.get(name, getattr(module, name)) for name in REPLACED}
    if any(found[name] is REPLACED[name] for name in REPLACED):
        raise RuntimeError("mergekit.sparsify holds these replacements, set by hand rather than by install()")
    return found


__all__ = ["REPLACED", "della_magprune", "install", "magnitude", "magnitude_outliers", "originals", "rank_window_mask"]
