"""The user's model is left as it was found; bad input gets a clear error."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
import torch
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion
from captum_gfi.demo.toy import TinyConvNet

FAST = {"inversion_steps": 2, "target_steps": 2}


# `untouched` (conftest.py) asserts the model is left as it was found: requires_grad,
# training flags, no .grad, no hooks left, the same parameters and buffers.
Untouched = Callable[[nn.Module], AbstractContextManager[None]]


def mixed_state_net() -> TinyConvNet:
    torch.manual_seed(0)
    net = TinyConvNet(batch_norm=True).eval()
    net.conv1.weight.requires_grad_(False)  # a frozen parameter stays frozen
    net.relu1.train()  # train mode on a module that does not care is allowed and kept
    return net


def test_model_untouched_after_success(images: Tensor, untouched: Untouched) -> None:
    net = mixed_state_net()
    with untouched(net):
        GuidedFeatureInversion(net, net.conv2, net.pool).attribute(images, target=1, **FAST)


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("fail_on_call", [2, 5])  # during stage 1, during stage 2
def test_model_untouched_after_exception(
    images: Tensor, fail_on_call: int, untouched: Untouched
) -> None:
    net = mixed_state_net()
    frozen_during_run: list[bool] = []

    class Flaky(nn.Module):
        """The user's model behind a wrapper that fails on the n-th forward call."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.calls = 0

        def forward(self, x: Tensor) -> Tensor:
            self.calls += 1
            frozen_during_run.append(not any(p.requires_grad for p in net.parameters()))
            if self.calls == fail_on_call:
                raise Boom("injected")
            return self.net(x)

    gfi = GuidedFeatureInversion(Flaky(), net.conv2, net.pool)
    # every parameter of the model is frozen during the run, and restored, hooks
    # removed, even though the run failed
    with untouched(net), pytest.raises(Boom):
        gfi.attribute(images, target=1, **FAST)
    assert frozen_during_run == [True] * fail_on_call


def test_train_mode_with_batchnorm_is_rejected(images: Tensor, untouched: Untouched) -> None:
    net = TinyConvNet(batch_norm=True).train()
    with untouched(net), pytest.raises(ValueError, match=r"training mode.*model.eval\(\)"):
        GuidedFeatureInversion(net, net.conv2, net.pool).attribute(images, target=1)


def test_train_mode_without_batchnorm_or_dropout_is_fine(images: Tensor) -> None:
    net = TinyConvNet().train()
    mask = GuidedFeatureInversion(net, net.conv2, net.pool).attribute(images, target=1, **FAST)
    assert mask.shape == (3, 1, 16, 16) and net.training


