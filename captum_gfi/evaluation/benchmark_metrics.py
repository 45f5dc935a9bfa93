"""Per-case metrics of the benchmark (``captum-gfi evaluate --dataset
composites|grids``) against an exact ground-truth pixel mask.

All functions take a batch: maps ``(N, 1, H, W)`` (or ``(N, H, W)``) and
boolean masks ``(N, H, W)``, and return one value per case.

- :func:`energy_share`: the fraction of the *positive* attribution inside the
  mask (``0`` for a map without positive values); the grid pointing game's
  score (:func:`~captum_gfi.evaluation.pointing.grid_pointing_score`) with a
  mask instead of a cell.
- :func:`pointing_hits`: TorchRay's pointing game: the map's maximum point
  (first in row-major order on ties) is a hit when a mask pixel lies at a
  Euclidean distance ``< tolerance`` from it (pixel centres, TorchRay's strict
  inequality; with ``tolerance = 0`` the maximum pixel itself must be in the
  mask, which is Quantus' ``PointingGame`` for a unique maximum).
- :func:`topk_precision`: with ``k`` the mask's area, the fraction of the
  ``k`` highest-attribution pixels inside the mask (ties broken by row-major
  order).
- :func:`wsol_successes`: the paper's WSOL (Sec. 4.2), through
  :func:`~captum_gfi.evaluation.localization.wsol_success`: box of the
  region above ``alpha * mean`` vs the ground-truth box, IoU > 0.5, for every
  ``alpha``.
- :func:`insertion_deletion`: RISE's insertion (from a blurred copy, 11-tap
  Gaussian with sigma 5) and deletion (to zeros, i.e. black in ``[0, 1]``
  pixel space) AUCs, through
  :func:`~captum_gfi.evaluation.perturbation_curves.perturbation_curve`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .localization import PAPER_ALPHAS, wsol_success
from .perturbation_curves import perturbation_curve
from .pointing import STANDARD_TOLERANCE

#: Insertion starts from RISE's blurred copy; deletion goes to zeros (black).
INSERTION_SUBSTRATE = "blur"
DELETION_SUBSTRATE = "zero"
#: Default number of steps of the insertion and deletion curves (RISE: 224 at 224 px). The
#: curves are the benchmark's main per-case cost for every method (two forward passes per
#: step: about 11 s per case and method for 100 steps on EfficientNet-Lite0, one CPU
#: thread), so the default is the 50 steps the benchmark requires at least.
CURVE_STEPS = 50


def _maps(maps: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(maps, Tensor) or not isinstance(masks, Tensor):
        raise TypeError("`maps` and `masks` must be torch.Tensors")
    m = maps.detach().float()
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.dim() != 3:
        raise ValueError(f"`maps` must be (N, 1, H, W) or (N, H, W), got {tuple(maps.shape)}")
    g = masks.to(m.device).bool()
    if g.dim() != 3 or g.shape != m.shape:
        raise ValueError(
            f"`masks` must be (N, H, W) like the maps {tuple(m.shape)}, got {tuple(masks.shape)}"
        )
    return m, g


def energy_share(maps: Tensor, masks: Tensor) -> Tensor:
    r"""
    Fraction of the positive attribution inside the ground truth.

    Args:
        maps (Tensor): ``(N, 1, H, W)`` or ``(N, H, W)``.
        masks (Tensor): ``(N, H, W)`` boolean ground truth.

    Returns:
        share (Tensor): ``(N,)``, ``sum(relu(a) * mask) / sum(relu(a))``;
        ``0`` where a map has no positive value.
    """
    m, g = _maps(maps, masks)
    pos = m.clamp(min=0).flatten(1)
    total = pos.sum(1)
    inside = (pos * g.flatten(1)).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.zeros_like(total))


def pointing_hits(maps: Tensor, masks: Tensor, tolerance: float = STANDARD_TOLERANCE) -> Tensor:
    r"""
    TorchRay's pointing game on a batch (see the module docstring).

    Args:
        maps (Tensor): ``(N, 1, H, W)`` or ``(N, H, W)``.
        masks (Tensor): ``(N, H, W)`` boolean ground truth.
        tolerance (float): pixels; a hit needs a mask pixel at distance
                    ``< tolerance`` (``0``: the maximum pixel is in the mask).

    Returns:
        hits (Tensor): ``(N,)`` bool.
    """
    if tolerance < 0:
        raise ValueError(f"`tolerance` must be >= 0, got {tolerance}")
    m, g = _maps(maps, masks)
    n, h, w = m.shape
    idx = m.flatten(1).argmax(1)  # first maximum in row-major order
    r, c = (idx // w).float(), (idx % w).float()
    ys = torch.arange(h, dtype=torch.float32, device=m.device)
    xs = torch.arange(w, dtype=torch.float32, device=m.device)
    d2 = (ys.view(1, h, 1) - r.view(n, 1, 1)) ** 2 + (xs.view(1, 1, w) - c.view(n, 1, 1)) ** 2
    accept = d2 < tolerance**2 if tolerance > 0 else d2 == 0
    return (accept & g).flatten(1).any(1)


def topk_precision(maps: Tensor, masks: Tensor) -> Tensor:
    r"""
    Precision of the ``k`` highest-attribution pixels, ``k`` = mask area.

    Args:
        maps (Tensor): ``(N, 1, H, W)`` or ``(N, H, W)``.
        masks (Tensor): ``(N, H, W)`` boolean ground truth, none empty.

    Returns:
        precision (Tensor): ``(N,)`` in ``[0, 1]``.
    """
    m, g = _maps(maps, masks)
    flat_g = g.flatten(1)
    k = flat_g.sum(1)
    if bool((k == 0).any()):
        raise ValueError("`masks` must not be empty")
    order = torch.argsort(m.flatten(1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=m.device).expand_as(order)
    rank.scatter_(1, order, positions)
    inside = ((rank < k[:, None]) & flat_g).sum(1)
    return inside.float() / k.float()


def wsol_successes(
    maps: Tensor,
    boxes: Sequence[Sequence[float]],
    alphas: Sequence[float] = PAPER_ALPHAS,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    r"""
    WSOL success of every map for every ``alpha`` (box IoU > ``iou_threshold``).

    Args:
        maps (Tensor): ``(N, 1, H, W)`` or ``(N, H, W)``.
        boxes (sequence): one ground-truth ``(x0, y0, x1, y1)`` box per map
                    (exclusive ends, map pixel coordinates).
        alphas (sequence of float): threshold factors (default: the paper's).

    Returns:
        success (np.ndarray): bool ``(N, len(alphas))``.
    """
    m = maps.detach()
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.dim() != 3 or len(boxes) != m.shape[0]:
        raise ValueError("`maps` must be (N, [1,] H, W) with one box per map in `boxes`")
    return np.stack([wsol_success(m[i].cpu(), [boxes[i]], alphas, iou_threshold)
                     for i in range(m.shape[0])])  # fmt: skip


def insertion_deletion(
    forward_func: Callable[[Tensor], Tensor],
    images: Tensor,
    maps: Tensor,
    targets: Sequence[int],
    steps: int = CURVE_STEPS,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    r"""
    RISE's insertion (from blur) and deletion (to zeros) AUCs of every case.

    Args:
        forward_func (Callable): the model, taking ``[0, 1]`` images.
        images (Tensor): ``(N, C, H, W)`` in ``[0, 1]``.
        maps (Tensor): ``(N, 1, H, W)`` or ``(N, H, W)``.
        targets (sequence of int): class per case.
        steps (int): curve steps; ``ceil(H * W / steps)`` pixels per step.
        batch_size (int): perturbed images per forward pass.

    Returns:
        (insertion, deletion) (tuple of np.ndarray): ``(N,)`` AUCs each.
    """
    if steps < 1:
        raise ValueError(f"`steps` must be >= 1, got {steps}")
    m = maps.detach()
    if m.dim() == 4 and m.shape[1] == 1:
        m = m[:, 0]
    n, _, h, w = images.shape
    if tuple(m.shape) != (n, h, w) or len(targets) != n:
        raise ValueError("`images`, `maps` and `targets` must describe the same N cases")
    step = math.ceil(h * w / steps)
    ins, dele = np.zeros(n), np.zeros(n)
    for i in range(n):
        x, s, t = images[i : i + 1], m[i], int(targets[i])
        ins[i] = perturbation_curve(forward_func, x, s, t, "insertion", step,
                                    INSERTION_SUBSTRATE, batch_size).auc  # fmt: skip
        dele[i] = perturbation_curve(forward_func, x, s, t, "deletion", step,
                                     DELETION_SUBSTRATE, batch_size).auc  # fmt: skip
    return ins, dele
