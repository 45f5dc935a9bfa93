"""The channel-weighted mask and the two composite inputs built from it.

Paper: Du, Liu, Song, Hu. "Towards Explanation of DNN-based Prediction with
Guided Feature Inversion", KDD 2018.

* Eq. (6)  ``channel_weighted_map``  M = sum_i w_i f_i^{l1}(x)
* Eq. (7)  ``minmax_normalize``      (M - min M) / (max M - min M)
* upsampling to the input's resolution: ``upsample_mask``
* Eq. (2)  ``guided_input``           x * m + p * (1 - m)
* Eq. (4)  ``background_input``       x * (1 - m) + p * m
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Interpolation modes accepted for upsampling the mask to the input resolution.
INTERPOLATE_MODES = ("nearest", "bilinear", "bicubic", "area")


def channel_weighted_map(weights: Tensor, features: Tensor) -> Tensor:
    r"""Eq. (6): weighted sum of the base layer's channels, one weight vector per example.

    Args:
        weights (Tensor): channel weights :math:`\omega`, shape (N, C).
        features (Tensor): activations :math:`f^{l_1}(x)`, shape (N, C, h, w).

    Returns:
        Tensor: the unnormalised mask, shape (N, 1, h, w).
    """
    return torch.einsum("nc,nchw->nhw", weights, features).unsqueeze(1)


def minmax_normalize(mask: Tensor, eps: float = 1e-12) -> Tensor:
    r"""Eq. (7): per-example min-max normalisation to [0, 1].

    A constant map (for instance all weights clipped to zero) normalises to zeros.

    Args:
        mask (Tensor): shape (N, 1, h, w).
        eps (float): lower bound on the denominator.
    """
    flat = mask.flatten(1)
    low = flat.amin(dim=1).view(-1, 1, 1, 1)
    high = flat.amax(dim=1).view(-1, 1, 1, 1)
    return (mask - low) / (high - low).clamp_min(eps)


def upsample_mask(mask: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Upsample an (N, 1, h, w) mask in [0, 1] to ``size``; the result stays in [0, 1]."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    align = False if mode in ("bilinear", "bicubic") else None
    up = F.interpolate(mask, size=size, mode=mode, align_corners=align)
    # bicubic overshoots slightly; the mask is a convex weight, so keep it in [0, 1]
    return up.clamp(0.0, 1.0) if mode == "bicubic" else up


def feature_mask(
    weights: Tensor, features: Tensor, size: tuple[int, int], mode: str = "bilinear"
) -> tuple[Tensor, Tensor]:
    """Eq. (6) + Eq. (7) + upsampling.

    Returns:
        (layer_mask, mask): the normalised mask at the base layer's resolution
        (N, 1, h, w) and upsampled to ``size`` (N, 1, H, W).
    """
    layer_mask = minmax_normalize(channel_weighted_map(weights, features))
    return layer_mask, upsample_mask(layer_mask, size, mode)


def guided_input(inputs: Tensor, background: Tensor, mask: Tensor) -> Tensor:
    """Eq. (2): keep the input where the mask is on, the background elsewhere."""
    return inputs * mask + background * (1 - mask)


def background_input(inputs: Tensor, background: Tensor, mask: Tensor) -> Tensor:
    """Eq. (4): the complement of Eq. (2): the input's background, the foreground removed."""
    return inputs * (1 - mask) + background * mask
