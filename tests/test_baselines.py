"""explain, bench and evaluate build Grad-CAM, IntegratedGradients and Occlusion in one place,
``captum_gfi.evaluation.methods.make_method``, with one configuration each."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from captum_gfi import bench, explain
from captum_gfi.cli import main
from captum_gfi.demo.models import LoadedModel
from captum_gfi.demo.toy import toy_convnet, toy_layers
from captum_gfi.evaluation import benchmark_runner, methods, runner

pytestmark = pytest.mark.usefixtures("one_thread")

BASELINES = ("gradcam", "ig", "occlusion")


def _inputs() -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 32, 32, generator=gen), torch.tensor([1, 3])


def test_the_commands_default_to_the_factory_configuration() -> None:
    assert explain.IG_STEPS == methods.IG_STEPS == 32
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert parser.parse_args([]).ig_steps == methods.IG_STEPS
    assert methods.OCCLUSION_WINDOW == pytest.approx(1 / 7)


def test_bench_times_the_factory_baselines() -> None:
    net = toy_convnet()
    preset = toy_layers(net)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    timed = bench.make_methods(net, preset, parser.parse_args([]))
    x, t = _inputs()
    for name in BASELINES:
        expected = methods.make_method(name, net, preset.layer, preset.inversion_layer)(x, t)
        assert torch.equal(timed[name](x, t), expected), name


def test_explain_draws_the_factory_baselines(monkeypatch: pytest.MonkeyPatch) -> None:
    net = toy_convnet()
    bundle = LoadedModel(net, "toy", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 32, list("abcdefghij"))
    monkeypatch.setattr("captum_gfi.presets.resolve_layers", lambda model: toy_layers(net))
    x, _ = _inputs()
    image = x[:1]
    e = explain.compute_explanation(
        bundle, image, target=[1, 3], inversion_steps=1, target_steps=1, settings=["paper"],
        integrated_gradients=True,
    )  # fmt: skip
    batch, t = image.expand(2, -1, -1, -1).contiguous(), torch.tensor([1, 3])
    gradcam = methods.make_method("gradcam", bundle.classifier, net.conv2)(batch, t)
    ig = methods.make_method("ig", bundle.classifier)(batch, t)
    assert torch.equal(e.grad_cam, gradcam)
    assert e.integrated_gradients is not None
    assert torch.equal(e.integrated_gradients, ig)
    assert float(ig.abs().sum()) > 0


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    real = methods.make_method

    def spy(name: str, *args: Any, **kwargs: Any) -> methods.AttributionFn:
        calls.append((name, kwargs))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(module, "make_method", spy)
    return calls


def test_evaluate_builds_the_baselines_with_the_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,label,xmin,ymin,xmax,ymax"]
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / f"{i}.png")
        rows.append(f"{i}.png,{i},2,3,30,28")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    calls = _spy(monkeypatch, runner)
    code = main(
        ["evaluate", "--dataset", "folder", "--root", str(root), "--model", "toy",
         "--image-size", "32", "--step", "512", "--no-progress", "--threads", "1",
         "--methods", ",".join(BASELINES), "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0
    # the factory's own configuration: no option overrides it
    assert sorted(name for name, _ in calls) == sorted(BASELINES)
    assert all(not any(kwargs.values()) for _, kwargs in calls)  # no peer sizes given either
    # the composites/grids runner calls the same factory
    assert benchmark_runner.make_method is methods.make_method


def test_the_factory_builds_the_peers_as_peers_does() -> None:
    pytest.importorskip("pytorch_grad_cam")
    from captum_gfi.evaluation.peers import make_peer

    net = toy_convnet()
    x, t = _inputs()
    assert methods.check_methods("gradcam,xgradcam,rise") == ["gradcam", "xgradcam", "rise"]
    for name in ("xgradcam", "layercam"):
        expected = make_peer(name, net, net.conv2)(x, t)
        assert torch.equal(methods.make_method(name, net, net.conv2)(x, t), expected), name
