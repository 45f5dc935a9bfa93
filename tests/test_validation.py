"""Every bad or unusual input of issue 11 gets a clear error or warning, never a silent
NaN or empty map, and the model is left as it was (the ``untouched`` fixture)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion
from captum_gfi.demo.toy import TinyConvNet

FAST = {"inversion_steps": 2, "target_steps": 2}
Untouched = Callable[[nn.Module], AbstractContextManager[None]]

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest


class Counting(nn.Module):
    """The user's model behind a wrapper that counts forward calls."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.net(x)


def counting_gfi(net: TinyConvNet) -> tuple[GuidedFeatureInversion, Counting]:
    model = Counting(net)
    return GuidedFeatureInversion(model, net.conv2, net.pool), model


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        # the background
        ({"baseline": torch.full((1, 3, 16, 16), NAN)}, ValueError, "baseline tensor contains NaN"),
        ({"baseline": torch.full((3, 1, 1), INF)}, ValueError, "baseline tensor contains NaN"),
        ({"baseline": torch.zeros(2, 3, 16, 16)}, ValueError, r"shape \(2, 3, 16, 16\) is not br"),
        ({"baseline": torch.zeros(3, 3, 16, 16, dtype=torch.bool)}, TypeError, "real-valued"),
        # the weights of Eq. (8) and (9)
        ({"lam": NAN}, ValueError, r"lam must be finite and non-negative .*background term"),
        ({"delta": INF}, ValueError, r"delta must be finite .*Eq. \(9\)\), got inf"),
        ({"gamma": -1}, ValueError, r"gamma must be .*\(gamma >= 0; 0 is allowed: .*got -1"),
        ({"gamma": "10"}, TypeError, "gamma must be a real number, got str"),
        ({"blur_radius": -1.0}, ValueError, r"blur_radius must .* no blur\), got -1.0"),
        # the optimiser
        ({"lr": -0.01}, ValueError, r"lr must be positive and finite \(lr > 0\), got -0.01"),
        ({"lr": INF}, ValueError, "lr must be positive and finite"),
        ({"lr": NAN}, ValueError, "lr must be positive and finite"),
        ({"lr_decay": 0}, ValueError, r"lr_decay must be in \(0, 1\] .*got 0"),
        ({"lr_decay": 1.5}, ValueError, r"lr_decay must be in \(0, 1\]"),
        ({"lr_decay": NAN}, ValueError, r"lr_decay must be in \(0, 1\]"),
        ({"lr_decay_every": 0}, ValueError, r"lr_decay_every must be a positive int \(>= 1\)"),
        ({"lr_decay_every": 2.0}, ValueError, "lr_decay_every must be a positive int"),
        ({"inversion_steps": True}, ValueError, "inversion_steps must be a non-negative int"),
        ({"target_steps": -1}, ValueError, r"target_steps must be a non-negative int .*got -1"),
        ({"target_steps": 2.5}, ValueError, "target_steps must be a non-negative int"),
        # the start of the weights
        ({"init_weight": NAN}, ValueError, r"init_weight must be finite and non-negative"),
        ({"init_weight": -0.1}, ValueError, r"init_weight must be .*got -0.1"),
        ({"init_weight": torch.tensor([0.1, NAN])}, ValueError, "tensor with NaN"),
        ({"init_weight": torch.full((16,), -1.0)}, ValueError, r"a value below weight_min \(-1\)"),
        # the rest
        ({"seed": "0"}, TypeError, "seed must be an int or None"),
        ({"baseline": "mean", "normalization": ((0.5,) * 3, (0.0,) * 3)}, ValueError, "std > 0"),
        ({"baseline": "mean", "normalization": "imagenet"}, ValueError, "normalization must be"),
    ],
)
def test_bad_arguments_fail_before_the_model_runs(
    net: TinyConvNet,
    images: Tensor,
    untouched: Untouched,
    kwargs: dict[str, Any],
    error: type,
    match: str,
) -> None:
    gfi, model = counting_gfi(net)
    with untouched(net), pytest.raises(error, match=match):
        gfi.attribute(images, target=0, **{**FAST, **kwargs})
    assert model.calls == 0  # checked up front, once, before the model is touched


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        (torch.full((1, 3, 16, 16), float("nan")), ValueError, "NaN or infinite"),
        (torch.full((1, 3, 16, 16), float("inf")), ValueError, "NaN or infinite"),
        (torch.rand(0, 3, 16, 16), ValueError, "empty batch"),
        (torch.rand(1, 3, 0, 16), ValueError, "empty channel or spatial size"),
    ],
    ids=["nan", "inf", "empty-batch", "empty-image"],
)
def test_bad_inputs_fail_before_the_model_runs(
    net: TinyConvNet, untouched: Untouched, inputs: Tensor, error: type, match: str
) -> None:
    gfi, model = counting_gfi(net)
    with untouched(net), pytest.raises(error, match=match):
        gfi.attribute(inputs, target=0, **FAST)
    assert model.calls == 0


