"""Inputs and callers that used to give a raw torch error, a silent wrong map or a changed
model now get a one-line message naming the argument (and the model is left as found)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
import torch
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion
from captum_gfi.background import gaussian_blur
from captum_gfi.demo.toy import TinyConvNet
from captum_gfi.settings import SETTINGS, GFISettings

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"inversion_steps": 2, "target_steps": 2}
Untouched = Callable[[nn.Module], AbstractContextManager[None]]


def gfi_of(net: TinyConvNet) -> GuidedFeatureInversion:
    return GuidedFeatureInversion(net, net.conv2, net.pool)


# ------------------------------------------------------------------- the inputs
@pytest.mark.parametrize("channels", [1, 4])
def test_wrong_number_of_channels(net: TinyConvNet, untouched: Untouched, channels: int) -> None:
    x = torch.randn(2, channels, 16, 16)
    with (
        untouched(net),
        pytest.raises(
            ValueError,
            match=rf"^inputs have {channels} channels but the model's first convolution "
            r"\(Conv2d\(3, 8, .*\) takes 3: pass 3-channel images",
        ),
    ):
        gfi_of(net).attribute(x, target=0, **FAST)


def test_wrong_number_of_channels_behind_a_lambda(net: TinyConvNet) -> None:
    gfi = GuidedFeatureInversion(lambda z: net(z), net.conv2, net.pool)
    with pytest.raises(ValueError, match="inputs have 1 channels"):
        gfi.attribute(torch.randn(2, 1, 16, 16), target=0, **FAST)


def test_other_model_errors_name_the_inputs(untouched: Untouched) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 2))
    with (
        untouched(net),
        pytest.raises(ValueError, match=r"^forward_func failed on inputs of shape \(1, 3, 8, 8\)"),
    ):
        GuidedFeatureInversion(net, net[1]).attribute(torch.randn(1, 3, 8, 8), target=0)


def test_inference_mode_is_refused(net: TinyConvNet, images: Tensor, untouched: Untouched) -> None:
    with (
        untouched(net),
        torch.inference_mode(),
        pytest.raises(RuntimeError, match=r"cannot run inside torch.inference_mode\(\).*no_grad"),
    ):
        gfi_of(net).attribute(images, target=0, **FAST)


def test_inputs_made_under_inference_mode_are_fine(net: TinyConvNet, images: Tensor) -> None:
    expected = gfi_of(net).attribute(images, target=0, **FAST)
    with torch.inference_mode():
        x = images.clone()
        baseline = torch.zeros_like(images)
    assert x.is_inference()
    torch.testing.assert_close(gfi_of(net).attribute(x, target=0, **FAST), expected)
    assert gfi_of(net).attribute(x, target=0, baseline=baseline, **FAST).shape == (3, 1, 16, 16)


def test_huge_inputs_blame_the_inputs(net: TinyConvNet, images: Tensor) -> None:
    with pytest.raises(ValueError, match=r"^inputs: layer's features .*max \|x\| = .*e\+30\)"):
        gfi_of(net).attribute(images * 1e30, target=0, **FAST)


@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        (
            2**64,
            ValueError,
            r"seed must be in \[-2\*\*63, 2\*\*64 - 1\] .*got 18446744073709551616",
        ),
        (-(2**63) - 1, ValueError, r"seed must be in \[-2\*\*63"),
        (1.5, TypeError, "seed must be an int or None, got float"),
    ],
)
def test_seed_range(net: TinyConvNet, images: Tensor, seed: object, error: type, match: str):
    with pytest.raises(error, match=match):
        gfi_of(net).attribute(images, target=0, baseline="noise", seed=seed, **FAST)  # type: ignore[arg-type]


def test_largest_seed_works(net: TinyConvNet, images: Tensor) -> None:
    mask = gfi_of(net).attribute(images, target=0, baseline="noise", seed=2**64 - 1, **FAST)
    assert bool(torch.isfinite(mask).all())


def test_huge_blur_radius_is_the_limit_of_the_blur(net: TinyConvNet, images: Tensor) -> None:
    """blur_radius=1e9 used to allocate a kernel of 6e9 taps (24 GB): the kernel is at most
    twice the image wide, and the blur equals the blur of an edge-replicated image by an
    (all but) flat kernel of that width."""
    huge = gaussian_blur(images.double(), 1e9)
    n = 16
    flat = torch.ones(2 * n - 1, dtype=torch.float64)
    flat[0] = flat[-1] = (1e9 * 3 - (n - 1)) + 1  # every tap from n - 1 to 3 sigma
    flat /= flat.sum()
    padded = nn.functional.pad(images.double(), (n - 1,) * 4, mode="replicate")
    k = flat.view(1, 1, 1, -1).expand(3, 1, 1, -1)
    ref = nn.functional.conv2d(padded, k, groups=3)
    ref = nn.functional.conv2d(ref, k.transpose(2, 3), groups=3)
    torch.testing.assert_close(huge, ref, rtol=0, atol=1e-6)
    mask = gfi_of(net).attribute(images, target=0, blur_radius=1e9, **FAST)
    assert bool(torch.isfinite(mask).all())


# ------------------------------------------------------------------ the settings
@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"lr": -1}, ValueError, r"^lr must be positive and finite \(lr > 0\), got -1$"),
        ({"inversion_steps": -3}, ValueError, r"^inversion_steps must be a non-negative int"),
        ({"target_steps": 1.5}, ValueError, r"^target_steps must be a non-negative int"),
        ({"lr_decay_every": 0}, ValueError, r"^lr_decay_every must be a positive int"),
        ({"lr_decay": 2.0}, ValueError, r"^lr_decay must be in \(0, 1\]"),
        ({"gamma": math.nan}, ValueError, r"^gamma must be finite .*no L1 penalty in Eq. \(8\)"),
        ({"lam": -1.0}, ValueError, r"^lam must be finite and non-negative"),
        ({"weight_min": math.nan}, ValueError, r"^weight_min must be a finite number or None"),
        ({"weight_min": "0"}, TypeError, r"^weight_min must be a real number, got str '0'"),
        ({"weight_max": math.inf}, ValueError, r"^weight_max must be a finite number or None"),
        (
            {"weight_min": 2.0, "weight_max": 1.0},
            ValueError,
            r"^weight_min must be below weight_max .*got weight_min=2.0 > weight_max=1.0",
        ),
        ({"init_weight": -0.1}, ValueError, r"^init_weight must be finite and non-negative"),
        ({"init_weight": "0.1"}, TypeError, r"^init_weight must be a real number"),
        ({"score": "probit"}, ValueError, r"^score must be one of"),
        ({"score": None}, ValueError, r"^score must be one of"),
        ({"inversion_prior": "l3"}, ValueError, r"^inversion_prior must be a Prior"),
        ({"shared_optimizer": 1}, TypeError, r"^shared_optimizer must be a bool"),
    ],
)
def test_settings_fail_where_they_are_built(fields: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        GFISettings(**fields)
    with pytest.raises(error, match=match):
        dataclasses.replace(SETTINGS["paper"], **fields)


@pytest.mark.parametrize(
    ("setting", "meaning"),
    [
        ("paper", r"no L1 penalty in Eq. \(9\)"),
        ("authors", "no squared-L2 penalty on w in stage 2, the authors' prior"),
        ("refined", r"no mask-area prior in stage 2: delta is the weight beta of mean\(m\)"),
    ],
)
def test_delta_message_names_its_meaning_in_the_setting(
    net: TinyConvNet, images: Tensor, setting: str, meaning: str
) -> None:
    with pytest.raises(ValueError, match=rf"^delta must be finite and non-negative .*{meaning}"):
        dataclasses.replace(SETTINGS[setting], delta=-1.0)
    with pytest.raises(ValueError, match=meaning):
        gfi_of(net).attribute(images, target=0, setting=setting, delta=-1.0)


def test_weight_bounds_are_applied(net: TinyConvNet, images: Tensor) -> None:
    s = GFISettings(
        weight_min=0.05, weight_max=0.2, inversion_steps=3, target_steps=3, gamma=0, delta=0
    )
    _, w = gfi_of(net).attribute(images, target=0, setting=s, return_weights=True)
    assert float(w.min()) >= 0.05 and float(w.max()) <= 0.2
    assert float(w.max() - w.min()) > 0  # the optimisation moved the weights


# ------------------------------------------------------------- training mode
def test_training_batchnorm_behind_a_lambda_is_refused(images: Tensor) -> None:
    torch.manual_seed(0)
    net = TinyConvNet(batch_norm=True).train()
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    gfi = GuidedFeatureInversion(lambda z: net(z), net.conv2, net.pool)
    with pytest.raises(
        ValueError,
        match=r"^the model is in training mode \(BatchNorm2d .*call model.eval\(\) first",
    ):
        gfi.attribute(images, target=0, **FAST)
    for k, v in net.state_dict().items():  # running statistics not updated
        torch.testing.assert_close(v, stats[k], rtol=0, atol=0, msg=k)
    from torch.nn.modules import module as torch_module

    assert not torch_module._global_forward_pre_hooks  # the watch is removed


def test_training_dropout_behind_a_function_is_refused(net: TinyConvNet, images: Tensor) -> None:
    drop = nn.Dropout(0.5).train()

    def forward(z: Tensor) -> Tensor:
        return drop(net(z))

    with pytest.raises(ValueError, match=r"training mode \(Dropout "):
        GuidedFeatureInversion(forward, net.conv2, net.pool).attribute(images, target=0, **FAST)


# ------------------------------------------------------------ out of scope
def test_out_of_scope_inputs_and_layers_have_their_messages(net: TinyConvNet) -> None:
    gfi = gfi_of(net)
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"tuple of 2: models with several inputs are not supp"):
        gfi.attribute((x, x), target=0)
    with pytest.raises(ValueError, match=r"1-D signals \(N, C, L\) are not supported"):
        gfi.attribute(torch.randn(2, 3, 50), target=0)

    class TupleLayer(nn.Module):
        def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
            return z, z

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.split, self.head = net, TupleLayer(), nn.Identity()

        def forward(self, z: Tensor) -> Tensor:
            a, _ = self.split(self.body.relu1(self.body.conv1(z)))
            return self.body.fc(self.body.pool(self.body.relu2(self.body.conv2(a))).flatten(1))

    model = Net().eval()
    with pytest.raises(
        ValueError, match=r"^layer returns a tuple of 2 values; layers with tuple outputs are not"
    ):
        GuidedFeatureInversion(model, model.split, net.pool).attribute(x, target=0)
