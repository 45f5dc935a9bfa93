"""Behaviour of GuidedFeatureInversion.attribute on small conv nets."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerAttribution
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion
from captum_gfi.demo.toy import TinyConvNet

FAST = {"inversion_steps": 3, "target_steps": 4}


class TinyConvNetWithArgs(TinyConvNet):
    """Adds ``scale * extra`` to the logits: tests additional_forward_args."""

    def forward(self, x: Tensor, extra: Tensor, scale: float = 1.0) -> Tensor:  # type: ignore[override]
        return super().forward(x) + scale * extra


def make_gfi(net: TinyConvNet) -> GuidedFeatureInversion:
    return GuidedFeatureInversion(net, net.conv2, net.pool)


def test_is_a_captum_layer_attribution(net: TinyConvNet) -> None:
    gfi = make_gfi(net)
    assert isinstance(gfi, LayerAttribution)
    assert GuidedFeatureInversion.get_name() == "Guided Feature Inversion"
    assert gfi.layer is net.conv2 and gfi.inversion_layer is net.pool
    assert GuidedFeatureInversion(net, net.conv2).inversion_layer is net.conv2


def test_default_output_shape_range_and_dtype(net: TinyConvNet, images: Tensor) -> None:
    mask = make_gfi(net).attribute(images, target=1)
    assert mask.shape == (3, 1, 16, 16)
    assert mask.dtype == images.dtype
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    assert not mask.requires_grad


def test_layer_mask_weights_and_expanded_outputs(net: TinyConvNet, images: Tensor) -> None:
    gfi = make_gfi(net)
    layer_mask, weights = gfi.attribute(
        images, target=1, return_layer_mask=True, return_weights=True, **FAST
    )
    assert layer_mask.shape == (3, 1, 8, 8)  # conv2's resolution
    flat = layer_mask.flatten(1)
    assert weights.shape == (3, 16) and bool((weights >= 0).all())
    # Eq. (7): each example's layer mask spans [0, 1] exactly (unless all weights are 0)
    for i in range(3):
        if float(weights[i].sum()) > 0:
            assert float(flat[i].min()) == 0.0
            assert float(flat[i].max()) == pytest.approx(1.0)
    up = LayerAttribution.interpolate(layer_mask, (16, 16), "bilinear")
    mask = gfi.attribute(images, target=1, **FAST)
    torch.testing.assert_close(up, mask)
    expanded = gfi.attribute(images, target=1, expand_channels=True, **FAST)
    assert expanded.shape == images.shape
    torch.testing.assert_close(expanded[:, 2:3], mask)


def test_float64(net: TinyConvNet, images: Tensor) -> None:
    net = net.double()
    mask, weights = make_gfi(net).attribute(images.double(), target=0, return_weights=True)
    assert mask.dtype == torch.float64 and weights.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(net: TinyConvNet, images: Tensor) -> None:
    net = net.cuda()
    mask = make_gfi(net).attribute(images.cuda(), target=0, **FAST)
    assert mask.device.type == "cuda"
    cpu = make_gfi(net.cpu()).attribute(images, target=0, **FAST)
    torch.testing.assert_close(mask.cpu(), cpu, atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "target",
    [2, torch.tensor(2), torch.tensor([2]), [2, 2, 2], torch.tensor([2, 2, 2]), (2,), [(2,)] * 3],
    ids=["int", "scalar-tensor", "1-tensor", "list", "tensor", "tuple", "list-of-tuples"],
)
def test_every_target_form_gives_the_same_result(
    net: TinyConvNet, images: Tensor, target: object
) -> None:
    gfi = make_gfi(net)
    expected = gfi.attribute(images, target=2, **FAST)
    torch.testing.assert_close(gfi.attribute(images, target=target, **FAST), expected)


def test_per_example_targets_match_single_runs(net: TinyConvNet) -> None:
    net = net.double()
    torch.manual_seed(3)
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    gfi = make_gfi(net)
    batched = gfi.attribute(x, target=[0, 3, 4])
    single = torch.cat([gfi.attribute(x[i : i + 1], target=t) for i, t in enumerate([0, 3, 4])])
    torch.testing.assert_close(batched, single, atol=1e-7, rtol=0)


@pytest.mark.parametrize("stage", ["both", "inversion", "target"])
def test_batch_equals_per_example(stage: str) -> None:
    # float64 so that Adam's sign-normalised steps see the same gradients batched and alone
    torch.manual_seed(0)
    net = TinyConvNet().double().eval()
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    gfi = make_gfi(net)
    batched, wb = gfi.attribute(x, target=1, stage=stage, return_weights=True)
    for i in range(4):
        single, ws = gfi.attribute(x[i : i + 1], target=1, stage=stage, return_weights=True)
        torch.testing.assert_close(single, batched[i : i + 1], atol=1e-7, rtol=0)
        torch.testing.assert_close(ws, wb[i : i + 1], atol=1e-9, rtol=0)


def test_additional_forward_args_are_passed_and_expanded() -> None:
    torch.manual_seed(0)
    net = TinyConvNetWithArgs().eval()
    x = torch.randn(2, 3, 16, 16)
    extra = torch.zeros(2, 5)
    gfi = GuidedFeatureInversion(net, net.conv2, net.pool)
    with_args = gfi.attribute(x, target=1, additional_forward_args=(extra, 1.0), **FAST)
    # zero extra logits leave the model unchanged: same result as the base net
    base = TinyConvNet().eval()
    base.load_state_dict(net.state_dict())
    torch.testing.assert_close(with_args, make_gfi(base).attribute(x, target=1, **FAST))
    # a per-example tensor arg changes the explanation of stage 2 only
    big = torch.zeros(2, 5)
    big[:, 1] = 50.0  # saturates the softmax: probability ~1 whatever the mask
    inv = gfi.attribute(x, target=1, stage="inversion", additional_forward_args=(big, 1.0), **FAST)
    inv0 = gfi.attribute(
        x, target=1, stage="inversion", additional_forward_args=(extra, 1.0), **FAST
    )
    torch.testing.assert_close(inv, inv0)
    _, w_big = gfi.attribute(
        x, target=1, stage="target", additional_forward_args=(big, 1.0), return_weights=True, **FAST
    )
    _, w0 = gfi.attribute(
        x,
        target=1,
        stage="target",
        additional_forward_args=(extra, 1.0),
        return_weights=True,
        **FAST,
    )
    assert not torch.allclose(w_big, w0)


def test_single_tensor_additional_arg() -> None:
    torch.manual_seed(0)
    net = TinyConvNetWithArgs().eval()
    x = torch.randn(2, 3, 16, 16)
    mask = GuidedFeatureInversion(net, net.conv2, net.pool).attribute(
        x, target=0, additional_forward_args=torch.zeros(2, 5), **FAST
    )
    assert mask.shape == (2, 1, 16, 16)


def test_deterministic_with_seed(net: TinyConvNet, images: Tensor) -> None:
    gfi = make_gfi(net)
    a = gfi.attribute(images, target=1, baseline="noise", seed=7, **FAST)
    b = gfi.attribute(images, target=1, baseline="noise", seed=7, **FAST)
    c = gfi.attribute(images, target=1, baseline="noise", seed=8, **FAST)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(gfi.attribute(images, target=1), gfi.attribute(images, target=1))


def test_stages(net: TinyConvNet, images: Tensor) -> None:
    gfi = make_gfi(net)
    _, w_inv = gfi.attribute(images, stage="inversion", return_weights=True, inversion_steps=5)
    # stage 1 needs no target and ignores one
    _, w_inv_t = gfi.attribute(
        images, target=3, stage="inversion", return_weights=True, inversion_steps=5
    )
    torch.testing.assert_close(w_inv, w_inv_t)
    # "both" is stage 2 started from stage 1's weights; "target" starts from init_weight
    _, w_both = gfi.attribute(
        images, target=3, return_weights=True, inversion_steps=5, target_steps=6
    )
    _, w_target = gfi.attribute(
        images, target=3, stage="target", return_weights=True, target_steps=6
    )
    assert not torch.allclose(w_both, w_target)
    # zero steps leave every weight at init_weight
    _, w_none = gfi.attribute(
        images, target=3, return_weights=True, inversion_steps=0, target_steps=0, init_weight=0.3
    )
    assert torch.equal(w_none, torch.full((3, 16), 0.3))


@pytest.mark.parametrize("baseline", ["blur", "mean", "noise", "tensor"])
def test_each_background(net: TinyConvNet, images: Tensor, baseline: str) -> None:
    base: str | Tensor = torch.zeros(1, 3, 1, 1) if baseline == "tensor" else baseline
    mask = make_gfi(net).attribute(
        images, target=0, baseline=base, normalization=((0.5,) * 3, (0.5,) * 3), seed=0, **FAST
    )
    assert mask.shape == (3, 1, 16, 16)
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1


@pytest.mark.parametrize("score", ["softmax", "sigmoid", "logit"])
def test_scores_and_interpolation(net: TinyConvNet, images: Tensor, score: str) -> None:
    mask = make_gfi(net).attribute(
        images, target=0, score=score, interpolate_mode="nearest", **FAST
    )
    assert mask.shape == (3, 1, 16, 16)


def test_attribute_to_layer_input(net: TinyConvNet, images: Tensor) -> None:
    _, w = make_gfi(net).attribute(
        images, target=0, attribute_to_layer_input=True, return_weights=True, **FAST
    )
    assert w.shape == (3, 8)  # conv2's input has 8 channels


def test_tuple_inputs_give_tuple_outputs(net: TinyConvNet, images: Tensor) -> None:
    gfi = make_gfi(net)
    out = gfi.attribute((images,), target=1, **FAST)
    assert isinstance(out, tuple) and len(out) == 1
    torch.testing.assert_close(out[0], gfi.attribute(images, target=1, **FAST))


def test_works_under_no_grad(net: TinyConvNet, images: Tensor) -> None:
    gfi = make_gfi(net)
    with torch.no_grad():
        a = gfi.attribute(images, target=1, **FAST)
    torch.testing.assert_close(a, gfi.attribute(images, target=1, **FAST))


def test_progress_bar(net: TinyConvNet, images: Tensor, capsys: pytest.CaptureFixture[str]) -> None:
    make_gfi(net).attribute(images, target=1, show_progress=True, **FAST)
    assert "Guided Feature Inversion" in capsys.readouterr().err


def test_forward_function_instead_of_module(net: TinyConvNet, images: Tensor) -> None:
    def forward(x: Tensor) -> Tensor:
        return net(x)

    a = GuidedFeatureInversion(forward, net.conv2, net.pool).attribute(images, target=1, **FAST)
    torch.testing.assert_close(a, make_gfi(net).attribute(images, target=1, **FAST))
    assert all(p.requires_grad for p in net.parameters())


def test_reshape_transform_for_token_layers() -> None:
    class TokenNet(nn.Module):
        """Conv stem whose features are flattened to tokens (N, 1 + 16, C), like a ViT."""

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 6, 4, stride=4)
            self.block = nn.Identity()
            self.head = nn.Linear(6, 3)

        def forward(self, x: Tensor) -> Tensor:
            tokens = self.stem(x).flatten(2).transpose(1, 2)
            cls = tokens.mean(1, keepdim=True)
            tokens = self.block(torch.cat([cls, tokens], 1))
            return self.head(tokens[:, 0])

    from captum_gfi.reshape import vit_reshape_transform

    torch.manual_seed(0)
    model = TokenNet().eval()
    gfi = GuidedFeatureInversion(model, model.block, reshape_transform=vit_reshape_transform)
    mask, w = gfi.attribute(torch.randn(2, 3, 16, 16), target=0, return_weights=True, **FAST)
    assert mask.shape == (2, 1, 16, 16) and w.shape == (2, 6)
    with pytest.raises(ValueError, match="4-D"):
        GuidedFeatureInversion(model, model.block).attribute(torch.randn(1, 3, 16, 16), target=0)


def test_stage_target_from_stage1_weights_equals_both(net: TinyConvNet, images: Tensor) -> None:
    gfi = make_gfi(net)
    _, w1 = gfi.attribute(images, stage="inversion", return_weights=True, inversion_steps=4)
    continued = gfi.attribute(images, target=2, stage="target", init_weight=w1, target_steps=5)
    both = gfi.attribute(images, target=2, inversion_steps=4, target_steps=5)
    torch.testing.assert_close(continued, both)
    # a per-channel vector broadcasts over the batch
    _, w = gfi.attribute(
        images, stage="inversion", init_weight=torch.full((16,), 0.2), inversion_steps=0,
        return_weights=True,
    )  # fmt: skip
    assert torch.equal(w, torch.full((3, 16), 0.2))
    with pytest.raises(ValueError, match="does not broadcast"):
        gfi.attribute(images, stage="inversion", init_weight=torch.ones(3, 5))
    with pytest.raises(ValueError, match="non-negative"):
        gfi.attribute(images, stage="inversion", init_weight=-0.1)
