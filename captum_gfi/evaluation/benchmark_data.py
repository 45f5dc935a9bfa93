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
:data:`captum_gfi.evaluation.photos.PHOTO_FILES` (files that ship in installed wheels).

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

from .photos import PHOTO_FILES, available_photos, load_photo, photo_boxes

__all__ = [
    "BACKGROUND_PHOTOS",
    "FOREGROUND_CANDIDATES",
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

    model: nn.Module  # the raw network (the per-model caches are keyed on it)
    classifier: nn.Module  # the network taking images in [0, 1]
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

#: Every photo may be a background (a composite never uses its foreground's own photo).
BACKGROUND_PHOTOS: tuple[str, ...] = tuple(PHOTO_FILES)

#: Side of the pasted foreground's longer edge, as a fraction of the canvas side.
SCALE_RANGE: tuple[float, float] = (0.3, 0.7)
#: Candidates classified per forward pass: depthwise convolutions on one CPU thread are
#: fastest in small batches.
BATCH_SIZE = 8

KINDS = ("composites", "grids")


# --------------------------------------------------------------------------- photos


def candidate_crops(name: str, height: int, width: int) -> list[Box]:
    r"""
    The rectangle crops of a photo tried as foregrounds.

    The whole photo; windows of 0.8, 0.6 and 0.4 of each side at the 3 x 3 positions
    (corners, edge middles, centre); and the photo's annotated boxes (:func:`photo_boxes`).
    Every crop keeps the photo's aspect ratio except the annotated boxes.

    Args:
        name (str): A key of :data:`PHOTO_FILES`.
        height (int): The photo's height in pixels.
        width (int): The photo's width in pixels.

    Returns:
        list[tuple[int, int, int, int]]: ``(x0, y0, x1, y1)`` boxes, ``x1``/``y1`` exclusive.
    """
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
    """

    name: str
    photo: str
    crop: Box
    image: Tensor = field(repr=False)
    target: int
    confidence: float
    split: str


@dataclass(frozen=True)
class _Cell:
    """A grid-cell candidate: a foreground crop or a whole non-foreground photo."""

    photo: str
    crop: Box
    image: Tensor
    target: int
    confidence: float


# model.model -> {(input size, min_confidence): foregrounds}; and the whole-photo classes
_FOREGROUND_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[int, float], list[Foreground]]] = (
    weakref.WeakKeyDictionary()
)
_PHOTO_CLASS_CACHE: weakref.WeakKeyDictionary[Any, dict[int, dict[str, tuple[int, float]]]] = (
    weakref.WeakKeyDictionary()
)


def foreground_photos(model: Classifier, min_confidence: float = 0.5) -> list[Foreground]:
    r"""
    The foregrounds of the benchmark for ``model``: the crops of
    :data:`FOREGROUND_CANDIDATES` (:func:`candidate_crops`) whose top-1 probability is at
    least ``min_confidence``, each labelled with that top-1 class.

    Each crop is classified stretched to the model's ``input_size`` square (with
    :func:`resize_image`), in batches. The result is cached per model.

    Args:
        model (Classifier): The classifier, see :func:`captum_gfi.demo.models.load_model`.
        min_confidence (float): Minimum top-1 probability of a kept crop.
                    Default: 0.5

    Returns:
        list[Foreground]: In the order of :data:`FOREGROUND_CANDIDATES` and
        :func:`candidate_crops`; ``split`` is set by :func:`assign_splits` over the kept
        photos.
    """
    if not isinstance(model, Classifier):
        raise TypeError(
            "model must be a captum_gfi.demo.models.LoadedModel (or have its model, classifier, "
            f"name, input_size and categories), got {type(model).__name__}"
        )
    if not 0.0 < min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in (0, 1], got {min_confidence!r}")
    size = model.input_size
    cache = _FOREGROUND_CACHE.setdefault(model.model, {})
    key = (size, float(min_confidence))
    if key in cache:
        return list(cache[key])
    crops: list[tuple[str, Box, Tensor]] = []
    for photo in available_photos(FOREGROUND_CANDIDATES):
        image = load_photo(photo)
        for box in candidate_crops(photo, image.shape[1], image.shape[2]):
            x0, y0, x1, y1 = box
            crops.append((photo, box, image[:, y0:y1, x0:x1]))
    inputs = torch.stack([resize_image(c[2], (size, size)) for c in crops])
    confidence, top1 = _probabilities(model, inputs).max(dim=1)
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
                    position, seed, try index).
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
                    ``"photo_quota"`` (``max_per_photo``).
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


def _paste(canvas: Tensor, image: Tensor, position: Sequence[int], size: Sequence[int]) -> Box:
    """Pastes ``image`` resized to ``size`` = (w, h) at ``position`` = (x0, y0) of
    ``canvas`` (in place); returns the pasted box."""
    (x0, y0), (w, h) = position, size
    canvas[:, y0 : y0 + h, x0 : x0 + w] = resize_image(image, (h, w))
    return (x0, y0, x0 + w, y0 + h)


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


def _composite_maker(model: Classifier, foregrounds: list[Foreground], seed: int) -> _Maker:
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
        box = _paste(canvas, fg.image, (x0, y0), (w, h))
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
        }
        return _Candidate("composite", fg.split, canvas, fg.target, box, source)

    return make


def _grid_maker(
    model: Classifier, foregrounds: list[Foreground], seed: int
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
      of ``S``; its position is uniform. Ground truth: the pasted rectangle. **Kept** when
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
                    Default: None (no cap; photos drawn uniformly)
        progress (callable, optional): Called as ``progress(kept, tried)`` after each
                    batch of candidates (e.g. to update a progress bar).
                    Default: None

    Returns:
        tuple[list[BenchmarkCase], BuildStats]: The kept cases in the order drawn, and the
        counts of tried / kept / rejected by reason.

    Raises:
        ValueError: Bad ``kind``, ``n``, ``min_confidence`` or ``max_tries``, or the model
        has too few foregrounds (fewer than two photos; grids need 4 distinct classes).
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
    foregrounds = foreground_photos(model)
    if len({f.photo for f in foregrounds}) < 2:
        raise ValueError(
            f"{model.name} classifies fewer than two bundled photos with probability >= 0.5; "
            "a benchmark needs at least two (one per split)"
        )
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    if kind == "composites":
        make = _composite_maker(model, foregrounds, seed)
    else:
        make, sizes = _grid_maker(model, foregrounds, seed)
        if not sizes:
            raise ValueError(f"{model.name}: too few distinct classes for a 2x2 grid")

    size = model.input_size
    cases: list[BenchmarkCase] = []
    reasons: Counter[str] = Counter()
    per_kind: Counter[str] = Counter()
    per_photo: Counter[str] = Counter()
    n_photos = len({f.photo for f in foregrounds})
    tried = 0
    while len(cases) < n and tried < max_tries:
        cap = max_per_photo
        full = frozenset(p for p, k in per_photo.items() if cap is not None and k >= cap)
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
            if keep and max_per_photo is not None and per_photo[photo] >= max_per_photo:
                keep, reason = False, "photo_quota"
            if not keep:
                reasons[reason] += 1
                continue
            per_photo[photo] += 1
            number = per_kind[candidate.kind]
            per_kind[candidate.kind] += 1
            cases.append(
                BenchmarkCase(
                    case_id=f"{candidate.kind}-{number:04d}",
                    kind=candidate.kind,
                    split=candidate.split,
                    image=candidate.image,
                    target=candidate.target,
                    mask=_box_mask(size, candidate.box),
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


def _crop(photo: str, crop: Sequence[int]) -> Tensor:
    x0, y0, x1, y1 = (int(v) for v in crop)
    return load_photo(photo)[:, y0:y1, x0:x1]


def case_from_record(record: dict[str, Any], size: int) -> BenchmarkCase:
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

    Returns:
        BenchmarkCase: The case, with the recorded ``confidence`` (not recomputed).

    Raises:
        ValueError: ``record`` is not a composite or grid case record, or its rebuilt
        ground truth does not match the recorded box.
    """
    kind, source = record.get("kind"), record.get("source")
    if record.get("record", "case") != "case" or not isinstance(source, dict):
        raise ValueError(f"record must be a 'case' record with a 'source', got {record!r:.200}")
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
        mask=_box_mask(size, box),
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

    Returns:
        dict[str, Any]: ``{"model", "input_size", "foreground_crops", "foreground_photos":
        {photo: {"split", "crops", "classes"}}, "classes", "composites", "grids"}`` where
        each kind holds ``tried``, ``kept``, ``kept_per_photo`` (by foreground / target
        photo), ``per_reason``, ``per_kind``, ``per_split`` and ``seconds``.
    """
    start = time.perf_counter()
    foregrounds = foreground_photos(model)
    summary: dict[str, Any] = {
        "model": model.name,
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
        cases, stats = build_cases(kind, model, n, seed, max_per_photo=max_per_photo)
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
