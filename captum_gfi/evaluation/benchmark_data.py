"""Benchmark cases with exact ground truth, built offline from bundled real photos.

Two kinds of case, both deterministic from a seed and built from the real photographs that
ship inside the test extra's dependencies (nothing is downloaded):

* **composites** — a *foreground* (a rectangle crop of a real photo that the model
  classifies with probability >= 0.5) pasted at a random position and scale onto a
  *different* real photo or texture (the background). The ground truth is the exact pasted
  rectangle (pixel mask and box); the target is the foreground's class.
* **grids** — 2x2 and 3x3 grids (the grid pointing game of Böhle et al.): one cell holds a
  foreground, every other cell a photo whose top-1 class differs from every other cell's.
  The ground truth is the target's cell.

The photos are those of the package's one photo registry,
:data:`captum_gfi.evaluation.photos.PHOTO_FILES` (files that ship in installed wheels and
Debian packages); each case's ``source`` names the package, installed version and file of
every photo it uses (``source["sources"]``, :func:`~captum_gfi.evaluation.photos.photo_source`).

**Pools.** The foregrounds come from a named pool of :data:`FOREGROUND_POOLS`:

* ``"default"`` — :data:`FOREGROUND_CANDIDATES`, the photos of the test extra's wheels
  (scikit-image, scikit-learn, matplotlib, imgaug). Its cases are those of the versions
  before pools existed, bit for bit.
* ``"large"`` — those, plus the photos of PyPI ``foolbox`` 3.3.4 (20 ImageNet photos),
  PyPI ``sporco`` 0.2.2.post1 (5 photos) and Debian ``tuxpaint-stamps-default``
  2022.06.04-1 (100 photo cut-outs on transparency): whichever of them are installed. A
  **cut-out** is tried as one crop, the tight box of its object (alpha > 0.5, see
  :func:`candidate_crops`), classified over white. In a composite it is pasted *through its
  alpha*: the crop and its alpha are resized into the pasted rectangle (premultiplied, so
  no transparent colour bleeds in), the pixels with resized alpha > 0.5 are replaced by
  the object's colour and every other pixel keeps the background's. Those replaced pixels
  are the ground-truth mask, exactly (``box`` is their tight box; ``source["position"]``
  and ``source["size"]`` give the pasted rectangle). In a grid a cut-out fills its cell
  over white, and the ground truth is the cell, as for any photo.

Both pools share the backgrounds (:data:`BACKGROUND_PHOTOS`, the test extra's photos).

**Photo cap of the large pool.** Without an explicit ``max_per_photo``, a pool other than
``"default"`` splits ``n`` into a quota per split in proportion to the split's photos
(``round(n * photos of the tune split / all photos)`` tune cases, the rest test) and caps
each photo at ``max(1, floor(0.1 * quota of its split))`` cases, so that once ``n`` cases are
built no
photo holds more than 10 % of its split's cases (in particular of the test cases), nor of
all ``n`` (the cap is at most ``floor(0.1 * n)``).

**Split.** Each model's foreground photos are split by photo, never by case, so that
whatever is tuned on the ``"tune"`` split (e.g. the WSOL threshold) never sees the photos
reported on the ``"test"`` split: the photos are ranked by the SHA-256 of their name and
the first ``ceil(n / 3)`` are ``"tune"`` (:func:`assign_splits`). A case takes the split of
its foreground (composites) or of its target cell's photo (grids); a grid's other cells
may come from either split (there are too few photos per split for 3x3 grids).
"""

from __future__ import annotations

import hashlib
import math
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .photos import (
    PHOTO_FILES,
    alpha_box,
    available_photos,
    is_cutout,
    load_alpha,
    load_photo,
    photo_boxes,
    photo_source,
    photos_of,
)

__all__ = [
    "BACKGROUND_PHOTOS",
    "FOREGROUND_CANDIDATES",
    "FOREGROUND_POOLS",
    "LARGE_POOL_PACKAGES",
    "BenchmarkCase",
    "BuildStats",
    "Classifier",
    "Foreground",
    "assign_splits",
    "build_cases",
    "candidate_crops",
    "case_from_record",
    "describe",
    "foreground_photos",
    "resize_image",
]

Box = tuple[int, int, int, int]


@runtime_checkable
class Classifier(Protocol):
    """What the cases need of a model: :class:`captum_gfi.demo.models.LoadedModel` is one."""

    @property
    def model(self) -> nn.Module:  # the raw network (the per-model caches are keyed on it)
        ...

    @property
    def classifier(self) -> nn.Module:  # the network taking images in [0, 1]
        ...

    name: str
    input_size: int
    categories: list[str]


#: Photos of objects and scenes tried as foregrounds (their crops, see
#: :func:`candidate_crops`). The others (textures, microscopy, astronomy) only serve as
#: backgrounds and grid cells.
FOREGROUND_CANDIDATES: tuple[str, ...] = (
    "skimage:astronaut",
    "skimage:chelsea",
    "skimage:coffee",
    "skimage:rocket",
    "skimage:motorcycle_left",
    "skimage:camera",
    "skimage:coins",
    "skimage:page",
    "skimage:text",
    "skimage:clock_motion",
    "sklearn:china",
    "sklearn:flower",
    "matplotlib:grace_hopper",
    "imgaug:quokka",
)

