import numpy as np
import pytest
import torch

from captum_gfi.evaluation.localization import (
    PAPER_ALPHAS,
    box_iou,
    localization_error,
    mask_to_box,
    saliency_to_box,
    select_alpha,
    wsol_success,
)


def test_paper_alpha_grid() -> None:
    assert len(PAPER_ALPHAS) == 21
    assert PAPER_ALPHAS[0] == 0.0 and PAPER_ALPHAS[1] == 0.5 and PAPER_ALPHAS[-1] == 10.0


def test_mask_to_box_covers_whole_region() -> None:
    m = torch.zeros(6, 8, dtype=torch.bool)
    m[1, 2] = True  # two disconnected blobs: the box covers both
    m[4, 6] = True
    assert mask_to_box(m) == (2.0, 1.0, 7.0, 5.0)
    assert mask_to_box(torch.zeros(3, 3, dtype=torch.bool)) is None


def test_box_iou_hand_computed() -> None:
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 4, 4), (0, 0, 4, 2)) == pytest.approx(0.5)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    with pytest.raises(ValueError, match="box_a"):
        box_iou((0, 0, 1), (0, 0, 1, 1))


def test_saliency_to_box_threshold_is_alpha_times_mean() -> None:
    s = torch.zeros(4, 4)
    s[0, 0] = 8.0  # mean = 1
    s[2:4, 1:3] = 2.0  # mean = (8 + 4*2) / 16 = 1
    assert saliency_to_box(s, 0.0) == (0.0, 0.0, 3.0, 4.0)  # everything > 0
    assert saliency_to_box(s, 1.5) == (0.0, 0.0, 3.0, 4.0)  # 8 and the 2s
    assert saliency_to_box(s, 2.0) == (0.0, 0.0, 1.0, 1.0)  # only the 8 (> 2)
    assert saliency_to_box(s, 8.0) is None
    assert saliency_to_box(s[None, None], 2.0) == (0.0, 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        saliency_to_box(s, -1.0)
    with pytest.raises(ValueError, match="saliency"):
        saliency_to_box(torch.zeros(2, 2, 2), 1.0)


def test_wsol_success_per_alpha() -> None:
    s = torch.zeros(4, 4)
    s[0, 0] = 8.0
    s[2:4, 1:3] = 2.0
    gt = [(1.0, 2.0, 3.0, 4.0)]  # exactly the block of 2s
    # alpha=0,1.5: box (0,0,3,4) area 12, IoU 4/12; alpha=2: (0,0,1,1) IoU 0; alpha 8: none
    succ = wsol_success(s, gt, alphas=(0.0, 1.5, 2.0, 8.0))
    assert succ.tolist() == [False, False, False, False]
    s[0, 0] = 0.0  # mean 0.5: alpha 0..3.5 select the block of 2s exactly
    succ = wsol_success(s, gt, alphas=(0.0, 3.5, 4.0))
    assert succ.tolist() == [True, True, False]
    # any gt box counts; scale maps a 4x4 map onto an 8x12 image
    succ = wsol_success(s, [(0, 0, 1, 1), (2.0, 6.0, 6.0, 12.0)], alphas=(1.0,), scale=(2.0, 3.0))
    assert succ.tolist() == [True]
    with pytest.raises(ValueError, match="gt_boxes"):
        wsol_success(s, [])


def test_iou_must_exceed_half() -> None:
    s = torch.zeros(4, 4)
    s[0:2, :] = 1.0  # box (0,0,4,2), IoU with (0,0,4,4) is exactly 0.5: not a success
    assert wsol_success(s, [(0, 0, 4, 4)], alphas=(0.5,)).tolist() == [False]
    assert wsol_success(s, [(0, 0, 4, 3)], alphas=(0.5,)).tolist() == [True]


def test_error_and_alpha_selection() -> None:
    succ = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], dtype=bool)
    np.testing.assert_allclose(localization_error(succ), [1 / 3, 2 / 3, 1 / 3])
    assert select_alpha(succ, (0.0, 0.5, 1.0)) == (0.0, pytest.approx(1 / 3))  # tie -> smallest
    tune = np.array([[0, 1, 0], [0, 1, 0]], dtype=bool)
    alpha, err = select_alpha(succ, (0.0, 0.5, 1.0), tune_successes=tune)
    assert alpha == 0.5 and err == pytest.approx(2 / 3)  # chosen on tune, reported on test
    with pytest.raises(ValueError, match="alphas"):
        select_alpha(succ, (0.0, 0.5))
