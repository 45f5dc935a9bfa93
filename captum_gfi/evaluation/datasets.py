"""Readers for localisation data sets; nothing is downloaded.

All readers return a list of :class:`Sample` whose boxes are
``(x0, y0, x1, y1)`` in continuous pixel coordinates of the original image
with an exclusive end (a PASCAL/ImageNet ``<bndbox>`` with 1-based inclusive
``xmin..xmax`` becomes ``(xmin - 1, ymin - 1, xmax, ymax)``).

- :func:`read_imagenet`: ILSVRC validation boxes, one PASCAL-style XML file
  per image (``<annotation><filename>..<size>..<object><name>nXXXXXXXX``) and
  the synset mapping (``LOC_synset_mapping.txt``: ``"n01440764 tench, ..."``
  per line, line order = class index).
- :func:`read_voc07`: PASCAL VOC 2007 (``Annotations/*.xml``,
  ``ImageSets/Main/<split>.txt``, ``JPEGImages``), multi-label targets.
- :func:`read_folder`: a folder of images with ``boxes.csv``
  (``image,label,xmin,ymin,xmax,ymax``; 0-based, exclusive end; empty box
  fields give a label without a box).
- :func:`bundled_photos`: real photos shipped inside installed packages
  (scikit-image, scikit-learn, matplotlib), without labels.

An image that cannot be read (not an image, truncated, larger than PIL's
decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS``) is skipped with an
:class:`UnreadableImageWarning` by the readers that open images, and appended
to their ``skipped`` list when one is given; :func:`load_image` and
:func:`open_image` raise :class:`UnreadableImageError` (a ``ValueError``) with a
one-line reason.
"""

from __future__ import annotations

import csv
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

Box = tuple[float, float, float, float]

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

IMAGE_EXTENSIONS = (".JPEG", ".jpeg", ".jpg", ".JPG", ".png", ".PNG")


@dataclass
class Sample:
    """One image: ``id``, file ``path``, original ``(width, height)``, and
    ground-truth ``boxes`` per class index (classes without boxes have an
    empty list, e.g. image-level labels)."""

    id: str
    path: Path
    size: tuple[int, int]
    boxes: dict[int, list[Box]] = field(default_factory=dict)

    @property
    def labels(self) -> list[int]:
        """Sorted class indices present in the image (multi-label targets)."""
        return sorted(self.boxes)


class UnreadableImageWarning(UserWarning):
    """An image of a data set was skipped because it cannot be read."""


class UnreadableImageError(ValueError):
    """An image cannot be read; the message says why in one line."""


# what PIL raises on a file that is not a (complete) image
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, Image.DecompressionBombError)


def _reason(err: BaseException) -> str:
    if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return (
            f"larger than PIL's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels "
            "(raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted)"
        )
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'}"


@contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    r"""
    ``Image.open`` as a context manager that raises :class:`UnreadableImageError` (a
    ``ValueError`` with a one-line reason) for any unreadable file, images above PIL's
    decompression-bomb *warning* limit ``PIL.Image.MAX_IMAGE_PIXELS`` included.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except UnreadableImageError:
        raise
    except (*_PIL_ERRORS, Image.DecompressionBombWarning) as err:
        raise UnreadableImageError(f"{path}: {_reason(err)}") from None


def load_image(path: Path, image_size: int) -> Tensor:
    r"""
    Load an RGB image resized (bilinear) to ``(1, 3, S, S)`` in ``[0, 1]``.

    Raises:
        UnreadableImageError: The file is not a readable image (or is above PIL's
        decompression-bomb limit).
    """
    with open_image(path) as im:
        try:
            rgb = im.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
        except _PIL_ERRORS as err:
            raise UnreadableImageError(f"{path}: {_reason(err)}") from None
        arr = np.array(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def _image_size(
    path: Path, sample_id: str, skipped: list[tuple[str, str]] | None
) -> tuple[int, int] | None:
    """The ``(width, height)`` of ``path``, or None (with a warning) when it is unreadable."""
    try:
        with open_image(path) as im:
            return im.size
    except UnreadableImageError as err:
        warnings.warn(f"skipped image {sample_id}: {err}", UnreadableImageWarning, stacklevel=3)
        if skipped is not None:
            skipped.append((sample_id, str(err)))
        return None


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path} (nothing is downloaded)")
    return path


def _text(node: ET.Element, tag: str, source: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise ValueError(f"{source}: missing <{tag}>")
    return child.text.strip()


def parse_pascal_xml(path: Path) -> tuple[str, tuple[int, int], list[tuple[str, Box, bool]]]:
    r"""
    Parse one PASCAL-style annotation file.

    Returns:
        (filename, (width, height), objects) where each object is
        ``(name, box, difficult)`` with the box converted as described in the
        module docstring.
    """
    root = ET.parse(path).getroot()
    filename = _text(root, "filename", path)
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: missing <size>")
    wh = (int(_text(size, "width", path)), int(_text(size, "height", path)))
    objects = []
    for obj in root.iter("object"):
        name = _text(obj, "name", path)
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError(f"{path}: <object> without <bndbox>")
        x0, y0, x1, y1 = (float(_text(bb, t, path)) for t in ("xmin", "ymin", "xmax", "ymax"))
        diff = obj.find("difficult")
        difficult = diff is not None and (diff.text or "0").strip() == "1"
        objects.append((name, (x0 - 1.0, y0 - 1.0, x1, y1), difficult))
    return filename, wh, objects


def read_synsets(path: Path) -> dict[str, int]:
    """``{wnid: class index}`` from a ``LOC_synset_mapping.txt``-style file."""
    if not path.is_file():
        raise FileNotFoundError(f"synset mapping not found: {path}")
    wnids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    return {w: i for i, w in enumerate(wnids)}


def _find_image(folder: Path, stem: str) -> Path:
    if (folder / stem).is_file():
        return folder / stem
    for ext in IMAGE_EXTENSIONS:
        p = folder / f"{Path(stem).stem}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"image {stem!r} not found in {folder}")


def read_imagenet(
    root: str | Path,
    annotations: str = "Annotations",
    images: str = "Images",
    synsets: str = "LOC_synset_mapping.txt",
) -> list[Sample]:
    r"""
    ILSVRC validation images with their bounding boxes.

    Args:
        root (str or Path): folder holding ``annotations`` (one XML per
                    image), ``images`` and the ``synsets`` mapping file.

    Returns:
        samples (list of Sample): sorted by file name.
    """
    root = _require_dir(Path(root), "ImageNet root")
    ann_dir = _require_dir(root / annotations, "ImageNet annotation folder")
    img_dir = _require_dir(root / images, "ImageNet image folder")
    wnid_to_idx = read_synsets(root / synsets)
    samples = []
    for xml in sorted(ann_dir.glob("*.xml")):
        filename, wh, objects = parse_pascal_xml(xml)
        boxes: dict[int, list[Box]] = {}
        for name, box, _ in objects:
            if name not in wnid_to_idx:
                raise ValueError(f"{xml}: synset {name!r} not in {synsets}")
            boxes.setdefault(wnid_to_idx[name], []).append(box)
        samples.append(Sample(xml.stem, _find_image(img_dir, filename), wh, boxes))
    if not samples:
        raise FileNotFoundError(f"no *.xml annotation in {ann_dir}")
    return samples


def read_voc07(
    root: str | Path, split: str = "test", include_difficult: bool = True
) -> list[Sample]:
    r"""
    PASCAL VOC 2007 images of ``ImageSets/Main/<split>.txt`` with multi-label
    targets (class index = position in :data:`VOC_CLASSES`).

    Args:
        root (str or Path): the ``VOC2007`` folder.
        split (str): image set name, e.g. ``"test"``, ``"val"``, ``"trainval"``.
        include_difficult (bool): keep objects marked ``difficult``.
    """
    root = _require_dir(Path(root), "VOC2007 root")
    ids_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not ids_file.is_file():
        raise FileNotFoundError(f"VOC image set not found: {ids_file}")
    cls_idx = {c: i for i, c in enumerate(VOC_CLASSES)}
    samples = []
    for image_id in (t.split()[0] for t in ids_file.read_text().splitlines() if t.strip()):
        xml = root / "Annotations" / f"{image_id}.xml"
        if not xml.is_file():
            raise FileNotFoundError(f"VOC annotation not found: {xml}")
        filename, wh, objects = parse_pascal_xml(xml)
        boxes: dict[int, list[Box]] = {}
        for name, box, difficult in objects:
            if name not in cls_idx:
                raise ValueError(f"{xml}: unknown VOC class {name!r}")
            if difficult and not include_difficult:
                continue
            boxes.setdefault(cls_idx[name], []).append(box)
        if boxes:
            path = _find_image(root / "JPEGImages", filename)
            samples.append(Sample(image_id, path, wh, boxes))
    return samples


def read_folder(
    root: str | Path, csv_name: str = "boxes.csv", skipped: list[tuple[str, str]] | None = None
) -> list[Sample]:
    r"""
    A folder of images with a CSV of boxes (header
    ``image,label,xmin,ymin,xmax,ymax``; 0-based pixel coordinates with an
    exclusive end; several rows per image allowed).

    An unreadable image is skipped with an :class:`UnreadableImageWarning` and
    ``(id, reason)`` is appended to ``skipped`` when given.
    """
    root = _require_dir(Path(root), "image folder")
    csv_path = root / csv_name
    if not csv_path.is_file():
        raise FileNotFoundError(f"box CSV not found: {csv_path}")
    by_image: dict[str, dict[int, list[Box]]] = {}
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"image", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)}")
        for row in reader:
            boxes = by_image.setdefault(row["image"], {})
            lst = boxes.setdefault(int(row["label"]), [])
            coords = [row.get(k, "") or "" for k in ("xmin", "ymin", "xmax", "ymax")]
            if all(c.strip() for c in coords):
                x0, y0, x1, y1 = (float(c) for c in coords)
                if x1 <= x0 or y1 <= y0:
                    raise ValueError(f"{csv_path}: empty box {coords} for {row['image']}")
                lst.append((x0, y0, x1, y1))
    samples = []
    for name in sorted(by_image):
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"image listed in {csv_name} not found: {path}")
        size = _image_size(path, Path(name).stem, skipped)
        if size is not None:
            samples.append(Sample(Path(name).stem, path, size, by_image[name]))
    return samples


def bundled_photos(skipped: list[tuple[str, str]] | None = None) -> list[Sample]:
    """Real photos that ship inside installed packages (no labels, no boxes): the
    installed ones of :data:`captum_gfi.evaluation.photos.DATASET_PHOTOS`."""
    from .photos import DATASET_PHOTOS, available_photos, photo_path

    paths = [photo_path(name) for name in available_photos(DATASET_PHOTOS)]
    samples = []
    for p in paths:
        if p.is_file():
            size = _image_size(p, p.stem, skipped)
            if size is not None:
                samples.append(Sample(p.stem, p, size, {}))
    if not samples:
        raise FileNotFoundError("no bundled photo found (install scikit-image / scikit-learn)")
    return samples


def load_dataset(
    name: str,
    root: str | Path | None,
    split: str = "test",
    skipped: list[tuple[str, str]] | None = None,
) -> list[Sample]:
    """Dispatch to the reader of ``name``: imagenet, voc07, folder or photos (the
    unreadable images the reader finds are appended to ``skipped``)."""
    if name == "photos":
        return bundled_photos(skipped)
    if root is None:
        raise ValueError(f"`root` is required for dataset {name!r}")
    if name == "imagenet":
        return read_imagenet(root)
    if name == "voc07":
        return read_voc07(root, split=split)
    if name == "folder":
        return read_folder(root, skipped=skipped)
    raise ValueError(f"`dataset` must be imagenet, voc07, folder or photos, got {name!r}")
