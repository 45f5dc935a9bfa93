"""Cascading model-parameter randomisation (captum_gfi.evaluation.sanity) and the rank
correlation it reports (captum_gfi.evaluation.rank_correlation)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_gfi.demo.models import Normalize
from captum_gfi.demo.toy import TinyConvNet, toy_convnet
from captum_gfi.evaluation.rank_correlation import average_ranks, spearman
from captum_gfi.evaluation.sanity import (
    cascade_steps,
    cascading_randomization,
    method_factory,
    sanity_key,
    sanity_records,
    top_down_layers,
)

Guard = Callable[[nn.Module], AbstractContextManager[None]]


def _net(batch_norm: bool = False) -> TinyConvNet:
    torch.manual_seed(0)
    return TinyConvNet(batch_norm=batch_norm).eval()


def _inputs(n: int = 3) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.rand(n, 3, 16, 16, generator=g), torch.arange(n) % 5


def _conv1_only(model: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """A map that reads only the first layer: blind to every layer above it."""
    conv1 = model.get_submodule("conv1")

    def attribute(inputs: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            return conv1(inputs).relu().sum(1, keepdim=True)

    return attribute


# ------------------------------------------------------------ rank correlation


def test_spearman_matches_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (4, 50), generator=g).double()  # many ties
    b = a + torch.randint(-3, 4, (4, 50), generator=g).double()
    rho = spearman(a, b)
    for i in range(4):
        assert float(rho[i]) == pytest.approx(stats.spearmanr(a[i], b[i]).statistic, abs=1e-12)
    assert average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0]])).tolist() == [[2.5, 0.0, 2.5, 1.0]]


def test_spearman_known_values() -> None:
    x = torch.arange(10.0).reshape(1, 10)
    assert spearman(x, x**3).tolist() == [1.0]
    assert spearman(x, -x).tolist() == [-1.0]
    assert spearman(x, torch.zeros(1, 10)).tolist() == [0.0]  # a constant map ranks nothing
    with pytest.raises(ValueError, match="as many maps"):
        spearman(x, torch.zeros(2, 10))


# ------------------------------------------------------------ the cascade


def test_default_cascade_runs_from_the_logits_down() -> None:
    x, _ = _inputs(1)
    assert top_down_layers(_net(), x) == ["fc", "conv2", "conv1"]
    assert top_down_layers(_net(batch_norm=True), x) == ["fc", "bn", "conv2", "conv1"]


def test_a_method_that_ignores_the_model_fails() -> None:
    model = _net()
    x, t = _inputs()
    result = cascading_randomization(model, method_factory("center"), x, t, ssim=True)
    assert result.layers == ("fc", "conv2", "conv1")
    np.testing.assert_allclose(result.spearman, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.spearman_abs, 1.0, rtol=0, atol=1e-12)
    assert result.ssim is not None and np.allclose(result.ssim, 1.0, atol=1e-12)
    assert result.final == pytest.approx(1.0, abs=1e-12) and not result.passed
    assert [r["spearman_abs"] for r in result.rows()] == pytest.approx([1.0] * 3, abs=1e-12)


def test_randomisation_is_cumulative_and_top_down() -> None:
    # the map reads conv1 only: identical until conv1 itself is randomised
    model = _net(batch_norm=True)
    x, t = _inputs()
    result = cascading_randomization(model, _conv1_only, x, t)
    assert result.layers == ("fc", "bn", "conv2", "conv1")
    np.testing.assert_allclose(result.spearman_abs[:3], 1.0, rtol=0, atol=1e-12)
    assert (result.spearman_abs[3] < 0.99).all()


def test_a_gradient_method_decorrelates_and_passes() -> None:
    model = _net()
    x, t = _inputs()
    result = cascading_randomization(model, method_factory("gradcam", "conv2"), x, t)
    assert result.passed and result.final < 0.5
    assert result.spearman_abs[0].mean() < 1.0  # randomising the logits already moves it
    saliency = cascading_randomization(model, method_factory("saliency"), x, t)
    assert saliency.passed


def test_a_peer_runs_through_the_same_factory() -> None:
    pytest.importorskip("pytorch_grad_cam", reason="the peers extra is not installed")
    model = _net()
    x, t = _inputs()
    # pytorch-grad-cam's GradCAM is Captum's up to a per-map scale: same ranks, same result
    peer = cascading_randomization(model, method_factory("pgc_gradcam", "conv2"), x, t)
    ours = cascading_randomization(model, method_factory("gradcam", "conv2"), x, t)
    np.testing.assert_allclose(peer.spearman, ours.spearman, rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match="for the peers"):
        method_factory("gradcam", "conv2", batch_size=4)
    with pytest.raises(ValueError, match="a method of make_method or a peer"):
        method_factory("gradcam+")


def test_the_callers_model_and_generators_are_untouched_and_runs_repeat() -> None:
    model = _net(batch_norm=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, t = _inputs()
    state = torch.get_rng_state()
    first = cascading_randomization(model, method_factory("gradcam", "conv2"), x, t, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    second = cascading_randomization(model, method_factory("gradcam", "conv2"), x, t, seed=3)
    assert np.array_equal(first.spearman, second.spearman)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m._forward_hooks for m in model.modules())
    other = cascading_randomization(model, method_factory("gradcam", "conv2"), x, t, seed=4)
    assert not np.array_equal(first.spearman, other.spearman)


def test_chosen_layers_and_bad_arguments() -> None:
    model = _net()
    x, t = _inputs(1)
    result = cascading_randomization(model, _conv1_only, x, t, layers=["conv1"])
    assert result.layers == ("conv1",) and result.spearman.shape == (1, 1)
    grouped = cascading_randomization(model, _conv1_only, x, t, layers=[["fc", "conv2"], "conv1"])
    assert grouped.layers == ("fc+conv2", "conv1")
    np.testing.assert_allclose(grouped.spearman_abs[0], 1.0, rtol=0, atol=1e-12)
    assert grouped.spearman_abs[1, 0] < 0.99
    with pytest.raises(ValueError, match="not a sub-module"):
        cascading_randomization(model, _conv1_only, x, t, layers=["head"])
    with pytest.raises(ValueError, match="must not repeat"):
        cascading_randomization(model, _conv1_only, x, t, layers=["fc", ["conv2", "fc"]])
    with pytest.raises(ValueError, match="every step"):
        cascading_randomization(model, _conv1_only, x, t, layers=["fc", []])
    with pytest.raises(ValueError, match="`threshold`"):
        cascading_randomization(model, _conv1_only, x, t, threshold=0.0)
    with pytest.raises(ValueError, match="`metric`"):
        result.mean("ssim")


# ------------------------------------------------------------ the block cascade


def test_cascade_steps_of_the_toy_net_and_its_wrapper(untouched: Guard) -> None:
    x = torch.rand(2, 3, 32, 32)
    net = toy_convnet()
    with untouched(net):
        assert cascade_steps(net, x) == [["fc"], ["conv2"], ["conv1"]]
    bn = TinyConvNet(batch_norm=True).train()  # train mode: BN's statistics must not move
    with untouched(bn):
        assert cascade_steps(bn, x) == [["fc"], ["bn", "conv2"], ["conv1"]]
        assert cascade_steps(bn, x, max_steps=2) == [["fc"], ["bn", "conv2"]]
    wrapped = Normalize(toy_convnet(), (0.5,) * 3, (0.5,) * 3)  # as the shipped models
    assert cascade_steps(wrapped, x) == [["model.fc"], ["model.conv2"], ["model.conv1"]]


def test_cascade_steps_group_stages_of_blocks_by_output_shape(one_thread: None) -> None:
    torchvision = pytest.importorskip("torchvision")
    x = torch.rand(1, 3, 32, 32)
    resnet = torchvision.models.resnet18(num_classes=3)
    assert cascade_steps(resnet, x) == [
        ["fc"], ["layer4.1", "layer4.0"], ["layer3.1", "layer3.0"], ["layer2.1", "layer2.0"],
        ["layer1.1", "layer1.0"], ["bn1", "conv1"],
    ]  # fmt: skip
    # a head (conv + BN of one shape) between the blocks and the classifier, as in
    # EfficientNet-Lite: its own step, after the classifier, whose linear layers (as
    # VGG's) are a step each
    net = nn.Sequential(
        nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5),  # stem
        nn.Sequential(nn.Conv2d(5, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1),
                      nn.Conv2d(4, 6, 3, stride=2, padding=1)),  # blocks
        nn.Conv2d(6, 8, 1), nn.BatchNorm2d(8), nn.ReLU(),  # head
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3),
    ).eval()  # fmt: skip
    assert cascade_steps(net, x) == [
        ["10"], ["8"], ["4", "3"], ["2.2"], ["2.1", "2.0"], ["1", "0"],
    ]  # fmt: skip


def test_cascade_steps_bad_arguments() -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="`max_steps`"):
        cascade_steps(toy_convnet(), x, max_steps=0)
    with pytest.raises(ValueError, match="no sub-module with parameters"):
        cascade_steps(nn.Sequential(nn.Flatten()), x)
    with pytest.raises(ValueError, match="`inputs`"):
        cascade_steps(toy_convnet(), torch.rand(0, 3, 16, 16))
    with pytest.raises(TypeError, match="`model`"):
        cascade_steps(lambda t: t, x)  # type: ignore[arg-type]


# ------------------------------------------------------------ records of benchmark cases


@dataclass(frozen=True)
class Case:  # the fields of benchmark_data.BenchmarkCase that sanity_records reads
    case_id: str
    kind: str
    split: str
    image: Tensor
    target: int
    source: dict[str, Any] = field(default_factory=dict)


def _cases(n: int = 3) -> list[Case]:
    x, t = _inputs(n)
    return [Case(f"c{i}", "composite", "test", x[i], int(t[i]), {"photo": f"p{i % 2}"})
            for i in range(n)]  # fmt: skip


def _plain(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_sanity_records_keys_fields_and_known_answers(one_thread: None, untouched: Guard) -> None:
    model = _net(batch_norm=True)
    cases = _cases(3)
    with untouched(model):
        records = list(sanity_records(cases, ["center", "gradcam"], model, model.conv2,
                                      batch_size=2, model_name="tiny"))  # fmt: skip
    # batches [c0, c1], [c2]; both methods per batch
    assert [r["key"] for r in records] == [
        "c0|sanity:center|0", "c1|sanity:center|1", "c0|sanity:gradcam|0", "c1|sanity:gradcam|1",
        "c2|sanity:center|2", "c2|sanity:gradcam|2",
    ]  # fmt: skip
    assert all(r["key"] == sanity_key(r["item"], r["method"], r["target"]) for r in records)
    steps = ["fc", "bn+conv2", "conv1"]
    for r in records:
        assert r["record"] == "sanity" and r["steps"] == steps and r["model"] == "tiny"
        assert (r["kind"], r["split"], r["seed"], r["threshold"]) == ("composite", "test", 0, 0.5)
        assert r["photo"] == f"p{int(r['item'][1]) % 2}" and r["seconds"] >= 0
        assert len(r["spearman"]) == len(r["spearman_abs"]) == len(r["constant_map"]) == 3
    center = [r for r in records if r["method"] == "center"]
    # a map that ignores the model: rank correlation 1 at every step, fails
    assert all(r["spearman_abs"] == [1.0] * 3 and r["spearman"] == [1.0] * 3 for r in center)
    assert all(r["final"] == 1.0 and not r["passed"] for r in center)
    # gradcam: the numbers of cascading_randomization on the same batch
    x = torch.stack([c.image for c in cases[:2]])
    t = torch.tensor([c.target for c in cases[:2]])
    direct = cascading_randomization(model, method_factory("gradcam", "conv2"), x, t,
                                     cascade_steps(model, x))  # fmt: skip
    gradcam = [r for r in records if r["method"] == "gradcam"][:2]
    for i, r in enumerate(gradcam):
        assert r["spearman_abs"] == [round(float(v), 6) for v in direct.spearman_abs[:, i]]
        assert r["passed"] == (float(direct.spearman_abs[-1, i]) < 0.5)


def test_sanity_records_resume_skips_done_keys_and_repeats_the_rest(one_thread: None) -> None:
    model = _net()
    cases = _cases(3)
    first = list(sanity_records(cases, ["saliency"], model, batch_size=2, seed=1))
    assert len(first) == 3
    # c1's record lost: its batch [c0, c1] is recomputed whole, only c1 is yielded
    done = {first[0]["key"], first[2]["key"]}
    again = list(sanity_records(cases, ["saliency"], model, batch_size=2, seed=1, done=done))
    assert _plain(again) == _plain([first[1]])
    assert list(sanity_records(cases, ["saliency"], model, batch_size=2, seed=1,
                               done={r["key"] for r in first})) == []  # fmt: skip
    other = list(sanity_records(cases, ["saliency"], model, batch_size=2, seed=2))
    assert [r["spearman"] for r in other] != [r["spearman"] for r in first]


def test_sanity_records_bad_arguments_fail_at_the_call() -> None:
    model = _net()
    cases = _cases(2)
    with pytest.raises(ValueError, match="a method of make_method or a peer"):
        sanity_records(cases, ["nope"], model)
    with pytest.raises(ValueError, match="`methods`"):
        sanity_records(cases, "center", model)
    with pytest.raises(ValueError, match="`batch_size`"):
        sanity_records(cases, ["center"], model, batch_size=0)
    with pytest.raises(ValueError, match="`layer` is not a sub-module"):
        sanity_records(cases, ["gradcam"], model, nn.Conv2d(8, 16, 3))
    with pytest.raises(ValueError, match="not a sub-module"):
        sanity_records(cases, ["center"], model, steps=["head"])
    with pytest.raises(ValueError, match="`max_steps` cuts the default cascade"):
        sanity_records(cases, ["center"], model, steps=["fc"], max_steps=1)
    small = Case("s", "composite", "test", torch.rand(3, 8, 8), 0)
    with pytest.raises(ValueError, match="one size"):
        sanity_records([*cases, small], ["center"], model)
    assert list(sanity_records([], ["center"], model)) == []
