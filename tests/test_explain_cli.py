"""Tests for ``captum-gfi explain`` (captum_gfi.explain) and the figure (captum_gfi.figure)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from captum_gfi.cli import build_parser, main
from captum_gfi.explain import (
    Explanation,
    compute_explanation,
    default_output_path,
    explanation_panels,
    parse_setting_names,
    parse_target,
)
from captum_gfi.figure import Panel, explanation_figure, save_figure
from captum_gfi.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadedModel,
    imagenet_categories,
    load_model,
)
from captum_gfi.samples import image_to_tensor, load_sample
from captum_gfi.settings import SETTINGS

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("skimage")

FAST = ["--inversion-steps", "2", "--target-steps", "3", "--ig-steps", "4", "--no-progress"]


@pytest.fixture(scope="module")
def cat_explanation() -> Explanation:
    bundle = load_model()
    image = image_to_tensor(load_sample("cat"), bundle.input_size)
    return compute_explanation(bundle, image, inversion_steps=2, target_steps=3, ig_steps=4)


# ----------------------------------------------------------------------- --target parsing
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", None),
        ("AUTO", None),
        (None, None),
        ("285", 285),
        (967, 967),
        ("0", 0),
        ("Egyptian cat", 285),
        ("  egyptian CAT ", 285),
        ("espresso", 967),
        ("Cardigan", 264),  # the corgi
        ("cardigan", 474),  # the sweater
    ],
)
def test_parse_target(value: str | int | None, expected: int | None) -> None:
    assert parse_target(value, imagenet_categories()) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("1000", r"index 1000 is out of range \[0, 999\]"),
        ("-1", "out of range"),
        ("egyptian kat", "did you mean 'Egyptian cat'"),
        ("not a class at all", "neither 'auto', a class index nor a class name"),
        ("CARDIGAN", r"ambiguous: classes \[264, 474\]"),
    ],
)
def test_parse_target_errors(value: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_target(value, imagenet_categories())


def test_parse_target_type() -> None:
    with pytest.raises(TypeError, match="target"):
        parse_target(2.5, imagenet_categories())  # type: ignore[arg-type]


# ----------------------------------------------------------------------- argument parsing
def test_explain_defaults_are_the_papers() -> None:
    args = build_parser().parse_args(["explain", "sample:cat"])
    assert args.image == "sample:cat"
    assert args.target == "auto"
    assert args.model == "efficientnet-lite0"
    assert args.weights is None and args.out is None
    assert (args.inversion_steps, args.target_steps) == (10, 70)


def test_default_output_path() -> None:
    assert default_output_path("sample:cat") == Path("gfi-cat.png")
    assert default_output_path("photos/dog.jpeg") == Path("gfi-dog.png")


# ----------------------------------------------------------------------- end to end
def test_cli_writes_png_for_sample_cat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figs" / "cat.png"
    assert main(["explain", "sample:cat", "--out", str(out), *FAST]) == 0
    with Image.open(out) as png:
        assert png.format == "PNG"
        width, height = png.size
    assert width > 3 * height  # five panels in one row
    stdout = capsys.readouterr().out
    assert str(out) in stdout
    assert "predicts Egyptian cat (" in stdout and "explained class 285" in stdout


def test_cli_explicit_target_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cat-espresso.png"
    argv = ["explain", "sample:cat", "--target", "espresso", "--out", str(out), *FAST]
    assert main(argv) == 0
    assert out.is_file()
    assert "explained class 967 espresso" in capsys.readouterr().out


def test_cli_bad_image_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never.png"
    argv = ["explain", str(tmp_path / "missing.jpg"), "--out", str(out), *FAST]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "captum-gfi explain: error: image file not found" in err and "missing.jpg" in err
    assert not out.exists()


def test_cli_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "cat.png"  # its "directory" is a file
    assert main(["explain", "sample:cat", "--out", str(out), *FAST]) == 2
    assert f"cannot write {out}" in capsys.readouterr().err


def test_cli_unknown_sample_and_bad_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "sample:dog", *FAST]) == 2
    assert "unknown sample 'sample:dog'" in capsys.readouterr().err
    assert main(["explain", "sample:cat", "--target", "12345", *FAST]) == 2
    assert "--target index 12345 is out of range" in capsys.readouterr().err


def test_cli_torchvision_weights_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert main(["explain", "sample:cat", "--model", "torchvision:vgg19", *FAST]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth") in err
    assert "never downloads" in err


def test_cli_missing_demo_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    assert main(["explain", "sample:cat", *FAST]) == 2
    assert "pip install 'captum-gfi[demo]'" in capsys.readouterr().err


# ----------------------------------------------------------------------- the maps
def test_compute_explanation_maps(cat_explanation: Explanation) -> None:
    e = cat_explanation
    assert e.target == e.top1 == 285
    assert e.probabilities.shape == (1000,)
    for mask in (e.inversion_mask, e.gfi):
        assert mask.shape == (1, 1, 224, 224)
        assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
    assert e.grad_cam.shape == (1, 1, 224, 224) and float(e.grad_cam.min()) >= 0.0  # ReLU
    assert e.integrated_gradients.shape == (1, 3, 224, 224)
    assert float(e.integrated_gradients.abs().sum()) > 0.0
    assert set(e.seconds) == {"gfi_stage1", "gfi", "grad_cam", "integrated_gradients"}


def test_compute_explanation_torchvision_resnet() -> None:
    # a torchvision architecture (random weights, small input to stay fast): the presets
    # find its layers through the [0, 1] Normalize wrapper's raw model
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    bundle = LoadedModel(
        net, "torchvision:resnet18", IMAGENET_MEAN, IMAGENET_STD, 64, imagenet_categories()
    )
    e = compute_explanation(
        bundle, torch.rand(1, 3, 64, 64), target=3, inversion_steps=2, target_steps=2, ig_steps=2
    )
    assert e.target == 3
    assert e.gfi.shape == e.inversion_mask.shape == e.grad_cam.shape == (1, 1, 64, 64)
    assert 0.0 <= float(e.gfi.min()) and float(e.gfi.max()) <= 1.0


def test_compute_explanation_argument_checks() -> None:
    bundle = load_model()
    with pytest.raises(ValueError, match=r"image must have shape \(1, 3, 224, 224\)"):
        compute_explanation(bundle, torch.rand(1, 3, 100, 100))
    with pytest.raises(ValueError, match="target_steps must be a positive int"):
        compute_explanation(bundle, torch.rand(1, 3, 224, 224), target_steps=0)
    with pytest.raises(ValueError, match="target 1000 is out of range"):
        compute_explanation(bundle, torch.rand(1, 3, 224, 224), target=1000)


def test_panel_titles_name_class_and_probability(cat_explanation: Explanation) -> None:
    e = cat_explanation
    label = f"Egyptian cat ({100 * float(e.probabilities[285]):.1f}%)"
    panels = explanation_panels(e)
    assert len(panels) == 5
    assert panels[0].attribution is None
    for panel in panels:
        assert label in panel.title
    assert [p.title.split("\n")[0] for p in panels] == [
        "Input (efficientnet-lite0)",
        "GFI stage 1 (class-agnostic)",
        "GFI class map",
        "LayerGradCam",
        "IntegratedGradients",
    ]


# ----------------------------------------------------------------------- the figure
def test_explanation_figure_layout(tmp_path: Path) -> None:
    image = torch.rand(1, 3, 32, 32)
    panels = [
        Panel("input"),
        Panel("mask", torch.rand(1, 1, 32, 32), outlier_perc=0),
        Panel("ig", torch.randn(1, 3, 32, 32), sign="absolute_value"),
        Panel("zero", np.zeros((32, 32))),
    ]
    fig = explanation_figure(image, panels, suptitle="why?")
    axes = fig.get_axes()
    assert len(axes) == 4  # no colour-bar axes
    assert [ax.get_title() for ax in axes] == ["input", "mask", "ig", "zero (all zero)"]
    assert all(not ax.axison for ax in axes)
    path = save_figure(fig, tmp_path / "sub" / "fig.png", dpi=50)
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert png.size[0] > png.size[1]


def test_explanation_figure_errors() -> None:
    image = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="panels must not be empty"):
        explanation_figure(image, [])
    with pytest.raises(ValueError, match=r"shape \(8, 8\)"):
        explanation_figure(image, [Panel("m", torch.rand(8, 8))])
    with pytest.raises(ValueError, match="Panel.sign"):
        explanation_figure(image, [Panel("m", torch.rand(16, 16), sign="both")])
    with pytest.raises(ValueError, match="non-finite"):
        explanation_figure(image, [Panel("m", torch.full((16, 16), float("nan")))])
    with pytest.raises(TypeError, match="image"):
        explanation_figure([1, 2], [Panel("x")])  # type: ignore[arg-type]


# ----------------------------------------------------------------------- --setting
def test_parse_setting_names() -> None:
    assert parse_setting_names("paper") == ["paper"]
    assert parse_setting_names(" paper , authors ") == ["paper", "authors"]
    with pytest.raises(ValueError, match=r"--setting 'ours' is unknown; the settings are \["):
        parse_setting_names("paper,ours")
    with pytest.raises(ValueError, match="names a setting twice"):
        parse_setting_names("paper,paper")
    with pytest.raises(ValueError, match="at least one name"):
        parse_setting_names(" , ")


def test_explain_steps_default_to_each_settings_own() -> None:
    args = build_parser().parse_args(["explain", "sample:cat", "--setting", "authors"])
    assert args.setting == "authors"
    assert not getattr(args, "given_steps", set())  # 10/70 shown as the paper's, not applied
    args = build_parser().parse_args(["explain", "sample:cat", "--target-steps", "3"])
    assert args.given_steps == {"target_steps"} and args.target_steps == 3


def test_cli_two_settings_one_panel_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cat-two.png"
    argv = ["explain", "sample:cat", "--setting", "paper,authors", "--out", str(out), *FAST]
    assert main(argv) == 0
    with Image.open(out) as png:
        width, height = png.size
    assert width > 4 * height  # six panels in one row
    assert main(["explain", "sample:cat", "--setting", "paper,ours", *FAST]) == 2
    assert "--setting 'ours' is unknown" in capsys.readouterr().err


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_cli_each_setting_alone(setting: str, tmp_path: Path) -> None:
    # every setting on its own, with and without --target: refined's stage-1 panel needs the
    # target for its Grad-CAM start, so this failed with exit 2 when the panel was computed
    # without it
    out = tmp_path / f"cat-{setting}.png"
    for target in ([], ["--target", "285"]):
        argv = ["explain", "sample:cat", "--setting", setting, "--out", str(out), *target, *FAST]
        assert main(argv) == 0, (setting, target)
        with Image.open(out) as png:
            width, height = png.size
        assert width > 4 * height  # five panels in one row
        out.unlink()


def test_compute_explanation_two_settings(cat_explanation: Explanation) -> None:
    bundle = load_model()
    image = image_to_tensor(load_sample("cat"), bundle.input_size)
    e = compute_explanation(
        bundle, image, inversion_steps=2, target_steps=3, ig_steps=4, settings=("paper", "authors")
    )
    assert list(e.gfi_maps) == ["paper", "authors"]
    assert torch.equal(e.gfi, e.gfi_maps["paper"])
    assert torch.equal(e.gfi, cat_explanation.gfi)  # the one-setting run's map
    assert not torch.allclose(e.gfi_maps["authors"], e.gfi, atol=1e-3)
    assert set(e.seconds) == {
        "gfi_stage1",
        "gfi",
        "gfi:authors",
        "grad_cam",
        "integrated_gradients",
    }
    titles = [p.title for p in explanation_panels(e)]
    assert len(titles) == 6
    assert titles[2].endswith("setting: paper") and titles[3].endswith("setting: authors")
    with pytest.raises(ValueError, match="unknown setting 'ours'"):
        compute_explanation(bundle, image, settings=("ours",))
