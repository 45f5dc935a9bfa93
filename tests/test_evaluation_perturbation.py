import math

import pytest
import torch

from captum_gfi.evaluation.perturbation_curves import (
    gaussian_blur,
    make_substrate,
    perturbation_curve,
)


def _forward(x: torch.Tensor) -> torch.Tensor:
    # two-class logits [sum of pixels, 0]: p(class 0) = sigmoid(sum)
    s = x.sum(dim=(1, 2, 3))
    return torch.stack([s, torch.zeros_like(s)], dim=1)


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_deletion_curve_hand_computed() -> None:
    image = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    sal = torch.tensor([[0.1, 0.4], [0.3, 0.2]])  # order: 2.0, 3.0, 4.0, 1.0
    c = perturbation_curve(_forward, image, sal, 0, "deletion", step=1, substrate="zero")
    expected = [_sig(10), _sig(8), _sig(5), _sig(1), _sig(0)]
    torch.testing.assert_close(c.scores, torch.tensor(expected))
    torch.testing.assert_close(c.fractions, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    auc = sum((expected[i] + expected[i + 1]) / 2 * 0.25 for i in range(4))
    assert c.auc == pytest.approx(auc, rel=1e-6)


def test_insertion_curve_partial_last_step() -> None:
    image = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    sal = torch.tensor([[0.1, 0.4], [0.3, 0.2]])
    c = perturbation_curve(_forward, image, sal, 0, "insertion", step=3, substrate="zero",
                           batch_size=1)  # fmt: skip
    expected = [_sig(0), _sig(9), _sig(10)]
    torch.testing.assert_close(c.scores, torch.tensor(expected))
    torch.testing.assert_close(c.fractions, torch.tensor([0.0, 0.75, 1.0]))
    assert c.auc == pytest.approx((expected[0] + expected[1]) / 2 * 0.75
                                  + (expected[1] + expected[2]) / 2 * 0.25, rel=1e-6)  # fmt: skip


def test_substrates() -> None:
    x = torch.full((1, 3, 8, 8), 0.7)
    torch.testing.assert_close(gaussian_blur(x), x)  # blur keeps a constant image
    y = torch.arange(64.0).view(1, 1, 8, 8)
    torch.testing.assert_close(make_substrate(y, "mean"), torch.full_like(y, 31.5))
    assert make_substrate(y, "zero").abs().sum() == 0
    assert make_substrate(y, "blur").std() < y.std()
    with pytest.raises(ValueError, match="substrate"):
        make_substrate(y, "noise")


def test_bad_arguments() -> None:
    image = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="mode"):
        perturbation_curve(_forward, image, torch.zeros(2, 2), 0, mode="both")
    with pytest.raises(ValueError, match="step"):
        perturbation_curve(_forward, image, torch.zeros(2, 2), 0, step=0)
    with pytest.raises(ValueError, match="saliency"):
        perturbation_curve(_forward, image, torch.zeros(3, 2), 0)
