"""Pointing game (Zhang et al., 2016; Du et al., KDD 2018, Sec. 4.3) and the
grid pointing game (Böhle et al., 2022).

Pointing game: a hit when the maximum point of the map falls inside a
ground-truth box of the target class, optionally within a tolerance of
``15`` pixels (the standard setting of Zhang et al.); accuracy is
``hits / (hits + misses)`` per class, averaged over classes.

Grid pointing game: an ``n x n`` grid of images of different classes is
explained for the class of one cell; the score is the fraction of the positive
attribution that falls inside that cell.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence

import torch
from torch import Tensor

#: The tolerance (in original-image pixels) of the standard pointing game.
STANDARD_TOLERANCE: float = 15.0


def max_point(saliency: Tensor) -> tuple[int, int]:
    r"""
    ``(row, col)`` of the maximum of a 2-D map (first one in row-major order
    on ties).
    """
    s = saliency.detach()
    while s.dim() > 2 and s.shape[0] == 1:
        s = s[0]
    if s.dim() != 2 or s.numel() == 0:
        raise ValueError(f"`saliency` must be a non-empty 2-D map, got {tuple(saliency.shape)}")
    idx = int(torch.argmax(s.reshape(-1)))
    return idx // s.shape[1], idx % s.shape[1]


def point_in_boxes(
    point: tuple[float, float],
    boxes: Sequence[Sequence[float]],
    tolerance: float = 0.0,
) -> bool:
    r"""
    Whether an ``(x, y)`` point is within ``tolerance`` (Euclidean distance)
    of any ``(x0, y0, x1, y1)`` box (closed box).
    """
    if tolerance < 0:
        raise ValueError(f"`tolerance` must be >= 0, got {tolerance}")
    x, y = float(point[0]), float(point[1])
    for box in boxes:
        if len(box) != 4:
            raise ValueError("`boxes` must hold (x0, y0, x1, y1) boxes")
        x0, y0, x1, y1 = (float(v) for v in box)
        dx = max(x0 - x, 0.0, x - x1)
        dy = max(y0 - y, 0.0, y - y1)
        if math.hypot(dx, dy) <= tolerance:
            return True
    return False


def pointing_hit(
    saliency: Tensor,
    gt_boxes: Sequence[Sequence[float]],
    tolerance: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
) -> bool:
    r"""
    Pointing-game hit of one map.

    The maximum pixel ``(r, c)`` is represented by its centre
    ``((c + 0.5) * sx, (r + 0.5) * sy)``, so that ``scale=(sx, sy)`` maps a
    model-resolution map back to the original image, where the boxes and the
    tolerance are expressed.

    Args:
        saliency (Tensor): map ``(H, W)`` for the target class.
        gt_boxes (sequence of boxes): boxes of the target class.
        tolerance (float): pixels; use :data:`STANDARD_TOLERANCE` for the
                    standard protocol.
        scale (tuple of float): ``(sx, sy)`` from map to box coordinates.

    Returns:
        hit (bool)
    """
    if len(gt_boxes) == 0:
        raise ValueError("`gt_boxes` must contain at least one box")
    r, c = max_point(saliency)
    return point_in_boxes(((c + 0.5) * scale[0], (r + 0.5) * scale[1]), gt_boxes, tolerance)


def pointing_accuracy(hits: Iterable[bool], classes: Iterable[Hashable]) -> float:
    r"""
    Pointing accuracy averaged per class, then over classes.

    Args:
        hits (iterable of bool): one entry per (image, target class) pair; a
                    multi-label image contributes one entry per class.
        classes (iterable): the target class of each entry.

    Returns:
        accuracy (float): mean over classes of ``hits / (hits + misses)``.
    """
    per_class: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0])
    n = 0
    hit_list = list(hits)
    class_list = list(classes)
    if len(hit_list) != len(class_list):
        raise ValueError("`hits` and `classes` must have the same length")
    for hit, cls in zip(hit_list, class_list):
        per_class[cls][0] += int(bool(hit))
        per_class[cls][1] += 1
        n += 1
    if n == 0:
        raise ValueError("`hits` must not be empty")
    return sum(h / t for h, t in per_class.values()) / len(per_class)


def make_grid(images: Sequence[Tensor]) -> Tensor:
    r"""
    Tile ``n * n`` images of shape ``(C, h, w)`` row-major into one
    ``(1, C, n*h, n*w)`` image.
    """
    k = len(images)
    n = math.isqrt(k)
    if n * n != k or k == 0:
        raise ValueError(f"`images` must hold a square number of images, got {k}")
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError("`images` must all have the same (C, h, w) shape")
    rows = [torch.cat(list(images[i * n : (i + 1) * n]), dim=2) for i in range(n)]
    return torch.cat(rows, dim=1).unsqueeze(0)


def grid_pointing_score(attribution: Tensor, cell: int, grid_size: int) -> float:
    r"""
    Fraction of positive attribution inside one cell of an ``n x n`` grid.

    Args:
        attribution (Tensor): map ``(H, W)`` (or with leading singleton
                    dimensions; channels are summed first for ``(C, H, W)``).
        cell (int): row-major index of the target's cell.
        grid_size (int): ``n``.

    Returns:
        score (float): ``sum(relu(a) in cell) / sum(relu(a))``; ``0`` when the
        map has no positive value.
    """
    if grid_size < 1:
        raise ValueError(f"`grid_size` must be >= 1, got {grid_size}")
    if not 0 <= cell < grid_size * grid_size:
        raise ValueError(f"`cell` must be in [0, {grid_size * grid_size}), got {cell}")
    a = attribution.detach().float()
    while a.dim() > 3 and a.shape[0] == 1:
        a = a[0]
    if a.dim() == 3:
        a = a.sum(0)
    if a.dim() != 2:
        raise ValueError(f"`attribution` must be a 2-D map, got {tuple(attribution.shape)}")
    h, w = a.shape
    if h % grid_size or w % grid_size:
        raise ValueError(f"map size {(h, w)} is not divisible by `grid_size`={grid_size}")
    pos = a.clamp(min=0)
    total = float(pos.sum())
    if total <= 0:
        return 0.0
    ch, cw = h // grid_size, w // grid_size
    r, c = divmod(cell, grid_size)
    return float(pos[r * ch : (r + 1) * ch, c * cw : (c + 1) * cw].sum()) / total
