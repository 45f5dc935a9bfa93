"""Tests for ``captum-gfi explain`` (captum_gfi.explain) and the figure (captum_gfi.figure)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from captum_gfi.cli import build_parser, main
from captum_gfi.demo.models import (
    DEFAULT_MODEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadedModel,
    imagenet_categories,
    load_model,
)
from captum_gfi.demo.samples import image_to_tensor, load_sample
from captum_gfi.explain import (
    DEFAULT_SETTINGS,
    Explanation,
    compute_explanation,
    default_output_path,
    explanation_caption,
    explanation_panels,
    parse_setting_names,
    parse_target,
    parse_targets,
)
from captum_gfi.figure import Panel, explanation_figure, save_figure
from captum_gfi.settings import SETTINGS

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("skimage")

FAST = ["--inversion-steps", "2", "--target-steps", "3", "--ig-steps", "4", "--no-progress"]


@pytest.fixture(scope="module")
def cat_explanation() -> Explanation:
    bundle = load_model()
    image = image_to_tensor(load_sample("cat"), bundle.input_size)
    return compute_explanation(
        bundle, image, inversion_steps=2, target_steps=3, ig_steps=4, integrated_gradients=True
    )


@pytest.fixture(scope="module")
def two_class_explanation() -> Explanation:
    bundle = load_model()
    image = image_to_tensor(load_sample("cat-coffee"), bundle.input_size)
    return compute_explanation(bundle, image, [285, 967], inversion_steps=2, target_steps=3)


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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", None),
        (None, None),
        (285, [285]),
        ("285", [285]),
        ("285,967", [285, 967]),
        ("Egyptian cat, espresso", [285, 967]),
        ("espresso,285", [967, 285]),
    ],
)
def test_parse_targets(value: str | int | None, expected: list[int] | None) -> None:
    assert parse_targets(value, imagenet_categories()) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("285,285", "names a class twice"),
        ("espresso,967", "names a class twice"),
        ("auto,285", "'auto' cannot be combined"),
        (" , ", "at least one class"),
        ("285,egyptian kat", "did you mean 'Egyptian cat'"),
    ],
)
def test_parse_targets_errors(value: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_targets(value, imagenet_categories())


# ----------------------------------------------------------------------- argument parsing
def test_explain_defaults_recommended_setting_next_to_the_papers() -> None:
    args = build_parser().parse_args(["explain", "sample:cat"])
    assert args.image == "sample:cat"
    assert args.target == "auto"
    assert args.setting == "refined,paper" == ",".join(DEFAULT_SETTINGS)
    assert args.model is None  # efficientnet-lite0, resolved when the command runs
    assert args.weights is None and args.out is None and not args.ig
    assert (args.inversion_steps, args.target_steps) == (10, 70)


def test_explain_help_names_every_setting_and_the_default_model() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    help_text = " ".join(sub.choices["explain"].format_help().split())
    listed = help_text.split("one class-map column each: ")[1].split(" (default")[0]
    assert sorted(listed.split(", ")) == sorted(SETTINGS)
    assert f"'{DEFAULT_MODEL}' (default;" in help_text


@pytest.mark.parametrize(
    "argv", [["--help"], ["explain", "--help"], ["bench", "--help"], ["evaluate", "--help"]]
)
def test_help_is_fast_to_start(argv: list[str]) -> None:
    # `captum-gfi --help` and `captum-gfi explain --help` import no torch, captum or
    # matplotlib: the sub-command modules are imported lazily (evaluate and bench import
    # their own modules, which need torch)
    code = (
        "import sys\n"
        "from captum_gfi.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'captum', 'matplotlib'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    heavy = result.stdout.strip().splitlines()[-1]
    if argv[0] in ("--help", "explain"):
        assert heavy == "[]"
    assert "usage: captum-gfi" in result.stdout


def test_main_imports_only_the_named_sub_commands_module() -> None:
    parser = build_parser(commands=["explain"])
    args = parser.parse_args(["explain", "sample:cat"])
    assert args._run.__module__ == "captum_gfi.explain"
    with pytest.raises(SystemExit):
        build_parser(commands=[]).parse_args(["nope"])


def test_default_output_path() -> None:
    assert default_output_path("sample:cat") == Path("gfi-cat.png")
    assert default_output_path("sample:cat-coffee") == Path("gfi-cat-coffee.png")
    assert default_output_path("photos/dog.jpeg") == Path("gfi-dog.png")


# ----------------------------------------------------------------------- end to end
def test_cli_writes_png_for_sample_cat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figs" / "cat.png"
    assert main(["explain", "sample:cat", "--out", str(out), *FAST]) == 0
    with Image.open(out) as png:
        assert png.format == "PNG"
        width, height = png.size
    assert width > 3 * height  # input, stage 1, refined, paper, Grad-CAM in one row
    stdout = capsys.readouterr().out
    assert str(out) in stdout
    assert "predicts Egyptian cat (" in stdout and "explained class(es) 285" in stdout


def test_cli_two_classes_one_row_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cat-coffee.png"
    argv = ["explain", "sample:cat-coffee", "--target", "Egyptian cat,espresso", "--ig"]
    assert main([*argv, "--out", str(out), *FAST]) == 0
    with Image.open(out) as png:
        width, height = png.size
    assert 1.5 * height < width < 3.5 * height  # two rows of five panels
    stdout = capsys.readouterr().out
    assert "285 Egyptian cat" in stdout and "967 espresso" in stdout


def test_cli_explicit_target_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cat-espresso.png"
    argv = ["explain", "sample:cat", "--target", "espresso", "--out", str(out), *FAST]
    assert main(argv) == 0
    assert out.is_file()
    assert "explained class(es) 967 espresso" in capsys.readouterr().out


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
    assert main(["explain", "sample:cat", "--target", "285,285", *FAST]) == 2
    assert "--target names a class twice" in capsys.readouterr().err


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
    assert "pip install -e '.[demo]' in a clone of captum-gfi" in capsys.readouterr().err


# ----------------------------------------------------------------------- the maps
def test_compute_explanation_maps(cat_explanation: Explanation) -> None:
    e = cat_explanation
    assert e.targets == [e.top1] == [285]
    assert e.probabilities.shape == (1000,)
    assert e.inversion_setting == "paper"  # refined has no class-agnostic stage 1
    assert e.inversion_mask is not None and e.inversion_mask.shape == (1, 1, 224, 224)
    assert list(e.gfi_maps) == ["refined", "paper"]
    for mask in (e.inversion_mask, *e.gfi_maps.values()):
        assert mask.shape[1:] == (1, 224, 224)
        assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
    assert e.grad_cam.shape == (1, 1, 224, 224) and float(e.grad_cam.min()) >= 0.0  # ReLU
    assert e.integrated_gradients is not None
    assert e.integrated_gradients.shape == (1, 1, 224, 224)
    assert float(e.integrated_gradients.abs().sum()) > 0.0
    assert set(e.seconds) == {
        "gfi_stage1", "gfi:refined", "gfi:paper", "grad_cam", "integrated_gradients",
    }  # fmt: skip


def test_two_classes_are_explained_one_row_each(two_class_explanation: Explanation) -> None:
    e = two_class_explanation
    assert e.targets == [285, 967]
    for maps in (*e.gfi_maps.values(), e.grad_cam):
        assert maps.shape == (2, 1, 224, 224)
    assert e.integrated_gradients is None
    # the cat fills the left half of sample:cat-coffee, the espresso the right half: the cat's
    # maps put more mass on the left than the espresso's (Grad-CAM and refined, which starts
    # from Grad-CAM; the paper's setting needs its 80 steps)
    for maps in (e.grad_cam, e.gfi_maps["refined"]):
        left = maps[..., :112].sum(dim=(1, 2, 3)) / maps.sum(dim=(1, 2, 3))
        assert float(left[0]) > 0.6 and float(left[1]) < 0.4, left


def test_panel_titles_name_method_setting_and_class(
    cat_explanation: Explanation, two_class_explanation: Explanation
) -> None:
    e = cat_explanation
    label = f"Egyptian cat ({100 * float(e.probabilities[285]):.1f}%)"
    (row,) = explanation_panels(e)
    assert [p.title.split("\n")[0] for p in row if p is not None] == [
        "input (efficientnet-lite0)",
        "GFI stage 1 (paper)",
        "GFI refined",
        "GFI paper",
        "LayerGradCam",
        "IntegratedGradients (|.|)",
    ]
    assert row[0] is not None and row[0].attribution is None
    assert row[1] is not None and row[1].title.endswith("class-agnostic")
    for panel in row[2:]:
        assert panel is not None and panel.title.endswith(f"class: {label}")
    first, second = explanation_panels(two_class_explanation)
    assert first[0] is not None and first[0].title.startswith("input")
    assert second[0] is not None and second[0].title.startswith("GFI stage 1")
    assert all(p is not None and "class: Egyptian cat" in p.title for p in first[1:])
    assert all(p is not None and "class: espresso" in p.title for p in second[1:])


def test_compute_explanation_torchvision_resnet() -> None:
    # a torchvision architecture (random weights, small input to stay fast): the presets
    # find its layers through the [0, 1] Normalize wrapper's raw model
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    bundle = LoadedModel(
        net, "torchvision:resnet18", IMAGENET_MEAN, IMAGENET_STD, 64, imagenet_categories()
    )
    e = compute_explanation(
        bundle, torch.rand(1, 3, 64, 64), target=3, inversion_steps=2, target_steps=2
    )
    assert e.targets == [3]
    assert e.inversion_mask is not None
    assert e.gfi_maps["paper"].shape == e.inversion_mask.shape == e.grad_cam.shape
    assert e.grad_cam.shape == (1, 1, 64, 64)
    assert 0.0 <= float(e.gfi_maps["paper"].min()) and float(e.gfi_maps["paper"].max()) <= 1.0


def test_compute_explanation_argument_checks() -> None:
    bundle = load_model()
    with pytest.raises(ValueError, match=r"image must have shape \(1, 3, 224, 224\)"):
        compute_explanation(bundle, torch.rand(1, 3, 100, 100))
    with pytest.raises(ValueError, match="target_steps must be a positive int"):
        compute_explanation(bundle, torch.rand(1, 3, 224, 224), target_steps=0)
    with pytest.raises(ValueError, match="target 1000 is out of range"):
        compute_explanation(bundle, torch.rand(1, 3, 224, 224), target=1000)
    with pytest.raises(ValueError, match="target names a class twice"):
        compute_explanation(bundle, torch.rand(1, 3, 224, 224), target=[3, 3])
    with pytest.raises(ValueError, match="unknown setting 'ours'"):
        compute_explanation(bundle, torch.rand(1, 3, 224, 224), settings=("ours",))


# ----------------------------------------------------------------------- the figure
def test_explanation_figure_layout(tmp_path: Path) -> None:
    image = torch.rand(1, 3, 32, 32)
    panels = [
        Panel("input"),
        Panel("mask", torch.rand(1, 1, 32, 32), outlier_perc=0),
        Panel("ig", torch.randn(1, 3, 32, 32), sign="absolute_value"),
        Panel("zero", np.zeros((32, 32))),
    ]
    fig = explanation_figure(image, panels, suptitle="why?", colorbar=False)
    axes = fig.get_axes()
    assert len(axes) == 4  # no colour-bar axes
    assert [ax.get_title() for ax in axes] == ["input", "mask", "ig", "zero (all zero)"]
    assert all(not ax.axison for ax in axes)
    path = save_figure(fig, tmp_path / "sub" / "fig.png", dpi=50)
    with Image.open(path) as png:
        assert png.format == "PNG"
        assert png.size[0] > png.size[1]


def test_explanation_figure_grid_with_colour_bars() -> None:
    image = torch.rand(1, 3, 32, 32)
    rows: list[list[Panel | None]] = [
        [Panel("input"), Panel("a", torch.rand(32, 32), outlier_perc=0)],
        [None, Panel("b", torch.rand(32, 32), outlier_perc=0)],
    ]
    fig = explanation_figure(image, rows, caption="how to read it")
    titled = [ax for ax in fig.get_axes() if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["input", "a", "b"]
    # one colour bar (0 to 1: each map scaled to its maximum) under each heat map
    bars = [ax for ax in fig.get_axes() if ax.axison and ax.get_xticks().size]
    assert len(bars) == 2
    for bar in bars:
        assert list(bar.get_xticks()) == [0.0, 0.5, 1.0]
    assert any(t.get_text() == "how to read it" for t in fig.texts)


def test_explanation_figure_errors() -> None:
    image = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="panels must not be empty"):
        explanation_figure(image, [])
    with pytest.raises(ValueError, match="panels must not be empty"):
        explanation_figure(image, [[None]])
    with pytest.raises(ValueError, match=r"shape \(8, 8\)"):
        explanation_figure(image, [Panel("m", torch.rand(8, 8))])
    with pytest.raises(ValueError, match="Panel.sign"):
        explanation_figure(image, [Panel("m", torch.rand(16, 16), sign="both")])
    with pytest.raises(ValueError, match="non-finite"):
        explanation_figure(image, [Panel("m", torch.full((16, 16), float("nan")))])
    with pytest.raises(TypeError, match="image"):
        explanation_figure([1, 2], [Panel("x")])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Panel"):
        explanation_figure(image, ["x"])  # type: ignore[arg-type]


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
    assert width > 3 * height  # input, stage 1, paper, authors, Grad-CAM in one row
    assert main(["explain", "sample:cat", "--setting", "paper,ours", *FAST]) == 2
    assert "--setting 'ours' is unknown" in capsys.readouterr().err


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_cli_each_setting_alone(setting: str, tmp_path: Path) -> None:
    # every setting on its own, with and without --target (refined starts from Grad-CAM's
    # weights, so it needs the class even where a stage-1 panel is drawn)
    out = tmp_path / f"cat-{setting}.png"
    for target in ([], ["--target", "285"]):
        argv = ["explain", "sample:cat", "--setting", setting, "--out", str(out), *target, *FAST]
        assert main(argv) == 0, (setting, target)
        with Image.open(out) as png:
            width, height = png.size
        assert width > 2 * height  # one row: input, (stage 1,) the class map, Grad-CAM
        out.unlink()


def test_compute_explanation_two_settings(cat_explanation: Explanation) -> None:
    bundle = load_model()
    image = image_to_tensor(load_sample("cat"), bundle.input_size)
    e = compute_explanation(
        bundle, image, inversion_steps=2, target_steps=3, settings=("paper", "authors")
    )
    assert list(e.gfi_maps) == ["paper", "authors"]
    assert torch.equal(e.gfi_maps["paper"], cat_explanation.gfi_maps["paper"])  # same run
    assert not torch.allclose(e.gfi_maps["authors"], e.gfi_maps["paper"], atol=1e-3)
    assert set(e.seconds) == {"gfi_stage1", "gfi:paper", "gfi:authors", "grad_cam"}
    (row,) = explanation_panels(e)
    titles = [p.title for p in row if p is not None]
    assert len(titles) == 5
    assert titles[2].startswith("GFI paper\n") and titles[3].startswith("GFI authors\n")


def test_refined_alone_has_no_class_agnostic_stage_1() -> None:
    bundle = load_model()
    image = image_to_tensor(load_sample("cat"), bundle.input_size)
    e = compute_explanation(bundle, image, target=285, settings=("refined",))
    assert e.inversion_mask is None and e.inversion_setting is None
    (row,) = explanation_panels(e)
    assert [p.title.split("\n")[0] for p in row if p is not None] == [
        "input (efficientnet-lite0)",
        "GFI refined",
        "LayerGradCam",
    ]
    assert "stage 1" not in explanation_caption(e)  # no stage-1 panel, so no word of it


def test_sample_cat_coffee_is_a_cat_next_to_an_espresso() -> None:
    image = load_sample("sample:cat-coffee")
    assert image.size == (448, 448)
    bundle = load_model()
    # each half on its own is its photo's object for the model
    for box, expected in (((0, 0, 224, 448), 285), ((224, 0, 448, 448), 967)):
        half = image_to_tensor(image.crop(box), bundle.input_size)
        assert int(bundle.predict(half)[0].argmax()) == expected


def test_lr_is_applied_to_every_setting_and_named_in_the_titles() -> None:
    from captum_gfi import GuidedFeatureInversion
    from captum_gfi.presets import resolve_layers

    bundle = load_model()
    image = image_to_tensor(load_sample("cat"), bundle.input_size)
    e = compute_explanation(bundle, image, target=285, settings=("refined",), lr=4e-2)
    # the documented larger step: the same maps as attribute(setting="refined", lr=4e-2)
    preset = resolve_layers(bundle.model)
    gfi = GuidedFeatureInversion(bundle.classifier, preset.layer, preset.inversion_layer)
    want = gfi.attribute(image, target=[285], setting="refined", lr=4e-2)
    assert torch.equal(e.gfi_maps["refined"], want.detach())
    default = gfi.attribute(image, target=[285], setting="refined")
    assert not torch.allclose(want, default, atol=1e-3)  # the step changes the map
    assert e.lr == 0.04
    (row,) = explanation_panels(e)
    assert [p.title.split("\n")[0] for p in row if p is not None][1] == "GFI refined (lr 0.04)"
    with pytest.raises(ValueError, match="lr must be positive and finite"):
        compute_explanation(bundle, image, lr=0.0)


def test_cli_refuses_a_bad_lr_with_its_option_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "sample:cat", "--lr", "-1", *FAST]) == 2
    assert "--lr must be positive and finite" in capsys.readouterr().err
    assert build_parser().parse_args(["explain", "sample:cat"]).lr is None
