import pytest
import torch

from captum_gfi.background import (
    IMAGENET_MEAN,
    gaussian_blur,
    gaussian_kernel1d,
    make_background,
)


def test_kernel_normalised_and_truncated_at_3_sigma() -> None:
    k = gaussian_kernel1d(11.0, torch.float64, torch.device("cpu"))
    assert k.numel() == 2 * 33 + 1
    torch.testing.assert_close(k.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert int(k.argmax()) == 33


def test_blur_keeps_constant_image_and_shape() -> None:
    x = torch.full((2, 3, 20, 30), 0.7)
    out = gaussian_blur(x, 11.0)
    assert out.shape == x.shape
    torch.testing.assert_close(out, x)


def test_blur_matches_2d_convolution_in_the_interior() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 1, 40, 40, dtype=torch.float64)
    sigma = 2.0
    k = gaussian_kernel1d(sigma, torch.float64, torch.device("cpu"))
    k2 = torch.outer(k, k).view(1, 1, k.numel(), k.numel())
    ref = torch.nn.functional.conv2d(x, k2)  # valid part only
    r = k.numel() // 2
    out = gaussian_blur(x, sigma)
    torch.testing.assert_close(out[..., r:-r, r:-r], ref)


def test_blur_reduces_variance_and_handles_small_images() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 8, 8)  # smaller than the 67-tap kernel
    out = gaussian_blur(x, 11.0)
    assert out.shape == x.shape
    assert float(out.var()) < float(x.var())


def test_mean_background_in_normalised_space() -> None:
    x = torch.zeros(2, 3, 4, 4)
    norm = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    p = make_background(x, "mean", normalization=norm)
    expected = [(m - 0.5) / 0.5 for m in IMAGENET_MEAN]
    torch.testing.assert_close(p[1, :, 2, 3], torch.tensor(expected))
    raw = make_background(x, "mean")
    torch.testing.assert_close(raw[0, :, 0, 0], torch.tensor(IMAGENET_MEAN))


def test_mean_background_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match="3-channel"):
        make_background(torch.zeros(1, 1, 4, 4), "mean")


def test_noise_is_seeded_and_matches_statistics() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64) * 2 + 1
    g1 = torch.Generator().manual_seed(5)
    g2 = torch.Generator().manual_seed(5)
    a = make_background(x, "noise", generator=g1)
    b = make_background(x, "noise", generator=g2)
    assert torch.equal(a, b)
    torch.testing.assert_close(a.mean((2, 3)), x.mean((2, 3)), atol=0.15, rtol=0)
    torch.testing.assert_close(a.std((2, 3)), x.std((2, 3)), atol=0.15, rtol=0)


def test_tensor_background_broadcasts() -> None:
    x = torch.rand(2, 3, 4, 4)
    p = make_background(x, torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1))
    assert p.shape == x.shape
    assert float(p[1, 2, 3, 3]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="broadcastable"):
        make_background(x, torch.zeros(5))


def test_unknown_background() -> None:
    with pytest.raises(ValueError, match="baseline must be one of"):
        make_background(torch.rand(1, 3, 4, 4), "zeros")
