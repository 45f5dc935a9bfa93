"""A batch gives each example the map it gets alone. In float64 to 1e-6 (the per-example
arithmetic is batch-independent: only the model's kernels see the batch); in float32 the
non-convex objective amplifies rounding-level differences of those kernels (docs/method.md,
"Batch vs single")."""

from __future__ import annotations

import pytest
import torch

from captum_gfi import GuidedFeatureInversion
from captum_gfi.demo.toy import TinyConvNet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "kwargs",
    [{"setting": "refined"}, {"setting": "paper", "inversion_steps": 3, "target_steps": 6}],
    ids=["refined", "paper"],
)
def test_batch_equals_single_in_float64(kwargs: dict) -> None:
    torch.manual_seed(0)
    net = TinyConvNet().double().eval()
    torch.manual_seed(1)
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    targets = [0, 3, 1, 4]
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    batch = gfi.attribute(x, target=targets, **kwargs)
    single = torch.cat(
        [gfi.attribute(x[i : i + 1], target=t, **kwargs) for i, t in enumerate(targets)]
    )
    assert float(batch.std()) > 0.05
    assert float((batch - single).abs().max()) <= 1e-6


@pytest.mark.slow
def test_refined_batch_equals_single_in_float64_on_lite0() -> None:
    """The shipped EfficientNet-Lite0 and two bundled photos (float64: about 80 s on a
    shared 2-core CPU)."""
    pytest.importorskip("efficientnet_lite_pytorch")
    from captum_gfi.demo.models import load_model
    from captum_gfi.demo.samples import image_to_tensor, load_sample

    loaded = load_model("efficientnet-lite0")
    model = loaded.model.double().eval()
    x = loaded.normalize(
        torch.cat([image_to_tensor(load_sample(n)) for n in ("cat", "astronaut")])
    ).double()
    with torch.no_grad():
        target = model(x).argmax(1)
    gfi = GuidedFeatureInversion.from_model(model)
    batch = gfi.attribute(x, target=target, setting="refined")
    single = torch.cat(
        [gfi.attribute(x[i : i + 1], target=int(target[i]), setting="refined") for i in range(2)]
    )
    assert float((batch - single).abs().max()) <= 1e-6
