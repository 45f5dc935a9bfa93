"""The demo assets: the one loader's ``toy`` and untrained specs, the one toy net, and the
sample photos as views of the one photo registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captum_gfi.demo import samples
from captum_gfi.demo.models import LoadedModel, load_model
from captum_gfi.demo.toy import TinyConvNet, toy_convnet, toy_layers
from captum_gfi.evaluation.datasets import bundled_photos
from captum_gfi.evaluation.photos import DATASET_PHOTOS, PHOTO_FILES, photo_path


def test_toy_convnet_is_seeded_and_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = toy_convnet(), toy_convnet()
    assert torch.equal(torch.random.get_rng_state(), before)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(toy_convnet(seed=1).conv1.weight, a.conv1.weight)
    assert not a.training
    x = torch.rand(2, 3, 32, 32)
    assert a(x).shape == (2, 10)
    preset = toy_layers(a)
    assert preset.layer is a.conv2 and preset.inversion_layer is a.pool


def test_load_model_toy() -> None:
    bundle = load_model("toy")
    assert isinstance(bundle, LoadedModel) and isinstance(bundle.model, TinyConvNet)
    assert (bundle.name, bundle.input_size, len(bundle.categories)) == ("toy", 32, 10)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():  # identity normalisation: the wrapper computes the same logits
        assert torch.equal(bundle.classifier(x), bundle.model(x))
        assert torch.equal(bundle.model(x), toy_convnet()(x))


def test_load_model_untrained_torchvision_needs_no_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_model("torchvision:resnet18")
    torch.manual_seed(0)
    bundle = load_model("torchvision:resnet18", pretrained=False)
    torch.manual_seed(0)
    again = load_model("torchvision:resnet18", pretrained=False)
    assert bundle.input_size == 224 and len(bundle.categories) == 1000
    assert not bundle.model.training
    assert torch.equal(bundle.model.conv1.weight, again.model.conv1.weight)


def test_samples_are_registry_photos() -> None:
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    for name in ("cat", "coffee", "astronaut", "rocket", "china", "flower"):
        photo = samples._PHOTOS[name]
        assert photo in PHOTO_FILES
        with Image.open(photo_path(photo)) as image:
            expected = np.asarray(image.convert("RGB"))
        assert np.array_equal(np.asarray(samples.load_sample(name)), expected)
    assert set(samples.available_samples()) == set(samples.SAMPLES)


def test_the_photos_data_set_is_the_registry_s() -> None:
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    found = bundled_photos()
    assert [s.path for s in found] == [photo_path(n) for n in DATASET_PHOTOS]
    assert [s.id for s in found][:3] == ["astronaut", "chelsea", "coffee"]
