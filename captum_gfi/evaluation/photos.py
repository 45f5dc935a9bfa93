"""The one registry of bundled photos: every real photograph the package uses.

Each photo is a file that ships inside an installed package's wheel, so nothing is ever
downloaded: scikit-image's bundled files (the ``demo`` and ``test`` extras), scikit-learn's
two sample images, matplotlib's ``grace_hopper.jpg`` and imgaug's ``quokka.jpg`` (with the
box of ``quokka_annotations.json``). imgaug is never imported (it does not import with
numpy 2): its files are located with :func:`importlib.util.find_spec`.

The benchmark's large foreground pool adds photos of three more packages that the
registries serve, none of them ever imported (located like imgaug's) and none required:
the 20 ImageNet photos of PyPI ``foolbox`` (``foolbox/data``), the 5 test photos of PyPI
``sporco`` (``sporco/data``) and 100 photo cut-outs (RGBA, transparent around the object)
of Debian's ``tuxpaint-stamps-default`` (``/usr/share/tuxpaint/stamps``). A photo whose
package is absent is simply not in :func:`available_photos`. :data:`PHOTO_SOURCES` says
where each package comes from (PyPI or Debian), the version its photos were surveyed at
(``research/photo_pool_survey.py``) and :func:`installed_version` the version installed,
which :func:`photo_source` puts in the benchmark's case records.

Who reads it: the exact-ground-truth cases (:mod:`~captum_gfi.evaluation.benchmark_data`),
the ``photos`` data set of ``captum-gfi evaluate``
(:func:`~captum_gfi.evaluation.datasets.bundled_photos`), the ``sample:NAME`` images of
``captum-gfi explain`` (:mod:`captum_gfi.demo.photos`) and ``bench --agreement``. To add a
photo, add one entry to :data:`PHOTO_FILES`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASET_PHOTOS",
    "PHOTO_FILES",
    "PHOTO_SOURCES",
    "PhotoSource",
    "alpha_box",
    "available_photos",
    "installed_version",
    "is_cutout",
    "load_alpha",
    "load_photo",
    "photo_boxes",
    "photo_path",
    "photo_source",
    "photos_of",
]

Box = tuple[int, int, int, int]

#: Photo name -> (package, file inside the package's data folder). Only files that ship in
#: the packages' wheels or Debian packages; nothing is fetched. ``package`` is a key of
#: :data:`PHOTO_SOURCES`.
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
    # the large foreground pool (benchmark_data.FOREGROUND_POOLS["large"]): ImageNet photos of
    # foolbox's data folder, sporco's test photos, and tuxpaint-stamps-default's photo
    # cut-outs (RGBA; no drawings, no mirrored copies), see research/photo_pool_survey.json
    "foolbox:imagenet_00_243": ("foolbox", "imagenet_00_243.jpg"),
    "foolbox:imagenet_01_559": ("foolbox", "imagenet_01_559.jpg"),
    "foolbox:imagenet_02_438": ("foolbox", "imagenet_02_438.jpg"),
    "foolbox:imagenet_03_990": ("foolbox", "imagenet_03_990.jpg"),
    "foolbox:imagenet_04_949": ("foolbox", "imagenet_04_949.jpg"),
    "foolbox:imagenet_05_853": ("foolbox", "imagenet_05_853.jpg"),
    "foolbox:imagenet_06_609": ("foolbox", "imagenet_06_609.jpg"),
    "foolbox:imagenet_07_609": ("foolbox", "imagenet_07_609.jpg"),
    "foolbox:imagenet_08_915": ("foolbox", "imagenet_08_915.jpg"),
    "foolbox:imagenet_09_455": ("foolbox", "imagenet_09_455.jpg"),
    "foolbox:imagenet_10_541": ("foolbox", "imagenet_10_541.jpg"),
    "foolbox:imagenet_11_630": ("foolbox", "imagenet_11_630.jpg"),
    "foolbox:imagenet_12_741": ("foolbox", "imagenet_12_741.jpg"),
    "foolbox:imagenet_13_471": ("foolbox", "imagenet_13_471.jpg"),
    "foolbox:imagenet_14_129": ("foolbox", "imagenet_14_129.jpg"),
    "foolbox:imagenet_15_99": ("foolbox", "imagenet_15_99.jpg"),
    "foolbox:imagenet_16_251": ("foolbox", "imagenet_16_251.jpg"),
    "foolbox:imagenet_17_22": ("foolbox", "imagenet_17_22.jpg"),
    "foolbox:imagenet_18_317": ("foolbox", "imagenet_18_317.jpg"),
    "foolbox:imagenet_19_305": ("foolbox", "imagenet_19_305.jpg"),
    "sporco:barbara": ("sporco", "barbara.png"),
    "sporco:kodim23": ("sporco", "kodim23.png"),
    "sporco:monarch": ("sporco", "monarch.png"),
    "sporco:sail": ("sporco", "sail.png"),
    "sporco:tulips": ("sporco", "tulips.png"),
    "tuxpaint:frog-1": ("tuxpaint-stamps-default", "animals/amphibians/frog-1.png"),
    "tuxpaint:frog": ("tuxpaint-stamps-default", "animals/amphibians/frog.png"),
    "tuxpaint:duck": ("tuxpaint-stamps-default", "animals/birds/duck.png"),
    "tuxpaint:gander": ("tuxpaint-stamps-default", "animals/birds/gander.png"),
    "tuxpaint:guineafowl": ("tuxpaint-stamps-default", "animals/birds/guineafowl.png"),
    "tuxpaint:hen": ("tuxpaint-stamps-default", "animals/birds/hen.png"),
    "tuxpaint:heron_greatblue_flying": (
        "tuxpaint-stamps-default",
        "animals/birds/heron_greatblue_flying.png",
    ),
    "tuxpaint:lark": ("tuxpaint-stamps-default", "animals/birds/lark.png"),
    "tuxpaint:owl": ("tuxpaint-stamps-default", "animals/birds/owl.png"),
    "tuxpaint:peacock": ("tuxpaint-stamps-default", "animals/birds/peacock.png"),
    "tuxpaint:pelican": ("tuxpaint-stamps-default", "animals/birds/pelican.png"),
    "tuxpaint:pink_flamingo": ("tuxpaint-stamps-default", "animals/birds/pink_flamingo.png"),
    "tuxpaint:rooster": ("tuxpaint-stamps-default", "animals/birds/rooster.png"),
    "tuxpaint:tucan": ("tuxpaint-stamps-default", "animals/birds/tucan.png"),
    "tuxpaint:turkey": ("tuxpaint-stamps-default", "animals/birds/turkey.png"),
    "tuxpaint:vulture": ("tuxpaint-stamps-default", "animals/birds/vulture.png"),
    "tuxpaint:Brown_slug": ("tuxpaint-stamps-default", "animals/insects/Brown_slug.png"),
    "tuxpaint:Woodlouse": ("tuxpaint-stamps-default", "animals/insects/Woodlouse.png"),
    "tuxpaint:fly": ("tuxpaint-stamps-default", "animals/insects/fly.png"),
    "tuxpaint:grasshopper": ("tuxpaint-stamps-default", "animals/insects/grasshopper.png"),
    "tuxpaint:mantis": ("tuxpaint-stamps-default", "animals/insects/mantis.png"),
    "tuxpaint:chimp": ("tuxpaint-stamps-default", "animals/mammals/apes/chimp.png"),
    "tuxpaint:gorilla": ("tuxpaint-stamps-default", "animals/mammals/apes/gorilla.png"),
    "tuxpaint:orca": ("tuxpaint-stamps-default", "animals/mammals/aquatic/orca.png"),
    "tuxpaint:otter": ("tuxpaint-stamps-default", "animals/mammals/aquatic/otter.png"),
    "tuxpaint:sea_lion": ("tuxpaint-stamps-default", "animals/mammals/aquatic/sea_lion.png"),
    "tuxpaint:bear": ("tuxpaint-stamps-default", "animals/mammals/bears/bear.png"),
    "tuxpaint:european-bear": (
        "tuxpaint-stamps-default",
        "animals/mammals/bears/european-bear.png",
    ),
    "tuxpaint:edward_bear": (
        "tuxpaint-stamps-default",
        "animals/mammals/bears/toys/edward_bear.png",
    ),
    "tuxpaint:bison": ("tuxpaint-stamps-default", "animals/mammals/bovines/bison.png"),
    "tuxpaint:bull": ("tuxpaint-stamps-default", "animals/mammals/bovines/bull.png"),
    "tuxpaint:cow": ("tuxpaint-stamps-default", "animals/mammals/bovines/cow.png"),
    "tuxpaint:gnu-baby": ("tuxpaint-stamps-default", "animals/mammals/bovines/gnu-baby.png"),
    "tuxpaint:mountaingoat": (
        "tuxpaint-stamps-default",
        "animals/mammals/bovines/mountaingoat.png",
    ),
    "tuxpaint:ram": ("tuxpaint-stamps-default", "animals/mammals/bovines/ram.png"),
    "tuxpaint:sheep": ("tuxpaint-stamps-default", "animals/mammals/bovines/sheep.png"),
    "tuxpaint:yak": ("tuxpaint-stamps-default", "animals/mammals/bovines/yak.png"),
    "tuxpaint:zebu": ("tuxpaint-stamps-default", "animals/mammals/bovines/zebu.png"),
    "tuxpaint:camel": ("tuxpaint-stamps-default", "animals/mammals/camel/camel.png"),
    "tuxpaint:dromedary": ("tuxpaint-stamps-default", "animals/mammals/camel/dromedary.png"),
    "tuxpaint:tiger": ("tuxpaint-stamps-default", "animals/mammals/cats/tiger.png"),
    "tuxpaint:tiger_sumatran": (
        "tuxpaint-stamps-default",
        "animals/mammals/cats/tiger_sumatran.png",
    ),
    "tuxpaint:caribou": ("tuxpaint-stamps-default", "animals/mammals/deer/caribou.png"),
    "tuxpaint:wapiti": ("tuxpaint-stamps-default", "animals/mammals/deer/wapiti.png"),
    "tuxpaint:dingo": ("tuxpaint-stamps-default", "animals/mammals/dogs/dingo.png"),
    "tuxpaint:horse": ("tuxpaint-stamps-default", "animals/mammals/equines/horse.png"),
    "tuxpaint:zebra": ("tuxpaint-stamps-default", "animals/mammals/equines/zebra.png"),
    "tuxpaint:pig": ("tuxpaint-stamps-default", "animals/mammals/pig.png"),
    "tuxpaint:pig_golden": ("tuxpaint-stamps-default", "animals/mammals/pig_golden.png"),
    "tuxpaint:pig_golden2": ("tuxpaint-stamps-default", "animals/mammals/pig_golden2.png"),
    "tuxpaint:rabbit_little": ("tuxpaint-stamps-default", "animals/mammals/rabbit_little.png"),
    "tuxpaint:beaver": ("tuxpaint-stamps-default", "animals/mammals/rodents/beaver.png"),
    "tuxpaint:rabbit-2": ("tuxpaint-stamps-default", "animals/mammals/rodents/rabbit-2.png"),
    "tuxpaint:rabbit": ("tuxpaint-stamps-default", "animals/mammals/rodents/rabbit.png"),
    "tuxpaint:squirrel": ("tuxpaint-stamps-default", "animals/mammals/rodents/squirrel.png"),
    "tuxpaint:wildboar": ("tuxpaint-stamps-default", "animals/mammals/wildboar.png"),
    "tuxpaint:koala": ("tuxpaint-stamps-default", "animals/marsupials/koala.png"),
    "tuxpaint:wombat": ("tuxpaint-stamps-default", "animals/marsupials/wombat.png"),
    "tuxpaint:abalone": ("tuxpaint-stamps-default", "animals/shellfish/abalone.png"),
    "tuxpaint:Strawberry2": ("tuxpaint-stamps-default", "food/fruit/Strawberry2.png"),
    "tuxpaint:cherimoya": ("tuxpaint-stamps-default", "food/fruit/cherimoya.png"),
    "tuxpaint:broccoli": ("tuxpaint-stamps-default", "food/vegetables/broccoli.png"),
    "tuxpaint:binoculars": ("tuxpaint-stamps-default", "hobbies/binoculars.png"),
    "tuxpaint:camera_35mm": ("tuxpaint-stamps-default", "hobbies/camera_35mm.png"),
    "tuxpaint:trumpet": ("tuxpaint-stamps-default", "hobbies/music/brass/trumpet.png"),
    "tuxpaint:cymbal_crash": (
        "tuxpaint-stamps-default",
        "hobbies/music/percussion/cymbal_crash.png",
    ),
    "tuxpaint:drum_tomtom_floor": (
        "tuxpaint-stamps-default",
        "hobbies/music/percussion/drum_tomtom_floor.png",
    ),
    "tuxpaint:drumkit": ("tuxpaint-stamps-default", "hobbies/music/percussion/drumkit.png"),
    "tuxpaint:cello": ("tuxpaint-stamps-default", "hobbies/music/string/cello.png"),
    "tuxpaint:guitar2": ("tuxpaint-stamps-default", "hobbies/music/string/guitar2.png"),
    "tuxpaint:guitar_classical": (
        "tuxpaint-stamps-default",
        "hobbies/music/string/guitar_classical.png",
    ),
    "tuxpaint:guitar_electric": (
        "tuxpaint-stamps-default",
        "hobbies/music/string/guitar_electric.png",
    ),
    "tuxpaint:guitar_electric_bass": (
        "tuxpaint-stamps-default",
        "hobbies/music/string/guitar_electric_bass.png",
    ),
    "tuxpaint:Lightbulb": ("tuxpaint-stamps-default", "household/Lightbulb.png"),
    "tuxpaint:toilet": ("tuxpaint-stamps-default", "household/toilet.png"),
    "tuxpaint:wrench_plumbers": ("tuxpaint-stamps-default", "household/tools/wrench_plumbers.png"),
    "tuxpaint:wheelie_bin": ("tuxpaint-stamps-default", "household/wheelie_bin.png"),
    "tuxpaint:final-roll-call": ("tuxpaint-stamps-default", "military/final-roll-call.png"),
    "tuxpaint:paratrooper": ("tuxpaint-stamps-default", "military/paratrooper.png"),
    "tuxpaint:bradley": ("tuxpaint-stamps-default", "military/vehicles/bradley.png"),
    "tuxpaint:f22_raptor": ("tuxpaint-stamps-default", "military/vehicles/f22_raptor.png"),
    "tuxpaint:infantry-stryker": (
        "tuxpaint-stamps-default",
        "military/vehicles/infantry-stryker.png",
    ),
    "tuxpaint:eggplant": ("tuxpaint-stamps-default", "plants/eggplant.png"),
    "tuxpaint:flower1": ("tuxpaint-stamps-default", "plants/flowers/flower1.png"),
    "tuxpaint:flower8": ("tuxpaint-stamps-default", "plants/flowers/flower8.png"),
    "tuxpaint:flower9": ("tuxpaint-stamps-default", "plants/flowers/flower9.png"),
    "tuxpaint:pigface": ("tuxpaint-stamps-default", "plants/flowers/pigface.png"),
    "tuxpaint:chuvanna_plastic_poo": (
        "tuxpaint-stamps-default",
        "plants/flowers/plastic/chuvanna_plastic_poo.png",
    ),
    "tuxpaint:rose": ("tuxpaint-stamps-default", "plants/flowers/rose.png"),
    "tuxpaint:yellow-flower": ("tuxpaint-stamps-default", "plants/flowers/yellow-flower.png"),
    "tuxpaint:cep-1": ("tuxpaint-stamps-default", "plants/mushrooms/cep-1.png"),
    "tuxpaint:cep-2": ("tuxpaint-stamps-default", "plants/mushrooms/cep-2.png"),
    "tuxpaint:cep": ("tuxpaint-stamps-default", "plants/mushrooms/cep.png"),
    "tuxpaint:pink_tricycle": ("tuxpaint-stamps-default", "vehicles/cycle/pink_tricycle.png"),
    "tuxpaint:firetruck": ("tuxpaint-stamps-default", "vehicles/emergency/firetruck.png"),
    "tuxpaint:balloon360": ("tuxpaint-stamps-default", "vehicles/flight/balloon360.png"),
    "tuxpaint:747": ("tuxpaint-stamps-default", "vehicles/flight/planes/747.png"),
    "tuxpaint:garbagetruck": ("tuxpaint-stamps-default", "vehicles/garbagetruck.png"),
    "tuxpaint:green_korean_bus": (
        "tuxpaint-stamps-default",
        "vehicles/masstransit/green_korean_bus.png",
    ),
    "tuxpaint:walnutBoat": ("tuxpaint-stamps-default", "vehicles/ship/walnutBoat.png"),
}


@dataclass(frozen=True)
class PhotoSource:
    r"""
    Where the photos of one package of :data:`PHOTO_FILES` come from.

    Args:
        kind (str): ``"pypi"`` (a wheel installed in the Python environment) or ``"deb"``
                    (a Debian package installed with ``apt-get``).
        distribution (str): The name the registry serves it under (``pip install`` /
                    ``apt-get install`` name), e.g. ``"scikit-image"``.
        surveyed (str, optional): The version its photos were chosen at; None for the
                    packages of the test extra (not pinned).
        folder (str): The photos' folder: for ``"pypi"``, inside the top-level module
                    ``module``; for ``"deb"``, an absolute path of the package's files.
        module (str): The top-level module of a ``"pypi"`` package (located with
                    :func:`importlib.util.find_spec`, never imported); ``""`` for ``"deb"``.
        cutout (bool): The photos are cut-outs with an alpha channel (transparent around
                    the object): :func:`load_photo` composites them over white and
                    :func:`load_alpha` gives their alpha.
    """

    kind: str
    distribution: str
    surveyed: str | None
    folder: str
    module: str = ""
    cutout: bool = False


#: Package of :data:`PHOTO_FILES` -> its source.
PHOTO_SOURCES: dict[str, PhotoSource] = {
    "skimage": PhotoSource("pypi", "scikit-image", None, "data", "skimage"),
    "sklearn": PhotoSource("pypi", "scikit-learn", None, "datasets/images", "sklearn"),
    "matplotlib": PhotoSource("pypi", "matplotlib", None, "mpl-data/sample_data", "matplotlib"),
    "imgaug": PhotoSource("pypi", "imgaug", None, "", "imgaug"),
    "foolbox": PhotoSource("pypi", "foolbox", "3.3.4", "data", "foolbox"),
    "sporco": PhotoSource("pypi", "sporco", "0.2.2.post1", "data", "sporco"),
    "tuxpaint-stamps-default": PhotoSource(
        "deb",
        "tuxpaint-stamps-default",
        "2022.06.04-1",
        "/usr/share/tuxpaint/stamps",
        cutout=True,
    ),
}

#: Root of the Debian packages' files (tests point it at a temporary folder).
DEB_ROOT = Path("/")
#: dpkg's database of installed Debian packages, read by :func:`installed_version`.
DPKG_STATUS = Path("/var/lib/dpkg/status")

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
    source = PHOTO_SOURCES[package]
    if source.kind == "deb":
        return DEB_ROOT / source.folder.lstrip("/") / file_name
    return _package_dir(source.module) / source.folder / file_name


def is_cutout(name: str) -> bool:
    """Whether photo ``name`` is a cut-out with an alpha channel (:attr:`PhotoSource.cutout`)."""
    if name not in PHOTO_FILES:
        raise ValueError(f"name must be one of {sorted(PHOTO_FILES)}, got {name!r}")
    return PHOTO_SOURCES[PHOTO_FILES[name][0]].cutout


def photos_of(packages: Sequence[str]) -> tuple[str, ...]:
    r"""
    The photos of :data:`PHOTO_FILES` that ``packages`` ship, in the registry's order.

    Args:
        packages (Sequence[str]): Keys of :data:`PHOTO_SOURCES`.

    Returns:
        tuple[str, ...]: Photo names (installed or not, see :func:`available_photos`).
    """
    unknown = sorted(set(packages) - set(PHOTO_SOURCES))
    if unknown:
        raise ValueError(
            f"packages must be keys of PHOTO_SOURCES {sorted(PHOTO_SOURCES)}, got {unknown}"
        )
    return tuple(n for n, (package, _) in PHOTO_FILES.items() if package in packages)


def _dpkg_version(package: str) -> str | None:
    try:
        text = DPKG_STATUS.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line[:1].isspace():
                fields[key] = value.strip()
        if fields.get("Package") == package and fields.get("Status", "").endswith(" installed"):
            return fields.get("Version")
    return None


@cache
def installed_version(package: str) -> str | None:
    r"""
    The installed version of a package of :data:`PHOTO_SOURCES`: from
    :func:`importlib.metadata.version` for PyPI packages, from dpkg's status database
    (:data:`DPKG_STATUS`) for Debian packages. Cached (``installed_version.cache_clear()``
    after installing one).

    Args:
        package (str): A key of :data:`PHOTO_SOURCES`, e.g. ``"foolbox"``.

    Returns:
        str or None: The version, or None if the package is not installed.
    """
    if package not in PHOTO_SOURCES:
        raise ValueError(f"package must be one of {sorted(PHOTO_SOURCES)}, got {package!r}")
    source = PHOTO_SOURCES[package]
    if source.kind == "deb":
        return _dpkg_version(source.distribution)
    try:
        return importlib.metadata.version(source.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def photo_source(name: str) -> dict[str, str | None]:
    r"""
    The provenance of photo ``name``, as the benchmark's case records store it.

    Args:
        name (str): A key of :data:`PHOTO_FILES`.

    Returns:
        dict: ``{"kind": "pypi" | "deb", "package": registry name, "version": installed
        version (None if not installed), "file": path of the file inside the package}``,
        e.g. ``{"kind": "deb", "package": "tuxpaint-stamps-default", "version":
        "2022.06.04-1", "file": "/usr/share/tuxpaint/stamps/animals/birds/duck.png"}``.
    """
    if name not in PHOTO_FILES:
        raise ValueError(f"name must be one of {sorted(PHOTO_FILES)}, got {name!r}")
    package, file_name = PHOTO_FILES[name]
    source = PHOTO_SOURCES[package]
    if source.kind == "deb":
        file = f"{source.folder.rstrip('/')}/{file_name}"
    else:
        file = "/".join(p for p in (source.module, source.folder, file_name) if p)
    return {
        "kind": source.kind,
        "package": source.distribution,
        "version": installed_version(package),
        "file": file,
    }


@cache
def _load_photo_cached(name: str) -> Tensor:
    from PIL import Image

    if is_cutout(name):
        rgb, alpha = _load_rgba_cached(name)
        return (rgb * alpha + (1.0 - alpha)).clamp(0.0, 1.0)  # over white
    with Image.open(photo_path(name)) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@cache
def _load_rgba_cached(name: str) -> tuple[Tensor, Tensor]:
    from PIL import Image

    with Image.open(photo_path(name)) as image:
        array = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    rgba = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    return rgba[:3].contiguous(), rgba[3:].contiguous()


def load_alpha(name: str) -> Tensor | None:
    r"""
    The alpha channel of a cut-out photo (:func:`is_cutout`), at its original resolution.

    Args:
        name (str): A key of :data:`PHOTO_FILES`.

    Returns:
        Tensor or None: ``(H, W)`` float32 in ``[0, 1]`` (1 = opaque), cached (do not modify
        it in place); None for photos without one.
    """
    if not is_cutout(name):
        return None
    return _load_rgba_cached(name)[1][0]


def alpha_box(name: str) -> Box:
    r"""
    The tight box of a cut-out's object: the pixels with alpha > 0.5.

    Args:
        name (str): A key of :data:`PHOTO_FILES` with :func:`is_cutout`.

    Returns:
        tuple[int, int, int, int]: ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive.

    Raises:
        ValueError: The photo is not a cut-out, or it is transparent everywhere.
    """
    alpha = load_alpha(name)
    if alpha is None:
        raise ValueError(f"photo {name!r} is not a cut-out (it has no alpha channel)")
    ys, xs = torch.nonzero(alpha > 0.5, as_tuple=True)
    if len(ys) == 0:
        raise ValueError(f"photo {name!r} is transparent everywhere")
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def load_photo(name: str) -> Tensor:
    r"""
    One bundled photo at its original resolution.

    Args:
        name (str): A key of :data:`PHOTO_FILES`, e.g. ``"skimage:chelsea"``.

    Returns:
        Tensor: ``(3, H, W)`` float32 in ``[0, 1]`` (grey photos are repeated over RGB;
        cut-outs, :func:`is_cutout`, are composited over white). The tensor is cached: do
        not modify it in place.

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
