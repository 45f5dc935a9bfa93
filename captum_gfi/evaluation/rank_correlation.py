"""Spearman's rank correlation between two batches of maps, one value per pair.

Ties get their average rank (as ``scipy.stats.spearmanr``). A map with no variation
(all pixels equal) ranks nothing: its correlation with any map is defined here as
``0`` (scipy returns ``nan``), so that a method whose map collapses to a constant
counts as uncorrelated with its earlier map instead of poisoning a mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "average_ranks",
    "spearman",
]


def average_ranks(values: Tensor) -> Tensor:
    r"""
    Ranks ``0 .. P-1`` of every row of ``values``, ties sharing their average rank.

    Args:
        values (Tensor): ``(N, P)``.

    Returns:
        ranks (Tensor): ``(N, P)`` float64.
    """
    if values.dim() != 2:
        raise ValueError(f"`values` must be (N, P), got {tuple(values.shape)}")
    ranks = torch.empty(values.shape, dtype=torch.float64, device=values.device)
    for i, row in enumerate(values):
        _, inverse, counts = torch.unique(row, sorted=True, return_inverse=True, return_counts=True)
        ends = counts.cumsum(0)
        ranks[i] = ((ends - counts + ends - 1).double() / 2)[inverse]
    return ranks


def spearman(first: Tensor, second: Tensor) -> Tensor:
    r"""
    Spearman's rank correlation of every pair of maps.

    Args:
        first (Tensor): ``(N, ...)`` maps (each flattened).
        second (Tensor): ``(N, ...)`` maps with as many elements each.

    Returns:
        rho (Tensor): ``(N,)`` float64 in ``[-1, 1]``; ``0`` for a pair where either map
        is constant.
    """
    if not isinstance(first, Tensor) or not isinstance(second, Tensor):
        raise TypeError("`first` and `second` must be torch.Tensors")
    if first.shape[0] != second.shape[0] or first[0].numel() != second[0].numel():
        raise ValueError(
            f"`first` and `second` must hold as many maps of as many pixels, got "
            f"{tuple(first.shape)} and {tuple(second.shape)}"
        )
    a = average_ranks(first.detach().flatten(1).double().cpu())
    b = average_ranks(second.detach().flatten(1).double().cpu())
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    norm = a.norm(dim=1) * b.norm(dim=1)
    rho = (a * b).sum(1) / norm.clamp(min=1e-300)
    return torch.where(norm > 0, rho.clamp(-1, 1), torch.zeros_like(rho))
