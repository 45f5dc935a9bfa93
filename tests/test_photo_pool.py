"""Tests for the photo registry's sources and the benchmark's foreground pools.

The pool's packages (PyPI foolbox and sporco, Debian tuxpaint-stamps-default) are not
installed in CI: the tests fake them, a Debian root and dpkg database in a temporary
folder and a foolbox data folder, and make sporco absent, whatever this machine has.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("skimage")
pytest.importorskip("sklearn")

from captum_gfi.demo.models import LoadedModel  # noqa: E402
from captum_gfi.evaluation import benchmark_data as bd  # noqa: E402
from captum_gfi.evaluation import photos  # noqa: E402
from captum_gfi.evaluation.benchmark_runner import case_record  # noqa: E402

SIZE = 64
DEB_VERSION = "2022.06.04-1"
#: registry photos the tests fake (cut-outs of the Debian package, one foolbox photo)
FAKE_CUTOUTS = ("tuxpaint:duck", "tuxpaint:hen", "tuxpaint:frog", "tuxpaint:zebra")
FAKE_FOOLBOX = ("foolbox:imagenet_00_243", "foolbox:imagenet_01_559")
DPKG_STATUS = f"""Package: other-package
Status: install ok installed
Version: 1.0

Package: tuxpaint-stamps-default
Status: install ok installed
Priority: optional
Description: stamps
 Version: not this one (a continuation line)
Version: {DEB_VERSION}

Package: ukui-wallpapers
Status: deinstall ok config-files
Version: 2.0
"""


class ConstantClass(nn.Module):
    """Predicts class 7 with probability ~1 whatever the image."""

    def forward(self, x: Tensor) -> Tensor:
        logits = torch.zeros(x.shape[0], 1000)
        logits[:, 7] = 30.0
        return logits


class DominantColour(nn.Module):
    """Class = the most frequent colour bin (10 levels per channel, 1000 bins)."""

    def forward(self, x: Tensor) -> Tensor:
        pixels = ((x * 0.5 + 0.5).clamp(0, 1) * 9.999).long()
        bins = pixels[:, 0] * 100 + pixels[:, 1] * 10 + pixels[:, 2]
        counts = torch.stack([torch.bincount(b.flatten(), minlength=1000) for b in bins])
        return 4.0 * torch.log1p(counts.float())


def _bundle(net: nn.Module, name: str) -> LoadedModel:
    return LoadedModel(
        model=net.eval(),
        name=name,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=SIZE,
        categories=[f"class {i}" for i in range(1000)],
    )


def _cutout(seed: int, height: int, width: int) -> np.ndarray:
    """An RGBA cut-out: a soft-edged opaque ellipse in a margin of transparency whose
    colour (pure green) must never show in a composite."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    r = ((yy - height / 2) / (height * 0.35)) ** 2 + ((xx - width / 2) / (width * 0.4)) ** 2
    alpha = np.clip((1.2 - r) * 3.0, 0.0, 1.0)
    rgb = rng.integers(0, 256, (height, width, 3))
    rgb[alpha == 0] = (0, 255, 0)
    return np.dstack([rgb, np.round(alpha * 255)]).astype(np.uint8)


_INSTALLED_VERSION = photos.installed_version


def _clear_caches() -> None:
    photos._load_photo_cached.cache_clear()
    photos._load_rgba_cached.cache_clear()
    _INSTALLED_VERSION.cache_clear()


