import pytest
import torch

from captum_gfi.evaluation.pointing import (
    STANDARD_TOLERANCE,
    grid_pointing_score,
    make_grid,
    max_point,
    point_in_boxes,
    pointing_accuracy,
    pointing_hit,
)


def test_max_point_first_on_ties() -> None:
    s = torch.zeros(3, 4)
    s[1, 2] = 5.0
    s[2, 0] = 5.0
    assert max_point(s) == (1, 2)
    assert max_point(s[None, None]) == (1, 2)


def test_point_in_boxes_with_tolerance() -> None:
    box = [(10.0, 10.0, 20.0, 20.0)]
    assert point_in_boxes((15, 15), box)
    assert point_in_boxes((20, 10), box)  # closed box
    assert not point_in_boxes((23, 24), box)
    assert point_in_boxes((23, 24), box, tolerance=5.0)  # distance (3, 4) -> 5
    assert not point_in_boxes((23, 24), box, tolerance=4.99)
    assert STANDARD_TOLERANCE == 15.0
    with pytest.raises(ValueError, match="tolerance"):
        point_in_boxes((0, 0), box, tolerance=-1)


def test_pointing_hit_scales_pixel_centre() -> None:
    s = torch.zeros(4, 4)
    s[0, 3] = 1.0  # pixel centre (3.5, 0.5) -> (35, 5) at scale 10
    assert pointing_hit(s, [(30, 0, 40, 10)], scale=(10.0, 10.0))
    assert not pointing_hit(s, [(0, 0, 30, 40)], scale=(10.0, 10.0))
    assert pointing_hit(s, [(0, 0, 30, 40)], tolerance=5.0, scale=(10.0, 10.0))
    with pytest.raises(ValueError, match="gt_boxes"):
        pointing_hit(s, [])


def test_pointing_accuracy_is_mean_over_classes() -> None:
    # class 'cat': 1 hit of 1; class 'dog': 1 hit of 3 -> (1 + 1/3) / 2, not 2/4
    acc = pointing_accuracy([True, True, False, False], ["cat", "dog", "dog", "dog"])
    assert acc == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same length"):
        pointing_accuracy([True], [])
    with pytest.raises(ValueError, match="empty"):
        pointing_accuracy([], [])


def test_make_grid_row_major() -> None:
    ims = [torch.full((1, 2, 2), float(i)) for i in range(4)]
    g = make_grid(ims)
    assert g.shape == (1, 1, 4, 4)
    assert g[0, 0, 0, 3] == 1.0 and g[0, 0, 3, 0] == 2.0 and g[0, 0, 3, 3] == 3.0
    with pytest.raises(ValueError, match="square"):
        make_grid(ims[:3])


def test_grid_pointing_score_positive_fraction() -> None:
    a = torch.zeros(4, 4)
    a[0:2, 0:2] = 1.0  # cell 0: 4
    a[2, 3] = 4.0  # cell 3: 4
    a[3, 0] = -10.0  # negative values are ignored
    assert grid_pointing_score(a, 0, 2) == pytest.approx(0.5)
    assert grid_pointing_score(a, 3, 2) == pytest.approx(0.5)
    assert grid_pointing_score(a, 2, 2) == 0.0
    assert grid_pointing_score(-a.abs(), 0, 2) == 0.0
    with pytest.raises(ValueError, match="cell"):
        grid_pointing_score(a, 4, 2)
    with pytest.raises(ValueError, match="divisible"):
        grid_pointing_score(torch.zeros(5, 4), 0, 2)
