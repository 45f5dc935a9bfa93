"""GFI's output goes straight into Captum's visualisation and metrics."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from captum.attr import LayerGradCam, visualization  # noqa: E402
from captum.metrics import infidelity, sensitivity_max  # noqa: E402
from torch import Tensor  # noqa: E402

from captum_gfi import GuidedFeatureInversion  # noqa: E402
from captum_gfi.demo.toy import TinyConvNet  # noqa: E402

FAST = {"inversion_steps": 2, "target_steps": 3}


def test_visualize_image_attr(net: TinyConvNet, images: Tensor) -> None:
    mask = GuidedFeatureInversion(net, net.conv2, net.pool).attribute(images, target=1, **FAST)
    image = (images[0] - images[0].min()) / (images[0].max() - images[0].min())
    fig, ax = visualization.visualize_image_attr(
        mask[0].permute(1, 2, 0).numpy(),
        image.permute(1, 2, 0).numpy(),
        method="blended_heat_map",
        sign="positive",
        use_pyplot=False,
    )
    assert fig is not None and len(ax.images) == 2  # the photo and the heat map
    fig2, axes = visualization.visualize_image_attr_multiple(
        mask[0].permute(1, 2, 0).numpy(),
        image.permute(1, 2, 0).numpy(),
        methods=["original_image", "heat_map"],
        signs=["all", "positive"],
        use_pyplot=False,
    )
    assert len(axes) == 2


def test_infidelity(net: TinyConvNet, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    attributions = gfi.attribute(images, target=1, expand_channels=True, **FAST)

    def perturb(x: Tensor) -> tuple[Tensor, Tensor]:
        noise = torch.randn_like(x) * 0.1
        return noise, x - noise

    torch.manual_seed(0)
    score = infidelity(net, perturb, images, attributions, target=1, n_perturb_samples=4)
    assert score.shape == (3,) and bool(torch.isfinite(score).all())


def test_sensitivity_max(net: TinyConvNet, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    torch.manual_seed(0)
    sens = sensitivity_max(gfi.attribute, images, target=1, n_perturb_samples=2, **FAST)
    assert sens.shape == (3,) and bool((sens >= 0).all())


def test_same_layer_mask_shape_as_layer_gradcam(net: TinyConvNet, images: Tensor) -> None:
    gradcam = LayerGradCam(net, net.conv2).attribute(images, target=1)
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    layer_mask = gfi.attribute(images, target=1, return_layer_mask=True, **FAST)
    assert layer_mask.shape == gradcam.shape == (3, 1, 8, 8)
