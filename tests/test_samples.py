"""Tests for captum_gfi.demo.samples: bundled photos, image files, preprocessing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captum_gfi.demo.samples import (
    SAMPLES,
    available_samples,
    image_to_tensor,
    load_image,
    load_sample,
)


@pytest.mark.parametrize(
    ("name", "func"),
    [("cat", "chelsea"), ("coffee", "coffee"), ("astronaut", "astronaut"), ("rocket", "rocket")],
)
def test_skimage_samples(name: str, func: str) -> None:
    data = pytest.importorskip("skimage.data")
    image = load_sample(name)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), getattr(data, func)())
    np.testing.assert_array_equal(np.asarray(load_sample("sample:" + name)), np.asarray(image))


@pytest.mark.parametrize("name", ["china", "flower"])
def test_sklearn_samples(name: str) -> None:
    pytest.importorskip("sklearn")
    image = load_sample(name)
    assert image.mode == "RGB" and image.size == (640, 427)


def test_available_samples() -> None:
    available = available_samples()
    assert set(available) <= set(SAMPLES)
    for name in available:
        assert load_sample(name).mode == "RGB"


def test_unknown_sample() -> None:
    with pytest.raises(ValueError, match="unknown sample 'dog'.*sample:cat"):
        load_sample("dog")
    with pytest.raises(ValueError, match="unknown sample"):
        load_image("sample:dog")
    with pytest.raises(TypeError, match="name"):
        load_sample(3)  # type: ignore[arg-type]


def test_sample_without_scikit_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(ImportError, match=r"scikit-image.*pip install -e '\.\[demo\]'"):
        load_sample("cat")
    assert not {"cat", "coffee", "astronaut", "rocket"} & set(available_samples())


def test_load_image_file(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(array).save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), array)
    Image.fromarray(array[..., 0]).save(tmp_path / "gray.png")  # grayscale -> RGB
    assert load_image(str(tmp_path / "gray.png")).mode == "RGB"


def test_load_image_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image file not found"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(FileNotFoundError, match="did you mean sample:cat"):
        load_image("cat")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read .*notes.txt as an image"):
        load_image(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="not a file"):
        load_image(tmp_path)


def test_load_image_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an image above PIL's decompression-bomb limit (lowered here, so the file stays small)
    # is a one-line ValueError, not PIL's DecompressionBombError traceback
    path = tmp_path / "bomb.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 // 4)  # 2x over: PIL's error
    with pytest.raises(ValueError, match=r"cannot read .*bomb.png as an image: .*"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 - 1)  # just over: PIL's warning
    with pytest.raises(ValueError, match=r"cannot read .*bomb.png as an image: .*"):
        load_image(path)


def test_image_to_tensor_center_crop() -> None:
    # 448 x 224 image: left quarter red, middle half green, right quarter blue
    array = np.zeros((224, 448, 3), dtype=np.uint8)
    array[:, :112, 0] = 255
    array[:, 112:336, 1] = 255
    array[:, 336:, 2] = 255
    x = image_to_tensor(Image.fromarray(array), 224)
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # the center crop keeps only the green middle half
    torch.testing.assert_close(x[0].mean(dim=(1, 2)), torch.tensor([0.0, 1.0, 0.0]))


def test_image_to_tensor_resizes_shorter_side() -> None:
    x = image_to_tensor(Image.new("RGB", (60, 40), (255, 0, 0)), 32)
    assert x.shape == (1, 3, 32, 32)
    torch.testing.assert_close(x[0, :, 16, 16], torch.tensor([1.0, 0.0, 0.0]))


def test_image_to_tensor_numpy_inputs() -> None:
    uint8 = np.full((50, 50, 3), 128, dtype=np.uint8)
    floats = np.full((50, 50, 3), 128 / 255, dtype=np.float32)
    torch.testing.assert_close(image_to_tensor(uint8, 16), image_to_tensor(floats, 16))
    torch.testing.assert_close(image_to_tensor(uint8, 16), torch.full((1, 3, 16, 16), 128 / 255))


def test_image_to_tensor_bad_arguments() -> None:
    image = Image.new("RGB", (8, 8))
    for size in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="size"):
            image_to_tensor(image, size)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="image"):
        image_to_tensor([[0]], 8)  # type: ignore[arg-type]
