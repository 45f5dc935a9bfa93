"""Cascading model-parameter randomisation (captum_gfi.evaluation.sanity) and the rank
correlation it reports (captum_gfi.evaluation.rank_correlation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_gfi.demo.toy import TinyConvNet
from captum_gfi.evaluation.rank_correlation import average_ranks, spearman
from captum_gfi.evaluation.sanity import (
    cascading_randomization,
    method_factory,
    top_down_layers,
)


def _net(batch_norm: bool = False) -> TinyConvNet:
    torch.manual_seed(0)
    return TinyConvNet(batch_norm=batch_norm).eval()


def _inputs(n: int = 3) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.rand(n, 3, 16, 16, generator=g), torch.arange(n) % 5


def _conv1_only(model: nn.Module) -> object:
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
