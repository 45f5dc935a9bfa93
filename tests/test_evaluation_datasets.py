from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captum_gfi.evaluation.datasets import (
    VOC_CLASSES,
    UnreadableImageError,
    UnreadableImageWarning,
    load_dataset,
    load_image,
    open_image,
    read_folder,
    read_imagenet,
    read_voc07,
)


def _png(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, dtype=np.uint8)).save(path)


def _xml(name: str, w: int, h: int, objects: list[tuple[str, tuple[int, ...], int]]) -> str:
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    return (
        f"<annotation><folder>val</folder><filename>{name}</filename>"
        f"<source><database>ILSVRC_2012</database></source>"
        f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{objs}</annotation>"
    )


def test_read_imagenet(tmp_path: Path) -> None:
    (tmp_path / "LOC_synset_mapping.txt").write_text(
        "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n"
        "n01484850 great white shark\n"
    )
    ann = tmp_path / "Annotations"
    ann.mkdir()
    (ann / "ILSVRC2012_val_00000001.xml").write_text(
        _xml("ILSVRC2012_val_00000001", 500, 375,
             [("n01484850", (111, 108, 441, 375), 0), ("n01484850", (1, 1, 10, 20), 0)])
    )  # fmt: skip
    (ann / "ILSVRC2012_val_00000002.xml").write_text(
        _xml("ILSVRC2012_val_00000002", 64, 48, [("n01440764", (5, 6, 30, 40), 0)])
    )
    _png(tmp_path / "Images" / "ILSVRC2012_val_00000001.png", 500, 375)
    _png(tmp_path / "Images" / "ILSVRC2012_val_00000002.png", 64, 48)
    samples = read_imagenet(tmp_path)
    assert [s.id for s in samples] == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
    assert samples[0].size == (500, 375)
    assert samples[0].boxes == {2: [(110.0, 107.0, 441.0, 375.0), (0.0, 0.0, 10.0, 20.0)]}
    assert samples[1].labels == [0]
    assert samples[1].path.name == "ILSVRC2012_val_00000002.png"


def test_read_imagenet_unknown_synset(tmp_path: Path) -> None:
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench\n")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Images").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(_xml("a", 4, 4, [("n0000", (1, 1, 2, 2), 0)]))
    with pytest.raises(ValueError, match="n0000"):
        read_imagenet(tmp_path)


def test_read_voc07_multilabel_and_difficult(tmp_path: Path) -> None:
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002\n")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "000001.xml").write_text(
        _xml("000001.jpg", 353, 500,
             [("dog", (48, 240, 195, 371), 0), ("person", (8, 12, 352, 498), 0),
              ("person", (1, 2, 3, 4), 1)])
    )  # fmt: skip
    (tmp_path / "Annotations" / "000002.xml").write_text(
        _xml("000002.jpg", 335, 500, [("train", (139, 200, 207, 301), 1)])
    )
    for i in ("000001", "000002"):
        _png(tmp_path / "JPEGImages" / f"{i}.jpg", 8, 8)
    all_s = read_voc07(tmp_path)
    dog, person, train = (VOC_CLASSES.index(c) for c in ("dog", "person", "train"))
    assert all_s[0].labels == sorted([dog, person])
    assert all_s[0].boxes[person] == [(7.0, 11.0, 352.0, 498.0), (0.0, 1.0, 3.0, 4.0)]
    assert all_s[1].boxes == {train: [(138.0, 199.0, 207.0, 301.0)]}
    easy = read_voc07(tmp_path, include_difficult=False)
    assert [s.id for s in easy] == ["000001"]  # 000002 has only a difficult object
    assert easy[0].boxes[person] == [(7.0, 11.0, 352.0, 498.0)]
    with pytest.raises(FileNotFoundError, match="val.txt"):
        read_voc07(tmp_path, split="val")


def test_read_folder_csv(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 40, 30)
    _png(tmp_path / "b.png", 20, 20)
    (tmp_path / "boxes.csv").write_text(
        "image,label,xmin,ymin,xmax,ymax\na.png,3,0,0,10,10\na.png,3,5,5,40,30\n"
        "a.png,7,1,2,3,4\nb.png,1,,,,\n"
    )
    s = read_folder(tmp_path)
    assert [x.id for x in s] == ["a", "b"]
    assert s[0].size == (40, 30)
    assert s[0].boxes == {3: [(0.0, 0.0, 10.0, 10.0), (5.0, 5.0, 40.0, 30.0)], 7: [(1, 2, 3, 4)]}
    assert s[1].boxes == {1: []} and s[1].labels == [1]
    img = load_image(s[0].path, 16)
    assert img.shape == (1, 3, 16, 16)
    assert float(img.max()) == pytest.approx(128 / 255)


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    for name in ("imagenet", "voc07", "folder"):
        with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
            load_dataset(name, tmp_path / "nope")
    with pytest.raises(ValueError, match="root"):
        load_dataset("voc07", None)
    with pytest.raises(ValueError, match="dataset"):
        load_dataset("coco", tmp_path)


def test_unreadable_images_are_skipped_by_the_readers_and_refused_by_load_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _png(tmp_path / "a.png", 40, 30)
    (tmp_path / "b.png").write_bytes(b"\x89PNG but not really")
    _png(tmp_path / "c.png", 60, 60)
    (tmp_path / "boxes.csv").write_text("image,label\na.png,1\nb.png,2\nc.png,3\n")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # c: 3600 > 2 x 1500, a "bomb"
    skipped: list[tuple[str, str]] = []
    with pytest.warns(UnreadableImageWarning) as caught:
        samples = read_folder(tmp_path, skipped=skipped)
    assert [str(w.message).split(":")[0] for w in caught] == ["skipped image b", "skipped image c"]
    assert "b.png: UnidentifiedImageError" in str(caught[0].message)
    assert [s.id for s in samples] == ["a"]
    assert [s[0] for s in skipped] == ["b", "c"]
    assert "larger than PIL's decompression-bomb limit of 1500 pixels" in skipped[1][1]
    with pytest.raises(UnreadableImageError, match="c.png: larger than PIL's"):
        load_image(tmp_path / "c.png", 16)
    with pytest.raises(UnreadableImageError, match="b.png: UnidentifiedImageError"):
        with open_image(tmp_path / "b.png"):
            pass
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])  # truncated: fails on decoding
    with pytest.raises(UnreadableImageError, match="a.png: OSError"):
        load_image(tmp_path / "a.png", 16)