#: The backgrounds of every pool: the photos of the test extra's wheels (a composite never
#: uses its foreground's own photo).
BACKGROUND_PHOTOS: tuple[str, ...] = photos_of(("skimage", "sklearn", "matplotlib", "imgaug"))

#: The packages (keys of :data:`captum_gfi.evaluation.photos.PHOTO_SOURCES`) whose photos
#: the ``"large"`` pool adds to :data:`FOREGROUND_CANDIDATES`.
LARGE_POOL_PACKAGES: tuple[str, ...] = ("foolbox", "sporco", "tuxpaint-stamps-default")

#: Foreground pools by name: the photos tried as foregrounds (those installed are used).
FOREGROUND_POOLS: dict[str, tuple[str, ...]] = {
    "default": FOREGROUND_CANDIDATES,
    "large": FOREGROUND_CANDIDATES + photos_of(LARGE_POOL_PACKAGES),
}

#: Side of the pasted foreground's longer edge, as a fraction of the canvas side.
SCALE_RANGE: tuple[float, float] = (0.3, 0.7)
#: Candidates classified per forward pass: depthwise convolutions on one CPU thread are
#: fastest in small batches.
BATCH_SIZE = 8

KINDS = ("composites", "grids")
#: Share of a split's cases one photo may hold in the large pool (see the module docstring).
PHOTO_SHARE = 0.1


def _check_pool(pool: object) -> str:
    if not isinstance(pool, str) or pool not in FOREGROUND_POOLS:
        raise ValueError(f"pool must be one of {sorted(FOREGROUND_POOLS)}, got {pool!r}")
    return pool


# --------------------------------------------------------------------------- photos


def candidate_crops(name: str, height: int, width: int) -> list[Box]:
    r"""
    The rectangle crops of a photo tried as foregrounds.

    The whole photo; windows of 0.8, 0.6 and 0.4 of each side at the 3 x 3 positions
    (corners, edge middles, centre); and the photo's annotated boxes (:func:`photo_boxes`).
    Every crop keeps the photo's aspect ratio except the annotated boxes. A cut-out
    (:func:`~captum_gfi.evaluation.photos.is_cutout`) has one crop: the tight box of its
    object (:func:`~captum_gfi.evaluation.photos.alpha_box`).

    Args:
        name (str): A key of :data:`PHOTO_FILES`.
        height (int): The photo's height in pixels.
        width (int): The photo's width in pixels.

    Returns:
        list[tuple[int, int, int, int]]: ``(x0, y0, x1, y1)`` boxes, ``x1``/``y1`` exclusive.
    """
    if name in PHOTO_FILES and is_cutout(name):
        return [alpha_box(name)]
    crops: list[Box] = [(0, 0, width, height)]
    for fraction in (0.8, 0.6, 0.4):
        h, w = round(height * fraction), round(width * fraction)
        for fy in (0.0, 0.5, 1.0):
            for fx in (0.0, 0.5, 1.0):
                x0, y0 = round((width - w) * fx), round((height - h) * fy)
                crops.append((x0, y0, x0 + w, y0 + h))
    return crops + photo_boxes(name)


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    r"""
    Resizes an image to exactly ``size`` (bilinear, antialiased, values clamped to
    ``[0, 1]``). Every resize of the benchmark (foreground classification, pasting, grid
    cells, backgrounds) goes through this function.

    Args:
        image (Tensor): ``(3, h, w)`` or ``(N, 3, h, w)`` in ``[0, 1]``.
        size (tuple[int, int]): ``(height, width)`` of the output.

    Returns:
        Tensor: ``(3, *size)`` or ``(N, 3, *size)``.
    """
    batched = image.dim() == 4
    x = image if batched else image.unsqueeze(0)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x.clamp(0.0, 1.0)
    return x if batched else x[0]


def _cover(image: Tensor, side: int) -> Tensor:
    """Resizes ``image`` so that its shorter side is ``side`` (aspect kept)."""
    h, w = image.shape[-2:]
    scale = side / min(h, w)
    return resize_image(image, (max(side, round(h * scale)), max(side, round(w * scale))))


