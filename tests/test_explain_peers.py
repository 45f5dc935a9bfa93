"""``captum-gfi explain --peers``: the other libraries' methods as columns of the figure, and
the caption, which speaks only of the panels drawn. On the toy net (32 px), with one or two
optimisation steps, so that the file stays fast."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

import captum_gfi.demo.models
import captum_gfi.figure
from captum_gfi import explain
from captum_gfi.cli import build_parser, main
from captum_gfi.demo.models import LoadedModel, load_model
from captum_gfi.demo.toy import TinyConvNet, toy_layers
from captum_gfi.evaluation import peers
from captum_gfi.evaluation.methods import make_method

TOY = ["--model", "toy", "--inversion-steps", "1", "--target-steps", "1", "--no-progress"]


@pytest.fixture
def toy_image(tmp_path: Path) -> Path:
    path = tmp_path / "noise.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def toy_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    # the presets know no toy net: its layers (conv2 for Grad-CAM and the peers, pool for l0)
    monkeypatch.setattr("captum_gfi.presets.resolve_layers", toy_layers)


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures ``explain`` saves."""
    saved: list[Figure] = []
    real = captum_gfi.figure.save_figure

    def spy(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
        saved.append(fig)
        return real(fig, path, dpi=dpi)

    monkeypatch.setattr(captum_gfi.figure, "save_figure", spy)
    return saved


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``load_model`` records its calls and loads nothing: the checks must come first."""
    calls: list[str] = []

    def load(spec: str, *args: Any, **kwargs: Any) -> LoadedModel:
        calls.append(spec)
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(captum_gfi.demo.models, "load_model", load)
    return calls


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.get_axes() if ax.get_title()]


def _caption(fig: Figure) -> str:
    return " ".join(" ".join(t.get_text().split()) for t in fig.texts)


def _needs_peers() -> None:
    pytest.importorskip("pytorch_grad_cam")
    pytest.importorskip("torchray")


# ----------------------------------------------------------------------- options
def test_help_lists_every_peer_and_the_factory_defaults() -> None:
    # explain's --help lists the peers without importing torch: the same names, in order
    assert explain._GRAD_CAM_PEERS == tuple(peers.GRAD_CAM_METHODS)
    assert explain._TORCHRAY_PEERS == peers.TORCHRAY_METHODS
    assert (*explain._GRAD_CAM_PEERS, *explain._TORCHRAY_PEERS) == peers.PEERS
    assert explain._EXTREMAL_ITERATIONS == peers.EXTREMAL_ITERATIONS == 800
    assert explain._RISE_MASKS == peers.RISE_MASKS == 8000
    parser = argparse.ArgumentParser()
    explain.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "pytorch-grad-cam's gradcam++, scorecam, layercam, xgradcam, pgc_gradcam" in text
    assert "TorchRay's extremal_perturbation, rise" in text
    assert f"needs the peers extra: {peers.INSTALL_HINT}" in text
    assert "(default 800, TorchRay's;" in text and "(default 8000, TorchRay's;" in text
    args = build_parser().parse_args(["explain", "sample:cat"])
    assert (args.peers, args.extremal_iterations, args.rise_masks) == (None, None, None)


def test_parse_peer_names() -> None:
    _needs_peers()
    assert explain.parse_peer_names(None) == []
    assert explain.parse_peer_names("rise") == ["rise"]
    assert explain.parse_peer_names(" scorecam , gradcam++ ,") == ["scorecam", "gradcam++"]
    assert explain.parse_peer_names(",".join(peers.PEERS)) == list(peers.PEERS)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gradcam", "--peers 'gradcam' is unknown (Captum's LayerGradCam is always drawn; "
         "pytorch-grad-cam's is pgc_gradcam); the peers are gradcam++, scorecam, layercam, "
         "xgradcam, pgc_gradcam, extremal_perturbation, rise"),
        ("ig", "--peers 'ig' is unknown (--ig draws Captum's IntegratedGradients); the peers "),
        ("layer_cam", "--peers 'layer_cam' is unknown (did you mean 'layercam'?); the peers "),
        ("score-cam", "--peers 'score-cam' is unknown (did you mean 'scorecam'?); the peers are "),
        ("lime", "--peers 'lime' is unknown; the peers are gradcam++, scorecam,"),
        ("rise,rise", "--peers names a peer twice: 'rise,rise'"),
        (" , ", "--peers needs at least one name of gradcam++, scorecam,"),
    ],
)  # fmt: skip
def test_parse_peer_names_errors(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        explain.parse_peer_names(value)
    assert str(info.value).startswith(message), str(info.value)


def test_cli_unknown_peer_fails_before_the_model_loads(
    toy_image: Path, no_model: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(toy_image), "--peers", "gradcam++,lime", *TOY]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "captum-gfi explain: error: --peers 'lime' is unknown; the peers are gradcam++, "
        "scorecam, layercam, xgradcam, pgc_gradcam, extremal_perturbation, rise"
    )
    assert no_model == []


@pytest.mark.parametrize(
    ("peer", "library", "modules"),
    [
        ("gradcam++", "grad-cam==1.5.7", "pytorch_grad_cam"),
        ("scorecam", "grad-cam==1.5.7", "pytorch_grad_cam"),
        ("rise", "torchray==1.0.0.2", "torchray"),
        ("extremal_perturbation", "torchray==1.0.0.2", "torchray"),
    ],
)
def test_cli_missing_peers_extra_fails_before_the_model_loads(
    peer: str,
    library: str,
    modules: str,
    toy_image: Path,
    no_model: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the library not installed: its modules (and any already imported submodule) cannot
    # be imported
    for name in [modules, *(m for m in list(sys.modules) if m.startswith(modules + "."))]:
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["explain", str(toy_image), "--peers", peer, *TOY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"captum-gfi explain: error: --peers {peer!r}: method {peer!r} comes from {library}"
    ), err
    assert err.endswith(
        f"which is not installed: install the peers extra with `{peers.INSTALL_HINT}` "
        "(or `pip install 'captum-gfi[peers]'`)"
    ), err
    assert "\n" not in err
    assert no_model == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--rise-masks", "0"], "--rise-masks must be a positive int, got 0"),
        (["--extremal-iterations", "-3"], "--extremal-iterations must be a positive int, got -3"),
        (["--rise-masks", "100"], "--rise-masks configures --peers rise, which is not asked for"),
        (
            ["--extremal-iterations", "50"],
            "--extremal-iterations configures --peers extremal_perturbation, which is not "
            "asked for",
        ),
    ],
)
def test_cli_peer_options_are_checked_before_the_model_loads(
    options: list[str],
    message: str,
    toy_image: Path,
    no_model: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", str(toy_image), *options, *TOY]) == 2
    assert capsys.readouterr().err.strip() == f"captum-gfi explain: error: {message}"
    assert no_model == []


def test_compute_explanation_checks_the_peers(toy_presets: None) -> None:
    bundle = load_model("toy")
    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="peers: 'lime' is not one of gradcam"):
        explain.compute_explanation(bundle, image, peers=("lime",))
    with pytest.raises(ValueError, match=r"peers names a peer twice: \['rise', 'rise'\]"):
        explain.compute_explanation(bundle, image, peers=("rise", "rise"))
    with pytest.raises(ValueError, match="rise_masks must be a positive int or None, got 0"):
        explain.compute_explanation(bundle, image, peers=("rise",), rise_masks=0)


# ----------------------------------------------------------------------- the panels
@pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning")  # TorchRay's call
def test_cli_draws_one_panel_per_peer_and_class(
    toy_image: Path,
    toy_presets: None,
    figures: list[Figure],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _needs_peers()
    out = tmp_path / "peers.png"
    argv = [
        "explain", str(toy_image), "--target", "1,3", "--setting", "refined", "--out", str(out),
        "--peers", "gradcam++,scorecam,extremal_perturbation,rise",
        "--extremal-iterations", "1", "--rise-masks", "8", *TOY,
    ]  # fmt: skip
    assert main(argv) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out
    (fig,) = figures
    titles = _titles(fig)
    rows = [[t.split("\n")[:2] for t in titles if f"\nclass: class {k} (" in t] for k in (1, 3)]
    for row in rows:  # one row per class: GFI, Grad-CAM, then each peer with its library
        assert [lines[0] for lines in row] == [
            "GFI refined", "LayerGradCam", "gradcam++", "scorecam",
            "extremal_perturbation (1 iteration)", "rise (8 masks)",
        ]  # fmt: skip
        assert [lines[1] for lines in row[2:]] == [
            "grad-cam 1.5.7", "grad-cam 1.5.7", "torchray 1.0.0.2", "torchray 1.0.0.2",
        ]  # fmt: skip
    assert "stage 1" not in _caption(fig)  # refined alone has no stage-1 panel


def test_peer_maps_are_the_factorys(toy_presets: None) -> None:
    _needs_peers()
    bundle = load_model("toy")
    net = bundle.model
    assert isinstance(net, TinyConvNet)
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    e = explain.compute_explanation(
        bundle, image, [1, 3], inversion_steps=1, target_steps=1, settings=("paper",),
        peers=("layercam", "xgradcam", "rise"), rise_masks=8,
    )  # fmt: skip
    assert list(e.peer_maps) == ["layercam", "xgradcam", "rise"]
    assert e.peer_configurations == {"rise": "8 masks"}
    assert {k for k in e.seconds if k.startswith("peer:")} == {
        "peer:layercam", "peer:xgradcam", "peer:rise",
    }  # fmt: skip
    batch, target = image.expand(2, -1, -1, -1).contiguous(), torch.tensor([1, 3])
    # the authors' settings through make_method, on Grad-CAM's layer, as evaluate builds them
    for name in ("layercam", "xgradcam"):
        expected = make_method(name, bundle.classifier, net.conv2, net.pool)(batch, target)
        assert e.peer_maps[name].shape == (2, 1, 32, 32)
        assert torch.equal(e.peer_maps[name], expected), name
    rise = peers.make_peer("rise", bundle.classifier, num_masks=8)(batch, target)
    assert torch.equal(e.peer_maps["rise"], rise)
    first, second = explain.explanation_panels(e)
    assert [p.title for p in first[-3:] if p is not None] == [
        f"layercam\ngrad-cam 1.5.7\nclass: {e.label(1)}",
        f"xgradcam\ngrad-cam 1.5.7\nclass: {e.label(1)}",
        f"rise (8 masks)\ntorchray 1.0.0.2\nclass: {e.label(1)}",
    ]
    assert all(p is not None and p.title.endswith(f"class: {e.label(3)}") for p in second[1:])


def test_authors_counts_given_explicitly_are_the_factorys(
    toy_presets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --rise-masks 8000 / --extremal-iterations 800 are the authors' counts: built by
    # make_method as evaluate builds them, and not labelled as a change; other counts go to
    # the same factory as peer_options. Recorded, not run (8000 masks is slow).
    calls: list[tuple[str, str, dict[str, Any]]] = []

    def stub(factory: str) -> Any:
        def build(name: str, *args: Any, **kwargs: Any) -> Any:
            calls.append((factory, name, kwargs))
            return lambda inputs, target: torch.ones(inputs.shape[0], 1, *inputs.shape[2:])

        return build

    monkeypatch.setattr("captum_gfi.evaluation.methods.make_method", stub("make_method"))
    monkeypatch.setattr("captum_gfi.evaluation.peers.make_peer", stub("make_peer"))
    bundle = load_model("toy")
    image = torch.rand(1, 3, 32, 32)
    options: dict[str, Any] = {"inversion_steps": 1, "target_steps": 1, "settings": ("refined",)}
    e = explain.compute_explanation(
        bundle, image, 2, peers=("rise", "extremal_perturbation", "scorecam"),
        rise_masks=8000, extremal_iterations=800, **options,
    )  # fmt: skip
    assert e.peer_configurations == {}
    assert [(f, n) for f, n, _ in calls] == [
        ("make_method", "rise"), ("make_method", "extremal_perturbation"),
        ("make_method", "scorecam"), ("make_method", "gradcam"),
    ]  # fmt: skip
    (row,) = explain.explanation_panels(e)
    assert [p.title.split("\n")[0] for p in row[-3:] if p is not None] == [
        "rise", "extremal_perturbation", "scorecam",
    ]  # fmt: skip
    calls.clear()
    e = explain.compute_explanation(
        bundle, image, 2, peers=("rise", "extremal_perturbation"), rise_masks=1,
        extremal_iterations=3, **options,
    )  # fmt: skip
    assert e.peer_configurations == {"rise": "1 mask", "extremal_perturbation": "3 iterations"}
    assert calls[:2] == [
        ("make_method", "rise", {"peer_options": {"num_masks": 1}}),
        ("make_method", "extremal_perturbation", {"peer_options": {"max_iter": 3}}),
    ]


# ----------------------------------------------------------------------- the caption
@pytest.mark.parametrize(("setting", "stage1"), [("refined", False), ("paper", True)])
def test_caption_speaks_only_of_the_panels_drawn(
    setting: str,
    stage1: bool,
    toy_image: Path,
    toy_presets: None,
    figures: list[Figure],
    tmp_path: Path,
) -> None:
    out = tmp_path / "caption.png"
    assert main(["explain", str(toy_image), "--setting", setting, "--out", str(out), *TOY]) == 0
    (fig,) = figures
    caption = _caption(fig)
    has_panel = any(t.startswith("GFI stage 1 (paper)\n") for t in _titles(fig))
    assert has_panel is stage1
    assert caption.startswith("Each row explains the class named in its titles; red is high")
    if stage1:
        assert caption == explain.CAPTION
        assert "GFI's stage 1 ignores the class" in caption
    else:
        assert "stage 1" not in caption
        assert caption.endswith("(1 on its colour bar). A class map should cover only its class.")


def test_explain_runs_the_toy_model_from_the_command_line(tmp_path: Path) -> None:
    # the toy net has no preset of captum_gfi.presets: explain uses demo.toy.toy_layers
    from captum_gfi.cli import main

    out = tmp_path / "toy.png"
    argv = ["explain", "sample:cat", "--model", "toy", "--setting", "refined",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert out.stat().st_size > 0