@pytest.mark.parametrize(
    ("dtype", "fix"),
    [(torch.float16, r"inputs.float\(\) or model.half\(\)"), (torch.float64, r"model.double\(\)")],
)
def test_dtype_mismatch_says_how_to_fix_it(
    net: TinyConvNet, images: Tensor, untouched: Untouched, dtype: torch.dtype, fix: str
) -> None:
    gfi, model = counting_gfi(net)
    with (
        untouched(net),
        pytest.raises(TypeError, match=rf"dtype {dtype} but .* torch.float32: .*{fix}"),
    ):
        gfi.attribute(images.to(dtype), target=0, **FAST)
    assert model.calls == 0  # no hook installed, no raw error from inside the network


def test_low_precision_inputs_with_autocast_are_fine(net: TinyConvNet, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    mask = gfi.attribute(images.bfloat16(), target=0, autocast=True, **FAST)
    assert mask.dtype == torch.bfloat16 and bool(torch.isfinite(mask).all())


def test_device_mismatch_says_how_to_fix_it(images: Tensor, untouched: Untouched) -> None:
    net = TinyConvNet().to("meta").eval()
    gfi, model = counting_gfi(net)
    with untouched(net), pytest.raises(TypeError, match=r"on cpu .* on meta: .*model.to\('cpu'\)"):
        gfi.attribute(images, target=0, **FAST)
    assert model.calls == 0


def test_nan_in_the_model_is_reported(net: TinyConvNet, images: Tensor, untouched: Untouched):
    with torch.no_grad():
        net.conv1.bias[0] = float("nan")
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    with untouched(net), pytest.raises(ValueError, match="layer's output contains NaN"):
        gfi.attribute(images, target=0, **FAST)


def test_overflow_is_reported(net: TinyConvNet, images: Tensor, untouched: Untouched) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    with untouched(net), pytest.raises(ValueError, match=r"lr = 1e\+38 is too large for torch"):
        gfi.attribute(images, target=0, lr=1e38, **FAST)
    # a valid but absurd lr: the weights overflow, reported instead of a NaN map
    with untouched(net), pytest.raises(ValueError, match=r"\[0, 1, 2\]: the loss overflowed"):
        gfi.attribute(images, target=0, lr=1e30, **FAST)


def test_numpy_seed(net: TinyConvNet, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    a = gfi.attribute(images, target=0, baseline="noise", seed=np.int64(3), **FAST)
    assert torch.equal(a, gfi.attribute(images, target=0, baseline="noise", seed=3, **FAST))


def test_wrong_layers(net: TinyConvNet, images: Tensor, untouched: Untouched) -> None:
    with untouched(net), pytest.raises(ValueError, match="is not a submodule"):
        GuidedFeatureInversion(net, nn.Conv2d(3, 3, 1))
    with untouched(net), pytest.raises(ValueError, match="layer must produce a 4-D"):
        GuidedFeatureInversion(net, net.fc).attribute(images, target=0, **FAST)
    gfi = GuidedFeatureInversion(lambda x: net(x), nn.Conv2d(3, 3, 1))
    with untouched(net), pytest.raises(ValueError, match="layer was not called"):
        gfi.attribute(images, target=0, **FAST)


def test_init_weight_of_the_wrong_shape(
    net: TinyConvNet, images: Tensor, untouched: Untouched
) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    with untouched(net), pytest.raises(ValueError, match=r"does not broadcast .* \(3, 16\)"):
        gfi.attribute(images, target=0, init_weight=torch.ones(2, 16), **FAST)


# ----------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    "target",
    [
        np.int64(1),
        np.int32(1),
        np.array(1),
        np.array([1]),
        torch.tensor(1, dtype=torch.int32),
        torch.tensor([1], dtype=torch.uint8),
    ],
    ids=["np.int64", "np.int32", "np-0d", "np-1", "torch-int32-0d", "torch-uint8-1"],
)
def test_one_target_for_all_in_any_integer_form(
    net: TinyConvNet, images: Tensor, untouched: Untouched, target: object
) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    expected = gfi.attribute(images, target=1, **FAST)
    with untouched(net):
        got = gfi.attribute(images, target=target, **FAST)  # type: ignore[arg-type]
    assert torch.equal(got, expected)


@pytest.mark.parametrize(
    "target",
    [
        np.array([1, 2, 0]),
        np.array([1, 2, 0], dtype=np.int32),
        np.argmax(np.eye(5)[[1, 2, 0]], axis=1),
        [np.int64(1), np.int64(2), np.int64(0)],
        torch.tensor([1, 2, 0], dtype=torch.int32),
    ],
    ids=["np-int64", "np-int32", "np.argmax", "list-of-np", "torch-int32"],
)
def test_one_target_per_example_in_any_integer_form(
    net: TinyConvNet, images: Tensor, untouched: Untouched, target: object
) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    expected = gfi.attribute(images, target=[1, 2, 0], **FAST)
    with untouched(net):
        got = gfi.attribute(images, target=target, **FAST)  # type: ignore[arg-type]
    assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        (1.0, TypeError, "target must be an int, .* got float 1.0"),
        (True, TypeError, "target must be an int"),
        (np.float64(1.0), TypeError, "got float64"),
        (np.array([1.0, 2.0, 0.0]), TypeError, r"numpy float64 array; convert it with .astype"),
        (torch.tensor([1.0, 2.0, 0.0]), TypeError, r"torch.float32 tensor; convert it with .long"),
        ([1, 2.0, 0], TypeError, r"target\[1\] must be an integer index, got float"),
        ((np.float32(1),), TypeError, "target must be an integer index"),
        (
            np.int64(7),
            ValueError,
            r"target = 7 is out of range .*: 5 classes, valid indices 0 to 4",
        ),
        (np.array([0, 1, 9]), ValueError, r"values in \[0, 9\], out of range for 5 classes"),
        (np.array([[0, 1, 2]]), ValueError, "one index or one per example"),
        (np.array([0, 1]), ValueError, "one index or one per example"),
    ],
)
def test_bad_targets(
    net: TinyConvNet,
    images: Tensor,
    untouched: Untouched,
    target: object,
    error: type,
    match: str,
) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    with untouched(net), pytest.raises(error, match=match):
        gfi.attribute(images, target=target, **FAST)  # type: ignore[arg-type]


