"""Models whose output is not (N, K) class scores: one output per example ((N, 1) and
(N,), with ``target=None`` as in Captum) and segmentation-style (N, K, H, W) outputs."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion
from captum_gfi.demo.toy import TinyConvNet

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"inversion_steps": 2, "target_steps": 4}


class OneOutput(nn.Module):
    """A binary classifier with one logit per example: (N, 1), or (N,) with ``flat``."""

    def __init__(self, flat: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = TinyConvNet(classes=1).eval()
        self.flat = flat

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        return out[:, 0] if self.flat else out


def gfi_of(model: OneOutput) -> GuidedFeatureInversion:
    return GuidedFeatureInversion(model, model.net.relu2, model.net.pool)


@pytest.mark.parametrize("setting", ["paper", "refined"])
@pytest.mark.parametrize("flat", [False, True], ids=["N-1", "N"])
def test_one_output_with_target_none(images: Tensor, setting: str, flat: bool) -> None:
    """The setting's softmax over one unit (constant 1: no signal, an all-zero map) becomes
    the sigmoid, its two-class form; target=None and target=0 are the same score."""
    gfi = gfi_of(OneOutput(flat))
    binary = {"paper": "sigmoid", "refined": "log_sigmoid"}[setting]
    got = gfi.attribute(images, setting=setting, **FAST)
    layer_mask = gfi.attribute(images, setting=setting, return_layer_mask=True, **FAST)
    assert layer_mask.flatten(1).amax(1).tolist() == [1.0, 1.0, 1.0]  # none all zero
    torch.testing.assert_close(got, gfi.attribute(images, 0, setting=setting, **FAST))
    explicit = gfi.attribute(images, setting=setting, score=binary, **FAST)
    torch.testing.assert_close(got, explicit, rtol=0, atol=0)
    # the same maps as the (N, 1) model: (N,) is read as one score per example
    torch.testing.assert_close(got, gfi_of(OneOutput()).attribute(images, setting=setting, **FAST))


@pytest.mark.parametrize("score", ["softmax", "log_softmax"])
def test_one_output_refuses_an_explicit_softmax(images: Tensor, score: str) -> None:
    gfi = gfi_of(OneOutput())
    with pytest.raises(ValueError, match=rf'score="{score}" is constant for a model with one out'):
        gfi.attribute(images, score=score, **FAST)


def test_target_none_needs_one_output_per_example(net: TinyConvNet, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    with pytest.raises(
        ValueError,
        match=r'target is required for stage="both" .*5 scores per example, shape \(N, 5\)',
    ):
        gfi.attribute(images, **FAST)
    with pytest.raises(ValueError, match="Grad-CAM's channel weights"):
        gfi.attribute(images, setting="refined", stage="inversion")


class Segmenter(nn.Module):
    """Per-pixel class scores (N, 3, 8, 8)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 3, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.relu(self.conv1(x)))


@pytest.mark.parametrize("target", [1, [0, 1, 2], torch.tensor([0, 1, 2]), (1,)])
def test_segmentation_output_says_how_to_reduce_it(images: Tensor, target: object) -> None:
    model = Segmenter().eval()
    gfi = GuidedFeatureInversion(model, model.relu, model.relu)
    with pytest.raises(
        ValueError,
        match=r"scores of shape \(N, 3, 8, 8\) \(a segmentation-style output\).*tuple target "
        r"with 3 indices.*forward_func=lambda x: model\(x\).sum\(dim=\(2, 3\)\)",
    ):
        gfi.attribute(images, target=target, **FAST)  # type: ignore[arg-type]


def test_segmentation_output_with_a_pixel_or_a_reduction(images: Tensor) -> None:
    model = Segmenter().eval()
    pixel = GuidedFeatureInversion(model, model.relu, model.relu).attribute(
        images, target=(1, 4, 4), **FAST
    )
    reduced = GuidedFeatureInversion(
        lambda x: model(x).sum(dim=(2, 3)), model.relu, model.relu
    ).attribute(images, target=1, **FAST)
    assert pixel.shape == reduced.shape == (3, 1, 16, 16)
    assert bool(torch.isfinite(pixel).all()) and bool(torch.isfinite(reduced).all())
    assert not torch.equal(pixel, reduced)
