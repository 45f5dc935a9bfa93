"""The channel-weighted mask and the two composite inputs built from it.

Paper: Du, Liu, Song, Hu. "Towards Explanation of DNN-based Prediction with
Guided Feature Inversion", KDD 2018.

* Eq. (6)  ``channel_weighted_map``  M = sum_i w_i f_i^{l1}(x)
* Eq. (7)  ``minmax_normalize``      (M - min M) / (max M - min M)
* authors' main.py l.166  ``min_over_max_normalize``  (M - min M) / max M
* upsampling to the input's resolution: ``upsample_mask``
* the mask's form (which normalisation, before or after upsampling): ``MaskForm``,
  ``PAPER_MASK`` (Eq. (6)-(7)) and ``AUTHORS_MASK`` (the authors' main.py)
* Eq. (2)  ``guided_input``           x * m + p * (1 - m)
* Eq. (4)  ``background_input``       x * (1 - m) + p * m
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

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


def _extremes(mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-example minimum and maximum of an (N, 1, h, w) map, each (N, 1, 1, 1)."""
    flat = mask.flatten(1)
    return flat.amin(dim=1).view(-1, 1, 1, 1), flat.amax(dim=1).view(-1, 1, 1, 1)


def minmax_normalize(mask: Tensor, eps: float = 1e-12) -> Tensor:
    r"""Eq. (7): per-example min-max normalisation to [0, 1].

    A constant map (for instance all weights clipped to zero) normalises to zeros.

    Args:
        mask (Tensor): shape (N, 1, h, w).
        eps (float): lower bound on the denominator.
    """
    low, high = _extremes(mask)
    return (mask - low) / (high - low).clamp_min(eps)


def min_over_max_normalize(mask: Tensor, eps: float = 1e-12) -> Tensor:
    r"""The authors' normalisation (main.py l.166): per-example (M - min M) / max M.

    It is in [0, 1] when M >= 0, as on the post-ReLU pooling layer main.py uses; the
    result is clamped to [0, 1] so signed features (e.g. a batch-norm output) still give
    a valid mask (for M >= 0 the clamp changes neither the values nor the gradients).
    A map whose maximum is <= ``eps`` (all weights zero) divides by ``eps``.

    Args:
        mask (Tensor): shape (N, 1, h, w).
        eps (float): lower bound on the denominator.
    """
    low, high = _extremes(mask)
    return ((mask - low) / high.clamp_min(eps)).clamp(0.0, 1.0)


def relu_max_normalize(mask: Tensor, eps: float = 1e-12) -> Tensor:
    r"""Grad-CAM's form: per-example ReLU(M) / max ReLU(M), for signed channel weights.

    Unlike Eq. (7) it keeps the map's zero: channels weighted negatively switch regions
    off instead of shifting the whole map. A map with no positive value gives zeros.

    Args:
        mask (Tensor): shape (N, 1, h, w).
        eps (float): lower bound on the denominator.
    """
    positive = torch.relu(mask)
    return positive / positive.flatten(1).amax(dim=1).view(-1, 1, 1, 1).clamp_min(eps)


class MaskNormalization(Enum):
    """How the channel-weighted map M is normalised; call a member on an (N, 1, h, w) map.

    ``MINMAX``: Eq. (7), :func:`minmax_normalize`; ``MIN_OVER_MAX``: the authors'
    main.py l.166, :func:`min_over_max_normalize`; ``RELU_MAX``: Grad-CAM's,
    :func:`relu_max_normalize`."""

    #: Eq. (7): (M - min M) / (max M - min M)
    MINMAX = "minmax"
    #: the authors' main.py l.166: (M - min M) / max M
    MIN_OVER_MAX = "min_over_max"
    #: Grad-CAM's: ReLU(M) / max ReLU(M)
    RELU_MAX = "relu_max"

    def __call__(self, mask: Tensor) -> Tensor:
        return _NORMALIZATIONS[self](mask)


_NORMALIZATIONS: dict[MaskNormalization, Callable[[Tensor], Tensor]] = {
    MaskNormalization.MINMAX: minmax_normalize,
    MaskNormalization.MIN_OVER_MAX: min_over_max_normalize,
    MaskNormalization.RELU_MAX: relu_max_normalize,
}


