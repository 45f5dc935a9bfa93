"""GuidedFeatureInversion takes LayerGradCam's call: its arguments, in its positional order,
with LayerGradCam's meaning where GFI has one and a documented no-op where it has not."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch
from captum.attr import LayerGradCam
from torch import Tensor

from captum_gfi import GuidedFeatureInversion
from captum_gfi.demo.toy import TinyConvNet

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"inversion_steps": 2, "target_steps": 3}
TARGET = [0, 3, 1]


def test_positional_parameters_are_layer_gradcams() -> None:
    def positional(f: object) -> list[str]:
        params = inspect.signature(f).parameters.values()  # type: ignore[arg-type]
        return [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]

    assert positional(GuidedFeatureInversion.attribute) == positional(LayerGradCam.attribute)
    assert positional(LayerGradCam.attribute) == [
        "self", "inputs", "target", "additional_forward_args", "attribute_to_layer_input",
        "relu_attributions", "attr_dim_summation", "grad_kwargs",
    ]  # fmt: skip


def test_layer_gradcams_standard_call_works_as_is(net: TinyConvNet, images: Tensor) -> None:
    """The call this project's evaluation makes to LayerGradCam, made to GFI: the mask is
    in [0, 1], so relu_attributions changes nothing."""
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    plain = gfi.attribute(images, target=TARGET, **FAST)
    call = gfi.attribute(images, target=TARGET, relu_attributions=True, **FAST)
    torch.testing.assert_close(call, plain, rtol=0, atol=0)
    positional = gfi.attribute(images, TARGET, None, False, True, True, None, **FAST)
    torch.testing.assert_close(positional, plain, rtol=0, atol=0)


def test_attribute_to_layer_input_positionally(net: TinyConvNet, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    by_name = gfi.attribute(images, target=TARGET, attribute_to_layer_input=True, **FAST)
    torch.testing.assert_close(gfi.attribute(images, TARGET, None, True, **FAST), by_name)
    assert not torch.equal(by_name, gfi.attribute(images, TARGET, **FAST))


def test_attr_dim_summation_false_is_layer_gradcams_per_channel_form(
    net: TinyConvNet, images: Tensor
) -> None:
    """Per channel, w_i * f_i at the layer's resolution; with no Adam step from the
    Grad-CAM start (w = Grad-CAM's weights / max |w|) it is LayerGradCam's own per-channel
    output up to that per-example scale."""
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    kwargs = {"setting": "refined", "target_steps": 0}
    channels, w = gfi.attribute(
        images, target=TARGET, attr_dim_summation=False, return_weights=True, **kwargs
    )
    cam = LayerGradCam(net, net.relu2).attribute(images, target=TARGET, attr_dim_summation=False)
    assert channels.shape == cam.shape == (3, 16, 8, 8)
    scale = cam.sum(dim=(2, 3)).abs().amax(1) / channels.sum(dim=(2, 3)).abs().amax(1)
    torch.testing.assert_close(
        channels * scale.view(-1, 1, 1, 1), cam.detach(), atol=1e-6, rtol=1e-5
    )
    # summed over channels and through the setting's ReLU / max: the layer mask
    layer_mask = gfi.attribute(images, target=TARGET, return_layer_mask=True, **kwargs)
    summed = torch.relu(channels.sum(1, keepdim=True))
    torch.testing.assert_close(summed / summed.flatten(1).amax(1).view(-1, 1, 1, 1), layer_mask)
    clipped = gfi.attribute(
        images, target=TARGET, relu_attributions=True, attr_dim_summation=False, **kwargs
    )
    torch.testing.assert_close(clipped, torch.relu(channels), rtol=0, atol=0)
    assert bool((channels < 0).any())


def test_grad_kwargs_are_accepted_and_checked(net: TinyConvNet, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    for setting in ("paper", "refined"):
        plain = gfi.attribute(images, target=TARGET, setting=setting, **FAST)
        with_kwargs = gfi.attribute(
            images, target=TARGET, setting=setting, grad_kwargs={"retain_graph": True}, **FAST
        )
        torch.testing.assert_close(with_kwargs, plain, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"grad_kwargs may set .*got \['inputs'\]"):
        gfi.attribute(images, target=0, grad_kwargs={"inputs": images})
    with pytest.raises(TypeError, match="grad_kwargs must be a dict or None, got list"):
        gfi.attribute(images, target=0, grad_kwargs=[("retain_graph", True)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="relu_attributions must be a bool, got str"):
        gfi.attribute(images, target=0, relu_attributions="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attr_dim_summation=False .* cannot be combined"):
        gfi.attribute(images, target=0, attr_dim_summation=False, expand_channels=True)


# --------------------------------------------------------------- weights round trip
def test_refined_weights_round_trip_as_init_weight(net: TinyConvNet, images: Tensor) -> None:
    """refined's own (signed) weights are a valid start for refined: 0 further steps give
    the same mask; the paper's setting (w >= 0) refuses them, naming its bound."""
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    mask, w = gfi.attribute(images, target=TARGET, setting="refined", return_weights=True)
    assert bool((w < 0).any())
    again, w_again = gfi.attribute(
        images, target=TARGET, setting="refined", init_weight=w, target_steps=0,
        return_weights=True,
    )  # fmt: skip
    torch.testing.assert_close(w_again, w, rtol=0, atol=0)
    torch.testing.assert_close(again, mask, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"weight_min = 0: w >= 0.*below weight_min"):
        gfi.attribute(images, target=TARGET, init_weight=w)


def test_a_number_init_weight_replaces_the_gradcam_start(net: TinyConvNet, images: Tensor):
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    _, w = gfi.attribute(
        images, target=0, setting="refined", init_weight=0.5, target_steps=0, return_weights=True
    )
    assert bool((w == 0.5).all())


# ------------------------------------------------------------------------- layering
def test_validation_does_not_import_the_method_module() -> None:
    import captum_gfi._validation as validation
    from captum_gfi import guided_feature_inversion, stages

    tree = ast.parse(Path(validation.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "captum_gfi.guided_feature_inversion" not in imported
    assert guided_feature_inversion.STAGES is stages.STAGES  # the old name still works
