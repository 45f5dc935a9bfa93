import math

import pytest
import torch

from captum_gfi.demo.toy import toy_convnet
from captum_gfi.evaluation.methods import (
    CENTER_SIGMA,
    METHODS,
    center_map,
    check_methods,
    make_method,
    resolve_module,
)
from captum_gfi.evaluation.pointing import max_point


@pytest.mark.parametrize("name", [m for m in METHODS if m != "gfi"])
def test_every_method_returns_input_resolution_maps(name: str) -> None:
    model = toy_convnet()
    x = torch.rand(2, 3, 16, 16)
    attr = make_method(name, model, resolve_module(model, "conv2"))
    maps = attr(x, torch.tensor([1, 4]))
    assert maps.shape == (2, 1, 16, 16)
    assert torch.isfinite(maps).all()
    if name != "occlusion":
        assert bool((maps >= 0).all())  # unsigned importance maps


def test_gfi_through_the_same_factory() -> None:
    pytest.importorskip("captum_gfi.guided_feature_inversion")
    model = toy_convnet()
    attr = make_method("gfi", model, resolve_module(model, "conv2"))
    maps = attr(torch.rand(1, 3, 16, 16), torch.tensor([2]))
    assert maps.shape == (1, 1, 16, 16)
    assert bool(((maps >= 0) & (maps <= 1)).all())


def test_bad_names() -> None:
    model = toy_convnet()
    with pytest.raises(ValueError, match="name"):
        make_method("lime", model)
    with pytest.raises(ValueError, match="layer"):
        make_method("gradcam", model)
    with pytest.raises(ValueError, match="layer"):
        resolve_module(model, "nope.0")


def test_center_baseline_peaks_at_the_centre_and_ignores_the_image() -> None:
    model = toy_convnet()
    attr = make_method("center", model)
    maps = attr(torch.rand(2, 3, 15, 21), torch.tensor([0, 1]))
    assert maps.shape == (2, 1, 15, 21)
    assert max_point(maps[0, 0]) == (7, 10) and float(maps[0, 0, 7, 10]) == 1.0
    assert torch.equal(maps[0], maps[1])
    sigma = CENTER_SIGMA * 15  # a pixel one sigma from the centre along a row
    assert float(center_map(torch.zeros(1, 3, 15, 21))[0, 0, 7, 10 + 3]) == pytest.approx(
        math.exp(-9 / (2 * sigma**2))
    )


def test_method_names_and_gfi_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_methods("gradcam, center,gradcam") == ["gradcam", "center"]
    assert check_methods(["gfi", "gfi:authors"]) == ["gfi", "gfi:authors"]
    for bad in ("lime", "gfi:", ""):
        with pytest.raises(ValueError, match="--methods"):
            check_methods(bad)
    from captum_gfi import GuidedFeatureInversion  # type: ignore[attr-defined]

    calls: list[dict] = []

    def fake_attribute(self, inputs, target=None, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs)
        return torch.zeros(inputs.shape[0], 1, *inputs.shape[-2:])

    monkeypatch.setattr(GuidedFeatureInversion, "attribute", fake_attribute)
    model = toy_convnet()
    layer = resolve_module(model, "conv2")
    x, t = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    for name in ("gfi", "gfi:paper", "gfi:authors"):
        assert make_method(name, model, layer)(x, t).shape == (2, 1, 8, 8)
    assert calls[0]["setting"] == "paper" and "target_steps" not in calls[0]
    assert calls[1] == calls[0]  # gfi:paper is gfi
    assert calls[2]["setting"] == "authors" and "target_steps" not in calls[2]


def test_occlusion_window_scales_with_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    from captum.attr import Occlusion

    seen: list[tuple] = []
    real = Occlusion.attribute

    def spy(self, inputs, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((kwargs["sliding_window_shapes"], kwargs["strides"]))
        return real(self, inputs, **kwargs)

    monkeypatch.setattr(Occlusion, "attribute", spy)
    model = toy_convnet()
    make_method("occlusion", model)(torch.rand(1, 3, 28, 28), torch.tensor([0]))
    assert seen == [((3, 4, 4), (3, 2, 2))]  # 224 px -> 32 / 16, so 28 px -> 4 / 2
