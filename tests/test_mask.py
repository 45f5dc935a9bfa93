import pytest
import torch

from captum_gfi.mask import (
    background_input,
    channel_weighted_map,
    feature_mask,
    guided_input,
    minmax_normalize,
    upsample_mask,
)


def test_channel_weighted_map_eq6_by_hand() -> None:
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 2.0]]]])  # (1, 2, 2, 2)
    weights = torch.tensor([[0.5, 2.0]])
    out = channel_weighted_map(weights, features)
    # 0.5 * [1 2; 3 4] + 2 * [0 1; 0 2]
    assert out.shape == (1, 1, 2, 2)
    torch.testing.assert_close(out, torch.tensor([[[[0.5, 3.0], [1.5, 6.0]]]]))


def test_channel_weighted_map_is_per_example() -> None:
    features = torch.rand(3, 4, 5, 5)
    weights = torch.rand(3, 4)
    out = channel_weighted_map(weights, features)
    for i in range(3):
        expected = (weights[i].view(4, 1, 1) * features[i]).sum(0, keepdim=True)
        torch.testing.assert_close(out[i], expected)


def test_minmax_normalize_eq7_by_hand() -> None:
    m = torch.tensor([[[[0.5, 3.0], [1.5, 6.0]]]])
    # (m - 0.5) / (6 - 0.5)
    expected = torch.tensor([[[[0.0, 2.5 / 5.5], [1.0 / 5.5, 1.0]]]])
    torch.testing.assert_close(minmax_normalize(m), expected)


def test_minmax_normalize_is_per_example_and_scale_invariant() -> None:
    m = torch.rand(2, 1, 4, 4)
    m[1] *= 100
    out = minmax_normalize(m)
    assert out.flatten(1).amin(1).tolist() == [0.0, 0.0]
    torch.testing.assert_close(out.flatten(1).amax(1), torch.ones(2))
    torch.testing.assert_close(minmax_normalize(7.0 * m), out)


def test_minmax_normalize_constant_map_is_zero() -> None:
    out = minmax_normalize(torch.full((1, 1, 3, 3), 2.0))
    assert torch.equal(out, torch.zeros(1, 1, 3, 3))


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic", "area"])
def test_upsample_mask_shape_and_range(mode: str) -> None:
    m = minmax_normalize(torch.rand(2, 1, 7, 7))
    up = upsample_mask(m, (224, 224), mode)
    assert up.shape == (2, 1, 224, 224)
    assert float(up.min()) >= 0.0 and float(up.max()) <= 1.0


def test_upsample_mask_same_size_is_identity() -> None:
    m = torch.rand(1, 1, 8, 8)
    assert upsample_mask(m, (8, 8)) is m


def test_feature_mask_returns_both_resolutions() -> None:
    layer_mask, mask = feature_mask(torch.rand(2, 4), torch.rand(2, 4, 7, 7), (28, 28))
    assert layer_mask.shape == (2, 1, 7, 7) and mask.shape == (2, 1, 28, 28)
    torch.testing.assert_close(
        mask, torch.nn.functional.interpolate(layer_mask, size=(28, 28), mode="bilinear")
    )


def test_guided_and_background_inputs_eq2_eq4() -> None:
    x = torch.full((1, 3, 2, 2), 10.0)
    p = torch.full((1, 3, 2, 2), 2.0)
    m = torch.tensor([[[[1.0, 0.0], [0.25, 0.5]]]])
    guided = guided_input(x, p, m)
    removed = background_input(x, p, m)
    torch.testing.assert_close(guided[0, 0], torch.tensor([[10.0, 2.0], [4.0, 6.0]]))
    torch.testing.assert_close(removed[0, 0], torch.tensor([[2.0, 10.0], [8.0, 6.0]]))
    # the two composites partition x + p
    torch.testing.assert_close(guided + removed, x + p)
