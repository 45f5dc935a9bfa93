"""The paper's choice of layers (Sec. 4.1.1) for common architectures.

``layer`` is l1, the conv layer whose channels form the mask; ``inversion_layer``
is l0, the last feature layer before the classifier, inverted in stage 1.

=====================  ============================  ==========================
architecture           l1 (``layer``)                l0 (``inversion_layer``)
=====================  ============================  ==========================
VGG-11/13/16/19 (+BN)  last conv, after its ReLU     last max-pool (pool5)
                       (conv5_4 for VGG-19)
ResNet-18/34/50/...    last conv of ``layer4``       ``layer4``'s output
AlexNet                pool5                         pool5
EfficientNet-Lite0/1/2 ``_blocks[-1]``, the last     ``_bn1``, the head's batch
(demo models)          MBConv block (7x7x320 for     norm (7x7x1280 for Lite0,
                       Lite0, 8x8x320 for Lite1,     8x8x1280 for Lite1, 9x9x1280
                       9x9x352 for Lite2)            for Lite2), the last 4-D
                                                     features before pooling
=====================  ============================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from torch import nn


@dataclass(frozen=True)
class LayerPreset:
    """The layers GFI uses for one model."""

    layer: nn.Module
    inversion_layer: nn.Module
    name: str


def _vgg(model: nn.Module) -> LayerPreset:
    features = cast(nn.Sequential, model.features)
    mods = list(features)
    last_conv = max(i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d))
    # conv5_4 (VGG-19) and its ReLU: the activation map the paper calls conv5_4
    relu = next(i for i in range(last_conv, len(mods)) if isinstance(mods[i], nn.ReLU))
    pool = max(i for i, m in enumerate(mods) if isinstance(m, nn.MaxPool2d))
    return LayerPreset(mods[relu], mods[pool], "vgg")


def _resnet(model: nn.Module) -> LayerPreset:
    layer4 = cast(nn.Module, model.layer4)
    last_block = list(layer4.children())[-1]
    convs = [m for m in last_block.modules() if isinstance(m, nn.Conv2d)]
    # the block's own convs (not its downsample branch): conv2 (Basic) / conv3 (Bottleneck)
    own = [getattr(last_block, n) for n in ("conv3", "conv2") if hasattr(last_block, n)]
    return LayerPreset(own[0] if own else convs[-1], layer4, "resnet")


def _alexnet(model: nn.Module) -> LayerPreset:
    features = cast(nn.Sequential, model.features)
    pool5 = [m for m in features if isinstance(m, nn.MaxPool2d)][-1]
    return LayerPreset(pool5, pool5, "alexnet")


def _efficientnet_lite(model: nn.Module) -> LayerPreset:
    # The paper has no EfficientNet setting. The last block's output is the analogue of
    # ResNet's last conv of layer4; on the 2x2 cat/espresso grid of tests/test_real_model.py
    # it put 0.81 / 0.81 of the class maps' mass on the right cells, against 0.69 / 0.77
    # for the 1x1 head conv (research/layer_choice.py; docs/howto.md).
    blocks = cast(nn.ModuleList, model._blocks)
    return LayerPreset(blocks[-1], cast(nn.Module, model._bn1), "efficientnet-lite")


def _is_vgg(m: nn.Module) -> bool:
    return type(m).__name__ == "VGG" and isinstance(getattr(m, "features", None), nn.Sequential)


def _is_resnet(m: nn.Module) -> bool:
    return type(m).__name__ == "ResNet" and isinstance(getattr(m, "layer4", None), nn.Module)


def _is_alexnet(m: nn.Module) -> bool:
    return type(m).__name__ == "AlexNet" and isinstance(getattr(m, "features", None), nn.Sequential)


def _is_efficientnet_lite(m: nn.Module) -> bool:
    return (
        type(m).__name__ == "EfficientNet"
        and isinstance(getattr(m, "_blocks", None), nn.ModuleList)
        and isinstance(getattr(m, "_bn1", None), nn.Module)
    )


#: preset name -> (recogniser, layer picker)
PRESETS: dict[str, tuple[Callable[[nn.Module], bool], Callable[[nn.Module], LayerPreset]]] = {
    "vgg": (_is_vgg, _vgg),
    "resnet": (_is_resnet, _resnet),
    "alexnet": (_is_alexnet, _alexnet),
    "efficientnet-lite": (_is_efficientnet_lite, _efficientnet_lite),
}


def resolve_layers(model: nn.Module, arch: str | None = None) -> LayerPreset:
    """Find the paper's l1 and l0 for ``model``.

    The model itself or, for wrappers such as ``nn.Sequential(normalize, net)``,
    the first submodule of a known architecture is used.

    Args:
        model (torch.nn.Module): the model to explain.
        arch (str, optional): a key of :data:`PRESETS` to force instead of detecting.

    Raises:
        ValueError: for an architecture with no preset; pass ``layer`` and
            ``inversion_layer`` to :class:`GuidedFeatureInversion` yourself.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if arch is not None:
        if arch not in PRESETS:
            raise ValueError(f"arch must be one of {sorted(PRESETS)}, got {arch!r}")
        candidates = list(model.modules())
        for m in candidates:
            if PRESETS[arch][0](m):
                return PRESETS[arch][1](m)
        raise ValueError(f"no {arch!r} network found inside {type(model).__name__}")
    for m in model.modules():
        for recognise, pick in PRESETS.values():
            if recognise(m):
                return pick(m)
    raise ValueError(
        f"no GFI layer preset for {type(model).__name__}: known architectures are "
        f"{sorted(PRESETS)}. Pass the layers yourself: GuidedFeatureInversion(model, "
        "layer=<last conv layer, 4-D output>, inversion_layer=<last pooling/feature layer "
        "before the classifier>)"
    )
