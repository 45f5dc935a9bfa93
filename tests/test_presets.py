"""The paper's layers for torchvision architectures and the demo model (random init)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from captum_gfi import GuidedFeatureInversion, resolve_layers


@pytest.mark.parametrize(
    "name", ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
)
def test_vgg_presets(name: str) -> None:
    model = torchvision.models.get_model(name, weights=None)
    preset = resolve_layers(model)
    mods = list(model.features)
    # l1: the last conv's ReLU (conv5_4 for VGG-19), l0: the last max-pool (pool5)
    assert isinstance(preset.layer, nn.ReLU)
    last_conv = max(i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d))
    assert mods.index(preset.layer) == last_conv + (2 if name.endswith("_bn") else 1)
    assert preset.inversion_layer is mods[-1] and isinstance(preset.inversion_layer, nn.MaxPool2d)
    assert preset.name == "vgg"


@pytest.mark.parametrize(
    ("name", "conv"),
    [
        ("resnet18", "conv2"),
        ("resnet34", "conv2"),
        ("resnet50", "conv3"),
        ("resnet101", "conv3"),
        ("resnet152", "conv3"),
    ],
)
def test_resnet_presets(name: str, conv: str) -> None:
    model = torchvision.models.get_model(name, weights=None)
    preset = resolve_layers(model)
    assert preset.layer is getattr(model.layer4[-1], conv)
    assert preset.inversion_layer is model.layer4


def test_alexnet_preset() -> None:
    model = torchvision.models.alexnet(weights=None)
    preset = resolve_layers(model)
    assert preset.layer is preset.inversion_layer is model.features[12]


def test_paper_shapes_for_vgg19_and_resnet18() -> None:
    x = torch.rand(1, 3, 224, 224)
    for name, l1_shape, l0_shape in [
        ("vgg19", (1, 512, 14, 14), (1, 512, 7, 7)),
        ("resnet18", (1, 512, 7, 7), (1, 512, 7, 7)),
    ]:
        model = torchvision.models.get_model(name, weights=None).eval()
        preset = resolve_layers(model)
        shapes: dict[str, tuple[int, ...]] = {}

        def record(key: str, store: dict = shapes):  # bind the dict of this iteration
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                store.setdefault(key, tuple(output.shape))

            return hook

        hooks = [
            preset.layer.register_forward_hook(record("l1")),
            preset.inversion_layer.register_forward_hook(record("l0")),
        ]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        assert shapes == {"l1": l1_shape, "l0": l0_shape}, name


def test_efficientnet_lite0_preset() -> None:
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    model = efficientnet.EfficientNet.from_name("efficientnet-lite0")
    preset = resolve_layers(model)
    assert preset.layer is model._blocks[-1] and preset.inversion_layer is model._bn1


def test_preset_found_inside_a_wrapper() -> None:
    resnet = torchvision.models.resnet18(weights=None)
    wrapped = nn.Sequential(nn.Identity(), resnet).eval()
    gfi = GuidedFeatureInversion.from_model(wrapped)
    assert gfi.layer is resnet.layer4[-1].conv2 and gfi.inversion_layer is resnet.layer4
    assert gfi.forward_func is wrapped


def test_forced_arch_and_unknown_architecture() -> None:
    resnet = torchvision.models.resnet18(weights=None)
    assert resolve_layers(resnet, arch="resnet").name == "resnet"
    with pytest.raises(ValueError, match="no 'vgg' network found"):
        resolve_layers(resnet, arch="vgg")
    with pytest.raises(ValueError, match="arch must be one of"):
        resolve_layers(resnet, arch="inception")
    with pytest.raises(ValueError, match="no GFI layer preset for MobileNetV2.*Pass the layers"):
        resolve_layers(torchvision.models.mobilenet_v2(weights=None))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        resolve_layers(lambda x: x)  # type: ignore[arg-type]