def test_layer_must_be_a_module(net: TinyConvNet) -> None:
    with pytest.raises(TypeError, match="layer must be a torch.nn.Module"):
        GuidedFeatureInversion(net, "conv2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="inversion_layer must be a torch.nn.Module"):
        GuidedFeatureInversion(net, net.conv2, net.pool.forward)  # type: ignore[arg-type]


def test_layer_not_in_model(net: TinyConvNet) -> None:
    with pytest.raises(ValueError, match="layer .* is not a submodule"):
        GuidedFeatureInversion(net, nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="inversion_layer .* is not a submodule"):
        GuidedFeatureInversion(net, net.conv2, nn.AdaptiveAvgPool2d(1))


def test_layer_not_called_with_forward_function(
    net: TinyConvNet, images: Tensor, untouched: Untouched
) -> None:
    other = nn.Conv2d(3, 3, 1)
    gfi = GuidedFeatureInversion(lambda x: net(x), other)
    with untouched(net), untouched(other), pytest.raises(ValueError, match="layer was not called"):
        gfi.attribute(images, target=0)
    assert len(other._forward_hooks) == 0


def test_non_4d_layer_is_rejected(net: TinyConvNet, images: Tensor, untouched: Untouched) -> None:
    with (
        untouched(net),
        pytest.raises(ValueError, match=r"layer must produce a 4-D .* got \(3, 5\)"),
    ):
        GuidedFeatureInversion(net, net.fc).attribute(images, target=0)
    with untouched(net), pytest.raises(ValueError, match="inversion_layer must produce a 4-D"):
        GuidedFeatureInversion(net, net.conv2, net.fc).attribute(images, target=0)


def test_shared_module_is_rejected(images: Tensor, untouched: Untouched) -> None:
    class Shared(TinyConvNet):
        def forward(self, x: Tensor) -> Tensor:
            x = self.relu1(self.conv1(x))
            x = self.relu1(self.conv2(x))  # relu1 used twice
            return self.fc(self.pool(x).flatten(1))

    net = Shared().eval()
    with untouched(net), pytest.raises(ValueError, match="runs 2 times"):
        GuidedFeatureInversion(net, net.relu1, net.pool).attribute(images, target=0)


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        (torch.rand(3, 16, 16), ValueError, r"\(N, C, H, W\)"),
        (torch.rand(0, 3, 16, 16), ValueError, "empty batch"),
        (torch.full((1, 3, 16, 16), float("nan")), ValueError, "NaN"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.long), TypeError, "floating-point"),
        ([[1.0]], TypeError, "inputs must be a Tensor"),
        ((torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)), ValueError, "tuple of 2"),
    ],
    ids=["3d", "empty", "nan", "int", "list", "2-tuple"],
)
def test_bad_inputs(
    net: TinyConvNet, inputs: object, error: type, match: str, untouched: Untouched
) -> None:
    with untouched(net), pytest.raises(error, match=match):
        GuidedFeatureInversion(net, net.conv2, net.pool).attribute(inputs, target=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (5, "out of range"),
        (-1, "out of range"),
        ([0, 1, 9], r"target\[2\] = 9 is out of range"),
        ([0, 1], "2 entries for 3 inputs"),
        (torch.tensor([0, 1, 7]), r"values in \[0, 7\]"),
        (torch.tensor([[0, 1, 2]]), "one index or one per example"),
        ((1, 2), "must index the model output"),
    ],
)
def test_bad_targets(
    net: TinyConvNet, images: Tensor, target: object, match: str, untouched: Untouched
) -> None:
    with untouched(net), pytest.raises(ValueError, match=match):
        GuidedFeatureInversion(net, net.conv2, net.pool).attribute(images, target=target)  # type: ignore[arg-type]


def test_target_type(net: TinyConvNet, images: Tensor, untouched: Untouched) -> None:
    with untouched(net), pytest.raises(TypeError, match="target must be"):
        GuidedFeatureInversion(net, net.conv2).attribute(images, target="cat")  # type: ignore[arg-type]


@pytest.mark.parametrize("stage", ["target", "both"])
def test_target_required(
    net: TinyConvNet, images: Tensor, stage: str, untouched: Untouched
) -> None:
    with untouched(net), pytest.raises(ValueError, match=f'target is required for stage="{stage}"'):
        GuidedFeatureInversion(net, net.conv2).attribute(images, stage=stage)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stage": "all"}, "stage must be one of"),
        ({"baseline": "zeros"}, "baseline must be one of"),
        ({"baseline": 0.0}, "baseline must be a str or a Tensor"),
        ({"score": "probit"}, "score must be one of"),
        ({"interpolate_mode": "linear"}, "interpolate_mode must be one of"),
        ({"inversion_steps": -1}, "inversion_steps must be a non-negative int"),
        ({"target_steps": 2.5}, "target_steps must be a non-negative int"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"lr_decay_every": 0}, "lr_decay_every must be a positive int"),
        ({"return_layer_mask": True, "expand_channels": True}, "cannot both be True"),
        ({"baseline": "mean", "normalization": ((0.5,), (0.5,))}, "normalization must be"),
    ],
)
def test_bad_options(
    net: TinyConvNet, images: Tensor, kwargs: dict, match: str, untouched: Untouched
) -> None:
    with untouched(net), pytest.raises((ValueError, TypeError), match=match):
        GuidedFeatureInversion(net, net.conv2).attribute(images, target=0, **kwargs)


def test_forward_func_must_return_tensor(
    net: TinyConvNet, images: Tensor, untouched: Untouched
) -> None:
    gfi = GuidedFeatureInversion(lambda x: {"logits": net(x)}, net.conv2)
    with untouched(net), pytest.raises(TypeError, match="must return a Tensor"):
        gfi.attribute(images, target=0)
    assert len(net.conv2._forward_hooks) == 0


def test_data_parallel_is_rejected(net: TinyConvNet) -> None:
    with pytest.raises(ValueError, match="DataParallel is not supported"):
        GuidedFeatureInversion(net, net.conv2, device_ids=[0, 1])
    with pytest.raises(ValueError, match="DataParallel is not supported"):
        GuidedFeatureInversion(nn.DataParallel(net), net.conv2)
