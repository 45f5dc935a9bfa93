"""The pieces a setting beyond the paper is built from: Grad-CAM's form of the mask
(ReLU / max, signed weights), a start from Grad-CAM's channel weights, a prior on the
mask's area and a log-softmax score."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from captum.attr import LayerGradCam
from torch import Tensor

from captum_gfi import GuidedFeatureInversion
from captum_gfi.mask import MaskForm, MaskNormalization, feature_mask, relu_max_normalize
from captum_gfi.objectives import Prior, class_scores, mask_area
from captum_gfi.settings import SETTINGS, GFISettings, PassCount, WeightInit

pytestmark = pytest.mark.usefixtures("one_thread")

GRADCAM_START = dataclasses.replace(SETTINGS["refined"], target_steps=0)


def test_refined_is_the_gradcam_start_as_data() -> None:
    s = SETTINGS["refined"]
    assert s.init is WeightInit.GRADCAM and s.weight_min is None
    assert s.mask_form == MaskForm(MaskNormalization.RELU_MAX)
    assert (s.inversion_steps, s.target_steps, s.score) == (0, 10, "log_softmax")
    assert (s.target_prior, s.delta, s.lam, s.lr) == (Prior.MASK_AREA, 48.0, 1.0, 1e-2)


def test_relu_max_normalize_by_hand() -> None:
    m = torch.tensor([[[[-2.0, 1.0], [4.0, 0.0]]], [[[-1.0, -3.0], [-0.5, -2.0]]]])
    out = relu_max_normalize(m)
    assert torch.equal(out[0], torch.tensor([[[0.0, 0.25], [1.0, 0.0]]]))
    assert torch.equal(out[1], torch.zeros(1, 2, 2))  # nothing positive: zeros, finite
    # scale-invariant in the weights, like Eq. (7)
    assert torch.allclose(relu_max_normalize(3.0 * m), out)


def test_mask_area_and_log_softmax_by_hand() -> None:
    mask = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    assert torch.equal(mask_area(mask), torch.tensor([0.5]))
    assert torch.equal(Prior.MASK_AREA(torch.ones(1, 3), mask), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="needs the mask"):
        Prior.MASK_AREA(torch.ones(1, 3))
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(class_scores(logits, "log_softmax"), torch.log_softmax(logits, 1))


def test_zero_steps_from_gradcam_is_layer_gradcam(net, images: Tensor) -> None:
    """With no Adam step, the Grad-CAM start in Grad-CAM's form is LayerGradCam (ReLU,
    divided by its maximum), at the layer's resolution and upsampled."""
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    target = [0, 3, 4]
    layer_mask = gfi.attribute(images, target=target, setting=GRADCAM_START, return_layer_mask=True)
    cam = LayerGradCam(net, net.relu2).attribute(images, target=target, relu_attributions=True)
    cam = cam / cam.flatten(1).amax(1).view(-1, 1, 1, 1)
    assert layer_mask.shape == cam.shape == (3, 1, 8, 8)
    assert torch.allclose(layer_mask, cam, atol=1e-6)


def test_gradcam_start_weights_are_signed_and_unclipped(net, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    s = dataclasses.replace(GRADCAM_START, target_steps=3)
    mask, weights = gfi.attribute(images, target=1, setting=s, return_weights=True)
    assert mask.shape == (3, 1, 16, 16)
    assert bool((weights < 0).any()) and bool((weights > 0).any())  # no clipping to w >= 0
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    # the start: Grad-CAM's channel weights divided by their largest magnitude
    _, start = gfi.attribute(images, target=1, setting=GRADCAM_START, return_weights=True)
    assert torch.allclose(start.abs().amax(dim=1), torch.ones(3))
    # and what 3 steps do, by the mask the final weights give
    base = torch.relu(net.conv2(torch.relu(net.conv1(images))))
    _, again = feature_mask(weights, base, (16, 16), form=s.mask_form)
    assert torch.allclose(again, mask, atol=1e-6)


def test_gradcam_start_batch_equals_single_in_float32(net, images: Tensor) -> None:
    """Smooth form, no clipping: float32 batches give each example's own result."""
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    s = dataclasses.replace(GRADCAM_START, target_steps=10)
    batch = gfi.attribute(images, target=[0, 1, 2], setting=s)
    single = torch.cat([gfi.attribute(images[i : i + 1], target=i, setting=s) for i in range(3)])
    assert (batch - single).abs().max() < 1e-3


def test_gradcam_start_under_no_grad(net, images: Tensor) -> None:
    """Captum's metrics call the explanation under torch.no_grad()."""
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    s = dataclasses.replace(GRADCAM_START, target_steps=2)
    expected = gfi.attribute(images, target=1, setting=s)
    with torch.no_grad():
        assert torch.equal(gfi.attribute(images, target=1, setting=s), expected)


def test_gradcam_start_needs_a_target(net, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    with pytest.raises(ValueError, match="Grad-CAM's channel weights"):
        gfi.attribute(images, setting=GRADCAM_START, stage="inversion")
    # given weights need none
    mask = gfi.attribute(
        images, setting=GRADCAM_START, stage="inversion", init_weight=torch.ones(3, 16)
    )
    assert mask.shape == (3, 1, 16, 16)


def test_pass_count_includes_the_gradcam_pass() -> None:
    s = dataclasses.replace(GRADCAM_START, target_steps=10)
    assert s.passes == PassCount(1, 0, 20, 1)
    assert s.passes.backward == 21
    assert SETTINGS["paper"].passes.backward == 150
    assert GFISettings(init="gradcam").init is WeightInit.GRADCAM
