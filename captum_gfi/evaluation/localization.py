"""Weakly supervised object localization (WSOL), Du et al. (KDD 2018), Sec. 4.2.

A saliency map is binarised at ``alpha * mean(map)`` for every ``alpha`` on a
grid (the paper uses ``[0:0.5:10]``), the tightest box around the *whole*
segmented region is taken, and localisation succeeds when that box has an
intersection-over-union above ``0.5`` with any ground-truth box of the class.

Boxes are ``(x0, y0, x1, y1)`` in continuous pixel coordinates with an
exclusive end, so the box of a single pixel at column ``c`` and row ``r`` is
``(c, r, c + 1, r + 1)`` and has area 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

#: The paper's threshold grid ``alpha`` in ``[0:0.5:10]`` (21 values).
PAPER_ALPHAS: tuple[float, ...] = tuple(0.5 * i for i in range(21))

Box = tuple[float, float, float, float]


def _as_map(saliency: Tensor, name: str = "saliency") -> Tensor:
    if not isinstance(saliency, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(saliency).__name__}")
    s = saliency.detach()
    while s.dim() > 2 and s.shape[0] == 1:
        s = s[0]
    if s.dim() != 2:
        raise ValueError(
            f"`{name}` must be a 2-D map (H, W) or (1, 1, H, W), got {tuple(saliency.shape)}"
        )
    if s.numel() == 0:
        raise ValueError(f"`{name}` must not be empty")
    return s.float()


def mask_to_box(mask: Tensor) -> Box | None:
    r"""
    Tightest box around every ``True`` pixel of a binary mask.

    Args:
        mask (Tensor): boolean tensor of shape ``(H, W)``.

    Returns:
        box (tuple or None): ``(x0, y0, x1, y1)`` with exclusive end, or
        ``None`` when the mask is empty.
    """
    if not isinstance(mask, Tensor) or mask.dim() != 2:
        raise ValueError("`mask` must be a 2-D boolean tensor")
    m = mask.bool()
    rows = torch.nonzero(m.any(dim=1)).flatten()
    cols = torch.nonzero(m.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    return (float(cols[0]), float(rows[0]), float(cols[-1]) + 1.0, float(rows[-1]) + 1.0)


def saliency_to_box(saliency: Tensor, alpha: float) -> Box | None:
    r"""
    Box around the region of a saliency map strictly above ``alpha * mean``.

    Args:
        saliency (Tensor): map of shape ``(H, W)`` (or with leading singleton
                    dimensions).
        alpha (float): threshold factor, ``>= 0``.

    Returns:
        box (tuple or None): tightest box of the segmented region (see
        :func:`mask_to_box`), ``None`` when nothing is above the threshold.
    """
    if alpha < 0:
        raise ValueError(f"`alpha` must be >= 0, got {alpha}")
    s = _as_map(saliency)
    return mask_to_box(s > alpha * s.mean())


def box_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    r"""
    Intersection over union of two ``(x0, y0, x1, y1)`` boxes (exclusive end).

    Returns:
        iou (float): in ``[0, 1]``; ``0`` when either box has zero area.
    """
    if len(box_a) != 4 or len(box_b) != 4:
        raise ValueError("`box_a` and `box_b` must have 4 coordinates (x0, y0, x1, y1)")
    ax0, ay0, ax1, ay1 = (float(v) for v in box_a)
    bx0, by0, bx1, by1 = (float(v) for v in box_b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (
        max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0)
        + max(0.0, bx1 - bx0) * max(0.0, by1 - by0)
        - inter
    )
    return inter / union if union > 0 else 0.0


def scale_box(box: Sequence[float], sx: float, sy: float) -> Box:
    """Scale a box's x coordinates by ``sx`` and y coordinates by ``sy``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def wsol_success(
    saliency: Tensor,
    gt_boxes: Sequence[Sequence[float]],
    alphas: Sequence[float] = PAPER_ALPHAS,
    iou_threshold: float = 0.5,
    scale: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    r"""
    Localisation success of one saliency map for every threshold factor.

    Args:
        saliency (Tensor): map ``(H, W)`` for the ground-truth class.
        gt_boxes (sequence of boxes): ground-truth boxes of that class, in the
                    coordinates of the map after multiplying by ``scale``.
        alphas (sequence of float): threshold factors.
        iou_threshold (float): success when IoU is strictly above it.
        scale (tuple of float): ``(sx, sy)`` applied to the predicted box,
                    e.g. to map a 224x224 map back to the original image.

    Returns:
        success (np.ndarray): boolean array of shape ``(len(alphas),)``.
    """
    if len(gt_boxes) == 0:
        raise ValueError("`gt_boxes` must contain at least one box")
    if len(alphas) == 0:
        raise ValueError("`alphas` must not be empty")
    s = _as_map(saliency)
    mean = s.mean()
    out = np.zeros(len(alphas), dtype=bool)
    for i, alpha in enumerate(alphas):
        if alpha < 0:
            raise ValueError(f"`alphas` must be >= 0, got {alpha}")
        box = mask_to_box(s > alpha * mean)
        if box is None:
            continue
        pred = scale_box(box, *scale)
        out[i] = any(box_iou(pred, gt) > iou_threshold for gt in gt_boxes)
    return out


def localization_error(successes: np.ndarray) -> np.ndarray:
    r"""
    Localisation error per ``alpha``: ``1 - mean(success)`` over images.

    Args:
        successes (np.ndarray): boolean array ``(n_images, n_alphas)``.

    Returns:
        error (np.ndarray): float array ``(n_alphas,)``.
    """
    arr = np.asarray(successes, dtype=float)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError("`successes` must be a non-empty 2-D array (n_images, n_alphas)")
    return 1.0 - arr.mean(axis=0)


def select_alpha(
    successes: np.ndarray,
    alphas: Sequence[float] = PAPER_ALPHAS,
    tune_successes: np.ndarray | None = None,
) -> tuple[float, float]:
    r"""
    Best threshold factor and the error at it.

    When ``tune_successes`` (a separate split) is given, ``alpha`` is chosen
    on it and the error is reported on ``successes``; otherwise both use
    ``successes`` (the optimistic "best alpha" of the paper's Fig. 6). Ties
    go to the smallest ``alpha``.

    Returns:
        (alpha, error) (tuple of float)
    """
    err = localization_error(successes)
    if len(alphas) != err.shape[0]:
        raise ValueError("`alphas` must have one entry per column of `successes`")
    choose = err if tune_successes is None else localization_error(tune_successes)
    if choose.shape != err.shape:
        raise ValueError("`tune_successes` must have the same number of alphas as `successes`")
    i = int(np.argmin(choose))
    return float(alphas[i]), float(err[i])