# ------------------------------------------------------------ degenerate maps


def uninformative(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "uninformative mask" in str(w.message)]


def test_one_pixel_layer_map_warns(net: TinyConvNet, untouched: Untouched) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    x = torch.randn(2, 3, 1, 1)
    with untouched(net), pytest.warns(UserWarning, match=r"\[0, 1\], layer's .* 1x1, a single"):
        mask = gfi.attribute(x, target=0, **FAST)
    assert mask.shape == (2, 1, 1, 1) and bool(torch.isfinite(mask).all())


def test_flat_channels_warn(net: TinyConvNet, images: Tensor, untouched: Untouched) -> None:
    with torch.no_grad():  # conv2 outputs zeros: every channel of relu2 is flat
        net.conv2.weight.zero_()
        net.conv2.bias.zero_()
    gfi = GuidedFeatureInversion(net, net.relu2, net.pool)
    with untouched(net), pytest.warns(UserWarning, match="every channel of layer's output is con"):
        mask = gfi.attribute(images, target=0, **FAST)
    assert bool(torch.isfinite(mask).all()) and bool((mask == 0).all())


def test_constant_image_warns(net: TinyConvNet, untouched: Untouched) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    x = torch.full((1, 3, 16, 16), 0.3)
    with untouched(net), pytest.warns(UserWarning, match=r"\[0\], the input equals its backgr"):
        mask = gfi.attribute(x, target=0, **FAST)
    assert bool(torch.isfinite(mask).all())


def test_constant_final_mask_warns_once_naming_the_examples(
    net: TinyConvNet, images: Tensor, untouched: Untouched
) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    x = images.clone()
    x[2] = 0.5  # a constant image: the input equals its blurred background
    w0 = torch.tensor([[0.1], [0.0], [0.1]])  # example 1: every weight zero, mask constant
    with untouched(net), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        mask = gfi.attribute(x, stage="inversion", inversion_steps=0, init_weight=w0)
    messages = uninformative(record)
    assert len(messages) == 1  # one warning per call, every reason in it
    assert "the mask of example(s) [1] is constant" in messages[0]
    assert "example(s) [2], the input equals its background" in messages[0]
    assert bool(torch.isfinite(mask).all()) and bool((mask[1] == 0).all())


def test_no_warning_on_an_ordinary_call(net: TinyConvNet, images: Tensor) -> None:
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        gfi.attribute(images, target=0, **FAST)
    assert uninformative(record) == []


def test_real_model_on_a_constant_image_warns(untouched: Untouched) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    from captum_gfi.demo.models import load_model

    model = load_model("efficientnet-lite0").model
    gfi = GuidedFeatureInversion.from_model(model)
    x = torch.zeros(1, 3, 224, 224)  # a grey image (0 is mid-grey after normalisation)
    with untouched(model), pytest.warns(UserWarning, match="the input equals its background"):
        mask = gfi.attribute(x, target=0, inversion_steps=1, target_steps=1)
    assert mask.shape == (1, 1, 224, 224) and bool(torch.isfinite(mask).all())
