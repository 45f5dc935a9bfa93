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


#: Above this radius the folded kernel's tails are summed in closed form (erf).
_ENUMERATED_RADIUS = 10_000


def edge_folded_kernel1d(
    sigma: float, length: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """:func:`gaussian_kernel1d` for an axis of ``length`` pixels with replicated edges,
    at most ``2 * (length - 1) + 1`` taps wide: every tap at an offset of ``length - 1``
    or more reads the edge pixel for every output pixel, so those taps are summed into the
    outermost one. The blur is the same (to rounding), and a huge ``sigma`` costs a kernel
    of the image's size, not of 6 sigma. (Tails of radii above 10 000 are summed by the
    midpoint rule with ``erf``, relative error below 1e-8.)"""
    full = max(1, math.ceil(3.0 * sigma))
    radius = max(1, min(full, length - 1))
    if full <= radius:
        return gaussian_kernel1d(sigma, dtype, device)
    if full <= _ENUMERATED_RADIUS:
        k = gaussian_kernel1d(sigma, torch.float64, device)
        folded = k[full - radius : full + radius + 1].clone()
        folded[0] += k[: full - radius].sum()
        folded[-1] += k[full + radius + 1 :].sum()
        return folded.to(dtype)
    scale = sigma * math.sqrt(2.0)

    def mass(a: float, b: float) -> float:  # sum of exp(-k^2 / 2 sigma^2), k = a..b
        return (
            sigma
            * math.sqrt(math.pi / 2)
            * (math.erf((b + 0.5) / scale) - math.erf((a - 0.5) / scale))
        )

    total = 2 * mass(0, full) - 1.0  # k = -full..full (k = 0 counted once)
    grid = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    folded = torch.exp(-0.5 * (grid / sigma) ** 2)
    folded[0] = folded[-1] = mass(radius, full)
    return (folded / total).to(dtype)


def gaussian_blur(inputs: Tensor, radius: float) -> Tensor:
    r"""Separable Gaussian blur of an (N, C, H, W) tensor, edges replicated.

    ``radius`` is the Gaussian's standard deviation in pixels, as in PIL's
    ``ImageFilter.GaussianBlur(radius)``; the kernel is truncated at 3 radius, and taps
    beyond the image's size are folded into its edge (:func:`edge_folded_kernel1d`): no
    kernel is wider than twice the image.
    """
    if radius <= 0:
        return inputs.clone()
    channels = inputs.shape[1]
    height, width = inputs.shape[2], inputs.shape[3]
    out = inputs
    # horizontal then vertical pass, depthwise
    k = edge_folded_kernel1d(radius, width, inputs.dtype, inputs.device)
    pad = k.numel() // 2
    kh = k.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    out = F.conv2d(F.pad(out, (pad, pad, 0, 0), mode="replicate"), kh, groups=channels)
    k = edge_folded_kernel1d(radius, height, inputs.dtype, inputs.device)
    pad = k.numel() // 2
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
