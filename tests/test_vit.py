"""GFI on a vision transformer, its tokens read as a spatial grid (docs/howto.md).

torchvision's ``VisionTransformer`` blocks output tokens (N, 1 + h*w, C);
``captum_gfi.reshape.vit_reshape_transform`` drops the class token and reshapes the
patch tokens into an (N, C, h, w) map, so a block can serve as both ``layer`` and
``inversion_layer``.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models import VisionTransformer

from captum_gfi import GuidedFeatureInversion
from captum_gfi.reshape import vit_reshape_transform

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest


def tiny_vit(num_classes: int = 10) -> VisionTransformer:
    """32 x 32 images, 8 x 8 patches: a 4 x 4 grid of 32-dimensional tokens."""
    return VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
        num_classes=num_classes,
    )  # fmt: skip


def quadrant_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images with a bright 8 x 8 square in one quadrant; the label is the quadrant."""
    x = 0.3 * torch.randn(n, 3, 32, 32, generator=generator)
    y = torch.randint(0, 4, (n,), generator=generator)
    for i in range(n):
        r, c = divmod(int(y[i]), 2)
        x[i, :, 16 * r + 4 : 16 * r + 12, 16 * c + 4 : 16 * c + 12] += 2.0
    return x, y


def test_vit_block_tokens_become_a_mask() -> None:
    torch.manual_seed(0)
    vit = tiny_vit().eval()
    gfi = GuidedFeatureInversion(
        vit, vit.encoder.layers[-1], reshape_transform=vit_reshape_transform
    )
    x = torch.randn(3, 3, 32, 32)
    layer_mask = gfi.attribute(x, stage="inversion", return_layer_mask=True)
    assert layer_mask.shape == (3, 1, 4, 4)  # one value per patch
    mask, weights = gfi.attribute(x, target=[1, 2, 3], return_weights=True)
    assert mask.shape == (3, 1, 32, 32)
    assert weights.shape == (3, 32)  # one weight per token dimension
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    # the stage-1 masks are not constant: the token grid carries spatial information
    assert bool((layer_mask.flatten(1).std(dim=1) > 0.01).all())


def test_vit_without_reshape_transform_is_refused() -> None:
    vit = tiny_vit().eval()
    gfi = GuidedFeatureInversion(vit, vit.encoder.layers[-1])
    with pytest.raises(ValueError, match="4-D"):
        gfi.attribute(torch.randn(1, 3, 32, 32), target=0)


def test_trained_vit_mask_finds_the_evidence() -> None:
    """A tiny ViT trained (in seconds) to say which quadrant holds a bright square: the GFI
    mask of the true class puts more of its mass on that quadrant than chance (1/4).

    GFI runs in float64 on 48 held-out images. Its optimisation is chaotic where channel
    weights near 0 (float32 kernel differences between CPUs, e.g. AVX2 vs AVX-512, changed
    single masks and moved the mean over 16 images from 0.40 to 0.26); the per-image
    fractions are bimodal (about 0.55 or 0.15), so the mean needs many images. Measured
    over seeds 0-3, 1 and 2 threads (docs/howto.md): mean 0.33-0.41, true quadrant
    heaviest in 0.44-0.75 of the images.
    """
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    vit = tiny_vit(num_classes=4)
    optimizer = torch.optim.Adam(vit.parameters(), lr=3e-3)
    for _ in range(150):
        x, y = quadrant_batch(64, generator)
        loss = torch.nn.functional.cross_entropy(vit(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    vit.eval().double()
    x, y = quadrant_batch(48, generator)
    x = x.double()
    with torch.no_grad():
        accuracy = float((vit(x).argmax(dim=1) == y).float().mean())
    assert accuracy >= 0.9

    gfi = GuidedFeatureInversion(
        vit, vit.encoder.layers[-1], reshape_transform=vit_reshape_transform
    )
    mask = gfi.attribute(x, target=y)[:, 0]
    # mask mass per quadrant, (N, 4) in the label order (row-major quadrants)
    quadrants = mask.reshape(-1, 2, 16, 2, 16).sum((2, 4)).flatten(1)
    fractions = quadrants.gather(1, y[:, None])[:, 0] / quadrants.sum(1).clamp_min(1e-12)
    mean_fraction = float(fractions.mean())
    heaviest = float((quadrants.argmax(dim=1) == y).double().mean())
    # chance: 0.25 for both; measured minima 0.33 and 0.44 (see the docstring)
    assert mean_fraction > 0.29, fractions.tolist()
    assert heaviest > 0.35, quadrants.argmax(dim=1).tolist()
