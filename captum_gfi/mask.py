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

from collections.abc import Sequence

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


def interpolation_matrices(
    in_size: Sequence[int],
    size: Sequence[int],
    mode: str = "bilinear",
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """The upsampling of :func:`upsample_mask` as two matrices, ``rows`` (H, h) and
    ``cols`` (W, w): every mode of :data:`INTERPOLATE_MODES` is separable, so
    ``F.interpolate(m, size, mode) == rows @ m @ cols.T`` (before bicubic's clamp).

    They are built by interpolating the identity along one axis at a time, so they
    hold exactly ``F.interpolate``'s weights. Two small matmuls replace
    ``F.interpolate`` in the optimisation loop: much cheaper, its backward
    above all (``upsample_bilinear2d_backward`` is a scatter on CPU).
    """
    align = False if mode in ("bilinear", "bicubic") else None

    def axis(n_in: int, n_out: int) -> Tensor:
        eye = torch.eye(n_in, dtype=dtype, device=device).view(n_in, 1, n_in, 1)
        out = F.interpolate(eye, size=(n_out, 1), mode=mode, align_corners=align)
        return out.view(n_in, n_out).t().contiguous()

    return axis(in_size[0], size[0]), axis(in_size[1], size[1])


def feature_mask(
    weights: Tensor,
    features: Tensor,
    size: tuple[int, int],
    mode: str = "bilinear",
    matrices: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Eq. (6) + Eq. (7) + upsampling.

    ``matrices`` (from :func:`interpolation_matrices`, for the same ``size`` and
    ``mode``) upsample by two matmuls instead of ``F.interpolate``; same result
    to float rounding.

    Returns:
        (layer_mask, mask): the normalised mask at the base layer's resolution
        (N, 1, h, w) and upsampled to ``size`` (N, 1, H, W).
    """
    layer_mask = minmax_normalize(channel_weighted_map(weights, features))
    if matrices is None or tuple(layer_mask.shape[-2:]) == tuple(size):
        return layer_mask, upsample_mask(layer_mask, size, mode)
    rows, cols = matrices
    up = torch.matmul(torch.matmul(rows, layer_mask), cols.t())
    return layer_mask, up.clamp(0.0, 1.0) if mode == "bicubic" else up


def guided_input(inputs: Tensor, background: Tensor, mask: Tensor) -> Tensor:
    """Eq. (2): x * m + p * (1 - m): keep the input where the mask is on, the background
    elsewhere. Computed as p + (x - p) * m, one fused ``addcmul`` (one op forward and
    backward instead of four)."""
    return torch.addcmul(background, inputs - background, mask)


def background_input(inputs: Tensor, background: Tensor, mask: Tensor) -> Tensor:
    """Eq. (4): x * (1 - m) + p * m: the complement of Eq. (2), the foreground removed.
    Computed as x + (p - x) * m."""
    return torch.addcmul(inputs, background - inputs, mask)
