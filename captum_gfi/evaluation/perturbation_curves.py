"""Deletion and insertion curves (Petsiuk et al., 2018, RISE).

Pixels are ranked by decreasing saliency. *Deletion* starts from the image
and replaces the top-ranked pixels, ``step`` at a time, by a substrate;
*insertion* starts from the substrate and puts the top-ranked pixels of the
image back. The curve is the model's softmax probability of the target class
after each step, and the score is its area under the curve with the fraction
of perturbed pixels on the x-axis (lower is better for deletion, higher for
insertion). The default substrate is a Gaussian blur of the image (kernel 11,
sigma 5, as in RISE's insertion metric).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

SUBSTRATES = ("blur", "zero", "mean")


@dataclass(frozen=True)
class PerturbationCurve:
    """Fractions of pixels perturbed, target probabilities, and the AUC."""

    fractions: Tensor
    scores: Tensor
    auc: float


def gaussian_blur(image: Tensor, kernel_size: int = 11, sigma: float = 5.0) -> Tensor:
    r"""Separable Gaussian blur of ``(N, C, H, W)`` images, reflect padding."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"`kernel_size` must be a positive odd integer, got {kernel_size}")
    if sigma <= 0:
        raise ValueError(f"`sigma` must be > 0, got {sigma}")
    half = kernel_size // 2
    x = torch.arange(kernel_size, dtype=image.dtype, device=image.device) - half
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = image.shape[1]
    pad = min(half, image.shape[-1] - 1, image.shape[-2] - 1)
    out = F.pad(image, (pad, pad, pad, pad), mode="reflect") if pad > 0 else image
    if pad < half:
        out = F.pad(out, (half - pad,) * 4, mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def make_substrate(image: Tensor, substrate: str = "blur") -> Tensor:
    """The substrate image ``(N, C, H, W)``: ``blur``, ``zero`` or per-channel ``mean``."""
    if substrate == "blur":
        return gaussian_blur(image)
    if substrate == "zero":
        return torch.zeros_like(image)
    if substrate == "mean":
        return image.mean(dim=(-2, -1), keepdim=True).expand_as(image).clone()
    raise ValueError(f"`substrate` must be one of {SUBSTRATES}, got {substrate!r}")


@torch.no_grad()
def perturbation_curve(
    forward_func: Callable[[Tensor], Tensor],
    image: Tensor,
    saliency: Tensor,
    target: int,
    mode: str = "deletion",
    step: int = 224,
    substrate: str = "blur",
    batch_size: int = 32,
) -> PerturbationCurve:
    r"""
    Deletion or insertion curve of one image.

    Args:
        forward_func (Callable): maps ``(B, C, H, W)`` inputs to logits ``(B, K)``.
        image (Tensor): ``(1, C, H, W)`` or ``(C, H, W)``.
        saliency (Tensor): ``(H, W)`` (leading singleton dims allowed); pixels
                    are perturbed in decreasing order (stable on ties).
        target (int): class whose probability is tracked.
        mode (str): ``"deletion"`` or ``"insertion"``.
        step (int): pixels perturbed per step; the curve has
                    ``ceil(H * W / step) + 1`` points.
        substrate (str): ``"blur"``, ``"zero"`` or ``"mean"``.
        batch_size (int): perturbed images per forward pass.

    Returns:
        curve (PerturbationCurve): ``fractions`` (0 to 1), ``scores`` (target
        probabilities) and trapezoidal ``auc``.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"`mode` must be 'deletion' or 'insertion', got {mode!r}")
    if step < 1:
        raise ValueError(f"`step` must be >= 1, got {step}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    x = image.detach()
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"`image` must be (1, C, H, W) or (C, H, W), got {tuple(image.shape)}")
    s = saliency.detach()
    while s.dim() > 2 and s.shape[0] == 1:
        s = s[0]
    h, w = x.shape[-2:]
    if tuple(s.shape) != (h, w):
        raise ValueError(f"`saliency` must be {(h, w)} like the image, got {tuple(saliency.shape)}")
    n_pix = h * w
    order = torch.argsort(s.reshape(-1).float(), descending=True, stable=True)
    rank = torch.empty(n_pix, dtype=torch.long, device=x.device)
    rank[order.to(x.device)] = torch.arange(n_pix, device=x.device)
    rank = rank.view(1, 1, h, w)
    base = make_substrate(x, substrate)
    start, finish = (x, base) if mode == "deletion" else (base, x)
    n_steps = math.ceil(n_pix / step)
    counts = torch.clamp(torch.arange(n_steps + 1, device=x.device) * step, max=n_pix)
    scores = []
    for i in range(0, n_steps + 1, batch_size):
        k = counts[i : i + batch_size].view(-1, 1, 1, 1)
        changed = rank < k  # (B, 1, H, W): the top-k pixels take the finish value
        batch = torch.where(changed, finish, start)
        probs = torch.softmax(forward_func(batch).float(), dim=1)[:, target]
        scores.append(probs.cpu())
    score_t = torch.cat(scores)
    fractions = counts.float().cpu() / n_pix
    auc = float(torch.trapezoid(score_t, fractions))
    return PerturbationCurve(fractions, score_t, auc)
