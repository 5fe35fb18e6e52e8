"""simmerge.merges.sparsification gives mergekit's own sparsification masks, by selection instead of a full sort."""

from __future__ import annotations

import pytest
import torch

from simmerge.merges import sparsification
from simmerge.merges.sparsification import rank_window_mask

MERGEKIT = sparsification.originals()


def tensors():
    generator = torch.Generator().manual_seed(0)
    yield torch.randn(64, 48, generator=generator)  # a weight matrix
    yield torch.randn(301, generator=generator)  # a bias / norm vector, odd length
    yield torch.randn(1, generator=generator)  # one element


@pytest.mark.parametrize("density", [0.1, 0.2, 0.5, 0.9, 0.999])
def test_magnitude_keeps_the_same_elements_as_mergekit(density):
    for tensor in tensors():
        ours = sparsification.magnitude(tensor, density)
        assert torch.equal(ours, MERGEKIT["magnitude"](tensor, density)), (tensor.shape, density)
        assert int((ours != 0).sum()) == max(1, int(density * tensor.numel()))


@pytest.mark.parametrize(("density", "gamma"), [(0.9, 0.01), (0.5, 0.1), (0.2, 0.3), (0.7, 0.0)])
def test_breadcrumbs_outlier_masks_equal_mergekits(density, gamma):
    for tensor in tensors():
        ours = sparsification.magnitude_outliers(tensor, density, gamma=gamma)
        assert torch.equal(ours, MERGEKIT["magnitude_outliers"](tensor, density, gamma=gamma))


def test_della_ranks_equal_mergekits_and_so_does_its_random_mask():
    for tensor in list(tensors())[:2]:  # a single element has no rank spread (NaN in mergekit too)
        torch.manual_seed(5)
        ours = sparsification.della_magprune(tensor, 0.5, 0.1)
        torch.manual_seed(5)
        assert torch.equal(ours, MERGEKIT["della_magprune"](tensor, 0.5, 0.1))
    with pytest.raises(ValueError, match="Epsilon"):
        sparsification.della_magprune(torch.ones(4, 4), 0.5, 0.6)


def test_rescaling_follows_mergekits_norms():
    from mergekit.sparsify import RescaleNorm

    tensor = next(tensors())
    for norm in RescaleNorm:
        assert torch.allclose(
            sparsification.magnitude(tensor, 0.3, norm), MERGEKIT["magnitude"](tensor, 0.3, norm), atol=0, rtol=0
        )


def test_ties_at_the_window_edge_keep_the_earliest_and_the_window_size():
    values = torch.tensor([3.0, 1.0, 2.0, 2.0, 2.0, 0.5, 2.0])
    # ascending ranks, ties in storage order: 0.5, 1, 2 (i2), 2 (i3), 2 (i4), 2 (i6), 3
    kept = rank_window_mask(values, 3, 6)
    assert kept.sum() == 3 and kept[[3, 4, 6]].all()
    assert rank_window_mask(values, 0, 7).all() and not rank_window_mask(values, 2, 2).any()
    assert rank_window_mask(values, 6, 7).nonzero().reshape(-1).tolist() == [0]
    with pytest.raises(ValueError, match="outside"):
        rank_window_mask(values, 3, 8)


def test_install_swaps_mergekits_functions_once_and_its_dispatch_uses_them():
    import mergekit.sparsify as module

    sparsification.install()
    sparsification.install()
    assert module.magnitude is sparsification.magnitude
    assert sparsification.originals()["magnitude"] is MERGEKIT["magnitude"]
    tensor = next(tensors())
    dispatched = module.sparsify(tensor, 0.4, module.SparsificationMethod.magnitude)
    assert torch.equal(dispatched, MERGEKIT["magnitude"](tensor, 0.4))
