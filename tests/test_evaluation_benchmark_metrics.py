import numpy as np
import pytest
import torch
from torch import Tensor

from captum_gfi.evaluation.benchmark_metrics import (
    energy_share,
    insertion_deletion,
    pointing_hits,
    topk_precision,
    wsol_successes,
)
from captum_gfi.evaluation.localization import PAPER_ALPHAS


def _rect(h: int, w: int, r0: int, r1: int, c0: int, c1: int) -> Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    m[r0:r1, c0:c1] = True
    return m


def test_energy_share_counts_positive_attribution_only() -> None:
    mask = _rect(4, 4, 0, 2, 0, 4)  # top half
    a = torch.zeros(2, 1, 4, 4)
    a[0, 0, 0, 0] = 3.0  # inside
    a[0, 0, 3, 3] = 1.0  # outside
    a[0, 0, 2, 2] = -5.0  # negative: ignored
    a[1] = -1.0  # no positive value at all
    share = energy_share(a, torch.stack([mask, mask]))
    assert share.tolist() == [0.75, 0.0]


def test_pointing_tolerance_is_torchrays_strict_disc() -> None:
    h = w = 40
    mask = _rect(h, w, 0, 40, 0, 5)  # columns 0..4
    maps = torch.zeros(4, h, w)
    maps[0, 10, 4] = 1  # inside
    maps[1, 10, 19] = 1  # 15 px from column 4: not < 15
    maps[2, 10, 18] = 1  # 14 px
    maps[3, 10, 5] = 1  # 1 px outside
    masks = mask.expand(4, h, w)
    assert pointing_hits(maps, masks, 15).tolist() == [True, False, True, True]
    assert pointing_hits(maps, masks, 0).tolist() == [True, False, False, False]
    tie = torch.zeros(1, h, w)
    tie[0, 0, 30] = tie[0, 39, 0] = 1  # first maximum (row-major) is outside
    assert pointing_hits(tie, mask[None], 0).tolist() == [False]


def test_topk_precision_with_k_the_mask_area() -> None:
    mask = _rect(6, 6, 1, 3, 1, 4)  # 6 pixels
    perfect = mask.float()
    inverse = (~mask).float()
    half = torch.zeros(6, 6)
    half[1, 1:4] = 2.0  # 3 of the mask's pixels on top
    half[5, 0:3] = 1.0  # then 3 outside
    p = topk_precision(torch.stack([perfect, inverse, half]), mask.expand(3, 6, 6))
    assert p.tolist() == [1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="empty"):
        topk_precision(perfect[None], torch.zeros(1, 6, 6, dtype=torch.bool))


def test_wsol_successes_per_alpha() -> None:
    mask = _rect(20, 20, 5, 15, 4, 16)
    maps = torch.stack(
        [mask.float(), torch.rand(20, 20, generator=torch.Generator().manual_seed(0))]
    )
    box = (4, 5, 16, 15)
    s = wsol_successes(maps[:, None], [box, box])
    assert s.shape == (2, len(PAPER_ALPHAS)) and s.dtype == bool
    assert s[0, 0] and s[0, 2]  # the mask itself, thresholded below its max
    assert not s[0, -1]  # alpha=10 * mean is above the map's max: no box


def test_insertion_deletion_rank_the_right_map_first() -> None:
    h = w = 16
    mask = _rect(h, w, 4, 10, 4, 10)

    def model(x: Tensor) -> Tensor:  # class 0's logit = brightness inside the mask
        inside = (x * mask).sum((1, 2, 3)) / mask.sum() * 8
        return torch.stack([inside, torch.full_like(inside, 2.0)], 1)

    images = mask.float().expand(2, 3, h, w)  # a bright square: blurring dims it
    maps = torch.stack([mask.float(), (~mask).float()])[:, None]
    ins, dele = insertion_deletion(model, images, maps, [0, 0], steps=64, batch_size=16)
    assert ins.shape == dele.shape == (2,)
    assert dele[0] < dele[1] and ins[0] > ins[1]
    with pytest.raises(ValueError, match="same N"):
        insertion_deletion(model, images, maps, [0], steps=8)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="masks"):
        energy_share(torch.zeros(2, 1, 4, 4), torch.zeros(2, 5, 4, dtype=torch.bool))
    with pytest.raises(TypeError):
        energy_share(np.zeros((2, 4, 4)), torch.zeros(2, 4, 4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tolerance"):
        pointing_hits(torch.zeros(1, 4, 4), torch.ones(1, 4, 4, dtype=torch.bool), -1)
