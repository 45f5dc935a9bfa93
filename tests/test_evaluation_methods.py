import pytest
import torch

from captum_gfi.evaluation.methods import METHODS, make_method, resolve_module
from captum_gfi.evaluation.runner import toy_convnet


@pytest.mark.parametrize("name", [m for m in METHODS if m != "gfi"])
def test_every_method_returns_input_resolution_maps(name: str) -> None:
    model = toy_convnet()
    x = torch.rand(2, 3, 16, 16)
    attr = make_method(name, model, resolve_module(model, "3"))
    maps = attr(x, torch.tensor([1, 4]))
    assert maps.shape == (2, 1, 16, 16)
    assert torch.isfinite(maps).all()
    if name != "occlusion":
        assert bool((maps >= 0).all())  # unsigned importance maps


def test_gfi_through_the_same_factory() -> None:
    pytest.importorskip("captum_gfi.guided_feature_inversion")
    model = toy_convnet()
    attr = make_method("gfi", model, resolve_module(model, "3"))
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