@pytest.fixture(scope="module")
def fake_packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Debian package and foolbox faked with a few files; sporco absent."""
    from PIL import Image

    root = tmp_path_factory.mktemp("packages")
    folder = photos.PHOTO_SOURCES["tuxpaint-stamps-default"].folder.lstrip("/")
    for i, name in enumerate(FAKE_CUTOUTS):
        path = root / "deb" / folder / photos.PHOTO_FILES[name][1]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_cutout(i, 40 + 7 * i, 60 - 5 * i), "RGBA").save(path)
    for i, name in enumerate(FAKE_FOOLBOX):
        path = root / "site" / "foolbox" / "data" / photos.PHOTO_FILES[name][1]
        path.parent.mkdir(parents=True, exist_ok=True)
        rgb = np.random.default_rng(10 + i).integers(0, 256, (50, 70, 3)).astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(path, format="PNG")
    (root / "status").write_text(DPKG_STATUS)
    real = photos._package_dir

    def package_dir(package: str) -> Path:
        if package == "foolbox":
            return root / "site" / "foolbox"
        if package == "sporco":
            raise ImportError("package 'sporco' is not installed")
        return real(package)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(photos, "DEB_ROOT", root / "deb")
        patch.setattr(photos, "DPKG_STATUS", root / "status")
        patch.setattr(photos, "_package_dir", package_dir)
        patch.setattr(  # the faked foolbox has no metadata
            photos,
            "installed_version",
            lambda p: "3.3.4" if p == "foolbox" else _INSTALLED_VERSION(p),
        )
        _clear_caches()
        yield root
    _clear_caches()


@pytest.fixture(scope="module")
def constant(fake_packages: Path) -> LoadedModel:
    torch.set_num_threads(1)
    return _bundle(ConstantClass(), "constant")


@pytest.fixture(scope="module")
def large(constant: LoadedModel) -> tuple[list[bd.BenchmarkCase], bd.BuildStats]:
    return bd.build_cases("composites", constant, 60, seed=2, pool="large")


# --------------------------------------------------------------------------- registry


def test_registry_entries_resolve_where_installed() -> None:
    # this machine's real files, where their packages are installed; skipped otherwise
    if photos.DEB_ROOT != Path("/"):
        pytest.skip("the packages are faked (run this test alone)")
    photos.installed_version.cache_clear()
    installed = [p for p in bd.LARGE_POOL_PACKAGES if photos.installed_version(p) is not None]
    if not installed:
        pytest.skip("none of the large pool's packages is installed")
    for package in installed:
        names = photos.photos_of((package,))
        assert photos.available_photos(names) == list(names), package
        for name in names[:3]:
            image = photos.load_photo(name)
            assert image.shape[0] == 3 and min(image.shape[1:]) >= 96


def test_registry_lists_every_source_once() -> None:
    assert set(photos.PHOTO_SOURCES) == {p for p, _ in photos.PHOTO_FILES.values()}
    new = {p: photos.photos_of((p,)) for p in bd.LARGE_POOL_PACKAGES}
    assert {p: len(v) for p, v in new.items()} == {
        "foolbox": 20,
        "sporco": 5,
        "tuxpaint-stamps-default": 100,
    }
    assert bd.FOREGROUND_POOLS["large"] == bd.FOREGROUND_CANDIDATES + sum(new.values(), ())
    for package in bd.LARGE_POOL_PACKAGES:
        source = photos.PHOTO_SOURCES[package]
        assert source.kind in ("pypi", "deb") and source.surveyed
        assert source.cutout == (source.kind == "deb")
    assert [photos.PHOTO_SOURCES[p].surveyed for p in bd.LARGE_POOL_PACKAGES] == [
        "3.3.4",
        "0.2.2.post1",
        DEB_VERSION,
    ]
    with pytest.raises(ValueError, match="packages must be keys of PHOTO_SOURCES"):
        photos.photos_of(("caer",))


def test_default_pool_and_backgrounds_are_the_test_extras_photos() -> None:
    extra = ("skimage", "sklearn", "matplotlib", "imgaug")
    assert bd.FOREGROUND_POOLS["default"] == bd.FOREGROUND_CANDIDATES
    assert bd.BACKGROUND_PHOTOS == tuple(list(photos.PHOTO_FILES)[:22])
    assert {photos.PHOTO_FILES[p][0] for p in bd.BACKGROUND_PHOTOS} == set(extra)
    assert all(photos.PHOTO_FILES[p][0] in extra for p in bd.FOREGROUND_CANDIDATES)


def test_absent_packages_are_unavailable_not_errors(fake_packages: Path) -> None:
    available = photos.available_photos()
    large = set(photos.photos_of(bd.LARGE_POOL_PACKAGES))
    assert sorted(set(available) & large) == sorted(FAKE_CUTOUTS + FAKE_FOOLBOX)
    assert photos.available_photos(photos.photos_of(("sporco",))) == []
    for name in available:
        assert photos.photo_path(name).is_file()
    with pytest.raises(ImportError):
        photos.photo_path("sporco:kodim23")
    assert not photos.photo_path("tuxpaint:owl").exists()


def test_installed_version_reads_dpkg_and_package_metadata(fake_packages: Path) -> None:
    assert photos.installed_version("tuxpaint-stamps-default") == DEB_VERSION
    assert photos.installed_version("skimage") == importlib.metadata.version("scikit-image")
    try:
        expected: str | None = importlib.metadata.version("sporco")
    except importlib.metadata.PackageNotFoundError:
        expected = None
    assert photos.installed_version("sporco") == expected  # metadata, not the folder
    with pytest.raises(ValueError, match="package must be one of"):
        photos.installed_version("caer")


def test_dpkg_version_of_removed_or_unknown_packages(
    fake_packages: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert photos._dpkg_version("ukui-wallpapers") is None  # config files only
    assert photos._dpkg_version("other-package") == "1.0"
    assert photos._dpkg_version("mate-backgrounds") is None
    monkeypatch.setattr(photos, "DPKG_STATUS", tmp_path / "missing")  # not a Debian system
    assert photos._dpkg_version("tuxpaint-stamps-default") is None


def test_photo_source_names_package_version_and_file(fake_packages: Path) -> None:
    assert photos.photo_source("tuxpaint:duck") == {
        "kind": "deb",
        "package": "tuxpaint-stamps-default",
        "version": DEB_VERSION,
        "file": "/usr/share/tuxpaint/stamps/animals/birds/duck.png",
    }
    assert photos.photo_source("skimage:chelsea") == {
        "kind": "pypi",
        "package": "scikit-image",
        "version": importlib.metadata.version("scikit-image"),
        "file": "skimage/data/chelsea.png",
    }
    assert photos.photo_source("foolbox:imagenet_00_243")["file"] == (
        "foolbox/data/imagenet_00_243.jpg"
    )


def test_cutouts_load_over_white_with_their_alpha(fake_packages: Path) -> None:
    rgba = torch.from_numpy(_cutout(0, 40, 60).astype(np.float32) / 255.0).permute(2, 0, 1)
    image, alpha = photos.load_photo("tuxpaint:duck"), photos.load_alpha("tuxpaint:duck")
    assert alpha is not None and torch.equal(alpha, rgba[3])
    assert torch.equal(image, (rgba[:3] * rgba[3] + (1.0 - rgba[3])).clamp(0, 1))
    ys, xs = torch.nonzero(rgba[3] > 0.5, as_tuple=True)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    assert photos.alpha_box("tuxpaint:duck") == box
    assert bd.candidate_crops("tuxpaint:duck", 40, 60) == [box]  # one crop: the object
    assert photos.load_alpha("foolbox:imagenet_00_243") is None
    assert len(bd.candidate_crops("foolbox:imagenet_00_243", 50, 70)) == 28
    with pytest.raises(ValueError, match="not a cut-out"):
        photos.alpha_box("skimage:chelsea")
    assert "foolbox" not in sys.modules and "sporco" not in sys.modules  # never imported


# --------------------------------------------------------------------------- pools


def test_pool_selection(constant: LoadedModel) -> None:
    default = {f.photo for f in bd.foreground_photos(constant)}
    large = bd.foreground_photos(constant, pool="large")
    assert default == set(photos.available_photos(bd.FOREGROUND_CANDIDATES))
    assert {f.photo for f in large} == default | set(FAKE_CUTOUTS + FAKE_FOOLBOX)
    cutouts = [f for f in large if photos.is_cutout(f.photo)]
    assert sorted(f.photo for f in cutouts) == sorted(FAKE_CUTOUTS)  # one crop each
    for f in cutouts:
        assert f.alpha is not None and f.alpha.shape == f.image.shape[1:]
    assert all(f.alpha is None for f in large if not photos.is_cutout(f.photo))
    splits = bd.assign_splits([f.photo for f in large])
    assert all(f.split == splits[f.photo] for f in large)  # split by photo, within the pool
    for call in (
        lambda: bd.foreground_photos(constant, pool="huge"),
        lambda: bd.build_cases("composites", constant, 2, pool="huge"),
    ):
        with pytest.raises(ValueError, match="pool must be one of"):
            call()


def test_large_pool_caps_each_photo_at_a_tenth_of_its_split(
    constant: LoadedModel, large: tuple[list[bd.BenchmarkCase], bd.BuildStats]
) -> None:
    cases, stats = large
    split = {f.photo: f.split for f in bd.foreground_photos(constant, pool="large")}
    n_tune = round(60 * sum(s == "tune" for s in split.values()) / len(split))
    quotas = {"tune": n_tune, "test": 60 - n_tune}
    caps = {s: max(1, math.floor(0.1 * q)) for s, q in quotas.items()}
    per_photo = Counter(c.source["photo"] for c in cases)
    for photo, count in per_photo.items():
        assert count <= caps[split[photo]] <= math.floor(0.1 * 60)
    expected = {s: min(quotas[s], caps[s] * list(split.values()).count(s)) for s in quotas}
    assert stats.per_split == expected and stats.kept == sum(expected.values())
    test = [c for c in cases if c.split == "test"]
    assert max(Counter(c.source["photo"] for c in test).values()) <= 0.1 * len(test)
    assert set(stats.per_reason) <= {"photo_quota", "split_quota"}
    capped, _ = bd.build_cases("composites", constant, 30, seed=2, pool="large", max_per_photo=5)
    assert len(capped) == 30 and max(Counter(c.source["photo"] for c in capped).values()) <= 5


def test_large_pool_split_is_by_photo(large: tuple[list[bd.BenchmarkCase], bd.BuildStats]) -> None:
    cases, _ = large
    tune = {c.source["photo"] for c in cases if c.split == "tune"}
    test = {c.source["photo"] for c in cases if c.split == "test"}
    assert tune and test and not tune & test


def test_cutout_composites_paste_exactly_the_ground_truth(
    large: tuple[list[bd.BenchmarkCase], bd.BuildStats],
) -> None:
    from PIL import Image

    cutouts = [c for c in large[0] if c.source.get("alpha_mask")]
    assert cutouts and {c.source["photo"] for c in cutouts} <= set(FAKE_CUTOUTS)
    for case in cutouts:
        src = case.source
        bg = bd.resize_image(photos.load_photo(src["background"]), tuple(src["background_size"]))
        ox, oy = src["background_offset"]
        background = bg[:, oy : oy + SIZE, ox : ox + SIZE]
        (x0, y0), (w, h) = src["position"], src["size"]
        cx0, cy0, cx1, cy1 = src["crop"]
        alpha = photos.load_alpha(src["photo"])
        assert alpha is not None
        with Image.open(photos.photo_path(src["photo"])) as file:
            array = np.asarray(file.convert("RGBA"), dtype=np.float32) / 255.0
        rgba = torch.from_numpy(array).permute(2, 0, 1)[:, cy0:cy1, cx0:cx1]
        # premultiplied colour and alpha resized together, the object where alpha > 0.5
        resized = bd.resize_image(torch.cat([rgba[:3] * rgba[3:], rgba[3:]]), (h, w))
        inside = resized[3] > 0.5
        expected_mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        expected_mask[y0 : y0 + h, x0 : x0 + w] = inside
        assert torch.equal(case.mask, expected_mask) and case.mask.any()
        ys, xs = torch.nonzero(case.mask, as_tuple=True)
        assert case.box == (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        assert torch.equal(case.image[:, ~case.mask], background[:, ~case.mask])
        colour = (resized[:3] / resized[3].clamp(min=0.5))[:, inside]
        pasted = case.image[:, y0 : y0 + h, x0 : x0 + w][:, inside]
        assert torch.allclose(pasted, colour.clamp(0, 1), atol=1e-5)
        green = torch.tensor([0.0, 1.0, 0.0]).view(3, 1)
        assert (pasted - green).abs().sum(dim=0).min() > 0.05  # no transparent colour


def test_cases_record_package_and_version(
    large: tuple[list[bd.BenchmarkCase], bd.BuildStats],
) -> None:
    for case in large[0]:
        src = case.source
        assert src["pool"] == "large"
        assert set(src["sources"]) == {src["photo"], src["background"]}
        for photo, source in src["sources"].items():
            assert source == photos.photo_source(photo) and source["version"] is not None
    cut = next(c for c in large[0] if c.source.get("alpha_mask"))
    assert cut.source["sources"][cut.source["photo"]]["package"] == "tuxpaint-stamps-default"
    assert cut.source["sources"][cut.source["photo"]]["version"] == DEB_VERSION


def _same(rebuilt: bd.BenchmarkCase, case: bd.BenchmarkCase) -> None:
    assert (rebuilt.case_id, rebuilt.kind, rebuilt.split, rebuilt.target, rebuilt.box) == (
        case.case_id,
        case.kind,
        case.split,
        case.target,
        case.box,
    )
    assert torch.equal(rebuilt.mask, case.mask) and torch.equal(rebuilt.image, case.image)
    assert rebuilt.source == case.source


def test_case_from_record_rebuilds_large_pool_cases(
    large: tuple[list[bd.BenchmarkCase], bd.BuildStats], fake_packages: Path
) -> None:
    grids, _ = bd.build_cases("grids", _bundle(DominantColour(), "colour"), 8, 1, pool="large")
    cases = large[0][:20] + grids
    assert any(c.source.get("alpha_mask") for c in cases)
    for i, case in enumerate(cases):
        record = json.loads(json.dumps(case_record(case, i, "m", False, 16)))
        _same(bd.case_from_record(record, SIZE), case)
        _same(bd.case_from_record(record, SIZE, pool="large"), case)
    with pytest.raises(ValueError, match="comes from pool 'large', not 'default'"):
        bd.case_from_record(record, SIZE, pool="default")
    with pytest.raises(ValueError, match="pool must be one of"):
        bd.case_from_record(record, SIZE, pool="huge")


def test_default_pool_unchanged_by_the_new_photos(constant: LoadedModel) -> None:
    cases, stats = bd.build_cases("composites", constant, 6, seed=3)
    assert stats.per_reason == {}
    # the cases of the version before pools (photo, background, box, image sum)
    assert [(c.source["photo"], c.source["background"], c.box) for c in cases] == [
        ("sklearn:flower", "skimage:rocket", (32, 42, 56, 58)),
        ("skimage:text", "skimage:chelsea", (21, 25, 51, 37)),
        ("skimage:rocket", "skimage:brick", (0, 4, 38, 29)),
        ("skimage:coins", "sklearn:flower", (15, 27, 45, 51)),
        ("skimage:text", "skimage:grass", (25, 39, 63, 54)),
        ("skimage:rocket", "skimage:ihc", (20, 35, 56, 59)),
    ]
    sums = [3454.813, 5439.982, 4956.626, 3339.054, 5751.387, 6598.576]
    assert [float(c.image.sum()) for c in cases] == pytest.approx(sums, abs=0.05)
    for case in cases:
        x0, y0, x1, y1 = case.box
        assert int(case.mask.sum()) == (x1 - x0) * (y1 - y0)  # the rectangle
        assert case.source["pool"] == "default" and "alpha_mask" not in case.source
    old = json.loads(json.dumps(case_record(cases[0], 0, "m", False, 16)))
    del old["source"]["pool"], old["source"]["sources"]  # a record of the version before
    _same_image = bd.case_from_record(old, SIZE, pool="default")
    assert torch.equal(_same_image.image, cases[0].image)
