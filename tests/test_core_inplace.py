"""A layer followed (or made) by an in-place op gives the same map as the same model with
``inplace=False``, as LayerGradCam does: the Grad-CAM start and ``attribute_to_layer_input``
read the activation before the in-place op can overwrite it."""

from __future__ import annotations

import copy

import pytest
import torch
from captum.attr import LayerGradCam
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion

pytestmark = pytest.mark.usefixtures("one_thread")

TARGET = [0, 3, 1]


def vgg_like(inplace: bool) -> nn.Sequential:
    """conv relu conv relu pool linear, as torchvision's VGG: every conv followed by a
    ``ReLU(inplace=True)``."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(inplace=inplace),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 5),
    ).eval()


def out_of_place_copy(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return twin


@pytest.fixture
def models() -> tuple[nn.Sequential, nn.Sequential]:
    net = vgg_like(inplace=True)
    return net, out_of_place_copy(net)  # type: ignore[return-value]


@pytest.fixture
def x() -> Tensor:
    torch.manual_seed(1)
    return torch.randn(3, 3, 16, 16)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"setting": "refined"},
        {"setting": "refined", "target_steps": 0},  # the Grad-CAM start alone
        {"setting": "paper", "inversion_steps": 2, "target_steps": 2},
        {"setting": "authors", "inversion_steps": 2, "target_steps": 2},
    ],
    ids=["refined", "gradcam-start", "paper", "authors"],
)
def test_conv_followed_by_inplace_relu(models, x: Tensor, kwargs: dict) -> None:
    inplace, plain = models
    got = GuidedFeatureInversion(inplace, inplace[2], inplace[4]).attribute(
        x, target=TARGET, **kwargs
    )
    expected = GuidedFeatureInversion(plain, plain[2], plain[4]).attribute(
        x, target=TARGET, **kwargs
    )
    assert float(expected.std()) > 0.05  # an informative map
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_layer_input_of_an_inplace_relu(models, x: Tensor) -> None:
    """The input of ``ReLU(inplace=True)`` is the conv's output, read before the ReLU
    overwrites it: the same map as the conv's output on the out-of-place copy."""
    inplace, plain = models
    got = GuidedFeatureInversion(inplace, inplace[3], inplace[4]).attribute(
        x, TARGET, None, True, setting="refined"
    )
    expected = GuidedFeatureInversion(plain, plain[3], plain[4]).attribute(
        x, TARGET, None, True, setting="refined"
    )
    of_conv = GuidedFeatureInversion(plain, plain[2], plain[4]).attribute(
        x, target=TARGET, setting="refined"
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(got, of_conv, rtol=0, atol=0)


def test_layer_gradcam_is_unaffected_too(models, x: Tensor) -> None:
    """The reference behaviour: LayerGradCam gives identical maps on both models, and the
    Grad-CAM start of refined is LayerGradCam's map on the in-place model."""
    inplace, plain = models
    cams = [
        LayerGradCam(m, m[2]).attribute(x, target=TARGET, relu_attributions=True).detach()
        for m in (inplace, plain)
    ]
    torch.testing.assert_close(cams[0], cams[1], rtol=0, atol=0)
    start = GuidedFeatureInversion(inplace, inplace[2], inplace[4]).attribute(
        x, target=TARGET, setting="refined", target_steps=0, return_layer_mask=True
    )
    cam = cams[0] / cams[0].flatten(1).amax(1).view(-1, 1, 1, 1)
    torch.testing.assert_close(start, cam, rtol=0, atol=1e-6)