def assign_splits(photos: Sequence[str]) -> dict[str, str]:
    r"""
    The fixed split of foreground photos: ranked by the SHA-256 of their name, the first
    ``ceil(n / 3)`` are ``"tune"``, the others ``"test"``. Both splits are non-empty for
    two photos or more.

    Args:
        photos (Sequence[str]): Photo names (duplicates are ignored).

    Returns:
        dict[str, str]: Photo name -> ``"tune"`` or ``"test"``.
    """
    unique = sorted(set(photos), key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    n_tune = math.ceil(len(unique) / 3)
    return {p: ("tune" if i < n_tune else "test") for i, p in enumerate(unique)}


# --------------------------------------------------------------------------- classification


def _probabilities(model: Classifier, images: Tensor) -> Tensor:
    """Softmax over classes for ``(N, 3, S, S)`` images, :data:`BATCH_SIZE` at a time."""
    with torch.inference_mode():
        chunks = [
            torch.softmax(model.classifier(images[i : i + BATCH_SIZE]).float(), dim=-1)
            for i in range(0, len(images), BATCH_SIZE)
        ]
    return torch.cat(chunks).clone()


@dataclass(frozen=True)
class Foreground:
    r"""
    A rectangle crop of a bundled photo that the model classifies confidently.

    Args:
        name (str): ``"<photo>@x0,y0,x1,y1"``.
        photo (str): The photo's name (a key of :data:`PHOTO_FILES`).
        crop (tuple[int, int, int, int]): ``(x0, y0, x1, y1)`` in the photo's pixels.
        image (Tensor): ``(3, h, w)`` crop at the photo's resolution, in ``[0, 1]``.
        target (int): The model's top-1 class on the crop.
        confidence (float): Its softmax probability.
        split (str): ``"tune"`` or ``"test"`` (:func:`assign_splits`).
        alpha (Tensor, optional): ``(h, w)`` alpha of a cut-out's crop in ``[0, 1]``
                    (``image`` is then the crop over white); None for other photos.
    """

    name: str
    photo: str
    crop: Box
    image: Tensor = field(repr=False)
    target: int
    confidence: float
    split: str
    alpha: Tensor | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Cell:
    """A grid-cell candidate: a foreground crop or a whole non-foreground photo."""

    photo: str
    crop: Box
    image: Tensor
    target: int
    confidence: float


# model.model -> {(pool, input size, min_confidence): foregrounds}; and the whole-photo classes
_FOREGROUND_CACHE: weakref.WeakKeyDictionary[
    Any, dict[tuple[str, int, float], list[Foreground]]
] = weakref.WeakKeyDictionary()
_PHOTO_CLASS_CACHE: weakref.WeakKeyDictionary[Any, dict[int, dict[str, tuple[int, float]]]] = (
    weakref.WeakKeyDictionary()
)


def foreground_photos(
    model: Classifier, min_confidence: float = 0.5, pool: str = "default"
) -> list[Foreground]:
    r"""
    The foregrounds of the benchmark for ``model``: the crops of the installed photos of
    ``FOREGROUND_POOLS[pool]`` (:func:`candidate_crops`) whose top-1 probability is at
    least ``min_confidence``, each labelled with that top-1 class.

    Each crop is classified stretched to the model's ``input_size`` square (with
    :func:`resize_image`), in batches. The result is cached per model.

    Args:
        model (Classifier): The classifier, see :func:`captum_gfi.demo.models.load_model`.
        min_confidence (float): Minimum top-1 probability of a kept crop.
                    Default: 0.5
        pool (str): A key of :data:`FOREGROUND_POOLS`.
                    Default: ``"default"``

    Returns:
        list[Foreground]: In the order of the pool and :func:`candidate_crops`; ``split`` is
        set by :func:`assign_splits` over the kept photos (of this pool).
    """
    if not isinstance(model, Classifier):
        raise TypeError(
            "model must be a captum_gfi.demo.models.LoadedModel (or have its model, classifier, "
            f"name, input_size and categories), got {type(model).__name__}"
        )
    if not 0.0 < min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in (0, 1], got {min_confidence!r}")
    pool = _check_pool(pool)
    size = model.input_size
    cache = _FOREGROUND_CACHE.setdefault(model.model, {})
    key = (pool, size, float(min_confidence))
    if key in cache:
        return list(cache[key])
    crops: list[tuple[str, Box, Tensor]] = []
    alphas: list[Tensor | None] = []
    for photo in available_photos(FOREGROUND_POOLS[pool]):
        image, alpha = load_photo(photo), load_alpha(photo)
        for box in candidate_crops(photo, image.shape[1], image.shape[2]):
            x0, y0, x1, y1 = box
            crops.append((photo, box, image[:, y0:y1, x0:x1]))
            alphas.append(None if alpha is None else alpha[y0:y1, x0:x1])
    # resized in chunks of whole batches (the same batches, so the same probabilities, as
    # one stack of every crop; a large pool's crops would not fit in memory at once)
    chunk = 16 * BATCH_SIZE
    probabilities = torch.cat(
        [
            _probabilities(
                model, torch.stack([resize_image(c[2], (size, size)) for c in crops[i : i + chunk]])
            )
            for i in range(0, len(crops), chunk)
        ]
    )
    confidence, top1 = probabilities.max(dim=1)
    kept = [i for i in range(len(crops)) if float(confidence[i]) >= min_confidence]
    splits = assign_splits([crops[i][0] for i in kept])
    result = [
        Foreground(
            name=f"{crops[i][0]}@{','.join(map(str, crops[i][1]))}",
            photo=crops[i][0],
            crop=crops[i][1],
            image=crops[i][2],
            target=int(top1[i]),
            confidence=float(confidence[i]),
            split=splits[crops[i][0]],
            alpha=alphas[i],
        )
        for i in kept
    ]
    cache[key] = result
    return list(result)


def _photo_classes(model: Classifier) -> dict[str, tuple[int, float]]:
    """Top-1 class and probability of every installed photo, whole and stretched."""
    size = model.input_size
    cache = _PHOTO_CLASS_CACHE.setdefault(model.model, {})
    if size not in cache:
        names = available_photos(BACKGROUND_PHOTOS)
        inputs = torch.stack([resize_image(load_photo(n), (size, size)) for n in names])
        confidence, top1 = _probabilities(model, inputs).max(dim=1)
        cache[size] = {n: (int(t), float(c)) for n, t, c in zip(names, top1, confidence)}
    return cache[size]


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class BenchmarkCase:
    r"""
    One benchmark image with its exact ground truth.

    Args:
        case_id (str): ``"composite-0007"``, ``"grid2-0003"``, ``"grid3-0001"`` (numbered
                    per kind in the order kept).
        kind (str): ``"composite"``, ``"grid2"`` or ``"grid3"``.
        split (str): ``"tune"`` or ``"test"``: the split of the foreground photo.
        image (Tensor): ``(3, S, S)`` float32 in ``[0, 1]``; ``S`` is the model's input size.
        target (int): ImageNet class index explained.
        mask (Tensor): ``(S, S)`` bool: exact ground-truth pixels.
        box (tuple[int, int, int, int]): ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive: the
                    tight box of ``mask``.
        confidence (float): The model's softmax probability of ``target`` on ``image``.
        source (dict[str, Any]): JSON-serialisable provenance (photo names, crops, scale,
                    position, seed, try index; ``"pool"``; ``"sources"``: photo -> its
                    ``kind``, ``package``, installed ``version`` and ``file``, see
                    :func:`~captum_gfi.evaluation.photos.photo_source`; ``"alpha_mask":
                    true`` for a cut-out pasted through its alpha).
    """

    case_id: str
    kind: str
    split: str
    image: Tensor = field(repr=False)
    target: int
    mask: Tensor = field(repr=False)
    box: Box
    confidence: float
    source: dict[str, Any]


@dataclass
class BuildStats:
    r"""
    What :func:`build_cases` tried.

    Args:
        tried (int): Candidates classified up to the last kept one.
        kept (int): Cases returned.
        per_reason (dict[str, int]): Rejected candidates by reason: ``"low_confidence"``
                    (composites), ``"not_top5"``, ``"too_few_classes"`` (grids),
                    ``"photo_quota"`` (``max_per_photo`` or the large pool's cap),
                    ``"split_quota"`` (the large pool's quota per split), ``"empty_mask"``
                    (a cut-out pasted so small that no pixel has alpha > 0.5).
        per_kind (dict[str, int]): Kept cases by kind (``"composite"``, ``"grid2"``,
                    ``"grid3"``).
        per_split (dict[str, int]): Kept cases by split.
    """

    tried: int
    kept: int
    per_reason: dict[str, int]
    per_kind: dict[str, int] = field(default_factory=dict)
    per_split: dict[str, int] = field(default_factory=dict)


@dataclass
class _Candidate:
    kind: str
    split: str
    image: Tensor
    target: int
    box: Box
    source: dict[str, Any]
    rejected: str | None = None  # reason known before classification
    mask: Tensor | None = None  # None: the box


def _box_mask(size: int, box: Box) -> Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    return mask


def _group_by_photo(foregrounds: Sequence[Foreground]) -> dict[str, list[Foreground]]:
    groups: dict[str, list[Foreground]] = {}
    for fg in foregrounds:
        groups.setdefault(fg.photo, []).append(fg)
    return groups


def _pick_foreground(
    rng: np.random.Generator, groups: dict[str, list[Foreground]], full: frozenset[str]
) -> Foreground:
    """A photo uniformly (except those in ``full``), then one of its crops uniformly."""
    photos = [p for p in groups if p not in full]
    crops = groups[photos[int(rng.integers(len(photos)))]]
    return crops[int(rng.integers(len(crops)))]


_Maker = Callable[[np.random.Generator, int, frozenset[str]], _Candidate]


def _sources(photos: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """Package, installed version and file of each photo (for the case records)."""
    return {photo: photo_source(photo) for photo in dict.fromkeys(photos)}


def _paste(canvas: Tensor, image: Tensor, position: Sequence[int], size: Sequence[int]) -> Box:
    """Pastes ``image`` resized to ``size`` = (w, h) at ``position`` = (x0, y0) of
    ``canvas`` (in place); returns the pasted box."""
    (x0, y0), (w, h) = position, size
    canvas[:, y0 : y0 + h, x0 : x0 + w] = resize_image(image, (h, w))
    return (x0, y0, x0 + w, y0 + h)


def _paste_cutout(
    canvas: Tensor, image: Tensor, alpha: Tensor, position: Sequence[int], size: Sequence[int]
) -> Tensor:
    """Pastes a cut-out (``image`` over white and its ``alpha``) resized to ``size`` = (w, h)
    at ``position`` = (x0, y0) of ``canvas`` (in place) through its alpha: the pixels whose
    resized alpha is > 0.5 take the object's colour, the others keep the canvas'. Returns
    those pixels, the exact ground truth, as a ``canvas``-sized bool mask."""
    (x0, y0), (w, h) = position, size
    premultiplied = (image - (1.0 - alpha)).clamp(0.0, 1.0)  # image = rgb * a + (1 - a)
    resized = resize_image(torch.cat([premultiplied, alpha.unsqueeze(0)]), (h, w))
    a = resized[3]
    inside = a > 0.5
    colour = (resized[:3] / a.clamp(min=0.5)).clamp(0.0, 1.0)
    region = canvas[:, y0 : y0 + h, x0 : x0 + w]
    canvas[:, y0 : y0 + h, x0 : x0 + w] = torch.where(inside, colour, region)
    mask = torch.zeros(canvas.shape[1:], dtype=torch.bool)
    mask[y0 : y0 + h, x0 : x0 + w] = inside
    return mask


def _mask_box(mask: Tensor) -> Box:
    """The tight box of a non-empty mask; ``(0, 0, 0, 0)`` for an empty one."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(ys) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _tile(images: Sequence[Tensor], k: int, size: int, target_cell: int) -> tuple[Tensor, Box]:
    """A ``size`` x ``size`` k x k grid of ``images`` (row-major, each stretched to its
    cell), and the box of cell ``target_cell``."""
    edges = [round(i * size / k) for i in range(k + 1)]
    canvas = torch.zeros(3, size, size)
    box: Box = (0, 0, 0, 0)
    for index, image in enumerate(images):
        r, c = divmod(index, k)
        y0, y1, x0, x1 = edges[r], edges[r + 1], edges[c], edges[c + 1]
        canvas[:, y0:y1, x0:x1] = resize_image(image, (y1 - y0, x1 - x0))
        if index == target_cell:
            box = (x0, y0, x1, y1)
    return canvas, box


def _composite_maker(
    model: Classifier, foregrounds: list[Foreground], seed: int, pool: str
) -> _Maker:
    size = model.input_size
    groups = _group_by_photo(foregrounds)
    backgrounds = {
        name: _cover(load_photo(name), size) for name in available_photos(BACKGROUND_PHOTOS)
    }
    lo, hi = math.ceil(SCALE_RANGE[0] * size), math.floor(SCALE_RANGE[1] * size)

    def make(rng: np.random.Generator, attempt: int, full: frozenset[str]) -> _Candidate:
        fg = _pick_foreground(rng, groups, full)
        choices = [n for n in backgrounds if n != fg.photo]
        bg_name = choices[int(rng.integers(len(choices)))]
        bg = backgrounds[bg_name]
        oy = int(rng.integers(bg.shape[1] - size + 1))
        ox = int(rng.integers(bg.shape[2] - size + 1))
        canvas = bg[:, oy : oy + size, ox : ox + size].clone()
        fh, fw = fg.image.shape[1:]
        longer = int(rng.integers(lo, hi + 1))
        if fw >= fh:
            w, h = longer, max(1, round(longer * fh / fw))
        else:
            h, w = longer, max(1, round(longer * fw / fh))
        x0, y0 = int(rng.integers(size - w + 1)), int(rng.integers(size - h + 1))
        mask: Tensor | None = None
        rejected: str | None = None
        if fg.alpha is None:
            box = _paste(canvas, fg.image, (x0, y0), (w, h))
        else:
            mask = _paste_cutout(canvas, fg.image, fg.alpha, (x0, y0), (w, h))
            box = _mask_box(mask)
            rejected = None if bool(mask.any()) else "empty_mask"
        source = {
            "foreground": fg.name,
            "photo": fg.photo,
            "crop": list(fg.crop),
            "foreground_confidence": round(fg.confidence, 6),
            "background": bg_name,
            "background_size": [int(bg.shape[1]), int(bg.shape[2])],
            "background_offset": [ox, oy],
            "scale": round(longer / size, 6),
            "position": [x0, y0],
            "size": [w, h],
            "seed": seed,
            "try": attempt,
            "pool": pool,
            "sources": _sources([fg.photo, bg_name]),
        }
        if fg.alpha is not None:
            source["alpha_mask"] = True  # pasted through its alpha; the mask is alpha > 0.5
        return _Candidate("composite", fg.split, canvas, fg.target, box, source, rejected, mask)

    return make


def _grid_maker(
    model: Classifier, foregrounds: list[Foreground], seed: int, pool: str
) -> tuple[_Maker, tuple[int, ...]]:
    size = model.input_size
    groups = _group_by_photo(foregrounds)
    # cell candidates: every foreground crop, and every other photo whole (any confidence)
    cells: dict[str, list[_Cell]] = {
        photo: [_Cell(f.photo, f.crop, f.image, f.target, f.confidence) for f in crops]
        for photo, crops in groups.items()
    }
    for photo, (cls, conf) in _photo_classes(model).items():
        if photo not in cells:
            image = load_photo(photo)
            box = (0, 0, int(image.shape[2]), int(image.shape[1]))
            cells[photo] = [_Cell(photo, box, image, cls, conf)]
    photos = list(cells)
    n_classes = len({c.target for crops in cells.values() for c in crops})
    sizes = tuple(k for k in (2, 3) if min(n_classes, len(photos)) >= k * k)

    def make(rng: np.random.Generator, attempt: int, full: frozenset[str]) -> _Candidate:
        k = sizes[attempt % len(sizes)]
        fg = _pick_foreground(rng, groups, full)
        target_cell = int(rng.integers(k * k))
        chosen: list[_Cell] = []
        used = {fg.target}
        for index in rng.permutation(len(photos)):
            photo = photos[int(index)]
            if photo == fg.photo:
                continue
            options = [c for c in cells[photo] if c.target not in used]
            if not options:
                continue
            cell = options[int(rng.integers(len(options)))]
            chosen.append(cell)
            used.add(cell.target)
            if len(chosen) == k * k - 1:
                break
        target = _Cell(fg.photo, fg.crop, fg.image, fg.target, fg.confidence)
        chosen.insert(target_cell, target)
        canvas, box = _tile([cell.image for cell in chosen], k, size, target_cell)
        source = {
            "grid": k,
            "target_cell": target_cell,
            "photo": fg.photo,
            "cells": [{"photo": c.photo, "crop": list(c.crop), "class": c.target} for c in chosen],
            "seed": seed,
            "try": attempt,
            "pool": pool,
            "sources": _sources([c.photo for c in chosen]),
        }
        rejected = None if len(chosen) == k * k else "too_few_classes"
        return _Candidate(f"grid{k}", fg.split, canvas, fg.target, box, source, rejected)

    return make, sizes


def build_cases(
    kind: str,
    model: Classifier,
    n: int,
    seed: int = 0,
    min_confidence: float = 0.3,
    *,
    max_tries: int | None = None,
    max_per_photo: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    pool: str = "default",
) -> tuple[list[BenchmarkCase], BuildStats]:
    r"""
    Builds up to ``n`` benchmark cases of one kind for ``model``, deterministically from
    ``seed``.

    Candidates are drawn one after another from ``numpy.random.default_rng([seed, kind])``
    and classified in batches; the first ``n`` that pass the keep rule are returned, or
    fewer if ``max_tries`` candidates were drawn first.

    * ``"composites"``: a foreground (:func:`foreground_photos`; a photo uniformly, then one
      of its crops) pasted onto a different photo or texture of :data:`BACKGROUND_PHOTOS`
      (shorter side resized to ``S``, a random ``S x S`` window). The pasted rectangle keeps
      the crop's aspect ratio; its longer side is a uniform integer between 30 % and 70 %
      of ``S``; its position is uniform. Ground truth: the pasted rectangle (a cut-out's
      pixels of alpha > 0.5 in it, see the module docstring). **Kept** when
      the model's probability of the foreground's class on the composite is at least
      ``min_confidence``.
    * ``"grids"``: 2x2 and 3x3 grids alternately (try ``t`` is 3x3 when ``t`` is odd; only
      sizes with enough distinct classes are made). One cell, at a uniform position, holds
      a foreground (the target); each other cell holds a different photo (a foreground
      crop, or a whole photo if it has no foreground), all cells with pairwise distinct
      top-1 classes; every cell is the image stretched to the cell. Ground truth: the
      target's cell. **Kept** when the target is in the model's top-5 on the grid
      (``min_confidence`` is not used).

    Args:
        kind (str): ``"composites"`` or ``"grids"``.
        model (Classifier): The classifier; ``S = model.input_size``.
        n (int): Number of cases wanted (positive).
        seed (int): Random seed.
                    Default: 0
        min_confidence (float): Keep rule of composites, in ``[0, 1]``.
                    Default: 0.3
        max_tries (int, optional): Most candidates drawn.
                    Default: None (``20 * n + 100``)
        max_per_photo (int, optional): Most cases kept per foreground (grids: target)
                    photo. A photo that has reached it is no longer drawn, so that the few
                    photos that survive pasting best do not make up most of the cases;
                    candidates of a full photo already drawn in the same batch are rejected
                    as ``"photo_quota"``. Building stops early when every photo is full.
                    Default: None (no cap for the ``"default"`` pool; for the others, the
                    10 % cap with split quotas of the module docstring)
        progress (callable, optional): Called as ``progress(kept, tried)`` after each
                    batch of candidates (e.g. to update a progress bar).
                    Default: None
        pool (str): The foreground pool, a key of :data:`FOREGROUND_POOLS`.
                    Default: ``"default"``

    Returns:
        tuple[list[BenchmarkCase], BuildStats]: The kept cases in the order drawn, and the
        counts of tried / kept / rejected by reason.

    Raises:
        ValueError: Bad ``kind``, ``n``, ``min_confidence``, ``max_tries`` or ``pool``, or
        the model has too few foregrounds (fewer than two photos; grids need 4 distinct
        classes).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
    if max_tries is None:
        max_tries = 20 * n + 100
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries <= 0:
        raise ValueError(f"max_tries must be a positive int, got {max_tries!r}")
    if max_per_photo is not None and (
        isinstance(max_per_photo, bool) or not isinstance(max_per_photo, int) or max_per_photo <= 0
    ):
        raise ValueError(f"max_per_photo must be a positive int or None, got {max_per_photo!r}")
    pool = _check_pool(pool)
    foregrounds = foreground_photos(model, pool=pool)
    if len({f.photo for f in foregrounds}) < 2:
        raise ValueError(
            f"{model.name} classifies fewer than two bundled photos of pool {pool!r} with "
            "probability >= 0.5; a benchmark needs at least two (one per split)"
        )
    photo_split = {f.photo: f.split for f in foregrounds}
    caps, quotas = _photo_caps(photo_split, n, max_per_photo, pool)
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    if kind == "composites":
        make = _composite_maker(model, foregrounds, seed, pool)
    else:
        make, sizes = _grid_maker(model, foregrounds, seed, pool)
        if not sizes:
            raise ValueError(f"{model.name}: too few distinct classes for a 2x2 grid")

    size = model.input_size
    cases: list[BenchmarkCase] = []
    reasons: Counter[str] = Counter()
    per_kind: Counter[str] = Counter()
    per_photo: Counter[str] = Counter()
    per_split: Counter[str] = Counter()
    n_photos = len(photo_split)
    tried = 0
    while len(cases) < n and tried < max_tries:
        full = frozenset(
            p
            for p, s in photo_split.items()
            if (caps is not None and per_photo[p] >= caps[p])
            or (quotas is not None and per_split[s] >= quotas[s])
        )
        if len(full) == n_photos:
            break
        batch = [make(rng, tried + i, full) for i in range(min(BATCH_SIZE, max_tries - tried))]
        todo = [c for c in batch if c.rejected is None]
        probs = _probabilities(model, torch.stack([c.image for c in todo])) if todo else None
        row = 0
        for candidate in batch:
            tried += 1
            if candidate.rejected is not None:
                reasons[candidate.rejected] += 1
                continue
            assert probs is not None
            p = probs[row]
            row += 1
            confidence = float(p[candidate.target])
            if kind == "composites":
                keep, reason = confidence >= min_confidence, "low_confidence"
            else:
                keep, reason = candidate.target in p.topk(5).indices.tolist(), "not_top5"
            photo = candidate.source["photo"]
            if keep and caps is not None and per_photo[photo] >= caps[photo]:
                keep, reason = False, "photo_quota"
            if (
                keep
                and quotas is not None
                and per_split[candidate.split] >= quotas[candidate.split]
            ):
                keep, reason = False, "split_quota"
            if not keep:
                reasons[reason] += 1
                continue
            per_photo[photo] += 1
            per_split[candidate.split] += 1
            number = per_kind[candidate.kind]
            per_kind[candidate.kind] += 1
            cases.append(
                BenchmarkCase(
                    case_id=f"{candidate.kind}-{number:04d}",
                    kind=candidate.kind,
                    split=candidate.split,
                    image=candidate.image,
                    target=candidate.target,
                    mask=(
                        _box_mask(size, candidate.box) if candidate.mask is None else candidate.mask
                    ),
                    box=candidate.box,
                    confidence=confidence,
                    source=candidate.source,
                )
            )
            if len(cases) == n:
                break
        if progress is not None:
            progress(len(cases), tried)
    stats = BuildStats(
        tried=tried,
        kept=len(cases),
        per_reason=dict(reasons),
        per_kind=dict(per_kind),
        per_split=dict(Counter(c.split for c in cases)),
    )
    return cases, stats


def _photo_caps(
    photo_split: dict[str, str], n: int, max_per_photo: int | None, pool: str
) -> tuple[dict[str, int] | None, dict[str, int] | None]:
    """The most cases per photo and per split: ``max_per_photo`` if given; else none for
    the default pool, and the 10 % cap with split quotas for the others."""
    if max_per_photo is not None:
        return {p: max_per_photo for p in photo_split}, None
    if pool == "default":
        return None, None
    n_tune = round(n * sum(s == "tune" for s in photo_split.values()) / len(photo_split))
    quotas = {"tune": n_tune, "test": n - n_tune}
    caps = {p: max(1, math.floor(PHOTO_SHARE * quotas[s])) for p, s in photo_split.items()}
    return caps, quotas


def _crop(photo: str, crop: Sequence[int]) -> Tensor:
    x0, y0, x1, y1 = (int(v) for v in crop)
    return load_photo(photo)[:, y0:y1, x0:x1]


def case_from_record(record: dict[str, Any], size: int, pool: str | None = None) -> BenchmarkCase:
    r"""
    Rebuilds a kept case from its ``case`` record, without the model.

    A case depends on the model only through the keep rule; its image follows from the
    provenance :func:`build_cases` stores in ``source`` (photos, crops, offsets, sizes), so
    the ``case`` records of a benchmark run (``captum-gfi evaluate --dataset
    composites|grids``) are enough to rebuild its cases, e.g. on another machine, in
    seconds instead of classifying thousands of candidates again. With the same photo files
    and PyTorch's CPU resize, the image is the one :func:`build_cases` made.

    Args:
        record (dict): A ``case`` record (keys ``item``, ``kind``, ``split``, ``target``,
                    ``confidence``, ``box``, ``source``).
        size (int): The model's input size ``S`` the case was built for.
        pool (str, optional): The pool the case must come from; the record's own
                    (``source["pool"]``, ``"default"`` for records written before pools
                    existed) is what rebuilds it.
                    Default: None (any pool)

    Returns:
        BenchmarkCase: The case, with the recorded ``confidence`` (not recomputed).

    Raises:
        ValueError: ``record`` is not a composite or grid case record, comes from another
        pool than ``pool``, or its rebuilt ground truth does not match the recorded box.
    """
    kind, source = record.get("kind"), record.get("source")
    if record.get("record", "case") != "case" or not isinstance(source, dict):
        raise ValueError(f"record must be a 'case' record with a 'source', got {record!r:.200}")
    recorded_pool = source.get("pool", "default")
    if pool is not None and _check_pool(pool) != recorded_pool:
        raise ValueError(
            f"{record.get('item')}: the record comes from pool {recorded_pool!r}, not {pool!r}"
        )
    mask: Tensor | None = None
    if kind == "composite":
        bg = _cover(load_photo(source["background"]), size)
        if list(bg.shape[1:]) != list(source["background_size"]):
            raise ValueError(
                f"{record['item']}: background {source['background']} covers "
                f"{tuple(bg.shape[1:])}, the record says {tuple(source['background_size'])}"
            )
        ox, oy = source["background_offset"]
        canvas = bg[:, oy : oy + size, ox : ox + size].clone()
        crop = _crop(source["photo"], source["crop"])
        if source.get("alpha_mask"):
            alpha = load_alpha(source["photo"])
            if alpha is None:
                raise ValueError(f"{record['item']}: photo {source['photo']} has no alpha")
            x0, y0, x1, y1 = (int(v) for v in source["crop"])
            mask = _paste_cutout(
                canvas, crop, alpha[y0:y1, x0:x1], source["position"], source["size"]
            )
            box = _mask_box(mask)
        else:
            box = _paste(canvas, crop, source["position"], source["size"])
    elif kind in ("grid2", "grid3"):
        images = [_crop(cell["photo"], cell["crop"]) for cell in source["cells"]]
        canvas, box = _tile(images, int(source["grid"]), size, int(source["target_cell"]))
    else:
        raise ValueError(f"record {record.get('item')!r}: kind {kind!r} is not a benchmark case")
    if "box" in record and tuple(record["box"]) != box:
        raise ValueError(f"{record['item']}: rebuilt box {box} != recorded {tuple(record['box'])}")
    return BenchmarkCase(
        case_id=str(record["item"]),
        kind=str(kind),
        split=str(record["split"]),
        image=canvas,
        target=int(record["target"]),
        mask=_box_mask(size, box) if mask is None else mask,
        box=box,
        confidence=float(record["confidence"]),
        source=source,
    )


# --------------------------------------------------------------------------- summary


def describe(
    model: Classifier,
    n_composites: int = 200,
    n_grids: int = 200,
    seed: int = 0,
    max_per_photo: int | None = None,
    pool: str = "default",
) -> dict[str, Any]:
    r"""
    A JSON-serialisable summary of the benchmark data for ``model``: its foreground photos
    and classes per split, and the tried / kept / rejected counts of both kinds.

    Args:
        model (Classifier): The classifier.
        n_composites (int): Composites to build (0 skips them).
                    Default: 200
        n_grids (int): Grids to build (0 skips them).
                    Default: 200
        seed (int): Random seed.
                    Default: 0
        max_per_photo (int, optional): See :func:`build_cases`.
                    Default: None
        pool (str): See :func:`build_cases`.
                    Default: ``"default"``

    Returns:
        dict[str, Any]: ``{"model", "pool", "input_size", "foreground_crops", "foreground_photos":
        {photo: {"split", "crops", "classes"}}, "classes", "composites", "grids"}`` where
        each kind holds ``tried``, ``kept``, ``kept_per_photo`` (by foreground / target
        photo), ``per_reason``, ``per_kind``, ``per_split`` and ``seconds``.
    """
    start = time.perf_counter()
    foregrounds = foreground_photos(model, pool=pool)
    summary: dict[str, Any] = {
        "model": model.name,
        "pool": pool,
        "input_size": model.input_size,
        "foreground_seconds": round(time.perf_counter() - start, 2),
        "foreground_crops": len(foregrounds),
        "foreground_photos": {
            photo: {
                "split": crops[0].split,
                "crops": len(crops),
                "classes": sorted({model.categories[f.target] for f in crops}),
            }
            for photo, crops in _group_by_photo(foregrounds).items()
        },
        "classes": len({f.target for f in foregrounds}),
    }
    for kind, n in (("composites", n_composites), ("grids", n_grids)):
        if n <= 0:
            continue
        start = time.perf_counter()
        cases, stats = build_cases(kind, model, n, seed, max_per_photo=max_per_photo, pool=pool)
        summary[kind] = {
            "tried": stats.tried,
            "kept": stats.kept,
            "kept_per_photo": dict(Counter(c.source["photo"] for c in cases).most_common()),
            "per_reason": stats.per_reason,
            "per_kind": stats.per_kind,
            "per_split": stats.per_split,
            "seconds": round(time.perf_counter() - start, 2),
        }
    return summary
