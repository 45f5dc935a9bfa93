"""The one registry of bundled photos: every real photograph the package uses.

Each photo is a file that ships inside an installed package's wheel, so nothing is ever
downloaded: scikit-image's bundled files (the ``demo`` and ``test`` extras), scikit-learn's
two sample images, matplotlib's ``grace_hopper.jpg`` and imgaug's ``quokka.jpg`` (with the
box of ``quokka_annotations.json``). imgaug is never imported (it does not import with
numpy 2): its files are located with :func:`importlib.util.find_spec`.

Who reads it: the exact-ground-truth cases (:mod:`~captum_gfi.evaluation.benchmark_data`),
the ``photos`` data set of ``captum-gfi evaluate``
(:func:`~captum_gfi.evaluation.datasets.bundled_photos`), the ``sample:NAME`` images of
``captum-gfi explain`` (:mod:`captum_gfi.demo.photos`) and ``bench --agreement``. To add a
photo, add one entry to :data:`PHOTO_FILES`.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASET_PHOTOS",
    "PHOTO_FILES",
    "available_photos",
    "load_photo",
    "photo_boxes",
    "photo_path",
]

Box = tuple[int, int, int, int]

#: Photo name -> (package, file inside the package's data folder). Only files that ship in
#: the packages' wheels; nothing is fetched.
PHOTO_FILES: dict[str, tuple[str, str]] = {
    "skimage:astronaut": ("skimage", "astronaut.png"),
    "skimage:chelsea": ("skimage", "chelsea.png"),
    "skimage:coffee": ("skimage", "coffee.png"),
    "skimage:rocket": ("skimage", "rocket.jpg"),
    "skimage:motorcycle_left": ("skimage", "motorcycle_left.png"),
    "skimage:camera": ("skimage", "camera.png"),
    "skimage:coins": ("skimage", "coins.png"),
    "skimage:page": ("skimage", "page.png"),
    "skimage:text": ("skimage", "text.png"),
    "skimage:clock_motion": ("skimage", "clock_motion.png"),
    "skimage:moon": ("skimage", "moon.png"),
    "skimage:hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),
    "skimage:retina": ("skimage", "retina.jpg"),
    "skimage:cell": ("skimage", "cell.png"),
    "skimage:ihc": ("skimage", "ihc.png"),
    "skimage:brick": ("skimage", "brick.png"),
    "skimage:grass": ("skimage", "grass.png"),
    "skimage:gravel": ("skimage", "gravel.png"),
    "sklearn:china": ("sklearn", "china.jpg"),
    "sklearn:flower": ("sklearn", "flower.jpg"),
    "matplotlib:grace_hopper": ("matplotlib", "grace_hopper.jpg"),
    "imgaug:quokka": ("imgaug", "quokka.jpg"),
}

#: The photos of the ``photos`` data set of ``captum-gfi evaluate``, in its order.
DATASET_PHOTOS: tuple[str, ...] = (
    "skimage:astronaut",
    "skimage:chelsea",
    "skimage:coffee",
    "skimage:rocket",
    "skimage:motorcycle_left",
    "skimage:camera",
    "skimage:clock_motion",
    "skimage:page",
    "sklearn:china",
    "sklearn:flower",
    "matplotlib:grace_hopper",
)


def _package_dir(package: str) -> Path:
    """The folder of ``package`` without importing it (imgaug does not import on numpy 2)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def photo_path(name: str) -> Path:
    """Where the file of photo ``name`` (a key of :data:`PHOTO_FILES`) lives (it may not exist)."""
    if name not in PHOTO_FILES:
        raise ValueError(f"name must be one of {sorted(PHOTO_FILES)}, got {name!r}")
    package, file_name = PHOTO_FILES[name]
    if package == "skimage":
        return _package_dir("skimage") / "data" / file_name
    if package == "sklearn":
        return _package_dir("sklearn") / "datasets" / "images" / file_name
    if package == "matplotlib":
        from matplotlib import cbook

        return Path(cbook.get_sample_data(file_name, asfileobj=False))
    return _package_dir(package) / file_name


@cache
def _load_photo_cached(name: str) -> Tensor:
    from PIL import Image

    with Image.open(photo_path(name)) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_photo(name: str) -> Tensor:
    r"""
    One bundled photo at its original resolution.

    Args:
        name (str): A key of :data:`PHOTO_FILES`, e.g. ``"skimage:chelsea"``.

    Returns:
        Tensor: ``(3, H, W)`` float32 in ``[0, 1]`` (grey photos are repeated over RGB).
        The tensor is cached: do not modify it in place.

    Raises:
        ValueError: ``name`` is not a key of :data:`PHOTO_FILES`.
        ImportError / FileNotFoundError: The package shipping it is not installed, or its
        file is missing.
    """
    if name not in PHOTO_FILES:
        raise ValueError(f"name must be one of {sorted(PHOTO_FILES)}, got {name!r}")
    return _load_photo_cached(name)


def available_photos(names: Sequence[str] | None = None) -> list[str]:
    r"""
    The photos of ``names`` whose file is installed.

    Args:
        names (Sequence[str], optional): Keys of :data:`PHOTO_FILES`.
                    Default: None (all of them)

    Returns:
        list[str]: The installed ones, in the order given.
    """
    found = []
    for name in PHOTO_FILES if names is None else names:
        try:
            if photo_path(name).is_file():
                found.append(name)
        except ImportError:
            continue
    return found


def photo_boxes(name: str) -> list[Box]:
    r"""
    Annotated object boxes shipped with a photo: imgaug's quokka box, none for the others.

    Args:
        name (str): A key of :data:`PHOTO_FILES`.

    Returns:
        list[tuple[int, int, int, int]]: ``(x0, y0, x1, y1)`` boxes in the photo's pixels,
        ``x1``/``y1`` exclusive.
    """
    if name != "imgaug:quokka":
        return []
    data = json.loads((_package_dir("imgaug") / "quokka_annotations.json").read_text())
    return [
        (int(b["x1"]), int(b["y1"]), int(b["x2"]), int(b["y2"])) for b in data["bounding_boxes"]
    ]
