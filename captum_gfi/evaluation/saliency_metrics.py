"""Salient object detection metrics, Du et al. (KDD 2018), Sec. 4.4.2.

The saliency map is binarised at twice its mean (Achanta et al., 2009);
precision and recall are measured against a binary ground-truth mask and
combined into the F-measure with ``beta^2 = 0.3``; the mean absolute error
(MAE) compares the min-max normalised map with the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

#: ``beta^2`` of the F-measure in salient object detection.
BETA2: float = 0.3


@dataclass(frozen=True)
class SODScores:
    """Precision, recall, F-measure and MAE of one map (or a data set)."""

    precision: float
    recall: float
    f_measure: float
    mae: float


def f_measure(precision: float, recall: float, beta2: float = BETA2) -> float:
    r"""``(1 + beta2) P R / (beta2 P + R)``, ``0`` when ``P = R = 0``."""
    if beta2 <= 0:
        raise ValueError(f"`beta2` must be > 0, got {beta2}")
    den = beta2 * precision + recall
    return (1.0 + beta2) * precision * recall / den if den > 0 else 0.0


def _squeeze2d(t: Tensor, name: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor")
    t = t.detach()
    while t.dim() > 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 2:
        raise ValueError(f"`{name}` must be a 2-D map, got {tuple(t.shape)}")
    return t


def salient_object_scores(
    saliency: Tensor, mask: Tensor, threshold_factor: float = 2.0, beta2: float = BETA2
) -> SODScores:
    r"""
    Salient object detection scores of one map against a binary mask.

    Args:
        saliency (Tensor): map ``(H, W)``.
        mask (Tensor): ground truth ``(H, W)``; non-zero is foreground.
        threshold_factor (float): the map is binarised at
                    ``map >= threshold_factor * mean(map)``.
        beta2 (float): ``beta^2`` of the F-measure.

    Returns:
        scores (SODScores): precision (``0`` when nothing is predicted),
        recall (``0`` when the mask is empty), F-measure and MAE.
    """
    s = _squeeze2d(saliency, "saliency").float()
    g = _squeeze2d(mask, "mask") != 0
    if s.shape != g.shape:
        raise ValueError(f"`saliency` {tuple(s.shape)} and `mask` {tuple(g.shape)} differ")
    pred = s >= threshold_factor * s.mean()
    tp = float((pred & g).sum())
    n_pred, n_gt = float(pred.sum()), float(g.sum())
    precision = tp / n_pred if n_pred > 0 else 0.0
    recall = tp / n_gt if n_gt > 0 else 0.0
    lo, hi = s.min(), s.max()
    norm = (s - lo) / (hi - lo) if hi > lo else torch.zeros_like(s)
    mae = float((norm - g.float()).abs().mean())
    return SODScores(precision, recall, f_measure(precision, recall, beta2), mae)


def aggregate_sod(scores: Sequence[SODScores], beta2: float = BETA2) -> SODScores:
    r"""
    Data-set scores: mean precision, mean recall, the F-measure of those
    means (the usual convention), and mean MAE.
    """
    if len(scores) == 0:
        raise ValueError("`scores` must not be empty")
    p = sum(s.precision for s in scores) / len(scores)
    r = sum(s.recall for s in scores) / len(scores)
    mae = sum(s.mae for s in scores) / len(scores)
    return SODScores(p, r, f_measure(p, r, beta2), mae)
