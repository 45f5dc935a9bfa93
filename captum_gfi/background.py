"""The background ``p`` that replaces what the mask removes (Eq. (2) and (4)).

The paper uses a Gaussian blur of the input. Alternatives: the ImageNet mean
colour (in the model's own normalised input space), seeded Gaussian noise with
the input's per-channel statistics, or any tensor broadcastable to the input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

#: Mean RGB colour of ImageNet in [0, 1] (torchvision's normalisation constants).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: Per-channel standard deviation of ImageNet in [0, 1].
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKGROUNDS = ("blur", "mean", "noise")

Normalization = tuple[Sequence[float], Sequence[float]]


def gaussian_kernel1d(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A normalised 1-D Gaussian of standard deviation ``sigma``, truncated at 3 sigma."""
    radius = max(1, math.ceil(3.0 * sigma))
    grid = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(inputs: Tensor, radius: float) -> Tensor:
    r"""Separable Gaussian blur of an (N, C, H, W) tensor, edges replicated.

    ``radius`` is the Gaussian's standard deviation in pixels, as in PIL's
    ``ImageFilter.GaussianBlur(radius)``; the kernel is truncated at 3 radius.
    """
    if radius <= 0:
        return inputs.clone()
    channels = inputs.shape[1]
    k = gaussian_kernel1d(radius, inputs.dtype, inputs.device)
    pad = k.numel() // 2
    out = inputs
    # horizontal then vertical pass, depthwise
    kh = k.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    out = F.conv2d(F.pad(out, (pad, pad, 0, 0), mode="replicate"), kh, groups=channels)
    kv = k.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(F.pad(out, (0, 0, pad, pad), mode="replicate"), kv, groups=channels)
    return out


def mean_color(
    inputs: Tensor, normalization: Normalization | None, mean: Sequence[float] = IMAGENET_MEAN
) -> Tensor:
    """The ImageNet mean colour expressed in the model's normalised input space.

    ``normalization`` is the ``(mean, std)`` the model's preprocessing applies,
    e.g. ``((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))`` for torchvision
    models or ``((0.5,) * 3, (0.5,) * 3)`` for EfficientNet-Lite. ``None`` means
    the inputs are not normalised (pixels in [0, 1]).
    """
    channels = inputs.shape[1]
    if channels != len(mean):
        raise ValueError(
            f'baseline="mean" needs {len(mean)}-channel inputs, got {channels} channels; '
            "pass the background as a tensor instead"
        )
    colour = torch.tensor(mean, dtype=inputs.dtype, device=inputs.device)
    if normalization is not None:
        norm_mean, norm_std = normalization
        if len(norm_mean) != channels or len(norm_std) != channels:
            raise ValueError(
                f"normalization must be (mean, std) with {channels} values each, "
                f"got {normalization!r}"
            )
        m = torch.tensor(norm_mean, dtype=inputs.dtype, device=inputs.device)
        s = torch.tensor(norm_std, dtype=inputs.dtype, device=inputs.device)
        colour = (colour - m) / s
    return colour.view(1, -1, 1, 1).expand_as(inputs)


def gaussian_noise(inputs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Gaussian noise with each example's per-channel mean and standard deviation."""
    mu = inputs.mean(dim=(2, 3), keepdim=True)
    sd = inputs.std(dim=(2, 3), keepdim=True)
    eps = torch.randn(inputs.shape, generator=generator, dtype=inputs.dtype, device=inputs.device)
    return mu + sd * eps


def make_background(
    inputs: Tensor,
    baseline: str | Tensor = "blur",
    *,
    blur_radius: float = 11.0,
    normalization: Normalization | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Build the background ``p`` for a batch of inputs.

    Args:
        inputs (Tensor): (N, C, H, W) inputs, in the model's input space.
        baseline (str or Tensor): ``"blur"`` (default, the paper's), ``"mean"``,
            ``"noise"``, or a tensor broadcastable to ``inputs``.
        blur_radius (float): standard deviation of the blur, in pixels.
        normalization (tuple, optional): ``(mean, std)`` of the model's input
            normalisation, used by ``"mean"``.
        generator (torch.Generator, optional): random source for ``"noise"``.

    Returns:
        Tensor: the background, same shape, dtype and device as ``inputs``.
    """
    if isinstance(baseline, Tensor):
        try:
            return torch.broadcast_to(baseline.to(inputs), inputs.shape).detach()
        except RuntimeError as err:
            raise ValueError(
                f"baseline tensor of shape {tuple(baseline.shape)} is not broadcastable "
                f"to inputs of shape {tuple(inputs.shape)}"
            ) from err
    if baseline == "blur":
        return gaussian_blur(inputs, blur_radius)
    if baseline == "mean":
        return mean_color(inputs, normalization)
    if baseline == "noise":
        return gaussian_noise(inputs, generator)
    raise ValueError(f"baseline must be one of {BACKGROUNDS} or a Tensor, got {baseline!r}")
