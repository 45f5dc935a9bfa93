"""Name -> attribution method factory.

Every factory takes the same ``(model, layer, inversion_layer)`` and returns
``attribute(inputs, target) -> (N, 1, H, W)`` maps at input resolution, so
every method goes through the same evaluation pipeline:

- ``gfi``: Guided Feature Inversion mask in ``[0, 1]`` (paper defaults:
  10 inversion + 70 target steps).
- ``gradcam``: Captum ``LayerGradCam`` on ``layer`` with ReLU, upsampled
  bilinearly to the input size.
- ``ig``: ``IntegratedGradients`` (black baseline, 32 steps), absolute value
  of the sum over channels.
- ``saliency``: gradient magnitude, max over channels (Simonyan et al.).
- ``guided_backprop``: ``GuidedBackprop``, absolute value summed over channels.
- ``occlusion``: ``Occlusion`` with 16x16 patches (stride 8) of zeros, summed
  over channels (signed: positive = evidence for the class).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from captum.attr import (
    GuidedBackprop,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn

AttributionFn = Callable[[Tensor, Tensor], Tensor]

METHODS: tuple[str, ...] = ("gfi", "gradcam", "ig", "saliency", "guided_backprop", "occlusion")


def _gfi(
    model: nn.Module, layer: nn.Module | None, inversion_layer: nn.Module | None
) -> AttributionFn:
    from captum_gfi import GuidedFeatureInversion  # type: ignore[attr-defined]

    gfi = (
        GuidedFeatureInversion.from_model(model)
        if layer is None
        else GuidedFeatureInversion(model, layer, inversion_layer=inversion_layer)
    )

    def attribute(inputs: Tensor, target: Tensor) -> Tensor:
        return gfi.attribute(
            inputs, target=target, inversion_steps=10, target_steps=70, show_progress=False, seed=0
        ).detach()

    return attribute


def make_method(
    name: str,
    model: nn.Module,
    layer: nn.Module | None = None,
    inversion_layer: nn.Module | None = None,
) -> AttributionFn:
    r"""
    Build the attribution function called ``name``.

    Args:
        name (str): one of :data:`METHODS`.
        model (nn.Module): classifier taking ``(N, C, H, W)`` images.
        layer (nn.Module, optional): the conv layer used by ``gfi`` (``l1``)
                    and ``gradcam``; required by ``gradcam``.
        inversion_layer (nn.Module, optional): ``gfi``'s ``l0``.

    Returns:
        attribute (Callable): ``attribute(inputs, target) -> (N, 1, H, W)``.
    """
    if name == "gfi":
        return _gfi(model, layer, inversion_layer)
    if name == "gradcam":
        if layer is None:
            raise ValueError("`layer` is required by method 'gradcam'")
        gc = LayerGradCam(model, layer)

        def gradcam(inputs: Tensor, target: Tensor) -> Tensor:
            a = gc.attribute(inputs, target=target, relu_attributions=True)
            return LayerAttribution.interpolate(a, inputs.shape[-2:], "bilinear").detach()

        return gradcam
    if name == "ig":
        ig = IntegratedGradients(model)

        def integrated_gradients(inputs: Tensor, target: Tensor) -> Tensor:
            a = ig.attribute(inputs, target=target, n_steps=32, internal_batch_size=32)
            return a.sum(1, keepdim=True).abs().detach()

        return integrated_gradients
    if name == "saliency":
        sal = Saliency(model)

        def saliency(inputs: Tensor, target: Tensor) -> Tensor:
            a = sal.attribute(inputs, target=target, abs=True)
            return a.amax(1, keepdim=True).detach()

        return saliency
    if name == "guided_backprop":
        gbp = GuidedBackprop(model)

        def guided_backprop(inputs: Tensor, target: Tensor) -> Tensor:
            return gbp.attribute(inputs, target=target).abs().sum(1, keepdim=True).detach()

        return guided_backprop
    if name == "occlusion":
        occ = Occlusion(model)

        def occlusion(inputs: Tensor, target: Tensor) -> Tensor:
            c = inputs.shape[1]
            a = occ.attribute(
                inputs,
                target=target,
                sliding_window_shapes=(c, 16, 16),
                strides=(c, 8, 8),
                baselines=0.0,
                perturbations_per_eval=16,
            )
            return a.sum(1, keepdim=True).detach()

        return occlusion
    raise ValueError(f"`name` must be one of {METHODS}, got {name!r}")


def resolve_module(model: nn.Module, path: str) -> nn.Module:
    """The sub-module of ``model`` at dotted ``path`` (e.g. ``"features.28"``)."""
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise ValueError(f"`layer` {path!r} is not a sub-module of the model") from err


@torch.no_grad()
def predict(model: nn.Module, inputs: Tensor) -> tuple[Tensor, Tensor]:
    """Top-1 ``(probabilities, classes)`` of ``inputs``."""
    return torch.softmax(model(inputs), dim=1).max(dim=1)