@dataclass(frozen=True)
class MaskForm:
    r"""How :math:`\omega` and the channels become the input-resolution mask.

    Attributes:
        normalization (MaskNormalization): the normalisation of M (Eq. (7) or the
                    authors').
        after_upsampling (bool): normalise the upsampled map (the authors', main.py
                    l.163-166) instead of normalising at the layer's resolution and
                    upsampling the result (the paper's order).
        align_corners (bool): ``align_corners`` of bilinear / bicubic upsampling: False
                    (``F.interpolate``'s default) or True (``nn.UpsamplingBilinear2d``,
                    the authors', main.py l.112).
    """

    normalization: MaskNormalization = MaskNormalization.MINMAX
    after_upsampling: bool = False
    align_corners: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalization", MaskNormalization(self.normalization))


#: Eq. (6)-(7): min-max normalised at the layer's resolution, then upsampled.
PAPER_MASK = MaskForm()
#: The authors' main.py l.157-166: upsampled with ``align_corners=True``, then
#: (M - min M) / max M over the whole image.
AUTHORS_MASK = MaskForm(MaskNormalization.MIN_OVER_MAX, after_upsampling=True, align_corners=True)


#: Grad-CAM's form for signed weights: ReLU(M) / max ReLU(M) at the layer's resolution, then
#: upsampled (the ``"refined"`` setting).
GRADCAM_MASK = MaskForm(MaskNormalization.RELU_MAX)


def _align(mode: str, align_corners: bool) -> bool | None:
    return align_corners if mode in ("bilinear", "bicubic") else None


def upsample_mask(
    mask: Tensor, size: tuple[int, int], mode: str = "bilinear", align_corners: bool = False
) -> Tensor:
    """Upsample an (N, 1, h, w) mask in [0, 1] to ``size``; the result stays in [0, 1].

    ``align_corners`` applies to ``"bilinear"`` and ``"bicubic"`` only."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    up = _interpolate(mask, size, mode, None, align_corners)
    # bicubic overshoots slightly; the mask is a convex weight, so keep it in [0, 1]
    return up.clamp(0.0, 1.0) if mode == "bicubic" else up


def _interpolate(
    mask: Tensor,
    size: tuple[int, int],
    mode: str,
    matrices: tuple[Tensor, Tensor] | None,
    align_corners: bool,
) -> Tensor:
    """``F.interpolate``, or the same by the two matrices of :func:`interpolation_matrices`."""
    if matrices is None:
        return F.interpolate(mask, size=size, mode=mode, align_corners=_align(mode, align_corners))
    rows, cols = matrices
    return torch.matmul(torch.matmul(rows, mask), cols.t())


def interpolation_matrices(
    in_size: Sequence[int],
    size: Sequence[int],
    mode: str = "bilinear",
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
    align_corners: bool = False,
) -> tuple[Tensor, Tensor]:
    """The upsampling of :func:`upsample_mask` as two matrices, ``rows`` (H, h) and
    ``cols`` (W, w): every mode of :data:`INTERPOLATE_MODES` is separable, so
    ``F.interpolate(m, size, mode) == rows @ m @ cols.T`` (before bicubic's clamp).

    They are built by interpolating the identity along one axis at a time, so they
    hold exactly ``F.interpolate``'s weights. Two small matmuls replace
    ``F.interpolate`` in the optimisation loop: much cheaper, its backward
    above all (``upsample_bilinear2d_backward`` is a scatter on CPU).
    """
    align = _align(mode, align_corners)

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
    form: MaskForm = PAPER_MASK,
) -> tuple[Tensor, Tensor]:
    """Eq. (6) + Eq. (7) + upsampling, or another :class:`MaskForm`.

    ``matrices`` (from :func:`interpolation_matrices`, for the same ``size``, ``mode``
    and ``form.align_corners``) upsample by two matmuls instead of ``F.interpolate``;
    same result to float rounding.

    Returns:
        (layer_mask, mask): the normalised mask at the base layer's resolution
        (N, 1, h, w) and upsampled to ``size`` (N, 1, H, W). With
        ``form.after_upsampling`` the two are normalised separately, each at its own
        resolution.
    """
    raw = channel_weighted_map(weights, features)
    layer_mask = form.normalization(raw)
    if tuple(layer_mask.shape[-2:]) == tuple(size):
        return layer_mask, layer_mask
    if form.after_upsampling:
        up = _interpolate(raw, size, mode, matrices, form.align_corners)
        return layer_mask, form.normalization(up)
    up = _interpolate(layer_mask, size, mode, matrices, form.align_corners)
    # bicubic overshoots slightly; the mask is a convex weight, so keep it in [0, 1]
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
