"""The optimised paths give the plain paths' results, and GFI runs exactly the
passes it should: stage 1 truncated at the inversion layer, stage 2 in one
batch of 2N, no parameter gradients, the clean pass once."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_gfi import GuidedFeatureInversion
from captum_gfi._hooks import LayerTap
from captum_gfi.bench import limit_passes, pearson
from captum_gfi.demo.toy import TinyConvNet
from captum_gfi.guided_feature_inversion import _ProjectedAdam, _target_on_device
from captum_gfi.mask import (
    INTERPOLATE_MODES,
    background_input,
    feature_mask,
    guided_input,
    interpolation_matrices,
    upsample_mask,
)

STEPS = {"inversion_steps": 3, "target_steps": 4}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest


def make_net(dtype: torch.dtype = torch.float32) -> TinyConvNet:
    """The toy net with a BatchNorm after conv2, with non-trivial running statistics."""
    torch.manual_seed(0)
    net = TinyConvNet(batch_norm=True).eval().to(dtype)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def images(n: int, dtype: torch.dtype = torch.float32, size: int = 32) -> Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=dtype)


# ------------------------------------------------------------ mask arithmetic
@pytest.mark.parametrize("mode", INTERPOLATE_MODES)
@pytest.mark.parametrize("shape", [((7, 7), (224, 224)), ((5, 3), (17, 32)), ((4, 4), (4, 9))])
def test_interpolation_matrices_equal_f_interpolate(
    mode: str, shape: tuple[tuple[int, int], tuple[int, int]]
) -> None:
    small, size = shape
    mask = torch.rand(3, 1, *small, dtype=torch.float64)
    rows, cols = interpolation_matrices(small, size, mode, torch.float64)
    assert rows.shape == (size[0], small[0]) and cols.shape == (size[1], small[1])
    align = False if mode in ("bilinear", "bicubic") else None
    expected = F.interpolate(mask, size=size, mode=mode, align_corners=align)
    torch.testing.assert_close(rows @ mask @ cols.t(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", INTERPOLATE_MODES)
def test_feature_mask_with_matrices_equals_plain(mode: str) -> None:
    w = torch.rand(2, 8, dtype=torch.float64)
    feats = torch.rand(2, 8, 5, 6, dtype=torch.float64)
    matrices = interpolation_matrices((5, 6), (40, 45), mode, torch.float64)
    plain = feature_mask(w, feats, (40, 45), mode)
    fast = feature_mask(w, feats, (40, 45), mode, matrices)
    torch.testing.assert_close(fast[0], plain[0], rtol=0, atol=0)
    torch.testing.assert_close(fast[1], plain[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(plain[1], upsample_mask(plain[0], (40, 45), mode))


def test_fused_eq2_and_eq4_equal_their_definitions() -> None:
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    p = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    m = torch.rand(2, 1, 9, 9, dtype=torch.float64)
    guided = guided_input(x, p, m)
    torch.testing.assert_close(guided, x * m + p * (1 - m))  # Eq. (2)
    torch.testing.assert_close(background_input(x, p, m), x * (1 - m) + p * m)  # Eq. (4)


def test_projected_adam_equals_torch_optim_adam() -> None:
    torch.manual_seed(0)
    target = torch.randn(3, 6, dtype=torch.float64)

    def loss_fn(w: Tensor) -> Tensor:
        return ((w - target) ** 2).sum(dim=1) + 0.1 * w.sum(dim=1)

    class Bar:
        def update(self, n: int) -> None:
            pass

    start = torch.full((3, 6), 0.1, dtype=torch.float64)
    adam = _ProjectedAdam(start, 0.0, None, Bar())  # type: ignore[arg-type]
    got = adam.run(loss_fn, 25, 0.05, 10, 0.5)
    # the reference: torch.optim.Adam with the same schedule, clipped after each step
    w = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=0.05)
    for step in range(25):
        opt.param_groups[0]["lr"] = 0.05 * 0.5 ** (step // 10)
        opt.zero_grad()
        loss_fn(w).sum().backward()
        opt.step()
        with torch.no_grad():
            w.clamp_(min=0.0)
    torch.testing.assert_close(got, w.detach(), rtol=0, atol=1e-15)
    assert (got == 0).any() and (got > 0).any()  # the clipping was active


# ------------------------------------------------------------- the passes
def test_truncated_forward_gives_full_forward_features() -> None:
    net = make_net()
    x = images(2)
    with LayerTap([net.conv2]) as full:
        net(x)
    calls: list[int] = []
    handle = net.fc.register_forward_hook(lambda *_: calls.append(1))
    gfi = GuidedFeatureInversion(net, net.conv1, net.conv2)
    truncated = gfi._forward_to_inversion_layer(x, None)
    handle.remove()
    assert calls == []  # nothing after the inversion layer ran
    torch.testing.assert_close(truncated, full.values[0], rtol=0, atol=0)


def test_passes_batches_frozen_parameters_and_one_clean_pass() -> None:
    net = make_net()
    x = images(3)
    seen: list[tuple[int, bool, bool]] = []  # (batch, reached fc?, any param requires grad)

    def record(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        frozen = not any(p.requires_grad for p in net.parameters())
        seen.append((args[0].shape[0], False, frozen))

    def reached(*_: object) -> None:
        b, _, frozen = seen[-1]
        seen[-1] = (b, True, frozen)

    h1 = net.conv1.register_forward_pre_hook(record)
    h2 = net.fc.register_forward_hook(reached)
    GuidedFeatureInversion(net, net.conv2, net.conv2).attribute(x, target=[0, 1, 2], **STEPS)
    h1.remove()
    h2.remove()
    # one clean pass (N, full), 3 truncated passes (N), 4 passes of 2N (full)
    assert seen == [(3, True, True)] + [(3, False, True)] * 3 + [(6, True, True)] * 4
    assert all(p.requires_grad for p in net.parameters())  # restored
    assert all(p.grad is None for p in net.parameters())  # never computed


def test_limit_runs_the_same_passes_as_gfi() -> None:
    net = make_net()
    x = images(2)
    batches: list[tuple[int, bool]] = []
    h1 = net.conv1.register_forward_pre_hook(lambda m, a: batches.append((a[0].shape[0], False)))

    def reached(*_: object) -> None:
        batches[-1] = (batches[-1][0], True)

    h2 = net.fc.register_forward_hook(reached)
    limit_passes(net, net.conv2, x, torch.tensor([0, 1]), **STEPS)
    limit_batches = list(batches)
    batches.clear()
    GuidedFeatureInversion(net, net.conv2, net.conv2).attribute(x, target=[0, 1], **STEPS)
    h1.remove()
    h2.remove()
    assert limit_batches == batches[1:]  # GFI adds only the clean pass
    assert all(p.grad is None for p in net.parameters())


def test_batched_equals_per_example_float64() -> None:
    net = make_net(torch.float64)
    x = images(3, torch.float64)
    gfi = GuidedFeatureInversion(net, net.conv2, net.conv2)
    targets = [0, 3, 1]
    batched, w_batched = gfi.attribute(x, target=targets, return_weights=True, **STEPS)
    for i, t in enumerate(targets):
        single, w_single = gfi.attribute(x[i : i + 1], target=t, return_weights=True, **STEPS)
        torch.testing.assert_close(batched[i : i + 1], single, rtol=0, atol=1e-12)
        torch.testing.assert_close(w_batched[i : i + 1], w_single, rtol=0, atol=1e-12)


def test_target_forms_give_the_same_mask() -> None:
    net = make_net(torch.float64)
    x = images(2, torch.float64)
    gfi = GuidedFeatureInversion(net, net.conv2, net.conv2)
    as_list = gfi.attribute(x, target=[2, 2], **STEPS)
    for form in (2, torch.tensor(2), torch.tensor([2, 2])):
        torch.testing.assert_close(gfi.attribute(x, target=form, **STEPS), as_list)
    assert _target_on_device(torch.tensor([4]), x.device) == 4
    converted = _target_on_device([1, 2], x.device)
    assert isinstance(converted, Tensor) and converted.tolist() == [1, 2]
    assert _target_on_device([(1,), (2,)], x.device) == [(1,), (2,)]


# ---------------------------------------------------- autocast / channels_last
def test_channels_last_equals_default() -> None:
    net = make_net()
    x = images(2)
    gfi = GuidedFeatureInversion(net, net.conv2, net.conv2)
    default = gfi.attribute(x, target=[0, 1], **STEPS)
    plain = gfi.attribute(x, target=[0, 1], autocast=False, channels_last=False, **STEPS)
    torch.testing.assert_close(plain, default, rtol=0, atol=0)
    net_cl = make_net().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    fast = GuidedFeatureInversion(net_cl, net_cl.conv2, net_cl.conv2).attribute(
        x, target=[0, 1], channels_last=True, **STEPS
    )
    torch.testing.assert_close(fast, default, rtol=1e-4, atol=1e-4)


def test_autocast_runs_the_model_in_bfloat16() -> None:
    net = make_net()
    x = images(2)
    dtypes: list[torch.dtype] = []
    handle = net.conv2.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    gfi = GuidedFeatureInversion(net, net.conv2, net.conv2)
    mask = gfi.attribute(x, target=[0, 1], autocast=True, **STEPS)
    handle.remove()
    assert dtypes[0] == torch.bfloat16 and set(dtypes) == {torch.bfloat16}
    assert mask.dtype == torch.float32 and 0 <= float(mask.min()) <= float(mask.max()) <= 1
    reference = gfi.attribute(x, target=[0, 1], **STEPS)
    assert pearson(mask, reference) > 0.5
    assert not hasattr(gfi, "_autocast")  # no per-call state on the instance


def test_pearson() -> None:
    a = torch.arange(10.0)
    assert math.isclose(pearson(a, 2 * a + 1), 1.0)
    assert math.isclose(pearson(a, -a), -1.0)


# ------------------------------------------------------------ the benchmark
def test_benchmark_smoke_via_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from captum_gfi import cli

    # other sub-commands may live on other branches: dispatch to bench only
    monkeypatch.setattr(cli, "COMMANDS", {"bench": cli.COMMANDS["bench"]})
    out = tmp_path / "bench.json"
    code = cli.main(
        ["bench", "--models", "tiny", "--batch-sizes", "1", "2", "--repeats", "1",
         "--inversion-steps", "1", "--target-steps", "2", "--image-size", "32",
         "--ig-steps", "4",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["machine"]["torch"] == torch.__version__
    assert report["machine"]["threads"] == torch.get_num_threads()
    rows = {(r["method"], r["batch_size"]): r for r in report["results"]}
    assert set(rows) == {
        ("limit", 1), ("gfi", 1), ("ig", 1), ("gradcam", 1), ("occlusion", 1),
        ("limit", 2), ("gfi", 2),
    }  # fmt: skip
    assert rows[("limit", 2)]["vs_limit"] == 1.0
    assert rows[("limit", 2)]["vs_limit_per_repeat"] == [1.0]
    assert len(rows[("gfi", 2)]["vs_limit_per_repeat"]) == 1
    assert all(r["median_s"] > 0 and len(r["times_s"]) == 1 for r in report["results"])
